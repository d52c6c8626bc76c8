#!/usr/bin/env bash
# Creates the test venv, a Python venv with the official `openai` package, for the
# OpenAI-client test of `glimpse serve` (tests/server_openai_client.rs runs
# tests/openai_client.py with it). It lives in the test cache ($GLIMPSE_CI_CACHE/test-venv,
# see scripts/cross_common.sh), so fresh clones reuse it; does nothing when it is complete.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/cross_common.sh
venv=$GLIMPSE_CI_CACHE/test-venv
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import openai" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "openai>=1.40,<3"
echo "installed $("$venv/bin/python" -c 'import openai; print("openai", openai.__version__)') into $venv"
