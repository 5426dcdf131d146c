"""MACEQEq's ZBL repulsion against LAMMPS's ``pair_style zbl`` (the universal ZBL potential), in eV,
and zero at every bonding distance."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.data import covalent_radii
from e3nn.util import jit
from mace.modules.radial import PolynomialCutoff

from mace_qeq.calculators.lammps_external import open_lammps
from mace_qeq.modules import MACEQEq
from mace_qeq.modules.repulsion import UniversalRepulsion

from ..mace_helpers import backbone_config, nacl_cell, to_batch

torch.set_default_dtype(torch.float64)
DISTANCES = np.array([0.3, 0.6, 1.0, 1.3, 1.45])  # Å, inside 0.75 (r_cov,1 + r_cov,2) for Na and Cl


def lammps_zbl(z1: int, z2: int, distances) -> np.ndarray:
    """Dimer energies (eV) of LAMMPS's universal ZBL; its switching (10-12 Å) shifts them by < 1e-9 eV."""
    lmp = open_lammps()
    lmp.commands_string(f"""
        units metal
        atom_style atomic
        boundary f f f
        region box block -20 20 -20 20 -20 20
        create_box 2 box
        create_atoms 1 single 0 0 0
        create_atoms 2 single 1 0 0
        mass * 1.0
        pair_style zbl 10.0 12.0
        pair_coeff 1 1 {z1} {z1}
        pair_coeff 2 2 {z2} {z2}
        pair_coeff 1 2 {z1} {z2}
        thermo_style custom pe
    """)
    energies = []
    for r in distances:
        lmp.command(f"set atom 2 x {r}")
        lmp.command("run 0")
        energies.append(lmp.get_thermo("pe"))
    lmp.close()
    return np.array(energies)


def repulsion(model, z1: int, z2: int, distances) -> np.ndarray:
    """The model's pair energy of a Z1-Z2 dimer (eV): its energy minus that with the ZBL term removed."""
    energies = []
    for r in distances:
        dimer = Atoms(numbers=[z1, z2], positions=[[0, 0, 0], [r, 0, 0]])
        data = to_batch([dimer], [0.0])
        with_zbl = model(data, compute_force=False)["energy"]
        zbl, model.pair_repulsion_fn = model.pair_repulsion_fn, ZeroPairEnergy()
        try:
            without = model(data, compute_force=False)["energy"]
        finally:
            model.pair_repulsion_fn = zbl
        energies.append(float(with_zbl - without))
    return np.array(energies)


class ZeroPairEnergy(torch.nn.Module):
    def forward(self, lengths, node_attrs, edge_index, atomic_numbers):
        return torch.zeros(node_attrs.shape[0], dtype=lengths.dtype)


@pytest.mark.parametrize("z1, z2", [(11, 11), (11, 17), (17, 17)])
def test_repulsion_is_universal_zbl_in_ev(z1, z2):
    """E(r) = ZBL(r) · envelope(r / (0.75 (r_cov,1 + r_cov,2))): the universal screening of LAMMPS's
    pair_style zbl, not multiplied by the model's energy scale (0.5 here), with mace's polynomial envelope
    (p = 5 here)."""
    config = backbone_config() | {"pair_repulsion": True, "atomic_inter_scale": [0.5]}
    model = MACEQEq(**config, qeq_energy_floor=None)
    cutoff = 0.75 * (covalent_radii[z1] + covalent_radii[z2])
    envelope = PolynomialCutoff.calculate_envelope(torch.tensor(DISTANCES), cutoff, config["num_polynomial_cutoff"])
    expected = lammps_zbl(z1, z2, DISTANCES) * envelope.numpy()
    np.testing.assert_allclose(repulsion(model, z1, z2, DISTANCES), expected, rtol=2e-3)  # mace rounds ZBL's φ


def test_sodium_pair_wall_at_md_distances():
    """Na-Na at 1.3 Å (where a demo model's Na4 core collapsed in 600 K MD): ≥ 9 eV, where mace's own
    ZBL gave 0.5 eV."""
    config = backbone_config() | {"pair_repulsion": True}
    universal = MACEQEq(**config)
    legacy = MACEQEq(**config, qeq_universal_repulsion=False)
    assert repulsion(universal, 11, 11, [1.3])[0] > 9.0
    assert repulsion(legacy, 11, 11, [1.3])[0] < 1.0


def test_compiled_model_has_the_same_repulsion():
    """The TorchScript model (MACE's compile at the end of training, the LAMMPS export) gives the eager
    energy, forces and stress with the universal ZBL, here with a Na-Na pair at 1.3 Å in a periodic cell."""
    torch.manual_seed(0)
    model = MACEQEq(**backbone_config() | {"pair_repulsion": True, "atomic_inter_scale": [0.5]})
    atoms = nacl_cell()
    sodium = [i for i, z in enumerate(atoms.numbers) if z == 11][:2]
    atoms.positions[sodium[1]] = atoms.positions[sodium[0]] + [1.3, 0.0, 0.0]
    batch = to_batch([atoms], [1.0])
    eager = model(dict(batch), compute_stress=True)
    compiled = jit.compile(model)(dict(batch), compute_stress=True)
    for key in ("energy", "forces", "stress"):
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("z1, z2, bond", [(6, 6, 1.20), (7, 7, 1.10), (6, 8, 1.13), (8, 1, 0.96), (1, 1, 0.74),
                                          (11, 17, 2.36), (47, 47, 2.53), (14, 14, 2.35)])
def test_no_repulsion_at_bonding_distances(z1, z2, bond):
    """Zero at the shortest bonds (C≡C, N≡N, C≡O, O-H, H₂, NaCl, Ag₂, Si-Si), 1 % compressed; > 0 at half the bond."""
    zbl = UniversalRepulsion(p=5)
    numbers = torch.tensor([z1, z2])
    one_hot = torch.eye(2)
    edges = torch.tensor([[0, 1], [1, 0]])
    for fraction, positive in ((0.99, False), (0.5, True)):
        lengths = torch.full((2, 1), fraction * bond)
        energy = float(zbl(lengths, one_hot, edges, numbers).sum())
        assert (energy > 0.0) == positive, (fraction, energy)
