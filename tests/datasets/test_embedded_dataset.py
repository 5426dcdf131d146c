"""The embedded default data: what it holds, and that the generator makes it."""

import ase.io
import numpy as np
import pytest

from mace_qeq.datasets import DEFAULT_DATASET


@pytest.fixture(scope="module")
def structures():
    return ase.io.read(DEFAULT_DATASET, ":")


def test_size_and_content(structures):
    assert DEFAULT_DATASET.stat().st_size < 1_000_000
    assert 200 <= len(structures) <= 1000
    kinds = {a.info["config_type"] for a in structures}
    assert kinds == {"IsolatedAtom", "Ag3+", "Ag3-", "Na4Cl4", "Na4Cl3+", "Na3Cl4-"}
    for atoms in structures:
        assert {"REF_energy", "REF_dipole", "total_charge"} <= set(atoms.info)
        assert {"REF_forces", "REF_charges"} <= set(atoms.arrays)
        assert atoms.arrays["REF_charges"].sum() == pytest.approx(atoms.info["total_charge"], abs=1e-6)


def test_every_structure_is_what_its_config_type_says(structures):
    # composition and total charge of each name (the 0.1.0 file had Na4Cl2⁺, Na4Cl4⁺, … under "Na4Cl3+")
    expected = {"Ag3+": ({"Ag": 3}, 1), "Ag3-": ({"Ag": 3}, -1), "Na4Cl4": ({"Na": 4, "Cl": 4}, 0),
                "Na4Cl3+": ({"Na": 4, "Cl": 3}, 1), "Na3Cl4-": ({"Na": 3, "Cl": 4}, -1)}
    for atoms in structures:
        kind = atoms.info["config_type"]
        symbols = atoms.get_chemical_symbols()
        if kind == "IsolatedAtom":
            assert len(symbols) == 1
            continue
        composition, charge = expected[kind]
        assert {s: symbols.count(s) for s in set(symbols)} == composition, kind
        assert atoms.info["total_charge"] == charge, kind


def test_ag3_pairs_share_geometries_but_not_energies(structures):
    plus = {tuple(np.round(a.positions, 6).ravel()): a for a in structures if a.info["config_type"] == "Ag3+"}
    pairs = [(plus[key], a) for a in structures if a.info["config_type"] == "Ag3-"
             if (key := tuple(np.round(a.positions, 6).ravel())) in plus]
    assert len(pairs) >= 90
    gaps = [m.info["REF_energy"] - p.info["REF_energy"] for p, m in pairs]
    assert min(abs(g) for g in gaps) > 1.0  # eV: the total charge matters


def test_generator_reproduces_the_first_structures(tmp_path):
    from mace_qeq.datasets.xtb_sets import make_dataset

    # every Ag3 geometry (as +1 and −1; GFN2-xTB fails on one Ag3⁻) and the first Na4Cl4 cube (also as
    # Na4Cl3⁺ and Na3Cl4⁻): the generator draws them from one random stream, in this order (~3 s)
    made = make_dataset(tmp_path / "small.xyz", n_ag3=100, n_nacl=1, seed=0)
    assert [a.info["config_type"] for a in made[-3:]] == ["Na4Cl4", "Na4Cl3+", "Na3Cl4-"]
    shipped = ase.io.read(DEFAULT_DATASET, f":{len(made)}")
    assert len(shipped) == len(made)
    for new, old in zip(made, shipped):
        assert new.info["config_type"] == old.info["config_type"]
        np.testing.assert_allclose(new.positions, old.positions, atol=1e-8)
        assert new.info["REF_energy"] == pytest.approx(old.info["REF_energy"], abs=1e-6)
