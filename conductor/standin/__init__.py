"""A scripted stand-in for the Anthropic Messages API, for offline tests and the demo."""
