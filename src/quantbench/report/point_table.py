"""The operating-points table as the report reads it: the ok points, the sweep's keys, the
settings of the config's report section, the derived columns."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pandas as pd

from quantbench import precisions, roofline
from quantbench.points import COLUMNS as POINT_COLUMNS
from quantbench.points import KEYS
from quantbench.records import Status
from quantbench.stats import known as _known

CONTEXT = ("prompt_tokens", "context_depth")  # a context: one curve against the batch size


FASTER = "faster"


SLOWER = "slower"


UNCLEAR = "tie"  # the 95 % intervals overlap, or one is unavailable


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


def ok_points(points: pd.DataFrame) -> pd.DataFrame:
    return points[(points["status"] == Status.OK) & points["decode_tok_s"].notna()]


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
        if shape is None or row["status"] != Status.OK:
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


def in_table_order(df: pd.DataFrame) -> pd.DataFrame:
    rank = {name: i for i, name in enumerate(precisions.table())}
    return (df.assign(_rank=df["precision"].map(rank).fillna(len(rank)))
            .sort_values(["model", "_rank", "precision", *KEYS], kind="stable")
            .drop(columns="_rank"))
