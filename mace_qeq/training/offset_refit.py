"""The energy offsets that forces cannot set, refitted to the training energies after training.

Two kinds of parameter change the energy of every structure by a constant
and nothing else, no force, stress or charge:

* the per-element reference energies E0_Z (eV), for heads whose E0s were
  fitted to the training data (``--E0s average``), not those a user set;
* a uniform shift c (eV/e) of every electronegativity: on the plane Σq = Q
  it adds c·Q to E_QEq and leaves q* where it was (with ``qeq_energy="qeq"``).

A loss dominated by forces (mace's default weights: forces 100, energy 1 per
atom) fixes them only weakly, and they drift while the network learns: the
energy error of a set is then mostly a constant per composition and charge
state (measured on the GFN2-xTB C10H2 / C10H3⁺ MD set, 20 epochs: 46 meV/atom,
of which all but 2 meV/atom such constants). As Stage Two starts (see
``hooks.refit_as_stage_two_starts``) and after training they are refitted by
weighted linear least squares,

    min Σ_s w_s [(E_ref,s − E_s − Σ_Z n_sZ ΔE0_Z − c Q_s) / N_s]²,

w_s the energy weight of structure s, N_s its atoms, n_sZ its atoms of
element Z: the closed-form optimum of the loss's energy term over exactly the
parameters that no other term sees. Forces, stress and charges are unchanged
to rounding.
"""

import logging
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import torch
from mace.tools import torch_geometric

from mace_qeq.modules.models import MACEQEq


@dataclass
class OffsetRefit:
    """The refitted offsets and what they did to the training energies."""

    atomic_energy_shift: np.ndarray  # [heads, elements] ΔE0 (eV)
    electronegativity_shift: np.ndarray  # [heads] c (eV/e)
    structures: int
    energy_rmse_before: float  # meV/atom on the structures used
    energy_rmse_after: float


@torch.no_grad()
def predicted_energies(model: torch.nn.Module, dataset, indices: Sequence[int], batch_size: int,
                       device: torch.device):
    """(E_pred, E_ref, weight, element counts [S, Z], total charge, head) of ``dataset[indices]``."""
    loader = torch_geometric.dataloader.DataLoader([dataset[i] for i in indices], batch_size=batch_size,
                                                   shuffle=False)
    columns: List[List[np.ndarray]] = [[] for _ in range(6)]
    was_training = model.training
    model.eval()
    try:
        for batch in loader:
            batch = batch.to(device)
            energy = model(batch.to_dict(), training=False, compute_force=False)["energy"]
            counts = torch.zeros(batch.num_graphs, batch.node_attrs.shape[1], dtype=torch.float64,
                                 device=device).index_add(0, batch.batch, batch.node_attrs.double())
            values = (energy, batch.energy, batch.weight * batch.energy_weight, counts, batch.total_charge,
                      batch.head)
            for column, value in zip(columns, values):
                column.append(value.detach().double().cpu().numpy())
    finally:
        model.train(was_training)
    return [np.concatenate(column) for column in columns]


def refit_energy_offsets(model: MACEQEq, dataset, free_heads: Sequence[bool], batch_size: int = 16,
                         device: Optional[torch.device] = None, max_structures: int = 10000,
                         skip_heads: Sequence[int] = (), seed: int = 0) -> Optional[OffsetRefit]:
    """Refit ΔE0 (heads in ``free_heads``) and c (every head but ``skip_heads``) to ``dataset`` (up to
    ``max_structures`` of it, in a fixed random order) and add them to ``model``; None if nothing to fit."""
    device = device or next(model.parameters()).device
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    indices = [i for i in order if int(dataset[i].head) not in skip_heads][:max_structures]
    if not indices:
        return None
    energy, reference, weight, counts, charge, head = predicted_energies(model, dataset, indices, batch_size, device)
    head = head.astype(int)
    atoms = counts.sum(axis=1)
    labelled = weight > 0
    if not labelled.any():
        return None
    num_elements = counts.shape[1]
    num_heads = model.atomic_energies_fn.atomic_energies.view(-1, num_elements).shape[0]
    shifts_e0 = np.zeros((num_heads, num_elements))
    shifts_chi = np.zeros(num_heads)
    shift_chi = not model.charge_equilibration.coulomb_only
    for h in sorted(set(head[labelled].tolist())):
        rows = labelled & (head == h)
        fit_e0 = h < len(free_heads) and bool(free_heads[h])
        design = ([counts[rows]] if fit_e0 else []) + ([charge[rows, None]] if shift_chi else [])
        if not design:
            continue
        scale = np.sqrt(weight[rows]) / atoms[rows]
        matrix = np.concatenate(design, axis=1) * scale[:, None]
        solution = np.linalg.lstsq(matrix, (reference[rows] - energy[rows]) * scale, rcond=None)[0]
        if fit_e0:
            shifts_e0[h] = solution[:num_elements]
        if shift_chi:
            shifts_chi[h] = solution[-1]
    correction = np.einsum("sz,sz->s", counts, shifts_e0[head]) + shifts_chi[head] * charge
    rmse = lambda residual: 1e3 * float(np.sqrt(np.mean((residual[labelled] / atoms[labelled]) ** 2)))  # noqa: E731
    refit = OffsetRefit(shifts_e0, shifts_chi, len(indices), rmse(reference - energy),
                        rmse(reference - energy - correction))
    apply_offsets(model, refit)
    return refit


@torch.no_grad()
def apply_offsets(model: MACEQEq, refit: OffsetRefit) -> None:
    """Add ΔE0 to the model's E0s and c to every per-element electronegativity of each head."""
    e0 = model.atomic_energies_fn.atomic_energies
    e0.add_(torch.as_tensor(refit.atomic_energy_shift, dtype=e0.dtype, device=e0.device).view_as(e0))
    chi = model.qeq_readout.electronegativity_offset  # [elements, heads]
    chi.add_(torch.as_tensor(refit.electronegativity_shift, dtype=chi.dtype, device=chi.device)[None, :])


def log_refit(refit: Optional[OffsetRefit]) -> None:
    if refit is None:
        logging.info("MACEQEq energy offsets: no labelled training energies, nothing refitted")
        return
    logging.info(f"MACEQEq energy offsets refitted on {refit.structures} training structures: "
                 f"ΔE0 {np.round(refit.atomic_energy_shift, 4).tolist()} eV, "
                 f"Δχ {np.round(refit.electronegativity_shift, 4).tolist()} eV/e; energy RMSE "
                 f"{refit.energy_rmse_before:.2f} → {refit.energy_rmse_after:.2f} meV/atom")
