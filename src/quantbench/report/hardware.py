"""The hardware analysis: bandwidth and compute against the machine's ceilings, engines of one
format, compiled twins, what a format's byte saving became, where decode time goes (kernel
traces) and each format's fastest path against the unquantized fast path."""

from __future__ import annotations

import pandas as pd

from quantbench import precisions, roofline
from quantbench.kernel_summary import CLASS_WORDS, CLASSES
from quantbench.points import KEYS
from quantbench.records import Status
from quantbench.report.findings import INT8_ENGINES, Finding, apart, ok_rows, with_baselines
from quantbench.report.numbers import fmt
from quantbench.report.point_table import FASTER, SLOWER, UNCLEAR
from quantbench.stats import known as _measured

# a compiled twin is "clearly" faster at this speed-up or more, with the 95 % intervals apart
COMPILED_CLEAR_SPEEDUP = 1.25


# the unquantized fast path each format's fastest path is compared with, in order of preference
# (then the reference's compiled twin)
FAST_BASELINES = ("bf16-compiled",)


# a quantized precision "turns its byte saving into speed" when it realises this much of the
# speed-up its byte ratio would give a bandwidth-bound decode
REALISED_OK_PCT = 80.0


def hardware(df: pd.DataFrame, reference: str, machine: dict | None,
             kernels: pd.DataFrame | None = None) -> list[str]:
    """Where precisions stand against the machine's ceilings, from the roofline columns and the
    table itself; a cause of their speed only where a kernel trace (``kernels``, the rows of
    results/kernels.csv) of that precision at that point shows it."""
    out = []
    ridge = roofline.ridge_flop_per_byte(machine or {})
    for model, g in df.groupby("model"):
        ok = ok_rows(g)
        rated = ok.dropna(subset=["mbu_pct"]) if "mbu_pct" in ok else ok.iloc[0:0]
        if ridge and not rated.empty:
            best = rated.loc[rated["mbu_pct"].idxmax()]
            top = rated.loc[rated["decode_flop_per_byte"].idxmax()]
            if best["mbu_pct"] > 100:
                out.append(
                    f"{model}: {best['precision']} reads its weights and KV cache at "
                    f"{fmt(best['decode_gb_s'], 1)} GB/s, {fmt(best['mbu_pct'], 1)} % of the "
                    f"measured peak bandwidth ({fmt(best['size_mib'], 1)} MiB of weights): the "
                    "peak underestimates what decode can read (it is measured with a copy, which "
                    "also writes, on a machine that may be busy) or part of the weights is "
                    "served from the caches; either way MBU cannot be judged against this peak "
                    "and the bandwidth roofline does not bound this model's decode here."
                )
            elif top["decode_flop_per_byte"] < ridge:
                out.append(below_ridge(model, g, reference, ridge, top, best).text)
            else:
                out.append(
                    f"{model}: {top['precision']} does {fmt(top['decode_flop_per_byte'], 1)} "
                    f"FLOP per byte read while decoding, above this machine's ridge point of "
                    f"{fmt(ridge, 0)} FLOP/byte: its decode is compute-bound, not memory-bound."
                )
        pre = ok.dropna(subset=["prefill_tflops", "prefill_ms", "size_mib"])
        if ridge and not pre.empty and "mfu_pct" in pre:
            intensity = roofline.prefill_flop_per_byte(pre["prefill_tflops"], pre["prefill_ms"],
                                                       pre["size_mib"])
            low = pre.loc[intensity.idxmin()]
            bound = "compute-bound" if intensity.min() > ridge else "not compute-bound"
            best = pre.loc[pre["mfu_pct"].idxmax()] if pre["mfu_pct"].notna().any() else None
            line = (f"{model}: prefill of {fmt(low['prompt_tokens'], 0)} tokens does at least "
                    f"{fmt(float(intensity.min()), 0)} FLOP per byte of weights "
                    f"({low['precision']}) against a ridge of {fmt(ridge, 0)}: it is {bound}")
            if best is not None:
                line += (f"; the best model-FLOPs utilisation is {best['precision']}'s "
                         f"{fmt(best['mfu_pct'], 1)} % ({fmt(best['prefill_tflops'], 1)} "
                         "TFLOP/s)")
                if best["mfu_pct"] > 100:
                    line += (" — above 100 %: the measured matmul peak is an underestimate "
                             "(a busy machine while it was measured, or a matmul shape that "
                             "runs slower than the model's), so MFU is only a relative figure "
                             "here")
            out.append(line + ".")
        out += [f.text for f in compiled_twins(model, ok, kernels)]
        saving = bytes_to_speed(model, g, reference, kernels)
        if saving is not None:
            out.append(saving.text)
        int8 = int8_engines(model, g, reference)
        if int8 is not None:
            out.append(int8.text)
    return out


def int8_engines(model: str, g: pd.DataFrame, reference: str) -> Finding | None:
    """ONNX Runtime's int8 against bitsandbytes' LLM.int8 and llama.cpp's Q8_0, when all three
    ran: its decode speed against each (faster or slower only with the 95 % intervals apart)
    and, where perplexity was measured for all three, each one's change in perplexity (and
    KLD) against the reference."""
    ok = ok_rows(g).set_index("precision")
    if not all(name in ok.index for name in INT8_ENGINES):
        return None
    onnx = ok.loc[INT8_ENGINES[0]]
    others = []
    for name in INT8_ENGINES[1:]:
        row = ok.loc[name]
        others.append({"name": name, "tok_s": float(row["decode_tok_s"]),
                       "ratio": float(onnx["decode_tok_s"] / row["decode_tok_s"]),
                       "verdict": ("faster" if apart(onnx, row) else
                                   "slower" if apart(row, onnx) else "unclear")})
    quality = None
    if "ppl_delta_pct" in ok and ok.loc[list(INT8_ENGINES), "ppl_delta_pct"].notna().all():
        quality = [{"name": name, "ppl_delta_pct": float(ok.loc[name, "ppl_delta_pct"]),
                    "kld_mean": ok.loc[name].get("kld_mean")} for name in INT8_ENGINES]
    return Finding("int8_engines", model, INT8_ENGINES[0],
                   numbers={"tok_s": onnx["decode_tok_s"]},
                   names={"others": others, "quality": quality, "reference": reference})


def below_ridge(model: str, g: pd.DataFrame, reference: str, ridge: float, top: pd.Series,
                best: pd.Series) -> Finding:
    """Decode below the ridge point: the roofline caps it at the memory bandwidth. That its
    speed follows the bytes per token is said only when every quantized precision realises at
    least ``REALISED_OK_PCT`` % of the speed-up its byte saving would give."""
    rows = [r for r in speed_vs_bytes(g, reference) if r["realised_pct"] is not None]
    follows = bool(rows) and all(r["realised_pct"] >= REALISED_OK_PCT for r in rows)
    return Finding("below_ridge_follows_bytes" if follows else "below_ridge", model,
                   top["precision"],
                   numbers={"intensity": top["decode_flop_per_byte"], "ridge": ridge,
                            "gb_s": best["decode_gb_s"], "mbu_pct": best["mbu_pct"],
                            "realised_min": REALISED_OK_PCT},
                   names={"best": best["precision"]})


# the words a trace's device gives to what it measured and to the host's work around it
TRACE_WORDS = {
    "cuda": {"device": "GPU", "unit": "kernels",
             "host_work": "per-token Python, dispatch and kernel launches"},
    "cpu": {"device": "CPU", "unit": "operators", "host_work": "per-token Python and dispatch"},
}


def trace_at(kernels: pd.DataFrame | None, model: str, precision: str,
             row: pd.Series) -> pd.Series | None:
    """The ok kernel trace of ``precision`` at the operating point of its summary row ``row``
    (batch size, prompt and context depth all equal), or None: a cause of a precision's speed
    is said only where such a trace shows it."""
    if kernels is None or kernels.empty:
        return None
    hit = kernels[(kernels["status"] == "ok") & (kernels["model"] == model)
                  & (kernels["precision"] == precision) & kernels["device"].isin(TRACE_WORDS)]
    for key in KEYS:
        hit = hit[hit[key] == row.get(key)]  # a point the summary does not give matches none
    return None if hit.empty else hit.iloc[0]


def host_bound(trace: pd.Series | None) -> bool:
    """Whether a trace's device was busy under ``HOST_BOUND_BUSY_PCT`` % of a decode step."""
    return (trace is not None and _measured(trace.get("busy_pct"))
            and trace["busy_pct"] < HOST_BOUND_BUSY_PCT)


def compiled_twins(model: str, ok: pd.DataFrame,
                   kernels: pd.DataFrame | None = None) -> list[Finding]:
    """Each ``-compiled`` precision against its eager twin (same weights). A clear speed-up
    (``COMPILED_CLEAR_SPEEDUP``, intervals apart) gives the share of eager decode's time per
    token that compiling removes; that eager decode is bound by per-token host work is said
    only when a kernel trace of the eager twin at the same point has its device busy under
    ``HOST_BOUND_BUSY_PCT`` % of a step (in the words of that device). Otherwise the finding
    gives the measured ratio alone."""
    by_name = ok.set_index("precision")
    out = []
    for name in by_name.index:
        base = precisions.eager_twin(name)
        if base is None or base not in by_name.index:
            continue
        c, e = by_name.loc[name], by_name.loc[base]
        speedup = c["decode_tok_s"] / e["decode_tok_s"]
        clear = speedup >= COMPILED_CLEAR_SPEEDUP and apart(c, e)
        trace = trace_at(kernels, model, base, e) if clear else None
        kind = ("compiled_faster_host_bound" if host_bound(trace) else
                "compiled_faster" if clear else "compiled_not_faster")
        out.append(Finding(
            kind, model, name,
            numbers={"compiled_tok_s": c["decode_tok_s"], "eager_tok_s": e["decode_tok_s"],
                     "speedup": speedup, "removed_pct": 100 * (1 - 1 / speedup),
                     "compiled_mbu_pct": c.get("mbu_pct"), "eager_mbu_pct": e.get("mbu_pct"),
                     "margin": COMPILED_CLEAR_SPEEDUP,
                     "busy_pct": trace["busy_pct"] if host_bound(trace) else None},
            names={"eager": base,
                   **(TRACE_WORDS[trace["device"]] if host_bound(trace) else {})}))
    return out


def bytes_to_speed(model: str, g: pd.DataFrame, reference: str,
                   kernels: pd.DataFrame | None = None) -> Finding | None:
    """How many quantized precisions turn their byte saving into speed, and the one furthest
    off. One that reads fewer bytes than its baseline yet decodes slower (the 95 % intervals
    apart) is called slower; where its time goes is said only from a kernel trace of it at the
    same point: dequantization at ``NOTABLE_CLASS_PCT`` % of the traced time or more, a device
    busy under ``HOST_BOUND_BUSY_PCT`` % of a step. Otherwise only the measured gap is given."""
    rows = [r for r in speed_vs_bytes(g, reference) if r["realised_pct"] is not None]
    if not rows:
        return None
    worst = min(rows, key=lambda r: (r["realised_pct"], r["speed_ratio"]))
    kind, extra, words = "bytes_to_speed", {}, {}
    if worst["verdict"] == SLOWER:
        kind = "bytes_to_speed_slower"
        row = ok_rows(g).set_index("precision").loc[worst["precision"]]
        trace = trace_at(kernels, model, worst["precision"], row)
        dequant = None if trace is None else trace.get("dequant_pct")
        extra = {"dequant_pct": dequant if _measured(dequant) and dequant >= NOTABLE_CLASS_PCT
                 else None,
                 "busy_pct": trace["busy_pct"] if host_bound(trace) else None}
        if any(v is not None for v in extra.values()):
            kind, words = "bytes_to_speed_slower_traced", TRACE_WORDS[trace["device"]]
    return Finding(
        kind, model, worst["precision"],
        numbers={"kept": sum(r["realised_pct"] >= REALISED_OK_PCT for r in rows), "n": len(rows),
                 "realised_min": REALISED_OK_PCT, "bytes_ratio": worst["bytes_ratio"],
                 "speed_ratio": worst["speed_ratio"], "realised_pct": worst["realised_pct"],
                 **extra},
        names={"baseline": worst["baseline"], "verdict": worst["verdict"], **words})


def speed_vs_bytes(g: pd.DataFrame, reference: str) -> list[dict]:
    """Each quantized precision against its baseline: the byte ratio per decode token, the
    speed ratio, whether it is faster or slower (95 % intervals apart) or not told apart, and
    how much of the speed-up its byte saving would give a bandwidth-bound decode it realised:
    ``realised_pct`` = 100 × (speed ratio − 1) / (byte ratio − 1), so 100 % is the full
    speed-up, 0 % none; a precision no faster than its baseline realises 0 % (never a share of
    a saving it did not turn into speed), and one without a byte saving (the ratio shown as
    1.00 or less) has none (None)."""
    bytes_col = ("decode_bytes_per_tok_mib" if "decode_bytes_per_tok_mib" in g
                 and g["decode_bytes_per_tok_mib"].notna().any() else "size_mib")
    ok = ok_rows(g).dropna(subset=[bytes_col]).set_index("precision")
    rows = []
    for name, row, base, b in with_baselines(ok):
        bytes_ratio = b[bytes_col] / row[bytes_col]
        speed_ratio = row["decode_tok_s"] / b["decode_tok_s"]
        saving = round(bytes_ratio, 2) > 1
        realised = max(0.0, 100 * (speed_ratio - 1) / (bytes_ratio - 1)) if saving else None
        rows.append({"model": row["model"], "precision": name, "baseline": base,
                     "bytes_ratio": bytes_ratio, "speed_ratio": speed_ratio,
                     "realised_pct": realised,
                     "verdict": (FASTER if apart(row, b) else SLOWER if apart(b, row)
                                 else UNCLEAR),
                     "mbu_pct": row.get("mbu_pct"), "baseline_mbu_pct": b.get("mbu_pct")})
    return rows


# a class of kernels "takes" a notable part of decode from this share of the traced busy time
NOTABLE_CLASS_PCT = 10.0


# a GPU busy under this share of a traced decode step spends the rest on the host's work
HOST_BOUND_BUSY_PCT = 50.0


def kernel_findings(kernels: pd.DataFrame | None) -> list[Finding]:
    """What each traced precision's decode spends its time on, from its kernel trace: the
    largest class of kernels; dequantization where it takes at least ``NOTABLE_CLASS_PCT`` %;
    a GPU idle for most of the step (busy under ``HOST_BOUND_BUSY_PCT`` %); a compiled decode's
    graph breaks, recompilations and skipped CUDA graphs, or that it ran as one graph with none
    (only where torch counted them)."""

    out = []
    if kernels is None:
        return out
    for _, row in kernels[kernels["status"] == Status.OK].iterrows():
        model, name = row["model"], row["precision"]
        cuda = row["device"] == "cuda"
        where = {"device": "GPU" if cuda else "CPU", "unit": "kernels" if cuda else "operators"}
        shares = {c: row.get(f"{c}_pct") for c in CLASSES if _measured(row.get(f"{c}_pct"))}
        if shares:
            largest = max(shares, key=shares.get)
            out.append(Finding("kernels_largest_class", model, name,
                               numbers={"pct": shares[largest],
                                        "busy_ms": row["busy_ms_per_step"],
                                        "top_pct": row.get("top_kernel_pct")},
                               names={**where, "what": CLASS_WORDS[largest],
                                      "top": row.get("top_kernel")}))
        if shares.get("dequant", 0) >= NOTABLE_CLASS_PCT:
            out.append(Finding("kernels_dequant", model, name,
                               numbers={"pct": shares["dequant"]}, names=where))
        out += _prefill_findings(model, name, row, where)
        busy = row.get("busy_pct")
        if row["device"] == "cuda" and _measured(busy) and busy < HOST_BOUND_BUSY_PCT:
            out.append(Finding("kernels_host_bound", model, name,
                               numbers={k: row.get(k) for k in (
                                   "busy_pct", "busy_ms_per_step", "step_ms",
                                   "kernels_per_token", "launches_per_token")},
                               names={"threshold": HOST_BOUND_BUSY_PCT}))
        out += _compile_findings(model, name, row)
    return out


def _prefill_findings(model: str, name: str, row: pd.Series, where: dict) -> list[Finding]:
    """Where the traced prefill's time went: its largest class of kernels, and its
    dequantization where that takes at least ``NOTABLE_CLASS_PCT`` % (only for a trace that
    has a prefill)."""
    shares = {c: row.get(f"prefill_{c}_pct") for c in CLASSES
              if _measured(row.get(f"prefill_{c}_pct"))}
    if not shares or not _measured(row.get("prefill_busy_ms")):
        return []
    largest = max(shares, key=shares.get)
    dequant = shares.get("dequant", 0)
    return [Finding("kernels_prefill", model, name,
                    numbers={"pct": shares[largest], "trace_ms": row["prefill_trace_ms"],
                             "busy_ms": row["prefill_busy_ms"],
                             "dequant_pct": (dequant if largest != "dequant"
                                             and dequant >= NOTABLE_CLASS_PCT else None),
                             **{k: row.get(k) for k in ("batch_size", "prompt_tokens",
                                                        "context_depth")}},
                    names={**where, "what": CLASS_WORDS[largest]})]


def _compile_findings(model: str, name: str, row: pd.Series) -> list[Finding]:
    breaks, recompiles = row.get("graph_breaks"), row.get("recompiles")
    skips = row.get("cudagraph_skips")
    out = []
    if _measured(breaks) and breaks > 0:
        out.append(Finding("kernels_graph_breaks", model, name,
                           numbers={"breaks": breaks, "graphs": row.get("graphs")},
                           names={"reason": _first_line(row.get("graph_break_reason"))}))
    if _measured(recompiles) and recompiles > 0:
        out.append(Finding("kernels_recompiles", model, name,
                           numbers={"recompiles": recompiles,
                                    "in_trace": row.get("compiles_in_trace")},
                           names={"reason": _first_line(row.get("recompile_reason"))}))
    if _measured(skips) and skips > 0:
        out.append(Finding("kernels_cudagraph_skips", model, name, numbers={"skips": skips}))
    if (_measured(breaks) and breaks == 0 and _measured(recompiles) and recompiles == 0
            and not (_measured(skips) and skips > 0)):
        out.append(Finding("kernels_one_graph", model, name,
                           numbers={"graphs": row.get("graphs")}))
    return out


def _first_line(text) -> str | None:
    """The first line of a torch reason (they run to several paragraphs), or None."""
    if not isinstance(text, str) or not text.strip():
        return None
    return " ".join(text.strip().splitlines()[0].split())[:200]


def eager_and_fast(g: pd.DataFrame) -> list[dict]:
    """One row per format measured on both paths: its eager and its compiled precision, their
    decode tok/s, the speed-up of compiling, the compile time (at the headline batch size),
    which path is the faster and whether their 95 % intervals are apart."""
    ok = ok_rows(g).set_index("precision")
    rows = []
    for name, fast in ok.iterrows():
        base = precisions.eager_twin(name)
        if base is None or base not in ok.index:
            continue
        eager = ok.loc[base]
        rows.append({"model": fast["model"], "format": base, "eager": base, "fast": name,
                     "eager_tok_s": eager["decode_tok_s"], "fast_tok_s": fast["decode_tok_s"],
                     **{f"{path}_{end}": row.get(f"decode_tok_s_ci_{end}")
                        for path, row in (("eager", eager), ("fast", fast))
                        for end in ("low", "high")},
                     "speedup": fast["decode_tok_s"] / eager["decode_tok_s"],
                     "compile_s": fast.get("compile_s"),
                     "fastest": name if fast["decode_tok_s"] >= eager["decode_tok_s"] else base,
                     "resolved": apart(fast, eager) or apart(eager, fast)})
    return rows


def fastest_paths(g: pd.DataFrame) -> pd.DataFrame:
    """Each format's fastest measured path: of its eager and compiled precisions, the one that
    decodes faster (a format measured on one path only: that one), with a ``format`` column."""
    ok = ok_rows(g).assign(format=lambda d: d["precision"].map(precisions.format_of))
    best = ok.groupby("format")["decode_tok_s"].idxmax()
    return ok.loc[best.sort_values().values]


def fast_baseline(g: pd.DataFrame, reference: str) -> str | None:
    """The unquantized fast path of this run: bf16-compiled, else the reference's compiled
    twin, when measured."""
    names = set(ok_rows(g)["precision"])
    compiled_reference = f"{reference}{precisions.COMPILED_SUFFIX}"
    return next((n for n in (*FAST_BASELINES, compiled_reference) if n in names), None)


def against_fast_baseline(model: str, g: pd.DataFrame, reference: str) -> list[Finding]:
    """Which formats, each on its fastest path, decode faster than the unquantized fast path at
    the headline point (95 % intervals apart), which slower, and which are not told apart:
    one finding for each of the three that some format is in."""
    base = fast_baseline(g, reference)
    if base is None:
        return []
    b = ok_rows(g).set_index("precision").loc[base]
    verdicts: dict[str, list[dict]] = {"faster": [], "slower": [], "unclear": []}
    for _, row in fastest_paths(g).iterrows():
        if row["format"] == precisions.format_of(base):
            continue
        verdict = ("faster" if apart(row, b) else "slower" if apart(b, row) else "unclear")
        verdicts[verdict].append({"format": row["format"], "path": row["precision"],
                                  "tok_s": float(row["decode_tok_s"]),
                                  "ratio": float(row["decode_tok_s"] / b["decode_tok_s"])})
    point = {"baseline_tok_s": b["decode_tok_s"], "prompt_tokens": b.get("prompt_tokens"),
             "batch_size": b.get("batch_size")}
    return [Finding(f"fast_path_{verdict}", model, None, numbers=point,
                    names={"baseline": base,
                           "formats": sorted(rows, key=lambda r: -r["ratio"])})
            for verdict, rows in verdicts.items() if rows]
