"""The accuracy stage's tasks, found and checked while the DAG is built (quantbench.evaltasks):
local folders, registry names whose dataset is cached, and refusals that say what to do."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from quantbench import evaltasks
from quantbench.config import ConfigError

TASKS = Path(__file__).parent / "data" / "tasks"
needs_lm_eval = pytest.mark.skipif(evaltasks.registry_folder() is None,
                                   reason="lm_eval is not installed")


def test_a_local_folder_gives_its_tasks_and_their_files_as_the_entry_names_them():
    (source,) = evaltasks.resolve(["tasks"], TASKS.parent)
    assert set(source.tasks) == {"qbt_choice", "qbt_lastword", "qbt_generate", "qbt_rolling"}
    assert "tasks/qbt_choice/items.jsonl" in source.files  # relative: a copied folder is its own
    assert source.specs["qbt_choice"] == "tasks/qbt_choice/qbt_choice.yaml"


def test_a_missing_folder_is_refused_by_its_path(tmp_path):
    with pytest.raises(ConfigError, match="nowhere.*does not exist.*local task folder"):
        evaltasks.resolve(["tasks/nowhere"], tmp_path)


def test_a_task_whose_data_file_is_missing_is_refused_naming_it(tmp_path):
    shutil.copytree(TASKS / "qbt_choice", tmp_path / "t" / "qbt_choice")
    (tmp_path / "t" / "qbt_choice" / "items.jsonl").unlink()
    with pytest.raises(ConfigError, match="qbt_choice.yaml reads items.jsonl"):
        evaltasks.resolve(["t"], tmp_path)
    (tmp_path / "t" / "qbt_choice" / "qbt_choice.yaml").unlink()
    with pytest.raises(ConfigError, match="holds no lm-eval task YAML"):
        evaltasks.resolve(["t"], tmp_path)


def test_a_task_named_twice_is_refused(tmp_path):
    shutil.copytree(TASKS / "qbt_choice", tmp_path / "a" / "qbt_choice")
    shutil.copytree(TASKS / "qbt_choice", tmp_path / "b" / "qbt_choice")
    with pytest.raises(ConfigError, match="'qbt_choice' comes from both 'a' and 'b'"):
        evaltasks.resolve(["a", "b"], tmp_path)


@needs_lm_eval
def test_a_name_outside_the_registry_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="'no_such_task' is neither a folder nor a task"):
        evaltasks.resolve(["no_such_task"], tmp_path)


@needs_lm_eval
def test_a_registry_task_runs_only_with_its_dataset_in_the_cache(tmp_path, monkeypatch):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ConfigError, match="'EleutherAI/lambada_openai'.*not in the Hugging "
                                          "Face cache.*populate"):
        evaltasks.resolve(["lambada_openai"], tmp_path)
    (tmp_path / "hf" / "hub" / "datasets--EleutherAI--lambada_openai").mkdir(parents=True)
    (source,) = evaltasks.resolve(["lambada_openai"], tmp_path)
    assert source.tasks == ("lambada_openai",) and source.folder is None


@needs_lm_eval
def test_the_check_imports_neither_lm_eval_nor_datasets():
    code = ("import sys; from quantbench import evaltasks; "
            "evaltasks.registry_index(evaltasks.registry_folder()); "
            "print(sorted(m for m in ('lm_eval', 'datasets', 'torch') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(Path(evaltasks.__file__).parents[1])})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
