"""Claims: a session's exclusive hold on a path (a file, or a directory and all under it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _workers import go, location, workers

from conductor.bus import Bus
from conductor.errors import ClaimConflict, InvalidInput, NotClaimOwner, PathOutsideRepository
from conductor.models import SessionStatus

pytestmark = pytest.mark.anyio


SPELLINGS = ["src/a.py", "./src/a.py", "{root}/src/a.py", "src/x/../a.py", "src//a.py"]


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_every_spelling_of_a_path_claims_the_same_repo_relative_path(
    bus: Bus, tmp_path: Path, spelling: str
) -> None:
    claim = await bus.claim("A", spelling.format(root=tmp_path), root=tmp_path)
    assert (claim.session, claim.path) == ("A", "src/a.py")
    assert [c.path for c in await bus.claims()] == ["src/a.py"]


async def test_reclaiming_under_another_spelling_is_idempotent(bus: Bus, tmp_path: Path) -> None:
    first = await bus.claim("A", "src/a.py", root=tmp_path)
    for spelling in SPELLINGS:
        again = await bus.claim("A", spelling.format(root=tmp_path), root=tmp_path)
        assert again == first
    assert await bus.claims() == [first]
    assert [e.kind for e in await bus.events()].count("claim.added") == 1


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_another_session_is_refused_every_spelling_of_a_claimed_path(
    bus: Bus, tmp_path: Path, spelling: str
) -> None:
    await bus.claim("A", "src/a.py", root=tmp_path)
    with pytest.raises(ClaimConflict) as caught:
        await bus.claim("B", spelling.format(root=tmp_path), root=tmp_path)
    assert (caught.value.path, caught.value.owner, caught.value.owned_path) == (
        "src/a.py",
        "A",
        "src/a.py",
    )
    assert "claimed by session A" in str(caught.value)


async def test_a_directory_claim_is_stored_without_its_trailing_slash(
    bus: Bus, tmp_path: Path
) -> None:
    assert (await bus.claim("A", "src/core/", root=tmp_path)).path == "src/core"


async def test_a_claim_relative_to_a_working_directory_is_repo_relative(
    bus: Bus, tmp_path: Path
) -> None:
    claim = await bus.claim("A", "a.py", root=tmp_path, cwd=tmp_path / "src")
    assert claim.path == "src/a.py"


@pytest.mark.parametrize("spelling", ["../x", "/etc/passwd", "src/../../x"])
async def test_a_path_outside_the_repository_cannot_be_claimed(
    bus: Bus, tmp_path: Path, spelling: str
) -> None:
    with pytest.raises(PathOutsideRepository):
        await bus.claim("A", spelling, root=tmp_path)
    assert await bus.claims() == []


async def test_an_empty_path_cannot_be_claimed(bus: Bus, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        await bus.claim("A", " ", root=tmp_path)


async def test_a_directory_claim_covers_everything_under_it(bus: Bus, tmp_path: Path) -> None:
    await bus.claim("A", "src/core/", root=tmp_path)
    for path in ["src/core/x.py", "src/core/deep/er/y.py"]:
        with pytest.raises(ClaimConflict) as caught:
            await bus.claim("B", path, root=tmp_path)
        assert (caught.value.owner, caught.value.owned_path) == ("A", "src/core")
        assert str(caught.value) == (
            f"{path} is claimed by session A (through its claim on src/core)"
        )
    assert [c.session for c in await bus.claims()] == ["A"]


async def test_a_directory_claim_conflicts_with_claims_inside_it(bus: Bus, tmp_path: Path) -> None:
    await bus.claim("B", "src/a.py", root=tmp_path)
    with pytest.raises(ClaimConflict) as caught:
        await bus.claim("A", "src/", root=tmp_path)
    assert (caught.value.path, caught.value.owner, caught.value.owned_path) == (
        "src",
        "B",
        "src/a.py",
    )
    assert [c.session for c in await bus.claims()] == ["B"]


async def test_claiming_the_whole_repository_conflicts_with_any_claim(
    bus: Bus, tmp_path: Path
) -> None:
    await bus.claim("B", "docs/readme.md", root=tmp_path)
    with pytest.raises(ClaimConflict):
        await bus.claim("A", ".", root=tmp_path)
    with pytest.raises(ClaimConflict):
        await bus.claim("A", str(tmp_path), root=tmp_path)


async def test_a_claim_on_the_whole_repository_covers_every_path(bus: Bus, tmp_path: Path) -> None:
    await bus.claim("A", ".", root=tmp_path)
    with pytest.raises(ClaimConflict) as caught:
        await bus.claim("B", "any/where.py", root=tmp_path)
    assert (caught.value.owner, caught.value.owned_path) == ("A", ".")


@pytest.mark.parametrize("neighbour", ["src/core2/x.py", "src/core.py", "src/cor", "lib/core"])
async def test_a_directory_claim_does_not_cover_a_neighbour_sharing_its_prefix(
    bus: Bus, tmp_path: Path, neighbour: str
) -> None:
    await bus.claim("A", "src/core", root=tmp_path)
    assert (await bus.claim("B", neighbour, root=tmp_path)).session == "B"


async def test_a_session_may_claim_inside_its_own_directory_claim_and_around_its_own_file(
    bus: Bus, tmp_path: Path
) -> None:
    await bus.claim("A", "src/a.py", root=tmp_path)
    await bus.claim("A", "src", root=tmp_path)
    await bus.claim("A", "src/core/b.py", root=tmp_path)
    assert [c.path for c in await bus.claims("A")] == ["src", "src/a.py", "src/core/b.py"]


async def test_claims_can_be_listed_for_all_or_one_session(bus: Bus, tmp_path: Path) -> None:
    await bus.claim("B", "api", root=tmp_path)
    await bus.claim("A", "web", root=tmp_path)
    await bus.claim("A", "assets", root=tmp_path)
    assert [(c.session, c.path) for c in await bus.claims()] == [
        ("B", "api"),
        ("A", "assets"),
        ("A", "web"),
    ]
    assert [c.path for c in await bus.claims("A")] == ["assets", "web"]
    assert await bus.claims("C") == []


async def test_the_owner_can_release_a_claim_and_then_others_may_claim(
    bus: Bus, tmp_path: Path
) -> None:
    claim = await bus.claim("A", "src/a.py", root=tmp_path)
    released = await bus.release("A", "./src/a.py", root=tmp_path)
    assert released == claim
    assert await bus.claims() == []
    assert (await bus.claim("B", "src/a.py", root=tmp_path)).session == "B"


async def test_releasing_another_sessions_claim_is_refused(bus: Bus, tmp_path: Path) -> None:
    claim = await bus.claim("B", "src/a.py", root=tmp_path)
    with pytest.raises(NotClaimOwner, match="claimed by session B, not A"):
        await bus.release("A", "src/a.py", root=tmp_path)
    assert await bus.claims() == [claim]


async def test_releasing_an_unclaimed_path_is_refused(bus: Bus, tmp_path: Path) -> None:
    await bus.claim("A", "src", root=tmp_path)
    with pytest.raises(NotClaimOwner, match="not claimed"):
        await bus.release("A", "docs", root=tmp_path)
    with pytest.raises(NotClaimOwner, match="not claimed"):
        await bus.release("A", "src/a.py", root=tmp_path)  # covered, but not itself a claim
    assert [c.path for c in await bus.claims()] == ["src"]


async def test_claim_blocking_returns_the_other_sessions_covering_claim(
    bus: Bus, tmp_path: Path
) -> None:
    directory = await bus.claim("B", "src/core", root=tmp_path)
    assert await bus.claim_blocking("A", "src/core/x.py") == directory
    assert await bus.claim_blocking("A", "src/core") == directory
    assert await bus.claim_blocking("C", "src/core/x.py") == directory


async def test_claim_blocking_is_none_for_the_owner_and_for_unclaimed_paths(
    bus: Bus, tmp_path: Path
) -> None:
    await bus.claim("B", "src/core", root=tmp_path)
    assert await bus.claim_blocking("B", "src/core/x.py") is None
    assert await bus.claim_blocking("A", "src/other.py") is None
    assert await bus.claim_blocking("A", "src") is None  # a claim inside does not block a write


async def test_claim_blocking_prefers_the_most_specific_covering_claim(
    bus: Bus, tmp_path: Path
) -> None:
    await bus.claim("B", "src", root=tmp_path)
    file_claim = await bus.claim("B", "src/core/x.py", root=tmp_path)
    assert await bus.claim_blocking("A", "src/core/x.py") == file_claim


@pytest.mark.parametrize("status", ["done", "failed", "stopped"])
async def test_a_session_that_ends_releases_all_its_claims(
    bus: Bus, tmp_path: Path, status: str
) -> None:
    await bus.claim("A", "src", root=tmp_path)
    await bus.claim("A", "docs/x.md", root=tmp_path)
    kept = await bus.claim("B", "api", root=tmp_path)
    await bus.update("A", status=status)
    assert await bus.claims() == [kept]
    released = [e for e in await bus.events() if e.kind == "claim.released"]
    assert sorted((e.session, e.payload["path"], e.payload["reason"]) for e in released) == [
        ("A", "docs/x.md", status),
        ("A", "src", status),
    ]
    assert (await bus.claim("C", "src/a.py", root=tmp_path)).session == "C"


@pytest.mark.parametrize("status", ["working", "idle", "blocked", "review"])
async def test_a_session_that_has_not_ended_keeps_its_claims(
    bus: Bus, tmp_path: Path, status: str
) -> None:
    claim = await bus.claim("A", "src", root=tmp_path)
    await bus.update("A", status=status)
    assert await bus.claims() == [claim]
    assert not SessionStatus(status).ended


async def test_claims_are_scoped_to_their_run(bus: Bus, tmp_path: Path) -> None:
    from conductor.bus import create_run

    other = await create_run(
        bus.store,
        goal="other",
        repo_root=tmp_path,
        base_ref=None,
        base_commit=None,
        sessions=[("A", ""), ("B", "")],
        run_id="other-run",
    )
    await bus.claim("A", "src", root=tmp_path)
    assert (await other.claim("B", "src", root=tmp_path)).session == "B"
    assert [c.run_id for c in await bus.claims()] == [bus.run_id]


# --------------------------------------------------------------------------- races


@pytest.mark.parametrize(
    "paths",
    [
        pytest.param(["src/shared.py"] * 4, id="one path"),
        pytest.param([".", "src", "src/core", "src/core/x.py"], id="nested paths"),
    ],
)
async def test_processes_racing_for_overlapping_paths_have_exactly_one_winner(
    bus: Bus, tmp_path: Path, paths: list[str]
) -> None:
    names = ["A", "B", "C", "D"]
    await bus.register([("D", "docs")])
    common = {"db": location(bus.store), "run": bus.run_id, "root": str(tmp_path)}
    jobs = [("claim", {**common, "name": n, "path": p}) for n, p in zip(names, paths, strict=True)]
    async with workers(*jobs) as racers:
        await go(racers)
        answers = [await racer.read() for racer in racers]

    winners = [(name, answer) for name, answer in zip(names, answers, strict=True) if answer["won"]]
    assert len(winners) == 1, answers
    [(winner, won)] = winners
    assert {a["owner"] for a in answers if not a["won"]} == {winner}
    assert [(c.session, c.path) for c in await bus.claims()] == [(winner, won["path"])]


async def test_a_claim_taken_after_its_session_ended_goes_with_the_next_change_to_it(
    bus: Bus, tmp_path: Path
) -> None:
    """What releases an ended session's claims is that it has ended, not the status a change
    asks for: a note written after the end takes a late claim with it too."""
    await bus.update("A", status=SessionStatus.DONE)
    await bus.claim("A", "src", root=tmp_path)
    await bus.update("A", note="later")
    assert await bus.claims() == []
