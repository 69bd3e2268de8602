"""`conductor serve`: the repository's runs in a browser, live by server-sent events."""
