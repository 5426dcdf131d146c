"""GFN2-xTB data sets of charged systems, made offline with tblite.

Analogues of the 4G-HDNNP charge-transfer benchmarks, not the published DFT
sets: the reference is GFN2-xTB, the charges its Mulliken charges, the dipole
its total dipole (e·Å, about the centred structure's origin).

Named sets (``--set``), sampled by Langevin MD of each charge state
(:mod:`.md_sampling`), every frame carrying ``info['trajectory']`` so that
benchmarks can hold out whole trajectories:

* ``ag3_same_geometry``: Ag3 frames from MD of Ag3⁺ and Ag3⁻, each frame
  labelled at total charge +1 *and* −1: only the total charge tells them apart;
* ``ag3_md``: Ag3⁺ and Ag3⁻ frames from their own MD runs, each at its own
  charge: the geometry shows the charge state;
* ``carbon_chain``: C10H2 (Q = 0) and C10H3⁺ (a proton on one end, Q = +1);
* ``na9cl8``: Na9Cl8⁺ and Na8Cl8⁺ rods (removing a neutral Na far away
  changes the charge distribution);
* ``nacl_transfer``: Na4Cl4, Na4Cl3⁺, Na3Cl4⁻ for training and, marked
  ``info['split'] = 'test'``, total charges and sizes training never has:
  Na4Cl2²⁺, Na2Cl4²⁻, Na14Cl13⁺, Na13Cl14⁻;
* ``nacl_rods``: 2×2×N rock-salt rods (N = 2, 3, 4: 16, 24, 32 sites) at
  Q = 0 and, with one vacancy, ±1 for training (7–16 atoms) and, marked
  ``info['split'] = 'test'``, what only the long range changes: two like
  vacancies more than two Na–Cl distances apart (Na8Cl6²⁺, Na6Cl8²⁻) and rods
  three times the largest (2×2×12: Na24Cl24, Na24Cl23⁺, Na23Cl24⁻), whose ions
  have the coordinations training has;
* ``nacl_periodic``: rattled, strained periodic Na8Cl8 cells, neutral and
  with a Cl or Na vacancy (Q = +1 / −1), with stress.

Without ``--set``, the random-geometry clusters of the embedded default set
(``--ag3``, ``--nacl``, ``--na9cl8``; isolated atoms for E0s included).

    mace_qeq_make_xtb_data --set ag3_md --structures 1000 --output ag3_md.xyz
    mace_qeq_make_xtb_data --ag3 100 --nacl 40 --output clusters.xyz

Keys: MACE's (see :mod:`.xtb`). Needs the ``xtb`` extra.
"""

import argparse
import logging
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import ase.io
import numpy as np
from ase import Atoms

from . import DEFAULT_DATASET
from .geometries import (
    ROCKSALT_HALF_LATTICE,
    ag3_triangles,
    charged_by_vacancies,
    na9cl8_rods,
    nacl_cubes,
    polyyne,
    rocksalt_block,
    rocksalt_supercell,
)
from .md_sampling import Trajectory, sample
from .xtb import label

# ---------------------------------------------------------------- MD-sampled sets


def _ag3(charge: int) -> Atoms:
    """Each charge state's MD starts at its own minimum: Ag3⁺ an equilateral triangle, Ag3⁻ a line."""
    if charge > 0:
        return Atoms("Ag3", positions=[[0.0, 0.0, 0.0], [2.7, 0.0, 0.0], [1.35, 2.34, 0.0]])
    return Atoms("Ag3", positions=[[0.0, 0.0, 0.0], [2.62, 0.0, 0.0], [5.24, 0.1, 0.0]])


def _split(structures: int, runs: int, per_frame: int = 1) -> int:
    return max(1, int(np.ceil(structures / (runs * per_frame))))


# GFN2-xTB's SCF of Ag3⁻ fails often at 300 K electronic temperature; 2000 K converges every step.
AG3_ELECTRONIC_TEMPERATURE = 2000.0


def ag3_same_geometry(structures: int, seed: int) -> List[Trajectory]:
    frames = _split(structures, 10, 2)
    return [Trajectory(_ag3(charge), charge, name, frames, temperature=600.0, seed=seed + k,
                       electronic_temperature=AG3_ELECTRONIC_TEMPERATURE,
                       also_at=[(-charge, "Ag3-" if charge > 0 else "Ag3+")])
            for k, (charge, name) in enumerate([(1, "Ag3+"), (-1, "Ag3-")] * 5)]


def ag3_md(structures: int, seed: int) -> List[Trajectory]:
    frames = _split(structures, 10)
    return [Trajectory(_ag3(charge), charge, name, frames, temperature=600.0, seed=seed + k,
                       electronic_temperature=AG3_ELECTRONIC_TEMPERATURE)
            for k, (charge, name) in enumerate([(1, "Ag3+"), (-1, "Ag3-")] * 5)]


def carbon_chain(structures: int, seed: int) -> List[Trajectory]:
    frames = _split(structures, 8)
    return [Trajectory(polyyne(10, protonated), charge, name, frames, temperature=500.0, timestep=0.5, stride=40,
                       equilibration=400, seed=seed + k)
            for k, (protonated, charge, name) in enumerate([(False, 0, "C10H2"), (True, 1, "C10H3+")] * 4)]


def na9cl8(structures: int, seed: int) -> List[Trajectory]:
    frames = _split(structures, 8)
    rod = rocksalt_block((2, 2, 4))
    capped = rod + Atoms("Na", positions=[[1.41, 1.41, 4 * 2.82]])
    return [Trajectory(start, 1, name, frames, temperature=400.0, seed=seed + k)
            for k, (start, name) in enumerate([(capped, "Na9Cl8+"), (rod, "Na8Cl8+")] * 4)]


def _ionic_name(atoms: Atoms, charge: int) -> str:
    """The config type of a Na/Cl structure: its composition and one sign per charge (``Na4Cl2++``)."""
    symbols = atoms.get_chemical_symbols()
    return f"Na{symbols.count('Na')}Cl{symbols.count('Cl')}" + ("+" * charge if charge > 0 else "-" * -charge)


def _vacancy_run(block: Atoms, charge: int, rng: np.random.Generator, frames: int, spacing: float = 0.0,
                 **md) -> Trajectory:
    """An MD run of rock-salt ``block`` at total charge ``charge`` (see :func:`charged_by_vacancies`);
    ``md``: the other :class:`Trajectory` fields."""
    start = charged_by_vacancies(block, charge, rng, spacing)
    return Trajectory(start, charge, _ionic_name(start, charge), frames, **md)


def _charge_states(block: Atoms, rng: np.random.Generator, frames: int, seed: int, **md) -> List[Trajectory]:
    """Neutral ``block`` (MD seed ``seed``) and, with one vacancy, at Q = +1 (``seed + 1``) and −1 (``seed + 2``)."""
    return [_vacancy_run(block, charge, rng, frames, seed=seed + k, **md) for k, charge in enumerate((0, 1, -1))]


def nacl_transfer(structures: int, seed: int) -> List[Trajectory]:
    rng = np.random.default_rng(seed)
    cube = rocksalt_block((2, 2, 2))
    frames = _split(structures, 9)
    runs = []
    for k in range(3):
        runs += _charge_states(cube, rng, frames, seed + 10 * k)
    unseen = max(10, structures // 40)
    for k in range(2):
        runs += [_vacancy_run(cube, 2, rng, unseen, temperature=400.0, seed=seed + 100 + k),
                 _vacancy_run(cube, -2, rng, unseen, temperature=400.0, seed=seed + 110 + k)]
    runs += [Trajectory(rocksalt_block((3, 3, 3)), 1, "Na14Cl13+", unseen, temperature=400.0, seed=seed + 120),
             Trajectory(rocksalt_block((3, 3, 3), swap=True), -1, "Na13Cl14-", unseen, temperature=400.0,
                        seed=seed + 121)]
    return runs


def nacl_rods(structures: int, seed: int) -> List[Trajectory]:
    """Rods of every length at every training charge, 3 runs each; unseen: the same local environments at
    Q = ±2 and at 48 atoms. The vacancies of the ±2 rods sit more than two Na–Cl distances apart, so that no
    ion loses two neighbours (an environment training does not have)."""
    rng = np.random.default_rng(seed)
    frames = _split(structures, 27)
    runs = []
    for k in range(3):
        for length in (2, 3, 4):
            runs += _charge_states(rocksalt_block((2, 2, length)), rng, frames, seed + 100 * k + 10 * length)
    unseen = max(10, structures // 40)
    rod, apart = rocksalt_block((2, 2, 4)), 2 * ROCKSALT_HALF_LATTICE
    for k in range(2):
        runs += [_vacancy_run(rod, 2, rng, unseen, apart, temperature=400.0, seed=seed + 1000 + k),
                 _vacancy_run(rod, -2, rng, unseen, apart, temperature=400.0, seed=seed + 1010 + k)]
    return runs + _charge_states(rocksalt_block((2, 2, 12)), rng, unseen, seed + 1020, temperature=400.0)


#: Sets that only the transfer benchmark tests on: their config types never appear in training.
UNSEEN_IN_TRAINING = {"nacl_transfer": ("Na4Cl2++", "Na2Cl4--", "Na14Cl13+", "Na13Cl14-"),
                      "nacl_rods": ("Na8Cl6++", "Na6Cl8--", "Na24Cl24", "Na24Cl23+", "Na23Cl24-")}

MD_SETS: Dict[str, Callable[[int, int], List[Trajectory]]] = {
    "ag3_same_geometry": ag3_same_geometry,
    "ag3_md": ag3_md,
    "carbon_chain": carbon_chain,
    "na9cl8": na9cl8,
    "nacl_transfer": nacl_transfer,
    "nacl_rods": nacl_rods,
}


def nacl_periodic(structures: int, seed: int) -> List[Tuple[Atoms, int, str]]:
    """Rattled (σ 0.05–0.15 Å), strained (±3 %, small shear) Na8Cl8 cells and their one-vacancy variants."""
    rng = np.random.default_rng(seed)
    jobs = []
    for k in range(structures):
        cell = rocksalt_supercell((2, 1, 1))
        deformation = np.eye(3) + rng.uniform(-0.03, 0.03) * np.eye(3) + rng.uniform(-0.02, 0.02, (3, 3))
        cell.set_cell(cell.cell.array @ deformation, scale_atoms=True)
        cell.rattle(rng.uniform(0.05, 0.15), seed=int(rng.integers(1 << 31)))
        charge, name = [(0, "Na8Cl8"), (1, "Na8Cl7+"), (-1, "Na7Cl8-")][k % 3]
        jobs.append((charged_by_vacancies(cell, charge, rng), charge, name))
    return jobs


SET_NAMES = sorted(list(MD_SETS) + ["nacl_periodic"])

# ---------------------------------------------------------------- the embedded default set


def jobs(n_ag3: int, n_nacl: int, seed: int, n_na9cl8: int = 0) -> List[Tuple[Atoms, int, int, str]]:
    """(geometry, total charge, spin multiplicity, config_type) of every random-geometry structure."""
    rng = np.random.default_rng(seed)
    todo: List[Tuple[Atoms, int, int, str]] = [
        (Atoms(s), 0, 2, "IsolatedAtom") for s in ("Ag", "Na", "Cl")  # each has one unpaired electron
    ]
    for triangle in ag3_triangles(n_ag3, rng):
        todo += [(triangle, +1, 1, "Ag3+"), (triangle, -1, 1, "Ag3-")]
    for cube in nacl_cubes(n_nacl, rng):
        todo += [
            (cube, 0, 1, "Na4Cl4"),
            (charged_by_vacancies(cube, +1, rng), +1, 1, "Na4Cl3+"),
            (charged_by_vacancies(cube, -1, rng), -1, 1, "Na3Cl4-"),
        ]
    for rod in na9cl8_rods(n_na9cl8, rng):
        todo += [(rod, +1, 1, "Na9Cl8+"), (rod[:-1], +1, 2, "Na8Cl8+")]  # Na8Cl8+ has one unpaired electron
    return todo


def _label_all(todo: List[Tuple[Atoms, int, int, str]]) -> List[Atoms]:
    from ase.calculators.calculator import CalculationFailed

    labelled = []
    start = time.perf_counter()
    for k, (atoms, charge, multiplicity, config_type) in enumerate(todo, 1):
        try:
            labelled.append(label(atoms, charge, multiplicity, config_type))
        except CalculationFailed as error:
            logging.warning(f"structure {k} ({config_type}) skipped: GFN2-xTB failed ({error})")
        if k % 50 == 0 or k == len(todo):
            logging.info(f"labelled {k}/{len(todo)} structures ({time.perf_counter() - start:.1f} s)")
    return labelled


def make_dataset(output: Path, n_ag3: int = 100, n_nacl: int = 40, seed: int = 0, n_na9cl8: int = 0) -> List[Atoms]:
    """The random-geometry clusters (the embedded default set's recipe), written to ``output``."""
    labelled = _label_all(jobs(n_ag3, n_nacl, seed, n_na9cl8))
    output.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(output, labelled, format="extxyz")
    return labelled


# ---------------------------------------------------------------- named sets


def _run(item: Tuple[int, Trajectory]) -> List[Atoms]:
    trajectory_id, trajectory = item
    start = time.perf_counter()
    frames = sample(trajectory, trajectory_id)
    logging.info(f"trajectory {trajectory_id} ({trajectory.config_type}, Q = {trajectory.charge:+d}): "
                 f"{len(frames)} structures in {time.perf_counter() - start:.0f} s")
    return frames


def make_set(name: str, output: Path, structures: int, seed: int = 0, workers: int = 1) -> List[Atoms]:
    """Make the named set (see the module docstring) of about ``structures`` structures
    (for ``nacl_transfer``: the training part; the unseen groups come on top)."""
    if name == "nacl_periodic":
        made = [s for s in _label_all([(a, q, 0, t) for a, q, t in nacl_periodic(structures, seed)])]
        for k, atoms in enumerate(made):
            atoms.info["trajectory"] = k
    elif name in MD_SETS:
        runs = list(enumerate(MD_SETS[name](structures, seed)))
        logging.info(f"{name}: {len(runs)} MD runs on {workers} worker(s)")
        if workers > 1:
            with multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_setup) as pool:
                made = [a for frames in pool.imap(_run, runs) for a in frames]
        else:
            made = [a for item in runs for a in _run(item)]
    else:
        raise ValueError(f"unknown set {name!r}; choose one of {SET_NAMES}")
    for atoms in made:
        if atoms.info["config_type"] in UNSEEN_IN_TRAINING.get(name, ()):
            atoms.info["split"] = "test"
    output.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(output, made, format="extxyz")
    return made


def _worker_setup():
    """Each MD worker: one thread (the workers share the cores), progress logged like the parent's."""
    import os

    os.environ["OMP_NUM_THREADS"] = "1"
    logging.basicConfig(level=logging.INFO, format="%(message)s")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", choices=SET_NAMES, help="a named MD-sampled set (see above)")
    parser.add_argument("--structures", type=int, default=1000, help="about how many structures (--set)")
    parser.add_argument("--workers", type=int, default=1, help="MD runs in parallel (--set)")
    parser.add_argument("--ag3", type=int, default=100, help="Ag3 geometries (each labelled as +1 and −1)")
    parser.add_argument("--nacl", type=int, default=40, help="Na4Cl4 geometries (each also as Na4Cl3+, Na3Cl4−)")
    parser.add_argument("--na9cl8", type=int, default=0, help="Na8Cl8 rods (each as Na9Cl8+ and Na8Cl8+)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="default: <set>.xyz, or the embedded set")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.set:
        structures = make_set(args.set, args.output or Path(f"{args.set}.xyz"), args.structures, args.seed,
                              args.workers)
    else:
        structures = make_dataset(args.output or DEFAULT_DATASET, args.ag3, args.nacl, args.seed, args.na9cl8)
    logging.info(f"wrote {len(structures)} structures to {args.output or args.set + '.xyz'}")


if __name__ == "__main__":
    main()
