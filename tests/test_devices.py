"""Every path on every device this machine has: the CPU always, CUDA where a GPU is present.

The same code runs on each device (tensors are created where their inputs
live; no host round trips are needed for the numbers), so on a CPU-only
machine these tests exercise the device-agnostic code on the CPU, and on a
GPU machine they compare CUDA against the CPU float64 reference: the dense
and iterative (Ewald and mesh) solves, the eager and compiled model (energy,
forces, stress, charges) in float64 and float32, the LAMMPS export called as
``pair_style mace`` calls it, the ASE calculator, and a training step.
"""

import copy

import pytest
import torch
from e3nn.util import jit
from mace.tools.torch_tools import default_dtype

from mace_qeq.calculators import MACEQEqCalculator
from mace_qeq.calculators.lammps_export import export_for_lammps
from mace_qeq.electrostatics import QEqOptions, solve_qeq

from .mace_helpers import cubic_cell, make_model, nacl_cell, nacl_cluster, pair_style_input, to_batch

torch.set_default_dtype(torch.float64)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
#: Agreement with the CPU float64 reference, relative to the largest magnitude of each output.
TOLERANCE = {torch.float64: 1e-9, torch.float32: 2e-4}
#: Smooth PME approximates the Ewald sum to ~1e-4 of the largest force, whatever the device.
MESH_TOLERANCE = 2e-4
SOLVERS = {
    "dense": QEqOptions(method="dense"),
    "iterative-ewald": QEqOptions(method="iterative", reciprocal="ewald", tolerance=1e-10),
    "iterative-mesh": QEqOptions(method="iterative", reciprocal="mesh", tolerance=1e-10),
}


def close(actual, reference, tolerance, what=""):
    """|actual − reference| ≤ tolerance × max |reference|, on the CPU in float64."""
    actual = actual.detach().to("cpu", torch.float64)
    reference = reference.detach().to("cpu", torch.float64)
    assert float((actual - reference).abs().max()) <= tolerance * float(reference.abs().max()), what


def qeq_inputs(device, dtype):
    cell_atoms, cluster_atoms = nacl_cell(repeat=(2, 2, 1)), nacl_cluster()
    positions = torch.tensor([*cell_atoms.positions, *cluster_atoms.positions])
    count = len(cell_atoms)
    sodium = torch.tensor([z == 11 for z in [*cell_atoms.numbers, *cluster_atoms.numbers]])
    inputs = dict(
        positions=positions,
        electronegativity=torch.where(sodium, -1.0, 1.5),
        hardness=torch.where(sodium, 6.0, 8.0),
        sigma=torch.where(sodium, 1.0, 1.2),
        total_charge=torch.tensor([1.0, -1.0]),
        cell=torch.stack([torch.tensor(cell_atoms.cell.array), torch.zeros(3, 3)]),
        pbc=torch.tensor([[True] * 3, [False] * 3]),
        batch=torch.cat([torch.zeros(count, dtype=torch.long), torch.ones(len(cluster_atoms), dtype=torch.long)]),
    )
    return {key: value.to(device=device, dtype=dtype if value.is_floating_point() else value.dtype)
            for key, value in inputs.items()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_qeq_solve(device, dtype, solver):
    reference_inputs = qeq_inputs("cpu", torch.float64)
    reference_inputs["positions"].requires_grad_(True)
    reference = solve_qeq(**reference_inputs, options=SOLVERS["dense"])
    reference_forces = -torch.autograd.grad(reference.energy.sum(), reference_inputs["positions"])[0]
    inputs = qeq_inputs(device, dtype)
    inputs["positions"].requires_grad_(True)
    solution = solve_qeq(**inputs, options=SOLVERS[solver])
    forces = -torch.autograd.grad(solution.energy.sum(), inputs["positions"])[0]
    assert solution.charges.device.type == device and solution.charges.dtype == dtype
    tolerance = MESH_TOLERANCE if solver == "iterative-mesh" else TOLERANCE[dtype]
    close(solution.energy, reference.energy, tolerance, "energy")
    close(solution.charges, reference.charges, tolerance, "charges")
    close(forces, reference_forces, tolerance, "forces")


def model_outputs(model, device, dtype, training=False):
    batch = to_batch([nacl_cell(), nacl_cluster()], [1.0, -1.0])
    data = {key: value.to(device=device, dtype=dtype if value.is_floating_point() else value.dtype)
            if torch.is_tensor(value) else value for key, value in dict(batch).items()}
    with default_dtype(dtype):
        return model(data, compute_stress=True, training=training)


@pytest.fixture(scope="module")
def compiled():
    """One TorchScript compilation for the module; each test moves its own copy."""
    return jit.compile(make_model())


@pytest.fixture(scope="module")
def exported():
    """The LAMMPS export of a charged periodic model, compiled once."""
    return export_for_lammps(make_model(), total_charge=1.0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("iterative", [False, True])
def test_eager_and_compiled_model(compiled, device, dtype, iterative):
    reference = model_outputs(make_model(), "cpu", torch.float64)
    eager = make_model().to(device=device, dtype=dtype)
    compiled = copy.deepcopy(compiled).to(device=device, dtype=dtype)
    for model in (eager, compiled):
        if iterative:  # CG with PME for the 4-atom structures (inference: training always solves densely)
            model.charge_equilibration.dense_limit = 1
            model.charge_equilibration.mesh_limit = 1
            model.charge_equilibration.tolerance = 1e-10
        out = model_outputs(model, device, dtype)
        assert out["energy"].device.type == device
        for key in ("energy", "forces", "stress", "charges"):
            close(out[key], reference[key], MESH_TOLERANCE if iterative else TOLERANCE[dtype], key)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_lammps_export(exported, device, dtype):
    """The exported model on the device LAMMPS puts it on, called with that device's tensors."""
    atoms, data = pair_style_input(cubic_cell())
    reference = exported(data, torch.ones(len(atoms)), compute_virials=True)
    exported = copy.deepcopy(exported).to(device=device, dtype=dtype)
    on_device = {key: value.to(device=device, dtype=dtype if value.is_floating_point() else value.dtype)
                 for key, value in data.items()}
    with default_dtype(dtype):
        out = exported(on_device, torch.ones(len(atoms), dtype=dtype, device=device), compute_virials=True)
    for key in ("total_energy_local", "forces", "virials"):
        assert out[key].device.type == device
        close(out[key], reference[key], TOLERANCE[dtype], key)


def calculator_results(device, dtype_name):
    """Energy, forces and charges of a charged cell and a charged cluster by the ASE calculator.

    The calculator runs the model under the process's default dtype (float64 here): a float32 model then
    meets MACE's own float64-promoted ops, and its float32 cell a float64 gradient (what broke the
    backward of ``torch.linalg.det`` in the cell volume)."""
    calculator = MACEQEqCalculator(models=[make_model()], device=device, default_dtype=dtype_name)
    results = []
    for atoms, charge in ((nacl_cell(), 1), (nacl_cluster(), -1)):
        atoms.info["charge"] = charge
        atoms.calc = calculator
        results += [atoms.get_potential_energy(), atoms.get_forces(), atoms.get_charges()]
    return [torch.as_tensor(value) for value in results]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype_name", ["float64", "float32"])
def test_calculator(device, dtype_name):
    reference = calculator_results("cpu", "float64")
    names = ["energy", "forces", "charges"] * 2
    for value, expected, what in zip(calculator_results(device, dtype_name), reference, names):
        close(value, expected, TOLERANCE[getattr(torch, dtype_name)], what)


@pytest.mark.parametrize("device", DEVICES)
def test_training_step(device):
    """The gradient of a loss on energies, forces and charges (second derivatives through the dense solve)
    on the device is the CPU's."""
    gradients = []
    for where in ("cpu", device):
        model = make_model().to(where)
        out = model_outputs(model, where, torch.float64, training=True)
        loss = out["energy"].pow(2).sum() + out["forces"].pow(2).sum() + out["charges"].pow(2).sum()
        loss.backward()
        gradients.append(torch.cat([p.grad.flatten().cpu() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(gradients[1], gradients[0], rtol=1e-8, atol=1e-10)
