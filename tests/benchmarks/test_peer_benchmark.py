"""benchmarks/peers.py on a tiny budget writes every column of its tables, a parity figure and a
learning curve, and evaluates every model with the stock calculator."""

import json
import subprocess
import sys
from pathlib import Path

import ase.io

from mace_qeq.datasets import DEFAULT_DATASET

ROOT = Path(__file__).resolve().parents[2]


def test_peer_benchmark_on_user_files(tmp_path):
    structures = ase.io.read(DEFAULT_DATASET, ":")
    ag3 = [a for a in structures if a.info["config_type"] in ("Ag3+", "Ag3-")]
    ase.io.write(tmp_path / "train.xyz", ag3[:40])
    ase.io.write(tmp_path / "test.xyz", ag3[-6:])
    command = [sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--train", str(tmp_path / "train.xyz"),
               "--test", str(tmp_path / "test.xyz"), "--name", "ag3", "--models", "MACE", "MACE+embedding",
               "MACEQEq", "--epochs", "1", "--learning-curve", "20", "--work-dir", str(tmp_path / "work"),
               "--output", str(tmp_path / "results")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    table = (tmp_path / "results" / "peers_ag3.md").read_text()
    for column in ("E RMSE (meV/atom)", "F RMSE (meV/Å)", "Q RMSE (me)", "| MACE+embedding |", "| MACEQEq |",
                   "4G-HDNNP (published", "Learning curve", "Hardware:"):
        assert column in table
    data = json.loads((tmp_path / "results" / "peers_ag3.json").read_text())
    assert data["errors"]["MACEQEq"]["all"]["charges_me"] is not None
    assert data["errors"]["MACE"]["all"]["charges_me"] is None  # plain MACE predicts no charges
    assert set(data["errors"]["MACEQEq"]) == {"all", "Ag3+", "Ag3-"}
    for name in ("peers_ag3_parity.png", "peers_ag3_learning_curve.png"):
        assert (tmp_path / "results" / name).stat().st_size > 1000
