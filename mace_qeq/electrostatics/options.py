"""How a QEq solve is done: the solver, the Ewald sums and their accuracy.

One options object for :func:`~mace_qeq.electrostatics.solve_qeq` (and the
model's QEq block), TorchScript-compatible. Units: Å, e.
"""

from typing import NamedTuple, Optional


class QEqOptions(NamedTuple):
    """Settings of a QEq solve; every field has a default.

    Solver:
        method: "dense" (LU solve), "iterative" (projected preconditioned CG)
            or "auto": dense up to ``dense_limit`` atoms per structure.
        reciprocal: iterative path: "mesh" (smooth particle-mesh Ewald,
            O(N log N), relative energy error ~1e-5), "ewald" (to ``accuracy``)
            or "auto": mesh for structures of more than ``mesh_limit`` atoms.
        tolerance: iterative path: largest Jacobi charge update at convergence (e).
        max_iterations: iterative path: ``ConvergenceError`` beyond this.
    Ewald sums (periodic structures):
        accuracy: target truncation error of the Ewald sums (dimensionless).
        smearing, real_space_cutoff, kspace_cutoff: fix η (Å), r_c (Å), k_c (1/Å);
            the others follow from ``accuracy``.
        mesh_smearing: mesh path: η = max(mesh_smearing, √2 σ_max) unless ``smearing`` is given (Å).
        mesh_spacing: mesh path: largest mesh spacing as a fraction of η.
        mesh_order: mesh path: B-spline order (even).
    """

    method: str = "auto"
    dense_limit: int = 500
    reciprocal: str = "auto"
    mesh_limit: int = 500
    tolerance: float = 1e-7
    max_iterations: int = 1000
    accuracy: float = 1e-8
    smearing: Optional[float] = None
    real_space_cutoff: Optional[float] = None
    kspace_cutoff: Optional[float] = None
    mesh_smearing: float = 1.2
    mesh_spacing: float = 0.5
    mesh_order: int = 6


def check_options(options: QEqOptions):
    """Raise ``ValueError`` for settings that cannot work, naming the field."""
    if options.method not in ["auto", "dense", "iterative"]:
        raise ValueError("method must be 'auto', 'dense' or 'iterative'; got '{}'".format(options.method))
    if options.reciprocal not in ["auto", "mesh", "ewald"]:
        raise ValueError("reciprocal must be 'auto', 'mesh' or 'ewald'; got '{}'".format(options.reciprocal))
    if not options.tolerance > 0.0:
        raise ValueError("tolerance must be > 0 e; got {}".format(options.tolerance))
    if options.max_iterations < 1:
        raise ValueError("max_iterations must be ≥ 1; got {}".format(options.max_iterations))
    if not 0.0 < options.mesh_spacing <= 1.0:
        raise ValueError("mesh_spacing must lie in (0, 1] (a fraction of η); got {}".format(options.mesh_spacing))
    if options.mesh_order % 2 != 0 or options.mesh_order < 4:
        raise ValueError("mesh_order must be even and ≥ 4; got {}".format(options.mesh_order))
    if not options.mesh_smearing > 0.0:
        raise ValueError("mesh_smearing must be > 0 Å; got {}".format(options.mesh_smearing))
