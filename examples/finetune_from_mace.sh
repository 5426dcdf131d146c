#!/usr/bin/env bash
# Fine-tune a plain MACE model (here trained on the spot; use your own or a
# foundation model file) into MACEQEq: the backbone keeps the MACE weights, the
# χ/J heads are new. Multihead replay (--pt_train_file) keeps the old data in view.
set -euo pipefail
data=$(python -c "from mace_qeq.datasets import DEFAULT_DATASET; print(DEFAULT_DATASET)")
mace_run_train --name plain --model MACE --train_file "$data" --valid_fraction 0.1 --E0s isolated \
  --num_channels 16 --max_L 0 --r_max 5.0 --max_num_epochs 5 --device cpu --default_dtype float64 \
  --energy_key REF_energy --forces_key REF_forces
mace_qeq_run_train --name finetuned --foundation_model plain.model --train_file "$data" --valid_fraction 0.1 \
  --pt_train_file "$data" --multiheads_finetuning True --E0s isolated --max_num_epochs 5 --device cpu \
  --default_dtype float64
