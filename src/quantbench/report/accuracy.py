"""Task accuracy in the tables and the report: each precision's accuracy with its Wilson
interval, its paired change against the reference precision over the items both answered
(Newcombe's interval, McNemar's exact test) and the answers that flipped, per task and pooled
over the tasks (``quantbench.flips`` computes them); across precisions, how the accuracy change
ranks with the change in perplexity and with KL divergence (Spearman).

The items are read from each accuracy record's items file (``results/<model>/accuracy/
<precision>.items.jsonl``, written beside the record): one JSON line per task and document, with
``correct`` 0/1 (null for a task without a 0/1 metric, left out here).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from quantbench import evaltext, flips
from quantbench.records import Status
from quantbench.report.numbers import fmt

POOLED = "all tasks"
# the summary's accuracy columns: the pooled row of each precision's tasks
SUMMARY_COLUMNS = ("accuracy", "accuracy_lo", "accuracy_hi", "accuracy_items",
                   "acc_change_pp", "acc_change_lo_pp", "acc_change_hi_pp", "acc_p_mcnemar",
                   "flips_lost", "flips_gained", "flip_rate_pct", "accuracy_status")
TEXT_COLUMNS = {"accuracy_status"}
TABLE_COLUMNS = ["model", "precision", "task", "status", "n_items", "accuracy", "accuracy_lo",
                 "accuracy_hi", "paired_items", "acc_change_pp", "acc_change_lo_pp",
                 "acc_change_hi_pp", "acc_p_mcnemar", "flips_lost", "flips_gained",
                 "flip_rate_pct"]


def items_path(record_path) -> Path:
    """The items file beside an accuracy record."""
    path = Path(record_path)
    return path.with_name(path.stem + ".items.jsonl")


def read_items(path) -> pd.DataFrame:
    """(task, doc_id, correct) of the items with a 0/1 answer; an empty frame for none."""
    rows = []
    if Path(path).is_file():
        for line in Path(path).read_text().splitlines():
            item = json.loads(line)
            if item.get("correct") is not None:
                rows.append((item["task"], int(item["doc_id"]), int(item["correct"])))
    return pd.DataFrame(rows, columns=["task", "doc_id", "correct"])


def accuracy_entry(correct: pd.Series) -> dict:
    n, k = len(correct), int(correct.sum())
    lo, hi = flips.wilson(k, n)
    return {"n_items": n, "accuracy": k / n if n else math.nan, "accuracy_lo": lo,
            "accuracy_hi": hi}


def change_entry(mine: pd.DataFrame, reference: pd.DataFrame) -> dict:
    """The paired change against the reference over the (task, document) pairs both have."""
    both = mine.merge(reference, on=["task", "doc_id"], suffixes=("", "_ref"))
    if both.empty:
        return {}
    c = flips.paired_change(both["correct_ref"], both["correct"])
    return {"paired_items": c.n, "acc_change_pp": 100 * c.change,
            "acc_change_lo_pp": 100 * c.change_lo, "acc_change_hi_pp": 100 * c.change_hi,
            "acc_p_mcnemar": c.p_mcnemar, "flips_lost": c.lost, "flips_gained": c.gained,
            "flip_rate_pct": 100 * c.flip_rate}


def task_table(records: list[dict], record_paths, reference: str) -> pd.DataFrame:
    """One row per model, precision and task, and one pooled over the tasks (``POOLED``):
    accuracy with its interval; for every precision but the reference, the paired change and
    flips against the reference's answers to the same items."""
    found = {}
    for rec, path in zip(records, record_paths, strict=True):
        if rec["kind"] == "accuracy":
            found[(rec["model"], rec["precision"])] = (rec, read_items(items_path(path)))
    rows = []
    for (model, precision), (rec, items) in found.items():
        ref = found.get((model, reference))
        ref_items = ref[1] if ref is not None and precision != reference else None
        tasks = rec["details"].get("tasks") or {}
        for task in [*tasks, POOLED]:
            mine = items if task == POOLED else items[items["task"] == task]
            if task != POOLED and tasks[task].get("metric") is None:
                continue  # no 0/1 answer (a rolling log-likelihood)
            status = rec["status"] if task == POOLED else tasks[task].get("status", Status.OK)
            row = {"model": model, "precision": precision, "task": task, "status": status,
                   **accuracy_entry(mine["correct"])}
            if ref_items is not None:
                row.update(change_entry(mine, ref_items))
            rows.append(row)
    return pd.DataFrame(rows).reindex(columns=TABLE_COLUMNS)


def with_summary_columns(summary: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The summary with each precision's pooled accuracy figures (NaN where it has none)."""
    pooled = table[table["task"] == POOLED].rename(columns={
        "n_items": "accuracy_items", "status": "accuracy_status"})
    keep = ["model", "precision", *[c for c in SUMMARY_COLUMNS if c in pooled]]
    merged = summary.drop(columns=[c for c in SUMMARY_COLUMNS if c in summary]).merge(
        pooled[keep], on=["model", "precision"], how="left")
    return merged.reindex(columns=summary.columns)


def correlations(df: pd.DataFrame, reference: str) -> dict[str, dict]:
    """Per model, Spearman's rank correlation across its precisions (the reference left out)
    of the accuracy change with Δ perplexity and with KL divergence, the same of the flip rate
    (equal accuracies can hide many flips), and how many precisions they are over."""
    out = {}
    for model, g in df.groupby("model"):
        g = g[(g["precision"] != reference) & g["acc_change_pp"].notna()]
        pairs = {"ppl": ("acc_change_pp", "ppl_delta_pct"), "kld": ("acc_change_pp", "kld_mean"),
                 "flips_ppl": ("flip_rate_pct", "ppl_delta_pct"),
                 "flips_kld": ("flip_rate_pct", "kld_mean")}
        out[model] = {"n": len(g)}
        for key, (x, y) in pairs.items():
            out[model][key], out[model][f"{key}_p"] = flips.spearman_test(g[x], g[y])
    return out


def rho(c: dict, key: str) -> str:
    """ρ with its p-value, as the section prints it."""
    return f"ρ = {fmt(c[key], 2)} ({fmt_p(c[key + '_p'])})"


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {fmt(p, 3)}"


def change_words(row) -> str:
    change = (f"{fmt(row['acc_change_pp'], 1)} points [{fmt(row['acc_change_lo_pp'], 1)}, "
              f"{fmt(row['acc_change_hi_pp'], 1)}]")
    significant = row["acc_p_mcnemar"] < 0.05
    return (f"{change}, McNemar p = {fmt(row['acc_p_mcnemar'], 3)}"
            f"{'' if significant else ' (no significant change)'}")


def section(df: pd.DataFrame, table: pd.DataFrame | None, reference: str) -> list[str]:
    """The report's accuracy section as markdown lines (none without accuracy records): the
    table by precision and task, then per model the rank correlations that hold data."""
    if table is None or table.empty:
        return []
    derived = sorted(set(table["task"]) & set(evaltext.DERIVED_TASKS))
    out = ["### Task accuracy", "",
           f"Accuracy on each task through lm-evaluation-harness, with each precision loaded by "
           f"quantbench's own engine; the change is paired against `{reference}` over the same "
           "items (95 % interval: Newcombe's hybrid score method for paired proportions; "
           "McNemar's exact test), and a flip is an item answered right by one and wrong by "
           "the other. Accuracy's interval is Wilson's."
           + (f" {', '.join(derived)}: tasks derived from the held-out part of the evaluation "
              "text (a last word to predict as LAMBADA does; the true next sentence among four), "
              "not a published benchmark." if derived else ""), "",
           "| model | precision | task | items | accuracy % (95 % CI) | change (points, 95 % CI) "
           "| right→wrong | wrong→right | flip rate % |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for _, r in table.iterrows():
        if r["status"] != Status.OK and not r["n_items"]:
            out.append(f"| {r['model']} | {r['precision']} | {r['task']} | 0 | {r['status']} "
                       "| | | | |")
            continue
        change = ("" if pd.isna(r["acc_change_pp"]) else
                  f"{fmt(r['acc_change_pp'], 1)} [{fmt(r['acc_change_lo_pp'], 1)}, "
                  f"{fmt(r['acc_change_hi_pp'], 1)}]")
        out.append(
            f"| {r['model']} | {r['precision']} | {r['task']} | {int(r['n_items'])} | "
            f"{fmt(100 * r['accuracy'], 1)} [{fmt(100 * r['accuracy_lo'], 1)}, "
            f"{fmt(100 * r['accuracy_hi'], 1)}] | {change} | {fmt(r['flips_lost'], 0)} | "
            f"{fmt(r['flips_gained'], 0)} | {fmt(r['flip_rate_pct'], 1)} |")
    out.append("")
    for _, r in df[df["acc_change_pp"].notna()].iterrows():
        if r["acc_p_mcnemar"] < 0.05:
            out.append(f"- {r['model']}: {r['precision']} changes accuracy by "
                       f"{change_words(r)}, with {int(r['flips_lost'])} answers lost and "
                       f"{int(r['flips_gained'])} gained.")
    for model, c in correlations(df, reference).items():
        if c["n"] >= 3 and not (math.isnan(c["kld"]) and math.isnan(c["ppl"])):
            flipped = ("" if math.isnan(c["flips_kld"]) and math.isnan(c["flips_ppl"]) else
                       f"; the flip rate ranks with KL divergence at {rho(c, 'flips_kld')} and "
                       f"with Δ perplexity at {rho(c, 'flips_ppl')}")
            out.append(f"- {model}: across {c['n']} precisions, the accuracy change ranks with "
                       f"KL divergence at Spearman {rho(c, 'kld')} and with Δ perplexity "
                       f"at {rho(c, 'ppl')} (a falling accuracy gives a negative ρ)"
                       f"{flipped}.")
    return out
