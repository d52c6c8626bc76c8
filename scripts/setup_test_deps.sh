#!/usr/bin/env bash
# Creates the test venv, a Python venv with the official client libraries the server is
# tested with: `openai` (tests/openai_client.py), `anthropic` (tests/anthropic_client.py)
# and `ollama` (tests/ollama_client.py), run by tests/server_openai_client.rs and
# tests/server_client_apis.rs. It lives in the test cache ($GLIMPSE_CI_CACHE/test-venv, see
# scripts/cross_common.sh), so fresh clones reuse it; does nothing when it is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cross_common.sh
venv=$GLIMPSE_CI_CACHE/test-venv
check="import openai, anthropic, ollama, pydantic, jsonschema"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$check" 2>/dev/null; then
  exit 0
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "openai>=1.40,<3" "anthropic>=0.40,<1" "ollama>=0.4,<1" "jsonschema>=4,<5"
"$venv/bin/python" -c "$check"
echo "installed $("$venv/bin/python" -c 'import openai, anthropic, importlib.metadata as m; print("openai", openai.__version__, "anthropic", anthropic.__version__, "ollama", m.version("ollama"))') into $venv"
