#!/usr/bin/env bash
# Re-capture every Harbor job fixture from scratch with the real clients, then copy
# the claude-code job to config/demo/harbor_job (the pipeline's bundled example).
# Needs the clients from install_clients.sh; runs fully offline on 127.0.0.1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
FIXTURES=$REPO/tests/fixtures/harbor_jobs
"$HERE/capture_claude_code.sh" "$FIXTURES/claude-code"
"$HERE/capture_opencode.sh" "$FIXTURES/opencode"
"$HERE/capture_openhands.sh" "$FIXTURES/openhands-sdk"
rm -rf "$REPO/config/demo/harbor_job"
mkdir -p "$REPO/config/demo"
cp -r "$FIXTURES/claude-code" "$REPO/config/demo/harbor_job"
du -sh "$FIXTURES"/* "$REPO/config/demo/harbor_job"
