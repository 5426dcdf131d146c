"""The lower bound on the learned per-atom energy: exact on the data, a floor far from it."""

import torch

from mace_qeq.modules import PerAtomEnergyFloor

from ..mace_helpers import make_model, nacl_cell, nacl_cluster, to_batch

torch.set_default_dtype(torch.float64)


def test_identity_above_the_floor_and_bounded_below():
    floor = PerAtomEnergyFloor(num_elements=2, num_heads=1, margin=5.0)
    one_hot = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    heads = torch.zeros(3, dtype=torch.long)
    seen = torch.tensor([-1.0, -2.0, 3.0])
    torch.testing.assert_close(floor(seen, one_hot, heads, training=True), seen, rtol=0, atol=1e-14)
    torch.testing.assert_close(floor.running_minimum.flatten(), torch.tensor([-2.0, 3.0]))
    far_below = floor(torch.tensor([-1e6, -2.0, -1e4]), one_hot, heads, training=False)
    torch.testing.assert_close(far_below, torch.tensor([-7.0, -2.0, -2.0]), rtol=0, atol=1e-12)  # minimum − 5 eV
    near = floor(torch.tensor([-6.0]), one_hot[:1], heads[:1], training=False)
    assert -6.0 < float(near) < -5.99  # the smooth bend (width 0.2 eV) lifts it a little


def test_running_minimum_follows_batches_and_unseen_elements_have_no_floor():
    floor = PerAtomEnergyFloor(num_elements=2, num_heads=1, margin=5.0, momentum=0.5)
    sodium = torch.tensor([[1.0, 0.0]])
    head = torch.zeros(1, dtype=torch.long)
    floor(torch.tensor([-4.0]), sodium, head, training=True)
    floor(torch.tensor([-2.0]), sodium, head, training=True)
    assert float(floor.running_minimum[0, 0]) == -3.0  # exponential average of the batch minima
    assert float(floor(torch.tensor([-1e5]), torch.tensor([[0.0, 1.0]]), head, training=False)) == -1e5


def test_model_predictions_on_seen_structures_are_unchanged():
    bounded = make_model()
    unbounded = make_model(qeq_energy_floor=None)
    structures = [nacl_cell(), nacl_cluster()]
    bounded(to_batch(structures, [1.0, 0.0]), training=True)  # one training pass sets the minima
    assert torch.isfinite(bounded.energy_floor.running_minimum).all()
    a = bounded(to_batch(structures, [1.0, 0.0]), compute_stress=True)
    b = unbounded(to_batch(structures, [1.0, 0.0]), compute_stress=True)
    for key in ("energy", "forces", "stress"):
        torch.testing.assert_close(a[key], b[key], rtol=1e-12, atol=1e-12)
