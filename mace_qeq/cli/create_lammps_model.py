"""``mace_qeq_create_lammps_model``: a MACEQEq model for LAMMPS ``pair_style mace no_domain_decomposition``.

    mace_qeq_create_lammps_model my.model --total_charge 1 --pbc T T T
    # LAMMPS:  atom_modify map yes
    #          pair_style  mace no_domain_decomposition
    #          pair_coeff  * * my.model-lammps.pt Na Cl

writes ``<model>-lammps.pt``, as ``mace_create_lammps_model`` does, with the
system's total charge (e) and periodicity fixed in it (pair_style mace passes
neither). The model refuses ghost atoms, i.e. pair_style mace without
``no_domain_decomposition``. ``--format mliap`` is refused: ML-IAP hands the
model pair vectors only, and a global charge equilibration needs the
positions and the box.
"""

import argparse
import sys
from typing import List, Optional

import mace  # noqa: F401  (before e3nn)
import torch

from mace_qeq.calculators.lammps_export import export_for_lammps

FLAGS = {"t": True, "true": True, "1": True, "f": False, "false": False, "0": False}


def periodicity(text: str) -> bool:
    if text.lower() not in FLAGS:
        raise argparse.ArgumentTypeError(f"a periodicity flag is T or F; got {text!r}")
    return FLAGS[text.lower()]


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_path", help="a trained MACEQEq .model")
    parser.add_argument("--total_charge", type=float, default=0.0, help="total charge of the system (e)")
    parser.add_argument("--pbc", type=periodicity, nargs=3, default=[True, True, True], metavar=("X", "Y", "Z"),
                        help="periodicity: T T T (boundary p p p) or F F F (boundary f f f)")
    parser.add_argument("--head", default=None, help="head of a multihead model (default: the last)")
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--format", choices=["libtorch", "mliap"], default="libtorch")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.format == "mliap":
        parser.error("--format mliap cannot carry MACEQEq: ML-IAP gives the model pair vectors only, and the "
                     "charge equilibration needs positions, box and every atom; use the libtorch format with "
                     "'pair_style mace no_domain_decomposition'")
    model = torch.load(args.model_path, map_location="cpu", weights_only=False)
    if not hasattr(model, "charge_equilibration"):
        parser.error(f"{args.model_path} is not a MACEQEq model: use mace_create_lammps_model for plain MACE")
    if args.head is not None and args.head not in model.heads:
        parser.error(f"head {args.head!r} is not one of the model's heads {list(model.heads)}")
    model = model.double() if args.dtype == "float64" else model.float()
    exported = export_for_lammps(model, args.total_charge, args.pbc, args.head)
    output = args.model_path + "-lammps.pt"
    exported.save(output)
    print(f"wrote {output}: total charge {args.total_charge:+g} e, pbc {['F', 'T'][args.pbc[0]]} "
          f"{['F', 'T'][args.pbc[1]]} {['F', 'T'][args.pbc[2]]}, head {args.head or model.heads[-1]}, {args.dtype}")


if __name__ == "__main__":
    main()
