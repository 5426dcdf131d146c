"""Predictions of a trained model on a test file, and their errors.

Errors are root-mean-square: energy per atom (meV/atom), force components
(meV/Å), charges (me, atoms with REF_charges) and dipole components (me·Å,
structures with REF_dipole). Models that predict no charges (plain MACE,
MACELES's latent charges are not charges) get None for those.

Every model is run by MACE's stock ``MACECalculator``, which takes the total
charge from ``atoms.info["charge"]``, so MACEQEq and its peers are evaluated
alike.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import ase.io
import numpy as np


@dataclass
class Predictions:
    """Per-structure and per-atom predictions next to their references."""

    config_type: List[str] = field(default_factory=list)
    atoms_per_structure: List[int] = field(default_factory=list)
    energy: List[float] = field(default_factory=list)
    energy_ref: List[float] = field(default_factory=list)
    forces: List[np.ndarray] = field(default_factory=list)
    forces_ref: List[np.ndarray] = field(default_factory=list)
    charges: List[np.ndarray] = field(default_factory=list)
    charges_ref: List[np.ndarray] = field(default_factory=list)
    elements: List[np.ndarray] = field(default_factory=list)
    dipole: List[np.ndarray] = field(default_factory=list)
    dipole_ref: List[np.ndarray] = field(default_factory=list)


@dataclass
class TestErrors:
    structures: int
    energy_mev_per_atom: float
    forces_mev_per_a: float
    charges_me: Optional[float]
    dipole_me_a: Optional[float]

    def as_dict(self) -> Dict[str, Optional[float]]:
        return dict(self.__dict__)


def evaluate_model(model_path: str, test: Union[str, Sequence], energy_key: str = "REF_energy",
                   forces_key: str = "REF_forces", charges_key: str = "REF_charges", dipole_key: str = "REF_dipole",
                   total_charge_key: str = "total_charge", device: str = "cpu",
                   model_type: str = "MACE") -> Predictions:
    """Run ``model_path`` (any MACE-family model) over every structure of ``test`` (a file or Atoms)
    with the stock ``MACECalculator`` of ``model_type`` ("MACE", or "PolarMACE" for PolarMACE)."""
    from mace.calculators import MACECalculator

    calculator = MACECalculator(model_paths=model_path, model_type=model_type, device=device,
                                default_dtype="float64")
    predictions = Predictions()
    structures = ase.io.read(test, ":") if isinstance(test, (str, Path)) else list(test)
    for reference in structures:
        if reference.info.get("config_type") == "IsolatedAtom":
            continue
        atoms = reference.copy()
        atoms.info = {"charge": float(reference.info.get(total_charge_key, 0.0))}
        atoms.calc = calculator
        predictions.config_type.append(str(reference.info.get("config_type", "Default")))
        predictions.atoms_per_structure.append(len(atoms))
        predictions.energy.append(atoms.get_potential_energy())
        predictions.energy_ref.append(float(reference.info[energy_key]))
        predictions.forces.append(atoms.get_forces())
        predictions.forces_ref.append(np.asarray(reference.arrays[forces_key]))
        predictions.elements.append(atoms.get_atomic_numbers())
        results = calculator.results
        if "charges" in results and charges_key in reference.arrays:
            predictions.charges.append(np.asarray(results["charges"]))
            predictions.charges_ref.append(np.asarray(reference.arrays[charges_key]))
        if "dipole" in results and dipole_key in reference.info:
            predictions.dipole.append(np.asarray(results["dipole"]).ravel())
            predictions.dipole_ref.append(np.asarray(reference.info[dipole_key], dtype=float).ravel())
    return predictions


def _rms(values) -> float:
    return float(np.sqrt(np.mean(np.square(np.concatenate([np.ravel(v) for v in values])))))


def test_errors(predictions: Predictions, config_type: Optional[str] = None) -> TestErrors:
    """RMSEs over all structures, or those of one ``config_type``."""
    keep = [i for i, c in enumerate(predictions.config_type) if config_type is None or c == config_type]
    energy = [(predictions.energy[i] - predictions.energy_ref[i]) / predictions.atoms_per_structure[i] for i in keep]
    forces = [predictions.forces[i] - predictions.forces_ref[i] for i in keep]
    charges = dipole = None
    if len(predictions.charges) == len(predictions.energy) and predictions.charges:
        charges = 1e3 * _rms([predictions.charges[i] - predictions.charges_ref[i] for i in keep])
    if len(predictions.dipole) == len(predictions.energy) and predictions.dipole:
        dipole = 1e3 * _rms([predictions.dipole[i] - predictions.dipole_ref[i] for i in keep])
    return TestErrors(len(keep), 1e3 * _rms(energy), 1e3 * _rms(forces), charges, dipole)
