#!/usr/bin/env bash
# Capture one Harbor job fixture: capture_job.sh CLIENT JOB_DIR JOB_ID "SCENARIO TRIAL_NAME TIMEOUT_S"...
# Each trial spec runs scenarios/CLIENT/SCENARIO.json; the instance id is TRIAL_NAME
# without its "__<7 chars>" suffix. The job dir is recreated from scratch.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
client=$1 job_dir=$2 job_id=$3
shift 3
rm -rf "$job_dir"
mkdir -p "$job_dir"
for spec in "$@"; do
  read -r scenario trial timeout_s <<<"$spec"
  "$PYTHON" "$HERE/capture_trial.py" --client "$client" \
    --scenario "$HERE/scenarios/$client/$scenario.json" \
    --instance-id "${trial%__*}" --trial-name "$trial" \
    --job-dir "$job_dir" --job-id "$job_id" --timeout "$timeout_s"
done
"$PYTHON" "$HERE/make_job.py" --job-dir "$job_dir" --job-id "$job_id"
