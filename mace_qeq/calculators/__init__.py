"""ASE calculators."""

import mace  # noqa: F401  (before e3nn)

from .maceqeq import MACEQEqCalculator

__all__ = ["MACEQEqCalculator"]
