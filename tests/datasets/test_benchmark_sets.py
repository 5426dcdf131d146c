"""Starting geometries of the GFN2-xTB benchmark sets: vacancies, compositions, held-out groups."""

from collections import Counter

import numpy as np
import pytest

from mace_qeq.datasets.geometries import ROCKSALT_HALF_LATTICE, remove_atoms, rocksalt_block
from mace_qeq.datasets.xtb_sets import MD_SETS, UNSEEN_IN_TRAINING


def _coordination(atoms, cutoff=1.2 * ROCKSALT_HALF_LATTICE):
    distances = atoms.get_all_distances()
    return (distances < cutoff).sum(axis=1) - 1


def test_vacancies_drawn_apart_leave_no_ion_two_neighbours_short():
    rod, apart = rocksalt_block((2, 2, 4)), 2 * ROCKSALT_HALF_LATTICE
    full = {tuple(np.round(p, 6)): c for p, c in zip(rod.positions, _coordination(rod))}
    for seed in range(20):
        for symbol in ("Na", "Cl"):
            holed = remove_atoms(rod, symbol, 2, np.random.default_rng(seed), apart)
            assert Counter(holed.get_chemical_symbols())[symbol] == 6 and len(holed) == 14
            lost = [full[tuple(np.round(p, 6))] - c for p, c in zip(holed.positions, _coordination(holed))]
            assert max(lost) == 1  # each neighbour of a vacancy lost just that one


def test_vacancies_without_spacing_are_any_two_atoms_of_the_element():
    rod = rocksalt_block((2, 2, 4))
    pairs = set()
    for seed in range(40):
        holed = remove_atoms(rod, "Cl", 2, np.random.default_rng(seed))
        kept = {tuple(np.round(p, 6)) for p in holed.positions}
        pairs.add(frozenset(i for i, p in enumerate(rod.positions) if tuple(np.round(p, 6)) not in kept))
    distances = {round(rod.get_distance(*sorted(pair)), 3) for pair in pairs}
    assert min(distances) < 2 * ROCKSALT_HALF_LATTICE - 1e-3  # close pairs are drawn too


def test_impossible_spacing_is_refused():
    with pytest.raises(ValueError, match="no Cl is left more than"):
        remove_atoms(rocksalt_block((2, 2, 2)), "Cl", 3, np.random.default_rng(0), 2 * ROCKSALT_HALF_LATTICE)


@pytest.mark.parametrize("name", sorted(MD_SETS))
def test_every_run_carries_the_charge_its_composition_and_name_say(name):
    runs = MD_SETS[name](200, 1)
    for run in runs:
        symbols = Counter(run.start.get_chemical_symbols())
        if name in ("nacl_transfer", "nacl_rods"):  # ions of formal charge ±1 (na9cl8's Na8Cl8⁺ is not)
            assert symbols["Na"] - symbols["Cl"] == run.charge, run.config_type
            assert run.config_type.startswith(f"Na{symbols['Na']}Cl{symbols['Cl']}")
        sign = {1: "+", -1: "-", 2: "++", -2: "--"}.get(run.charge, "")
        assert run.config_type.endswith(sign) and not run.config_type.endswith(sign + "+")
    unseen = set(UNSEEN_IN_TRAINING.get(name, ()))
    types = {run.config_type for run in runs}
    assert unseen <= types and types - unseen  # held-out groups exist, and something is left to train on


def test_rods_hold_out_only_what_the_long_range_changes():
    runs = MD_SETS["nacl_rods"](200, 1)
    trained = [run for run in runs if run.config_type not in UNSEEN_IN_TRAINING["nacl_rods"]]
    held_out = [run for run in runs if run.config_type in UNSEEN_IN_TRAINING["nacl_rods"]]
    assert {run.charge for run in trained} == {-1, 0, 1} and {run.charge for run in held_out} == {-2, -1, 0, 1, 2}
    assert max(len(run.start) for run in trained) == 16 and max(len(run.start) for run in held_out) == 48
    trained_coordinations = set()
    for run in trained:
        trained_coordinations |= set(zip(run.start.get_chemical_symbols(), _coordination(run.start)))
    for run in held_out:
        assert set(zip(run.start.get_chemical_symbols(), _coordination(run.start))) <= trained_coordinations
