"""Job-end notifications: execution status events -> the notify function -> an SNS topic and webhooks.

* An EventBridge rule on the state machine's "Step Functions Execution Status Change" events for
  SUCCEEDED, FAILED, TIMED_OUT and ABORTED (``sadtalker.notification.status_event_pattern``, the pattern
  the local runtime uses too) invokes functions/notify.py, so timeouts and aborted executions, which
  never reach RecordFailure, notify as well. Failed deliveries (after EventBridge's and Lambda's async
  retries) land in an encrypted dead-letter queue with an alarm.
* The topic (a stack output) carries one JSON message per job; users subscribe e-mail, SQS, HTTPS or a
  Lambda. Encrypted with the AWS-managed SNS key (only our function publishes; no other service needs
  the key), TLS enforced by its policy.
* The webhook signing secret is generated in Secrets Manager; only the notify function may read it.
  Receivers verify ``X-SadTalker-Signature`` with it (README).
* Egress: the notify function runs outside any VPC, so it reaches public HTTPS endpoints through
  Lambda's own network - no NAT, and nothing of the Finalize task's isolated subnets. Which addresses
  it may POST to is decided by the URL guard in code (public addresses only, after DNS resolution).
* ``LinkExpirySeconds`` (a stack parameter) is the lifetime of the presigned links in the messages.
"""

from __future__ import annotations

from aws_cdk import CfnParameter, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.contract import LINK_EXPIRY_ENV, LINK_EXPIRY_S, NOTIFY_TOPIC_ENV, WEBHOOK_SECRET_ENV
from sadtalker.notification import status_event_pattern

from ..config import DeployConfig
from ..nag import acknowledge

# A presigned URL signed with SigV4 is valid for at most 7 days.
MAX_LINK_EXPIRY_S = 7 * 24 * 3600


class JobNotifications(Construct):
    def __init__(self, scope: Construct, cid: str, *, config: DeployConfig, function: lambda_.Function,
                 state_machine_arn: str) -> None:
        super().__init__(scope, cid)
        self.topic = sns.Topic(
            self, "Topic", display_name="sadtalker job notifications", enforce_ssl=True,
            master_key=kms.Alias.from_alias_name(self, "SnsManagedKey", "alias/aws/sns"),
        )
        self.topic.grant_publish(function)
        self.secret = secretsmanager.Secret(
            self, "WebhookSecret",
            description="sadtalker: HMAC-SHA256 key of the X-SadTalker-Signature header of job webhooks",
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True,
                                                                        password_length=64),
        )
        self.secret.grant_read(function)
        acknowledge(
            self.secret, "AwsSolutions-SMG4",
            "Webhook receivers hold a copy of this key to verify signatures; an automatic rotation would break "
            "them silently. Rotate by hand (put a new value, update the receivers).",
        )
        self.link_expiry = CfnParameter(
            Stack.of(self), "LinkExpirySeconds", type="Number", default=LINK_EXPIRY_S, min_value=60,
            max_value=MAX_LINK_EXPIRY_S,
            description="lifetime of the presigned video/preview/stream links in job notifications (s)",
        )
        function.add_environment(NOTIFY_TOPIC_ENV, self.topic.topic_arn)
        function.add_environment(WEBHOOK_SECRET_ENV, self.secret.secret_arn)
        function.add_environment(LINK_EXPIRY_ENV, self.link_expiry.value_as_string)

        self.dead_letters = sqs.Queue(
            self, "DeadLetters", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letters, "AwsSolutions-SQS3",
            "This queue IS the dead-letter queue of the job-end notifications (rule target, notify function).",
        )
        function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.dead_letters), retry_attempts=2,
            max_event_age=Duration.hours(2),
        )
        pattern = status_event_pattern(state_machine_arn)
        self.rule = events.Rule(
            self, "JobEnded",
            description="sadtalker: a job's execution ended - publish its notification, POST its webhook",
            event_pattern=events.EventPattern(source=pattern["source"], detail_type=pattern["detail-type"],
                                              detail=pattern["detail"]),
            targets=[targets.LambdaFunction(function, dead_letter_queue=self.dead_letters, retry_attempts=4,
                                            max_event_age=Duration.hours(2))],
        )
        self.dead_letter_alarm = cw.Alarm(
            self, "DeadLetterAlarm",
            metric=self.dead_letters.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"),
            threshold=1, evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description="sadtalker: job-end notifications could not be delivered (see their dead-letter queue)",
        )
        if config.alarm_topic_arn:
            self.dead_letter_alarm.add_alarm_action(
                cw_actions.SnsAction(sns.Topic.from_topic_arn(self, "AlarmTopic", config.alarm_topic_arn)))
