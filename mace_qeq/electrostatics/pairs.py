"""Real-space pair lists: every pair of an isolated structure, and the pairs of
a periodic structure (lattice images included) within its real-space cut-off.

Pairs are *half* lists: each unordered pair (i, j, S) ≡ (j, i, −S) appears once,
the periodic images of an atom with itself (i, i, S ≠ 0) included once per ±S.
The displacement of a pair is rⱼ − rᵢ + S·cell, evaluated in torch from the
integer shifts S so that gradients reach positions and cell (stress).

The periodic neighbour search uses vesin (cell lists, handles cut-offs
larger than the cell) once per periodic structure, since each has its own cell
and cut-off. Compiled TorchScript code uses a pure-torch cell list instead, so
that a saved model needs no compiled extension to load (MACE's calculator,
LAMMPS). Isolated structures need no search: all their
pairs are enumerated by index arithmetic for the whole batch at once.
"""

from typing import List, NamedTuple

import torch
from torch import Tensor
from vesin_torch import NeighborList

from .structures import Structures


class PairList(NamedTuple):
    """Half list of real-space pairs (i, j, S): indices into the flat batch."""

    first: Tensor  # [P] i
    second: Tensor  # [P] j
    cell_shift: Tensor  # [P, 3] integer lattice shift S (stored in the positions' dtype)


def isolated_pairs(structures: Structures, select: Tensor) -> PairList:
    """All pairs i < j inside each selected (isolated) structure."""
    batch = structures.batch
    device = batch.device
    atoms = torch.nonzero(select[batch]).flatten()
    last_atom = structures.first_atom + structures.num_atoms - 1
    partners = last_atom[batch[atoms]] - atoms  # atoms j > i in the same structure
    first = torch.repeat_interleave(atoms, partners)
    starts = torch.cumsum(partners, 0) - partners
    rank = torch.arange(first.shape[0], device=device) - torch.repeat_interleave(starts, partners)
    second = first + 1 + rank
    return PairList(first, second, torch.zeros(first.shape[0], 3, dtype=structures.cell.dtype, device=device))


def _cell_list_search(positions: Tensor, cell: Tensor, cutoff: float) -> List[Tensor]:
    """Half list (i, j, S) with |rⱼ − rᵢ + S·cell| < cutoff by cell lists, in pure torch.

    Atoms are wrapped into the cell (r = r_w + O·cell, O integer) and binned
    along each lattice direction into bins at least cutoff/2 wide (at least one
    bin); a bin's partners are the bins up to ``reach`` = ⌈cutoff / bin width⌉
    away, wrapped periodically with the image shift S' they cross, so cut-offs
    larger than the cell work too. Each unordered image pair is kept once: bin
    offsets in one half of offset space, and i < j within a bin. The shift of the
    original atoms is S = S' + Oᵢ − Oⱼ. Cost ∝ N × (atoms within the cut-off).
    """
    device = positions.device
    dtype = positions.dtype
    inverse = torch.linalg.inv(cell)
    fractional = positions @ inverse
    offsets = torch.floor(fractional)
    wrapped = positions - offsets @ cell
    spacing = 1.0 / torch.linalg.norm(inverse, dim=0)  # distance between lattice planes
    counts_float = torch.clamp(torch.floor(2.0 * spacing / cutoff), min=1.0)
    counts: List[int] = counts_float.to(torch.long).tolist()
    reach: List[int] = torch.ceil(cutoff * counts_float / spacing).to(torch.long).tolist()
    shape = torch.tensor(counts, device=device)
    bins = torch.minimum(torch.floor((fractional - offsets) * counts_float).to(torch.long), shape - 1)
    bin_id = (bins[:, 0] * counts[1] + bins[:, 1]) * counts[2] + bins[:, 2]
    num_bins = counts[0] * counts[1] * counts[2]
    order = torch.argsort(bin_id, stable=True)
    occupancy = torch.bincount(bin_id, minlength=num_bins)
    width = int(occupancy.max())
    first_in_bin = torch.cumsum(occupancy, 0) - occupancy
    slot = torch.arange(order.shape[0], device=device) - first_in_bin[bin_id[order]]
    table = torch.full((num_bins, width), -1, dtype=torch.long, device=device)
    table[bin_id[order], slot] = order  # atoms of each bin, −1 padded
    cells = torch.stack(torch.meshgrid(torch.arange(counts[0], device=device), torch.arange(counts[1], device=device),
                                       torch.arange(counts[2], device=device), indexing="ij"), dim=-1).reshape(-1, 3)
    firsts: List[Tensor] = []
    seconds: List[Tensor] = []
    shifts: List[Tensor] = []
    for a in range(0, reach[0] + 1):
        for b in range(-reach[1] if a > 0 else 0, reach[1] + 1):
            for c in range(-reach[2] if (a > 0 or b > 0) else 0, reach[2] + 1):
                step = torch.tensor([a, b, c], device=device)
                target = cells + step
                image = torch.div(target, shape, rounding_mode="floor")
                target = target - image * shape
                partner = table[(target[:, 0] * counts[1] + target[:, 1]) * counts[2] + target[:, 2]]
                i = table[:, :, None].expand(num_bins, width, width)
                j = partner[:, None, :].expand(num_bins, width, width)
                keep = (i >= 0) & (j >= 0)
                if a == 0 and b == 0 and c == 0:
                    keep = keep & (j > i)
                image_shift = (image.to(dtype) @ cell)[:, None, None, :]
                vector = wrapped[j.clamp(min=0)] - wrapped[i.clamp(min=0)] + image_shift
                keep = keep & ((vector * vector).sum(dim=-1) < cutoff * cutoff)
                box = torch.nonzero(keep)
                first = i[keep]
                second = j[keep]
                firsts.append(first)
                seconds.append(second)
                shifts.append(image.to(dtype)[box[:, 0]] + offsets[first] - offsets[second])
    return [torch.cat(firsts), torch.cat(seconds), torch.cat(shifts)]


def periodic_pairs(positions: Tensor, structures: Structures, select: Tensor, cutoff: Tensor) -> PairList:
    """Pairs with |rⱼ − rᵢ + S·cell| < cutoff[g] in each selected (periodic) structure."""
    firsts: List[Tensor] = []
    seconds: List[Tensor] = []
    shifts: List[Tensor] = []
    graphs: List[int] = torch.nonzero(select).flatten().tolist()
    for g in graphs:
        start = int(structures.first_atom[g])
        count = int(structures.num_atoms[g])
        if count == 0:
            continue
        atoms = positions[start : start + count].detach()
        cell = structures.cell[g].detach()
        if torch.jit.is_scripting():
            found = _cell_list_search(atoms, cell, float(cutoff[g]))
        else:
            found = NeighborList(cutoff=float(cutoff[g]), full_list=False).compute(atoms, cell, True, "ijS", True)
        firsts.append(found[0].to(torch.long) + start)
        seconds.append(found[1].to(torch.long) + start)
        shifts.append(found[2].to(positions.dtype))
    if len(firsts) == 0:
        empty = torch.zeros(0, dtype=torch.long, device=positions.device)
        return PairList(empty, empty, torch.zeros(0, 3, dtype=positions.dtype, device=positions.device))
    return PairList(torch.cat(firsts), torch.cat(seconds), torch.cat(shifts))


def real_space_pairs(positions: Tensor, structures: Structures, cutoff: Tensor) -> PairList:
    """Isolated structures: all pairs; periodic ones: pairs within ``cutoff`` [G]."""
    isolated = isolated_pairs(structures, ~structures.periodic)
    periodic = periodic_pairs(positions, structures, structures.periodic, cutoff)
    return PairList(
        torch.cat([isolated.first, periodic.first]),
        torch.cat([isolated.second, periodic.second]),
        torch.cat([isolated.cell_shift, periodic.cell_shift]),
    )


def squared_distances(positions: Tensor, structures: Structures, pairs: PairList) -> Tensor:
    """|rⱼ − rᵢ + S·cell|² of every pair (Å²), differentiable in positions and cell."""
    cell = structures.cell[structures.batch[pairs.first]]
    shift = torch.bmm(pairs.cell_shift.unsqueeze(1), cell).squeeze(1)
    vector = positions[pairs.second] - positions[pairs.first] + shift
    return (vector * vector).sum(dim=1)
