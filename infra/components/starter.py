"""The S3-drop path: EventBridge "Object Created" under ``inbox/`` -> starter Lambda -> StartExecution.

EventBridge targets cannot choose an execution name, so a small Lambda (functions/starter.py) does:
when the job folder holds an image and a speech file it starts the execution named after the job;
a second event for the same job gets ExecutionAlreadyExists (a duplicate, harmless). Events that fail
after EventBridge's retries land in an encrypted dead-letter queue (alarmed in monitoring.py).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.contract import STATE_MACHINE_ENV
from sadtalker.jobs import INBOX

from ..nag import acknowledge
from .storage import JobBucket


class S3DropStarter(Construct):
    def __init__(
        self, scope: Construct, cid: str, *, store: JobBucket, function: lambda_.Function, state_machine_arn: str
    ) -> None:
        super().__init__(scope, cid)
        function.add_environment(STATE_MACHINE_ENV, state_machine_arn)
        function.add_to_role_policy(iam.PolicyStatement(
            sid="StartJobs", actions=["states:StartExecution"], resources=[state_machine_arn]
        ))
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
            "This queue IS the dead-letter queue of the S3-drop rule target.",
        )
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
