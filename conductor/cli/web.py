"""`conductor serve`: the repository's runs in a browser (see `conductor.web`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conductor.cli.common import Globals, app, fail, run_async, say
from conductor.cli.plumbing import check_acting_as
from conductor.workspace import locate

DEFAULT_PORT = 8765


@app.command("serve", rich_help_panel="Watch")
def serve_command(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            show_default=False,
            help="The address to listen on (default: a loopback address of its own, 127.X.Y.Z,"
            " else 127.0.0.1). Every request is signed in: see the printed address.",
        ),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", help="The port (0: any free one, printed).", min=0, max=65535)
    ] = DEFAULT_PORT,
) -> None:
    """Watch and steer the runs in a browser: live pages, transcripts, review diffs with
    approve and reject, stop and resume, each run's report. Ctrl-C stops the server, not
    the runs."""
    g: Globals = ctx.obj
    # It acts as `human` (approving reviews) and for every run: never a session's to start.
    check_acting_as(g, ctx.command_path, None)

    async def go() -> None:
        from conductor.web.app import Served
        from conductor.web.server import access_for, bind, bind_default, serve

        ws = await locate(Path.cwd(), g.db)
        if ws.repo_root is None:
            fail("conductor serve runs in a git repository (the runs of its database)")
        if host is None:
            sock, listening = bind_default(port)
        else:
            sock, listening = bind(host, port), host
        access = access_for(listening)
        served = Served(ws.location, ws.repo_root, access)

        def started(url: str) -> None:
            say(f"serving the runs of {ws.repo_root} at {url}")
            say(
                "that address signs one browser in, once; scripts send"
                f" Authorization: Bearer {access.api}. Ctrl-C stops the server, not the runs"
            )

        await serve(served, sock, started=started, host=listening)

    try:
        run_async(go)
    except KeyboardInterrupt:
        say("stopped serving")
