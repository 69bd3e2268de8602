"""`conductor doctor`: each check passing and failing, seen by running the real command as its
own process, with the environment (PATH, HOME, credentials) and the file system made to fail."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import clean_env, make_repo

from conductor import jail
from conductor.credentials import CREDENTIALS_FILE, ENVIRONMENT_CREDENTIALS

READY_TOML = (
    "sandbox = false\n"  # a ready repository on any machine (the sandbox has tests of its own)
)


@dataclass
class Report:
    code: int
    out: str
    err: str

    @property
    def checks(self) -> dict[str, dict[str, Any]]:
        return {c["check"]: c for c in json.loads(self.out)["checks"]}

    def status(self, name: str) -> str:
        return str(self.checks[name]["status"])

    def detail(self, name: str) -> str:
        return str(self.checks[name]["detail"])


def env_for(home: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without credentials, sandbox flag or Claude config: each test
    adds what it is about."""
    dropped = {*ENVIRONMENT_CREDENTIALS, "CLAUDE_CONFIG_DIR", "IS_SANDBOX"}
    env = {k: v for k, v in clean_env().items() if k not in dropped}
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env.update(extra)
    return env


def doctor(
    cwd: Path, env: dict[str, str], *args: str, json_: bool = True, wrapper: tuple[str, ...] = ()
) -> Report:
    argv = [*wrapper, sys.executable, "-m", "conductor", "doctor", *(["--json"] if json_ else [])]
    done = subprocess.run(
        [*argv, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Report(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def ready(tmp_path: Path) -> Path:
    """A repository conductor could run in, as far as the repository goes."""
    repo = make_repo(tmp_path / "repo")
    (repo / "conductor.toml").write_text(READY_TOML)
    return repo


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def with_key(home: Path, **extra: str) -> dict[str, str]:
    return env_for(home, ANTHROPIC_API_KEY="k", IS_SANDBOX="1", **extra)


def bwrap_works() -> bool:
    if shutil.which("bwrap") is None:
        return False
    probe = ["bwrap", "--bind", "/", "/", "--dev", "/dev", "--", "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


needs_bwrap = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot run here")


# ------------------------------------------------------------------------------ the whole report


def test_a_ready_repository_passes_every_check_and_exits_0(ready: Path, home: Path) -> None:
    report = doctor(ready, with_key(home))
    assert report.code == 0, report.out
    assert {c["status"] for c in report.checks.values()} <= {"ok", "skip"}
    assert json.loads(report.out)["ok"] is True


def test_the_report_is_one_line_per_check_and_a_summary(ready: Path, home: Path) -> None:
    report = doctor(ready, with_key(home), json_=False)
    lines = report.out.strip().splitlines()
    names = list(doctor(ready, with_key(home)).checks)
    assert len(lines) == len(names) + 1
    for line, name in zip(lines, names, strict=False):
        assert line.split(maxsplit=1)[1].startswith(f"{name}: ")
    assert lines[-1] == f"all {len(names)} checks passed"


def test_a_failed_check_gives_its_fix_on_its_line_and_exit_1(ready: Path, home: Path) -> None:
    (ready / "conductor.toml").write_text("max_paralel = 3\n")
    report = doctor(ready, with_key(home), json_=False)
    assert report.code == 1
    line = next(ln for ln in report.out.splitlines() if ln.startswith("FAIL"))
    assert "conductor.toml: " in line and "; fix: edit " in line
    assert report.out.strip().splitlines()[-1].endswith("checks failed: conductor.toml")


def test_the_help_says_what_the_exit_codes_mean(ready: Path, home: Path) -> None:
    said = doctor(ready, with_key(home), "--help", json_=False).out
    assert "Exit 0 when every check passes, 1 when any fails" in " ".join(said.split())


def test_bad_usage_exits_2(ready: Path, home: Path) -> None:
    assert doctor(ready, with_key(home), "--no-such-option", json_=False).code == 2


# ------------------------------------------------------------------------------ git


def test_git_new_enough_passes_with_its_version(ready: Path, home: Path) -> None:
    report = doctor(ready, with_key(home))
    assert report.status("git") == "ok"
    assert shutil.which("git") in report.detail("git")


def test_no_git_on_path_fails_and_says_to_install_it(ready: Path, home: Path) -> None:
    empty = home / "bin"
    empty.mkdir(parents=True)
    report = doctor(ready, with_key(home, PATH=str(empty)))
    assert report.code == 1
    assert report.status("git") == "fail" and "not found on PATH" in report.detail("git")
    assert "install git 2.38 or newer" in report.checks["git"]["fix"]
    assert report.status("git repository") == "skip"


def test_a_git_older_than_2_38_fails(ready: Path, home: Path) -> None:
    old = home / "old-git"
    old.mkdir(parents=True)
    real = shutil.which("git")
    (old / "git").write_text(
        f'#!/bin/sh\n[ "$1" = --version ] && {{ echo "git version 2.30.1"; exit 0; }}\n'
        f'exec {real} "$@"\n'
    )
    (old / "git").chmod(0o755)
    report = doctor(ready, with_key(home, PATH=f"{old}{os.pathsep}{os.environ['PATH']}"))
    assert report.code == 1
    assert report.status("git") == "fail"
    assert "2.30.1" in report.detail("git") and "merge-tree --write-tree" in report.detail("git")


def test_outside_a_git_repository_the_repository_line_says_so(tmp_path: Path, home: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    report = doctor(plain, with_key(home))
    assert report.status("git repository") == "skip"
    assert f"{plain} is not inside one" in report.detail("git repository")
    assert report.status(".conductor/") == "skip" and report.status("conductor.toml") == "skip"
    # a skipped check is not a failure
    assert report.code == (1 if any(c["status"] == "fail" for c in report.checks.values()) else 0)


# ------------------------------------------------------------------------------ the Claude Code CLI


def test_the_bundled_cli_starts_and_gives_its_version(ready: Path, home: Path) -> None:
    report = doctor(ready, with_key(home))
    assert report.status("Claude Code CLI") == "ok"
    assert "(Claude Code)" in report.detail("Claude Code CLI")


@needs_bwrap
def test_a_cli_that_does_not_start_fails_with_what_it_said(
    ready: Path, home: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "claude"
    broken.write_text("#!/bin/sh\necho 'this install is broken' >&2\nexit 3\n")
    broken.chmod(0o755)
    # The bundled binary replaced, for this process only, by a mount over it.
    over = ("bwrap", "--bind", "/", "/", "--dev", "/dev", "--bind", str(broken))
    report = doctor(ready, with_key(home), wrapper=(*over, str(jail.bundled_cli())))
    assert report.code == 1
    assert report.status("Claude Code CLI") == "fail"
    assert "exit 3" in report.detail("Claude Code CLI")
    assert "this install is broken" in report.detail("Claude Code CLI")


# ------------------------------------------------------------------------------ credentials


def test_no_credentials_fails_and_names_the_ways_to_give_them(ready: Path, home: Path) -> None:
    report = doctor(ready, env_for(home, IS_SANDBOX="1"))
    assert report.code == 1
    assert report.status("credentials") == "fail"
    assert "ANTHROPIC_API_KEY" in report.detail("credentials")
    assert "log in with `claude`" in report.detail("credentials")


def test_an_api_key_in_the_environment_passes(ready: Path, home: Path) -> None:
    report = doctor(ready, with_key(home))
    assert report.status("credentials") == "ok"
    assert "ANTHROPIC_API_KEY" in report.detail("credentials")


def test_a_key_in_conductor_toml_env_passes(ready: Path, home: Path) -> None:
    (ready / "conductor.toml").write_text(READY_TOML + '[env]\nANTHROPIC_API_KEY = "k"\n')
    report = doctor(ready, env_for(home, IS_SANDBOX="1"))
    assert report.status("credentials") == "ok"


def login(home: Path, expires_ms: float) -> Path:
    path = home / ".claude" / CREDENTIALS_FILE
    path.parent.mkdir(parents=True)
    oauth = {"accessToken": "tok", "expiresAt": expires_ms}
    path.write_text(json.dumps({"claudeAiOauth": oauth}))
    return path


def test_a_claude_code_login_passes(ready: Path, home: Path) -> None:
    path = login(home, expires_ms=4_102_444_800_000)  # 2100
    report = doctor(ready, env_for(home, IS_SANDBOX="1"))
    assert report.status("credentials") == "ok"
    assert str(path) in report.detail("credentials")


def test_an_expired_login_fails_and_says_how_to_refresh_it(ready: Path, home: Path) -> None:
    login(home, expires_ms=1_000_000_000_000)  # 2001
    report = doctor(ready, env_for(home, IS_SANDBOX="1"))
    assert report.status("credentials") == "fail"
    assert "has expired" in report.detail("credentials")


# ------------------------------------------------------------------------------ the sandbox


@pytest.mark.skipif(jail.unavailable_reason() is not None, reason="no sandbox on this machine")
def test_the_sandbox_and_the_bash_sandbox_inside_it_pass_where_they_work(
    tmp_path: Path, home: Path
) -> None:
    repo = make_repo(tmp_path / "repo")  # no conductor.toml: the sandbox is on
    report = doctor(repo, env_for(home, ANTHROPIC_API_KEY="k"))
    assert report.status("sandbox") == "ok" and report.status("Bash sandbox") == "ok"
    assert report.code == 0


def test_without_bubblewrap_and_socat_the_sandbox_fails_with_how_to_install_them(
    tmp_path: Path, home: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    only_git = home / "bin"
    only_git.mkdir(parents=True)
    (only_git / "git").symlink_to(shutil.which("git") or "git")
    report = doctor(repo, env_for(home, ANTHROPIC_API_KEY="k", PATH=str(only_git)))
    if sys.platform == "darwin":
        pytest.skip("macOS sandboxes with Seatbelt, not bubblewrap")
    assert report.code == 1
    assert report.status("sandbox") == "fail"
    assert "bwrap and socat" in report.detail("sandbox")
    assert "sandbox = false" in report.detail("sandbox")
    assert report.status("Bash sandbox") == "skip"


def test_the_sandbox_turned_off_in_conductor_toml_passes_and_says_so(
    ready: Path, home: Path
) -> None:
    report = doctor(ready, with_key(home))
    assert report.status("sandbox") == "ok"
    assert "off in conductor.toml" in report.detail("sandbox")
    assert report.status("Bash sandbox") == "skip"


@pytest.mark.skipif(os.geteuid() != 0, reason="Claude Code refuses hands-off sessions as root only")
def test_as_root_the_sandbox_off_fails_unless_the_machine_is_a_sandbox(
    ready: Path, home: Path
) -> None:
    report = doctor(ready, env_for(home, ANTHROPIC_API_KEY="k"))  # no IS_SANDBOX
    assert report.status("sandbox") == "fail"
    assert "IS_SANDBOX=1" in report.detail("sandbox")


# ------------------------------------------------------------------------------ .conductor/


def test_a_missing_state_folder_will_be_created_and_is_not_made_now(
    ready: Path, home: Path
) -> None:
    report = doctor(ready, with_key(home))
    assert report.status(".conductor/") == "ok"
    assert "will be created" in report.detail(".conductor/")
    assert not (ready / ".conductor").exists()


def test_an_existing_state_folder_is_writable(ready: Path, home: Path) -> None:
    (ready / ".conductor").mkdir()
    report = doctor(ready, with_key(home))
    assert report.status(".conductor/") == "ok" and "is writable" in report.detail(".conductor/")


def test_a_state_folder_that_is_a_file_fails(ready: Path, home: Path) -> None:
    (ready / ".conductor").write_text("not a folder")
    report = doctor(ready, with_key(home))
    assert report.code == 1
    assert report.status(".conductor/") == "fail"
    assert "is not a folder" in report.detail(".conductor/")


def test_an_unwritable_state_folder_fails_with_the_fix(ready: Path, home: Path) -> None:
    state = ready / ".conductor"
    state.mkdir()
    wrapper: tuple[str, ...] = ()
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount instead
        if not bwrap_works():
            pytest.skip("as root, needs bubblewrap for a read-only mount")
        wrapper = (
            "bwrap",
            "--bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--ro-bind",
            str(state),
            str(state),
        )
    else:
        state.chmod(0o555)
    try:
        report = doctor(ready, with_key(home), wrapper=wrapper)
    finally:
        state.chmod(0o755)
    assert report.code == 1
    assert report.status(".conductor/") == "fail"
    assert "is not writable" in report.detail(".conductor/")
    assert "chmod u+w" in report.checks[".conductor/"]["fix"]


def test_a_database_named_in_a_missing_folder_will_be_created_and_nothing_is_made(
    ready: Path, home: Path, tmp_path: Path
) -> None:
    db = tmp_path / "missing" / "dir" / "x.db"
    report = doctor(ready, with_key(home, CONDUCTOR_DB=str(db)))
    line = next(c for name, c in report.checks.items() if name.startswith("database"))
    assert line["status"] == "ok" and "will be created" in line["detail"]
    assert not (tmp_path / "missing").exists()


def test_a_database_named_under_a_file_fails(ready: Path, home: Path, tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("a file")
    report = doctor(ready, with_key(home, CONDUCTOR_DB=str(tmp_path / "file.txt" / "x.db")))
    line = next(c for name, c in report.checks.items() if name.startswith("database"))
    assert report.code == 1
    assert line["status"] == "fail" and "is not a folder" in line["detail"]


# ------------------------------------------------------------------------------ conductor.toml


def test_no_conductor_toml_passes_with_the_defaults(tmp_path: Path, home: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    report = doctor(repo, with_key(home))
    assert report.status("conductor.toml") == "ok"
    assert "defaults" in report.detail("conductor.toml")


def test_a_valid_conductor_toml_passes(ready: Path, home: Path) -> None:
    assert doctor(ready, with_key(home)).status("conductor.toml") == "ok"


def test_an_unknown_key_in_conductor_toml_fails_naming_it(ready: Path, home: Path) -> None:
    (ready / "conductor.toml").write_text(READY_TOML + "max_paralel = 3\n")
    report = doctor(ready, with_key(home))
    assert report.code == 1
    assert report.status("conductor.toml") == "fail"
    assert "max_paralel" in report.detail("conductor.toml")
    assert "\n" not in report.detail("conductor.toml")


def test_conductor_toml_that_is_not_toml_fails(ready: Path, home: Path) -> None:
    (ready / "conductor.toml").write_text("sandbox = \n")
    report = doctor(ready, with_key(home))
    assert report.status("conductor.toml") == "fail"
    assert "TOML" in report.detail("conductor.toml")
