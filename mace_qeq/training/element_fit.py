"""Per-element electronegativities, hardnesses and reference energies fitted to the
training data before training, as MACE fits its E0s.

The element baseline is the MACEQEq energy with every environment term off,

    E_base(R, Q) = Σᵢ E0_{Zᵢ} + min_{Σq=Q} Σᵢ [χ_{Zᵢ} qᵢ + ½ J_{Zᵢ} qᵢ²] + ½ qᵀΦ(R)q,

(Φ of Gaussian charges of widths σ_Z) and χ_Z (eV/e), J_min ≤ J_Z ≤ J_max (eV/e²), the
widths σ⁰_Z ≤ σ_Z ≤ r_max/2 (Å; σ⁰ the covalent radii; widths the user gave,
and those the data do not determine, are kept) and, where MACE would fit
them by least squares ("average" E0s), E0_Z (eV) minimise

    ⟨w (E_ref − E_base)² / N²⟩ + w_q ⟨(q* − q_ref)²⟩ + 10⁻⁴ Σ_Z ln²(J_Z / J₀)

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

Why the widths: charge-state energies of molecules need element χ that put
large charges on their atoms (LODE's organic dimers: |q| up to 1.1 e), whose
intramolecular Coulomb forces between point-like (σ⁰) Gaussians the network
must then cancel. Measured on LODE's 60 training dimers (DFT): with
σ = σ⁰ the fitted baseline leaves 4.6 meV/atom but 763 meV/Å of force error
(zero forces: 83 meV/Å), and the trained model 9.3 meV/atom / 62.0 meV/Å on
the test set; fitted (H, N, O to 2.4–2.5 Å, C kept at σ⁰), the baseline
leaves 2.7 meV/atom and 105 meV/Å, and the trained model 4.3 / 30.3. Where
point-like charges describe the energies better (the Na/Cl clusters at
Q = 0, ±1 and the periodic Na/Cl cells), the fit keeps σ⁰.

Why J_Z ≤ J_max (20 eV/e², above IP − EA of every element but He and Ne):
a charge-state energy that does not depend on the size, such as the
formation energy of a vacancy (on the Na/Cl rock-salt rods of 7–16 atoms,
E(+) + E(−) − 2E(0) plus a pair's energy is 3.3–3.8 eV whatever the size),
reaches the element baseline only through ½ΣJq², which falls as 1/N; the
unbounded fit took J to 258 / 187 eV/e² (Na / Cl; χ to ∓168 / 153 eV/e) to
mimic it. Charges that stiff do not screen: the trained model made two like
vacancies 1.2 eV more repulsive than GFN2-xTB, its energy error on the
never-seen Q = ±2 rods was 90 / 103 meV/atom and 17.8 in distribution.
Bounded (J 20.0 / 17.0, χ ∓13.3 eV/e), the fitted baseline is worse on the
training set (94 against 56 meV/atom: the vacancy energy is left to the
network, which is local, as that energy is) and the trained model better
everywhere: 7.9 meV/atom / 62.2 meV/Å in distribution (was 73.6), 10.2 / 5.1
on the ±2 rods, 28–38 on 47–48-atom rods (was 46–60); `benchmarks/peers.py
--set nacl_rods`. The bound saturates smoothly from ¾ J_max, so that a fit
whose hardnesses stay below that (the periodic Na/Cl cells, Ag3± on shared
geometries, C10H2/C10H3⁺, LODE's dimers, the SPICE dipeptides) is the
unbounded fit, digit for digit.

Why no wider than r_max/2: two such charges (γ = √(σ² + σ'²) ≤ r_max/√2)
interact as point charges to 0.5 % beyond 2 r_max (erf 2 = 0.995), so the
electrostatics stays the long-range term it is meant to be. Unbounded, the
fit sent σ_Ag of the embedded Ag3± + Na/Cl set to 10¹⁰ Å (no Coulomb left),
and the periodic QEq matrix of a 3 Å cell lost its positive definiteness to
rounding; on LODE (test E meV/atom / F meV/Å) unbounded widths gave
3.0 / 40.2, σ ≤ r_max 3.7 / 40.6, σ ≤ r_max/2 4.3 / 30.3.
"""

import logging
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mace_qeq.electrostatics import QEqOptions, solve_qeq
from mace_qeq.modules.readouts import inverse_softplus

HARDNESS_KNEE = 0.75  # the fitted J saturates from this fraction of J_max (``saturated_hardness``)


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
    forces: Tensor  # [N, 3] (eV/Å)
    forces_weight: Tensor  # [N] 0 where there is no reference
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
        fields["forces"].append(data.forces.double().view(-1, 3))
        fields["forces_weight"].append((data.weight * data.forces_weight).double().view(()).expand(count))
        fields["charges"].append(data.charges.double().view(-1))
        fields["charge_weight"].append((data.weight * data.charges_weight).double().view(()).expand(count))
        fields["head"].append(data.head.view(()))
        atoms += count
        graphs += 1
        if atoms >= max_atoms:
            break
    if graphs == 0:
        raise ValueError("no training structures to fit the element baseline to")
    stacked = {key: (torch.cat(values) if key in ("positions", "element", "batch", "forces", "forces_weight", "charges",
                                                                  "charge_weight")
                     else torch.stack(values)) for key, values in fields.items()}
    return TrainingSample(**stacked)


@dataclass
class ElementBaseline:
    """The fitted values, per element (and per head for the energies)."""

    atomic_energies: Tensor  # [heads, elements] E0 (eV)
    electronegativity: List[float]  # χ_Z (eV/e)
    hardness: List[float]  # J_Z (eV/e²)
    widths: List[float]  # σ_Z (Å), fitted or as given
    energy_rmse_before: float  # meV/atom, E0s alone
    energy_rmse_after: float  # meV/atom, the fitted baseline
    force_rmse: Optional[float]  # meV/Å, the fitted baseline, where forces are referenced
    force_rms: Optional[float]  # meV/Å, of the reference forces (the error of zero forces)
    charge_rmse: Optional[float]  # me, where references exist


def baseline(sample: TrainingSample, atomic_energies: Tensor, electronegativity: Tensor, hardness: Tensor,
             sigma: Tensor, accuracy: float = 1e-6, forces: bool = False):
    """(E_base [G], q* [N], F_base [N, 3] or None) of the sample for per-element values; ``forces``:
    F_base = −∂E_base/∂r, differentiable in the values."""
    element = sample.element
    positions = sample.positions.detach().requires_grad_(forces)
    solution = solve_qeq(positions, electronegativity[element], hardness[element], sigma[element],
                         sample.total_charge, sample.cell, sample.pbc, sample.batch,
                         QEqOptions(method="dense", accuracy=accuracy))
    e0 = atomic_energies[sample.head[sample.batch], element]
    reference = torch.zeros_like(sample.energy).index_add(0, sample.batch, e0)
    force = None
    if forces:
        force = -torch.autograd.grad(solution.energy.sum(), positions, create_graph=True)[0]
    return reference + solution.energy, solution.charges, force


def fit_element_baseline(sample: TrainingSample, sigma: Sequence[float], atomic_energies: Tensor,
                         free_heads: Sequence[bool], minimum_hardness: float, charges_weight: float = 0.0,
                         largest_width: Optional[float] = None, initial_hardness: float = 5.0,
                         largest_hardness: Optional[float] = None, iterations: int = 200) -> ElementBaseline:
    """Fit χ_Z, J_Z (and the E0 rows of ``free_heads``; given ``largest_width``, the widths
    σ_Z ∈ [``sigma``, ``largest_width``]; given ``largest_hardness``, J_Z ≤ J_max) to the sample
    (see the module docstring).

    ``charges_weight`` is w_q, the weight of a charge error (e) against an energy error per atom (eV)
    (0: energies only).
    """
    if largest_hardness is not None and not HARDNESS_KNEE * largest_hardness > minimum_hardness:
        raise ValueError(f"the largest hardness {largest_hardness} eV/e² must exceed "
                         f"{minimum_hardness / HARDNESS_KNEE:.3g} eV/e²: the bound saturates from {HARDNESS_KNEE} "
                         f"of it, which must lie above the minimum hardness {minimum_hardness} eV/e²")
    dtype = torch.float64
    smallest_widths = torch.tensor(list(sigma), dtype=dtype)
    elements = len(smallest_widths)
    fixed_e0 = atomic_energies.to(dtype)
    free = torch.tensor(list(free_heads), dtype=torch.bool)[:, None].expand_as(fixed_e0)
    chi = torch.zeros(elements, dtype=dtype, requires_grad=True)
    raw_hardness = torch.full((elements,), inverse_softplus(initial_hardness - minimum_hardness), dtype=dtype,
                              requires_grad=True)
    e0_shift = torch.zeros_like(fixed_e0, requires_grad=True)
    fit_widths = largest_width is not None
    largest_widths = smallest_widths.clamp(min=largest_width) if fit_widths else smallest_widths  # ≥ σ⁰
    start = (1.5 * smallest_widths).clamp(max=largest_widths)  # σ starts at 1.5 σ⁰
    raw_width = torch.logit((start - smallest_widths) / (largest_widths - smallest_widths).clamp(min=1e-12),
                            eps=1e-6).requires_grad_(True)
    atoms = sample.num_atoms
    labelled = sample.charge_weight > 0
    scale = float(sample.energy_weight.sum())

    present = torch.bincount(sample.element, minlength=elements) > 0  # the others keep their given widths

    def parameters():
        widths = torch.where(present, smallest_widths + (largest_widths - smallest_widths) * torch.sigmoid(raw_width),
                             smallest_widths) if fit_widths else smallest_widths
        hardness = torch.nn.functional.softplus(raw_hardness) + minimum_hardness
        if largest_hardness is not None:
            hardness = saturated_hardness(hardness, largest_hardness)
        return torch.where(free, fixed_e0 + e0_shift, fixed_e0), chi, hardness, widths

    def loss_of(e0, x, j, widths):
        energy, charges, _ = baseline(sample, e0, x, j, widths)
        loss = (sample.energy_weight * ((sample.energy - energy) / atoms) ** 2).sum() / scale
        if charges_weight > 0 and bool(labelled.any()):
            loss = loss + charges_weight * (sample.charge_weight * (charges - sample.charges) ** 2).sum() \
                / sample.charge_weight.sum()
        prior = 1e-4 * torch.log(j / initial_hardness).pow(2).sum() + 1e-8 * (x * x).sum()
        return loss + prior

    def energy_rmse(e0, x, j, widths) -> float:
        energy = baseline(sample, e0, x, j, widths)[0]
        return 1e3 * float(torch.sqrt(((sample.energy - energy) / atoms).pow(2).mean()))

    with torch.no_grad():
        before = energy_rmse(fixed_e0, torch.zeros_like(chi), torch.zeros_like(chi) + initial_hardness,
                             smallest_widths)
    variables = [chi, raw_hardness, e0_shift] + ([raw_width] if fit_widths else [])
    optimizer = torch.optim.LBFGS(variables, lr=1.0, max_iter=iterations, tolerance_grad=1e-10,
                                  tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = loss_of(*parameters())
        loss.backward()
        return loss

    optimizer.step(closure)
    e0, x, j, widths = (t.detach() for t in parameters())
    if fit_widths:
        widths = _undetermined_widths_kept(widths, smallest_widths, lambda w: float(loss_of(e0, x, j, w)))
    _, charges, forces = baseline(sample, e0, x, j, widths, forces=True)
    with torch.no_grad():
        after = energy_rmse(e0, x, j, widths)
        charge_rmse = 1e3 * float(torch.sqrt((charges - sample.charges)[labelled].pow(2).mean())) \
            if bool(labelled.any()) else None
        referenced = sample.forces_weight > 0
        force_rmse = (1e3 * float(torch.sqrt((forces - sample.forces)[referenced].pow(2).mean())),
                      1e3 * float(torch.sqrt(sample.forces[referenced].pow(2).mean()))) \
            if bool(referenced.any()) else (None, None)
    return ElementBaseline(e0, x.tolist(), j.tolist(), widths.tolist(), before, after, *force_rmse, charge_rmse)


def saturated_hardness(hardness: Tensor, largest: float) -> Tensor:
    """J itself up to the knee J_k = ¾ J_max, then J_k + (J_max − J_k) tanh((J − J_k)/(J_max − J_k)) ≤ J_max:
    continuous with its first derivative, so a fit that stays below J_k is the unbounded fit."""
    knee = HARDNESS_KNEE * largest
    span = largest - knee
    return torch.where(hardness <= knee, hardness, knee + span * torch.tanh((hardness - knee) / span))


def _undetermined_widths_kept(widths: Tensor, given: Tensor, loss, tolerance: float = 1e-6) -> Tensor:
    """``widths`` with each element's width set back to its given one where that does not raise ``loss``
    (relatively, beyond ``tolerance``): the data do not determine it. On neutral data without charge
    labels χ = 0 is stationary (E_QEq* = −½χᵀSχ), the fit stays there with no charges, and without this
    the widths would stay at the fit's 1.5 σ⁰ start (on NaCl(aq): σ_Na 2.49 Å, 3.4× the real-space pairs
    of σ⁰ in every large cell the model later runs)."""
    current = loss(widths)
    for element in range(widths.shape[0]):
        if bool(widths[element] == given[element]):
            continue
        trial = widths.clone()
        trial[element] = given[element]
        value = loss(trial)
        if value <= current * (1.0 + tolerance) + 1e-15:
            widths, current = trial, value
    return widths


def log_baseline(fit: ElementBaseline, atomic_numbers: Sequence[int]) -> None:
    from ase.data import chemical_symbols

    values = ", ".join(f"{chemical_symbols[z]}: χ {x:.3f} eV/e, J {j:.3f} eV/e², σ {w:.3f} Å"
                       for z, x, j, w in zip(atomic_numbers, fit.electronegativity, fit.hardness, fit.widths))
    logging.info(f"MACEQEq element fit: {values}")
    charge = "" if fit.charge_rmse is None else f", charge RMSE {fit.charge_rmse:.1f} me"
    logging.info(f"MACEQEq element fit: energy RMSE of the E0s alone {fit.energy_rmse_before:.1f} meV/atom, "
                 f"of the fitted element baseline {fit.energy_rmse_after:.1f} meV/atom{charge}")
    if fit.force_rmse is not None:
        logging.info(f"MACEQEq element fit: force RMSE of the fitted element baseline {fit.force_rmse:.1f} meV/Å "
                     f"(of zero forces {fit.force_rms:.1f} meV/Å)")
