"""GFN2-xTB analogues of the 4G-HDNNP charge-transfer benchmarks, made offline.

Clearly *analogues*, not the published DFT sets: the reference is GFN2-xTB
(tblite), the charges are its Mulliken charges, the dipole its total dipole
(e·Å, about the origin, the cluster being centred there).

* Ag3+ / Ag3−: the same random triangle with total charge +1 and −1; only
  the total charge tells them apart (the 4G-HDNNP "Ag3±" test).
* Na4Cl4 (Q = 0), Na4Cl3 (+1), Na3Cl4 (−1): rattled, randomly scaled
  rock-salt cubes with one ion removed for the charged ones.
* Na9Cl8+ / Na8Cl8+ (``--na9cl8``): a rattled 2×2×4 rock-salt rod with an
  extra Na on one end, and the same rod without it, both of total charge +1
  (the 4G-HDNNP test: a neutral Na far away changes the charge distribution).
* isolated neutral atoms (config_type IsolatedAtom) for MACE's E0s.

Keys (MACE's): REF_energy (eV), REF_forces (eV/Å), REF_charges (e),
REF_dipole (e·Å), total_charge (e), config_type.

    mace_qeq_make_xtb_data --ag3 100 --nacl 40 --output clusters.xyz

needs the ``xtb`` extra (``pip install mace-qeq[xtb]``).
"""

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import ase.io
import numpy as np
from ase import Atoms

from . import DEFAULT_DATASET

ROCKSALT_HALF_LATTICE = 2.82  # Å, Na–Cl nearest neighbour in the crystal


def ag3_triangles(count: int, rng: np.random.Generator) -> Iterator[Atoms]:
    """Ag3 triangles with two bonds in [2.45, 3.3] Å and an apex angle in [45°, 180°]."""
    for _ in range(count):
        r1, r2 = rng.uniform(2.45, 3.3, size=2)
        angle = np.radians(rng.uniform(45.0, 180.0))
        positions = np.array([[0.0, 0.0, 0.0], [r1, 0.0, 0.0], [r2 * np.cos(angle), r2 * np.sin(angle), 0.0]])
        yield Atoms("Ag3", positions=positions)


def nacl_cubes(count: int, rng: np.random.Generator) -> Iterator[Atoms]:
    """Rattled Na4Cl4 rock-salt cubes, isotropically scaled by 0.9–1.1."""
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    symbols = ["Na" if (i + j + k) % 2 == 0 else "Cl" for i, j, k in corners.astype(int)]
    for _ in range(count):
        scale = ROCKSALT_HALF_LATTICE * rng.uniform(0.9, 1.1)
        positions = corners * scale + rng.normal(scale=0.12, size=corners.shape)
        yield Atoms(symbols, positions=positions)


def na9cl8_rods(count: int, rng: np.random.Generator) -> Iterator[Atoms]:
    """Rattled Na8Cl8 2×2×4 rock-salt rods with a ninth Na capping one end."""
    sites = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in range(4)], dtype=float)
    symbols = ["Na" if (i + j + k) % 2 == 0 else "Cl" for i, j, k in sites.astype(int)]
    for _ in range(count):
        scale = ROCKSALT_HALF_LATTICE * rng.uniform(0.95, 1.05)
        positions = np.vstack([sites * scale, [[0.5 * scale, 0.5 * scale, 4.0 * scale]]])
        positions += rng.normal(scale=0.1, size=positions.shape)
        yield Atoms(symbols + ["Na"], positions=positions)


def remove_one(atoms: Atoms, symbol: str, rng: np.random.Generator) -> Atoms:
    candidates = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == symbol]
    return atoms[[i for i in range(len(atoms)) if i != rng.choice(candidates)]]


def label(atoms: Atoms, charge: int, multiplicity: int = 1, config_type: str = "cluster",
          electronic_temperature: float = 300.0) -> Atoms:
    """Centre the structure and attach GFN2-xTB energy, forces, charges and dipole."""
    from tblite.ase import TBLite

    atoms = atoms.copy()
    atoms.positions -= atoms.positions.mean(axis=0)
    atoms.calc = TBLite(method="GFN2-xTB", charge=charge, multiplicity=multiplicity, verbosity=0,
                        electronic_temperature=electronic_temperature)
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    charges = atoms.get_charges()
    dipole = atoms.get_dipole_moment()
    atoms.calc = None
    atoms.info.update(REF_energy=float(energy), REF_dipole=np.asarray(dipole, dtype=float),
                      total_charge=float(charge), config_type=config_type)
    atoms.arrays["REF_forces"] = np.asarray(forces, dtype=float)
    atoms.arrays["REF_charges"] = np.asarray(charges, dtype=float)
    return atoms


def jobs(n_ag3: int, n_nacl: int, seed: int, n_na9cl8: int = 0) -> List[Tuple[Atoms, int, int, str]]:
    """(geometry, total charge, spin multiplicity, config_type) of every structure to label."""
    rng = np.random.default_rng(seed)
    todo: List[Tuple[Atoms, int, int, str]] = [
        (Atoms(s), 0, 2, "IsolatedAtom") for s in ("Ag", "Na", "Cl")  # each has one unpaired electron
    ]
    for triangle in ag3_triangles(n_ag3, rng):
        todo += [(triangle, +1, 1, "Ag3+"), (triangle, -1, 1, "Ag3-")]
    for cube in nacl_cubes(n_nacl, rng):
        todo += [
            (cube, 0, 1, "Na4Cl4"),
            (remove_one(cube, "Cl", rng), +1, 1, "Na4Cl3+"),
            (remove_one(cube, "Na", rng), -1, 1, "Na3Cl4-"),
        ]
    for rod in na9cl8_rods(n_na9cl8, rng):
        todo += [(rod, +1, 1, "Na9Cl8+"), (rod[:-1], +1, 2, "Na8Cl8+")]  # Na8Cl8+ has one unpaired electron
    return todo


def make_dataset(output: Path, n_ag3: int = 100, n_nacl: int = 40, seed: int = 0, n_na9cl8: int = 0) -> List[Atoms]:
    todo = jobs(n_ag3, n_nacl, seed, n_na9cl8)
    labelled = []
    start = time.perf_counter()
    from ase.calculators.calculator import CalculationFailed

    for k, (atoms, charge, multiplicity, config_type) in enumerate(todo, 1):
        try:
            labelled.append(label(atoms, charge, multiplicity, config_type))
        except CalculationFailed as error:
            logging.warning(f"structure {k} ({config_type}) skipped: GFN2-xTB failed ({error})")
        if k % 50 == 0 or k == len(todo):
            logging.info(f"labelled {k}/{len(todo)} structures ({time.perf_counter() - start:.1f} s)")
    output.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(output, labelled, format="extxyz")
    return labelled


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ag3", type=int, default=100, help="Ag3 geometries (each labelled as +1 and −1)")
    parser.add_argument("--nacl", type=int, default=40, help="Na4Cl4 geometries (each also as Na4Cl3+, Na3Cl4−)")
    parser.add_argument("--na9cl8", type=int, default=0, help="Na8Cl8 rods (each as Na9Cl8+ and Na8Cl8+)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=DEFAULT_DATASET)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    structures = make_dataset(args.output, args.ag3, args.nacl, args.seed, args.na9cl8)
    logging.info(f"wrote {len(structures)} structures to {args.output}")


if __name__ == "__main__":
    main()
