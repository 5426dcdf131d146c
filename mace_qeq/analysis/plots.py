"""Parity plots (energy, forces, charges coloured by element) and learning curves, as PNG."""

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
from ase.data import chemical_symbols

from .evaluate import Predictions


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _parity(ax, reference, predicted, label, unit, **scatter):
    reference, predicted = np.asarray(reference), np.asarray(predicted)
    ax.scatter(reference, predicted, s=6, alpha=0.6, **scatter)
    low, high = min(reference.min(), predicted.min()), max(reference.max(), predicted.max())
    ax.plot([low, high], [low, high], "k--", lw=0.8)
    rmse = float(np.sqrt(np.mean((predicted - reference) ** 2)))
    ax.set(xlabel=f"reference {label} ({unit})", ylabel=f"predicted {label} ({unit})",
           title=f"{label}: RMSE {rmse:.3g} {unit}")


def _charges_by_element(ax, p: Predictions) -> None:
    elements = np.concatenate(p.elements)
    reference, predicted = np.concatenate(p.charges_ref), np.concatenate(p.charges)
    for z in np.unique(elements):
        mask = elements == z
        ax.scatter(reference[mask], predicted[mask], s=6, alpha=0.6, label=chemical_symbols[z])
    low, high = min(reference.min(), predicted.min()), max(reference.max(), predicted.max())
    ax.plot([low, high], [low, high], "k--", lw=0.8)
    rmse = float(np.sqrt(np.mean((predicted - reference) ** 2)))
    ax.set(xlabel="reference charge (e)", ylabel="predicted charge (e)", title=f"charges: RMSE {1e3 * rmse:.3g} me")
    ax.legend(fontsize=8)


def _model_row(axes, p: Predictions, name: str) -> None:
    n = np.asarray(p.atoms_per_structure)
    _parity(axes[0], np.asarray(p.energy_ref) / n, np.asarray(p.energy) / n, "energy", "eV/atom")
    _parity(axes[1], np.concatenate([f.ravel() for f in p.forces_ref]),
            np.concatenate([f.ravel() for f in p.forces]), "force", "eV/Å")
    axes[0].set_title(f"{name}\n{axes[0].get_title()}", fontsize=9)
    if len(axes) > 2:
        if len(p.charges) > 0:
            _charges_by_element(axes[2], p)
        else:
            axes[2].axis("off")


def parity_plots(predictions: Dict[str, Predictions], output: Path, title: str = "",
                 combined: bool = False) -> List[Path]:
    """Energy per atom, force components and (if any) charges by element: one figure per model
    (``parity_<name>.png``) or, ``combined``, one row per model in ``parity.png``."""
    plt = _pyplot()
    if combined:
        rows = len(predictions)
        fig, axes = plt.subplots(rows, 3, figsize=(13, 3.6 * rows), squeeze=False)
        for row, (name, p) in zip(axes, predictions.items()):
            _model_row(row, p, name)
        fig.suptitle(title)
        fig.tight_layout()
        path = Path(output) / "parity.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return [path]
    written = []
    for name, p in predictions.items():
        has_charges = len(p.charges) > 0
        fig, axes = plt.subplots(1, 3 if has_charges else 2, figsize=(13 if has_charges else 9, 4))
        _model_row(axes, p, name)
        fig.suptitle(f"{title} {name}".strip())
        fig.tight_layout()
        path = Path(output) / f"parity_{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def learning_curve_plot(curve: Dict[str, Sequence[dict]], path: Path, title: str = "") -> Path:
    """Test errors (energy, forces) against the number of training structures, log–log."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, points in curve.items():
        sizes = [p["train_structures"] for p in points]
        axes[0].loglog(sizes, [p["energy_mev_per_atom"] for p in points], "o-", label=name)
        axes[1].loglog(sizes, [p["forces_mev_per_a"] for p in points], "o-", label=name)
    axes[0].set(xlabel="training structures", ylabel="energy RMSE (meV/atom)")
    axes[1].set(xlabel="training structures", ylabel="force RMSE (meV/Å)")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
