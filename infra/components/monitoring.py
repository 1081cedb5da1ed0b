"""Alarms and the dashboard.

Alarms: failed / timed-out executions; throttles of every function (a throttled RenderChunk stretches a
job; the Map retries TooManyRequests, so throttling is a capacity signal, not a failure); dead letters of
the S3-drop rule. Dashboard: executions, stage durations and frames/s from the handlers' Powertools
metrics (namespace ``SadTalker``, each stage's dimensions from its contract: StageSeconds,
SecondsPerFrame, FramesRendered, ModelLoadSeconds; ColdStart by function_name + service), Lambda duration/errors/throttles.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.contract import CONTRACTS, HEAVY_FUNCTIONS, METRICS_NAMESPACE, SERVICE, contract_of_stage

from ..config import DeployConfig
from .functions import PipelineFunctions

# The stages whose handlers emit stage metrics (the S3-drop starter is no stage).
STAGES = tuple(dict.fromkeys(c.stage for c in CONTRACTS.values() if c.event is not None))
FIVE_MIN = Duration.minutes(5)


def stage_metric(name: str, stage: str, statistic: str = "Average") -> cw.Metric:
    """A metric as the stage's handler emits it: the dimensions come from its contract."""
    return cw.Metric(
        namespace=METRICS_NAMESPACE, metric_name=name, dimensions_map=contract_of_stage(stage).metric_dimensions,
        statistic=statistic, period=FIVE_MIN, label=stage,
    )


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        config: DeployConfig,
        functions: PipelineFunctions,
        state_machine_arn: str,
        dead_letters: sqs.IQueue,
    ) -> None:
        super().__init__(scope, cid)
        sm_dims = {"StateMachineArn": state_machine_arn}

        def sm_metric(name: str, statistic: str = "Sum") -> cw.Metric:
            return cw.Metric(namespace="AWS/States", metric_name=name, dimensions_map=sm_dims,
                             statistic=statistic, period=FIVE_MIN)

        self.alarms: list[cw.Alarm] = []
        self.failed_alarm = self._alarm(
            "ExecutionsFailed", sm_metric("ExecutionsFailed"), "a job failed (see outputs/<job>/error.json)"
        )
        self.timed_out_alarm = self._alarm(
            "ExecutionsTimedOut", sm_metric("ExecutionsTimedOut"), "a job hit the state machine timeout"
        )
        self.throttle_alarms = {
            name: self._alarm(
                f"{name}-Throttles",
                fn.metric_throttles(period=FIVE_MIN, statistic="Sum"),
                f"{name} is throttled (raise its reserved concurrency or the account limit, or lower "
                "RenderMaxConcurrency)",
            )
            for name, fn in functions.functions.items()
        }
        self.dead_letter_alarm = self._alarm(
            "StarterDeadLetters",
            dead_letters.metric_approximate_number_of_messages_visible(period=FIVE_MIN, statistic="Maximum"),
            "S3-drop events could not start a job (see the starter's dead-letter queue)",
        )
        if config.alarm_topic_arn:
            topic = sns.Topic.from_topic_arn(self, "AlarmTopic", config.alarm_topic_arn)
            for alarm in self.alarms:
                alarm.add_alarm_action(cw_actions.SnsAction(topic))

        heavy = HEAVY_FUNCTIONS
        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=f"{Aws.STACK_NAME}-sadtalker")
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Jobs (executions)",
                left=[sm_metric(n) for n in ("ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed",
                                             "ExecutionsTimedOut")],
                width=12,
            ),
            cw.GraphWidget(
                title="Job duration (ms)",
                left=[sm_metric("ExecutionTime", "p50"), sm_metric("ExecutionTime", "p90")],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Stage wall time (s, average)",
                left=[stage_metric("StageSeconds", s) for s in STAGES],
                width=12,
            ),
            cw.GraphWidget(
                title="Render speed",
                left=[stage_metric("SecondsPerFrame", s) for s in ("render_chunk", "finalize")],
                right=[
                    cw.MathExpression(
                        expression="frames / seconds",
                        using_metrics={
                            "frames": stage_metric("FramesRendered", "render_chunk", "Sum"),
                            "seconds": stage_metric("StageSeconds", "render_chunk", "Sum"),
                        },
                        label="frames/s per RenderChunk worker",
                        period=FIVE_MIN,
                    ),
                    cw.MathExpression(
                        expression="frames / PERIOD(frames)",
                        using_metrics={"frames": stage_metric("FramesRendered", "render_chunk", "Sum")},
                        label="frames/s, all workers",
                        period=FIVE_MIN,
                    ),
                ],
                left_y_axis=cw.YAxisProps(label="s/frame"),
                right_y_axis=cw.YAxisProps(label="frames/s"),
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Frames rendered",
                left=[stage_metric("FramesRendered", s, "Sum") for s in ("render_chunk", "finalize")],
                width=8,
            ),
            cw.GraphWidget(
                title="Model load time (s)",
                left=[stage_metric("ModelLoadSeconds", s) for s in ("preprocess", "audio2coeff", "render_chunk")],
                width=8,
            ),
            cw.GraphWidget(
                title="Cold starts",
                left=[
                    cw.Metric(namespace=METRICS_NAMESPACE, metric_name="ColdStart", statistic="Sum", period=FIVE_MIN,
                              dimensions_map={"service": SERVICE, "function_name": functions.functions[n].function_name},
                              label=n)
                    for n in heavy
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Lambda duration p90 (ms)",
                left=[functions.functions[n].metric_duration(statistic="p90", period=FIVE_MIN, label=n)
                      for n in functions.functions],
                width=8,
            ),
            cw.GraphWidget(
                title="Lambda errors",
                left=[functions.functions[n].metric_errors(period=FIVE_MIN, label=n) for n in functions.functions],
                width=8,
            ),
            cw.GraphWidget(
                title="Lambda throttles / concurrency",
                left=[functions.functions[n].metric_throttles(period=FIVE_MIN, label=n) for n in functions.functions],
                right=[cw.Metric(namespace="AWS/Lambda", metric_name="ConcurrentExecutions", statistic="Maximum",
                                 dimensions_map={"FunctionName": functions.functions["render_chunk"].function_name},
                                 period=FIVE_MIN, label="render_chunk concurrency")],
                width=8,
            ),
        )
        self.dashboard.add_widgets(cw.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24))

    def _alarm(self, cid: str, metric: cw.IMetric, description: str) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            cid,
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=f"sadtalker: {description}",
        )
        self.alarms.append(alarm)
        return alarm
