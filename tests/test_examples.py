"""The example that needs no trained model runs."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_rocksalt_qeq_example_runs():
    result = subprocess.run([sys.executable, str(EXAMPLES / "qeq_rocksalt.py")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Q = +1" in result.stdout and "pressure" in result.stdout
