#!/usr/bin/env bash
# Print what this process sees of SLURM, one "PREFIX KEY=VALUE" line each.   probe_env.sh PREFIX
set -euo pipefail
echo "$1 CVD=${CUDA_VISIBLE_DEVICES-unset}"
echo "$1 NODE=${SLURMD_NODENAME-unset}"
echo "$1 PID=$$"
env | grep -E '^SLURM' | sort | sed "s/^/$1 /"
