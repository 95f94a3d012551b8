"""The accuracy stage: quantbench's lm-eval model (scenarios.harness) against lm-eval's own `hf`
model, llama.cpp against quantbench's perplexity path, and the record and items it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from quantbench import perplexity as ppl_mod
from quantbench import precisions
from quantbench.backends import load_backend
from quantbench.records import Status

lm_eval = pytest.importorskip("lm_eval")

from lm_eval.tasks import TaskManager  # noqa: E402

from quantbench.scenarios.accuracy import run_accuracy  # noqa: E402
from quantbench.scenarios.harness import BackendLM, load_tokenizer  # noqa: E402

TASKS = Path(__file__).parent / "data" / "tasks"
MAX_LENGTH = 160  # short enough that the rolling task's paragraphs take several windows


def backend_lm(precision, artifact, tokenizer_dir):
    backend = load_backend(precisions.get(precision), artifact, device="cpu", threads=2,
                           n_ctx=MAX_LENGTH)
    return BackendLM(backend, load_tokenizer(tokenizer_dir), max_length=MAX_LENGTH)


def evaluate(lm, tasks):
    manager = TaskManager(include_path=str(TASKS), include_defaults=False)
    out = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=12,
                                  log_samples=True, bootstrap_iters=0)
    return out


def responses(out, task):
    return {s["doc_id"]: s["filtered_resps"] for s in out["samples"][task]}


@pytest.fixture(scope="module")
def hf_and_ours(tiny_model):
    """Both models evaluated on every fixture task (the fixture's folder holds them all, so
    the data files are found from there)."""
    import os

    from lm_eval.models.huggingface import HFLM

    tasks = ["qbt_choice", "qbt_lastword", "qbt_rolling", "qbt_generate"]
    previous = Path.cwd()
    os.chdir(TASKS / "qbt_choice")
    try:
        outs = {}
        for name, lm in (("hf", HFLM(pretrained=str(tiny_model), device="cpu", batch_size=4,
                                     max_length=MAX_LENGTH, dtype="float32")),
                         ("ours", backend_lm("fp32", tiny_model, tiny_model))):
            outs[name] = {}
            for task in tasks:
                os.chdir(TASKS / task)
                outs[name][task] = evaluate(lm, [task])
    finally:
        os.chdir(previous)
    return outs


@pytest.mark.parametrize("task", ["qbt_choice", "qbt_lastword", "qbt_rolling"])
def test_loglikelihoods_match_lm_evals_hf_model(hf_and_ours, task):
    hf, ours = (responses(hf_and_ours[k][task], task) for k in ("hf", "ours"))
    assert hf.keys() == ours.keys() and len(hf) >= 4
    worst = 0.0
    for doc, theirs in hf.items():
        a = np.array([r[0] if isinstance(r, (list, tuple)) else r for r in theirs], dtype=float)
        b = np.array([r[0] if isinstance(r, (list, tuple)) else r for r in ours[doc]],
                     dtype=float)
        # lm-eval sums a rolling document's hundreds of log-probabilities in float32: known to
        # a few units of float32's resolution at the sum's size (1e-4 at -1000)
        allowed = 1e-4 + 4 * np.finfo(np.float32).eps * np.abs(a)
        assert (np.abs(a - b) <= allowed).all(), (doc, a, b)
        worst = max(worst, float(np.abs(a - b).max()))
        if isinstance(theirs[0], (list, tuple)):  # is_greedy
            assert [r[1] for r in theirs] == [r[1] for r in ours[doc]]
    print(f"{task}: max |delta loglikelihood| {worst:.2e}")
    assert worst < (1e-3 if task == "qbt_rolling" else 1e-4), worst


@pytest.mark.parametrize("task", ["qbt_choice", "qbt_lastword", "qbt_generate"])
def test_the_same_accuracy_and_generations_as_lm_evals_hf_model(hf_and_ours, task):
    hf, ours = (hf_and_ours[k][task] for k in ("hf", "ours"))
    metric = "exact_match,first-word" if task == "qbt_generate" else "acc,none"
    assert hf["results"][task][metric] == ours["results"][task][metric]
    assert responses(hf, task) == responses(ours, task) if task == "qbt_generate" else True


def test_generation_stops_at_a_stop_string_and_keeps_what_came_before(tiny_model):
    class Request:
        def __init__(self, *args):
            self.args = args

    lm = backend_lm("fp32", tiny_model, tiny_model)
    free = lm.generate_until([Request("The river", {"until": ["\u0000"], "max_gen_toks": 6})])[0]
    assert free  # six greedy tokens of a random model: some text
    stop = free.strip()[:2]
    cut = lm.generate_until([Request("The river", {"until": [stop], "max_gen_toks": 6})])[0]
    assert stop not in cut and free.startswith(cut)
    with pytest.raises(Exception, match="greedily"):
        lm.generate_until([Request("The river", {"do_sample": True, "temperature": 1.0})])


def test_llama_cpp_loglikelihoods_are_its_perplexity_paths(tiny_model, tiny_gguf):
    """The same tokens through quantbench's perplexity path (backend.logits, scored_logprobs)
    give the bridge's log-likelihoods; and llama.cpp's f16 file agrees with transformers' fp32
    to the f16 rounding."""
    lm = backend_lm("gguf-f16", tiny_gguf["f16"], tiny_model)
    hf = backend_lm("fp32", tiny_model, tiny_model)
    rows = [json.loads(line) for line in (TASKS / "qbt_choice" / "items.jsonl").open()][:6]
    pairs = [(r["context"], " " + c) for r in rows for c in r["choices"]]
    requests = [((c, x), *lm._encode_pair(c, x)) for c, x in pairs]
    ours = lm._loglikelihood_tokens(requests)
    for (_, context, continuation), (ll, _) in zip(requests, ours, strict=True):
        ids = (context + continuation)[-(MAX_LENGTH + 1):]
        window = ppl_mod.Window(ids[:-1], len(ids) - 1 - len(continuation), continuation)
        logits = lm.backend.logits(window.ids)
        direct = ppl_mod.scored_logprobs(logits, window)
        assert abs(direct[np.arange(len(continuation)), continuation].sum() - ll) < 1e-4
    theirs = hf._loglikelihood_tokens(requests)
    gap = max(abs(a[0] - b[0]) for a, b in zip(ours, theirs, strict=True))
    assert gap < 0.05, gap


def test_a_record_and_its_items(tiny_model, tmp_path):
    items = tmp_path / "items.jsonl"
    rec = run_accuracy("tiny", "fp32", tiny_model, tiny_model, [str(TASKS)], items_out=items,
                       limit=5, max_length=MAX_LENGTH, device="cpu", threads=2)
    assert rec.kind == "accuracy" and rec.status == Status.OK, rec.reason
    tasks = rec.details["tasks"]
    assert set(tasks) == {"qbt_choice", "qbt_lastword", "qbt_rolling", "qbt_generate"}
    assert tasks["qbt_choice"]["n_items"] == 5 and tasks["qbt_choice"]["metric"] == "acc"
    lo, acc, hi = (tasks["qbt_choice"][k] for k in ("accuracy_lo", "accuracy", "accuracy_hi"))
    assert 0 <= lo <= acc <= hi <= 1 and hi - lo > 0.2  # five items: a wide interval
    rows = [json.loads(line) for line in items.read_text().splitlines()]
    choice = [r for r in rows if r["task"] == "qbt_choice"]
    assert [r["doc_id"] for r in choice] == list(range(5))
    assert all(len(r["loglikelihoods"]) == 4 and r["correct"] in (0, 1) for r in choice)
    # correct is the chosen choice's being the label
    for r in choice:
        assert r["correct"] == int(int(np.argmax(r["loglikelihoods"])) == r["target"])
    assert all(r["correct"] is None for r in rows if r["task"] == "qbt_rolling")
    assert rec.metrics["n_items"] == 15  # the three tasks with a 0/1 metric
    assert rec.metrics["accuracy"] == pytest.approx(
        np.mean([r["correct"] for r in rows if r["correct"] is not None]))


def test_a_task_the_engine_cannot_run_is_a_status_not_a_crash(tiny_model, tmp_path,
                                                             monkeypatch):
    from quantbench.errors import UnsupportedError
    from quantbench.scenarios import harness

    def refuse(self, requests, disable_tqdm=False):
        raise UnsupportedError("this engine cannot generate")

    monkeypatch.setattr(harness.BackendLM, "generate_until", refuse)
    items = tmp_path / "items.jsonl"
    rec = run_accuracy("tiny", "fp32", tiny_model, tiny_model, [str(TASKS)], items_out=items,
                       limit=3, max_length=MAX_LENGTH, device="cpu", threads=2)
    assert rec.status == Status.UNSUPPORTED and "qbt_generate" in rec.reason
    assert rec.details["tasks"]["qbt_generate"]["status"] == Status.UNSUPPORTED
    assert rec.details["tasks"]["qbt_choice"]["status"] == Status.OK
    assert {json.loads(x)["task"] for x in items.read_text().splitlines()} == {
        "qbt_choice", "qbt_lastword", "qbt_rolling"}


def test_logits_of_the_last_positions_are_those_rows_of_the_whole_window(tiny_model, tiny_gguf):
    """Backend.logits(ids, last=k): the LM head over the last k positions only (transformers'
    logits_to_keep, llama.cpp's output rows) gives the same rows as the whole window's."""
    ids = list(range(5, 25))
    for precision, artifact in (("fp32", tiny_model), ("gguf-f16", tiny_gguf["f16"])):
        backend = load_backend(precisions.get(precision), artifact, device="cpu", threads=1,
                               n_ctx=64)
        backend.configure(1, 64)
        whole, tail = backend.logits(ids), backend.logits(ids, last=3)
        assert tail.shape == (3, whole.shape[1])
        np.testing.assert_allclose(tail, whole[-3:], rtol=1e-4, atol=1e-4)
        backend.close()


def _loglikelihoods(items: Path) -> dict:
    rows = [json.loads(line) for line in items.read_text().splitlines()]
    return {(r["task"], r["doc_id"]): np.array(r["loglikelihoods"]) for r in rows}


@pytest.fixture(scope="module")
def fp32_items(tiny_model, tmp_path_factory):
    items = tmp_path_factory.mktemp("fp32-items") / "items.jsonl"
    rec = run_accuracy("tiny", "fp32", tiny_model, tiny_model, ENGINE_TASKS, items_out=items,
                       limit=4, max_length=MAX_LENGTH, device="cpu", threads=2)
    assert rec.status == Status.OK, rec.reason
    return _loglikelihoods(items)


ENGINE_TASKS = [str(TASKS / "qbt_choice"), str(TASKS / "qbt_lastword")]
# each engine's precision scored through its own backend, and how far from fp32's per-item
# log-likelihoods it may be: ONNX Runtime's fp32 graph computes the same numbers; the
# quantised ones move them, a little
ENGINES = {"onnx-fp32": (0.0, 1e-3), "onnx-int8": (1e-4, 0.5), "torchao-int8wo": (1e-4, 0.5),
           "bnb-int8": (1e-4, 0.5), "gguf-q8_0": (1e-4, 0.5)}


@pytest.mark.parametrize("precision", sorted(ENGINES))
def test_every_engine_scores_the_tasks_through_its_own_backend(
        precision, tiny_model, tiny_gguf, onnx_dirs, fp32_items, tmp_path):
    """ONNX Runtime, torchao, bitsandbytes and llama.cpp answer lm-eval's requests through
    their backends: every item scored, each choice's log-likelihood within the engine's
    distance of fp32 transformers' (and, quantised, not equal to it)."""
    if precision.startswith("torchao"):
        pytest.importorskip("torchao")
        torch = pytest.importorskip("torch")
        torch._dynamo.reset()
    if precision.startswith("bnb"):
        pytest.importorskip("bitsandbytes")
    artifact = {"onnx-fp32": onnx_dirs["onnx-fp32"], "onnx-int8": onnx_dirs["onnx-int8"],
                "gguf-q8_0": tiny_gguf["q8_0"]}.get(precision, tiny_model)
    items = tmp_path / "items.jsonl"
    rec = run_accuracy("tiny", precision, artifact, tiny_model, ENGINE_TASKS, items_out=items,
                       limit=4, max_length=MAX_LENGTH, device="cpu", threads=2)
    assert rec.status == Status.OK, rec.reason
    assert rec.details["tasks"]["qbt_choice"]["n_items"] == 4
    ours = _loglikelihoods(items)
    assert ours.keys() == fp32_items.keys()
    gap = max(float(np.max(np.abs(ours[k] - fp32_items[k]))) for k in ours)
    low, high = ENGINES[precision]
    assert low <= gap < high, gap
