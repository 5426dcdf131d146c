"""Matrix-free QEq: projected preconditioned conjugate gradients and implicit derivatives.

The QEq charges minimise E(q) = χ·q + ½ qᵀAq on the plane Σq = Q of each
structure (A = diag(J) + Φ, symmetric positive definite). Projected CG
(Gould, Hribar & Nocedal 2001) keeps every iterate on that plane by projecting
the preconditioned gradient,

    z = P r,   P = M⁻¹ − M⁻¹1 1ᵀM⁻¹ / (1ᵀM⁻¹1),   r = ∇E = χ + A q,

so Σz = 0, and needs only products A d: O(pairs + N K) with the Ewald operator,
O(pairs + N log N) with the mesh, never the N×N matrix. M⁻¹ is Jacobi, or
Jacobi with a long-wave correction for periodic cells on the mesh path (see
:mod:`.preconditioner`), which keeps the iteration count nearly flat in N.
It stops when the Jacobi charge update max |D⁻¹(r − ν1)| (e) is below the
tolerance in every structure; μ = (1ᵀD⁻¹r)/(1ᵀD⁻¹1) then equals χᵢ + (Aq)ᵢ.

Derivatives:

* energy, forces, stress: E_QEq is stationary in q on the constraint plane, so
  its derivatives at fixed q* are exact (envelope theorem); no derivative of
  the solve is needed. This is all a compiled model uses.
* derivatives of q* itself (charge and dipole losses, charge feedback), eager
  mode: implicit differentiation, q* = q̂ − S g(q̂) with g = χ + A q̂ (≈ 0 at
  the solution) and S the constrained inverse of A, whose backward is one more
  projected-CG solve (the adjoint). Second derivatives through it (force
  training) are not available: train on the dense path.

Everything but the implicit derivatives is TorchScript-compatible, so compiled
models and the LAMMPS export solve large structures the same way as eager ones.
"""

import math
from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from .coulomb import CoulombOperator, apply_coulomb, coulomb_operator, detach_coulomb
from .ewald_parameters import ewald_parameters
from .mesh import MeshOperator, apply_mesh, detach_mesh, ewald_mesh
from .options import QEqOptions
from .preconditioner import Preconditioner, apply_preconditioner, jacobi, long_wave_preconditioner
from .structures import Structures, sum_per_structure
from .units import coulomb_constant


class ConvergenceError(RuntimeError):
    """The iterative QEq solve did not reach its tolerance (a RuntimeError in compiled code)."""


class QEqOperator(NamedTuple):
    """A = diag(J) + Φ as a linear operator; Φ^rec by the Ewald sum inside ``coulomb`` or by ``mesh``."""

    coulomb: CoulombOperator
    mesh: Optional[MeshOperator]
    hardness: Tensor  # [N] (eV/e²)


def apply_coulomb_total(operator: QEqOperator, charges: Tensor) -> Tensor:
    """Φ q (eV/e): real space, self, background and the reciprocal sum (Ewald or mesh)."""
    potential = apply_coulomb(operator.coulomb, charges)
    mesh = operator.mesh
    if mesh is not None:
        potential = potential + apply_mesh(mesh, charges)
    return potential


def apply_qeq(operator: QEqOperator, charges: Tensor) -> Tensor:
    """A q = J q + Φ q."""
    return operator.hardness * charges + apply_coulomb_total(operator, charges)


def detach_qeq(operator: QEqOperator) -> QEqOperator:
    """``operator`` cut from the autograd graph (see :func:`~.coulomb.detach_coulomb`)."""
    mesh = operator.mesh
    return QEqOperator(detach_coulomb(operator.coulomb), None if mesh is None else detach_mesh(mesh),
                       operator.hardness.detach())


class IterativeSolution(NamedTuple):
    charges: Tensor  # [N] (e), not attached to the autograd graph
    chemical_potential: Tensor  # [G] (eV/e)
    iterations: int


def coulomb_diagonal(operator: CoulombOperator) -> Tensor:
    """diag(Φ) (eV/e²) from the factors of Φ (without its mesh part), without forming it."""
    batch = operator.structures.batch
    diagonal = operator.self_interaction.detach()
    if operator.kspace_weights.shape[1] > 0:  # c_k² + s_k² = 1
        diagonal = diagonal + operator.kspace_weights.detach().sum(dim=1)[batch]
    own_images = operator.pairs.first == operator.pairs.second
    diagonal = diagonal.index_add(
        0, operator.pairs.first[own_images], 2.0 * operator.pair_interaction.detach()[own_images]
    )
    background = operator.smearing_squared[batch] - 2.0 * operator.sigma_squared.detach()
    return diagonal + operator.background[batch] * background


def _project(residual: Tensor, preconditioner: Preconditioner, ones_image: Tensor, weight_sum: Tensor,
             structures: Structures) -> Tuple[Tensor, Tensor]:
    """(z, r') with z = P r and r' = r − ν1, ν = 1ᵀM⁻¹r / 1ᵀM⁻¹1 (so z = M⁻¹r', Σz = 0).

    ``ones_image`` is M⁻¹1 and ``weight_sum`` its sum per structure. Carrying
    r' instead of r (Gould et al.'s residual update) keeps rᵀz free of the
    cancellation between the large component of r along 1 (≈ μ) and Σz = 0.
    """
    nu = sum_per_structure(ones_image * residual, structures) / weight_sum
    residual = residual - nu[structures.batch]
    return apply_preconditioner(preconditioner, residual), residual


def _jacobi_update(residual: Tensor, inverse_diagonal: Tensor, jacobi_sum: Tensor, structures: Structures) -> Tensor:
    """max |D⁻¹(r − ν1)| per structure (e), ν = 1ᵀD⁻¹r / 1ᵀD⁻¹1: the step a Jacobi iteration would take."""
    nu = sum_per_structure(inverse_diagonal * residual, structures) / jacobi_sum
    update = (inverse_diagonal * (residual - nu[structures.batch])).abs()
    return torch.zeros_like(jacobi_sum).scatter_reduce(0, structures.batch, update, "amax", include_self=True)


def _not_converged(message: str):
    if torch.jit.is_scripting():
        raise RuntimeError("ConvergenceError: " + message)
    raise ConvergenceError(message)


def projected_conjugate_gradient(
    matrix: QEqOperator,
    preconditioner: Preconditioner,
    electronegativity: Tensor,
    total_charge: Tensor,
    initial_charges: Optional[Tensor] = None,
    tolerance: float = 1e-7,
    max_iterations: int = 1000,
) -> IterativeSolution:
    """Minimise χ·q + ½qᵀAq with Σq = Q per structure by projected PCG (no gradients).

    ``initial_charges`` (e.g. the previous MD step) warm-starts the solve; they
    are first shifted onto Σq = Q. The solve stops when the Jacobi charge
    update max |D⁻¹(r − ν1)| is below ``tolerance`` (e) in every structure,
    the same measure whatever the preconditioner, so that a preconditioner
    cannot hide a residual. Should the preconditioner turn out not to be
    positive definite (rᵀz ≤ 0, possible only for the long-wave correction in
    unusual cells), the solve continues from where it is with Jacobi. Raises
    :class:`ConvergenceError` naming the structures that did not converge
    within ``max_iterations``.
    """
    structures = matrix.coulomb.structures
    batch = structures.batch
    matrix = detach_qeq(matrix)  # not torch.no_grad(): see detach_coulomb
    chi = electronegativity.detach()
    inverse_diagonal = preconditioner.inverse_diagonal
    jacobi_sum = sum_per_structure(inverse_diagonal, structures)

    if initial_charges is None:
        q = torch.zeros_like(chi)
    else:
        q = initial_charges.detach().to(chi.dtype).clone()
    deficit = total_charge.detach().to(chi.dtype) - sum_per_structure(q, structures)
    q = q + inverse_diagonal * (deficit / jacobi_sum)[batch]  # feasible start
    r = chi + apply_qeq(matrix, q)
    iterations = 0
    restart = True
    while restart:
        restart = False
        ones_image = apply_preconditioner(preconditioner, torch.ones_like(chi))
        weight_sum = sum_per_structure(ones_image, structures)
        z, r = _project(r, preconditioner, ones_image, weight_sum, structures)
        d = -z
        rz = sum_per_structure(r * z, structures)
        while True:
            error = _jacobi_update(r, inverse_diagonal, jacobi_sum, structures)
            active = error > tolerance
            if not bool(active.any()):
                break
            if iterations >= max_iterations:
                failed: List[int] = torch.nonzero(active).flatten().tolist()
                _not_converged(
                    "iterative QEq did not converge in {} iterations for structures {} (largest charge update "
                    "{} e > tolerance {} e); raise max_iterations or tolerance, or use method='dense'".format(
                        max_iterations, failed, float(error.max()), tolerance)
                )
            ad = apply_qeq(matrix, d)
            curvature = sum_per_structure(d * ad, structures)
            alpha = torch.where(active, rz / curvature, torch.zeros_like(rz))
            q = q + alpha[batch] * d
            z, r = _project(r + alpha[batch] * ad, preconditioner, ones_image, weight_sum, structures)
            rz_new = sum_per_structure(r * z, structures)
            iterations += 1
            if preconditioner.long_waves is not None and bool((active & (rz_new <= 0)).any()):
                preconditioner = Preconditioner(inverse_diagonal, None)
                restart = True
                break
            beta = torch.where(active, rz_new / rz, torch.zeros_like(rz))
            d = -z + beta[batch] * d
            rz = rz_new
    gradient = chi + apply_qeq(matrix, q)  # = μ1 at the solution
    mu = sum_per_structure(inverse_diagonal * gradient, structures) / jacobi_sum
    return IterativeSolution(q, mu, iterations)


class _ConstrainedInverse(torch.autograd.Function):
    """Derivative of x ↦ S x, S the inverse of A on the plane Σq = 0 (S 1 = 0, S symmetric).

    Applied to the QEq gradient, whose S-image vanishes at the solution, so the
    forward returns zeros; backward applies S to the incoming gradient by one
    projected-CG solve (the adjoint solve).
    """

    @staticmethod
    def forward(ctx, residual, matrix, preconditioner, tolerance, max_iterations):
        ctx.matrix = matrix
        ctx.preconditioner = preconditioner
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
        # S v minimises −v·q + ½qᵀAq on Σq = 0; the tolerance scales with |v|.
        zeros = torch.zeros(ctx.matrix.coulomb.structures.num_structures, dtype=grad.dtype, device=grad.device)
        scale = max(float(grad.abs().max()), 1e-30)
        adjoint = projected_conjugate_gradient(
            ctx.matrix, ctx.preconditioner, -grad, zeros, None, ctx.tolerance * scale, ctx.max_iterations
        ).charges
        return adjoint, None, None, None, None


@torch.jit.unused
def implicit_charges(matrix: QEqOperator, preconditioner: Preconditioner, electronegativity: Tensor,
                     charges: Tensor, tolerance: float, max_iterations: int) -> Tensor:
    """The converged ``charges`` q̂ with the derivatives of implicit differentiation attached (eager only).

    q = q̂ − S g(q̂), g = χ + A q̂ = ∇E(q̂): the value is q̂ (g ⟂ the plane
    vanishes at the solution, S removes the part along 1), and dq/dθ =
    −S ∂g/∂θ, exactly the derivative of the constrained minimiser.
    """
    gradient = electronegativity + apply_qeq(matrix, charges)
    correction = _ConstrainedInverse.apply(gradient, matrix, preconditioner, tolerance, max_iterations)
    return charges - (correction - correction.detach())


class IterativeSolver(NamedTuple):
    """The operator and preconditioner of a finished iterative solve, for its adjoint (see :func:`response_energy`)."""

    matrix: QEqOperator
    preconditioner: Preconditioner
    tolerance: float
    max_iterations: int


class IterativeQEq(NamedTuple):
    charges: Tensor
    chemical_potential: Tensor
    potential: Tensor  # Φ q (eV/e), differentiable in positions, cell and σ
    iterations: int
    solver: IterativeSolver


def response_energy(solver: IterativeSolver, electronegativity: Tensor, hardness: Tensor, charges: Tensor,
                    potential: Tensor, charge_gradient: Tensor) -> Tensor:
    """Per-atom −λᵢ gᵢ(q̂) (eV): zero in value, the charges' response in its derivatives.

    For an energy E(θ, q*(θ)) evaluated at the converged charges q̂ held
    constant, v = ∂E/∂q (``charge_gradient``, at fixed θ) and λ = S v (one
    projected-CG solve; S the inverse of A on Σq = 0), adding −λ·g(q̂) with
    g = χ + J q̂ + Φ q̂ = ∇E_QEq leaves the value unchanged (g is constant along
    the plane at the solution and Σλ = 0; to the solver's tolerance) and adds
    exactly −λᵀ ∂g/∂θ = (∂E/∂q)(dq*/dθ) to every derivative: forces and stress
    become those of E(θ, q*(θ)). Needed when E is not stationary in q, i.e.
    with charge feedback into the network or the Coulomb-only energy; without
    custom autograd, so compiled models use it too. ``potential`` is Φ q̂ as
    the solve returned it (differentiable in positions and cell), so that its
    backward is shared with that of the energy.
    """
    structures = solver.matrix.coulomb.structures
    v = charge_gradient.detach()
    scale = max(float(v.abs().max()), 1e-30)
    zeros = torch.zeros(structures.num_structures, dtype=v.dtype, device=v.device)
    multiplier = projected_conjugate_gradient(solver.matrix, solver.preconditioner, -v, zeros, None,
                                              solver.tolerance * scale, solver.max_iterations).charges
    gradient = electronegativity + hardness * charges.detach() + potential
    return -multiplier * gradient


def solve_iteratively(
    positions: Tensor,
    electronegativity: Tensor,
    hardness: Tensor,
    sigma: Tensor,
    total_charge: Tensor,
    structures: Structures,
    options: QEqOptions,
    initial_charges: Optional[Tensor],
    differentiate_charges: bool,
) -> IterativeQEq:
    """Charges, μ and Φq by projected CG, with the reciprocal sum by Ewald or smooth PME.

    The mesh path (periodic structures, ``options.reciprocal`` "mesh", or
    "auto" above ``mesh_limit`` atoms) keeps η fixed, η = max(mesh_smearing,
    γ_max) unless given, so pairs and mesh grow linearly with N; the Ewald path
    uses the parameters of :func:`ewald_parameters`. Derivatives of the charges
    (``differentiate_charges``) need eager mode; compiled code gets constant
    charges, which leaves energy, forces and stress exact.
    """
    reciprocal = options.reciprocal
    if reciprocal == "auto":
        reciprocal = "mesh" if structures.max_atoms > options.mesh_limit else "ewald"
    use_mesh = reciprocal == "mesh" and bool(structures.periodic.any())
    tolerance = options.tolerance
    max_iterations = options.max_iterations
    mesh: Optional[MeshOperator] = None
    if use_mesh:
        eta = options.smearing
        if eta is None:
            eta = max(options.mesh_smearing, math.sqrt(2.0) * float(sigma.detach().max()))
        parameters = ewald_parameters(structures, sigma, options.accuracy, eta, options.real_space_cutoff, None)
        coulomb = coulomb_operator(positions, sigma, structures, parameters, include_reciprocal=False)
        mesh = ewald_mesh(positions, structures, eta, options.mesh_spacing * eta, options.mesh_order)
        mesh_diagonal = coulomb_constant() * math.sqrt(2.0 / math.pi) / eta  # Φ^rec_ii for V ≫ η³
        periodic = structures.periodic[structures.batch].to(hardness.dtype)
        diagonal = hardness.detach() + coulomb_diagonal(coulomb) + mesh_diagonal * periodic
        preconditioner = long_wave_preconditioner(diagonal, positions, structures, eta)
    else:
        parameters = ewald_parameters(structures, sigma, options.accuracy, options.smearing,
                                      options.real_space_cutoff, options.kspace_cutoff)
        coulomb = coulomb_operator(positions, sigma, structures, parameters)
        preconditioner = jacobi(hardness.detach() + coulomb_diagonal(coulomb))
    matrix = QEqOperator(coulomb, mesh, hardness)
    solution = projected_conjugate_gradient(
        matrix, preconditioner, electronegativity, total_charge, initial_charges, tolerance, max_iterations
    )
    charges = solution.charges
    if not torch.jit.is_scripting():
        if differentiate_charges and torch.is_grad_enabled():
            charges = implicit_charges(matrix, preconditioner, electronegativity, charges, tolerance, max_iterations)
    return IterativeQEq(charges, solution.chemical_potential, apply_coulomb_total(matrix, charges),
                        solution.iterations, IterativeSolver(matrix, preconditioner, tolerance, max_iterations))
