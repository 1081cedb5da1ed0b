"""One image per role: the weight files each role's image carries are the ones its stages load.

infra/images/select_weights.py holds the table (it runs in the image build, stdlib only); these tests
check it against the library's own idea of where a module lives (``locate_module``), and then run the
heavy stages of one job, each from a weights directory holding only its role's files, exactly as the
per-role images would (reduced-profile synthetic weights: the same loading code at a fraction of the
cost). Negative controls: a stage given another role's files fails with WeightsMissing.
"""

from __future__ import annotations

import importlib.util
import io
import json
import wave
from pathlib import Path

import pytest

from cdk_template import REPO
from sadtalker.errors import WeightsMissing
from sadtalker.face.landmarks import FA_DETECTOR_FILE, FA_LANDMARK_FILE
from sadtalker.weights.checkpoints import MAPPING_FILES, _pth_slots, bundle_name, enhancer_file, locate_module
from sadtalker.weights.manifest import ENHANCER_MODELS
from sadtalker.weights.store import PROFILE_FILE, RELEASE_URLS, SYNTHETIC_MARKER

EXAMPLES = REPO / "examples"
# What each role's stages load: module names of the checkpoint manifests, per render size.
ROLE_MODULES = {
    "preprocess": ("face_3drecon",),
    "audio2coeff": ("audio2exp", "audio2pose"),
    "render": ("kp_extractor", "generator", "mapping_crop", "mapping_full"),
    "enhance": ENHANCER_MODELS,
    "none": (),
}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "infra" / "images" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


sw = _load("select_weights")


def _role_dir(tmp: Path, role: str, src: Path) -> Path:
    out = tmp / f"role-{role}"
    sw.select(role, src, out)
    return out


def _pth_files() -> set[str]:
    return {fname for fname, _ in _pth_slots().values()}


# --- the table against the library --------------------------------------------------------------------
def test_every_known_weight_file_belongs_to_a_role_and_markers_travel_everywhere():
    in_roles = {f for files in sw.ROLES.values() for f in files}
    assert set(RELEASE_URLS) | _pth_files() <= in_roles
    assert (SYNTHETIC_MARKER, PROFILE_FILE) == sw.MARKERS
    for role in sw.ROLES:
        assert set(sw.MARKERS) <= set(sw.files_of(role))
    assert {FA_DETECTOR_FILE, FA_LANDMARK_FILE} == set(sw.FACE_ALIGNMENT)
    assert set(ROLE_MODULES) == set(sw.ROLES)


def test_the_render_image_has_no_enhancer_and_the_enhancer_image_no_sadtalker_bundle():
    enhancers = {enhancer_file(m) for m in ENHANCER_MODELS}
    assert not enhancers & set(sw.ROLES["render"])
    assert enhancers <= set(sw.ROLES["enhance"])
    assert not {bundle_name(256), bundle_name(512), *MAPPING_FILES.values()} & set(sw.ROLES["enhance"])
    assert sw.ROLES["none"] == ()


@pytest.mark.parametrize("layout", ["bundles", "v0.0.2_pth"])
@pytest.mark.parametrize("role", list(ROLE_MODULES))
def test_each_role_locates_its_modules_from_its_files_only(tmp_path, role, layout):
    """A full store (every file of every role, as empty files) filtered to the role: every module the
    role's stages load is found there, for every size the layout serves."""
    full = tmp_path / "all"
    full.mkdir()
    names = {f for files in sw.ROLES.values() for f in files}
    names -= set(sw.BUNDLES) if layout == "v0.0.2_pth" else _pth_files() - set(MAPPING_FILES.values())
    for name in names:
        (full / name).write_bytes(b"")
    only = _role_dir(tmp_path, role, full)
    sizes = (256,) if layout == "v0.0.2_pth" else (256, 512)
    for module in ROLE_MODULES[role]:
        for size in sizes:
            assert locate_module(only, module, size).path.parent == only
    # and nothing more: another role's module is missing, unless it shares a file with this role (a
    # safetensors bundle holds every SadTalker network; it cannot be split without changing the files)
    others = {m for r, ms in ROLE_MODULES.items() if r != role for m in ms} - set(ROLE_MODULES[role])
    shared = {m for m in others if locate_module(full, m, 256).path.name in sw.ROLES[role]}
    assert shared <= {"face_3drecon", "audio2exp", "audio2pose", "kp_extractor", "generator"}
    if layout == "v0.0.2_pth":
        assert not shared
    for module in others - shared:
        with pytest.raises(WeightsMissing):
            locate_module(only, module, 256)


def test_select_refuses_an_empty_store_for_roles_that_need_weights(tmp_path):
    (tmp_path / "in").mkdir()
    for role in sw.NEEDS_FILES:
        with pytest.raises(SystemExit, match="weights download"):
            sw.select(role, tmp_path / "in", tmp_path / f"out-{role}")
    assert sw.select("enhance", tmp_path / "in", tmp_path / "out-enhance") == []
    with pytest.raises(SystemExit, match="unknown weights role"):
        sw.files_of("renderer")


# --- the stages of one job, each from its role's files --------------------------------------------------
def _short_wav(seconds: float) -> bytes:
    with wave.open(str(EXAMPLES / "speech.wav"), "rb") as src:
        rate, width, channels = src.getframerate(), src.getsampwidth(), src.getnchannels()
        frames = src.readframes(int(rate * seconds))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(frames)
    return buf.getvalue()


@pytest.mark.job
def test_a_job_runs_with_each_stage_reading_only_its_roles_weights(tmp_path, reduced_weights):
    from sadtalker.jobs import JobKeys, JobRecord
    from sadtalker.params import JobParams
    from sadtalker.stages.audio2coeff import audio2coeff
    from sadtalker.stages.audio_features import audio_features
    from sadtalker.stages.enhance_range import enhance_range
    from sadtalker.stages.finalize import finalize
    from sadtalker.stages.plan_chunks import make_plan
    from sadtalker.stages.preprocess import preprocess
    from sadtalker.stages.render_chunk import render_chunk
    from sadtalker.stages.validate_job import validate_job
    from sadtalker.storage import LocalStorage
    from sadtalker.weights import ModelStore

    stores = {role: ModelStore(_role_dir(tmp_path, role, reduced_weights)) for role in sw.ROLES}
    assert not stores["none"].files() or {p.name for p in stores["none"].files()} <= set(sw.MARKERS)
    storage, job = LocalStorage(tmp_path / "bucket"), JobKeys("roles")
    image_key, audio_key = "inbox/roles/face.png", "inbox/roles/speech.wav"
    storage.put(image_key, (EXAMPLES / "portrait.png").read_bytes())
    storage.put(audio_key, _short_wav(0.2))
    params = JobParams(enhancer="gfpgan", background_enhancer="realesrgan")
    info = validate_job(storage, job, image_key, audio_key, params)
    storage.put(job.record, JobRecord(job.job_id, "b", image_key, audio_key, params, info["seed"]).to_json())

    preprocess(storage, job, image_key, params, stores["preprocess"])
    audio_features(storage, job, audio_key, params)  # the "none" role: it loads no network
    num_frames = audio2coeff(storage, job, params, stores["audio2coeff"])["num_frames"]
    plan = make_plan(num_frames, params, 1)
    storage.put(job.plan, plan.to_json())
    for chunk in plan.chunks:
        with pytest.raises(WeightsMissing):  # control: the renderer's files are not in other images
            render_chunk(storage, job, chunk["start"], chunk["end"], params, stores["audio2coeff"])
        render_chunk(storage, job, chunk["start"], chunk["end"], params, stores["render"])
    for r in plan.ranges:
        with pytest.raises(WeightsMissing):  # control: the render image carries no enhancer
            enhance_range(storage, job, r["start"], r["end"], stores["render"])
        enhance_range(storage, job, r["start"], r["end"], stores["enhance"])  # the Fargate range task
    finalize(storage, job, stores["none"])  # Finalize is the Lambda: a concatenation, no network
    assert storage.exists(job.video)
    result = json.loads(storage.get(job.result))
    assert result["SYNTHETIC"] is True  # the marker travelled with the role's files

    # without an enhancer RenderChunk writes the segments itself; Finalize still needs no weights
    plain = JobParams()
    storage.put(job.record, JobRecord(job.job_id, "b", image_key, audio_key, plain, info["seed"]).to_json())
    plan = make_plan(num_frames, plain, 1)
    storage.put(job.plan, plan.to_json())
    for chunk in plan.chunks:
        render_chunk(storage, job, chunk["start"], chunk["end"], plain, stores["render"])
    finalize(storage, job, stores["none"])
    assert json.loads(storage.get(job.result))["SYNTHETIC"] is True


def test_weights_from_s3_fetch_only_the_images_role(tmp_path):
    """WEIGHTS_SOURCE=s3: the entrypoint passes the image's role, so a cold start downloads what the baked-in
    image would have carried, not the whole prefix."""
    import boto3
    from moto import mock_aws

    fetch = _load("fetch_weights").fetch
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="role-weights")
        everything = {f for files in sw.ROLES.values() for f in files} | set(sw.MARKERS)
        for name in everything:
            s3.put_object(Bucket="role-weights", Key=f"sadtalker/{name}", Body=b"x")
        got = {p.name for p in fetch("s3://role-weights/sadtalker/", tmp_path / "render", client=s3, role="render").iterdir()}
        assert got == set(sw.files_of("render"))
        assert not {enhancer_file(m) for m in ENHANCER_MODELS} & got
        got = {p.name for p in fetch("s3://role-weights/sadtalker/", tmp_path / "none", client=s3, role="none").iterdir()}
        assert got == set(sw.MARKERS)
        got = {p.name for p in fetch("s3://role-weights/sadtalker/", tmp_path / "all", client=s3).iterdir()}
        assert got == everything  # no role (an image older than the split): the whole prefix
        with pytest.raises(SystemExit, match="of role render"):
            fetch("s3://role-weights/empty/", tmp_path / "empty", client=s3, role="render")
        assert list(fetch("s3://role-weights/empty/", tmp_path / "empty-enh", client=s3, role="enhance").iterdir()) == []
