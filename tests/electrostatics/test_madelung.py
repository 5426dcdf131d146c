"""Point-charge limit (σ → 0) of the Ewald sum against Madelung constants."""

import math

import pytest
import torch

from mace_qeq.electrostatics import coulomb_energy

from .systems import (
    KE,
    CSCL_A,
    NACL_A,
    PERIODIC,
    cesium_chloride,
    cesium_chloride_sheared_supercell,
    gaussian_self_energy,
    rocksalt_conventional,
    rocksalt_primitive,
)

NACL_MADELUNG = 1.747564594633
CSCL_MADELUNG = 1.762674773070
# Wigner constant: a point charge in a simple-cubic lattice with a uniform
# neutralising background has E = −α k_e q² / (2L), α = 2.837297479.
SIMPLE_CUBIC_WIGNER = 2.837297479480620

SIGMA = 1e-3  # Å: Gaussian charges this narrow are point charges at these distances


def madelung(system, nearest_distance):
    positions, charges, cell = system
    sigma = torch.full_like(charges, SIGMA)
    energy = coulomb_energy(positions, charges, sigma, cell, PERIODIC, accuracy=1e-14)[0]
    lattice_energy = energy - gaussian_self_energy(charges, sigma)
    ion_pairs = len(charges) / 2
    return float(-lattice_energy * nearest_distance / (KE * ion_pairs))


@pytest.mark.parametrize("system", [rocksalt_primitive, rocksalt_conventional])
def test_rocksalt(system):
    assert madelung(system(), NACL_A / 2) == pytest.approx(NACL_MADELUNG, rel=1e-8)


@pytest.mark.parametrize("system", [cesium_chloride, cesium_chloride_sheared_supercell])
def test_cesium_chloride(system):
    assert madelung(system(), math.sqrt(3) * CSCL_A / 2) == pytest.approx(CSCL_MADELUNG, rel=1e-8)


@pytest.mark.parametrize("length", [3.0, 7.5])
def test_charged_simple_cubic_lattice(length):
    """A net-charged cell: one charge and its neutralising background.

    A Gaussian charge differs from a point charge in a background by its
    second moment: + π k_e q² (2σ²) / V, exactly (the k → 0 limit)."""
    positions = torch.zeros(1, 3, dtype=torch.float64)
    charges = torch.tensor([1.0], dtype=torch.float64)
    sigma = torch.full_like(charges, SIGMA)
    cell = torch.eye(3, dtype=torch.float64) * length
    energy = coulomb_energy(positions, charges, sigma, cell, PERIODIC, accuracy=1e-14)[0]
    lattice_energy = float(energy - gaussian_self_energy(charges, sigma))
    expected = -SIMPLE_CUBIC_WIGNER * KE / (2 * length)
    expected += math.pi * KE * 2 * SIGMA**2 / length**3
    assert lattice_energy == pytest.approx(expected, rel=1e-8)
