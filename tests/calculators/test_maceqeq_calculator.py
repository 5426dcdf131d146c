"""The ASE calculator: total charge from atoms.info, charges and dipole, checks."""

import logging

import numpy as np
import pytest
import torch
from ase.calculators.calculator import BaseCalculator

from mace_qeq.calculators import MACEQEqCalculator

from ..mace_helpers import make_model, nacl_cell, nacl_cluster

torch.set_default_dtype(torch.float64)


@pytest.fixture(scope="module")
def calculator():
    return MACEQEqCalculator(models=[make_model()], device="cpu", default_dtype="float64")


def evaluate(calculator, atoms, **info):
    atoms = atoms.copy()
    atoms.info.update(info)
    atoms.calc = calculator
    return atoms.get_potential_energy(), atoms.get_charges(), atoms.get_dipole_moment()


def test_charge_and_total_charge_keys_agree(calculator):
    e1, q1, d1 = evaluate(calculator, nacl_cluster(), charge=-1)
    e2, q2, d2 = evaluate(calculator, nacl_cluster(), total_charge=-1)
    assert e1 == e2 and np.array_equal(q1, q2)
    assert q1.sum() == pytest.approx(-1.0, abs=1e-12)
    np.testing.assert_allclose(d1, (q1[:, None] * nacl_cluster().positions).sum(0), atol=1e-12)


def test_changing_only_the_total_charge_recomputes(calculator):
    atoms = nacl_cluster()
    atoms.calc = calculator
    atoms.info["charge"] = 1
    plus = atoms.get_potential_energy()
    atoms.info["charge"] = -1
    minus = atoms.get_potential_energy()
    assert plus != minus
    assert atoms.get_charges().sum() == pytest.approx(-1.0, abs=1e-12)


def test_periodic_cell_gives_stress(calculator):
    atoms = nacl_cell()
    atoms.info["charge"] = 1
    atoms.calc = calculator
    assert np.isfinite(atoms.get_stress()).all()
    assert atoms.get_charges().sum() == pytest.approx(1.0, abs=1e-12)


def test_missing_total_charge_means_neutral_with_one_warning(caplog):
    calculator = MACEQEqCalculator(models=[make_model()], device="cpu", default_dtype="float64")
    with caplog.at_level(logging.WARNING):
        _, q, _ = evaluate(calculator, nacl_cluster())
        evaluate(calculator, nacl_cell())
    assert q.sum() == pytest.approx(0.0, abs=1e-12)
    assert sum("no 'charge' or 'total_charge'" in r.message for r in caplog.records) == 1


def test_bad_total_charges_are_refused(calculator):
    with pytest.raises(ValueError, match="not an integer"):
        evaluate(calculator, nacl_cluster(), charge=0.5)
    with pytest.raises(ValueError, match="conflicting total charges"):
        evaluate(calculator, nacl_cluster(), charge=1, total_charge=-1)
    with pytest.raises(ValueError, match="finite"):
        evaluate(calculator, nacl_cluster(), charge=float("nan"))
    fractional = MACEQEqCalculator(models=[make_model()], device="cpu", default_dtype="float64",
                                   allow_fractional_charge=True)
    _, q, _ = evaluate(fractional, nacl_cluster(), charge=0.5)
    assert q.sum() == pytest.approx(0.5, abs=1e-12)


def test_shared_ase_property_list_is_untouched(calculator):
    assert "charges" in calculator.implemented_properties
    assert "charges" not in BaseCalculator.implemented_properties


def test_bad_geometries_are_refused_by_name(calculator):
    overlapping = nacl_cluster()
    overlapping.positions[3] = overlapping.positions[1] + 1e-4
    with pytest.raises(ValueError, match=r"atoms (1 and 3|3 and 1) of structure 0 are .* apart.*overlapping"):
        evaluate(calculator, overlapping, charge=0)
    copper = nacl_cluster()
    copper.numbers[2] = 29
    with pytest.raises(ValueError, match=r"atom 2 is Cu \(Z = 29\).*its elements are Na, Cl"):
        evaluate(calculator, copper, charge=0)
    flat = nacl_cell()
    flat.cell[2] = flat.cell[0] + flat.cell[1]
    with pytest.raises(ValueError, match=r"cell is singular \(volume"):
        evaluate(calculator, flat, charge=0)
    nowhere = nacl_cluster()
    nowhere.positions[0, 1] = np.nan
    with pytest.raises(ValueError, match=r"position of atom 0 is not finite"):
        evaluate(calculator, nowhere, charge=0)
    slab = nacl_cell()
    slab.pbc = [True, True, False]
    with pytest.raises(ValueError, match=r"mixed periodicity"):
        evaluate(calculator, slab, charge=0)
