"""Job-end notifications in the synthesized stack: topic + output, the status-event rule, the notify function's
grants (topic, secret, exactly its contract's S3 reads) and its egress."""

from __future__ import annotations

from cdk_template import function_by_handler, object_patterns, resources, role_statements
from functions.contract import CONTRACTS, LINK_EXPIRY_ENV, LINK_EXPIRY_S, NOTIFY_TOPIC_ENV, WEBHOOK_SECRET_ENV
from sadtalker.notification import END_STATUSES, STATUS_DETAIL_TYPE, STATUS_EVENT_SOURCE


def _one(template, rtype: str) -> tuple[str, dict]:
    (item,) = resources(template, rtype).items()
    return item


def _notify(template) -> tuple[str, dict]:
    lid = function_by_handler(template)["functions.notify.handler"]
    return lid, template["Resources"][lid]["Properties"]


def _topic(template) -> str:
    return _one(template, "AWS::SNS::Topic")[0]


def test_topic_is_encrypted_tls_only_and_a_stack_output(template):
    lid, topic = _one(template, "AWS::SNS::Topic")
    assert "alias/aws/sns" in str(topic["Properties"]["KmsMasterKeyId"])
    policies = [p["Properties"] for p in resources(template, "AWS::SNS::TopicPolicy").values()
                if {"Ref": lid} in p["Properties"]["Topics"]]
    denies = [s for p in policies for s in p["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)
    assert template["Outputs"]["NotificationTopicArn"]["Value"] == {"Ref": lid}


def test_rule_sends_every_end_status_of_this_state_machine_to_notify(template):
    (sm,) = resources(template, "AWS::StepFunctions::StateMachine")
    rules = [r["Properties"] for r in resources(template, "AWS::Events::Rule").values()
             if r["Properties"]["EventPattern"].get("source") == [STATUS_EVENT_SOURCE]]
    (rule,) = rules
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == [STATUS_DETAIL_TYPE] == ["Step Functions Execution Status Change"]
    assert pattern["detail"]["stateMachineArn"] == [{"Fn::GetAtt": [sm, "Arn"]}]
    assert sorted(pattern["detail"]["status"]) == sorted(END_STATUSES) == ["ABORTED", "FAILED", "SUCCEEDED",
                                                                            "TIMED_OUT"]
    lid, _ = _notify(template)
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [lid, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1 and "DeadLetterConfig" in target
    permissions = [p["Properties"] for p in resources(template, "AWS::Lambda::Permission").values()
                   if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [lid, "Arn"]}]
    assert any(p["Principal"] == "events.amazonaws.com" for p in permissions)


def test_notify_function_environment_and_egress(template):
    _, props = _notify(template)
    env = props["Environment"]["Variables"]
    assert env[NOTIFY_TOPIC_ENV] == {"Ref": _topic(template)}
    (secret, _), = resources(template, "AWS::SecretsManager::Secret").items()
    assert env[WEBHOOK_SECRET_ENV] == {"Ref": secret}
    assert env[LINK_EXPIRY_ENV] == {"Ref": "LinkExpirySeconds"}
    assert template["Parameters"]["LinkExpirySeconds"]["Default"] == LINK_EXPIRY_S
    assert template["Parameters"]["LinkExpirySeconds"]["MaxValue"] == 7 * 24 * 3600  # SigV4's longest
    # public HTTPS egress through Lambda's own network: no VPC, so none of the isolated subnets' limits
    assert "VpcConfig" not in props
    assert props["Timeout"] == CONTRACTS["notify"].timeout_s


def test_notify_role_may_publish_read_its_secret_and_read_outcomes_only(template):
    _, props = _notify(template)
    statements = role_statements(template, props["Role"]["Fn::GetAtt"][0])

    def actions(st):
        return st["Action"] if isinstance(st["Action"], list) else [st["Action"]]

    publish = [s for s in statements if "sns:Publish" in actions(s)]
    assert [s["Resource"] for s in publish] == [{"Ref": _topic(template)}]
    (secret, res), = resources(template, "AWS::SecretsManager::Secret").items()
    assert "GenerateSecretString" in res["Properties"]
    reads = [s for s in statements if "secretsmanager:GetSecretValue" in actions(s)]
    assert [s["Resource"] for s in reads] == [{"Ref": secret}]
    s3 = [a for s in statements for a in actions(s) if a.startswith("s3:")]
    assert set(s3) == {"s3:GetObject", "s3:ListBucket"}  # never writes or deletes a job's objects
    (get,) = [s for s in statements if actions(s) == ["s3:GetObject"]]
    keys = {p.split("/", 1)[1] for p in object_patterns(get["Resource"])}
    assert keys == set(CONTRACTS["notify"].access.read) == {
        "outputs/*/result.json", "outputs/*/error.json", "work/*/job.json", "outputs/*/video.mp4",
        "outputs/*/preview.jpg", "outputs/*/stream.m3u8"}


def test_undelivered_notifications_are_dead_lettered_and_alarmed(template):
    _, props = _notify(template)
    configs = [c["Properties"] for c in resources(template, "AWS::Lambda::EventInvokeConfig").values()
               if c["Properties"]["FunctionName"] == {"Ref": function_by_handler(template)["functions.notify.handler"]}]
    (config,) = configs
    dlq = config["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    assert template["Resources"][dlq]["Type"] == "AWS::SQS::Queue"
    alarms = [a["Properties"] for a in resources(template, "AWS::CloudWatch::Alarm").values()
              if {"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}} in a["Properties"].get(
                  "Dimensions", [])]
    assert len(alarms) == 1
