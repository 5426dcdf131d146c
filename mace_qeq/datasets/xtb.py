"""GFN2-xTB reference labels (tblite): energy, forces, stress, charges and dipole.

Keys are MACE's: REF_energy (eV), REF_forces (eV/Å), REF_stress (eV/Å³,
periodic cells), REF_charges (e, Mulliken), REF_dipole (e·Å, isolated
structures, about the origin), total_charge (e), config_type. Needs the
``xtb`` extra (``pip install mace-qeq[xtb]``).
"""

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers


def spin_multiplicity(atoms: Atoms, charge: int) -> int:
    """Lowest multiplicity of the electron count: 1 (singlet) if even, 2 (doublet) if odd."""
    electrons = int(sum(atomic_numbers[s] for s in atoms.get_chemical_symbols())) - int(charge)
    return 1 + electrons % 2


def xtb_calculator(charge: int, multiplicity: int, electronic_temperature: float = 300.0):
    """A tblite GFN2-xTB calculator for one total charge and spin multiplicity."""
    from tblite.ase import TBLite

    return TBLite(method="GFN2-xTB", charge=charge, multiplicity=multiplicity, verbosity=0,
                  electronic_temperature=electronic_temperature)


def store_labels(atoms: Atoms, calculator, charge: int, config_type: str,
                 shift: np.ndarray = np.zeros(3)) -> Atoms:
    """A copy of ``atoms`` carrying ``calculator``'s results as REF_* keys.

    ``calculator`` ran on ``atoms`` translated by ``shift``: its dipole (taken
    about its coordinates' origin) is moved to the origin of ``atoms``, μ − Q·shift.
    """
    labelled = atoms.copy()
    labelled.calc = None
    results = calculator.results
    labelled.info.update(REF_energy=float(results["energy"]), total_charge=float(charge), config_type=config_type)
    labelled.arrays["REF_forces"] = np.array(results["forces"], dtype=float)
    labelled.arrays["REF_charges"] = np.array(results["charges"], dtype=float)
    if labelled.pbc.all():
        labelled.info["REF_stress"] = np.array(results["stress"], dtype=float)
    else:
        labelled.info["REF_dipole"] = np.array(results["dipole"], dtype=float) - charge * np.asarray(shift)
    return labelled


def label(atoms: Atoms, charge: int, multiplicity: int = 0, config_type: str = "cluster",
          electronic_temperature: float = 300.0) -> Atoms:
    """``atoms`` with GFN2-xTB labels at total charge ``charge`` (multiplicity 0: the lowest).

    An isolated structure is first centred on the origin (its dipole is taken about it).
    """
    atoms = atoms.copy()
    if not atoms.pbc.any():
        atoms.positions -= atoms.positions.mean(axis=0)
    atoms.calc = xtb_calculator(charge, multiplicity or spin_multiplicity(atoms, charge), electronic_temperature)
    atoms.get_potential_energy()
    atoms.get_forces()
    if atoms.pbc.all():
        atoms.get_stress()
    return store_labels(atoms, atoms.calc, charge, config_type)
