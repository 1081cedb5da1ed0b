"""The state machine's definition (``sadtalker.asl.json``): the single definition of the flow.

A package so the file travels with an installed ``sadtalker`` (the local runtime executes it); the CDK
app reads the same file and substitutes the ARNs into it.
"""

from pathlib import Path

ASL_FILE = Path(__file__).with_name("sadtalker.asl.json")
