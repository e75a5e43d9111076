"""Prompt templates (``$name`` placeholders), overridable per deployment.

A file ``<dir>/<name>.md`` in the configured prompts directory replaces the built-in
template of the same name; every placeholder the built-in one uses is still filled.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template

# What the implement prompt's feedback section says on a first attempt (the demo agent
# reads it to know whether it was sent back).
FIRST_ATTEMPT = "(none: this is the first attempt)"


class Prompts:
    def __init__(self, override_dir: Path | None = None) -> None:
        self.override_dir = override_dir

    def template(self, name: str) -> str:
        if self.override_dir is not None:
            custom = self.override_dir / f"{name}.md"
            if custom.is_file():
                return custom.read_text(encoding="utf-8")
        return resources.files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8")

    def render(self, name: str, **values: object) -> str:
        """The prompt with every ``$placeholder`` filled; an unknown one is left as written."""
        text = {key: str(value) for key, value in values.items()}
        return Template(self.template(name)).safe_substitute(text)
