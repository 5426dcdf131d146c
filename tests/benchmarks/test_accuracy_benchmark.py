"""benchmarks/accuracy.py --quick on a tiny subset writes every column of its table."""

import json
import subprocess
import sys
from pathlib import Path

import ase.io

from mace_qeq.datasets import DEFAULT_DATASET

ROOT = Path(__file__).resolve().parents[2]


def test_quick_accuracy_run_writes_the_tables_and_plots(tmp_path):
    structures = ase.io.read(DEFAULT_DATASET, ":")
    ag3 = [a for a in structures if a.info["config_type"] in ("Ag3+", "Ag3-")]
    ase.io.write(tmp_path / "train.xyz", ag3[:24])
    ase.io.write(tmp_path / "test.xyz", ag3[-6:])
    command = [sys.executable, str(ROOT / "benchmarks" / "accuracy.py"), "--set", "ag3", "--quick",
               "--train", str(tmp_path / "train.xyz"), "--test", str(tmp_path / "test.xyz"),
               "--work-dir", str(tmp_path / "work"), "--output", str(tmp_path / "results"),
               "--learning-curve", "12", "--extra", "--max_num_epochs", "1", "--valid_fraction", "0.2"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "results" / "accuracy_ag3.md").read_text()
    for column in ("E RMSE (meV/atom)", "F RMSE (meV/Å)", "Q RMSE (me)", "dipole RMSE (me·Å)",
                   "MACEQEq (this work)", "MACE, same backbone", "4G-HDNNP (published, DFT set)", "Hardware:"):
        assert column in table
    data = json.loads((tmp_path / "results" / "accuracy_ag3.json").read_text())
    assert data["errors"]["maceqeq"]["charges_me"] is not None
    assert data["errors"]["mace"]["charges_me"] is None  # plain MACE predicts no charges
    assert set(data["errors_per_config_type"]["maceqeq"]) == {"Ag3+", "Ag3-"}
    for name in ("accuracy_ag3_parity_MACEQEq.png", "accuracy_ag3_parity_MACE.png",
                 "accuracy_ag3_learning_curve.png"):
        assert (tmp_path / "results" / name).stat().st_size > 1000


def test_missing_published_set_is_named(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "accuracy.py"), "--set", "carbon_chain",
                             "--work-dir", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "the published 'carbon_chain' set is not on this machine" in result.stderr
