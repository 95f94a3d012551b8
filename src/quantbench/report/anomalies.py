"""What looks wrong in a run, and what limits its timings: quantized formats slower than their
baseline, GGUF files mostly of another type than their name, records of several runs, noisy or
shared-machine timings."""

from __future__ import annotations

import pandas as pd

from quantbench import precisions
from quantbench.kld import TOPK
from quantbench.points import KEYS, OperatingPoint
from quantbench.records import Status
from quantbench.report.findings import Budgets, Finding, apart, ok_rows, with_baselines
from quantbench.report.numbers import fmt
from quantbench.scenarios import contention
from quantbench.stats import known


def anomalies(df: pd.DataFrame, reference: str, b: Budgets,
              points: pd.DataFrame | None = None) -> list[str]:
    """Quantized formats slower than their baseline, perplexity jumps, noisy timings (at every
    operating point of ``points``, the run's points table, when there is one), GGUF files
    mostly not in their named type."""
    return [f.text for f in anomaly_findings(df, reference, b, points)]


def anomaly_findings(df: pd.DataFrame, reference: str, b: Budgets,
                     points: pd.DataFrame | None = None) -> list[Finding]:
    out = []
    for model, g in df.groupby("model"):
        out += slower_than_baseline(model, g, reference)
        for _, row in g[g["ppl_delta_pct"] > b.ppl_jump_pct].iterrows():
            out.append(Finding("ppl_jump", model, row["precision"],
                               numbers={"ppl_delta_pct": row["ppl_delta_pct"],
                                        "ppl_jump_pct": b.ppl_jump_pct},
                               names={"reference": reference}))
        rated = ok_rows(g).dropna(subset=["ppl_delta_pct", "size_mib"])
        for _, big in rated.iterrows():
            # a bigger format should not lose more quality than a smaller one; flag it when the
            # gap exceeds the quality budget (a difference the budget calls significant)
            # "smaller" only where the sizes shown (MiB to one decimal) differ
            shown = rated["size_mib"].round(1)
            small = rated[(shown < round(big["size_mib"], 1))
                          & (rated["ppl_delta_pct"] < big["ppl_delta_pct"] - b.quality_budget_pct)]
            if not small.empty:
                best = small.loc[small["ppl_delta_pct"].idxmin()]
                out.append(Finding("out_of_line_with_size", model, big["precision"],
                                   numbers={"size_mib": big["size_mib"],
                                            "ppl_delta_pct": big["ppl_delta_pct"],
                                            "smaller_size_mib": best["size_mib"],
                                            "smaller_ppl_delta_pct": best["ppl_delta_pct"]},
                                   names={"smaller": best["precision"]}))
        measured = (points[points["model"] == model]
                    if points is not None and "decode_cv" in points else None)
        out += noisy_findings(model, g if measured is None or measured.empty else measured, b)
        out += named_type_findings(model, g)
        if "quantised_linears" in g:
            ok = ok_rows(g)
            part = ok[ok["quantised_linears"] < 0.5 * ok["linears"]]
            out += [Finding("partly_quantised", model, row["precision"],
                            numbers={"quantised": row["quantised_linears"], "n": row["linears"],
                                     "pct": 100 * row["quantised_linears"] / row["linears"]})
                    for _, row in part.iterrows()]
    return out


def noisy_findings(model: str, g: pd.DataFrame, b: Budgets) -> list[Finding]:
    """Per precision, every point of ``g`` (the points table's rows of one model, or the
    summary's where there is none) whose decode CV across runs is above
    ``b.cv_threshold_pct``: the worst one's CV, and each noisy point with its own."""
    if "decode_cv" not in g:
        return []
    ok = ok_rows(g)
    out = []
    for name, rows in ok.groupby("precision", sort=False):
        noisy = rows[rows["decode_cv"] * 100 > b.cv_threshold_pct]
        if noisy.empty:
            continue
        # the points by name where the precision was measured at more than one
        at = None if len(rows) < 2 or not all(k in rows for k in KEYS) else ", ".join(
            f"{point_of(r).label()} ({fmt(r['decode_cv'] * 100, 1)} %)"
            for r in sorted(noisy.to_dict("records"), key=point_of))
        out.append(Finding("noisy_timings", model, name,
                           numbers={"cv_pct": noisy["decode_cv"].max() * 100,
                                    "cv_threshold_pct": b.cv_threshold_pct,
                                    "n_noisy": len(noisy), "n_points": len(rows)},
                           names={"points": at}))
    return out


def point_of(row: dict) -> OperatingPoint:
    return OperatingPoint(**{k: int(row[k]) for k in KEYS})


def slower_than_baseline(model: str, g: pd.DataFrame, reference: str) -> list[Finding]:
    """Quantized precisions with smaller weights (their size ratio to the baseline above 1.0 as
    shown) that decode slower than their baseline. For
    LLM.int8 with outliers, the run without outlier decomposition (``-t0``), if measured, says
    how much of the loss the int8 + fp16 matmul split explains: all (``-t0`` is at least as
    fast as the baseline), part (between) or none (no faster than with the split)."""
    ok = ok_rows(g).set_index("precision")
    out = []
    for name, row, base, ref in with_baselines(ok):
        if not (round(ref["size_mib"] / row["size_mib"], 1) > 1
                and row["decode_tok_s"] < ref["decode_tok_s"]):
            continue
        numbers = {"tok_s": row["decode_tok_s"], "baseline_tok_s": ref["decode_tok_s"],
                   "speed_ratio": row["decode_tok_s"] / ref["decode_tok_s"],
                   "size_ratio": ref["size_mib"] / row["size_mib"]}
        names = {"baseline": base, "resolved": apart(ref, row), "t0": f"{name}-t0",
                 "split": None}
        # LLM.int8's outlier split (its threshold setting) against the same format without it
        settings = precisions.table()[name].settings if name in precisions.table() else {}
        if "threshold" in settings and names["t0"] in ok.index:
            t0_tok_s = numbers["t0_tok_s"] = ok.loc[names["t0"], "decode_tok_s"]
            names["split"] = ("all" if t0_tok_s >= ref["decode_tok_s"]
                              else "part" if t0_tok_s > row["decode_tok_s"] else "none")
        elif settings.get("threshold"):
            names["split"] = "unmeasured"
        out.append(Finding("slower_than_baseline", model, name, numbers=numbers, names=names))
    return out


def named_type_findings(model: str, g: pd.DataFrame) -> list[Finding]:
    """GGUF files holding under half their weights in the type they are named after, with the
    share of the weights in matrices whose rows the type cannot split (recorded from the file's
    tensor shapes; unknown for records made before it was)."""
    if "named_type_pct" not in g:
        return []
    return [Finding("named_type_low", model, row["precision"],
                    numbers={k: row.get(k) for k in ("named_type_pct", "misaligned_rows_pct",
                                                     "row_block")},
                    names={"weight_types": row["weight_types"]})
            for _, row in g[g["named_type_pct"] < 50].iterrows()]


# GGUF file types that store the weights unquantized
FLOAT_GGUF_TYPES = ("F32", "F16", "BF16")


def several_runs(df: pd.DataFrame) -> list[str]:
    """One sentence when the latency records come from more than one run (another commit or
    source tree of the code): the report's provenance then holds for one of them only. (Cards
    are not runs: on a multi-GPU host one run's jobs measure on several.)"""
    if "git_commit" not in df:
        return []
    known = df.dropna(subset=["git_commit"])  # rows without a latency record say nothing
    groups = known.fillna({"source_sha256": ""}).groupby(["git_commit", "source_sha256"],
                                                         sort=False)
    if groups.ngroups < 2:
        return []
    parts = []
    for (commit, _), g in groups:
        when = g["measured_utc"].dropna().min()
        date = f", measured {when[:10]}" if isinstance(when, str) else ""
        items = ", ".join(f"{m} {p}" for m, p in zip(g["model"], g["precision"], strict=True))
        modified = " (modified tree)" if any(str(d) == "True" for d in g.get(
            "git_dirty", [])) else ""
        parts.append(f"commit {str(commit)[:7]}{modified}{date}: {items}")
    return [f"The latency records come from {groups.ngroups} runs (other code: another commit or "
            "source tree); the provenance above is one run's. Compare precisions of different "
            "runs with care, a run's host can change the timings: " + "; ".join(parts) + "."]


def other_run(df: pd.DataFrame, reference: str) -> pd.Series:
    """True for each row measured in another run than its model's ``reference`` row (their run
    ids differ, ``quantbench.runs``): a comparison between the two crosses runs. A model without
    a reference row, and a row or a reference without a run id, are not marked."""
    marked = pd.Series(False, index=df.index)
    if "run_id" not in df:
        return marked
    for _, g in df.groupby("model"):
        ref = g.loc[g["precision"] == reference, "run_id"].dropna()
        if not ref.empty:
            marked[g.index] = g["run_id"].notna() & (g["run_id"] != ref.iloc[0])
    return marked


def _run_of(row) -> str:
    commit = row.get("git_commit")
    code = (f", commit {commit[:7]}" + (" modified" if str(row.get("git_dirty")) == "True" else "")
            if isinstance(commit, str) else "")
    return f"run {row['run_id']}{code}"


def other_run_note(df: pd.DataFrame, reference: str) -> str | None:
    """What the mark of ``other_run`` means, with each marked row's run and its reference's."""
    marked = other_run(df, reference)
    if not marked.any():
        return None
    parts = []
    for model, g in df[marked].groupby("model", sort=False):
        ref = df[(df["model"] == model) & (df["precision"] == reference)].iloc[0]
        rows = ", ".join(f"{row['precision']} ({_run_of(row)})" for _, row in g.iterrows())
        parts.append(f"{model}: {rows}, against {reference}'s {_run_of(ref)}")
    return ("† Measured in another run than the reference precision of the same model (another "
            "invocation of the workflow: another time, maybe another commit), so comparisons "
            "with it cross runs: " + "; ".join(parts) + ".")


def limitations(df: pd.DataFrame, models: dict, config: dict, machine: dict | None) -> list[str]:
    """What the numbers cannot say, from the model sources, the device and the protocol."""
    out = []
    for name, info in models.items():
        if info.get("quality_applicable") is False:
            out.append(f"{name} has random weights: perplexity, KL divergence and generations "
                       "are meaningless and were not measured, so every recommendation for it "
                       "rests on speed and memory only.")
        if info.get("source") == "embedded":
            out.append(f"{name}'s reference weights are a Q4_1 GGUF dequantized to FP32: "
                       "differences in perplexity measure the distance from those weights, not "
                       "from the original model; formats of 4 bits and more re-quantize "
                       "weights that already sit on a 4-bit grid, which likely flatters them.")
        source_file = info.get("dequantized_from") if info.get("source") == "gguf" else None
        if source_file:
            grid = ("" if source_file["type"] in FLOAT_GGUF_TYPES else
                    f"; formats at or above {source_file['type']}'s precision re-quantize "
                    "weights that already sit on its grid, which likely flatters them")
            out.append(f"{name}'s reference weights are {source_file['file']}'s "
                       f"{source_file['type']} weights dequantized to FP32: differences in "
                       "perplexity measure the distance from that file, not from the model it "
                       f"was made from{grid}.")
    out += several_runs(df)
    if "compile_cache_hits" in df:
        cached = df[(df["status"] == Status.OK) & (df["compile_cache_hits"] > 0)]
        if not cached.empty:
            names = ", ".join(f"{r.model} {r.precision} ({r.compile_s:.1f} s)"
                              for r in cached.itertuples())
            out.append("Compile times that found their graphs in torch's Inductor cache (compiled "
                       f"earlier on this machine): {names}; a first compile takes longer.")
    if "generations_eager" in df:
        for _, row in df[df["generations_eager"].notna()].iterrows():
            out.append(f"{row['model']}: {row['precision']}'s sanity generations were decoded "
                       "without its compiled graph, which was refused here ("
                       f"{row['generations_eager']}); its perplexity and KL divergence come "
                       "from the eager forward, as every precision's do.")
    ok = df[df["status"] == Status.OK]
    device = (machine or {}).get("device") or (ok["device"].dropna().iloc[0]
                                                if "device" in ok and ok["device"].notna().any()
                                                else None)
    out += [f.text for f in timing_findings(ok, device)]
    out += [f.text for f in layout_twins(ok)]
    lat = config.get("latency", {})
    if lat:
        runs, warmup = lat.get("measured_runs", "?"), lat.get("warmup_runs", "?")
        processes = lat.get("processes", 1)
        how = (f"{processes} fresh processes, one after another, each of {warmup} warm-up and "
               f"{runs} measured run(s); the 95 % intervals of decode speed are Student t "
               "intervals over the processes' means: they include what changes from one process "
               "to the next, not what changes from one machine to another" if processes > 1
               else f"{runs} measured runs after {warmup} warm-up run(s) in one process "
               "(latency.processes: 1), which gives no interval of decode speed: no precision "
               "is called faster or slower than another")
        out.append(f"Each latency figure comes from {how}. Batch sizes "
                   f"{', '.join(map(str, lat.get('batch_sizes', [1])))}, context depths "
                   f"{', '.join(map(str, lat.get('context_depths', [0])))}, prompts of "
                   f"{', '.join(map(str, lat.get('prompt_tokens', [])))} tokens.")
    rated = ok.dropna(subset=["ppl", "ppl_stderr"])
    if not rated.empty:
        rel = rated["ppl_stderr"] / rated["ppl"] * 100
        ppl_cfg = config.get("perplexity", {})
        out.append(f"Perplexity is measured on at most {ppl_cfg.get('max_windows', '?')} windows "
                   f"of {ppl_cfg.get('context_length', '?')} tokens; its standard error is up "
                   f"to {fmt(float(rel.max()), 2)} % of the perplexity: the text is a sample. "
                   "Every precision is scored on the same tokens, so differences between "
                   "precisions are more precise than that, but a ranking by a smaller margin "
                   "may not hold on other text.")
    if ok["kld_mean"].notna().any():
        out.append(f"KL divergence is computed over the reference's top-{TOPK} tokens plus one "
                   "bucket for the rest of the vocabulary: a lower bound of the full KL.")
    return out


# settings that change a GGUF's values, not its layout or the work a decode step does
VALUE_ONLY_SETTINGS = {"imatrix"}


def layout_twins(ok: pd.DataFrame) -> list[Finding]:
    """Per model, the pair of llama.cpp precisions that hold the same tensor types and sizes
    and run with the same settings but for their values (an importance matrix changes the
    values, not the work), whose decode intervals are apart by the largest ratio: the speed
    moved between their jobs more than the intervals over processes show."""
    need = {"weight_types", "size_mib", "decode_tok_s_ci_low", "decode_tok_s_ci_high"}
    if not need <= set(ok.columns):
        return []
    out = []
    for model, g in ok[ok["weight_types"].notna()].groupby("model"):
        def layout(name, size):
            settings = dict(precisions.get(name).settings) if name in precisions.table() else {}
            kept = {k: v for k, v in settings.items() if k not in VALUE_ONLY_SETTINGS}
            return (tuple(sorted(kept.items())), round(float(size), 2))

        keyed = g.assign(layout=[(layout(p, sz), wt) for p, sz, wt in
                                 zip(g["precision"], g["size_mib"], g["weight_types"],
                                     strict=True)])
        best = None
        for _, same in keyed.groupby("layout"):
            rows = same.sort_values("decode_tok_s", ascending=False).to_dict("records")
            for i, fast in enumerate(rows):
                for slow in rows[i + 1:]:
                    if apart(fast, slow):
                        ratio = fast["decode_tok_s"] / slow["decode_tok_s"]
                        if best is None or ratio > best[0]:
                            best = (ratio, fast, slow)
        if best is not None:
            ratio, fast, slow = best
            out.append(Finding("layout_twins_apart", model, fast["precision"], numbers={
                "ratio": ratio, **{f"{k}_{w}": r[k] for w, r in (("fast", fast), ("slow", slow))
                                   for k in ("decode_tok_s", "decode_tok_s_ci_low",
                                             "decode_tok_s_ci_high")}},
                names={"other": slow["precision"]}))
    return out


def timing_findings(ok: pd.DataFrame, device) -> list[Finding]:
    """The spread of the decode timings, and what else used the machine while they were taken:
    "shared with other work" only when the recorded other-process CPU share or steal share of
    some precision's runs exceeds ``contention``'s thresholds."""
    out = []
    cv = ok["decode_cv"].dropna() * 100 if "decode_cv" in ok else pd.Series(dtype=float)
    if not cv.empty:
        worst = ok.loc[ok["decode_cv"].idxmax()]
        out.append(Finding("timing_spread", "", worst["precision"],
                           numbers={"cv_median_pct": float(cv.median()),
                                    "cv_max_pct": float(cv.max())},
                           names={"device": device}))
    if "other_cpu_share" not in ok or not ok["other_cpu_share"].notna().any():
        return out  # not measured (records made before it was)
    steal = ok["steal_share"] if "steal_share" in ok else pd.Series(float("nan"), ok.index)
    busy = ok[[contention.contended(o, s) for o, s in zip(ok["other_cpu_share"], steal,
                                                          strict=True)]]
    worst = (busy.loc[busy["other_cpu_share"].fillna(0).idxmax()] if not busy.empty
             else ok.loc[ok["other_cpu_share"].idxmax()])
    shared = not busy.empty
    numbers = {"other_cpu_pct": 100 * worst["other_cpu_share"],
               "steal_pct": 100 * (worst.get("steal_share") if shared
                                   else ok.get("steal_share", pd.Series(dtype=float)).max()),
               "loadavg": worst.get("loadavg"),
               "other_cpu_max_pct": 100 * contention.OTHER_CPU_SHARE_MAX,
               "steal_max_pct": 100 * contention.STEAL_SHARE_MAX}
    others = [f"{r['precision']} ({fmt(100 * r['other_cpu_share'], 1)} % other CPU"
              + (f", {fmt(100 * r['steal_share'], 1)} % steal" if known(r.get("steal_share"))
                 and r["steal_share"] > 0 else "") + ")"
              for _, r in busy.sort_values("other_cpu_share", ascending=False).iterrows()
              if r["precision"] != worst["precision"]]
    out.append(Finding("machine_shared" if shared else "machine_quiet", "", worst["precision"],
                       numbers=numbers, names={"others": others}))
    return out
