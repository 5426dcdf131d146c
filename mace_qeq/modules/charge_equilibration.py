"""The QEq + Ewald block: charges from χ, J, σ under each structure's total charge,
and the electrostatic energy that is added to MACE's short-range energy."""

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from mace_qeq.electrostatics import QEqOptions, qeq_site_energy, solve_qeq, solves_iteratively
from mace_qeq.electrostatics.iterative import IterativeSolver


class Electrostatics(NamedTuple):
    charges: Tensor  # [N] (e)
    chemical_potential: Tensor  # [G] (eV/e)
    energy: Tensor  # [G] energy added to the model (eV)
    node_energy: Tensor  # [N] its per-atom split (eV)
    potential: Tensor  # [N] Φq (eV/e)
    solver: Optional[IterativeSolver]  # set when the charges came from the iterative solve (constants)


class ChargeEquilibrationBlock(torch.nn.Module):
    """Solve QEq for every structure of a batch and return the energy to add.

    ``energy="qeq"`` adds E_QEq(q*) = Σ χq + ½ J q² + ½ qᵀΦq (NequIP-LR);
    ``energy="coulomb"`` adds only E_Coulomb(q*) = ½ qᵀΦq (4G-HDNNP).
    Positions and cell must be the strained ones when stress is wanted.

    Training (``training=True``: second derivatives for force training) uses the
    dense solve; evaluation solves structures of more than ``dense_limit`` atoms
    iteratively with particle-mesh Ewald, in eager and in compiled models (see
    :func:`~mace_qeq.electrostatics.solve_qeq`). ``accuracy``, ``dense_limit``,
    ``mesh_limit``, ``tolerance`` and ``max_iterations`` are attributes a user
    may change on a loaded model.

    Warm start (molecular dynamics): outside training the block keeps the last
    charges it found and starts the next iterative solve from them when the
    batch has as many atoms (or from ``initial_charges`` when given). The start
    only changes how fast the solve converges, never what it converges to.
    """

    def __init__(self, energy: str = "qeq", accuracy: float = 1e-8, dense_limit: int = 500,
                 tolerance: float = 1e-6, mesh_limit: int = 500, max_iterations: int = 1000):
        super().__init__()
        if energy not in ("qeq", "coulomb"):
            raise ValueError(f"energy must be 'qeq' or 'coulomb'; got {energy!r}")
        self.coulomb_only = energy == "coulomb"
        self.accuracy = accuracy
        self.dense_limit = dense_limit
        self.tolerance = tolerance
        self.mesh_limit = mesh_limit
        self.max_iterations = max_iterations
        # The warm-start state: a plain attribute, not a buffer (no state dict, no SWA averaging).
        self.previous_charges = torch.zeros(0)

    def __setstate__(self, state):
        # Blocks saved by mace-qeq 0.1.0 lack the newer settings and the warm-start state.
        state.setdefault("mesh_limit", 500)
        state.setdefault("max_iterations", 1000)
        state.setdefault("previous_charges", torch.zeros(0))
        super().__setstate__(state)

    def options(self, training: bool) -> QEqOptions:
        """The solver settings: always dense in training (force training needs second derivatives)."""
        return QEqOptions(
            method="dense" if training else "auto",
            dense_limit=self.dense_limit,
            mesh_limit=self.mesh_limit,
            tolerance=self.tolerance,
            max_iterations=self.max_iterations,
            accuracy=self.accuracy,
        )

    def solves_iteratively(self, max_atoms: int, training: bool) -> bool:
        """Whether a batch whose largest structure has ``max_atoms`` atoms is solved iteratively."""
        return solves_iteratively(self.options(training), max_atoms)

    def charge_gradient(self, potential: Tensor) -> Tensor:
        """∂E/∂q (eV/e) of this block's energy at the equilibrated charges, given ``potential`` = Φq:
        Φq for ½qᵀΦq (``energy="coulomb"``), zero for E_QEq (stationary there under Σq = Q)."""
        if self.coulomb_only:
            return potential.detach()
        return torch.zeros_like(potential)

    def node_energy(self, charges: Tensor, electronegativity: Tensor, hardness: Tensor, potential: Tensor) -> Tensor:
        """The per-atom energy this block adds (eV), given ``potential`` = Φq (eV/e):
        qᵢ(χᵢ + ½Jᵢqᵢ + ½(Φq)ᵢ), or ½qᵢ(Φq)ᵢ with ``energy="coulomb"``."""
        if self.coulomb_only:
            return 0.5 * charges * potential
        return qeq_site_energy(charges, electronegativity, hardness, potential)

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
        training: bool = False,
        differentiate_charges: bool = True,
        initial_charges: Optional[Tensor] = None,
    ) -> Electrostatics:
        """``differentiate_charges=False`` is enough for energy, forces and stress
        (envelope theorem); charge losses and charge feedback need it True."""
        previous = self.previous_charges
        if initial_charges is None and not training and previous.shape[0] == positions.shape[0] \
                and previous.device == positions.device:
            initial_charges = previous.to(positions.dtype)
        solution = solve_qeq(
            positions, electronegativity, hardness, sigma, total_charge, cell, pbc, batch, self.options(training),
            initial_charges, differentiate_charges,
        )
        if not training:
            self.previous_charges = solution.charges.detach()
        if self.coulomb_only:
            node_energy = self.node_energy(solution.charges, electronegativity, hardness, solution.potential)
            energy = torch.zeros_like(solution.energy).index_add(0, batch, node_energy)
        else:
            node_energy = solution.site_energy
            energy = solution.energy
        return Electrostatics(solution.charges, solution.chemical_potential, energy, node_energy, solution.potential,
                              solution.solver)
