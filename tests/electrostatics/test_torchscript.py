"""The public functions compile with TorchScript and give the same numbers."""

import pytest
import torch

from mace_qeq.electrostatics import QEqOptions, coulomb_energy, solve_qeq

from .test_batching import mixed_batch


def test_scripted_functions_match_eager():
    scripted_qeq = torch.jit.script(solve_qeq)
    scripted_energy = torch.jit.script(coulomb_energy)
    _, (positions, chi, hardness, sigma, total, cells, pbc, batch) = mixed_batch()
    eager = solve_qeq(positions, chi, hardness, sigma, total, cells, pbc, batch)
    scripted = scripted_qeq(positions, chi, hardness, sigma, total, cells, pbc, batch)
    for a, b in zip(eager[:5], scripted[:5]):  # charges, μ, energy, potential, site energies
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(
        scripted_energy(positions, eager.charges, sigma, cells, pbc, batch),
        coulomb_energy(positions, eager.charges, sigma, cells, pbc, batch),
        rtol=1e-13, atol=1e-13,
    )


def test_scripted_forces():
    scripted_qeq = torch.jit.script(solve_qeq)
    _, (positions, chi, hardness, sigma, total, cells, pbc, batch) = mixed_batch()
    forces = []
    for fn in (solve_qeq, scripted_qeq):
        r = positions.clone().requires_grad_(True)
        (f,) = torch.autograd.grad(-fn(r, chi, hardness, sigma, total, cells, pbc, batch).energy.sum(), r)
        forces.append(f)
    torch.testing.assert_close(forces[0], forces[1], rtol=1e-12, atol=1e-12)


def _mixed_large_batch():
    """A 512-atom rattled rock-salt cell (+1), a 40-atom cluster (−1) and a neutral small cell."""
    from .systems import cluster
    from .test_iterative import rattled_rocksalt

    big = rattled_rocksalt(4)
    small_cluster = cluster(40, seed=4, extent=8.0)
    small_cell = rattled_rocksalt(1, seed=2)
    positions = torch.cat([big[0], small_cluster[0], small_cell[0]])
    chi = torch.cat([big[1], small_cluster[1], small_cell[1]])
    hardness = torch.cat([big[2], small_cluster[2], small_cell[2]])
    sigma = torch.cat([big[3], small_cluster[3], small_cell[3]])
    cells = torch.stack([big[4], torch.zeros(3, 3, dtype=torch.float64), small_cell[4]])
    pbc = torch.tensor([[True] * 3, [False] * 3, [True] * 3])
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor([512, 40, 8]))
    total = torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64)
    return positions, chi, hardness, sigma, total, cells, pbc, batch


@pytest.mark.parametrize("reciprocal", ["mesh", "ewald"])
def test_scripted_iterative_solve_matches_eager(reciprocal):
    """The iterative path (CG, smooth PME, long-wave preconditioner, cell lists) in compiled code:
    charges, energy and forces the same as eager to 1e-10 in float64."""
    scripted_qeq = torch.jit.script(solve_qeq)
    positions, chi, hardness, sigma, total, cells, pbc, batch = _mixed_large_batch()
    options = QEqOptions(method="iterative", reciprocal=reciprocal, tolerance=1e-9)
    results = []
    for fn in (solve_qeq, scripted_qeq):
        r = positions.clone().requires_grad_(True)
        solution = fn(r, chi, hardness, sigma, total, cells, pbc, batch, options, None, False)
        (forces,) = torch.autograd.grad(-solution.energy.sum(), r)
        results.append((solution, forces))
    (eager, eager_forces), (scripted, scripted_forces) = results
    assert scripted.iterations == eager.iterations > 0
    for a, b in zip(eager[:5], scripted[:5]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(scripted_forces, eager_forces, rtol=1e-10, atol=1e-10)


def test_compiled_forces_survive_profiling_without_gradients():
    """TorchScript's profiling executor specialises on the first calls: had they no gradients, a no-grad
    block in the solver stripped the real-space forces of every later call (zero forces on clusters)."""
    scripted_qeq = torch.jit.script(solve_qeq)
    positions, chi, hardness, sigma, total, cells, pbc, batch = _mixed_large_batch()
    options = QEqOptions(method="iterative", reciprocal="ewald", tolerance=1e-9)
    for _ in range(3):  # profiling runs, no gradients
        scripted_qeq(positions, chi, hardness, sigma, total, cells, pbc, batch, options, None, False)
    forces = []
    for fn in (solve_qeq, scripted_qeq):
        r = positions.clone().requires_grad_(True)
        solution = fn(r, chi, hardness, sigma, total, cells, pbc, batch, options, None, False)
        forces.append(torch.autograd.grad(-solution.energy.sum(), r)[0])
    torch.testing.assert_close(forces[1], forces[0], rtol=1e-10, atol=1e-10)
