"""The pinned venv the fixture scripts run in: created or refreshed from
scripts/requirements-fixtures.txt when needed, then the calling script is re-executed inside it.

Used by scripts/make_fixtures.py and scripts/make_quality_fixture.py before they import torch.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO / "scripts" / "requirements-fixtures.txt"


def ensure_running_in_venv(script: str) -> None:
    """Create/refresh the venv ($FIXTURES_VENV, default .venv at the repo root) if needed and
    re-execute `script` with its python; returns only when already running inside it."""
    venv = Path(os.environ.get("FIXTURES_VENV", REPO / ".venv")).resolve()
    if Path(sys.prefix).resolve() == venv:
        return
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    stamp = venv / ".fixtures-requirements.sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
        stamp.write_text(digest)
    os.execv(str(python), [str(python), str(Path(script).resolve()), *sys.argv[1:]])
