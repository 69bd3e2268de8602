"""Who may use the browser view: the ASGI gate in front of every route.

The view can approve reviews as `human`, stop runs and resume them, so reaching it is power:
- **Every request needs the server's token**, on loopback too: code a session wrote runs on
  this host (a merge check has the network), and a loopback port is open to every process
  here. The URL printed at start carries it once (`?token=`, traded for an HttpOnly,
  SameSite=Strict cookie and dropped from the address bar); a script sends
  `Authorization: Bearer TOKEN`. It is never written anywhere else.
- **Every action (POST)** also carries the token in `X-Conductor-Token`: the pages read it
  from their own markup, which a page of another origin cannot, and a form of another origin
  cannot set a header (CSRF: the cookie alone would go with another site's post). A request
  whose `Origin` is another site is refused as well.
- **On loopback the `Host` must be a loopback name**: a DNS name of an attacker's that points
  at 127.0.0.1 (DNS rebinding) would otherwise make its pages same-origin with this one.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "conductor_token"
HEADER = "x-conductor-token"
QUERY = "token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD"})


def new_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(host: str) -> bool:
    """Whether a bind address (or a Host header's name) is this machine only."""
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name of a Host header, without its port (`[::1]:8080` -> `::1`)."""
    return (urlsplit(f"//{header}").hostname or "").lower()


@dataclass(frozen=True)
class Access:
    """The rules for one server: its token, and whether it listens on loopback only (then
    only a loopback Host is answered)."""

    loopback: bool
    token: str = field(default_factory=new_token)

    def matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())


class Gate:
    """ASGI middleware: refuses what `Access` does not allow, with one line of text (403 or
    401); lets everything else through untouched, streams included."""

    def __init__(self, app: App, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        method = scope["method"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        cookie = cookie_name(scope)
        refusal = self._refusal(headers, method, query, cookie)
        if refusal is not None:
            status, text = refusal
            await _plain(send, status, text)
            return
        if QUERY in query and method in SAFE_METHODS:
            await self._trade_for_cookie(scope, send, query, cookie)
            return
        await self.app(scope, receive, send)

    def _refusal(
        self, headers: dict[str, str], method: str, query: dict[str, str], cookie: str
    ) -> tuple[int, str] | None:
        access = self.access
        if access.loopback and not is_loopback(host_name(headers.get("host", ""))):
            return 403, "this server answers only to a loopback Host (127.0.0.1, localhost)"
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, headers):  # `null` included
            return 403, "requests from another site are refused"
        if not any(
            access.matches(given)
            for given in (
                _cookie(headers, cookie),
                _bearer(headers),
                headers.get(HEADER),
                query.get(QUERY),
            )
        ):
            return 401, "this server needs its token: open the URL it printed at start"
        if method not in SAFE_METHODS and not access.matches(headers.get(HEADER)):
            return 403, f"an action needs the page's token in the {HEADER} header"
        return None

    async def _trade_for_cookie(
        self, scope: Scope, send: Send, query: dict[str, str], name: str
    ) -> None:
        """`?token=` once: the token goes into a cookie for this site only, and the browser
        is sent to the same address without it (so it is not left in history or logs)."""
        rest = urlencode({k: v for k, v in query.items() if k != QUERY})
        location = scope.get("path", "/") + (f"?{rest}" if rest else "")
        cookie = f"{name}={self.access.token}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1")),
                    (b"set-cookie", cookie.encode("latin-1")),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def cookie_name(scope: Scope) -> str:
    """The cookie of the server at this port: cookies keep no port apart, and two servers on
    one host (two repositories) must not overwrite each other's."""
    server = scope.get("server") or ("", 0)
    return f"{COOKIE}_{server[1]}"


def _cookie(headers: dict[str, str], name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed Cookie header carries no token
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _same_origin(origin: str, headers: dict[str, str]) -> bool:
    """An Origin header names this server: the same host and port as the Host it asked."""
    parts = urlsplit(origin)
    return parts.netloc.lower() == headers.get("host", "").lower()


async def _plain(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
