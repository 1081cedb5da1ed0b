"""Config overrides, the light code asset (no torch), the S3 weights fetcher, and a variant synth."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest
from moto import mock_aws

from cdk_template import REPO, function_by_handler, resources, role_statements, synth
from functions.contract import HANDLERS, LIGHT_FUNCTIONS
from infra import bundling
from infra.config import DEFAULT_SIZES, build, from_context


# --- config ------------------------------------------------------------------------------------------
def test_config_defaults_and_nested_and_dotted_overrides():
    assert build({}).size("render_chunk") == DEFAULT_SIZES["render_chunk"]
    assert DEFAULT_SIZES["render_chunk"].memory_mb == 10240 and DEFAULT_SIZES["render_chunk"].timeout_s == 900
    ctx = {"sadtalker": {"functions": {"render_chunk": {"memory_mb": 8192}}, "render_concurrency": 20}}
    flat = {"sadtalker.functions.render_chunk.reserved_concurrency": "12", "sadtalker.finalize.cpu": "8192"}
    cfg = from_context(ctx.get, flat)
    rc = cfg.size("render_chunk")
    assert (rc.memory_mb, rc.reserved_concurrency, rc.timeout_s) == (8192, 12, 900)
    assert cfg.render_concurrency == 20 and cfg.finalize.cpu == 8192


@pytest.mark.parametrize("tree, fragment", [
    ({"render_concurrency": 10001}, "1..10000"),
    ({"functions": {"render_chunk": {"timeout_s": 1000}}}, "15 minutes"),
    ({"functions": {"render_chunk": {"memory_mb": 20000}}}, "memory_mb"),
    ({"functions": {"renderchunk": {"memory_mb": 1024}}}, "unknown function"),
    ({"map_concurency": 3}, "unknown sadtalker context key"),
    ({"weights_s3_uri": "bucket/prefix"}, "s3://"),
    ({"finalize": {"ephemeral_gib": 10}}, "21..200"),
])
def test_config_rejects_bad_values(tree, fragment):
    with pytest.raises(ValueError, match=fragment.replace(".", r"\.")):
        build(tree)


# --- light code asset ---------------------------------------------------------------------------------
def test_light_handlers_import_without_torch_from_the_zip_asset():
    code = bundling.light_code_dir()
    probe = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'cv2', 'scipy', 'librosa', 'boto3'):\n"
        "            raise ImportError('light function imported ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"sys.path.insert(0, {str(code)!r})\n"
        "import importlib\n"
        f"for h in {[HANDLERS[n] for n in LIGHT_FUNCTIONS]!r}:\n"
        "    mod, fn = h.rsplit('.', 1)\n"
        "    assert callable(getattr(importlib.import_module(mod), fn)), h\n"
        "import sadtalker\n"
        f"assert sadtalker.__file__.startswith({str(code)!r}), sadtalker.__file__\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/",
                          env={"PATH": "/usr/bin:/bin", "POWERTOOLS_TRACE_DISABLED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def test_light_code_asset_is_a_faithful_copy():
    code = bundling.light_code_dir()
    for src in (REPO / "functions").glob("*.py"):
        assert (code / "functions" / src.name).read_bytes() == src.read_bytes(), src.name
    assert (code / "sadtalker" / "params.py").read_bytes() == (REPO / "layers/sadtalker/params.py").read_bytes()
    assert not list(code.rglob("__pycache__"))


# --- weights from S3 at cold start --------------------------------------------------------------------------
def _load_fetch():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fetch_weights", REPO / "infra/images/fetch_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@mock_aws
def test_fetch_weights_copies_the_prefix_and_resumes(tmp_path):
    fetch = _load_fetch().fetch
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="weights-bucket")
    s3.put_object(Bucket="weights-bucket", Key="weights/SadTalker_V0.0.2_256.safetensors", Body=b"a" * 100)
    s3.put_object(Bucket="weights-bucket", Key="weights/face/s3fd.pth", Body=b"b" * 10)
    s3.put_object(Bucket="weights-bucket", Key="other/x.pth", Body=b"c")
    out = fetch("s3://weights-bucket/weights/", tmp_path / "wt", client=s3)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["SadTalker_V0.0.2_256.safetensors", "face/s3fd.pth"]
    (out / "face" / "s3fd.pth").write_bytes(b"short")  # a truncated file is fetched again
    fetch("s3://weights-bucket/weights/", out, client=s3)
    assert (out / "face" / "s3fd.pth").read_bytes() == b"b" * 10
    with pytest.raises(SystemExit, match="no weights"):
        fetch("s3://weights-bucket/nothing/", tmp_path / "empty", client=s3)
    with pytest.raises(SystemExit, match="s3://"):
        fetch("weights-bucket/weights", tmp_path / "bad", client=s3)


# --- a second synth: S3 weights, reserved concurrency, bigger Map ---------------------------------------------
@pytest.fixture(scope="module")
def variant(tmp_path_factory):
    return synth(tmp_path_factory.mktemp("cdk-variant"), {
        "sadtalker": {
            "weights_s3_uri": "s3://my-weights/sadtalker/",
            "render_concurrency": 25,
            "endpoint_azs": 2,
            "functions": {"render_chunk": {"reserved_concurrency": 30, "memory_mb": 8192}},
            "finalize": {"cpu": 8192, "memory_mib": 32768, "ephemeral_gib": 60},
        }
    })


def test_variant_synth_still_passes_cdk_nag(variant):
    assert variant.error is None, variant.error
    assert all(not p["violations"] for p in variant.report["pluginReports"])


def test_variant_applies_sizes_concurrency_and_s3_weights(variant):
    t = variant.template
    by_handler = function_by_handler(t)
    render = t["Resources"][by_handler[HANDLERS["render_chunk"]]]["Properties"]
    reserved = render["ReservedConcurrentExecutions"]["Fn::If"][2]["Ref"]
    assert t["Parameters"][reserved]["Default"] == 30 and render["MemorySize"] == 8192
    assert render["Environment"]["Variables"]["SADTALKER_WEIGHTS_S3"] == "s3://my-weights/sadtalker/"
    assert t["Parameters"]["RenderConcurrency"]["Default"] == 25
    (taskdef,) = resources(t, "AWS::ECS::TaskDefinition").values()
    assert (taskdef["Properties"]["Cpu"], taskdef["Properties"]["Memory"]) == ("8192", "32768")
    assert taskdef["Properties"]["EphemeralStorage"] == {"SizeInGiB": 60}
    env = {e["Name"]: e["Value"] for e in taskdef["Properties"]["ContainerDefinitions"][0]["Environment"]}
    assert env["SADTALKER_WEIGHTS_S3"] == "s3://my-weights/sadtalker/"
    role = render["Role"]["Fn::GetAtt"][0]
    reads = [s for s in role_statements(t, role) if s.get("Sid") == "ReadWeights"]
    assert [s["Resource"] for s in reads] == ["arn:aws:s3:::my-weights/sadtalker/*"]
    # light functions never get the weights
    validate_role = t["Resources"][by_handler[HANDLERS["validate_job"]]]["Properties"]["Role"]["Fn::GetAtt"][0]
    assert not [s for s in role_statements(t, validate_role) if s.get("Sid") == "ReadWeights"]
    # the image is built without baked weights
    assets = json.loads((variant.outdir / f"{variant.stack.stack_name}.assets.json").read_text())
    for d in assets["dockerImages"].values():
        assert d["source"]["dockerBuildArgs"]["WEIGHTS_SOURCE"] == "s3"
        assert set(d["source"]["dockerBuildArgs"]) == {"WEIGHTS_SOURCE", "WEIGHTS_ROLE"}
    interface = [e for e in resources(t, "AWS::EC2::VPCEndpoint").values()
                 if e["Properties"].get("VpcEndpointType") == "Interface"]
    assert all(len(e["Properties"]["SubnetIds"]) == 2 for e in interface)


def test_inbox_and_outputs_are_kept_unless_an_expiry_is_configured(template):
    (bucket,) = [r for r in resources(template, "AWS::S3::Bucket").values()
                 if r["Properties"].get("NotificationConfiguration")]
    ids = {r["Id"] for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert "expire-work" in ids and not {"expire-inbox", "expire-outputs"} & ids
    with pytest.raises(ValueError, match="inbox_expiry_days"):
        build({"inbox_expiry_days": -1})
    assert build({"outputs_expiry_days": 30}).outputs_expiry_days == 30


def test_heavy_functions_have_a_reserved_concurrency_parameter(template):
    from functions.contract import HEAVY_FUNCTIONS

    by_handler = function_by_handler(template)
    for name in HEAVY_FUNCTIONS:
        props = template["Resources"][by_handler[HANDLERS[name]]]["Properties"]
        cond, no_value, value = props["ReservedConcurrentExecutions"]["Fn::If"]
        assert no_value == {"Ref": "AWS::NoValue"} and "Ref" in value, name
        assert template["Parameters"][value["Ref"]]["Default"] == 0
