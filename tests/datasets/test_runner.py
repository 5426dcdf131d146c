"""The RuNNer/n2p2 converter on real data (../shared/datasets/nacl_water)."""

from pathlib import Path

import numpy as np
import pytest
from ase.units import Bohr, Hartree

from mace_qeq.datasets.runner import main, read_runner

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "nacl_water" / "revPBE0-D3_gen1a.data"


def test_units_and_keys_of_a_small_file(tmp_path):
    path = tmp_path / "input.data"
    path.write_text(
        "begin\ncomment water\nlattice 10 0 0\nlattice 0 10 0\nlattice 0 0 10\n"
        "atom 0 0 0 O -0.8 0 0.1 0 0\natom 1.8 0 0 H 0.4 0 -0.1 0 0\natom 0 1.8 0 H 0.4 0 0 0 0\n"
        "energy -76.4\ncharge 0.0\nend\n"
    )
    (atoms,) = list(read_runner(path))
    assert atoms.get_chemical_symbols() == ["O", "H", "H"]
    np.testing.assert_allclose(atoms.cell.lengths(), [10 * Bohr] * 3)
    np.testing.assert_allclose(atoms.positions[1], [1.8 * Bohr, 0, 0])
    assert atoms.info["REF_energy"] == pytest.approx(-76.4 * Hartree)
    np.testing.assert_allclose(atoms.arrays["REF_forces"][0], [0.1 * Hartree / Bohr, 0, 0])
    np.testing.assert_allclose(atoms.arrays["REF_charges"], [-0.8, 0.4, 0.4])
    assert atoms.info["total_charge"] == 0.0 and atoms.pbc.all()


def test_broken_file_is_refused(tmp_path):
    path = tmp_path / "broken.data"
    path.write_text("begin\natom 0 0 0 O 0 0 0 0 0\nend\n")
    with pytest.raises(ValueError, match="structure without energy"):
        list(read_runner(path))


def test_shared_nacl_water_converts(tmp_path):
    assert SHARED.exists(), f"{SHARED} (the shared data sets) is missing"
    main([str(SHARED), str(tmp_path / "out.xyz")])
    import ase.io

    frames = ase.io.read(tmp_path / "out.xyz", ":")
    assert len(frames) > 100
    first = frames[0]
    assert 128 <= len(first) <= 194 and first.pbc.all()
    assert 12.0 < first.cell.lengths()[0] < 13.0  # 23.47 Bohr = 12.42 Å
    assert np.abs(first.arrays["REF_forces"]).max() < 20.0  # eV/Å
