"""Each hook into mace's run_train, in process."""

import argparse

import pytest
import torch

import mace.cli.run_train as run_train
import mace.tools.scripts_utils as scripts_utils
from mace_qeq.cli.run_train import build_parser
from mace_qeq.modules import MACEQEq
from mace_qeq.training import WeightedEnergyForcesChargesDipoleLoss
from mace_qeq.training.hooks import register, to_maceqeq

from mace.modules import ScaleShiftMACE

from ..mace_helpers import backbone_config, make_model, nacl_cell, nacl_cluster, to_batch, training_args

torch.set_default_dtype(torch.float64)


@pytest.fixture(scope="module", autouse=True)
def hooks():
    register()
    register()  # idempotent


def test_loss_survives_multihead_finetuning_override():
    args = training_args("--charges_weight", "7")
    args.loss = "universal"  # what run() does for multihead fine-tuning
    loss = run_train.get_loss_fn(args, False, False)
    assert isinstance(loss, WeightedEnergyForcesChargesDipoleLoss)
    assert float(loss.charges_weight) == 7.0


def test_other_losses_are_mace_s():
    args = training_args("--loss", "weighted")
    assert type(run_train.get_loss_fn(args, False, False)).__name__ == "WeightedEnergyForcesLoss"


@pytest.mark.parametrize("argv, charges, dipole", [
    ((), 10.0, 1.0),  # the defaults
    (("--charges_weight", "0", "--dipole_weight", "0"), 0.0, 0.0),  # energies and forces only, in both stages
    (("--charges_weight", "100", "--dipole_weight", "3"), 100.0, 3.0),  # Stage One's weights carry over
    (("--charges_weight", "0", "--swa_charges_weight", "5", "--swa_dipole_weight", "2"), 5.0, 2.0),  # given
])
def test_stage_two_keeps_the_charge_terms_with_stage_one_s_weights_unless_given(argv, charges, dipole):
    args = training_args("--swa", "--start_swa", "1", "--max_num_epochs", "3", *argv)
    model = make_model()
    swa, _ = run_train.get_swa(args, model, torch.optim.Adam(model.parameters()), [False])
    assert isinstance(swa.loss_fn, WeightedEnergyForcesChargesDipoleLoss)
    assert (float(swa.loss_fn.charges_weight), float(swa.loss_fn.dipole_weight)) == (charges, dipole)


def test_other_losses_keep_mace_s_stage_two_dipole_weight():
    assert training_args("--loss", "weighted", "--dipole_weight", "0").swa_dipole_weight == 1.0


def test_every_parameter_is_in_an_optimizer_group():
    args = training_args("--qeq_hardness", "environment", "--qeq_learnable_sigma", "--qeq_charge_feedback")
    model = make_model(qeq_hardness="environment", qeq_learnable_sigma=True, qeq_charge_feedback=True)
    options = run_train.get_params_options(args, model)
    grouped = {id(p) for group in options["params"] for p in group["params"]}
    assert all(id(p) in grouped for p in model.parameters())
    assert sum(len(g["params"]) for g in options["params"]) == len(list(model.parameters()))
    torch.optim.Adam(**options)  # a valid optimizer definition


def test_config_round_trip():
    model = make_model(qeq_hardness="environment", qeq_charge_feedback=True, qeq_sigma=[1.1, 1.3])
    config = scripts_utils.extract_config_mace_model(model)
    assert config["qeq_sigma"] == [1.1, 1.3] and config["qeq_charge_feedback"] is True
    rebuilt = MACEQEq(**config)
    rebuilt.load_state_dict(model.state_dict())
    batch = to_batch([nacl_cell(), nacl_cluster()], [1.0, 0.0])
    torch.testing.assert_close(rebuilt(dict(batch))["energy"], model(dict(batch))["energy"])
    # the calculator's compile path rebuilds the model the same way
    copy = scripts_utils.extract_model(model)
    torch.testing.assert_close(copy(dict(batch))["energy"], model(dict(batch))["energy"])


def test_backbone_weights_carry_over():
    """Every weight of the backbone is kept; its ZBL (mace's screening) gets the universal screening length."""
    plain = ScaleShiftMACE(**backbone_config(), pair_repulsion=True)
    model = to_maceqeq(plain, {"qeq_sigma": {11: 0.9}, "qeq_learnable_sigma": False, "qeq_hardness": "element",
                               "qeq_energy": "qeq", "qeq_charge_feedback": False, "qeq_accuracy": 1e-8})
    for name, value in plain.state_dict().items():
        if not name.startswith("pair_repulsion_fn.a_"):
            torch.testing.assert_close(model.state_dict()[name], value)
    assert (float(model.pair_repulsion_fn.a_prefactor), float(model.pair_repulsion_fn.a_exp)) == (0.8854, 0.23)
    assert model.qeq_sigma[0] == 0.9  # Na as given, Cl its covalent radius
    assert model.qeq_sigma[1] == pytest.approx(1.02)


def test_plugin_arguments_are_documented():
    text = build_parser().format_help()
    for option in ("--qeq_sigma", "--qeq_hardness", "--qeq_energy", "--qeq_charge_feedback", "--charges_weight"):
        assert option in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--qeq_sigma", "[1, 2]"])


def test_parser_keeps_every_mace_flag():
    from mace.tools import build_default_arg_parser

    ours = {s for a in build_parser()._actions for s in a.option_strings}
    theirs = {s for a in build_default_arg_parser()._actions for s in a.option_strings}
    assert theirs <= ours
    assert isinstance(build_parser(), argparse.ArgumentParser)


def test_head_removal_keeps_the_head_s_predictions():
    model = make_model(heads=["dft", "pt_head"], qeq_hardness="environment")
    with torch.no_grad():
        for p in model.qeq_readout.parameters():
            p.add_(0.1 * torch.randn_like(p))
    single = scripts_utils.remove_pt_head(model, "dft")
    assert isinstance(single, MACEQEq) and single.heads == ["dft"]
    batch = to_batch([nacl_cell(), nacl_cluster()], [1.0, -1.0], heads=["dft", "pt_head"])
    batch["head"] = torch.tensor([0, 0])
    single_batch = to_batch([nacl_cell(), nacl_cluster()], [1.0, -1.0], heads=["dft"])
    for key in ("energy", "charges", "forces"):
        torch.testing.assert_close(single(dict(single_batch))[key], model(dict(batch))[key], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("energy_weight", ["1", "100"])
def test_element_fit_weighs_the_charges_whatever_the_energy_weight(monkeypatch, energy_weight):
    """The fit's w_q is ``--charges_weight`` against the energy per atom, not ``--charges_weight /
    --energy_weight`` (which MACEQEq's energy weight of 100 would take from 10 to 0.1)."""
    from types import SimpleNamespace

    from mace_qeq.training import hooks as hook_module

    seen = {}
    monkeypatch.setattr(hook_module, "sample_training_set", lambda *a, **k: None)
    monkeypatch.setattr(hook_module, "log_baseline", lambda *a, **k: None)
    monkeypatch.setattr(hook_module, "fit_element_baseline", lambda sample, sigma, energies, free, minimum,
                        charges_weight, **k: seen.setdefault("w", charges_weight))
    args = training_args("--energy_weight", energy_weight, "--charges_weight", "10")
    hook_module.fit_elements(args, SimpleNamespace(dataset=[]), [0.0, 0.0], ["Default"],
                             SimpleNamespace(zs=[11, 17]), None, {"qeq_sigma": None, "qeq_minimum_hardness": 1.0})
    assert seen["w"] == 10.0
