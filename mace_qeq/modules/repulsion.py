"""Screened nuclear repulsion (ZBL) at close contact, switched off before bonding distances.

Each pair i, j within r_c contributes (eV)

    E_ij = k_e Zᵢ Zⱼ / r · φ(r / a) · f(r / r_c),
    a = 0.8854 a₀ / (Zᵢ^0.23 + Zⱼ^0.23),    r_c = 0.75 (r_cov,i + r_cov,j),
    φ(x) = 0.1818 e^(−3.2x) + 0.5099 e^(−0.9423x) + 0.2802 e^(−0.4028x) + 0.02817 e^(−0.2016x),

the universal screening length and screening function of Ziegler, Biersack &
Littmark (1985), with MACE's polynomial envelope f (power p), half of each pair
to each atom. mace's own ZBLBasis differs in two ways that matter in MD:

* its screening length, 0.4543 a₀ / (Zᵢ^0.3 + Zⱼ^0.3), is 2–3× shorter, so its
  wall is 20–40× weaker at 1–2 Å (Na–Na at 1.3 Å: 0.5 eV against 12 eV, 9.7 eV
  with r_c below): a demo model's Na4 core collapsed to 1.2 Å at 600 K, 21 eV
  below its start;
* it switches off at r_cov,i + r_cov,j, which leaves the compressed side of
  multiple bonds inside the wall (C≡C at 1.20 Å against 1.52 Å: 1.3 eV with
  the universal screening), a steep term the network must cancel (measured:
  C10H2/C10H3⁺ force error 118 → 149 meV/Å; 113 with r_c below). Triple bonds, the shortest, are
  ≈ 0.78 of the single-bond sum (C≡C, N≡N, C≡O), hence r_c = 0.75 of it: no
  repulsion on any bond, a wall for atoms pushed well inside one (Na4 core:
  +30 eV).
"""

import torch
from mace.modules.radial import PolynomialCutoff, ZBLBasis
from mace.tools.scatter import scatter_sum
from torch import Tensor

from mace_qeq.electrostatics.units import coulomb_constant

#: a = SCREENING_PREFACTOR a₀ / (Z₁^SCREENING_EXPONENT + Z₂^SCREENING_EXPONENT), a₀ = 0.52917721 Å
SCREENING_PREFACTOR = 0.8854
SCREENING_EXPONENT = 0.23
#: r_c / (r_cov,i + r_cov,j)
CONTACT_FRACTION = 0.75


class UniversalRepulsion(ZBLBasis):
    """ZBL with the universal screening, zero beyond 0.75 (r_cov,i + r_cov,j); mace's ZBLBasis buffers
    (``c``, ``p``, ``covalent_radii``, ``a_prefactor``, ``a_exp``), so state dicts load either way. The
    screening is what defines this module: a ZBLBasis state dict (a MACE backbone, fine-tuning) does not
    overwrite it."""

    def __init__(self, p: int = 6):
        super().__init__(p=p)
        self.a_prefactor.fill_(SCREENING_PREFACTOR)
        self.a_exp.fill_(SCREENING_EXPONENT)
        self.contact_fraction = CONTACT_FRACTION

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        for name in ("a_prefactor", "a_exp"):
            if prefix + name in state_dict:
                state_dict[prefix + name] = getattr(self, name).clone()
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    def forward(self, x: Tensor, node_attrs: Tensor, edge_index: Tensor, atomic_numbers: Tensor) -> Tensor:
        """Per-atom repulsion [N] (eV) from edge lengths x [E, 1] (Å)."""
        sender = edge_index[0]
        receiver = edge_index[1]
        node_z = atomic_numbers[torch.argmax(node_attrs, dim=1)].unsqueeze(-1).to(torch.int64)
        z_u = node_z[sender]
        z_v = node_z[receiver]
        contact = self.contact_fraction * (self.covalent_radii[z_u] + self.covalent_radii[z_v])
        if not bool((x < contact).any()):  # no pair inside its contact distance: exactly zero, and no graph
            return torch.zeros(node_attrs.size(0), dtype=x.dtype, device=x.device)
        a = self.a_prefactor * 0.52917721 / (torch.pow(z_u, self.a_exp) + torch.pow(z_v, self.a_exp))
        r_over_a = x / a
        phi = (self.c[0] * torch.exp(-3.2 * r_over_a) + self.c[1] * torch.exp(-0.9423 * r_over_a)
               + self.c[2] * torch.exp(-0.4028 * r_over_a) + self.c[3] * torch.exp(-0.2016 * r_over_a))
        envelope = PolynomialCutoff.calculate_envelope(x, contact, self.p)
        pair = 0.5 * coulomb_constant() * z_u * z_v / x * phi * envelope  # each directed edge carries half the pair
        return scatter_sum(pair, receiver, dim=0, dim_size=node_attrs.size(0)).squeeze(-1)
