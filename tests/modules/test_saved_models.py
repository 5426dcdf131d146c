"""Models and checkpoints saved by mace-qeq 0.1.0 keep loading, and predict what they did.

``tests/data/maceqeq-0.1.0.model`` is a pickled MACEQEq made by the 0.1.0 code
(unbounded χ, J_min = 0.1, environment hardness); the reference file holds its
energies, forces and charges for a charged cluster and a neutral cell, computed
with 0.1.0's truncated Coulomb constant (14.399645 eV·Å, 3.3e-8 relative below
the exact one): the predictions agree to that, 2e-7 relative.
"""

from pathlib import Path

import pytest
import torch
from e3nn.util import jit

from mace_qeq.modules import MACEQEq

from ..mace_helpers import backbone_config, make_model, nacl_cell, nacl_cluster, to_batch

torch.set_default_dtype(torch.float64)
DATA = Path(__file__).resolve().parents[1] / "data"


def load_old():
    model = torch.load(DATA / "maceqeq-0.1.0.model", weights_only=False)
    reference = torch.load(DATA / "maceqeq-0.1.0-reference.pt")
    return model, reference


def test_old_model_predicts_what_it_did():
    model, reference = load_old()
    assert model.qeq_options()["qeq_charge_range"] == 0.0  # unbounded, as saved
    assert model.qeq_options()["qeq_minimum_hardness"] == 0.1
    assert model.qeq_options()["qeq_contact_wall"] is None and not hasattr(model, "contact_wall")
    out = model(to_batch([nacl_cluster(), nacl_cell()], [1.0, 0.0]), compute_stress=True)
    for key in ("energy", "forces", "charges"):
        torch.testing.assert_close(out[key], reference[key], rtol=2e-7, atol=1e-9)


def test_old_model_compiles_and_matches():
    model, reference = load_old()
    out = jit.compile(model)(to_batch([nacl_cluster(), nacl_cell()], [1.0, 0.0]))
    torch.testing.assert_close(out["energy"], reference["energy"], rtol=2e-7, atol=1e-9)


def test_old_checkpoint_weights_load_into_a_new_model():
    """A 0.1.0 checkpoint (state dict) restarts or fine-tunes a model built by this version: every
    tensor has its place; with the old bounds the predictions are the old ones."""
    model, reference = load_old()
    new = MACEQEq(**backbone_config(), qeq_hardness="environment", qeq_charge_feedback=False)
    new.load_state_dict(model.state_dict(), strict=True)
    bounded = new(to_batch([nacl_cluster(), nacl_cell()], [1.0, 0.0]))
    assert torch.isfinite(bounded["energy"]).all()
    old_bounds = MACEQEq(**backbone_config(), qeq_hardness="environment", qeq_charge_feedback=False,
                         qeq_charge_range=0.0, qeq_minimum_hardness=0.1, qeq_energy_floor=None)
    old_bounds.load_state_dict(model.state_dict(), strict=True)
    out = old_bounds(to_batch([nacl_cluster(), nacl_cell()], [1.0, 0.0]))
    torch.testing.assert_close(out["energy"], reference["energy"], rtol=2e-7, atol=1e-9)


@pytest.mark.parametrize("module, statistic", [("energy_floor", "running_minimum"),
                                               ("contact_wall", "closest_contact")])
def test_checkpoints_from_before_a_training_statistic_load_without_it(module, statistic):
    """A checkpoint saved before the energy floor or the contact wall existed has none of its statistics:
    it loads strictly, and the bound starts unset (inf), i.e. absent until training sets it."""
    model = make_model()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(f"{module}.")}
    model.load_state_dict(state, strict=True)
    assert torch.isinf(getattr(getattr(model, module), statistic)).all()
