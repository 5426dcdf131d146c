"""MACE's validation metrics plus charge and total-dipole errors.

MACE's ``MACELoss`` (torchmetrics) has no charge metric and counts dipoles of
configurations without a reference as zeros; :class:`QEqMetrics` adds

    rmse_q  = √⟨(q_ref − q)²⟩  over atoms whose configuration has REF_charges (e)
    rmse_dipole = √⟨|μ_ref − μ|²/3⟩ over configurations with REF_dipole (e·Å)
"""

import importlib

import numpy as np
import torch

# Imported as a module object: mace.tools re-exports a function named ``train``.
MACELoss = importlib.import_module("mace.tools.train").MACELoss


class QEqMetrics(MACELoss):
    def __init__(self, loss_fn: torch.nn.Module):
        super().__init__(loss_fn)
        self.add_state("delta_qs", default=[], dist_reduce_fx="cat")
        self.add_state("delta_dipoles", default=[], dist_reduce_fx="cat")

    def update(self, batch, output):  # pylint: disable=arguments-differ
        super().update(batch, output)
        if output.get("charges") is not None:
            has_reference = (batch.charges_weight > 0)[batch.batch]
            self.delta_qs.append((batch.charges - output["charges"])[has_reference])
        if output.get("dipole") is not None:
            has_reference = (batch.dipole_weight.view(-1, 3) > 0).all(dim=1)
            self.delta_dipoles.append((batch.dipole.view(-1, 3) - output["dipole"])[has_reference])

    def compute(self):
        loss, aux = super().compute()
        for key, states in (("rmse_q", self.delta_qs), ("rmse_dipole", self.delta_dipoles)):
            delta = self.convert(states) if len(states) > 0 else np.zeros(0)
            aux[key] = float(np.sqrt(np.mean(np.square(delta)))) if delta.size > 0 else None
        return loss, aux
