"""Bad input raises a ValueError that names the structure and the problem."""

import math

import pytest
import torch

from mace_qeq.electrostatics import coulomb_energy, QEqOptions, solve_qeq

from .test_batching import mixed_batch

F64 = torch.float64


def call(**change):
    _, (positions, chi, hardness, sigma, total, cells, pbc, batch) = mixed_batch()
    args = dict(positions=positions, electronegativity=chi, hardness=hardness, sigma=sigma,
                total_charge=total, cell=cells, pbc=pbc, batch=batch)
    for key, edit in change.items():
        args[key] = edit(args[key].clone())
    return solve_qeq(**args)


def set_item(index, value):
    def edit(t):
        t[index] = value
        return t
    return edit


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(hardness=set_item(4, 0.0)), "hardness must be finite and > 0: structure 1, atom 1"),
        (dict(hardness=set_item(0, -2.0)), "hardness must be finite and > 0: structure 0, atom 0"),
        (dict(sigma=set_item(12, -0.1)), "sigma must be finite and > 0: structure 2, atom 4"),
        (dict(sigma=set_item(16, 0.0)), "sigma must be finite and > 0: structure 3, atom 1"),
        (dict(positions=set_item((9, 1), math.nan)), "positions of structure 2 contain NaN or inf (atom 1"),
        (dict(positions=set_item((3, 0), math.inf)), "positions of structure 1 contain NaN or inf (atom 0"),
        (dict(electronegativity=set_item(2, math.nan)), "electronegativity must be finite: structure 0, atom 2"),
        (dict(cell=set_item(1, torch.zeros(3, 3, dtype=F64))), "structure 1 is periodic but its cell is singular"),
        (dict(cell=set_item((3, 2), torch.tensor([4.5, 4.5, 0.0], dtype=F64))),
         "structure 3 is periodic but its cell is singular"),
        (dict(total_charge=lambda t: t[:3]), "total_charge must have one value per structure, shape [G] = [4]"),
        (dict(pbc=set_item((3, 2), False)), "structure 3 has pbc = [True, True, False]: mixed periodicity"),
        (dict(batch=lambda b: b.flip(0)), "batch must be non-decreasing"),
    ],
)
def test_bad_input_raises_clear_error(change, message):
    with pytest.raises(ValueError) as error:
        call(**change)
    assert message in str(error.value)


def test_singular_cell_in_a_degenerate_plane():
    cell = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [3.0, 3.0, 0.0]], dtype=F64)
    with pytest.raises(ValueError, match="structure 0 is periodic but its cell is singular"):
        coulomb_energy(torch.zeros(1, 3, dtype=F64), torch.ones(1, dtype=F64), torch.ones(1, dtype=F64),
                       cell, torch.tensor([True] * 3))


def test_scripted_function_raises_the_same_errors():
    scripted = torch.jit.script(solve_qeq)
    _, (positions, chi, hardness, sigma, total, cells, pbc, batch) = mixed_batch()
    hardness[4] = 0.0
    with pytest.raises(Exception, match="hardness must be finite and > 0: structure 1, atom 1"):
        scripted(positions, chi, hardness, sigma, total, cells, pbc, batch)


def test_bad_ewald_settings():
    _, (positions, chi, hardness, sigma, total, cells, pbc, batch) = mixed_batch()
    with pytest.raises(ValueError, match="accuracy must lie in"):
        solve_qeq(positions, chi, hardness, sigma, total, cells, pbc, batch, options=QEqOptions(accuracy=2.0))
    with pytest.raises(ValueError, match="smearing"):
        solve_qeq(positions, chi, hardness, sigma, total, cells, pbc, batch, options=QEqOptions(smearing=-1.0))
