"""The Jinja environment over the prompt templates, with per-repository overrides.

The templates are the top-level `templates/` of conductor's source, installed as the package
`conductor.templates` (pyproject.toml says how, for a wheel and an editable install). A file
in `.conductor/templates/` of the repository wins over the packaged template of the same name.
Undefined variables fail loudly (StrictUndefined): a prompt with a hole in it is a
bug, never something to send to a model.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

import jinja2

from conductor.errors import ConductorError
from conductor.workspace import STATE_DIR

PACKAGED = "conductor.templates"  # the package the templates are installed as
# A checkout imported without being installed (PYTHONPATH, an editable install made before
# the templates moved) has no `conductor.templates`: its own top-level folder serves then.
CHECKOUT = Path(__file__).resolve().parent.parent / "templates"


class TemplateFailed(ConductorError):
    pass


class Prompts:
    def __init__(self, repo: Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if repo is not None:
            loaders.append(jinja2.FileSystemLoader(repo / STATE_DIR / "templates"))
        loaders.append(_packaged())
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
        )

    def render(self, name: str, **values: Any) -> str:
        try:
            return self.env.get_template(name).render(**values)
        except jinja2.TemplateNotFound:
            raise TemplateFailed(f"no template named {name}") from None
        except jinja2.UndefinedError as e:
            raise TemplateFailed(f"template {name}: {e.message}") from None
        except jinja2.TemplateSyntaxError as e:
            raise TemplateFailed(
                f"template {e.name or name} line {e.lineno}: {e.message}"
            ) from None


def _packaged() -> jinja2.BaseLoader:
    if find_spec(PACKAGED) is not None:
        return jinja2.PackageLoader(PACKAGED, ".")
    if (CHECKOUT / "session.md.j2").is_file():
        return jinja2.FileSystemLoader(CHECKOUT)
    raise TemplateFailed(
        f"conductor's prompt templates are not installed ({PACKAGED}): reinstall conductor"
        " (in a checkout: pip install -e .)"
    )
