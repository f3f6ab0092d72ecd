#!/usr/bin/env bash
# OpenHands SDK job fixture: resolved (think + finish), unresolved (file_editor error,
# finish giving up), agent timeout after the fix.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/../../tests/fixtures/harbor_jobs/openhands-sdk}
exec "$HERE/capture_job.sh" openhands-sdk "$OUT" 5c0de000-0b00-4000-8000-000000000003 \
  "resolved acme__calc-101__hRe8Nd5 300" \
  "unresolved acme__calc-101__hUn4Qs7 300" \
  "timeout acme__calc-102__hTo6Vc2 300"
