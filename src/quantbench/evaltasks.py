"""The tasks of the accuracy stage (config ``tasks:``), found and checked while the DAG is built.

An entry is either
- a **local task folder**: a path (it holds a ``/`` or names an existing folder) of a folder
  whose lm-eval task YAML files (``task:`` names, below the folder at any depth) read their data
  from files beside them (``dataset_path: json`` with ``dataset_kwargs.data_files``, relative to
  the YAML's folder); or
- a **task name** of lm-eval's registry (``arc_easy``, ``lambada_openai``, a group such as
  ``mmlu``), whose dataset must already be in the local Hugging Face cache: jobs run offline.

The check stays light (no import of lm_eval or datasets): lm_eval's installed
task folder is found with ``importlib.util.find_spec`` and its YAML files are read as text for the
``task:`` and ``group:`` lines, then the one file of the task (and its ``include:`` chain) is
parsed for ``dataset_path`` / ``dataset_name``. The dataset is present when the Hub cache
(``HF_HUB_CACHE``, else ``HF_HOME/hub``) holds ``datasets--<owner>--<name>`` or the datasets cache
(``HF_DATASETS_CACHE``, else ``HF_HOME/datasets``) holds ``<owner>___<name>``; a ``dataset_path``
that is a local path must exist. A task defined by Python code rather than a dataset is let
through (its job records what fails). Anything else is refused, naming what is missing and how
to provide it.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from quantbench.config import ConfigError

# the builders of datasets that read local files (dataset_kwargs.data_files)
FILE_BUILDERS = {"json", "csv", "parquet", "text", "arrow"}
TASK_LINE = re.compile(r"^task:\s*['\"]?([^'\"\s#]+)", re.M)
GROUP_LINE = re.compile(r"^group:\s*['\"]?([^'\"\s#]+)", re.M)
HOW_TO_PROVIDE = ("give a local task folder (an lm-eval task YAML beside its JSONL data) in "
                  "`tasks:`, or populate the Hugging Face datasets cache on a machine with a "
                  "network (python -c \"import datasets; datasets.load_dataset(...)\") and copy it "
                  "here")


class TaskLoader(yaml.SafeLoader):
    """YAML of lm-eval tasks: ``!function`` tags are read as plain strings."""


TaskLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@dataclass(frozen=True, eq=False)
class TaskSource:
    """One entry of ``tasks:``: a local folder (``folder``) or a registry name; ``tasks``: the
    lm-eval task names it runs."""

    entry: str
    tasks: tuple[str, ...]
    folder: Path | None = None  # as the entry names it (relative to the working folder)
    files: tuple[str, ...] = ()  # a folder's YAML and data files (the rule's inputs)
    specs: dict = field(default_factory=dict)  # a folder's task name -> its YAML


def is_folder_entry(entry: str, base: Path) -> bool:
    return "/" in entry or os.sep in entry or (base / entry).is_dir()


def read_yaml(path: Path) -> dict:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=TaskLoader)
    return data if isinstance(data, dict) else {}


def data_files(spec: dict) -> list[str]:
    """The files a task's ``dataset_kwargs.data_files`` names (a string, a list or a split map)."""
    files = (spec.get("dataset_kwargs") or {}).get("data_files") or []
    if isinstance(files, dict):
        files = list(files.values())
    if isinstance(files, str):
        files = [files]
    out = []
    for f in files:
        out.extend([f] if isinstance(f, str) else list(f))
    return out


def folder_source(entry: str, base: Path) -> TaskSource:
    """A local folder's tasks; its files are named as the entry names them (relative to
    ``base`` when the entry is), so that a copy of the working folder is a run of its own."""
    named = Path(entry)
    folder = base / named
    if not folder.is_dir():
        raise ConfigError(f"tasks: {entry!r} is not a folder ({folder.resolve()} does not "
                          f"exist); {HOW_TO_PROVIDE}")
    names, files, specs = [], [], {}
    for found in sorted(folder.rglob("*.yaml")):
        spec_path = named / found.relative_to(folder)
        spec = read_yaml(found)
        if not isinstance(spec.get("task"), str):
            continue
        missing = [f for f in data_files(spec) if not (found.parent / f).is_file()]
        if spec.get("dataset_path") in FILE_BUILDERS and not data_files(spec):
            missing = ["(no dataset_kwargs.data_files)"]
        if missing:
            raise ConfigError(f"tasks: {found} reads {', '.join(missing)}, which is not "
                              "beside it; a local task's data files are named relative to its "
                              "YAML's folder")
        names.append(spec["task"])
        specs[spec["task"]] = str(spec_path)
        files += [str(spec_path), *(str(spec_path.parent / f) for f in data_files(spec))]
    if not names:
        raise ConfigError(f"tasks: {folder} holds no lm-eval task YAML (a file with `task:`); "
                          f"{HOW_TO_PROVIDE}")
    return TaskSource(entry, tuple(names), named, tuple(files), specs)


def registry_folder() -> Path | None:
    """lm_eval's installed task folder, found without importing lm_eval."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "tasks"


def registry_index(root: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """Every task and group name of lm_eval's task folder, with the YAML that defines it."""
    tasks, groups = {}, {}
    for path in sorted(root.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for name in TASK_LINE.findall(text):
            tasks.setdefault(name, path)
        for name in GROUP_LINE.findall(text):
            groups.setdefault(name, path)
    return tasks, groups


def resolved_spec(path: Path, depth: int = 0) -> dict:
    """A task's YAML with what it ``include:``s under it (the file's own keys win)."""
    spec = read_yaml(path)
    base = spec.get("include")
    if isinstance(base, str) and depth < 5 and (path.parent / base).is_file():
        return {**resolved_spec(path.parent / base, depth + 1), **spec}
    return spec


def hf_caches() -> tuple[Path, Path]:
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    hub = Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
               or home / "hub")
    datasets = Path(os.environ.get("HF_DATASETS_CACHE", home / "datasets"))
    return hub, datasets


def dataset_problem(spec: dict, spec_path: Path) -> str | None:
    """What of a registry task's data is missing offline (None: present, or not a dataset)."""
    path = spec.get("dataset_path")
    if not isinstance(path, str):
        return None
    if path in FILE_BUILDERS:
        missing = [f for f in data_files(spec) if not Path(f).is_file()]
        return f"its data files {', '.join(missing)} are missing" if missing else None
    if Path(path).expanduser().exists():
        return None
    hub, datasets = hf_caches()
    if (hub / f"datasets--{path.replace('/', '--')}").is_dir() or \
            (datasets / path.replace("/", "___")).is_dir():
        return None
    return (f"its dataset {path!r} (from {spec_path.name}) is not in the Hugging Face cache "
            f"({hub} or {datasets})")


def named_source(entry: str, index) -> TaskSource:
    tasks, groups = index
    if entry in tasks:
        problem = dataset_problem(resolved_spec(tasks[entry]), tasks[entry])
        if problem:
            raise ConfigError(f"tasks: lm-eval task {entry!r} cannot run offline: {problem}; "
                              f"{HOW_TO_PROVIDE}")
        return TaskSource(entry, (entry,))
    if entry in groups:
        members = resolved_spec(groups[entry]).get("task") or []
        for member in members if isinstance(members, list) else []:
            name = member if isinstance(member, str) else (member or {}).get("task")
            if isinstance(name, str) and (name in tasks or name in groups):
                named_source(name, index)
        return TaskSource(entry, (entry,))
    raise ConfigError(f"tasks: {entry!r} is neither a folder nor a task of lm-eval's registry; "
                      f"{HOW_TO_PROVIDE}")


def derived_source(entry: str, folder: str) -> TaskSource:
    """A task the workflow derives from the evaluation text (rule make_tasks): its folder and
    files are known before the rule has made them."""
    spec = f"{folder}/{entry}.yaml"
    return TaskSource(entry, (entry,), Path(folder), (spec, f"{folder}/items.jsonl"),
                      {entry: spec})


def resolve(entries, base: str | Path = ".", derived: dict[str, str] | None = None
            ) -> list[TaskSource]:
    """Each entry of ``tasks:`` found and checked (ConfigError naming what is missing); task
    names must be unique across entries. ``derived``: the task names the workflow makes from
    the evaluation text, with their folders (``quantbench.evaltext.derived_task_folders``)."""
    base, derived = Path(base), derived or {}
    named = [e for e in entries if e not in derived and not is_folder_entry(e, base)]
    index = None
    if named:
        root = registry_folder()
        if root is None:
            raise ConfigError(f"tasks: {', '.join(map(repr, named))} name lm-eval tasks, but "
                              "lm_eval is not installed beside Snakemake, so they cannot be "
                              "checked: install lm_eval==0.4.13 or give local task folders")
        index = registry_index(root)
    out = [derived_source(e, derived[e]) if e in derived
           else folder_source(e, base) if is_folder_entry(e, base) else named_source(e, index)
           for e in entries]
    seen: dict[str, str] = {}
    for source in out:
        for name in source.tasks:
            if name in seen:
                raise ConfigError(f"tasks: task {name!r} comes from both {seen[name]!r} and "
                                  f"{source.entry!r}")
            seen[name] = source.entry
    return out

