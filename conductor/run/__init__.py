"""The run, in parts with one job each.

- `launch`: the application flow the CLI calls (checks, the plan, starting or resuming).
- `lifecycle`: the run's start (made or opened, taken, sessions registered, a resumed run's
  past picked up) and its end (what landed checked, the state stored, the summary).
- `started`: `StartedRun`, what the parts share once the run is taken (bus, gate, ledger).
- `workstream`: one workstream as a task (dependencies, its place, its end);
  `driver`: its session's loop; `after_turn`: what follows a turn (mail, nudge, the gates);
  `turns`: a watched turn and the prompt a re-attached session is owed.
- `replay`: what resume reads back from events, as pure functions.
- `reviewer`: an agent reviewer's session; `backoff`: waiting out a busy API;
  `accounting`: the budget's ledger; `control`: stopping; `sharing`: the integration tip
  shown to sessions; `summary`: outcomes and the run's summary.

`conductor.supervisor.Supervisor` ties them together in one task group; the CLI starts a run
through `conductor.run.launch` and never reaches into the parts.
"""
