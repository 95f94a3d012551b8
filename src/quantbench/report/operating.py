"""Operating points: how each precision's answer changes with the batch size and context depth.

Reads the sweep's table (``results/points.csv``: one row per model, precision, prompt tokens,
batch size and context depth, with its status, decode throughput and 95 % interval, per-token
latency percentiles, memory and energy), the summary (quality per precision, KV cache element
size), ``results/machine.json`` (the roofline ceilings and the device's memory) and the config's
``report:`` section. What it derives, every figure from those tables:

- MBU and MFU of decode at each point: the bytes one decode step reads (weights once, plus each
  sequence's KV cache at the mean decode context) and its model FLOPs (2 x matmul parameters x
  batch), over the step time (batch / total decode tok/s), against the peak bandwidth and the
  best measured matmul rate (``quantbench.roofline``);
- the batch at which decode's arithmetic intensity crosses the machine's ridge point, where it
  turns compute-bound (``roofline.ridge_batch``), and whether a measured point reached it;
- the crossover of each quantized precision with its unquantized baseline of the same engine:
  at which batch sizes it decodes faster, the 95 % intervals apart;
- where a decode step over more sequences took clearly less time than one over fewer (the work
  of a step does not shrink with the batch: something else set the step time, such as a kernel
  chosen for that shape or per-step host overhead, and comparisons across batch sizes carry it);
- the highest total throughput among points whose p90 per-token latency is within
  ``report.token_latency_budget_ms``;
- the memory of a served point as fixed + per-token x tokens held in the KV caches (least
  squares), and so how many sequences of ``report.capacity_context_tokens`` fit in the device;
- energy per token and, only with configured prices, cost per million tokens;
- recommendations per deployment scenario, each only when some point qualifies.

Findings are ``findings.Finding`` (kind, model, precision, numbers) worded by
``quantbench.report.wording``. pandas and numpy only: no plotly, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from quantbench import precisions, roofline
from quantbench.points import COLUMNS as POINT_COLUMNS
from quantbench.points import KEYS
from quantbench.report import findings
from quantbench.report.findings import Budgets, Finding, apart
from quantbench.stats import known as _known

CONTEXT = ("prompt_tokens", "context_depth")  # a context: one curve against the batch size
FASTER, SLOWER, UNCLEAR = "faster", "slower", "no clear difference"
# memory that grows by less than this over the measured KV sizes has not measurably grown: the
# resolution of a memory reading (NVML reports whole MiB)
MEMORY_RESOLUTION_MIB = 1.0


@dataclass(frozen=True)
class Settings:
    """The operating-point keys of the config's ``report:`` section (defaults as in
    workflow/schemas/config.schema.yaml)."""

    token_latency_budget_ms: float = 50.0
    capacity_context_tokens: int = 4096
    gpu_hour_cost: float | None = None
    energy_cost_per_kwh: float | None = None

    @classmethod
    def from_config(cls, section: dict | None) -> Settings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (section or {}).items() if k in names})

    @property
    def priced(self) -> bool:
        return self.gpu_hour_cost is not None or self.energy_cost_per_kwh is not None


# -- baselines ----------------------------------------------------------------------------------


# -- the table ----------------------------------------------------------------------------------

def ok_points(points: pd.DataFrame) -> pd.DataFrame:
    return points[(points["status"] == "ok") & points["decode_tok_s"].notna()]


def swept(points: pd.DataFrame | None) -> bool:
    """Whether some precision was measured at more than one operating point."""
    if points is None or points.empty:
        return False
    return bool((points.groupby(["model", "precision"]).size() > 1).any())


def kv_tokens_per_seq(points: pd.DataFrame) -> pd.Series:
    """The longest KV cache of each sequence at each point: the column when the table has it,
    else from the mean decode context (mean = depth + prompt + half the new tokens)."""
    if "kv_tokens_per_seq" in points and points["kv_tokens_per_seq"].notna().any():
        return points["kv_tokens_per_seq"].astype(float)
    return (2 * points["decode_ctx_mean"] - points["prompt_tokens"]
            - points["context_depth"]).astype(float)


def prepare(points: pd.DataFrame, summary: pd.DataFrame | None = None,
            machine: dict | None = None, shapes: dict | None = None) -> pd.DataFrame:
    """The points with what is derived from them: ``kv_tokens_per_seq``, ``kv_tokens`` (all the
    batch's sequences), ``kv_elem_bytes`` (the summary's, when the table has none), and, where
    the model's shape is known, decode's bytes per step, GB/s, FLOP/byte, TFLOP/s, ``mbu_pct``,
    ``decode_mfu_pct`` and ``ridge_batch`` (the batch at which this point's weights and context
    reach the machine's ridge point; inf when no batch does)."""
    machine, shapes = machine or {}, shapes or {}
    df = points.reindex(columns=[*points.columns,
                                 *(c for c in POINT_COLUMNS if c not in points)])
    for key in KEYS:
        df[key] = pd.to_numeric(df[key], errors="coerce")
    df["kv_tokens_per_seq"] = kv_tokens_per_seq(df)
    df["kv_tokens"] = df["batch_size"] * df["kv_tokens_per_seq"]
    if ("kv_elem_bytes" not in df or df["kv_elem_bytes"].isna().all()) and summary is not None \
            and "kv_elem_bytes" in summary:
        elem = summary.set_index(["model", "precision"])["kv_elem_bytes"]
        df["kv_elem_bytes"] = [elem.get((m, p), float("nan"))
                               for m, p in zip(df["model"], df["precision"], strict=True)]
    derived = ("decode_step_mib", "decode_gb_s", "decode_flop_per_byte", "mbu_pct",
               "decode_tflops", "decode_mfu_pct", "ridge_batch")
    for column in derived:
        df[column] = float("nan")
    peak, ridge = roofline.peak_tflops(machine), roofline.ridge_flop_per_byte(machine)
    for i, row in df.iterrows():
        shape = shapes.get(row["model"])
        if shape is None or row["status"] != "ok":
            continue
        out = roofline.derive({"decode_tok_s": row["decode_tok_s"], "size_mib": row["weights_mib"],
                               "decode_ctx_mean": row["decode_ctx_mean"],
                               "kv_elem_bytes": row.get("kv_elem_bytes"),
                               "batch_size": row["batch_size"]}, shape, machine)
        if "decode_gb_s" not in out:
            continue
        batch = row["batch_size"]
        step_s = batch / row["decode_tok_s"]
        df.loc[i, "decode_step_mib"] = out["decode_bytes_per_tok_mib"] * batch
        df.loc[i, "decode_gb_s"] = out["decode_gb_s"]
        df.loc[i, "decode_flop_per_byte"] = out["decode_flop_per_byte"]
        df.loc[i, "mbu_pct"] = out.get("mbu_pct", float("nan"))
        tflops = roofline.decode_step_flops(shape, batch) / step_s / 1e12
        df.loc[i, "decode_tflops"] = tflops
        if _known(peak):
            df.loc[i, "decode_mfu_pct"] = 100 * tflops / peak
        if ridge is not None:
            at = roofline.ridge_batch(shape, row["weights_mib"], row["decode_ctx_mean"],
                                      row["kv_elem_bytes"], ridge)
            df.loc[i, "ridge_batch"] = float("inf") if at is None else at
    return df


# -- crossover with the baseline ----------------------------------------------------------------

def against_baseline(points: pd.DataFrame) -> pd.DataFrame:
    """Each quantized precision's ok points against its baseline's at the same prompt, depth
    and batch: the speed-up and whether it is faster or slower with the 95 % intervals apart
    (else no clear difference)."""
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
                             "speedup": row["decode_tok_s"] / b["decode_tok_s"], "state": state})
    columns = ["model", "precision", "baseline", *KEYS, "decode_tok_s", "baseline_tok_s",
               "speedup", "state"]
    return pd.DataFrame(rows, columns=columns)


def crossover(states: list[str], batches: list[int]) -> tuple[str, dict]:
    """One curve's summary: ``crossover_everywhere``, ``crossover_never``, ``crossover_switch``
    (faster up to a batch then not, or the reverse) or ``crossover_mixed``, with the batches
    it rests on."""
    faster = [s == FASTER for s in states]
    if all(faster):
        return "crossover_everywhere", {}
    if not any(faster):
        return "crossover_never", {"n_slower": states.count(SLOWER),
                                   "n_unclear": states.count(UNCLEAR)}
    k = faster.index(not faster[0])  # where the first run of equal states ends
    if all(f == faster[0] for f in faster[:k]) and all(f != faster[0] for f in faster[k:]):
        rest = states[k:] if faster[0] else states[:k]
        return "crossover_switch", {"up_to": batches[k - 1], "from_batch": batches[k],
                                    "direction": "down" if faster[0] else "up",
                                    "other": SLOWER if set(rest) == {SLOWER} else UNCLEAR}
    return "crossover_mixed", {"faster_at": ", ".join(
        str(b) for b, f in zip(batches, faster, strict=True) if f)}


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
        kind, extra = crossover(g["state"].tolist(), batches)
        numbers = {"prompt_tokens": prompt, "context_depth": depth, "n": len(g),
                   "batch_min": batches[0], "batch_max": batches[-1],
                   "speedup_first": g["speedup"].iloc[0], "speedup_last": g["speedup"].iloc[-1],
                   **{k: v for k, v in extra.items() if not isinstance(v, str)}}
        names = {"baseline": base, **{k: v for k, v in extra.items() if isinstance(v, str)}}
        out.append(Finding(kind, model, name, numbers=numbers, names=names))
    return out


# -- decode step time against the batch ---------------------------------------------------------

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
    time was set by something else (a kernel chosen for that shape, or host-side overhead that
    changed between the points).
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


# -- where decode turns compute-bound -----------------------------------------------------------

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


# -- throughput within a per-token latency budget -----------------------------------------------

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


def budget_findings(points: pd.DataFrame, settings: Settings) -> list[Finding]:
    """Per model: the highest total throughput within the budget, or that no point is within
    it (with the lowest p90 token latency measured)."""
    budget = settings.token_latency_budget_ms
    out = []
    fits = within_latency(points, budget)
    for model, g in ok_points(points).groupby("model"):
        f = fits[fits["model"] == model]
        if not f.empty:
            best = f.loc[f["decode_tok_s"].idxmax()]
            out.append(Finding("latency_budget_best", model, best["precision"],
                               numbers=_point_numbers(best, budget_ms=budget)))
        elif g["token_ms_p90"].notna().any():
            low = g.loc[g["token_ms_p90"].idxmin()]
            out.append(Finding("latency_budget_none", model, low["precision"],
                               numbers=_point_numbers(low, budget_ms=budget)))
    return out


def _point_numbers(row: pd.Series, **extra) -> dict:
    return {**{k: row[k] for k in KEYS}, "decode_tok_s": row["decode_tok_s"],
            "per_seq_tok_s": row.get("decode_tok_s_per_seq"),
            "token_ms_p90": row.get("token_ms_p90"), **extra}


# -- capacity -----------------------------------------------------------------------------------

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


# -- energy and cost ----------------------------------------------------------------------------

def costs(points: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Per point, the cost of a million decoded tokens: of the device's time
    (``gpu_hour_cost`` / tokens per hour) and of its energy (``energy_j_per_tok`` at
    ``energy_cost_per_kwh``); NaN where no price is configured or nothing was measured."""
    df = points.copy()
    nan = pd.Series(float("nan"), index=df.index)
    df["device_cost_per_mtok"] = (settings.gpu_hour_cost / (df["decode_tok_s"] * 3600) * 1e6
                                  if settings.gpu_hour_cost is not None else nan)
    energy = df.get("energy_j_per_tok", nan)
    df["energy_cost_per_mtok"] = (energy * 1e6 / 3.6e6 * settings.energy_cost_per_kwh
                                  if settings.energy_cost_per_kwh is not None else nan)
    both = df[["device_cost_per_mtok", "energy_cost_per_mtok"]]
    df["cost_per_mtok"] = both.sum(axis=1, min_count=1)
    return df


def cost_findings(points: pd.DataFrame, settings: Settings) -> list[Finding]:
    """The prices used (or that none was configured), then per model the point of least energy
    per token (where energy was measured) and, only when priced, the cheapest point."""
    priced = costs(ok_points(points), settings)
    out = [Finding("prices" if settings.priced else "unpriced", "", None,
                   numbers={"gpu_hour_cost": settings.gpu_hour_cost,
                            "energy_cost_per_kwh": settings.energy_cost_per_kwh})]
    for model, g in priced.groupby("model"):
        energy = g.dropna(subset=["energy_j_per_tok"]) if "energy_j_per_tok" in g else g.iloc[:0]
        if not energy.empty:
            low = energy.loc[energy["energy_j_per_tok"].idxmin()]
            out.append(Finding("least_energy", model, low["precision"], numbers=_point_numbers(
                low, energy_j_per_tok=low["energy_j_per_tok"])))
        rated = g.dropna(subset=["cost_per_mtok"])
        if settings.priced and not rated.empty:
            low = rated.loc[rated["cost_per_mtok"].idxmin()]
            out.append(Finding("cheapest_point", model, low["precision"], numbers=_point_numbers(
                low, cost_per_mtok=low["cost_per_mtok"],
                device_cost_per_mtok=low["device_cost_per_mtok"],
                energy_cost_per_mtok=low["energy_cost_per_mtok"])))
    return out


# -- recommendations ----------------------------------------------------------------------------

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
    A scenario nothing qualifies for is one ``ops_none`` finding saying why."""
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


# -- references ---------------------------------------------------------------------------------

ROOFLINE_REF = ("S. Williams, A. Waterman, D. Patterson, \"Roofline: an insightful visual "
                "performance model for multicore architectures\", Communications of the ACM "
                "52(4), 2009, doi:10.1145/1498765.1498785 — the ceilings of the roofline figures "
                "and the ridge point.")
FORMAT_REFS = {
    "llm.int8": ("T. Dettmers, M. Lewis, Y. Belkada, L. Zettlemoyer, \"LLM.int8(): 8-bit "
                 "Matrix Multiplication for Transformers at Scale\", NeurIPS 2022, "
                 "arXiv:2208.07339 — bitsandbytes int8 with outlier decomposition"),
    "qlora": ("T. Dettmers, A. Pagnoni, A. Holtzman, L. Zettlemoyer, \"QLoRA: Efficient "
              "Finetuning of Quantized LLMs\", NeurIPS 2023, arXiv:2305.14314 — the NF4 data "
              "type and double quantization (bitsandbytes 4-bit)"),
    "k-quants": ("ggml-org/llama.cpp pull request #1684, \"k-quants\" "
                 "(https://github.com/ggml-org/llama.cpp/pull/1684) — the K-quant formats "
                 "(Q2_K … Q6_K and their _S/_M/_L mixes)"),
    "gguf": ("The GGUF file format specification, ggml documentation "
             "(https://github.com/ggml-org/ggml/blob/master/docs/gguf.md) — the file that "
             "holds every llama.cpp precision"),
}


def format_refs(names) -> list[str]:
    """What to cite for the formats of the precisions ``names`` (in the order above)."""
    keys = set()
    for name in names:
        if name not in precisions.table():
            continue
        p = precisions.get(name)
        keys |= p.engine.format_refs(p.settings)
    return [FORMAT_REFS[k] for k in FORMAT_REFS if k in keys]


def references(names) -> list[str]:
    return [ROOFLINE_REF, *format_refs(names)]


# -- the report's section -----------------------------------------------------------------------

def in_table_order(df: pd.DataFrame) -> pd.DataFrame:
    rank = {name: i for i, name in enumerate(precisions.table())}
    return (df.assign(_rank=df["precision"].map(rank).fillna(len(rank)))
            .sort_values(["model", "_rank", "precision", *KEYS], kind="stable")
            .drop(columns="_rank"))


def _say(found: list[Finding]) -> list[str]:
    return [f.text for f in found]


def nothing_to_sweep(points: pd.DataFrame | None) -> str | None:
    """The section's one line when there is no sweep to analyse, else None."""
    if points is None:
        return ("No operating-point sweep: results/points.csv is absent, so nothing is said "
                "about batch sizes or context depths.")
    if not swept(points):
        return ("One operating point per precision: nothing to sweep (set more than one value "
                "in latency.batch_sizes or latency.context_depths to compare operating points).")
    return None


def section(points: pd.DataFrame | None, summary: pd.DataFrame | None, *, reference: str,
            config: dict, machine: dict | None = None, shapes: dict | None = None) -> dict:
    """What the report's "Operating points" section shows: a line when there is nothing to
    sweep, else the findings, the tables and every measured point (one table per model)."""
    report = config.get("report") or {}
    settings, budgets = Settings.from_config(report), Budgets.from_config(report)
    line = nothing_to_sweep(points)
    if line is not None:
        return {"swept": False, "line": line, "settings": settings}
    df = costs(prepare(points, summary, machine, shapes), settings)
    fits = fit_capacity(df, settings, machine, shapes)
    device, what = device_memory(machine)
    tables = {model: in_table_order(g).to_dict("records") for model, g in df.groupby("model")}
    return {
        "swept": True, "line": None, "settings": settings,
        "n_points": len(df), "n_ok": int((df["status"] == "ok").sum()),
        "batch_sizes": sorted(int(b) for b in df["batch_size"].dropna().unique()),
        "depths": sorted(int(d) for d in df["context_depth"].dropna().unique()),
        "prompts": sorted(int(p) for p in df["prompt_tokens"].dropna().unique()),
        "recommendations": _say(recommendation_findings(
            df, summary, reference=reference, budgets=budgets, settings=settings,
            machine=machine, config=config)),
        "crossovers": _say(crossover_findings(df)),
        "step_times": _say(step_time_findings(df)),
        "compute": _say(compute_bound_findings(df, machine)),
        "budget": _say(budget_findings(df, settings)),
        "budget_rows": budget_table(in_table_order(df), settings),
        "capacity": _say(capacity_findings(fits, machine)),
        "capacity_rows": fits,
        "device_mib": device, "device_memory": what,
        "costs": _say(cost_findings(df, settings)),
        "tables": tables,
    }
