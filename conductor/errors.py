"""The error tree: callers branch on *why* something failed, never on message text.

Every error here is a user-facing condition (bad input, a refused operation); the CLI prints
its message as one line and exits non-zero. Anything else escaping is a bug.
"""

from __future__ import annotations


class ConductorError(Exception):
    """Base of every expected failure. `str(err)` is the one-line message a person sees."""


class NotARepository(ConductorError):
    """Raised when no git repository (and no explicit database) can be found."""


class StoreError(ConductorError):
    """The database cannot be opened or is of an unknown (newer) schema version."""


class MachineFault(ConductorError):
    """The machine failed, not the work: a full disk, a read-only file system, a store that
    stays locked, an I/O error. A run that meets one stops as `interrupted`, keeping all it
    did, and `conductor resume` continues it once the cause is gone; nobody's work is
    marked failed for it."""


class StoreFault(StoreError, MachineFault):
    """The database refused a read or write for a reason of the machine's (sqlite's
    own error is the cause)."""


class UnknownRun(ConductorError):
    pass


class UnknownSession(ConductorError):
    pass


class UnknownMessage(ConductorError):
    pass


class UnknownReview(ConductorError):
    pass


class InvalidInput(ConductorError):
    """A value outside its closed set, a malformed id, an empty text."""


class NotAddressee(ConductorError):
    """Only the addressee of a message may reply to it or mark it."""


class PathOutsideRepository(ConductorError):
    pass


class ClaimConflict(ConductorError):
    """The path, or a directory around it or inside it, is claimed by another session."""

    def __init__(self, path: str, owner: str, owned_path: str) -> None:
        self.path = path
        self.owner = owner
        self.owned_path = owned_path
        where = "" if owned_path == path else f" (through its claim on {owned_path})"
        super().__init__(f"{path} is claimed by session {owner}{where}")


class NotClaimOwner(ConductorError):
    pass


class ReviewRefused(ConductorError):
    """A review decision that the rules forbid: own review, not pending, wrong reviewer."""


class LockHeld(ConductorError):
    def __init__(self, name: str, holder: str, expires_in: float) -> None:
        self.name = name
        self.holder = holder
        self.expires_in = expires_in
        super().__init__(f"the {name} lock is held by {holder} (lease ends in {expires_in:.0f}s)")


class GitError(ConductorError):
    """A git command failed; the message carries git's own last line of stderr."""

    def __init__(self, args: list[str], returncode: int, stderr: str) -> None:
        self.args_ = args
        self.returncode = returncode
        self.stderr = stderr
        last = next((ln for ln in reversed(stderr.strip().splitlines()) if ln.strip()), "")
        super().__init__(f"git {' '.join(args[:2])} failed ({returncode}): {last}".rstrip(": "))


class GitMachineFault(GitError, MachineFault):
    """git failed because the disk is full or read-only (git's own words for ENOSPC,
    EROFS, EDQUOT, EIO), not because of the repository's content."""


# strerror() of the errors that are the machine's, as git and other tools print them
MACHINE_ERRNO_TEXTS = (
    "No space left on device",
    "Read-only file system",
    "Disk quota exceeded",
    "Input/output error",
)


def git_error(args: list[str], returncode: int, stderr: str, disk: str | None = None) -> GitError:
    """The error for a failed git command: a machine fault when git says it was one, or when
    `disk` says what is wrong with the disk it ran on (git's lock-file errors do not name
    the errno: "couldn't write '...lock'")."""
    if disk is not None:
        return GitMachineFault(args, returncode, f"{stderr.rstrip()}\n{disk}")
    if any(text in stderr for text in MACHINE_ERRNO_TEXTS):
        return GitMachineFault(args, returncode, stderr)
    return GitError(args, returncode, stderr)
