"""Close-contact scans: what a model does when atoms are pushed far closer than any data.

A pair scan moves one atom along the line to another, from the structure's own
distance down to ``0.1`` Å, and records the energy and the largest charge. A
sound charge model keeps every charge within a few e and the energy repulsive
(far above the scan's minimum at a few tenths of an Å); an unbounded χ readout
opens holes of thousands of eV there. Compressed structures (every distance
scaled down) test the same for many close pairs at once. Overlapping atoms
(< 0.01 Å) are refused by the model with a ValueError, reported as such.
"""

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
from ase import Atoms


@dataclass
class Scan:
    """Energies (eV) and largest |charge| (e) of a structure at each scanned geometry."""

    label: str
    distances: List[float] = field(default_factory=list)  # Å (pair scans) or scale factors (compression)
    energies: List[float] = field(default_factory=list)
    max_abs_charges: List[float] = field(default_factory=list)
    refused: List[str] = field(default_factory=list)  # error messages of refused geometries

    def energy_above_minimum(self, below: float) -> Optional[float]:
        """min E over the points at ≤ ``below`` minus the scan's minimum (eV): the repulsion at close contact."""
        close = [e for d, e in zip(self.distances, self.energies) if d <= below]
        return None if not close else min(close) - min(self.energies)

    def energy_above_uncompressed(self, below: float) -> Optional[float]:
        """min E over the scale factors ≤ ``below`` minus E at scale 1 (eV) of a compression scan: what
        compressing the structure costs (negative: a hole)."""
        squeezed = [e for s, e in zip(self.distances, self.energies) if s <= below]
        start = [e for s, e in zip(self.distances, self.energies) if s == 1.0]
        return None if not squeezed or not start else min(squeezed) - start[0]

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _evaluate(calculator, atoms: Atoms, charge: float):
    atoms = atoms.copy()
    atoms.info = {"charge": charge}
    atoms.calc = calculator
    energy = atoms.get_potential_energy()
    return energy, float(np.abs(calculator.results["charges"]).max())


def pair_scan(calculator, atoms: Atoms, first: int, second: int, charge: float,
              distances: Sequence[float] = tuple(np.geomspace(0.1, 3.0, 25)), label: str = "") -> Scan:
    """Energy and largest charge as atom ``second`` moves along the line to ``first`` (others fixed)."""
    scan = Scan(label or f"{atoms.get_chemical_symbols()[first]}–{atoms.get_chemical_symbols()[second]}")
    direction = atoms.positions[second] - atoms.positions[first]
    direction /= np.linalg.norm(direction)
    for distance in sorted(distances):
        moved = atoms.copy()
        moved.positions[second] = atoms.positions[first] + distance * direction
        _record(scan, calculator, moved, charge, distance)
    return scan


def compression_scan(calculator, atoms: Atoms, charge: float, scales: Sequence[float] = (1.0, 0.8, 0.6, 0.45, 0.3, 0.2),
                     label: str = "") -> Scan:
    """Energy and largest charge of ``atoms`` with every position (and the cell) scaled by each factor."""
    scan = Scan(label or f"compressed {atoms.get_chemical_formula()}")
    for scale in sorted(scales):
        compressed = atoms.copy()
        compressed.set_cell(atoms.cell.array * scale, scale_atoms=True)
        if not atoms.pbc.any():
            compressed.positions = atoms.positions * scale
        _record(scan, calculator, compressed, charge, scale)
    return scan


def _record(scan: Scan, calculator, atoms: Atoms, charge: float, coordinate: float) -> None:
    try:
        energy, largest = _evaluate(calculator, atoms, charge)
    except ValueError as error:  # overlapping atoms: a clear refusal is an allowed answer
        scan.refused.append(f"{coordinate:.3g}: {error}")
        return
    scan.distances.append(float(coordinate))
    scan.energies.append(float(energy))
    scan.max_abs_charges.append(largest)


def random_cluster(symbols: Sequence[str], density: float = 0.05, seed: int = 0) -> Atoms:
    """Atoms at uniformly random positions in a sphere holding ``density`` atoms per Å³."""
    rng = np.random.default_rng(seed)
    radius = (3 * len(symbols) / (4 * np.pi * density)) ** (1 / 3)
    points = []
    while len(points) < len(symbols):
        p = rng.uniform(-radius, radius, 3)
        if np.linalg.norm(p) <= radius:
            points.append(p)
    return Atoms(list(symbols), positions=np.array(points))
