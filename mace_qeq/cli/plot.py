"""``mace_qeq_plot``: parity plots and test errors of any trained model on any test file.

    mace_qeq_plot --model my.model --test test.xyz --output plots/

writes ``parity_<name>.png`` (energy, forces, charges coloured by element) and
prints the test errors; several ``--model`` paths are compared side by side.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from mace_qeq.analysis import evaluate_model, parity_plots, test_errors


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", required=True, help="trained .model file(s), MACE or MACEQEq")
    parser.add_argument("--test", required=True, help="extxyz with REF_energy, REF_forces (and REF_charges, ...)")
    parser.add_argument("--output", type=Path, default=Path("."))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    args.output.mkdir(parents=True, exist_ok=True)
    predictions = {Path(m).stem: evaluate_model(m, args.test, device=args.device) for m in args.model}
    errors = {name: test_errors(p).as_dict() for name, p in predictions.items()}
    for path in parity_plots(predictions, args.output):
        print(f"wrote {path}")
    print(json.dumps(errors, indent=2))


if __name__ == "__main__":
    main()
