"""Periodic Gaussian-charge energies against physics: an independent
reciprocal-space sum, splitting-width independence, supercells, the isolated
limit and invariances."""

import itertools
import math

import pytest
import torch

from mace_qeq.electrostatics import coulomb_energy, QEqOptions, solve_qeq

from .systems import KE, PERIODIC, cluster, random_rotation, triclinic_system

F64 = torch.float64


def charges_for(n, total, seed=5):
    g = torch.Generator().manual_seed(seed)
    q = torch.rand(n, generator=g, dtype=F64) - 0.5
    return q - q.mean() + total / n


def reciprocal_reference(positions, charges, sigma, cell, n_max=14):
    """E = (2π k_e / V) Σ_{k≠0} |Σᵢ qᵢ exp(ik·rᵢ) exp(−σᵢ²k²/2)|² / k².

    The energy of periodic Gaussian charges with a uniform neutralising
    background, summed entirely in reciprocal space: an independent brute-force
    lattice sum (it converges because the Gaussians are wide).
    """
    volume = torch.linalg.det(cell).abs()
    reciprocal = 2 * math.pi * torch.linalg.inv(cell).T
    n = torch.arange(-n_max, n_max + 1, dtype=F64)
    grid = torch.cartesian_prod(n, n, n)
    grid = grid[(grid != 0).any(dim=1)]
    k = grid @ reciprocal
    k2 = (k * k).sum(dim=1)
    phase = positions @ k.T
    form = charges[:, None] * torch.exp(-0.5 * sigma[:, None] ** 2 * k2[None])
    s2 = (form * torch.cos(phase)).sum(0) ** 2 + (form * torch.sin(phase)).sum(0) ** 2
    return float(2 * math.pi * KE / volume * (s2 / k2).sum())


@pytest.mark.parametrize("total", [0.0, 1.3])
def test_matches_brute_force_reciprocal_sum(total):
    positions, _, _, sigma, cell = triclinic_system(5)
    charges = charges_for(5, total)
    energy = float(coulomb_energy(positions, charges, sigma, cell, PERIODIC, accuracy=1e-14)[0])
    assert energy == pytest.approx(reciprocal_reference(positions, charges, sigma, cell), rel=1e-11)


@pytest.mark.parametrize("total", [0.0, -1.0])
def test_splitting_width_independence(total):
    positions, _, _, sigma, cell = triclinic_system(6, seed=2)
    charges = charges_for(6, total)
    energies = [
        float(coulomb_energy(positions, charges, sigma, cell, PERIODIC, accuracy=1e-13, smearing=eta)[0])
        for eta in (0.7, 1.4, 2.8)
    ]
    assert energies[1] == pytest.approx(energies[0], rel=1e-9)
    assert energies[2] == pytest.approx(energies[0], rel=1e-9)


def supercell(positions, cell, reps):
    shifts = torch.tensor(list(itertools.product(*(range(r) for r in reps))), dtype=F64) @ cell
    big = (positions[None] + shifts[:, None]).reshape(-1, 3)
    return big, cell * torch.tensor(reps, dtype=F64)[:, None], len(shifts)


@pytest.mark.parametrize("reps", [(2, 2, 2), (1, 2, 3)])
@pytest.mark.parametrize("total", [0.0, 1.0])
def test_supercell_extensivity(reps, total):
    positions, chi, hardness, sigma, cell = triclinic_system(4, seed=7)
    small = solve_qeq(positions, chi, hardness, sigma, torch.tensor([total], dtype=F64), cell, PERIODIC, options=QEqOptions(accuracy=1e-13))
    big_positions, big_cell, copies = supercell(positions, cell, reps)
    tile = lambda x: x.repeat(copies)  # noqa: E731
    big = solve_qeq(big_positions, tile(chi), tile(hardness), tile(sigma), torch.tensor([total * copies], dtype=F64), big_cell, PERIODIC, options=QEqOptions(accuracy=1e-13))
    assert float(big.energy[0]) == pytest.approx(copies * float(small.energy[0]), rel=1e-9)
    torch.testing.assert_close(big.charges, tile(small.charges), rtol=0, atol=1e-10)
    torch.testing.assert_close(big.chemical_potential, small.chemical_potential, rtol=1e-9, atol=0)

    charges = charges_for(4, total)
    e_small = coulomb_energy(positions, charges, sigma, cell, PERIODIC, accuracy=1e-13)
    e_big = coulomb_energy(big_positions, tile(charges), tile(sigma), big_cell, PERIODIC, accuracy=1e-13)
    assert float(e_big[0]) == pytest.approx(copies * float(e_small[0]), rel=1e-9)


def test_cluster_in_growing_box_tends_to_isolated():
    """A neutral cluster in a cubic box of side L: with tin-foil boundary
    conditions E(L) − E_iso = −2π k_e |D|² / (3 L³) + O(L⁻⁵), D the dipole."""
    positions, _, _, sigma = cluster(6)
    charges = charges_for(6, 0.0)
    isolated = float(coulomb_energy(positions, charges, sigma)[0])
    dipole2 = float(((charges[:, None] * positions).sum(0) ** 2).sum())
    previous = math.inf
    for length in (20.0, 40.0, 80.0):
        cell = torch.eye(3, dtype=F64) * length
        periodic = float(coulomb_energy(positions, charges, sigma, cell, PERIODIC, accuracy=1e-12)[0])
        dipole_term = -2 * math.pi * KE * dipole2 / (3 * length**3)
        assert abs(periodic - isolated) < previous
        previous = abs(periodic - isolated)
        assert periodic - isolated == pytest.approx(dipole_term, rel=0.03)
    assert previous < 1e-3


def energy_and_charges(positions, chi, hardness, sigma, cell, total=0.7):
    pbc = None if cell is None else PERIODIC
    solution = solve_qeq(positions, chi, hardness, sigma, torch.tensor([total], dtype=F64), cell, pbc, options=QEqOptions(accuracy=1e-13))
    return float(solution.energy[0]), solution.charges


@pytest.mark.parametrize("periodic", [False, True])
def test_invariances(periodic):
    positions, chi, hardness, sigma, cell = triclinic_system(6, seed=11)
    cell = cell if periodic else None
    energy, charges = energy_and_charges(positions, chi, hardness, sigma, cell)

    rotation = random_rotation()
    rotated_cell = None if cell is None else cell @ rotation.T
    e, q = energy_and_charges(positions @ rotation.T, chi, hardness, sigma, rotated_cell)
    assert e == pytest.approx(energy, rel=1e-10)
    torch.testing.assert_close(q, charges, rtol=0, atol=1e-10)

    e, q = energy_and_charges(positions + torch.tensor([3.1, -7.2, 0.4], dtype=F64), chi, hardness, sigma, cell)
    assert e == pytest.approx(energy, rel=1e-10)
    torch.testing.assert_close(q, charges, rtol=0, atol=1e-10)

    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    e, q = energy_and_charges(positions[perm], chi[perm], hardness[perm], sigma[perm], cell)
    assert e == pytest.approx(energy, rel=1e-10)
    torch.testing.assert_close(q, charges[perm], rtol=0, atol=1e-10)

    if periodic:
        # An equivalent, strongly skewed choice of lattice vectors, with wrapped-out atoms.
        skew = torch.tensor([[1, 2, 0], [0, 1, 0], [-1, 1, 1]], dtype=F64)
        lattice_shift = torch.tensor([[2, -1, 1]] * 6, dtype=F64) @ cell
        e, q = energy_and_charges(positions + lattice_shift, chi, hardness, sigma, skew @ cell)
        assert e == pytest.approx(energy, rel=1e-10)
        torch.testing.assert_close(q, charges, rtol=0, atol=1e-10)
