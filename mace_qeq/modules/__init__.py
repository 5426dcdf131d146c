"""MACE-side blocks: χ/J readout, Gaussian widths, the QEq+Ewald block, the
charge embedding, and the MACEQEq model.

``import mace`` must come before anything that imports e3nn (it sets
TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD, without which e3nn fails to import on torch 2.13).
"""

import mace  # noqa: F401  (first: see the module docstring)

from .charge_embedding import ChargeEmbedding
from .charge_equilibration import ChargeEquilibrationBlock
from .contact_wall import ClosestContactWall
from .energy_floor import PerAtomEnergyFloor
from .models import MACEQEq
from .readouts import ElectronegativityHardnessReadout, GaussianWidths

__all__ = [
    "ChargeEmbedding",
    "ChargeEquilibrationBlock",
    "ElectronegativityHardnessReadout",
    "GaussianWidths",
    "MACEQEq",
    "PerAtomEnergyFloor",
]
