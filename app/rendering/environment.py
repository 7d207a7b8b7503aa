"""The Jinja2 environment for email templates: sandboxed, autoescaping, replaceable.

Templates come from BROADSHEET_TEMPLATES_DIR when set (a deployment's own copy of
`email_templates/`), else from the package `app.email_templates`: the repository's
`email_templates/`, which pyproject.toml ships inside the package.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

DEFAULT_TEMPLATES_DIR = Path(str(files("app.email_templates")))


@lru_cache(maxsize=8)
def email_environment(templates_dir: Path | None = None) -> SandboxedEnvironment:
    directory = templates_dir or DEFAULT_TEMPLATES_DIR
    return SandboxedEnvironment(
        loader=FileSystemLoader(str(directory)),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # Read once per process, like the inlined HTML cached from them: a changed
        # template takes effect on restart, and no request stats the files.
        auto_reload=False,
    )
