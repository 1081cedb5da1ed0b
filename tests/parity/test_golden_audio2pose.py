"""Parity: golden_audio2pose.npz (audio -> head pose with the recorded latents), both layouts.

Every variant in the file (``""`` = pose_style from the file, ``style17_`` = pose style 17) is checked;
the recorded noises are injected. The seeded sampler is also checked against the recorded noises
(the harness seeded torch with 100 + pose_style before the draws).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference_data import load_golden
from sadtalker.coefficients import generate_coefficients, load_audio_models, smooth_pose
from sadtalker.weights import ModelStore

POSE_TOL = 1e-4  # kit README: pose_pred, coeffs_pred
EXP_TOL = 1e-4
HARNESS_POSE_SEED_BASE = 100  # kit README: torch.manual_seed(100 + pose_style)


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return load_golden("sadtalker", "golden_audio2pose.npz")


def _variants(g: dict[str, np.ndarray]) -> list[tuple[str, int]]:
    out = [("", int(g["pose_style"]))]
    for key in g:
        if key.startswith("style") and key.endswith("_pose_pred"):
            prefix = key[: -len("pose_pred")]
            out.append((prefix, int(prefix[len("style") : -1])))
    return out


VARIANTS = ["", "style17_"]


def _run(g, nets, prefix: str, *, seeded: bool = False):
    style = dict(_variants(g))[prefix]
    count = int(g[prefix + "num_noise"])
    noise = None if seeded else [torch.from_numpy(g[f"{prefix}noise_{i}"]) for i in range(count)]
    ratio = load_golden("sadtalker", "golden_audio2exp.npz")["ratio_gt"][0]
    return generate_coefficients(
        nets, g["indiv_mels"][0, :, 0], g["ref"][0, 0], pose_style=style,
        blink=ratio, noise=noise, seed=HARNESS_POSE_SEED_BASE + style if seeded else None,
    )  # fmt: skip


def _check(name, got, want, tol):
    assert got.shape == want.shape, f"{name}: {got.shape} != {want.shape}"
    diff = np.abs(got.astype(np.float64) - want)
    print(f"{name}: max {diff.max():.3g} mean {diff.mean():.3g}")
    assert diff.max() <= tol


def test_variants_cover_file(golden):
    assert [p for p, _ in _variants(golden)] == VARIANTS
    assert int(golden["num_frames"]) == golden["indiv_mels"].shape[1]
    assert int(golden["seq_len"]) == 32


@pytest.mark.parametrize("prefix", VARIANTS)
def test_pose_pred(golden, weights_any_layout, prefix):
    torch.set_num_threads(2)
    res = _run(golden, load_audio_models(ModelStore(weights_any_layout)), prefix)
    assert len(res.noises) == int(golden[prefix + "num_noise"])
    _check(prefix + "pose_pred", res.pose_raw[None], golden[prefix + "pose_pred"], POSE_TOL)


def test_pose_motion_pred(golden, weights_any_layout):
    torch.set_num_threads(2)
    nets = load_audio_models(ModelStore(weights_any_layout))
    res = _run(golden, nets, "")
    _check("pose_motion_pred", res.pose_motion[None], golden["pose_motion_pred"], POSE_TOL)
    assert np.all(golden["pose_motion_pred"][0, 0] == 0)


def test_exp_coeff_pred(golden, weights_any_layout):
    torch.set_num_threads(2)
    res = _run(golden, load_audio_models(ModelStore(weights_any_layout)), "")
    _check("exp_coeff_pred", res.exp[None], golden["exp_coeff_pred"], EXP_TOL)


@pytest.mark.parametrize("prefix", VARIANTS)
def test_coeffs_pred(golden, weights_any_layout, prefix):
    torch.set_num_threads(2)
    res = _run(golden, load_audio_models(ModelStore(weights_any_layout)), prefix)
    _check(prefix + "coeffs_pred", res.coeffs, golden[prefix + "coeffs_pred"], POSE_TOL)
    # the smoothing alone, on the golden's own unsmoothed pose
    smoothed = smooth_pose(golden[prefix + "pose_pred"])[0]
    _check(prefix + "savgol", smoothed, golden[prefix + "coeffs_pred"][:, 64:70], 1e-6)


@pytest.mark.parametrize("prefix", VARIANTS)
def test_seeded_noise_reproduces_recorded(golden, weights_any_layout, prefix):
    torch.set_num_threads(2)
    res = _run(golden, load_audio_models(ModelStore(weights_any_layout)), prefix, seeded=True)
    for i, z in enumerate(res.noises):
        np.testing.assert_array_equal(z, golden[f"{prefix}noise_{i}"])
    _check(prefix + "pose_pred (seeded)", res.pose_raw[None], golden[prefix + "pose_pred"], POSE_TOL)
