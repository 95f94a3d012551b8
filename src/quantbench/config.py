"""Checks of the configuration beyond its JSON schema (which snakemake's validate applies).

Kept free of heavy imports: the Snakefile calls it while building the DAG.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from quantbench import precisions
from quantbench.errors import QuantbenchError

REFERENCE_ORDER = ("fp32", "gguf-f32", "bf16", "fp16", "gguf-f16", "gguf-bf16")
# Every rule writes below these folders of the working directory, and nowhere else.
OUTPUT_FOLDERS = ("results", "resources", "logs", "benchmarks")


class ConfigError(QuantbenchError):
    pass


def check_keys(config: dict, schema_path: str | Path) -> None:
    """Name a misspelt key and the keys allowed where it stands (before schema validation,
    whose message names the key but not the alternatives)."""
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    _check_keys(config, schema, schema, "")


def _check_keys(value, node: dict, root: dict, where: str) -> None:
    if "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    if not isinstance(value, dict) or node.get("type") != "object":
        return
    props = node.get("properties", {})
    extra = node.get("additionalProperties", True)
    for key, sub in value.items():
        path = f"{where}.{key}" if where else str(key)
        if key in props:
            _check_keys(sub, props[key], root, path)
        elif extra is False:
            raise ConfigError(
                f"config key {path!r} is not known; allowed here: {', '.join(props)}"
            )
        elif isinstance(extra, dict):
            _check_keys(sub, extra, root, path)


def check_duplicate_keys(paths) -> None:
    """Refuse a key given twice in one mapping of a config file (YAML keeps the last one
    silently: a model listed twice would quietly replace the first)."""
    import yaml

    for path in paths:
        try:
            _load_unique_keys(Path(path))
        except yaml.YAMLError:
            continue  # not YAML: Snakemake itself reports what is wrong with the file


def _load_unique_keys(path: Path):
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"config file {path}: key {key!r} is given twice (lines {seen[key]} and "
                    f"{line}); each model and setting must be unique"
                )
            seen[key] = line
        return loader.construct_mapping(node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(path.read_text(), Loader=Loader)  # a SafeLoader: no objects built


def check_output_folders(workdir: str | Path) -> None:
    """Stop before any job when an output folder cannot be written (a file in its place, a
    read-only folder or file system)."""
    for name in OUTPUT_FOLDERS:
        folder = Path(workdir) / name
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(f"output folder {folder} cannot be created: {existing} is a file")
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as exc:
            raise ConfigError(
                f"output folder {folder} cannot be written: {existing}: {exc.strerror}"
            ) from exc


def check(config: dict) -> None:
    """Raise ConfigError naming the key and the allowed values for the first problem found."""
    allowed = precisions.table()
    unknown = [p for p in config["precisions"] if p not in allowed]
    if unknown:
        raise ConfigError(
            f"config key 'precisions': unknown precision(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(allowed)}"
        )
    ref = config.get("reference_precision")
    if ref is not None and ref not in config["precisions"]:
        raise ConfigError(
            f"config key 'reference_precision': {ref!r} is not one of the precisions run "
            f"({', '.join(config['precisions'])})"
        )
    folded = {}
    for name in config["models"]:
        if name.lower() in folded:
            raise ConfigError(
                f"config key 'models': {folded[name.lower()]!r} and {name!r} differ only in case; "
                "their result folders would be the same on a case-insensitive file system"
            )
        folded[name.lower()] = name
    for name, spec in config["models"].items():
        if spec["source"] == "local" and not Path(spec["path"]).is_dir():
            raise ConfigError(
                f"config key 'models.{name}.path': model folder {spec['path']!r} does not exist"
            )
        if spec["source"] == "random" and spec["hidden_size"] % spec["num_heads"]:
            raise ConfigError(
                f"config key 'models.{name}.hidden_size': {spec['hidden_size']} is not divisible "
                f"by num_heads {spec['num_heads']}"
            )
    ds = config["dataset"]
    if ds["name"] == "file" and not ds.get("path"):
        raise ConfigError("config key 'dataset.path': required when dataset.name is 'file'")
    if ds["name"] == "file" and not Path(ds["path"]).is_file():
        raise ConfigError(f"config key 'dataset.path': file {ds['path']!r} does not exist")
    stride = config["perplexity"].get("stride")
    if stride is not None and stride > config["perplexity"]["context_length"]:
        raise ConfigError(
            f"config key 'perplexity.stride': {stride} exceeds context_length "
            f"{config['perplexity']['context_length']}"
        )


def reference_precision(config: dict) -> str:
    if config.get("reference_precision"):
        return config["reference_precision"]
    for name in REFERENCE_ORDER:
        if name in config["precisions"]:
            return name
    return config["precisions"][0]
