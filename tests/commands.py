"""How tests start the `zoo` command: through the interpreter that runs the suite, never a `zoo` found on PATH.

`venv/bin/python -m pytest` without the virtualenv activated must test that virtualenv's `zoo`, so the console
script is looked up beside `sys.executable`; where it is not installed there, `python -m zoo.cli` runs the same code.
"""
import re
import sys
from pathlib import Path


def zoo_command() -> list[str]:
    """The argv prefix that runs the `zoo` console script of the running interpreter's environment."""
    script = Path(sys.executable).parent / ("zoo.exe" if sys.platform == "win32" else "zoo")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "zoo.cli"]


ZOO = zoo_command()


def printed_lines(stream: str) -> list[str]:
    """The non-blank lines of captured output, as a reader sees them: progress bars redraw with \\r and, when one
    is nested in another, move the cursor with ANSI escapes; both are removed."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", stream)
    return [line for line in text.replace("\r", "\n").splitlines() if line.strip()]
