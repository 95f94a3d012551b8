"""How the report writes a number or a name: fixed digits, scientific notation for small
values, markdown escaping. One place, shared by the tables, the findings' wording and the
comparison of runs."""

from __future__ import annotations

import html
import math

from quantbench.stats import known


def fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):  # + 0.0: a value that rounds to nothing has no sign
        return f"{round(value, digits) + 0.0:,.{digits}f}"
    return str(value)


MD_SPECIAL = "\\`*_[]|#~!"



def md_escape(text: str) -> str:
    """Make arbitrary text inert inside a markdown table cell (no markup, no HTML)."""
    text = "".join("\\" + c if c in MD_SPECIAL else c for c in str(text))
    text = html.escape(text, quote=True)
    return text.replace("\r", " ").replace("\n", " ⏎ ")



def sci(value) -> str:
    """A small quantity (a KL divergence) in scientific notation, ``n/a`` where unavailable."""
    return f"{float(value):.2e}" if known(value) else "n/a"
