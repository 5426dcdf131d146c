"""All the places where mace-torch 0.3.16's ``run_train`` must learn about MACEQEq.

mace has no plugin registry: names are looked up by ``if/elif`` chains, and
several paths fall back silently (an unknown loss becomes energy+forces, Stage
Two and multihead fine-tuning replace the loss, the optimizer only sees the
sub-modules it knows, a failed TorchScript compile is swallowed). ``register()``
replaces exactly these look-ups, each where mace reads it at call time:

| hook | target | without it |
|---|---|---|
| model | ``mace.cli.run_train.configure_model`` | ``--model MACEQEq`` is unknown; fine-tuning cannot load a foundation into it |
| loss | ``mace.cli.run_train.get_loss_fn`` | ``--loss qeq`` silently becomes energy+forces; multihead FT forces "universal" |
| stage two | ``mace.cli.run_train.get_swa`` | SWA/Stage Two silently drops the charge and dipole terms |
| optimizer | ``mace.cli.run_train.get_params_options`` | the χ/J heads are never trained |
| config | ``mace.tools.scripts_utils.extract_config_mace_model`` (and its by-name copies) | config.yaml, compile mode and head removal fail for MACEQEq |
| head removal | ``mace.tools.scripts_utils.remove_pt_head`` (and ``mace.cli.select_head``'s copy) | the χ/J readout keeps every head and does not load |
| metrics | ``mace.tools.train.MACELoss``, ``valid_err_log``, ``mace.cli.run_train.create_error_table`` | no charge or dipole errors in the logs and tables |
| processes | ``mace.cli.run_train.init_distributed``, ``mace.cli.run_train.DDP`` | ``--distributed`` on CPU opens no process group and DDP refuses the CPU model |
| offsets | ``mace.tools.train`` (the function ``run_train`` calls) | no refit of the energy offsets after training (see ``offset_refit``) |

``patches/mace-torch-0.3.16-plugin-registry.patch`` proposes the registry
upstream that would make this module unnecessary.
"""

import contextlib
import importlib
import logging
from typing import Any, Dict, List, NamedTuple, Optional

import mace.cli.run_train as run_train
import mace.cli.select_head as select_head
import mace.tools.model_script_utils as model_script_utils
import mace.tools.scripts_utils as scripts_utils
import numpy as np
import torch
from ase.data import covalent_radii

from mace.modules import ScaleShiftMACE

from mace_qeq.modules.models import QEQ_OPTIONS, MACEQEq

from .distributed import distributed_data_parallel, open_cpu_process_group
from .element_fit import ElementBaseline, fit_element_baseline, log_baseline, sample_training_set
from .loss import WeightedEnergyForcesChargesDipoleLoss
from .metrics import QEqMetrics
from .offset_refit import OffsetRefit, log_refit, refit_energy_offsets

# mace.tools re-exports a *function* named ``train`` that shadows the module.
mace_train = importlib.import_module("mace.tools.train")
mace_tools = importlib.import_module("mace.tools")

MODEL_NAME = "MACEQEq"
LOSS_NAME = "qeq"
ERROR_TABLE = "QEqRMSE"

_original: Dict[str, Any] = {}


def _remember(name: str, value: Any) -> Any:
    return _original.setdefault(name, value)


# ---------------------------------------------------------------- model and config


def qeq_options_from_args(args) -> Dict[str, Any]:
    """MACEQEq's constructor options from the command line (``--qeq_*``)."""
    options = dict(QEQ_OPTIONS)
    for key in options:
        if getattr(args, key, None) is not None:
            options[key] = getattr(args, key)
    return options


def element_widths(sigma, atomic_numbers) -> List[float]:
    """σ_Z (Å) of each element from ``--qeq_sigma`` (a {Z: σ} mapping, a list, or None); covalent radii otherwise."""
    if sigma is None:
        sigma = {}
    if isinstance(sigma, dict):
        return [float(sigma.get(int(z), covalent_radii[int(z)])) for z in atomic_numbers]
    return [float(s) for s in sigma]


def to_maceqeq(backbone: torch.nn.Module, options: Dict[str, Any]) -> MACEQEq:
    """A MACEQEq carrying every weight of a ScaleShiftMACE ``backbone``; the new
    χ/J heads (and charge embedding) keep their initialisation. ``qeq_sigma``
    may be a {Z: σ} mapping; elements it omits get their covalent radius."""
    config = _original["extract_config_mace_model"](backbone)
    if "error" in config:
        raise TypeError(f"cannot build MACEQEq on a {backbone.__class__.__name__}: {config['error']}")
    options = dict(options)
    options["qeq_sigma"] = element_widths(options["qeq_sigma"], config["atomic_numbers"])
    model = MACEQEq(**config, **options)
    model.to(next(backbone.parameters()).dtype)
    missing, unexpected = model.load_state_dict(backbone.state_dict(), strict=False)
    new = ("qeq_readout.", "gaussian_widths.", "charge_embedding.", "charge_equilibration.", "energy_floor.",
           "contact_wall.")
    if unexpected or any(not key.startswith(new) for key in missing):
        raise RuntimeError(f"backbone weights do not fit MACEQEq: missing {missing}, unexpected {unexpected}")
    return model


def configure_model(args, train_loader, atomic_energies, model_foundation=None, heads=None, z_table=None,
                    head_configs=None):
    if getattr(args, "pair_repulsion", False) is None:  # the plugin's default: ZBL for MACEQEq only
        args.pair_repulsion = args.model == MODEL_NAME
    if args.model != MODEL_NAME:
        return _original["configure_model"](
            args, train_loader, atomic_energies, model_foundation, heads, z_table, head_configs
        )
    options = qeq_options_from_args(args)
    fit = None
    if getattr(args, "qeq_fit_elements", True):
        fit = fit_elements(args, train_loader, atomic_energies, heads, z_table, head_configs, options)
        atomic_energies = fit.atomic_energies.numpy().reshape(np.shape(atomic_energies))
        options["qeq_sigma"] = {int(z): width for z, width in zip(z_table.zs, fit.widths)}
    # Let mace build (and, with --foundation_model, load) the plain MACE backbone
    # exactly as for --model MACE, then add the electrostatics on top.
    args.model = "MACE"
    try:
        backbone, output_args = _original["configure_model"](
            args, train_loader, atomic_energies, model_foundation, heads, z_table, head_configs
        )
    finally:
        args.model = MODEL_NAME
    model = to_maceqeq(backbone, options)
    if fit is not None:
        model.qeq_readout.set_element_values(fit.electronegativity, fit.hardness)
    if getattr(args, "qeq_refit_offsets", True):
        _offset_refits[id(model)] = OffsetRefitPlan(fitted_e0_heads(args, heads, head_configs),
                                                    _pt_head_index(heads), args.batch_size, args.seed)
    if _user_loss(args) == LOSS_NAME:
        output_args["stress"] = bool(args.compute_stress)
        output_args["dipoles"] = True
    logging.info(f"MACEQEq electrostatics: {model.qeq_options()}")
    return model, output_args


def fitted_e0_heads(args, heads, head_configs) -> List[bool]:
    """For each head: are its E0s fitted to the training data (``--E0s average``), so that the plugin may
    fit them too? E0s a user gave (isolated atoms, a dict, a foundation model's) stay as they are."""
    heads = list(heads or ["Default"])
    settings = [getattr(c, "E0s", None) for c in head_configs] if head_configs else [args.E0s] * len(heads)
    return ([isinstance(e, str) and e.lower() == "average" for e in settings] + [False] * len(heads))[: len(heads)]


def _pt_head_index(heads) -> List[int]:
    return [list(heads).index("pt_head")] if heads and "pt_head" in heads else []


def fit_elements(args, train_loader, atomic_energies, heads, z_table, head_configs, options) -> ElementBaseline:
    """χ_Z, J_Z and (for heads with ``--E0s average``) E0_Z fitted to the training set (see ``element_fit``)."""
    energies = torch.as_tensor(np.atleast_2d(np.asarray(atomic_energies, dtype=float)))
    free = fitted_e0_heads(args, heads, head_configs)
    sample = sample_training_set(train_loader.dataset, skip_heads=_pt_head_index(heads), seed=args.seed)
    # w_q of the fit is --charges_weight against an energy weight of 1, whatever --energy_weight: the fit made
    # before MACEQEq's energy weight became 100. Scaled by 1/100 with it, the Na/Cl rods' fit took σ to the
    # covalent radii and J to 8.5 / 7.7 eV/e², and the trained model's test errors on the Q = ±2 rods to
    # 28 / 21 meV/atom against 6.7 / 4.1 (on the Na/Cl clusters' unseen groups it was the better one: README,
    # "What the energy weight bought")
    charges_weight = args.charges_weight if _user_loss(args) == LOSS_NAME else 0.0
    fit = fit_element_baseline(sample, element_widths(options["qeq_sigma"], z_table.zs), energies,
                               free[: energies.shape[0]], options["qeq_minimum_hardness"], charges_weight,
                               largest_width=0.5 * float(args.r_max) if options["qeq_sigma"] is None else None,
                               largest_hardness=getattr(args, "qeq_fit_largest_hardness", 20.0) or None)
    log_baseline(fit, z_table.zs)
    return fit


class _BackboneView:
    """Shows a MACEQEq to mace's ``extract_config_mace_model`` as the ScaleShiftMACE it extends."""

    def __init__(self, model: MACEQEq):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)


_BackboneView.__name__ = "ScaleShiftMACE"


def extract_config_mace_model(model: torch.nn.Module) -> Dict[str, Any]:
    if isinstance(model, MACEQEq):
        config = _original["extract_config_mace_model"](_BackboneView(model))
        config.update(model.qeq_options())
        return config
    return _original["extract_config_mace_model"](model)


def remove_pt_head(model: torch.nn.Module, head_to_keep=None) -> torch.nn.Module:
    """A single-head model from a multihead one: mace's function for the backbone,
    the same slicing for the χ/J readout of the kept head."""
    if not isinstance(model, MACEQEq):
        return _original["remove_pt_head"](model, head_to_keep)
    heads = list(model.heads)
    if head_to_keep is None:
        head_to_keep = next((h for h in heads if h != "pt_head"), None)
    if head_to_keep not in heads or len(heads) < 2:
        raise ValueError(f"cannot keep head {head_to_keep!r} of a model with heads {heads}")
    index = heads.index(head_to_keep)
    config = {k: v for k, v in extract_config_mace_model(model).items() if k not in QEQ_OPTIONS}
    backbone = ScaleShiftMACE(**config).to(next(model.parameters()).dtype)
    backbone.load_state_dict(model.state_dict(), strict=False)
    single = to_maceqeq(_original["remove_pt_head"](backbone, head_to_keep), model.qeq_options())
    state = single.state_dict()
    n = len(heads)
    for name, value in model.qeq_readout.state_dict().items():
        if name.endswith("_offset"):  # [elements, heads]
            value = value[:, index : index + 1]
        elif name.endswith("linear_1.weight"):  # features → heads × hidden
            value = value.reshape(model.num_qeq_features, n, -1)[:, index, :].flatten()
        elif name.endswith("linear_2.weight"):  # heads × hidden → heads; e3nn normalises by √fan-in
            value = value.reshape(n, -1, n)[index, :, index].flatten() / n**0.5
        else:  # buffers (output masks) of the single-head layers stay as built
            continue
        state[f"qeq_readout.{name}"] = value
    for name, value in model.state_dict().items():  # head-independent: widths, charge embedding, contacts
        if name.startswith(("gaussian_widths.", "charge_embedding.", "contact_wall.")):
            state[name] = value
    if hasattr(model, "energy_floor"):  # [elements, heads]
        state["energy_floor.running_minimum"] = model.energy_floor.running_minimum[:, index : index + 1]
    single.load_state_dict(state)
    return single


# ---------------------------------------------------------------- loss and optimizer


def _user_loss(args) -> str:
    # Multihead fine-tuning overwrites args.loss with "universal" after parsing;
    # the CLI keeps the user's choice in args.qeq_user_loss.
    return getattr(args, "qeq_user_loss", None) or args.loss


def qeq_loss(args, prefix: str = "") -> WeightedEnergyForcesChargesDipoleLoss:
    weight = lambda name: getattr(args, f"{prefix}{name}")  # noqa: E731
    return WeightedEnergyForcesChargesDipoleLoss(
        energy_weight=weight("energy_weight"),
        forces_weight=weight("forces_weight"),
        stress_weight=weight("stress_weight") if args.compute_stress else 0.0,
        charges_weight=weight("charges_weight"),
        dipole_weight=weight("dipole_weight"),
    )


def get_loss_fn(args, dipole_only, compute_dipole):
    if _user_loss(args) == LOSS_NAME:
        return qeq_loss(args)
    return _original["get_loss_fn"](args, dipole_only, compute_dipole)


def get_swa(args, model, optimizer, swas, dipole_only=False):
    if _user_loss(args) != LOSS_NAME:
        return _original["get_swa"](args, model, optimizer, swas, dipole_only)
    loss = args.loss
    args.loss = "weighted"  # let mace build the SWA container, then put the QEq loss in it
    try:
        swa, swas = _original["get_swa"](args, model, optimizer, swas, dipole_only)
    finally:
        args.loss = loss
    swa.loss_fn = qeq_loss(args, prefix="swa_")
    logging.info(f"Stage Two loss function: {swa.loss_fn}")
    return swa, swas


def get_params_options(args, model):
    """mace's parameter groups, plus one group for every parameter it leaves out."""
    options = _original["get_params_options"](args, model)
    for group in options["params"]:
        group["params"] = list(group["params"])
    grouped = {id(p) for group in options["params"] for p in group["params"]}
    rest = [p for p in model.parameters() if id(p) not in grouped]
    if rest:
        options["params"].append({"name": "electrostatics", "params": rest, "weight_decay": 0.0, "lr": args.lr})
    return options


# ---------------------------------------------------------------- error reporting


def valid_err_log(valid_loss, eval_metrics, logger, log_errors, epoch=None, valid_loader_name="Default"):
    if log_errors != ERROR_TABLE:
        return _original["valid_err_log"](valid_loss, eval_metrics, logger, log_errors, epoch, valid_loader_name)
    _original["valid_err_log"](valid_loss, eval_metrics, logger, "PerAtomRMSE", epoch, valid_loader_name)
    logging.info(f"    head: {valid_loader_name}, {_charge_dipole_summary(eval_metrics)}")


def _charge_dipole_summary(metrics) -> str:
    q, mu = metrics.get("rmse_q"), metrics.get("rmse_dipole")
    q_text = "n/a" if q is None else f"{q * 1e3:8.2f} me"
    mu_text = "n/a" if mu is None else f"{mu * 1e3:8.2f} me·Å"
    return f"RMSE_Q={q_text}, RMSE_dipole={mu_text}"


def create_error_table(table_type, all_data_loaders, model, loss_fn, output_args, log_wandb, device,
                       distributed=False, skip_heads=None):
    if table_type != ERROR_TABLE:
        return _original["create_error_table"](
            table_type, all_data_loaders, model, loss_fn, output_args, log_wandb, device, distributed, skip_heads
        )
    from prettytable import PrettyTable

    table = PrettyTable()
    table.field_names = ["config_type", "RMSE E / meV / atom", "RMSE F / meV / A", "relative F RMSE %",
                         "RMSE Q / me", "RMSE dipole / me A"]
    skip_heads = skip_heads or []
    for name in sorted(all_data_loaders):
        if any(skip in name for skip in skip_heads):
            continue
        _, metrics = mace_train.evaluate(model, loss_fn=loss_fn, data_loader=all_data_loaders[name],
                                         output_args=output_args, device=device)
        fmt = lambda v: "n/a" if v is None else f"{v * 1e3:8.2f}"  # noqa: E731
        table.add_row([name, fmt(metrics["rmse_e_per_atom"]), fmt(metrics["rmse_f"]),
                       f"{metrics['rel_rmse_f']:8.2f}", fmt(metrics["rmse_q"]), fmt(metrics["rmse_dipole"])])
    return table


# ---------------------------------------------------------------- offsets after training


class OffsetRefitPlan(NamedTuple):
    """What the refit after training needs of the command line (see ``offset_refit``)."""

    free_heads: List[bool]  # heads whose E0s may be refitted
    skip_heads: List[int]  # heads left alone (a foundation model's replay head)
    batch_size: int
    seed: int

    def refit(self, model: MACEQEq, dataset, device) -> Optional[OffsetRefit]:
        """Refit ``model``'s energy offsets to ``dataset`` as this plan says (:func:`refit_energy_offsets`)."""
        return refit_energy_offsets(model, dataset, self.free_heads, self.batch_size, device,
                                    skip_heads=self.skip_heads, seed=self.seed)


#: Refits to do after training, by id of the model configure_model built (run_train trains one model).
_offset_refits: Dict[int, OffsetRefitPlan] = {}


def train(*args, **kwargs):
    """mace's training loop, then, for a MACEQEq, the refit of its energy offsets in the checkpoints that
    run_train loads next (the best Stage One model and, with SWA, the best Stage Two model). With SWA
    the offsets are also refitted as Stage Two starts (see :func:`refit_as_stage_two_starts`)."""
    model = kwargs["model"]
    plan = _offset_refits.pop(id(model), None)
    if plan is not None and isinstance(model, MACEQEq) and kwargs.get("swa") is not None:
        refit_as_stage_two_starts(kwargs["swa"], kwargs["train_loader"].dataset, plan, kwargs["device"])
    _original["train"](*args, **kwargs)
    handler = kwargs["checkpoint_handler"]
    state = mace_tools.CheckpointState(model, kwargs["optimizer"], kwargs["lr_scheduler"])
    distributed = kwargs.get("distributed", False)
    if kwargs.get("swa") is not None:
        stage_two_checkpoint_ensured(handler, state, kwargs)
    if plan is None or not isinstance(model, MACEQEq):
        return
    stages = [False] + ([True] if kwargs.get("swa") is not None else [])
    for swa in stages:
        # the file run_train loads next; the refit is written back to it (not re-named by its epoch)
        path = handler.io._get_latest_checkpoint_path(swa=swa)  # pylint: disable=protected-access
        if path is None:
            continue
        checkpoint, _ = handler.io.load(path, device=kwargs["device"])
        if distributed:
            torch.distributed.barrier()  # every rank has read the file before rank 0 overwrites it
        handler.builder.load_checkpoint(state=state, checkpoint=checkpoint, strict=False)
        refit = plan.refit(model, kwargs["train_loader"].dataset, kwargs["device"])
        log_refit(refit)
        if refit is not None and kwargs.get("rank", 0) == 0:
            torch.save(handler.builder.create_checkpoint(state), path)
    if distributed:
        torch.distributed.barrier()  # every rank loads the refitted checkpoint next


def stage_two_checkpoint_ensured(handler, state, kwargs) -> None:
    """Save the final weights as Stage Two's checkpoint where mace saved none.

    mace saves a Stage-Two checkpoint only at a validation inside Stage Two; with ``--eval_interval``
    longer than Stage Two there is none, and run_train then fails looking it up (``UnboundLocalError`` in
    mace 0.3.16's checkpoint lookup) after the whole training. The weights saved are the ones mace would
    have saved at the last epoch (EMA-averaged where EMA is on)."""
    paths = [handler.io._parse_checkpoint_path(p) for p in handler.io._list_file_paths()]  # pylint: disable=protected-access
    if any(info is not None and info.swa and info.tag == handler.io.tag for info in paths):
        return
    ema = kwargs.get("ema")
    if kwargs.get("rank", 0) == 0:
        logging.warning("No validation ran in Stage Two (--eval_interval %s): its final weights are saved as "
                        "the Stage Two checkpoint", kwargs.get("eval_interval"))
        with ema.average_parameters() if ema is not None else contextlib.nullcontext():
            handler.save(state=state, epochs=max(kwargs["max_num_epochs"] - 1, kwargs["swa"].start), keep_last=True)
    if kwargs.get("distributed", False):
        torch.distributed.barrier()  # every rank finds it next


def refit_as_stage_two_starts(swa, dataset, plan: OffsetRefitPlan, device) -> None:
    """Refit the energy offsets of the model being trained the moment Stage Two starts.

    Stage One's force-dominated loss lets the offsets drift (on LODE's dimers the training energy error is
    73 meV/atom at its end, 7 after the refit); Stage Two's energy weight then spends its first epochs
    pulling them back by gradient steps that move every weight and cost the forces. Set in closed form
    first, Stage Two starts from the right offsets and learns only what they cannot fix. mace's loop
    calls ``swa.model.update_parameters(model)`` with the live model at the top of each Stage Two epoch,
    before training: the first call refits, then averages as before.
    """
    averaged = swa.model
    update = averaged.update_parameters
    started = []

    def update_parameters(model):
        if not started:
            started.append(True)
            log_refit(plan.refit(model, dataset, device))
        update(model)

    averaged.update_parameters = update_parameters


# ---------------------------------------------------------------- several processes


def init_distributed(args):
    rank, local_rank, world_size = _original["init_distributed"](args)
    open_cpu_process_group(args)
    return rank, local_rank, world_size


# ---------------------------------------------------------------- registration


def register() -> None:
    """Install every hook (idempotent)."""
    replacements = [
        (run_train, "configure_model", configure_model),
        (run_train, "get_loss_fn", get_loss_fn),
        (run_train, "get_swa", get_swa),
        (run_train, "get_params_options", get_params_options),
        (run_train, "create_error_table", create_error_table),
        (scripts_utils, "extract_config_mace_model", extract_config_mace_model),
        (run_train, "extract_config_mace_model", extract_config_mace_model),
        (model_script_utils, "extract_config_mace_model", extract_config_mace_model),
        (scripts_utils, "remove_pt_head", remove_pt_head),
        (run_train, "remove_pt_head", remove_pt_head),
        (select_head, "remove_pt_head", remove_pt_head),
        (mace_train, "MACELoss", QEqMetrics),
        (mace_train, "valid_err_log", valid_err_log),
        (run_train, "init_distributed", init_distributed),
        (run_train, "DDP", distributed_data_parallel),
        (mace_tools, "train", train),
    ]
    for module, name, replacement in replacements:
        current = getattr(module, name)
        if current is not replacement:
            _remember(name, current)
            setattr(module, name, replacement)

