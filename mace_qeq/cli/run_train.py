"""``mace_qeq_run_train``: mace's ``mace_run_train`` with MACEQEq registered.

Every ``mace_run_train`` flag works unchanged (including ``--config file.yaml``).
Added: ``--model MACEQEq`` (the default here), ``--loss qeq`` (default),
``--error_table QEqRMSE`` (default) and the options below. The dipole key
defaults to ``REF_dipole`` (mace's default is ``dipole``).
"""

import argparse
import json
import sys
from typing import List, Optional

import mace  # noqa: F401  (before e3nn)
from mace import tools
from mace.cli import run_train as mace_run_train

from mace_qeq.training.hooks import ERROR_TABLE, LOSS_NAME, MODEL_NAME, register


def _extend_choices(parser: argparse.ArgumentParser, option: str, value: str) -> None:
    for action in parser._actions:  # pylint: disable=protected-access
        if option in action.option_strings and action.choices is not None and value not in action.choices:
            action.choices = list(action.choices) + [value]


def _widths(text: str):
    """--qeq_sigma '{"Na": 1.0, "Cl": 1.2}' or '{"11": 1.0}' → {Z: σ}."""
    from ase.data import atomic_numbers

    raw = json.loads(text)
    if not isinstance(raw, dict):
        raise argparse.ArgumentTypeError("--qeq_sigma takes a JSON object {element: width in Å}")
    return {int(k) if str(k).isdigit() else atomic_numbers[k]: float(v) for k, v in raw.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = tools.build_default_arg_parser()
    _extend_choices(parser, "--model", MODEL_NAME)
    _extend_choices(parser, "--loss", LOSS_NAME)
    _extend_choices(parser, "--error_table", ERROR_TABLE)
    group = parser.add_argument_group("mace-qeq (charge equilibration)")
    group.add_argument("--qeq_sigma", type=_widths, default=None,
                       help='Gaussian charge width per element in Å, JSON, e.g. \'{"Na": 1.0, "Cl": 1.2}\'; '
                            "elements not given use their covalent radius (default: all covalent radii)")
    group.add_argument("--qeq_learnable_sigma", action="store_true", help="train the Gaussian widths")
    group.add_argument("--qeq_hardness", choices=["element", "environment"], default="element",
                       help="hardness J per element, or per element plus a readout of the environment")
    group.add_argument("--qeq_energy", choices=["qeq", "coulomb"], default="qeq",
                       help="add E_QEq(q*) (NequIP-LR, default) or only the Coulomb energy (4G-HDNNP)")
    group.add_argument("--qeq_charge_feedback", action="store_true",
                       help="feed the equilibrated charges into the last interaction layer")
    group.add_argument("--qeq_accuracy", type=float, default=1e-8, help="Ewald truncation tolerance")
    group.add_argument("--charges_weight", type=float, default=10.0, help="weight of the REF_charges loss term")
    group.add_argument("--swa_charges_weight", type=float, default=10.0,
                       help="weight of the REF_charges loss term in Stage Two")
    parser.set_defaults(model=MODEL_NAME, loss=LOSS_NAME, error_table=ERROR_TABLE, dipole_key="REF_dipole")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    args.qeq_user_loss = args.loss  # multihead fine-tuning overwrites args.loss later
    register()
    mace_run_train.run(args)


if __name__ == "__main__":
    main()
