"""Serving at the measured points: throughput within a per-token latency budget, how many
sequences fit in the device's memory, energy and cost per token, and the picks per serving
question."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from quantbench.points import KEYS
from quantbench.report import findings
from quantbench.report.findings import Budgets, Finding
from quantbench.report.point_table import (
    MEMORY_RESOLUTION_MIB,
    Settings,
    kv_tokens_per_seq,
    ok_points,
)
from quantbench.stats import known as _known


def within_latency(points: pd.DataFrame, budget_ms: float) -> pd.DataFrame:
    """The ok points whose p90 per-token latency is at most ``budget_ms``."""
    ok = ok_points(points)
    return ok[ok["token_ms_p90"] <= budget_ms]


def budget_table(points: pd.DataFrame, settings: Settings) -> list[dict]:
    """Per model and precision: the point of highest total decode throughput within the token
    latency budget, or (nothing qualifies) the point of lowest p90 token latency."""
    rows = []
    fits = within_latency(points, settings.token_latency_budget_ms)
    for (model, name), g in ok_points(points).groupby(["model", "precision"], sort=False):
        f = fits[(fits["model"] == model) & (fits["precision"] == name)]
        best = f.loc[f["decode_tok_s"].idxmax()] if not f.empty else None
        low = g.loc[g["token_ms_p90"].idxmin()] if g["token_ms_p90"].notna().any() else None
        pick = best if best is not None else low
        rows.append({"model": model, "precision": name, "within": best is not None,
                     **({k: pick[k] for k in (*KEYS, "decode_tok_s", "decode_tok_s_per_seq",
                                              "token_ms_p90")} if pick is not None else {})})
    return rows


def _point_numbers(row: pd.Series, **extra) -> dict:
    return {**{k: row[k] for k in KEYS}, "decode_tok_s": row["decode_tok_s"],
            "per_seq_tok_s": row.get("decode_tok_s_per_seq"),
            "token_ms_p90": row.get("token_ms_p90"), **extra}


def device_memory(machine: dict | None) -> tuple[float | None, str]:
    """The memory of the device the points were served from, MiB, and what it is: the GPU's
    total memory on a GPU, the machine's RAM (``host_memory_total_mib``) on a CPU; None when
    machine.json does not record it."""
    machine = machine or {}
    if machine.get("device") == "cuda" or _known(machine.get("gpu_memory_total_mib")):
        value, what = machine.get("gpu_memory_total_mib"), "GPU memory"
    else:
        value, what = machine.get("host_memory_total_mib"), "host memory"
    return (float(value) if _known(value) else None), what


@dataclass(frozen=True)
class Capacity:
    """A precision's memory as fixed + per_token x tokens held in the KV caches of the batch
    (least squares over its ok points), and what it implies for the device."""

    model: str
    precision: str
    n_points: int
    fixed_mib: float
    per_token_kib: float
    tokens_min: float
    tokens_max: float
    context_tokens: int
    device_mib: float | None
    max_sequences: int | None
    extrapolated: bool
    grows: bool = True  # memory grows measurably with the tokens held
    expected_kib: float | None = None  # the shape's KV bytes per token, when known


def fit_capacity(points: pd.DataFrame, settings: Settings, machine: dict | None = None,
                 shapes: dict | None = None) -> list[Capacity]:
    """One fit per model and precision with ok points at two or more KV sizes. The most
    sequences of ``capacity_context_tokens`` that fit in the device's memory is extrapolated
    when that many tokens (or that context) lies outside the measured range, and not computed
    when memory grows by less than ``MEMORY_RESOLUTION_MIB`` over the measured range."""
    device, _ = device_memory(machine)
    context = int(settings.capacity_context_tokens)
    out = []
    ok = ok_points(points).dropna(subset=["peak_mem_mib"])
    ok = ok.assign(kv_tokens_per_seq=kv_tokens_per_seq(ok))
    ok = ok.assign(kv_tokens=ok["batch_size"] * ok["kv_tokens_per_seq"]).dropna(
        subset=["kv_tokens"])
    for (model, name), g in ok.groupby(["model", "precision"]):
        if g["kv_tokens"].nunique() < 2:
            continue
        slope, fixed = np.polyfit(g["kv_tokens"].astype(float), g["peak_mem_mib"].astype(float),
                                  1)
        grows = slope * (g["kv_tokens"].max() - g["kv_tokens"].min()) >= MEMORY_RESOLUTION_MIB
        seqs = None
        if device is not None and grows:
            seqs = max(int((device - fixed) // (slope * context)), 0)
        tokens = (seqs or 0) * context
        extrapolated = (seqs is None or tokens > g["kv_tokens"].max()
                        or tokens < g["kv_tokens"].min()
                        or context > g["kv_tokens_per_seq"].max())
        shape = (shapes or {}).get(model)
        elem = g["kv_elem_bytes"].dropna() if "kv_elem_bytes" in g else pd.Series(dtype=float)
        expected = (shape.kv_bytes_per_token(float(elem.iloc[0])) / 1024
                    if shape is not None and not elem.empty else None)
        out.append(Capacity(model, name, len(g), float(fixed), float(slope) * 1024,
                            float(g["kv_tokens"].min()), float(g["kv_tokens"].max()), context,
                            device, seqs, bool(extrapolated), bool(grows), expected))
    return out


def capacity_findings(fits: list[Capacity], machine: dict | None) -> list[Finding]:
    _, what = device_memory(machine)
    out = []
    for c in fits:
        numbers = {"fixed_mib": c.fixed_mib, "per_token_kib": c.per_token_kib,
                   "expected_kib": c.expected_kib, "tokens_min": c.tokens_min,
                   "tokens_max": c.tokens_max, "context_tokens": c.context_tokens,
                   "device_mib": c.device_mib, "max_sequences": c.max_sequences,
                   "n_points": c.n_points}
        names = {"extrapolated": c.extrapolated, "memory": what}
        kind = ("capacity_no_slope" if not c.grows
                else "capacity_no_device" if c.device_mib is None else "capacity")
        out.append(Finding(kind, c.model, c.precision, numbers=numbers, names=names))
    return out


def costs(points: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Per point, the cost of a million decoded tokens: of the device's time
    (``gpu_hour_cost`` / tokens per hour) and of its decode energy (``decode_j_per_tok`` at
    ``energy_cost_per_kwh``); NaN where no price is configured or nothing was measured."""
    df = points.copy()
    nan = pd.Series(float("nan"), index=df.index)
    df["device_cost_per_mtok"] = (settings.gpu_hour_cost / (df["decode_tok_s"] * 3600) * 1e6
                                  if settings.gpu_hour_cost is not None else nan)
    energy = df.get("decode_j_per_tok", nan)
    df["energy_cost_per_mtok"] = (energy * 1e6 / 3.6e6 * settings.energy_cost_per_kwh
                                  if settings.energy_cost_per_kwh is not None else nan)
    both = df[["device_cost_per_mtok", "energy_cost_per_mtok"]]
    df["cost_per_mtok"] = both.sum(axis=1, min_count=1)
    return df


def cost_findings(points: pd.DataFrame, settings: Settings) -> list[Finding]:
    """The prices used (or that none was configured), then per model its energy findings
    (``energy_findings``) and, only when priced, the cheapest point."""
    priced = costs(ok_points(points), settings)
    out = [Finding("prices" if settings.priced else "unpriced", "", None,
                   numbers={"gpu_hour_cost": settings.gpu_hour_cost,
                            "energy_cost_per_kwh": settings.energy_cost_per_kwh})]
    for model, g in priced.groupby("model"):
        out += energy_findings(model, g)
        rated = g.dropna(subset=["cost_per_mtok"])
        if settings.priced and not rated.empty:
            low = rated.loc[rated["cost_per_mtok"].idxmin()]
            out.append(Finding("cheapest_point", model, low["precision"], numbers=_point_numbers(
                low, cost_per_mtok=low["cost_per_mtok"],
                device_cost_per_mtok=low["device_cost_per_mtok"],
                energy_cost_per_mtok=low["energy_cost_per_mtok"])))
    return out


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    return df[name] if name in df else pd.Series(None, index=df.index, dtype=object)


def energy_findings(model: str, g: pd.DataFrame) -> list[Finding]:
    """Over one model's ok points, where any ran on a GPU: the point of least energy per
    decoded token (the decode steps alone), the precisions with no such figure at any point
    by name (``no_energy``), and the points whose figure was left out for a power above the
    card's limit (``energy_over_limit``). Nothing where no point ran on a GPU."""
    if not (_column(g, "device") == "cuda").any():
        return []
    out = []
    energy = g[_column(g, "decode_j_per_tok").notna()]
    if not energy.empty:
        low = energy.loc[energy["decode_j_per_tok"].idxmin()]
        out.append(Finding("least_energy", model, low["precision"], numbers=_point_numbers(
            low, decode_j_per_tok=low["decode_j_per_tok"])))
    missing = no_energy(model, g, where=" at any point")
    out += [missing] if missing else []
    over = g[_column(g, "energy_note").notna()]
    if not over.empty:
        points = ", ".join(f"{r.precision} at batch {r.batch_size:.0f}, depth "
                           f"{r.context_depth:.0f}, prompt {r.prompt_tokens:.0f}"
                           for r in over.itertuples())
        out.append(Finding("energy_over_limit", model, None,
                           numbers={"n": len(over), "limit_w": over["power_limit_w"].max()},
                           names={"points": points}))
    return out


def no_energy(model: str, rows: pd.DataFrame, where: str = "") -> Finding | None:
    """The precisions of ``rows`` (ok rows, points or summary rows) that have no energy per
    decoded token in any row, named by why: none in the record, or every one left out for a
    power above the card's limit (``points.power_check``); None when every one has one."""
    has = rows.groupby("precision", sort=False)["decode_j_per_tok"].apply(
        lambda v: v.notna().any()) if "decode_j_per_tok" in rows else None
    names = [p for p in dict.fromkeys(rows["precision"]) if has is None or not has[p]]
    if not names:
        return None
    flagged = set(rows.loc[_column(rows, "energy_note").notna(), "precision"])
    over = [p for p in names if p in flagged]
    unmeasured = [p for p in names if p not in flagged]
    return Finding("no_energy", model, None, numbers={"n_unmeasured": len(unmeasured)},
                   names={"unmeasured": ", ".join(unmeasured), "over_limit": ", ".join(over),
                          "where": where})


def energy_basis(summary: pd.DataFrame) -> list[Finding]:
    """Per model with an energy figure: what every energy figure includes, the card's idle draw
    from the GPU traces (the median over them, with their range), and the power limit the
    figures are checked against."""
    out = []
    for model, g in summary.groupby("model"):
        if not (_column(g, "prefill_j_per_tok").notna().any()
                or _column(g, "decode_j_per_tok").notna().any()):
            continue
        idle = _column(g, "idle_w").dropna().astype(float)
        limit = _column(g, "power_limit_w").dropna()
        out.append(Finding("energy_basis", model, None, numbers={
            "idle_w": idle.median() if not idle.empty else None, "n": len(idle),
            "idle_min": idle.min() if not idle.empty else None,
            "idle_max": idle.max() if not idle.empty else None,
            "limit_w": limit.max() if not limit.empty else None}))
    return out


def _quality_pool(g: pd.DataFrame | None, reference: str, budgets: Budgets
                  ) -> tuple[set | None, bool]:
    """The precisions within the quality budget (``analysis``'s rule) and whether quality was
    measured; None (no condition) when it was not."""
    if g is None or g.empty or not findings.quality_known(g):
        return None, False
    if findings.no_reference_quality(g):
        return set(), True
    return set(findings.within_quality(g, reference, budgets)["precision"]), True


def headline(points: pd.DataFrame, config: dict | None) -> tuple[float, float]:
    """The (prompt tokens, context depth) of the headline point: ``latency.headline`` when the
    config sets it, else the first configured prompt length and depth 0, else the smallest
    measured."""
    lat = (config or {}).get("latency", {})
    head = lat.get("headline") or {}
    prompts = lat.get("prompt_tokens") or []
    prompt = head.get("prompt_tokens", prompts[0] if prompts else None)
    depth = head.get("context_depth", 0)
    if prompt not in set(points["prompt_tokens"]):
        prompt = points["prompt_tokens"].min()
    if depth not in set(points["context_depth"]):
        depth = points["context_depth"].min()
    return prompt, depth


def recommendation_findings(points: pd.DataFrame, summary: pd.DataFrame | None, *,
                            reference: str, budgets: Budgets, settings: Settings,
                            machine: dict | None = None, config: dict | None = None
                            ) -> list[Finding]:
    """Per model, over the precisions within the quality budget (every precision when quality
    was not measured, and the sentence says so): single user (batch 1 at the headline prompt
    and depth, the fastest per-sequence decode), serving under the token latency budget (the
    highest total throughput among points within it), maximum throughput within memory
    (``report.memory_budget_mib`` if set, else the device's memory, else the points that ran).
    One answer per question: a scenario nothing qualifies for is one ``ops_none`` finding
    saying why, with a precision only where it names the nearest point (serving: the lowest
    p90 per-token latency measured, which is not a pick)."""
    out = []
    budget = settings.token_latency_budget_ms
    limit, limit_from = (budgets.memory_budget_mib, "budget")
    if limit is None:
        limit, _ = device_memory(machine)
        limit_from = "device" if limit is not None else "ran"
    for model, g in ok_points(points).groupby("model"):
        s = summary[summary["model"] == model] if summary is not None else None
        pool, known = _quality_pool(s, reference, budgets)
        q = g if pool is None else g[g["precision"].isin(pool)]
        names = {"quality_known": known, "quality": findings.budget_words(reference, budgets)}
        no_quality = "quality" if q.empty else None

        one = q[q["batch_size"] == 1]
        if not one.empty:
            prompt, depth = headline(one, config)
            at = one[(one["prompt_tokens"] == prompt) & (one["context_depth"] == depth)]
            pick = at.loc[at["decode_tok_s_per_seq"].idxmax()]
            out.append(Finding("ops_single_user", model, pick["precision"],
                               numbers=_point_numbers(pick), names=names))
        else:
            out.append(_none(model, "single user", no_quality or "batch1", names, budget))
        serve = q[q["token_ms_p90"] <= budget]
        if not serve.empty:
            pick = serve.loc[serve["decode_tok_s"].idxmax()]
            out.append(Finding("ops_serving", model, pick["precision"],
                               numbers=_point_numbers(pick, budget_ms=budget), names=names))
        elif q["token_ms_p90"].notna().any():  # the nearest to the budget, named as such
            low = q.loc[q["token_ms_p90"].idxmin()]
            out.append(Finding("ops_none", model, low["precision"],
                               numbers=_point_numbers(low, budget_ms=budget),
                               names={**names, "scenario": "serving", "why": "latency"}))
        else:
            out.append(_none(model, "serving", no_quality or "latency", names, budget))
        fits = q if limit is None else q[q["peak_mem_mib"] <= limit]
        if not fits.empty:
            pick = fits.loc[fits["decode_tok_s"].idxmax()]
            out.append(Finding("ops_max_throughput", model, pick["precision"],
                               numbers=_point_numbers(pick, peak_mem_mib=pick["peak_mem_mib"],
                                                      limit_mib=limit),
                               names={**names, "limit_from": limit_from}))
        else:
            out.append(_none(model, "maximum throughput", no_quality or "memory", names, budget))
    return out


def _none(model: str, scenario: str, why: str, names: dict, budget_ms: float) -> Finding:
    return Finding("ops_none", model, None, numbers={"budget_ms": budget_ms},
                   names={**names, "scenario": scenario, "why": why})
