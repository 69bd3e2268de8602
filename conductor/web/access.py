"""Who may use the browser view: the ASGI gate in front of every route.

The view can approve reviews as `human`, stop runs and resume them, so reaching it is power,
and code a session wrote runs on this host (a merge check has the network and reads the file
system): a loopback port is no proof of being the person. So:
- **Every request is authenticated**, on loopback too, with secrets made at start and kept
  in memory only:
  - the **login** link printed at start works once: `?login=` is traded for a session cookie
    and dropped from the address. Once used it is dead, so the copy a browser keeps in its
    history opens nothing;
  - the **session cookie** is HttpOnly, SameSite=Strict, and its Path is the server's own
    **secret path prefix** (every page lives under it): a page served on another port of
    this host (cookies keep no ports apart) is never sent it;
  - scripts send `Authorization: Bearer API_TOKEN` (printed at start, on its own line).
- **Every action (POST)** also carries the page's own action token in `X-Conductor-Token`:
  the pages read it from their markup, which a page of another origin cannot, and a form of
  another origin cannot set a header (CSRF). A request whose `Origin` is another site (or
  `null`) is refused as well.
- **On loopback the `Host` must be a loopback name**: a DNS name of an attacker's that points
  at 127.0.0.1 (DNS rebinding) would otherwise make its pages same-origin with this one.
- Every answer forbids framing (clickjacking from a page on another port, which counts as
  the same site) and sniffing.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "conductor"
HEADER = "x-conductor-token"
LOGIN = "login"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD"})
# On every answer: no framing (clickjacking), no sniffing, no referrer to anywhere.
GUARD_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


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
    try:
        return (urlsplit(f"//{header}").hostname or "").lower()
    except ValueError:  # a bracketed name that is no address
        return ""


def _same(given: str | None, secret: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), secret.encode())


@dataclass
class Access:
    """The secrets of one server, made at its start and kept in memory only."""

    loopback: bool
    prefix: str = field(default_factory=lambda: secrets.token_urlsafe(12))  # the path's
    login: str = field(default_factory=new_token)  # the printed link's: one use
    api: str = field(default_factory=new_token)  # scripts' bearer token
    action: str = field(default_factory=new_token)  # the pages' token for actions
    sessions: set[str] = field(default_factory=set)  # cookies given out
    login_used: bool = False

    @property
    def base(self) -> str:
        """The path every page lives under: `/PREFIX`."""
        return f"/{self.prefix}"

    def signed_in(self, cookies: list[str], bearer: str | None) -> bool:
        """The scripts' token, or any cookie of this server's name that is a session (a page
        elsewhere on this host may add a cookie of the same name: it adds nothing)."""
        if _same(bearer, self.api):
            return True
        return any(_same(c, s) for c in cookies for s in self.sessions)

    def use_login(self, given: str | None) -> str | None:
        """A new session's secret for the printed login token, the first time only."""
        if self.login_used or not _same(given, self.login):
            return None
        self.login_used = True
        session = new_token()
        self.sessions.add(session)
        return session


class Gate:
    """ASGI middleware: refuses what `Access` does not allow, with one line of text (401, 403
    or 404); lets everything else through (streams included), guard headers added."""

    def __init__(self, app: App, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        guarded = _guarding(send)
        headers = _headers(scope)
        path: str = scope.get("path", "/")
        access = self.access
        if not (path == access.base or path.startswith(access.base + "/")):
            await _plain(guarded, 404, "not found")
            return
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _plain(guarded, *refusal)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        signed_in = access.signed_in(_cookies(headers, self._cookie_name(scope)), _bearer(headers))
        # Only a GET signs in (a HEAD from a link previewer does not use the link up); one
        # signed in already is only sent on (a restored tab with the link in its address).
        if LOGIN in query and scope["method"] == "GET":
            await self._log_in(scope, guarded, query, signed_in)
            return
        if not signed_in:
            await _plain(guarded, 401, "sign in with the address conductor serve printed")
            return
        if scope["method"] not in SAFE_METHODS and not _same(headers.get(HEADER), access.action):
            await _plain(guarded, 403, f"an action needs the page's token in {HEADER}")
            return
        await self.app(scope, receive, guarded)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        if self.access.loopback and not is_loopback(host_name(headers.get("host", ""))):
            return 403, "this server answers only to a loopback Host (127.0.0.1, localhost)"
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, headers):  # `null` included
            return 403, "requests from another site are refused"
        return None

    def _cookie_name(self, scope: Scope) -> str:
        """One per server port: two servers on a host must not overwrite each other's."""
        server = scope.get("server") or ("", 0)
        return f"{COOKIE}_{server[1]}"

    async def _log_in(
        self, scope: Scope, send: Send, query: dict[str, str], signed_in: bool
    ) -> None:
        """`?login=` once: a session cookie for this server's path only, and the browser sent
        to the same address without the token (so it is not left in history or logs)."""
        session = None if signed_in else self.access.use_login(query.get(LOGIN))
        if session is None and not signed_in:
            await _plain(
                send,
                401,
                "this login link was used already (or is wrong): restart conductor serve"
                " for a new one",
            )
            return
        base = self.access.base
        rest = {k: v for k, v in query.items() if k != LOGIN}
        path = quote(scope.get("path", base), safe="/")
        location = path + (
            "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in rest.items()) if rest else ""
        )
        headers = [
            (b"location", location.encode("ascii")),
            (b"cache-control", b"no-store"),
            (b"content-length", b"0"),
        ]
        if session is not None:
            cookie = (
                f"{self._cookie_name(scope)}={session}; Path={base}/; HttpOnly; SameSite=Strict"
            )
            headers.append((b"set-cookie", cookie.encode("ascii")))
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _guarding(send: Send) -> Send:
    async def guarded(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *GUARD_HEADERS]
        await send(message)

    return guarded


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _cookies(headers: dict[str, str], name: str) -> list[str]:
    """Every value the Cookie header gives `name` (a browser sends one per path and domain
    that matched: all of them, not the last one)."""
    found = []
    for pair in headers.get("cookie", "").split(";"):
        key, _, value = pair.strip().partition("=")
        if key == name:
            found.append(value.strip().strip('"'))
    return found


def _bearer(headers: dict[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _same_origin(origin: str, headers: dict[str, str]) -> bool:
    """An Origin header names this server: the same host and port as the Host it asked."""
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return netloc.lower() == headers.get("host", "").lower()


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
