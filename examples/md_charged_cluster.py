"""Molecular dynamics of a charged cluster with a trained MACEQEq model (ASE).

    mace_qeq_demo                                          # trains mace_qeq_demo/maceqeq_demo.model
    python examples/md_charged_cluster.py mace_qeq_demo/maceqeq_demo.model

Runs 200 steps of Langevin dynamics of Ag3+ at 300 K and prints the energy, the
total charge (conserved exactly) and the charge of the first atom. (The demo
model has seen only 120 Na/Cl clusters: keep to Ag3 with it.)
"""

import sys

import ase.io
import numpy as np
from ase import units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

from mace_qeq.calculators import MACEQEqCalculator
from mace_qeq.datasets import DEFAULT_DATASET

model = sys.argv[1] if len(sys.argv) > 1 else "mace_qeq_demo/maceqeq_demo.model"
atoms = next(a for a in ase.io.read(DEFAULT_DATASET, ":") if a.info["config_type"] == "Ag3+")
atoms.info = {"charge": 1}
atoms.calc = MACEQEqCalculator(model_paths=model, device="cpu", default_dtype="float64")
MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
dynamics = Langevin(atoms, 1.0 * units.fs, temperature_K=300, friction=0.01)


def report():
    charges = atoms.get_charges()
    print(f"step {dynamics.nsteps:4d}  E = {atoms.get_total_energy():10.4f} eV  "
          f"Σq = {charges.sum():+.6f} e  q(Ag0) = {charges[0]:+.3f} e")


dynamics.attach(report, interval=20)
dynamics.run(200)
