#!/usr/bin/env bash
# Claude Code job fixture: resolved (background sub-agent), unresolved (foreground
# sub-agent, tool_use_error), agent timeout after the fix.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/../../tests/fixtures/harbor_jobs/claude-code}
exec "$HERE/capture_job.sh" claude-code "$OUT" 5c0de000-cc00-4000-8000-000000000001 \
  "resolved acme__calc-101__cCr4Xq1 300" \
  "unresolved acme__calc-101__cUn7Wd2 300" \
  "timeout acme__calc-102__cTo3Pz8 300"
