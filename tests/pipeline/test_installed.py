"""The package installs and runs outside a checkout: a built (non-editable) wheel, run from another
directory, generates a video. The library, the handlers and the state machine's definition all come
from the installed wheel, never from this repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.job  # whole jobs through the local state machine

ROOT = Path(__file__).resolve().parents[2]


def test_an_installed_wheel_generates_a_video_outside_the_checkout(tmp_path, media, monkeypatch):
    from sadtalker.video import probe

    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
                   check=True, cwd=tmp_path, timeout=300)
    (wheel,) = wheels.glob("sadtalker_serverless-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, timeout=300)
    env = dict(os.environ, PYTHONPATH=str(site))
    env.setdefault("SADTALKER_SYNTHETIC_DIR", str(Path.home() / ".cache" / "sadtalker" / "test-weights"))

    where = subprocess.run(
        [sys.executable, "-c", "import json, sadtalker, functions, statemachine; "
         "print(json.dumps([sadtalker.__file__, functions.__file__, str(statemachine.ASL_FILE)]))"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True, timeout=120,
    )
    assert all(p.startswith(str(site)) for p in json.loads(where.stdout)), where.stdout

    out = elsewhere / "talk.mp4"
    run = subprocess.run(
        [str(site / "bin" / "sadtalker"), "generate", "--image", str(media["portrait"]), "--audio", str(media["short"]),
         "-o", str(out), "--weights", "synthetic", "--profile", "reduced", "--workers", "0", "-q"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert probe(out).frames == json.loads((elsewhere / "talk.result.json").read_text())["frames"] > 0
