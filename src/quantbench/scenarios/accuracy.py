"""Task accuracy of one precision: lm-evaluation-harness (the ``lm_eval`` library) scores each
configured task with the precision loaded by quantbench's own backend (``harness.BackendLM``).

Each task is evaluated on its own (``lm_eval.simple_evaluate`` with the task's samples logged),
so that a task an engine cannot run fails alone: its entry says why, and the record takes the
first failure's status. The job runs offline (``HF_DATASETS_OFFLINE``, ``HF_HUB_OFFLINE``): a
task comes from a local folder (evaluated from its YAML's folder, so that its data files are
named relative to it) or from lm-eval's registry with its dataset in the local cache (checked
before any job, ``quantbench.evaltasks``).

Outputs: the record (kind ``accuracy``: per task its items, accuracy and Wilson interval) and
the items file, one JSON line per (task, document): ``correct`` (0/1 of the task's metric; null
for a task without one, such as a rolling log-likelihood), the log-likelihood of each request
(each choice), whether each was the greedy continuation, and a generation's text. The paired
statistics against the reference are computed from the items at aggregation
(``quantbench.report.accuracy``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path

from quantbench import evaltasks
from quantbench.flips import wilson
from quantbench.records import Status, atomic_write_text
from quantbench.scenarios.common import Job, failure_status

log = logging.getLogger(__name__)
# the per-item metrics that are 0/1, in the order one is picked as an item's "correct"
BINARY_METRICS = ("acc", "exact_match", "acc_norm", "mcc", "f1")
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@contextlib.contextmanager
def working_folder(folder: Path | None):
    previous = Path.cwd()
    if folder is not None:
        os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def item_rows(task: str, samples: list[dict]) -> tuple[list[dict], str | None]:
    """One row per document of ``samples`` (lm-eval's logged samples), and the metric that
    says whether it was answered right (None: the task has no 0/1 metric)."""
    metrics = samples[0]["metrics"] if samples else []
    metric = next((m for m in BINARY_METRICS if m in metrics), None)
    rows = []
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        resps = [r for r in s["filtered_resps"]]
        scored = [r for r in resps if isinstance(r, (list, tuple)) and len(r) == 2]
        texts = [r for r in resps if isinstance(r, str)]
        rolling = [float(r) for r in resps if isinstance(r, (int, float))]
        rows.append({
            "task": task,
            "doc_id": int(s["doc_id"]),
            "correct": None if metric is None else int(float(s[metric]) > 0.5),
            "metric": metric,
            "target": s["target"] if isinstance(s["target"], (int, str)) else str(s["target"]),
            "loglikelihoods": [float(r[0]) for r in scored] + rolling or None,
            "greedy": [bool(r[1]) for r in scored] or None,
            "response": texts[0] if texts else None,
        })
    return rows, metric


def summarize_task(rows: list[dict], metric: str | None, output: dict) -> dict:
    """A task's entry of the record: items, accuracy with its Wilson interval, lm-eval's own
    aggregate metrics (``output``)."""
    entry = {"metric": metric, "n_items": len(rows), "status": Status.OK,
             "lm_eval": {k.split(",")[0]: v for k, v in output.items()
                         if isinstance(v, (int, float)) and "stderr" not in k}}
    if metric is not None and rows:
        correct = sum(r["correct"] for r in rows)
        lo, hi = wilson(correct, len(rows))
        entry.update(correct=correct, accuracy=correct / len(rows), accuracy_lo=lo,
                     accuracy_hi=hi)
    return entry


def evaluate_one(lm, task: str, manager, *, limit, folder: Path | None) -> tuple[dict, list]:
    import lm_eval

    with working_folder(folder):
        out = lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=manager, limit=limit,
                                      log_samples=True, bootstrap_iters=0, verbosity="WARNING")
    rows, metric = item_rows(task, out["samples"][task])
    return summarize_task(rows, metric, out["results"][task]), rows


def run_accuracy(model: str, precision: str, artifact, model_dir, tasks: list[str], *,
                 items_out, limit: int | None = None, max_length: int = 2048,
                 base: str | Path = ".", device: str = "auto", threads: int = 0,
                 overrides: dict | None = None, time_limit_s: float | None = None,
                 random_weights: bool = False, derived: dict[str, str] | None = None):
    """Evaluate ``tasks`` (config ``tasks:`` entries, resolved against ``base``) on one
    precision; write the items to ``items_out`` and return the record. ``derived``: the tasks
    made from the evaluation text, by name, with their folders."""
    settings = dict(tasks=list(tasks), limit=limit, max_length=max_length)
    job = Job("accuracy", model, precision, device=device, threads=threads, settings=settings,
              overrides=overrides, time_limit_s=time_limit_s)
    rec, rows = job.record, []
    sources = evaltasks.resolve(tasks, base, derived)
    artifact, model_dir = Path(artifact).resolve(), Path(model_dir).resolve()
    if random_weights:
        rec.details["random_weights"] = "random weights: the accuracy is chance's"
    os.environ.update(OFFLINE)
    with job.failures_recorded():
        from lm_eval.tasks import TaskManager

        from quantbench.scenarios.harness import (
            BackendLM,
            eos_ids,
            load_tokenizer,
            max_length_of,
        )

        tokenizer = load_tokenizer(model_dir)
        n_ctx = min(max_length_of(model_dir, tokenizer), max_length)
        backend = job.load(artifact, n_ctx=n_ctx)
        lm = BackendLM(backend, tokenizer, max_length=n_ctx, eos_ids=eos_ids(model_dir))
        folders = [str((Path(base) / s.folder).resolve()) for s in sources
                   if s.folder is not None]
        manager = TaskManager(include_path=folders or None,
                              include_defaults=any(s.folder is None for s in sources))
        rec.details["tasks"] = {}
        for source in sources:
            for task in source.tasks:
                where = (None if source.folder is None
                         else (Path(base) / source.specs[task]).resolve().parent)
                entry, task_rows = run_task(lm, task, manager, limit=limit, folder=where)
                rec.details["tasks"][task] = entry
                rows += task_rows
        rec.details["max_length"] = lm.max_length
        failed = {t: e for t, e in rec.details["tasks"].items() if e["status"] != Status.OK}
        if failed:
            first = next(iter(failed.values()))
            rec.status = first["status"]
            rec.reason = "; ".join(f"{t}: {e['reason']}" for t, e in failed.items())[:2000]
        scored = [r for r in rows if r["correct"] is not None]
        correct = sum(r["correct"] for r in scored)
        lo, hi = wilson(correct, len(scored))
        rec.metrics.update(n_tasks=len(rec.details["tasks"]), n_items=len(scored),
                           accuracy=correct / len(scored) if scored else None,
                           accuracy_lo=lo if scored else None,
                           accuracy_hi=hi if scored else None)
    atomic_write_text(items_out, "".join(json.dumps(r) + "\n" for r in rows))
    return rec


def run_task(lm, task: str, manager, *, limit, folder: Path | None) -> tuple[dict, list]:
    """One task's entry and items; a failure is the entry's status and reason (bad input, a
    QuantbenchError other than unsupported, is raised: quantbench.scenarios.common)."""
    start, forwards, generated = time.perf_counter(), lm.forwards, lm.generated_tokens
    try:
        entry, rows = evaluate_one(lm, task, manager, limit=limit, folder=folder)
    except Exception as exc:  # noqa: BLE001 - a task the engine cannot run is data
        log.exception("task %s failed", task)
        entry, rows = failed_entry(exc, failure_status(exc)), []
    entry.update(seconds=time.perf_counter() - start, forwards=lm.forwards - forwards,
                 generated_tokens=lm.generated_tokens - generated)
    return entry, rows


def failed_entry(exc: Exception, status: Status) -> dict:
    return {"status": status, "reason": f"{type(exc).__name__}: {exc}"[:1000], "n_items": 0}
