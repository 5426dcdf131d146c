"""Per-element electronegativities, hardnesses and reference energies fitted to the
training data before training, as MACE fits its E0s.

The element baseline is the MACEQEq energy with every environment term off,

    E_base(R, Q) = Σᵢ E0_{Zᵢ} + min_{Σq=Q} Σᵢ [χ_{Zᵢ} qᵢ + ½ J_{Zᵢ} qᵢ²] + ½ qᵀΦ(R)q,

and χ_Z (eV/e), J_Z ≥ J_min (eV/e²) and, where MACE would fit them by least
squares ("average" E0s), E0_Z (eV) minimise

    ⟨w (E_ref − E_base)² / N²⟩ + (w_q / w_E) ⟨(q* − q_ref)²⟩ + 10⁻⁴ Σ_Z ln²(J_Z / J₀)

over (a random sample of) the training structures, by L-BFGS with the dense
QEq solve (differentiable: ∂E_base/∂χ_Z = Σ_{i∈Z} qᵢ*, ∂E_base/∂J_Z = ½Σ_{i∈Z} qᵢ*²
by the envelope theorem). Why: a charge-state energy such as Ag3⁺ − Ag3⁻
(17 eV) is 2χ_Ag; started at χ = 0, the optimiser spends the whole budget
walking there (measured: χ_Ag = 5.7 of 8.7 eV after 30 epochs, 0.5 eV/atom
of error) while the network learns around the gap. Fitted, the network
starts from the right charge-state energies and learns only environments.
The weak prior pins what the data cannot tell (e.g. J of a set whose
structures all have the same size and total charge, where ½JΣq² is a
constant) at J₀ = 5 eV/e², and a 10⁻⁸ Σχ² term the uniform χ shift of a set
at one total charge.
"""

import logging
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
from torch import Tensor

from mace_qeq.electrostatics import QEqOptions, solve_qeq
from mace_qeq.modules.readouts import inverse_softplus


@dataclass
class TrainingSample:
    """Structures of the training set, flattened into one batch (float64)."""

    positions: Tensor  # [N, 3]
    element: Tensor  # [N] index into the model's elements
    batch: Tensor  # [N]
    cell: Tensor  # [G, 3, 3]
    pbc: Tensor  # [G, 3]
    total_charge: Tensor  # [G]
    energy: Tensor  # [G] (eV)
    energy_weight: Tensor  # [G]
    charges: Tensor  # [N] (e)
    charge_weight: Tensor  # [N] 0 where there is no reference
    head: Tensor  # [G]

    @property
    def num_atoms(self) -> Tensor:
        return torch.bincount(self.batch, minlength=len(self.energy)).to(self.positions.dtype)


def sample_training_set(dataset, max_atoms: int = 20000, skip_heads: Sequence[int] = (),
                        seed: int = 0) -> TrainingSample:
    """Structures of MACE's training ``dataset`` (its ``AtomicData``), in a fixed random order, up to
    ``max_atoms`` atoms: the same sample on every rank of a distributed run, whatever its sampler."""
    fields = {key: [] for key in TrainingSample.__dataclass_fields__}
    atoms = 0
    graphs = 0
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    for index in order:
        data = dataset[index]
        if int(data.head) in skip_heads:
            continue
        count = data.positions.shape[0]
        fields["positions"].append(data.positions.double())
        fields["element"].append(data.node_attrs.argmax(dim=1))
        fields["batch"].append(torch.full((count,), graphs, dtype=torch.long))
        fields["cell"].append(data.cell.view(3, 3).double())
        fields["pbc"].append(data.pbc.view(3))
        fields["total_charge"].append(data.total_charge.double().view(()))
        fields["energy"].append(data.energy.double().view(()))
        fields["energy_weight"].append((data.weight * data.energy_weight).double().view(()))
        fields["charges"].append(data.charges.double().view(-1))
        fields["charge_weight"].append((data.weight * data.charges_weight).double().view(()).expand(count))
        fields["head"].append(data.head.view(()))
        atoms += count
        graphs += 1
        if atoms >= max_atoms:
            break
    if graphs == 0:
        raise ValueError("no training structures to fit the element baseline to")
    stacked = {key: (torch.cat(values) if key in ("positions", "element", "batch", "charges", "charge_weight")
                     else torch.stack(values)) for key, values in fields.items()}
    return TrainingSample(**stacked)


@dataclass
class ElementBaseline:
    """The fitted values, per element (and per head for the energies)."""

    atomic_energies: Tensor  # [heads, elements] E0 (eV)
    electronegativity: List[float]  # χ_Z (eV/e)
    hardness: List[float]  # J_Z (eV/e²)
    energy_rmse_before: float  # meV/atom, E0s alone
    energy_rmse_after: float  # meV/atom, the fitted baseline
    charge_rmse: Optional[float]  # me, where references exist


def baseline(sample: TrainingSample, atomic_energies: Tensor, electronegativity: Tensor, hardness: Tensor,
             sigma: Tensor, accuracy: float = 1e-6):
    """(E_base [G], q* [N]) of the sample for per-element values."""
    element = sample.element
    solution = solve_qeq(sample.positions, electronegativity[element], hardness[element], sigma[element],
                         sample.total_charge, sample.cell, sample.pbc, sample.batch,
                         QEqOptions(method="dense", accuracy=accuracy))
    e0 = atomic_energies[sample.head[sample.batch], element]
    reference = torch.zeros_like(sample.energy).index_add(0, sample.batch, e0)
    return reference + solution.energy, solution.charges


def fit_element_baseline(sample: TrainingSample, sigma: Sequence[float], atomic_energies: Tensor,
                         free_heads: Sequence[bool], minimum_hardness: float, charges_weight: float = 0.0,
                         initial_hardness: float = 5.0, iterations: int = 200) -> ElementBaseline:
    """Fit χ_Z, J_Z (and the E0 rows of ``free_heads``) to the sample (see the module docstring).

    ``charges_weight`` is w_q / w_E of the training loss (0: energies only).
    """
    dtype = torch.float64
    sigma_t = torch.tensor(list(sigma), dtype=dtype)
    elements = len(sigma_t)
    fixed_e0 = atomic_energies.to(dtype)
    free = torch.tensor(list(free_heads), dtype=torch.bool)[:, None].expand_as(fixed_e0)
    chi = torch.zeros(elements, dtype=dtype, requires_grad=True)
    raw_hardness = torch.full((elements,), inverse_softplus(initial_hardness - minimum_hardness), dtype=dtype,
                              requires_grad=True)
    e0_shift = torch.zeros_like(fixed_e0, requires_grad=True)
    atoms = sample.num_atoms
    labelled = sample.charge_weight > 0
    scale = float(sample.energy_weight.sum())

    def parameters():
        return (torch.where(free, fixed_e0 + e0_shift, fixed_e0), chi,
                torch.nn.functional.softplus(raw_hardness) + minimum_hardness)

    def loss_of(e0, x, j):
        energy, charges = baseline(sample, e0, x, j, sigma_t)
        loss = (sample.energy_weight * ((sample.energy - energy) / atoms) ** 2).sum() / scale
        if charges_weight > 0 and bool(labelled.any()):
            loss = loss + charges_weight * (sample.charge_weight * (charges - sample.charges) ** 2).sum() \
                / sample.charge_weight.sum()
        prior = 1e-4 * torch.log(j / initial_hardness).pow(2).sum() + 1e-8 * (x * x).sum()
        return loss + prior, energy, charges

    with torch.no_grad():
        before = float(torch.sqrt(((sample.energy - baseline(sample, fixed_e0, torch.zeros_like(chi),
                                                               torch.zeros_like(chi) + initial_hardness,
                                                               sigma_t)[0]) / atoms).pow(2).mean()))
    optimizer = torch.optim.LBFGS([chi, raw_hardness, e0_shift], lr=1.0, max_iter=iterations,
                                  tolerance_grad=1e-10, tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = loss_of(*parameters())[0]
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        e0, x, j = parameters()
        _, energy, charges = loss_of(e0, x, j)
        after = float(torch.sqrt(((sample.energy - energy) / atoms).pow(2).mean()))
        charge_rmse = float(torch.sqrt((charges - sample.charges)[labelled].pow(2).mean())) if bool(labelled.any()) \
            else None
    return ElementBaseline(e0.detach(), x.tolist(), j.tolist(), 1e3 * before, 1e3 * after,
                           None if charge_rmse is None else 1e3 * charge_rmse)


def log_baseline(fit: ElementBaseline, atomic_numbers: Sequence[int]) -> None:
    from ase.data import chemical_symbols

    values = ", ".join(f"{chemical_symbols[z]}: χ {x:.3f} eV/e, J {j:.3f} eV/e²"
                       for z, x, j in zip(atomic_numbers, fit.electronegativity, fit.hardness))
    logging.info(f"MACEQEq element fit: {values}")
    charge = "" if fit.charge_rmse is None else f", charge RMSE {fit.charge_rmse:.1f} me"
    logging.info(f"MACEQEq element fit: energy RMSE of the E0s alone {fit.energy_rmse_before:.1f} meV/atom, "
                 f"of the fitted element baseline {fit.energy_rmse_after:.1f} meV/atom{charge}")
