"""SadTalkerStack: the components wired together, and the outputs that tell a user how to start a job."""

from __future__ import annotations

import json

from aws_cdk import Aws, CfnOutput, Stack
from constructs import Construct

from sadtalker.jobs import JobKeys

from .components.finalize import FinalizeTask
from .components.functions import PipelineFunctions
from .components.monitoring import Monitoring
from .components.notifications import JobNotifications
from .components.starter import S3DropStarter
from .components.storage import JobBucket
from .components.workflow import Workflow
from .config import DeployConfig

EXAMPLE = JobKeys("my-job")  # the outputs' example commands


class SadTalkerStack(Stack):
    def __init__(self, scope: Construct, cid: str, *, config: DeployConfig, **kwargs) -> None:
        super().__init__(scope, cid, **kwargs)
        self.config = config
        self.store = JobBucket(self, "Storage", config=config)
        self.functions = PipelineFunctions(self, "Functions", config=config, store=self.store)
        self.finalize = FinalizeTask(self, "Finalize", config=config, store=self.store)
        self.workflow = Workflow(self, "Workflow", config=config, functions=self.functions, finalize=self.finalize,
                                 bucket=self.store.bucket)
        self.starter = S3DropStarter(
            self, "S3Drop", config=config, store=self.store, function=self.functions.functions["starter"],
            admit=self.functions.functions["admit_job"], state_machine_arn=self.workflow.arn,
            state_machine_name=self.workflow.name,
            state_machine_id=self.get_logical_id(self.workflow.state_machine),
        )
        self.monitoring = Monitoring(
            self, "Monitoring", config=config, functions=self.functions, state_machine_arn=self.workflow.arn,
            dead_letters=self.starter.dead_letters,
        )
        self.notifications = JobNotifications(
            self, "Notifications", config=config, function=self.functions.functions["notify"],
            state_machine_arn=self.workflow.arn,
        )
        self._outputs()

    def _outputs(self) -> None:
        bucket = self.store.bucket.bucket_name
        CfnOutput(self, "BucketName", value=bucket, description="The job bucket: inbox/ in, outputs/ out")
        CfnOutput(self, "StateMachineArn", value=self.workflow.arn, description="The SadTalker state machine")
        CfnOutput(self, "NotificationTopicArn", value=self.notifications.topic.topic_arn,
                  description="Every job's end (JSON): subscribe e-mail, SQS or HTTPS")
        CfnOutput(self, "WebhookSecretArn", value=self.notifications.secret.secret_arn,
                  description="Key of the webhooks' X-SadTalker-Signature (README: verification)")
        CfnOutput(
            self,
            "StartJobS3Drop",
            description="Way 1: drop the files (params.json first if any); the result lands in outputs/<job>/",
            value=f"aws s3 cp face.jpg s3://{bucket}/{EXAMPLE.inbox}face.jpg && "
            f"aws s3 cp speech.wav s3://{bucket}/{EXAMPLE.inbox}speech.wav",
        )
        example = {
            "image": f"s3://{bucket}/{EXAMPLE.inbox}face.jpg",
            "audio": f"s3://{bucket}/{EXAMPLE.inbox}speech.wav",
            "params": {"preprocess": "crop", "still": True},
        }
        CfnOutput(
            self,
            "StartJobConsoleInput",
            description="Way 2: Step Functions console/SDK StartExecution with this input; execution name = job id",
            value=json.dumps(example),
        )
        CfnOutput(
            self,
            "StartJobCli",
            description="Way 3: the sadtalker client uploads, starts, follows and downloads",
            value=f"sadtalker submit --stack {self.stack_name} --image face.jpg --audio speech.wav -o out.mp4",
        )
        CfnOutput(
            self,
            "DashboardUrl",
            value=f"https://{Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region={Aws.REGION}"
            f"#dashboards:name={Aws.STACK_NAME}-sadtalker",
        )
