#!/usr/bin/env bash
# OpenCode (OpenAI-compatible provider) job fixture: resolved (explore sub-agent via
# task), unresolved (missing-file error), agent timeout after the fix.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/../../tests/fixtures/harbor_jobs/opencode}
exec "$HERE/capture_job.sh" opencode "$OUT" 5c0de000-0c00-4000-8000-000000000002 \
  "resolved acme__calc-101__oRe5Kt3 300" \
  "unresolved acme__calc-101__oUn2Hb6 300" \
  "timeout acme__calc-102__oTo9Lm4 300"
