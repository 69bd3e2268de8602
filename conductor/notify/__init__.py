"""Notifications: what needs a person (a human review waiting, a blocked session, a failed
workstream, the run finished or interrupted) sent to a command or a webhook."""
