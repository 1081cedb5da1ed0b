"""What the deployed stack configures for each function, as a local run enforces it.

Two sources give the same answer (tests/infra/test_contract.py checks it function by function):

* ``from_contract`` - the declarations of functions/contract.py, from which the CDK app builds the roles
  and environments. ``sadtalker generate`` uses this: an installed package has no CDK app to synthesize.
* ``from_template`` - a synthesized CloudFormation template: each Lambda's ``Environment`` and its
  role's S3 statements, the enhancement task definition's container environment and its task role's S3
  statements, the state machine role's S3 statements. The pipeline tests run against the real synthesized stack this way, and a template edited
  by a test (one grant removed) shows what a job would do on AWS with it.

Environment values that exist only where the stack is deployed (``Deployed``: the bucket name, the
weights directory inside the image, the state machine's ARN) take the local run's values; every other
variable keeps the template's literal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from functions.contract import (
    CONTRACTS,
    ENHANCE_RANGE_TASK,
    STATE_MACHINE_ACCESS,
    Deployed,
    FunctionContract,
    resolve_env,
)

from .policy import S3Policy

# The Fargate task the state machine runs (one per enhancement range).
TASK: FunctionContract = ENHANCE_RANGE_TASK


def task_entrypoint() -> str:
    """``module:function`` the task's container runs (``main(env) -> exit code``)."""
    assert TASK.entrypoint, "the task contract names no entrypoint"
    return TASK.entrypoint


@dataclass(frozen=True)
class DeployedFunction:
    name: str
    env: dict[str, str]
    policy: S3Policy
    timeout_s: int | None = None
    memory_mb: int | None = None


def from_contract(values: dict[Deployed, str]) -> dict[str, DeployedFunction]:
    bucket = values[Deployed.BUCKET]
    arn = f"arn:aws:s3:::{bucket}"
    return {
        name: DeployedFunction(
            name, resolve_env(c, values), S3Policy(bucket, tuple(c.s3_statements(arn))),
            None if c.handler is None else c.timeout_s, None if c.handler is None else c.memory_mb,
        )
        for name, c in CONTRACTS.items()
    }


def from_template(template: dict[str, Any], values: dict[Deployed, str]) -> dict[str, DeployedFunction]:
    """Every contract's function as the template deploys it (KeyError if the template lacks one)."""
    resources = template["Resources"]
    reader = _TemplateReader(resources, values)
    out: dict[str, DeployedFunction] = {}
    by_handler = {c.handler: c for c in CONTRACTS.values() if c.handler}
    for res in resources.values():
        if res["Type"] != "AWS::Lambda::Function":
            continue
        props = res["Properties"]
        handler = props.get("Handler") or (props.get("ImageConfig") or {}).get("Command", [None])[0]
        contract = by_handler.get(handler)
        if contract is None:
            continue  # a function of CDK's own (custom resources, log retention)
        env = (props.get("Environment") or {}).get("Variables") or {}
        out[contract.name] = DeployedFunction(
            contract.name, reader.env(contract, env), reader.policy(props["Role"]),
            props.get("Timeout"), props.get("MemorySize"),
        )
    for res in resources.values():
        if res["Type"] != "AWS::ECS::TaskDefinition":
            continue
        props = res["Properties"]
        container = props["ContainerDefinitions"][0]
        env = {e["Name"]: e["Value"] for e in container.get("Environment") or []}
        out[TASK.name] = DeployedFunction(
            TASK.name, reader.env(TASK, env), reader.policy(props["TaskRoleArn"])
        )
    # a Fargate contract other than TASK has no deployment of its own
    missing = sorted(n for n, c in CONTRACTS.items() if n not in out and (c.handler or c is TASK))
    if missing:
        raise KeyError(f"the template deploys no function for: {', '.join(missing)}")
    return out


def state_machine_policy(template: dict[str, Any] | None, values: dict[Deployed, str]) -> S3Policy:
    """The S3 statements of the state machine's role (its Distributed Maps' ItemReader and ResultWriter
    calls): the template's, else the ones ``STATE_MACHINE_ACCESS`` declares."""
    bucket = values[Deployed.BUCKET]
    if template is None:
        holder = FunctionContract("state_machine", "state_machine", None, STATE_MACHINE_ACCESS, {})
        return S3Policy(bucket, tuple(holder.s3_statements(f"arn:aws:s3:::{bucket}")))
    resources = template["Resources"]
    machine = next(r for r in resources.values() if r["Type"] == "AWS::StepFunctions::StateMachine")
    return _TemplateReader(resources, values).policy(machine["Properties"]["RoleArn"])


class _TemplateReader:
    def __init__(self, resources: dict[str, Any], values: dict[Deployed, str]):
        self.resources, self.values = resources, values
        self.bucket = values[Deployed.BUCKET]

    def env(self, contract: FunctionContract, variables: dict[str, Any]) -> dict[str, str]:
        out = {}
        for name, value in variables.items():
            declared = contract.env.get(name)
            if isinstance(declared, Deployed) and declared in self.values:
                out[name] = self.values[declared]
            else:
                out[name] = self.resolve(value)
        return out

    def policy(self, role_ref: Any) -> S3Policy:
        role = role_ref["Fn::GetAtt"][0] if isinstance(role_ref, dict) and "Fn::GetAtt" in role_ref else role_ref
        statements = []
        for res in self.resources.values():
            if res["Type"] != "AWS::IAM::Policy" or {"Ref": role} not in res["Properties"].get("Roles", []):
                continue
            for st in res["Properties"]["PolicyDocument"]["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                if any(a.startswith("s3:") for a in actions):
                    statements.append(self.resolve(st))
        return S3Policy(self.bucket, tuple(statements))

    def _bucket_lid(self, lid: str) -> bool:
        return self.resources.get(lid, {}).get("Type") == "AWS::S3::Bucket" and self._is_job_bucket(lid)

    def _is_job_bucket(self, lid: str) -> bool:
        # the job bucket is the one the functions' SADTALKER_BUCKET names
        for res in self.resources.values():
            if res["Type"] == "AWS::Lambda::Function":
                variables = ((res["Properties"].get("Environment") or {}).get("Variables") or {})
                if any(v == {"Ref": lid} for v in variables.values()):
                    return True
        return False

    def resolve(self, value: Any) -> Any:
        """Intrinsics on the job bucket become the local bucket; any other token stays visible as text."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            ref = value["Ref"]
            if ref == "AWS::Partition":
                return "aws"
            return self.bucket if self._bucket_lid(ref) else f"<{ref}>"
        if set(value) == {"Fn::GetAtt"}:
            lid, attr = value["Fn::GetAtt"]
            if self._bucket_lid(lid) and attr == "Arn":
                return f"arn:aws:s3:::{self.bucket}"
            return f"<{lid}.{attr}>"
        if set(value) == {"Fn::Join"}:
            sep, parts = value["Fn::Join"]
            return sep.join(str(self.resolve(p)) for p in parts)
        return {k: self.resolve(v) for k, v in value.items()}
