"""End to end through mace's tools: mace_qeq_run_train, checkpoints, restart,
Stage Two, fine-tuning from a plain MACE model, and the calculators."""

import os
import subprocess
import sys
import textwrap

import ase.build
import ase.io
import numpy as np
import pytest
import torch

from mace_qeq.datasets import DEFAULT_DATASET

from ..mace_helpers import training_args

TINY = ["--num_channels", "8", "--max_L", "0", "--max_ell", "1", "--correlation", "2", "--num_interactions", "2",
        "--r_max", "4.0", "--batch_size", "4", "--valid_batch_size", "8", "--device", "cpu",
        "--default_dtype", "float64", "--seed", "1", "--E0s", "isolated", "--valid_fraction", "0.2"]


def checkpoint_epoch(path):
    """The epoch of tiny_run-1_epoch-<e>.pt (Stage One) or tiny_run-1_epoch-<e>_swa.pt (Stage Two)."""
    return int(path.stem.split("epoch-")[1].split("_")[0])


def run(command, cwd, check=True):
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="2")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def qeq_train(cwd, *extra):
    return run([sys.executable, "-m", "mace_qeq.cli.run_train", *TINY, *extra], cwd)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    structures = ase.io.read(DEFAULT_DATASET, ":")
    isolated = [a for a in structures if a.info["config_type"] == "IsolatedAtom"]
    clusters = [a for a in structures if a.info["config_type"] != "IsolatedAtom"][::12]
    periodic = []
    for k in range(2):  # periodic cells with energies and forces only: no charge or dipole reference
        cell = ase.build.bulk("NaCl", "rocksalt", a=5.64) * (2, 1, 1)
        cell.rattle(0.05, seed=k)
        cell.info.update(REF_energy=-20.0 - 0.1 * k, total_charge=0.0)
        cell.arrays["REF_forces"] = np.zeros((len(cell), 3))
        periodic.append(cell)
    ase.io.write(folder / "train.xyz", isolated + clusters + periodic)
    ase.io.write(folder / "replay.xyz", isolated + clusters[:6])
    return folder


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    log = qeq_train(folder, "--name", "tiny", "--train_file", str(data / "train.xyz"), "--max_num_epochs", "2")
    return folder, log


def test_training_writes_model_compiled_model_and_checkpoints(trained):
    from mace_qeq.training import trained_model_path

    folder, log = trained
    assert (folder / "tiny.model").exists()
    assert (folder / "tiny_compiled.model").exists()
    # Stage Two is on by default for MACEQEq, with the qeq loss; its model is the one to use
    assert "Stage Two loss function: WeightedEnergyForcesChargesDipoleLoss" in log
    assert trained_model_path(folder, "tiny") == folder / "tiny_stagetwo.model"
    assert trained_model_path(folder, "tiny", compiled=True).exists()
    # the refit after training wrote each stage's checkpoint back to its own file (Stage Two from epoch 1)
    for checkpoint in (folder / "checkpoints").glob("tiny_run-1_epoch-*.pt"):
        assert checkpoint.stem.endswith("_swa") == (checkpoint_epoch(checkpoint) >= 1), checkpoint.name
    assert list((folder / "checkpoints").glob("tiny_run-1_epoch-*.pt"))
    assert "WeightedEnergyForcesChargesDipoleLoss" in log
    assert "RMSE_Q=" in log and "RMSE Q / me" in log


def test_energy_offsets_are_refitted_and_given_e0s_kept(trained, data):
    """After training the χ shift (c·Q) is refitted into the checkpoint the model is saved from; the
    isolated-atom E0s the user gave stay."""
    folder, log = trained
    assert "MACEQEq energy offsets refitted" in log
    assert log.index("MACEQEq energy offsets refitted") < log.index("Saving model to")
    # refitted as Stage Two starts (before its first epoch), then in each stage's checkpoint after training
    assert log.count("MACEQEq energy offsets refitted") == 3
    stage_two = log.index("Changing loss based on Stage Two Weights")
    assert stage_two < log.index("MACEQEq energy offsets refitted") < log.index("Epoch 1:")
    model = torch.load(folder / "tiny.model", weights_only=False)
    isolated = {int(a.numbers[0]): a.info["REF_energy"] for a in ase.io.read(data / "train.xyz", ":")
                if a.info.get("config_type") == "IsolatedAtom"}
    expected = [isolated[int(z)] for z in model.atomic_numbers]
    np.testing.assert_allclose(model.atomic_energies_fn.atomic_energies.flatten().tolist(), expected, atol=1e-12)


def test_models_load_in_both_calculators(trained):
    from mace.calculators import MACECalculator

    from mace_qeq.calculators import MACEQEqCalculator

    folder, _ = trained
    atoms = ase.io.read(DEFAULT_DATASET, "3")
    results = []
    for calculator in (
        MACEQEqCalculator(model_paths=str(folder / "tiny.model"), device="cpu", default_dtype="float64"),
        MACECalculator(model_paths=str(folder / "tiny.model"), model_type="MACE", device="cpu",
                       default_dtype="float64"),
        MACECalculator(models=[torch.jit.load(folder / "tiny_compiled.model")], model_type="MACE", device="cpu",
                       default_dtype="float64"),
    ):
        a = atoms.copy()
        a.info = {"charge": 1}
        a.calc = calculator
        results.append((a.get_potential_energy(), a.get_forces()))
    for energy, forces in results[1:]:
        assert energy == pytest.approx(results[0][0], rel=1e-10)
        np.testing.assert_allclose(forces, results[0][1], rtol=0, atol=1e-10)


def test_compiled_model_needs_neither_plugin_nor_extensions(trained):
    folder, _ = trained
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("mace_qeq", "vesin", "vesin_torch"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import ase.build, torch
        from mace.calculators import MACECalculator
        model = torch.jit.load({str(folder / "tiny_compiled.model")!r})
        calc = MACECalculator(models=[model], model_type="MACE", device="cpu", default_dtype="float64")
        atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64)
        atoms.info["charge"] = 1
        atoms.calc = calc
        print("energy", atoms.get_potential_energy(), "stress", atoms.get_stress()[0])
        assert "mace_qeq" not in sys.modules
    """)
    assert "energy" in run([sys.executable, "-c", script], folder)


def test_restart_from_checkpoint_continues(trained, data):
    folder, _ = trained
    # at the same epoch, the Stage Two checkpoint is the one loaded
    saved = sorted((checkpoint_epoch(p), p.name.endswith("_swa.pt"), p.name)
                   for p in (folder / "checkpoints").glob("tiny_run-1_epoch-*.pt"))
    last_epoch, _, last = saved[-1]
    log = qeq_train(folder, "--name", "tiny", "--train_file", str(data / "train.xyz"), "--max_num_epochs", "3",
                    "--restart_latest")
    assert f"Loading checkpoint: ./checkpoints/{last}" in log.split("TRAINING")[0]
    assert "Epoch 2:" in log
    assert all(f"Epoch {e}:" not in log for e in range(last_epoch))


def test_stage_two_is_the_default_for_maceqeq_only():
    def stage_two(*argv):
        return training_args(*argv).swa

    assert stage_two() is True
    assert stage_two("--max_num_epochs", "1") is False  # it could not start: mace would fail
    assert stage_two("--model", "MACE") is False
    assert stage_two("--swa", "False") is False
    assert stage_two("--model", "MACE", "--stage_two") is True


def test_energy_weight_before_stage_two_is_maceqeqs_for_maceqeq_only():
    from mace_qeq import plugin

    def energy_weight(*argv):
        return training_args(*argv).energy_weight

    assert energy_weight() == plugin.MACEQEQ_ENERGY_WEIGHT == 100.0
    assert energy_weight("--model", "MACE") == 1.0  # mace's own default
    assert energy_weight("--energy_weight", "3") == 3.0
    assert energy_weight("--model", "MACE", "--energy_weight", "5") == 5.0


def test_stage_two_can_be_switched_off(data, tmp_path):
    log = qeq_train(tmp_path, "--name", "one", "--train_file", str(data / "train.xyz"), "--max_num_epochs", "2",
                    "--swa", "False")
    assert "Stage Two" not in log
    assert not list(tmp_path.glob("one_stagetwo*"))


def test_stage_two_without_a_validation_in_it_still_gives_a_stage_two_model(data, tmp_path):
    """--eval_interval longer than Stage Two: mace saves no Stage-Two checkpoint and 0.3.16's run_train then
    fails after the whole training; the final weights become that checkpoint instead."""
    log = qeq_train(tmp_path, "--name", "sparse", "--train_file", str(data / "train.xyz"), "--max_num_epochs", "4",
                    "--eval_interval", "4")
    assert "No validation ran in Stage Two" in log
    assert [checkpoint_epoch(p) for p in (tmp_path / "checkpoints").glob("sparse_run-1_epoch-*_swa.pt")] == [3]
    assert (tmp_path / "sparse_stagetwo.model").exists() and (tmp_path / "sparse_stagetwo_compiled.model").exists()


@pytest.fixture(scope="module")
def foundation(data, tmp_path_factory):
    """A plain MACE model trained by stock mace_run_train (the offline stand-in for a foundation model)."""
    folder = tmp_path_factory.mktemp("foundation")
    run([sys.executable, "-c", "from mace.cli.run_train import main; main()", "--name", "plain", *TINY,
         "--model", "MACE", "--train_file", str(data / "train.xyz"), "--max_num_epochs", "1",
         "--energy_key", "REF_energy", "--forces_key", "REF_forces"], folder)
    return folder / "plain.model"


def test_finetuning_loads_the_foundation_backbone(foundation, data, tmp_path):
    # lr = 0 keeps every weight where loading put it
    qeq_train(tmp_path, "--name", "ft", "--train_file", str(data / "train.xyz"), "--max_num_epochs", "1",
              "--foundation_model", str(foundation), "--multiheads_finetuning", "False", "--lr", "0.0")
    import mace_qeq.modules  # noqa: F401

    plain = torch.load(foundation, weights_only=False)
    tuned = torch.load(tmp_path / "ft.model", weights_only=False)
    assert type(tuned).__name__ == "MACEQEq"
    plain_state = plain.state_dict()
    for name, value in tuned.state_dict().items():
        if name.startswith(("interactions.", "products.", "node_embedding.", "readouts.", "radial_embedding.")):
            torch.testing.assert_close(value, plain_state[name], rtol=0, atol=0, msg=name)


def test_multihead_replay_finetuning_offline(foundation, data, tmp_path):
    log = qeq_train(tmp_path, "--name", "mh", "--train_file", str(data / "train.xyz"), "--max_num_epochs", "1",
                    "--foundation_model", str(foundation), "--pt_train_file", str(data / "replay.xyz"),
                    "--multiheads_finetuning", "True", "--force_mh_ft_lr", "True")
    assert "WeightedEnergyForcesChargesDipoleLoss" in log and "UniversalLoss(" not in log
    import mace_qeq.modules  # noqa: F401

    model = torch.load(tmp_path / "mh.model", weights_only=False)
    assert type(model).__name__ == "MACEQEq" and len(model.heads) == 2


def test_plot_command_on_a_trained_model(trained, data, tmp_path, capsys):
    from mace_qeq.cli.plot import main as plot

    folder, _ = trained
    plot(["--model", str(folder / "tiny.model"), "--test", str(data / "replay.xyz"), "--output", str(tmp_path)])
    assert (tmp_path / "parity_tiny.png").stat().st_size > 1000
    assert '"charges_me"' in capsys.readouterr().out
