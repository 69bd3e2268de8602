"""The browser view's pages, rendered from templates beside this module (Jinja2, every value
escaped: a goal, a message, a file name, a diff are text on the page, never markup)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from conductor.text import escape_invisible

HERE = Path(__file__).parent
STATIC = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"}


def _shown(value: Any) -> Any:
    """Every value a template prints, its invisible characters written out (then escaped)."""
    return escape_invisible(value) if isinstance(value, str) else value


_templates = Environment(
    loader=FileSystemLoader(HERE),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=_shown,
)


def render(template: str, **values: Any) -> str:
    return _templates.get_template(template).render(**values)


def static(name: str) -> tuple[bytes, str] | None:
    """A static file's bytes and type, or None for any name that is not one of them."""
    kind = STATIC.get(name)
    return ((HERE / name).read_bytes(), kind) if kind is not None else None


def diff_lines(diff: bytes) -> list[dict[str, str]]:
    """A diff's lines, each with the class that colours it."""
    lines = []
    for line in diff.decode("utf-8", "replace").splitlines():
        if line.startswith(("+++", "---", "diff --git")):
            cls = "file"
        elif line.startswith("+"):
            cls = "add"
        elif line.startswith("-"):
            cls = "del"
        elif line.startswith("@@"):
            cls = "hunk"
        else:
            cls = ""
        lines.append({"cls": cls, "text": line})
    return lines
