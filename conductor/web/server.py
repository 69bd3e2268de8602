"""Serving the browser view: uvicorn on a socket bound here, so the address printed is the
one it listens on (`--port 0` picks a free port and says which)."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable

import uvicorn

from conductor.errors import InvalidInput
from conductor.web.access import Access, is_loopback
from conductor.web.app import Served, make_app

SHUTDOWN_GRACE = 1  # open live pages are closed after this long when the server stops
LOOPBACK = "127.0.0.1"


def own_loopback() -> str:
    """A loopback address of this server's own, 127.X.Y.Z at random: cookies keep no ports
    apart, so on 127.0.0.1 a page any program serves there (a dev server a session wrote)
    would be sent the browser's cookie for this server. (Linux routes all of 127/8 to lo;
    where only 127.0.0.1 answers, `bind_default` falls back to it.)"""
    a, b, c = (secrets.randbelow(254) + 1 for _ in range(3))
    return f"127.{a}.{b}.{c}"


def bind_default(port: int) -> tuple[socket.socket, str]:
    """The default bind: a loopback address of its own, else 127.0.0.1."""
    host = own_loopback()
    try:
        return bind(host, port), host
    except InvalidInput:
        return bind(LOOPBACK, port), LOOPBACK


def bind(host: str, port: int) -> socket.socket:
    """A listening socket at host:port, or one line on why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise InvalidInput(f"cannot listen on {host}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise InvalidInput(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket, host: str, access: Access) -> str:
    """The address to open, carrying the one-use login token."""
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = socket.gethostname()
    return f"http://{shown}:{port}{access.base}/?login={access.login}"


async def serve(
    served: Served, sock: socket.socket, *, started: Callable[[str], None], host: str
) -> None:
    """Serve until cancelled (Ctrl-C): `started` is told the URL once it listens."""
    config = uvicorn.Config(
        make_app(served),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )
    server = uvicorn.Server(config)
    served.stopping = lambda: server.should_exit
    started(url_of(sock, host, served.access))
    await server.serve(sockets=[sock])


def access_for(host: str) -> Access:
    return Access(loopback=is_loopback(host))
