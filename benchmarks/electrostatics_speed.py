"""Time and peak memory of the dense QEq path: energy + forces (+ stress for cells).

For isolated clusters and cubic periodic boxes (random atoms at 0.1 atoms/Å³,
liquid-like) from ~10 to ~5,000 atoms, in float32 and float64, one
``solve_qeq`` + ``autograd.grad`` per call. Each case runs in a fresh process
so that its peak resident memory (minus the memory after warm-up imports) is
its own. Writes ``results/electrostatics_speed.{json,md,png}``.

    python benchmarks/electrostatics_speed.py            # full table (CPU: ~5 min)
    python benchmarks/electrostatics_speed.py --quick    # up to 300 atoms
"""

import argparse
import json
import platform
import resource
from pathlib import Path

import torch
from harness import loglog_slope, run_in_fresh_process, save_loglog_figure, synchronised_ms

RESULTS = Path(__file__).parent / "results"
DENSITY = 0.1  # atoms / Å³


def make_system(n_atoms, periodic, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    length = (n_atoms / DENSITY) ** (1 / 3)
    positions = torch.rand(n_atoms, 3, generator=g, dtype=torch.float64) * length
    charges_sign = torch.arange(n_atoms) % 2
    chi = torch.where(charges_sign == 0, 2.0, -2.0).double() + 0.1 * torch.randn(n_atoms, generator=g, dtype=torch.float64)
    hardness = 6.0 + torch.rand(n_atoms, generator=g, dtype=torch.float64)
    sigma = 0.8 + 0.4 * torch.rand(n_atoms, generator=g, dtype=torch.float64)
    cell = torch.eye(3, dtype=torch.float64) * length if periodic else None
    cast = lambda t: None if t is None else t.to(dtype)  # noqa: E731
    return cast(positions), cast(chi), cast(hardness), cast(sigma), cast(cell)


def run_case(n_atoms, periodic, dtype_name, device, repeats, queue):
    from mace_qeq.electrostatics import QEqOptions, solve_qeq

    torch.set_num_threads(torch.get_num_threads())
    dtype = getattr(torch, dtype_name)
    positions, chi, hardness, sigma, cell = make_system(n_atoms, periodic, dtype)
    pbc = torch.tensor([periodic] * 3, device=device)
    total = torch.zeros(1, dtype=dtype, device=device)
    positions, chi, hardness, sigma = (t.to(device) for t in (positions, chi, hardness, sigma))
    cell = None if cell is None else cell.to(device)
    accuracy = 1e-6 if dtype == torch.float32 else 1e-8

    def step():
        strain = torch.zeros(3, 3, dtype=dtype, device=device, requires_grad=True)
        r = positions.clone().requires_grad_(True)
        deformation = torch.eye(3, dtype=dtype, device=device) + strain
        strained_cell = None if cell is None else cell @ deformation
        energy = solve_qeq(r @ deformation, chi, hardness, sigma, total, strained_cell, pbc,
                           options=QEqOptions(accuracy=accuracy, method="dense")).energy
        return torch.autograd.grad(-energy.sum(), [r, strain])

    small = make_system(8, periodic, dtype)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step()  # warm-up (allocator, threads)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = [synchronised_ms(device, step)[1] for _ in range(repeats)]
    if device == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline
    del small
    queue.put({"ms": min(times), "peak_mb": max(peak_mb, 0.0)})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="sizes up to 300 atoms")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit-from", type=int, default=500, help="fit the exponent on sizes ≥ this")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = args.sizes or ([10, 30, 100, 300] if args.quick else [10, 30, 100, 300, 1000, 2000, 3500, 5000])

    rows = []
    print(f"{'kind':>9} {'dtype':>8} {'atoms':>6} {'ms':>10} {'peak MB':>9}")
    for periodic in (False, True):
        for dtype_name in ("float64", "float32"):
            for n in sizes:
                repeats = args.repeats if n < 2000 else 1
                result = run_in_fresh_process(run_case, n, periodic, dtype_name, args.device, repeats)
                row = {"kind": "periodic" if periodic else "isolated", "dtype": dtype_name, "atoms": n, **result}
                rows.append(row)
                print(f"{row['kind']:>9} {dtype_name:>8} {n:>6} {row['ms']:>10.1f} {row['peak_mb']:>9.1f}", flush=True)

    exponents = {}
    for kind in ("isolated", "periodic"):
        for dtype_name in ("float64", "float32"):
            subset = [r for r in rows if r["kind"] == kind and r["dtype"] == dtype_name and r["atoms"] >= args.fit_from]
            exponents[f"{kind}/{dtype_name}"] = loglog_slope([r["atoms"] for r in subset], [r["ms"] for r in subset])
    machine = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    payload = {"what": "dense solve_qeq energy+forces(+virial)", "machine": machine, "rows": rows,
               "exponent_fit_from_atoms": args.fit_from, "exponents": exponents}
    (args.output / "electrostatics_speed.json").write_text(json.dumps(payload, indent=2))

    lines = [
        "# Dense QEq + Ewald: energy, forces and virial",
        "",
        f"Machine: {machine['device']} ({machine['cpu']}, {machine['threads']} threads), torch {machine['torch']}.",
        "Command: `python benchmarks/electrostatics_speed.py" + (" --quick`" if args.quick else "`"),
        "",
        "| kind | dtype | atoms | time (ms) | peak memory (MB) |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [f"| {r['kind']} | {r['dtype']} | {r['atoms']} | {r['ms']:.1f} | {r['peak_mb']:.1f} |" for r in rows]
    lines += ["", f"Fitted time exponent (sizes ≥ {args.fit_from} atoms): "
              + ", ".join(f"{k}: {v:.2f}" for k, v in exponents.items())]
    (args.output / "electrostatics_speed.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for kind, marker in (("isolated", "o"), ("periodic", "s")):
        for dtype_name, style in (("float64", "-"), ("float32", "--")):
            subset = [r for r in rows if r["kind"] == kind and r["dtype"] == dtype_name]
            label = f"{kind} {dtype_name} (slope {exponents[f'{kind}/{dtype_name}']:.2f})"
            axes[0].loglog([r["atoms"] for r in subset], [r["ms"] for r in subset], style, marker=marker, label=label)
            axes[1].loglog([r["atoms"] for r in subset], [max(r["peak_mb"], 1e-1) for r in subset], style,
                           marker=marker, label=f"{kind} {dtype_name}")
    axes[0].set(xlabel="atoms", ylabel="time (ms)", title="energy + forces (+ virial)")
    axes[1].set(xlabel="atoms", ylabel="peak memory (MB)", title="peak memory above baseline")
    fig.suptitle(f"mace-qeq dense QEq ({machine['device']})")
    save_loglog_figure(fig, axes, args.output / "electrostatics_speed.png")
    print("\n".join(lines[-1:]))
    print(f"wrote {args.output}/electrostatics_speed.{{json,md,png}}")


if __name__ == "__main__":
    main()
