"""Preconditioners M⁻¹ ≈ A⁻¹ for the conjugate-gradient QEq solve (A = diag(J) + Φ).

Jacobi, M⁻¹ = D⁻¹ with D = diag(A), leaves the long waves of a periodic cell
badly conditioned. Φ's reciprocal part is (1/V) Σ_k K̂(k) |k⟩⟨k|, |k⟩ᵢ = e^{ik·rᵢ},
K̂(k) = 4π k_e exp(−η²k²/2)/k², so a charge wave sees A ≈ d + n K̂(k) (n = N/V):
the largest eigenvalues grow as n K̂(2π/L) ∝ L² and Jacobi-CG needs O(N^{1/3})
iterations.

The long-wave preconditioner is the Woodbury inverse of D + (1/V) Σ_k K̂ |k⟩⟨k|,
with ⟨k|D⁻¹|k'⟩ ≈ δ_kk' V w (structure-factor fluctuations neglected):

    M⁻¹ = D⁻¹ − D⁻¹ Wᵀ H W D⁻¹,   H: multiply v̂(k) by exp(−η²k²/8) K̂ / (1 + w K̂) / V,

with W the quadratic B-spline spreading of atom values onto a coarse mesh
(spacing η, 27 × fewer points than a mesh of spacing η/3) and Wᵀ its
interpolation back. w = Σᵢ(1/dᵢ)/V_occupied (e²/(eV Å³)) is the density of
1/d over the mesh cells that atoms occupy: n⟨1/d⟩ for a bulk material, the
local value (not the box average) for a cluster or slab with vacuum in its
cell. On a long wave M⁻¹ inverts A; on short waves H vanishes and M⁻¹ is
Jacobi. The window exp(−η²k²/8) and the coarse spline keep the correction off
the waves of molecular size, where local structure breaks the neglect of
⟨k|D⁻¹|k'≠k⟩.

M⁻¹ is symmetric, and positive definite for bulk materials (tested); with
vacuum in the cell (sharp density edges) it can be slightly indefinite, which
the CG solver detects (rᵀz ≤ 0) and answers by going on with Jacobi; its
stopping test is the Jacobi charge update whatever M⁻¹ is. Measured (PME
path, tolerance 1e-5 e, float64): from 1,000 to 22,000 atoms Jacobi needs
20 → 52 iterations for NaCl-like and 21 → 43 for water-like boxes, this
10 → 12 and 9 → 10.

TorchScript-compatible.
"""

from typing import List, NamedTuple, Optional

import torch
from torch import Tensor

from .mesh import (
    MeshOperator,
    apply_mesh,
    coulomb_kernel,
    detach_mesh,
    spline_mesh,
    spread,
    squared_wavevectors,
    with_filters,
)
from .structures import Structures


class Preconditioner(NamedTuple):
    """M⁻¹ = D⁻¹ − D⁻¹ Wᵀ H W D⁻¹; Jacobi when ``long_waves`` is None."""

    inverse_diagonal: Tensor  # [N] D⁻¹ (e²/eV)
    long_waves: Optional[MeshOperator]  # Wᵀ H W on the coarse mesh of the periodic structures


def jacobi(diagonal: Tensor) -> Preconditioner:
    """M⁻¹ = D⁻¹."""
    return Preconditioner(1.0 / diagonal.detach(), None)


def long_wave_preconditioner(diagonal: Tensor, positions: Tensor, structures: Structures,
                             smearing: float) -> Preconditioner:
    """Jacobi plus the long-wave correction on the periodic structures (see the module docstring)."""
    inverse_diagonal = 1.0 / diagonal.detach()  # everything here is cut from the autograd graph
    coarse = detach_mesh(spline_mesh(positions.detach(), structures, smearing, 3))  # the weights read the strained cell
    density = spread(coarse, inverse_diagonal)
    filters: List[Tensor] = []
    graphs: List[int] = torch.nonzero(structures.periodic).flatten().tolist()
    for slot, g in enumerate(graphs):
        shape = coarse.shapes[slot]
        points = shape[0] * shape[1] * shape[2]
        start = coarse.starts[slot]
        cells = density[start : start + points]
        occupied = int((cells > 0.01 * cells.mean()).sum())  # mesh cells with atoms nearby
        volume = float(structures.volume[g].detach())
        weight = float(cells.sum()) / (volume * occupied / points)
        k2 = squared_wavevectors(structures.cell[g].detach(), shape)
        kernel = coulomb_kernel(k2, smearing)
        window = torch.exp(-0.125 * smearing * smearing * k2)
        filters.append(window * kernel / (1.0 + weight * kernel) * (points / volume))
    return Preconditioner(inverse_diagonal, with_filters(coarse, filters))


def apply_preconditioner(preconditioner: Preconditioner, residual: Tensor) -> Tensor:
    """M⁻¹ r."""
    jacobi_step = preconditioner.inverse_diagonal * residual
    long_waves = preconditioner.long_waves
    if long_waves is None:
        return jacobi_step
    return jacobi_step - preconditioner.inverse_diagonal * apply_mesh(long_waves, jacobi_step)
