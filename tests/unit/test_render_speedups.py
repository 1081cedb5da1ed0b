"""The renderer's load-time rewrites keep the float32 algebra; auto chunk sizes; the bf16 switch."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from sadtalker.nets.generator import SPADE, upsampled_conv3x3, upsampled_conv3x3_weights
from sadtalker.nets.render_blocks import DownBlock3d, SameBlock2d, fold_all_batchnorms
from sadtalker.params import JobParams
from sadtalker.render import precision
from sadtalker.stages.plan_chunks import (
    CHUNK_TIME_BUDGET_S,
    auto_chunk_frames,
    estimated_seconds_per_frame,
    plan_chunks,
)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upsampled_conv_equals_conv_of_the_upsampled_map(scale):
    torch.manual_seed(scale)
    x = torch.randn(2, 5, 7, 6, dtype=torch.float64)
    w, b = torch.randn(4, 5, 3, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64)
    want = F.conv2d(F.interpolate(x, scale_factor=scale, mode="nearest"), w, b, padding=1)
    got = upsampled_conv3x3(x, *upsampled_conv3x3_weights(w, b, scale), scale)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [8, 16, 32])
def test_fast_spade_matches_the_plain_one(size):
    torch.manual_seed(size)
    plain = SPADE(6, 3, 4).double().eval()
    fast = copy.deepcopy(plain)
    fast.optimize()
    seg, x = torch.rand(1, 3, 8, 8, dtype=torch.float64), torch.randn(1, 6, size, size, dtype=torch.float64)
    torch.testing.assert_close(fast(x, seg), plain(x, seg), rtol=0, atol=1e-12)


def test_batchnorm_folding():
    torch.manual_seed(0)
    net = torch.nn.Sequential(SameBlock2d(3, 4), DownBlock3d(2, 3)).double().eval()
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-1, 1)
    x2, x3 = torch.randn(1, 3, 8, 8, dtype=torch.float64), torch.randn(1, 2, 4, 8, 8, dtype=torch.float64)
    want = net[0](x2), net[1](x3)
    assert fold_all_batchnorms(net) == 2
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    torch.testing.assert_close(net[0](x2), want[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(net[1](x3), want[1], rtol=0, atol=1e-12)


def test_auto_chunks_fill_one_map_wave_within_the_time_budget():
    params = JobParams.load(seed=0)
    assert params.chunk_frames is None
    for frames in (1, 75, 200, 625, 2000):
        size = auto_chunk_frames(frames, params, concurrency=10)
        assert size % params.batch_size == 0
        assert size * estimated_seconds_per_frame(params) <= CHUNK_TIME_BUDGET_S
        chunks = -(-frames // size)
        assert chunks <= 10 or size * estimated_seconds_per_frame(params) > CHUNK_TIME_BUDGET_S - 60
    assert auto_chunk_frames(625, params, concurrency=10) == 64  # 10 chunks: one wave
    assert auto_chunk_frames(20, params, concurrency=10) == 16  # never tiny chunks
    assert len(plan_chunks(75, JobParams.load(chunk_frames=25), concurrency=10)) == 3  # an explicit value wins


def test_bf16_falls_back_to_fp32_without_native_support(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
    assert precision.effective_precision("bf16") == "fp32"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert precision.effective_precision("bf16") == "bf16"
    assert precision.effective_precision("fp32") == "fp32"


def test_allocator_tuning_applies_and_can_be_applied_again():
    import ctypes.util

    from sadtalker.render.memory import tune_allocator

    glibc = "libc" in (ctypes.util.find_library("c") or "")
    # the function itself, not its once-per-process cache: every mallopt call must succeed, twice
    assert tune_allocator.__wrapped__() is glibc and tune_allocator.__wrapped__() is glibc


@pytest.mark.heavy
def test_bf16_render_is_float32_and_close_to_fp32(reduced_weights):
    """The bf16 path on the reduced renderer: float32 outputs, same shapes, close to the fp32 frames."""
    import numpy as np

    from sadtalker.render.animate import RenderOptions, build_renderer
    from sadtalker.render.semantics import prepare_motion
    from sadtalker.weights import ModelStore

    root = reduced_weights
    renderer = build_renderer(ModelStore(root), 256, False)
    plain = build_renderer(ModelStore(root), 256, False, RenderOptions.plain())
    rng = np.random.default_rng(0)
    inputs = prepare_motion(rng.normal(0, 0.1, (6, 70)).astype(np.float32), rng.normal(0, 0.1, (1, 73)),
                            JobParams.load(still=False))
    source = rng.random((256, 256, 3), dtype=np.float32)
    state = renderer.prepare_source(source, inputs.source_window())
    fp32 = renderer.render_range(state, inputs, 0, 4, batch_size=2)
    bf16 = renderer.render_range(state, inputs, 0, 4, batch_size=2, precision="bf16")
    ref = plain.render_range(plain.prepare_source(source, inputs.source_window()), inputs, 0, 4, batch_size=2)
    assert bf16.dtype == fp32.dtype == np.float32 and bf16.shape == fp32.shape
    assert np.abs(fp32 - ref).max() < 1e-4  # the float32 rewrites keep the plain path's result
    assert 0 < np.abs(bf16 - fp32).mean() < 0.05
    with pytest.raises(ValueError):
        renderer.render_batch(state, inputs.target_windows(0, 1), {}, precision="fp16")
