"""Accuracy of MACEQEq against plain MACE (same backbone and budget) on a benchmark set.

    python benchmarks/accuracy.py --set ag3 --train train.xyz --test test.xyz     # your files
    python benchmarks/accuracy.py --set ag3 --xtb --quick                         # GFN2-xTB analogue, CPU minutes
    python benchmarks/accuracy.py --set ag3 --xtb --quick --learning-curve 25 50 100 200

Trains both models with ``configs/<set>_maceqeq.yaml`` and ``configs/<set>_mace.yaml``
through ``mace_qeq_run_train``, evaluates them on the test file with the ASE
calculator, and writes to ``benchmarks/results/``:

* ``accuracy_<set>.json`` and ``.md``: energy (meV/atom), force (meV/Å), charge
  (me) and dipole (me·Å) RMSE of both models, overall and per config_type,
  the training budget (epochs, wall time, hardware), and the published
  2G/3G/4G-HDNNP and SpookyNet numbers of the 4G-HDNNP set beside them
  (``../shared/docs/anchors.md``; their reference is DFT, an xTB analogue's is not);
* ``accuracy_<set>_parity_<model>.png``: energy/force parity, charges by element;
* with ``--learning-curve``: ``accuracy_<set>_learning_curve.{png,json}``.

``--xtb`` makes the GFN2-xTB analogue of the set (Ag3± or Na9Cl8+/Na8Cl8+; needs
``tblite``): the published DFT sets are not on these machines, and the results
say which data were used. ``--quick`` shrinks model and epochs to run on a CPU
in minutes; the full budget is meant for a GPU.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import ase.io
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# Test RMSEs of the 4G-HDNNP sets as printed in SpookyNet (Nat. Commun. 2021), Table 1,
# with the 2G/3G/4G columns from Ko et al. 2021: E meV/atom, F meV/Å (the Ko
# columns may be meV/bohr), Q me. Source: ../shared/docs/anchors.md.
PUBLISHED = {
    "carbon_chain": {"2G": (1.619, 129.5, None), "3G": (2.045, 231.0, 20.08), "4G-HDNNP": (1.194, 78.00, 6.577),
                     "SpookyNet": (0.364, 5.802, 0.117)},
    "nacl": {"2G": (1.692, 57.39, None), "3G": (2.042, 76.67, 20.80), "4G-HDNNP": (0.481, 32.78, 15.83),
             "SpookyNet": (0.135, 1.052, 0.111)},
    "ag3": {"2G": (352.0, 1803, None), "3G": (320.2, 1913, 26.48), "4G-HDNNP": (1.323, 31.69, 9.976),
            "SpookyNet": (0.220, 26.64, 0.459)},
    "au2_mgo": {"2G": (2.287, 153.1, None), "4G-HDNNP": (0.219, 66.0, 5.698), "SpookyNet": (0.107, 5.337, 1.013)},
}
XTB_SETS = {"ag3": dict(n_ag3=400, n_nacl=0, n_na9cl8=0), "nacl": dict(n_ag3=0, n_nacl=0, n_na9cl8=300)}
QUICK = ["--max_num_epochs", "40", "--num_channels", "16", "--max_L", "0", "--correlation", "2", "--patience", "1000"]


def make_xtb_set(name: str, folder: Path, seed: int = 0):
    from mace_qeq.datasets.xtb_sets import make_dataset

    structures = make_dataset(folder / f"{name}_xtb_all.xyz", seed=seed, **XTB_SETS[name])
    # the configs fit E0s by least squares ("average"): the isolated atoms are not needed
    rest = [a for a in structures if a.info["config_type"] != "IsolatedAtom"]
    # split by geometry pair, so that Ag3+ and Ag3- of one geometry land on the same side
    pairs = [rest[i:i + 2] for i in range(0, len(rest), 2)]
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_test = len(pairs) // 8
    test = [a for i in order[:n_test] for a in pairs[i]]
    train = [a for i in order[n_test:] for a in pairs[i]]
    ase.io.write(folder / "train.xyz", train)
    ase.io.write(folder / "test.xyz", test)
    return folder / "train.xyz", folder / "test.xyz"


def train(config: Path, name: str, train_file: Path, folder: Path, extra) -> dict:
    command = [sys.executable, "-m", "mace_qeq.cli.run_train", "--config", str(config), "--name", name,
               "--work_dir", str(folder), "--train_file", str(train_file), *extra]
    start = time.perf_counter()
    log = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    wall = time.perf_counter() - start
    if log.returncode != 0:
        raise RuntimeError(f"training {name} failed:\n{log.stdout[-2000:]}\n{log.stderr[-4000:]}")
    epochs = sum(1 for line in (log.stdout + log.stderr).splitlines() if "INFO: Epoch" in line)
    return {"model": str(folder / f"{name}.model"), "wall_s": wall, "epochs": epochs}


def subset(train_file: Path, count: int, folder: Path, seed: int = 0) -> Path:
    structures = ase.io.read(train_file, ":")
    isolated = [a for a in structures if a.info.get("config_type") == "IsolatedAtom"]
    rest = [a for a in structures if a.info.get("config_type") != "IsolatedAtom"]
    chosen = np.random.default_rng(seed).permutation(len(rest))[:count]
    path = folder / f"train_{count}.xyz"
    ase.io.write(path, isolated + [rest[i] for i in sorted(chosen)])
    return path


def fmt(value, digits=1):
    return "—" if value is None else f"{value:.{digits}f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", required=True, choices=sorted(PUBLISHED))
    parser.add_argument("--train", type=Path)
    parser.add_argument("--test", type=Path)
    parser.add_argument("--xtb", action="store_true", help="make and use the GFN2-xTB analogue of the set")
    parser.add_argument("--quick", action="store_true", help="small model, 40 epochs: CPU minutes")
    parser.add_argument("--learning-curve", type=int, nargs="*", default=[], help="training-set sizes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "benchmarks" / "work")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more mace_qeq_run_train flags")
    args = parser.parse_args()

    folder = args.work_dir / args.set
    folder.mkdir(parents=True, exist_ok=True)
    args.output.mkdir(parents=True, exist_ok=True)
    if args.xtb:
        if args.set not in XTB_SETS:
            raise SystemExit(f"no GFN2-xTB analogue of '{args.set}'; give --train and --test")
        args.train, args.test = make_xtb_set(args.set, folder)
        data = f"GFN2-xTB analogue of the {args.set} set (mace_qeq_make_xtb_data), not the published DFT set"
    elif args.train is None or args.test is None:
        raise SystemExit(f"the published '{args.set}' set is not on this machine: give --train and --test "
                         "(see ../shared/datasets/README.md), or --xtb for its GFN2-xTB analogue")
    else:
        data = f"{args.train} / {args.test}"
    extra = ["--device", args.device] + (QUICK if args.quick else []) + args.extra

    from mace_qeq.analysis import evaluate_model, learning_curve_plot, parity_plots, test_errors

    models, predictions, errors, per_type = {}, {}, {}, {}
    for kind in ("maceqeq", "mace"):
        models[kind] = train(ROOT / "configs" / f"{args.set}_{kind}.yaml", f"{args.set}_{kind}", args.train,
                             folder, extra)
        predictions[kind] = evaluate_model(models[kind]["model"], str(args.test), device=args.device)
        errors[kind] = test_errors(predictions[kind]).as_dict()
        per_type[kind] = {c: test_errors(predictions[kind], c).as_dict()
                          for c in sorted(set(predictions[kind].config_type))}
        print(f"{kind}: {errors[kind]}", flush=True)

    hardware = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({platform.machine()}, " \
        f"{torch.get_num_threads()} threads)"
    n_train = sum(1 for a in ase.io.read(args.train, ":") if a.info.get("config_type") != "IsolatedAtom")
    result = {"set": args.set, "data": data, "train_structures": n_train, "test_structures": errors["mace"]["structures"],
              "quick": args.quick, "hardware": hardware, "budget": models, "errors": errors,
              "errors_per_config_type": per_type, "published": PUBLISHED[args.set]}

    curve = {}
    if args.learning_curve:
        for kind in ("maceqeq", "mace"):
            curve[kind] = []
            for count in args.learning_curve:
                run = train(ROOT / "configs" / f"{args.set}_{kind}.yaml", f"{args.set}_{kind}_{count}",
                            subset(args.train, count, folder), folder, extra)
                point = test_errors(evaluate_model(run["model"], str(args.test), device=args.device)).as_dict()
                curve[kind].append({"train_structures": count, **point, "wall_s": run["wall_s"]})
                print(f"learning curve {kind} {count}: {point}", flush=True)
        result["learning_curve"] = curve
        learning_curve_plot({"MACEQEq": curve["maceqeq"], "MACE": curve["mace"]},
                            args.output / f"accuracy_{args.set}_learning_curve.png",
                            title=f"{args.set}: test error vs training structures")
    for path in parity_plots({"MACEQEq": predictions["maceqeq"], "MACE": predictions["mace"]}, folder,
                             title=args.set):
        path.replace(args.output / f"accuracy_{args.set}_{path.name}")

    (args.output / f"accuracy_{args.set}.json").write_text(json.dumps(result, indent=2))
    command = "python benchmarks/accuracy.py --set " + args.set + (" --xtb" if args.xtb else "") + \
        (" --quick" if args.quick else "") + \
        ("" if not args.learning_curve else " --learning-curve " + " ".join(map(str, args.learning_curve)))
    lines = [
        f"# Accuracy on {args.set}: MACEQEq vs plain MACE",
        "",
        f"Data: {data}; {n_train} training and {errors['mace']['structures']} test structures.",
        f"Hardware: {hardware}. Budget: " + ", ".join(
            f"{k} {v['epochs']} epochs in {v['wall_s']:.0f} s" for k, v in models.items())
        + (" (--quick: 16x0e backbone, 40 epochs)" if args.quick else " (configs as committed)") + ".",
        f"Command: `{command}`",
        "",
        "| model | E RMSE (meV/atom) | F RMSE (meV/Å) | Q RMSE (me) | dipole RMSE (me·Å) |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, label in (("maceqeq", "MACEQEq (this work)"), ("mace", "MACE, same backbone")):
        e = errors[kind]
        lines.append(f"| {label} | {fmt(e['energy_mev_per_atom'], 2)} | {fmt(e['forces_mev_per_a'])} | "
                     f"{fmt(e['charges_me'])} | {fmt(e['dipole_me_a'])} |")
    for name, (energy, forces, charges) in PUBLISHED[args.set].items():
        lines.append(f"| {name} (published, DFT set) | {fmt(energy, 3)} | {fmt(forces)} | {fmt(charges, 3)} | — |")
    lines += ["", "Per configuration type (E meV/atom, F meV/Å, Q me):", "",
              "| config_type | MACEQEq E | MACE E | MACEQEq F | MACE F | MACEQEq Q |", "|---|---:|---:|---:|---:|---:|"]
    for c in per_type["maceqeq"]:
        q, m = per_type["maceqeq"][c], per_type["mace"][c]
        lines.append(f"| {c} | {fmt(q['energy_mev_per_atom'], 2)} | {fmt(m['energy_mev_per_atom'], 2)} | "
                     f"{fmt(q['forces_mev_per_a'])} | {fmt(m['forces_mev_per_a'])} | {fmt(q['charges_me'])} |")
    if curve:
        lines += ["", "Learning curve (test E meV/atom / F meV/Å):", "",
                  "| training structures | MACEQEq E | MACE E | MACEQEq F | MACE F |", "|---:|---:|---:|---:|---:|"]
        for q, m in zip(curve["maceqeq"], curve["mace"]):
            lines.append(f"| {q['train_structures']} | {fmt(q['energy_mev_per_atom'], 2)} | "
                         f"{fmt(m['energy_mev_per_atom'], 2)} | {fmt(q['forces_mev_per_a'])} | "
                         f"{fmt(m['forces_mev_per_a'])} |")
    (args.output / f"accuracy_{args.set}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
