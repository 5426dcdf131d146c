"""Matrix-free QEq: projected preconditioned conjugate gradients and implicit derivatives.

The QEq charges minimise E(q) = χ·q + ½ qᵀAq on the plane Σq = Q of each
structure (A = diag(J) + Φ, symmetric positive definite). Projected CG
(Gould, Hribar & Nocedal 2001) keeps every iterate on that plane by projecting
the Jacobi-preconditioned gradient,

    z = P r,   P = M⁻¹ − M⁻¹1 1ᵀM⁻¹ / (1ᵀM⁻¹1),   r = ∇E = χ + A q,   M = diag(A),

so Σz = 0, and needs only products A d: O(pairs + N K) with the Ewald operator,
never the N×N matrix. It stops when max |z| (a charge, e) is below the
tolerance in every structure; μ = (1ᵀM⁻¹r)/(1ᵀM⁻¹1) then equals χᵢ + (Aq)ᵢ.

Derivatives (see :func:`implicit_charges`):

* energy, forces, stress: E_QEq is stationary in q on the constraint plane, so
  its derivatives at fixed q* are exact (envelope theorem); no derivative of
  the solve is needed;
* derivatives of q* itself (charge and dipole losses, charge feedback): by
  implicit differentiation, q* = q̂ − S g(q̂) with g = χ + A q̂ (≈ 0 at the
  solution) and S the constrained inverse of A, whose backward is one more
  projected-CG solve (the adjoint). Second derivatives through it (force
  training) are not available: train on the dense path.
"""

from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .coulomb import CoulombOperator, apply_coulomb
from .structures import sum_per_structure


class ConvergenceError(RuntimeError):
    """The iterative QEq solve did not reach its tolerance."""


class IterativeSolution(NamedTuple):
    charges: Tensor  # [N] (e), not attached to the autograd graph
    chemical_potential: Tensor  # [G] (eV/e)
    iterations: int


def jacobi_diagonal(operator: CoulombOperator, hardness: Tensor) -> Tensor:
    """diag(A) = J + diag(Φ) (eV/e²), from the factors of Φ without forming it."""
    structures = operator.structures
    batch = structures.batch
    diagonal = hardness + operator.self_interaction
    if operator.kspace_weights.shape[1] > 0:  # c_k² + s_k² = 1
        diagonal = diagonal + operator.kspace_weights.sum(dim=1)[batch]
    own_images = operator.pairs.first == operator.pairs.second
    diagonal = diagonal.index_add(0, operator.pairs.first[own_images], 2.0 * operator.pair_interaction[own_images])
    diagonal = diagonal + operator.background[batch] * (operator.smearing_squared[batch] - 2.0 * operator.sigma_squared)
    return diagonal


def _project(residual: Tensor, inverse_diagonal: Tensor, weight_sum: Tensor, structures) -> Tuple[Tensor, Tensor]:
    """(z, r') with z = P r and r' = r − ν1, ν = 1ᵀM⁻¹r / 1ᵀM⁻¹1 (so z = M⁻¹r', Σz = 0).

    Carrying r' instead of r (Gould et al.'s residual update) keeps rᵀz free of
    the cancellation between the large component of r along 1 (≈ μ) and Σz = 0.
    """
    nu = sum_per_structure(inverse_diagonal * residual, structures) / weight_sum
    residual = residual - nu[structures.batch]
    return inverse_diagonal * residual, residual


def projected_conjugate_gradient(
    operator: CoulombOperator,
    electronegativity: Tensor,
    hardness: Tensor,
    total_charge: Tensor,
    initial_charges: Optional[Tensor] = None,
    tolerance: float = 1e-6,
    max_iterations: int = 500,
) -> IterativeSolution:
    """Minimise χ·q + ½qᵀAq with Σq = Q per structure by projected Jacobi-PCG (no gradients).

    ``initial_charges`` (e.g. the previous MD step) warm-starts the solve; they
    are first shifted onto Σq = Q. Raises :class:`ConvergenceError` naming the
    structures that did not converge within ``max_iterations``.
    """
    structures = operator.structures
    batch = structures.batch
    with torch.no_grad():
        chi = electronegativity.detach()
        hard = hardness.detach()
        matvec = _detached_matvec(operator, hard)
        inverse_diagonal = 1.0 / jacobi_diagonal(_detach(operator), hard)
        weight_sum = sum_per_structure(inverse_diagonal, structures)

        q = torch.zeros_like(chi) if initial_charges is None else initial_charges.detach().to(chi.dtype).clone()
        deficit = total_charge.to(chi.dtype) - sum_per_structure(q, structures)
        q = q + inverse_diagonal * (deficit / weight_sum)[batch]  # feasible start

        z, r = _project(chi + matvec(q), inverse_diagonal, weight_sum, structures)
        d = -z
        rz = sum_per_structure(r * z, structures)
        active = torch.ones(structures.num_structures, dtype=torch.bool, device=chi.device)
        iterations = 0
        while True:
            error = torch.zeros_like(rz).scatter_reduce(0, batch, z.abs(), "amax", include_self=True)
            active = error > tolerance
            if not bool(active.any()):
                break
            if iterations >= max_iterations:
                failed = torch.nonzero(active).flatten().tolist()
                raise ConvergenceError(
                    f"iterative QEq did not converge in {max_iterations} iterations for structures {failed} "
                    f"(largest charge update {float(error.max()):.3e} e > tolerance {tolerance:.1e} e); "
                    "raise max_iterations or tolerance, or use method='dense'"
                )
            ad = matvec(d)
            curvature = sum_per_structure(d * ad, structures)
            alpha = torch.where(active, rz / curvature, torch.zeros_like(rz))
            q = q + alpha[batch] * d
            z, r = _project(r + alpha[batch] * ad, inverse_diagonal, weight_sum, structures)
            rz_new = sum_per_structure(r * z, structures)
            beta = torch.where(active, rz_new / rz, torch.zeros_like(rz))
            d = -z + beta[batch] * d
            rz = rz_new
            iterations += 1
        gradient = chi + matvec(q)  # = μ1 at the solution
        mu = sum_per_structure(inverse_diagonal * gradient, structures) / weight_sum
    return IterativeSolution(q, mu, iterations)


def _detach(operator: CoulombOperator) -> CoulombOperator:
    return CoulombOperator(*[t.detach() if isinstance(t, Tensor) else t for t in operator])


def _detached_matvec(operator: CoulombOperator, hardness: Tensor):
    detached = _detach(operator)
    return lambda q: hardness * q + apply_coulomb(detached, q)


class _ConstrainedInverse(torch.autograd.Function):
    """Derivative of x ↦ S x, S the inverse of A on the plane Σq = 0 (S 1 = 0, S symmetric).

    Applied to the QEq gradient, whose S-image vanishes at the solution, so the
    forward returns zeros; backward applies S to the incoming gradient by one
    projected-CG solve (the adjoint solve).
    """

    @staticmethod
    def forward(ctx, residual, operator, hardness, tolerance, max_iterations):
        ctx.operator = operator
        ctx.hardness = hardness
        ctx.tolerance = tolerance
        ctx.max_iterations = max_iterations
        return torch.zeros_like(residual)  # only the derivative is used (see implicit_charges)

    @staticmethod
    def backward(ctx, grad):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "second derivatives through the iterative QEq solve are not supported "
                "(e.g. force training); use method='dense' for training structures"
            )
        adjoint = _apply_constrained_inverse(ctx.operator, ctx.hardness, grad, ctx.tolerance, ctx.max_iterations)
        return adjoint, None, None, None, None


def _apply_constrained_inverse(operator, hardness, vector, tolerance, max_iterations):
    """S v: the minimiser of −v·q + ½qᵀAq with Σq = 0 in each structure.

    The tolerance (e per eV/e of right-hand side) scales with |v|."""
    zeros = torch.zeros(operator.structures.num_structures, dtype=vector.dtype, device=vector.device)
    scale = max(float(vector.abs().max()), 1e-30)
    return projected_conjugate_gradient(
        operator, -vector, hardness, zeros, None, tolerance * scale, max_iterations
    ).charges


def implicit_charges(
    operator: CoulombOperator,
    electronegativity: Tensor,
    hardness: Tensor,
    solution: IterativeSolution,
    tolerance: float,
    max_iterations: int,
) -> Tensor:
    """q* with the derivatives of implicit differentiation attached.

    q = q̂ − S g(q̂), g = χ + A q̂ = ∇E(q̂): the value is q̂ (g ⟂ the plane
    vanishes at the solution, S removes the part along 1), and dq/dθ =
    −S ∂g/∂θ, exactly the derivative of the constrained minimiser.
    """
    q_hat = solution.charges
    gradient = electronegativity + hardness * q_hat + apply_coulomb(operator, q_hat)
    correction = _ConstrainedInverse.apply(gradient, _detach(operator), hardness.detach(), tolerance, max_iterations)
    return q_hat - (correction - correction.detach())
