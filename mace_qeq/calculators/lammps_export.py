"""MACEQEq for LAMMPS ``pair_style mace no_domain_decomposition`` (the libtorch route).

``pair_style mace`` hands the exported model positions, the box, the graph and a
local/ghost mask, but no periodicity and no total charge, and in its default
(domain-decomposition) mode a rank's own atoms plus ghost copies: a global
charge equilibration computed on those is silently wrong. The wrapper here

* carries the total charge Q (e) and the periodicity of the system, fixed at
  export (``mace_qeq_create_lammps_model --total_charge Q --pbc T T T``);
* refuses ghost atoms (any 0 in the local/ghost mask) with an error naming
  ``no_domain_decomposition``, the mode in which LAMMPS passes every atom
  once with its periodic images as edge shifts (one MPI rank);
* otherwise is MACE's ``LAMMPS_MACE``: the same call signature
  ``forward(data, local_or_ghost, compute_virials)`` and outputs, and the
  attributes ``atomic_numbers``, ``r_max``, ``num_interactions`` the C++ side reads.

TorchScript-compiled by :func:`export_for_lammps`; no mace-qeq is needed to load it.
"""

from typing import Dict, Optional, Sequence

import torch
from e3nn.util.jit import compile_mode
from mace.calculators.lammps_mace import LAMMPS_MACE
from torch import Tensor


@compile_mode("script")
class LAMMPS_MACEQEq(torch.nn.Module):
    """``LAMMPS_MACE`` with the total charge and periodicity baked in, and ghost atoms refused."""

    def __init__(self, model: torch.nn.Module, total_charge: float = 0.0,
                 pbc: Sequence[bool] = (True, True, True), head: Optional[str] = None):
        super().__init__()
        if len(pbc) != 3:
            raise ValueError(f"pbc needs three flags (x y z); got {list(pbc)}")
        if any(pbc) and not all(pbc):
            raise ValueError(f"pbc = {list(pbc)}: MACEQEq needs a system periodic in all three directions or none")
        dtype = next(model.parameters()).dtype
        self.lammps = LAMMPS_MACE(model, head=head) if head is not None else LAMMPS_MACE(model)
        self.register_buffer("atomic_numbers", model.atomic_numbers)
        self.register_buffer("r_max", model.r_max)
        self.register_buffer("num_interactions", model.num_interactions)
        self.register_buffer("total_charge", torch.tensor([float(total_charge)], dtype=dtype))
        self.register_buffer("pbc", torch.tensor([[bool(p) for p in pbc]]))

    def forward(self, data: Dict[str, Tensor], local_or_ghost: Tensor,
                compute_virials: bool = False) -> Dict[str, Optional[Tensor]]:
        if bool((local_or_ghost < 0.5).any()):
            raise ValueError(
                "pair_style mace passed ghost atoms (its domain-decomposition mode): MACEQEq's charge "
                "equilibration must see every atom once; use 'pair_style mace no_domain_decomposition' "
                "on one MPI rank"
            )
        data["total_charge"] = self.total_charge
        data["pbc"] = self.pbc
        return self.lammps(data, local_or_ghost, compute_virials)


def export_for_lammps(model: torch.nn.Module, total_charge: float = 0.0, pbc: Sequence[bool] = (True, True, True),
                      head: Optional[str] = None) -> torch.jit.ScriptModule:
    """The TorchScript module ``pair_style mace no_domain_decomposition`` loads."""
    from e3nn.util import jit

    return jit.compile(LAMMPS_MACEQEq(model, total_charge, pbc, head))
