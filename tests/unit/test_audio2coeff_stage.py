"""The Audio2Coeff stage: contract, cache by input hash, reference coefficients, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference_data import load_golden
from sadtalker.coefficients import generate_coefficients, load_audio_models
from sadtalker.errors import InvalidCoefficients, InvalidInput
from sadtalker.jobs import JobKeys
from sadtalker.params import JobParams
from sadtalker.stages.audio2coeff import audio2coeff
from sadtalker.storage import LocalStorage
from sadtalker.weights import ModelStore

torch.set_num_threads(2)


@pytest.fixture()
def setup(tmp_path, weights_256):
    g = load_golden("sadtalker", "golden_audio2pose.npz")
    storage = LocalStorage(tmp_path)
    job = JobKeys("job-1")
    coeff73 = np.concatenate([g["ref"][0, :1], np.array([[0.9, 3.0, -2.0]], np.float32)], axis=1)
    storage.put_npz(job.face, {"coeff_3dmm": coeff73})
    mels = g["indiv_mels"][0, :40, 0]  # 40 frames keep it quick
    storage.put_npz(job.audio, {"wav": np.zeros(40 * 640, np.float32), "indiv_mels": mels, "num_frames": np.int64(40)})
    return storage, job, ModelStore(weights_256), coeff73, mels


def test_contract_and_values(setup):
    storage, job, models, coeff73, mels = setup
    params = JobParams.load({"pose_style": 4})
    out = audio2coeff(storage, job, params, models)
    assert out["coeffs_key"] == job.coeffs and out["num_frames"] == 40 and out["cached"] is False
    z = storage.get_npz(job.coeffs)
    assert z["coeffs"].shape == (40, 70) and z["coeffs"].dtype == np.float32
    assert int(z["num_frames"]) == 40 and z["num_frames"].dtype == np.int64
    seed = params.effective_seed(job.job_id)
    assert int(z["seed"]) == seed and z["seed"].dtype == np.int64
    assert z["input_hash"].shape == () and len(str(z["input_hash"])) == 64
    want = generate_coefficients(load_audio_models(models), mels, coeff73[0, :70], pose_style=4, seed=seed)
    np.testing.assert_array_equal(z["coeffs"], want.coeffs)


def test_identical_request_is_cached(setup, monkeypatch):
    storage, job, models, *_ = setup
    params = JobParams.load({"seed": 11})
    first = audio2coeff(storage, job, params, models)
    before = storage.get(job.coeffs)
    import sadtalker.stages.audio2coeff as stage

    def boom(*a, **k):
        raise AssertionError("recomputed on a cache hit")

    monkeypatch.setattr(stage, "generate_coefficients", boom)
    again = audio2coeff(storage, job, params, models)
    assert first["cached"] is False and again["cached"] is True
    assert storage.get(job.coeffs) == before
    # params that do not change the coefficients keep the cache ...
    assert audio2coeff(storage, job, params.replace(expression_scale=2.0, still=False), models)["cached"] is True
    # ... those that do, do not
    monkeypatch.undo()
    assert audio2coeff(storage, job, params.replace(seed=12), models)["cached"] is False
    assert audio2coeff(storage, job, params.replace(seed=12, pose_style=1), models)["cached"] is False


def test_reference_coefficients(setup):
    storage, job, models, coeff73, mels = setup
    params = JobParams.load({"seed": 3, "ref_pose": "inbox/job-1/pose.mp4"})
    with pytest.raises(InvalidCoefficients, match="reference pose"):
        audio2coeff(storage, job, params, models)
    ref = np.random.default_rng(0).normal(size=(9, 70)).astype(np.float32)
    storage.put_npz(job.ref_coeffs("pose"), {"coeffs": ref})
    audio2coeff(storage, job, params, models)
    want = generate_coefficients(load_audio_models(models), mels, coeff73[0, :70], seed=3, ref_pose=ref)
    np.testing.assert_array_equal(storage.get_npz(job.coeffs)["coeffs"], want.coeffs)
    storage.put_npz(job.ref_coeffs("pose"), {"coeffs": ref[:, :20]})
    with pytest.raises(InvalidCoefficients):
        audio2coeff(storage, job, params, models)


def test_bad_or_missing_inputs(setup):
    storage, job, models, *_ = setup
    params = JobParams.load({"seed": 1})
    storage.put_npz(job.face, {"coeff_3dmm": np.zeros((1, 12), np.float32)})
    with pytest.raises(InvalidCoefficients, match="coeff_3dmm"):
        audio2coeff(storage, job, params, models)
    storage.delete(job.audio)
    storage.put_npz(job.face, {"coeff_3dmm": np.zeros((1, 73), np.float32)})
    with pytest.raises(InvalidInput, match="audio features"):
        audio2coeff(storage, job, params, models)
    assert not storage.exists(job.coeffs)
