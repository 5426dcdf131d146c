"""Loss with reference charges and dipoles, next to MACE's energy, forces and stress.

    L = w_E ⟨(ΔE/N)²⟩ + w_F ⟨|ΔF|²⟩ + w_σ ⟨|Δσ|²⟩ + w_q ⟨Δq²⟩ + w_μ ⟨|Δμ|²⟩

Units: eV, eV/Å, eV/Å³, e, e·Å. Each term is weighted per configuration by
``weight`` × its ``<property>_weight``, which MACE sets to 0 where a reference
is absent, so a missing REF_charges or REF_dipole contributes nothing.
"""

from typing import Dict, Optional

import torch
from mace.modules.loss import (
    mean_squared_error_forces,
    reduce_loss,
    weighted_mean_squared_error_energy,
    weighted_mean_squared_stress,
)
from torch import Tensor


def weighted_mean_squared_error_charges(ref, pred: Dict[str, Tensor], ddp: Optional[bool] = None) -> Tensor:
    """⟨w (q_ref − q)²⟩ over atoms, w = weight × charges_weight of the atom's configuration."""
    weight = (ref.weight * ref.charges_weight)[ref.batch]
    return reduce_loss(weight * torch.square(ref["charges"] - pred["charges"]), ddp)


def weighted_mean_squared_error_total_dipole(ref, pred: Dict[str, Tensor], ddp: Optional[bool] = None) -> Tensor:
    """⟨w |μ_ref − μ|²⟩ over configurations and components (e·Å)², w = weight × dipole_weight."""
    weight = ref.weight.view(-1, 1) * ref.dipole_weight.view(-1, 3)
    return reduce_loss(weight * torch.square(ref["dipole"].view(-1, 3) - pred["dipole"]), ddp)


class WeightedEnergyForcesChargesDipoleLoss(torch.nn.Module):
    """Energy, forces, (stress), charges and total dipole, each with a weight."""

    def __init__(
        self,
        energy_weight: float = 1.0,
        forces_weight: float = 1.0,
        stress_weight: float = 0.0,
        charges_weight: float = 10.0,
        dipole_weight: float = 1.0,
    ):
        super().__init__()
        for name, value in (
            ("energy_weight", energy_weight),
            ("forces_weight", forces_weight),
            ("stress_weight", stress_weight),
            ("charges_weight", charges_weight),
            ("dipole_weight", dipole_weight),
        ):
            if value < 0:
                raise ValueError(f"{name} must be ≥ 0; got {value}")
            self.register_buffer(name, torch.tensor(value, dtype=torch.get_default_dtype()))

    def forward(self, ref, pred: Dict[str, Tensor], ddp: Optional[bool] = None) -> Tensor:
        loss = self.energy_weight * weighted_mean_squared_error_energy(ref, pred, ddp)
        loss = loss + self.forces_weight * mean_squared_error_forces(ref, pred, ddp)
        if self.stress_weight > 0 and pred.get("stress") is not None:
            loss = loss + self.stress_weight * weighted_mean_squared_stress(ref, pred, ddp)
        if self.charges_weight > 0 and pred.get("charges") is not None:
            loss = loss + self.charges_weight * weighted_mean_squared_error_charges(ref, pred, ddp)
        if self.dipole_weight > 0 and pred.get("dipole") is not None:
            loss = loss + self.dipole_weight * weighted_mean_squared_error_total_dipole(ref, pred, ddp)
        return loss

    def __repr__(self):
        weights = ", ".join(
            f"{name}={float(getattr(self, name)):.3f}"
            for name in ("energy_weight", "forces_weight", "stress_weight", "charges_weight", "dipole_weight")
        )
        return f"{self.__class__.__name__}({weights})"
