"""The same weights with something else changed: llama.cpp's quantized KV cache against the f16
cache, and an importance matrix against none (results/imatrix.csv)."""

from __future__ import annotations

import pandas as pd

from quantbench import kvcache, precisions
from quantbench.records import Status
from quantbench.report.findings import Finding
from quantbench.stats import known as _measured


def kv_cache_rows(g: pd.DataFrame, points: pd.DataFrame | None = None) -> list[dict]:
    """Each precision of one model's summary rows ``g`` whose KV cache is quantized, against the
    same weights with an f16 KV cache (``precisions.f16_twin``) where that ran: the measured KV
    bytes per token of context and the saving, the quality change against the twin (paired:
    ``kv_ppl_delta_pct`` with its 95 % interval, ``kv_kld_mean``), and the decode speed of both
    at the deepest context depth of the operating points (batch 1, the first prompt length)."""

    by_name = g.set_index("precision")
    out = []
    for name, row in by_name.iterrows():
        twin = precisions.f16_twin(name, by_name.index)
        if twin is None:
            continue
        t = by_name.loc[twin]
        settings = precisions.get(name).settings
        mine, theirs = row.get("kv_bytes_per_token"), t.get("kv_bytes_per_token")
        saved = theirs - mine if _measured(mine) and _measured(theirs) else None
        r = {"model": row["model"], "precision": name, "twin": twin,
             "types": "/".join(kvcache.types(settings)), "kv_bytes_per_token": mine,
             "twin_kv_bytes_per_token": theirs,
             "saved_bytes_per_token": saved,
             "saved_pct": 100 * saved / theirs if saved is not None and theirs else None,
             "ppl_delta_pct": row.get("kv_ppl_delta_pct"),
             "ppl_ci_low": row.get("kv_ppl_delta_pct_ci_low"),
             "ppl_ci_high": row.get("kv_ppl_delta_pct_ci_high"),
             "kld_mean": row.get("kv_kld_mean"),
             **_decode_at_depth(points, row["model"], name, twin)}
        out.append(r)
    return out


def _decode_at_depth(points: pd.DataFrame | None, model: str, name: str, twin: str) -> dict:
    """Decode tok/s of ``name`` and ``twin`` at the deepest depth both were measured at (batch
    1 or the smallest batch, the first prompt length); NaN without points."""
    none = {"depth": None, "decode_tok_s": None, "twin_decode_tok_s": None}
    if points is None or points.empty:
        return none
    ok = points[(points["model"] == model) & (points["status"] == Status.OK)
                & points["decode_tok_s"].notna()]
    ok = ok[ok["batch_size"] == ok["batch_size"].min()] if not ok.empty else ok
    ok = ok[ok["prompt_tokens"] == ok["prompt_tokens"].min()] if not ok.empty else ok
    mine, theirs = ok[ok["precision"] == name], ok[ok["precision"] == twin]
    depths = set(mine["context_depth"]) & set(theirs["context_depth"])
    if not depths:
        return none
    d = max(depths)
    return {"depth": d,
            "decode_tok_s": float(mine[mine["context_depth"] == d]["decode_tok_s"].iloc[0]),
            "twin_decode_tok_s": float(
                theirs[theirs["context_depth"] == d]["decode_tok_s"].iloc[0])}


def kv_cache_findings(rows: list[dict]) -> list[Finding]:
    """One sentence per quantized KV cache with a measured saving: the bytes saved per token of
    context, and the quality lost as a perplexity change whose interval excludes zero
    (``kv_cache_tradeoff``) or one that this run does not tell apart from zero
    (``kv_cache_no_clear_loss``); a cache measured no smaller than f16's says so instead
    (``kv_cache_no_saving``)."""
    out = []
    for r in rows:
        saved = r["saved_bytes_per_token"]
        if not _measured(saved):
            continue
        numbers = {k: r[k] for k in ("kv_bytes_per_token", "twin_kv_bytes_per_token",
                                     "saved_bytes_per_token", "saved_pct", "ppl_delta_pct",
                                     "ppl_ci_low", "ppl_ci_high", "kld_mean")}
        numbers["saved_mib_per_1k"] = saved * 1024 / 2**20
        names = {"twin": r["twin"], "types": r["types"]}
        if saved <= 0:
            kind = "kv_cache_no_saving"
        elif not (_measured(r["ppl_ci_low"]) and _measured(r["ppl_ci_high"])):
            continue
        elif r["ppl_ci_low"] > 0 or r["ppl_ci_high"] < 0:
            kind = "kv_cache_tradeoff"
        else:
            kind = "kv_cache_no_clear_loss"
        out.append(Finding(kind, r["model"], r["precision"], numbers=numbers, names=names))
    return out


def imatrix_findings(ab: pd.DataFrame | None) -> list[Finding]:
    """Per pair, whether the importance matrix lowered or raised perplexity (the paired 95 %
    interval of the change excludes 0) or made no clear difference, with the KL divergences
    and sizes of both files."""
    out = []
    for row in ([] if ab is None else ab.to_dict("records")):
        low, high = row["ppl_change_pct_ci_low"], row["ppl_change_pct_ci_high"]
        if not (_measured(low) and _measured(high)):
            kind = "imatrix_no_interval"
        elif high < 0:
            kind = "imatrix_lowered_ppl"
        elif low > 0:
            kind = "imatrix_raised_ppl"
        else:
            kind = "imatrix_no_clear_difference"
        numbers = {k: row[k] for k in ("ppl_change_pct", "ppl_change_pct_ci_low",
                                       "ppl_change_pct_ci_high", "kld_imat", "kld_plain",
                                       "kld_change_ci_low", "kld_change_ci_high",
                                       "size_bytes_imat", "size_bytes_plain", "n_windows")}
        k_low, k_high = row["kld_change_ci_low"], row["kld_change_ci_high"]
        kld = (None if not (_measured(k_low) and _measured(k_high)) else
               "higher" if k_low > 0 else "lower" if k_high < 0 else "unclear")
        # a matrix that lowers perplexity while it moves the predictions further from the
        # unquantized model's (or the reverse) is said to, not left to the reader to spot
        disagree = ((kind == "imatrix_lowered_ppl" and kld == "higher")
                    or (kind == "imatrix_raised_ppl" and kld == "lower"))
        out.append(Finding(kind, row["model"], row["precision"], numbers,
                           {"plain": row["plain"], "calibration": row["calibration"],
                            "kld_direction": kld, "disagree": disagree}))
    return out
