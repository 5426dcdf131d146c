"""Shared by the benchmarks: one case per fresh process, timing and peak memory on the CPU or a GPU, log–log
slopes and saving their plots."""

import multiprocessing
import resource
import time
from queue import Empty

import numpy as np
import torch


def run_in_fresh_process(target, *args) -> dict:
    """Run ``target(*args, queue)`` in a new (spawned) process and return what it puts on the queue.

    A fresh process gives each case its own peak resident memory; a case that
    crashes fails the benchmark instead of hanging it.
    """
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except Empty:
            if not process.is_alive():
                raise RuntimeError(f"benchmark case failed (exit code {process.exitcode}); see its traceback above")
    process.join()
    return result


def synchronised_ms(device, work):
    """Run ``work()`` and return (its result, wall time in ms, with the device's queue drained)."""
    is_cuda = torch.device(device).type == "cuda"
    if is_cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = work()
    if is_cuda:
        torch.cuda.synchronize(device)
    return result, 1e3 * (time.perf_counter() - start)


def peak_memory_mb(device, baseline_mb: float = 0.0) -> float:
    """Peak resident memory of this process (CPU) or peak allocated on the device (GPU), in MB, less
    ``baseline_mb``."""
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20 - baseline_mb
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline_mb


def loglog_slope(sizes, values) -> float:
    """Least-squares slope of log(value) against log(size): the scaling exponent."""
    if len(sizes) < 2:
        return float("nan")
    return float(np.polyfit(np.log(sizes), np.log(values), 1)[0])


def save_loglog_figure(fig, axes, path) -> None:
    """Grid and legend on every panel, then write ``path`` (PNG)."""
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
