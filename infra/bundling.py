"""Zip assets of the light functions, prepared without Docker.

Two directories, each built once and cached under a content-hash name so repeated synths (and the
test session) reuse them:

* the code asset: ``sadtalker/`` (the library, pure Python; torch is only imported by modules the light
  handlers never load), ``functions/`` (the handlers) and ``statemachine/`` (its timeouts);
* the dependency layer: ``python/`` with the light functions' third-party packages, installed by pip for
  the Lambda platform (manylinux x86_64, CPython 3.12, binary wheels only) with ``--no-deps`` from the
  explicit closure below, so the layer never carries a second botocore (the runtime ships one). The
  versions are requirements.lock's, the same file the image installs from.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .paths import FUNCTIONS_DIR, LIBRARY_DIR, LOCK_FILE, STATEMACHINE_DIR

LAMBDA_PYTHON = "3.12"
# The closure of numpy + pydantic + pillow + aws-lambda-powertools[tracer], minus boto3/botocore.
LIGHT_PACKAGES = (
    "numpy", "pydantic", "pydantic-core", "annotated-types", "typing-extensions", "typing-inspection", "pillow",
    "aws-lambda-powertools", "jmespath", "aws-xray-sdk", "wrapt",
)


def locked_versions() -> dict[str, str]:
    """name -> version of requirements.lock."""
    out = {}
    for line in LOCK_FILE.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            out[name.strip()] = version.strip()
    return out


def light_requirements() -> tuple[str, ...]:
    pins = locked_versions()
    return tuple(f"{name}=={pins[name]}" for name in LIGHT_PACKAGES)
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
_IGNORED = ("__pycache__", "*.pyc", ".*")
_IGNORE = shutil.ignore_patterns(*_IGNORED)


def _tree_hash(roots: list[Path]) -> str:
    h = hashlib.sha256()
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root.parent).as_posix()
            if "__pycache__" in rel or path.suffix == ".pyc" or path.name.startswith("."):
                continue
            h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _publish(tmp: Path, final: Path) -> Path:
    """Rename a finished build into place; a concurrent identical build may have won the race."""
    try:
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.is_dir():
            raise
    return final


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sadtalker"


def light_code_dir(build_dir: Path | None = None) -> Path:
    """``<cache>/light-code-<hash>/`` holding ``sadtalker/`` and ``functions/`` (older builds are pruned)."""
    build_dir = build_dir or cache_root()
    final = build_dir / f"light-code-{_tree_hash([LIBRARY_DIR, FUNCTIONS_DIR, STATEMACHINE_DIR])}"
    if final.is_dir():
        return final
    build_dir.mkdir(parents=True, exist_ok=True)
    for old in build_dir.glob("light-code-*"):
        shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".light-code-", dir=build_dir))
    shutil.copytree(LIBRARY_DIR, tmp / "sadtalker", ignore=_IGNORE)
    (tmp / "functions").mkdir()
    for src in sorted(FUNCTIONS_DIR.glob("*.py")):
        shutil.copy2(src, tmp / "functions" / src.name)
    # PlanChunks holds a job's projection against the state machine's own timeouts
    shutil.copytree(STATEMACHINE_DIR, tmp / "statemachine", ignore=shutil.ignore_patterns("*.md", *_IGNORED))
    return _publish(tmp, final)


def light_deps_dir(cache_dir: Path | None = None) -> Path:
    """``<cache>/lambda-deps-<hash>/`` holding ``python/`` (the layer layout), built by pip once."""
    cache_dir = cache_dir or cache_root()
    requirements = light_requirements()
    key = hashlib.sha256("\n".join((LAMBDA_PYTHON, *PLATFORMS, *requirements)).encode()).hexdigest()[:16]
    final = cache_dir / f"lambda-deps-{key}"
    if (final / "python").is_dir():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".lambda-deps-", dir=cache_dir))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--no-compile", "--only-binary=:all:", "--implementation", "cp", "--python-version", LAMBDA_PYTHON,
           "--target", str(tmp / "python")]
    for plat in PLATFORMS:
        cmd += ["--platform", plat]
    try:
        subprocess.run([*cmd, *requirements], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(
            "could not install the light functions' dependencies for the Lambda platform with pip "
            f"(needs PyPI once; or pass -c sadtalker.light_deps_dir=DIR with a prepared python/ tree):\n{exc.stderr}"
        ) from None
    for cache in (tmp / "python").rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    return _publish(tmp, final)
