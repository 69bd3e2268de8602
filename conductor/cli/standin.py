"""`conductor model serve`: the scripted stand-in for the Messages API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer

from conductor.cli.common import (
    err,
    model_app,
    run_async,
)
from conductor.errors import InvalidInput

# ------------------------------------------------------------------------------ the stand-in


@model_app.command("serve")
def model_serve(
    script: Annotated[Path, typer.Argument(help="The script (YAML or JSON).")],
    port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 (default: any free).")] = 0,
    log: Annotated[
        Path | None, typer.Option("--log", help="Append every request, with its body, here.")
    ] = None,
) -> None:
    """Serve a script as the Messages API on loopback until interrupted."""
    from conductor.standin.script import load_script
    from conductor.standin.server import StandIn

    async def go() -> None:
        server = StandIn(load_script(script), port=port, log_path=log)
        try:
            async with server.running():
                print(server.base_url, flush=True)
                err.print(
                    f"serving {script} on {server.base_url}; point a session at it with\n"
                    f"  ANTHROPIC_BASE_URL={server.base_url} ANTHROPIC_API_KEY=stand-in"
                    " CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\n"
                    "and 'conductor-role: NAME' in its first prompt. Ctrl-C stops it.",
                    soft_wrap=True,
                )
                await anyio.sleep_forever()
        except OSError as e:
            raise InvalidInput(f"cannot listen on 127.0.0.1:{port}: {e.strerror}") from None

    run_async(go)
