"""The AWS client: submit a job to a deployed stack, follow it, download the result.

    sadtalker submit --image face.jpg --audio speech.wav [-o out.mp4] [--params params.json] [--job ID]
                     [--ref-pose v.mp4] [--ref-eyeblink v.mp4] [--input-yaw DEG ...] [... the generate flags]
                     [--stack SadTalker | --bucket B --state-machine ARN] [--via sdk|drop] [--no-wait]
    sadtalker status JOB [-o out.mp4] [--link-expiry S] [--stack ...]

Library use::

    from sadtalker.client import Client
    client = Client.for_stack("SadTalker")
    job = client.submit("face.jpg", "speech.wav", params={"still": True})
    final = client.wait(job.job_id, on_progress=print)
    client.download(job.job_id, "out.mp4")

Decisions:
* Inputs always go to ``inbox/<job>/`` (the only prefix the pipeline reads), ``params.json`` first, then the
  reference videos as ``ref_pose.<ext>`` / ``ref_eyeblink.<ext>`` and a video source as ``source.<ext>`` (the
  names the S3 drop recognises, sadtalker.drop), the speech last (none in idle mode), so the
  S3-drop starter - which also sees these uploads - builds exactly the input the client would send. With
  ``--via sdk`` (default) the client calls StartExecution itself; if the starter won the race the existing
  execution's input is compared and, being equal, followed (a different input under the same job id is an
  error: execution names are unique for 90 days). ``--via drop`` only uploads and waits for the starter.
* The job id is the execution name: ``--job`` or ``<image stem>-<UTC time>-<4 hex>``.
* ``status`` prints a presigned link: the video's once the job succeeded, the HLS stream's
  (``outputs/<job>/stream.m3u8``) while it renders - playable as soon as its first segment is done. The
  link to the master playlist is signed here, with the user's credentials; the links INSIDE the playlists
  were signed by the pipeline's roles and last at most SADTALKER_LINK_EXPIRY_S (and the signing session).
* boto3 is imported lazily: the rest of the CLI works without the AWS extra.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import InvalidInput, SadTalkerError, TransientError
from .jobs import JobKeys, check_job_id, new_job_id

if TYPE_CHECKING:
    from .params import JobParams

DEFAULT_STACK = "SadTalker"
LINK_EXPIRY_S = 3600  # the status command's links (the user's own credentials sign them)
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class JobFailed(SadTalkerError):
    """A job ended without a video and without a named error record (timed out, aborted)."""


@dataclass(frozen=True)
class Deployment:
    bucket: str
    state_machine_arn: str

    def execution_arn(self, job_id: str) -> str:
        # arn:aws:states:<region>:<account>:stateMachine:<name> -> ...:execution:<name>:<job>
        prefix, sep, name = self.state_machine_arn.rpartition(":stateMachine:")
        if not sep:
            raise InvalidInput(f"{self.state_machine_arn!r} is not a state machine ARN")
        return f"{prefix}:execution:{name}:{job_id}"


@dataclass
class JobStatus:
    job_id: str
    status: str  # PENDING (not started yet) | RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    state: str = ""  # the state last entered
    chunks_done: int = 0
    chunks_total: int = 0
    elapsed: float = 0.0
    error: str | None = None
    cause: str | None = None
    output: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def line(self) -> str:
        parts = [f"[{self.job_id}] {self.status:<9}"]
        if self.state:
            parts.append(self.state)
        if self.chunks_total:
            parts.append(f"chunks {self.chunks_done}/{self.chunks_total}")
        parts.append(f"{int(self.elapsed) // 60:02d}:{int(self.elapsed) % 60:02d}")
        if self.error:
            parts.append(f"{self.error}: {self.cause or ''}".strip())
        return "  ".join(parts)


@dataclass(frozen=True)
class JobHandle:
    job_id: str
    execution_arn: str
    image_key: str
    audio_key: str | None
    started_by: str  # "client" | "starter" | "pending" (drop mode, not yet seen)


def _object_name(path: Path) -> str:
    name = _SAFE_NAME.sub("-", path.name).strip("-") or "file"
    stem, dot, ext = name.rpartition(".")
    return f"{stem}.{ext.lower()}" if dot and stem else name


def _session(profile: str | None = None, region: str | None = None):
    import boto3

    return boto3.Session(profile_name=profile, region_name=region)


def find_deployment(
    stack: str | None = None,
    *,
    bucket: str | None = None,
    state_machine_arn: str | None = None,
    cloudformation=None,
) -> Deployment:
    """The bucket and state machine: explicit values, else the stack's outputs (BucketName, StateMachineArn)."""
    bucket = bucket or os.environ.get("SADTALKER_BUCKET")
    state_machine_arn = state_machine_arn or os.environ.get("SADTALKER_STATE_MACHINE_ARN")
    if bucket and state_machine_arn:
        return Deployment(bucket, state_machine_arn)
    stack = stack or os.environ.get("SADTALKER_STACK") or DEFAULT_STACK
    cfn = cloudformation or _session().client("cloudformation")
    try:
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except Exception as exc:  # botocore ClientError: stack missing, no credentials, ...
        raise InvalidInput(
            f"cannot read the outputs of stack {stack!r} ({exc}); deploy it (cdk deploy) or pass --bucket and "
            "--state-machine"
        ) from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    missing = [k for k in ("BucketName", "StateMachineArn") if k not in outputs]
    if missing:
        raise InvalidInput(f"stack {stack!r} has no output {', '.join(missing)}: is it the sadtalker stack?")
    return Deployment(bucket or outputs["BucketName"], state_machine_arn or outputs["StateMachineArn"])


class Client:
    def __init__(self, deployment: Deployment, *, s3=None, stepfunctions=None, session=None) -> None:
        self.deployment = deployment
        if s3 is None or stepfunctions is None:
            session = session or _session()
        if s3 is None:
            from botocore.config import Config

            # SigV4: botocore's default presigning (SigV2) is refused by buckets made since mid-2020
            s3 = session.client("s3", config=Config(signature_version="s3v4"))
        self.s3 = s3
        self.sfn = stepfunctions or session.client("stepfunctions")

    @classmethod
    def for_stack(
        cls, stack: str | None = None, *, bucket: str | None = None, state_machine_arn: str | None = None,
        profile: str | None = None, region: str | None = None,
    ) -> Client:
        session = _session(profile, region)
        deployment = find_deployment(
            stack, bucket=bucket, state_machine_arn=state_machine_arn,
            cloudformation=None if (bucket and state_machine_arn) else session.client("cloudformation"),
        )
        return cls(deployment, session=session)

    # --- submit --------------------------------------------------------------------------------------
    def job_input(self, image_key: str, audio_key: str | None, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.deployment.bucket
        out = {"image": f"s3://{bucket}/{image_key}", "params": params}
        if audio_key is not None:  # idle mode (params.length_of_audio) has no speech
            out["audio"] = f"s3://{bucket}/{audio_key}"
        return out

    def upload(self, job_id: str, image: Path, audio: Path | None, params: dict[str, Any],
               refs: dict[str, Path] | None = None) -> tuple[str, str | None]:
        """params.json (if any) first, then the reference videos, the source, the speech: the last upload
        completes the job. ``params`` gets the keys of the reference videos."""
        from .drop import SOURCE_VIDEO, is_video, video_key, video_kind

        job = JobKeys(job_id)
        prefix = job.inbox
        bucket = self.deployment.bucket
        refs = refs or {}
        for kind in refs:
            params[kind] = video_key(job, kind, refs[kind])
        if params:
            self.s3.put_object(Bucket=bucket, Key=job.params_file, Body=json.dumps(params).encode(),
                               ContentType="application/json")
        image_key = video_key(job, SOURCE_VIDEO, image) if is_video(image) else prefix + _object_name(image)
        audio_key = prefix + _object_name(audio) if audio is not None else None
        if audio_key is not None and video_kind(audio_key):  # a speech clip called source.mp4 is still the speech
            audio_key = prefix + "speech" + audio.suffix.lower()
        if image_key == audio_key:
            raise InvalidInput(f"the image and the speech file would both be stored as {image_key!r}")
        for kind, path in refs.items():
            self.s3.upload_file(str(path), bucket, params[kind])
        self.s3.upload_file(str(image), bucket, image_key)
        if audio is not None:
            self.s3.upload_file(str(audio), bucket, audio_key)
        return image_key, audio_key

    def start(self, job_id: str, job_input: dict[str, Any]) -> tuple[str, str]:
        """StartExecution named after the job -> (execution ARN, who started it)."""
        arn = self.deployment.execution_arn(job_id)
        try:
            arn = self.sfn.start_execution(
                stateMachineArn=self.deployment.state_machine_arn, name=job_id, input=json.dumps(job_input)
            )["executionArn"]
            return arn, "client"
        except self.sfn.exceptions.ExecutionAlreadyExists:
            existing = json.loads(self.sfn.describe_execution(executionArn=arn).get("input") or "{}")
            if existing == job_input:
                return arn, "starter"
            raise InvalidInput(
                f"job {job_id!r} already exists with other inputs (execution names are unique for 90 days); "
                "choose another --job"
            ) from None

    def submit(
        self,
        image: str | os.PathLike,
        audio: str | os.PathLike | None,
        *,
        params: dict[str, Any] | JobParams | None = None,
        job_id: str | None = None,
        via: str = "sdk",
        ref_pose: str | os.PathLike | None = None,
        ref_eyeblink: str | os.PathLike | None = None,
    ) -> JobHandle:
        """Upload and start one job. ``audio`` None = idle mode (``params.length_of_audio``); ``ref_pose`` /
        ``ref_eyeblink`` are local videos, uploaded with the job and named in its params."""
        image = Path(image)
        audio = Path(audio) if audio is not None else None
        refs = {k: Path(v) for k, v in (("ref_pose", ref_pose), ("ref_eyeblink", ref_eyeblink)) if v is not None}
        named = [(image, "image"), *([(audio, "speech file")] if audio else []),
                 *((path, f"{kind} video") for kind, path in refs.items())]
        for path, what in named:
            if not path.is_file():
                raise InvalidInput(f"the {what} {str(path)!r} does not exist")
        if via not in ("sdk", "drop"):
            raise InvalidInput(f"via must be 'sdk' or 'drop', got {via!r}")
        from .params import JobParams  # pydantic: only when submitting

        if isinstance(params, JobParams):
            params = json.loads(params.to_json())
        params = dict(params or {})
        checked = JobParams.load(params)  # fail fast, before any upload, with InvalidParams naming the field
        if audio is None and not checked.idle:
            raise InvalidInput("a job needs a speech file, or params.length_of_audio for idle mode without speech")
        job_id = check_job_id(job_id or new_job_id(image))
        image_key, audio_key = self.upload(job_id, image, audio, params, refs)
        if via == "drop":
            return JobHandle(job_id, self.deployment.execution_arn(job_id), image_key, audio_key, "pending")
        arn, who = self.start(job_id, self.job_input(image_key, audio_key, params))
        return JobHandle(job_id, arn, image_key, audio_key, who)

    # --- follow ----------------------------------------------------------------------------------------
    def status(self, job_id: str) -> JobStatus:
        arn = self.deployment.execution_arn(check_job_id(job_id))
        try:
            desc = self.sfn.describe_execution(executionArn=arn)
        except self.sfn.exceptions.ExecutionDoesNotExist:
            return JobStatus(job_id, "PENDING")
        st = JobStatus(job_id, desc["status"])
        start = desc.get("startDate")
        end = desc.get("stopDate") or datetime.now(UTC)
        if start is not None:
            st.elapsed = max(0.0, (end - start).total_seconds())
        st.error, st.cause = desc.get("error"), desc.get("cause")
        if desc.get("output"):
            try:
                st.output = json.loads(desc["output"])
            except ValueError:
                st.output = {}
        self._progress(arn, st)
        return st

    def _progress(self, arn: str, st: JobStatus) -> None:
        """Current state and Map progress from the execution history: an inline Map's iterations are in it;
        a Distributed Map (RenderChunks, EnhanceRanges) runs child executions, counted by its map run."""
        token, map_run = None, None
        while True:
            kwargs = {"executionArn": arn, "maxResults": 1000}
            if token:
                kwargs["nextToken"] = token
            page = self.sfn.get_execution_history(**kwargs)
            for ev in page["events"]:
                kind = ev["type"]
                if kind.endswith("StateEntered"):
                    name = ev["stateEnteredEventDetails"]["name"]
                    if name != "RenderChunk":  # inside the Map: keep showing RenderChunks
                        st.state = name
                elif kind == "MapStateStarted":
                    st.chunks_total = ev.get("mapStateStartedEventDetails", {}).get("length", 0)
                    st.chunks_done = 0
                elif kind == "MapIterationSucceeded":
                    st.chunks_done += 1
                elif kind == "MapRunStarted":
                    map_run = ev.get("mapRunStartedEventDetails", {}).get("mapRunArn")
            token = page.get("nextToken")
            if not token:
                break
        if map_run:  # the latest map run: the render chunks, then the enhancement ranges
            counts = self.sfn.describe_map_run(mapRunArn=map_run).get("itemCounts", {})
            st.chunks_done, st.chunks_total = counts.get("succeeded", 0), counts.get("total", 0)

    def wait(
        self,
        job_id: str,
        *,
        on_progress: Callable[[JobStatus], None] | None = None,
        poll_seconds: float = 5.0,
        start_timeout: float = 120.0,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> JobStatus:
        """Poll until the job ends (or ``timeout``); PENDING longer than ``start_timeout`` is an error."""
        t0 = time.monotonic()
        last = None
        while True:
            st = self.status(job_id)
            if on_progress and st.line() != last:
                on_progress(st)
                last = st.line()
            if st.done:
                return st
            waited = time.monotonic() - t0
            if st.status == "PENDING" and waited > start_timeout:
                raise TransientError(
                    f"job {job_id!r} did not start within {start_timeout:.0f} s of the upload; check the S3-drop "
                    "starter's logs and dead-letter queue, or submit with --via sdk"
                )
            if timeout is not None and waited > timeout:
                return st
            sleep(poll_seconds)

    # --- results ---------------------------------------------------------------------------------------
    def _get_json(self, key: str) -> dict[str, Any] | None:
        try:
            body = self.s3.get_object(Bucket=self.deployment.bucket, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def error_record(self, job_id: str) -> dict[str, Any] | None:
        return self._get_json(JobKeys(job_id).error)

    def result(self, job_id: str) -> dict[str, Any] | None:
        return self._get_json(JobKeys(job_id).result)

    def raise_for_failure(self, st: JobStatus) -> None:
        """A failed job -> the named error of its error.json (or of the execution), as an exception."""
        if st.status == "SUCCEEDED" or not st.done:
            return
        rec = self.error_record(st.job_id) or {}
        raise errors.error_from_record({
            "error": rec.get("error") or st.error or "JobFailed",
            "message": rec.get("message") or st.cause or f"the job ended {st.status}",
        }, default=JobFailed)

    def _exists(self, key: str) -> bool:
        page = self.s3.list_objects_v2(Bucket=self.deployment.bucket, Prefix=key, MaxKeys=1)
        return any(o["Key"] == key for o in page.get("Contents", []))

    def link(self, job_id: str, expires_s: int = LINK_EXPIRY_S) -> tuple[str, str] | None:
        """("video", URL) once the job succeeded (result.json is written last), else ("stream", URL) when
        its HLS stream has a first segment, else None. URLs are presigned GETs valid ``expires_s`` seconds."""
        from .storage import S3Storage

        job = JobKeys(check_job_id(job_id))
        storage = S3Storage(self.deployment.bucket, self.s3)
        for name, key, marker in (("video", job.video, job.result), ("stream", job.stream, job.stream)):
            if self._exists(marker):
                try:
                    return name, storage.presign(key, expires_s)
                except ValueError as exc:
                    raise InvalidInput(f"--link-expiry: {exc}") from None
        return None

    def download(self, job_id: str, out: str | os.PathLike) -> Path:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".partial")
        self.s3.download_file(self.deployment.bucket, JobKeys(job_id).video, str(tmp))
        os.replace(tmp, out)
        return out


# --- CLI ---------------------------------------------------------------------------------------------------
def _load_params(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    text = Path(value).read_text() if not value.lstrip().startswith("{") else value
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"--params is neither a JSON file nor a JSON object: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput("--params must hold a JSON object")
    return data


def _client_from_args(args) -> Client:
    return Client.for_stack(args.stack, bucket=args.bucket, state_machine_arn=args.state_machine,
                            profile=args.profile, region=args.region)


def _printer(stream=None) -> Callable[[JobStatus], None]:
    stream = stream or sys.stderr
    tty = stream.isatty()

    def show(st: JobStatus) -> None:
        if tty:
            print("\r\033[K" + st.line(), end="" if not st.done else "\n", file=stream, flush=True)
        else:
            print(st.line(), file=stream, flush=True)

    return show


def _finish(client: Client, st: JobStatus, out: str | None) -> int:
    client.raise_for_failure(st)
    if st.status != "SUCCEEDED":
        print(f"job {st.job_id} is still {st.status}; follow it with: sadtalker status {st.job_id}")
        return 0
    result = client.result(st.job_id) or {}
    path = client.download(st.job_id, out or f"{st.job_id}.mp4")
    print(f"video: {path}  ({result.get('frames', '?')} frames, s3://{client.deployment.bucket}/"
          f"{JobKeys(st.job_id).video})")
    if (result.get("weights") or {}).get("synthetic"):
        print("NOTE: made with SYNTHETIC weights - a pipeline check, not an animation.")
    return 0


def _submit(args) -> int:
    from .cli import check_media_args, param_overrides

    check_media_args(args)
    params = _load_params(args.params)
    params.update({k: v for k, v in param_overrides(args).items() if v is not None})
    client = _client_from_args(args)
    job = client.submit(args.image, args.audio, params=params, job_id=args.job, via=args.via,
                        ref_pose=args.ref_pose, ref_eyeblink=args.ref_eyeblink)
    print(f"job {job.job_id}: inputs in s3://{client.deployment.bucket}/inbox/{job.job_id}/ "
          f"({'started' if job.started_by != 'pending' else 'waiting for the S3-drop starter'})", file=sys.stderr)
    if args.no_wait:
        print(job.job_id)
        return 0
    st = client.wait(job.job_id, on_progress=_printer(), poll_seconds=args.poll)
    return _finish(client, st, args.output)


def _status(args) -> int:
    client = _client_from_args(args)
    if args.wait:
        st = client.wait(args.job, on_progress=_printer(), poll_seconds=args.poll)
    else:
        st = client.status(args.job)
        print(st.line())
    if st.status in ("RUNNING", "SUCCEEDED"):
        found = client.link(args.job, args.link_expiry)
        if found:
            print(f"{found[0]}: {found[1]}")
    if st.status == "SUCCEEDED" and args.output:
        return _finish(client, st, args.output)
    if st.done and st.status != "SUCCEEDED":
        client.raise_for_failure(st)
    return 0


def _deployment_flags(p) -> None:
    p.add_argument("--stack", help=f"CloudFormation stack to read outputs from (default ${{SADTALKER_STACK}} or "
                                   f"{DEFAULT_STACK})")
    p.add_argument("--bucket", help="job bucket (skips the stack lookup together with --state-machine)")
    p.add_argument("--state-machine", help="state machine ARN")
    p.add_argument("--profile", help="AWS profile")
    p.add_argument("--region", help="AWS region")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between progress polls (default 5)")


def add_commands(sub) -> None:
    from .cli import add_job_flags

    p = sub.add_parser("submit", help="run a job on the deployed AWS stack: upload, start, follow, download")
    add_job_flags(p)  # the same job flags as `generate`; --params may also be an inline JSON object
    p.add_argument("--job", help="job id = execution name (default: <image stem>-<UTC time>-<4 hex>)")
    p.add_argument("-o", "--output", help="where to save the video (default ./<job>.mp4)")
    p.add_argument("--via", choices=("sdk", "drop"), default="sdk",
                   help="sdk: StartExecution from here (default); drop: only upload, the S3-drop starter starts it")
    p.add_argument("--no-wait", action="store_true", help="print the job id and return after starting")
    _deployment_flags(p)
    p.set_defaults(func=_submit)

    p = sub.add_parser("status", help="state and progress of a job on the AWS stack (optionally download it)")
    p.add_argument("job", help="job id (the execution name)")
    p.add_argument("-o", "--output", help="download the video here if the job succeeded")
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    p.add_argument("--link-expiry", type=int, default=LINK_EXPIRY_S, metavar="S",
                   help=f"lifetime of the printed video/stream link in seconds (default {LINK_EXPIRY_S})")
    _deployment_flags(p)
    p.set_defaults(func=_status)
