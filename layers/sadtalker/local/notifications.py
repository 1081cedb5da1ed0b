"""Job-end notifications in the local runtime: the stack's topic, secret, rule and status events on moto.

On AWS, Step Functions puts a "Step Functions Execution Status Change" event on the default EventBridge
bus when an execution ends, and the stack's rule (infra/components/notifications.py) sends it to the
notify function. moto's interpreter emits no such events, so ``LocalNotifications`` watches the state
machine's executions (a thread, like Lambda's SQS poller for admission) and puts the same event on
moto's bus for every execution that ended; the rule - created with the same pattern
(``sadtalker.notification.status_event_pattern``) - delivers it to the notify handler, which runs with
its deployed environment and S3 policy like every other function. Delivery happens within a poll
interval of the end (EventBridge's is asynchronous too); ``flush()`` delivers what is pending now.

``topic_arn`` is the notifications topic (subscribe an SQS queue to read them), ``secret()`` the webhook
signing secret (a random value per runtime, as the stack generates one).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from functions.contract import CONTRACTS, LINK_EXPIRY_S, Deployed
from functions.observability import logger
from sadtalker.local.background import polling
from sadtalker.notification import STATUS_DETAIL_TYPE, STATUS_EVENT_SOURCE, status_event_pattern

NOTIFY = CONTRACTS["notify"]
TOPIC_NAME = "sadtalker-notifications"
SECRET_NAME = "sadtalker-webhook-signing"
RULE_NAME = "sadtalker-job-ended"
POLL_S = 0.1


def _millis(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else None


def status_event(desc: dict[str, Any]) -> dict[str, Any]:
    """The PutEvents entry Step Functions sends for an ended execution (``describe_execution`` output)."""
    detail = {
        "executionArn": desc["executionArn"], "stateMachineArn": desc["stateMachineArn"], "name": desc["name"],
        "status": desc["status"], "startDate": _millis(desc.get("startDate")),
        "stopDate": _millis(desc.get("stopDate")), "input": desc.get("input"), "output": desc.get("output"),
        "inputDetails": {"included": True}, "outputDetails": {"included": True} if "output" in desc else None,
        "error": desc.get("error"), "cause": desc.get("cause"),
    }
    return {"Source": STATUS_EVENT_SOURCE, "DetailType": STATUS_DETAIL_TYPE,
            "Resources": [desc["executionArn"]], "Detail": json.dumps(detail)}


class LocalNotifications:
    def __init__(self, client, state_machine_arn: str, topic_arn: str, secret_arn: str):
        self.client = client  # the runtime's boto3 client factory
        self.state_machine_arn = state_machine_arn
        self.topic_arn = topic_arn
        self.secret_arn = secret_arn
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def deploy(cls, client, notify_function_arn: str, state_machine_arn: str) -> LocalNotifications:
        """The topic, the generated secret, and the rule on the state machine's status events."""
        topic = client("sns").create_topic(Name=TOPIC_NAME)["TopicArn"]
        secret = client("secretsmanager").create_secret(Name=SECRET_NAME,
                                                        SecretString=secrets.token_hex(32))["ARN"]
        events = client("events")
        events.put_rule(Name=RULE_NAME, EventPattern=json.dumps(status_event_pattern(state_machine_arn)))
        events.put_targets(Rule=RULE_NAME, Targets=[{"Id": "notify", "Arn": notify_function_arn}])
        return cls(client, state_machine_arn, topic, secret)

    def deployed_values(self) -> dict[Deployed, str]:
        return {Deployed.NOTIFY_TOPIC: self.topic_arn, Deployed.WEBHOOK_SECRET: self.secret_arn,
                Deployed.LINK_EXPIRY: str(LINK_EXPIRY_S)}

    def secret(self) -> bytes:
        return self.client("secretsmanager").get_secret_value(SecretId=self.secret_arn)["SecretString"].encode()

    def flush(self) -> list[str]:
        """Put the status event of every execution that ended since the last pass; their ARNs."""
        sfn, events = self.client("stepfunctions"), self.client("events")
        sent = []
        with self._lock:
            for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=self.state_machine_arn):
                for item in page["executions"]:
                    arn = item["executionArn"]
                    if item["status"] == "RUNNING" or arn in self._seen:
                        continue
                    events.put_events(Entries=[status_event(sfn.describe_execution(executionArn=arn))])
                    self._seen.add(arn)
                    sent.append(arn)
        return sent

    @contextlib.contextmanager
    def delivering(self) -> Iterator[None]:
        """``flush`` in a loop while the runtime is open, and once more when it closes."""
        def step() -> None:
            try:
                self.flush()
            except Exception as exc:  # EventBridge's delivery is best effort too; the next pass retries
                logger.warning("status event delivery failed", extra={"error": repr(exc)})

        try:
            with polling(step, POLL_S, "status-events"):
                yield
        finally:
            self.flush()
