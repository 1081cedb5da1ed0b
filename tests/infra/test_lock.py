"""requirements.lock is the one place of the runtime's versions: the image installs it, the light layer
takes its versions from it, and it is the closure of the environment the tests run with."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from infra import bundling

ROOT = Path(__file__).resolve().parents[2]


def _write_lock_module():
    spec = importlib.util.spec_from_file_location("write_lock", ROOT / "infra" / "images" / "write_lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lock_is_the_closure_the_tests_run_with():
    assert _write_lock_module().closure() == bundling.locked_versions(), "run `make lock`"


def test_no_other_file_pins_a_runtime_version_of_its_own():
    locked = bundling.locked_versions()
    for name in ("pyproject.toml", "Makefile", "functions/Dockerfile"):
        for pkg, version in re.findall(r"([A-Za-z0-9_.-]+)(?:\[[\w,]+\])?==([\w.+-]+)", (ROOT / name).read_text()):
            pkg = pkg.lower().replace("_", "-")
            if pkg in locked:
                assert version == locked[pkg], f"{name} pins {pkg}=={version}, the lock says {locked[pkg]}"
    assert "requirements.lock" in (ROOT / "functions" / "Dockerfile").read_text()


def test_the_light_layer_installs_locked_versions_only():
    locked = bundling.locked_versions()
    reqs = bundling.light_requirements()
    assert len(reqs) == len(bundling.LIGHT_PACKAGES)
    for req in reqs:
        name, version = req.split("==")
        assert locked[name] == version
    assert not any(r.startswith(("boto3==", "botocore==", "torch==")) for r in reqs)
