"""A repulsive wall below the closest approach of each pair of elements seen in training.

Below the shortest distance the training data hold for a pair of elements the
learned energy is an extrapolation, and nothing but ZBL, built for nuclei at
fractions of an Å, holds atoms apart. Measured: the demo model's Langevin run
of Na4Cl4 at 600 K pushed two Na ions to 1.8 Å (3.07 Å in the data), where
GFN2-xTB puts the cluster 12 eV above its start and the model put it 1 eV
below. Each pair i, j of elements (Zᵢ, Zⱼ) closer than r_w = f r₀, where r₀(Zᵢ, Zⱼ)
is the closest approach of that pair of elements in training, adds (eV)

    E_ij = κ (r_w − r)³,    r < r_w,

with stiffness κ (eV/Å³), half of each pair to each atom; zero, with zero
first and second derivatives, at r_w and beyond (the PES of MD stays C²).
The wall starts 15 % inside the data (f = 0.85): a finite training set does
not reach the tail of its own distribution, and a wall at r₀ itself pushed on
test structures of the same distribution (rattled Na/Cl cells: one Na–Cl pair
7.6 % inside r₀ took 0.8 eV/Å, and the cells' force RMSE from 40 to 48 meV/Å).
κ = 10 eV/Å³ gives 0.01 eV at 0.1 Å inside r_w, 1.25 eV at 0.5 Å and 10 eV at
1 Å (Na–Na at 1.8 Å, r₀ = 3.07 Å: 5.3 eV): a guard where MD at a higher
temperature than the data's barely goes, a wall where it would fall into the
hole. r₀ is learned like BatchNorm's statistics, but as an exact minimum:
each training batch (the global batch of all processes under
``--distributed``) lowers it to its own closest pairs before the wall is
evaluated, so on the training data the wall is exactly zero and does not touch
the fit. Pairs of elements never seen together in training have no wall (ZBL
still applies).
"""

import torch
from torch import Tensor

from .batch_minimum import batch_minimum

#: r_w / r₀: where the wall starts, relative to the closest approach in training
ONSET_FRACTION = 0.85


class ClosestContactWall(torch.nn.Module):
    def __init__(self, num_elements: int, stiffness: float = 10.0):
        super().__init__()
        if not stiffness > 0.0:
            raise ValueError(f"the contact wall's stiffness must be > 0 eV/Å³; got {stiffness}")
        self.stiffness = stiffness
        self.num_elements = num_elements
        self.onset_fraction = ONSET_FRACTION
        self.register_buffer("closest_contact", torch.full((num_elements, num_elements), float("inf")))

    def __setstate__(self, state):
        state.setdefault("onset_fraction", ONSET_FRACTION)  # pickled before the onset moved inside the data
        super().__setstate__(state)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Checkpoints from before the wall have no contact statistics: start without a wall.
        state_dict.setdefault(prefix + "closest_contact", self.closest_contact.clone())
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, lengths: Tensor, node_attrs: Tensor, edge_index: Tensor, training: bool) -> Tensor:
        """Per-atom wall energy [N] (eV) from edge lengths [E, 1] (Å); ``training`` lowers r₀ to the batch's pairs."""
        element = torch.argmax(node_attrs, dim=1)
        slot = element[edge_index[0]] * self.num_elements + element[edge_index[1]]
        r = lengths.view(-1)
        closest = self.closest_contact.flatten()
        if training:
            batch_closest = batch_minimum(r, slot, closest)
            pairs = torch.minimum(closest, batch_closest).view(self.num_elements, self.num_elements)
            pairs = torch.minimum(pairs, pairs.transpose(0, 1))
            self.closest_contact.copy_(pairs)
            closest = pairs.flatten()
        onset = self.onset_fraction * closest[slot].to(r.dtype)  # inf for pairs never seen
        energy = torch.zeros(node_attrs.size(0), dtype=r.dtype, device=r.device)
        if not bool((r < onset).any()):  # no pair inside the wall (every training batch): exactly zero
            return energy
        seen = torch.isfinite(onset)
        depth = torch.clamp(torch.where(seen, onset, torch.zeros_like(onset)) - r, min=0.0)
        pair = 0.5 * self.stiffness * depth ** 3  # each directed edge carries half the pair
        return energy.index_add(0, edge_index[1], pair)
