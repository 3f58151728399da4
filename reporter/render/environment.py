"""The jinja2 environment: templates shipped with the package, HTML autoescaped."""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from reporter.resources import resource_dir


def _pct(p: float | None) -> str:
    return "-" if p is None else f"{p:.2f}"


def _sentence(text: str) -> str:
    """First letter upper case, the rest as written ('grade 1 anterolisthesis of L4 on L5' ->
    'Grade 1 ...'; jinja's `capitalize` would lower-case 'L4')."""
    return text[:1].upper() + text[1:]


@cache
def environment() -> Environment:
    """Autoescape everything except the plain-text template (escaping would corrupt it)."""
    env = Environment(
        loader=FileSystemLoader(str(resource_dir("templates"))),
        autoescape=select_autoescape(
            enabled_extensions=("html", "html.j2", "xml"),
            disabled_extensions=("txt", "txt.j2"),
            default_for_string=True,
            default=True,
        ),
        undefined=StrictUndefined,  # a typo in a template is an error, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["prob"] = _pct
    env.filters["sentence"] = _sentence
    return env


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)
