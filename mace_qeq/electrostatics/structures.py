"""A batch of structures: which atom belongs where, and each structure's cell.

Every electrostatics function takes the flat MACE layout (positions [N, 3] and a
``batch`` vector [N] that assigns each atom to one of G structures, atoms of a
structure contiguous). :func:`describe_structures` checks that layout once and
returns the index bookkeeping the solvers share, including the "padded" view in
which structure g's atoms occupy rows 0..n_g-1 of a [G, n_max, ...] tensor.
"""

from typing import List, NamedTuple, Optional

import torch
from torch import Tensor


class Structures(NamedTuple):
    """Index bookkeeping and cells of a batch of G structures with N atoms in all."""

    batch: Tensor  # [N] structure of each atom (int64, non-decreasing)
    num_structures: int  # G
    num_atoms: Tensor  # [G] atoms per structure
    first_atom: Tensor  # [G] index of each structure's first atom
    local_index: Tensor  # [N] index of each atom inside its structure
    max_atoms: int  # n_max = max_g num_atoms[g]
    cell: Tensor  # [G, 3, 3] lattice vectors as rows (Å)
    periodic: Tensor  # [G] bool: periodic in all three directions
    volume: Tensor  # [G] |det cell| (Å³); 1 for isolated structures


def _fail(message: str):
    raise ValueError(message)


def _as_graph_cells(cell: Optional[Tensor], num_structures: int, like: Tensor) -> Tensor:
    if cell is None:
        return torch.zeros(num_structures, 3, 3, dtype=like.dtype, device=like.device)
    cell = cell.to(like.dtype)
    if cell.dim() == 2 and cell.shape[0] == 3 and cell.shape[1] == 3:
        return cell.unsqueeze(0).expand(num_structures, 3, 3)
    if cell.dim() == 2 and cell.shape[1] == 3 and cell.shape[0] == 3 * num_structures:
        return cell.view(num_structures, 3, 3)  # MACE's stacked [3G, 3] layout
    if cell.dim() == 3 and cell.shape[0] == num_structures and cell.shape[1] == 3 and cell.shape[2] == 3:
        return cell
    _fail(
        "cell must have shape [3, 3], [G, 3, 3] or [3G, 3] with G = {} structures; got {}".format(
            num_structures, list(cell.shape)
        )
    )
    return cell


def _as_graph_pbc(pbc: Optional[Tensor], num_structures: int, device: torch.device) -> Tensor:
    if pbc is None:
        return torch.zeros(num_structures, 3, dtype=torch.bool, device=device)
    pbc = pbc.to(torch.bool)
    if pbc.dim() == 1 and pbc.shape[0] == 3:
        return pbc.unsqueeze(0).expand(num_structures, 3)
    if pbc.dim() == 2 and pbc.shape[1] == 3 and pbc.shape[0] == num_structures:
        return pbc
    _fail(
        "pbc must have shape [3] or [G, 3] with G = {} structures; got {}".format(
            num_structures, list(pbc.shape)
        )
    )
    return pbc


def describe_structures(
    positions: Tensor,
    cell: Optional[Tensor] = None,
    pbc: Optional[Tensor] = None,
    batch: Optional[Tensor] = None,
    num_structures: Optional[int] = None,
) -> Structures:
    """Validate the flat batch layout and return its :class:`Structures`.

    Raises ``ValueError`` naming the structure for non-finite positions, a batch
    vector that is not sorted, mixed periodicity (slabs are not supported) and
    a periodic structure whose cell is singular.
    """
    if positions.dim() != 2 or positions.shape[1] != 3:
        _fail("positions must have shape [N, 3]; got {}".format(list(positions.shape)))
    n_atoms = positions.shape[0]
    device = positions.device
    if batch is None:
        batch = torch.zeros(n_atoms, dtype=torch.long, device=device)
    batch = batch.to(torch.long)
    if batch.dim() != 1 or batch.shape[0] != n_atoms:
        _fail("batch must have shape [N] = [{}]; got {}".format(n_atoms, list(batch.shape)))
    if n_atoms > 0 and bool((batch[1:] < batch[:-1]).any()):
        _fail("batch must be non-decreasing (the atoms of a structure contiguous), as in MACE")
    if n_atoms > 0 and int(batch[0]) < 0:
        _fail("batch holds negative structure indices")
    if num_structures is None:
        num_structures = int(batch[-1]) + 1 if n_atoms > 0 else 0
    elif n_atoms > 0 and int(batch[-1]) >= num_structures:
        _fail(
            "batch refers to structure {} but only {} structures were given".format(
                int(batch[-1]), num_structures
            )
        )
    num_atoms = torch.bincount(batch, minlength=num_structures)
    first_atom = torch.cumsum(num_atoms, 0) - num_atoms
    local_index = torch.arange(n_atoms, device=device) - first_atom[batch]
    max_atoms = int(num_atoms.max()) if num_structures > 0 else 0

    finite = torch.isfinite(positions).all(dim=1)
    if not bool(finite.all()):
        atom = int(torch.nonzero(~finite)[0, 0])
        _fail(
            "positions of structure {} contain NaN or inf (atom {} of that structure)".format(
                int(batch[atom]), int(local_index[atom])
            )
        )

    cells = _as_graph_cells(cell, num_structures, positions)
    pbcs = _as_graph_pbc(pbc, num_structures, device)
    periodic = pbcs.all(dim=1)
    mixed = pbcs.any(dim=1) & ~periodic
    if bool(mixed.any()):
        g = int(torch.nonzero(mixed)[0, 0])
        flags: List[bool] = [bool(p) for p in pbcs[g]]
        _fail(
            "structure {} has pbc = {}: mixed periodicity (slabs, wires) is not supported; "
            "make it periodic in all three directions or in none".format(g, flags)
        )
    # |a · (b × c)|: the determinant without linalg.det, whose backward fails for a float32 cell under a
    # float64 gradient (what a float32 model gets from MACE's float64-promoted ops under a float64 default)
    volume = (cells[:, 0] * torch.linalg.cross(cells[:, 1], cells[:, 2])).sum(dim=1).abs()
    # A cell is singular when its volume is negligible next to the box its edges span.
    edge_product = torch.linalg.norm(cells, dim=2).prod(dim=1)
    singular = periodic & ((volume <= 1e-8 * edge_product) | (edge_product == 0) | ~torch.isfinite(volume))
    if bool(singular.any()):
        g = int(torch.nonzero(singular)[0, 0])
        _fail(
            "structure {} is periodic but its cell is singular (volume {} Å³); "
            "give three linearly independent lattice vectors".format(g, float(volume[g]))
        )
    volume = torch.where(periodic, volume, torch.ones_like(volume))
    return Structures(
        batch=batch,
        num_structures=num_structures,
        num_atoms=num_atoms,
        first_atom=first_atom,
        local_index=local_index,
        max_atoms=max_atoms,
        cell=cells,
        periodic=periodic,
        volume=volume,
    )


def check_per_atom(values: Tensor, name: str, structures: Structures, positive: bool):
    """Check a per-atom input: shape [N], finite and, if ``positive``, > 0."""
    n_atoms = structures.batch.shape[0]
    if values.dim() != 1 or values.shape[0] != n_atoms:
        _fail("{} must have shape [N] = [{}]; got {}".format(name, n_atoms, list(values.shape)))
    bad = ~torch.isfinite(values)
    if positive:
        bad = bad | (values <= 0)
    if bool(bad.any()):
        atom = int(torch.nonzero(bad)[0, 0])
        _fail(
            "{} must be {}: structure {}, atom {} has {} = {}".format(
                name,
                "finite and > 0" if positive else "finite",
                int(structures.batch[atom]),
                int(structures.local_index[atom]),
                name,
                float(values[atom]),
            )
        )


def check_per_structure(values: Tensor, name: str, structures: Structures):
    """Check a per-structure input: shape [G] and finite."""
    if values.dim() != 1 or values.shape[0] != structures.num_structures:
        _fail(
            "{} must have one value per structure, shape [G] = [{}]; got {}".format(
                name, structures.num_structures, list(values.shape)
            )
        )
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        _fail("{} of structure {} is not finite".format(name, int(torch.nonzero(bad)[0, 0])))


def to_padded(values: Tensor, structures: Structures) -> Tensor:
    """Scatter per-atom ``values`` [N, ...] into a zero-padded [G, n_max, ...] tensor."""
    shape: List[int] = [structures.num_structures, structures.max_atoms] + list(values.shape[1:])
    padded = torch.zeros(shape, dtype=values.dtype, device=values.device)
    return padded.index_put((structures.batch, structures.local_index), values)


def from_padded(padded: Tensor, structures: Structures) -> Tensor:
    """Inverse of :func:`to_padded`: gather [G, n_max, ...] back to [N, ...]."""
    return padded[structures.batch, structures.local_index]


def sum_per_structure(values: Tensor, structures: Structures) -> Tensor:
    """Σ over the atoms of each structure of per-atom ``values`` [N] → [G]."""
    out = torch.zeros(structures.num_structures, dtype=values.dtype, device=values.device)
    return out.index_add(0, structures.batch, values)
