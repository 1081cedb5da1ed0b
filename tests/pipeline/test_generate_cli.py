"""`sadtalker generate`: the local runtime behind the CLI (reduced profile, synthetic weights)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline_media import wav_seconds
from sadtalker.cli import main
from sadtalker.errors import WeightsMissing

pytestmark = pytest.mark.job  # whole jobs through the local state machine


@pytest.fixture
def synthetic_cache(monkeypatch) -> Path:
    root = Path(os.environ.get("SADTALKER_TEST_CACHE") or Path.home() / ".cache" / "sadtalker" / "test-weights")
    monkeypatch.setenv("SADTALKER_SYNTHETIC_DIR", str(root))
    return root


def test_generate_synthetic_reduced_writes_video_result_and_says_synthetic(media, tmp_path, capsys, synthetic_cache):
    from sadtalker.video import probe

    out = tmp_path / "out" / "talk.mp4"
    rc = main(["generate", "--image", str(media["portrait"]), "--audio", str(media["short"]), "-o", str(out),
               "--weights", "synthetic", "--profile", "reduced", "--workers", "0", "--no-still", "--seed", "5",
               "--history", "--keep-work", str(tmp_path / "work"), "-q"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert "SYNTHETIC WEIGHTS" in cap.err and "NOT a talking-head animation" in cap.err
    assert f"done: {out}" in cap.out and "render_chunks" in cap.out
    assert "MapRunSucceeded" in cap.out  # --history
    result = json.loads((out.parent / "talk.result.json").read_text())
    assert result["SYNTHETIC"] is True and result["params"]["still"] is False and result["params"]["seed"] == 5
    info = probe(out)
    assert info.frames == result["frames"] == round(25 * wav_seconds(media["short"]))
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (out.parent / "talk.preview.jpg").exists()
    kept = {p.relative_to(tmp_path / "work").parts[0] for p in (tmp_path / "work").rglob("*") if p.is_file()}
    assert kept == {"inbox", "work", "outputs"}
    assert not list(out.parent.glob(".*partial"))


def test_generate_failure_is_one_sentence_and_leaves_no_output(media, tmp_path, capsys, synthetic_cache):
    out = tmp_path / "none.mp4"
    rc = main(["generate", "--image", str(media["gradient"]), "--audio", str(media["short"]), "-o", str(out),
               "--weights", "synthetic", "--profile", "reduced", "--workers", "0", "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err[-1].startswith("sadtalker: NoFaceDetected: ") and err[-1].endswith("(in Preprocess)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,message", [
    (["--image", "missing.png", "--audio", "x.wav"], "does not exist"),
    (["--image", "{portrait}", "--audio", "{speech}", "-o", "x.avi"], "must end in .mp4"),
    (["--image", "{portrait}", "--audio", "{speech}", "--pose-style", "99"], "pose_style"),
])
def test_generate_usage_errors(media, tmp_path, capsys, argv, message):
    argv = [a.format(portrait=media["portrait"], speech=media["speech"]) for a in argv]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "o.mp4")]
    rc = main(["generate", *argv, "--weights", "synthetic"])
    err = capsys.readouterr().err
    assert rc in (1, 2) and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_auto_weights_offline_falls_back_to_synthetic_loudly(tmp_path, monkeypatch, synthetic_cache):
    from sadtalker.local import generate
    from sadtalker.params import JobParams
    from sadtalker.weights import store

    monkeypatch.setenv("SADTALKER_WEIGHTS", str(tmp_path / "empty"))

    def offline(names, out_dir, **kw):
        raise WeightsMissing(f"cannot download {names[0]}: this machine looks offline")

    monkeypatch.setattr(store, "download", offline)
    said: list[str] = []
    path = generate.resolve_weights("auto", JobParams(), "reduced", said.append)
    text = "\n".join(said)
    assert "FALLING BACK TO SYNTHETIC WEIGHTS" in text and "sadtalker weights download" in text
    assert store.ModelStore(path).synthetic and store.ModelStore(path).profile == "reduced"
    # an explicit directory never falls back
    with pytest.raises(WeightsMissing, match="sadtalker weights download"):
        generate.resolve_weights(str(tmp_path / "empty"), JobParams(), "reduced", said.append)


def test_auto_chunk_plans_follow_the_map_concurrency(media, tmp_path, synthetic_cache):
    """No chunk_frames: PlanChunks sizes chunks for `--concurrency` (the deployed RenderMaxConcurrency),
    Finalize assembles exactly the chunks of that one plan."""
    from sadtalker.params import JobParams
    from sadtalker.stages.plan_chunks import make_plan
    from sadtalker.video import probe

    frames = round(25 * wav_seconds(media["speech"]))
    plans = {}
    for concurrency in (2, 4):
        out = tmp_path / f"c{concurrency}.mp4"
        rc = main(["generate", "--image", str(media["portrait"]), "--audio", str(media["speech"]), "-o", str(out),
                   "--weights", "synthetic", "--profile", "reduced", "--workers", "0",
                   "--concurrency", str(concurrency), "-q"])
        assert rc == 0
        result = json.loads((tmp_path / f"c{concurrency}.result.json").read_text())
        expected = make_plan(frames, JobParams(), concurrency)
        assert result["plan"] == {"chunks": len(expected.chunks), "chunk_frames": expected.chunk_frames,
                                  "map_concurrency": concurrency, "ranges": 0}
        assert result["timings"]["render_chunk_count"] == len(expected.chunks)
        assert probe(out).frames == result["frames"] == frames
        plans[concurrency] = result["plan"]
    assert plans[2]["chunks"] < plans[4]["chunks"], plans
