"""Where a MACEQEq training step spends the time that plain MACE's does not, measured in one process.

    python benchmarks/training_throughput.py        # trains the models this reads (benchmarks/work/throughput)
    python benchmarks/training_step_cost.py         # ~5 min on 2 CPU cores

The per-epoch ratios of ``training_throughput.py`` compare two processes, and on
a shared machine two processes run at different speeds (±15 % a pair). Here the
MACE and MACEQEq models that benchmark trained are stepped in one process, in
turn, on the same batches of each cluster case:

* the whole training step (forward with forces, loss, backward), MACE with an
  energy + force loss, MACEQEq with energy + force + charge + dipole, the
  order alternating from round to round, the median of the per-round ratios with its quartiles;
* the pieces MACEQEq adds, on the case's first batch: the forward of the χ/J
  readout, of the charge embedding and of ZBL, the contact wall and the
  energy floor (each also enters the forces' backward and the loss's), and
  the electrostatic block whole: the QEq solve, its forces and the backward
  of both, from χ and J to the positions.

Writes results/training_step_cost.{json,md}.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import peer_models as pm
import torch

from training_throughput import CASES


def batches_of(model, train_file: Path, batch_size: int, structures: int):
    """The first ``structures`` of ``train_file`` as mace batches (dicts), with charge and dipole labels."""
    import ase.io
    from mace import data as mace_data
    from mace.tools import torch_geometric
    from mace.tools.multihead_tools import AtomicNumberTable

    keys = mace_data.KeySpecification(
        info_keys={"energy": "REF_energy", "total_charge": "total_charge", "dipole": "REF_dipole"},
        arrays_keys={"forces": "REF_forces", "charges": "REF_charges"})
    configs = mace_data.config_from_atoms_list(ase.io.read(train_file, f":{structures}"), key_specification=keys)
    table = AtomicNumberTable([int(z) for z in model.atomic_numbers])
    data = [mace_data.AtomicData.from_config(c, z_table=table, cutoff=float(model.r_max), heads=["Default"])
            for c in configs]
    loader = torch_geometric.dataloader.DataLoader(data, batch_size=batch_size, shuffle=False)
    return [batch.to_dict() for batch in loader]


def training_step(model, batch, charge_loss: bool) -> None:
    """Forward with forces, a squared-error loss (with charges and dipoles for ``charge_loss``), backward."""
    out = model(batch, training=True, compute_force=True)
    loss = ((out["energy"] - batch["energy"]) ** 2).mean() + ((out["forces"] - batch["forces"]) ** 2).mean()
    if charge_loss:
        loss = loss + ((out["charges"] - batch["charges"]) ** 2).mean()
        loss = loss + ((out["dipole"] - batch["dipole"].view(-1, 3)) ** 2).mean()
    model.zero_grad()
    loss.backward()


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
    """ms of each piece MACEQEq adds to a step, on ``batch`` (see the module docstring)."""
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=[source for source, _ in CASES.values()],
                        default=["ag3_same_geometry", "carbon_chain", "na9cl8"], help="cluster cases to measure")
    parser.add_argument("--batches", type=int, default=8, help="batches stepped per round")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=200, help="calls per timing of a piece")
    parser.add_argument("--work-dir", type=Path, default=pm.WORK / "throughput")
    parser.add_argument("--output", type=Path, default=pm.RESULTS)
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    import mace_qeq.modules  # noqa: F401  (MACEQEq for torch.load)

    rows = []
    for label, (source, batch_size) in CASES.items():
        if source not in args.cases:
            continue
        folder = args.work_dir / source
        paths = {name: folder / name / f"{name}.model" for name in ("MACE", "MACEQEq")}
        missing = [str(path) for path in paths.values() if not path.exists()]
        if missing:
            sys.exit(f"no trained models for {source} ({', '.join(missing)}): run "
                     f"python benchmarks/training_throughput.py --cases {source} first")
        models = {name: torch.load(path, weights_only=False) for name, path in paths.items()}
        batches = batches_of(models["MACEQEq"], folder / "train.xyz", batch_size, batch_size * args.batches)
        steppers = {"MACE": lambda b: training_step(models["MACE"], b, False),
                    "MACEQEq": lambda b: training_step(models["MACEQEq"], b, True)}
        times = {name: [] for name in steppers}
        for name, step in steppers.items():  # warm-up
            step(batches[0])
        for round_ in range(args.rounds):
            for name in (list(steppers) if round_ % 2 == 0 else list(reversed(list(steppers)))):
                start = time.perf_counter()
                for batch in batches:
                    steppers[name](batch)
                times[name].append((time.perf_counter() - start) / len(batches) * 1e3)
        ratios = sorted(q / m for q, m in zip(times["MACEQEq"], times["MACE"]))
        pieces = piece_costs(models["MACEQEq"], batches[0], args.repeats)
        row = {"case": label, "batch_size": batch_size,
               "atoms_per_batch": int(batches[0]["positions"].shape[0]),
               "mace_step_ms": statistics.median(times["MACE"]), "maceqeq_step_ms": statistics.median(times["MACEQEq"]),
               "step_ratio": statistics.median(ratios), "step_ratio_quartiles": [ratios[len(ratios) // 4],
                                                                                ratios[(3 * len(ratios)) // 4]],
               "pieces_ms": pieces}
        rows.append(row)
        print(f"{label}: MACE {row['mace_step_ms']:.1f} ms, MACEQEq {row['maceqeq_step_ms']:.1f} ms a step, "
              f"ratio {row['step_ratio']:.3f}; " + ", ".join(f"{k} {v:.2f} ms" for k, v in pieces.items()),
              flush=True)
    command = " ".join(["python benchmarks/training_step_cost.py", *sys.argv[1:]])
    result = {"hardware": pm.hardware("cpu"), "rounds": args.rounds, "batches": args.batches, "rows": rows,
              "command": command, "date": time.strftime("%Y-%m-%d")}
    pm.write_json(args.output / "training_step_cost.json", result)
    names = list(dict.fromkeys(name for row in rows for name in row["pieces_ms"]))
    lines = ["# Cost of a MACEQEq training step against MACE's, in one process", "",
             f"Hardware: {result['hardware']}. The models of `training_throughput.py` (float64), {args.batches} "
             f"batches a round, {args.rounds} rounds in alternating order; the step ratio is the median of the "
             "rounds' ratios [quartiles]; pieces on the first batch, ms a call (the forwards also enter the "
             f"forces' backward and the loss's). Command: `{command}`", "",
             "| data | atoms a batch | MACE ms/step | MACEQEq ms/step | ratio | " + " | ".join(names) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(names)]
    for row in rows:
        cells = [pm.fmt(row["pieces_ms"].get(name), 2) for name in names]
        lines.append(f"| {row['case']} | {row['atoms_per_batch']} | {row['mace_step_ms']:.1f} | "
                     f"{row['maceqeq_step_ms']:.1f} | **{row['step_ratio']:.2f}** [{row['step_ratio_quartiles'][0]:.2f}"
                     f"–{row['step_ratio_quartiles'][1]:.2f}] | " + " | ".join(cells) + " |")
    (args.output / "training_step_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
