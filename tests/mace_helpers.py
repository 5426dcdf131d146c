"""Small MACEQEq models and batches built directly (no training) for the tests."""

import ase
import ase.build
import numpy as np
import torch

import mace_qeq.modules  # noqa: F401  (imports mace before e3nn)
from e3nn import o3
from mace import data as mace_data
from mace import modules as mace_modules
from mace.tools import AtomicNumberTable, torch_geometric

from mace_qeq.modules import MACEQEq

ELEMENTS = [11, 17]  # Na, Cl
R_MAX = 4.0


def backbone_config(num_channels=8, max_L=1, heads=None, num_interactions=2):
    return dict(
        r_max=R_MAX, num_bessel=6, num_polynomial_cutoff=5, max_ell=2,
        interaction_cls=mace_modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=mace_modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=num_interactions, num_elements=len(ELEMENTS),
        hidden_irreps=o3.Irreps(f"{num_channels}x0e" + (f"+{num_channels}x1o" if max_L else "")),
        MLP_irreps=o3.Irreps("8x0e"), atomic_energies=np.zeros((len(heads or [0]), len(ELEMENTS))),
        avg_num_neighbors=6.0, atomic_numbers=ELEMENTS, correlation=2, gate=torch.nn.functional.silu,
        atomic_inter_scale=[1.0] * len(heads or [0]), atomic_inter_shift=[0.0] * len(heads or [0]),
        heads=heads,
    )


def make_model(seed=0, heads=None, num_interactions=2, **qeq):
    torch.manual_seed(seed)
    model = MACEQEq(**backbone_config(heads=heads, num_interactions=num_interactions), **qeq)
    with torch.no_grad():  # visible charges from the start: spread the per-element electronegativities
        model.qeq_readout.electronegativity_offset[:, :] = torch.tensor([[-2.0], [2.0]])
    return model


def nacl_cell(repeat=(2, 1, 1), rattle=0.15, seed=1, triclinic=True):
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64) * repeat
    if triclinic:
        atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0.05, 0.0], [0.02, 1.0, 0.04], [0.0, 0.03, 1.0]]),
                       scale_atoms=True)
    atoms.rattle(rattle, seed=seed)
    return atoms


def nacl_cluster(seed=2):
    atoms = ase.Atoms("NaClNaCl", positions=[[0, 0, 0], [2.8, 0, 0], [2.8, 2.8, 0], [0, 2.8, 0.3]])
    atoms.rattle(0.1, seed=seed)
    return atoms


def to_batch(structures, total_charges, heads=None):
    """MACE's batch dict, the way the trainer and calculator build it."""
    z_table = AtomicNumberTable(ELEMENTS)
    keyspec = mace_data.KeySpecification(info_keys={"total_charge": "total_charge"}, arrays_keys={})
    graphs = []
    for atoms, charge in zip(structures, total_charges):
        atoms = atoms.copy()
        atoms.info["total_charge"] = charge
        config = mace_data.config_from_atoms(atoms, key_specification=keyspec)
        graphs.append(mace_data.AtomicData.from_config(config, z_table=z_table, cutoff=R_MAX, heads=heads))
    return torch_geometric.batch.Batch.from_data_list(graphs).to_dict()


#: The keys pair_style mace (ACEsuit LAMMPS, pair_mace.cpp) puts into the model's input.
PAIR_STYLE_KEYS = ("batch", "cell", "edge_index", "energy", "forces", "node_attrs", "positions", "ptr", "shifts",
                   "unit_shifts", "weight")


def pair_style_input(atoms, box=None):
    """What pair_style mace no_domain_decomposition hands the model: the local atoms (wrapped into a
    periodic box), the graph with image shifts, the box as the cell (also for a boundary f f f box)."""
    atoms = atoms.copy()
    if atoms.pbc.all():
        atoms.wrap()
    config = mace_data.config_from_atoms(atoms, key_specification=mace_data.KeySpecification())
    graph = mace_data.AtomicData.from_config(config, z_table=AtomicNumberTable(ELEMENTS), cutoff=R_MAX)
    data = torch_geometric.batch.Batch.from_data_list([graph]).to_dict()
    data = {key: data[key] for key in PAIR_STYLE_KEYS}
    if box is not None:
        data["cell"] = torch.tensor(box, dtype=torch.float64)
    return atoms, data


def cubic_cell(rattle=0.15, seed=1):
    """Rattled conventional rock salt (8 atoms, 5.64 Å cube): LAMMPS's orthogonal box as it is."""
    atoms = ase.build.bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.rattle(rattle, seed=seed)
    return atoms


def training_args(*argv):
    """The arguments of ``mace_qeq_run_train`` with its per-model defaults resolved."""
    from mace_qeq import plugin
    from mace_qeq.cli.run_train import build_parser

    args = build_parser().parse_args(["--name", "x", "--train_file", "x.xyz", *argv])
    plugin.prepare_args(args)
    return args
