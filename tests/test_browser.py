"""The browser view in a real browser: `conductor serve` against a live offline run (the real
Claude Code CLI against the stand-in), watched and steered in headless Chromium.

The run's policy is `human`: its one workstream waits for a person. The page must update by
itself as the session works, show the review waiting, take the approval by a click, and the
run must go on to merged. What the session wrote (a goal, a message, a file name, all with
HTML in them) must reach the page as text only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from browser import serving, wait_until
from support import clean_env
from test_supervisor import Standin, supervisor_for

from conductor.models import ReviewStatus
from conductor.store import Store

pytestmark = pytest.mark.anyio

HOSTILE = '<img src=x onerror="window.pwned=1">'
FILE = "a<img src=x onerror=window.pwned=2>.md"
SCRIPT = f"""
roles:
  A:
    - - tool: Write
        input: {{file_path: "${{cwd}}/core.py", content: "def greet():\\n    return 'hello'\\n"}}
      - tool: Write
        input: {{file_path: '${{cwd}}/{FILE}', content: "notes\\n"}}
      - tool: Bash
        input: {{command: "git add -A && git commit -qm 'core: greet'"}}
      - tool: mcp__bus__send
        input: {{to: "all", text: '<script>window.pwned=3</script> core is in'}}
      - tool: mcp__bus__request_review
        input: {{note: '{HOSTILE} please look'}}
      - text: "Waiting for a person."
"""
PLAN = {"workstreams": [{"id": "A", "name": "core", "task": "core", "owns": ["core.py", "*.md"]}]}


# Every text A's row shows from now on, in order (the row is redrawn on each update).
OBSERVE_A = """
window.observing = 1;
window.seenOfA = [];
const note = () => {
  const cell = document.querySelector('#sessions tr[data-session="A"] .doing');
  const text = cell ? cell.textContent : null;
  const last = window.seenOfA[window.seenOfA.length - 1];
  if (text !== null && last !== text) window.seenOfA.push(text);
};
note();
new MutationObserver(note).observe(
  document.getElementById("sessions"), {childList: true, subtree: true});
"""


def timeline_of(driver: Any) -> dict[str, Any]:
    """What the report's timeline shows: its lanes (sessions that worked) and merge marks."""
    from selenium.webdriver.common.by import By

    svg = wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "svg#timeline"), what="svg")
    lanes = svg[0].find_elements(By.CSS_SELECTOR, "g.lane")
    return {
        "lanes": [lane.get_attribute("data-session") for lane in lanes],
        "merged": len(svg[0].find_elements(By.CSS_SELECTOR, ".mark.merged")),
        "title": driver.title,
    }


def pwned(driver: Any) -> Any:
    return driver.execute_script("return window.pwned || null")


async def test_a_person_watches_the_run_live_and_approves_its_review_by_clicking(
    standin: Standin, browser: Any, screenshot: Callable[[Any, str], Path]
) -> None:
    from selenium.webdriver.common.by import By

    async with standin(SCRIPT) as offline:
        repo = offline.repo
        db = repo / ".conductor" / "conductor.db"
        async with Store.open(db) as store:
            supervisor = supervisor_for(offline, store, PLAN, review="human")
            supervisor.goal = f"greet {HOSTILE} the world"
            env = clean_env(CONDUCTOR_DB=str(db))
            with serving(repo, env) as server:
                url = server.url
                seen: dict[str, Any] = {}

                def person() -> None:
                    driver = browser
                    driver.get(url)
                    link = wait_until(
                        lambda: driver.find_elements(By.CSS_SELECTOR, "#runs tbody a"),
                        what="the run in the runs list",
                    )
                    link[0].click()
                    wait_until(
                        lambda: driver.find_element(By.ID, "live").text == "live",
                        what="the stream",
                    )
                    # This page is never reloaded: whatever it shows from here came live.
                    driver.execute_script(OBSERVE_A)
                    waiting = wait_until(
                        lambda: driver.find_elements(By.CSS_SELECTOR, "#waiting a"),
                        what="the review waiting on a person",
                    )
                    seen["waiting"] = waiting[0].text
                    seen["goal"] = driver.find_element(By.ID, "goal").text
                    screenshot(driver, "waiting")
                    run_page = driver.current_window_handle
                    review_url = waiting[0].get_attribute("href")
                    driver.switch_to.new_window("tab")
                    driver.get(review_url)
                    wait_until(lambda: driver.find_elements(By.ID, "approve"), what="Approve")
                    seen["diff"] = driver.find_element(By.ID, "diff").text
                    seen["note"] = driver.find_element(By.CSS_SELECTOR, ".note").text
                    driver.find_element(By.ID, "comment").send_keys("clear enough <b>ship</b>")
                    driver.find_element(By.ID, "approve").click()
                    wait_until(
                        lambda: driver.find_element(By.ID, "review-status").text == "approved",
                        what="the verdict on the page",
                    )
                    screenshot(driver, "approved")
                    seen["pwned"] = [pwned(driver)]
                    driver.switch_to.window(run_page)
                    wait_until(
                        lambda: driver.find_element(By.ID, "state").text == "finished",
                        timeout=90,
                        what="the run finished, live",
                    )
                    seen["merged"] = driver.find_element(
                        By.CSS_SELECTOR, '#sessions tr[data-session="A"] .doing'
                    ).text
                    seen["lines"] = driver.find_element(By.ID, "lines").text
                    seen["a_said"] = driver.execute_script("return window.seenOfA")
                    seen["same_page"] = driver.execute_script("return window.observing === 1")
                    seen["waiting_box"] = driver.find_element(By.ID, "waiting-box").is_displayed()
                    screenshot(driver, "finished")
                    seen["pwned"].append(pwned(driver))
                    driver.find_element(By.ID, "report-link").click()
                    seen["served_report"] = timeline_of(driver)
                    screenshot(driver, "report")

                async with anyio.create_task_group() as tg:
                    tg.start_soon(anyio.to_thread.run_sync, person)
                    with anyio.fail_after(150):
                        summary = await supervisor.run()

            assert summary.ok, summary.outcomes
            assert seen["waiting"] == "review #1"
            # The run page, loaded while the review waited, moved on by itself to the end.
            assert seen["same_page"] and seen["merged"] == "merged"
            assert not seen["waiting_box"]
            assert "waiting on you: review #1" in seen["a_said"]
            assert "merged" in seen["a_said"]
            assert "merge.merged" not in seen["lines"] and "merged" in seen["lines"]
            assert seen["goal"] == f"greet {HOSTILE} the world"  # text, not an image
            assert "<script>window.pwned=3</script> core is in" in seen["lines"]
            assert FILE in seen["diff"] and f"{HOSTILE} please look" in seen["note"]
            assert seen["pwned"] == [None, None]  # no markup a session wrote ever ran
            assert seen["served_report"]["lanes"] == ["A"]
            assert seen["served_report"]["merged"] >= 1
            review = (await store.list_reviews(summary.run_id, session="A"))[-1]
            assert review.status is ReviewStatus.APPROVED
            assert review.decided_by == "human" and review.comment == "clear enough <b>ship</b>"

        # The report as `conductor report` writes it opens from its file, offline.
        out = repo.parent / "report.html"
        written = await anyio.run_process(
            [sys.executable, "-m", "conductor", "report", summary.run_id, "--out", str(out)],
            cwd=repo,
            env=env,
            check=False,
        )
        assert written.returncode == 0, written.stderr.decode()
        browser.get(out.as_uri())
        from_file = timeline_of(browser)
        screenshot(browser, "report-file")
        assert from_file["lanes"] == ["A"] and from_file["merged"] >= 1
        assert from_file["title"] and pwned(browser) is None


async def test_a_person_stops_the_run_and_resumes_it_from_its_page(
    tmp_path: Path, browser: Any, screenshot: Callable[[Any, str], Path]
) -> None:
    """Stop asks the supervisor (in its own process) to stop; the page then offers Resume,
    which starts `conductor resume` in a process of its own that finishes the run."""
    from selenium.webdriver.common.by import By
    from support import git
    from test_stop import PLAN as STOP_PLAN
    from test_stop import SCRIPT as STOP_SCRIPT
    from test_stop import TOML, _conductor, _exit, _log

    from conductor.models import RunState
    from conductor.standin.harness import offline as offline_repo

    async with offline_repo(STOP_SCRIPT, tmp_path / "stop") as off:
        (off.repo / "conductor.toml").write_text(TOML)
        plan = off.repo.parent / "plan.json"
        plan.write_text(json.dumps(STOP_PLAN))
        git(off.repo, "add", "conductor.toml")
        git(off.repo, "commit", "-qm", "conductor settings")
        run = await _conductor(off, "run", "x", "--plan", str(plan), "--no-live", log="run.log")
        seen: dict[str, Any] = {}
        with serving(off.repo, clean_env(**off.env)) as server:
            url = server.url

            def person() -> None:
                driver = browser
                driver.get(url)
                link = wait_until(
                    lambda: (
                        driver.find_elements(By.CSS_SELECTOR, "#runs tbody a") or driver.refresh()
                    ),
                    what="the run in the runs list",
                )
                link[0].click()
                wait_until(
                    lambda: (
                        "Write"
                        in driver.find_element(
                            By.CSS_SELECTOR, '#sessions tr[data-session="A"] .doing'
                        ).text
                        or "Bash" in driver.find_element(By.ID, "lines").text
                        or driver.find_element(
                            By.CSS_SELECTOR, '#sessions tr[data-session="A"] .status'
                        ).text
                        == "working"
                    ),
                    what="A at work",
                )
                driver.find_element(By.ID, "stop").click()
                driver.switch_to.alert.accept()
                resume = wait_until(
                    lambda: [b for b in driver.find_elements(By.ID, "resume") if b.is_displayed()],
                    timeout=60,
                    what="Resume offered",
                )
                seen["stopped"] = driver.find_element(By.ID, "state").text
                screenshot(driver, "stopped")
                resume[0].click()
                seen["notice"] = wait_until(
                    lambda: (
                        (text := driver.find_element(By.ID, "notice").text)
                        and not text.startswith("asked run")
                        and text
                    ),
                    what="the resume's notice",
                )
                wait_until(
                    lambda: driver.find_element(By.ID, "state").text == "finished",
                    timeout=90,
                    what="the run finished, live",
                )
                screenshot(driver, "resumed")

            await anyio.to_thread.run_sync(person)
        assert await _exit(run, 30) == 130, _log(off, "run.log")
        assert seen["stopped"].startswith("interrupted"), seen
        assert seen["notice"].startswith("resuming run"), seen
        db = off.repo / ".conductor" / "conductor.db"
        async with Store.open(db) as store:
            latest = await store.latest_run()
            assert latest is not None and latest.state is RunState.FINISHED
            asked = await store.list_events(latest.id)
        assert any(e.kind == "run.stop_asked" and "browser" in e.summary for e in asked)
        tree = git(off.repo, "ls-tree", "--name-only", f"conductor/{latest.id}").split()
        assert "core.py" in tree
