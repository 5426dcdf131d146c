#!/usr/bin/env bash
# The GPU checks of issue 11 in one call, for a lent CUDA machine (run from the repository root with
# the environment of the README's test command installed). Each stage has its own time limit so that a slow
# one cannot take the others' time; the whole script stays under ~9 minutes.
#
#   bash benchmarks/gpu_checks.sh            # writes benchmarks/results/*_cuda.{json,md,png}
#
# 1. tests/test_devices.py on CUDA: dense and iterative (Ewald, mesh) solves, eager and compiled model in
#    float64 and float32, the ASE calculator and a training step, each against the CPU float64 reference;
# 2. benchmarks/scaling.py --device cuda: eager MACEQEq and MACE, float32, 1,000 to 100,000 atoms;
# 3. benchmarks/training_throughput.py --device cuda: both stock CLIs on the same data (one pair per case: a
#    lent GPU is not shared, and three would not fit the stage's time).
set -u
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "no CUDA device"; exit 1; }
status=0
timeout 120 python -m pytest -q tests/test_devices.py || status=1
timeout 210 python benchmarks/scaling.py --device cuda --sizes 1000 10000 100000 --dense-max 1000 || status=1
timeout 210 python benchmarks/training_throughput.py --device cuda --epochs 3 --repeats 1 || status=1
exit $status
