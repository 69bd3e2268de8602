"""Repository-relative path normalisation: the one spelling every claim and check compares.

`./x`, `x/`, `a/../x` and `/abs/repo/x` all become `x`; the root itself is `.`. The
normalisation is lexical (like git's pathspecs), with one exception: an absolute path that is
outside the root lexically but inside it once symlinks are resolved (a `/tmp` symlink, say) is
accepted.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from conductor.errors import InvalidInput, PathOutsideRepository

ROOT = "."


def normalize(path: str, root: Path, cwd: Path | None = None) -> str:
    """Return `path` relative to `root` in posix form; relative input is taken from `cwd`."""
    if not path or not path.strip():
        raise InvalidInput("empty path")
    if "\0" in path:
        raise InvalidInput("a path cannot contain a NUL byte")
    root = Path(os.path.abspath(root))
    base = Path(os.path.abspath(cwd)) if cwd is not None else root
    joined = Path(os.path.normpath(base / os.path.expanduser(path)))
    rel = _relative(joined, root)
    if rel is None:
        rel = _relative(Path(os.path.realpath(joined)), Path(os.path.realpath(root)))
    if rel is None:
        raise PathOutsideRepository(f"{path} is outside the repository {root}")
    return rel


def _relative(path: Path, root: Path) -> str | None:
    try:
        rel = path.relative_to(root)
    except ValueError:
        return None
    text = PurePosixPath(*rel.parts).as_posix() if rel.parts else ROOT
    return text if text != "" else ROOT


def covers(claimed: str, path: str) -> bool:
    """Whether a claim on `claimed` covers `path` (itself or anything under it)."""
    return claimed in (ROOT, path) or path.startswith(claimed + "/")
