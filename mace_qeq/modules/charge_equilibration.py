"""The QEq + Ewald block: charges from χ, J, σ under each structure's total charge,
and the electrostatic energy that is added to MACE's short-range energy."""

from typing import NamedTuple

import torch
from torch import Tensor

from mace_qeq.electrostatics import solve_qeq


class Electrostatics(NamedTuple):
    charges: Tensor  # [N] (e)
    chemical_potential: Tensor  # [G] (eV/e)
    energy: Tensor  # [G] energy added to the model (eV)
    node_energy: Tensor  # [N] its per-atom split (eV)


class ChargeEquilibrationBlock(torch.nn.Module):
    """Solve QEq for every structure of a batch and return the energy to add.

    ``energy="qeq"`` adds E_QEq(q*) = Σ χq + ½ J q² + ½ qᵀΦq (NequIP-LR);
    ``energy="coulomb"`` adds only E_Coulomb(q*) = ½ qᵀΦq (4G-HDNNP).
    Positions and cell must be the strained ones when stress is wanted.
    """

    def __init__(self, energy: str = "qeq", accuracy: float = 1e-8):
        super().__init__()
        if energy not in ("qeq", "coulomb"):
            raise ValueError(f"energy must be 'qeq' or 'coulomb'; got {energy!r}")
        self.coulomb_only = energy == "coulomb"
        self.accuracy = accuracy

    def forward(
        self,
        positions: Tensor,
        electronegativity: Tensor,
        hardness: Tensor,
        sigma: Tensor,
        total_charge: Tensor,
        cell: Tensor,
        pbc: Tensor,
        batch: Tensor,
    ) -> Electrostatics:
        solution = solve_qeq(
            positions, electronegativity, hardness, sigma, total_charge, cell, pbc, batch, self.accuracy
        )
        if self.coulomb_only:
            node_energy = 0.5 * solution.charges * solution.potential
            energy = torch.zeros_like(solution.energy).index_add(0, batch, node_energy)
        else:
            node_energy = solution.site_energy
            energy = solution.energy
        return Electrostatics(solution.charges, solution.chemical_potential, energy, node_energy)
