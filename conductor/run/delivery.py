"""A run delivered as a pull request (`conductor run --pr`, `pr = true`): once everything merged,
the integration branch is pushed to the run's remote and `gh pr create` opens a pull request
from it into the branch the run started from.

Delivery is the last step of a run that already succeeded, so it never turns that run into a
failure: whatever stops it (no remote, no `gh`, a push the remote refuses, gh's own error) is
one line saying so and what to do by hand, the integration branch stays as it is, and the
run's exit status is its own. Nothing is recorded of it: pushing is idempotent and gh names a
pull request already open for the branch, so delivering again (`conductor resume RUN --pr`)
is always safe and answers with the same URL.

gh gets the user's environment (its GH_TOKEN or GITHUB_TOKEN, its config) without the model
API's credentials and the database's (`jail.scrubbed_env`): it needs neither. The body goes
through a file (`--body-file`), never a command line; the file is kept in `.conductor/` so
the hand command a failure prints can name it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio

from conductor import gitops
from conductor.bus import Bus, open_run
from conductor.errors import ConductorError
from conductor.jail import scrubbed_env
from conductor.models import RunState
from conductor.run.launch import merge_target
from conductor.run.pr_body import RunRecord, body_of, title_of
from conductor.run.summary import RunSummary
from conductor.store import Store
from conductor.workspace import ensure_state_dir, locate

PUSH_TIMEOUT = 300.0  # a push of a whole run's work to a slow remote
GH_TIMEOUT = 120.0
BODIES = "pull-requests"  # under .conductor/: each run's body, as gh was given it
URL = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class Delivery:
    """What became of delivering a run: `opened` (or `exists`, already open for the branch)
    with gh's URL, else `not_opened` and why (`line` says it, with what to do by hand)."""

    state: str  # opened, exists, not_opened
    line: str  # the one line to print
    branch: str = ""
    base: str = ""
    remote: str = ""
    url: str = ""
    pushed: bool = False  # the branch is on the remote at the integration head

    @property
    def opened(self) -> bool:
        return self.state in ("opened", "exists")

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "url": self.url or None,
            "branch": self.branch,
            "base": self.base or None,
            "remote": self.remote or None,
            "pushed": self.pushed,
            "said": self.line,
        }


@dataclass(frozen=True)
class Asked:
    """One delivery: the repository, `branch` (the head) into `base`, pushed to `remote`."""

    repo: Path
    branch: str
    base: str | None  # None: the run started on a detached HEAD
    remote: str | None
    title: str
    body_file: Path


def wanted(run_spec: Mapping[str, Any] | None, pr: bool | None) -> bool:
    """Whether to deliver: `--pr`/`--no-pr` when given, else the run's `pr` setting."""
    if pr is not None:
        return pr
    config = (run_spec or {}).get("config")
    return bool(isinstance(config, Mapping) and config.get("pr"))


async def deliver_run(
    run_id: str | None,
    *,
    cwd: Path,
    db: str | None,
    pr: bool | None,
    ended: RunSummary | None = None,
) -> Delivery | None:
    """Deliver the run (`ended`: how it just ended; None: a run that ended before, read
    from the store) when `pr` or its setting asks; None when not asked. Never raises for
    the delivery's own trouble: that is its line."""
    try:
        ws = await locate(cwd, db)
        if ws.repo_root is None:
            return None
        async with Store.open(ws.location, create=False) as store:
            bus = await open_run(store, ended.run_id if ended else run_id)
            if not wanted(bus.run.spec, pr):
                return None
            return await deliver_bus(bus, ws.repo_root, ended)
    except (ConductorError, OSError) as e:  # the store, git, the body's file
        return Delivery("not_opened", f"pull request: not opened: {e}")


async def deliver_bus(bus: Bus, repo: Path, ended: RunSummary | None = None) -> Delivery:
    """The run on `bus` delivered, if everything merged."""
    run = await bus.refresh()
    branch = merge_target(run)
    if ended is not None and (ended.interrupted or ended.fault):
        return Delivery(
            "not_opened",
            f"pull request: not opened yet: the run did not finish; conductor resume {run.id}"
            " --pr opens one once everything merged",
            branch=branch,
        )
    merged = ended.ok if ended is not None else run.state is RunState.FINISHED
    asked = Asked(
        repo,
        branch,
        run.base_ref,
        await _remote(repo, run.spec),
        title_of(run.goal),
        ensure_state_dir(repo) / BODIES / f"{run.id}.md",
    )
    if not merged:
        return Delivery(
            "not_opened",
            f"pull request: not opened: not everything merged; {branch} stays as it is (once"
            f" it holds what you want: {_by_hand(asked)})",
            branch=branch,
            base=asked.base or "",
            remote=asked.remote or "",
        )
    head = ended.integration_head if ended is not None else ""
    head = head or await gitops.rev_parse(f"refs/heads/{branch}", repo)
    record = RunRecord(run, branch, head, await bus.sessions(), await bus.events())
    asked.body_file.parent.mkdir(parents=True, exist_ok=True)
    asked.body_file.write_text(body_of(record), encoding="utf-8")
    return await deliver(asked, env=os.environ)


async def deliver(asked: Asked, *, env: Mapping[str, str]) -> Delivery:
    """Push `asked.branch` to its remote, then open the pull request with gh (found on
    `env`'s PATH, run with `env` scrubbed of conductor's secrets)."""
    where = Delivery(
        "not_opened", "", branch=asked.branch, base=asked.base or "", remote=asked.remote or ""
    )
    if asked.remote is None:
        return replace(
            where,
            line=f"pull request: not opened: the repository has no remote to push to;"
            f" {asked.branch} stays here: {_by_hand(asked)}",
        )
    refused = await _push(asked.repo, asked.remote, asked.branch)
    if refused:
        push = _shell("git", "push", asked.remote, asked.branch)
        return replace(
            where,
            line=f"pull request: not opened: {push} was refused: {refused}; {asked.branch}"
            " stays here",
        )
    pushed = replace(where, pushed=True)
    on_remote = f"{asked.branch} is pushed to {asked.remote}"
    if asked.base is None:
        return replace(
            pushed,
            line="pull request: not opened: the run started on a detached HEAD, so there is no"
            f" branch to merge into; {on_remote}: open one with: {_gh(asked)}",
        )
    gh = shutil.which("gh", path=env.get("PATH", os.defpath))
    if gh is None:
        return replace(
            pushed,
            line="pull request: not opened: gh (GitHub's CLI) is not on PATH;"
            f" {on_remote}: open one with: {_gh(asked)}",
        )
    return await _gh_create(gh, asked, env, pushed)


async def _gh_create(gh: str, asked: Asked, env: Mapping[str, str], pushed: Delivery) -> Delivery:
    """`gh pr create`, its URL, or why it did not open one (in one line)."""
    argv = [gh, *_gh_args(asked)]
    gh_env = {**scrubbed_env(env), "GH_PROMPT_DISABLED": "1", "GIT_TERMINAL_PROMPT": "0"}
    try:
        with anyio.fail_after(GH_TIMEOUT):
            done = await anyio.run_process(argv, cwd=asked.repo, env=gh_env, check=False)
    except TimeoutError:
        why = f"gh pr create did not answer in {GH_TIMEOUT:.0f} s"
    except OSError as e:
        why = f"gh could not start: {e.strerror or e}"
    else:
        said = done.stdout.decode("utf-8", "replace")
        complaint = done.stderr.decode("utf-8", "replace")
        if done.returncode == 0:
            url = _url(said) or (said.strip().splitlines() or [""])[-1]
            return replace(pushed, state="opened", line=f"pull request: {url}", url=url)
        existing = _url(complaint + "\n" + said)
        if existing and "already exists" in complaint:
            line = f"pull request: {existing} (already open for {asked.branch})"
            return replace(pushed, state="exists", line=line, url=existing)
        why = f"gh pr create failed: {_one_line(complaint or said) or f'exit {done.returncode}'}"
    return replace(
        pushed,
        line=f"pull request: not opened: {why}; {asked.branch} is pushed to {asked.remote}:"
        f" open one with: {_gh(asked)}",
    )


async def _remote(repo: Path, spec: Mapping[str, Any] | None) -> str | None:
    """The run's remote (kept in its spec), else `origin` if the repository has one now."""
    kept = (spec or {}).get("remote")
    if isinstance(kept, str) and kept:
        return kept
    return "origin" if "origin" in await gitops.remotes(repo) else None


async def _push(repo: Path, remote: str, branch: str) -> str:
    """Push `branch` to the same name on `remote` (never forced); git's reason when refused,
    else ""."""
    ref = f"refs/heads/{branch}"
    try:
        done = await gitops.git(
            ["push", "--porcelain", remote, f"{ref}:{ref}"],
            repo,
            check=False,
            timeout=PUSH_TIMEOUT,
        )
    except TimeoutError:
        return f"it did not finish in {PUSH_TIMEOUT:.0f} s"
    if done.returncode == 0:
        return ""
    return _push_refusal(done.text, done.stderr) or f"git exited with {done.returncode}"


def _push_refusal(porcelain: str, stderr: str) -> str:
    """git's reason for a refused push, one line: the refused ref's `[rejected] (why)` from
    `--porcelain`, and git's `fatal:`/`error:` lines (an unreachable remote, no access)."""
    reasons = []
    for line in porcelain.splitlines():
        flag, _, rest = line.partition("\t")
        if flag == "!":
            _, _, why = rest.partition("\t")
            reasons.append(why.strip() or "rejected")
    for line in stderr.splitlines():
        line = line.strip()
        if line.startswith(("fatal:", "error:", "remote: error:", "ERROR:")):
            if "failed to push some refs" in line and reasons:
                continue
            reasons.append(line)
    return "; ".join(dict.fromkeys(reasons))


def _gh_args(asked: Asked) -> list[str]:
    """`gh pr create`'s arguments; each option's value after `=`, so a title that starts
    with `-` stays a title. Without a body written (a run not delivered), gh's `--fill`."""
    body = f"--body-file={asked.body_file}" if asked.body_file.exists() else "--fill"
    return [
        "pr",
        "create",
        f"--base={asked.base or 'BRANCH'}",
        f"--head={asked.branch}",
        f"--title={asked.title}",
        body,
    ]


def _gh(asked: Asked) -> str:
    """The gh command to paste."""
    return _shell("gh", *_gh_args(asked))


def _by_hand(asked: Asked) -> str:
    """The push and the gh command to paste (a remote to add first, when there is none)."""
    remote = asked.remote or "origin"
    steps = [] if asked.remote else [_shell("git", "remote", "add", "origin", "URL")]
    steps.append(_shell("git", "push", remote, asked.branch))
    steps.append(_gh(asked))
    return " && ".join(steps)


def _shell(*words: str) -> str:
    return shlex.join(words)


def _url(text: str) -> str:
    """The last URL in `text` (gh prints the pull request's last)."""
    found = URL.findall(text)
    return found[-1] if found else ""


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())[:500]
