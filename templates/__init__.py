"""conductor's prompt templates (Jinja), installed as the package `conductor.templates`.

Only data lives here; this file makes the directory a regular package, which an editable
install (`pip install -e`) needs to find it under that name (see pyproject.toml).
"""
