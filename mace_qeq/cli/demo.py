"""``mace_qeq_demo``: train MACEQEq on the embedded charged clusters and use it.

1. splits the embedded GFN2-xTB set (Ag3±, Na4Cl4, Na4Cl3+, Na3Cl4−) into
   train and test files in ``--work_dir``;
2. trains MACEQEq with ``configs/charged_clusters.yaml`` through
   ``mace_qeq_run_train`` (mace's own training loop);
3. prints the test errors per configuration type, computed with the ASE
   calculator, and the energies and charges of one Ag3 geometry as Ag3+ and
   Ag3− next to the xTB reference.
"""

import argparse
import sys
import time
from pathlib import Path
from typing import List, Optional

import ase.io
import numpy as np

from mace_qeq.datasets import DEFAULT_DATASET

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "charged_clusters.yaml"


def split(dataset: Path, work_dir: Path, test_fraction: float, seed: int):
    structures = ase.io.read(dataset, ":")
    isolated = [a for a in structures if a.info.get("config_type") == "IsolatedAtom"]
    clusters = [a for a in structures if a.info.get("config_type") != "IsolatedAtom"]
    order = np.random.default_rng(seed).permutation(len(clusters))
    n_test = int(round(test_fraction * len(clusters)))
    test = [clusters[i] for i in order[:n_test]]
    train = isolated + [clusters[i] for i in order[n_test:]]
    work_dir.mkdir(parents=True, exist_ok=True)
    ase.io.write(work_dir / "train.xyz", train)
    ase.io.write(work_dir / "test.xyz", test)
    return train, test


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", type=Path, default=Path("mace_qeq_demo"))
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--max_num_epochs", type=int, default=None, help="override the config's epochs")
    parser.add_argument("--test_fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    start = time.perf_counter()
    train, test = split(DEFAULT_DATASET, args.work_dir, args.test_fraction, args.seed)
    print(f"embedded data: {len(train)} training and {len(test)} test structures in {args.work_dir}", flush=True)

    from mace_qeq.cli.run_train import main as run_train

    train_args = [
        "--config", str(args.config), "--name", "maceqeq_demo", "--work_dir", str(args.work_dir),
        "--train_file", str(args.work_dir / "train.xyz"), "--test_file", str(args.work_dir / "test.xyz"),
        "--valid_fraction", "0.1", "--seed", str(args.seed),
    ]
    if args.max_num_epochs is not None:
        train_args += ["--max_num_epochs", str(args.max_num_epochs)]
    run_train(train_args)

    from mace_qeq.analysis.evaluate import evaluate_model, test_errors
    from mace_qeq.calculators import MACEQEqCalculator
    from mace_qeq.training import trained_model_path

    model_path = trained_model_path(args.work_dir, "maceqeq_demo")
    predictions = evaluate_model(str(model_path), str(args.work_dir / "test.xyz"))
    calculator = MACEQEqCalculator(model_paths=str(model_path), device="cpu", default_dtype="float64")
    print("\n=== Test errors (RMSE, from the ASE calculator) ===")
    print(f"{'config_type':<12} {'n':>4} {'E meV/atom':>11} {'F meV/Å':>9} {'Q me':>8} {'dipole me·Å':>12}")
    for config_type in sorted(set(predictions.config_type)):
        errors = test_errors(predictions, config_type)
        print(f"{config_type:<12} {errors.structures:>4} {errors.energy_mev_per_atom:>11.1f} "
              f"{errors.forces_mev_per_a:>9.1f} {errors.charges_me:>8.1f} {errors.dipole_me_a:>12.1f}")

    plus = next(a for a in test + train if a.info.get("config_type") == "Ag3+")
    minus = next(a for a in train + test if a.info.get("config_type") == "Ag3-"
                 and np.allclose(a.positions, plus.positions))
    print("\n=== One Ag3 geometry with total charge +1 and −1 ===")
    for reference in (plus, minus):
        atoms = reference.copy()
        atoms.info = {"charge": reference.info["total_charge"]}
        atoms.calc = calculator
        energy = atoms.get_potential_energy()
        print(f"Q = {reference.info['total_charge']:+.0f}: E = {energy:10.4f} eV "
              f"(xTB {reference.info['REF_energy']:10.4f}),"
              f" charges {np.array2string(atoms.get_charges(), precision=3)}"
              f" (xTB {np.array2string(reference.arrays['REF_charges'], precision=3)})")
    compiled = trained_model_path(args.work_dir, "maceqeq_demo", compiled=True)
    print(f"\nmodel: {model_path} (TorchScript: {compiled});"
          f" wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
