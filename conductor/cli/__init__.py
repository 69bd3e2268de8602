"""The `conductor` command: typer commands only, parsing and printing, nothing else.

Each command module registers its commands on the shared app when imported. The hand
commands sessions run between tasks go through a lighter door first (hand.py), which leaves
every command line it does not read whole to the app.
"""

from __future__ import annotations

import sys
from typing import Any


def main() -> None:
    from conductor.cli.hand import run_by_hand
    from conductor.cli.plumbing import interrupted

    try:
        if run_by_hand(sys.argv[1:]):
            return
    except KeyboardInterrupt:
        interrupted()
    from conductor.cli.common import main as run_app

    _register_commands()
    run_app()


def _register_commands() -> None:
    # In this order: the help lists a panel's commands in the order they were registered.
    # isort: off
    from conductor.cli import (  # noqa: F401
        sessions,
        messages,
        claims,
        reviews,
        overview,
        doctor,
        git_commands,
        runs,
        worker,
        standin,
        watch,
        report,
        serve,
        web,
    )
    # isort: on


def __getattr__(name: str) -> Any:
    """`conductor.cli.app`: the typer app with every command, loaded when first asked for."""
    if name == "app":
        _register_commands()
        from conductor.cli.common import app

        return app
    raise AttributeError(name)
