"""Energy conservation (NVE) and stability (Langevin, 600 K) of molecular dynamics with MACEQEq.

    python benchmarks/md_stability.py                 # CPU, hours: both parts
    python benchmarks/md_stability.py --part langevin --langevin-steps 5000           # CPU, ~20 min
    python benchmarks/md_stability.py --part nve --quick --steps 500 --epochs 18      # CPU, ~25 min

NVE (velocity Verlet, 1 fs, from 300 K): total-energy drift (meV/atom/ns, the
slope of a linear fit) and fluctuation for a periodic NaCl cell (64 atoms,
neutral), the same cell with a Cl vacancy (63 atoms, +1) and a charged
cluster (Na4Cl3⁺), in float64 and float32, with the dense solve and with the
iterative one (smooth PME for the cells, warm-started from the previous step)
at several tolerances. The model is MACEQEq trained on GFN2-xTB Na/Cl clusters
and periodic cells (``nacl_transfer`` + ``nacl_periodic`` sets, made on first use).

Langevin (600 K, 1 fs, friction 0.01/fs, 20 ps): each system of the demo set
(Ag3⁺, Ag3⁻, Na4Cl4, Na4Cl3⁺, Na3Cl4⁻) with the demo model (``mace_qeq_demo``,
trained here on first use): steps completed, largest |q|, closest approach,
energy range, whether the cluster stayed together, and GFN2-xTB's energy of the
frame of lowest model energy (a hole is where the model is far below it).

Writes results/md_stability.{json,md} and md_stability_nve.png.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import ase.io
import numpy as np
import peer_models as pm
import torch
from ase import Atoms
from mace_qeq.training import trained_model_path

NVE_CASES = {
    "NaCl cell (64 atoms, Q = 0)": ("cell", 0),
    "NaCl cell, Cl vacancy (63 atoms, Q = +1)": ("vacancy", 1),
    "Na4Cl3⁺ cluster (Q = +1)": ("cluster", 1),
}
#: (dtype, method, tolerance in e): the dense solve, and the iterative one at several tolerances.
SOLVERS = [("float64", "dense", None), ("float64", "iterative", 1e-4), ("float64", "iterative", 1e-6),
           ("float64", "iterative", 1e-8), ("float32", "dense", None), ("float32", "iterative", 1e-5)]
#: ``--quick``: the dense solve in both precisions and the iterative one at a loose and a tight tolerance.
QUICK_SOLVERS = [("float64", "dense", None), ("float64", "iterative", 1e-4), ("float64", "iterative", 1e-6),
                 ("float32", "dense", None)]


def md_model(work: Path, device: str, epochs: int) -> Path:
    """MACEQEq trained on GFN2-xTB Na/Cl clusters (Q = 0, ±1) and periodic Na8Cl8 cells (with vacancies)."""
    folder = work / "nacl_md"
    path = trained_model_path(folder, "MACEQEq")
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    ase.io.write(folder / "train.xyz", pm.load("nacl_transfer")[0] + pm.load("nacl_periodic")[0])
    run = pm.train(pm.MODELS["MACEQEq"], folder / "train.xyz", folder, epochs, device)
    if run.status != "ok":
        raise RuntimeError(f"training the MD model failed: {run.status}")
    return Path(run.path)


def nve_system(kind: str):
    import ase.build

    if kind == "cluster":
        cluster = next(a for a in pm.load("nacl_transfer")[1] if a.info["config_type"] == "Na4Cl3+")
        atoms = cluster.copy()
    else:
        atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (2, 2, 2)
        if kind == "vacancy":
            del atoms[[i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Cl"][0]]
    atoms.info = {}
    return atoms


def calculator_for(model: Path, dtype: str, method: str, tolerance, device: str):
    from mace_qeq.calculators import MACEQEqCalculator

    calculator = MACEQEqCalculator(model_paths=str(model), device=device, default_dtype=dtype)
    block = calculator.models[0].charge_equilibration
    if method == "iterative":
        block.dense_limit = 0  # the production path of large systems, here on a small one
        block.mesh_limit = 0
        block.tolerance = tolerance
    return calculator


def run_nve(model: Path, kind: str, charge: int, dtype: str, method: str, tolerance, steps: int, device: str):
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
    from ase.md.verlet import VelocityVerlet

    atoms = nve_system(kind)
    atoms.info["charge"] = charge
    atoms.calc = calculator_for(model, dtype, method, tolerance, device)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(7))
    Stationary(atoms)
    if not atoms.pbc.any():
        ZeroRotation(atoms)
    dynamics = VelocityVerlet(atoms, 1.0 * units.fs)
    energies, charges_max = [], []

    def record():
        energies.append(atoms.get_total_energy())
        charges_max.append(float(np.abs(atoms.calc.results["charges"]).max()))

    dynamics.attach(record, interval=10)
    start = time.perf_counter()
    dynamics.run(steps)
    seconds = time.perf_counter() - start
    energies = np.asarray(energies)
    time_ns = np.arange(len(energies)) * 10 * 1e-6  # 10 fs per record
    slope = np.polyfit(time_ns, energies, 1)[0]  # eV/ns
    return {"drift_mev_per_atom_per_ns": 1e3 * slope / len(atoms),
            "fluctuation_mev_per_atom": 1e3 * float(np.std(energies - np.polyval(np.polyfit(time_ns, energies, 1),
                                                                                   time_ns))) / len(atoms),
            "steps": steps, "atoms": len(atoms), "ms_per_step": 1e3 * seconds / steps,
            "max_abs_charge": max(charges_max), "energies": energies.tolist()}


def run_langevin(model: Path, config_type: str, steps: int, device: str):
    from ase import units
    from ase.calculators.calculator import CalculationFailed
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from mace_qeq.calculators import MACEQEqCalculator
    from mace_qeq.datasets import DEFAULT_DATASET
    from mace_qeq.datasets.md_sampling import is_connected
    from mace_qeq.datasets.xtb import label

    reference = next(a for a in ase.io.read(DEFAULT_DATASET, ":") if a.info["config_type"] == config_type)
    atoms = reference.copy()
    atoms.info = {"charge": reference.info["total_charge"]}
    atoms.calc = MACEQEqCalculator(model_paths=str(model), device=device, default_dtype="float64")
    MaxwellBoltzmannDistribution(atoms, temperature_K=600, rng=np.random.default_rng(3))
    dynamics = Langevin(atoms, 1.0 * units.fs, temperature_K=600, friction=0.01 / units.fs, fixcm=False,
                        rng=np.random.default_rng(4))
    stats = {"largest_charge": 0.0, "closest_approach": np.inf, "energies": [], "together": True, "lowest": None}

    def record():
        q = np.abs(atoms.calc.results["charges"]).max()
        distances = atoms.get_all_distances() + np.eye(len(atoms)) * 1e9
        energy = atoms.get_potential_energy()
        stats["largest_charge"] = max(stats["largest_charge"], float(q))
        stats["closest_approach"] = min(stats["closest_approach"], float(distances.min()))
        stats["energies"].append(energy)
        stats["together"] &= bool(is_connected(atoms))
        if stats["lowest"] is None or energy < stats["lowest"].info["model_energy"]:
            stats["lowest"] = Atoms(atoms.numbers, atoms.positions, info={"model_energy": energy})

    dynamics.attach(record, interval=20)
    start = time.perf_counter()
    status = "completed"
    try:
        dynamics.run(steps)
    except Exception as error:  # a blow-up: report it, not crash the benchmark
        status = f"stopped at step {dynamics.nsteps}: {error}"
    energies = np.asarray(stats["energies"])
    # the depth of a hole: GFN2-xTB's energy of the frame the model puts lowest (None if xTB fails there)
    try:
        lowest_xtb = float(label(stats["lowest"], int(reference.info["total_charge"])).info["REF_energy"])
    except CalculationFailed:
        lowest_xtb = None
    return {"config_type": config_type, "atoms": len(atoms), "steps_done": dynamics.nsteps, "status": status,
            "largest_abs_charge": stats["largest_charge"], "closest_approach": stats["closest_approach"],
            "energy_min": float(energies.min()), "energy_max": float(energies.max()),
            "reference_energy": float(reference.info["REF_energy"]), "stayed_together": stats["together"],
            "lowest_frame_xtb_energy": lowest_xtb,
            "seconds": time.perf_counter() - start}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["nve", "langevin", "both"], default="both")
    parser.add_argument("--steps", type=int, default=5000, help="NVE steps (1 fs)")
    parser.add_argument("--langevin-steps", type=int, default=20000, help="Langevin steps (1 fs): 20 ps")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs of the NVE model")
    parser.add_argument("--quick", action="store_true", help="NVE with four solver settings, not six")
    parser.add_argument("--retrain", action="store_true",
                        help="train the models again (they are kept in --work-dir; retrain after changing mace-qeq)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work-dir", type=Path, default=pm.WORK / "md")
    parser.add_argument("--output", type=Path, default=pm.RESULTS)
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    if args.retrain:
        for folder in {"nve": ["nacl_md"], "langevin": ["demo"], "both": ["nacl_md", "demo"]}[args.part]:
            shutil.rmtree(args.work_dir / folder, ignore_errors=True)
    path = args.output / "md_stability.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    # each part keeps the machine and the day it ran on: a rerun of one part leaves the other's as they were
    earlier = {key: result.pop(key) for key in ("hardware", "date") if key in result}
    for part in ("nve", "langevin"):
        if part in result:
            result[part] = {**earlier, **result[part]}
    stamp = {"hardware": pm.hardware(args.device), "date": time.strftime("%Y-%m-%d")}
    if args.part in ("nve", "both"):
        model = md_model(args.work_dir, args.device, args.epochs)
        nve = []
        for label, (kind, charge) in NVE_CASES.items():
            for dtype, method, tolerance in QUICK_SOLVERS if args.quick else SOLVERS:
                if kind == "cluster" and method == "iterative" and tolerance in (1e-4, 1e-8):
                    continue  # the cluster: dense and one iterative tolerance are enough
                row = run_nve(model, kind, charge, dtype, method, tolerance, args.steps, args.device)
                row.update(system=label, dtype=dtype, method=method, tolerance=tolerance)
                nve.append(row)
                print(f"NVE {label:42s} {dtype} {method:9s} tol {tolerance}: drift "
                      f"{row['drift_mev_per_atom_per_ns']:+9.3f} meV/atom/ns, fluctuation "
                      f"{row['fluctuation_mev_per_atom']:.3f} meV/atom, {row['ms_per_step']:.0f} ms/step", flush=True)
        result["nve"] = {"rows": nve, "steps": args.steps, "model": str(model), **stamp,
                         "command": f"python benchmarks/md_stability.py --part nve --steps {args.steps} "
                                    f"--epochs {args.epochs}" + (" --quick" if args.quick else "")
                                    + (" --retrain" if args.retrain else "")}
    if args.part in ("langevin", "both"):
        if not (args.work_dir / "demo" / "maceqeq_demo.model").exists():
            from mace_qeq.cli.demo import main as demo_main

            demo_main(["--work_dir", str(args.work_dir / "demo")])
        demo = trained_model_path(args.work_dir / "demo", "maceqeq_demo")
        langevin = []
        for config_type in ("Ag3+", "Ag3-", "Na4Cl4", "Na4Cl3+", "Na3Cl4-"):
            row = run_langevin(demo, config_type, args.langevin_steps, args.device)
            langevin.append(row)
            print(f"Langevin 600 K {config_type:8s} {row['status']}, {row['steps_done']} steps, |q| ≤ "
                  f"{row['largest_abs_charge']:.2f} e, closest {row['closest_approach']:.2f} Å, E in "
                  f"[{row['energy_min']:.2f}, {row['energy_max']:.2f}] eV, together {row['stayed_together']}", flush=True)
        result["langevin"] = {"rows": langevin, "steps": args.langevin_steps, "model": str(demo), **stamp,
                              "command": "python benchmarks/md_stability.py --part langevin "
                                         + ("--retrain " if args.retrain else "")
                                         + f"--langevin-steps {args.langevin_steps}"}
    pm.write_json(path, result)
    write_markdown(result, args.output)


def write_markdown(result: dict, output: Path) -> None:
    lines = ["# Molecular dynamics with MACEQEq: energy conservation and stability", ""]
    if "nve" in result:
        nve = result["nve"]
        lines += ["## NVE (velocity Verlet, 1 fs, 300 K start)", "",
                  f"{nve['steps']} steps per run; drift = slope of a linear fit of the total energy; model: MACEQEq "
                  f"trained on GFN2-xTB Na/Cl clusters and cells. Hardware: {nve['hardware']}, {nve['date']}. "
                  f"Command: `{nve['command']}`", "",
                  "| system | dtype | solver | tolerance (e) | drift (meV/atom/ns) | fluctuation (meV/atom) | max |q| (e) | ms/step |",
                  "|---|---|---|---:|---:|---:|---:|---:|"]
        for row in nve["rows"]:
            tolerance = "—" if row["tolerance"] is None else f"{row['tolerance']:.0e}"
            solver = "dense" if row["method"] == "dense" else "iterative, warm start" + (
                ", PME" if "cell" in row["system"] else "")
            lines.append(f"| {row['system']} | {row['dtype']} | {solver} | {tolerance} | "
                         f"{row['drift_mev_per_atom_per_ns']:+.3f} | {row['fluctuation_mev_per_atom']:.3f} | "
                         f"{row['max_abs_charge']:.2f} | {row['ms_per_step']:.0f} |")
        plot_nve(nve, output / "md_stability_nve.png")
    if "langevin" in result:
        lang = result["langevin"]
        lines += ["", "## Langevin 600 K (1 fs, friction 0.01/fs) with the demo model", "",
                  f"{lang['steps']} steps ({lang['steps'] / 1000:.0f} ps) per system; model: "
                  f"`{Path(lang['model']).name}` of `mace_qeq_demo`. Hardware: {lang['hardware']}, {lang['date']}. "
                  f"Command: `{lang['command']}`", "",
                  "The lowest frame is the one of lowest model energy; model − xTB there is the depth of any hole "
                  "the run fell into (≈ the model's error where it has data).", "",
                  "| system | status | steps | max |q| (e) | closest approach (Å) | E range (eV) | xTB E of the start (eV) "
                  "| lowest frame: model − xTB (eV) | stayed together |",
                  "|---|---|---:|---:|---:|---|---:|---:|---|"]
        for row in lang["rows"]:
            depth = row.get("lowest_frame_xtb_energy")
            depth = "—" if depth is None else f"{row['energy_min'] - depth:+.2f}"
            lines.append(f"| {row['config_type']} | {row['status']} | {row['steps_done']} | "
                         f"{row['largest_abs_charge']:.2f} | {row['closest_approach']:.2f} | "
                         f"{row['energy_min']:.2f} … {row['energy_max']:.2f} | {row['reference_energy']:.2f} | "
                         f"{depth} | {row['stayed_together']} |")
    (output / "md_stability.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot_nve(nve: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(dict.fromkeys(row["system"] for row in nve["rows"]))
    fig, axes = plt.subplots(1, len(systems), figsize=(5 * len(systems), 4), squeeze=False)
    for ax, system in zip(axes[0], systems):
        for row in nve["rows"]:
            if row["system"] != system:
                continue
            energies = np.asarray(row["energies"])
            t = np.arange(len(energies)) * 10e-3  # ps
            label = f"{row['dtype']} {row['method']}" + ("" if row["tolerance"] is None else f" {row['tolerance']:.0e}")
            ax.plot(t, 1e3 * (energies - energies[0]) / row["atoms"], label=label, lw=0.8)
        ax.set(title=system, xlabel="time (ps)", ylabel="E_total − E_total(0) (meV/atom)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
