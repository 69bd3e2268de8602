"""A run on one host against the same run on `conductor worker`s: N workstreams, K workers
with S slots each, one supervisor. Prints numbers; asserts nothing.

Both sides run the same plan (N workstreams, each writing, committing and asking for review
of a file of its own; review `auto`, no checks, no jail) against the same stand-in model
(run_overhead.py's script), with the same number of sessions at once:

  one host  `conductor run x --plan plan.json --no-live` on SQLite (the default), max_parallel
            = K * S; the supervisor runs every session itself.
  workers   the same plan with `--workers` on PostgreSQL (a throwaway server as
            tests/postgres.py starts one: initdb and pg_ctl in a temporary directory, as the
            `postgres` user when run as root, a unix socket only, fsync off), a bare origin
            served by `git daemon` on loopback, and K `conductor worker --slots S` processes,
            each with its own directory, HOME and Claude config, started and waiting before
            the run starts (as they would be) and stopped (SIGTERM) once it has ended.

Measured per run, wall from the supervisor's start to its exit; CPU seconds (user + system):
  sup own    the `conductor run` process itself, exact (read from /proc/PID/stat once it has
             exited, before it is reaped: waitid(WNOWAIT));
  sup +kids  the same plus every child it reaped (git; on one host also the sessions):
             cutime + cstime from the same read;
  sup -sess  sup +kids minus the sessions it ran: the supervisor and its non-session children
             (on one host the subtraction carries the sessions' sampling error; with workers
             it runs none, so it is exact);
  wrk own    the worker processes themselves, summed, from the run's start to their exit;
  wrk +kids  the same plus what they reaped (their sessions, git);
  sessions   the session CLIs (`claude` processes) and what they ran, wherever they ran,
             sampled from /proc every 0.1 s (a lower bound: the last tenth of a second of
             each is missed);
  servers    PostgreSQL's server (postmaster and backends) and git daemon, same window;
  conductor  sup own + wrk own: every conductor process's own CPU;
  all        sup +kids + wrk +kids + servers;
  machine    the whole machine's busy CPU in the window (to the workers' exit on that side):
             all + the stand-in model + anything else running; load1 is the load average
             as the run starts. Both say whether the machine was shared with other work;
  merged     the run ended finished, every workstream's file on its integration branch.
Medians over --repeat, the sides interleaved; then the ratios workers / one host.

This machine has 2 cores: the workers, their sessions, PostgreSQL and the supervisor all
share them, so no wall-time gain is to be had here (that needs the workers on other hosts).
What the bench shows is where the CPU goes: the supervisor's process tree stops carrying
the sessions (sup +kids falls to about a fifth), while its own process does not get cheaper
(sup own rises: it waits on PostgreSQL and answers the workers' merge requests).

    .venv/bin/python bench/workers.py [--workstreams 8] [--workers 4] [--slots 2] [--repeat 1]

--workstreams 8 takes about a minute per repeat; --workstreams 32 about three minutes per
repeat (on this 2-core machine, unloaded).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from run_overhead import standin_env

from conductor.models import RunState
from conductor.standin.harness import GIT_IDENTITY, STANDIN_MODEL
from conductor.store import Store

TICK = os.sysconf("SC_CLK_TCK")
CONDUCTOR = [sys.executable, "-m", "conductor"]


# ------------------------------------------------------------------------------ /proc


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (index 0 is the state)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def own_and_reaped(pid: int) -> tuple[float, float]:
    """(user + system seconds of the process itself, of the children it has reaped)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0, 0.0
    own = (int(fields[11]) + int(fields[12])) / TICK
    reaped = (int(fields[13]) + int(fields[14])) / TICK
    return own, reaped


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy since boot (every CPU, /proc/stat)."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / TICK


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            found.setdefault(int(fields[1]), []).append(int(entry.name))
    return found


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process, the children it reaped, and its live descendants."""
    children = _children()
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += sum(own_and_reaped(p))
        todo.extend(children.get(p, []))
    return total


def finish(proc: subprocess.Popen[bytes], timeout: float) -> tuple[float, float]:
    """Wait for `proc` to exit; (own, reaped children) CPU seconds, read while it is a
    zombie, before it is reaped."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            done = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        except ChildProcessError:
            done = None
        if done is not None:
            break
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.02)
    cpu = own_and_reaped(proc.pid)
    proc.wait()
    return cpu


class SessionSampler:
    """Every 0.1 s, the CPU (own and reaped children) of each live `claude` process, by
    which measured process started it; summed at the end, the sessions' CPU."""

    def __init__(self, roots: dict[int, str]) -> None:
        self.roots = roots  # pid -> "supervisor" or "workers"
        self.seen: dict[tuple[int, str], tuple[str, float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        while not self.stop.wait(0.1):
            for pid, fields in _claude_processes():
                root = self._root_of(pid)
                if root is not None:
                    self.seen[(pid, fields[19])] = (root, sum(own_and_reaped(pid)))

    def _root_of(self, pid: int) -> str | None:
        while pid > 1:
            if pid in self.roots:
                return self.roots[pid]
            fields = _stat(pid)
            if fields is None:
                return None
            pid = int(fields[1])
        return None

    def total(self, root: str) -> float:
        return sum(cpu for who, cpu in self.seen.values() if who == root)

    def __enter__(self) -> SessionSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _claude_processes() -> Iterator[tuple[int, list[str]]]:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm == "claude" and (fields := _stat(int(entry.name))) is not None:
            yield int(entry.name), fields


# ------------------------------------------------------------------------------ servers


def _pg_bin() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not versions:
        raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
    return versions[-1].parent


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class Postgres:
    root: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.root}"

    def postmaster(self) -> int:
        return int((self.root / "data" / "postmaster.pid").read_text().split()[0])

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A throwaway server, as tests/postgres.py starts one."""
    bin_dir = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="conductor-bench-pg-"))
    data = root / "data"
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        subprocess.run(
            _as_server_user(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                 "-E", "UTF8", "--no-sync"]
            ),
            check=True, capture_output=True,
        )  # fmt: skip
        options = (
            f"-k {root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off"
            " -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            _as_server_user(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"),
                 "-o", options, "-w", "start"]
            ),
            check=True, capture_output=True,
        )  # fmt: skip
        try:
            yield Postgres(root)
        finally:
            subprocess.run(
                _as_server_user(
                    [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
                ),
                check=False, capture_output=True,
            )  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def git_daemon(root: Path) -> Iterator[tuple[int, int]]:
    """`git daemon` serving the bare repositories under `root` on loopback, pushes allowed:
    (its port, its pid)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    root.mkdir(parents=True, exist_ok=True)
    daemon = subprocess.Popen(
        [
            "git", "daemon", "--reuseaddr", "--export-all", "--enable=receive-pack",
            "--listen=127.0.0.1", f"--port={port}", f"--base-path={root}", str(root),
        ],
        stderr=subprocess.DEVNULL,  # (a client hanging up, as the probe below does, is news)
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port, daemon.pid
    finally:
        daemon.terminate()
        daemon.wait()


# ------------------------------------------------------------------------------ one run


@dataclass
class Sample:
    wall: float = 0.0
    supervisor_own: float = 0.0
    supervisor_tree: float = 0.0
    supervisor_sessions: float = 0.0
    worker_sessions: float = 0.0
    workers_own: float = 0.0
    workers_tree: float = 0.0
    servers: float = 0.0
    machine: float = 0.0
    load: float = 0.0
    merged: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def supervisor_without_sessions(self) -> float:
        return self.supervisor_tree - self.supervisor_sessions

    @property
    def sessions(self) -> float:
        return self.supervisor_sessions + self.worker_sessions

    @property
    def conductor(self) -> float:
        return self.supervisor_own + self.workers_own

    @property
    def all(self) -> float:
        return self.supervisor_tree + self.workers_tree + self.servers


def _load() -> float:
    """The machine's load average over the last minute, as a run starts."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def fresh_repo(root: Path, n: int, parallel: int) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    git = ["git", "-c", "user.name=b", "-c", "user.email=b@b"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    plan = {
        "workstreams": [
            {"id": f"W{i}", "name": f"w{i}", "task": "work", "owns": [f"w{i}.txt"]}
            for i in range(n)
        ]
    }
    (repo / "plan.json").write_text(json.dumps(plan))
    (repo / "conductor.toml").write_text(
        f'model = "{STANDIN_MODEL}"\nreview = "auto"\nmax_parallel = {parallel}\n'
        f"max_sessions = {n}\nsandbox = false\n"
    )
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "start"], cwd=repo, check=True)
    return repo


def _merged(repo: Path, location: str, n: int) -> bool:
    """The run finished, and its integration branch holds every workstream's file."""

    async def latest() -> tuple[str, RunState] | None:
        async with Store.open(location) as store:
            run = await store.latest_run()
            return None if run is None else (run.id, run.state)

    found = anyio.run(latest)
    if found is None or found[1] is not RunState.FINISHED:
        return False
    listed = subprocess.run(
        ["git", "ls-tree", "--name-only", f"conductor/{found[0]}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return all(f"w{i}.txt" in listed for i in range(n))


def one_host(tmp: Path, env: dict[str, str], n: int, parallel: int) -> Sample:
    repo = fresh_repo(tmp, n, parallel)
    log = open(tmp / "run.log", "wb")  # noqa: SIM115 -- the child keeps its own copy
    sample = Sample(load=_load())
    busy = machine_busy()
    start = time.perf_counter()
    run = subprocess.Popen(
        [*CONDUCTOR, "run", "x", "--plan", "plan.json", "--no-live"],
        cwd=repo,
        env=env,
        stdout=log,
        stderr=log,
    )
    with SessionSampler({run.pid: "supervisor"}) as sessions:
        sample.supervisor_own, reaped = finish(run, timeout=60 * 60)
    sample.wall = time.perf_counter() - start
    sample.machine = machine_busy() - busy
    sample.supervisor_tree = sample.supervisor_own + reaped
    sample.supervisor_sessions = sessions.total("supervisor")
    if run.returncode != 0:
        sample.notes.append(f"one host: conductor run exited {run.returncode}, see {log.name}")
    sample.merged = _merged(repo, str(repo / ".conductor" / "conductor.db"), n)
    return sample


def _start_worker(
    tmp: Path, env: dict[str, str], name: str, db: str, origin: str, slots: int
) -> subprocess.Popen[bytes]:
    """A worker in a directory of its own, with its own HOME and Claude config."""
    home = tmp / name
    (home / "home").mkdir(parents=True)
    (home / "claude").mkdir()
    log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 -- the child keeps its own copy
    return subprocess.Popen(
        [
            *CONDUCTOR, "worker", "--db", db, "--repo", origin, "--dir", str(home / "work"),
            "--id", name, "--slots", str(slots),
            "--allow-unsandboxed",  # the bench's runs are unsandboxed on both sides
        ],
        cwd=home,
        env={**env, "HOME": str(home / "home"), "CLAUDE_CONFIG_DIR": str(home / "claude")},
        stdout=log,
        stderr=log,
    )  # fmt: skip


def _wait_for_line(path: Path, text: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while text not in path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"a worker did not start: {path.read_text(errors='replace')}")
        time.sleep(0.1)


def with_workers(
    tmp: Path, env: dict[str, str], n: int, workers: int, slots: int, pg: Postgres
) -> Sample:
    repo = fresh_repo(tmp, n, workers * slots)
    db = pg.create_database(tmp.name.replace("-", "_"))
    remotes = tmp / "remotes"
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(repo), str(remotes / "team.git")], check=True
    )
    sample = Sample()
    with git_daemon(remotes) as (port, daemon):
        origin = f"git://127.0.0.1:{port}/team.git"
        subprocess.run(["git", "remote", "add", "origin", origin], cwd=repo, check=True)
        started = [_start_worker(tmp, env, f"w{k + 1}", db, origin, slots) for k in range(workers)]
        try:
            for k, proc in enumerate(started):
                _wait_for_line(tmp / f"w{k + 1}.log", "waiting for work", proc)
            before_workers = [own_and_reaped(p.pid) for p in started]
            before_servers = tree_cpu(pg.postmaster()) + tree_cpu(daemon)
            log = open(tmp / "run.log", "wb")  # noqa: SIM115 -- the child keeps its own copy
            sample.load = _load()
            busy = machine_busy()
            start = time.perf_counter()
            run = subprocess.Popen(
                [*CONDUCTOR, "--db", db, "run", "x", "--plan", "plan.json", "--workers",
                 "--no-live"],
                cwd=repo, env=env, stdout=log, stderr=log,
            )  # fmt: skip
            roots = {run.pid: "supervisor", **{p.pid: "workers" for p in started}}
            with SessionSampler(roots) as sessions:
                sample.supervisor_own, reaped = finish(run, timeout=60 * 60)
                sample.wall = time.perf_counter() - start
                sample.supervisor_tree = sample.supervisor_own + reaped
                if run.returncode != 0:
                    sample.notes.append(
                        f"workers: conductor run exited {run.returncode}, see {log.name}"
                    )
                for p in started:
                    p.send_signal(signal.SIGTERM)
                for p, (own0, reaped0) in zip(started, before_workers, strict=True):
                    own, reaped = finish(p, timeout=60)
                    sample.workers_own += own - own0
                    sample.workers_tree += own + reaped - own0 - reaped0
                sample.supervisor_sessions = sessions.total("supervisor")
                sample.worker_sessions = sessions.total("workers")
            sample.machine = machine_busy() - busy
            time.sleep(0.5)  # the workers' backends exit: their CPU goes to the postmaster
            sample.servers = tree_cpu(pg.postmaster()) + tree_cpu(daemon) - before_servers
        finally:
            for p in started:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    sample.merged = _merged(repo, db, n)
    return sample


# ------------------------------------------------------------------------------ the table


def _median(samples: list[Sample], name: str) -> float:
    return statistics.median(float(getattr(s, name)) for s in samples)


COLUMNS = [
    ("wall s", "wall"),
    ("sup own", "supervisor_own"),
    ("sup +kids", "supervisor_tree"),
    ("sup -sess", "supervisor_without_sessions"),
    ("wrk own", "workers_own"),
    ("wrk +kids", "workers_tree"),
    ("sessions", "sessions"),
    ("servers", "servers"),
    ("conductor", "conductor"),
    ("all", "all"),
    ("machine", "machine"),
    ("load1", "load"),
]
WIDTH = 10


def table(n: int, workers: int, slots: int, results: dict[str, list[Sample]]) -> None:
    print(
        f"\n{n} workstreams, {workers * slots} sessions at once (one host: max_parallel"
        f" {workers * slots}; workers: {workers} x {slots} slots); seconds (CPU: user + system);"
        f" median of {len(results['one host'])}; {os.cpu_count()} cores shared by everything"
        " (workers, sessions, PostgreSQL, supervisor, and whatever else runs on the machine:"
        " compare all with machine, and see load1)"
    )
    print(f"{'':9s}" + "".join(f"{h:>{WIDTH}s}" for h, _ in COLUMNS) + f"{'merged':>8s}")
    for side, samples in results.items():
        cells = "".join(f"{_median(samples, a):{WIDTH}.2f}" for _, a in COLUMNS)
        merged = f"{sum(s.merged for s in samples)}/{len(samples)}"
        print(f"{side:9s}{cells}{merged:>8s}")
    ratios = []
    for _, attr in COLUMNS:
        one, many = _median(results["one host"], attr), _median(results["workers"], attr)
        shown = attr != "load" and one > 0.005
        ratios.append(f"{many / one:{WIDTH - 1}.2f}x" if shown else f"{'-':>{WIDTH}s}")
    print(f"{'workers/1':9s}" + "".join(ratios))
    for samples in results.values():
        for s in samples:
            for note in s.notes:
                print(f"  note: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workstreams", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--slots", type=int, default=2, help="sessions at once per worker")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="keep logs and repositories here")
    args = parser.parse_args()
    n, workers, slots = args.workstreams, args.workers, args.slots
    tmp = Path(tempfile.mkdtemp(prefix="conductor-bench-workers-", dir=args.keep))
    results: dict[str, list[Sample]] = {"one host": [], "workers": []}
    try:
        with postgres_server() as pg, standin_env(tmp, n) as base:
            env = {k: v for k, v in base.items() if not k.startswith("CONDUCTOR_")}
            env.update(GIT_IDENTITY)
            for r in range(args.repeat):  # interleaved
                results["one host"].append(one_host(tmp / f"one-{r}", env, n, workers * slots))
                results["workers"].append(
                    with_workers(tmp / f"workers-{r}", env, n, workers, slots, pg)
                )
        table(n, workers, slots, results)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs and repositories kept in {tmp}")


if __name__ == "__main__":
    main()
