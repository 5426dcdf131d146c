"""Forces, stress, chemical potential and second derivatives against finite differences."""

import pytest
import torch

from mace_qeq.electrostatics import coulomb_energy, QEqOptions, solve_qeq

from .systems import PERIODIC, cluster, triclinic_system

F64 = torch.float64


def qeq_energy(positions, cell, chi, hardness, sigma, total, periodic):
    pbc = PERIODIC if periodic else None
    return solve_qeq(positions, chi, hardness, sigma, torch.tensor([total], dtype=F64), cell if periodic else None, pbc, options=QEqOptions(accuracy=1e-14)).energy[0]


def assert_gradient_matches_finite_differences(function, x, h=1e-5, rtol=1e-6):
    x = x.detach().clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(function(x), x)
    numeric = torch.zeros_like(x)
    flat = numeric.view(-1)
    for k in range(x.numel()):
        step = torch.zeros_like(x).view(-1)
        step[k] = h
        step = step.view_as(x)
        with torch.no_grad():
            flat[k] = (function(x + step) - function(x - step)) / (2 * h)
    scale = gradient.abs().max()
    assert torch.allclose(gradient, numeric, rtol=0, atol=rtol * float(scale)), (gradient, numeric)


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize("total", [0.0, 1.0])
def test_forces(periodic, total):
    positions, chi, hardness, sigma, cell = triclinic_system(5, seed=4)
    assert_gradient_matches_finite_differences(
        lambda r: qeq_energy(r, cell, chi, hardness, sigma, total, periodic), positions
    )


@pytest.mark.parametrize("total", [0.0, -1.0])
def test_stress_of_triclinic_cell(total):
    """dE/dε for the homogeneous deformation r → r(1+ε), cell → cell(1+ε) (MACE's strain)."""
    positions, chi, hardness, sigma, cell = triclinic_system(5, seed=6)

    def strained_energy(strain):
        deformation = torch.eye(3, dtype=F64) + strain
        return qeq_energy(positions @ deformation, cell @ deformation, chi, hardness, sigma, total, True)

    assert_gradient_matches_finite_differences(strained_energy, torch.zeros(3, 3, dtype=F64))

    def coulomb_strained(strain):
        deformation = torch.eye(3, dtype=F64) + strain
        q = torch.linspace(-0.6, 0.9, 5, dtype=F64)
        q = q - q.mean() + total / 5
        return coulomb_energy(positions @ deformation, q, sigma, cell @ deformation, PERIODIC, accuracy=1e-14)[0]

    assert_gradient_matches_finite_differences(coulomb_strained, torch.zeros(3, 3, dtype=F64))


@pytest.mark.parametrize("periodic", [False, True])
def test_chemical_potential_is_derivative_in_total_charge(periodic):
    positions, chi, hardness, sigma, cell = triclinic_system(5, seed=8)
    h = 1e-5
    up = qeq_energy(positions, cell, chi, hardness, sigma, 0.3 + h, periodic)
    down = qeq_energy(positions, cell, chi, hardness, sigma, 0.3 - h, periodic)
    pbc = PERIODIC if periodic else None
    mu = solve_qeq(positions, chi, hardness, sigma, torch.tensor([0.3], dtype=F64), cell if periodic else None, pbc, options=QEqOptions(accuracy=1e-14)).chemical_potential[0]
    assert float(mu) == pytest.approx(float((up - down) / (2 * h)), rel=1e-7)


@pytest.mark.parametrize("periodic", [False, True])
def test_second_derivatives(periodic):
    """Force training differentiates forces with respect to χ, J and σ: gradgradcheck."""
    positions, chi, hardness, sigma, cell = triclinic_system(3, seed=9)
    pbc = PERIODIC if periodic else None
    cell = cell if periodic else None

    def energy(r, x, j, s):
        return solve_qeq(r, x, j, s, torch.tensor([0.5], dtype=F64), cell, pbc, options=QEqOptions(accuracy=1e-14)).energy

    inputs = tuple(t.clone().requires_grad_(True) for t in (positions, chi, hardness, sigma))
    assert torch.autograd.gradcheck(energy, inputs)
    assert torch.autograd.gradgradcheck(energy, inputs)


def test_float32_is_usable():
    positions, chi, hardness, sigma, cell = triclinic_system(8, seed=10)
    total = torch.tensor([1.0], dtype=F64)
    reference = solve_qeq(positions, chi, hardness, sigma, total, cell, PERIODIC)
    single = solve_qeq(*(t.float() for t in (positions, chi, hardness, sigma, total, cell)), pbc=PERIODIC, options=QEqOptions(accuracy=1e-6))
    assert single.charges.dtype == torch.float32
    torch.testing.assert_close(single.charges.double(), reference.charges, rtol=0, atol=1e-4)
    assert float(single.energy[0]) == pytest.approx(float(reference.energy[0]), rel=1e-4)
    assert abs(float(single.charges.double().sum()) - 1.0) < 1e-5

    positions, chi, hardness, sigma = cluster(6)
    r32 = positions.float().requires_grad_(True)
    e32 = solve_qeq(r32, chi.float(), hardness.float(), sigma.float(), total.float()).energy.sum()
    (f32,) = torch.autograd.grad(e32, r32)
    r64 = positions.clone().requires_grad_(True)
    (f64,) = torch.autograd.grad(solve_qeq(r64, chi, hardness, sigma, total).energy.sum(), r64)
    torch.testing.assert_close(f32.double(), f64, rtol=0, atol=1e-4)
