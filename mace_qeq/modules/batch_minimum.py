"""The lowest value per element (pair) in a training batch, over all processes of a distributed run.

The energy floor and the contact wall learn from each training batch its
lowest value per element (pair). Under ``--distributed`` each process sees
its own share of the batch, and DDP overwrites every process's buffers with
those of rank 0 before each step, so without a reduction the statistics
would come from rank 0's structures only. Taking the minimum over processes
first gives every process the statistics of the whole global batch, exactly
those of one process that sees it all.
"""

import torch
from torch import Tensor


@torch.jit.unused
def _all_reduce_minimum(values: Tensor) -> Tensor:
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return values
    reduced = values.clone()
    torch.distributed.all_reduce(reduced, op=torch.distributed.ReduceOp.MIN)
    return reduced


def batch_minimum(values: Tensor, slot: Tensor, like: Tensor) -> Tensor:
    """min of ``values`` [M] per ``slot`` [M] (indices into the flat ``like``) over the global batch, in ``like``'s
    shape and dtype; inf where no value falls.

    A collective: under a process group, every process must call it in the same
    order, as every training step does. Scripted models (inference) never reduce."""
    local = torch.full_like(like, float("inf")).scatter_reduce(
        0, slot, values.detach().to(like.dtype), "amin", include_self=True)
    if torch.jit.is_scripting():
        return local
    return _all_reduce_minimum(local)
