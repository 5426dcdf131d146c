"""Starting geometries of the GFN2-xTB benchmark sets: silver trimers, rock-salt
clusters and rods, polyyne chains, and periodic rock-salt cells with vacancies.

Rock-salt fragments put Na on the sites of even parity (i + j + k) of the
simple cubic lattice of spacing ``ROCKSALT_HALF_LATTICE`` and Cl on the odd
ones, so an i×j×k block has the composition its parity counts give (3×3×3:
Na14Cl13; with ``swap``: Na13Cl14).
"""

from typing import Iterator, Sequence

import numpy as np
from ase import Atoms

ROCKSALT_HALF_LATTICE = 2.82  # Å, Na–Cl nearest neighbour in the crystal


def ag3_triangles(count: int, rng: np.random.Generator) -> Iterator[Atoms]:
    """Ag3 triangles with two bonds in [2.45, 3.3] Å and an apex angle in [45°, 180°]."""
    for _ in range(count):
        r1, r2 = rng.uniform(2.45, 3.3, size=2)
        angle = np.radians(rng.uniform(45.0, 180.0))
        positions = np.array([[0.0, 0.0, 0.0], [r1, 0.0, 0.0], [r2 * np.cos(angle), r2 * np.sin(angle), 0.0]])
        yield Atoms("Ag3", positions=positions)


def rocksalt_block(shape: Sequence[int], swap: bool = False, spacing: float = ROCKSALT_HALF_LATTICE) -> Atoms:
    """An i×j×k block of the rock-salt lattice (Na on even sites, Cl on odd; ``swap`` exchanges them)."""
    sites = np.array([[i, j, k] for i in range(shape[0]) for j in range(shape[1]) for k in range(shape[2])])
    even = sites.sum(axis=1) % 2 == 0
    symbols = ["Na" if e != swap else "Cl" for e in even]
    return Atoms(symbols, positions=sites * spacing)


def remove_atoms(atoms: Atoms, symbol: str, count: int, rng: np.random.Generator, spacing: float = 0.0) -> Atoms:
    """``atoms`` without ``count`` atoms of element ``symbol``, drawn one at a time among those more than
    ``spacing`` Å (by 1e-6 Å) from every atom drawn before (``2 * ROCKSALT_HALF_LATTICE`` in rock salt: no
    remaining ion neighbours two vacancies)."""
    symbols, removed = atoms.get_chemical_symbols(), []
    for _ in range(count):
        candidates = [i for i, s in enumerate(symbols) if s == symbol
                      and all(np.linalg.norm(atoms.positions[i] - atoms.positions[j]) > spacing + 1e-6
                              for j in removed)]
        if not candidates:
            raise ValueError(f"no {symbol} is left more than {spacing} Å from the {len(removed)} removed")
        removed.append(int(rng.choice(candidates)))
    return atoms[[i for i in range(len(atoms)) if i not in removed]]


def charged_by_vacancies(block: Atoms, charge: int, rng: np.random.Generator, spacing: float = 0.0) -> Atoms:
    """Rock-salt ``block`` at total charge ``charge`` (e): |Q| Cl⁻ (Q > 0) or Na⁺ (Q < 0) ions removed by
    :func:`remove_atoms`, more than ``spacing`` Å apart."""
    return remove_atoms(block, "Cl" if charge > 0 else "Na", abs(charge), rng, spacing)


def nacl_cubes(count: int, rng: np.random.Generator) -> Iterator[Atoms]:
    """Rattled Na4Cl4 rock-salt cubes, isotropically scaled by 0.9–1.1."""
    cube = rocksalt_block((2, 2, 2), spacing=1.0)
    for _ in range(count):
        scale = ROCKSALT_HALF_LATTICE * rng.uniform(0.9, 1.1)
        positions = cube.positions * scale + rng.normal(scale=0.12, size=cube.positions.shape)
        yield Atoms(cube.get_chemical_symbols(), positions=positions)


def na9cl8_rods(count: int, rng: np.random.Generator) -> Iterator[Atoms]:
    """Rattled Na8Cl8 2×2×4 rock-salt rods with a ninth Na capping one end."""
    rod = rocksalt_block((2, 2, 4), spacing=1.0)
    for _ in range(count):
        scale = ROCKSALT_HALF_LATTICE * rng.uniform(0.95, 1.05)
        positions = np.vstack([rod.positions * scale, [[0.5 * scale, 0.5 * scale, 4.0 * scale]]])
        positions += rng.normal(scale=0.1, size=positions.shape)
        yield Atoms(rod.get_chemical_symbols() + ["Na"], positions=positions)


def polyyne(carbons: int = 10, protonated: bool = False) -> Atoms:
    """H–(C≡C)ₙ–H along z (C≡C 1.22 Å, C–C 1.35 Å, C–H 1.06 Å); ``protonated``
    adds a proton to the last carbon, making a =CH2⁺ end (C–H 1.09 Å, 120°)."""
    z = [0.0]
    for k in range(1, carbons):
        z.append(z[-1] + (1.22 if k % 2 == 1 else 1.35))
    positions = [[0.0, 0.0, -1.06]] + [[0.0, 0.0, v] for v in z]
    if protonated:
        end = z[-1]
        positions += [[0.0, 1.09 * np.sin(np.radians(60)), end + 1.09 * 0.5],
                      [0.0, -1.09 * np.sin(np.radians(60)), end + 1.09 * 0.5]]
    else:
        positions.append([0.0, 0.0, z[-1] + 1.06])
    return Atoms("H" + "C" * carbons + ("H2" if protonated else "H"), positions=positions)


def rocksalt_supercell(repeat: Sequence[int], strain: float = 0.0) -> Atoms:
    """A periodic cubic rock-salt NaCl supercell (a = 5.64 Å), isotropically strained by ``strain``."""
    from ase.build import bulk

    atoms = bulk("NaCl", "rocksalt", a=2 * ROCKSALT_HALF_LATTICE * (1.0 + strain), cubic=True) * tuple(repeat)
    return atoms
