"""The long-range models a MACE user has, trained and evaluated alike: data sets, splits,
stock command lines and the stock calculator. Shared by peers.py, transfer.py and
training_throughput.py.

Models (``MODELS``), each trained by its own stock command line with the same
backbone, budget and seed, and evaluated by MACE's stock ``MACECalculator``
(total charge from ``atoms.info["charge"]``):

* ``MACE``: plain MACE (``mace_run_train --model MACE``);
* ``MACE+embedding``: MACE with its categorical total-charge embedding
  (``--embedding_specs``, classes Q = −2 … +2), MACE-OMOL's recipe;
* ``MACELES``: latent Ewald summation (``--model MACELES``, needs the ``les``
  package, not on PyPI: skipped when absent);
* ``PolarMACE``: ``--model PolarMACE`` (needs ``graph-longrange==0.4.0``);
* ``MACEQEq``: this plugin (``mace_qeq_run_train``), with charge and dipole
  labels where the data has them; ``MACEQEq-EF``: the same on energies and
  forces only; ``ABLATIONS`` (one default off), ``VARIANTS`` (one default
  changed, a candidate) of it, and ``EF_ABLATIONS`` (one default of
  ``MACEQEq-EF`` off).

Data sets (``SETS``): the GFN2-xTB sets of ``mace_qeq_make_xtb_data --set``
(made on first use into ``benchmarks/work/data``; whole MD trajectories are
held out for testing, so no test geometry is a neighbour of a training one)
and the real sets in ``../shared/datasets`` that fit (LODE charged dimers, SPICE
dipeptides with dipoles and MBI charges).
"""

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import ase.io
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "work"
SHARED = ROOT.parent / "shared" / "datasets"

#: The backbone and optimisation every model shares (the issue's protocol: mace's defaults otherwise).
BACKBONE = ["--num_channels", "32", "--max_L", "1", "--num_interactions", "2", "--r_max", "5.0",
            "--batch_size", "16", "--valid_batch_size", "32", "--lr", "0.01", "--default_dtype", "float64",
            "--E0s", "average", "--seed", "1", "--valid_fraction", "0.1",
            "--energy_key", "REF_energy", "--forces_key", "REF_forces", "--total_charge_key", "total_charge"]
#: Categorical total-charge embedding of the MACE+embedding baseline: classes Q = −2 … +2.
EMBEDDING = "{'total_charge': {'type': 'categorical', 'per': 'graph', 'num_classes': 5, 'emb_dim': 32, 'offset': 2}}"
#: LES settings of MACELES (the example of the les repository).
LES_ARGUMENTS = """n_layers: 3
n_hidden: [32, 16]
add_linear_nn: true
output_scaling_factor: 0.1
sigma: 1.0
dl: 1.5
remove_mean: false
epsilon_factor: 1.5
use_atomwise: false
"""


#: Test RMSEs of the published 4G-HDNNP DFT sets (E meV/atom, F meV/Å — the Ko columns may be meV/bohr —,
#: Q me), as printed in SpookyNet (Nat. Commun. 2021), Table 1; source: ../shared/docs/anchors.md. Shown
#: beside a run on a user's copy of the set (``peers.py --train … --test … --name ag3``).
PUBLISHED = {
    "carbon_chain": {"2G": (1.619, 129.5, None), "3G": (2.045, 231.0, 20.08), "4G-HDNNP": (1.194, 78.00, 6.577),
                     "SpookyNet": (0.364, 5.802, 0.117)},
    "nacl": {"2G": (1.692, 57.39, None), "3G": (2.042, 76.67, 20.80), "4G-HDNNP": (0.481, 32.78, 15.83),
             "SpookyNet": (0.135, 1.052, 0.111)},
    "ag3": {"2G": (352.0, 1803, None), "3G": (320.2, 1913, 26.48), "4G-HDNNP": (1.323, 31.69, 9.976),
            "SpookyNet": (0.220, 26.64, 0.459)},
    "au2_mgo": {"2G": (2.287, 153.1, None), "4G-HDNNP": (0.219, 66.0, 5.698), "SpookyNet": (0.107, 5.337, 1.013)},
}


@dataclass
class Model:
    name: str
    command: List[str]  # console script and model arguments
    model_type: str = "MACE"  # MACECalculator model_type
    charge_labels: bool = False  # trained on REF_charges / REF_dipole
    needs: Optional[str] = None  # a module that must be importable

    @property
    def run_name(self) -> str:
        """The ``--name`` and work folder of its runs: its name with "+" (not in file names) as "_"."""
        return self.name.replace("+", "_")


MODELS: Dict[str, Model] = {
    "MACE": Model("MACE", ["mace_run_train", "--model", "MACE"]),
    "MACE+embedding": Model("MACE+embedding", ["mace_run_train", "--model", "MACE", "--embedding_specs", EMBEDDING]),
    "MACELES": Model("MACELES", ["mace_run_train", "--model", "MACELES", "--les_arguments", "{les}"], needs="les"),
    "PolarMACE": Model("PolarMACE", ["mace_run_train", "--model", "PolarMACE"], model_type="PolarMACE",
                       needs="graph_longrange"),
    "MACEQEq": Model("MACEQEq", ["mace_qeq_run_train", "--charges_key", "REF_charges", "--dipole_key", "REF_dipole"],
                     charge_labels=True),
    "MACEQEq-EF": Model("MACEQEq-EF", ["mace_qeq_run_train", "--charges_weight", "0", "--dipole_weight", "0"]),
}
#: MACEQEq (with charge labels) with one default switched off: what each default buys (``peers.py --ablation``).
ABLATIONS = {
    "MACEQEq-no-stage-two": ["--swa", "False"],
    "MACEQEq-energy-weight-1": ["--energy_weight", "1"],  # mace's energy weight before Stage Two
    "MACEQEq-unbounded-J-fit": ["--qeq_fit_largest_hardness", "0"],
    "MACEQEq-no-element-fit": ["--qeq_fit_elements", "False"],
    "MACEQEq-no-offset-refit": ["--qeq_refit_offsets", "False"],
    "MACEQEq-no-feedback": ["--qeq_charge_feedback", "False"],
    "MACEQEq-no-ZBL": ["--pair_repulsion", "False"],
    "MACEQEq-no-floor": ["--qeq_energy_floor", "0"],
    "MACEQEq-no-wall": ["--qeq_contact_wall", "0"],
    "MACEQEq-no-chi-bound": ["--qeq_charge_range", "0"],
    #: the charge model of mace-qeq 0.1.0: unbounded χ, J ≥ 0.1 eV/e², no ZBL, no floor, no wall.
    "MACEQEq-unbounded": ["--qeq_charge_range", "0", "--qeq_minimum_hardness", "0.1", "--pair_repulsion", "False",
                          "--qeq_energy_floor", "0", "--qeq_contact_wall", "0"],
}
#: MACEQEq (with charge labels) with one default changed: candidates measured side by side with the default
#: (``--models``, with ``--tag`` to keep them out of the main table) before one is adopted.
VARIANTS = {
    "MACEQEq-stage-two-energy-weight-100": ["--swa_energy_weight", "100"],  # Stage Two keeps E:F = 1:1
    "MACEQEq-charges-weight-100": ["--charges_weight", "100", "--swa_charges_weight", "100"],
    "MACEQEq-energy-weight-30": ["--energy_weight", "30"],
    "MACEQEq-energy-weight-300": ["--energy_weight", "300"],
    "MACEQEq-energy-weight-1000": ["--energy_weight", "1000"],  # E:F = 10:1 before Stage Two, as in it
    "MACEQEq-ema": ["--ema", "--ema_decay", "0.99"],  # evaluated on the exponential moving average of the weights
    "MACEQEq-environment-hardness": ["--qeq_hardness", "environment"],
    "MACEQEq-coulomb-energy": ["--qeq_energy", "coulomb"],  # 4G-HDNNP: only the Coulomb energy of q* is added
}
#: MACEQEq without charge labels with one default switched off: where its forces go (diagnostics).
EF_ABLATIONS = {
    "MACEQEq-EF-no-stage-two": ["--swa", "False"],
    "MACEQEq-EF-no-feedback": ["--qeq_charge_feedback", "False"],
}
#: The model each of them changes: its command with their flags added, its charge labels.
DERIVED = {"MACEQEq": {**ABLATIONS, **VARIANTS}, "MACEQEq-EF": EF_ABLATIONS}
MODELS.update({name: replace(MODELS[base], name=name, command=MODELS[base].command + flags)
               for base, changes in DERIVED.items() for name, flags in changes.items()})
#: The models a MACE user has, and MACEQEq: the rows of a peer table unless ``--models`` says otherwise.
PEERS = [name for name in MODELS if not any(name in changes for changes in DERIVED.values())]


#: The most training structures of ``--quick``.
QUICK_TRAIN = 250


@dataclass
class DataSet:
    """A benchmark set: where it comes from, its training budget and what it tests."""

    name: str
    description: str
    train: int  # training structures (validation split off by mace)
    epochs: int
    source: str = "xtb"  # "xtb": mace_qeq_make_xtb_data --set <name>; "lode"/"spice": ../shared/datasets; "files"
    structures: int = 1000  # made by the generator
    geometry_shows_charge: bool = False
    quick: Optional[Tuple[int, int]] = None  # (train, epochs) of --quick where the general rule overruns

    def quick_budget(self) -> Tuple[int, int]:
        """(training structures, epochs) of ``peers.py --quick``: the set's whole table, every model, on a
        2-core CPU in under 30 minutes, the data made included (measured: ``results/peers_SET_quick.md``). At most
        ``QUICK_TRAIN`` structures and a third of the epochs (at least 8), unless the set says less."""
        return self.quick or (min(self.train, QUICK_TRAIN), max(8, self.epochs // 3))

    @property
    def test_split(self) -> str:
        """Where the test structures come from."""
        return {"xtb": "held-out MD trajectories", "files": "the given test file"}.get(
            self.source, "the data set's own test files")


SETS: Dict[str, DataSet] = {
    "ag3_same_geometry": DataSet("ag3_same_geometry", "Ag3⁺ and Ag3⁻ on the same geometries: only the total "
                                 "charge tells them apart", train=500, epochs=30,
                                 structures=1800),  # a training pool of 1,126: the learning curve reaches 1,000
    "ag3_md": DataSet("ag3_md", "Ag3⁺ and Ag3⁻ from their own MD runs: the geometry shows the charge state",
                      train=800, epochs=30, structures=1200, geometry_shows_charge=True),
    "carbon_chain": DataSet("carbon_chain", "C10H2 / C10H3⁺ MD: a proton on one end moves charge to the other",
                            train=400, epochs=20, structures=700),
    "na9cl8": DataSet("na9cl8", "Na8Cl8⁺ / Na9Cl8⁺ MD: a neutral Na far away changes the charge distribution",
                      train=300, epochs=20, structures=500),
    "nacl_transfer": DataSet("nacl_transfer", "Na/Cl clusters at Q = 0, ±1 (Na4Cl4, Na4Cl3⁺, Na3Cl4⁻)",
                             train=400, epochs=30, structures=600),
    "nacl_rods": DataSet("nacl_rods", "Na/Cl rock-salt rods of 7–16 atoms at Q = 0, ±1", train=400, epochs=30,
                         structures=720),
    "nacl_periodic": DataSet("nacl_periodic", "periodic Na8Cl8 cells, neutral and with a vacancy (Q = ±1)",
                             train=300, epochs=30, structures=400, geometry_shows_charge=True,
                             quick=(120, 10)),  # 250 structures for 10 epochs took 25 min in all on 2 CPU cores
    "lode_dimers": DataSet("lode_dimers", "LODE molecular dimers (+1/−1, +1/0, polar, apolar) at varying "
                           "separation, DFT, periodic 30 Å box", train=2000, epochs=30, source="lode"),
    # 250 structures for 10 epochs took 25-30 min per model on 2 CPU cores (results/peers_spice_dipeptides.md)
    "spice_dipeptides": DataSet("spice_dipeptides", "SPICE dipeptides (neutral, 42–51 atoms), DFT energies, forces, "
                                "dipoles and MBI charges", train=550, epochs=30, source="spice", quick=(60, 8)),
}


def _label_lode(atoms):
    """LODE dimer frames: energy, forces; total charge = chargeA + chargeB."""
    atoms.info["REF_energy"] = float(atoms.calc.results["energy"])  # ase reads energy and forces into a calculator
    atoms.arrays["REF_forces"] = atoms.calc.results["forces"].copy()
    atoms.calc = None
    atoms.info["total_charge"] = float(atoms.info.get("chargeA", 0)) + float(atoms.info.get("chargeB", 0))
    atoms.info["config_type"] = f"dimer{atoms.info.get('dimer_id', '')}_Q{atoms.info['total_charge']:+.0f}"
    return atoms


def _label_spice(atoms):
    """SPICE dipeptide frames (eV, Å, e·Å): energy, forces, dipole and MBI charges under MACE's keys."""
    results = atoms.calc.results
    atoms.info["REF_energy"] = float(results["energy"])
    atoms.info["REF_dipole"] = np.asarray(results["dipole"], dtype=float).reshape(3)
    atoms.arrays["REF_forces"] = atoms.arrays.pop("force")
    atoms.arrays["REF_charges"] = atoms.arrays.pop("mbi_charges")
    atoms.info["total_charge"] = 0.0
    atoms.info["config_type"] = "dipeptide"
    atoms.calc = None
    return atoms


#: Independent sample K of a generated set runs its MD from seed ``K * SAMPLE_SEED_STRIDE`` (a set's runs take
#: seeds ``seed`` … ``seed + 1,121``), so no trajectory of one sample is in another.
SAMPLE_SEED_STRIDE = 10_000


def xtb_set(name: str, structures: int, sample: int = 0) -> Path:
    """The GFN2-xTB set ``name`` (independent sample ``sample``; 0 is the benchmark's own), made by
    ``mace_qeq_make_xtb_data`` the first time (minutes, logged)."""
    path = WORK / "data" / (f"{name}.xyz" if sample == 0 else f"{name}_sample{sample}.xyz")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"making {path} with mace_qeq_make_xtb_data (GFN2-xTB MD, a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "mace_qeq.datasets.xtb_sets", "--set", name, "--structures",
                        str(structures), "--workers", "2", "--seed", str(sample * SAMPLE_SEED_STRIDE),
                        "--output", str(path)], check=True)
    return path


def split(structures: Sequence, seed: int = 0, fraction: float = 0.15) -> Tuple[list, list, list]:
    """(train pool, in-distribution test, unseen test) of a set.

    Structures marked ``split = test`` are unseen groups (test only). Of the
    rest, whole MD trajectories are held out for testing (their frames, at
    every total charge they carry, never reach training): going round the
    config types, each time the largest trajectory not yet held out that has
    frames of that type (ties: the later one), until every type has one and
    at least ``fraction`` of the structures are held out. A set without
    trajectories gives ``fraction`` at random.
    """
    unseen = [a for a in structures if a.info.get("split") == "test"]
    rest = [a for a in structures if a.info.get("split") != "test"]
    sizes: Dict[int, int] = {}
    types: Dict[int, set] = {}
    for a in rest:
        if "trajectory" in a.info:
            run = int(a.info["trajectory"])
            sizes[run] = sizes.get(run, 0) + 1
            types.setdefault(run, set()).add(a.info["config_type"])
    config_types = sorted({a.info["config_type"] for a in rest})
    held_out: set = set()
    if len(sizes) >= 4:
        covered: set = set()
        while covered != set(config_types) or sum(sizes[r] for r in held_out) < fraction * len(rest):
            progress = False
            for config_type in config_types:
                candidates = [r for r in sizes if config_type in types[r] and r not in held_out]
                if not candidates:
                    continue
                run = max(candidates, key=lambda r: (sizes[r], r))
                held_out.add(run)
                covered |= types[run]
                progress = True
                if covered == set(config_types) and sum(sizes[r] for r in held_out) >= fraction * len(rest):
                    break
            if not progress:
                break
    if held_out and len(held_out) < len(sizes):
        test = [a for a in rest if int(a.info.get("trajectory", -1)) in held_out]
        pool = [a for a in rest if int(a.info.get("trajectory", -1)) not in held_out]
    else:
        order = np.random.default_rng(seed).permutation(len(rest))
        n_test = max(1, int(fraction * len(rest)))
        test = [rest[i] for i in order[:n_test]]
        pool = [rest[i] for i in order[n_test:]]
    return pool, test, unseen


def load(name: str, sample: int = 0) -> Tuple[list, list, list]:
    """(train pool, test, unseen test) of a named set; of its independent sample ``sample`` (generated sets)."""
    spec = SETS[name]
    if spec.source == "xtb":
        return split(ase.io.read(xtb_set(name, spec.structures, sample), ":"))
    if sample:
        raise SystemExit(f"{name} is a fixed data set ({spec.test_split}): it has no other samples")
    if spec.source == "lode":
        folder = SHARED / "lode_dimers"
        if not folder.exists():
            raise SystemExit(f"{folder} is not on this machine (see ../shared/datasets/README.md)")
        train = [_label_lode(a) for f in sorted(folder.glob("train-id*.xyz")) for a in ase.io.read(f, ":")]
        test = [_label_lode(a) for f in sorted(folder.glob("test-id*.xyz")) for a in ase.io.read(f, ":")]
        return train, test, []
    if spec.source == "spice":
        folder = SHARED / "spice_dipeptides"
        if not folder.exists():
            raise SystemExit(f"{folder} is not on this machine (see ../shared/datasets/README.md)")
        frames = {part: [_label_spice(a) for a in ase.io.read(folder / f"spice-dipep-dipolar_{part}.xyz", ":")]
                  for part in ("train", "val", "test")}
        return frames["train"] + frames["val"], frames["test"], []
    raise ValueError(f"unknown source {spec.source!r}")


def subset(pool: Sequence, count: int, seed: int = 1) -> list:
    """``count`` structures of the training pool, the same ones for every model."""
    if count > len(pool):
        raise SystemExit(f"{count} training structures asked for, the pool has {len(pool)}")
    chosen = np.random.default_rng(seed).permutation(len(pool))[:count]
    return [pool[i] for i in sorted(chosen)]


@dataclass
class Run:
    """One training run: what came out, how long it took, or why it failed."""

    model: str
    path: Optional[str]
    wall_s: float
    epochs: int
    status: str = "ok"
    peak_rss_gb: Optional[float] = None
    extra: List[str] = field(default_factory=list)


def available(model: Model) -> bool:
    if model.needs is None:
        return True
    import importlib.util

    return importlib.util.find_spec(model.needs) is not None


def command_line(model: Model, train_file: Path, folder: Path, epochs: int, device: str,
                 extra: Sequence[str] = ()) -> List[str]:
    """The arguments of ``model``'s console script (``model.command[0]``) that train it on ``train_file`` in
    ``folder`` with the shared backbone and budget (writes the LES settings MACELES reads there)."""
    folder.mkdir(parents=True, exist_ok=True)
    les = folder / "les.yaml"
    les.write_text(LES_ARGUMENTS)
    return [*[str(les) if a == "{les}" else a for a in model.command[1:]], *BACKBONE, "--name", model.run_name,
            "--work_dir", str(folder), "--train_file", str(train_file), "--max_num_epochs", str(epochs),
            "--device", device, *extra]


def train(model: Model, train_file: Path, folder: Path, epochs: int, device: str, extra: Sequence[str] = (),
          memory_gb: float = 16.0, timeout: float = 6 * 3600, reuse: bool = True,
          threads: Optional[int] = None) -> Run:
    """Train ``model`` by its stock command line; a run that exceeds ``memory_gb`` is reported as out of memory.

    With ``reuse``, a model this function already trained in ``folder`` by the same command and code
    (:func:`code_version`) on a training file of the same content is returned as it is (``run.json`` records
    all three), so that a benchmark can be extended (more models, an ablation) without training again what
    it has. ``threads`` sets the training's OpenMP (torch) threads; None leaves them to the environment.
    """
    from mace_qeq.training import trained_model_path

    name = model.run_name
    command = [str(Path(sys.executable).parent / model.command[0]),
               *command_line(model, train_file, folder, epochs, device, extra)]
    stamp = {"command": command, "train_sha256": hashlib.sha256(Path(train_file).read_bytes()).hexdigest(),
             "code": code_version(model)}
    record = folder / "run.json"
    if reuse and record.exists():
        saved = json.loads(record.read_text())
        status = saved.get("status", "ok")
        trained = (folder / f"{name}.model").exists()
        if all(saved.get(key) == value for key, value in stamp.items()) and (trained or status != "ok"):
            path = str(trained_model_path(folder, name)) if status == "ok" else None
            return Run(model.name, path, saved["wall_s"], saved["epochs_run"], status)
    record.unlink(missing_ok=True)
    # mace evaluates the latest checkpoint it finds: nothing of an earlier training may stay
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    for stale in folder.glob(f"{name}*.model"):
        stale.unlink()

    def limit_memory():
        size = int(memory_gb * 1024**3)
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    start = time.perf_counter()
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout,
                                preexec_fn=limit_memory if device == "cpu" else None)
    except subprocess.TimeoutExpired:
        return Run(model.name, None, time.perf_counter() - start, 0, f"timed out after {timeout:.0f} s")
    wall = time.perf_counter() - start
    log = result.stdout + result.stderr
    (folder / f"{name}.log").write_text(log)
    epochs_run = sum(1 for line in log.splitlines() if "INFO: Epoch" in line)
    if result.returncode != 0 or not (folder / f"{name}.model").exists():
        memory = any(sign in log.lower() for sign in ("memoryerror", "out of memory", "bad_alloc", "allocate memory"))
        status = f"out of memory (> {memory_gb:.0f} GB)" if memory else f"failed: {log.strip().splitlines()[-1][:200]}"
        if memory:  # as reproducible as a success: not tried again on the next run
            record.write_text(json.dumps({**stamp, "wall_s": wall, "epochs_run": epochs_run, "status": status}))
        return Run(model.name, None, wall, epochs_run, status)
    record.write_text(json.dumps({**stamp, "wall_s": wall, "epochs_run": epochs_run}, indent=1))
    return Run(model.name, str(trained_model_path(folder, name)), wall, epochs_run)


def training_threads(jobs: int) -> Optional[int]:
    """Torch threads of each of ``jobs`` trainings run at a time: the cores shared out, unless
    ``OMP_NUM_THREADS`` says otherwise (None: one training, the environment decides)."""
    if jobs <= 1 or "OMP_NUM_THREADS" in os.environ:
        return None
    return max(1, (os.cpu_count() or 1) // jobs)


def train_all(tasks: Sequence[dict], jobs: int = 1) -> List[Run]:
    """:func:`train` for each task (its keyword arguments), ``jobs`` at a time, in the tasks' order.

    Each training is a process of its own (its stock command line), so that ``jobs`` of them share a
    machine's cores (:func:`training_threads` each) or a GPU: a seed spread or an ablation of N models
    takes about 1/``jobs`` of the wall time where one training does not fill the machine. A line is
    printed as each training ends.
    """
    threads = training_threads(jobs)
    tasks = [dict(task, threads=task.get("threads", threads)) for task in tasks]

    def report(task, run):
        print(f"  {run.model} ({Path(task['folder']).name}): {run.status}, {run.wall_s:.0f} s of training", flush=True)
        return run

    if jobs <= 1 or len(tasks) <= 1:
        return [report(task, train(**task)) for task in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawned, not forked: the parent holds torch's thread pools
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(train, **task): task for task in tasks}
        for future in as_completed(futures):
            report(futures[future], future.result())
        return [future.result() for future in futures]


def trained_by_peers(model: Model, set_name: str) -> Optional[Path]:
    """The model ``peers.py --set set_name`` trained (the one its CLI recommends), or None."""
    from mace_qeq.training import trained_model_path

    path = trained_model_path(WORK / "peers" / set_name / model.run_name, model.run_name)
    return path if path.exists() else None


def code_version(model: Model) -> str:
    """What a model's training depends on besides its command: mace-qeq's sources, or mace-torch's version."""
    if model.command[0].startswith("mace_qeq"):
        digest = hashlib.sha256()
        for path in sorted((ROOT / "mace_qeq").rglob("*.py")):
            digest.update(path.read_bytes())
        return f"mace-qeq sources {digest.hexdigest()}"
    from importlib.metadata import version

    return f"mace-torch {version('mace-torch')}"


def evaluate(run: Run, test: Sequence, device: str = "cpu"):
    """Predictions of a trained model on ``test`` with the stock calculator (None if the run failed)."""
    if run.path is None:
        return None
    from mace_qeq.analysis import evaluate_model

    return evaluate_model(run.path, test, device=device, model_type=MODELS[run.model].model_type)


def errors_by_type(predictions) -> Dict[str, dict]:
    """Test RMSEs overall ("all") and per config_type, with the energy error split by :func:`energy_offset`."""
    from mace_qeq.analysis import test_errors

    out = {}
    for config_type in [None] + sorted(set(predictions.config_type)):
        out["all" if config_type is None else config_type] = {
            **test_errors(predictions, config_type).as_dict(), **energy_offset(predictions, config_type)}
    return out


def errors_by_trajectory(predictions, structures: Sequence) -> Dict[str, dict]:
    """Test RMSEs (as :func:`errors_by_type`) per held-out MD trajectory and config type of ``structures``, the
    test frames ``predictions`` were made on ({} for a set without trajectories): whether one run, e.g. one
    whose geometries training has few of, carries the error."""
    frames = [a for a in structures if a.info.get("config_type") != "IsolatedAtom"]  # as evaluate_model skips
    if not frames or any("trajectory" not in a.info for a in frames):
        return {}
    if len(frames) != len(predictions.config_type):
        raise ValueError(f"{len(predictions.config_type)} predictions for {len(frames)} test frames")
    labels = [f"trajectory {int(a.info['trajectory'])} ({a.info['config_type']})" for a in frames]
    errors = errors_by_type(replace(predictions, config_type=labels))
    del errors["all"]
    return errors


def energy_offset(predictions, config_type: Optional[str] = None) -> Dict[str, float]:
    """The per-atom energy error e = (E − E_ref)/N over all structures, or those of one ``config_type``
    (as ``test_errors``), split into its mean (a constant offset per atom, which no force and no MD sees)
    and the standard deviation about it (the error of relative energies): RMSE² = offset² + spread², meV/atom."""
    keep = [config_type is None or c == config_type for c in predictions.config_type]
    error = (np.asarray(predictions.energy) - np.asarray(predictions.energy_ref)) \
        / np.asarray(predictions.atoms_per_structure) * 1000.0
    return {"energy_offset_mev_per_atom": float(error[keep].mean()),
            "energy_spread_mev_per_atom": float(error[keep].std())}


def coordination_numbers(atoms) -> np.ndarray:
    """Grimme's D3 coordination number of every atom, CN_i = Σ_j 1 / (1 + exp(−16 (4/3 (R_i + R_j) / r_ij − 1)))
    with covalent radii R (ase.data), minimum-image distances: how many neighbours an atom has, model-free."""
    from ase.data import covalent_radii

    radii = covalent_radii[atoms.numbers]
    distances = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    np.fill_diagonal(distances, np.inf)
    return (1.0 / (1.0 + np.exp(-16.0 * (4.0 / 3.0 * (radii[:, None] + radii[None, :]) / distances - 1.0)))).sum(1)


def group_environments(pool: Sequence, groups: Sequence) -> Dict[str, dict]:
    """What the structures of each config type of ``groups`` hold next to the training ``pool``.

    ``new_coordination``: the share of atoms whose D3 coordination number (:func:`coordination_numbers`) lies
    outside the 0.5–99.5 % range of the training atoms of its element, i.e. local environments a short-range
    model has to extrapolate to. ``coulomb_ev_per_atom``: the point-charge Coulomb energy of the reference
    charges per atom (isolated structures with ``REF_charges`` only), the size of the long-range energy."""
    from mace_qeq.electrostatics.units import COULOMB_CONSTANT

    trained: Dict[int, list] = {}
    for atoms in pool:
        for z, cn in zip(atoms.numbers, coordination_numbers(atoms)):
            trained.setdefault(int(z), []).append(cn)
    limits = {z: np.percentile(cns, [0.5, 99.5]) for z, cns in trained.items()}
    by_type: Dict[str, list] = {}
    for atoms in groups:
        by_type.setdefault(atoms.info.get("config_type", "all"), []).append(atoms)
    out = {}
    for config_type, members in sorted(by_type.items()):
        new, count, coulomb = 0, 0, []
        for atoms in members:
            for z, cn in zip(atoms.numbers, coordination_numbers(atoms)):
                low, high = limits.get(int(z), (np.inf, -np.inf))
                new += not low <= cn <= high
                count += 1
            if "REF_charges" in atoms.arrays and not atoms.pbc.any():
                q = atoms.arrays["REF_charges"]
                upper = np.triu_indices(len(atoms), 1)
                pairs = np.outer(q, q)[upper] / atoms.get_all_distances()[upper]
                coulomb.append(COULOMB_CONSTANT * pairs.sum() / len(atoms))
        out[config_type] = {"atoms_per_structure": count / len(members), "new_coordination": new / count,
                            "coulomb_ev_per_atom": float(np.mean(coulomb)) if coulomb else None}
    return out


def hardware(device: str, jobs: int = 1) -> str:
    """The machine, and on a CPU the torch threads of each training (``jobs`` at a time: how many ran
    together shows in the command, ``--jobs``, and in the train times, not here, so that tables made
    one at a time and together stay comparable)."""
    import platform

    import torch

    if device == "cuda":
        return torch.cuda.get_device_name()
    threads = training_threads(jobs) or torch.get_num_threads()
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores, {threads} torch threads)"


def rows_by_value(per_row: Dict[str, str], quote: str = "") -> str:
    """"A, B: x; C: y": the rows (models, cases) that share each value, in the order of the rows."""
    by_value: Dict[str, list] = {}
    for row, value in per_row.items():
        by_value.setdefault(value, []).append(row)
    return "; ".join(f"{', '.join(rows)}: {quote}{value}{quote}" for value, rows in by_value.items())


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))


def fmt(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"
