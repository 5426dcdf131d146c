"""One call for many structures of different sizes, charges and periodicity."""

import torch

from mace_qeq.electrostatics import coulomb_energy, QEqOptions, solve_qeq

from .systems import TRICLINIC_CELL, cluster, triclinic_system

F64 = torch.float64


def mixed_batch():
    """Four structures: isolated (Q=+1), triclinic periodic (Q=−1), isolated (Q=0), cubic periodic (Q=+2)."""
    parts = [
        (*cluster(3, seed=1), None, 1.0),
        (*triclinic_system(5, seed=2)[:4], TRICLINIC_CELL, -1.0),
        (*cluster(7, seed=3), None, 0.0),
        (*triclinic_system(2, seed=4)[:4], torch.eye(3, dtype=F64) * 4.5, 2.0),
    ]
    cat = lambda k: torch.cat([p[k] for p in parts])  # noqa: E731
    batch = torch.cat([torch.full((len(p[0]),), g) for g, p in enumerate(parts)])
    cells = torch.stack([torch.zeros(3, 3, dtype=F64) if p[4] is None else p[4] for p in parts])
    pbc = torch.tensor([[p[4] is not None] * 3 for p in parts])
    total = torch.tensor([p[5] for p in parts], dtype=F64)
    return parts, (cat(0), cat(1), cat(2), cat(3), total, cells, pbc, batch)


def test_total_charge_is_exact_in_a_mixed_batch():
    _, (positions, chi, hardness, sigma, total, cells, pbc, batch) = mixed_batch()
    solution = solve_qeq(positions, chi, hardness, sigma, total, cells, pbc, batch)
    sums = torch.zeros(4, dtype=F64).index_add(0, batch, solution.charges)
    assert (sums - total).abs().max() < 1e-12


def test_batch_equals_structure_by_structure():
    parts, (positions, chi, hardness, sigma, total, cells, pbc, batch) = mixed_batch()
    together = solve_qeq(positions, chi, hardness, sigma, total, cells, pbc, batch, options=QEqOptions(accuracy=1e-12))
    energies = coulomb_energy(positions, together.charges, sigma, cells, pbc, batch, accuracy=1e-12)
    for g, (r, x, j, s, cell, q_total) in enumerate(parts):
        periodic = None if cell is None else torch.tensor([True] * 3)
        alone = solve_qeq(r, x, j, s, torch.tensor([q_total], dtype=F64), cell, periodic, options=QEqOptions(accuracy=1e-12))
        torch.testing.assert_close(together.charges[batch == g], alone.charges, rtol=0, atol=1e-11)
        torch.testing.assert_close(together.energy[g], alone.energy[0], rtol=1e-11, atol=0)
        torch.testing.assert_close(together.chemical_potential[g], alone.chemical_potential[0], rtol=1e-11, atol=0)
        e_alone = coulomb_energy(r, alone.charges, s, cell, periodic, accuracy=1e-12)
        torch.testing.assert_close(energies[g], e_alone[0], rtol=1e-10, atol=0)
