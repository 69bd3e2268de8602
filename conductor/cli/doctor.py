"""`conductor doctor`: the checks of conductor/doctor.py, one line each, and an exit code."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from conductor.cli.common import Globals, JsonOpt, app, print_json, say
from conductor.workspace import DB_ENV

EXIT_CHECK_FAILED = 1


@app.command(rich_help_panel="Setup")
def doctor(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Check that conductor can run here: git, the Claude Code CLI, credentials, the
    sandbox, .conductor/ and conductor.toml, one line each with the fix for what fails.
    Creates nothing and calls no model. Exit 0 when every check passes, 1 when any fails
    (a skipped check, such as the repository's outside one, is not a failure), 2 for bad
    usage."""
    from conductor.doctor import Place, examine, failures

    g: Globals = ctx.obj
    checks = examine(Place(cwd=Path.cwd(), db=g.db or os.environ.get(DB_ENV) or None))
    failed = failures(checks)
    if json_:
        print_json({"ok": not failed, "checks": [c.to_json() for c in checks]})
    else:
        for check in checks:
            say(check.line())
        if failed:
            names = ", ".join(c.name for c in failed)
            say(f"{len(failed)} of {len(checks)} checks failed: {names}")
        else:
            say(f"all {len(checks)} checks passed")
    if failed:
        raise typer.Exit(EXIT_CHECK_FAILED)
