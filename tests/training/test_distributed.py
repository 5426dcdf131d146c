"""Two training processes on CPU (torchrun, gloo) train MACEQEq exactly as one process does.

The global batch is the same (2 × 4 against 1 × 8 structures) and mace's loss
is the exact global mean under DDP, so the parameters must agree to rounding,
and so must the statistics the energy floor and the contact wall learn from
each global batch (its lowest site energies and closest pairs).
mace computes two data statistics from each rank's share of the data (the
force-RMS scale, and avg_num_neighbors weighted by graphs); they are fixed on
the command line here so that both runs start from the same model.
"""

import os
import socket
import subprocess
import sys

import ase.io
import torch

from mace_qeq.datasets import DEFAULT_DATASET

ARGS = ["--num_channels", "8", "--max_L", "0", "--max_ell", "1", "--correlation", "2", "--num_interactions", "2",
        "--r_max", "4.0", "--device", "cpu", "--default_dtype", "float64", "--seed", "1", "--E0s", "isolated",
        "--max_num_epochs", "3", "--scaling", "no_scaling", "--avg_num_neighbors", "4.0",
        "--compute_avg_num_neighbors", "False", "--qeq_charge_feedback"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_cpu_processes_train_exactly_like_one(tmp_path):
    structures = ase.io.read(DEFAULT_DATASET, ":")
    by_type = {}
    for atoms in structures:
        by_type.setdefault(atoms.info["config_type"], []).append(atoms)
    train = by_type["IsolatedAtom"] + [a for t in ("Ag3+", "Ag3-", "Na4Cl4", "Na4Cl3+") for a in by_type[t][:2]]
    valid = [a for t in ("Ag3+", "Na3Cl4-", "Na4Cl4") for a in by_type[t][5:7]]
    ase.io.write(tmp_path / "train.xyz", train)
    ase.io.write(tmp_path / "valid.xyz", valid)
    common = ARGS + ["--train_file", str(tmp_path / "train.xyz"), "--valid_file", str(tmp_path / "valid.xyz")]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    single = subprocess.run([sys.executable, "-m", "mace_qeq.cli.run_train", *common, "--name", "single",
                             "--batch_size", "8", "--valid_batch_size", "6", "--work_dir", str(tmp_path / "single")],
                            capture_output=True, text=True, env=env)
    assert single.returncode == 0, single.stderr[-3000:]
    multi = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                            str(free_port()), "-m", "mace_qeq.cli.run_train", *common, "--name", "multi",
                            "--batch_size", "4", "--valid_batch_size", "3", "--work_dir", str(tmp_path / "multi"),
                            "--distributed", "--launcher", "torchrun"],
                           capture_output=True, text=True, env=env)
    assert multi.returncode == 0, multi.stderr[-3000:]
    one = torch.load(tmp_path / "single" / "single.model", weights_only=False)
    two = torch.load(tmp_path / "multi" / "multi.model", weights_only=False)
    names = [name for name, _ in one.named_parameters()]
    assert any(name.startswith("qeq_readout.") for name in names) and any("charge_embedding" in n for n in names)
    for (name, a), b in zip(one.named_parameters(), two.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12, msg=f"parameter {name} differs")
    one_buffers, two_buffers = dict(one.named_buffers()), dict(two.named_buffers())
    for name in ("energy_floor.running_minimum", "contact_wall.closest_contact"):
        assert torch.isfinite(one_buffers[name]).any(), name
        torch.testing.assert_close(two_buffers[name], one_buffers[name], rtol=1e-10, atol=1e-12,
                                   msg=f"buffer {name} differs")
    assert not torch.equal(one.qeq_readout.electronegativity_offset, torch.zeros_like(one.qeq_readout.electronegativity_offset))
