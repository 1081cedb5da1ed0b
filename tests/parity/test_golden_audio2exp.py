"""Parity: golden_audio2exp.npz (audio -> expression), both checkpoint layouts."""

from __future__ import annotations

import numpy as np
import torch

from reference_data import load_golden
from sadtalker.coefficients import load_audio_models, predict_expression
from sadtalker.weights import ModelStore

EXP_TOL = 1e-4  # kit README


def test_exp_coeff_pred(weights_any_layout):
    torch.set_num_threads(2)
    g = load_golden("sadtalker", "golden_audio2exp.npz")
    nets = load_audio_models(ModelStore(weights_any_layout))
    got = predict_expression(nets.audio2exp, g["indiv_mels"][0, :, 0], g["ref"][0], g["ratio_gt"][0])
    want = g["exp_coeff_pred"][0]
    assert got.shape == want.shape
    diff = np.abs(got - want)
    print(f"exp_coeff_pred: max {diff.max():.3g} mean {diff.mean():.3g}")
    assert diff.max() <= EXP_TOL
