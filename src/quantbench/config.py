"""Checks of the configuration beyond its JSON schema (which snakemake's validate applies).

Kept free of heavy imports: the Snakefile calls it while building the DAG.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from quantbench import kvcache, precisions
from quantbench.device import cuda_problem
from quantbench.errors import ConfigError
from quantbench.evaltext import text_file_problem
from quantbench.gguf_header import file_problem, metadata_value
from quantbench.inputs import IMATRIX_TOOL, dataset_id, gguf_source_path

# Every rule writes below these folders of the working directory, and nowhere else.
OUTPUT_FOLDERS = ("results", "resources", "logs", "benchmarks")
# Keys that were renamed: the old name gets an error naming the new one.
RENAMED_KEYS = {"profile": "gpu_trace"}


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
        elif not where and key in RENAMED_KEYS:
            raise ConfigError(
                f"config key {path!r} was renamed to {RENAMED_KEYS[key]!r} (same settings); "
                "rename it in your config"
            )
        elif extra is False:
            raise ConfigError(
                f"config key {path!r} is not known; allowed here: {', '.join(props)}"
            )
        elif isinstance(extra, dict):
            _check_keys(sub, extra, root, path)


def check_config_files(paths) -> None:
    """Refuse a config file that is not YAML (naming its line and column), is not a mapping of
    config keys, or gives a key twice in one mapping (YAML keeps the last one silently: a model
    listed twice would quietly replace the first)."""
    import yaml

    for path in map(Path, paths):
        try:
            config = _load_unique_keys(path)
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path} is not UTF-8 text: {exc.reason} at byte "
                              f"{exc.start}") from exc
        except yaml.MarkedYAMLError as exc:
            raise ConfigError(f"config file {path}: {_yaml_problem(exc)}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not YAML: {exc}") from exc
        if not isinstance(config, dict):
            raise ConfigError(
                f"config file {path} is not a mapping of config keys (models:, precisions:, "
                f"...): it holds {type(config).__name__ if config is not None else 'nothing'}"
            )


def _yaml_problem(exc) -> str:
    """A YAML syntax error in one line: where it is, what is wrong, and what YAML was reading."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    context = ""
    if exc.context:
        start = exc.context_mark
        since = (f" that starts on line {start.line + 1}"
                 if start and mark and start.line != mark.line else "")
        context = f" ({exc.context}{since})"
    return f"{where}{exc.problem or exc.context}{context}"


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
    return yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)  # a SafeLoader: no objects


def typed_config_args(args) -> list[dict]:
    """The nested values given with --config (its KEY=VALUE words), read as a config file's YAML
    is read, one {KEY: value} a word, for the Snakefile to merge over the config in order.

    Snakemake reads such a value with YAML's base loader, which leaves every scalar a string:
    --config "latency={measured_runs: 1}" gives measured_runs '1', which the schema refuses.
    Read again, 1 is a number and '1' (quoted) a string, as in a config file. A value that is
    not a mapping or a list is left as Snakemake read it (its own parser types those)."""
    import yaml

    typed = []
    for arg in args or ():
        key, given, text = str(arg).partition("=")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            continue  # Snakemake kept it as text; validation names the key
        if given and isinstance(value, dict | list):
            typed.append({key: value})
    return typed


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
        if spec["source"] == "gguf":
            problem = file_problem(spec["path"])
            if problem:
                raise ConfigError(f"config key 'models.{name}.path': {problem}")
        if spec["source"] == "random":
            _check_shape(name, spec)
    ds = config["dataset"]
    if ds["name"] == "file" and not ds.get("path"):
        raise ConfigError("config key 'dataset.path': required when dataset.name is 'file'")
    problem = text_file_problem(ds["path"]) if ds["name"] == "file" else None
    if problem:  # an empty or short text is refused here, not after the model is prepared
        raise ConfigError(f"config key 'dataset.path': {problem}")
    _check_precision_settings(config.get("precision_settings") or {})
    _check_kv_cache(config)
    _check_imatrix(config)
    _check_headline(config["latency"], config.get("kernels"))
    stride = config["perplexity"].get("stride")
    n_ctx = config["perplexity"]["context_length"]
    if stride is not None and stride >= n_ctx:  # a window keeps one token before those it scores
        raise ConfigError(
            f"config key 'perplexity.stride': {stride} is not below context_length {n_ctx} "
            "(each sliding window keeps at least one token of context)"
        )


def _check_headline(lat: dict, kernels: dict | None = None) -> None:
    """The headline point, and the kernel traces' point, must be ones the sweep measures."""
    for q in lat.get("points") or []:
        if q["batch_size"] not in lat["batch_sizes"] or \
                q.get("context_depth", 0) not in lat["context_depths"]:
            raise ConfigError(f"config key 'latency.points': {q} is not in latency.batch_sizes "
                              f"{lat['batch_sizes']} x latency.context_depths "
                              f"{lat['context_depths']}")
    head = lat.get("headline") or {}
    point = {**head, **((kernels or {}).get("point") or {})}
    for where, spec in (("latency.headline", head), ("kernels.point", point)):
        wanted = {"latency.batch_sizes": (spec.get("batch_size", 1), lat["batch_sizes"]),
                  "latency.context_depths": (spec.get("context_depth", 0),
                                             lat["context_depths"]),
                  "latency.prompt_tokens": (spec.get("prompt_tokens") or lat["prompt_tokens"][0],
                                            lat["prompt_tokens"])}
        for key, (value, swept) in wanted.items():
            if value not in swept:
                raise ConfigError(
                    f"config key {where!r}: {value} is not in {key} {swept}: the "
                    f"{'headline' if where.startswith('latency') else 'traced'} point must be a "
                    "point of the sweep"
                )
        pairs = {(q["batch_size"], q.get("context_depth", 0)) for q in lat.get("points") or []}
        at = (wanted["latency.batch_sizes"][0], wanted["latency.context_depths"][0])
        if pairs and at not in pairs:
            raise ConfigError(f"config key {where!r}: batch {at[0]}, depth {at[1]} is not one of "
                              "latency.points: it must be a measured point")


def _check_shape(name: str, spec: dict) -> None:
    """A random model's shape that transformers would refuse (or llama.cpp mis-handle) only once
    a job builds it."""
    hidden, heads, kv_heads = spec["hidden_size"], spec["num_heads"], spec["num_kv_heads"]
    if hidden % heads:
        raise ConfigError(
            f"config key 'models.{name}.hidden_size': {hidden} is not divisible by num_heads "
            f"{heads}"
        )
    if heads % kv_heads:
        raise ConfigError(
            f"config key 'models.{name}.num_kv_heads': {kv_heads} does not divide num_heads "
            f"{heads} (each KV head serves a whole group of query heads)"
        )
    if (hidden // heads) % 2:
        raise ConfigError(
            f"config key 'models.{name}.hidden_size': the head size hidden_size / num_heads = "
            f"{hidden} / {heads} = {hidden // heads} is odd; rotary position embeddings need an "
            "even head size"
        )


def _check_precision_settings(overrides: dict) -> None:
    allowed = precisions.table()
    for name, settings in overrides.items():
        if name not in allowed:
            raise ConfigError(
                f"config key 'precision_settings.{name}': unknown precision; allowed: "
                f"{', '.join(allowed)}"
            )
        # what precision_settings may change is the engine's to say (engines.Engine.overridable);
        # the other settings (mode, config, gguf_type, made_by) say what the precision is and
        # which file it loads, so changing them is a new line in precisions.yaml
        precision = allowed[name]
        known = precision.engine.overridable(precision.settings)
        for key, value in settings.items():
            where = f"config key 'precision_settings.{name}.{key}'"
            if key not in known:
                raise ConfigError(
                    f"{where}: not a setting {name} can change; allowed: "
                    f"{', '.join(known) or 'none'}"
                )
            kind = known[key]
            if isinstance(kind, tuple) and value not in kind:
                raise ConfigError(f"{where}: {value!r} is not one of {', '.join(kind)}")
            if kind is bool and not isinstance(value, bool):
                raise ConfigError(f"{where}: {value!r} is not true or false")
            if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ConfigError(f"{where}: {value!r} is not a number")


def _check_kv_cache(config: dict) -> None:
    """A llama.cpp precision whose KV cache llama.cpp would refuse (with its overrides; with a
    random model's head size, the one shape known before the model is made)."""
    overrides = config.get("precision_settings") or {}
    heads = {name: spec["hidden_size"] // spec["num_heads"]
             for name, spec in config["models"].items() if spec["source"] == "random"}
    for name in config["precisions"]:
        p = precisions.get(name, overrides.get(name))
        if not p.engine.kv_cache_types:
            continue
        for model, head_dim in [(None, None), *heads.items()]:
            why = kvcache.problem(p.settings, head_dim)
            if why is not None:
                where = f"model {model!r}: " if model else ""
                raise ConfigError(f"config key 'precisions': {name}: {where}{why}")


def calibration_of(config: dict, precision: str) -> str | None:
    """The calibration whose importance matrix a GGUF precision is quantized with (its setting
    imatrix, as precision_settings may change it), or None."""
    settings = {**precisions.table()[precision].settings,
                **(config.get("precision_settings") or {}).get(precision, {})}
    return settings.get("imatrix")


def _check_imatrix(config: dict) -> None:
    """Every IQ type has a calibration; every calibration used is configured, its text is
    there, and a tools folder given holds llama-imatrix (known before any job)."""
    spec = config.get("imatrix") or {}
    calibrations = spec.get("calibrations") or {}
    used = []
    for name in config["precisions"]:
        precision = precisions.table()[name]
        if not precision.engine.imatrix:
            continue
        calibration = calibration_of(config, name)
        if calibration is None and precisions.needs_imatrix(precision.settings["gguf_type"]):
            raise ConfigError(
                f"config key 'precision_settings.{name}.imatrix': {name} "
                f"({precision.settings['gguf_type']}) needs an importance matrix; name a "
                f"calibration of imatrix.calibrations ({', '.join(calibrations) or 'none'})"
            )
        if calibration is None:
            continue
        if calibration not in calibrations:
            raise ConfigError(
                f"config key 'imatrix.calibrations': {name} uses calibration {calibration!r}, "
                f"which is not configured (configured: {', '.join(calibrations) or 'none'})"
            )
        used.append(calibration)
    for calibration in dict.fromkeys(used):
        cal = calibrations[calibration]
        path = cal.get("path")
        if cal["source"] == "file" and not (path and Path(path).is_file()):
            raise ConfigError(
                f"config key 'imatrix.calibrations.{calibration}.path': source file needs a "
                f"text file; {path!r} is not one"
            )
    folder = spec.get("tools")
    if used and folder and not (Path(folder) / IMATRIX_TOOL).is_file():
        raise ConfigError(
            f"config key 'imatrix.tools': {folder!r} holds no {IMATRIX_TOOL} (bash "
            "tools/build-llama-tools.sh builds it and prints its folder; null builds it in a job)"
        )


def check_device(config: dict) -> None:
    """Refuse device: cuda where no CUDA device is usable: llama.cpp would run on the CPU under
    a cuda label and torch would fail in every job. Called only where the jobs run on this
    machine (a cluster's login node may have no GPU)."""
    if config.get("device") != "cuda":
        return
    problem = cuda_problem()
    if problem is not None:
        raise ConfigError(
            f"config key 'device': cuda, but no CUDA device is usable on this machine: {problem}; "
            "set device: auto (cuda where a GPU is visible, else cpu) or cpu"
        )


def context_window(name: str, spec: dict, workdir: str | Path) -> tuple[int, str] | None:
    """(the model's context window in tokens, where it was read), or None when it is not known
    before the model is prepared (a hub model not fetched yet)."""
    prepared = Path(workdir) / "resources" / "models" / name / "hf" / "config.json"
    if spec["source"] == "random":
        return spec["max_position_embeddings"], f"models.{name}.max_position_embeddings"
    if spec["source"] == "local":
        return _max_positions(Path(spec["path"]) / "config.json")
    if prepared.is_file():
        return _max_positions(prepared)
    if spec["source"] in ("embedded", "gguf"):
        gguf = gguf_source_path(spec)
        arch = metadata_value(gguf, "general.architecture")
        window = metadata_value(gguf, f"{arch}.context_length")
        return (window, f"{arch}.context_length of {gguf.name}") if window else None
    return None


def _max_positions(path: Path) -> tuple[int, str] | None:
    try:
        window = json.loads(path.read_text()).get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        return None  # the model stage says what is wrong with the folder
    return (window, f"max_position_embeddings in {path}") if isinstance(window, int) else None


def check_prompt_in_text(key: str, tokens: int, text_tokens: int, model: str) -> None:
    """Refuse a prompt longer than the evaluation text: it would be cut short silently."""
    if tokens > text_tokens:
        raise ConfigError(
            f"config key {key!r}: {tokens} tokens, but the evaluation text is only "
            f"{text_tokens} tokens long (model {model}'s tokenizer)"
        )


def check_lengths(config: dict, workdir: str | Path, *, gpu_trace: bool,
                  kernels: bool = False) -> None:
    """Refuse prompts longer than a model's context window (or than the evaluation text, where
    its token count is known) before any job; ``gpu_trace`` says whether the NVML trace runs,
    ``kernels`` whether the kernel traces do."""
    lat, prof = config["latency"], config["gpu_trace"]
    prompt = max(lat["prompt_tokens"])
    depth = max(lat.get("context_depths") or [0])
    # (config keys, tokens one run holds in its context)
    needs = [
        (["latency.prompt_tokens"], prompt),
        (["latency.prompt_tokens", "latency.new_tokens"], prompt + lat["new_tokens"]),
        (["perplexity.context_length"], config["perplexity"]["context_length"]),
    ]
    if depth:
        needs.append((["latency.context_depths", "latency.prompt_tokens", "latency.new_tokens"],
                      depth + prompt + lat["new_tokens"]))
    if kernels:
        steps = config["kernels"]["steps"]
        needs.append((["latency.context_depths", "latency.prompt_tokens", "kernels.steps"],
                      depth + prompt + steps) if depth else
                     (["latency.prompt_tokens", "kernels.steps"], prompt + steps))
    if gpu_trace:
        needs.append((["gpu_trace.prompt_tokens", "gpu_trace.new_tokens"],
                      prof["prompt_tokens"] + prof["new_tokens"]))
    for name, spec in config["models"].items():
        window = context_window(name, spec, workdir)
        if window is not None:
            limit, where = window
            for keys, tokens in needs:
                if tokens > limit:
                    what = (f"config key {keys[0]!r}: {tokens}" if len(keys) == 1 else
                            "config keys " + " + ".join(map(repr, keys)) + ": "
                            + " + ".join(str(_value(config, k)) for k in keys) + f" = {tokens}")
                    raise ConfigError(
                        f"{what} tokens exceed the context window of model {name}: {limit} "
                        f"tokens ({where})"
                    )
        meta = (Path(workdir) / "resources" / "models" / name / "tokens"
                / f"{dataset_id(config['dataset'])}.json")
        try:
            text_tokens = json.loads(meta.read_text())["n_tokens"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not tokenised yet: the job checks
        check_prompt_in_text("latency.context_depths + latency.prompt_tokens" if depth
                             else "latency.prompt_tokens", depth + prompt, text_tokens, name)
        if gpu_trace:
            check_prompt_in_text("gpu_trace.prompt_tokens", prof["prompt_tokens"], text_tokens,
                                 name)


def _value(config: dict, key: str):
    section, name = key.split(".")
    value = config[section][name]
    return max(value) if isinstance(value, list) else value


def reference_precision(config: dict) -> str:
    if config.get("reference_precision"):
        return config["reference_precision"]
    for name in precisions.REFERENCE_ORDER:
        if name in config["precisions"]:
            return name
    return config["precisions"][0]
