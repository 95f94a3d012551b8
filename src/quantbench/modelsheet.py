"""The optional model sheet (config key ``model_sheet``): one row a model, like a sample sheet.

A tab-separated file with a header row; its columns are ``name`` and the keys of a ``models:``
entry of the config (workflow/schemas/models.schema.yaml), and a blank cell is an absent key.
Every row has a cell for each column of the header. Messages name a row by its line in the file
(the header is line 1).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from quantbench.config import ConfigError

_BOOLEANS = {"true": True, "false": False}


def load(path: str | Path, schema_path: str | Path) -> list[tuple[int, dict]]:
    """The sheet's rows, read and validated against its schema, with the schema's defaults
    filled in: (line in the file, row) pairs."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    rows = read(path, schema_path)
    for line, row in rows:
        error = jsonschema.exceptions.best_match(validator.iter_errors(row))
        if error is not None:
            column = f"column {error.path[0]!r}: " if error.path else ""
            raise ConfigError(f"model sheet {path}, line {line}: {column}{error.message}")
        for key, spec in schema["properties"].items():
            if "default" in spec:
                row.setdefault(key, spec["default"])
    return rows


def read(path: str | Path, schema_path: str | Path) -> list[tuple[int, dict]]:
    """The sheet's rows as (line in the file, row) pairs, each row a dict of Python values (ints
    and booleans typed as the schema says, blank cells left out), not yet validated. A row whose
    cells do not match the header, unknown columns and a name given twice are refused."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config key 'model_sheet': file {str(path)!r} does not exist")
    columns = yaml.safe_load(Path(schema_path).read_text())["properties"]
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, delimiter="\t")
            # (the line a row ends on: a row spans several lines only inside quotes)
            lines = [(reader.line_num, cells) for cells in reader if cells]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(
            f"model sheet {path} cannot be read as tab-separated text: {exc}"
        ) from exc
    if not lines:
        raise ConfigError(
            f"model sheet {path} is empty: it needs a header row (name, source and the other "
            "columns, separated by tabs) and a row for each model"
        )
    (header_line, header), body = lines[0], lines[1:]
    header = [c.strip() for c in header]
    unknown = [c for c in header if c not in columns]
    if unknown:
        raise ConfigError(
            f"model sheet {path}: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(columns)}"
        )
    if "name" not in header:
        raise ConfigError(f"model sheet {path}: no 'name' column")
    rows, seen = [], {}
    for line, cells in body:
        if len(cells) != len(header):
            raise ConfigError(
                f"model sheet {path}, line {line}: {len(cells)} cells, but the header (line "
                f"{header_line}) has {len(header)} columns; each row needs one cell a column "
                "(a blank cell between two tabs for a key left out)"
            )
        row = {col: _typed(value.strip(), columns[col])
               for col, value in zip(header, cells, strict=True) if value.strip()}
        name = row.get("name")
        if name in seen:
            raise ConfigError(
                f"model sheet {path}: model {name!r} is given twice (lines {seen[name]} and "
                f"{line}); each model must be unique"
            )
        if name is not None:
            seen[name] = line
        rows.append((line, row))
    return rows


def _typed(value: str, schema: dict):
    """A cell as the schema's type, when it reads as one (else the text: validation names it)."""
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    if kind == "boolean" and value.lower() in _BOOLEANS:
        return _BOOLEANS[value.lower()]
    return value


def merge(models: dict | None, sheet: list[tuple[int, dict]], path: str | Path) -> dict:
    """The config's models followed by the sheet's; a name in both is refused."""
    merged = dict(models or {})
    for line, row in sheet:
        spec = dict(row)
        name = spec.pop("name")
        if name in merged:
            raise ConfigError(
                f"model {name!r} is given twice: in the config's models and in the model sheet "
                f"{path} (line {line})"
            )
        merged[name] = spec
    return merged
