"""How decode scales with the batch: each quantized precision against its baseline at every
point (where it crosses over), decode steps that got cheaper with a larger batch, and where
decode turns compute-bound."""

from __future__ import annotations

import math

import pandas as pd

from quantbench import precisions, roofline
from quantbench.points import KEYS
from quantbench.report.findings import Finding, apart
from quantbench.report.point_table import CONTEXT, FASTER, SLOWER, UNCLEAR, ok_points
from quantbench.stats import known

CI = ("decode_tok_s_ci_low", "decode_tok_s_ci_high")


def against_baseline(points: pd.DataFrame) -> pd.DataFrame:
    """Each quantized precision's ok points against its baseline's at the same prompt, depth
    and batch: the speed-up and whether it is faster or slower with the 95 % intervals of
    decode tok/s apart (``findings.apart``, the intervals over processes that every verdict
    of the report uses), else a tie; ``intervals``: whether both points have one."""
    rows = []
    ok = ok_points(points)
    for model, g in ok.groupby("model"):
        by_key = g.set_index(["precision", *KEYS])
        names = set(g["precision"])
        for name in sorted(names):
            base = precisions.baseline_of(name, names)
            if base is None:
                continue
            for _, row in g[g["precision"] == name].iterrows():
                key = (base, *(row[k] for k in KEYS))
                if key not in by_key.index:
                    continue
                b = by_key.loc[key]
                b = b.iloc[0] if isinstance(b, pd.DataFrame) else b
                state = FASTER if apart(row, b) else SLOWER if apart(b, row) else UNCLEAR
                rows.append({"model": model, "precision": name, "baseline": base,
                             **{k: row[k] for k in KEYS}, "decode_tok_s": row["decode_tok_s"],
                             "baseline_tok_s": b["decode_tok_s"],
                             "speedup": row["decode_tok_s"] / b["decode_tok_s"], "state": state,
                             "intervals": all(known(x.get(k)) for x in (row, b) for k in CI)})
    columns = ["model", "precision", "baseline", *KEYS, "decode_tok_s", "baseline_tok_s",
               "speedup", "state", "intervals"]
    return pd.DataFrame(rows, columns=columns)


def by_state(states: list[str], batches: list[int], speedups: list[float]) -> list[dict]:
    """The batch sizes of one curve grouped by state (faster, slower, no clear difference; in
    the order of each state's smallest batch), each with its speed-up: every state a curve has
    is named, none hidden."""
    groups: dict[str, list[dict]] = {}
    for state, batch, speedup in zip(states, batches, speedups, strict=True):
        groups.setdefault(state, []).append({"batch": batch, "speedup": float(speedup)})
    return [{"state": state, "points": at} for state, at in groups.items()]


def crossover(states: list[str], batches: list[int],
              speedups: list[float] | None = None) -> tuple[str, dict]:
    """One curve's summary: ``crossover_everywhere``, ``crossover_never``, ``crossover_switch``
    (faster up to a batch then not, or the reverse) or ``crossover_mixed``, with the batches
    it rests on. Where the sizes that are not faster are slower at some and not told apart at
    others (``other``: mixed), or the states alternate (mixed), each size is named with its
    state and speed-up (``groups``), so that a loss at one size is never hidden behind "not
    clearly faster" or "faster at batch X only"."""
    speedups = speedups if speedups is not None else [float("nan")] * len(states)
    faster = [s == FASTER for s in states]
    if all(faster):
        return "crossover_everywhere", {}
    if not any(faster):
        return "crossover_never", {"n_slower": states.count(SLOWER),
                                   "n_unclear": states.count(UNCLEAR)}
    k = faster.index(not faster[0])  # where the first run of equal states ends
    if all(f == faster[0] for f in faster[:k]) and all(f != faster[0] for f in faster[k:]):
        part = slice(k, None) if faster[0] else slice(0, k)
        rest = states[part]
        other = SLOWER if set(rest) == {SLOWER} else UNCLEAR if set(rest) == {UNCLEAR} else "mixed"
        return "crossover_switch", {"up_to": batches[k - 1], "from_batch": batches[k],
                                    "direction": "down" if faster[0] else "up", "other": other,
                                    "groups": by_state(rest, batches[part], speedups[part])}
    return "crossover_mixed", {"groups": by_state(states, batches, speedups)}


def crossover_findings(points: pd.DataFrame) -> list[Finding]:
    """Per quantized precision, prompt and depth measured at two or more batch sizes with its
    baseline: where it decodes faster than the baseline."""
    cmp = against_baseline(points)
    out = []
    for (model, name, base, prompt, depth), g in cmp.groupby(
            ["model", "precision", "baseline", *CONTEXT], sort=True):
        g = g.sort_values("batch_size")
        if len(g) < 2:
            continue
        batches = [int(b) for b in g["batch_size"]]
        kind, extra = crossover(g["state"].tolist(), batches, g["speedup"].tolist())
        numbers = {"prompt_tokens": prompt, "context_depth": depth, "n": len(g),
                   "n_no_interval": int((~g["intervals"].astype(bool)).sum()),
                   "batch_min": batches[0], "batch_max": batches[-1],
                   "speedup_first": g["speedup"].iloc[0], "speedup_last": g["speedup"].iloc[-1],
                   **{k: v for k, v in extra.items() if isinstance(v, int | float)}}
        names = {"baseline": base,
                 **{k: v for k, v in extra.items() if not isinstance(v, int | float)}}
        out.append(Finding(kind, model, name, numbers=numbers, names=names))
    return out


# a step over more sequences that takes less than this fraction of a smaller batch's step (the
# 95 % intervals apart as well) is not the work's doing
STEP_DROP = 0.9


def step_ms(points: pd.DataFrame) -> pd.DataFrame:
    """Each ok point's decode step time (ms: batch / total decode tok/s) and its 95 % interval
    (from the interval of decode tok/s)."""
    ok = ok_points(points)
    b = ok["batch_size"].astype(float)
    return ok.assign(step_ms=1e3 * b / ok["decode_tok_s"],
                     step_ms_low=1e3 * b / ok["decode_tok_s_ci_high"],
                     step_ms_high=1e3 * b / ok["decode_tok_s_ci_low"])


def step_time_findings(points: pd.DataFrame) -> list[Finding]:
    """Per model and precision: where a decode step over more sequences took clearly less time
    than one over fewer at the same prompt and depth (below ``STEP_DROP`` of it, the intervals
    apart). The work of a step does not shrink as the batch grows, so such a pair says the step
    time was set by something else; what, only a trace of those points could say.
    The strongest pair is named, with how many of the precision's contexts have one."""
    df = step_ms(points).dropna(subset=["step_ms_low", "step_ms_high"])
    out = []
    for (model, name), g in df.groupby(["model", "precision"], sort=True):
        worst, hit, contexts = None, 0, 0
        for _, c in g.groupby(list(CONTEXT), sort=True):
            c = c.sort_values("batch_size")
            if c["batch_size"].nunique() < 2:
                continue
            contexts += 1
            rows = list(c.itertuples())
            pairs = [(big.step_ms / small.step_ms, small, big)
                     for i, small in enumerate(rows) for big in rows[i + 1:]
                     if big.batch_size > small.batch_size
                     and big.step_ms_high < small.step_ms_low
                     and big.step_ms < STEP_DROP * small.step_ms]
            if pairs:
                hit += 1
                best = min(pairs, key=lambda p: p[0])
                if worst is None or best[0] < worst[0]:
                    worst = best
        if worst is None:
            continue
        ratio, small, big = worst
        out.append(Finding("step_time_falls", model, name, numbers={
            "batch_small": small.batch_size, "batch_large": big.batch_size,
            "ms_small": small.step_ms, "ms_large": big.step_ms, "ratio": ratio,
            "prompt_tokens": small.prompt_tokens, "context_depth": small.context_depth,
            "n_contexts": hit, "contexts": contexts}))
    return out


def compute_bound_findings(points: pd.DataFrame, machine: dict | None) -> list[Finding]:
    """Per precision (``prepare``d points, with the model's shape): whether decode turns
    compute-bound in the measured range ("reached" only when a measured point's arithmetic
    intensity is at or above the machine's ridge point: the first such point), else the most
    intense point and the batch its weights and context would need (``ridge_batch``; never
    when the KV cache reads grow with the batch as fast as the FLOPs). Nothing without the
    machine's ceilings."""
    ridge = roofline.ridge_flop_per_byte(machine or {})
    if ridge is None or "decode_flop_per_byte" not in points:
        return []
    ok = ok_points(points).dropna(subset=["decode_flop_per_byte"])
    out = []
    for (model, name), g in ok.groupby(["model", "precision"]):
        reached = g[g["decode_flop_per_byte"] >= ridge]
        if not reached.empty:
            first = reached.sort_values(["batch_size", "context_depth", "prompt_tokens"]).iloc[0]
            out.append(Finding("compute_bound_reached", model, name, numbers={
                "ridge": ridge, "batch": first["batch_size"],
                "intensity": first["decode_flop_per_byte"],
                "prompt_tokens": first["prompt_tokens"], "context_depth": first["context_depth"],
                "ridge_batch": first["ridge_batch"]}))
            continue
        top = g.loc[g["decode_flop_per_byte"].idxmax()]
        out.append(Finding("compute_bound_not_reached", model, name, numbers={
            "ridge": ridge, "intensity": top["decode_flop_per_byte"], "batch": top["batch_size"],
            "batch_max": g["batch_size"].max(), "prompt_tokens": top["prompt_tokens"],
            "context_depth": top["context_depth"],
            "ridge_batch": None if math.isinf(top["ridge_batch"]) else top["ridge_batch"]},
            names={"never": bool(math.isinf(top["ridge_batch"]))}))
    return out
