"""Charge on each molecule of LODE's dimers: what a trained MACEQEq puts on separated fragments.

Global charge equilibration fixes only the total charge, so two molecules any
distance R apart exchange charge until their chemical potentials agree: a
fragment charge δ with μ_A(δ) = μ_B(−δ), which tends to a nonzero limit as
R → ∞ whenever the fragments' electronegativities differ. The reference
molecules carry integer charges (``chargeA``, ``chargeB``); this benchmark
reads a trained model's charges (``MACEQEqCalculator``) on every frame of
``../shared/datasets/lode_dimers``, training and test, and reports per dimer
and separation the fragment charges and the force RMSE, so that a force error
that is the same on training and test frames (an under-trained model) is told
apart from one that grows with R (a long-range error).

    python benchmarks/fragment_charges.py [--model PATH]

The default model is the one ``python benchmarks/peers.py --set lode_dimers``
trains. Writes ``benchmarks/results/fragment_charges_lode_dimers.{json,md}``.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peer_models as pm  # noqa: E402

DEFAULT_MODEL = pm.WORK / "peers" / "lode_dimers" / "MACEQEq" / "MACEQEq_stagetwo.model"


def fragment_rows(model: Path, device: str) -> list:
    from mace_qeq.calculators import MACEQEqCalculator

    train, test, _ = pm.load("lode_dimers")
    calculator = MACEQEqCalculator(model_paths=str(model), device=device, default_dtype="float64")
    rows = []
    for split, frames in (("train", train), ("test", test)):
        for atoms in frames:
            atoms = atoms.copy()
            atoms.info["charge"] = atoms.info["total_charge"]
            atoms.calc = calculator
            forces = atoms.get_forces()
            charges = calculator.results["charges"]
            split_at = int(atoms.info["indexB"])
            rows.append({
                "split": split, "dimer": atoms.info["config_type"], "distance": float(atoms.info["distance"]),
                "charge_a": float(charges[:split_at].sum()), "charge_b": float(charges[split_at:].sum()),
                "reference_a": float(atoms.info["chargeA"]), "reference_b": float(atoms.info["chargeB"]),
                "force_rmse": 1e3 * float(np.sqrt(np.mean((forces - atoms.arrays["REF_forces"]) ** 2))),
                "max_abs_charge": float(np.abs(charges).max()),
            })
    return sorted(rows, key=lambda row: (row["dimer"], row["distance"]))


def markdown(rows: list, model: Path, command: str, hardware: str) -> str:
    lines = [
        "# Fragment charges on LODE's dimers", "",
        f"Model `{model}`; {hardware}. Command: `{command}`", "",
        "Per dimer: force RMSE (meV/Å) on its training and its test frames, and the charge on each molecule "
        "at the largest separation (model, reference; e).", "",
        "| dimer | F RMSE train | F RMSE test | R (Å) | q_A / q_B | reference |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for dimer in sorted({row["dimer"] for row in rows}):
        mine = [row for row in rows if row["dimer"] == dimer]
        rmse = {split: float(np.sqrt(np.mean([r["force_rmse"] ** 2 for r in mine if r["split"] == split])))
                for split in ("train", "test")}
        far = mine[-1]
        lines.append(f"| {dimer} | {rmse['train']:.1f} | {rmse['test']:.1f} | {far['distance']:.1f} | "
                     f"{far['charge_a']:+.3f} / {far['charge_b']:+.3f} | "
                     f"{far['reference_a']:+.0f} / {far['reference_b']:+.0f} |")
    lines += [
        "", "Every frame: charge on each molecule (model, reference; e) and force RMSE (meV/Å).", "",
        "| dimer | split | R (Å) | q_A | q_B | reference | F RMSE | max abs q |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row['dimer']} | {row['split']} | {row['distance']:.1f} | {row['charge_a']:+.3f} | "
                     f"{row['charge_b']:+.3f} | {row['reference_a']:+.0f} / {row['reference_b']:+.0f} | "
                     f"{row['force_rmse']:.1f} | {row['max_abs_charge']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", type=Path, default=pm.RESULTS)
    args = parser.parse_args(argv)
    if not args.model.exists():
        raise SystemExit(f"{args.model} does not exist: train it with `python benchmarks/peers.py --set lode_dimers "
                         "--models MACEQEq` or pass --model")
    rows = fragment_rows(args.model, args.device)
    command = "python benchmarks/fragment_charges.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    text = markdown(rows, args.model.relative_to(pm.ROOT) if args.model.is_relative_to(pm.ROOT) else args.model,
                    command, pm.hardware(args.device))
    print(text)
    pm.write_json(args.output / "fragment_charges_lode_dimers.json", {"model": str(args.model), "rows": rows})
    (args.output / "fragment_charges_lode_dimers.md").write_text(text)


if __name__ == "__main__":
    main()
