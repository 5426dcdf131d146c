"""MACE's LAMMPS export (libtorch pair_style mace, no_domain_decomposition) of a MACEQEq."""

import torch
from e3nn.util import jit
from mace.calculators.lammps_mace import LAMMPS_MACE

from ..mace_helpers import make_model, nacl_cell, to_batch

torch.set_default_dtype(torch.float64)


def test_exported_model_scripts_and_matches_the_model():
    model = make_model()
    atoms = nacl_cell()
    batch = to_batch([atoms], [0.0])
    reference = model(dict(batch), compute_stress=True)

    exported = jit.compile(LAMMPS_MACE(make_model()))
    # pair_style mace supplies neither total_charge nor pbc (total charge 0, periodic box)
    lammps_input = {k: v for k, v in batch.items()
                    if k in ("batch", "cell", "edge_index", "node_attrs", "positions", "ptr", "shifts",
                             "unit_shifts", "weight", "energy", "forces")}
    out = exported(lammps_input, torch.ones(len(atoms)), compute_virials=True)
    torch.testing.assert_close(out["total_energy_local"], reference["energy"], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out["forces"], reference["forces"], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out["virials"][0], -reference["stress"][0] * atoms.get_volume(), rtol=1e-8,
                               atol=1e-9)
