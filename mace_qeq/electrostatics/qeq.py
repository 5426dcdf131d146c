"""Charge equilibration (QEq): the charges that minimise the electrostatic energy.

For each structure with electronegativities χ (eV/e), hardnesses J > 0
(eV/e²) and total charge Q (e), the QEq energy of charges q is

    E_QEq(q) = Σᵢ [χᵢ qᵢ + ½ Jᵢ qᵢ²] + ½ Σᵢⱼ qᵢ qⱼ Φᵢⱼ  =  χ·q + ½ qᵀ A q,
    A = diag(J) + Φ   (symmetric positive definite),

and the equilibrium charges q* minimise it subject to Σᵢ qᵢ = Q, i.e. solve the
bordered system

    [ A   1 ] [ q  ]   [ −χ ]
    [ 1ᵀ  0 ] [ −μ ] = [  Q ].

It is solved by block elimination: x = −A⁻¹χ, y = A⁻¹1, μ = (Q − Σx) / Σy,
q* = x + μ y, so Σq* = Q to rounding. μ = χᵢ + (A q*)ᵢ (the same for every
atom) is the equalised electronegativity, the chemical potential
μ = ∂E_QEq(q*)/∂Q (eV/e). At q* the potential is therefore
Φq* = μ − χ − J q* and the energy E_QEq(q*) = ½ (χ·q* + μ Q).

Two solvers, chosen by ``method``:

* ``"dense"``: LU solves (``torch.linalg.solve``) of the zero-padded
  [G, n_max, n_max] matrices, batched over structures of different sizes
  (padded rows carry an identity block); a Cholesky factorisation outside the
  autograd graph checks that A is positive definite. Autograd flows through it:
  forces, stress, derivatives of the charges and second derivatives (force
  training) all come out of the same graph. O(n³) time, O(n²) memory. (The
  solve's backward is one more LU solve; a Cholesky solve's also
  differentiates the factorisation. With it, and Φq* from a pass over the
  pairs, energy and forces of 1,000–5,000 isolated atoms cost 1.5–2.2× and
  the electrostatics of a force-training step on 16 Ag3 structures 1.5× as
  much: ``benchmarks/electrostatics_speed.py``, ``training_step_cost.py``.)
* ``"iterative"``: matrix-free projected conjugate gradients
  (:mod:`.iterative`), O(pairs + N K) per iteration with the Ewald sum,
  O(pairs + N log N) with smooth particle-mesh Ewald (:mod:`.mesh`), memory
  linear in N. Energy, forces and stress are exact by the envelope theorem
  (E_QEq is stationary in q); in eager mode derivatives of the charges come
  from implicit differentiation (one adjoint solve) when
  ``differentiate_charges``; no second derivatives. Compiled (TorchScript)
  code takes this path too, with constant charges.
* ``"auto"`` (default): dense up to ``dense_limit`` atoms per structure.

Measured (``benchmarks/scaling.py``, 2 CPU cores): above ~500 atoms the
iterative solve with particle-mesh Ewald costs 3–7× less than either the dense
solve or the iterative solve with the Ewald sum, hence both defaults of 500.
"""

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .coulomb import CoulombOperator, coulomb_matrix, coulomb_operator
from .ewald_parameters import ewald_parameters
from .iterative import IterativeSolver, solve_iteratively
from .options import QEqOptions, check_options
from .structures import (
    Structures,
    check_per_atom,
    check_per_structure,
    describe_structures,
    from_padded,
    sum_per_structure,
    to_padded,
)


class QEqSolution(NamedTuple):
    """The QEq charges and what follows from them."""

    charges: Tensor  # [N] q* (e)
    chemical_potential: Tensor  # [G] μ (eV/e)
    energy: Tensor  # [G] E_QEq(q*) (eV)
    potential: Tensor  # [N] electrostatic potential (Φ q*)ᵢ at each atom (eV/e)
    site_energy: Tensor  # [N] qᵢ (χᵢ + ½ Jᵢ qᵢ + ½ (Φq)ᵢ), summing to the energy (eV)
    iterations: int  # conjugate-gradient iterations (0 for the dense solve)
    solver: Optional[IterativeSolver]  # the iterative solve's operator, for its adjoint; None for the dense solve


def solve_qeq(
    positions: Tensor,
    electronegativity: Tensor,
    hardness: Tensor,
    sigma: Tensor,
    total_charge: Tensor,
    cell: Optional[Tensor] = None,
    pbc: Optional[Tensor] = None,
    batch: Optional[Tensor] = None,
    options: QEqOptions = QEqOptions(),
    initial_charges: Optional[Tensor] = None,
    differentiate_charges: bool = True,
) -> QEqSolution:
    """Equilibrate the charges of a batch of structures.

    Args:
        positions: [N, 3] (Å).
        electronegativity: [N] χ (eV/e).
        hardness: [N] J > 0 (eV/e²).
        sigma: [N] Gaussian widths σ > 0 (Å).
        total_charge: [G] Q of each structure (e).
        cell, pbc, batch: as in :func:`~mace_qeq.electrostatics.coulomb.coulomb_energy`.
        options: :class:`QEqOptions` (solver, Ewald accuracy, mesh).
        initial_charges: iterative path: warm start [N] (e.g. the previous MD step).
        differentiate_charges: iterative path, eager mode: attach derivatives
            of the charges (implicit differentiation); without them the charges
            are constants, which leaves energy, forces and stress exact.

    Returns:
        :class:`QEqSolution` (charges [N], chemical_potential [G], energy [G],
        potential [N], site_energy [N], iterations), differentiable in every input.
    """
    structures = describe_structures(positions, cell, pbc, batch, None)
    check_per_atom(electronegativity, "electronegativity", structures, False)
    check_per_atom(hardness, "hardness", structures, True)
    check_per_atom(sigma, "sigma", structures, True)
    check_per_structure(total_charge, "total_charge", structures)
    check_options(options)
    iterative = solves_iteratively(options, structures.max_atoms)
    iterations = 0
    solver: Optional[IterativeSolver] = None
    if iterative:
        solution = solve_iteratively(positions, electronegativity, hardness, sigma, total_charge, structures, options,
                                     initial_charges, differentiate_charges)
        charges, mu, potential, iterations, solver = solution
    else:
        parameters = ewald_parameters(structures, sigma, options.accuracy, options.smearing, options.real_space_cutoff,
                                      options.kspace_cutoff)
        operator = coulomb_operator(positions, sigma, structures, parameters)
        charges, mu = _dense_charges(operator, structures, electronegativity, hardness, total_charge, positions.dtype)
        potential = mu[structures.batch] - electronegativity - hardness * charges  # Φq* without a pass over pairs

    site_energy = qeq_site_energy(charges, electronegativity, hardness, potential)
    return QEqSolution(charges, mu, sum_per_structure(site_energy, structures), potential, site_energy, iterations,
                       solver)


def solves_iteratively(options: QEqOptions, max_atoms: int) -> bool:
    """Whether :func:`solve_qeq` solves a batch whose largest structure has ``max_atoms`` atoms iteratively."""
    return options.method == "iterative" or (options.method == "auto" and max_atoms > options.dense_limit)


def qeq_site_energy(charges: Tensor, electronegativity: Tensor, hardness: Tensor, potential: Tensor) -> Tensor:
    """qᵢ (χᵢ + ½ Jᵢ qᵢ + ½ (Φq)ᵢ) (eV): the per-atom split of E_QEq, ``potential`` = Φq (eV/e)."""
    return charges * (electronegativity + 0.5 * hardness * charges + 0.5 * potential)


def _dense_charges(
    operator: CoulombOperator,
    structures: Structures,
    electronegativity: Tensor,
    hardness: Tensor,
    total_charge: Tensor,
    dtype: torch.dtype,
) -> Tuple[Tensor, Tensor]:
    occupied = to_padded(torch.ones_like(hardness), structures)
    diagonal = to_padded(hardness, structures) + (1.0 - occupied)  # identity block on padding
    matrix = coulomb_matrix(operator) + torch.diag_embed(diagonal)
    _, info = torch.linalg.cholesky_ex(matrix.detach())
    if bool((info != 0).any()):
        g = int(torch.nonzero(info != 0)[0, 0])
        raise ValueError(
            "QEq matrix diag(J) + Φ of structure {} is not positive definite in {}; "
            "check hardness and sigma, or use float64".format(g, dtype)
        )
    right_hand_sides = torch.stack([-to_padded(electronegativity, structures), occupied], dim=2)
    solutions = torch.linalg.solve(matrix, right_hand_sides)
    x = solutions[:, :, 0]
    y = solutions[:, :, 1]
    mu = (total_charge.to(dtype) - x.sum(dim=1)) / y.sum(dim=1)
    return from_padded(x + mu[:, None] * y, structures), mu
