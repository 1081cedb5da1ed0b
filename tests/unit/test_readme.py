"""The README says what the code does: its parameter table is the model's, its quickstart two commands."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from sadtalker.cli import params_markdown

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_parameter_table_matches_the_model():
    assert params_markdown() in README


def test_quickstart_is_two_commands():
    block = re.search(r"## Quickstart.*?```\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_only_headless_opencv_is_installed():
    names = {d.metadata["Name"].lower() for d in metadata.distributions()}
    assert "opencv-python-headless" in names
    assert "opencv-python" not in names and "opencv-contrib-python" not in names
