"""How tests start the `zoo` command: through the interpreter that runs the suite, never a `zoo` found on PATH.

`venv/bin/python -m pytest` without the virtualenv activated must test that virtualenv's `zoo`, so the console
script is looked up beside `sys.executable`; where it is not installed there, `python -m zoo.cli` runs the same code.
"""
import sys
from pathlib import Path


def zoo_command() -> list[str]:
    """The argv prefix that runs the `zoo` console script of the running interpreter's environment."""
    script = Path(sys.executable).parent / ("zoo.exe" if sys.platform == "win32" else "zoo")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "zoo.cli"]


ZOO = zoo_command()
