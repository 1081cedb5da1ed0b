"""Parity: face-render data preparation, keypoints, MappingNet and generator vs golden_facerender.npz.

Inputs: the coefficient sequence (golden_audio2pose ``coeffs_pred``) and source coefficients (golden_face3d
``coeff_3dmm``) for the ``prep_*`` windows; the stored ``source_image`` / ``*_semantics`` for the networks.
Parameters (batch size, frame count, expression scale, pose lists, frame indices, pose overrides) are read
from the golden. The full-size generator costs ~1.2 TFLOP per frame, so each layout renders the 3 golden
frames and the pose-override frame exactly once (module cache) and every output test reads from that.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference_data import load_golden
from sadtalker.nets.mapping import MappingConfig, MappingNet
from sadtalker.render.animate import build_renderer, source_image_float
from sadtalker.render.semantics import (
    batch_like_original,
    camera_pose_sequence,
    prepare_coefficients,
    source_window,
    target_windows,
)
from sadtalker.weights import ModelStore, load_strict

G = load_golden("sadtalker", "golden_facerender.npz")
TOL = {  # kit README
    "prep": 1e-6,
    "kp_canonical": 1e-5,
    "map": 1e-4,
    "deg": 1e-3,
    "rot": 1e-5,
    "kp": 1e-4,
    "occlusion_map": 5e-4,
    "deformation": 1e-3,
}
PRED_MAX, PRED_MEAN = 1e-2, 1e-4
HEADS = ("yaw", "pitch", "roll", "t", "exp")
NAMES = ("source", "drive0", "drive1", "drive2")


def _close(got, want, tol: float, name: str) -> None:
    got = got.detach().numpy() if torch.is_tensor(got) else np.asarray(got)
    got = got.reshape(want.shape)
    err = np.abs(got.astype(np.float64) - want)
    assert err.max() <= tol, f"{name}: max abs error {err.max():.3g} > {tol} (mean {err.mean():.3g})"


# --- data preparation ---------------------------------------------------------------------------------
def _prep_inputs():
    coeffs = load_golden("sadtalker", "golden_audio2pose.npz")["coeffs_pred"]
    source = load_golden("sadtalker", "golden_face3d.npz")["coeff_3dmm"]
    return coeffs, source, int(G["prep_frame_num"]), G["prep_target_semantics"].shape[0]


PREP_CASES = {
    "prep_target_semantics": dict(expression_scale=1.0, still=False, full_mode=False),
    "prep_still_target_semantics": dict(expression_scale=1.0, still=True, full_mode=False),
    "prep_exp15_target_semantics": dict(expression_scale=float(G["expression_scale_used"]), still=False, full_mode=False),
    "prep_full_target_semantics": dict(expression_scale=1.0, still=False, full_mode=True),
}


@pytest.mark.parametrize("name", sorted(PREP_CASES))
def test_prep_target_windows(name):
    coeffs, source, frames, bs = _prep_inputs()
    assert coeffs.shape[0] == frames
    gen, _ = prepare_coefficients(coeffs, source, **PREP_CASES[name])
    got = batch_like_original(target_windows(gen, np.arange(frames)), bs)
    assert got.shape == G[name].shape
    _close(got, G[name], TOL["prep"], name)


@pytest.mark.parametrize("name,full", [("prep_source_semantics", False), ("prep_full_source_semantics", True)])
def test_prep_source_window(name, full):
    coeffs, source, _, _ = _prep_inputs()
    _, src = prepare_coefficients(coeffs, source, expression_scale=1.0, still=False, full_mode=full)


    _close(source_window(src)[None], G[name], TOL["prep"], name)


@pytest.mark.parametrize("axis", ["yaw", "pitch", "roll"])
def test_prep_pose_sequences(axis):
    _, _, frames, bs = _prep_inputs()
    seq = camera_pose_sequence([int(v) for v in G[f"input_{axis}_list"]], frames)
    _close(batch_like_original(seq, bs), G[f"prep_exp15_{axis}_c_seq"], TOL["prep"], axis)


def test_prep_source_image():
    """img_as_float32 of the saved crop: re-quantise the stored float image and convert it back."""
    want = G["prep_source_image"][0].transpose(1, 2, 0)
    u8 = np.rint(want * 255).astype(np.uint8)
    np.testing.assert_array_equal(source_image_float(u8), want)


# --- networks -----------------------------------------------------------------------------------------
_CACHE: dict[str, dict] = {}


def _animate(weights_dir) -> dict:
    """Everything the golden stores for one layout, computed once."""
    key = str(weights_dir)
    if key in _CACHE:
        return _CACHE[key]
    torch.set_num_threads(2)
    size = G["source_image"].shape[-1]
    renderer = build_renderer(ModelStore(weights_dir), size, full_mode=False)
    state = renderer.prepare_source(G["source_image"][0].transpose(1, 2, 0), G["source_semantics"][0])
    out: dict = {"kp_canonical": state.kp_canonical}

    def record(prefix, motion, kp):
        for head in HEADS:
            out[f"{prefix}_map_{head}"] = getattr(motion, head)
        for axis in ("yaw", "pitch", "roll"):
            out[f"{prefix}_{axis}_deg"] = getattr(kp, f"{axis}_deg")
        out[f"{prefix}_rot"], out[f"{prefix}_kp"] = kp.rot, kp.kp

    record("source", state.motion, state.keypoints)
    preds = []
    for i in range(len(G["frame_index"])):  # batch 1, as the golden run
        res = renderer.render_batch(state, G["target_semantics"][:, i], {})
        record(f"drive{i}", res["motion"], res["keypoints"])
        out[f"drive{i}_occlusion_map"] = res["occlusion_map"]
        out[f"drive{i}_deformation"] = res["deformation"]
        preds.append(res["prediction"])
    out["prediction"] = torch.stack(preds, dim=1)
    overrides = {axis: G[f"posein_{axis}"].reshape(-1) for axis in ("yaw", "pitch", "roll")}
    res = renderer.render_batch(state, G["target_semantics"][:, 0], overrides)
    out["posein_kp"], out["posein_prediction"] = res["keypoints"].kp, res["prediction"].unsqueeze(1)
    _CACHE[key] = out
    return out


def test_kp_canonical(weights_any_layout):
    _close(_animate(weights_any_layout)["kp_canonical"], G["kp_canonical"], TOL["kp_canonical"], "kp_canonical")


@pytest.mark.parametrize("name", [f"{n}_map_{h}" for n in NAMES for h in HEADS])
def test_mapping_outputs(weights_any_layout, name):
    _close(_animate(weights_any_layout)[name], G[name], TOL["map"], name)


@pytest.mark.parametrize("name", [f"{n}_{a}_deg" for n in NAMES for a in ("yaw", "pitch", "roll")])
def test_degrees(weights_any_layout, name):
    _close(_animate(weights_any_layout)[name], G[name], TOL["deg"], name)


@pytest.mark.parametrize("name", [f"{n}_rot" for n in NAMES])
def test_rotation(weights_any_layout, name):
    _close(_animate(weights_any_layout)[name], G[name], TOL["rot"], name)


@pytest.mark.parametrize("name", [f"{n}_kp" for n in NAMES] + ["posein_kp"])
def test_keypoints(weights_any_layout, name):
    _close(_animate(weights_any_layout)[name], G[name], TOL["kp"], name)


@pytest.mark.parametrize("name", [f"drive{i}_occlusion_map" for i in range(3)])
def test_occlusion_maps(weights_any_layout, name):
    _close(_animate(weights_any_layout)[name], G[name], TOL["occlusion_map"], name)


def test_deformation(weights_any_layout):
    _close(_animate(weights_any_layout)["drive0_deformation"], G["drive0_deformation"], TOL["deformation"], "deformation")


@pytest.mark.parametrize("name", ["prediction", "posein_prediction"])
def test_predictions(weights_any_layout, name):
    got = _animate(weights_any_layout)[name].numpy()
    assert got.shape == G[name].shape
    err = np.abs(got.astype(np.float64) - G[name])
    assert err.max() <= PRED_MAX and err.mean() <= PRED_MEAN, f"{name}: max {err.max():.3g} mean {err.mean():.3g}"


@pytest.mark.parametrize("index", [0, 1, 2])
def test_full_mapping(weights_any_layout, index):
    """The 73-channel MappingNet (mapping_00109) on the stored full-mode windows."""
    inp = G[f"full_map{index}_input"]
    net = MappingNet(MappingConfig(coeff_nc=inp.shape[1])).eval()
    load_strict(net, ModelStore(weights_any_layout).state_dict("mapping_full"), filename="mapping", module="mapping_full")
    with torch.no_grad():
        motion = net(torch.from_numpy(inp))
    for head in HEADS:
        name = f"full_map{index}_{head}"
        _close(getattr(motion, head), G[name], TOL["map"], name)
