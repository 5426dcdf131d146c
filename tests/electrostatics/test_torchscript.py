"""The public functions compile with TorchScript and give the same numbers."""

import torch

from mace_qeq.electrostatics import coulomb_energy, solve_qeq

from .test_batching import mixed_batch


def test_scripted_functions_match_eager():
    scripted_qeq = torch.jit.script(solve_qeq)
    scripted_energy = torch.jit.script(coulomb_energy)
    _, (positions, chi, hardness, sigma, total, cells, pbc, batch) = mixed_batch()
    eager = solve_qeq(positions, chi, hardness, sigma, total, cells, pbc, batch)
    scripted = scripted_qeq(positions, chi, hardness, sigma, total, cells, pbc, batch)
    for a, b in zip(eager, scripted):
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
