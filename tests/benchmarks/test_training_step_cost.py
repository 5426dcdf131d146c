"""The lockstep benchmark runs both stock training loops in one process and times what MACEQEq adds."""

import sys
from pathlib import Path

import ase.io
import pytest
import torch

from mace_qeq.modules.models import MACEQEq

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import peer_models as pm  # noqa: E402
from training_step_cost import lockstep, piece_costs, summary, training_setup  # noqa: E402


def test_both_stock_loops_train_in_lockstep_and_every_piece_is_timed(tmp_path):
    clusters = [a for a in ase.io.read(ROOT / "mace_qeq" / "data" / "charged_clusters.xyz", ":") if len(a) > 1]
    ase.io.write(tmp_path / "train.xyz", clusters[:24])
    setups = {name: training_setup(pm.MODELS[name], tmp_path / "train.xyz", tmp_path / name, 2,
                                   ["--batch_size", "8", "--num_channels", "8"])
              for name in ("MACE", "MACEQEq")}
    assert isinstance(setups["MACEQEq"]["model"], MACEQEq) and not isinstance(setups["MACE"]["model"], MACEQEq)
    assert setups["MACEQEq"]["swa"] is not None and setups["MACE"]["swa"] is None  # Stage Two: MACEQEq's default
    before = {name: [p.detach().clone() for p in setup["model"].parameters()] for name, setup in setups.items()}

    times = lockstep(setups, epochs=2)

    for name, setup in setups.items():
        assert all(t > 0 for t in times[name]["steps_s"] + times[name]["validation_s"])
        assert any(not torch.equal(a, b) for a, b in zip(before[name], setup["model"].parameters())), name
    assert times["MACEQEq"]["stage_two_start_s"] > 0 and times["MACE"]["stage_two_start_s"] == 0
    assert times["MACEQEq"]["after_training_s"] > 0 and times["MACE"]["after_training_s"] == 0  # refits after
    result = summary(times, "MACE", "MACEQEq")
    assert 0 < result["ratio"]["min"] <= result["ratio"]["median"] <= result["ratio"]["max"]
    epochs = {name: sum(t["steps_s"]) + sum(t["validation_s"]) for name, t in times.items()}
    refits = times["MACEQEq"]["stage_two_start_s"] + times["MACEQEq"]["after_training_s"]
    assert result["ratio_whole_training"] == pytest.approx(epochs["MACE"] / (epochs["MACEQEq"] + refits))

    batch = next(iter(setups["MACEQEq"]["train_loader"])).to_dict()
    costs = piece_costs(setups["MACEQEq"]["model"], batch, repeats=2)
    assert set(costs) == {"χ/J readout (forward)", "electrostatics (QEq solve, forces, backward)",
                          "charge embedding (forward)", "ZBL (forward)", "contact wall (forward)",
                          "energy floor (forward)"}
    assert all(ms > 0 for ms in costs.values())
