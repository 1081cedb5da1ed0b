"""The deployed stack's sizes for the quote (sadtalker.pricing), taken from the contracts where they live."""

from __future__ import annotations

from sadtalker.pricing import Stack

from .common import setting
from .contract import CONTRACTS, ENHANCE_RANGE_SECONDS_ENV, FINALIZE_TASK_VCPUS, FINALIZE_VCPUS_ENV

# The Fargate task's memory and disk per its default size (infra/config.py FinalizeTaskSize; a test ties
# them): 4 GB per vCPU, 30 GiB of ephemeral storage.
FARGATE_GB_PER_VCPU = 4
FARGATE_EPHEMERAL_GB = 30


def deployed_stack(render_concurrency: int) -> Stack:
    """The sizes this function's environment states (PlanChunks has them; elsewhere the defaults)."""
    vcpus = float(setting(FINALIZE_VCPUS_ENV) or FINALIZE_TASK_VCPUS)
    range_seconds = setting(ENHANCE_RANGE_SECONDS_ENV)
    return Stack.from_contracts(CONTRACTS.values(), render_concurrency, vcpus, vcpus * FARGATE_GB_PER_VCPU,
                                FARGATE_EPHEMERAL_GB, float(range_seconds) if range_seconds else None)
