"""The bf16 paths (precision="bf16"): weights cast once, channels-last, float32 between convolutions.

Behaviour only (speed lives in benchmarks/side_by_side.py): the twins compute the same algebra as the float32
networks (exactly, when the twin is built in float32), their bf16 results are float32 and close, the float32
networks are left untouched, and the enhancer records the precision it used.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sadtalker.nets.generator import OcclusionAwareSPADEGenerator
from sadtalker.nets.gfpgan import GFPGANv1Clean, lowp_gfpgan, reduced_gfpgan_config
from sadtalker.nets.render_blocks import LowPrecisionConv, lowp_conv, lowp_twin, lowp_weight
from sadtalker.nets.rrdbnet import RRDBNet, lowp_rrdbnet, reduced_rrdbnet_config
from sadtalker.params import JobParams
from sadtalker.render import precision


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _filled(net: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return net.eval()


def test_lowp_conv_is_plain_conv_in_float32_and_float32_out_in_bf16():
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 8, 9, 9), torch.randn(6, 8, 3, 3), torch.randn(6)
    assert torch.equal(lowp_conv(x, w, b, padding=1), F.conv2d(x, w, b, padding=1))
    wl = lowp_weight(w)
    assert wl.dtype == torch.bfloat16 and wl.is_contiguous(memory_format=torch.channels_last)
    got = lowp_conv(x, wl, b, padding=1)
    assert got.dtype == torch.float32 and got.is_contiguous()
    want = F.conv2d(x.bfloat16().float(), wl.float(), b.bfloat16().float(), padding=1)
    torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-2)  # only the bf16 rounding of the output
    x3, w3 = torch.randn(1, 4, 3, 6, 6), torch.randn(5, 4, 3, 3, 3)
    assert lowp_weight(w3).is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(lowp_conv(x3, lowp_weight(w3), None, padding=1), F.conv3d(x3, w3, padding=1),
                               rtol=0.05, atol=0.1)


def test_gfpgan_twin_modulates_the_input_with_the_same_algebra():
    net = _filled(GFPGANv1Clean(reduced_gfpgan_config()), 1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(1, 3, 512, 512) * 2 - 1
    with torch.inference_mode():
        noise = net.draw_noise(1, torch.Generator().manual_seed(2))
        ref = net(x, noise=noise)[0]
        same = lowp_gfpgan(net, torch.float32)(x, noise=noise)[0]  # the twin's algebra, float32 throughout
        bf16 = lowp_gfpgan(net)(x, noise=noise)[0]
    torch.testing.assert_close(same, ref, rtol=0, atol=1e-5)
    assert bf16.dtype == torch.float32
    assert 0 < (bf16 - ref).abs().mean() < 1e-3 * ref.abs().mean() + 1e-4
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())  # the fp32 net is unchanged


def test_rrdbnet_twin():
    net = _filled(RRDBNet(reduced_rrdbnet_config()), 3)
    x = torch.rand(1, 3, 32, 48)
    with torch.inference_mode():
        ref, bf16 = net(x), lowp_rrdbnet(net)(x)
    assert bf16.shape == ref.shape and bf16.dtype == torch.float32
    assert 0 < (bf16 - ref).abs().max() < 0.05 * ref.abs().max()
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_generator_twin_keeps_the_policy_modules_float32():
    from sadtalker.render.reduced import REDUCED_GENERATOR

    gen = OcclusionAwareSPADEGenerator(REDUCED_GENERATOR).eval()
    gen.optimize_for_inference()
    keys = set(gen.state_dict())
    parts = gen.lowp_parts()
    assert parts is gen.lowp_parts()  # built once
    assert set(gen.state_dict()) == keys  # the twin is not part of the checkpoint's state dict
    dm = parts["dense_motion_network"]
    assert isinstance(dm.mask, torch.nn.Conv3d) and isinstance(dm.occlusion, torch.nn.Conv2d)
    assert isinstance(dm.hourglass.decoder.conv, torch.nn.Conv3d)
    assert isinstance(dm.hourglass.decoder.up_blocks[0].conv, LowPrecisionConv)
    assert isinstance(parts["decoder"].conv_img, LowPrecisionConv)
    assert isinstance(gen.decoder.conv_img, torch.nn.Conv2d)  # the float32 generator is untouched
    with pytest.raises(ValueError):
        gen.render(None, torch.zeros(1, 15, 3), torch.zeros(1, 15, 3), precision="fp16")


def test_twin_of_a_float32_module_is_a_copy():
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    twin = lowp_twin(torch.nn.Sequential(conv, torch.nn.ReLU()), keep_fp32=(conv,))
    assert isinstance(twin[0], torch.nn.Conv2d) and twin[0] is not conv
    assert not hasattr(conv, "_keep_fp32") and not hasattr(twin[0], "_keep_fp32")


@pytest.mark.parametrize("flags,want", [({"avx2"}, "fp32"), ({"avx512_bf16"}, "bf16"), ({"amx_bf16"}, "bf16")])
def test_enhancer_records_the_precision_it_used(monkeypatch, tmp_path, flags, want):
    from sadtalker.enhance import EnhanceStats, enhance_frames
    from sadtalker.enhance.reduced import write_reduced_enhancers
    from sadtalker.weights import ModelStore

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    write_reduced_enhancers(tmp_path)
    params = JobParams.load({"enhancer": "gfpgan", "background_enhancer": "realesrgan", "precision": "bf16"})
    frame = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    stats = EnhanceStats()
    out = list(enhance_frames(iter([frame]), params=params, models=ModelStore(tmp_path), seed=0, stats=stats,
                              tile=32))
    assert stats.precision == want and out[0].shape == (128, 128, 3)
