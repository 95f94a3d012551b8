"""Aggregate records into one wide summary (a row per model and precision) and one long table
(a row per metric), and derive the comparisons with the reference precision."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from quantbench import precisions, roofline, runs
from quantbench.artifacts import gguf
from quantbench.kernel_summary import KernelSummary, PrefillSummary
from quantbench.metrics import GpuMetrics, QualityMetrics
from quantbench.points import COLUMNS as POINT_COLUMNS
from quantbench.points import KEYS as POINT_KEYS
from quantbench.points import LatencyPoint, phase_power_w, power_check
from quantbench.records import Status, atomic_write_text, write_atomic
from quantbench.report import accuracy
from quantbench.stats import Z95

# peak_mem_mib is what serving holds (after loading); these say what loading needed and what the
# serving figure is made of (the engine's parts and the rest), see scenarios/latency.py
MEMORY_COLUMNS = ("load_peak_mib", "weights_mib", "kv_cache_mib", "compute_mib", "output_mib",
                  "runtime_mib")


def summary_columns() -> list[str]:
    """The summary table's columns: the typed figures (the headline operating point's, the
    quality record's, the GPU trace's; a field added to a type is a column here), each type's
    sections in their place among the columns no type owns (the identity of the row, what the
    latency record says beside its point, what is derived against the reference)."""
    point, quality, gpu = LatencyPoint, QualityMetrics, GpuMetrics
    return [
        "model", "precision", "backend", "status", "size_mib", "disk_mib", "bits_per_weight",
        "load_s", "compile_s",
        *point.summary_columns(),  # the headline point's speed and memory
        *quality.summary_columns("perplexity"),
        # against the reference: the change in perplexity (with its paired interval), speed and
        # memory
        "ppl_delta_pct", *quality.summary_columns("change"), "speedup_vs_ref", "memory_vs_ref",
        *quality.summary_columns(),  # divergence from the reference, agreement
        # task accuracy pooled over the tasks, its paired change and flips (report.accuracy)
        *accuracy.SUMMARY_COLUMNS,
        "kld_floor", "kld_floor_from",
        "decode_gb_s", "decode_flop_per_byte", "mbu_pct", "decode_limit_tok_s", "limit_pct",
        "prefill_tflops", "mfu_pct",
        # energy: the card's idle draw (the GPU trace's), its power limit, and why the headline
        # point's energy per token is not given where its power is above that limit
        *gpu.summary_columns(), "power_limit_w", "energy_note",
        "prompt_tokens", "batch_size", "context_depth", *point.summary_columns("point"),
        "kv_elem_bytes",
        # a quantized KV cache: its measured bytes per token, and quality against the same
        # weights with an f16 KV cache (kv_twin)
        "kv_bytes_per_token", "kv_twin", *quality.summary_columns("kv"),
        *MEMORY_COLUMNS,
        "pareto_quality_memory", "pareto_quality_speed", "weight_types", "named_type_pct",
        "row_block", "misaligned_rows_pct",
        # a torchao format: the model's linear layers it quantised (the others stay unquantised)
        "quantised_linears", "linears", "other_cpu_share", "steal_share", "loadavg",
        "quality_status", "gpu_status",
        # graphs the headline batch's compile found in torch's Inductor cache (an earlier compile
        # on the machine): its compile_s is then not a first compile's
        "compile_cache_hits",
        # a compiled precision whose compiled step was refused here: its generations decoded
        # eagerly, and why
        "generations_eager",
        "reason", "device", "gpu_name",
        # where and when the latency record was measured: the invocation of the workflow that
        # made it (quantbench.runs) and its code; records brought together from several runs
        # say so
        "run_id", "git_commit", "git_dirty", "source_sha256", "measured_utc",
    ]


SUMMARY_COLUMNS = summary_columns()
TEXT_COLUMNS = {"model", "precision", "backend", "status", "quality_status",
                "generations_eager",
                "kld_floor_from",
                "gpu_status", "reason", "device", "gpu_name", "pareto_quality_memory",
                "pareto_quality_speed", "weight_types", "run_id", "kv_twin", "git_commit",
                "git_dirty", "source_sha256", "measured_utc", "energy_note",
                *accuracy.TEXT_COLUMNS}
# The KL divergence noise floor: with an fp32 reference, what the half-precision run of the same
# engine changes (a real floor when it ran); else the reference against its own stored top-k.
HALF_PRECISION_OF = {"fp32": "bf16", "gguf-f32": "gguf-bf16"}
SELF_FLOOR = "reference_self"
# a unit guessed from a metric's name, for the figures no type declares
UNITS = (("_tok_s", "tok/s"), ("_mib", "MiB"), ("_ms", "ms"), ("_pct", "%"), ("_s", "s"),
         ("_w", "W"), ("_j_per_tok", "J/tok"), ("_j", "J"), ("_mhz", "MHz"))


def unit_of(metric: str) -> str:
    for suffix, unit in UNITS:
        if metric.endswith(suffix):
            return unit
    return ""


def typed_units() -> dict[str, dict[str, str]]:
    """By record kind, the units its types declare under its metrics' names (a latency
    record's headline figures are its point's, under their summary names)."""
    return {"latency": LatencyPoint.summary_units(), "quality": QualityMetrics.units(),
            "gpu": GpuMetrics.units(),
            "kernels": {**KernelSummary.units(), **PrefillSummary.units()}}


# summary columns that come from the headline operating point
HEADLINE_COLUMNS = [c for c in LatencyPoint.summary_units()
                    if not c.endswith(("_ci_low", "_ci_high"))]


def latency_points(record: dict) -> list[LatencyPoint]:
    """A latency record's points, each phase's energy checked against the card's power limit
    (``points.power_check``: one above it is a measurement error, left out with a note)."""
    limit = record["provenance"].get("device", {}).get("power_limit_w")
    return [power_check(LatencyPoint.from_dict(p), limit)
            for p in record.get("details", {}).get("points") or []]


def headline_point(record: dict) -> LatencyPoint | None:
    """The latency record's headline point (the one its metrics report), if it has points."""
    m = record["metrics"]
    for point in latency_points(record):
        if all(getattr(point, k) == m.get(k, 0 if k == "context_depth" else None)
               for k in POINT_KEYS):
            return point
    return None


def load_records(paths) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in paths]


LONG_COLUMNS = ["model", "precision", "backend", "scenario", "metric", "value", "unit", "ci_low",
                "ci_high", "status", "run_id", "git_commit", "git_dirty", "provenance",
                *POINT_KEYS]


def origins(records: list[dict]) -> list[dict]:
    """Each record's run id (``quantbench.runs.run_ids``), commit and dirty flag: what every row
    made from it carries."""
    return [{"run_id": rid, "git_commit": r["provenance"].get("git_commit"),
             "git_dirty": r["provenance"].get("git_dirty")}
            for r, rid in zip(records, runs.run_ids(records), strict=True)]


def _interval(metrics: dict, name: str) -> tuple[float, float]:
    """The 95 % interval of one metric: measured (``<name>_ci95``) or normal from a standard
    error (``<name>_stderr``; ``kld_mean`` has ``kld_stderr``); NaN when the record has none."""
    ci = metrics.get(f"{name}_ci95")
    if isinstance(ci, list | tuple) and len(ci) == 2 and None not in ci:
        return float(ci[0]), float(ci[1])
    for key in (f"{name}_stderr", f"{name.removesuffix('_mean')}_stderr"):
        se = metrics.get(key)
        if key != name and isinstance(se, int | float) and se == se:
            return float(metrics[name]) - Z95 * se, float(metrics[name]) + Z95 * se
    return float("nan"), float("nan")


def long_table(records: list[dict]) -> pd.DataFrame:
    """One row per measured number (tidy): model, precision, backend, scenario, metric, value,
    unit, its 95 % interval where the record has one, the record's status, its run id, commit
    and dirty flag, and its provenance (JSON)."""
    units = typed_units()
    rows = []
    for r, run in zip(records, origins(records), strict=True):
        prov = json.dumps(r["provenance"], sort_keys=True, separators=(",", ":"))
        declared = units.get(r["kind"], {})
        metrics = record_metrics(r)
        for metric, value in metrics.items():
            if isinstance(value, list | dict | str) or value is None:
                continue
            low, high = _interval(metrics, metric)
            rows.append({
                "model": r["model"], "precision": r["precision"], "backend": r["backend"],
                "scenario": r["kind"], "metric": metric, "value": float(value),
                "unit": declared.get(metric, unit_of(metric)), "ci_low": low, "ci_high": high,
                "status": r["status"], **run, "provenance": prov,
            })
        for point in latency_points(r):
            rows += _point_rows(r, point, run, prov)
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def record_metrics(record: dict) -> dict:
    """A record's metrics as the tables read them: a GPU trace's under today's names
    (``GpuMetrics.upgraded``), a latency record's headline figures its checked headline
    point's (``latency_points``)."""
    m = record["metrics"]
    if record["kind"] == "gpu":
        return GpuMetrics.upgraded(m)
    head = headline_point(record) if record["kind"] == "latency" else None
    return m if head is None else {**m, **{k: v for k, v in head.summary_metrics().items()
                                           if k in m}}


def _point_rows(record: dict, point: LatencyPoint, run: dict, prov: str) -> list[dict]:
    """A measured operating point as long-table rows, keyed by the point (scenario
    ``latency_point``), each figure with the unit its type declares; a point that failed is one
    row with its status and no value."""
    base = {"model": record["model"], "precision": record["precision"],
            "backend": record["backend"], "scenario": "latency_point", "status": point.status,
            **run, "provenance": prov,
            **{k: getattr(point, k) for k in POINT_KEYS}}
    interval = {"decode_tok_s": (point.decode_tok_s_ci_low, point.decode_tok_s_ci_high)}
    rows = []
    for name, unit in LatencyPoint.units().items():
        value = getattr(point, name)
        if value is None or name.endswith(("_ci_low", "_ci_high")):
            continue
        low, high = (float("nan") if v is None else v for v in interval.get(name, (None, None)))
        rows.append({**base, "metric": name, "value": float(value), "unit": unit,
                     "ci_low": low, "ci_high": high})
    if not rows:
        rows.append({**base, "metric": "status", "value": float("nan"), "unit": "",
                     "ci_low": float("nan"), "ci_high": float("nan")})
    return rows


def points_table(records: list[dict], limits: dict | None = None) -> pd.DataFrame:
    """One row per (model, precision, operating point) of the latency records, with each
    point's share of its model's decode limit at its batch size (``limits``: by model) and the
    run id, commit and dirty flag of its record."""
    rows = []
    for r, run in zip(records, origins(records), strict=True):
        if r["kind"] != "latency":
            continue
        dev = r["provenance"].get("device", {})
        common = {"model": r["model"], "precision": r["precision"], "backend": r["backend"],
                  "weights_mib": r["metrics"].get("weights_mib") or r["metrics"].get("size_mib"),
                  "device": dev.get("kind"), "gpu_name": dev.get("gpu_name"),
                  "power_limit_w": dev.get("power_limit_w"), **run}
        points = latency_points(r)
        if not points:  # a job that failed before its first point
            rows.append({**common, "status": r["status"], "reason": r["reason"]})
        for p in points:
            rows.append({**common, **p.to_dict(), **phase_power_w(p), **roofline.limit_figures(
                p.decode_tok_s, p.batch_size, (limits or {}).get(r["model"]))})
    df = pd.DataFrame(rows).reindex(columns=list(POINT_COLUMNS))
    for key in POINT_KEYS:
        df[key] = df[key].astype("Int64")
    return df.sort_values(["model", "precision", "batch_size", "context_depth",
                           "prompt_tokens"], kind="stable").reset_index(drop=True)


# the kernel traces: one row per (model, precision) traced, from the typed summary
KERNEL_COLUMNS = ["model", "precision", "backend", "status", "reason", "device", "batch_size",
                  "context_depth", "prompt_tokens", "steps", "tokens",
                  *KernelSummary.metric_names(), *PrefillSummary.metric_names(), "top_kernel",
                  "top_kernel_class", "top_kernel_pct",
                  "graph_break_reason", "recompile_reason", "run_id"]


def kernels_table(records: list[dict]) -> pd.DataFrame:
    """One row per kernel trace record: its summary's figures, its top kernel and the first
    graph-break and recompile reasons of a compiled decode, and its record's run id."""
    rows = []
    for r, run in zip(records, origins(records), strict=True):
        if r["kind"] != "kernels":
            continue
        details, top = r.get("details", {}), (r.get("details", {}).get("top") or [{}])[0]
        reasons = details.get("compile") or {}
        rows.append({
            "model": r["model"], "precision": r["precision"], "backend": r["backend"],
            "status": r["status"], "reason": r["reason"],
            "device": r["provenance"].get("device", {}).get("kind"),
            # the traced point: the record's details (also for a failed trace), else its metrics
            **{k: (r.get("details", {}).get("point") or r["metrics"]).get(k)
               for k in ("batch_size", "context_depth", "prompt_tokens")},
            **{k: r["metrics"].get(k) for k in ("steps", "tokens",
                                                 *KernelSummary.metric_names(),
                                                 *PrefillSummary.metric_names())},
            "top_kernel": top.get("name"), "top_kernel_class": top.get("class"),
            "top_kernel_pct": None if top.get("share") is None else 100 * top["share"],
            "graph_break_reason": next(iter(reasons.get("graph_breaks") or []), None),
            "recompile_reason": next(iter(reasons.get("recompiles") or []), None),
            "run_id": run["run_id"],
        })
    df = pd.DataFrame(rows).reindex(columns=KERNEL_COLUMNS)
    return df.sort_values(["model", "precision"], kind="stable").reset_index(drop=True)


def summary_table(records: list[dict], reference: str, *, shapes: dict | None = None,
                  machine: dict | None = None, limits: dict | None = None) -> pd.DataFrame:
    rows: dict[tuple, dict] = {}
    self_floor: dict[str, float] = {}
    for r, run in zip(records, origins(records), strict=True):
        key = (r["model"], r["precision"])
        row = rows.setdefault(key, {"model": r["model"], "precision": r["precision"],
                                    "backend": r["backend"]})
        m = r["metrics"]
        if r["kind"] == "latency":
            # the headline point's figures, under the names its type gives the summary (a
            # record made before points were typed has them in its metrics)
            head = headline_point(r)
            figures = head.summary_metrics() if head else m
            row.update({k: figures.get(k) for k in HEADLINE_COLUMNS})
            row.update({k: m.get(k) for k in (
                "size_mib", "disk_mib", "load_s", "prompt_tokens", "batch_size",
                "kv_elem_bytes", "other_cpu_share", "steal_share", "loadavg")})
            row.update({k: m.get(k) for k in MEMORY_COLUMNS})
            # the headline point's depth (a record made before depths were swept has none: 0)
            row["context_depth"] = head.context_depth if head else m.get("context_depth", 0)
            ci = m.get("decode_tok_s_ci95") or [None, None]
            row["decode_tok_s_ci_low"], row["decode_tok_s_ci_high"] = ci
            row["status"], row["reason"] = r["status"], r["reason"]
            dev = r["provenance"].get("device", {})
            row["device"], row["gpu_name"] = dev.get("kind"), dev.get("gpu_name")
            row.update(run)  # the row's run, commit and dirty flag: its latency record's
            row["power_limit_w"] = dev.get("power_limit_w")
            row["energy_note"] = head.energy_note if head else None
            row["source_sha256"] = r["provenance"].get("source_sha256")
            row["measured_utc"] = r["provenance"].get("created_utc")
            types = r["details"].get("backend", {}).get("tensor_types_pct")
            if types:
                row["weight_types"] = ", ".join(f"{k} {v:.0f}%" for k, v in types.items()
                                                if v >= 0.5)
                base = gguf.base_type(precisions.get(r["precision"]).settings["gguf_type"])
                row["named_type_pct"] = types.get(base, 0.0)
                for key in ("row_block", "misaligned_rows_pct"):
                    row[key] = r["details"]["backend"].get(key)
            row["compile_s"] = compile_time(r["details"].get("backend", {}),
                                            head.batch_size if head else m.get("batch_size"))
            backend = r["details"].get("backend", {})
            counted = re.fullmatch(r"(\d+) of (\d+)", str(
                (backend.get("quantization") or {}).get("quantised_linears", "")))
            if counted:
                row["quantised_linears"], row["linears"] = map(int, counted.groups())
            row["compile_cache_hits"] = compile_cache_hits(
                backend, head.batch_size if head else m.get("batch_size"))
            row["kv_bytes_per_token"] = r["details"].get("backend", {}).get("kv_bytes_per_token")
            n_params = r["details"].get("backend", {}).get("n_params")
            if n_params and m.get("size_mib"):
                row["bits_per_weight"] = m["size_mib"] * 2**20 * 8 / n_params
        elif r["kind"] == "quality":
            # the figures the quality type gives the summary (the kv_ ones where the record
            # has an f16-KV twin)
            row.update(QualityMetrics.from_dict(m).summary_metrics(),
                       quality_status=r["status"],
                       generations_eager=r["details"].get("generations_eager"),
                       kv_twin=r["details"].get("kv_twin"))
            if m.get("kld_floor_self") is not None:
                self_floor[r["model"]] = m["kld_floor_self"]
        elif r["kind"] == "gpu":
            row.update(GpuMetrics.from_dict(GpuMetrics.upgraded(m)).summary_metrics(),
                       gpu_status=r["status"])
    df = pd.DataFrame(list(rows.values())).reindex(columns=SUMMARY_COLUMNS)
    numeric = [c for c in SUMMARY_COLUMNS if c not in TEXT_COLUMNS]
    df[numeric] = df[numeric].apply(pd.to_numeric, errors="coerce").astype(float)
    df["kld_floor_from"] = df["kld_floor_from"].astype(object)
    for _, group in df.groupby("model"):
        ref = group[group["precision"] == reference]
        if ref.empty:
            continue
        ref = ref.iloc[0]
        idx = group.index
        df.loc[idx, "ppl_delta_pct"] = (group["ppl"] / ref["ppl"] - 1) * 100
        df.loc[idx, "speedup_vs_ref"] = group["decode_tok_s"] / ref["decode_tok_s"]
        df.loc[idx, "memory_vs_ref"] = group["peak_mem_mib"] / ref["peak_mem_mib"]
        floor, source = kld_floor(group, reference, self_floor.get(ref["model"]))
        df.loc[idx, "kld_floor"], df.loc[idx, "kld_floor_from"] = floor, source
    df["pareto_quality_memory"] = df["pareto_quality_speed"] = False
    for _, group in df.groupby("model"):
        ok = group[group["status"] == Status.OK]
        df.loc[ok.index, "pareto_quality_memory"] = pareto_front(ok, "peak_mem_mib", "ppl")
        df.loc[ok.index, "pareto_quality_speed"] = pareto_front(ok, "decode_tok_s", "ppl",
                                                                maximize_cost=True)
    for i, row in df.iterrows():
        shape = (shapes or {}).get(row["model"])
        if shape is not None:  # one parameter count for every backend of the model
            df.loc[i, "bits_per_weight"] = row["size_mib"] * 2**20 * 8 / shape.n_params
        if shape is not None and machine:
            for key, value in roofline.derive(row.to_dict(), shape, machine).items():
                df.loc[i, key] = value
        figures = roofline.limit_figures(row["decode_tok_s"], row["batch_size"],
                                         (limits or {}).get(row["model"]))
        for key, value in figures.items():
            df.loc[i, key] = value
    return df


def compile_time(backend: dict, batch_size) -> float | None:
    """Seconds the compiled path took to compile at the headline batch size (its total where
    the record has no time per batch size; None for a path that compiles nothing). Records of a
    compiled path without a ``compile_log`` kept, per batch size, only the last context's
    compile (a recompile that may take a fraction of a second), not the first at load: their
    time is not known (None)."""
    by_batch = backend.get("compile_s_by_batch") or {}
    if by_batch and "compile_log" not in backend:
        return None
    key = None if batch_size is None else str(int(batch_size))
    return by_batch.get(key, backend.get("compile_s"))


def compile_cache_hits(backend: dict, batch_size) -> float | None:
    """Graphs the compiles of the headline batch size (all, without one) found in Inductor's
    on-disk cache; None where the record did not count them."""
    log = [e for e in backend.get("compile_log") or [] if "inductor_cache_hits" in e]
    if batch_size is not None:
        log = [e for e in log if e["batch_size"] == int(batch_size)]
    return float(sum(e["inductor_cache_hits"] for e in log)) if log else None


def kld_floor(group: pd.DataFrame, reference: str, self_floor: float | None
              ) -> tuple[float, str | None]:
    """A model's KL divergence noise floor and where it comes from: the half-precision run's
    divergence from an fp32 reference when it was measured, else the reference's divergence
    from its own stored top-k (``SELF_FLOOR``), else unavailable (NaN, None)."""
    half = group[(group["precision"] == HALF_PRECISION_OF.get(reference))
                 & group["kld_mean"].notna()]
    if not half.empty:
        return float(half["kld_mean"].iloc[0]), str(half["precision"].iloc[0])
    if self_floor is not None:
        return float(self_floor), SELF_FLOOR
    return float("nan"), None


def pareto_front(df: pd.DataFrame, cost: str, quality: str, *, maximize_cost: bool = False
                 ) -> pd.Series:
    """True for rows no other row beats on both axes (lower ``quality`` is better; lower
    ``cost`` is better unless ``maximize_cost``, as for throughput)."""
    ok = df.dropna(subset=[cost, quality])
    c = -ok[cost] if maximize_cost else ok[cost]
    q = ok[quality]
    front = pd.Series(False, index=df.index)
    for i in ok.index:
        dominated = ((c <= c[i]) & (q <= q[i]) & ((c < c[i]) | (q < q[i]))).any()
        front[i] = not dominated
    return front


def write_parquet(df: pd.DataFrame, path) -> None:
    """Write ``df`` as parquet under a temporary name, then rename (never a half-written file)."""
    write_atomic(path, lambda fh: df.to_parquet(fh, index=False), binary=True)


def aggregate(paths, *, reference: str, summary_path, metrics_path, parquet_path=None,
              points_path=None, kernels_path=None, model_dirs=(), machine_path=None,
              limit_paths=(), allow_mixed_runs: bool = False, accuracy_path=None
              ) -> pd.DataFrame:
    """Every table from the records; ``limit_paths``: the models' decode limits
    (results/<model>/limit.json), whose model is the folder's name; ``accuracy_path``: the
    accuracy by task (report.accuracy.task_table, from the accuracy records and their items).
    Records of another commit, a modified tree or another machine than the run's are refused
    before any table is written (``quantbench.runs.MixedRunsError``, naming them) unless
    ``allow_mixed_runs``."""
    records = load_records(paths)
    runs.check_one_run(records, [str(p) for p in paths], allow_mixed=allow_mixed_runs)
    limits = {Path(p).parent.name: json.loads(Path(p).read_text()) for p in limit_paths}
    shapes = {Path(d).parent.name: roofline.Shape.from_config(Path(d) / "config.json")
              for d in model_dirs}
    machine = json.loads(Path(machine_path).read_text()) if machine_path else None
    summary = summary_table(records, reference, shapes=shapes, machine=machine, limits=limits)
    tasks = accuracy.task_table(records, paths, reference)
    summary = accuracy.with_summary_columns(summary, tasks)
    long = long_table(records)
    atomic_write_text(summary_path, summary.to_csv(index=False))
    atomic_write_text(metrics_path, long.to_csv(index=False))
    if parquet_path is not None:
        write_parquet(long, parquet_path)
    if points_path is not None:
        atomic_write_text(points_path,
                          points_table(records, limits).to_csv(index=False))
    if kernels_path is not None:
        atomic_write_text(kernels_path, kernels_table(records).to_csv(index=False))
    if accuracy_path is not None:
        atomic_write_text(accuracy_path, tasks.to_csv(index=False))
    return summary


def read_summary(path) -> pd.DataFrame:
    """results/summary.csv as the report and the figures read it: a table written before a
    column existed reads back with that column empty (NaN), as results/points.csv does."""
    df = pd.read_csv(path)
    missing = [c for c in SUMMARY_COLUMNS if c not in df.columns]
    return df.reindex(columns=[*df.columns, *missing])
