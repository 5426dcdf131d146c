"""The charge/dipole loss: absent references contribute nothing, weights scale the terms."""

import pytest
import torch

import mace_qeq.modules  # noqa: F401
from mace_qeq.training import WeightedEnergyForcesChargesDipoleLoss

from ..mace_helpers import make_model, nacl_cluster
from mace.tools import torch_geometric

torch.set_default_dtype(torch.float64)


def batch_with_references(charges_present=(True, True), dipoles_present=(True, True)):
    import mace.data as mace_data
    from mace.tools import AtomicNumberTable

    from ..mace_helpers import ELEMENTS, R_MAX

    graphs = []
    for k in range(2):
        atoms = nacl_cluster(seed=k)
        atoms.info.update(REF_energy=-1.0 - k, total_charge=float(k))
        atoms.arrays["REF_forces"] = torch.randn(4, 3, generator=torch.Generator().manual_seed(k)).numpy()
        if charges_present[k]:
            atoms.arrays["REF_charges"] = [0.5, -0.5, 0.5 + k, -0.5]
        if dipoles_present[k]:
            atoms.info["REF_dipole"] = [0.1, 0.2, -0.3 * k]
        keys = mace_data.KeySpecification(
            info_keys={"energy": "REF_energy", "total_charge": "total_charge", "dipole": "REF_dipole"},
            arrays_keys={"forces": "REF_forces", "charges": "REF_charges"},
        )
        config = mace_data.config_from_atoms(atoms, key_specification=keys)
        graphs.append(mace_data.AtomicData.from_config(config, z_table=AtomicNumberTable(ELEMENTS), cutoff=R_MAX))
    return torch_geometric.batch.Batch.from_data_list(graphs)


def loss_terms(batch, **weights):
    model = make_model()
    pred = model(batch.to_dict())
    return WeightedEnergyForcesChargesDipoleLoss(**weights)(ref=batch, pred=pred)


def only(term, value=1.0):
    weights = dict(energy_weight=0.0, forces_weight=0.0, stress_weight=0.0, charges_weight=0.0, dipole_weight=0.0)
    weights[term] = value
    return weights


@pytest.mark.parametrize("term, absent", [("charges_weight", dict(charges_present=(False, False))),
                                          ("dipole_weight", dict(dipoles_present=(False, False)))])
def test_absent_reference_contributes_nothing(term, absent):
    assert float(loss_terms(batch_with_references(**absent), **only(term))) == 0.0
    assert float(loss_terms(batch_with_references(), **only(term))) > 0.0


def test_weights_scale_each_term():
    batch = batch_with_references()
    for term in ("energy_weight", "forces_weight", "charges_weight", "dipole_weight"):
        one = float(loss_terms(batch, **only(term, 1.0)))
        assert float(loss_terms(batch, **only(term, 3.0))) == pytest.approx(3 * one)


def test_partly_absent_charges_count_only_the_present_ones():
    both = batch_with_references()
    first_only = batch_with_references(charges_present=(True, False))
    model = make_model()
    pred = model(both.to_dict())
    per_atom = (both["charges"] - pred["charges"]) ** 2
    expected = float(per_atom[:4].sum() / 8)  # mean over all atoms, the absent ones weighted 0
    loss = WeightedEnergyForcesChargesDipoleLoss(**only("charges_weight"))(ref=first_only, pred=pred)
    assert float(loss) == pytest.approx(expected)


def test_per_config_weight_is_respected():
    batch = batch_with_references()
    one = float(loss_terms(batch, **only("charges_weight")))
    batch.weight = batch.weight * 2.0
    assert float(loss_terms(batch, **only("charges_weight"))) == pytest.approx(2 * one)


def test_negative_weight_is_refused():
    with pytest.raises(ValueError, match="charges_weight must be"):
        WeightedEnergyForcesChargesDipoleLoss(charges_weight=-1.0)
