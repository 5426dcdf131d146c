"""Training: the loss with charge and dipole terms, its metrics, and the hooks
that plug MACEQEq into mace's ``run_train``."""

import mace  # noqa: F401  (before e3nn; see mace_qeq.modules)

from .loss import WeightedEnergyForcesChargesDipoleLoss
from .metrics import QEqMetrics
from .outputs import trained_model_path

__all__ = ["QEqMetrics", "WeightedEnergyForcesChargesDipoleLoss", "trained_model_path"]
