"""The 3DMM regressor: module layout, strict loading from both layouts, memoized loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from sadtalker.errors import CheckpointError
from sadtalker.nets.face_recon import FaceReconNet, load_face_recon
from sadtalker.weights import ModelStore, fill_module, load_strict, module_specs
from sadtalker.weights.manifest import sadtalker_manifest

torch.set_num_threads(2)


def test_parameter_names_and_shapes_match_the_manifest() -> None:
    ours = {k: tuple(v.shape) for k, v in FaceReconNet().state_dict().items()}
    official = {s.key: tuple(s.shape) for s in module_specs("face_3drecon")}
    assert ours == official


def test_loader_is_memoized(weights_256) -> None:
    a = load_face_recon(ModelStore(weights_256), 256)
    assert a is load_face_recon(ModelStore(weights_256), 256)
    assert not a.training and not any(p.requires_grad for p in a.parameters())


def test_both_layouts_give_the_same_network(weights_256, weights_pth) -> None:
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        y1 = load_face_recon(ModelStore(weights_256), 256)(x)
        y2 = load_face_recon(ModelStore(weights_pth), 256)(x)
    assert y1.shape == (2, 257)
    torch.testing.assert_close(y1, y2, rtol=0, atol=0)


def test_batch_equals_single(weights_256) -> None:
    net = load_face_recon(ModelStore(weights_256), 256)
    x = torch.rand(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        batch = net(x)
        single = torch.cat([net(x[i : i + 1]) for i in range(3)])
    assert (batch - single).abs().max() < 1e-5


def test_a_missing_tensor_is_a_checkpoint_error(tmp_path) -> None:
    layout = sadtalker_manifest()["layouts"]["safetensors_256"]
    prefix = next(e["prefix"] for e in layout["entries"] if e["module"] == "face_3drecon")
    state = fill_module("face_3drecon")
    state.pop("final_layers.6.bias")
    save_file({prefix + k: v for k, v in state.items()}, str(tmp_path / layout["file"]))
    with pytest.raises(CheckpointError, match="final_layers.6.bias"):
        load_face_recon(ModelStore(tmp_path), 256)


def test_load_strict_rejects_a_wrong_shape() -> None:
    state = {k: torch.as_tensor(np.array(v)) for k, v in fill_module("face_3drecon").items()}
    state["final_layers.1.weight"] = torch.zeros(65, 2048, 1, 1)
    with pytest.raises(CheckpointError, match="final_layers.1.weight"):
        load_strict(FaceReconNet(), state, filename="x.safetensors", module="face_3drecon")
