"""Choice of the Ewald splitting width and cut-offs for a requested accuracy.

With the real-space kernel erfc(r/(√2η))/r the truncation errors are

    real space:       ~ erfc(r_c / (√2 max(η, γ_max)))
    reciprocal space: ~ exp(−η² k_c² / 2)

so both are ≲ ε when r_c = √2 s max(η, γ_max) and k_c = √2 s / η with
s = √(−ln ε). The real-space cut-off must cover the slower of the two erfc
terms of the Gaussian-charge kernel, or wide Gaussians are silently truncated.
η balances the cost of the two sums, (real pairs ∝ N² η³ / V) against
(k-vectors ∝ N V / η³), which gives η = (V² / N)^{1/6} / √(2π).
"""

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from .structures import Structures


class EwaldParameters(NamedTuple):
    """Per-structure Ewald parameters; isolated structures carry η = r_c = ∞, k_c = 0."""

    smearing: Tensor  # [G] η (Å)
    real_space_cutoff: Tensor  # [G] r_c (Å)
    kspace_cutoff: Tensor  # [G] k_c (1/Å)


def ewald_parameters(
    structures: Structures,
    sigma: Tensor,
    accuracy: float = 1e-8,
    smearing: Optional[float] = None,
    real_space_cutoff: Optional[float] = None,
    kspace_cutoff: Optional[float] = None,
) -> EwaldParameters:
    """Ewald parameters of each structure for truncation errors ≲ ``accuracy``.

    Any of η (``smearing``, Å), r_c (Å) and k_c (1/Å) may be fixed by the caller;
    the others then follow from ``accuracy``. None of them carries gradients:
    the Ewald energy does not depend on them (to the requested accuracy).
    """
    if not (0.0 < accuracy < 1.0):
        raise ValueError("accuracy must lie in (0, 1); got {}".format(accuracy))
    if smearing is not None and smearing <= 0.0:
        raise ValueError("smearing (Ewald splitting width η) must be > 0 Å; got {}".format(smearing))
    if real_space_cutoff is not None and real_space_cutoff <= 0.0:
        raise ValueError("real_space_cutoff must be > 0 Å; got {}".format(real_space_cutoff))
    if kspace_cutoff is not None and kspace_cutoff <= 0.0:
        raise ValueError("kspace_cutoff must be > 0 1/Å; got {}".format(kspace_cutoff))
    s = math.sqrt(-math.log(accuracy))
    periodic = structures.periodic
    volume = structures.volume.detach()
    n_atoms = structures.num_atoms.to(volume.dtype).clamp(min=1.0)
    sigma_max = torch.zeros_like(volume).scatter_reduce(
        0, structures.batch, sigma.detach(), "amax", include_self=False
    )
    gamma_max = math.sqrt(2.0) * sigma_max

    if smearing is None:
        eta = (volume * volume / n_atoms) ** (1.0 / 6.0) / math.sqrt(2.0 * math.pi)
    else:
        eta = torch.full_like(volume, smearing)
    if real_space_cutoff is None:
        r_cut = math.sqrt(2.0) * s * torch.maximum(eta, gamma_max)
    else:
        r_cut = torch.full_like(volume, real_space_cutoff)
    if kspace_cutoff is None:
        k_cut = math.sqrt(2.0) * s / eta
    else:
        k_cut = torch.full_like(volume, kspace_cutoff)

    inf = torch.full_like(volume, math.inf)
    return EwaldParameters(
        smearing=torch.where(periodic, eta, inf),
        real_space_cutoff=torch.where(periodic, r_cut, inf),
        kspace_cutoff=torch.where(periodic, k_cut, torch.zeros_like(volume)),
    )
