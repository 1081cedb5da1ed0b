"""The state machine: statemachine/sadtalker.asl.json verbatim, ``${...}`` filled by DefinitionSubstitutions.

The ASL is hand-written, so is the role: lambda:InvokeFunction on exactly the Task states' functions,
ecs:RunTask on exactly the enhancement task definition (in our cluster), what ecs:runTask.sync needs to
follow the task (ecs:StopTask/DescribeTasks on the cluster's tasks, the managed EventBridge rule
StepFunctionsGetEventsForECSTaskRule), iam:PassRole on the task's two roles, what the Distributed Maps
need (states:StartExecution on this state machine for the child executions, Describe/StopExecution on
its executions, the S3 statements of ``STATE_MACHINE_ACCESS`` for ItemReader/ResultWriter plus the
multipart-upload actions ResultWriter uses), CloudWatch Logs delivery and X-Ray. The state machine has a
fixed name (``<stack>-sadtalker``) so its role can name it without a circular reference. Logging level
ALL with execution data (payloads are S3 keys and counts, never blobs).
"""

from __future__ import annotations

import json
import re

from aws_cdk import ArnFormat, Aws, CfnParameter, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from functions.contract import STATE_MACHINE_ACCESS, TASK_STATE_FUNCTIONS, FunctionContract
from sadtalker.jobs import JobKeys
from statemachine import ASL_FILE

from ..config import DeployConfig
from ..nag import acknowledge, acknowledge_other
from .finalize import FinalizeTask
from .functions import PipelineFunctions, retention

PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")

# ASL placeholder -> the function (contract name) whose ARN fills it.
FUNCTION_PLACEHOLDERS: dict[str, str] = {p: c.name for p, c in TASK_STATE_FUNCTIONS.items()}
ECS_RULE = "StepFunctionsGetEventsForECSTaskRule"
# Distributed Map child executions in flight at most (Step Functions' own ceiling is 10,000).
MAX_RENDER_CONCURRENCY = 10000


def asl_placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER_RE.findall(text))


class Workflow(Construct):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        config: DeployConfig,
        functions: PipelineFunctions,
        finalize: FinalizeTask,
        bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, cid)
        definition = ASL_FILE.read_text()
        json.loads(definition)  # the file must stay plain JSON (placeholders only inside strings)

        stack = Stack.of(self)
        self.max_concurrency = CfnParameter(
            stack,
            "RenderConcurrency",
            type="Number",
            default=config.render_concurrency,
            min_value=1,
            max_value=MAX_RENDER_CONCURRENCY,
            description="RenderChunk child executions in flight (Distributed Map MaxConcurrency; bounded in "
            "practice by the account's Lambda concurrency)",
        )
        subnets = finalize.subnet_ids
        substitutions: dict[str, str] = {
            placeholder: functions.functions[name].function_arn for placeholder, name in FUNCTION_PLACEHOLDERS.items()
        }
        substitutions.update({
            "RenderMaxConcurrency": self.max_concurrency.value_as_string,
            "ClusterArn": finalize.cluster.cluster_arn,
            "EnhanceTaskDefinitionArn": finalize.task_definition.task_definition_arn,
            "EnhanceSecurityGroupId": finalize.security_group.security_group_id,
            "EnhanceContainerName": finalize.container.container_name,
            "SubnetId1": subnets[0],
            "SubnetId2": subnets[1],
        })
        missing = asl_placeholders(definition) - set(substitutions)
        if missing:
            raise ValueError(f"{ASL_FILE.name} has placeholders the stack does not fill: {', '.join(sorted(missing))}")
        unused = set(substitutions) - asl_placeholders(definition)
        for name in unused:  # a renamed placeholder must not leave a silently unused substitution
            del substitutions[name]
        self.substitutions = substitutions

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/vendedlogs/states/{stack.stack_name}-sadtalker",
            retention=retention(config.log_retention_days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
            description="sadtalker state machine: invoke its functions, run the enhancement tasks, its Distributed Maps",
        )
        self.state_machine_name = f"{stack.stack_name}-sadtalker"
        own_arn = stack.format_arn(service="states", resource="stateMachine", resource_name=self.state_machine_name,
                                   arn_format=ArnFormat.COLON_RESOURCE_NAME)
        # child executions of a Distributed Map: execution:<name>/<map run>:<child>
        executions = stack.format_arn(service="states", resource="execution",
                                      resource_name=f"{self.state_machine_name}/*", arn_format=ArnFormat.COLON_RESOURCE_NAME)
        holder = FunctionContract("state_machine", "state_machine", None, STATE_MACHINE_ACCESS, {})
        s3_statements = [iam.PolicyStatement.from_json(st) for st in holder.s3_statements(bucket.bucket_arn)]
        invoked = sorted({FUNCTION_PLACEHOLDERS[p] for p in asl_placeholders(definition) if p in FUNCTION_PLACEHOLDERS})
        self.invoked_functions = invoked
        statements = [
            iam.PolicyStatement(
                sid="InvokeTaskFunctions",
                actions=["lambda:InvokeFunction"],
                resources=[functions.functions[n].function_arn for n in invoked],
            ),
            *s3_statements,
            iam.PolicyStatement(
                sid="ResultWriterUploads",
                actions=["s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
                resources=[f"{bucket.bucket_arn}/{JobKeys.any().map_results}*"],
            ),
            iam.PolicyStatement(
                sid="DistributedMapChildren",
                actions=["states:StartExecution"],
                resources=[own_arn],
            ),
            iam.PolicyStatement(
                sid="FollowDistributedMapChildren",
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[executions],
            ),
            iam.PolicyStatement(
                sid="RunEnhanceTask",
                actions=["ecs:RunTask"],
                resources=[finalize.task_definition.task_definition_arn],
                conditions={"ArnEquals": {"ecs:cluster": finalize.cluster.cluster_arn}},
            ),
            iam.PolicyStatement(
                sid="FollowEnhanceTask",
                actions=["ecs:StopTask", "ecs:DescribeTasks"],
                resources=[f"arn:{Aws.PARTITION}:ecs:{Aws.REGION}:{Aws.ACCOUNT_ID}:task/{finalize.cluster.cluster_name}/*"],
            ),
            iam.PolicyStatement(
                sid="RunTaskSyncEventRule",
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[f"arn:{Aws.PARTITION}:events:{Aws.REGION}:{Aws.ACCOUNT_ID}:rule/{ECS_RULE}"],
            ),
            iam.PolicyStatement(
                sid="PassEnhanceRoles",
                actions=["iam:PassRole"],
                resources=[finalize.task_role.role_arn, finalize.execution_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            ),
            # CloudWatch Logs vended delivery and X-Ray take no resource-level permissions.
            iam.PolicyStatement(
                sid="LogDelivery",
                actions=[
                    "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                    "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                    "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
                ],
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="XRay",
                actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                         "xray:GetSamplingTargets"],
                resources=["*"],
            ),
        ]
        self.policy = iam.Policy(self, "Policy", statements=statements)
        self.policy.attach_to_role(self.role)
        for finding, reason in (
            ("Resource::*", "CloudWatch Logs vended log delivery and X-Ray actions support no resource-level "
             "permissions (Step Functions logging/tracing documentation)."),
            (f"Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:task/<{_cluster_ref(finalize)}>/*",
             "StopTask/DescribeTasks on tasks of our own cluster only; task ids are only known at run time."),
            (f"Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:{self.state_machine_name}/*",
             "Describe/StopExecution on this state machine's own Distributed Map child executions, whose ids "
             "are only known at run time."),
            *((f"Resource::<{_bucket_ref(bucket)}.Arn>/{p}", "The Distributed Maps' item arrays and results of any "
               "job (job ids are only known at run time).") for p in STATE_MACHINE_ACCESS.patterns),
        ):
            acknowledge(self.policy, f"AwsSolutions-IAM5[{finding}]", reason)

        self.state_machine = sfn.CfnStateMachine(
            self,
            "StateMachine",
            role_arn=self.role.role_arn,
            state_machine_name=self.state_machine_name,
            definition_string=definition,
            definition_substitutions=substitutions,
            state_machine_type="STANDARD",
            logging_configuration=sfn.CfnStateMachine.LoggingConfigurationProperty(
                level="ALL",
                include_execution_data=True,
                destinations=[sfn.CfnStateMachine.LogDestinationProperty(
                    cloud_watch_logs_log_group=sfn.CfnStateMachine.CloudWatchLogsLogGroupProperty(
                        log_group_arn=self.log_group.log_group_arn
                    )
                )],
            ),
            tracing_configuration=sfn.CfnStateMachine.TracingConfigurationProperty(enabled=True),
        )
        self.state_machine.node.add_dependency(self.policy)
        # ${...} in DefinitionString is filled by DefinitionSubstitutions, not Fn::Sub: E1029 is a false positive.
        self.state_machine.add_metadata("cfn-lint", {"config": {"ignore_checks": ["E1029"]}})
        acknowledge_other(
            self.state_machine,
            "CloudFormation-Validate::E1029",
            "The ${...} placeholders in DefinitionString are filled by DefinitionSubstitutions, not Fn::Sub.",
        )
        self.arn = self.state_machine.attr_arn
        self.name = self.state_machine.attr_name


def _bucket_ref(bucket: s3.IBucket) -> str:
    return Stack.of(bucket).get_logical_id(bucket.node.default_child)


def _cluster_ref(finalize: FinalizeTask) -> str:
    return Stack.of(finalize).get_logical_id(finalize.cluster.node.default_child)
