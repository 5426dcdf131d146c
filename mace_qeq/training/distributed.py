"""Several training processes on CPUs (``--distributed --launcher torchrun --device cpu``).

mace 0.3.16 opens a process group only for cuda (nccl) and xpu (ccl), and
wraps the model as ``DDP(model, device_ids=[local_rank])``, which torch refuses
for a CPU module. The two replacements here open a gloo group on CPU and wrap
CPU models without device ids; on GPUs they do exactly what mace does.
"""

import torch
from torch.nn.parallel import DistributedDataParallel


def open_cpu_process_group(args) -> None:
    """A gloo process group for ``--distributed --device cpu`` (mace opened none)."""
    if args.distributed and args.device == "cpu" and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="gloo", init_method="env://")


def distributed_data_parallel(module: torch.nn.Module, device_ids=None, **kwargs) -> DistributedDataParallel:
    """``DistributedDataParallel``; device ids only for a module on an accelerator."""
    if next(module.parameters()).device.type == "cpu":
        return DistributedDataParallel(module, **kwargs)
    return DistributedDataParallel(module, device_ids=device_ids, **kwargs)
