"""Mesh convolutions on the atoms of periodic structures: smooth particle-mesh Ewald.

A k-space filter f(k) acting on per-atom values vᵢ,

    (F v)ᵢ = (1/V) Σ_{k≠0} f(k) v̂(k) e^{ik·rᵢ},     v̂(k) = Σⱼ vⱼ e^{−ik·rⱼ},

is evaluated in O(N log N) by spreading v onto a mesh with cardinal B-splines of
order p, one FFT, a multiplication, an inverse FFT and the same interpolation
back (Essmann et al., J. Chem. Phys. 103, 8577, 1995). With the Ewald kernel
f(k) = 4π k_e exp(−η²k²/2)/k² and the B-splines' Euler factors |b(k)|² divided
out, F is the reciprocal-space part Φ^rec of the Coulomb matrix (smooth PME):
symmetric and positive semi-definite like Φ^rec itself, so the QEq matrix
stays positive definite, and the energy ½ qᵀFq is differentiable in positions
(forces) and cell (stress) through the spline weights and k-vectors.

Written here rather than taken from torch-pme, whose interpolator and k-space
filter are stateful modules built for one cell: a scripted model (the compiled
model, the LAMMPS export) meets its cells only in forward, where no module can
be built, and here every periodic structure of a batch shares one flat mesh
buffer (one scatter, one gather), with an FFT per structure. torch-pme serves
as the independent reference in the tests.

All functions are TorchScript-compatible.
"""

import math
from typing import List, NamedTuple

import torch
from torch import Tensor

from .structures import Structures
from .units import coulomb_constant


class MeshOperator(NamedTuple):
    """A k-space filter on the atoms of the periodic structures of a batch."""

    atoms: Tensor  # [A] indices of the atoms of periodic structures
    mesh_index: Tensor  # [A, p³] their mesh points in the flat batch buffer
    spline_weight: Tensor  # [A, p³] B-spline weights (differentiable in positions and cell)
    starts: List[int]  # offset of each periodic structure's mesh in the buffer
    shapes: List[List[int]]  # its mesh size (n₁, n₂, n₃)
    filters: List[Tensor]  # its f(k)/V · n₁n₂n₃ on the rfft grid [n₁, n₂, n₃//2 + 1]
    buffer_size: int
    num_atoms: int  # N of the whole batch


def fft_size(minimum: int) -> int:
    """The smallest n ≥ minimum whose prime factors are 2, 3 and 5 (FFT-friendly)."""
    n = max(minimum, 1)
    smooth = False
    while not smooth:
        m = n
        for p in [2, 3, 5]:
            while m % p == 0:
                m = m // p
        smooth = m == 1
        if not smooth:
            n += 1
    return n


def bspline_weights(fraction: Tensor, order: int) -> Tensor:
    """M_p(w + i), i = 0 … p−1, of the cardinal B-spline of order p at fractional offsets w ∈ [0, 1).

    ``fraction`` [...] → [..., p]; weight i belongs to mesh point ⌊u⌋ − i for a
    scaled coordinate u = ⌊u⌋ + w. Recursion M_n(x) = [x M_{n−1}(x) + (n − x) M_{n−1}(x − 1)]/(n − 1)
    from M_2(w) = w, M_2(w + 1) = 1 − w; the weights sum to 1.
    """
    w = fraction.unsqueeze(-1)
    weights = torch.cat([w, 1.0 - w], dim=-1)
    for n in range(3, order + 1):
        i = torch.arange(n, dtype=fraction.dtype, device=fraction.device)
        padded = torch.nn.functional.pad(weights, [0, 1])  # M_{n−1}(w + i), zero at i = n − 1
        shifted = torch.nn.functional.pad(weights, [1, 0])  # M_{n−1}(w + i − 1), zero at i = 0
        weights = ((w + i) * padded + (n - w - i) * shifted) / (n - 1)
    return weights


def euler_factors(size: int, order: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """|b(m)|² = 1 / |Σ_{j=0}^{p−2} M_p(j+1) e^{2πi mj/n}|² for m = 0 … n−1 (even order p)."""
    knots = bspline_weights(torch.zeros(1, dtype=dtype, device=device), order)[0]  # M_p(i), i = 0 … p−1
    j = torch.arange(order - 1, dtype=dtype, device=device)
    m = torch.arange(size, dtype=dtype, device=device)
    angle = 2.0 * math.pi * m[:, None] * j[None, :] / size
    values = knots[1:order][None, :]
    real = (values * torch.cos(angle)).sum(dim=1)
    imaginary = (values * torch.sin(angle)).sum(dim=1)
    return 1.0 / (real * real + imaginary * imaginary)


def mesh_shapes(structures: Structures, spacing: float) -> List[List[int]]:
    """FFT-friendly mesh sizes n_d ≥ |a_d| / spacing of every periodic structure."""
    shapes: List[List[int]] = []
    lengths = torch.linalg.norm(structures.cell.detach(), dim=2)
    graphs: List[int] = torch.nonzero(structures.periodic).flatten().tolist()
    for g in graphs:
        shapes.append([fft_size(int(math.ceil(float(lengths[g, d]) / spacing))) for d in range(3)])
    return shapes


def spline_mesh(positions: Tensor, structures: Structures, spacing: float, order: int) -> MeshOperator:
    """The mesh points and B-spline weights of the atoms of every periodic structure
    (mesh spacing ≤ ``spacing`` Å, B-splines of ``order``), without filters yet."""
    device = positions.device
    shapes = mesh_shapes(structures, spacing)
    atoms_list: List[Tensor] = []
    index_list: List[Tensor] = []
    weight_list: List[Tensor] = []
    starts: List[int] = []
    start = 0
    offsets = torch.arange(order, device=device)
    graphs: List[int] = torch.nonzero(structures.periodic).flatten().tolist()
    for slot, g in enumerate(graphs):
        first = int(structures.first_atom[g])
        count = int(structures.num_atoms[g])
        atoms = torch.arange(first, first + count, device=device)
        shape = shapes[slot]
        sizes = torch.tensor(shape, device=device)
        fractional = torch.linalg.solve(structures.cell[g].transpose(0, 1), positions[atoms].transpose(0, 1))
        scaled = fractional.transpose(0, 1) * sizes.to(positions.dtype)  # u = n · (fractional coordinate)
        floor = torch.floor(scaled.detach())
        weights = bspline_weights(scaled - floor, order)  # [count, 3, p]
        points = torch.remainder(floor.to(torch.long)[:, :, None] - offsets, sizes[None, :, None])
        flat = (points[:, 0, :, None, None] * shape[1] + points[:, 1, None, :, None]) * shape[2] \
            + points[:, 2, None, None, :]
        weight = weights[:, 0, :, None, None] * weights[:, 1, None, :, None] * weights[:, 2, None, None, :]
        atoms_list.append(atoms)
        index_list.append(flat.reshape(count, -1) + start)
        weight_list.append(weight.reshape(count, -1))
        starts.append(start)
        start += shape[0] * shape[1] * shape[2]
    filters: List[Tensor] = []
    if len(starts) == 0:
        empty = torch.zeros(0, order * order * order, dtype=positions.dtype, device=device)
        return MeshOperator(torch.zeros(0, dtype=torch.long, device=device), empty.to(torch.long), empty, starts,
                            shapes, filters, 0, positions.shape[0])
    return MeshOperator(torch.cat(atoms_list), torch.cat(index_list), torch.cat(weight_list), starts, shapes,
                        filters, start, positions.shape[0])


def with_filters(operator: MeshOperator, filters: List[Tensor]) -> MeshOperator:
    """``operator`` with one k-space filter per periodic structure (see :class:`MeshOperator`)."""
    return MeshOperator(operator.atoms, operator.mesh_index, operator.spline_weight, operator.starts,
                        operator.shapes, filters, operator.buffer_size, operator.num_atoms)


def detach_mesh(operator: MeshOperator) -> MeshOperator:
    """``operator`` cut from the autograd graph (see :func:`~.coulomb.detach_coulomb`)."""
    filters: List[Tensor] = [f.detach() for f in operator.filters]
    return MeshOperator(operator.atoms, operator.mesh_index, operator.spline_weight.detach(), operator.starts,
                        operator.shapes, filters, operator.buffer_size, operator.num_atoms)


def spread(operator: MeshOperator, values: Tensor) -> Tensor:
    """Per-atom ``values`` spread onto the flat mesh buffer of the batch."""
    weighted = operator.spline_weight * values[operator.atoms][:, None]
    buffer = torch.zeros(operator.buffer_size, dtype=values.dtype, device=values.device)
    return buffer.index_add(0, operator.mesh_index.flatten(), weighted.flatten())


def squared_wavevectors(cell: Tensor, shape: List[int]) -> Tensor:
    """k² (1/Å²) on the rfft grid of a mesh of ``shape``, k = 2π m cell⁻ᵀ (differentiable in the cell)."""
    device = cell.device
    m0 = torch.fft.fftfreq(shape[0], 1.0 / shape[0], device=device).to(cell.dtype)
    m1 = torch.fft.fftfreq(shape[1], 1.0 / shape[1], device=device).to(cell.dtype)
    m2 = torch.fft.rfftfreq(shape[2], 1.0 / shape[2], device=device).to(cell.dtype)
    reciprocal = 2.0 * math.pi * torch.linalg.inv(cell).transpose(0, 1)  # rows b_d, a_c · b_d = 2π δ_cd
    k = (m0[:, None, None, None] * reciprocal[0] + m1[None, :, None, None] * reciprocal[1]
         + m2[None, None, :, None] * reciprocal[2])
    return (k * k).sum(dim=-1)


def coulomb_kernel(k2: Tensor, smearing: float) -> Tensor:
    """K̂(k) = 4π k_e exp(−η²k²/2)/k² (eV Å/e²), 0 at k = 0: the Fourier transform of k_e erf(r/(√2η))/r."""
    zero = k2 == 0
    k2_safe = torch.where(zero, torch.ones_like(k2), k2)
    kernel = 4.0 * math.pi * coulomb_constant() * torch.exp(-0.5 * smearing * smearing * k2_safe) / k2_safe
    return torch.where(zero, torch.zeros_like(kernel), kernel)


def ewald_mesh(positions: Tensor, structures: Structures, smearing: float, spacing: float,
               order: int = 6) -> MeshOperator:
    """Φ^rec of every periodic structure by smooth PME: f(k) = K̂(k) |b(k)|².

    ``smearing`` is the Ewald width η (Å), ``spacing`` the largest mesh spacing
    (Å), ``order`` the (even) B-spline order. Spacing η/2 and order 6 give a
    relative error of the energy of ~1e-5 (forces ~1e-4).
    """
    if order % 2 != 0 or order < 2:
        raise ValueError("the smooth-PME B-spline order must be even and ≥ 2; got {}".format(order))
    operator = spline_mesh(positions, structures, spacing, order)
    filters: List[Tensor] = []
    graphs: List[int] = torch.nonzero(structures.periodic).flatten().tolist()
    for slot, g in enumerate(graphs):
        shape = operator.shapes[slot]
        kernel = coulomb_kernel(squared_wavevectors(structures.cell[g], shape), smearing)
        b0 = euler_factors(shape[0], order, positions.dtype, positions.device)
        b1 = euler_factors(shape[1], order, positions.dtype, positions.device)
        b2 = euler_factors(shape[2], order, positions.dtype, positions.device)[: shape[2] // 2 + 1]
        euler = b0[:, None, None] * b1[None, :, None] * b2[None, None, :]
        points = shape[0] * shape[1] * shape[2]
        filters.append(kernel * euler * (points / structures.volume[g]))
    return with_filters(operator, filters)


def apply_mesh(operator: MeshOperator, values: Tensor) -> Tensor:
    """F v at every atom of the batch (zero on atoms of isolated structures)."""
    out = torch.zeros_like(values)
    if operator.atoms.shape[0] == 0:
        return out
    buffer = spread(operator, values)
    filtered: List[Tensor] = []
    for slot, shape in enumerate(operator.shapes):
        start = operator.starts[slot]
        mesh = buffer[start : start + shape[0] * shape[1] * shape[2]].view(shape[0], shape[1], shape[2])
        filtered.append(torch.fft.irfftn(torch.fft.rfftn(mesh) * operator.filters[slot], s=shape).flatten())
    potential = torch.cat(filtered)[operator.mesh_index]
    return out.index_add(0, operator.atoms, (potential * operator.spline_weight).sum(dim=1))
