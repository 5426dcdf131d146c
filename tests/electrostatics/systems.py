"""Small test systems for the electrostatics tests (float64 unless told)."""

import math

import torch
from ase.units import create_units

_CODATA_2018 = create_units("2018")
#: k_e = E_h a₀ (eV·Å/e²) from ASE's CODATA 2018 constants: independent of the package's value.
KE = _CODATA_2018["Hartree"] * _CODATA_2018["Bohr"]

F64 = torch.float64
PERIODIC = torch.tensor([True, True, True])

# NaCl rock salt and CsCl, lattice constant a (Å).
NACL_A = 5.64
CSCL_A = 4.12


def rocksalt_conventional(a=NACL_A):
    fcc = torch.tensor([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], dtype=F64)
    positions = torch.cat([fcc, fcc + torch.tensor([0.5, 0, 0], dtype=F64)]) * a
    charges = torch.tensor([1.0] * 4 + [-1.0] * 4, dtype=F64)
    return positions, charges, torch.eye(3, dtype=F64) * a


def rocksalt_primitive(a=NACL_A):
    cell = torch.tensor([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], dtype=F64) * a
    positions = torch.tensor([[0, 0, 0], [0.5 * a, 0, 0]], dtype=F64)
    return positions, torch.tensor([1.0, -1.0], dtype=F64), cell


def cesium_chloride(a=CSCL_A):
    positions = torch.tensor([[0, 0, 0], [0.5 * a, 0.5 * a, 0.5 * a]], dtype=F64)
    return positions, torch.tensor([1.0, -1.0], dtype=F64), torch.eye(3, dtype=F64) * a


def cesium_chloride_sheared_supercell(a=CSCL_A):
    """CsCl in a 2×1×1 supercell with a sheared, equivalent choice of lattice vectors."""
    positions, charges, cell = cesium_chloride(a)
    positions = torch.cat([positions, positions + cell[0]])
    charges = torch.cat([charges, charges])
    cell = torch.stack([2 * cell[0], cell[1] + cell[0], cell[2]])
    return positions, charges, cell


TRICLINIC_CELL = torch.tensor([[6.0, 0.3, 0.2], [1.1, 5.5, -0.4], [0.7, 0.9, 6.4]], dtype=F64)


def triclinic_system(n=5, seed=0, dtype=F64):
    """Random atoms in a triclinic cell with per-atom χ, J, σ (unequal widths)."""
    g = torch.Generator().manual_seed(seed)
    cell = TRICLINIC_CELL.to(dtype)
    positions = (torch.rand(n, 3, generator=g, dtype=F64) @ TRICLINIC_CELL).to(dtype)
    electronegativity = (2 * torch.rand(n, generator=g, dtype=F64) - 1).to(dtype) * 3
    hardness = (4 + 6 * torch.rand(n, generator=g, dtype=F64)).to(dtype)
    sigma = (0.6 + 0.8 * torch.rand(n, generator=g, dtype=F64)).to(dtype)
    return positions, electronegativity, hardness, sigma, cell


def cluster(n=6, seed=1, dtype=F64, extent=3.0):
    g = torch.Generator().manual_seed(seed)
    positions = (extent * torch.rand(n, 3, generator=g, dtype=F64)).to(dtype)
    electronegativity = (2 * torch.rand(n, generator=g, dtype=F64) - 1).to(dtype) * 3
    hardness = (4 + 6 * torch.rand(n, generator=g, dtype=F64)).to(dtype)
    sigma = (0.6 + 0.8 * torch.rand(n, generator=g, dtype=F64)).to(dtype)
    return positions, electronegativity, hardness, sigma


def gaussian_self_energy(charges, sigma):
    return (charges**2 * KE / (2 * math.sqrt(math.pi) * sigma)).sum()


def random_rotation(seed=3):
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=F64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
