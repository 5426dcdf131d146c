"""MACEQEq against physics: finite differences, total charge, TorchScript, gradients."""

import numpy as np
import pytest
import torch
from e3nn.util import jit

from mace.modules import ScaleShiftMACE

from ..mace_helpers import backbone_config, make_model, nacl_cell, nacl_cluster, to_batch

torch.set_default_dtype(torch.float64)


def energy_of(model, atoms, charge, **kwargs):
    out = model(to_batch([atoms], [charge]), compute_force=False, **kwargs)
    return float(out["energy"][0])


def assert_forces_and_stress_match_finite_differences(model, atoms, charge):
    """The model's forces and stress against central differences of its energy (h = 1e-5 Å and strain)."""
    out = model(to_batch([atoms], [charge]), compute_stress=True)
    forces, stress = out["forces"].detach().numpy(), out["stress"][0].detach().numpy()
    h = 1e-5
    for atom, direction in [(0, 0), (1, 1), (3, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[atom, direction] += h
        minus.positions[atom, direction] -= h
        numeric = -(energy_of(model, plus, charge) - energy_of(model, minus, charge)) / (2 * h)
        assert forces[atom, direction] == pytest.approx(numeric, rel=1e-6, abs=1e-8)
    volume = atoms.get_volume()
    for a, b in [(0, 0), (1, 2), (2, 1), (2, 2)]:
        strains = []
        for sign in (1, -1):
            strained = atoms.copy()
            deformation = np.eye(3)
            deformation[a, b] += sign * h
            strained.set_cell(atoms.cell.array @ deformation, scale_atoms=True)
            strains.append(energy_of(model, strained, charge))
        numeric = (strains[0] - strains[1]) / (2 * h) / volume
        symmetric = 0.5 * (stress[a, b] + stress[b, a])
        assert symmetric == pytest.approx(numeric, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("charge", [0.0, 1.0])
def test_forces_and_stress_match_finite_differences(charge):
    assert_forces_and_stress_match_finite_differences(make_model(qeq_charge_feedback=True), nacl_cell(), charge)


def test_electrostatics_see_the_strained_cell():
    """Stress of the electrostatic part alone: a model whose short-range part is
    switched off still has the right stress (the known MACELES bug class)."""
    model = make_model()
    with torch.no_grad():
        model.scale_shift.scale.zero_()
    atoms = nacl_cell(rattle=0.05)
    out = model(to_batch([atoms], [1.0]), compute_stress=True)
    h = 1e-5
    energies = []
    for sign in (1, -1):
        strained = atoms.copy()
        strained.set_cell(atoms.cell.array * (1 + sign * h), scale_atoms=True)
        energies.append(energy_of(model, strained, 1.0))
    pressure = (energies[0] - energies[1]) / (2 * h) / atoms.get_volume() / 3
    assert float(torch.trace(out["stress"][0])) / 3 == pytest.approx(pressure, rel=1e-6)


def test_total_charge_is_exact_and_changes_the_energy():
    model = make_model()
    cluster, cell = nacl_cluster(), nacl_cell()
    out = model(to_batch([cluster, cluster, cell, cell], [1.0, -1.0, 0.0, 2.0]))
    sums = torch.zeros(4).index_add(0, torch.repeat_interleave(torch.arange(4), torch.tensor([4, 4, 4, 4])),
                                    out["charges"])
    torch.testing.assert_close(sums, torch.tensor([1.0, -1.0, 0.0, 2.0]), rtol=0, atol=1e-12)
    assert abs(float(out["energy"][0] - out["energy"][1])) > 0.1
    assert not torch.allclose(out["charges"][:4], out["charges"][4:8])
    torch.testing.assert_close(out["dipole"][0], (out["charges"][:4, None] * torch.tensor(cluster.positions)).sum(0))

    # A plain MACE with the same backbone weights cannot tell the two apart.
    plain = ScaleShiftMACE(**backbone_config())
    plain.load_state_dict(model.state_dict(), strict=False)
    plain_out = plain(to_batch([cluster, cluster], [1.0, -1.0]))
    assert float(plain_out["energy"][0]) == float(plain_out["energy"][1])


def test_input_without_total_charge_or_pbc_is_refused():
    """What stock pair_style mace passes (neither key): no silent guess of a neutral periodic system."""
    model = make_model()
    batch = to_batch([nacl_cell(), nacl_cluster()], [0.0, 0.0])
    for missing in ("total_charge", "pbc"):
        bare = {k: v for k, v in batch.items() if k != missing}
        with pytest.raises(ValueError, match="mace_qeq_create_lammps_model"):
            model(bare)


@pytest.mark.parametrize("options", [{}, {"qeq_charge_feedback": True, "qeq_hardness": "environment",
                                          "qeq_learnable_sigma": True, "qeq_energy": "coulomb"}])
def test_torchscript_matches_eager(options):
    model = make_model(**options)
    scripted = jit.compile(model)
    batch = to_batch([nacl_cell(), nacl_cluster()], [1.0, -1.0])
    eager = model(dict(batch), compute_stress=True)
    compiled = scripted(dict(batch), compute_stress=True)
    for key in ("energy", "forces", "stress", "charges", "dipole", "chemical_potential"):
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-10, atol=1e-10)


def test_torchscript_matches_eager_on_the_iterative_path():
    """Above dense_limit the compiled model solves iteratively with smooth PME, as the eager one does:
    energy, forces, stress and charges agree to 1e-8 (float64); the warm start kept in the block
    between calls (MD) changes nothing beyond the solver tolerance."""
    model = make_model()
    model.charge_equilibration.dense_limit = 4  # force the iterative solve ...
    model.charge_equilibration.mesh_limit = 4  # ... with the mesh
    model.charge_equilibration.tolerance = 1e-10
    scripted = jit.compile(make_model())
    scripted.charge_equilibration.dense_limit = 4
    scripted.charge_equilibration.mesh_limit = 4
    scripted.charge_equilibration.tolerance = 1e-10
    atoms = nacl_cell(repeat=(2, 2, 1))
    for step in range(2):  # the second call starts from the first one's charges
        batch = to_batch([atoms], [1.0])
        eager = model(dict(batch), compute_stress=True)
        compiled = scripted(dict(batch), compute_stress=True)
        for key in ("energy", "forces", "stress", "charges"):
            torch.testing.assert_close(compiled[key], eager[key], rtol=1e-8, atol=1e-8)
        dense = make_model()(dict(batch), compute_stress=True)  # PME accuracy away from dense Ewald
        torch.testing.assert_close(eager["energy"], dense["energy"], rtol=1e-5, atol=0)
        atoms.positions += 0.01


@pytest.mark.parametrize("options", [
    {"qeq_charge_feedback": True},
    {"qeq_energy": "coulomb"},
    {"qeq_charge_feedback": True, "qeq_energy": "coulomb", "qeq_hardness": "environment", "num_interactions": 3},
])
def test_iterative_charges_respond_like_the_dense_ones(options):
    """With charge feedback or the Coulomb-only energy, E is not stationary in q: the iterative path adds the
    charges' response (one adjoint solve, no custom autograd), so eager and compiled forces and stress equal
    those of the dense path, which differentiates through the Cholesky factorisation. With feedback the
    backward is split at the χ/J layer (environment-dependent J and readouts below that layer included)."""
    dense = make_model(**options)
    iterative = make_model(**options)
    iterative.charge_equilibration.dense_limit = 1
    iterative.charge_equilibration.mesh_limit = 10**6  # Ewald: the same Φ as the dense path
    iterative.charge_equilibration.tolerance = 1e-11
    scripted = jit.compile(make_model(**options))
    for attribute in ("dense_limit", "mesh_limit", "tolerance"):
        setattr(scripted.charge_equilibration, attribute, getattr(iterative.charge_equilibration, attribute))
    batch = to_batch([nacl_cell(), nacl_cluster()], [1.0, -1.0])
    reference = dense(dict(batch), compute_stress=True)
    for model in (iterative, scripted):
        out = model(dict(batch), compute_stress=True)
        for key in ("energy", "forces", "stress", "charges"):
            torch.testing.assert_close(out[key], reference[key], rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("reciprocal", ["ewald", "mesh"])
def test_split_backward_with_repulsion_and_wall_acting(reciprocal):
    """Inference with charge feedback splits its backward, and what comes after the χ/J layer (the last
    interaction, ZBL, the contact wall) reads the edges as leaves. With a Na–Cl pair pushed inside ZBL's
    range and the wall acting on every pair, forces and stress still equal finite differences of the energy,
    on the Ewald and on the mesh path (whose preconditioner reads the strained cell)."""
    model = make_model(qeq_charge_feedback=True, pair_repulsion=True)
    model.charge_equilibration.dense_limit = 1
    model.charge_equilibration.mesh_limit = 1 if reciprocal == "mesh" else 10**6
    model.charge_equilibration.tolerance = 1e-12
    model.contact_wall.closest_contact.fill_(3.6)  # onset 3.06 Å: every nearest-neighbour pair feels it
    atoms = nacl_cell()
    atoms.positions[1] = atoms.positions[0] + [1.4, 0.6, 0.0]  # Na–Cl at 1.52 Å: ZBL acts
    zbl = model.pair_repulsion_fn(torch.tensor([[1.52]]), torch.eye(2), torch.tensor([[0], [1]]), model.atomic_numbers)
    assert float(zbl.sum()) > 0.1  # ZBL acts
    walled = energy_of(model, atoms, 1.0)
    model.contact_wall.closest_contact.fill_(float("inf"))
    assert energy_of(model, atoms, 1.0) < walled - 1.0  # the wall acts
    model.contact_wall.closest_contact.fill_(3.6)
    assert_forces_and_stress_match_finite_differences(model, atoms, 1.0)


def test_every_parameter_receives_a_gradient():
    model = make_model(qeq_charge_feedback=True, qeq_hardness="environment", qeq_learnable_sigma=True)
    batch = to_batch([nacl_cell(), nacl_cluster()], [1.0, 0.0])
    out = model(batch, training=True, compute_stress=True)
    loss = (out["energy"] ** 2).sum() + (out["forces"] ** 2).sum() + (out["charges"] ** 2).sum() \
        + (out["stress"] ** 2).sum()
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_multihead_readout_uses_each_structures_head():
    model = make_model(heads=["a", "b"])
    with torch.no_grad():
        model.qeq_readout.electronegativity_offset[:, 1] += torch.tensor([3.0, -3.0])
    batch = to_batch([nacl_cluster(), nacl_cluster()], [0.0, 0.0], heads=["a", "b"])
    batch["head"] = torch.tensor([0, 1])
    out = model(batch)
    assert not torch.allclose(out["charges"][:4], out["charges"][4:])


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="qeq_sigma needs one width per element"):
        make_model(qeq_sigma=[1.0])
    with pytest.raises(ValueError, match="hardness must be"):
        make_model(qeq_hardness="magic")
    with pytest.raises(ValueError, match="energy must be"):
        make_model(qeq_energy="magic")
