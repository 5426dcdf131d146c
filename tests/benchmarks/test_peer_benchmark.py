"""benchmarks/peers.py on a tiny budget writes every column of its tables, a parity figure and a
learning curve and a seed spread, evaluates every model with the stock calculator, and reuses what it trained."""

import json
import os
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch

from mace_qeq.analysis.evaluate import Predictions
from mace_qeq.datasets import DEFAULT_DATASET
from mace_qeq.electrostatics.units import COULOMB_CONSTANT

from ..mace_helpers import training_args

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import peer_models  # noqa: E402
from peer_models import errors_by_type, group_environments  # noqa: E402


def test_energy_error_splits_into_an_offset_and_a_spread():
    # per-atom errors +50, +100 meV (type a, 2 atoms each) and −100 meV (type b, 3 atoms)
    zeros = [np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((3, 3))]
    predictions = Predictions(config_type=["a", "a", "b"], atoms_per_structure=[2, 2, 3], energy=[1.1, 1.2, 3.0],
                              energy_ref=[1.0, 1.0, 3.3], forces=zeros, forces_ref=zeros,
                              elements=[np.ones(2, int), np.ones(2, int), np.ones(3, int)])
    errors = errors_by_type(predictions)
    assert errors["a"]["energy_offset_mev_per_atom"] == pytest.approx(75.0)
    assert errors["a"]["energy_spread_mev_per_atom"] == pytest.approx(25.0)
    assert errors["b"]["energy_offset_mev_per_atom"] == pytest.approx(-100.0)
    for group in errors.values():  # RMSE² = offset² + spread²
        assert group["energy_mev_per_atom"] ** 2 == pytest.approx(
            group["energy_offset_mev_per_atom"] ** 2 + group["energy_spread_mev_per_atom"] ** 2)


def test_errors_split_by_held_out_trajectory():
    """Each test frame counts under its MD run and config type; a set without trajectories gives no split."""
    from ase import Atoms

    frames = [Atoms("H2", info={"trajectory": t, "config_type": c}) for t, c in [(7, "a"), (7, "b"), (9, "a")]]
    zeros = [np.zeros((2, 3))] * 3
    predictions = Predictions(config_type=["a", "b", "a"], atoms_per_structure=[2, 2, 2], energy=[0.2, 0.0, 0.4],
                              energy_ref=[0.0, 0.0, 0.0], forces=zeros, forces_ref=zeros,
                              elements=[np.ones(2, int)] * 3)
    errors = peer_models.errors_by_trajectory(predictions, frames)
    assert set(errors) == {"trajectory 7 (a)", "trajectory 7 (b)", "trajectory 9 (a)"}
    assert errors["trajectory 9 (a)"]["energy_mev_per_atom"] == pytest.approx(200.0)
    assert errors["trajectory 7 (a)"]["energy_mev_per_atom"] == pytest.approx(100.0)
    for frame in frames:
        del frame.info["trajectory"]
    assert peer_models.errors_by_trajectory(predictions, frames) == {}


def test_ablations_and_variants_are_their_base_model_with_flags_added():
    for base, changes in peer_models.DERIVED.items():
        for name, flags in changes.items():
            model = peer_models.MODELS[name]
            assert model.command == peer_models.MODELS[base].command + flags
            assert model.charge_labels == peer_models.MODELS[base].charge_labels
            assert name not in peer_models.PEERS  # measured on request (--models), never a peer row by default


def test_independent_samples_of_a_generated_set_share_no_md_run():
    """``peers.py --sample K`` checks a claim on a set of the same kind made from other MD runs: no run of
    sample 1 or 2 may start from the seed of a run of another sample; a fixed set has no other sample."""
    from mace_qeq.datasets.xtb_sets import MD_SETS

    for name, trajectories in MD_SETS.items():
        structures = peer_models.SETS[name].structures
        seeds = [{run.seed for run in trajectories(structures, sample * peer_models.SAMPLE_SEED_STRIDE)}
                 for sample in range(3)]
        assert all(len(s) == len(trajectories(structures, 0)) for s in seeds), name  # one seed per run
        assert not (seeds[0] & seeds[1] or seeds[0] & seeds[2] or seeds[1] & seeds[2]), name
    with pytest.raises(SystemExit, match="no other samples"):
        peer_models.load("lode_dimers", sample=1)


def test_models_without_charge_labels_see_none_in_either_stage():
    """The data carry REF_charges and REF_dipole; a model marked without charge labels must weigh them 0 in
    Stage One and Stage Two alike."""
    for model in peer_models.MODELS.values():
        if model.command[0] == "mace_qeq_run_train" and not model.charge_labels:
            args = training_args(*model.command[1:])
            weights = (args.charges_weight, args.dipole_weight, args.swa_charges_weight, args.swa_dipole_weight)
            assert weights == (0, 0, 0, 0), model.name


def test_update_keeps_each_row_s_hardware(tmp_path):
    """A row added with other torch threads says so; the rows it joins keep theirs, also from tables
    written before each row kept its own."""
    import peers

    earlier = {"train_structures": 4, "test_structures": 2, "epochs": 1, "hardware": "CPU (2 threads)",
               "runs": {"MACE": {}, "MACEQEq": {}}, "errors": {}, "commands": {"MACE": "a", "MACEQEq": "a"}}
    (tmp_path / "peers_x.json").write_text(json.dumps(earlier))
    now = dict(earlier, hardware="CPU (1 threads)", runs={"MACEQEq": {}}, commands={"MACEQEq": "b"},
               hardware_by_model={"MACEQEq": "CPU (1 threads)"})
    merged = peers.keep_earlier_rows(now, tmp_path / "peers_x.json")
    assert merged["hardware_by_model"] == {"MACE": "CPU (2 threads)", "MACEQEq": "CPU (1 threads)"}
    assert peers.hardware_line(merged) == "Hardware: MACE: CPU (2 threads); MACEQEq: CPU (1 threads)."
    assert peers.hardware_line(dict(earlier, hardware_by_model={})) == "Hardware: CPU (2 threads)."


def test_update_names_the_figure_of_each_row(tmp_path):
    """Rows of a table written before each row named its figure are in the table's figure; rows an update
    reruns get their own, and the table lists both only where they differ."""
    import peers

    earlier = {"train_structures": 4, "test_structures": 2, "epochs": 1, "hardware": "CPU",
               "runs": {"MACE": {}, "PolarMACE": {}}, "errors": {"MACE": {}}, "commands": {}}
    (tmp_path / "peers_x.json").write_text(json.dumps(earlier))
    merged = peers.keep_earlier_rows(dict(earlier, runs={"MACEQEq": {}}, errors={"MACEQEq": {}}),
                                     tmp_path / "peers_x.json")
    assert merged["parity_figures"] == {"MACE": "peers_x_parity.png"}  # PolarMACE failed: in no figure
    assert peers.parity_line(merged) == ""
    merged["parity_figures"]["MACEQEq"] = "peers_x_parity_MACEQEq.png"
    assert peers.parity_line(merged).startswith(
        " Parity plots: MACE: `peers_x_parity.png`; MACEQEq: `peers_x_parity_MACEQEq.png` (")


def rock_salt_cube(n: int, spacing: float = 2.8, rattle: float = 0.0, seed: int = 0):
    """An n×n×n rock-salt cluster of Na and Cl with charges ±0.8 e, optionally rattled."""
    from ase import Atoms

    grid = np.array([(i, j, k) for i in range(n) for j in range(n) for k in range(n)])
    atoms = Atoms(numbers=np.where(grid.sum(1) % 2 == 0, 11, 17), positions=spacing * grid.astype(float))
    atoms.positions += np.random.default_rng(seed).normal(scale=rattle, size=atoms.positions.shape)
    atoms.arrays["REF_charges"] = np.where(atoms.numbers == 11, 0.8, -0.8)
    atoms.info["config_type"] = f"cube{n}"
    return atoms


def test_group_environments_flag_coordinations_training_never_had():
    # training: rattled 2×2×2 cubes (every ion three-fold coordinated); the 3×3×3 cube's corners (8 of 27)
    # are three-fold too, its other 19 ions four- to six-fold
    pool = [rock_salt_cube(2, rattle=0.05, seed=seed) for seed in range(40)]
    held = group_environments(pool, [rock_salt_cube(2), rock_salt_cube(3)])
    assert held["cube2"]["new_coordination"] == 0.0
    assert held["cube3"]["new_coordination"] == pytest.approx(19 / 27)
    assert held["cube3"]["atoms_per_structure"] == 27
    # point charges ±0.8 e on the 2×2×2 cube (edge a): 12 unlike pairs at a, 12 like at √2 a, 4 unlike at √3 a
    a = 2.8
    coulomb = COULOMB_CONSTANT * 0.64 * (-12 / a + 12 / (np.sqrt(2) * a) - 4 / (np.sqrt(3) * a)) / 8
    assert held["cube2"]["coulomb_ev_per_atom"] == pytest.approx(coulomb, rel=1e-12)


def run_peers(tmp_path, *arguments, env=None):
    command = [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--train", str(tmp_path / "train.xyz"),
               "--test", str(tmp_path / "test.xyz"), "--name", "ag3", "--epochs", "1",
               "--work-dir", str(tmp_path / "work"), "--output", str(tmp_path / "results"), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def test_peer_benchmark_on_user_files(tmp_path):
    structures = ase.io.read(DEFAULT_DATASET, ":")
    ag3 = [a for a in structures if a.info["config_type"] in ("Ag3+", "Ag3-")]
    ase.io.write(tmp_path / "train.xyz", ag3[:40])
    ase.io.write(tmp_path / "test.xyz", ag3[-6:])
    run_peers(tmp_path, "--models", "MACE", "MACE+embedding", "MACEQEq")
    table = (tmp_path / "results" / "peers_ag3.md").read_text()
    for column in ("E RMSE (meV/atom)", "F RMSE (meV/Å)", "Q RMSE (me)", "| MACE+embedding |", "| MACEQEq |",
                   "4G-HDNNP (published", "Hardware:"):
        assert column in table
    data = json.loads((tmp_path / "results" / "peers_ag3.json").read_text())
    assert data["errors"]["MACEQEq"]["all"]["charges_me"] is not None
    assert data["errors"]["MACE"]["all"]["charges_me"] is None  # plain MACE predicts no charges
    assert set(data["errors"]["MACEQEq"]) == {"all", "Ag3+", "Ag3-"}
    assert (tmp_path / "results" / "peers_ag3_parity.png").stat().st_size > 1000

    # A second run reuses what the first trained: the same numbers, no training; --tag writes beside the table.
    rerun = run_peers(tmp_path, "--models", "MACE", "MACEQEq", "--tag", "again")
    again = json.loads((tmp_path / "results" / "peers_ag3_again.json").read_text())
    assert set(again["runs"]) == {"MACE", "MACEQEq"} and (tmp_path / "results" / "peers_ag3_again.md").exists()
    assert again["errors"]["MACEQEq"] == data["errors"]["MACEQEq"]
    assert again["runs"]["MACEQEq"]["wall_s"] == data["runs"]["MACEQEq"]["wall_s"], rerun

    # --update replaces only the rows run now; the others keep their numbers and the command that made them
    run_peers(tmp_path, "--models", "MACEQEq", "--update")
    updated = json.loads((tmp_path / "results" / "peers_ag3.json").read_text())
    assert list(updated["runs"]) == ["MACE", "MACE+embedding", "MACEQEq"]
    assert updated["errors"]["MACE+embedding"] == data["errors"]["MACE+embedding"]
    assert updated["commands"]["MACEQEq"].endswith("--models MACEQEq --update")
    assert "--models MACE MACE+embedding MACEQEq" in updated["commands"]["MACE"]
    assert "Rows from separate runs" in (tmp_path / "results" / "peers_ag3.md").read_text()
    # the table's figure still shows the first run of MACEQEq: the rerun row is drawn apart and the table says where
    assert updated["parity_figures"] == {"MACE": "peers_ag3_parity.png", "MACE+embedding": "peers_ag3_parity.png",
                                         "MACEQEq": "peers_ag3_parity_MACEQEq.png"}
    assert (tmp_path / "results" / "peers_ag3_parity_MACEQEq.png").stat().st_size > 1000
    assert "MACEQEq: `peers_ag3_parity_MACEQEq.png`" in (tmp_path / "results" / "peers_ag3.md").read_text()
    # ... and with --tag into the tagged table, not the main one
    run_peers(tmp_path, "--models", "MACE+embedding", "--tag", "again", "--update")
    again = json.loads((tmp_path / "results" / "peers_ag3_again.json").read_text())
    assert list(again["runs"]) == ["MACE", "MACEQEq", "MACE+embedding"]
    assert list(json.loads((tmp_path / "results" / "peers_ag3.json").read_text())["runs"]) == list(updated["runs"])

    run_peers(tmp_path, "--learning-curve", "20", "30")
    curve = (tmp_path / "results" / "peers_ag3_learning_curve.md").read_text()
    for text in ("| training structures | MACEQEq | MACE+embedding |", "| 20 |", "| 30 |", "Hardware:"):
        assert text in curve
    assert (tmp_path / "results" / "peers_ag3_learning_curve.png").stat().st_size > 1000

    # The seed spread reuses the main run as seed 1 and trains seed 2 with mace's --seed.
    spread_log = run_peers(tmp_path, "--seeds", "2", "--models", "MACEQEq")
    spread = json.loads((tmp_path / "results" / "peers_ag3_seeds.json").read_text())["seeds"]["MACEQEq"]
    assert [row["seed"] for row in spread] == [1, 2]
    assert spread[0]["energy_mev_per_atom"] == data["errors"]["MACEQEq"]["all"]["energy_mev_per_atom"], spread_log
    assert spread[1]["energy_mev_per_atom"] != spread[0]["energy_mev_per_atom"]
    table = (tmp_path / "results" / "peers_ag3_seeds.md").read_text()
    assert "| MACEQEq | " in table and " ± " in table

    # --update with --seeds adds the rows of the models run now to the seed table, keeping the others';
    # --jobs 2 trains MACE's two seeds at a time, each in a process of its own, as one at a time would (with
    # the torch threads of the runs above: a seed table refuses rows made with other threads)
    threads = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    log = run_peers(tmp_path, "--seeds", "2", "--models", "MACE", "--update", "--jobs", "2", env=threads)
    updated = json.loads((tmp_path / "results" / "peers_ag3_seeds.json").read_text())
    assert list(updated["seeds"]) == ["MACEQEq", "MACE"] and updated["seeds"]["MACEQEq"] == spread
    assert updated["commands"]["MACEQEq"].endswith("--seeds 2 --models MACEQEq")
    assert updated["commands"]["MACE"].endswith("--seeds 2 --models MACE --update --jobs 2")
    assert log.count("  MACE (MACE") == 2, log
    mace = updated["seeds"]["MACE"]
    assert mace[0]["forces_mev_per_a"] == data["errors"]["MACE"]["all"]["forces_mev_per_a"]  # seed 1 reused
    assert mace[1]["status"] == "ok" and mace[1]["forces_mev_per_a"] != mace[0]["forces_mev_per_a"]

    # --quick runs and writes apart from the full budget's table, which it leaves as it was, and says how long
    # the run took; with one model it trains one at a time
    main_table = (tmp_path / "results" / "peers_ag3.json").read_text()
    run_peers(tmp_path, "--quick", "--models", "MACE", "--train-size", "20")
    quick = json.loads((tmp_path / "results" / "peers_ag3_quick.json").read_text())
    assert quick["train_structures"] == 20 and list(quick["runs"]) == ["MACE"]
    assert quick["wall_s"]["jobs"] == 1 and quick["wall_s"]["all"] >= quick["runs"]["MACE"]["wall_s"]
    assert "Wall time of this run:" in (tmp_path / "results" / "peers_ag3_quick.md").read_text()
    assert (tmp_path / "results" / "peers_ag3.json").read_text() == main_table
    assert (tmp_path / "work" / "ag3_quick").is_dir()


def test_quick_budget_is_at_most_the_full_one():
    for spec in peer_models.SETS.values():
        train, epochs = spec.quick_budget()
        assert train <= min(spec.train, peer_models.QUICK_TRAIN) and 8 <= epochs <= max(8, spec.epochs)
