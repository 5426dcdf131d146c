"""Evaluating a trained model on a test set, and the plots of that evaluation."""

import mace  # noqa: F401  (before e3nn)

from .evaluate import TestErrors, evaluate_model, test_errors
from .plots import learning_curve_plot, parity_plots

__all__ = ["TestErrors", "evaluate_model", "learning_curve_plot", "parity_plots", "test_errors"]
