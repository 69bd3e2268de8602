"""`conductor model serve` and `model check`: the scripted stand-in for the Messages API; and
`conductor demo`, a whole run against it."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
import typer

from conductor import dashboard
from conductor.cli import hints
from conductor.cli.common import (
    JsonOpt,
    app,
    err,
    fail,
    model_app,
    out,
    print_json,
    run_async,
    say,
)
from conductor.cli.runs import NoLiveOpt, _supervise
from conductor.errors import ConductorError, InvalidInput
from conductor.jail import describe_mode, unavailable_reason

if TYPE_CHECKING:
    from conductor.planner import Planned, Planning
    from conductor.standin.script import Script
    from conductor.supervisor import RunSummary, Supervisor


@app.command("demo", rich_help_panel="Offline")
def demo(
    no_live: NoLiveOpt = False,
    keep: Annotated[
        bool,
        typer.Option("--keep", help="Keep its repository, to look around in, and say where."),
    ] = False,
) -> None:
    """A full conductor run, offline, on a small example repository (no API key needed)."""
    from conductor.cli.planning import plan_shown
    from conductor.demo import REPO_NAME, WORKSTREAMS, run_demo

    say("conductor demo: planning and running three workstreams on the textstats example,")
    say("with the real Claude Code CLI answered by the scripted stand-in model...")
    why_not = unavailable_reason()
    say(describe_mode(why_not is None) + (f": {why_not}" if why_not else ""))
    live = out.is_terminal and not no_live

    async def plan(planning: Planning) -> Planned:
        return await plan_shown(
            planning, console=out, live=live, max_sessions=WORKSTREAMS, model=None
        )

    async def drive(supervisor: Supervisor) -> RunSummary:
        return await _supervise(supervisor, no_live=no_live, json_=False, resumable=False)

    # Its own directory, not in the working directory: the demo runs from anywhere, and
    # leaves nothing behind there or in the temporary directory unless asked to keep it.
    root = Path(tempfile.mkdtemp(prefix="conductor-demo-"))
    repo = root / REPO_NAME
    try:
        result = run_async(lambda: run_demo(root, drive=drive, plan=plan))
    except BaseException:
        if keep:
            err.print(f"the demo's files are kept in {root}", soft_wrap=True, markup=False)
        else:
            shutil.rmtree(root, ignore_errors=True)
        raise
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    out.print(dashboard.summary_table(result.summary))
    branch = result.summary.integration_branch
    say(f"the example's own tests on {branch}: " + ("passed" if result.tests_passed else "FAILED"))
    say(result.tests_output.splitlines()[-1] if result.tests_output else "")
    if keep:
        say(f"\nThe demo's repository is kept in {repo}. Look at it:")
        say(f"  {hints.shell('git', '-C', repo, 'log', '--graph', '--oneline', branch)}")
        say(f"  {hints.command('dashboard', cd=repo)}")
        say(f"  {hints.command('transcript', 'B', cd=repo)}")
        say(f"  {hints.command('report', cd=repo)}   # one HTML file, with a timeline")
        say(f"  {hints.command('serve', cd=repo)}   # the run in a browser")
        say(f"Remove it with: {hints.shell('rm', '-rf', root)}")
    else:
        again = hints.command("demo", "--keep", *(["--no-live"] if no_live else []))
        say(f"\nIts files are removed. To keep its repository and look around in it: {again}")
    raise typer.Exit(0 if result.summary.ok and result.tests_passed else 1)


# Credentials that would send a session elsewhere than the stand-in's base URL (or make the
# CLI prefer them to the dummy key): a command served with `--` runs without them.
OTHER_CREDENTIALS = (
    "ANTHROPIC_AUTH_TOKEN",
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
)


def standin_env(base_url: str) -> dict[str, str]:
    """What a Claude Code CLI needs to talk to the stand-in and nothing else: where it is, a
    key it ignores, no traffic to the public API host, every MCP tool (the bus's) in the
    request from the start, so a script can call it by name, and as root the word that
    this machine is a sandbox (as the test harness does; see
    shared/notes/claude-code-headless.md)."""
    env = {
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "stand-in",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "ENABLE_TOOL_SEARCH": "false",
    }
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"  # as root, the CLI refuses hands-off sessions without it
    return env


# ------------------------------------------------------------------------------ the stand-in


@model_app.command("serve", no_args_is_help=True)
def model_serve(
    script: Annotated[Path, typer.Argument(help="The script (YAML or JSON).")],
    command: Annotated[
        list[str] | None,
        typer.Argument(
            help="After --: a command to run against the stand-in (e.g. conductor run GOAL);"
            " the stand-in stops when it ends, with its exit status.",
            show_default=False,
        ),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (default: any free).")] = 0,
    log: Annotated[
        Path | None, typer.Option("--log", help="Append every request, with its body, here.")
    ] = None,
) -> None:
    """Serve a script as the Messages API on loopback: until interrupted, or while the
    command after -- runs with the environment that points Claude Code at it."""
    from conductor.standin.server import StandIn

    loaded = _load(script)
    argv = command or []

    async def go() -> int:
        server = StandIn(loaded, port=port, log_path=log)
        code, failed = 0, None
        try:
            async with server.running():
                env = standin_env(server.base_url)
                if argv:
                    err.print(
                        f"serving {script} on {server.base_url} for: {shlex.join(argv)}",
                        soft_wrap=True,
                        markup=False,
                    )
                    try:
                        code = await _run(argv, env)
                    except InvalidInput as e:  # said outside the server's task group
                        failed = e
                else:
                    print(server.base_url, flush=True)
                    err.print(
                        f"serving {script} on {server.base_url}; point a session at it with\n  "
                        + " ".join(f"{k}={v}" for k, v in env.items())
                        + "\nand its first prompt beginning 'conductor-role: NAME', or run a"
                        f" command against it: conductor model serve {script} -- COMMAND."
                        " Ctrl-C stops it.",
                        soft_wrap=True,
                        markup=False,
                    )
                    await anyio.sleep_forever()
        except OSError as e:
            raise InvalidInput(f"cannot listen on 127.0.0.1:{port}: {e.strerror}") from None
        if failed is not None:
            raise failed
        return code

    raise typer.Exit(run_async(go))


def _load(script: Path) -> Script:
    """The script, or the one line that says what is wrong with it (exit 2)."""
    from conductor.standin.script import load_script

    try:
        return load_script(script)
    except ConductorError as e:
        fail(str(e))


async def _run(command: list[str], env: dict[str, str]) -> int:
    """The command, with the stand-in's environment, its own stdin/stdout/stderr, and Ctrl-C
    left to it: a `conductor run` stops its sessions first, and the stand-in serves until
    it has."""
    full = {k: v for k, v in os.environ.items() if k not in OTHER_CREDENTIALS}
    try:
        process = await anyio.open_process(
            command, stdin=None, stdout=None, stderr=None, env={**full, **env}
        )
    except OSError as e:
        raise InvalidInput(f"cannot run {command[0]}: {e.strerror}") from None
    previous = signal.signal(signal.SIGINT, lambda *_: None)  # the command gets it too
    try:
        return await process.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


@model_app.command("check", no_args_is_help=True)
def model_check(
    script: Annotated[Path, typer.Argument(help="The script (YAML or JSON).")],
    json_: JsonOpt = False,
) -> None:
    """Check a script: one line per role's chapter (its steps and tools), and notes on what
    `conductor run` would miss (a planner, a workstream's role, its reviewer). Exit 2 with
    the one-line error when the script is not valid."""
    from conductor.standin.check import chapters, notes

    loaded = _load(script)
    listed = chapters(loaded)
    noted = notes(loaded, Path.cwd())
    if json_:
        print_json(
            {
                "script": str(script),
                "valid": True,
                "chapters": [c.to_json() for c in listed],
                "notes": noted,
            }
        )
        return
    say(f"{script}: valid: {len(loaded.roles)} roles, {len(listed)} chapters")
    width = max(len(c.role) for c in listed)
    for c in listed:
        steps = f"{c.steps} step{'s' if c.steps != 1 else ''}"
        tools = ", ".join(c.tools) if c.tools else "(text only)"
        say(f"  {c.role:<{width}}  chapter {c.number}  {steps:<8}  {tools}")
    for note in noted:
        say(f"note: {note}")
