"""Real-space pair lists: every pair of an isolated structure, and the pairs of
a periodic structure (lattice images included) within its real-space cut-off.

Pairs are *half* lists: each unordered pair (i, j, S) ≡ (j, i, −S) appears once,
the periodic images of an atom with itself (i, i, S ≠ 0) included once per ±S.
The displacement of a pair is rⱼ − rᵢ + S·cell, evaluated in torch from the
integer shifts S so that gradients reach positions and cell (stress).

The periodic neighbour search uses vesin (TorchScript-compatible, handles
cut-offs larger than the cell); it runs once per periodic structure, since
each has its own cell and cut-off. Isolated structures need no search: all
their pairs are enumerated by index arithmetic for the whole batch at once.
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
        search = NeighborList(cutoff=float(cutoff[g]), full_list=False)
        found = search.compute(
            positions[start : start + count].detach(), structures.cell[g].detach(), True, "ijS", True
        )
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
