"""The EnhanceRanges state's Fargate side: network, cluster, task definition, container image.

One task per enhancement range (ecs:runTask.sync inside the EnhanceRanges Distributed Map); the
container runs the task contract's ``entrypoint`` (``main(env)``), told only JOB_ID, RANGE_START and
RANGE_END by container overrides.

Network decision: private isolated subnets in two AZs, no NAT gateway and no internet route. The task
reaches S3 through a (free) gateway endpoint and pulls its image / ships its logs through interface
endpoints for ECR (api + dkr) and CloudWatch Logs. Compared with public subnets + a public IP this keeps
the task unreachable and without egress to the internet (the ASL runs it with AssignPublicIp DISABLED);
compared with a NAT gateway it has no per-GB processing charge. The interface endpoints are the idle cost
(per AZ-hour), so they sit in ``config.endpoint_azs`` AZs (1 by default). Step Functions learns the task's
end from ECS events (runTask.sync), so the task itself needs no Step Functions endpoint.
"""

from __future__ import annotations

from aws_cdk import IgnoreMode, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from functions.contract import resolve_env
from sadtalker.local.deployed import TASK, task_entrypoint

from ..config import DeployConfig
from ..nag import acknowledge
from ..paths import DOCKERFILE, REPO_ROOT
from .functions import IMAGE_ROLES, deployed_values, grant_bucket_access, grant_weights_read, retention
from .storage import JobBucket

CONTAINER_NAME = "enhance"


class FinalizeTask(Construct):
    def __init__(self, scope: Construct, cid: str, *, config: DeployConfig, store: JobBucket) -> None:
        super().__init__(scope, cid)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="finalize", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22)
            ],
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
            restrict_default_security_group=False,
        )
        flow_logs = logs.LogGroup(
            self, "FlowLogs", retention=retention(config.log_retention_days), removal_policy=RemovalPolicy.DESTROY
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "TaskSecurityGroup",
            vpc=self.vpc,
            description="sadtalker finalize task: no ingress; HTTPS out to the VPC endpoints and S3 only",
            allow_all_outbound=False,
        )
        # No internet route exists; 443 out reaches the interface endpoints and the S3 gateway endpoint.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to VPC endpoints / S3")
        # The interface endpoints accept HTTPS from the task's security group only.
        self.endpoint_security_group = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="sadtalker VPC interface endpoints: HTTPS from the finalize task only",
            allow_all_outbound=False,
        )
        self.endpoint_security_group.add_ingress_rule(self.security_group, ec2.Port.tcp(443), "finalize task")
        endpoint_subnets = ec2.SubnetSelection(subnets=self.vpc.isolated_subnets[: config.endpoint_azs])
        self.endpoints = {
            name: self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=endpoint_subnets,
                private_dns_enabled=True,
                security_groups=[self.endpoint_security_group],
                open=False,
            )
            for name, service in (
                ("EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR),
                ("EcrDocker", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
                ("Logs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS),
            )
        }

        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=self.vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        self.log_group = logs.LogGroup(
            self, "Logs", retention=retention(config.log_retention_days), removal_policy=RemovalPolicy.DESTROY
        )
        self.execution_role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="sadtalker finalize: pull the image, write the container logs",
        )
        self.task_role = iam.Role(
            self,
            "TaskRole",
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="sadtalker enhancement task: read its chunks, write its segment (and its timing/error records in work/)",
        )
        grant_bucket_access(self.task_role, store, TASK, self.task_role)
        grant_weights_read(self.task_role, config)

        size = config.finalize
        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=size.cpu,
            memory_limit_mib=size.memory_mib,
            ephemeral_storage_gib=size.ephemeral_gib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
            task_role=self.task_role,
            execution_role=self.execution_role,
        )
        environment = resolve_env(TASK, deployed_values(config, store))
        self.container = self.task_definition.add_container(
            CONTAINER_NAME,
            container_name=CONTAINER_NAME,
            image=ecs.ContainerImage.from_asset(
                str(REPO_ROOT),
                file=DOCKERFILE,
                target="fargate",
                build_args={"WEIGHTS_SOURCE": "s3" if config.weights_s3_uri else "image",
                            "WEIGHTS_ROLE": IMAGE_ROLES[TASK.name]},
                platform=ecr_assets.Platform.LINUX_AMD64,
                ignore_mode=IgnoreMode.DOCKER,
            ),
            logging=ecs.LogDrivers.aws_logs(stream_prefix="enhance", log_group=self.log_group),
            environment=environment,
            command=["python", "-m", task_entrypoint().split(":")[0]],
            essential=True,
        )
        acknowledge(
            self.task_definition,
            "AwsSolutions-ECS2",
            "The environment holds non-secret configuration only (service name, metric namespace, bucket "
            "name, weights location); the job id and range arrive as container overrides from the state machine.",
        )
        acknowledge(
            self.execution_role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken has no resource-level permissions; the image pull itself is "
            "limited to the CDK asset repository.",
        )

    @property
    def subnet_ids(self) -> list[str]:
        return [s.subnet_id for s in self.vpc.isolated_subnets]
