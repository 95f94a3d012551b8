"""Checks of the configuration beyond its JSON schema (which snakemake's validate applies).

Kept free of heavy imports: the Snakefile calls it while building the DAG.
"""

from __future__ import annotations

from pathlib import Path

from quantbench import precisions
from quantbench.errors import QuantbenchError

REFERENCE_ORDER = ("fp32", "gguf-f32", "bf16", "fp16", "gguf-f16", "gguf-bf16")


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
