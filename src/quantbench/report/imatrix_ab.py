"""The importance-matrix A/B: each GGUF type quantized with an importance matrix against the
same type without one, paired over the same scored windows.

Both precisions were scored against the same reference on the same positions, so per position
the difference of their NLL differences from the reference is their own NLL difference, and the
difference of their KL divergences is paired too. The mean of each, with a 95 % interval from a
block bootstrap over the windows (``stats.block_bootstrap_mean``, as the ΔPPL against the
reference), gives the change in perplexity (%) and in mean KL divergence that the matrix made.
"""

from __future__ import annotations

import numpy as np

from quantbench.records import atomic_write_text
from quantbench.stats import block_bootstrap_mean

COLUMNS = ["model", "precision", "plain", "calibration", "gguf_type", "ppl_change_pct",
           "ppl_change_pct_ci_low", "ppl_change_pct_ci_high", "kld_imat", "kld_plain",
           "kld_change", "kld_change_ci_low", "kld_change_ci_high", "size_bytes_imat",
           "size_bytes_plain", "n_windows", "calibration_ids", "scored_ids", "interval_method"]


def _blocks(values: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(values, np.cumsum(lengths)[:-1])


def paired(imat: dict, plain: dict) -> dict:
    """The paired change (with matrix minus without) from the two precisions' per-position
    arrays (``kld.Comparison.per_position``, as their quality jobs store them)."""
    if not np.array_equal(imat["window_len"], plain["window_len"]):
        raise ValueError("the two precisions were scored on different windows")
    lengths = imat["window_len"]
    dnll = block_bootstrap_mean(_blocks(imat["dnll"] - plain["dnll"], lengths))
    dkld = block_bootstrap_mean(_blocks(imat["kld"] - plain["kld"], lengths))

    def pct(v):
        return None if v is None else 100 * float(np.expm1(v))

    ci, kci = dnll["ci95"] or (None, None), dkld["ci95"] or (None, None)
    return {"ppl_change_pct": pct(dnll["mean"]), "ppl_change_pct_ci_low": pct(ci[0]),
            "ppl_change_pct_ci_high": pct(ci[1]), "kld_imat": float(imat["kld"].mean()),
            "kld_plain": float(plain["kld"].mean()), "kld_change": dkld["mean"],
            "kld_change_ci_low": kci[0], "kld_change_ci_high": kci[1],
            "n_windows": int(len(lengths)), "interval_method": dnll["method"]}


def table(entries: list[dict]) -> list[dict]:
    """One row a pair: ``entries`` give model, precision, plain, calibration, gguf_type and the
    paths of both precisions' log-probabilities (``imat_npz``, ``plain_npz``), GGUF records
    (``imat_info``, ``plain_info``) and the calibration split (``split``). A pair whose quality
    job stored no per-position arrays (a failed measurement) is left out."""
    import json
    from pathlib import Path

    rows = []
    for e in entries:
        with np.load(e["imat_npz"]) as a, np.load(e["plain_npz"]) as b:
            if "dnll" not in a or "dnll" not in b:
                continue
            stats = paired({k: a[k] for k in a.files}, {k: b[k] for k in b.files})
        split = json.loads(Path(e["split"]).read_text())
        rows.append({
            **{k: e[k] for k in ("model", "precision", "plain", "calibration", "gguf_type")},
            **stats,
            "size_bytes_imat": json.loads(Path(e["imat_info"]).read_text())["size_bytes"],
            "size_bytes_plain": json.loads(Path(e["plain_info"]).read_text())["size_bytes"],
            "calibration_ids": str(split.get("calibration_ids", "")),
            "scored_ids": str(split.get("scored_ids", ""))})
    return rows


def write_csv(entries: list[dict], path) -> None:
    import pandas as pd


    atomic_write_text(path, pd.DataFrame(table(entries), columns=COLUMNS).to_csv(index=False))
