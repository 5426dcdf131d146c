"""The matrix-free iterative QEq path against the dense solve and finite differences."""

import pytest
import torch

from mace_qeq.electrostatics import QEqOptions, solve_qeq
from mace_qeq.electrostatics.iterative import ConvergenceError

from .systems import PERIODIC, triclinic_system
from .test_batching import mixed_batch

F64 = torch.float64
TIGHT = QEqOptions(accuracy=1e-12, tolerance=1e-11, reciprocal="ewald")


def energy_forces_stress(method, positions, chi, hardness, sigma, total, cell, pbc, batch=None):
    strain = torch.zeros(len(total), 3, 3, dtype=F64, requires_grad=True)
    r = positions.clone().requires_grad_(True)
    graph = torch.zeros(len(positions), dtype=torch.long) if batch is None else batch
    cells = cell if cell.dim() == 3 else cell.expand(len(total), 3, 3)
    strained_r = r + torch.einsum("ni,nij->nj", r, strain[graph])
    strained_cell = cells + torch.bmm(cells, strain)
    solution = solve_qeq(strained_r, chi, hardness, sigma, total, strained_cell, pbc, batch, options=TIGHT._replace(method=method))
    forces, virial = torch.autograd.grad(-solution.energy.sum(), [r, strain])
    return solution, forces, virial


@pytest.mark.parametrize("total", [0.0, 1.0])
def test_iterative_equals_dense_in_a_mixed_batch(total):
    _, (positions, chi, hardness, sigma, totals, cells, pbc, batch) = mixed_batch()
    totals = totals + total
    dense = energy_forces_stress("dense", positions, chi, hardness, sigma, totals, cells, pbc, batch)
    iterative = energy_forces_stress("iterative", positions, chi, hardness, sigma, totals, cells, pbc, batch)
    assert iterative[0].iterations > 0
    torch.testing.assert_close(iterative[0].energy, dense[0].energy, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(iterative[0].charges, dense[0].charges, rtol=0, atol=1e-9)
    torch.testing.assert_close(iterative[0].chemical_potential, dense[0].chemical_potential, rtol=1e-8, atol=1e-10)
    # Φq: summed over pairs and k-vectors by the iterative path, μ − χ − Jq by the dense one
    torch.testing.assert_close(iterative[0].potential, dense[0].potential, rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(iterative[1], dense[1], rtol=1e-6, atol=1e-9)  # forces
    torch.testing.assert_close(iterative[2], dense[2], rtol=1e-6, atol=1e-9)  # virial (stress × V)


@pytest.mark.parametrize("periodic", [False, True])
def test_implicit_derivatives_of_the_charges_equal_dense_autograd(periodic):
    positions, chi, hardness, sigma, cell = triclinic_system(6, seed=3)
    cell, pbc = (cell, PERIODIC) if periodic else (None, None)
    total = torch.tensor([0.5], dtype=F64)
    weights = torch.linspace(-1.0, 2.0, 6, dtype=F64)
    gradients = []
    for method in ("dense", "iterative"):
        inputs = [t.clone().requires_grad_(True) for t in (positions, chi, hardness, sigma)]
        q = solve_qeq(*inputs, total, cell, pbc, options=TIGHT._replace(method=method)).charges
        loss = (weights * q**2).sum() + (q[:, None] * inputs[0]).sum(0).norm()  # a charge and a dipole loss
        gradients.append(torch.autograd.grad(loss, inputs))
    for dense, iterative in zip(*gradients):
        torch.testing.assert_close(iterative, dense, rtol=1e-6, atol=1e-9)


def test_iterative_forces_match_finite_differences():
    positions, chi, hardness, sigma, cell = triclinic_system(5, seed=12)
    total = torch.tensor([-1.0], dtype=F64)

    def energy(r):
        return solve_qeq(r, chi, hardness, sigma, total, cell, PERIODIC, options=TIGHT._replace(method="iterative")).energy[0]

    r = positions.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(energy(r), r)
    h = 1e-5
    for atom, direction in [(0, 0), (2, 1), (4, 2)]:
        step = torch.zeros_like(positions)
        step[atom, direction] = h
        numeric = (energy(positions + step) - energy(positions - step)) / (2 * h)
        assert float(gradient[atom, direction]) == pytest.approx(float(numeric), rel=1e-6, abs=1e-9)


def test_warm_start_needs_fewer_iterations():
    positions, chi, hardness, sigma, cell = triclinic_system(40, seed=13)
    total = torch.tensor([1.0], dtype=F64)
    cold = solve_qeq(positions, chi, hardness, sigma, total, cell, PERIODIC, options=QEqOptions(method="iterative", tolerance=1e-8))
    moved = positions + 0.01 * torch.randn(positions.shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    again = solve_qeq(moved, chi, hardness, sigma, total, cell, PERIODIC, options=QEqOptions(method="iterative", tolerance=1e-8))
    warm = solve_qeq(moved, chi, hardness, sigma, total, cell, PERIODIC, initial_charges=cold.charges, options=QEqOptions(method="iterative", tolerance=1e-8))
    assert warm.iterations < again.iterations
    torch.testing.assert_close(warm.charges, again.charges, rtol=0, atol=1e-7)


def test_non_convergence_raises_a_clear_error():
    positions, chi, hardness, sigma, cell = triclinic_system(30, seed=14)
    with pytest.raises(ConvergenceError, match=r"did not converge in 2 iterations for structures \[0\]"):
        solve_qeq(positions, chi, hardness, sigma, torch.tensor([0.0], dtype=F64), cell, PERIODIC, options=QEqOptions(method="iterative", max_iterations=2))


def test_second_derivatives_are_refused_on_the_iterative_path():
    positions, chi, hardness, sigma, cell = triclinic_system(5, seed=15)
    chi = chi.clone().requires_grad_(True)
    r = positions.clone().requires_grad_(True)
    q = solve_qeq(r, chi, hardness, sigma, torch.tensor([0.0], dtype=F64), cell, PERIODIC, options=QEqOptions(method="iterative")).charges
    with pytest.raises(RuntimeError, match="second derivatives through the iterative QEq solve"):
        torch.autograd.grad((q**2).sum(), r, create_graph=True)


def test_auto_switches_by_size():
    positions, chi, hardness, sigma, cell = triclinic_system(12, seed=16)
    total = torch.tensor([0.0], dtype=F64)
    assert solve_qeq(positions, chi, hardness, sigma, total, cell, PERIODIC).iterations == 0
    assert solve_qeq(positions, chi, hardness, sigma, total, cell, PERIODIC, options=QEqOptions(dense_limit=10)).iterations > 0
    with pytest.raises(ValueError, match="method must be"):
        solve_qeq(positions, chi, hardness, sigma, total, cell, PERIODIC, options=QEqOptions(method="magic"))


@pytest.mark.parametrize("total", [0.0, -1.0])
def test_particle_mesh_reciprocal_sum_agrees_with_ewald(total):
    """Smooth PME for the k-space sum: energy, forces and virial within its ~1e-5 accuracy."""
    positions, chi, hardness, sigma, _ = triclinic_system(60, seed=17)
    cell = torch.tensor([[11.0, 0.4, 0.0], [0.5, 10.0, 0.3], [0.2, 0.6, 12.0]], dtype=F64)
    positions = positions @ torch.linalg.solve(torch.tensor(
        [[6.0, 0.3, 0.2], [1.1, 5.5, -0.4], [0.7, 0.9, 6.4]], dtype=F64), cell)
    totals = torch.tensor([total], dtype=F64)
    args = (positions, chi, hardness, sigma, totals, cell, PERIODIC)
    dense = energy_forces_stress("dense", *args)
    strain = torch.zeros(1, 3, 3, dtype=F64, requires_grad=True)
    r = positions.clone().requires_grad_(True)
    deformation = torch.eye(3, dtype=F64) + strain[0]
    mesh = solve_qeq(r @ deformation, chi, hardness, sigma, totals, cell @ deformation, PERIODIC, options=QEqOptions(method="iterative", reciprocal="mesh", tolerance=1e-9))
    forces, virial = torch.autograd.grad(-mesh.energy.sum(), [r, strain])
    torch.testing.assert_close(mesh.energy, dense[0].energy, rtol=1e-5, atol=0)
    torch.testing.assert_close(mesh.charges, dense[0].charges, rtol=0, atol=1e-5)
    assert float((forces - dense[1]).abs().max()) < 3e-4 * float(dense[1].abs().max())
    assert float((virial - dense[2]).abs().max()) < 3e-4 * float(dense[2].abs().max())


def rattled_rocksalt(repeats, seed=0):
    """Rattled NaCl (conventional cell × repeats³) with Na/Cl-like χ, J, σ."""
    from .systems import rocksalt_conventional

    positions, charges, cell = rocksalt_conventional()
    shifts = torch.stack(torch.meshgrid(*[torch.arange(repeats, dtype=F64)] * 3, indexing="ij"), -1).reshape(-1, 3)
    positions = (positions[None] + (shifts @ cell)[:, None]).reshape(-1, 3)
    g = torch.Generator().manual_seed(seed)
    positions = positions + 0.1 * torch.randn(positions.shape, generator=g, dtype=F64)
    sodium = charges.repeat(len(shifts)) > 0
    chi = torch.where(sodium, 2.0, -2.0) + 0.3 * torch.randn(len(positions), generator=g, dtype=F64)
    hardness = 5.0 + torch.rand(len(positions), generator=g, dtype=F64)
    sigma = torch.where(sodium, 1.66, 1.02).to(F64)
    return positions, chi, hardness, sigma, cell * repeats


def rocksalt_in_vacuum(repeats, box):
    """The rattled rock-salt block centred in a cubic periodic box of side ``box`` (Å): a cluster in its cell."""
    positions, chi, hardness, sigma, cell = rattled_rocksalt(repeats)
    return positions + 0.5 * (box - cell[0, 0]), chi, hardness, sigma, torch.eye(3, dtype=F64) * box


def test_long_wave_preconditioner_is_symmetric_positive_definite_for_a_bulk_crystal():
    from mace_qeq.electrostatics.preconditioner import apply_preconditioner, long_wave_preconditioner
    from mace_qeq.electrostatics.structures import describe_structures

    positions, _, hardness, _, cell = rattled_rocksalt(3)
    structures = describe_structures(positions, cell, PERIODIC)
    preconditioner = long_wave_preconditioner(hardness + 10.0, positions, structures, smearing=2.35)
    inverse = torch.stack([apply_preconditioner(preconditioner, column)
                           for column in torch.eye(len(positions), dtype=F64)], 1)
    torch.testing.assert_close(inverse, inverse.T, rtol=0, atol=1e-12 * float(inverse.abs().max()))
    eigenvalues = torch.linalg.eigvalsh(inverse)
    assert float(eigenvalues.min()) > 0.0
    # it really acts: the long waves are damped well below Jacobi's 1/d
    assert float(eigenvalues.min()) < 0.5 * float((1.0 / (hardness + 10.0)).min())


def test_iteration_count_hardly_grows_with_the_cell():
    """Jacobi-PCG needs O(N^{1/3}) iterations (long waves, A ∝ L²): 10 → 28 here; the long-wave preconditioner 8 → 13."""
    iterations = []
    for repeats in (2, 6):  # 64 and 1,728 atoms
        positions, chi, hardness, sigma, cell = rattled_rocksalt(repeats)
        solution = solve_qeq(positions, chi, hardness, sigma, torch.tensor([1.0], dtype=F64), cell, PERIODIC, options=QEqOptions(method="iterative", reciprocal="mesh", tolerance=1e-6))
        assert abs(float(solution.charges.sum()) - 1.0) < 1e-10
        iterations.append(solution.iterations)
    assert iterations[1] <= iterations[0] + 5, iterations


@pytest.mark.parametrize("vacuum", ["cluster", "slab"])
def test_vacuum_in_the_cell_costs_no_more_than_jacobi(vacuum):
    """With vacuum the long-wave model is only approximate (for a cluster in a box M⁻¹ can be slightly
    indefinite, and the solve restarts with Jacobi): it must still give the right charges, in hardly more
    iterations than Jacobi needs (measured, cluster of 216 atoms: 15 / 24 / 15 in 25 / 40 / 80 Å boxes,
    Jacobi 22–23)."""
    if vacuum == "cluster":
        positions, chi, hardness, sigma, cell = rocksalt_in_vacuum(3, 40.0)
    else:
        positions, chi, hardness, sigma, cell = rattled_rocksalt(3)
        cell = cell.clone()
        cell[2, 2] += 30.0
    total = torch.tensor([1.0], dtype=F64)
    args = (positions, chi, hardness, sigma, total, cell, PERIODIC)
    long_wave = solve_qeq(*args, options=QEqOptions(method="iterative", reciprocal="mesh", tolerance=1e-8))
    jacobi = solve_qeq(*args, options=QEqOptions(method="iterative", reciprocal="ewald", tolerance=1e-8))
    assert long_wave.iterations <= jacobi.iterations + 3, (long_wave.iterations, jacobi.iterations)
    torch.testing.assert_close(long_wave.charges, jacobi.charges, rtol=0, atol=1e-5)  # PME accuracy


def test_an_indefinite_preconditioner_cannot_spoil_the_solution():
    """rᵀz ≤ 0 switches to Jacobi, and the stopping test does not trust M⁻¹: the charges stay right."""
    from mace_qeq.electrostatics.coulomb import coulomb_operator
    from mace_qeq.electrostatics.ewald_parameters import ewald_parameters
    from mace_qeq.electrostatics.iterative import QEqOperator, projected_conjugate_gradient
    from mace_qeq.electrostatics.mesh import spline_mesh, with_filters
    from mace_qeq.electrostatics.preconditioner import Preconditioner, apply_preconditioner
    from mace_qeq.electrostatics.structures import describe_structures

    positions, chi, hardness, sigma, cell = triclinic_system(20, seed=5)
    total = torch.tensor([1.0], dtype=F64)
    dense = solve_qeq(positions, chi, hardness, sigma, total, cell, PERIODIC, options=QEqOptions(accuracy=1e-12, method="dense"))
    structures = describe_structures(positions, cell, PERIODIC)
    operator = coulomb_operator(positions, sigma, structures, ewald_parameters(structures, sigma, 1e-12, None, None, None))
    # D⁻¹ − D⁻¹ Wᵀ H W D⁻¹ with a filter H far too strong: negative eigenvalues
    coarse = spline_mesh(positions, structures, 2.0, 3)
    shape = coarse.shapes[0]
    strong = torch.full((shape[0], shape[1], shape[2] // 2 + 1), 1e4, dtype=F64)
    indefinite = Preconditioner(1.0 / (hardness + 10.0), with_filters(coarse, [strong]))
    inverse = torch.stack([apply_preconditioner(indefinite, c) for c in torch.eye(20, dtype=F64)], 1)
    assert float(torch.linalg.eigvalsh(0.5 * (inverse + inverse.T)).min()) < 0.0

    matrix = QEqOperator(operator, None, hardness)
    solution = projected_conjugate_gradient(matrix, indefinite, chi, total, tolerance=1e-11)
    torch.testing.assert_close(solution.charges, dense.charges, rtol=0, atol=1e-9)
    torch.testing.assert_close(solution.chemical_potential, dense.chemical_potential, rtol=1e-8, atol=1e-9)
