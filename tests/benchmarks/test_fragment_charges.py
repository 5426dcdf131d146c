"""benchmarks/fragment_charges.py: the per-dimer summary is the RMS over that dimer's frames of each split,
and the fragment charges of the farthest frame."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from fragment_charges import markdown  # noqa: E402


def frame(split, distance, force_rmse, charge_a):
    return {"split": split, "dimer": "dimer0_Q+0", "distance": distance, "charge_a": charge_a,
            "charge_b": -charge_a, "reference_a": 1.0, "reference_b": -1.0, "force_rmse": force_rmse,
            "max_abs_charge": abs(charge_a)}


def test_summary_rows():
    rows = [frame("train", 5.0, 30.0, 0.7), frame("train", 8.0, 40.0, 0.6), frame("test", 14.0, 20.0, 0.5)]
    text = markdown(rows, Path("model"), "command", "CPU")
    summary = next(line for line in text.splitlines() if line.startswith("| dimer0_Q+0 | 35.4 |"))
    assert summary == "| dimer0_Q+0 | 35.4 | 20.0 | 14.0 | +0.500 / -0.500 | +1 / -1 |"
