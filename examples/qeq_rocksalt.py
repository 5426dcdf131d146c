"""Charge equilibration of a rattled NaCl crystal with the electrostatics layer alone (no MACE).

    python examples/qeq_rocksalt.py

Prints the charges, the chemical potential, the QEq energy and the stress of a
2×2×2 rock-salt supercell with total charge 0 and +1 (neutralising background).
"""

import ase.build
import torch

from mace_qeq.electrostatics import solve_qeq

torch.set_default_dtype(torch.float64)
atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True) * (2, 2, 2)
atoms.rattle(0.05, seed=0)
is_na = torch.tensor(atoms.numbers == 11)
electronegativity = torch.where(is_na, -1.5, 1.5)  # eV/e: Na gives, Cl takes electrons
hardness = torch.where(is_na, 6.0, 8.0)  # eV/e²
sigma = torch.where(is_na, 1.0, 1.2)  # Å
cell = torch.tensor(atoms.cell.array)
positions = torch.tensor(atoms.positions)

for total in (0.0, 1.0):
    strain = torch.zeros(3, 3, requires_grad=True)
    deformation = torch.eye(3) + strain
    solution = solve_qeq(positions @ deformation, electronegativity, hardness, sigma, torch.tensor([total]),
                         cell @ deformation, torch.tensor([True, True, True]))
    (virial,) = torch.autograd.grad(solution.energy.sum(), strain)
    stress = virial / atoms.get_volume()  # eV/Å³
    print(f"Q = {total:+.0f}: q(Na) = {solution.charges[is_na].mean():.4f} e, "
          f"q(Cl) = {solution.charges[~is_na].mean():.4f} e, μ = {float(solution.chemical_potential):.4f} eV/e, "
          f"E_QEq = {float(solution.energy):.4f} eV, pressure = {-float(stress.trace()) / 3 * 160.2177:.3f} GPa")
