"""Where the deployment's inputs live in the repository."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LIBRARY_DIR = REPO_ROOT / "layers" / "sadtalker"
FUNCTIONS_DIR = REPO_ROOT / "functions"
STATEMACHINE_DIR = REPO_ROOT / "statemachine"
LOCK_FILE = REPO_ROOT / "requirements.lock"
DOCKERFILE = "functions/Dockerfile"  # relative to the build context (the repository root)
WEIGHTS_DIR = REPO_ROOT / "weights"
