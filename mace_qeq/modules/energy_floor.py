"""A lower bound on the learned short-range energy of each atom, set by the training data.

MACE's learned site energy is a polynomial of node features that grow far
beyond the data when atoms are pushed within a few tenths of an Å, or packed
with dozens of neighbours into a compressed cell: it then falls thousands of
eV below any training value (measured: −15,000 eV for Ag3 at 0.2× its size,
−1.8·10⁶ eV for Ag3⁺ in a 3 Å cell), a hole that ZBL cannot fill. The floor
keeps each atom's learned energy Eᵢ (eV, scale and shift included, ZBL and
electrostatics not) above the data:

    Eᵢ' = f + w softplus((Eᵢ − f) / w),    f = m_{Z,h} − Δ,

where m_{Z,h} is the lowest learned energy of element Z (head h) seen in
training, Δ the margin and w = Δ/25 the width of the bend. Above f + 20w =
m − Δ/5 softplus is the identity in floating point, so on the data and down
to Δ/5 below it Eᵢ' = Eᵢ exactly; far below, Eᵢ' → f and the repulsion (ZBL,
the contact wall) and the bounded electrostatics decide. m is a running
estimate, updated in training like BatchNorm's statistics: an exponential
average (momentum μ) of each batch's minimum per element (the global batch of
all processes under ``--distributed``); the margin covers its scatter and
physical extrapolation (a bulk atom binds a few eV more than one in a cluster).
Elements never seen in training have no floor.
"""

import torch
from torch import Tensor

from .batch_minimum import batch_minimum


class PerAtomEnergyFloor(torch.nn.Module):
    def __init__(self, num_elements: int, num_heads: int, margin: float = 5.0, momentum: float = 0.01):
        super().__init__()
        if not margin > 0.0:
            raise ValueError(f"the energy floor's margin must be > 0 eV; got {margin}")
        self.margin = margin
        self.width = margin / 25.0
        self.momentum = momentum
        self.num_heads = num_heads
        self.register_buffer("running_minimum", torch.full((num_elements, num_heads), float("inf")))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Checkpoints of mace-qeq 0.1.0 have no floor statistics: start without a floor.
        state_dict.setdefault(prefix + "running_minimum", self.running_minimum.clone())
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, energy: Tensor, node_attrs: Tensor, node_heads: Tensor, training: bool) -> Tensor:
        """Eᵢ' [N] from the learned site energies Eᵢ [N]; ``training`` updates the running minima."""
        slot = torch.argmax(node_attrs, dim=1) * self.num_heads + node_heads
        minimum = self.running_minimum.flatten()
        if training:
            lowest = batch_minimum(energy, slot, minimum)
            seen = torch.isfinite(lowest)
            first = seen & ~torch.isfinite(minimum)
            updated = torch.where(first, lowest, (1.0 - self.momentum) * minimum + self.momentum * lowest)
            minimum = torch.where(seen, updated, minimum)
            self.running_minimum.copy_(minimum.view_as(self.running_minimum))
        floor = (minimum[slot] - self.margin).to(energy.dtype)
        known = torch.isfinite(floor)
        safe_floor = torch.where(known, floor, torch.zeros_like(floor))
        excess = (energy - safe_floor) / self.width
        # softplus(x) = x in value and slope for x > 20 (its threshold): nothing to bend where every atom is there
        if not bool((known & (excess <= 20.0)).any()):
            return energy
        bounded = safe_floor + self.width * torch.nn.functional.softplus(excess)
        return torch.where(known, bounded, energy)
