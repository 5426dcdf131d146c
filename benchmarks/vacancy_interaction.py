"""Interaction of two like vacancies in a Na/Cl rod: what a model gets of E(Q) beyond the trained charges.

``nacl_rods`` trains on 2×2×N rock-salt rods at Q = 0 and ±1 (one vacancy)
and tests on Q = ±2 (two vacancies). Between the four structures of one pair
of sites A, B of the 2×2×4 rod — no vacancy, A only, B only, both — every
energy linear in the composition or in Q (E0s, a uniform χ shift, anything
per atom that sees one vacancy at a time) cancels in

    W(A, B) = E(AB) − E(A) − E(B) + E(∅)        (eV),

which leaves the interaction of the two charged vacancies (Q = ±2 against ±1),
of the order of e²/(4πε₀ r) for vacancies r apart (GFN2-xTB gives somewhat
more on this short rod, whose excess charges are not point charges at the
sites). A local model predicts W ≈ 0 once r exceeds its receptive field; a
charge model must get it from its long range. The benchmark labels the four
structures of every distinct separation of two Cl (Q = +2) or two Na (Q = −2)
sites more than two Na–Cl distances apart with GFN2-xTB, on the unrelaxed
rock-salt rod the set's MD runs start from, and evaluates every model
``python benchmarks/peers.py --set nacl_rods`` trained (stock
``MACECalculator``), with the point-charge Coulomb part of W from the
reference (Mulliken) charges and from each charge model's charges.

    python benchmarks/vacancy_interaction.py

Writes ``benchmarks/results/vacancy_interaction.{json,md}``.
"""

import argparse
import functools
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peer_models as pm  # noqa: E402
from mace_qeq.electrostatics.units import COULOMB_CONSTANT  # noqa: E402

SET = "nacl_rods"
VACANCY_CHARGE = {"Cl": +1, "Na": -1}  # total charge one removed ion leaves


def like_site_pairs(rod, symbol: str, spacing: float) -> List[Tuple[int, int, float]]:
    """One pair of ``symbol`` sites per distinct separation above ``spacing`` (Å), the shortest first."""
    sites = [i for i, s in enumerate(rod.get_chemical_symbols()) if s == symbol]
    pairs: Dict[float, Tuple[int, int, float]] = {}
    for k, a in enumerate(sites):
        for b in sites[k + 1:]:
            r = float(rod.get_distance(a, b))
            if r > spacing:
                pairs.setdefault(round(r, 2), (a, b, r))
    return [pairs[r] for r in sorted(pairs)]


def pair_coulomb(atoms, charges: np.ndarray) -> float:
    """½ Σ_{i≠j} k q_i q_j / r_ij of point charges (eV)."""
    upper = np.triu_indices(len(atoms), 1)
    distances = atoms.get_all_distances()[upper]
    return float(COULOMB_CONSTANT * np.sum(charges[upper[0]] * charges[upper[1]] / distances))


def interaction(energies: Dict[str, float]) -> float:
    """W = E(AB) − E(A) − E(B) + E(∅) from the energies keyed "AB", "A", "B", "none"."""
    return energies["AB"] - energies["A"] - energies["B"] + energies["none"]


def per_model(states: Dict[str, Dict[str, float]]) -> Dict[str, float]:
    """W of every model from each state's ("none", "A", "B", "AB") energies by model."""
    return {name: interaction({key: values[name] for key, values in states.items()}) for name in states["none"]}


def trained_models() -> Dict[str, Tuple[str, str]]:
    """name → (model path, calculator model_type) of every model the peer benchmark trained on the set."""
    paths = {name: pm.trained_by_peers(model, SET) for name, model in pm.MODELS.items()}
    return {name: (str(path), pm.MODELS[name].model_type) for name, path in paths.items() if path is not None}


def measure(device: str, spacing: float) -> List[dict]:
    from mace.calculators import MACECalculator

    from mace_qeq.datasets.geometries import rocksalt_block
    from mace_qeq.datasets.xtb import label

    rod = rocksalt_block((2, 2, 4))
    calculators = {name: MACECalculator(model_paths=path, model_type=model_type, device=device,
                                        default_dtype="float64")
                   for name, (path, model_type) in trained_models().items()}
    if not calculators:
        raise SystemExit(f"no trained model in {pm.WORK / 'peers' / SET}: run `python benchmarks/peers.py --set {SET}`")

    @functools.lru_cache(maxsize=None)  # ∅ and each single vacancy serve several pairs
    def state(removed: Tuple[int, ...], total_charge: int) -> Tuple[Dict[str, float], Dict[str, float]]:
        """Energy of the rod without the ``removed`` sites, and the point-charge Coulomb energy of its
        charges, per model ("GFN2-xTB": the reference and its Mulliken charges)."""
        atoms = rod.copy()
        del atoms[list(removed)]
        reference = label(atoms, total_charge)
        energy = {"GFN2-xTB": float(reference.info["REF_energy"])}
        coulomb = {"GFN2-xTB": pair_coulomb(atoms, reference.arrays["REF_charges"])}
        for name, calculator in calculators.items():
            atoms.info = {"charge": float(total_charge)}
            atoms.calc = calculator
            energy[name] = atoms.get_potential_energy()
            if "charges" in calculator.results:
                coulomb[name] = pair_coulomb(atoms, np.asarray(calculator.results["charges"]))
        return energy, coulomb

    rows = []
    for symbol, charge in VACANCY_CHARGE.items():
        for a, b, r in like_site_pairs(rod, symbol, spacing):
            states = {"none": state((), 0), "A": state((a,), charge), "B": state((b,), charge),
                      "AB": state((a, b), 2 * charge)}
            w = per_model({key: energy for key, (energy, _) in states.items()})
            rows.append({"vacancy": symbol, "total_charge": 2 * charge, "distance": r,
                         "bare_coulomb": COULOMB_CONSTANT / r, "interaction": w,
                         "coulomb_part": per_model({key: coulomb for key, (_, coulomb) in states.items()})})
            print(f"  {symbol} {r:5.2f} Å  W: " + "  ".join(f"{n} {x:+.3f}" for n, x in w.items()), flush=True)
    return rows


def markdown(rows: List[dict], command: str, hardware: str) -> str:
    models = [name for name in rows[0]["interaction"] if name != "GFN2-xTB"]
    lines = ["# Interaction of two like vacancies in a 2×2×4 Na/Cl rod", "",
             "W = E(AB) − E(A) − E(B) + E(∅) (eV) on the ideal rod, vacancies A and B at Q = ±2 against ±1: what is "
             "left once every energy linear in the composition and in Q cancels (see the script's docstring). "
             f"Models: those `python benchmarks/peers.py --set {SET}` trained (Q = 0, ±1 only). {hardware}. "
             f"Command: `{command}`", "",
             "| vacancies | Q | r (Å) | bare k/r | GFN2-xTB | " + " | ".join(models) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(models)]
    for row in rows:
        lines.append(f"| {row['vacancy']} | {row['total_charge']:+d} | {row['distance']:.2f} | "
                     f"{row['bare_coulomb']:.2f} | {row['interaction']['GFN2-xTB']:+.2f} | "
                     + " | ".join(f"{row['interaction'][m]:+.2f}" for m in models) + " |")
    error = {m: float(np.sqrt(np.mean([(r["interaction"][m] - r["interaction"]["GFN2-xTB"]) ** 2 for r in rows])))
             for m in models}
    lines.append("| RMSE against GFN2-xTB | | | | | " + " | ".join(f"{error[m]:.2f}" for m in models) + " |")
    charged = list(rows[0]["coulomb_part"])
    lines += ["", "Its point-charge Coulomb part, ½ Σ k qᵢqⱼ/rᵢⱼ of the reference (Mulliken) charges and of each "
              "charge model's charges, in the same combination (eV):", "",
              "| vacancies | r (Å) | " + " | ".join(charged) + " |", "|---|---:|" + "---:|" * len(charged)]
    for row in rows:
        lines.append(f"| {row['vacancy']} | {row['distance']:.2f} | "
                     + " | ".join(f"{row['coulomb_part'][m]:+.2f}" for m in charged) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> None:
    from mace_qeq.datasets.geometries import ROCKSALT_HALF_LATTICE

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spacing", type=float, default=2 * ROCKSALT_HALF_LATTICE,
                        help="vacancies more than this far apart (Å; default two Na–Cl distances, as the set's ±2 rods)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output", type=Path, default=pm.RESULTS)
    args = parser.parse_args(argv)
    rows = measure(args.device, args.spacing)
    command = "python benchmarks/vacancy_interaction.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    text = markdown(rows, command, pm.hardware(args.device))
    print(text)
    pm.write_json(args.output / "vacancy_interaction.json", {"set": SET, "rows": rows})
    (args.output / "vacancy_interaction.md").write_text(text)


if __name__ == "__main__":
    main()
