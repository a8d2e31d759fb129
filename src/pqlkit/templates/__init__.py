"""Jinja2 templates shared by `pql report` and the web app (`pql ui`); autoescaped, so every
value is text unless a template marks it otherwise (only pqlkit's own SVG and report HTML)."""

from __future__ import annotations

from functools import cache

import jinja2


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pqlkit", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
