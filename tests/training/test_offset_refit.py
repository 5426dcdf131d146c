"""The refit of the energy offsets after training: it finds offsets hidden in the reference energies
exactly, and changes no force and no charge."""

import numpy as np
import pytest
import torch
from mace import data as mace_data
from mace.tools import AtomicNumberTable

from mace_qeq.training.offset_refit import refit_energy_offsets

from ..mace_helpers import ELEMENTS, R_MAX, make_model, nacl_cell, nacl_cluster, to_batch

torch.set_default_dtype(torch.float64)
SHIFT_E0 = np.array([0.37, -0.21])  # eV, Na and Cl
SHIFT_CHI = 0.45  # eV/e: E += c·Q


def structures():
    cluster, cell = nacl_cluster(), nacl_cell()
    return [(cluster, 0.0), (cluster[:3], 1.0), (cluster[1:], -1.0), (cell, 0.0), (cell[1:], 1.0),
            (cluster[[0, 1, 3]], 1.0), (cell[:-1], -1.0)]


def dataset_with_offsets(model):
    """AtomicData whose reference energies are the model's plus known offsets."""
    z_table = AtomicNumberTable(ELEMENTS)
    keyspec = mace_data.KeySpecification(info_keys={"energy": "REF_energy", "total_charge": "total_charge"},
                                         arrays_keys={})
    graphs = []
    for atoms, charge in structures():
        energy = float(model(to_batch([atoms], [charge]), compute_force=False)["energy"][0])
        counts = np.array([np.sum(atoms.numbers == z) for z in ELEMENTS])
        atoms = atoms.copy()
        atoms.info.update(REF_energy=energy + counts @ SHIFT_E0 + SHIFT_CHI * charge, total_charge=charge)
        config = mace_data.config_from_atoms(atoms, key_specification=keyspec)
        graphs.append(mace_data.AtomicData.from_config(config, z_table=z_table, cutoff=R_MAX))
    return graphs


@pytest.mark.parametrize("free", [True, False])
def test_offsets_are_found_and_nothing_else_changes(free):
    model = make_model()
    dataset = dataset_with_offsets(model)
    batch = to_batch([a for a, _ in structures()], [q for _, q in structures()])
    before = model(dict(batch))
    refit = refit_energy_offsets(model, dataset, free_heads=[free], batch_size=3)
    after = model(dict(batch))
    if free:
        np.testing.assert_allclose(refit.atomic_energy_shift[0], SHIFT_E0, atol=1e-8)
        np.testing.assert_allclose(refit.electronegativity_shift, [SHIFT_CHI], atol=1e-8)
        assert refit.energy_rmse_before > 10.0 and refit.energy_rmse_after < 1e-6
    else:  # user-given E0s stay; c alone absorbs what it can
        np.testing.assert_allclose(refit.atomic_energy_shift, 0.0)
        assert refit.energy_rmse_after < refit.energy_rmse_before
    torch.testing.assert_close(after["forces"], before["forces"], rtol=0, atol=1e-10)
    torch.testing.assert_close(after["charges"], before["charges"], rtol=0, atol=1e-10)


def test_coulomb_only_energy_shifts_no_electronegativity():
    model = make_model(qeq_energy="coulomb")
    refit = refit_energy_offsets(model, dataset_with_offsets(model), free_heads=[True], batch_size=4)
    np.testing.assert_allclose(refit.electronegativity_shift, 0.0)
    assert refit.energy_rmse_after < refit.energy_rmse_before
