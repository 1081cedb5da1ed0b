"""The S3-drop path: EventBridge "Object Created" under ``inbox/`` -> starter -> admission queue -> admit_job
-> StartExecution.

EventBridge targets cannot choose an execution name, and a drop may complete in any order, so:

* the starter (functions/starter.py) queues a complete folder with a settle delay (``settle_seconds``);
* admit_job (functions/admit_job.py) consumes the queue one message at a time, reads the folder then,
  and starts the execution named after the job while fewer than the ``MaxRunningJobs`` stack parameter
  run; otherwise the message returns to the queue after its visibility timeout. Drops beyond capacity
  wait (up to ``ADMISSION_ATTEMPTS`` visibility timeouts) instead of failing.

Dead letters, all in one encrypted queue (alarmed in monitoring.py): EventBridge deliveries that failed
its retries, starter invocations that failed after Lambda accepted them (async on-failure destination),
and admission messages that outwaited their attempts.
"""

from __future__ import annotations

from aws_cdk import Aws, CfnParameter, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.contract import (
    ADMISSION_QUEUE_ENV,
    MAX_RUNNING_JOBS_ENV,
    SETTLE_SECONDS_ENV,
    STATE_MACHINE_ENV,
)
from sadtalker.jobs import INBOX

from ..config import DeployConfig
from ..nag import acknowledge
from .storage import JobBucket

# A message waits for capacity this many times (x the visibility timeout) before it is a dead letter.
ADMISSION_ATTEMPTS = 240
ADMISSION_VISIBILITY = Duration.seconds(60)  # >= admit_job's timeout, as an SQS event source requires


class S3DropStarter(Construct):
    def __init__(
        self, scope: Construct, cid: str, *, config: DeployConfig, store: JobBucket, function: lambda_.Function,
        admit: lambda_.Function, state_machine_arn: str, state_machine_name: str, state_machine_id: str,
    ) -> None:
        super().__init__(scope, cid)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "This queue IS the dead-letter queue of the S3-drop path (rule target, starter, admission).",
        )
        self.queue = sqs.Queue(
            self,
            "Admission",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=ADMISSION_VISIBILITY,
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letters, max_receive_count=ADMISSION_ATTEMPTS),
        )
        function.add_environment(ADMISSION_QUEUE_ENV, self.queue.queue_url)
        function.add_environment(SETTLE_SECONDS_ENV, str(config.settle_seconds))
        self.queue.grant_send_messages(function)
        function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.dead_letters), retry_attempts=2,
            max_event_age=Duration.hours(2),
        )

        self.max_running = CfnParameter(
            Stack.of(self), "MaxRunningJobs", type="Number", default=config.max_running_jobs, min_value=1,
            description="S3-drop jobs running at once; more wait in the admission queue",
        )
        admit.add_environment(STATE_MACHINE_ENV, state_machine_arn)
        admit.add_environment(MAX_RUNNING_JOBS_ENV, self.max_running.value_as_string)
        admit.add_to_role_policy(iam.PolicyStatement(
            sid="StartAndCountJobs", actions=["states:StartExecution", "states:ListExecutions"],
            resources=[state_machine_arn],
        ))
        executions = f"arn:{Aws.PARTITION}:states:{Aws.REGION}:{Aws.ACCOUNT_ID}:execution:{state_machine_name}:*"
        admit.add_to_role_policy(iam.PolicyStatement(
            sid="SeeEarlierRuns", actions=["states:DescribeExecution"], resources=[executions],
        ))
        acknowledge(
            admit.role,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f"<{state_machine_id}.Name>:*]",
            "DescribeExecution on this state machine's executions only; their names (job ids) are known at run time.",
        )
        admit.add_event_source(sources.SqsEventSource(
            self.queue, batch_size=1, max_concurrency=2, report_batch_item_failures=True,
        ))
        self.rule = events.Rule(
            self,
            "InboxObjectCreated",
            description="sadtalker: a file landed in inbox/<job>/ - start the job once image and audio are there",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [store.bucket.bucket_name]},
                    "object": {"key": [{"prefix": INBOX}]},
                },
            ),
            targets=[targets.LambdaFunction(
                function,
                dead_letter_queue=self.dead_letters,
                retry_attempts=4,
                max_event_age=Duration.hours(2),
            )],
        )
