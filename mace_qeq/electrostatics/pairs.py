"""Real-space pair lists: every pair of an isolated structure, and the pairs of
a periodic structure (lattice images included) within its real-space cut-off.

Pairs are *half* lists: each unordered pair (i, j, S) ≡ (j, i, −S) appears once,
the periodic images of an atom with itself (i, i, S ≠ 0) included once per ±S.
The displacement of a pair is rⱼ − rᵢ + S·cell, evaluated in torch from the
integer shifts S so that gradients reach positions and cell (stress).

The periodic neighbour search uses vesin (cell lists, handles cut-offs
larger than the cell) once per periodic structure, since each has its own cell
and cut-off. Compiled TorchScript code uses a pure-torch search over lattice
images instead, so that a saved model needs no compiled extension to load
(MACE's calculator, LAMMPS). Isolated structures need no search: all their
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


def _image_search(positions: Tensor, cell: Tensor, cutoff: float) -> List[Tensor]:
    """Half list (i, j, S) with |rⱼ − rᵢ + S·cell| < cutoff by looping over lattice images.

    Atoms are wrapped into the cell first (r = r_w + O·cell with integer O), so
    images |S'_d| ≤ ⌈cutoff / plane spacing_d⌉ + 1 of the wrapped atoms cover
    every pair; the shift of the original atoms is S = S' + Oᵢ − Oⱼ. The
    half list keeps S' = 0 with i < j and every (i, j) for S' in one half of
    the image lattice (S and −S describe the same pair).
    """
    n = positions.shape[0]
    inverse = torch.linalg.inv(cell)
    fractional = positions @ inverse
    offsets = torch.floor(fractional)
    wrapped = positions - offsets @ cell
    spacing = 1.0 / torch.linalg.norm(inverse, dim=0)  # distance between lattice planes
    reach: List[int] = (torch.ceil(cutoff / spacing) + 1).to(torch.long).tolist()
    first = torch.arange(n, device=positions.device)[:, None].expand(n, n)
    second = torch.arange(n, device=positions.device)[None, :].expand(n, n)
    firsts: List[Tensor] = []
    seconds: List[Tensor] = []
    shifts: List[Tensor] = []
    for a in range(0, reach[0] + 1):
        for b in range(-reach[1] if a > 0 else 0, reach[1] + 1):
            for c in range(-reach[2] if (a > 0 or b > 0) else 0, reach[2] + 1):
                image = torch.tensor([a, b, c], dtype=positions.dtype, device=positions.device)
                vector = wrapped[None, :, :] - wrapped[:, None, :] + image @ cell
                keep = (vector * vector).sum(dim=2) < cutoff * cutoff
                if a == 0 and b == 0 and c == 0:
                    keep = keep & (second > first)
                i = first[keep]
                j = second[keep]
                firsts.append(i)
                seconds.append(j)
                shifts.append(image[None, :] + offsets[i] - offsets[j])
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
            found = _image_search(atoms, cell, float(cutoff[g]))
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
