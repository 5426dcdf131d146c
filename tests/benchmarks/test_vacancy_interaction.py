"""benchmarks/vacancy_interaction.py: W cancels every energy additive over single vacancies and keeps
the interaction of two; the pairs are one per separation, like sites only, beyond the spacing."""

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from vacancy_interaction import interaction, like_site_pairs, pair_coulomb  # noqa: E402

from mace_qeq.datasets.geometries import ROCKSALT_HALF_LATTICE, rocksalt_block  # noqa: E402
from mace_qeq.electrostatics.units import COULOMB_CONSTANT  # noqa: E402


def test_pairs_are_like_sites_one_per_separation_beyond_the_spacing():
    rod = rocksalt_block((2, 2, 4))
    spacing = 2 * ROCKSALT_HALF_LATTICE
    for symbol in ("Na", "Cl"):
        pairs = like_site_pairs(rod, symbol, spacing)
        distances = [r for _, _, r in pairs]
        assert distances == sorted(distances) and len(set(np.round(distances, 2))) == len(distances)
        assert min(distances) > spacing
        for a, b, r in pairs:
            assert rod[a].symbol == rod[b].symbol == symbol
            assert rod.get_distance(a, b) == pytest.approx(r)
    assert like_site_pairs(rod, "Cl", 100.0) == []


def test_single_vacancy_energies_cancel_and_the_pair_term_remains():
    """E = E_rod + ε per vacancy (+ a term linear in Q) + k q_A q_B / r for two: W is the last alone."""
    rng = np.random.default_rng(0)
    base, per_vacancy, per_charge, r = rng.normal(size=4) * 10
    pair = COULOMB_CONSTANT / abs(r)
    energies = {"none": base, "A": base + per_vacancy + per_charge, "B": base + per_vacancy + per_charge,
                "AB": base + 2 * per_vacancy + 2 * per_charge + pair}
    assert interaction(energies) == pytest.approx(pair)


def test_pair_coulomb_of_two_point_charges():
    rod = rocksalt_block((2, 2, 2))
    charges = np.zeros(len(rod))
    charges[[0, 7]] = [1.0, -2.0]
    expected = -2.0 * COULOMB_CONSTANT / rod.get_distance(0, 7)
    assert pair_coulomb(rod, charges) == pytest.approx(expected)
