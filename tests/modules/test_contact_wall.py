"""The wall below the closest approach seen in training: κ (0.85 r₀ − r)³ per pair, zero on the data."""

import ase
import numpy as np
import pytest
import torch
from e3nn.util import jit

from mace_qeq.modules import ClosestContactWall
from mace_qeq.modules.contact_wall import ONSET_FRACTION

from ..mace_helpers import make_model, nacl_cell, nacl_cluster, to_batch

torch.set_default_dtype(torch.float64)

SODIUM, CHLORINE = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])


def pair_energy(wall, attrs, r, training=False):
    """Wall energy of one pair at distance r (both directed edges, as MACE's graph has them) and its derivative
    (outside the wall the energy is a constant zero, with no graph)."""
    lengths = torch.tensor([[r], [r]], requires_grad=True)
    edges = torch.tensor([[0, 1], [1, 0]])
    energy = wall(lengths, attrs, edges, training).sum()
    if not energy.requires_grad:
        return float(energy), 0.0
    (gradient,) = torch.autograd.grad(energy, lengths)
    return float(energy), float(gradient.sum())


def test_cubic_wall_below_the_closest_pair_of_each_element_pair():
    wall = ClosestContactWall(num_elements=2, stiffness=10.0)
    sodium_chloride = torch.cat([SODIUM, CHLORINE])
    two_sodium = torch.cat([SODIUM, SODIUM])
    assert pair_energy(wall, sodium_chloride, 2.5, training=True) == (0.0, 0.0)  # training sets r₀(Na, Cl)
    assert pair_energy(wall, two_sodium, 3.1, training=True) == (0.0, 0.0)  # and r₀(Na, Na)
    assert pair_energy(wall, sodium_chloride, 2.8, training=True) == (0.0, 0.0)  # r₀ keeps the minimum
    torch.testing.assert_close(wall.closest_contact, torch.tensor([[3.1, 2.5], [2.5, float("inf")]]))
    onset = 0.85 * 2.5
    assert ONSET_FRACTION == 0.85
    assert pair_energy(wall, sodium_chloride, onset + 1e-9) == (0.0, 0.0)  # 15 % inside the data: nothing yet
    for r in (2.1, 2.0, 1.0):
        energy, derivative = pair_energy(wall, sodium_chloride, r)
        assert energy == pytest.approx(10.0 * (onset - r) ** 3, rel=1e-12)
        assert derivative == pytest.approx(-30.0 * (onset - r) ** 2, rel=1e-12)
    assert pair_energy(wall, two_sodium, 0.85 * 3.1 - 1.0)[0] == pytest.approx(10.0, rel=1e-12)  # 1 Å inside: κ
    assert pair_energy(wall, torch.cat([CHLORINE, CHLORINE]), 0.5) == (0.0, 0.0)  # never seen: no wall
    assert pair_energy(wall, sodium_chloride, onset - 1e-4)[1] == pytest.approx(0.0, abs=1e-6)  # C¹ (and C²)


def test_training_batches_never_feel_it():
    """Each training batch lowers r₀ to its own closest pairs first: the model trained with the wall gives
    the predictions of the model without it on every training structure, energy, forces and stress."""
    walled = make_model()
    bare = make_model(qeq_contact_wall=None)
    first, second = [nacl_cell()], [nacl_cluster(), nacl_cell(rattle=0.3, seed=5)]
    for batch, charges in ((first, [0.0]), (second, [1.0, 0.0])):
        a = walled(to_batch(batch, charges), training=True, compute_stress=True)
        b = bare(to_batch(batch, charges), training=True, compute_stress=True)
        for key in ("energy", "forces", "stress"):
            torch.testing.assert_close(a[key], b[key], rtol=1e-12, atol=1e-12)
    assert torch.isfinite(walled.contact_wall.closest_contact).all()


def test_md_cannot_pull_a_pair_far_inside_the_data():
    """After training on NaCl at rocksalt distances, pushing two Na ions 1 Å inside the wall's onset (0.85 of
    their closest approach in the data, 4.0 Å) costs κ = 10 eV more than without the wall; the force on them
    is its derivative."""
    data = nacl_cell(rattle=0.0, triclinic=False)
    walled, bare = make_model(), make_model(qeq_contact_wall=None)
    walled(to_batch([data], [0.0]), training=True)
    closest_sodium = float(walled.contact_wall.closest_contact[0, 0])
    assert closest_sodium == pytest.approx(5.64 / 2**0.5, rel=1e-9)
    squeezed = ase.Atoms("Na2", positions=[[0, 0, 0], [0.85 * closest_sodium - 1.0, 0, 0]])
    a = walled(to_batch([squeezed], [2.0]))
    b = bare(to_batch([squeezed], [2.0]))
    assert float(a["energy"] - b["energy"]) == pytest.approx(10.0, rel=1e-9)
    np.testing.assert_allclose((a["forces"] - b["forces"]).detach().numpy()[:, 0], [-30.0, 30.0], rtol=1e-9)


def test_compiled_model_has_the_same_wall():
    model = make_model()
    model(to_batch([nacl_cell(rattle=0.0, triclinic=False)], [0.0]), training=True)
    squeezed = nacl_cell(rattle=0.0, triclinic=False)
    squeezed.positions[1] = squeezed.positions[0] + [1.6, 0.3, 0.0]  # Na-Cl 1.2 Å inside the data
    batch = to_batch([squeezed, nacl_cluster()], [1.0, -1.0])
    eager = model(dict(batch), compute_stress=True)
    compiled = jit.compile(model)(dict(batch), compute_stress=True)
    for key in ("energy", "forces", "stress"):
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-10, atol=1e-10)


def test_stiffness_must_be_positive():
    with pytest.raises(ValueError, match="stiffness"):
        ClosestContactWall(2, stiffness=-1.0)
