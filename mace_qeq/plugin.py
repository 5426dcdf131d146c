"""The mace-qeq plugin: what ``mace_run_train`` needs to train MACEQEq.

Used by ``mace_qeq_run_train`` and, once mace-torch carries the plugin
mechanism of ``patches/mace-torch-0.3.16-plugin-registry.patch``, by stock
``mace_run_train`` through the ``mace.plugins`` entry point.
"""

import argparse
import json

from mace.tools.arg_parser import str2bool

from mace_qeq.training.hooks import ERROR_TABLE, LOSS_NAME, MODEL_NAME, register

#: The energy weight of the loss before Stage Two (the forces' is mace's 100). mace's 1 leaves the energy
#: offsets between sizes, charge states and basins, which no force sets, to Stage Two, whose energy weight of
#: 1000 then costs the forces: on the GFN2-xTB Na/Cl rods (``benchmarks/peers.py --set nacl_rods``) the
#: validation energy error before Stage Two was 49 meV/atom (a constant per group growing with size) and
#: Stage Two took the validation forces from 64 to 75 meV/Å; with 100 it is 14 meV/atom before Stage Two and
#: Stage Two ends at 3.2 meV/atom and 63 meV/Å. Measured with 1, 10 and 100 (README, "What the energy weight
#: bought").
MACEQEQ_ENERGY_WEIGHT = 100.0
MACE_ENERGY_WEIGHT = 1.0  # mace's default
MACE_STAGE_TWO_DIPOLE_WEIGHT = 1.0  # mace's default


def _extend_choices(parser: argparse.ArgumentParser, option: str, value: str) -> None:
    for action in parser._actions:  # pylint: disable=protected-access
        if option in action.option_strings and action.choices is not None and value not in action.choices:
            action.choices = list(action.choices) + [value]


def _widths(text: str):
    """--qeq_sigma '{"Na": 1.0, "Cl": 1.2}' or '{"11": 1.0}' → {Z: σ}."""
    from ase.data import atomic_numbers

    try:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError
        return {int(k) if str(k).isdigit() else atomic_numbers[k]: float(v) for k, v in raw.items()}
    except (ValueError, KeyError) as error:
        raise argparse.ArgumentTypeError(
            f"--qeq_sigma takes a JSON object {{element: width in Å}}, e.g. '{{\"Na\": 1.0}}'; got {text!r}"
        ) from error


def _default_by_model(parser: argparse.ArgumentParser, *flags: str, description: str, **kind) -> None:
    """Replace mace's ``flags`` (store_true unless ``kind`` gives ``type``) by ``flags [true|false]`` (or
    ``flags VALUE``); left unset (None), it is resolved per model or loss (``prepare_args`` or the model
    hook): MACEQEq's default for MACEQEq (or its qeq loss), mace's otherwise."""
    container = parser._optionals  # pylint: disable=protected-access
    handler = container.conflict_handler
    container.conflict_handler = "resolve"  # replaces mace's flags of the same names
    kind = kind or {"type": str2bool, "nargs": "?", "const": True}
    try:
        parser.add_argument(*flags, default=None, help=description, **kind)
    finally:
        container.conflict_handler = handler


def extend_parser(parser: argparse.ArgumentParser) -> None:
    """Add MACEQEq, the qeq loss, the QEqRMSE table and the --qeq_* options; install the hooks."""
    _default_by_model(parser, "--pair_repulsion",
                      description="ZBL pair repulsion at close contact; default: on for MACEQEq, off otherwise")
    _default_by_model(parser, "--swa", "--stage_two",
                      description="Stage Two: the last quarter of the epochs (--start_swa) at --swa_lr with the "
                                  "energy-heavy --swa_* loss weights, saved as NAME_stagetwo.model; default: on for "
                                  "MACEQEq (the energy offsets between charge states and between basins that no "
                                  "trajectory connects, which forces cannot set, are learned there) when it can "
                                  "start before the last epoch, off otherwise")
    _default_by_model(parser, "--energy_weight", type=float,
                      description="weight of the energy loss before Stage Two; default: "
                                  f"{MACEQEQ_ENERGY_WEIGHT:g} for MACEQEq (the energy offsets that forces cannot "
                                  "set are then learned before Stage Two, which no longer trades the forces for "
                                  "them), mace's 1 otherwise")
    _default_by_model(parser, "--swa_dipole_weight", "--stage_two_dipole_weight", type=float,
                      description="weight of the dipole loss in Stage Two; default: --dipole_weight with the qeq "
                                  "loss (so 0 keeps the dipoles out of Stage Two too), mace's "
                                  f"{MACE_STAGE_TWO_DIPOLE_WEIGHT:g} otherwise")
    _extend_choices(parser, "--model", MODEL_NAME)
    _extend_choices(parser, "--loss", LOSS_NAME)
    _extend_choices(parser, "--error_table", ERROR_TABLE)
    group = parser.add_argument_group("mace-qeq (charge equilibration)")
    group.add_argument("--qeq_sigma", type=_widths, default=None,
                       help='Gaussian charge width per element in Å, JSON, e.g. \'{"Na": 1.0, "Cl": 1.2}\'; '
                            "elements not given use their covalent radius (default: fitted with χ and J, between "
                            "the covalent radius and r_max/2; see --qeq_fit_elements)")
    group.add_argument("--qeq_learnable_sigma", action="store_true", help="train the Gaussian widths")
    group.add_argument("--qeq_hardness", choices=["element", "environment"], default="element",
                       help="hardness J per element, or per element plus a readout of the environment")
    group.add_argument("--qeq_energy", choices=["qeq", "coulomb"], default="qeq",
                       help="add E_QEq(q*) (NequIP-LR, default) or only the Coulomb energy (4G-HDNNP)")
    group.add_argument("--qeq_charge_feedback", type=str2bool, nargs="?", const=True, default=None,
                       help="feed the equilibrated charges into the last interaction layer "
                            "(default: on with 2 or more interactions)")
    group.add_argument("--qeq_accuracy", type=float, default=1e-8, help="Ewald truncation tolerance")
    group.add_argument("--qeq_charge_range", type=float, default=1.0,
                       help="Δq (e): the environment part of χ is bounded to ±Δq·J_Z around the element value, "
                            "so it moves a charge by about Δq at most (0: unbounded)")
    group.add_argument("--qeq_minimum_hardness", type=float, default=1.0, help="J_min > 0 (eV/e²)")
    group.add_argument("--qeq_energy_floor", type=float, default=5.0,
                       help="bound each atom's learned short-range energy at this margin (eV) below the lowest "
                            "value it takes in training (0: no bound)")
    group.add_argument("--qeq_universal_repulsion", type=str2bool, default=True,
                       help="with --pair_repulsion: ZBL with the universal screening length, zero beyond 0.75 of "
                            "the covalent-radius sum (no bond feels it), in eV (False: mace's ZBL, scaled like the "
                            "learned energy)")
    group.add_argument("--qeq_contact_wall", type=float, default=10.0,
                       help="stiffness κ (eV/Å³) of the wall κ (0.85 r₀ − r)³ below 0.85 of the closest approach "
                            "r₀ of each pair of elements in the training data, which keeps MD out of geometries "
                            "the data never came near (0: no wall)")
    group.add_argument("--qeq_fit_elements", type=str2bool, default=True,
                       help="fit per-element χ, J, Gaussian widths (unless --qeq_sigma gives them) and "
                            "'average' E0s to the training set before training")
    group.add_argument("--qeq_fit_largest_hardness", type=float, default=20.0,
                       help="J_max (eV/e²): the fitted J_Z stay ≤ J_max, saturating from ¾ J_max (0: no bound)")
    group.add_argument("--qeq_refit_offsets", type=str2bool, default=True,
                       help="refit the energy offsets forces cannot set (fitted E0s and a uniform χ shift, i.e. "
                            "c·Q) to the training energies by least squares, as Stage Two starts and after training")
    group.add_argument("--charges_weight", type=float, default=10.0, help="weight of the REF_charges loss term")
    group.add_argument("--swa_charges_weight", "--stage_two_charges_weight", type=float, default=None,
                       help="weight of the REF_charges loss term in Stage Two; default: --charges_weight (so 0, "
                            "training on energies and forces only, keeps the charges out of Stage Two too)")
    register()


def prepare_args(args: argparse.Namespace) -> None:
    """Resolve the per-model defaults mace reads before the model exists (Stage Two, its charge and dipole
    weights), and keep the user's loss: multihead fine-tuning overwrites ``args.loss`` inside ``run``."""
    if getattr(args, "swa", False) is None:  # on for MACEQEq when it can start before the last epoch
        start = args.start_swa if args.start_swa is not None else max(1, args.max_num_epochs // 4 * 3)
        args.swa = args.model == MODEL_NAME and start < args.max_num_epochs
    if getattr(args, "energy_weight", 1.0) is None:
        args.energy_weight = MACEQEQ_ENERGY_WEIGHT if args.model == MODEL_NAME else MACE_ENERGY_WEIGHT
    # Stage Two keeps the charge and dipole weights of Stage One unless given: a 0 there (no charge labels in
    # use) must not become a weight of 10 on REF_charges that the data may still carry.
    if getattr(args, "swa_charges_weight", 0.0) is None:
        args.swa_charges_weight = args.charges_weight
    if getattr(args, "swa_dipole_weight", 0.0) is None:
        args.swa_dipole_weight = args.dipole_weight if args.loss == LOSS_NAME else MACE_STAGE_TWO_DIPOLE_WEIGHT
    args.qeq_user_loss = args.loss
