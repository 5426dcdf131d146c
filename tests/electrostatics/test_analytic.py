"""Closed-form two-atom cases."""

import math

import pytest
import torch

from mace_qeq.electrostatics import coulomb_energy, solve_qeq

from .systems import KE

F64 = torch.float64


def two_gaussians(r):
    return torch.tensor([[0.0, 0.0, 0.0], [r, 0.0, 0.0]], dtype=F64)


@pytest.mark.parametrize("r", [0.0, 0.3, 1.7, 12.0])
def test_two_gaussian_charges(r):
    q = torch.tensor([0.8, -1.3], dtype=F64)
    s = torch.tensor([0.7, 1.2], dtype=F64)
    gamma = math.sqrt(0.7**2 + 1.2**2)
    self_energy = KE * (0.8**2 / (2 * math.sqrt(math.pi) * 0.7) + 1.3**2 / (2 * math.sqrt(math.pi) * 1.2))
    pair = math.sqrt(2 / math.pi) / gamma if r == 0 else math.erf(r / (math.sqrt(2) * gamma)) / r
    expected = self_energy + KE * 0.8 * -1.3 * pair
    assert float(coulomb_energy(two_gaussians(r), q, s)[0]) == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("total", [0.0, 1.0, -2.0])
def test_two_atom_qeq(total):
    """E(q₁) with q₂ = Q − q₁ is a parabola; its minimum is the QEq charge."""
    r = 2.1
    chi = torch.tensor([1.5, -0.5], dtype=F64)
    hard = torch.tensor([9.0, 6.0], dtype=F64)
    s = torch.tensor([0.8, 1.0], dtype=F64)
    phi11 = KE / (math.sqrt(math.pi) * 0.8)
    phi22 = KE / (math.sqrt(math.pi) * 1.0)
    phi12 = KE * math.erf(r / (math.sqrt(2) * math.sqrt(0.8**2 + 1.0**2))) / r
    a11, a22 = 9.0 + phi11, 6.0 + phi22
    # dE/dq1 = χ1 − χ2 + a11 q1 − a22 (Q − q1) + φ12 (Q − 2 q1) = 0
    q1 = (chi[1] - chi[0] + a22 * total - phi12 * total) / (a11 + a22 - 2 * phi12)
    q2 = total - q1
    energy = chi[0] * q1 + chi[1] * q2 + 0.5 * a11 * q1**2 + 0.5 * a22 * q2**2 + phi12 * q1 * q2
    mu = chi[0] + a11 * q1 + phi12 * q2

    solution = solve_qeq(two_gaussians(r), chi, hard, s, torch.tensor([total], dtype=F64))
    torch.testing.assert_close(solution.charges, torch.stack([q1, q2]), rtol=1e-13, atol=1e-14)
    assert float(solution.energy[0]) == pytest.approx(float(energy), rel=1e-12, abs=1e-13)
    assert float(solution.chemical_potential[0]) == pytest.approx(float(mu), rel=1e-12)
    potential = torch.stack([phi11 * q1 + phi12 * q2, phi12 * q1 + phi22 * q2])  # Φq
    torch.testing.assert_close(solution.potential, potential, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(solution.site_energy.sum(), energy, rtol=1e-12, atol=1e-13)


def test_coincident_atoms_stay_finite():
    positions = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [2.5, 1.0, 1.0]], dtype=F64, requires_grad=True)
    chi = torch.tensor([1.0, -1.0, 0.3], dtype=F64)
    hard = torch.tensor([8.0, 7.0, 9.0], dtype=F64)
    s = torch.tensor([0.9, 1.1, 1.0], dtype=F64)
    for cell, pbc in [(None, None), (torch.eye(3, dtype=F64) * 6, torch.tensor([True] * 3))]:
        solution = solve_qeq(positions, chi, hard, s, torch.tensor([0.0], dtype=F64), cell, pbc)
        (forces,) = torch.autograd.grad(-solution.energy.sum(), positions, create_graph=True)
        assert torch.isfinite(solution.charges).all() and torch.isfinite(forces).all()
        (second,) = torch.autograd.grad((forces**2).sum(), positions)
        assert torch.isfinite(second).all()
        # the two coincident atoms feel equal and opposite forces from the third only
        assert torch.isfinite(solution.energy).all()
