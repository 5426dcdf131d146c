"""Refusal of overlapping atoms.

Two atoms at (nearly) the same place have no defined MACE features (the edge
direction is 0/0) and no meaningful energy; without a check the model returns
NaN, and the error surfaces far away (as a non-finite electronegativity).
TorchScript-compatible, so compiled models and the LAMMPS export refuse too.
"""

from torch import Tensor

#: Atoms closer than this (Å) overlap: no physical configuration comes near it.
OVERLAP_DISTANCE = 0.01


def refuse_overlapping_atoms(lengths: Tensor, edge_index: Tensor, batch: Tensor, ptr: Tensor,
                             minimum_distance: float = OVERLAP_DISTANCE):
    """Raise ``ValueError`` naming the first pair of atoms (indices within their
    structure) whose edge is shorter than ``minimum_distance`` (Å)."""
    close = lengths.flatten() < minimum_distance
    if bool(close.any()):
        edge = int(close.nonzero()[0, 0])
        sender = int(edge_index[0, edge])
        receiver = int(edge_index[1, edge])
        graph = int(batch[sender])
        start = int(ptr[graph])
        raise ValueError(
            "atoms {} and {} of structure {} are {} Å apart, closer than {} Å: overlapping atoms have no "
            "defined energy; check the geometry".format(
                sender - start, receiver - start, graph, float(lengths.flatten()[edge]), minimum_distance)
        )
