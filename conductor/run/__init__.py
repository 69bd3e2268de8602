"""The run, in parts with one job each: its lifecycle, a workstream's driver, resume replay.

`conductor.supervisor.Supervisor` ties them together in one task group; the CLI starts a run
through `conductor.run.launch` and never reaches into the parts.
"""
