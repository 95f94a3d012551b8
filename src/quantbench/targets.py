"""Names of the short target rules (one per configured precision and per model).

Kept free of heavy imports: workflow/rules/targets.smk calls it while building the DAG.
"""

from __future__ import annotations

import keyword
import re

from quantbench.config import ConfigError

# The records a precision or a model target asks for: results/<model>/<kind>/<precision>.json
KINDS = ("latency", "quality", "profile")


def rule_names(names, prefix: str = "", what: str = "name", taken=()) -> dict[str, str]:
    """Map each name to a rule name: ``prefix`` + the name with every character that cannot be
    in an identifier ('-', '.') replaced by '_'. Two names that map to the same rule name, or a
    rule name that is already taken, are refused (a target must build one thing only)."""
    owners: dict[str, str] = {}
    for name in names:
        rule = prefix + re.sub(r"\W", "_", name, flags=re.ASCII)
        if not rule.isidentifier() or keyword.iskeyword(rule):
            raise ConfigError(f"{what} {name!r}: its target rule name {rule!r} is not valid")
        if rule in owners:
            raise ConfigError(
                f"{what}s {owners[rule]!r} and {name!r} would both get the target rule "
                f"{rule!r} ('-' and '.' become '_'); rename one"
            )
        if rule in taken:
            raise ConfigError(
                f"{what} {name!r}: its target rule name {rule!r} is already a rule of the workflow"
            )
        owners[rule] = name
    return {name: rule for rule, name in owners.items()}
