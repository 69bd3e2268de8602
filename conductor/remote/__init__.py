"""Workers on other hosts (`conductor worker`): a run's sessions taken from the bus and run
here, in a clone of the run's git remote, their branches handed back through it. The
supervisor's side is `conductor.run.remote`."""

from conductor.remote.assignment import TakenWorkstream
from conductor.remote.worker import Worker, ensure_clone

__all__ = ["TakenWorkstream", "Worker", "ensure_clone"]
