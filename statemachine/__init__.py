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
    """TimeoutSeconds of the execution (``"execution"``) and of every state that sets one, nested states
    included; a Map without its own is keyed by its longest child's (``"EnhanceRanges"``: one range
    task's limit). What the admission check in PlanChunks holds a job's projected times against."""
    asl = json.loads(ASL_FILE.read_text())
    out = {"execution": int(asl["TimeoutSeconds"])}

    def walk(states: dict) -> None:
        for name, st in states.items():
            inner = [s for b in st.get("Branches", []) for s in [b["States"]]]
            if "ItemProcessor" in st:
                inner.append(st["ItemProcessor"]["States"])
            for sub in inner:
                walk(sub)
                if "TimeoutSeconds" not in st and st["Type"] == "Map":
                    child = [int(s["TimeoutSeconds"]) for s in sub.values() if "TimeoutSeconds" in s]
                    if child:
                        out[name] = max(child)
            if "TimeoutSeconds" in st:
                out[name] = int(st["TimeoutSeconds"])

    walk(asl["States"])
    return out
