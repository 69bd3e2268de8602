"""A run delivered as a pull request (`--pr`): the integration branch pushed to a real bare
`origin`, and `gh pr create` called with the right base, head, title and body. The `gh` here is
a small script that records its arguments, its environment's names and the body file's text,
and prints a URL: the only stand-in (no GitHub is reachable from a test). Everything else is
real: git, the store, the run's rows and events."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import Cli, clean_env, commit_file, git, make_repo

from conductor.bus import Bus, create_run
from conductor.config import parse_config
from conductor.events import EventKind, MergeGateOutcome
from conductor.gates import integration_branch
from conductor.models import RunState, SessionKind
from conductor.run.delivery import Asked, deliver, deliver_run, wanted
from conductor.run.pr_body import TITLE_LENGTH, literal, title_of
from conductor.run.summary import Outcome, RunSummary
from conductor.standin.harness import STANDIN_MODEL
from conductor.store import Store

pytestmark = pytest.mark.anyio

URL = "https://github.com/example/widgets/pull/7"
GOAL = "Add a widgets CLI\n\nwith a core module and a command line on top"
PLAN = {
    "workstreams": [
        {"id": "A", "name": "core", "task": "core", "owns": ["core.py"]},
        {"id": "B", "name": "cli", "task": "cli", "owns": ["cli.py"], "depends_on": ["A"]},
    ]
}
CHECK = "pytest -q"


def fake_gh(bin_dir: Path, log: Path, *, code: int = 0, stdout: str = "", stderr: str = "") -> None:
    """`gh` on PATH: records each call (arguments, working directory, the names in its
    environment, the body file's text) in `log`, prints `stdout`/`stderr`, exits `code`."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "gh"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "args = sys.argv[1:]\n"
        "named = [a.split('=', 1)[1] for a in args if a.startswith('--body-file=')]\n"
        "body = open(named[0], encoding='utf-8').read() if named else None\n"
        "call = {'args': args, 'cwd': os.getcwd(), 'env': sorted(os.environ), 'body': body}\n"
        f"with open({str(log)!r}, 'a', encoding='utf-8') as f:\n"
        "    f.write(json.dumps(call) + '\\n')\n"
        f"sys.stdout.write({stdout!r})\n"
        f"sys.stderr.write({stderr!r})\n"
        f"sys.exit({code})\n"
    )
    script.chmod(0o755)


def calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


@dataclass
class Place:
    """A repository whose `origin` is a bare repository beside it, a run in its store (A and
    B merged, with reviews and a check that failed once), and its integration branch."""

    repo: Path
    origin: Path
    bin: Path
    log: Path
    run_id: str
    branch: str
    head: str

    def on_origin(self, branch: str) -> str:
        return git(self.origin, "rev-parse", "--verify", "-q", f"refs/heads/{branch}", check=False)

    def asked(self, *, remote: str | None = "origin", base: str | None = "main") -> Asked:
        body = self.repo / ".conductor" / "body.md"
        body.parent.mkdir(exist_ok=True)
        body.write_text("the body\n")
        return Asked(self.repo, self.branch, base, remote, "Add a widgets CLI", body)

    def path_env(self, **extra: str) -> dict[str, str]:
        return {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", **extra}


async def _record_the_run(bus: Bus, head: str) -> None:
    """What a run that merged A and B leaves in the store: turns and their cost, a rejected
    then an approved review of A, an approved one of B, a failed check and the merges."""
    await bus.register([("A", "core"), ("B", "cli")])
    await bus.register([("A-reviewer", "reviews A"), ("auto", "auto")], kind=SessionKind.REVIEWER)
    for name, cost in (("A", 0.25), ("B", 0.125), ("A-reviewer", 0.0625)):
        await bus.record_turn(name, "turn", {"num_turns": 3, "cost_usd": cost})
    first = await bus.request_review("A", commit="a1", diff=b"")
    await bus.decide(first.id, "A-reviewer", approve=False, comment="core.greet has no test")
    second = await bus.request_review("A", commit="a2", diff=b"")
    await bus.decide(second.id, "A-reviewer", approve=True)
    third = await bus.request_review("B", commit="b1", diff=b"")
    await bus.decide(third.id, "auto", approve=True)
    failed = MergeGateOutcome(branch="A", commit="a1", check=CHECK)
    await bus.record("A", EventKind.MERGE_CHECK_FAILED, "check failed", failed)
    for name, commit in (("A", "a2" * 20), ("B", "b1" * 20)):
        merged = MergeGateOutcome(branch=name, commit=commit, integration_head=head, commits=1)
        await bus.record(name, EventKind.MERGE_MERGED, f"{name} merged", merged)
    await bus.set_state(RunState.FINISHED, "everything merged")


@pytest.fixture
async def place(tmp_path: Path) -> Place:
    origin = tmp_path / "origin.git"
    origin.mkdir()
    git(origin, "init", "-q", "--bare", "-b", "main")
    repo = make_repo(tmp_path / "repo")
    git(repo, "remote", "add", "origin", str(origin))
    git(repo, "push", "-q", "origin", "main")
    config = {"checks": [CHECK], "pr": True}
    spec = {"plan": PLAN, "config": config, "into": None, "remote": "origin", "workers": False}
    async with Store.open(repo / ".conductor" / "conductor.db") as store:
        bus = await create_run(
            store,
            goal=GOAL,
            repo_root=repo,
            base_ref="main",
            base_commit=git(repo, "rev-parse", "HEAD"),
            spec=spec,
        )
        branch = integration_branch(bus.run_id)
        git(repo, "checkout", "-q", "-b", branch)
        head = commit_file(repo, "core.py", "def greet():\n    return 'hello'\n")
        git(repo, "checkout", "-q", "main")
        await _record_the_run(bus, head)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return Place(repo, origin, bin_dir, tmp_path / "gh.jsonl", bus.run_id, branch, head)


# ------------------------------------------------------------------------ the whole delivery


async def test_a_finished_run_is_pushed_and_opened_as_a_pull_request(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_gh(place.bin, place.log, stdout=f"Creating pull request...\n{URL}\n")
    monkeypatch.setenv("PATH", place.path_env()["PATH"])
    delivered = await deliver_run(place.run_id, cwd=place.repo, db=None, pr=None)
    assert delivered is not None
    assert (delivered.state, delivered.url, delivered.line) == (
        "opened",
        URL,
        f"pull request: {URL}",
    )
    assert delivered.to_json()["url"] == URL and delivered.pushed
    assert place.on_origin(place.branch) == place.head  # pushed at the integration head
    [call] = calls(place.log)
    body_file = place.repo / ".conductor" / "pull-requests" / f"{place.run_id}.md"
    assert call["args"] == [
        "pr",
        "create",
        "--base=main",
        f"--head={place.branch}",
        "--title=Add a widgets CLI",
        f"--body-file={body_file}",
    ]
    assert call["cwd"] == str(place.repo)
    body = call["body"]
    assert body == body_file.read_text()  # the body gh read is the one kept
    assert "> Add a widgets CLI\n>\n> with a core module" in body  # the goal, whole
    assert "| `A (core)` | merged `a2a2a2a2a2a2` | 1 | 2 | 2 | 3 | $0.2500 |" in body
    assert "| `B (cli)` | merged `b1b1b1b1b1b1` | 1 | 1 | 1 | 3 | $0.1250 |" in body
    rounds = "1. rejected by `A-reviewer`: `core.greet has no test`; 2. approved by `A-reviewer`"
    assert f"- `A (core)`: {rounds}" in body
    assert "- `B (cli)`: 1. approved by `auto`" in body
    assert f"- `{CHECK}`" in body and f"`A (core)`: `{CHECK}`" in body  # ran, and failed once
    assert "$0.4375 in total over 9 turns" in body  # A + B + A's reviewer
    assert "workstreams $0.3750, reviewers $0.0625" in body


async def test_a_run_that_just_ended_is_delivered_from_its_summary(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary says how it ended (the store may say the same later): ok -> delivered;
    --no-pr wins over the run's `pr = true`."""
    fake_gh(place.bin, place.log, stdout=f"{URL}\n")
    monkeypatch.setenv("PATH", place.path_env()["PATH"])
    ended = RunSummary(place.run_id, place.branch, place.head, [Outcome("A", "merged")])
    assert await deliver_run(None, cwd=place.repo, db=None, pr=False, ended=ended) is None
    assert calls(place.log) == []
    delivered = await deliver_run(None, cwd=place.repo, db=None, pr=None, ended=ended)
    assert delivered is not None and delivered.url == URL


async def test_not_everything_merged_opens_nothing_and_pushes_nothing(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_gh(place.bin, place.log, stdout=f"{URL}\n")
    monkeypatch.setenv("PATH", place.path_env()["PATH"])
    outcomes = [Outcome("A", "merged"), Outcome("B", "failed")]
    ended = RunSummary(place.run_id, place.branch, place.head, outcomes)
    delivered = await deliver_run(None, cwd=place.repo, db=None, pr=True, ended=ended)
    assert delivered is not None and delivered.state == "not_opened"
    assert delivered.line.startswith(
        f"pull request: not opened: not everything merged; {place.branch} stays as it is"
    )
    assert f"git push origin {place.branch} && gh pr create --base=main" in delivered.line
    assert "\n" not in delivered.line
    assert calls(place.log) == [] and place.on_origin(place.branch) == ""
    assert git(place.repo, "rev-parse", place.branch) == place.head


async def test_an_interrupted_run_is_not_delivered_yet(place: Place) -> None:
    ended = RunSummary(place.run_id, place.branch, place.head, interrupted=True)
    delivered = await deliver_run(None, cwd=place.repo, db=None, pr=True, ended=ended)
    assert delivered is not None and delivered.state == "not_opened"
    assert "the run did not finish" in delivered.line
    assert place.on_origin(place.branch) == ""


# ------------------------------------------------------------------------ what stops it


async def test_without_gh_one_line_says_so_and_the_branch_is_pushed(place: Place) -> None:
    delivered = await deliver(place.asked(), env={"PATH": str(place.bin)})  # no gh there
    assert delivered.state == "not_opened" and delivered.pushed
    assert delivered.line == (
        "pull request: not opened: gh (GitHub's CLI) is not on PATH;"
        f" {place.branch} is pushed to origin: open one with: gh pr create --base=main"
        f" --head={place.branch} '--title=Add a widgets CLI'"
        f" --body-file={place.repo / '.conductor' / 'body.md'}"
    )
    assert place.on_origin(place.branch) == place.head
    assert git(place.repo, "rev-parse", place.branch) == place.head  # the branch stays


async def test_without_a_remote_one_line_says_what_to_do(place: Place) -> None:
    fake_gh(place.bin, place.log, stdout=f"{URL}\n")
    delivered = await deliver(place.asked(remote=None), env=place.path_env())
    assert delivered.state == "not_opened" and not delivered.pushed
    assert delivered.line.startswith(
        f"pull request: not opened: the repository has no remote to push to; {place.branch}"
        f" stays here: git remote add origin URL && git push origin {place.branch} && gh pr"
        " create --base=main"
    )
    assert calls(place.log) == [] and place.on_origin(place.branch) == ""


async def test_a_push_the_remote_refuses_is_one_line_with_gits_reason(
    place: Place, tmp_path: Path
) -> None:
    """Someone pushed another commit to the branch on the remote: never forced over."""
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(place.origin), str(other))
    git(other, "checkout", "-q", "-b", place.branch)
    theirs = commit_file(other, "theirs.txt", "someone else's\n")
    git(other, "push", "-q", "origin", place.branch)
    fake_gh(place.bin, place.log, stdout=f"{URL}\n")
    delivered = await deliver(place.asked(), env=place.path_env())
    assert delivered.state == "not_opened" and not delivered.pushed
    assert delivered.line.startswith(
        f"pull request: not opened: git push origin {place.branch} was refused: "
    )
    assert "fetch first" in delivered.line or "non-fast-forward" in delivered.line
    assert delivered.line.endswith(f"; {place.branch} stays here") and "\n" not in delivered.line
    assert calls(place.log) == []
    assert place.on_origin(place.branch) == theirs  # theirs is kept
    assert git(place.repo, "rev-parse", place.branch) == place.head  # and ours


async def test_gh_naming_a_pull_request_already_open_is_that_pull_request(
    place: Place,
) -> None:
    said = f'a pull request for branch "{place.branch}" into branch "main" already exists:\n{URL}\n'
    fake_gh(place.bin, place.log, code=1, stderr=said)
    delivered = await deliver(place.asked(), env=place.path_env())
    assert (delivered.state, delivered.url) == ("exists", URL)
    assert delivered.opened
    assert delivered.line == f"pull request: {URL} (already open for {place.branch})"


async def test_gh_failing_is_one_line_with_its_reason_and_the_command(place: Place) -> None:
    said = "pull request create failed: GraphQL: Head sha can't be blank\nsee the docs\n"
    fake_gh(place.bin, place.log, code=1, stderr=said)
    delivered = await deliver(place.asked(), env=place.path_env())
    assert delivered.state == "not_opened" and delivered.pushed
    assert delivered.line.startswith(
        "pull request: not opened: gh pr create failed: pull request create failed: GraphQL:"
        " Head sha can't be blank; see the docs;"
    )
    assert "is pushed to origin: open one with: gh pr create --base=main" in delivered.line


async def test_gh_gets_the_users_environment_without_conductors_secrets(place: Place) -> None:
    fake_gh(place.bin, place.log, stdout=f"{URL}\n")
    secrets = {
        "ANTHROPIC_API_KEY": "sk-ant",
        "CLAUDE_CODE_OAUTH_TOKEN": "oauth",
        "PGPASSWORD": "pw",
        "CONDUCTOR_DB": "postgresql://u:pw@db/conductor",
    }
    env = place.path_env(GH_TOKEN="gh-token", GITHUB_TOKEN="gh-token", HOME="/home/x", **secrets)
    delivered = await deliver(place.asked(), env=env)
    assert delivered.url == URL
    [call] = calls(place.log)
    assert {"GH_TOKEN", "GITHUB_TOKEN", "HOME", "PATH"} <= set(call["env"])
    assert not set(secrets) & set(call["env"])


async def test_a_run_started_on_a_detached_head_has_no_base_to_ask_for(place: Place) -> None:
    fake_gh(place.bin, place.log, stdout=f"{URL}\n")
    delivered = await deliver(place.asked(base=None), env=place.path_env())
    assert delivered.state == "not_opened" and delivered.pushed
    assert "started on a detached HEAD" in delivered.line and "--base=BRANCH" in delivered.line
    assert calls(place.log) == []


# ------------------------------------------------------------------------ settings and title


def test_pr_is_a_setting_and_the_flag_wins_over_it() -> None:
    assert parse_config({"pr": True}).pr is True and parse_config({}).pr is False
    assert wanted({"config": {"pr": True}}, None) and not wanted({"config": {"pr": True}}, False)
    assert wanted({"config": {}}, True) and not wanted(None, None)


def test_what_models_wrote_is_inline_code_in_the_body() -> None:
    """No mention, issue reference or closing keyword from a model's words: GitHub reads
    none in code. Backticks in them cannot end the code early."""
    assert literal("ping @octocat, fixes #12") == "`ping @octocat, fixes #12`"
    assert literal("a `b` ``c``") == "``` a `b` ``c`` ```"
    assert literal(" two\n lines ") == "`two lines`" and literal("") == ""


def test_the_title_is_the_goals_first_line_cut_at_a_word() -> None:
    assert title_of("Add a CLI\n\nmore words") == "Add a CLI"
    assert title_of("  \n  spaced   out goal ") == "spaced out goal"
    long = "Build a REST API with authentication, rate limiting, pagination and a dashboard"
    cut = title_of(long)
    assert len(cut) <= TITLE_LENGTH and cut.endswith("…")
    assert long.startswith(cut[:-1]) and long[len(cut) - 1] == " "  # cut between words
    assert len(title_of("x" * 200)) == TITLE_LENGTH


# ------------------------------------------------------------------------ end to end

ONE_STREAM = """
roles:
  A:
    - - tool: Write
        input: {file_path: "${cwd}/core.py", content: "def greet():\\n    return 'hello'\\n"}
      - tool: Bash
        input: {command: "git add -A && git commit -qm 'core: greet'"}
      - tool: mcp__bus__request_review
        input: {note: "core is ready"}
      - text: "A is done."
"""


async def _conductor(repo: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    with anyio.fail_after(180):
        done = await anyio.run_process(
            [sys.executable, "-m", "conductor", *args], cwd=repo, env=env, check=False
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_conductor_run_pr_opens_a_pull_request_and_resume_pr_again(
    standin: Any, tmp_path: Path
) -> None:
    """`conductor run GOAL --pr --json` as a process, its session the real CLI against the
    stand-in: the integration branch lands on the bare origin at the run's head, gh gets
    base main, head the integration branch, the goal as title, a body naming the workstream
    and the run's cost; the JSON carries the URL. `conductor resume RUN --pr` of the
    finished run delivers it again (gh would name the pull request already open)."""
    async with standin(ONE_STREAM) as offline:
        repo = offline.repo
        origin = tmp_path / "origin.git"
        origin.mkdir()
        git(origin, "init", "-q", "--bare", "-b", "main")
        core = {"id": "A", "name": "core", "task": "core", "owns": ["core.py"]}
        (repo / "plan.json").write_text(json.dumps({"workstreams": [core]}))
        (repo / "conductor.toml").write_text(
            f'review = "auto"\nmodel = "{STANDIN_MODEL}"\nchecks = []\n'
        )
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", "plan and config")
        git(repo, "remote", "add", "origin", str(origin))
        git(repo, "push", "-q", "origin", "main")
        bin_dir, log = tmp_path / "bin", tmp_path / "gh.jsonl"
        fake_gh(bin_dir, log, stdout=f"{URL}\n")
        env = {**clean_env(), **offline.env}
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
        code, out, err = await _conductor(
            repo, env, "run", "Greet from core", "--plan", "plan.json", "--pr", "--json"
        )
        assert code == 0, err
        summary = json.loads(out)
        assert summary["ok"] and summary["pull_request"]["url"] == URL, summary
        assert summary["pull_request"]["state"] == "opened"
        branch, head = summary["integration_branch"], summary["integration_head"]
        assert git(origin, "rev-parse", f"refs/heads/{branch}") == head
        [call] = calls(log)
        assert call["args"][:5] == [
            "pr",
            "create",
            "--base=main",
            f"--head={branch}",
            "--title=Greet from core",
        ]
        assert "| `A (core)` | merged" in call["body"]
        spent = [o["cost_usd"] for o in summary["outcomes"]]
        spent += [s["cost_usd"] for s in summary["others"].values()]
        assert sum(spent) > 0 and f"${sum(spent):.4f} in total" in call["body"]
        assert not {"ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"} & set(call["env"])

        code, out, err = await _conductor(repo, env, "resume", summary["run_id"], "--pr")
        assert code == 0, err
        assert out.splitlines()[-2:] == [
            f"run {summary['run_id']} finished: everything merged, nothing to resume",
            f"pull request: {URL}",
        ]
        assert len(calls(log)) == 2
        code, out, err = await _conductor(repo, env, "resume", "--pr", "--json")  # the newest
        assert code == 0, err
        assert json.loads(out)["pull_request"]["url"] == URL
        assert "nothing to resume" in err


def test_a_plan_only_run_names_pr_in_the_command_that_runs_it(cli: Cli, repo: Path) -> None:
    (repo / "plan.json").write_text(json.dumps(PLAN))
    said = cli.ok("run", "goal", "--plan-only", "--plan", "plan.json", "--pr").out
    assert said.rstrip().endswith(" --pr"), said
    said = cli.ok("run", "goal", "--plan-only", "--plan", "plan.json", "--no-pr").out
    assert said.rstrip().endswith(" --no-pr"), said
