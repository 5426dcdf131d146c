"""The element fit recovers the per-element values that made the data."""

import numpy as np
import pytest
import torch

from mace_qeq.training.element_fit import TrainingSample, baseline, fit_element_baseline, saturated_hardness

torch.set_default_dtype(torch.float64)

SIGMA = [1.0, 1.2]  # Å, elements 0 and 1
TRUE_E0 = torch.tensor([[-1.5, -3.0]])  # eV
TRUE_CHI = torch.tensor([-1.0, 2.0])  # eV/e
TRUE_J = torch.tensor([6.0, 9.0])  # eV/e²


def clusters(count=40, seed=0, total_charges=(-1.0, 0.0, 1.0)):
    """Open clusters of 2–6 atoms of two elements at the given total charges in turn, no closer than 2 Å."""
    rng = np.random.default_rng(seed)
    fields = {key: [] for key in TrainingSample.__dataclass_fields__}
    for graph in range(count):
        size = int(rng.integers(2, 7))
        positions = [rng.uniform(0, 4, 3)]
        while len(positions) < size:
            trial = rng.uniform(0, 4, 3)
            if min(np.linalg.norm(trial - p) for p in positions) > 2.0:
                positions.append(trial)
        fields["positions"].append(torch.tensor(np.array(positions)))
        fields["element"].append(torch.tensor(rng.integers(0, 2, size)))
        fields["batch"].append(torch.full((size,), graph))
        fields["cell"].append(torch.zeros(3, 3))
        fields["pbc"].append(torch.zeros(3, dtype=torch.bool))
        fields["total_charge"].append(torch.tensor(total_charges[graph % len(total_charges)]))
        fields["energy"].append(torch.tensor(0.0))
        fields["energy_weight"].append(torch.tensor(1.0))
        fields["forces"].append(torch.zeros(size, 3))
        fields["forces_weight"].append(torch.zeros(size))
        fields["charges"].append(torch.zeros(size))
        fields["charge_weight"].append(torch.zeros(size))
        fields["head"].append(torch.tensor(0))
    per_atom = ("positions", "element", "batch", "forces", "forces_weight", "charges", "charge_weight")
    return TrainingSample(**{key: torch.cat(value) if key in per_atom else torch.stack(value)
                             for key, value in fields.items()})


def labelled(sample, sigma=SIGMA, hardness=TRUE_J):
    """The sample with the energies and forces of the true element baseline (Gaussian widths ``sigma``),
    and its charges."""
    energy, charges, forces = baseline(sample, TRUE_E0, TRUE_CHI, hardness, torch.tensor(sigma), forces=True)
    sample.energy, sample.forces = energy.detach(), forces.detach()
    sample.forces_weight = torch.ones_like(sample.forces_weight)
    return sample, charges.detach()


def test_recovers_the_element_values_from_energies_at_several_total_charges():
    sample, _ = labelled(clusters())
    fit = fit_element_baseline(sample, SIGMA, torch.zeros(1, 2), [True], minimum_hardness=1.0)
    # to the bias of the weak priors (10⁻⁴ ln²(J/J₀), 10⁻⁸ χ²): < 10 meV/e, 0.3 % in J
    np.testing.assert_allclose(fit.electronegativity, TRUE_CHI.tolist(), atol=1e-2)
    np.testing.assert_allclose(fit.hardness, TRUE_J.tolist(), rtol=1e-2)
    np.testing.assert_allclose(fit.atomic_energies, TRUE_E0, atol=2e-3)
    assert fit.energy_rmse_after < 1.0 < 100.0 < fit.energy_rmse_before  # meV/atom
    assert fit.force_rmse < 1.0 < 10.0 < fit.force_rms  # meV/Å
    assert fit.widths == SIGMA  # not fitted unless asked


def test_saturated_hardness_is_the_hardness_below_the_knee_and_bounded_above_it():
    hardness = torch.linspace(1.0, 60.0, 4000, requires_grad=True)
    bounded = saturated_hardness(hardness, 20.0)
    slope = torch.autograd.grad(bounded.sum(), hardness)[0]
    below = hardness <= 15.0
    assert torch.equal(bounded[below], hardness[below])
    assert bool((bounded < 20.0).all()) and bool((bounded[~below] > 15.0).all())
    assert bool((slope[~below] > 0).all()) and float(slope[~below][0]) > 0.99  # monotonic, C¹ at the knee


def test_largest_hardness_bounds_the_fit_and_leaves_a_fit_below_the_knee_as_it_was():
    """Data whose charging energies need J far above any element's IP − EA (here made with J = 40 / 60,
    as a size-independent defect energy fitted by the 1/N of ½JΣq² makes it) are fitted below J_max;
    data made with physical J (6 / 9 eV/e², below the knee ¾ J_max) are fitted exactly as without a bound."""
    stiff, _ = labelled(clusters(seed=2), hardness=torch.tensor([40.0, 60.0]))
    free = fit_element_baseline(stiff, SIGMA, torch.zeros(1, 2), [True], minimum_hardness=1.0)
    np.testing.assert_allclose(free.hardness, [40.0, 60.0], rtol=5e-2)
    bounded = fit_element_baseline(stiff, SIGMA, torch.zeros(1, 2), [True], minimum_hardness=1.0,
                                   largest_hardness=20.0)
    assert max(bounded.hardness) < 20.0
    physical, _ = labelled(clusters(seed=3))
    kwargs = dict(minimum_hardness=1.0, largest_width=3.0)
    unbounded = fit_element_baseline(physical, SIGMA, torch.zeros(1, 2), [True], **kwargs)
    same = fit_element_baseline(physical, SIGMA, torch.zeros(1, 2), [True], largest_hardness=20.0, **kwargs)
    assert same.hardness == unbounded.hardness and same.electronegativity == unbounded.electronegativity
    assert same.widths == unbounded.widths
    with pytest.raises(ValueError, match="largest hardness"):
        fit_element_baseline(physical, SIGMA, torch.zeros(1, 2), [True], minimum_hardness=1.0, largest_hardness=1.2)


def test_recovers_wider_gaussian_widths():
    """Widths are fitted at or above the given ones: wider true widths are found, the given ones kept where the
    data were made with them."""
    wide = [1.6, 1.5]
    sample, _ = labelled(clusters(seed=4), sigma=wide)
    fit = fit_element_baseline(sample, SIGMA, torch.zeros(1, 2), [True], minimum_hardness=1.0, largest_width=3.0)
    # σ and J trade off in the self-energy J + k_e/(σ√π); the J prior's bias moves σ by a few %
    np.testing.assert_allclose(fit.widths, wide, rtol=5e-2)
    np.testing.assert_allclose(fit.electronegativity, TRUE_CHI.tolist(), atol=5e-2)
    assert fit.energy_rmse_after < 2.0 and fit.force_rmse < 0.1 * fit.force_rms  # meV/atom, meV/Å
    narrow, _ = labelled(clusters(seed=5))
    absent = 0.9  # Å, the width of a third element the data do not hold: kept
    fit = fit_element_baseline(narrow, SIGMA + [absent], torch.zeros(1, 3), [True], minimum_hardness=1.0,
                               largest_width=3.0)
    np.testing.assert_allclose(fit.widths[:2], SIGMA, rtol=5e-2)
    assert min(w - s for w, s in zip(fit.widths, SIGMA)) >= 0.0 and fit.widths[2] == absent


def test_widths_the_data_do_not_determine_keep_the_given_ones():
    """Neutral structures whose energies are E0s alone: the fit stays at χ = 0 (stationary there), puts no
    charge anywhere, and must not leave the widths where it started them (1.5 σ⁰): wider Gaussians cost
    real-space pairs in every large cell the model later runs."""
    sample = clusters(seed=7, total_charges=(0.0,))
    sample.energy = torch.zeros_like(sample.energy).index_add(0, sample.batch, TRUE_E0[0, sample.element])
    fit = fit_element_baseline(sample, SIGMA, torch.zeros(1, 2), [True], minimum_hardness=1.0, largest_width=3.0)
    assert fit.widths == SIGMA
    assert fit.energy_rmse_after < 1e-3  # meV/atom


def test_widths_stop_at_the_largest_width():
    """Data that want wider charges than allowed (true widths 8 Å) get the largest width, never more: unbounded,
    σ_Ag of Ag3± ran to 10¹⁰ Å and the periodic QEq matrix lost its positive definiteness."""
    sample, _ = labelled(clusters(seed=6), sigma=[8.0, 8.0])
    fit = fit_element_baseline(sample, SIGMA, torch.zeros(1, 2), [True], minimum_hardness=1.0, largest_width=3.0)
    assert max(fit.widths) <= 3.0 and min(fit.widths) > 2.9


def test_charge_labels_pin_the_charges():
    sample, charges = labelled(clusters(seed=1))
    sample.charges, sample.charge_weight = charges, torch.ones_like(charges)
    fit = fit_element_baseline(sample, SIGMA, torch.zeros(1, 2), [True], minimum_hardness=1.0, charges_weight=10.0)
    assert fit.charge_rmse < 0.1  # me


def test_given_e0s_are_kept():
    """Heads whose E0s the user gave (not ``--E0s average``) keep them; χ and J are still fitted."""
    sample, _ = labelled(clusters(seed=3))
    fit = fit_element_baseline(sample, SIGMA, TRUE_E0, [False], minimum_hardness=1.0)
    assert torch.equal(fit.atomic_energies, TRUE_E0)
    np.testing.assert_allclose(fit.electronegativity, TRUE_CHI.tolist(), atol=1e-2)
