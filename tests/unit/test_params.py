"""Job parameters: defaults of the seed, validation errors that name field/value/range, JSON round trip."""

from __future__ import annotations

import json

import pytest

from sadtalker.errors import InvalidParams
from sadtalker.params import MAX_PARAMS_BYTES, JobParams, params_table


def test_defaults_are_the_seed_model_params():
    p = JobParams()
    assert (p.ref_pose, p.ref_eyeblink, p.result_dir) == (None, None, "results")
    assert (p.pose_style, p.batch_size, p.expression_scale) == (0, 2, 1.0)
    assert (p.input_yaw, p.input_pitch, p.input_roll) == ([0], [0], [0])
    assert (p.enhancer, p.background_enhancer, p.device, p.still, p.preprocess) == ("", "realesrgan", "cpu", True, "crop")
    assert (p.net_recon, p.use_last_fc, p.focal, p.center) == ("resnet50", False, 1015.0, 112.0)
    assert (p.camera_d, p.z_near, p.z_far) == (10.0, 5.0, 15.0)
    assert (p.size, p.seed) == (256, None)


def test_json_round_trip():
    p = JobParams.load({"pose_style": 45, "input_yaw": [-20, 20], "preprocess": "extfull", "size": 512, "seed": 7})
    assert JobParams.load(p.to_json()) == p
    assert JobParams.load(p.to_json().encode()) == p


def test_file_and_overrides(tmp_path):
    f = tmp_path / "params.json"
    f.write_text(json.dumps({"still": False, "pose_style": 3}))
    p = JobParams.load(f, pose_style=9, enhancer=None)
    assert (p.still, p.pose_style, p.enhancer) == (False, 9, "")


@pytest.mark.parametrize(
    "data,needle",
    [
        ({"pose_style": 46}, "'pose_style' = 46"),
        ({"pose_style": "3"}, "'pose_style' = '3'"),
        ({"batch_size": 0}, "greater than or equal to 1"),
        ({"preprocess": "zoom"}, "'preprocess' = 'zoom'"),
        ({"enhancer": "codeformer"}, "'enhancer' = 'codeformer'"),
        ({"input_yaw": [0, 120]}, "between -90 and 90"),
        ({"input_pitch": []}, "'input_pitch' = []"),
        ({"size": 384}, "'size' = 384"),
        ({"still": "yes"}, "'still' = 'yes'"),
        ({"device": "cuda"}, "'device' = 'cuda'"),
        ({"posestyle": 1}, "unknown parameter 'posestyle'"),
        ({"max_audio_seconds": -1}, "'max_audio_seconds' = -1"),
    ],
)
def test_invalid_params_name_field_and_value(data, needle):
    with pytest.raises(InvalidParams) as err:
        JobParams.load(data)
    assert needle in str(err.value)


def test_int_is_accepted_for_float_fields():
    assert JobParams.load({"expression_scale": 2}).expression_scale == 2.0


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "null"])
def test_invalid_json(text):
    with pytest.raises(InvalidParams):
        JobParams.load(text)


def test_oversized_params(tmp_path):
    big = json.dumps({"result_dir": "x" * (MAX_PARAMS_BYTES + 1)})
    with pytest.raises(InvalidParams, match="at most"):
        JobParams.load(big)
    f = tmp_path / "p.json"
    f.write_text(big)
    with pytest.raises(InvalidParams, match="at most"):
        JobParams.load(f)


def test_seed_from_job_id_is_stable():
    p = JobParams()
    assert p.effective_seed("job-1") == p.effective_seed("job-1") != p.effective_seed("job-2")
    assert JobParams.load({"seed": 5}).effective_seed("job-1") == 5


def test_table_lists_every_field():
    assert [row[0] for row in params_table()] == list(JobParams.model_fields)
