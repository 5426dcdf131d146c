"""ASE calculator for MACEQEq: MACE's calculator plus charges, dipole and total charge.

    calc = MACEQEqCalculator(model_paths="model.model")   # or models=[torch.jit.load(...)]
    atoms.info["charge"] = -1                             # or atoms.info["total_charge"]
    atoms.calc = calc
    atoms.get_potential_energy(); atoms.get_charges(); atoms.get_dipole_moment()

The total charge comes from ``atoms.info["charge"]`` (MACE's convention) or
``atoms.info["total_charge"]``; without either it is 0, with a warning once.
A non-integer total charge is refused unless ``allow_fractional_charge=True``;
so are elements the model does not know, non-finite positions, a singular
cell in a periodic direction, and (in the model) overlapping atoms, each with
a ``ValueError`` that names the atom or the cell.
The dipole (e·Å) is Σ qᵢ rᵢ, meaningful for isolated structures. In MD, the
charges of the previous step warm-start the iterative solve of large systems.
"""

import logging
import math

import numpy as np
import torch
from ase.data import chemical_symbols
from mace.calculators.mace import MACECalculator

CHARGE_KEYS = ("charge", "total_charge")


class MACEQEqCalculator(MACECalculator):
    def __init__(self, model_paths=None, models=None, allow_fractional_charge: bool = False, **kwargs):
        kwargs.setdefault("model_type", "MACE")
        super().__init__(model_paths=model_paths, models=models, **kwargs)
        # A fresh list: ``extend`` would mutate the class-level list every ASE calculator shares.
        self.implemented_properties = list(self.implemented_properties) + ["charges", "dipole"]
        self.allow_fractional_charge = allow_fractional_charge
        self._warned_missing_charge = False

    def total_charge(self, atoms) -> float:
        """The total charge Q (e) of ``atoms`` from its info, checked."""
        given = {key: atoms.info[key] for key in CHARGE_KEYS if atoms.info.get(key) is not None}
        if not given:
            if not self._warned_missing_charge:
                logging.warning("atoms.info has no 'charge' or 'total_charge': using total charge 0")
                self._warned_missing_charge = True
            return 0.0
        values = {key: float(value) for key, value in given.items()}
        if len(set(values.values())) > 1:
            raise ValueError(f"atoms.info gives conflicting total charges: {values}")
        charge = next(iter(values.values()))
        if not math.isfinite(charge):
            raise ValueError(f"total charge must be finite; got {charge}")
        if not self.allow_fractional_charge and charge != round(charge):
            raise ValueError(
                f"total charge {charge} is not an integer; pass allow_fractional_charge=True if you mean it"
            )
        return charge

    def check_atoms(self, atoms) -> None:
        """Refuse what the model cannot evaluate, naming the atom or the cell."""
        known = [int(z) for z in self.z_table.zs]
        for index, z in enumerate(atoms.numbers):
            if int(z) not in known:
                raise ValueError(
                    f"atom {index} is {chemical_symbols[z]} (Z = {z}), an element the model does not know; "
                    f"its elements are {', '.join(chemical_symbols[k] for k in known)}"
                )
        bad = ~np.isfinite(atoms.positions).all(axis=1)
        if bad.any():
            raise ValueError(f"the position of atom {int(np.argmax(bad))} is not finite: {atoms.positions[bad][0]}")
        if atoms.pbc.any() and not atoms.pbc.all():
            raise ValueError(f"atoms.pbc is {atoms.pbc.tolist()}: mixed periodicity (slabs, wires) is not "
                             "supported; make it periodic in all three directions or in none")
        if atoms.pbc.any():
            cell = atoms.cell.array
            volume = abs(np.linalg.det(cell))
            lengths = np.linalg.norm(cell, axis=1)
            if not np.isfinite(cell).all() or (lengths[atoms.pbc] == 0).any() or volume <= 1e-8 * lengths.prod():
                raise ValueError(
                    f"atoms.pbc is {atoms.pbc.tolist()} but the cell is singular (volume {volume:.3g} Å³, "
                    f"lattice vectors {cell.tolist()}): give three linearly independent lattice vectors, "
                    "or pbc = False for an isolated structure"
                )

    def _atoms_to_batch(self, atoms):
        self.check_atoms(atoms)
        atoms = atoms.copy()
        atoms.info[self.info_keys.get("total_charge", "charge")] = self.total_charge(atoms)
        batch = super()._atoms_to_batch(atoms)
        previous = self.results.get("charges")
        if previous is not None and len(previous) == len(atoms):
            batch.initial_charges = torch.as_tensor(previous, dtype=batch.positions.dtype,
                                                    device=batch.positions.device)
        return batch
