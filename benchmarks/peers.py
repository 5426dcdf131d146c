"""MACEQEq against the long-range models MACE ships, trained and evaluated alike.

    python benchmarks/peers.py --set ag3_same_geometry                  # the issue's budget (CPU: ~30 min)
    python benchmarks/peers.py --set all --quick                        # every set, smaller budget (CPU)
    python benchmarks/peers.py --set ag3_same_geometry --ablation       # also MACEQEq without each default
    python benchmarks/peers.py --set ag3_same_geometry --learning-curve 50 100 200 500 1000
    python benchmarks/peers.py --train my.xyz --test my_test.xyz --name mine --epochs 100   # your data
    python benchmarks/peers.py --train ag3_train.xyz --test ag3_test.xyz --name ag3   # a 4G-HDNNP DFT set
    python benchmarks/peers.py --set nacl_transfer                      # transfer to unseen charges and sizes
    python benchmarks/peers.py --set nacl_rods                          # ... where the local environments are known
    python benchmarks/peers.py --set carbon_chain --seeds 3 --models MACE+embedding MACEQEq   # seed spread
    python benchmarks/peers.py --set nacl_rods --seeds 3 --models PolarMACE --jobs 3   # ... three at a time
    python benchmarks/peers.py --set na9cl8 --sample 1                  # a new set of the same kind

Each model (MACE, MACE + total-charge embedding, MACELES if ``les`` is
installed, PolarMACE if ``graph-longrange`` is, MACEQEq with and without charge
labels) is trained by its
stock command line and its defaults (Stage Two for MACEQEq, none for mace's
models) with the same backbone (32x0e+32x1o, 2 layers, r_max 5 Å), batch,
learning rate, seed and number of epochs, on the same structures, and
evaluated by MACE's stock ``MACECalculator`` on the same held-out structures
(whole MD trajectories, see ``peer_models.split``). Writes
``results/peers_<set>.{json,md}`` and ``peers_<set>_parity.png`` (``--update``
keeps that figure and draws each row it reruns apart, in
``peers_<set>_parity_<model>.png``). A run that fails (e.g. out of memory) is
reported as such; a model whose package is missing is skipped, with a line
saying so. The peers' packages: ``pip install -e ".[peers]"`` (GFN2-xTB for the
sets, ``graph-longrange==0.4.0`` for PolarMACE) and, as ``les`` is not on the
package index, ``pip install --no-deps git+https://github.com/ChengUCB/les``.
Models already trained by the same command on the same data
are reused (``--retrain`` trains them again), so ``--ablation`` adds rows to a
set's table without retraining the rest.

Transfer: a set with groups training never has (``nacl_transfer``: trained on
Na/Cl clusters at Q = 0, ±1 of 7–8 atoms; tested also on Q = ±2 and on
27-atom clusters; ``nacl_rods``: trained on 7–16-atom rock-salt rods at
Q = 0, ±1, tested also on Q = ±2 and on 48-atom rods whose ions have the
coordinations training has) gets a second table, the energy and force errors of each
model on each unseen group next to its in-distribution errors, their split
into a constant offset per atom and the spread about it, and a model-free
table of what each group holds (``peer_models.group_environments``: the share
of atoms with a coordination no training atom has, the Coulomb energy of the
reference charges).

``--learning-curve N …`` trains MACEQEq and MACE + embedding (or ``--models``)
on N structures of the pool instead, with the set's epochs, and writes
``results/peers_<set>_learning_curve.{json,md,png}``.

``--seeds N`` trains each model (or ``--models``) with seeds 1 … N on the
set's training file and writes the mean and spread to
``results/peers_<set>_seeds.{json,md}`` (with ``--update``, beside the rows
already there).

``--sample K`` makes the set anew from other MD runs (independent sample K:
seeds from 10,000·K, so no trajectory is shared with the set the defaults were
developed on) and runs the same protocol on it, writing
``results/peers_<set>_sampleK.*``: whether a claim holds on data of the same
kind it was not tuned on.

``--jobs N`` trains N models (seeds, learning-curve points) at a time, each a
process with the cores shared out: the way to fill a machine that one
training does not (16 cores, a GPU); evaluation stays one at a time.

``--quick`` is every set's smoke test on a CPU: a set's whole table, every
model, in under 30 minutes on 2 cores, the data made included
(``DataSet.quick_budget``: at most 250 structures, a third of the epochs,
fewer on the periodic cells and the SPICE dipeptides; no PolarMACE, the
slowest; as many trainings at a time as the machine has cores, unless
``--jobs`` says otherwise). Its runs and tables are its own,
``peers_<set>_quick.*``, so it never overwrites a full-budget table. The
budgets of ``peer_models.SETS`` are the default; ``--epochs``/``--train-size``
scale them up on a GPU. Each table records the run's wall time and how much
of it went to making the data.
"""

import argparse
import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import ase.io
import numpy as np
import peer_models as pm
import torch

def run_set(name: str, args, models, budget) -> dict:
    started = time.perf_counter()
    pool, test, unseen = pm.load(name, args.sample) if args.train is None else (
        ase.io.read(args.train, ":"), ase.io.read(args.test, ":"), [])
    data_s = time.perf_counter() - started
    spec = pm.SETS.get(name, pm.DataSet(name, f"{args.train} / {args.test}", args.train_size or len(pool),
                                        args.epochs or 30, source="files"))
    train_size, epochs = budget(spec, len(pool))
    if args.sample:  # from here on the sample is a set of its own: its work folder and tables
        spec = replace(spec, description=f"{spec.description}; independent sample {args.sample} (its MD from seed "
                                         f"{args.sample * pm.SAMPLE_SEED_STRIDE}, no trajectory of the set's own)")
        name = f"{name}_sample{args.sample}"
    if args.quick:  # a budget of its own: its own runs and tables, never the full budget's
        spec = replace(spec, description=f"{spec.description}; `--quick` budget")
        name = f"{name}_quick"
    folder = args.work_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    if args.learning_curve:
        return learning_curve(name, spec, pool, test, folder, epochs, models, args)
    train_file = folder / f"train_{train_size}.xyz"
    ase.io.write(train_file, pm.subset(pool, train_size))
    if args.seeds > 1:
        return seed_spread(name, spec, train_file, test, folder, epochs, models, args)
    print(f"== {name}: {spec.description}; {train_size} training, {len(test)} test structures, {epochs} epochs",
          flush=True)
    runs, errors, by_trajectory, predictions = {}, {}, {}, {}
    trained = pm.train_all([training(model, train_file, folder / model.run_name, epochs, args) for model in models],
                           args.jobs)
    for model, run in zip(models, trained):
        runs[model.name] = run.__dict__
        prediction = pm.evaluate(run, test, args.device)
        if prediction is not None:
            predictions[model.name] = prediction
            errors[model.name] = pm.errors_by_type(prediction)
            by_trajectory[model.name] = pm.errors_by_trajectory(prediction, test)
        if prediction is not None and unseen:
            transfer = pm.evaluate(run, unseen, args.device)
            errors[model.name].update({f"unseen {k}": v for k, v in pm.errors_by_type(transfer).items()
                                       if k != "all"})
        summary = errors.get(model.name, {}).get("all", {})
        print(f"  {model.name:24s} {run.status:12s} {run.wall_s:7.0f} s  E "
              f"{pm.fmt(summary.get('energy_mev_per_atom'), 2)} meV/atom  F {pm.fmt(summary.get('forces_mev_per_a'))}"
              f" meV/Å  Q {pm.fmt(summary.get('charges_me'))} me", flush=True)
    hardware = pm.hardware(args.device, args.jobs)
    result = {"set": name, "description": spec.description, "train_structures": train_size,
              "test_structures": len(test), "test_split": spec.test_split, "epochs": epochs, "hardware": hardware,
              "geometry_shows_charge": spec.geometry_shows_charge, "runs": runs, "errors": errors,
              "commands": {model: args.command for model in runs},
              "hardware_by_model": {model: hardware for model in runs}}
    if any(by_trajectory.values()):
        result["errors_by_trajectory"] = by_trajectory
    if unseen:
        result["environments"] = pm.group_environments(pm.subset(pool, train_size), list(test) + list(unseen))
    if args.update:
        result = keep_earlier_rows(result, args.output / f"{table_stem(name, args)}.json")
    result["wall_s"] = {"all": time.perf_counter() - started, "data": data_s, "jobs": args.jobs}
    write(name, result, predictions, args)
    return result


def table_stem(name: str, args) -> str:
    """The file name, without suffix, of a set's peer table: ``peers_SET``, or ``peers_SET_TAG`` with ``--tag``."""
    return f"peers_{name}" + (f"_{args.tag}" if args.tag else "")


def keep_earlier_rows(result: dict, earlier_path) -> dict:
    """``result`` with the rows of the models it lacks taken from the earlier table at ``earlier_path``
    (same set, budget and protocol), each row keeping the command and the hardware that made it."""
    earlier = earlier_table(earlier_path, result, ("train_structures", "test_structures", "epochs"))
    command = earlier_command(earlier_path)
    merged = dict(result, runs={}, errors={}, errors_by_trajectory={}, commands={}, hardware_by_model={},
                  parity_figures={})
    for model in list(earlier["runs"]) + [m for m in result["runs"] if m not in earlier["runs"]]:
        source = result if model in result["runs"] else earlier
        merged["runs"][model] = source["runs"][model]
        for key in ("errors", "errors_by_trajectory"):  # a table older than the per-trajectory split lacks it
            if model in source.get(key, {}):
                merged[key][model] = source[key][model]
        merged["commands"][model] = source.get("commands", {}).get(model, command)
        merged["hardware_by_model"][model] = source.get("hardware_by_model", {}).get(model, source["hardware"])
        if source is earlier and model in earlier["errors"]:  # a table older than the key: its one figure
            figure = earlier.get("parity_figures", {}).get(model, f"{earlier_path.stem}_parity.png")
            merged["parity_figures"][model] = figure
    return merged


def earlier_table(earlier_path, result: dict, keys) -> dict:
    """The earlier table (JSON) at ``earlier_path`` that ``--update`` merges into; it must exist and agree
    with ``result`` on ``keys`` (the budget and protocol that make their rows comparable)."""
    if not earlier_path.exists():
        raise SystemExit(f"--update: there is no earlier table {earlier_path}")
    earlier = json.loads(earlier_path.read_text())
    for key in keys:
        if earlier[key] != result[key]:
            raise SystemExit(f"--update: {earlier_path} has {key} {earlier[key]}, this run {result[key]}")
    return earlier


def earlier_command(earlier_path) -> str:
    """The command named by the ``Command:`` line of an earlier table's markdown, for the tables written
    before each row kept its own command."""
    table = earlier_path.with_suffix(".md")
    found = re.search(r"Command: `([^`]*)`", table.read_text()) if table.exists() else None
    return found.group(1) if found else "an earlier run"


def training(model, train_file, folder, epochs, args, extra=()) -> dict:
    """The keyword arguments of :func:`peer_models.train` for one run of the benchmark."""
    return dict(model=model, train_file=train_file, folder=folder, epochs=epochs, device=args.device,
                extra=list(extra), memory_gb=args.memory_gb, reuse=not args.retrain)


def learning_curve(name, spec, pool, test, folder, epochs, models, args) -> dict:
    """Test errors of each model trained on each number of structures (the same subsets for every model)."""
    print(f"== {name}: learning curve, {args.learning_curve} training structures, {len(test)} test, {epochs} epochs",
          flush=True)
    for count in args.learning_curve:
        ase.io.write(folder / f"train_{count}.xyz", pm.subset(pool, count))
    points = [(model, count) for model in models for count in args.learning_curve]
    trained = pm.train_all([training(model, folder / f"train_{count}.xyz", folder / f"curve_{model.run_name}_{count}",
                                     epochs, args) for model, count in points], args.jobs)
    curve = {model.name: [] for model in models}
    for (model, count), run in zip(points, trained):
        prediction = pm.evaluate(run, test, args.device)
        point = {"train_structures": count, "wall_s": run.wall_s, "status": run.status}
        if prediction is not None:
            point.update(pm.errors_by_type(prediction)["all"])
        curve[model.name].append(point)
        print(f"  curve {model.name:16s} {count:5d}: E {pm.fmt(point.get('energy_mev_per_atom'), 2)} "
              f"F {pm.fmt(point.get('forces_mev_per_a'))}", flush=True)
    result = {"set": name, "description": spec.description, "test_structures": len(test),
              "test_split": spec.test_split, "epochs": epochs, "hardware": pm.hardware(args.device, args.jobs),
              "curve": curve}
    write_learning_curve(name, result, args)
    return result


def seed_spread(name, spec, train_file, test, folder, epochs, models, args) -> dict:
    """Overall test errors of each model trained with seeds 1 … ``args.seeds`` on the set's training file.

    The seed sets the initial weights, the validation split and the batch order, so the spread over
    seeds is the noise a single-seed difference between two models must exceed. Seed 1 is the main
    table's run (reused when it is there).
    """
    print(f"== {name}: seeds 1 … {args.seeds}, {len(test)} test structures, {epochs} epochs", flush=True)
    keys = ("energy_mev_per_atom", "forces_mev_per_a", "charges_me")
    runs = [(model, seed) for model in models for seed in range(1, args.seeds + 1)]
    folders = [folder / (model.run_name + ("" if seed == 1 else f"_seed{seed}")) for model, seed in runs]
    trained = pm.train_all([training(model, train_file, run_folder, epochs, args,
                                     extra=[] if seed == 1 else ["--seed", str(seed)])
                            for (model, seed), run_folder in zip(runs, folders)], args.jobs)
    spread = {model.name: [] for model in models}
    for (model, seed), run in zip(runs, trained):
        prediction = pm.evaluate(run, test, args.device)
        errors = pm.errors_by_type(prediction)["all"] if prediction is not None else {}
        spread[model.name].append({"seed": seed, "status": run.status, **{k: errors.get(k) for k in keys}})
        print(f"  {model.name:24s} seed {seed}: E {pm.fmt(errors.get('energy_mev_per_atom'), 2)} meV/atom  "
              f"F {pm.fmt(errors.get('forces_mev_per_a'))} meV/Å  ({run.status})", flush=True)
    result = {"set": name, "description": spec.description, "test_structures": len(test), "epochs": epochs,
              "hardware": pm.hardware(args.device, args.jobs), "seeds": spread,
              "commands": {model: args.command for model in spread}}
    stem = args.output / f"peers_{name}_seeds"
    if args.update:
        result = keep_earlier_seeds(result, stem.with_suffix(".json"))
    pm.write_json(stem.with_suffix(".json"), result)
    lines = [f"# Seed spread on {name}", "", f"{spec.description}.", "",
             f"The main table's protocol (`peers_{name}.md`) with seeds 1, 2, … (the seed sets the initial weights, "
             f"the validation split and the batch order; each row lists its seeds in order); {len(test)} test "
             f"structures, {epochs} epochs. "
             f"Hardware: {result['hardware']}.", "",
             "Test RMSE, mean ± standard deviation over seeds, and each seed's E meV/atom / F meV/Å:", "",
             "| model | E RMSE (meV/atom) | F RMSE (meV/Å) | per seed | command |", "|---|---:|---:|---|---|"]
    for model, rows in result["seeds"].items():
        each = ", ".join(f"{pm.fmt(r['energy_mev_per_atom'], 2)} / {pm.fmt(r['forces_mev_per_a'])}" for r in rows)
        lines.append(f"| {model} | {mean_and_spread(rows, 'energy_mev_per_atom', 2)} | "
                     f"{mean_and_spread(rows, 'forces_mev_per_a', 1)} | {each} | `{result['commands'][model]}` |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return result


def keep_earlier_seeds(result: dict, earlier_path) -> dict:
    """``result`` with the seed rows of the models it lacks taken from the earlier seed table at
    ``earlier_path`` (same set, test structures, epochs and hardware), in the order of
    :func:`keep_earlier_rows`, each row keeping the command that made it."""
    earlier = earlier_table(earlier_path, result, ("test_structures", "epochs", "hardware"))
    command = earlier_command(earlier_path)
    merged = dict(result, seeds={}, commands={})
    for model in list(earlier["seeds"]) + [m for m in result["seeds"] if m not in earlier["seeds"]]:
        source = result if model in result["seeds"] else earlier
        merged["seeds"][model] = source["seeds"][model]
        merged["commands"][model] = source.get("commands", {}).get(model, command)
    return merged


def mean_and_spread(rows, key: str, digits: int) -> str:
    """Mean ± sample standard deviation of ``key`` over seeds ("—" if a seed failed)."""
    values = [row[key] for row in rows]
    if any(v is None for v in values):
        return "—"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def write_learning_curve(name, result, args):
    from mace_qeq.analysis import learning_curve_plot

    stem = args.output / f"peers_{name}_learning_curve"
    pm.write_json(stem.with_suffix(".json"), result)
    learning_curve_plot(result["curve"], stem.with_suffix(".png"),
                        title=f"{name}: test error vs training structures")
    curve = result["curve"]
    lines = [f"# Learning curve on {name}", "", f"{result['description']}.", "",
             f"{result['test_structures']} test structures ({result['test_split']}), {result['epochs']} epochs, "
             f"the peer benchmark's backbone and settings; every model by its stock CLI with its defaults (Stage "
             f"Two for MACEQEq only), evaluated by the stock MACECalculator. Hardware: {result['hardware']}. "
             f"Command: `{args.command}`", "",
             "Test E RMSE meV/atom / F RMSE meV/Å:", "",
             "| training structures | " + " | ".join(curve) + " |", "|---:|" + "---:|" * len(curve)]
    for k, point in enumerate(next(iter(curve.values()))):
        cells = [f"{pm.fmt(c[k].get('energy_mev_per_atom'), 2)} / {pm.fmt(c[k].get('forces_mev_per_a'))}"
                 for c in curve.values()]
        lines.append(f"| {point['train_structures']} | " + " | ".join(cells) + " |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def commands_line(result, args) -> str:
    """The command of the table, or of each row where rows came from different runs (``--update``)."""
    commands = result.get("commands", {})
    if len(set(commands.values())) <= 1:
        return f"Command: `{args.command}`"
    return f"Rows from separate runs of the same protocol and data: {pm.rows_by_value(commands, '`')}."


def parity_line(result) -> str:
    """Which figure shows each row, where an update drew some rows apart from the table's figure."""
    figures = result.get("parity_figures", {})
    if len(set(figures.values())) <= 1:
        return ""
    return (f" Parity plots: {pm.rows_by_value(figures, '`')} (a row rerun by an update has a figure of its own; "
            "the table's figure may still show the earlier run of it).")


def hardware_line(result) -> str:
    """The hardware of the table, or of each row where rows ran on different hardware or threads (``--update``)."""
    hardware = result.get("hardware_by_model", {})
    if len(set(hardware.values())) <= 1:
        return f"Hardware: {result['hardware']}."
    return f"Hardware: {pm.rows_by_value(hardware)}."


def wall_time_line(result, args) -> list:
    """The paragraph saying how long the command that wrote the table took for this set (training ``--jobs``
    at a time), or none for a table written before it was kept."""
    wall = result.get("wall_s")
    if not wall:
        return []
    return [f"Wall time of {'the last' if args.update else 'this'} run: {wall['all'] / 60:.1f} min, of which "
            f"{wall['data'] / 60:.1f} making or reading the data; {wall['jobs']} training(s) at a time.", ""]


def write(name, result, predictions, args):
    from mace_qeq.analysis import parity_plots

    output = args.output
    stem = table_stem(name, args)
    table_figure = f"{stem}_parity.png"
    figures = result.setdefault("parity_figures", {})
    if args.update and (output / table_figure).exists():
        # an update keeps the table's figure, which shows rows it does not rerun, and draws each row it reruns
        for model, path in zip(predictions, parity_plots(predictions, args.work_dir / name, title=name)):
            figures[model] = f"{stem}_parity_{pm.MODELS[model].run_name}.png"
            path.replace(output / figures[model])
    elif predictions:  # the table's figure drawn anew shows this run's rows only
        for path in parity_plots(predictions, args.work_dir / name, title=name, combined=True):
            path.replace(output / table_figure)
        for model in [m for m, figure in figures.items() if figure == table_figure]:
            del figures[model]
        figures.update({model: table_figure for model in predictions})
    pm.write_json(output / f"{stem}.json", result)
    lines = [f"# Peers on {name}", "", f"{result['description']}.", "",
             f"{result['train_structures']} training and {result['test_structures']} test structures "
             f"({result['test_split']}), {result['epochs']} epochs, backbone 32x0e+32x1o / 2 layers / r_max 5 Å, "
             f"batch 16, lr 0.01, float64, seed 1, `--E0s average`; every model by its stock CLI with its defaults "
             f"(MACEQEq's include Stage Two; the others' do not), evaluated by the stock MACECalculator on the model "
             f"the CLI recommends (`NAME_stagetwo.model` where Stage Two ran). {hardware_line(result)} "
             + commands_line(result, args) + parity_line(result), "", *wall_time_line(result, args),
             "| model | E RMSE (meV/atom) | F RMSE (meV/Å) | Q RMSE (me) | dipole RMSE (me·Å) | train time (s) | status |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for model, run in result["runs"].items():
        e = result["errors"].get(model, {}).get("all", {})
        lines.append(f"| {model} | {pm.fmt(e.get('energy_mev_per_atom'), 2)} | {pm.fmt(e.get('forces_mev_per_a'))} | "
                     f"{pm.fmt(e.get('charges_me'))} | {pm.fmt(e.get('dipole_me_a'))} | {run['wall_s']:.0f} | "
                     f"{run['status']} |")
    for label, (energy, forces, charges) in pm.PUBLISHED.get(name, {}).items():
        lines.append(f"| {label} (published, the DFT set, its own split) | {pm.fmt(energy, 3)} | {pm.fmt(forces)} | "
                     f"{pm.fmt(charges, 3)} | — | — | — |")
    types = sorted({t for errors in result["errors"].values() for t in errors
                    if t != "all" and not t.startswith("unseen ")})
    unseen = sorted({t for errors in result["errors"].values() for t in errors if t.startswith("unseen ")})
    if unseen:
        lines += ["", "Transfer: trained on the in-distribution groups only; energy RMSE meV/atom (force meV/Å) on "
                  "the held-out in-distribution trajectories and on groups never in training:", "",
                  "| model | in distribution | " + " | ".join(t[len("unseen "):] for t in unseen) + " |",
                  "|---|---:|" + "---:|" * len(unseen)]
        for model, errors in result["errors"].items():
            cells = [f"{pm.fmt(errors[t]['energy_mev_per_atom'], 1)} ({pm.fmt(errors[t]['forces_mev_per_a'])})"
                     if t in errors else "—" for t in ["all"] + unseen]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines += ["", "The same energy errors split into a constant offset per atom (the mean signed error, which no "
                  "force sees) and the spread about it (the error of relative energies), offset / spread meV/atom:",
                  "", "| model | in distribution | " + " | ".join(t[len("unseen "):] for t in unseen) + " |",
                  "|---|---:|" + "---:|" * len(unseen)]
        for model, errors in result["errors"].items():
            cells = [f"{errors[t]['energy_offset_mev_per_atom']:+.1f} / {errors[t]['energy_spread_mev_per_atom']:.1f}"
                     if "energy_offset_mev_per_atom" in errors.get(t, {}) else "—" for t in ["all"] + unseen]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    if result.get("environments"):
        lines += ["", "What each group holds (model-free): the share of atoms whose D3 coordination number lies "
                  "outside the range of the training atoms of their element (local environments a short-range "
                  "model must extrapolate to), and the point-charge Coulomb energy of the reference charges "
                  "(the size of the long-range energy):", "",
                  "| group | atoms | new coordination | Coulomb (eV/atom) |", "|---|---:|---:|---:|"]
        for group, held in result["environments"].items():
            lines.append(f"| {group}{' (unseen)' if f'unseen {group}' in unseen else ''} | "
                         f"{held['atoms_per_structure']:.0f} | {100 * held['new_coordination']:.0f} % | "
                         f"{pm.fmt(held['coulomb_ev_per_atom'], 2)} |")
    if types:
        lines += ["", "Per configuration type, E meV/atom / F meV/Å:", ""]
        lines += energy_force_table(result["errors"], types)
    by_trajectory = result.get("errors_by_trajectory", {})
    groups = sorted({g for errors in by_trajectory.values() for g in errors}, key=lambda g: (int(g.split()[1]), g))
    if len(groups) > len(types):  # a type spread over several trajectories, or frames labelled at several charges
        lines += ["", "Per held-out MD trajectory (its frames at each total charge they carry), E meV/atom / F "
                  "meV/Å:", ""]
        lines += energy_force_table(by_trajectory, groups)
    (output / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def energy_force_table(errors_by_model: dict, groups) -> list:
    """Markdown lines of a table with a row per model and its E meV/atom / F meV/Å in each of ``groups``
    ("—" where a model has no structure of a group)."""
    lines = ["| model | " + " | ".join(groups) + " |", "|---|" + "---:|" * len(groups)]
    for model, errors in errors_by_model.items():
        cells = [f"{pm.fmt(errors[g]['energy_mev_per_atom'], 2)} / {pm.fmt(errors[g]['forces_mev_per_a'])}"
                 if g in errors else "—" for g in groups]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def shown_arguments(argv) -> list:
    """The command line without where this machine keeps its files (``--work-dir``, ``--output`` and their
    values, given as ``--flag value`` or ``--flag=value``)."""
    shown, skip = [], False
    for argument in argv:
        if skip:
            skip = False
        elif argument in ("--work-dir", "--output"):
            skip = True
        elif not argument.startswith(("--work-dir=", "--output=")):
            shown.append(argument)
    return shown


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", nargs="+", default=None, help=f"sets: {', '.join(pm.SETS)}, or all")
    parser.add_argument("--train", type=Path, help="your training file (with --test and --name)")
    parser.add_argument("--test", type=Path)
    parser.add_argument("--name", default="custom")
    parser.add_argument("--models", nargs="+", default=None,
                        help=f"from {list(pm.MODELS)} (default: every peer and MACEQEq)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a set's table in under 30 min on a 2-core CPU: at most {pm.QUICK_TRAIN} structures, a "
                             "third of the epochs, no PolarMACE, one training per core; tables peers_SET_quick.*")
    parser.add_argument("--epochs", type=int, help="override the set's epochs")
    parser.add_argument("--train-size", type=int, help="override the set's training structures")
    parser.add_argument("--learning-curve", type=int, nargs="*", default=[],
                        help="training-set sizes: the learning curve of MACEQEq and MACE + embedding instead")
    parser.add_argument("--seeds", type=int, default=1,
                        help="train each model with seeds 1 … N instead and tabulate the spread over seeds")
    parser.add_argument("--jobs", type=int, default=None,
                        help="trainings run at a time, each a process with the cores shared out (OMP_NUM_THREADS "
                             "overrides): seeds, ablations or learning-curve points in 1/N of the wall time "
                             "(default 1; with --quick one per core, at most one per model)")
    parser.add_argument("--retrain", action="store_true", help="train again models already trained alike")
    parser.add_argument("--ablation", action="store_true",
                        help=f"also MACEQEq with each default switched off: {', '.join(pm.ABLATIONS)}")
    parser.add_argument("--update", action="store_true",
                        help="replace only the rows of the models run now in the existing peers_SET table, or "
                             "peers_SET_seeds with --seeds (the others keep their numbers and the command that "
                             "made them)")
    parser.add_argument("--tag", help="write peers_SET_TAG.* instead of peers_SET.* (an ablation, a budget or "
                                      "the candidates of peer_models.VARIANTS beside the main table); with "
                                      "--update, merge into that table")
    parser.add_argument("--sample", type=int, default=0,
                        help="independent sample K ≥ 1 of a generated set: the same kind of data from other MD "
                             "runs, trained and tested alike (peers_SET_sampleK.*), to check a claim on data "
                             "it was not developed on")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--memory-gb", type=float, default=16.0, help="a CPU run above this is out of memory")
    parser.add_argument("--work-dir", type=Path, default=pm.WORK / "peers")
    parser.add_argument("--output", type=Path, default=pm.RESULTS)
    args = parser.parse_args()
    args.command = "python benchmarks/peers.py " + " ".join(shown_arguments(__import__("sys").argv[1:]))
    if (args.set is None) == (args.train is None):
        parser.error("give --set, or --train and --test")
    if args.sample < 0 or (args.sample and args.train):
        parser.error("--sample is a number ≥ 1 and goes with --set (a generated set)")
    names = [args.name] if args.train else (list(pm.SETS) if args.set == ["all"] else args.set)
    for name in names:
        if args.train is None and name not in pm.SETS:
            parser.error(f"unknown set {name!r}; choose from {list(pm.SETS)}")
    peers = [m for m in pm.PEERS if not (args.quick and m == "PolarMACE")]
    if args.learning_curve:
        peers = ["MACEQEq", "MACE+embedding"]
    chosen = args.models or peers + (list(pm.ABLATIONS) if args.ablation else [])
    models = []
    for name in chosen:
        if name not in pm.MODELS:
            parser.error(f"unknown model {name!r}; choose from {list(pm.MODELS)}")
        model = pm.MODELS[name]
        if not pm.available(model):
            print(f"{name}: skipped, its package '{model.needs}' is not installed", flush=True)
            continue
        models.append(model)
    if args.jobs is None:
        args.jobs = max(1, min(len(models), os.cpu_count() or 1)) if args.quick else 1

    def budget(spec, pool_size):
        train, epochs = spec.quick_budget() if args.quick else (spec.train, spec.epochs)
        train = min(args.train_size or train, pool_size)
        return train, args.epochs or epochs

    args.output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for name in names:
        run_set(name, args, models, budget)
    print(f"done in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
