"""Handing one notification to a receiver: a command (the JSON on its stdin) or a webhook (the
JSON POSTed), each bounded in time, each failure one line (`DeliveryFailed`), never more.

A command runs without a shell, in a process group of its own, with this process's
environment less every credential (the model API's, and whatever logs in to a database: the
command is the user's, but it has no use for them, and a script that logs its environment
should not write them down). Past its timeout the whole group is killed, so a hanging script
takes its children with it. A webhook is tried again, with back-off, on what may pass (no
connection, no answer in time, HTTP 5xx or 429), a bounded number of times; any other answer
than 2xx is final. Its URL is never in a message: it is often its own secret.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol

import anyio
from anyio.abc import Process

from conductor.config import Notify
from conductor.jail import scrubbed_env
from conductor.notify.what import Notification
from conductor.readmodel.words import printable

ATTEMPTS = 5  # a webhook's tries: the first and four more
BACKOFF = 1.0  # seconds before the second try, doubling each time after
MAX_BACKOFF = 30.0  # the longest pause between tries (a Retry-After too is held to it)
ERROR_LIMIT = 200  # characters of a command's last line of stderr in a failure
USER_AGENT = "conductor-notify"


class DeliveryFailed(Exception):
    """A notification a receiver did not take; the message says why, in one line."""


class Receiver(Protocol):
    """Where notifications go; `name` is what events and messages call it."""

    @property
    def name(self) -> str: ...

    async def deliver(self, notification: Notification) -> None:
        """Deliver it, or raise DeliveryFailed; return within the receiver's own bound."""
        ...


class CommandReceiver:
    """A program that reads one notification's JSON on its stdin, once per notification."""

    name = "command"

    def __init__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.timeout = timeout
        self.cwd = cwd
        self.env = scrubbed_env(os.environ if env is None else env)

    async def deliver(self, notification: Notification) -> None:
        with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a child holds no read up
            code = await self._run(notification.body(), errors)
            if code == 0:
                return
            errors.seek(0)
            said = errors.read().decode("utf-8", "replace").strip().splitlines()
        last = f": {printable(said[-1], ERROR_LIMIT)}" if said else ""
        how = f"was killed by signal {-code}" if code < 0 else f"exited with {code}"
        raise DeliveryFailed(f"{printable(self.argv[0], 60)} {how}{last}")

    async def _run(self, body: bytes, errors: IO[bytes]) -> int:
        try:
            process = await anyio.open_process(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,  # its own group, to kill whole; and no Ctrl-C of ours
            )
        except OSError as e:
            raise DeliveryFailed(f"{printable(self.argv[0], 60)}: {e.strerror or e}") from None
        try:
            with anyio.move_on_after(self.timeout):
                await _feed(process, body)
                return await process.wait()
            raise DeliveryFailed(f"took more than {self.timeout:g}s: killed")
        finally:  # timed out, or cancelled (the run's end gave up waiting): the whole group
            if process.returncode is None:
                _kill_group(process.pid)
                with anyio.CancelScope(shield=True):
                    await process.wait()
            with anyio.CancelScope(shield=True):
                await process.aclose()


async def _feed(process: Process, body: bytes) -> None:
    """The JSON on its stdin, then end of file; a program that reads none is welcome."""
    assert process.stdin is not None
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        await process.stdin.send(body)
    with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        await process.stdin.aclose()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class WebhookReceiver:
    """A URL each notification is POSTed to as JSON, tried again with back-off."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        self.url = url
        self.timeout = timeout  # of each try, connecting included
        self.attempts = attempts
        self.backoff = backoff
        self.max_backoff = max_backoff

    async def deliver(self, notification: Notification) -> None:
        import httpx2  # (about 0.3 s to import: only where a webhook is configured)

        headers = {"content-type": "application/json", "user-agent": USER_AGENT}
        async with httpx2.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            for attempt in range(1, self.attempts + 1):
                wait: float | None = None
                try:
                    with anyio.fail_after(self.timeout):
                        answer = await client.post(
                            self.url, content=notification.body(), headers=headers
                        )
                except TimeoutError:
                    problem = f"no answer within {self.timeout:g}s"
                except httpx2.HTTPError as e:
                    problem = _transport_problem(e)
                else:
                    status = answer.status_code
                    if 200 <= status < 300:
                        return
                    problem = f"HTTP {status}"
                    if status != 429 and status < 500:
                        raise DeliveryFailed(f"the webhook answered {problem}")
                    wait = _retry_after(answer.headers.get("retry-after"))
                if attempt == self.attempts:
                    raise DeliveryFailed(
                        f"the webhook failed {self.attempts} times, last: {problem}"
                    )
                pause = self.backoff * 2 ** (attempt - 1) if wait is None else wait
                await anyio.sleep(min(pause, self.max_backoff))
        raise AssertionError("unreachable")  # (every try returns, raises, or tries again)


def _transport_problem(error: Exception) -> str:
    """What went wrong on the way, without the URL (httpx names it in some messages)."""
    return type(error).__name__


def _retry_after(value: str | None) -> float | None:
    """A Retry-After in seconds (its date form is not worth the parsing here)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def receivers(notify: Notify, cwd: Path) -> list[Receiver]:
    """The receivers [notify] names; a command runs in `cwd` (the repository's root, so
    that `./notify.sh` is found)."""
    found: list[Receiver] = []
    if notify.command:
        found.append(CommandReceiver(notify.command, timeout=notify.timeout, cwd=cwd))
    if notify.webhook:
        found.append(WebhookReceiver(notify.webhook, timeout=notify.timeout))
    return found
