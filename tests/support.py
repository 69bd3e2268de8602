"""Helpers for tests that drive real git and the real `conductor` command."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from conductor.standin.server import LoggedRequest

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUCTOR_")}
    env.update(GIT_IDENTITY)
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    env.update(extra)
    return env


def git(cwd: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, env=clean_env(), capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


def make_repo(path: Path, *, branch: str = "main") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    (path / "README.md").write_text("hello\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    return path


def commit_file(repo: Path, name: str, text: str, message: str | None = None) -> str:
    target = repo / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message or f"write {name}")
    return git(repo, "rev-parse", "HEAD")


@dataclass
class Result:
    code: int
    out: str
    err: str
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """Runs the `conductor` command with argv, environment and working directory as given.

    In-process by default (typer's runner: the same parsing, printing and exit codes, without
    paying interpreter start-up per call); `process=True` runs `python -m conductor` as its own
    process, for what depends on that (exit status seen by a shell, stdin, real stdout bytes).
    """

    def __init__(self, cwd: Path, *, process: bool = False, **env: str) -> None:
        self.cwd = cwd
        self.process = process
        self.env = env

    def __call__(
        self, *args: str, cwd: Path | None = None, input: bytes | None = None, **env: str
    ) -> Result:
        if not self.process:
            return self._in_process(list(args), cwd or self.cwd, input, {**self.env, **env})
        proc = subprocess.run(
            [sys.executable, "-m", "conductor", *args],
            cwd=cwd or self.cwd,
            env=clean_env(**{**self.env, **env}),
            input=input if input is not None else b"",
            capture_output=True,
            check=False,
            timeout=60,
        )
        return Result(
            proc.returncode,
            proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"),
            proc.stdout,
        )

    @staticmethod
    def _in_process(args: list[str], cwd: Path, input: bytes | None, env: dict[str, str]) -> Result:
        from typer.testing import CliRunner

        from conductor.cli import app

        changes: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CONDUCTOR_")}
        changes.update({**GIT_IDENTITY, "NO_COLOR": "1", "COLUMNS": "200", **env})
        with contextlib.chdir(cwd):
            result = CliRunner().invoke(app, args, input=input, env=changes, catch_exceptions=False)
        return Result(result.exit_code, result.stdout, result.stderr, result.stdout_bytes)

    def ok(self, *args: str, **kw: Any) -> Result:
        result = self(*args, **kw)
        assert result.code == 0, f"conductor {' '.join(args)} exited {result.code}: {result.err}"
        return result

    def fails(self, *args: str, code: int = 2, **kw: Any) -> Result:
        result = self(*args, **kw)
        assert result.code == code, (
            f"conductor {' '.join(args)} exited {result.code}, expected {code}: "
            f"{result.out}{result.err}"
        )
        return result


def one_line_error(result: Result) -> str:
    """The error a person sees: exactly one line on stderr, starting with 'error:'."""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {result.err!r}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


# ------------------------------------------------------------------------------ fixtures
# Registered for every test through `pytest_plugins` in conftest.py.


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A fresh git repository with one commit on `main`."""
    return make_repo(tmp_path / "repo")


@pytest.fixture
def cli(repo: Path) -> Cli:
    """The real command, run in `repo`."""
    return Cli(repo)


@pytest.fixture
def process_cli(repo: Path) -> Cli:
    """The real command as its own process, run in `repo`."""
    return Cli(repo, process=True)


@pytest.fixture
def team(cli: Cli) -> Cli:
    """`cli` after `conductor init --sessions "A:frontend B:backend C:infra"`."""
    cli.ok("init", "--sessions", "A:frontend B:backend C:infra")
    return cli


# claude-sonnet-4-5 (the stand-in's model) at its list price, which the CLI prices turns at.
PER_INPUT_TOKEN, PER_OUTPUT_TOKEN = 3.0 / 1e6, 15.0 / 1e6


def served_cost(requests: Iterable[LoggedRequest | Mapping[str, Any]]) -> float:
    """What the replies the stand-in served whole cost, priced as the CLI prices them (from
    its requests, or the lines of its request log)."""
    total = 0.0
    for request in requests:
        usage = request.get("usage") if isinstance(request, Mapping) else request.usage
        if usage:
            total += usage["input_tokens"] * PER_INPUT_TOKEN
            total += usage["output_tokens"] * PER_OUTPUT_TOKEN
    return total


@asynccontextmanager
async def small_disk(path: Path, size: str = "48m") -> AsyncIterator[Path]:
    """A tmpfs of `size` at `path` (root only: skipped with the reason otherwise)."""
    path.mkdir(parents=True)
    mounted = await anyio.run_process(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        await anyio.run_process(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> None:
    """Write `path` until the disk it is on is full."""
    with path.open("wb") as filler:
        try:
            while True:
                filler.write(b"\0" * (1 << 20))
                filler.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
