"""The upstreamable plugin-registry patch applies to the pinned mace-torch and,
once applied, lets stock ``mace_run_train --model MACEQEq`` train."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mace

PATCH = Path(__file__).resolve().parents[2] / "patches" / "mace-torch-0.3.16-plugin-registry.patch"


def test_patch_applies_and_enables_stock_mace_run_train(tmp_path):
    assert mace.__version__ == "0.3.16"
    installed = Path(mace.__file__).parent
    shutil.copytree(installed, tmp_path / "mace")
    subprocess.run(["patch", "-p1", "--dry-run", "-i", str(PATCH)], cwd=tmp_path, check=True, capture_output=True)
    subprocess.run(["patch", "-p1", "-i", str(PATCH)], cwd=tmp_path, check=True, capture_output=True)

    env = dict(os.environ, PYTHONPATH=str(tmp_path), PYTHONWARNINGS="ignore")
    script = "import sys; from mace.cli.run_train import main; sys.argv = ['mace_run_train', '--help']; main()"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MACEQEq" in result.stdout and "--qeq_charge_feedback" in result.stdout

    import ase.io

    from mace_qeq.datasets import DEFAULT_DATASET

    structures = ase.io.read(DEFAULT_DATASET, ":")
    ase.io.write(tmp_path / "train.xyz", structures[:3] + structures[3::20])
    script = (
        "import sys; from mace.cli.run_train import main; sys.argv = ['mace_run_train'] + sys.argv[1:]; main()"
    )
    flags = ["--name", "stock", "--model", "MACEQEq", "--loss", "qeq", "--error_table", "QEqRMSE",
             "--train_file", "train.xyz", "--max_num_epochs", "1", "--num_channels", "8", "--max_L", "0",
             "--max_ell", "1", "--correlation", "2", "--r_max", "4.0", "--batch_size", "4", "--device", "cpu",
             "--default_dtype", "float64", "--E0s", "isolated", "--dipole_key", "REF_dipole"]
    result = subprocess.run([sys.executable, "-c", script, *flags], env=env, capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WeightedEnergyForcesChargesDipoleLoss" in result.stdout + result.stderr
    assert (tmp_path / "stock_compiled.model").exists()
