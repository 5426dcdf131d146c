"""ASE calculator for MACEQEq: MACE's calculator plus charges, dipole and total charge.

    calc = MACEQEqCalculator(model_paths="model.model")   # or models=[torch.jit.load(...)]
    atoms.info["charge"] = -1                             # or atoms.info["total_charge"]
    atoms.calc = calc
    atoms.get_potential_energy(); atoms.get_charges(); atoms.get_dipole_moment()

The total charge comes from ``atoms.info["charge"]`` (MACE's convention) or
``atoms.info["total_charge"]``; without either it is 0, with a warning once.
A non-integer total charge is refused unless ``allow_fractional_charge=True``.
The dipole (e·Å) is Σ qᵢ rᵢ, meaningful for isolated structures. In MD, the
charges of the previous step warm-start the iterative solve of large systems.
"""

import logging
import math

import torch
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

    def _atoms_to_batch(self, atoms):
        atoms = atoms.copy()
        atoms.info[self.info_keys.get("total_charge", "charge")] = self.total_charge(atoms)
        batch = super()._atoms_to_batch(atoms)
        previous = self.results.get("charges")
        if previous is not None and len(previous) == len(atoms):
            batch.initial_charges = torch.as_tensor(previous, dtype=batch.positions.dtype, device=batch.positions.device)
        return batch
