"""Close contact: trained models with atoms pushed far closer than any data.

    python benchmarks/close_contact.py                      # CPU, ~15 min (trains what peers.py has not)
    python benchmarks/close_contact.py --models MACEQEq MACEQEq-unbounded MACE+embedding

Each model is trained (or reused from ``benchmarks/peers.py``'s work folder) on
the GFN2-xTB Ag3± set (``ag3_same_geometry``) and on the Na/Cl clusters
(``nacl_transfer``) with the sets' budgets, then:

* pair scans: one atom moved along the line to another from 3 Å to 0.1 Å
  (Ag–Ag in Ag3, Na–Cl in Na4Cl3⁺, Cl–Cl in Na3Cl4⁻), at Q = +1 and −1;
* compressed random structures: Ag3⁺, Na4Cl4⁻, Na5Cl3⁺ at random positions,
  every distance scaled by 1 … 0.2.

Reported: the largest |q| of every scan (goal ≤ 2.5 e) and how far the lowest
energy at ≤ 0.4 Å lies above the scan's minimum (goal ≥ 5 eV: a repulsive
wall, not a hole), for compression min_{s ≤ 0.3} E(s) − E(1) (goal > 0).
``MACEQEq-unbounded`` is the charge model of mace-qeq 0.1.0 (unbounded χ,
J ≥ 0.1, no ZBL, no energy floor, no contact wall): what the bounds buy.
Writes results/close_contact.{json,md,png}.
"""

import argparse
import time
from pathlib import Path

import ase.io
import numpy as np
import peer_models as pm
import torch
from harness import save_loglog_figure
from mace_qeq.training import trained_model_path

MAX_CHARGE = 2.5  # e
MIN_REPULSION = 5.0  # eV
COMPRESSED_SCALE = 0.3  # compressed this far or further, a structure must lie above its uncompressed energy
PAIR_SCANS = {  # set: [(config type of the start, element pair)]
    "ag3_same_geometry": [("Ag3+", ("Ag", "Ag"))],
    "nacl_transfer": [("Na4Cl3+", ("Na", "Cl")), ("Na3Cl4-", ("Cl", "Cl"))],
}
COMPRESSED = {"ag3_same_geometry": [(["Ag"] * 3, 1)],
              "nacl_transfer": [(["Na"] * 4 + ["Cl"] * 4, -1), (["Na"] * 5 + ["Cl"] * 3, 1)]}


def trained(model: pm.Model, set_name: str, work: Path, device: str) -> str:
    """The model trained on ``set_name`` with the set's budget (peers.py's, if it already made it)."""
    spec = pm.SETS[set_name]
    peers = pm.trained_by_peers(model, set_name)
    if peers is not None:
        return str(peers)
    path = trained_model_path(work / set_name / model.run_name, model.run_name)
    if path.exists():
        return str(path)
    pool = pm.load(set_name)[0]
    train_file = work / set_name / f"train_{spec.train}.xyz"
    train_file.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(train_file, pm.subset(pool, min(spec.train, len(pool))))
    run = pm.train(model, train_file, work / set_name / model.run_name, spec.epochs, device)
    if run.status != "ok":
        raise RuntimeError(f"training {model.name} on {set_name} failed: {run.status}")
    return run.path


def pair_indices(atoms, pair):
    symbols = atoms.get_chemical_symbols()
    first = symbols.index(pair[0])
    second = min((k for k in range(len(atoms)) if symbols[k] == pair[1] and k != first),
                 key=lambda k: atoms.get_distance(first, k))
    return first, second


def scans_of(calculator, set_name: str, charges_available: bool):
    from mace_qeq.analysis.close_contact import compression_scan, pair_scan, random_cluster

    test = pm.load(set_name)[1]
    rows = []
    for config_type, pair in PAIR_SCANS[set_name]:
        start = next(a for a in test if a.info["config_type"] == config_type)
        i, j = pair_indices(start, pair)
        for charge in (1, -1):
            scan = pair_scan(calculator, start, i, j, charge, distances=np.geomspace(0.1, 3.0, 20),
                             label=f"{pair[0]}–{pair[1]} in {config_type}, Q = {charge:+d}")
            rows.append(summarise(scan, "pair", charges_available))
    for symbols, charge in COMPRESSED[set_name]:
        for seed in range(2):
            cluster = random_cluster(symbols, seed=seed)
            scan = compression_scan(calculator, cluster, charge,
                                    label=f"compressed {cluster.get_chemical_formula()} (seed {seed}), Q = {charge:+d}")
            rows.append(summarise(scan, "compression", charges_available))
    return rows


def summarise(scan, kind: str, charges_available: bool) -> dict:
    row = scan.as_dict()
    row["kind"] = kind
    row["largest_charge"] = max(scan.max_abs_charges) if charges_available and scan.max_abs_charges else None
    if kind == "pair":
        row["repulsion"] = scan.energy_above_minimum(0.4)
    else:
        row["repulsion"] = scan.energy_above_uncompressed(COMPRESSED_SCALE)
    charge_ok = row["largest_charge"] is None or row["largest_charge"] <= MAX_CHARGE
    wall_ok = row["repulsion"] is None or row["repulsion"] >= (MIN_REPULSION if kind == "pair" else 0.0)
    row["passes"] = bool(charge_ok and wall_ok)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["MACEQEq", "MACEQEq-unbounded"],
                        help=f"from {list(pm.MODELS)}")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work-dir", type=Path, default=pm.WORK / "close_contact")
    parser.add_argument("--output", type=Path, default=pm.RESULTS)
    args = parser.parse_args()
    from mace.calculators import MACECalculator

    torch.set_default_dtype(torch.float64)
    rows = []
    for name in args.models:
        model = pm.MODELS[name]
        for set_name in PAIR_SCANS:
            path = trained(model, set_name, args.work_dir, args.device)
            calculator = MACECalculator(model_paths=path, device=args.device, default_dtype="float64",
                                        model_type=model.model_type)
            charges_available = name.startswith("MACEQEq")
            for row in scans_of(calculator, set_name, charges_available):
                row.update(model=name, set=set_name)
                rows.append(row)
                print(f"{name:18s} {row['label']:48s} max|q| {pm.fmt(row['largest_charge'], 2):>7s} e, "
                      f"wall {pm.fmt(row['repulsion'], 1):>10s} eV, refused {len(row['refused'])}, "
                      f"{'ok' if row['passes'] else 'FAILS'}", flush=True)
    command = "python benchmarks/close_contact.py --models " + " ".join(args.models)
    result = {"hardware": pm.hardware(args.device), "date": time.strftime("%Y-%m-%d"), "command": command,
              "rows": rows}
    pm.write_json(args.output / "close_contact.json", result)
    write_markdown(result, args.output / "close_contact.md")
    plot(rows, args.output / "close_contact.png")


def write_markdown(result: dict, path: Path) -> None:
    lines = ["# Close contact: pairs pushed to 0.1 Å, compressed structures", "",
             f"Models trained on the GFN2-xTB sets with the peer benchmark's budget, evaluated by the stock "
             f"MACECalculator. Goal: every |q| ≤ {MAX_CHARGE} e; a pair's lowest energy at ≤ 0.4 Å at least "
             f"{MIN_REPULSION:.0f} eV above the scan's minimum (\"wall\"); compression costs energy "
             f"(wall = min over scales s ≤ {COMPRESSED_SCALE} of E(s) − E(1) > 0). "
             f"Hardware: {result['hardware']}, {result['date']}. "
             f"Command: `{result['command']}`", "",
             "| model | scan | max \\|q\\| (e) | wall (eV) | refused (overlap) | passes |", "|---|---|---:|---:|---:|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['model']} | {row['label']} | {pm.fmt(row['largest_charge'], 2)} | "
                     f"{pm.fmt(row['repulsion'], 1)} | {len(row['refused'])} | {'yes' if row['passes'] else '**no**'} |")
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [r for r in rows if r["kind"] == "pair"]
    labels = list(dict.fromkeys(r["label"] for r in pairs))
    fig, axes = plt.subplots(2, len(labels), figsize=(3.2 * len(labels), 6), squeeze=False)
    for k, label in enumerate(labels):
        for row in (r for r in pairs if r["label"] == label):
            energies = np.asarray(row["energies"])
            axes[0, k].plot(row["distances"], energies - energies.min(), "o-", ms=3, label=row["model"])
            if row["largest_charge"] is not None:
                axes[1, k].plot(row["distances"], row["max_abs_charges"], "o-", ms=3, label=row["model"])
        axes[0, k].set(title=label, xscale="log", yscale="symlog", ylabel="E − E_min (eV)")
        axes[1, k].set(xscale="log", yscale="log", xlabel="distance (Å)", ylabel="max |q| (e)")
        axes[1, k].axhline(MAX_CHARGE, color="k", ls="--", lw=0.8)
    save_loglog_figure(fig, axes.ravel(), path)
    plt.close(fig)


if __name__ == "__main__":
    main()
