#!/usr/bin/env bash
# Runs once per node (started by `python -m sftpipe.slurm.env run-on-nodes`): report what the task
# sees, then start this node's torchrun.   node_task.sh TORCHRUN SCRIPT
set -euo pipefail
echo "TASK node=$SLURMD_NODENAME rank=$NODE_RANK nodeid=${SLURM_NODEID-unset}" \
  "cvd=${CUDA_VISIBLE_DEVICES-unset} master=$MASTER_ADDR:$MASTER_PORT nnodes=$NNODES"
exec "$1" --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node=1 \
  --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" "$2"
