"""The CLI: --help everywhere, one-line errors with non-zero exit, --verbose tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sadtalker.cli import build_parser, main


def _subcommands(parser):
    for action in parser._subparsers._group_actions if parser._subparsers else []:
        for name, sub in action.choices.items():
            yield [name]
            for rest in _subcommands(sub):
                yield [name, *rest]


def test_every_subcommand_has_help(capsys):
    paths = list(_subcommands(build_parser()))
    assert ["weights", "synthetic"] in paths and ["params"] in paths
    for path in paths:
        with pytest.raises(SystemExit) as ex:
            main([*path, "--help"])
        assert ex.value.code == 0
        assert "usage: sadtalker" in capsys.readouterr().out


def test_named_error_is_one_line(tmp_path, capsys):
    bad = tmp_path / "p.json"
    bad.write_text('{"pose_style": 100}')
    assert main(["params", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sadtalker: InvalidParams: parameter 'pose_style' = 100")
    assert main(["--verbose", "params", str(bad)]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_weights_synthetic_and_list(tmp_path, capsys):
    # the smallest real run: enhancers only would still write the 256 bundle, so check list on an empty dir
    assert main(["weights", "list", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "(empty or missing)" in out and "missing SadTalker_V0.0.2_256.safetensors" in out


def test_weights_list_on_synthetic_store(weights_256, capsys):
    assert main(["weights", "list", str(weights_256)]) == 0
    out = capsys.readouterr().out
    assert "[SYNTHETIC]" in out and "size=256 preprocess=crop/extcrop/resize" in out


@pytest.mark.heavy
def test_weights_synthetic_writes_official_files(tmp_path):
    out = tmp_path / "w"
    rc = subprocess.run(
        [sys.executable, "-m", "sadtalker.cli", "weights", "synthetic", str(out), "--no-enhancers"],
        capture_output=True, text=True,
    )
    assert rc.returncode == 0, rc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["SYNTHETIC", "SadTalker_V0.0.2_256.safetensors", "mapping_00109-model.pth.tar", "mapping_00229-model.pth.tar"]


def test_download_offline_fails_fast_with_a_clear_message(tmp_path, capsys, monkeypatch):
    import urllib.request

    def offline(*a, **k):
        raise OSError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert main(["weights", "download", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "WeightsMissing: cannot download SadTalker_V0.0.2_256.safetensors" in err and "offline" in err
    assert not list(tmp_path.iterdir())


def test_unknown_layout_is_a_usage_error(tmp_path, capsys):
    assert main(["weights", "synthetic", str(tmp_path), "--layout", "zip"]) == 2
    assert "unknown layout" in capsys.readouterr().err


def test_quote_prints_the_plan_and_the_dollars(tmp_path, capsys):
    import json
    from pathlib import Path

    from sadtalker.params import JobParams
    from sadtalker.stages.plan_chunks import make_plan

    examples = Path(__file__).parents[2] / "examples"
    face = str(examples / "portrait.png")
    assert main(["quote", "--image", face, "--length-of-audio", "8", "--concurrency", "150", "--json"]) == 0
    q = json.loads(capsys.readouterr().out)
    plan = make_plan(200, JobParams(length_of_audio=8), 150)
    assert (q["frames"], q["chunks"], q["chunk_frames"], q["ranges"]) == (200, len(plan.chunks), plan.chunk_frames, 0)
    assert 0 < q["usd"]["total"] < q["total_usd"] == q["usd_cold"]["total"]
    capped = tmp_path / "p.json"
    capped.write_text('{"max_cost_usd": 0.001}')
    assert main(["quote", "--image", face, "--audio", str(examples / "speech.wav"), "--params", str(capped),
                 "--concurrency", "150"]) == 0
    out = capsys.readouterr().out
    assert "frames 75 (3.00 s)" in out and "REFUSED (CostLimitExceeded)" in out
    assert main(["quote", "--image", face, "--length-of-audio", "8", "--concurrency", "-1"]) == 2
