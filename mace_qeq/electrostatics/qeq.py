"""Charge equilibration (QEq): the charges that minimise the electrostatic energy.

For each structure with electronegativities χ (eV/e), hardnesses J > 0
(eV/e²) and total charge Q (e), the QEq energy of charges q is

    E_QEq(q) = Σᵢ [χᵢ qᵢ + ½ Jᵢ qᵢ²] + ½ Σᵢⱼ qᵢ qⱼ Φᵢⱼ  =  χ·q + ½ qᵀ A q,
    A = diag(J) + Φ   (symmetric positive definite),

and the equilibrium charges q* minimise it subject to Σᵢ qᵢ = Q, i.e. solve the
bordered system

    [ A   1 ] [ q  ]   [ −χ ]
    [ 1ᵀ  0 ] [ −μ ] = [  Q ].

It is solved by block elimination with a Cholesky factorisation of A:
x = −A⁻¹χ, y = A⁻¹1, μ = (Q − Σx) / Σy, q* = x + μ y, so Σq* = Q to rounding.
μ = χᵢ + (A q*)ᵢ (the same for every atom) is the equalised electronegativity,
the chemical potential μ = ∂E_QEq(q*)/∂Q (eV/e).

The dense solve is batched over structures of different sizes by zero padding
(padded rows carry an identity block), and autograd flows through it, so
forces, stress and derivatives of the charges (charge losses, force training
by double backward) come out of the same graph.
"""

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from .coulomb import apply_coulomb, coulomb_matrix, coulomb_operator
from .ewald_parameters import ewald_parameters
from .structures import (
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


def solve_qeq(
    positions: Tensor,
    electronegativity: Tensor,
    hardness: Tensor,
    sigma: Tensor,
    total_charge: Tensor,
    cell: Optional[Tensor] = None,
    pbc: Optional[Tensor] = None,
    batch: Optional[Tensor] = None,
    accuracy: float = 1e-8,
    smearing: Optional[float] = None,
    real_space_cutoff: Optional[float] = None,
    kspace_cutoff: Optional[float] = None,
) -> QEqSolution:
    """Equilibrate the charges of a batch of structures (dense direct solve).

    Args:
        positions: [N, 3] (Å).
        electronegativity: [N] χ (eV/e).
        hardness: [N] J > 0 (eV/e²).
        sigma: [N] Gaussian widths σ > 0 (Å).
        total_charge: [G] Q of each structure (e).
        cell, pbc, batch, accuracy, smearing, real_space_cutoff, kspace_cutoff:
            as in :func:`~mace_qeq.electrostatics.coulomb.coulomb_energy`.

    Returns:
        :class:`QEqSolution` (charges [N], chemical_potential [G], energy [G],
        potential [N], site_energy [N]), differentiable in every input.
    """
    structures = describe_structures(positions, cell, pbc, batch, None)
    check_per_atom(electronegativity, "electronegativity", structures, False)
    check_per_atom(hardness, "hardness", structures, True)
    check_per_atom(sigma, "sigma", structures, True)
    check_per_structure(total_charge, "total_charge", structures)
    parameters = ewald_parameters(structures, sigma, accuracy, smearing, real_space_cutoff, kspace_cutoff)
    operator = coulomb_operator(positions, sigma, structures, parameters)

    occupied = to_padded(torch.ones_like(hardness), structures)
    diagonal = to_padded(hardness, structures) + (1.0 - occupied)  # identity block on padding
    matrix = coulomb_matrix(operator) + torch.diag_embed(diagonal)
    factor, info = torch.linalg.cholesky_ex(matrix)
    if bool((info != 0).any()):
        g = int(torch.nonzero(info != 0)[0, 0])
        raise ValueError(
            "QEq matrix diag(J) + Φ of structure {} is not positive definite in {}; "
            "check hardness and sigma, or use float64".format(g, positions.dtype)
        )
    right_hand_sides = torch.stack([-to_padded(electronegativity, structures), occupied], dim=2)
    solutions = torch.cholesky_solve(right_hand_sides, factor)
    x = solutions[:, :, 0]
    y = solutions[:, :, 1]
    total_charge = total_charge.to(positions.dtype)
    mu = (total_charge - x.sum(dim=1)) / y.sum(dim=1)
    charges = from_padded(x + mu[:, None] * y, structures)

    potential = apply_coulomb(operator, charges)
    site_energy = charges * (electronegativity + 0.5 * hardness * charges + 0.5 * potential)
    return QEqSolution(charges, mu, sum_per_structure(site_energy, structures), potential, site_energy)
