"""Electrostatics of Gaussian charges: Coulomb, Ewald summation and charge equilibration.

Pure torch; does not import MACE. Units: Å, e, eV. Every function takes the flat
batch layout of MACE (positions [N, 3], per-atom tensors [N], a ``batch`` vector
[N] assigning atoms to G structures) and is TorchScript-compatible.
"""

from .coulomb import CoulombOperator, apply_coulomb, coulomb_energy, coulomb_matrix, coulomb_operator
from .ewald_parameters import EwaldParameters, ewald_parameters
from .iterative import ConvergenceError
from .options import QEqOptions
from .qeq import QEqSolution, qeq_site_energy, solve_qeq, solves_iteratively
from .structures import Structures, describe_structures
from .units import COULOMB_CONSTANT

__all__ = [
    "COULOMB_CONSTANT",
    "ConvergenceError",
    "CoulombOperator",
    "EwaldParameters",
    "QEqOptions",
    "QEqSolution",
    "Structures",
    "apply_coulomb",
    "coulomb_energy",
    "coulomb_matrix",
    "coulomb_operator",
    "describe_structures",
    "ewald_parameters",
    "qeq_site_energy",
    "solve_qeq",
    "solves_iteratively",
]
