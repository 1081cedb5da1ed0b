"""The job bucket: ``inbox/`` (user drops, never modified), ``work/`` (intermediates, expired),
``outputs/`` (results). Private, TLS-only, encrypted, versioned, access-logged, EventBridge on.

Versioning protects inbox/ and outputs/ against overwrites and deletes; old versions expire after
``noncurrent_expiry_days``. ``work/`` objects expire after ``work_expiry_days`` (chunks are lossless and
large, and nothing reads them once the job is done). EventBridge notifications are switched on through
the CloudFormation property itself, so no notification custom resource (and its Lambda) is needed.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from sadtalker.jobs import INBOX, OUTPUTS, WORK

from ..config import DeployConfig
from ..nag import acknowledge


class JobBucket(Construct):
    def __init__(self, scope: Construct, cid: str, *, config: DeployConfig) -> None:
        super().__init__(scope, cid)
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,  # server access log targets must use SSE-S3
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=Duration.days(config.access_log_expiry_days))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This is the access-log bucket itself; logging it into itself would loop.",
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="job-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-work",
                    prefix=WORK,
                    expiration=Duration.days(config.work_expiry_days),
                    noncurrent_version_expiration=Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=Duration.days(config.noncurrent_expiry_days),
                    abort_incomplete_multipart_upload_after=Duration.days(2),
                    expired_object_delete_marker=True,
                ),
                # inputs and results are the users': kept unless the operator chooses an expiry
                *(s3.LifecycleRule(id=f"expire-{prefix.rstrip('/')}", prefix=prefix, expiration=Duration.days(days))
                  for prefix, days in ((INBOX, config.inbox_expiry_days), (OUTPUTS, config.outputs_expiry_days))
                  if days > 0),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        cfn = self.bucket.node.default_child
        cfn.add_property_override("NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True)

    # ARNs of object prefixes, for hand-written policies.
    def objects(self, pattern: str) -> str:
        return self.bucket.arn_for_objects(pattern)
