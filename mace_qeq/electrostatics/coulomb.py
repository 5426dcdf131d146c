"""The Coulomb interaction matrix Φ of Gaussian charges, as an operator on charges.

The electrostatic energy of charges q (e) with Gaussian widths σ (Å) is

    E_Coulomb = ½ Σᵢⱼ qᵢ qⱼ Φᵢⱼ      (eV, per structure)

with, for isolated structures (k_e = COULOMB_CONSTANT),

    Φᵢⱼ = k_e erf(rᵢⱼ / (√2 γᵢⱼ)) / rᵢⱼ  (i ≠ j),   Φᵢᵢ = k_e / (√π σᵢ),

and for 3-D periodic structures the same interaction summed over all lattice
images (Ewald summation with splitting width η, tin-foil boundary):

    Φᵢⱼ = k_e Σ_S [erfc(|rᵢⱼ+S|/(√2η)) − erfc(|rᵢⱼ+S|/(√2γᵢⱼ))] / |rᵢⱼ+S|    real space
        + (4π k_e / V) Σ_{k≠0} exp(−η²k²/2) cos(k·rᵢⱼ) / k²               reciprocal
        + δᵢⱼ k_e [1/(√π σᵢ) − √(2/π)/η]                                   self
        − (2π k_e / V) (η² − γᵢⱼ²)                                        background

(the real-space sum over S skips S = 0 when i = j). The background term is the
uniform neutralising background of a net-charged cell; it vanishes from the
energy of a neutral one. E_Coulomb does not depend on η.

:class:`CoulombOperator` holds everything that depends on the geometry, so Φ
can be applied to several charge vectors (O(pairs + N K) each) or assembled
as a dense, zero-padded [G, n_max, n_max] matrix for the direct QEq solve.
"""

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from .ewald_parameters import EwaldParameters, ewald_parameters
from .gaussian import pair_width, screened_gaussian_interaction
from .pairs import PairList, real_space_pairs, squared_distances
from .reciprocal import phases, reciprocal_lattice
from .structures import (
    Structures,
    check_per_atom,
    describe_structures,
    sum_per_structure,
    to_padded,
)
from .units import coulomb_constant


class CoulombOperator(NamedTuple):
    """Φ of a batch of structures, factorised into its real, reciprocal, self and background parts."""

    structures: Structures
    pairs: PairList
    pair_interaction: Tensor  # [P] real-space Φ contribution of each pair (eV/e²)
    self_interaction: Tensor  # [N] self term of Φᵢᵢ (eV/e²)
    cos_kr: Tensor  # [N, K] cos(k·rᵢ)
    sin_kr: Tensor  # [N, K] sin(k·rᵢ)
    kspace_weights: Tensor  # [G, K] w_k (eV/e²)
    background: Tensor  # [G] −2π k_e / V (eV/(e² Å²)); 0 for isolated structures
    smearing_squared: Tensor  # [G] η² (Å²); 0 for isolated structures
    sigma_squared: Tensor  # [N] σ² (Å²)


def coulomb_operator(
    positions: Tensor,
    sigma: Tensor,
    structures: Structures,
    parameters: EwaldParameters,
    include_reciprocal: bool = True,
) -> CoulombOperator:
    """Evaluate the geometry-dependent parts of Φ (differentiable in positions, cell and σ).

    ``include_reciprocal=False`` leaves out the k-space sum (for a caller that
    adds it by particle-mesh Ewald, see :mod:`.mesh`)."""
    batch = structures.batch
    periodic = structures.periodic
    zero = torch.zeros_like(parameters.smearing)
    inverse_eta = torch.where(periodic, 1.0 / parameters.smearing, zero)

    pairs = real_space_pairs(positions, structures, parameters.real_space_cutoff)
    gamma = pair_width(sigma[pairs.first], sigma[pairs.second])
    r2 = squared_distances(positions, structures, pairs)
    pair_interaction = coulomb_constant() * screened_gaussian_interaction(
        r2, gamma, inverse_eta[batch[pairs.first]]
    )

    self_interaction = coulomb_constant() * (
        1.0 / (math.sqrt(math.pi) * sigma) - math.sqrt(2.0 / math.pi) * inverse_eta[batch]
    )

    kspace_cutoff = parameters.kspace_cutoff
    if not include_reciprocal:
        kspace_cutoff = torch.zeros_like(kspace_cutoff)
    lattice = reciprocal_lattice(structures, parameters.smearing, kspace_cutoff)
    kr = phases(positions, structures, lattice)

    eta = torch.where(periodic, parameters.smearing, zero)
    background = torch.where(periodic, -2.0 * math.pi * coulomb_constant() / structures.volume, zero)
    return CoulombOperator(
        structures=structures,
        pairs=pairs,
        pair_interaction=pair_interaction,
        self_interaction=self_interaction,
        cos_kr=torch.cos(kr),
        sin_kr=torch.sin(kr),
        kspace_weights=lattice.weights,
        background=background,
        smearing_squared=eta * eta,
        sigma_squared=sigma * sigma,
    )


def detach_coulomb(operator: CoulombOperator) -> CoulombOperator:
    """``operator`` cut from the autograd graph (for solver iterations, which need no derivatives).

    Compiled code uses this instead of ``torch.no_grad()``: under TorchScript's
    profiling executor a no-grad block can strip the gradients of values that
    cross it.
    """
    return CoulombOperator(
        operator.structures,
        operator.pairs,
        operator.pair_interaction.detach(),
        operator.self_interaction.detach(),
        operator.cos_kr.detach(),
        operator.sin_kr.detach(),
        operator.kspace_weights.detach(),
        operator.background.detach(),
        operator.smearing_squared.detach(),
        operator.sigma_squared.detach(),
    )


def apply_coulomb(operator: CoulombOperator, charges: Tensor) -> Tensor:
    """Φ q (eV/e, the electrostatic potential at each atom), without forming Φ."""
    structures = operator.structures
    batch = structures.batch
    first = operator.pairs.first
    second = operator.pairs.second
    v = operator.pair_interaction

    potential = operator.self_interaction * charges
    potential = potential.index_add(0, first, v * charges[second])
    potential = potential.index_add(0, second, v * charges[first])

    n_k = operator.kspace_weights.shape[1]
    if n_k > 0:
        zeros = torch.zeros(structures.num_structures, n_k, dtype=charges.dtype, device=charges.device)
        cos_sum = zeros.index_add(0, batch, operator.cos_kr * charges[:, None])
        sin_sum = zeros.index_add(0, batch, operator.sin_kr * charges[:, None])
        w = operator.kspace_weights
        potential = potential + (operator.cos_kr * (w * cos_sum)[batch]).sum(dim=1)
        potential = potential + (operator.sin_kr * (w * sin_sum)[batch]).sum(dim=1)

    if not bool(structures.periodic.any()):  # the background term is that of charged periodic cells only
        return potential
    total = sum_per_structure(charges, structures)
    width_moment = sum_per_structure(operator.sigma_squared * charges, structures)
    potential = potential + operator.background[batch] * (
        (operator.smearing_squared[batch] - operator.sigma_squared) * total[batch] - width_moment[batch]
    )
    return potential


def coulomb_matrix(operator: CoulombOperator) -> Tensor:
    """Φ as a zero-padded dense matrix [G, n_max, n_max] (eV/e²)."""
    structures = operator.structures
    n = structures.max_atoms
    g = structures.num_structures
    batch = structures.batch
    local = structures.local_index
    dtype = operator.self_interaction.dtype
    device = operator.self_interaction.device

    first = operator.pairs.first
    second = operator.pairs.second
    base = batch[first] * (n * n)
    flat = torch.zeros(g * n * n, dtype=dtype, device=device)
    flat = flat.index_add(0, base + local[first] * n + local[second], operator.pair_interaction)
    flat = flat.index_add(0, base + local[second] * n + local[first], operator.pair_interaction)
    flat = flat.index_add(0, batch * (n * n) + local * (n + 1), operator.self_interaction)
    matrix = flat.view(g, n, n)

    if operator.kspace_weights.shape[1] > 0:
        w = operator.kspace_weights[:, None, :]
        cos_kr = to_padded(operator.cos_kr, structures)
        sin_kr = to_padded(operator.sin_kr, structures)
        matrix = matrix + torch.bmm(cos_kr * w, cos_kr.transpose(1, 2))
        matrix = matrix + torch.bmm(sin_kr * w, sin_kr.transpose(1, 2))

    if not bool(structures.periodic.any()):  # the background term is that of charged periodic cells only
        return matrix
    occupied = to_padded(torch.ones_like(operator.sigma_squared), structures)
    half_width = occupied * (0.5 * operator.smearing_squared[:, None] - to_padded(operator.sigma_squared, structures))
    pair_mask = occupied[:, :, None] * occupied[:, None, :]
    background = operator.background[:, None, None] * (half_width[:, :, None] + half_width[:, None, :]) * pair_mask
    return matrix + background


def coulomb_energy(
    positions: Tensor,
    charges: Tensor,
    sigma: Tensor,
    cell: Optional[Tensor] = None,
    pbc: Optional[Tensor] = None,
    batch: Optional[Tensor] = None,
    accuracy: float = 1e-8,
    smearing: Optional[float] = None,
    real_space_cutoff: Optional[float] = None,
    kspace_cutoff: Optional[float] = None,
) -> Tensor:
    """Electrostatic energy ½ qᵀ Φ q of Gaussian charges, per structure [G] (eV).

    Args:
        positions: [N, 3] (Å).
        charges: [N] (e).
        sigma: [N] Gaussian widths σ > 0 (Å); the Gaussian self energy
            k_e qᵢ² / (2√π σᵢ) is included.
        cell: [3, 3], [G, 3, 3] (or MACE's [3G, 3]) lattice vectors as rows (Å).
        pbc: [3] or [G, 3] booleans; each structure periodic in all directions
            or in none. Default: not periodic.
        batch: [N] structure index of each atom (default: one structure).
        accuracy: target truncation error of the Ewald sums (dimensionless).
        smearing, real_space_cutoff, kspace_cutoff: fix η (Å), r_c (Å), k_c (1/Å).

    Gradients flow to positions, cell, charges and sigma.
    """
    structures = describe_structures(positions, cell, pbc, batch, None)
    check_per_atom(charges, "charges", structures, False)
    check_per_atom(sigma, "sigma", structures, True)
    parameters = ewald_parameters(structures, sigma, accuracy, smearing, real_space_cutoff, kspace_cutoff)
    operator = coulomb_operator(positions, sigma, structures, parameters)
    return 0.5 * sum_per_structure(charges * apply_coulomb(operator, charges), structures)
