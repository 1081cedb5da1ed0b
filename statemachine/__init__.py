"""The state machine's definition (``sadtalker.asl.json``): the single definition of the flow.

A package so the file travels with an installed ``sadtalker`` (the local runtime executes it); the CDK
app reads the same file and substitutes the ARNs into it.
"""

import json
from functools import lru_cache
from pathlib import Path

ASL_FILE = Path(__file__).with_name("sadtalker.asl.json")


@lru_cache(maxsize=1)
def timeouts() -> dict[str, int]:
    """TimeoutSeconds of the execution (``"execution"``) and of every top-level state that sets one: what
    the admission check in PlanChunks holds a job's projected times against."""
    asl = json.loads(ASL_FILE.read_text())
    out = {"execution": int(asl["TimeoutSeconds"])}
    out.update({name: int(st["TimeoutSeconds"]) for name, st in asl["States"].items() if "TimeoutSeconds" in st})
    return out
