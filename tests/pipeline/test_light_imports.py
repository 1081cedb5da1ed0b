"""Light functions never import torch (cold starts in small Lambdas)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIGHT = ["functions.starter", "functions.validate_job", "functions.plan_chunks", "functions.record_failure",
         "functions.check_result", "functions.events", "functions.notify"]


@pytest.mark.parametrize("module", LIGHT)
def test_light_function_does_not_import_torch(module):
    code = (f"import sys, importlib; m = importlib.import_module({module!r}); "
            "assert callable(getattr(m, 'handler', None)) or m.__name__.endswith('events'); "
            "heavy = [n for n in ('torch', 'cv2', 'librosa', 'scipy') if n in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "torch" not in out.stdout.split(","), f"{module} imports torch"
    assert out.stdout.strip() == "", f"{module} imports heavy modules: {out.stdout.strip()}"
