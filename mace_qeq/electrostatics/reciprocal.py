"""The reciprocal-space (smooth, long-range) part of the Ewald sum.

For a periodic structure of volume V the smooth part of the interaction of two
atoms at separation r is

    Φᵢⱼ^rec = (4π k_e / V) Σ_{k ≠ 0} exp(−η² k² / 2) cos(k·rᵢⱼ) / k²,

which does not depend on the atoms' Gaussian widths. Over half of k-space
(k and −k give the same term) this factorises as

    Φ^rec = Σ_k w_k [c_k c_kᵀ + s_k s_kᵀ],   c_k = cos(k·r), s_k = sin(k·r),
    w_k = (8π k_e / V) exp(−η² k² / 2) / k²,

so Φ^rec q costs O(N K) and the dense matrix O(N² K).

Written here rather than taken from torch-pme: torch-pme's Ewald calculator
handles one structure per call, while this sum is batched over structures of
different cells (each with its own padded k-set), and the dense QEq solve
needs the factors c, s, w themselves to assemble Φ as a matrix.
"""

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .structures import Structures, from_padded, to_padded
from .units import coulomb_constant


class ReciprocalLattice(NamedTuple):
    """Half-space k-vectors of each structure, zero-padded to a common count K."""

    kvectors: Tensor  # [G, K, 3] (1/Å), differentiable in the cell
    weights: Tensor  # [G, K] w_k (eV/e²); 0 for padding


def reciprocal_lattice(structures: Structures, smearing: Tensor, kspace_cutoff: Tensor) -> ReciprocalLattice:
    """All k = 2π n·cell⁻ᵀ with 0 < |k| ≤ k_c[g] in half of k-space, per structure.

    The integer vectors n are enumerated on one grid for the whole batch and
    compacted per structure; isolated structures get no k-vectors.
    """
    cell = structures.cell
    device = cell.device
    dtype = cell.dtype
    k_cut = torch.where(structures.periodic, kspace_cutoff, torch.zeros_like(kspace_cutoff)).detach()
    if not bool((k_cut > 0.0).any()):  # isolated structures only (or no k-space asked for): no k-vectors
        return ReciprocalLattice(torch.zeros(structures.num_structures, 0, 3, dtype=dtype, device=device),
                                 torch.zeros(structures.num_structures, 0, dtype=dtype, device=device))
    reciprocal = 2.0 * math.pi * torch.linalg.inv(
        torch.where(structures.periodic[:, None, None], cell, torch.eye(3, dtype=dtype, device=device))
    ).transpose(1, 2)  # rows b_d with a_c · b_d = 2π δ_cd
    # |n_d| = |k · a_d| / 2π ≤ k_c |a_d| / 2π bounds the grid in each direction.
    n_max = torch.ceil(k_cut[:, None] * torch.linalg.norm(cell.detach(), dim=2) / (2.0 * math.pi))
    n_top = int(n_max.max()) if structures.num_structures > 0 else 0
    side = torch.arange(-n_top, n_top + 1, device=device, dtype=dtype)
    grid = torch.cartesian_prod(side, side, side).reshape(-1, 3)
    half = (grid[:, 0] > 0) | ((grid[:, 0] == 0) & ((grid[:, 1] > 0) | ((grid[:, 1] == 0) & (grid[:, 2] > 0))))
    grid = grid[half]

    k_all = torch.einsum("nd,gde->gne", grid, reciprocal.detach())
    inside = ((k_all * k_all).sum(dim=2) <= (k_cut * k_cut)[:, None]) & structures.periodic[:, None]
    count = inside.sum(dim=1)
    k_max = int(count.max()) if structures.num_structures > 0 else 0
    order = torch.argsort((~inside).to(torch.int8), dim=1, stable=True)[:, :k_max]
    n_selected = grid[order]  # [G, K, 3]
    valid = torch.gather(inside, 1, order)

    kvectors = torch.bmm(n_selected, reciprocal)
    k2 = (kvectors * kvectors).sum(dim=2)
    k2_safe = torch.where(valid, k2, torch.ones_like(k2))
    eta = torch.where(structures.periodic, smearing, torch.zeros_like(smearing)).detach()
    prefactor = 8.0 * math.pi * coulomb_constant() / structures.volume
    weights = prefactor[:, None] * torch.exp(-0.5 * (eta * eta)[:, None] * k2_safe) / k2_safe
    weights = torch.where(valid, weights, torch.zeros_like(weights))
    return ReciprocalLattice(kvectors, weights)


def phases(positions: Tensor, structures: Structures, lattice: ReciprocalLattice) -> Tensor:
    """k·rᵢ for every atom and every k-vector of its structure, [N, K]."""
    padded = torch.bmm(to_padded(positions, structures), lattice.kvectors.transpose(1, 2))
    return from_padded(padded, structures)
