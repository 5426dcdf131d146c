"""benchmarks/peers.py on a tiny budget writes every column of its tables, a parity figure and a
learning curve, evaluates every model with the stock calculator, and reuses what it trained."""

import json
import subprocess
import sys
from pathlib import Path

import ase.io

from mace_qeq.datasets import DEFAULT_DATASET

ROOT = Path(__file__).resolve().parents[2]


def run_peers(tmp_path, *arguments):
    command = [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--train", str(tmp_path / "train.xyz"),
               "--test", str(tmp_path / "test.xyz"), "--name", "ag3", "--epochs", "1",
               "--work-dir", str(tmp_path / "work"), "--output", str(tmp_path / "results"), *arguments]
    result = subprocess.run(command, capture_output=True, text=True)
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

    # A second run reuses what the first trained: the same numbers, no training.
    rerun = run_peers(tmp_path, "--models", "MACE", "MACEQEq")
    again = json.loads((tmp_path / "results" / "peers_ag3.json").read_text())
    assert again["errors"]["MACEQEq"] == data["errors"]["MACEQEq"]
    assert again["runs"]["MACEQEq"]["wall_s"] == data["runs"]["MACEQEq"]["wall_s"], rerun

    run_peers(tmp_path, "--learning-curve", "20", "30")
    curve = (tmp_path / "results" / "peers_ag3_learning_curve.md").read_text()
    for text in ("| training structures | MACEQEq | MACE+embedding |", "| 20 |", "| 30 |", "Hardware:"):
        assert text in curve
    assert (tmp_path / "results" / "peers_ag3_learning_curve.png").stat().st_size > 1000
