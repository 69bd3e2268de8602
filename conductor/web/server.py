"""Serving the browser view: uvicorn on a socket bound here, so the address printed is the
one it listens on (`--port 0` picks a free port and says which)."""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn

from conductor.errors import InvalidInput
from conductor.web.access import Access, is_loopback
from conductor.web.app import Served, make_app

SHUTDOWN_GRACE = 1  # open live pages are closed after this long when the server stops


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
