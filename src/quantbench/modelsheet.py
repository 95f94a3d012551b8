"""The optional model sheet (config key ``model_sheet``): one row a model, like a sample sheet.

A tab-separated file with a header row; its columns are ``name`` and the keys of a ``models:``
entry of the config (workflow/schemas/models.schema.yaml), and a blank cell is an absent key.
pandas is imported only when a sheet is given: importing it adds about half a second to every
DAG build.
"""

from __future__ import annotations

import re
from pathlib import Path

from quantbench.config import ConfigError

_BOOLEANS = {"true": True, "false": False}


def load(path: str | Path, schema_path: str | Path):
    """The sheet, read and validated against its schema with snakemake's ``validate`` (which
    fills in the schema's defaults)."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    sheet = read(path, schema_path)
    try:
        validate(sheet, str(Path(schema_path).resolve()))
    except WorkflowError as exc:
        raise ConfigError(
            f"model sheet {path} (rows count from 0 below the header): {exc}"
        ) from exc
    return sheet


def read(path: str | Path, schema_path: str | Path):
    """The sheet as a pandas DataFrame of Python values (ints and booleans typed as the schema
    says, blank cells missing), ready for snakemake's ``validate``. Unknown columns and a name
    given twice are refused."""
    import pandas as pd
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config key 'model_sheet': file {str(path)!r} does not exist")
    columns = yaml.safe_load(Path(schema_path).read_text())["properties"]
    sheet = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    unknown = [str(c) for c in sheet.columns if c not in columns]
    if unknown:
        raise ConfigError(
            f"model sheet {path}: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(columns)}"
        )
    if "name" not in sheet.columns:
        raise ConfigError(f"model sheet {path}: no 'name' column")
    rows = [
        {col: _typed(value.strip(), columns[col]) for col, value in row.items() if value.strip()}
        for row in sheet.to_dict("records")
    ]
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        name = row.get("name")
        if name in seen:
            raise ConfigError(
                f"model sheet {path}: model {name!r} is given twice (rows {seen[name]} and "
                f"{number} below the header); each model must be unique"
            )
        if name is not None:
            seen[name] = number
    return pd.DataFrame(rows, columns=list(sheet.columns), dtype=object)


def _typed(value: str, schema: dict):
    """A cell as the schema's type, when it reads as one (else the text: validation names it)."""
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    if kind == "boolean" and value.lower() in _BOOLEANS:
        return _BOOLEANS[value.lower()]
    return value


def merge(models: dict | None, sheet, path: str | Path) -> dict:
    """The config's models followed by the sheet's; a name in both is refused."""
    import pandas as pd

    merged = dict(models or {})
    for row in sheet.to_dict("records"):
        # validate's defaults may come back as numpy scalars: .item() makes them Python values
        spec = {k: v.item() if hasattr(v, "item") else v for k, v in row.items() if not pd.isna(v)}
        name = spec.pop("name")
        if name in merged:
            raise ConfigError(
                f"model {name!r} is given twice: in the config's models and in the model sheet "
                f"{path}"
            )
        merged[name] = spec
    return merged
