"""Training throughput: MACEQEq against plain MACE, same backbone, data, batch and epochs.

    python benchmarks/training_throughput.py                  # CPU, ~45 min (3 pairs of trainings a case)
    python benchmarks/training_throughput.py --device cuda    # on a GPU

Writes results/training_throughput.{json,md} (``_cuda`` on a GPU). Each model
is trained by its stock command line (``mace_run_train --model MACE``,
``mace_qeq_run_train``, charge loss included where the data has reference
charges) on small clusters (Ag3±, 3 atoms; C10H2/C10H3⁺, 12–13 atoms;
Na8/9Cl8⁺, 16–17 atoms; GFN2-xTB) and on ~160-atom periodic NaCl(aq) cells
(revPBE0-D3, ../shared/datasets/nacl_water). Throughput is structures per
second over the training epochs, from the timestamps of mace's own log
(setup, E0s, the element fit, the offset refit after training and the final
TorchScript compile are not in it, they are in the total wall time; the offset
refit as Stage Two starts is). Both models are trained anew, in pairs, the
pair's order alternating (MACE first, then MACEQEq first, ...): the ratio of a
case is the median of its pairs' ratios (``--repeats``), so that one slow or
lucky training on a shared machine does not set it; the spread of the pairs is
printed beside it. ``--update`` reruns the ``--cases`` given and keeps the
other rows of the committed table, each with the command that made it.
"""

import argparse
import json
import re
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import ase.io
import peer_models as pm
import torch

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) INFO: (.*)$")


def nacl_water(count: int):
    from mace_qeq.datasets.runner import read_runner

    structures = []
    for path in sorted((pm.SHARED / "nacl_water").glob("*.data")):
        structures += list(read_runner(path))
        if len(structures) >= count:
            break
    for atoms in structures:
        del atoms.arrays["REF_charges"]  # the set's charge column is 0: not a reference
    return structures[:count]


CASES = {
    "Ag3± (3 atoms)": ("ag3_same_geometry", 16),
    "C10H2/C10H3⁺ (12–13 atoms)": ("carbon_chain", 16),
    "Na8/9Cl8⁺ (16–17 atoms)": ("na9cl8", 32),
    "NaCl(aq), periodic (128–194 atoms)": ("nacl_water", 4),
}


def stamped(log: str):
    """(time, message) of each timestamped INFO line of a mace log."""
    for line in log.splitlines():
        match = STAMP.match(line)
        if match:
            yield datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f"), match.group(2)


def epoch_seconds(log: str, epochs: int) -> float:
    """Seconds from 'Started training' to 'Training complete' (every epoch and the validations mace runs
    every ``--eval_interval`` epochs, here at the first), per epoch."""
    start = end = None
    for when, message in stamped(log):
        if message.startswith("Started training"):
            start = when
        elif message.startswith("Training complete"):
            end = when
    if start is None or end is None:
        raise RuntimeError("no complete training in the log")
    return (end - start).total_seconds() / epochs


def refit_seconds(log: str) -> float:
    """Seconds spent inside the training loop on MACEQEq's offset refit as Stage Two starts (once per
    training): from the log line before each 'energy offsets refitted' line to it."""
    inside, previous, total = False, None, 0.0
    for when, message in stamped(log):
        if message.startswith("Started training"):
            inside = True
        elif message.startswith("Training complete"):
            inside = False
        elif inside and "energy offsets refitted" in message and previous is not None:
            total += (when - previous).total_seconds()
        previous = when
    return total


def median_and_range(values) -> dict:
    """The median of ``values`` (quoted) and their smallest and largest (the spread of the pairs)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def merge_rows(kept: list, rerun: list) -> list:
    """The rows of an earlier table whose case was not rerun, and the rerun rows, in the order of ``CASES``."""
    rows = {row["case"]: row for row in kept}
    rows.update({row["case"]: row for row in rerun})
    return [rows[label] for label in CASES if label in rows]


def timed_training(model, train_file, folder, epochs, device, extra, trained_structures: int) -> dict:
    """Train ``model`` anew and read its time per epoch (with and without the offset refit inside
    training) and its throughput (``trained_structures`` per epoch) from mace's log."""
    run = pm.train(model, train_file, folder / model.run_name, epochs, device, extra, reuse=False)
    if run.status != "ok":
        raise RuntimeError(f"{folder.name} {model.name}: {run.status}")
    log = (folder / model.run_name / f"{model.run_name}.log").read_text()
    per_epoch = epoch_seconds(log, epochs)
    refit = refit_seconds(log)
    return {"seconds_per_epoch": per_epoch, "wall_s": run.wall_s, "refit_s": refit,
            "seconds_per_epoch_without_refit": per_epoch - refit / epochs,
            "structures_per_s": trained_structures / per_epoch}


def markdown(result: dict) -> str:
    """The table of a throughput result (its JSON), one row per case."""
    commands = {row["case"]: row["command"] for row in result["rows"]}
    lines = [f"# Training throughput, MACEQEq / MACE ({result['device']})", "",
             f"Hardware: {result['hardware']}. {result['structures']} training clusters or "
             f"{result['periodic_structures']} periodic cells, {result['epochs']} epochs, backbone 32x0e+32x1o / 2 layers / r_max 5 Å, float64; "
             "throughput from mace's log timestamps, start to end of training (setup, element fit, offset refit "
             "after training and compile excluded, see wall). Both models trained anew in pairs, the order "
             "alternating; every figure is the median over a case's pairs, the ratio the median of the pairs' "
             "ratios [smallest–largest pair]. "
             + (f"Command: `{next(iter(commands.values()))}`" if len(set(commands.values())) == 1 else
                f"Rows from separate runs: {pm.rows_by_value(commands, '`')}"), "",
             "| data | atoms | batch | pairs | MACE s/epoch | MACEQEq s/epoch | MACEQEq/MACE throughput | offset "
             "refit as Stage Two starts (s, once) | throughput without it | wall MACE / MACEQEq (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in result["rows"]:
        m, q = row["summary"], row["qeq_model"]
        lines.append(f"| {row['case']} | {row['atoms_per_structure']:.0f} | {row['batch_size']} | "
                     f"{len(row['pairs'])} | "
                     f"{m['MACE seconds_per_epoch']['median']:.2f} | {m[f'{q} seconds_per_epoch']['median']:.2f} | "
                     f"**{m['ratio']['median']:.2f}** [{m['ratio']['min']:.2f}–{m['ratio']['max']:.2f}] | "
                     f"{m[f'{q} refit_s']['median']:.2f} | {m['ratio_without_refit']['median']:.2f} "
                     f"[{m['ratio_without_refit']['min']:.2f}–{m['ratio_without_refit']['max']:.2f}] | "
                     f"{m['MACE wall_s']['median']:.0f} / {m[f'{q} wall_s']['median']:.0f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--structures", type=int, default=256, help="training structures per cluster case")
    parser.add_argument("--periodic-structures", type=int, default=32, help="training NaCl(aq) cells")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3,
                        help="pairs of trainings (MACE, MACEQEq) per case; the ratio is the median of the pairs'")
    parser.add_argument("--cases", nargs="+", choices=[source for source, _ in CASES.values()],
                        default=[source for source, _ in CASES.values()], help="the data sets to time (default: all)")
    parser.add_argument("--update", action="store_true",
                        help="keep the rows of the committed table whose case is not in --cases")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--work-dir", type=Path, default=pm.WORK / "throughput")
    parser.add_argument("--output", type=Path, default=pm.RESULTS)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    command = " ".join(["python benchmarks/training_throughput.py", *sys.argv[1:]])
    stem = "training_throughput" + ("" if args.device == "cpu" else f"_{args.device}")
    hardware = pm.hardware(args.device)
    previous = args.output / f"{stem}.json"
    kept = []
    if args.update and previous.exists():  # checked before any training: the kept rows must be comparable
        earlier = json.loads(previous.read_text())
        if earlier["epochs"] != args.epochs or earlier["structures"] != args.structures or \
                earlier["periodic_structures"] != args.periodic_structures or earlier["hardware"] != hardware:
            parser.error(f"--update: {previous} was made with other settings or on other hardware; rerun every case")
        # rows of tables from before rows carried their command carry the table's
        kept = [{"command": earlier["command"], "date": earlier["date"], **row} for row in earlier["rows"]]
    rows = []
    for label, (source, batch) in CASES.items():
        if source not in args.cases:
            continue
        folder = args.work_dir / source
        folder.mkdir(parents=True, exist_ok=True)
        if source == "nacl_water":
            structures = nacl_water(args.periodic_structures)
            qeq = pm.MODELS["MACEQEq-EF"]
        else:
            structures = pm.subset(pm.load(source)[0], args.structures)
            qeq = pm.MODELS["MACEQEq"]
        train_file = folder / "train.xyz"
        ase.io.write(train_file, structures)
        atoms = sum(len(a) for a in structures) / len(structures)
        extra = ["--batch_size", str(batch), "--eval_interval", str(args.epochs), "--valid_fraction", "0.05"]
        trained = len(structures) - int(0.05 * len(structures))
        pairs = []
        for repeat in range(args.repeats):
            # both trained now, side by side: a model kept from an earlier run would pair timings of two
            # different moments of a shared machine; the order alternates so that neither always goes first
            order = (pm.MODELS["MACE"], qeq) if repeat % 2 == 0 else (qeq, pm.MODELS["MACE"])
            timing = {model.name: timed_training(model, train_file, folder, args.epochs, args.device, extra,
                                                 trained) for model in order}
            timing["ratio"] = timing[qeq.name]["structures_per_s"] / timing["MACE"]["structures_per_s"]
            timing["ratio_without_refit"] = (timing["MACE"]["seconds_per_epoch"]
                                             / timing[qeq.name]["seconds_per_epoch_without_refit"])
            pairs.append(timing)
            print(f"{label:38s} pair {repeat + 1}: MACE {timing['MACE']['seconds_per_epoch']:7.2f} s/epoch, "
                  f"{qeq.name} {timing[qeq.name]['seconds_per_epoch']:7.2f} s/epoch: MACEQEq/MACE throughput "
                  f"{timing['ratio']:.2f} ({timing['ratio_without_refit']:.2f} without the one refit, "
                  f"{timing[qeq.name]['refit_s']:.2f} s)", flush=True)
        summary = {key: median_and_range([pair[key] for pair in pairs]) for key in ("ratio", "ratio_without_refit")}
        for name in ("MACE", qeq.name):
            for key in ("seconds_per_epoch", "wall_s", "refit_s"):
                summary[f"{name} {key}"] = median_and_range([pair[name][key] for pair in pairs])
        rows.append({"case": label, "atoms_per_structure": atoms, "batch_size": batch, "qeq_model": qeq.name,
                     "pairs": pairs, "summary": summary, "command": command, "date": time.strftime("%Y-%m-%d")})
    if kept:
        rows = merge_rows(kept, rows)
    result = {"hardware": hardware, "device": args.device, "epochs": args.epochs,
              "structures": args.structures, "periodic_structures": args.periodic_structures, "rows": rows,
              "command": command, "date": time.strftime("%Y-%m-%d")}
    pm.write_json(args.output / f"{stem}.json", result)
    text = markdown(result)
    (args.output / f"{stem}.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
