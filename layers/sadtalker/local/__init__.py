"""The local runtime: the real state machine (statemachine/sadtalker.asl.json) on moto's Step Functions
interpreter, Task states routed to the real handlers in functions/, moto S3 as the bucket.

This package is the one deliberate exception to "no AWS imports in the library": it emulates AWS for
`sadtalker generate` and the pipeline tests (boto3 and moto are imported lazily, only here). It needs
the ``local`` extra (moto pinned exactly, see moto_patches.MOTO_VERSION).
"""

from .runtime import PLACEHOLDERS, LocalRuntime, substitute

__all__ = ["PLACEHOLDERS", "LocalRuntime", "substitute"]
