"""The step-cost benchmark times every piece MACEQEq adds, on a real batch."""

import sys
from pathlib import Path

from tests.mace_helpers import make_model, nacl_cluster, to_batch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from training_step_cost import piece_costs, training_step  # noqa: E402


def test_every_piece_is_timed_and_a_step_trains():
    model = make_model(seed=3, pair_repulsion=True)
    batch = to_batch([nacl_cluster(seed=s) for s in range(3)], [1.0, -1.0, 0.0])
    costs = piece_costs(model, batch, repeats=2)
    assert set(costs) == {"χ/J readout (forward)", "electrostatics (QEq solve, forces, backward)",
                          "charge embedding (forward)", "ZBL (forward)", "contact wall (forward)",
                          "energy floor (forward)"}
    assert all(ms > 0 for ms in costs.values())
    for charge_loss in (False, True):
        training_step(model, batch, charge_loss)
        assert model.qeq_readout.electronegativity_offset.grad is not None
