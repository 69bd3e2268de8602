"""conductor: run a team of headless Claude Code sessions hands-off."""

__version__ = "0.1.0"
