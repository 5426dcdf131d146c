"""Cost of the long-range part: MACEQEq (dense and iterative QEq) against plain MACE.

For periodic NaCl-like (rattled rock salt) and water-like (H2O at 1 g/cm³)
boxes from ~100 to ~20,000 atoms, times one energy + forces + stress
evaluation of

* plain MACE (ScaleShiftMACE, 64x0e, max_ell 3, correlation 3, r_max 5 Å,
  2 layers: about the cost of a small foundation model),
* MACEQEq with the same backbone, dense QEq (up to ``--dense-max`` atoms),
* MACEQEq, iterative QEq (projected CG with particle-mesh Ewald),
* the same without charge feedback (``qeq_charge_feedback=False``), which
  shows what feeding q* into the last interaction costs at scale,

all randomly initialised, float32 (production MD precision), each case in a
fresh process so that its peak resident memory is its own. The long-range part
is timed on its own (the QEq + Ewald block: solve, energy, forces, stress; the
χ/J readout is a small MLP) and also shows as MACEQEq − MACE in the full
timings. Writes ``results/scaling.{json,md,png}`` (``scaling_cuda.*`` on a GPU).

    python benchmarks/scaling.py                 # CPU: ~15 min
    python benchmarks/scaling.py --quick         # up to 1,000 atoms
    python benchmarks/scaling.py --device cuda   # GPU: 1,000 to 100,000 atoms
    python benchmarks/scaling.py --replot        # tables and plot again from results/scaling.json

On a GPU the times are taken between ``torch.cuda.synchronize()`` calls and the
memory is the peak allocated on the device above the model's.
"""

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch
from harness import loglog_slope, peak_memory_mb, run_in_fresh_process, save_loglog_figure, synchronised_ms

from mace_qeq.electrostatics import QEqOptions, solve_qeq

RESULTS = Path(__file__).parent / "results"
VARIANTS = ("mace", "qeq-dense", "qeq-iterative", "qeq-iterative-no-feedback")
ELEMENTS = [1, 8, 11, 17]


def nacl_box(n_atoms, seed=0):
    import ase.build

    repeats = max(1, round((n_atoms / 8) ** (1 / 3)))
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True) * ((repeats,) * 3)
    atoms.rattle(0.1, seed=seed)
    return atoms


def water_box(n_atoms, seed=0):
    from ase import Atoms
    from scipy.spatial.transform import Rotation

    side = max(1, round((n_atoms / 3) ** (1 / 3)))
    spacing = (2.99e1) ** (1 / 3)  # Å: 29.9 Å³ per molecule is 1 g/cm³
    rng = np.random.default_rng(seed)
    angle = np.radians(104.5 / 2)
    molecule = np.array([[0, 0, 0], [0.96 * np.sin(angle), 0, 0.96 * np.cos(angle)],
                         [-0.96 * np.sin(angle), 0, 0.96 * np.cos(angle)]])
    positions, symbols = [], []
    for i in range(side):
        for j in range(side):
            for k in range(side):
                rotation = Rotation.random(random_state=rng.integers(1 << 31)).as_matrix()
                positions.extend(molecule @ rotation.T + spacing * np.array([i, j, k]))
                symbols.extend("OHH")
    return Atoms(symbols, positions=positions, cell=np.eye(3) * spacing * side, pbc=True)


def build_model(variant, dtype):
    import mace_qeq.modules  # noqa: F401
    from e3nn import o3
    from mace import modules

    from mace_qeq.modules import MACEQEq

    torch.set_default_dtype(dtype)
    torch.manual_seed(0)
    config = dict(
        r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=2, num_elements=len(ELEMENTS), hidden_irreps=o3.Irreps("64x0e"),
        MLP_irreps=o3.Irreps("16x0e"), atomic_energies=np.zeros(len(ELEMENTS)), avg_num_neighbors=20.0,
        atomic_numbers=ELEMENTS, correlation=3, gate=torch.nn.functional.silu,
        atomic_inter_scale=1.0, atomic_inter_shift=0.0,
    )
    if variant == "mace":
        return modules.ScaleShiftMACE(**config)
    model = MACEQEq(**config, qeq_accuracy=1e-6, qeq_charge_feedback=variant != "qeq-iterative-no-feedback")
    with torch.no_grad():  # visible charge transfer: spread the per-element electronegativities
        model.qeq_readout.electronegativity_offset[:, 0] = torch.tensor([1.0, -2.0, 2.0, -2.0])
    model.charge_equilibration.dense_limit = 10**9 if variant == "qeq-dense" else 0  # the others iterate
    model.charge_equilibration.tolerance = 1e-5
    return model


def to_batch(atoms, device):
    from mace import data as mace_data
    from mace.tools import AtomicNumberTable, torch_geometric

    config = mace_data.config_from_atoms(atoms, key_specification=mace_data.KeySpecification())
    graph = mace_data.AtomicData.from_config(config, z_table=AtomicNumberTable(ELEMENTS), cutoff=5.0)
    batch = torch_geometric.batch.Batch.from_data_list([graph]).to_dict()
    return {k: v.to(device=device, dtype=torch.get_default_dtype() if v.is_floating_point() else v.dtype)
            for k, v in batch.items()}


def time_long_range(model, batch):
    """The QEq + Ewald block alone (solve, energy, forces and stress), with χ, J of MACE-like spread.

    Returns (ms, conjugate-gradient iterations of the same solve; 0 on the dense path).
    """
    block = model.charge_equilibration
    g = torch.Generator().manual_seed(1)
    n = batch["positions"].shape[0]
    dtype, device = batch["positions"].dtype, batch["positions"].device
    element_chi = torch.tensor([1.0, -2.0, 2.0, -2.0], dtype=dtype, device=device)
    chi = batch["node_attrs"] @ element_chi + 0.3 * torch.randn(n, generator=g, dtype=dtype).to(device)
    hardness = 5.0 + torch.rand(n, generator=g, dtype=dtype).to(device)
    sigma = model.gaussian_widths(batch["node_attrs"]).detach()
    positions = batch["positions"].clone().requires_grad_(True)
    strain = torch.zeros(1, 3, 3, dtype=dtype, device=device, requires_grad=True)
    cell = batch["cell"].view(1, 3, 3)
    total_charge = torch.zeros(1, dtype=dtype, device=device)

    def block_energy_forces_stress():
        out = block(positions + positions @ strain[0], chi, hardness, sigma, total_charge,
                    cell + cell @ strain, batch["pbc"].view(1, 3), batch["batch"], False, False)
        return torch.autograd.grad(out.energy.sum(), [positions, strain])

    _, elapsed = synchronised_ms(device, block_energy_forces_stress)
    with torch.no_grad():
        iterations = solve_qeq(batch["positions"], chi, hardness, sigma, total_charge, cell,
                               batch["pbc"].view(1, 3), batch["batch"], block.options(False),
                               differentiate_charges=False).iterations
    return elapsed, iterations


def run_case(system, n_atoms, variant, dtype_name, device_name, queue):
    torch.set_num_threads(torch.get_num_threads())
    device = torch.device(device_name)
    model = build_model(variant, getattr(torch, dtype_name)).to(device)
    make = nacl_box if system == "NaCl" else water_box
    atoms = make(n_atoms)
    small, batch = (to_batch(make(64), device), to_batch(atoms, device))
    model(dict(small), compute_stress=True)  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    baseline = peak_memory_mb(device)
    times = []
    for _ in range(2 if len(atoms) <= 3000 else 1):
        out, elapsed = synchronised_ms(device, lambda: model(dict(batch), compute_stress=True))
        times.append(elapsed)
    result = {"atoms": len(atoms), "ms": min(times), "peak_mb": max(peak_memory_mb(device, baseline), 0.0),
              "finite": bool(torch.isfinite(out["forces"]).all())}
    if variant in ("qeq-dense", "qeq-iterative"):  # the block is the same without feedback
        timings = [time_long_range(model, batch) for _ in range(2 if len(atoms) <= 3000 else 1)]
        result["block_ms"] = min(ms for ms, _ in timings)
        result["iterations"] = timings[0][1]
    queue.put(result)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="*")
    parser.add_argument("--dense-max", type=int, default=3000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--replot", action="store_true", help="no measurement: re-render the saved rows")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no GPU here")
    on_gpu = args.device != "cpu"
    sizes = args.sizes or ([100, 300, 1000] if args.quick else
                           [1000, 3000, 10000, 30000, 100000] if on_gpu else [100, 300, 1000, 3000, 10000, 20000])
    if args.replot:
        saved = json.loads((args.output / f"scaling{suffix(args.device)}.json").read_text())
        report(saved["rows"], saved["machine"], args)
        return

    rows = []
    print(f"{'system':>6} {'atoms':>6} {'MACE ms':>9} {'dense ms':>9} {'iter ms':>9} {'no-fb ms':>9} {'LR/MACE':>8} "
          f"{'MACE MB':>8} {'iter MB':>8} {'no-fb MB':>8}", flush=True)
    for system in ("NaCl", "water"):
        for n in sizes:
            row = {"system": system}
            for variant in VARIANTS:
                if variant == "qeq-dense" and n > args.dense_max:
                    continue
                result = run_in_fresh_process(run_case, system, n, variant, args.dtype, args.device)
                row["atoms"] = result["atoms"]
                row[variant] = result
            lr = row["qeq-iterative"]["block_ms"]
            row["long_range_ms"] = lr
            row["long_range_ratio"] = lr / row["mace"]["ms"]
            row["long_range_mb"] = row["qeq-iterative"]["peak_mb"] - row["mace"]["peak_mb"]
            rows.append(row)
            dense = row.get("qeq-dense", {}).get("ms", float("nan"))
            plain = row["qeq-iterative-no-feedback"]
            print(f"{system:>6} {row['atoms']:>6} {row['mace']['ms']:>9.0f} {dense:>9.0f} "
                  f"{row['qeq-iterative']['ms']:>9.0f} {plain['ms']:>9.0f} {row['long_range_ratio']:>8.2f} "
                  f"{row['mace']['peak_mb']:>8.0f} {row['qeq-iterative']['peak_mb']:>8.0f} {plain['peak_mb']:>8.0f}",
                  flush=True)
    name = torch.cuda.get_device_name() if on_gpu else \
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    machine = {"device": args.device, "name": name, "torch": torch.__version__, "dtype": args.dtype}
    report(rows, machine, args)


def suffix(device: str) -> str:
    """File-name suffix of a device's results: none for the CPU, ``_cuda`` for a GPU."""
    return "" if device == "cpu" else f"_{device}"


def describe(machine: dict) -> str:
    """The machine a result was measured on, in words."""
    if "name" in machine:
        return machine["name"]
    return f"CPU ({machine['cpu']}, {machine['threads']} threads)"  # results written before --device


def report(rows, machine, args):
    """Write scaling.{json,md,png} (``scaling_cuda.*`` on a GPU) for the measured ``rows``."""
    stem = f"scaling{suffix(machine['device'])}"
    exponents = {}
    for system in ("NaCl", "water"):
        fitted = [r for r in rows if r["system"] == system and r["atoms"] >= 1000]
        exponents[system] = loglog_slope([r["atoms"] for r in fitted], [r["long_range_ms"] for r in fitted])
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / f"{stem}.json").write_text(json.dumps(
        {"machine": machine, "rows": rows, "long_range_exponent_from_1000_atoms": exponents}, indent=2))

    lines = [
        "# Long-range cost: MACEQEq vs plain MACE (energy + forces + stress)",
        "",
        f"Machine: {describe(machine)}, torch {machine['torch']}, {machine['dtype']}.",
        "Backbone: 64x0e, max_ell 3, correlation 3, r_max 5 Å, 2 layers; random weights.",
        "Command: `python benchmarks/scaling.py"
        + (f" --device {machine['device']}" if machine["device"] != "cpu" else "")
        + (f" --sizes {' '.join(map(str, args.sizes))}" if args.sizes else "")
        + (" --quick`" if args.quick else "`"),
        "",
        "Iterative: QEq by projected CG with particle-mesh Ewald; \"without feedback\": the same model with "
        "`qeq_charge_feedback=False`. The last column is MACEQEq iterative's peak less MACE's (the whole model, "
        "feedback included).",
        "",
        "| system | atoms | MACE (ms) | MACEQEq dense (ms) | MACEQEq iterative (ms) | without feedback (ms) |"
        " long-range block (ms) | CG iterations | long-range / MACE | long-range share of the step | MACE peak (MB) |"
        " iterative peak (MB) | without feedback peak (MB) | MACEQEq − MACE peak (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def cell(row, variant, key):  # "—" where the variant did not run (too large, or results from before it)
        value = row.get(variant, {}).get(key)
        return "—" if value is None else f"{value:.0f}"

    for r in rows:
        lines.append(
            f"| {r['system']} | {r['atoms']} | {r['mace']['ms']:.0f} | {cell(r, 'qeq-dense', 'ms')} | "
            f"{r['qeq-iterative']['ms']:.0f} | {cell(r, 'qeq-iterative-no-feedback', 'ms')} | "
            f"{r['long_range_ms']:.0f} | {r['qeq-iterative'].get('iterations', '—')} | "
            f"{r['long_range_ratio']:.2f} | {r['long_range_ms'] / r['qeq-iterative']['ms']:.2f} | "
            f"{r['mace']['peak_mb']:.0f} | {r['qeq-iterative']['peak_mb']:.0f} | "
            f"{cell(r, 'qeq-iterative-no-feedback', 'peak_mb')} | {r['long_range_mb']:.0f} |")
    lines += ["", "Fitted exponent of the long-range time (block alone), all sizes from 1,000 atoms: "
              + ", ".join(f"{k}: {v:.2f}" for k, v in exponents.items())]
    (args.output / f"{stem}.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for system, marker in (("NaCl", "o"), ("water", "s")):
        subset = [r for r in rows if r["system"] == system]
        n = [r["atoms"] for r in subset]
        axes[0].loglog(n, [r["mace"]["ms"] for r in subset], "-", marker=marker, label=f"MACE {system}")
        axes[0].loglog(n, [max(r["long_range_ms"], 1e-1) for r in subset], "--", marker=marker,
                       label=f"long range {system} (slope {exponents[system]:.2f})")
        dense = [r for r in subset if "qeq-dense" in r]
        axes[0].loglog([r["atoms"] for r in dense], [r["qeq-dense"]["block_ms"] for r in dense], ":",
                       marker=marker, label=f"long range dense {system}")
        axes[1].loglog(n, [max(r["mace"]["peak_mb"], 1) for r in subset], "-", marker=marker, label=f"MACE {system}")
        axes[1].loglog(n, [max(r["qeq-iterative"]["peak_mb"], 1) for r in subset], "--", marker=marker,
                       label=f"MACEQEq iterative {system}")
        plain = [r for r in subset if "qeq-iterative-no-feedback" in r]
        axes[1].loglog([r["atoms"] for r in plain], [max(r["qeq-iterative-no-feedback"]["peak_mb"], 1) for r in plain],
                       ":", marker=marker, label=f"without feedback {system}")
    axes[0].set(xlabel="atoms", ylabel="time (ms)", title="energy + forces + stress")
    axes[1].set(xlabel="atoms", ylabel="peak memory above baseline (MB)", title="memory")
    save_loglog_figure(fig, axes, args.output / f"{stem}.png")
    print("\n".join(lines[-1:]))
    print(f"wrote {args.output}/{stem}.{{json,md,png}}")


if __name__ == "__main__":
    main()
