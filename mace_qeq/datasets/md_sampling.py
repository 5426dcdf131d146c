"""Frames of GFN2-xTB molecular dynamics at a fixed total charge.

Each :class:`Trajectory` is a Langevin run (ASE) of one structure at one total
charge; after ``equilibration`` steps every ``stride``-th frame is kept with
the xTB labels of that step (no second calculation). A frame can also be
labelled at other total charges on the same geometry (``also_at``), which
makes sets where only the total charge tells the structures apart. A run that
breaks up (a cluster fragment flies off) or whose SCF fails stops early, with a
warning, keeping the frames it has.
"""

import logging
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np
from ase import Atoms, units

from .xtb import label, spin_multiplicity, store_labels, xtb_calculator


@dataclass
class Trajectory:
    """One Langevin MD run of ``start`` at total charge ``charge``."""

    start: Atoms
    charge: int
    config_type: str
    frames: int
    temperature: float = 500.0  # K
    timestep: float = 1.0  # fs
    stride: int = 20
    equilibration: int = 200
    seed: int = 0
    electronic_temperature: float = 300.0  # K, GFN2-xTB Fermi smearing
    also_at: List[Tuple[int, str]] = field(default_factory=list)  # (total charge, config_type) on the same frames


def is_connected(atoms: Atoms, bond: float = 4.5) -> bool:
    """True if every atom of an isolated structure is linked to the rest by distances < ``bond`` Å."""
    if atoms.pbc.any() or len(atoms) < 2:
        return True
    distances = atoms.get_all_distances()
    reached = {0}
    frontier = [0]
    while frontier:
        i = frontier.pop()
        for j in np.nonzero(distances[i] < bond)[0]:
            if int(j) not in reached:
                reached.add(int(j))
                frontier.append(int(j))
    return len(reached) == len(atoms)


def sample(trajectory: Trajectory, trajectory_id: int) -> List[Atoms]:
    """The labelled frames of one run; each carries ``info['trajectory'] = trajectory_id``."""
    from ase.calculators.calculator import CalculationFailed
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    atoms = trajectory.start.copy()
    if not atoms.pbc.any():
        atoms.positions -= atoms.positions.mean(axis=0)
    calculator = xtb_calculator(trajectory.charge, spin_multiplicity(atoms, trajectory.charge),
                                trajectory.electronic_temperature)
    atoms.calc = calculator
    rng = np.random.default_rng(trajectory.seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=trajectory.temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    dynamics = Langevin(atoms, trajectory.timestep * units.fs, temperature_K=trajectory.temperature,
                        friction=0.01 / units.fs, fixcm=False, rng=rng)
    frames: List[Atoms] = []
    try:
        dynamics.run(trajectory.equilibration)
        while len(frames) < trajectory.frames * (1 + len(trajectory.also_at)):
            dynamics.run(trajectory.stride)
            if not is_connected(atoms):
                logging.warning(f"trajectory {trajectory_id} ({trajectory.config_type}) broke up after "
                                f"{dynamics.nsteps} steps; keeping its {len(frames)} frames")
                break
            atoms.get_potential_energy()  # the step's results (cached)
            snapshot = atoms.copy()
            centre = np.zeros(3) if snapshot.pbc.any() else snapshot.positions.mean(axis=0)
            snapshot.positions -= centre
            frame = [store_labels(snapshot, calculator, trajectory.charge, trajectory.config_type, centre)]
            frame += [label(snapshot, charge, 0, config_type, trajectory.electronic_temperature)
                      for charge, config_type in trajectory.also_at]
            for structure in frame:
                structure.info["trajectory"] = trajectory_id
            frames += frame
    except CalculationFailed as error:
        logging.warning(f"trajectory {trajectory_id} ({trajectory.config_type}): GFN2-xTB failed after "
                        f"{dynamics.nsteps} steps ({error}); keeping its {len(frames)} frames")
    return frames
