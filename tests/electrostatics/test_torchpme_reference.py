"""The smooth-PME reciprocal potential against torch-pme's Ewald sum, an independent implementation.

torch-pme's ``EwaldCalculator`` k-space part returns ½ (V^rec_i − qᵢ·self) per atom in
Gaussian units; V^rec_i = (4π/V) Σ_{k≠0} exp(−η²k²/2)/k² Σⱼ qⱼ cos(k·(rᵢ − rⱼ)) is
what ``apply_mesh(ewald_mesh(...), q)`` approximates, times k_e.
"""

import pytest
import torch

torchpme = pytest.importorskip("torchpme")

from mace_qeq.electrostatics.mesh import apply_mesh, ewald_mesh  # noqa: E402
from mace_qeq.electrostatics.structures import describe_structures  # noqa: E402
from mace_qeq.electrostatics.units import coulomb_constant  # noqa: E402

F64 = torch.float64


def torchpme_reciprocal_potential(positions, charges, cell, smearing):
    """k_e V^rec from torch-pme's Ewald k-space sum (k-vectors to |k| = 2π / (η/8): converged to 1e-15)."""
    potential = torchpme.CoulombPotential(smearing=smearing)
    calculator = torchpme.EwaldCalculator(potential, lr_wavelength=smearing / 8).to(F64)
    halved = calculator._compute_kspace(charges[:, None], cell, positions).squeeze(1)
    return coulomb_constant() * (2.0 * halved + charges * potential.self_contribution())


@pytest.mark.parametrize(("spacing", "order", "tolerance"), [(0.5, 6, 3e-5), (0.25, 8, 1e-8)])
def test_smooth_pme_matches_torchpme_ewald(spacing, order, tolerance):
    generator = torch.Generator().manual_seed(3)
    cell = torch.tensor([[7.0, 0.0, 0.0], [1.3, 6.2, 0.0], [-0.8, 0.9, 8.1]], dtype=F64)
    fractions = torch.rand(48, 3, generator=generator, dtype=F64)
    positions = fractions @ cell
    charges = torch.randn(48, generator=generator, dtype=F64)
    charges = charges - charges.mean()
    smearing = 1.0
    structures = describe_structures(positions, cell[None], torch.tensor([[True, True, True]]))
    ours = apply_mesh(ewald_mesh(positions, structures, smearing, spacing * smearing, order), charges)
    reference = torchpme_reciprocal_potential(positions, charges, cell, smearing)
    error = (ours - reference).abs().max() / reference.abs().max()
    assert error < tolerance, f"relative potential error {error:.2e}"
