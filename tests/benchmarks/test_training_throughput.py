"""The throughput benchmark times the whole training loop, not only the epochs that report."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from training_throughput import CASES, epoch_seconds, markdown, median_and_range, merge_rows, refit_seconds  # noqa: E402, E501

LOG = """2026-11-30 08:19:58.347 INFO: Started training, reporting errors on validation set
2026-11-30 08:19:59.052 INFO: Initial: head: Default, loss=81.2, RMSE_E_per_atom=   29.57 meV
2026-11-30 08:21:07.142 INFO: Epoch 0: head: Default, loss=68.3, RMSE_E_per_atom=   32.70 meV
2026-11-30 08:24:20.660 INFO: Training complete
2026-11-30 08:24:20.662 INFO: Loading checkpoint: epoch-0.pt
"""


def test_epochs_without_a_report_are_timed():
    # five epochs, a report after the first only (--eval_interval 5): the time to "Training complete" counts
    assert epoch_seconds(LOG, 5) == pytest.approx((4 * 60 + 22.313) / 5)


def test_an_unfinished_training_is_an_error():
    with pytest.raises(RuntimeError, match="no complete training"):
        epoch_seconds(LOG.replace("Training complete", "Epoch 4"), 5)


def test_the_offset_refit_inside_training_is_timed_from_the_line_before_it():
    log = """2026-12-03 18:24:58.953 INFO: Started training, reporting errors on validation set
2026-12-03 18:25:01.922 INFO: Epoch 0: head: Default, loss=0.37
2026-12-03 18:25:06.255 INFO: Changing loss based on Stage Two Weights
2026-12-03 18:25:06.734 INFO: MACEQEq energy offsets refitted on 244 training structures: ΔE0 [[-0.0245]] eV
2026-12-03 18:25:11.089 INFO: Training complete
2026-12-03 18:25:11.650 INFO: MACEQEq energy offsets refitted on 244 training structures: ΔE0 [[0.0238]] eV
"""
    # the refit after "Training complete" is outside the timed window and not counted
    assert refit_seconds(log) == pytest.approx(0.479)
    assert refit_seconds(LOG) == 0.0


def test_a_case_quotes_the_median_pair_and_the_spread():
    # one slow pair (a noisy neighbour during one training) moves the range, not the figure quoted
    assert median_and_range([0.97, 0.62, 1.01]) == {"median": 0.97, "min": 0.62, "max": 1.01}


def test_an_update_keeps_the_cases_not_rerun_in_table_order():
    kept = [{"case": label, "command": "old"} for label in CASES]
    rerun = [{"case": list(CASES)[0], "command": "new"}]
    rows = merge_rows(kept, rerun)
    assert [row["case"] for row in rows] == list(CASES)
    assert [row["command"] for row in rows] == ["new"] + ["old"] * (len(CASES) - 1)
    # a case the earlier table lacked is added in its place
    assert [row["case"] for row in merge_rows(kept[2:], rerun)] == [list(CASES)[0], *list(CASES)[2:]]


def test_the_table_names_the_command_of_each_row():
    import json

    result = json.loads((Path(__file__).resolve().parents[2] / "benchmarks" / "results"
                         / "training_throughput.json").read_text())
    text = markdown(result)
    assert text.count("\n| ") == 1 + len(result["rows"])  # the header and one row per case
    for row in result["rows"]:
        assert row["case"] in text and f"`{row['command']}`" in text
