"""Compiled models at scale: MACEQEq's ``*_compiled.model`` against MACE's, with the stock calculator.

    python benchmarks/compiled_scaling.py                       # CPU, float64, 1,000–20,000 atoms (hours)
    python benchmarks/compiled_scaling.py --max-atoms 5200      # CPU, 1,280–5,184 atoms (~30 min)
    python benchmarks/compiled_scaling.py --device cuda --dtype float32 --max-atoms 100000
    python benchmarks/compiled_scaling.py --max-atoms 4400 --executor-off   # also without TorchScript's optimiser

MACE and MACEQEq (energies and forces) are trained by their stock command
lines with the same backbone (32x0e+32x1o, 2 layers, r_max 5 Å) on NaCl(aq)
frames (revPBE0-D3, ../shared/datasets/nacl_water), which also writes their
TorchScript ``*_compiled.model``. Each is then loaded with ``torch.jit.load``
into MACE's stock ``MACECalculator`` (no mace-qeq involved) and times one
energy + forces + stress evaluation of replicated NaCl(aq) and liquid-water
(RPBE-D3, ../shared/datasets/water_rpbe_d3) cells, each size in a fresh
process that holds every variant and calls them in turn, five rounds, of which
the first two let TorchScript's profiling executor optimise; the time reported
is the median of the last three, and the ratio the median of the last three
rounds' ratios (these machines are shared: one call can take twice as long as
the next, and variants timed side by side see the same machine). Above
``dense_limit`` (500) atoms MACEQEq solves its charges by preconditioned
conjugate gradients with smooth PME, in the compiled model as in the eager
one; the eager MACEQEq is timed too, and its energy compared with the compiled
one. ``--executor-off`` times both compiled models also inside
``torch.jit.optimized_execution(False)``, which separates the cost of the
graphs TorchScript's profiling executor optimises from that of the computation
itself. Writes results/compiled_scaling.{json,md,png}, with ``_cuda`` and
``_float32`` in the name for a GPU and for float32.
"""

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path

import ase.io
import numpy as np
import peer_models as pm
import torch
from harness import loglog_slope, run_in_fresh_process, save_loglog_figure, synchronised_ms
from mace_qeq.training import trained_model_path

#: (source frame, replications): ~1,000 to ~20,000 atoms.
SYSTEMS = {
    "NaCl(aq)": [(2, 2, 2), (3, 3, 3), (4, 4, 4), (5, 5, 5)],  # 160-atom frame: 1,280 to 20,000 atoms
    "water": [(2, 2, 2), (3, 3, 3), (4, 4, 4), (5, 5, 4)],  # 192-atom frame: 1,536 to 19,200 atoms
}
TRAIN_FRAMES = 32  # the timings need trained models, not accurate ones
CALLS = 5  # per case: two to let TorchScript optimise, the median of the last three is reported


def seconds(case: dict) -> float:
    """The time of one call: the median of the calls after the first two."""
    return float(np.median(case["seconds"][2:]))


def paired_ratio(numerator: dict, denominator: dict) -> float:
    """The median over rounds (after the first two) of the ratio of two variants timed in the same round."""
    return float(np.median(np.asarray(numerator["seconds"][2:]) / np.asarray(denominator["seconds"][2:])))


def frame(system: str):
    if system == "water":
        atoms = ase.io.read(pm.SHARED / "water_rpbe_d3" / "test-H2O_RPBE-D3.xyz", "0")
    else:
        from mace_qeq.datasets.runner import read_runner

        atoms = next(a for a in read_runner(pm.SHARED / "nacl_water" / "revPBE0-D3_gen1a.data") if len(a) == 160)
    atoms.info = {"charge": 0}
    atoms.arrays = {"numbers": atoms.arrays["numbers"], "positions": atoms.arrays["positions"]}
    return atoms


def trained_models(work: Path, device: str) -> dict:
    """MACE and MACEQEq (E, F) trained on NaCl(aq) frames, with their compiled models."""
    from training_throughput import nacl_water

    folder = work / "nacl_water_models"
    folder.mkdir(parents=True, exist_ok=True)
    train_file = folder / "train.xyz"
    if not train_file.exists():
        ase.io.write(train_file, nacl_water(TRAIN_FRAMES))
    paths = {}
    for name in ("MACE", "MACEQEq-EF"):
        model_folder = folder / name
        # trained again only when the command, the data or the code changed (see peer_models.train)
        run = pm.train(pm.MODELS[name], train_file, model_folder, 3, device, ["--batch_size", "4"])
        if run.status != "ok":
            raise RuntimeError(f"training {name} failed: {run.status}")
        paths[name] = {"compiled": str(trained_model_path(model_folder, name, compiled=True)), "eager": run.path}
    return paths


def file_digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def calculator_for(model_path: str, compiled: bool, dtype: str, device: str):
    """The stock MACECalculator on a compiled model, or mace-qeq's on an eager one."""
    if compiled:
        from mace.calculators import MACECalculator

        return MACECalculator(models=[torch.jit.load(model_path, map_location=device)], device=device,
                              default_dtype=dtype, model_type="MACE")
    from mace_qeq.calculators import MACEQEqCalculator

    return MACEQEqCalculator(model_paths=model_path, device=device, default_dtype=dtype)


def time_case(variants, system: str, repeat, dtype: str, device: str, queue):
    """Every variant (label, model path, compiled, optimize) on one configuration, side by side: each round
    moves the atoms (a new geometry, as in MD) and calls every variant once, so that the machine's drift
    hits all of them alike."""
    torch.set_default_dtype(getattr(torch, dtype))
    atoms = frame(system) * tuple(repeat)
    atoms.info = {"charge": 0}
    calculators = {label: calculator_for(path, compiled, dtype, device) for label, path, compiled, _ in variants}
    seconds = {label: [] for label, *_ in variants}
    for _ in range(CALLS):
        atoms.positions += 1e-4
        for label, _, _, optimize in variants:
            calculator = calculators[label]
            with torch.jit.optimized_execution(optimize):
                _, ms = synchronised_ms(device, lambda: calculator.calculate(atoms, ["energy", "forces", "stress"],
                                                                             ["positions"]))
            seconds[label].append(ms / 1e3)
    queue.put({label: {"atoms": len(atoms), "seconds": seconds[label],
                       "energy": float(calculators[label].results["energy"]),
                       "forces": calculators[label].results["forces"].tolist()} for label, *_ in variants})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--max-atoms", type=int, default=20000)
    parser.add_argument("--no-eager", action="store_true", help="skip the eager MACEQEq")
    parser.add_argument("--executor-off", action="store_true",
                        help="also time both compiled models with TorchScript's graph-executor optimisation off "
                             "(torch.jit.optimized_execution(False))")
    parser.add_argument("--work-dir", type=Path, default=pm.WORK / "compiled_scaling")
    parser.add_argument("--output", type=Path, default=pm.RESULTS)
    args = parser.parse_args()
    models = trained_models(args.work_dir, args.device)
    variants = [("MACE compiled", models["MACE"]["compiled"], True, True),
                ("MACEQEq compiled", models["MACEQEq-EF"]["compiled"], True, True)]
    if args.executor_off:
        variants += [(f"{name} compiled, executor off", models[key]["compiled"], True, False)
                     for name, key in (("MACE", "MACE"), ("MACEQEq", "MACEQEq-EF"))]
    if not args.no_eager:
        variants.append(("MACEQEq eager", models["MACEQEq-EF"]["eager"], False, True))
    measured_file = args.work_dir / f"measured_{args.device}_{args.dtype}.json"
    measured = json.loads(measured_file.read_text()) if measured_file.exists() else {}
    rows = []
    for system, repeats in SYSTEMS.items():
        atoms_per_frame = len(frame(system))
        for repeat in repeats:
            if atoms_per_frame * np.prod(repeat) > args.max_atoms:
                continue
            row = {"system": system, "repeat": list(repeat)}
            key = " ".join([system, str(repeat), args.dtype, args.device, str(CALLS), "calls"]
                           + [f"{label}:{file_digest(path)}" for label, path, *_ in variants])
            if key not in measured:  # a case measured before (an interrupted run) is kept
                measured[key] = run_in_fresh_process(time_case, variants, system, repeat, args.dtype, args.device)
                measured_file.write_text(json.dumps(measured))
            forces = {label: np.asarray(case["forces"]) for label, case in measured[key].items()}
            row.update({label: {k: v for k, v in case.items() if k != "forces"}
                        for label, case in measured[key].items()})
            row["atoms"] = row["MACE compiled"]["atoms"]
            row["ratio"] = paired_ratio(row["MACEQEq compiled"], row["MACE compiled"])
            if args.executor_off:
                row["ratio_executor_off"] = paired_ratio(row["MACEQEq compiled, executor off"],
                                                         row["MACE compiled, executor off"])
            if "MACEQEq eager" in row:
                row["compiled_minus_eager_ev"] = row["MACEQEq compiled"]["energy"] - row["MACEQEq eager"]["energy"]
                row["compiled_minus_eager_max_force_ev_a"] = float(
                    np.abs(forces["MACEQEq compiled"] - forces["MACEQEq eager"]).max())
            rows.append(row)
            print(f"{system:9s} {row['atoms']:6d} atoms: " + ", ".join(
                f"{label} {seconds(row[label]):7.2f} s" for label, *_ in variants)
                + f", compiled ratio {row['ratio']:.2f}, compiled − eager E "
                + f"{row.get('compiled_minus_eager_ev', float('nan')):.1e} eV", flush=True)
    hardware = torch.cuda.get_device_name() if args.device == "cuda" else \
        f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    command = f"python benchmarks/compiled_scaling.py --device {args.device} --dtype {args.dtype}" + \
        (f" --max-atoms {args.max_atoms}" if args.max_atoms != 20000 else "") + \
        (" --executor-off" if args.executor_off else "")
    result = {"hardware": hardware, "dtype": args.dtype, "torch": torch.__version__, "rows": rows, "command": command,
              "date": time.strftime("%Y-%m-%d")}
    stem = "compiled_scaling" + ("" if args.device == "cpu" else f"_{args.device}") + \
        ("" if args.dtype == "float64" else f"_{args.dtype}")
    (args.output / f"{stem}.json").write_text(json.dumps(result, indent=2))
    write_markdown(result, variants, args.output / f"{stem}.md")
    plot(result, variants, args.output / f"{stem}.png")


def write_markdown(result, variants, path):
    labels = [label for label, *_ in variants]
    executor_off = "ratio_executor_off" in result["rows"][0]
    lines = [f"# Compiled models at scale: MACEQEq / MACE ({result['hardware']}, {result['dtype']})", "",
             "Energy + forces + stress of one configuration with MACE's stock `MACECalculator` on "
             "`torch.jit.load(<name>_compiled.model)`; both models trained on NaCl(aq) with the backbone "
             f"32x0e+32x1o, 2 layers, r_max 5 Å; every variant in one process per size, called in turn, five rounds: "
             "times are medians of rounds 3–5, the ratio the median of those rounds' paired ratios. "
             f"Command: `{result['command']}` ({result['date']})",
             "", "| system | atoms | " + " | ".join(f"{label} (s)" for label in labels) +
             " | compiled MACEQEq / MACE |" + (" the same, executor off |" if executor_off else "")
             + " compiled − eager: E (eV), max |ΔF| (eV/Å) |",
             "|---|---:|" + "---:|" * (len(labels) + executor_off) + "---:|---:|"]
    for row in result["rows"]:
        difference = row.get("compiled_minus_eager_ev")
        lines.append(f"| {row['system']} | {row['atoms']} | " + " | ".join(
            f"{seconds(row[label]):.2f}" for label in labels) + f" | **{row['ratio']:.2f}** | "
            + (f"{row['ratio_executor_off']:.2f} | " if executor_off else "")
            + ("—" if difference is None else
               f"{difference:.1e}, {row['compiled_minus_eager_max_force_ev_a']:.1e}") + " |")
    for system in dict.fromkeys(r["system"] for r in result["rows"]):
        rows = [r for r in result["rows"] if r["system"] == system]
        slopes = ", ".join(f"{label} {loglog_slope([r['atoms'] for r in rows], [seconds(r[label]) for r in rows]):.2f}"
                           for label in labels)
        lines.append(f"\nTime exponents ({system}): {slopes}.")
    Path(path).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(result, variants, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(dict.fromkeys(r["system"] for r in result["rows"]))
    fig, axes = plt.subplots(1, len(systems), figsize=(5.5 * len(systems), 4), squeeze=False)
    for ax, system in zip(axes[0], systems):
        rows = [r for r in result["rows"] if r["system"] == system]
        for label, *_ in variants:
            ax.loglog([r["atoms"] for r in rows], [seconds(r[label]) for r in rows], "o-", label=label)
        ax.set(title=f"{system} ({result['dtype']})", xlabel="atoms", ylabel="energy + forces + stress (s)")
    save_loglog_figure(fig, axes[0], path)


if __name__ == "__main__":
    main()
