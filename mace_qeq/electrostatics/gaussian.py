"""The Coulomb interaction of two spherical Gaussian charge clouds.

A unit charge spread as a normalised Gaussian of width σ (standard deviation per
Cartesian direction) interacts with another of width σ' at distance r through

    φ(r; γ) = erf(r / (√2 γ)) / r,      γ = √(σ² + σ'²),

which tends to 1/r for r ≫ γ and to the finite value √(2/π) / γ at r = 0, so
two atoms on top of each other stay finite. Ewald summation splits 1/r with an
auxiliary Gaussian of width η; its real-space part for a pair of Gaussian
charges is φ(r; γ) − φ(r; η) = [erfc(r/(√2η)) − erfc(r/(√2γ))] / r, and η = ∞
(φ(r; ∞) = 0) recovers the isolated interaction.
"""

import math

import torch
from torch import Tensor


def pair_width(sigma_i: Tensor, sigma_j: Tensor) -> Tensor:
    """γᵢⱼ = √(σᵢ² + σⱼ²), the width of the pair interaction (Å)."""
    return torch.sqrt(sigma_i * sigma_i + sigma_j * sigma_j)


def screened_gaussian_interaction(r2: Tensor, gamma: Tensor, inverse_smearing: Tensor) -> Tensor:
    """φ(r; γ) − φ(r; η) in 1/Å, from the squared distance r² (Å²).

    ``inverse_smearing`` is 1/η (1/Å); pass 0 for the bare (isolated) interaction.
    With a = 1/(√2γ) and b = 1/(√2η), the kernel is [erf(a r) − erf(b r)] / r,
    whose Taylor series at r → 0 is (2/√π)[(a − b) − (a³ − b³) r²/3].
    """
    a = 1.0 / (math.sqrt(2.0) * gamma)
    b = inverse_smearing / math.sqrt(2.0)
    # Below r² = 1e-10 Å² the Taylor series replaces 0/0 and keeps derivatives finite.
    small = r2 < 1e-10
    r = torch.sqrt(torch.where(small, torch.ones_like(r2), r2))
    regular = (torch.erf(a * r) - torch.erf(b * r)) / r
    series = (2.0 / math.sqrt(math.pi)) * ((a - b) - (a * a * a - b * b * b) * r2 / 3.0)
    return torch.where(small, series, regular)
