"""MACEQEq's training epoch against plain MACE's: both stock training loops run in lockstep in one process.

    python benchmarks/training_step_cost.py                        # ~7 min on 2 CPU cores
    python benchmarks/training_step_cost.py --cases ag3_same_geometry

Why one process: the per-epoch ratios of ``training_throughput.py`` compare
two processes, and on a shared machine two processes run at different speeds
(single pairs of Ag3± trainings there spread from 0.73 to 0.95), so one pair's
ratio is mostly the draw of its two processes. Here each stock command
line (``mace_run_train --model MACE``; ``mace_qeq_run_train`` with charge and
dipole labels; the peer benchmark's backbone and budget, mace's defaults
otherwise, so validation every epoch) runs in this process up to mace's
training loop: data, E0s, model, element fit, loss, optimizer, scheduler and
Stage Two are built exactly as the command builds them. Then the two loops
advance together, on the training structures of ``training_throughput.py``:

* each training step is mace's own ``take_step`` (forward with forces, loss,
  backward, gradient clipping, optimizer step) with the loading of its batch,
  of MACE and of MACEQEq in turn, the order alternating from step to step;
* each epoch ends with mace's ``evaluate`` on each model's validation set;
* Stage Two (on for MACEQEq by default) starts as mace's loop starts it; its
  one-off refit of the energy offsets is timed apart from the epochs;
* after the last epoch, the refits mace-qeq's hook runs once training ends
  (one per checkpoint run_train loads next) are timed as well.

A slow or fast moment of the machine falls on both loops alike. Reported per
case: seconds per epoch of each (steps and validation), the MACEQEq/MACE
throughput of each epoch (median over the epochs [smallest–largest]), the
refits (as Stage Two starts and after training), the throughput of the
whole training with every refit counted, and the pieces MACEQEq adds, timed
on its first training batch: the forward of the χ/J readout, of the charge
embedding, of ZBL, the contact wall and the energy floor (each also enters
the forces' backward and the loss's), and the electrostatic block whole
(QEq solve, its forces and the backward of both, from χ and J to the
positions).

Writes results/training_step_cost.{json,md}.
"""

import argparse
import contextlib
import importlib
import statistics
import sys
import time
from pathlib import Path
from typing import Dict
from unittest import mock

import ase.io
import peer_models as pm
import torch

from training_throughput import CASES


class _AtTheLoop(Exception):
    """Raised in place of mace's training loop once its arguments are captured."""


class _KeepingWhatIsPopped(dict):
    """A dict that keeps what is popped from it: the offset-refit plan mace-qeq's hook takes as training
    starts."""

    def __init__(self):
        super().__init__()
        self.popped = []

    def pop(self, key, *default):
        value = super().pop(key, *default)
        self.popped.append(value)
        return value


@contextlib.contextmanager
def stopped_at_the_training_loop():
    """mace's training loop, the one behind mace-qeq's hook on ``mace.tools.train``, replaced by a capture
    of its keyword arguments (yielded, filled when a command line reaches the loop), with the hook's
    offset-refit plan for after training as ``offset_refit_plan`` (None for a model without one)."""
    from mace_qeq.training import hooks

    hooks.register()
    captured: dict = {}
    plans = _KeepingWhatIsPopped()

    def capture(*args, **kwargs):
        captured.update(kwargs, offset_refit_plan=plans.popped[-1] if plans.popped else None)
        raise _AtTheLoop

    with mock.patch.dict(hooks._original, {"train": capture}), mock.patch.object(hooks, "_offset_refits", plans):
        yield captured


def training_setup(model: pm.Model, train_file: Path, folder: Path, epochs: int, extra=()) -> dict:
    """The arguments mace's training loop gets from ``model``'s stock command line, run here up to the loop."""
    argv = pm.command_line(model, train_file, folder, epochs, "cpu", ["--log_level", "WARNING", *extra])
    with stopped_at_the_training_loop() as captured:
        try:
            if model.command[0] == "mace_qeq_run_train":
                from mace_qeq.cli.run_train import main

                main(argv)
            else:
                from mace import tools
                from mace.cli.run_train import run

                run(tools.build_default_arg_parser().parse_args(argv))
        except _AtTheLoop:
            pass
    if not captured:
        raise RuntimeError(f"{model.name}: the command line ended without reaching mace's training loop")
    return dict(captured)


def lockstep(setups: Dict[str, dict], epochs: int) -> Dict[str, dict]:
    """Run mace's training loop of every setup (:func:`training_setup`) for ``epochs``, step by step in
    turn (module docstring); per setup, the seconds of each epoch's steps (with Stage Two's averaging of
    the weights) and validation, of the first Stage Two update (with MACEQEq's offset refit: once a
    training) and of the refits after training (:func:`refits_after_training`)."""
    loop = importlib.import_module("mace.tools.train")  # the module: mace.tools re-exports a function "train"
    names = list(setups)
    loss_fn = {name: setup["loss_fn"] for name, setup in setups.items()}
    valid_loss = {name: float("inf") for name in names}
    times = {name: {"steps_s": [0.0] * epochs, "validation_s": [0.0] * epochs, "stage_two_start_s": 0.0,
                    "after_training_s": 0.0} for name in names}
    for epoch in range(epochs):
        for name, setup in setups.items():  # the top of mace's epoch: scheduler, or Stage Two's SWA update
            swa, first = setup["swa"], setup["start_epoch"]
            if swa is None or epoch < swa.start:
                if epoch > first:
                    setup["lr_scheduler"].step(metrics=valid_loss[name])
                continue
            loss_fn[name] = swa.loss_fn
            start = time.perf_counter()
            swa.model.update_parameters(setup["model"])  # MACEQEq: with the offset refit, the first time
            elapsed = time.perf_counter() - start
            if epoch == max(swa.start, first):
                times[name]["stage_two_start_s"] = elapsed
            else:
                times[name]["steps_s"][epoch] += elapsed
            if epoch > first:
                swa.scheduler.step()
        batches = {name: iter(setup["train_loader"]) for name, setup in setups.items()}
        step = 0
        while batches:
            for name in (names if step % 2 == 0 else names[::-1]):
                if name not in batches:
                    continue
                setup = setups[name]
                start = time.perf_counter()
                batch = next(batches[name], None)
                if batch is None:
                    del batches[name]
                    continue
                loop.take_step(model=setup["model"], loss_fn=loss_fn[name], batch=batch, optimizer=setup["optimizer"],
                               ema=setup["ema"], output_args=setup["output_args"],
                               max_grad_norm=setup["max_grad_norm"], device=setup["device"])
                times[name]["steps_s"][epoch] += time.perf_counter() - start
            step += 1
        for name in (names if epoch % 2 == 0 else names[::-1]):
            setup = setups[name]
            if epoch % setup["eval_interval"] != 0:
                continue
            start = time.perf_counter()
            for loader in setup["valid_loaders"].values():
                valid_loss[name], _ = loop.evaluate(model=setup["model"], loss_fn=loss_fn[name], data_loader=loader,
                                                    output_args=setup["output_args"], device=setup["device"])
            times[name]["validation_s"][epoch] += time.perf_counter() - start
    for name, setup in setups.items():
        times[name]["after_training_s"] = refits_after_training(setup)
    return times


def refits_after_training(setup: dict) -> float:
    """Seconds of the offset refits mace-qeq's hook runs once training ends (``hooks.train``): one per
    checkpoint run_train loads next, Stage One's best and, with Stage Two, Stage Two's. Each refits the
    trained model itself, as the hook refits the model each checkpoint is loaded into (the reading and
    writing of the checkpoint files are not timed). 0 for a model without a refit plan (plain MACE, or
    ``--qeq_refit_offsets False``)."""
    plan = setup["offset_refit_plan"]
    if plan is None:
        return 0.0
    start = time.perf_counter()
    for _ in range(2 if setup["swa"] is not None else 1):
        plan.refit(setup["model"], setup["train_loader"].dataset, setup["device"])
    return time.perf_counter() - start


def milliseconds(call, repeats: int) -> float:
    """Median wall time of ``call()`` (ms) over 5 timings of ``repeats`` calls, after a warm-up."""
    for _ in range(max(1, repeats // 10)):
        call()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            call()
        times.append((time.perf_counter() - start) / repeats * 1e3)
    return statistics.median(times)


def piece_costs(model, batch, repeats: int) -> dict:
    """ms of each piece MACEQEq adds to a step, on ``batch`` (a dict; see the module docstring)."""
    from mace.modules.utils import get_edge_vectors_and_lengths

    positions = batch["positions"].clone().requires_grad_(True)
    _, lengths = get_edge_vectors_and_lengths(positions, batch["edge_index"], batch["shifts"])
    attrs, edges, graph = batch["node_attrs"], batch["edge_index"], batch["batch"]
    heads = torch.zeros(attrs.shape[0], dtype=torch.long)
    features = torch.randn(attrs.shape[0], model.num_qeq_features)
    node_features = torch.randn(attrs.shape[0], model.products[model.qeq_layer].linear.irreps_out.dim)
    with torch.no_grad():
        chi, hardness = model.qeq_readout(features, attrs, heads)
    sigma = model.gaussian_widths(attrs)
    cell = batch["cell"].view(-1, 3, 3)
    pbc = batch["pbc"].view(-1, 3).to(torch.bool)
    total_charge = batch["total_charge"].view(-1)

    def electrostatics():
        at = positions.detach().requires_grad_(True)
        x, j = chi.clone().requires_grad_(True), hardness.clone().requires_grad_(True)
        solution = model.charge_equilibration(at, x, j, sigma, total_charge, cell, pbc, graph, True, True)
        forces = -torch.autograd.grad(solution.energy.sum(), at, create_graph=True)[0]
        loss = (forces ** 2).mean() + (solution.energy ** 2).mean() + (solution.charges ** 2).mean()
        loss.backward()

    learned = torch.zeros(attrs.shape[0])  # a site energy at the floor's running minimum: above its bend
    if hasattr(model, "energy_floor"):
        learned = learned + torch.nan_to_num(model.energy_floor.running_minimum[:, 0], posinf=0.0)[attrs.argmax(1)]
    pieces = {
        "χ/J readout (forward)": lambda: model.qeq_readout(features, attrs, heads),
        "electrostatics (QEq solve, forces, backward)": electrostatics,
    }
    if hasattr(model, "charge_embedding"):
        pieces["charge embedding (forward)"] = lambda: model.charge_embedding(node_features, chi)
    if hasattr(model, "pair_repulsion"):
        pieces["ZBL (forward)"] = lambda: model.pair_repulsion_fn(lengths, attrs, edges, model.atomic_numbers)
    if hasattr(model, "contact_wall"):
        pieces["contact wall (forward)"] = lambda: model.contact_wall(lengths, attrs, edges, False)
    if hasattr(model, "energy_floor"):
        pieces["energy floor (forward)"] = lambda: model.energy_floor(learned, attrs, heads, False)
    return {name: milliseconds(call, repeats) for name, call in pieces.items()}


def summary(times: Dict[str, dict], baseline: str, model: str) -> dict:
    """Per-epoch seconds of each model, the per-epoch throughput ratio ``model``/``baseline`` (median
    [min, max] over the epochs), the one-off refits of ``model`` (as Stage Two starts, after training),
    and the throughput of the whole training with every refit counted (total time of ``baseline`` / total
    time of ``model``)."""
    per_epoch = {name: [s + v for s, v in zip(t["steps_s"], t["validation_s"])] for name, t in times.items()}
    ratios = [b / m for b, m in zip(per_epoch[baseline], per_epoch[model])]
    total = {name: sum(per_epoch[name]) + t["stage_two_start_s"] + t["after_training_s"]
             for name, t in times.items()}
    return {"seconds_per_epoch": {name: statistics.median(values) for name, values in per_epoch.items()},
            "ratio": {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)},
            "stage_two_start_s": times[model]["stage_two_start_s"],
            "after_training_s": times[model]["after_training_s"],
            "ratio_whole_training": total[baseline] / total[model]}


def markdown(result: dict) -> str:
    rows = result["rows"]
    names = list(dict.fromkeys(name for row in rows for name in row["pieces_ms"]))
    lines = ["# MACEQEq's training epoch against MACE's, both stock loops in lockstep in one process", "",
             f"Hardware: {result['hardware']}. {result['structures']} training structures a case, "
             f"{result['epochs']} epochs, validation every epoch, backbone 32x0e+32x1o / 2 layers / r_max 5 Å, "
             "float64; mace's take_step of each model in turn, the order alternating (see the script's "
             "docstring). Seconds per epoch: steps and validation, median over the epochs; throughput: MACE's "
             "time / MACEQEq's, median of the epochs [smallest–largest]; the offset refits, as Stage Two starts "
             "and after training (one per checkpoint run_train loads next, each a forward pass over the training "
             "set), are once a training, not in the epochs, but in the throughput of the whole training beside "
             "them. Pieces on the first training batch, ms a call (the forwards also enter the forces' backward "
             "and the loss's). "
             f"Command: `{result['command']}`", "",
             "| data | atoms a batch | MACE s/epoch | MACEQEq s/epoch | MACEQEq/MACE throughput | offset refits, "
             "as Stage Two starts + after training (s, once) | throughput of the whole "
             f"{result['epochs']}-epoch training with them | "
             + " | ".join(names) + " |",
             "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(names)]
    for row in rows:
        ratio = row["ratio"]
        cells = [pm.fmt(row["pieces_ms"].get(name), 2) for name in names]
        lines.append(f"| {row['case']} | {row['atoms_per_batch']} | {row['seconds_per_epoch']['MACE']:.2f} | "
                     f"{row['seconds_per_epoch']['MACEQEq']:.2f} | **{ratio['median']:.2f}** "
                     f"[{ratio['min']:.2f}–{ratio['max']:.2f}] | {row['stage_two_start_s']:.2f} + "
                     f"{row['after_training_s']:.2f} | {row['ratio_whole_training']:.2f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=[source for source, _ in CASES.values()],
                        default=["ag3_same_geometry", "carbon_chain", "na9cl8"], help="cluster cases to measure")
    parser.add_argument("--structures", type=int, default=256, help="training structures a case")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=200, help="calls per timing of a piece")
    parser.add_argument("--work-dir", type=Path, default=pm.WORK / "step_cost")
    parser.add_argument("--output", type=Path, default=pm.RESULTS)
    args = parser.parse_args()
    if "nacl_water" in args.cases:
        parser.error("the periodic case is timed by training_throughput.py only")
    rows = []
    for label, (source, batch_size) in CASES.items():
        if source not in args.cases:
            continue
        folder = args.work_dir / source
        folder.mkdir(parents=True, exist_ok=True)
        train_file = folder / "train.xyz"
        ase.io.write(train_file, pm.subset(pm.load(source)[0], args.structures))
        extra = ["--batch_size", str(batch_size)]
        setups = {name: training_setup(pm.MODELS[name], train_file, folder / name, args.epochs, extra)
                  for name in ("MACE", "MACEQEq")}
        times = lockstep(setups, args.epochs)
        model = setups["MACEQEq"]["model"]
        first = next(iter(setups["MACEQEq"]["train_loader"])).to_dict()
        row = {"case": label, "batch_size": batch_size, "atoms_per_batch": int(first["positions"].shape[0]),
               **summary(times, "MACE", "MACEQEq"), "epochs": times,
               "pieces_ms": piece_costs(model, first, args.repeats)}
        rows.append(row)
        print(f"{label}: MACE {row['seconds_per_epoch']['MACE']:.2f} s/epoch, MACEQEq "
              f"{row['seconds_per_epoch']['MACEQEq']:.2f} s/epoch, throughput {row['ratio']['median']:.3f} "
              f"[{row['ratio']['min']:.3f}–{row['ratio']['max']:.3f}], refits {row['stage_two_start_s']:.2f} + "
              f"{row['after_training_s']:.2f} s, whole training {row['ratio_whole_training']:.3f}; "
              + ", ".join(f"{k} {v:.2f} ms" for k, v in row["pieces_ms"].items()), flush=True)
    command = " ".join(["python benchmarks/training_step_cost.py", *sys.argv[1:]])
    result = {"hardware": pm.hardware("cpu"), "structures": args.structures, "epochs": args.epochs, "rows": rows,
              "command": command, "date": time.strftime("%Y-%m-%d")}
    pm.write_json(args.output / "training_step_cost.json", result)
    text = markdown(result)
    (args.output / "training_step_cost.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
