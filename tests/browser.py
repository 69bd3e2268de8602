"""Fixtures for the browser view's tests: `conductor serve` as a real process, and Debian's
Chromium driven headless through its chromedriver (selenium; `make browser` installs both,
nothing is downloaded at test time). Screenshots go to .test-artifacts/browser/ at the
repository's root, kept for a person to look at after a run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / ".test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Chromium as root in a container, on a machine with no way out: no sandbox of its own (the
# test's user namespace has none to give), and none of its background calls home.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)
SERVE_START = 30.0


@dataclass(frozen=True)
class Serving:
    """A `conductor serve` started by a test: the sign-in address and the scripts' token it
    printed, and its process."""

    url: str
    api: str
    process: subprocess.Popen[str]

    @property
    def base(self) -> str:
        """Its pages' root, `http://127.0.0.1:PORT/PREFIX/`."""
        return self.url.split("?", 1)[0]


@contextmanager
def serving(cwd: Path, env: Mapping[str, str], *, host: str | None = None) -> Iterator[Serving]:
    """`conductor serve --port 0` in `cwd` (stopped with SIGINT, as Ctrl-C, at the end), on
    its default address unless `host` is given."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conductor",
            "serve",
            *(["--host", host] if host else []),
            "--port",
            "0",
        ],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + SERVE_START
        url = api = ""
        printed = []
        while not (url and api) and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            printed.append(line)
            if " at http://" in line:
                url = line.split(" at ", 1)[1].split()[0]
            if "Bearer " in line:
                api = line.split("Bearer ", 1)[1].split()[0].rstrip(".")
        assert url and api, f"conductor serve printed no address: {''.join(printed)}"
        yield Serving(url, api, process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium (selenium's webdriver), quit at the end."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), (
        "Debian's chromium and chromium-driver are not installed: run make browser"
    )
    profile = tempfile.mkdtemp(prefix="conductor-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """`screenshot(driver, "step")` saves .test-artifacts/browser/<test>-<step>.png."""

    def take(driver: Any, step: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{request.node.name}-{step}.png"
        driver.save_screenshot(str(path))
        return path

    return take


def wait_until(check: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    """Poll `check` until it returns something true (a page updated by itself)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except Exception:  # an element replaced while read: look again
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.2)
