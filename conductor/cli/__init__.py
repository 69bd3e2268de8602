"""The `conductor` command: typer commands only, parsing and printing, nothing else.

Each module registers its commands on the shared app when imported.
"""

from conductor.cli import coordination, git_commands, runs, standin, watch
from conductor.cli.common import app, main

__all__ = ["app", "coordination", "git_commands", "main", "runs", "standin", "watch"]
