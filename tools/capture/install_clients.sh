#!/usr/bin/env bash
# Install the pinned agent clients OUTSIDE the project env, into $CAPTURE_TOOLS
# (default /work/capture-tools): npm packages under node_modules/, OpenHands in venv/.
set -euo pipefail
CAPTURE_TOOLS=${CAPTURE_TOOLS:-/work/capture-tools}
CLAUDE_CODE_VERSION=${CLAUDE_CODE_VERSION:-2.1.329}
OPENCODE_VERSION=${OPENCODE_VERSION:-1.18.33}
OPENHANDS_VERSION=${OPENHANDS_VERSION:-1.58.0}
PYTHON312=${PYTHON312:-$(command -v python3.12)}

mkdir -p "$CAPTURE_TOOLS"
cd "$CAPTURE_TOOLS"
[ -f package.json ] || npm init -y >/dev/null
# Both packages ship their native binary in a per-platform optional dependency
# (@anthropic-ai/claude-code-linux-x64, opencode-linux-x64) from the npm registry.
npm install "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" "opencode-ai@${OPENCODE_VERSION}"
# npm >= 11 may skip postinstall scripts; run them if the launchers do not work yet.
node_modules/.bin/claude --version >/dev/null 2>&1 \
  || (cd node_modules/@anthropic-ai/claude-code && node install.cjs)
node_modules/.bin/opencode --version >/dev/null 2>&1 \
  || (cd node_modules/opencode-ai && node postinstall.mjs)

# A local interpreter: `uv venv -p 3.12` alone would try to download one.
[ -x venv/bin/python ] || uv venv -p "$PYTHON312" venv
uv pip install --python venv/bin/python \
  "openhands-sdk==${OPENHANDS_VERSION}" "openhands-tools==${OPENHANDS_VERSION}"

echo "claude-code: $(node_modules/.bin/claude --version)"
echo "opencode: $(node_modules/.bin/opencode --version)"
echo "openhands-sdk: $(venv/bin/python -c 'import importlib.metadata as m; print(m.version("openhands-sdk"))')"
