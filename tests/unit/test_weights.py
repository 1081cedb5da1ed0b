"""Checkpoint readers, strict loading, synthetic fill (bit-exact against the kit) and the model store."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from reference_data import reference_dir
from sadtalker.errors import CheckpointError, WeightsMissing
from sadtalker.weights import ModelStore, fill_module, load_module_state, load_strict, module_specs, requirements
from sadtalker.weights.checkpoints import locate_module, modules_of_layout, read_module
from sadtalker.weights.manifest import sadtalker_manifest

# CHECKPOINT_FILL.md section 7: SHA-256 of each module's tensors concatenated in manifest order.
MODULE_SHA256 = {
    "face_3drecon": "b1be71c88977a59b3ca3ea940991616c4080b10b103ce119417d481eefa1963b",
    "audio2exp": "586106e369a52e0dd02758e78218fafb27385f26bb17eb9855c740909b88e0e6",
    "audio2pose": "3f91298847d6ff1e5f5f8bc64671c1232cc25ee68cb1090fbd382c3fea070c1c",
    "kp_extractor": "cf8f7b8245b85fc1b410af0954e2c77b722263336db218561d35b29765cfe799",
    "generator": "36304cf44b3ff9fdcc1ca21e665fc2df733bfe835485d8e4a7ae69c94cfc831f",
    "he_estimator": "cc78b5c312d61278111dd3abbafcf3cb89f2a6a4bbbd7722957226864ab79fe2",
    "mapping_crop": "15e6f13ba79090f44e88360d918d219da85f53e97b79be8087fdaeb6d9ffef9a",
    "mapping_full": "696e66a89343e8e008f9b27ef3a6506760d3629af8cc3d05279fa172ffcd4bfa",
}
# CHECKPOINT_FILL.md section 7: first three values of sample keys.
SAMPLES = [
    ("kp_extractor", "down.weight", [7.960399450723799e-09, 9.173679416107916e-08, 6.778483339076047e-07]),
    ("kp_extractor", "predictor.down_blocks.down0.conv.weight", [0.392842561006546, 0.31125202775001526, 0.06319890171289444]),
    ("kp_extractor", "predictor.down_blocks.down0.norm.weight", [1.1250956058502197, 0.8788012862205505, 0.9726172685623169]),
    ("generator", "decoder.G_middle_0.conv_0.weight_v", [0.0024293428286910057, -0.008303756825625896, -0.0010271731298416853]),
    ("audio2pose", "netG.decoder.classbias", [-0.12345728278160095, 0.08335698395967484, 0.1528100073337555]),
    ("mapping_full", "first.0.weight", [-0.01962786167860031, 0.01721886545419693, 0.009825368411839008]),
    ("face_3drecon", "backbone.conv1.weight", [0.04761003702878952, -0.10200339555740356, -0.004351378884166479]),
]


def _sha(state: dict) -> str:
    h = hashlib.sha256()
    for v in state.values():
        arr = v.numpy() if isinstance(v, torch.Tensor) else v
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("module,key,first", SAMPLES)
def test_fill_sample_values(module, key, first):
    assert fill_module(module)[key].reshape(-1)[:3].tolist() == first


@pytest.mark.parametrize("layout", ["safetensors_256", "v0.0.2_pth"])
def test_synthetic_files_match_manifest_and_fill_spec(layout, request):
    """Every module read back from the files: manifest keys/shapes/dtypes, values bit-identical to the spec."""
    root = request.getfixturevalue("weights_256" if layout == "safetensors_256" else "weights_pth")
    for module in modules_of_layout(layout):
        source = locate_module(root, module)
        state = read_module(source)
        specs = module_specs(module)
        assert set(state) == {s.key for s in specs} and len(state) == len(specs), module
        for s in specs:
            assert tuple(state[s.key].shape) == s.shape and str(state[s.key].dtype) == f"torch.{s.dtype}", s.key
        # safetensors stores keys sorted; the check value is defined in manifest order
        assert _sha({s.key: state[s.key] for s in specs}) == MODULE_SHA256[module], module


def test_safetensors_bundle_has_exactly_the_prefixed_keys(weights_256):
    lay = sadtalker_manifest()["layouts"]["safetensors_256"]
    want = {e["prefix"] + s.key for e in lay["entries"] for s in module_specs(e["module"])}
    with safe_open(str(weights_256 / lay["file"]), framework="pt") as f:
        assert set(f.keys()) == want


def test_pth_files_nest_as_the_manifest_says(weights_pth):
    files = sadtalker_manifest()["layouts"]["v0.0.2_pth"]["files"]
    for fname, desc in files.items():
        if fname == "wav2lip.pth":
            assert not (weights_pth / fname).exists()
            continue
        obj = torch.load(weights_pth / fname, weights_only=True)
        assert set(obj) == set(desc["nesting"]), fname
        assert obj.get("epoch", 0) == 0


def test_enhancer_files_match_kit_checksums(weights_enhancers):
    sums = json.loads((reference_dir("enhancers") / "fill_checksums.json").read_text())
    for model in ("gfpgan_v1.4", "realesrgan_x2plus"):
        obj = torch.load(locate_module(weights_enhancers, model).path, weights_only=True)
        assert list(obj) == ["params_ema"]
        state = obj["params_ema"]
        assert len(state) == len(sums[model])
        for key, t in state.items():
            assert hashlib.sha256(t.numpy().tobytes()).hexdigest() == sums[model][key]["sha256"], key


def test_enhancer_loader_accepts_params_when_params_ema_is_absent(tmp_path):
    state = {k: torch.from_numpy(v) for k, v in fill_module("realesrgan_x2plus").items()}
    torch.save({"params": state}, tmp_path / "RealESRGAN_x2plus.pth")
    assert len(load_module_state(tmp_path, "realesrgan_x2plus")) == 702


# --- bad checkpoints -----------------------------------------------------------------------------------
def test_truncated_safetensors_is_a_named_error(weights_256, tmp_path):
    src = weights_256 / "SadTalker_V0.0.2_256.safetensors"
    with open(src, "rb") as fh:
        (tmp_path / src.name).write_bytes(fh.read(10_000_000))
    with pytest.raises(CheckpointError, match="SadTalker_V0.0.2_256.safetensors"):
        load_module_state(tmp_path, "generator")


def test_truncated_pth_is_a_named_error(weights_256, tmp_path):
    src = weights_256 / "mapping_00229-model.pth.tar"
    data = src.read_bytes()
    (tmp_path / src.name).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="mapping_00229-model.pth.tar"):
        load_module_state(tmp_path, "mapping_crop")


def test_wrong_layout_is_a_named_error(tmp_path):
    # a file of the right name that holds another layout (an enhancer-style dict)
    torch.save({"params_ema": {"x": torch.zeros(1)}}, tmp_path / "mapping_00229-model.pth.tar")
    with pytest.raises(CheckpointError, match=r"mapping_00229-model.pth.tar.*'mapping'"):
        load_module_state(tmp_path, "mapping_crop")


def test_wrong_module_in_slot_names_the_first_keys(tmp_path):
    state = {k: torch.from_numpy(v) for k, v in fill_module("mapping_full").items()}
    torch.save({"mapping": state, "epoch": 0}, tmp_path / "mapping_00229-model.pth.tar")
    with pytest.raises(CheckpointError, match=r"module mapping_crop: 1 mis-shaped \(first: first.0.weight"):
        load_module_state(tmp_path, "mapping_crop")


def test_missing_and_extra_keys_are_named(tmp_path):
    state = {k: torch.from_numpy(v) for k, v in fill_module("mapping_crop").items()}
    state.pop("fc_roll.bias")
    state["extra.weight"] = torch.zeros(2)
    torch.save({"mapping": state, "epoch": 0}, tmp_path / "mapping_00229-model.pth.tar")
    with pytest.raises(CheckpointError) as err:
        load_module_state(tmp_path, "mapping_crop")
    assert "1 missing (first: fc_roll.bias)" in str(err.value)
    assert "1 unexpected (first: extra.weight)" in str(err.value)


def test_missing_file_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(WeightsMissing, match=r"SadTalker_V0.0.2_256.safetensors or auido2exp_00300-model.pth.*weights download"):
        load_module_state(tmp_path, "audio2exp")
    with pytest.raises(WeightsMissing, match="GFPGANv1.4.pth"):
        load_module_state(tmp_path, "gfpgan_v1.4")


def test_load_strict_names_file_module_and_keys():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with pytest.raises(CheckpointError, match=r"f.pth, module m: 1 mis-shaped \(first: 0.weight \[2, 4\] != \[2, 3\]"):
        load_strict(net, {"0.weight": torch.zeros(2, 4), "0.bias": torch.zeros(2)}, filename="f.pth", module="m")
    load_strict(net, {"0.weight": torch.ones(2, 3), "0.bias": torch.zeros(2)}, filename="f.pth", module="m")
    assert float(net[0].weight.detach().sum()) == 6.0


# --- model store ---------------------------------------------------------------------------------------
def test_requirements_per_job_setting():
    names = lambda **kw: [r.file for r in requirements(**kw)]  # noqa: E731
    assert names() == ["SadTalker_V0.0.2_256.safetensors", "mapping_00229-model.pth.tar"]
    assert names(size=512, preprocess="extfull") == ["SadTalker_V0.0.2_512.safetensors", "mapping_00109-model.pth.tar"]
    assert names(enhancer="gfpgan")[-1] == "GFPGANv1.4.pth"
    assert names(enhancer="gfpgan", background_enhancer="realesrgan")[-1] == "RealESRGAN_x2plus.pth"
    assert "RealESRGAN_x2plus.pth" not in names(background_enhancer="realesrgan")  # only with an enhancer


def test_store_reports_missing_and_accepts_the_old_pth_set(weights_pth, weights_256, tmp_path):
    assert ModelStore(weights_pth).missing(requirements()) == []
    assert ModelStore(weights_256).missing(requirements()) == []
    assert ModelStore(weights_256).synthetic
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(weights_256 / "mapping_00229-model.pth.tar", partial)
    with pytest.raises(WeightsMissing, match="SadTalker_V0.0.2_256.safetensors"):
        ModelStore(partial).require(requirements())
    assert [r.file for r in ModelStore(partial).missing(requirements(size=512))] == [
        "SadTalker_V0.0.2_512.safetensors",
    ]


def test_store_directory_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("SADTALKER_WEIGHTS", str(tmp_path))
    assert ModelStore.open().root == tmp_path
    assert ModelStore.open(tmp_path / "x").root == Path(tmp_path / "x")
    monkeypatch.delenv("SADTALKER_WEIGHTS")
    assert ModelStore.open().root == Path.home() / ".cache" / "sadtalker" / "weights"
