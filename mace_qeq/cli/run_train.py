"""``mace_qeq_run_train``: mace's ``mace_run_train`` with the mace-qeq plugin loaded.

Every ``mace_run_train`` flag works unchanged (including ``--config file.yaml``).
Added: ``--model MACEQEq``, ``--loss qeq``, ``--error_table QEqRMSE`` (the
defaults here) and the ``--qeq_*`` options (``--help``). The dipole key
defaults to ``REF_dipole`` (mace's default is ``dipole``).
"""

import argparse
import sys
from typing import List, Optional

import mace  # noqa: F401  (before e3nn)
from mace import tools
from mace.cli import run_train as mace_run_train

from mace_qeq import plugin
from mace_qeq.training.hooks import ERROR_TABLE, LOSS_NAME, MODEL_NAME


def build_parser() -> argparse.ArgumentParser:
    parser = tools.build_default_arg_parser()
    plugin.extend_parser(parser)
    parser.set_defaults(model=MODEL_NAME, loss=LOSS_NAME, error_table=ERROR_TABLE, dipole_key="REF_dipole")
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    plugin.prepare_args(args)
    mace_run_train.run(args)


if __name__ == "__main__":
    main()
