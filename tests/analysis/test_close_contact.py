"""Close contact on a freshly trained model (plugin defaults, 16x0e, 2 layers, 10 epochs on the
embedded GFN2-xTB Ag3± and Na/Cl clusters): pairs pushed to 0.1 Å and compressed structures keep
every charge within 2.5 e and the energy repulsive; overlapping atoms are refused."""

import subprocess
import sys

import ase.io
import numpy as np
import pytest
from ase import Atoms

from mace_qeq.analysis.close_contact import Scan, compression_scan, pair_scan, random_cluster
from mace_qeq.datasets import DEFAULT_DATASET

MAX_CHARGE = 2.5  # e
MIN_REPULSION = 5.0  # eV above the scan's minimum at ≤ 0.4 Å


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("close_contact")
    command = [sys.executable, "-m", "mace_qeq.cli.run_train", "--name", "fresh", "--work_dir", str(folder),
               "--train_file", str(DEFAULT_DATASET), "--valid_fraction", "0.1", "--E0s", "isolated",
               "--num_channels", "16", "--max_L", "0", "--num_interactions", "2", "--max_num_epochs", "10",
               "--batch_size", "8", "--device", "cpu", "--default_dtype", "float64", "--seed", "1",
               "--energy_key", "REF_energy", "--forces_key", "REF_forces"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def calculator(trained):
    from mace_qeq.calculators import MACEQEqCalculator

    return MACEQEqCalculator(model_paths=str(trained / "fresh.model"), device="cpu", default_dtype="float64")


def test_wall_reads_the_closest_approach_in_the_training_structures(trained, calculator):
    """mace's training loop sets r₀ of the contact wall to the closest approach of each pair of elements
    in the training structures, and validation does not lower it (mace's validation indices count the
    structures without the isolated atoms)."""
    structures = [a for a in ase.io.read(DEFAULT_DATASET, ":") if a.info["config_type"] != "IsolatedAtom"]
    held_out = {int(line) for line in (trained / "fresh_valid_indices_1.txt").read_text().split()}
    model = calculator.models[0]
    elements = [int(z) for z in model.atomic_numbers]
    closest = np.full((len(elements), len(elements)), np.inf)
    for k, atoms in enumerate(structures):
        if k in held_out or len(atoms) < 2:
            continue
        distances = atoms.get_all_distances()
        index = [elements.index(z) for z in atoms.numbers]
        for i, j in zip(*np.triu_indices(len(atoms), 1)):
            closest[index[i], index[j]] = closest[index[j], index[i]] = min(closest[index[i], index[j]],
                                                                            distances[i, j])
    closest[closest > float(model.r_max)] = np.inf  # no edge in the graph: never seen
    np.testing.assert_allclose(model.contact_wall.closest_contact.numpy(), closest, rtol=1e-12)


def first(config_type):
    return next(a for a in ase.io.read(DEFAULT_DATASET, ":") if a.info["config_type"] == config_type)


def check(scan):
    assert max(scan.max_abs_charges) <= MAX_CHARGE, (scan.label, max(scan.max_abs_charges))
    repulsion = scan.energy_above_minimum(0.4)
    if repulsion is not None:  # else every point ≤ 0.4 Å was refused as overlapping
        assert repulsion >= MIN_REPULSION, (scan.label, repulsion, scan.energies)


@pytest.mark.parametrize("charge", [1, -1])
@pytest.mark.parametrize("structure, pair", [("Ag3+", (0, 1)), ("Na4Cl3+", "Na-Cl"), ("Na3Cl4-", "Cl-Cl")])
def test_pair_pushed_to_a_tenth_of_an_angstrom(calculator, structure, pair, charge):
    atoms = first(structure)
    symbols = atoms.get_chemical_symbols()
    if isinstance(pair, str):
        a, b = pair.split("-")
        i = symbols.index(a)
        j = next(k for k in range(len(atoms)) if symbols[k] == b and k != i)
    else:
        i, j = pair
    check(pair_scan(calculator, atoms, i, j, charge, distances=np.geomspace(0.1, 3.0, 12)))


@pytest.mark.parametrize("symbols, charge", [(["Ag"] * 3, 1), (["Na"] * 4 + ["Cl"] * 4, -1), (["Na"] * 5 + ["Cl"] * 3, 1)])
def test_compressed_random_structures(calculator, symbols, charge):
    for seed in range(2):
        scan = compression_scan(calculator, random_cluster(symbols, seed=seed), charge)
        assert max(scan.max_abs_charges) <= MAX_CHARGE, (symbols, seed, scan.max_abs_charges)
        cost = scan.energy_above_uncompressed(0.3)  # compressed to 0.3 or further
        assert cost is not None and cost > 0, (symbols, seed, scan.distances, scan.energies)


def test_tiny_periodic_cell_stays_bounded(calculator):
    """Ag3⁺ in a 3 Å periodic cell, 57 neighbours per atom (−5.7·10⁹ eV with an unbounded χ, −1.8·10⁶ eV
    from the short-range network without the energy floor): no lower than the floor's 5 eV per atom below
    the lowest Ag3⁺ of the data."""
    atoms = Atoms("Ag3", positions=[[0, 0, 0], [1.0, 0, 0], [0.5, 0.9, 0]], cell=np.eye(3) * 3.0, pbc=True)
    atoms.info["charge"] = 1
    atoms.calc = calculator
    lowest = min(a.info["REF_energy"] for a in ase.io.read(DEFAULT_DATASET, ":") if a.info["config_type"] == "Ag3+")
    assert atoms.get_potential_energy() > lowest - 5.0 * len(atoms)
    assert np.abs(atoms.get_charges()).max() <= MAX_CHARGE


def test_overlapping_atoms_are_refused(calculator):
    atoms = first("Na4Cl4")
    scan = pair_scan(calculator, atoms, 0, 1, 0, distances=[0.001, 0.5, 2.8])
    assert len(scan.refused) == 1 and "overlapping atoms" in scan.refused[0]


def test_compression_cost_sees_a_hole_beyond_the_first_squeezed_scale():
    """The lowest energy at any scale ≤ 0.3 counts, not only at 0.3 (a hole at 0.2 was missed that way)."""
    scan = Scan("hole at 0.2", distances=[1.0, 0.6, 0.3, 0.2], energies=[-10.0, -5.0, 40.0, -1.0e6])
    assert scan.energy_above_uncompressed(0.3) == -1.0e6 + 10.0
    assert Scan("no start", distances=[0.3], energies=[1.0]).energy_above_uncompressed(0.3) is None
