"""Whether sessions run sandboxed is never left to chance: without what the sandbox needs,
`conductor run` refuses in one line naming it, unless conductor.toml turns the sandbox off."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import pytest
from support import clean_env, git

from conductor.jail import short_tmp
from conductor.standin.harness import STANDIN_MODEL, Offline

pytestmark = pytest.mark.anyio

Standin = Callable[[str], AbstractAsyncContextManager[Offline]]

PLAN = {"workstreams": [{"id": "A", "name": "core", "task": "core", "owns": ["core.py"]}]}
SCRIPT = """
roles:
  A:
    - - tool: Bash
        input: {command: "echo 'X = 1' > core.py && git add -A && git commit -qm core"}
      - tool: mcp__bus__request_review
        input: {}
      - text: "Done."
"""


def path_without_bwrap(tmp: Path) -> str:
    """A PATH with git and Python but no bubblewrap or socat."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    for tool in ("git", "sh", "env"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


async def conductor_run(repo: Path, env: dict[str, str]) -> tuple[int, str, str]:
    done = await anyio.run_process(
        [sys.executable, "-m", "conductor", "run", "core", "--plan", "plan.json", "--no-live"],
        cwd=repo,
        env=env,
        check=False,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def prepare(repo: Path, toml: str) -> None:
    (repo / "plan.json").write_text(json.dumps(PLAN))
    (repo / "conductor.toml").write_text(f'review = "auto"\nmodel = "{STANDIN_MODEL}"\n{toml}')
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "plan and config")


async def test_run_refuses_in_one_line_without_bubblewrap(standin: Standin, tmp_path: Path) -> None:
    async with standin(SCRIPT) as offline:
        prepare(offline.repo, "")
        env = {**clean_env(), **offline.env, "PATH": path_without_bwrap(tmp_path)}
        code, out, err = await conductor_run(offline.repo, env)
        assert code == 2, out + err
        assert err.strip().splitlines() == [
            "error: the session sandbox needs bwrap and socat: install them (Debian/Ubuntu:"
            " apt-get install bubblewrap socat), or set sandbox = false in conductor.toml"
        ]
        assert not (offline.repo / ".conductor" / "sessions").exists()  # no session started


async def test_sandbox_false_in_conductor_toml_runs_without_it(
    standin: Standin, tmp_path: Path
) -> None:
    async with standin(SCRIPT) as offline:
        prepare(offline.repo, "sandbox = false\n")
        env = {**clean_env(), **offline.env, "PATH": path_without_bwrap(tmp_path)}
        code, out, err = await conductor_run(offline.repo, env)
        assert code == 0, out + err
        assert "everything merged" in out
        launchers = list((offline.repo / ".conductor" / "sessions").glob("*/A/cli"))
        assert launchers == []  # the CLI ran as the SDK starts it: no jail


async def test_a_sandboxed_run_starts_each_session_through_its_jail(standin: Standin) -> None:
    async with standin(SCRIPT) as offline:
        prepare(offline.repo, "")
        code, out, err = await conductor_run(offline.repo, {**clean_env(), **offline.env})
        assert code == 0, out + err
        (launcher,) = (offline.repo / ".conductor" / "sessions").glob("*/A/cli")
        text = launcher.read_text()
        assert text.startswith("#!/bin/sh\nexec bwrap --unshare-user")
        assert "--ro-bind / /" in text and "/.git/hooks" in text


@pytest.mark.skipif(os.geteuid() != 0, reason="what Claude Code refuses is running as root")
async def test_as_root_without_the_sandbox_run_says_in_one_line_what_to_set(
    standin: Standin, tmp_path: Path
) -> None:
    async with standin(SCRIPT) as offline:
        prepare(offline.repo, "sandbox = false\n")
        env = {k: v for k, v in {**clean_env(), **offline.env}.items() if k != "IS_SANDBOX"}
        code, out, err = await conductor_run(offline.repo, env)
        assert code == 2, out + err
        (line,) = err.strip().splitlines()
        assert line.startswith("error: as root, Claude Code refuses to run sessions hands-off")
        assert "IS_SANDBOX=1" in line and "sandbox = true" in line


@pytest.mark.skipif(os.geteuid() != 0, reason="what Claude Code refuses is running as root")
async def test_as_root_the_planner_is_refused_in_one_line_before_anything_is_made(
    standin: Standin,
) -> None:
    async with standin(SCRIPT) as offline:
        prepare(offline.repo, "")  # sandboxed sessions are fine; the planner runs unjailed
        env = {k: v for k, v in {**clean_env(), **offline.env}.items() if k != "IS_SANDBOX"}
        done = await anyio.run_process(
            [sys.executable, "-m", "conductor", "run", "core", "--no-live"],
            cwd=offline.repo,
            env=env,
            check=False,
        )
        assert done.returncode == 2
        (line,) = done.stderr.decode().strip().splitlines()
        assert line.startswith("error: as root, Claude Code refuses to run the planner")
        assert "--plan FILE" in line and "IS_SANDBOX=1" in line
        assert not (offline.repo / ".conductor").exists()


def test_a_long_temp_dir_gives_way_to_tmp_where_the_sessions_sockets_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long = tmp_path / ("t" * 40)  # as macOS's /var/folders/.../T/ would be
    long.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long))
    chosen = short_tmp(tmp_path / "sessions" / "A")
    try:
        assert chosen.parent == Path("/tmp")
        assert len(os.fsencode(chosen)) + 60 <= 107  # room for the CLI's socket names
    finally:
        chosen.rmdir()


def test_a_temp_dir_planted_under_a_sessions_name_is_never_used(tmp_path: Path) -> None:
    owner = tmp_path / "sessions" / "A"
    planted = short_tmp(owner)
    planted.rmdir()
    planted.symlink_to(tmp_path)  # someone else's link, where the session's temp dir goes
    try:
        chosen = short_tmp(owner)
        assert chosen != planted and chosen.is_dir() and not chosen.is_symlink()
        chosen.rmdir()
    finally:
        planted.unlink()
