"""Operating points: what one latency measurement is keyed by, and what it measured there.

An operating point is (prompt tokens, batch size, context depth): ``batch_size`` sequences, each
with its KV cache filled to ``context_depth`` tokens, prefill ``prompt_tokens`` more and then
decode. ``LatencyPoint`` is the typed record of one point: every metric field carries its unit
(and, where the summary table names it otherwise, its summary column), so the long table, the
points table and the summary are built from the type, not from lists of keys. Kept light (no
numpy, pandas or torch): the aggregate and analysis code import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

KEYS = ("prompt_tokens", "batch_size", "context_depth")


def _metric(unit: str, summary: str | bool | None = None):
    """A measured figure: None until measured (a point that failed has none). ``summary``: its
    column in the summary table (None: the same name; False: the summary takes it elsewhere)."""
    return field(default=None, metadata={"unit": unit, "summary": summary})


@dataclass(frozen=True, order=True)
class OperatingPoint:
    batch_size: int
    context_depth: int
    prompt_tokens: int

    def label(self) -> str:
        return f"p{self.prompt_tokens} b{self.batch_size} d{self.context_depth}"


@dataclass
class LatencyPoint:
    """One measured operating point of one precision."""

    prompt_tokens: int
    batch_size: int
    context_depth: int
    status: str = "ok"
    reason: str | None = None
    runs: int = 0  # timed runs, over every process
    steps: int = 0  # timed decode steps, over every run
    processes: int = 0  # fresh processes whose runs these figures pool
    prefill_ms: float | None = _metric("ms")  # time to first token of the batch, p50
    prefill_tok_s: float | None = _metric("tok/s")  # batch x prompt / prefill time, mean
    # batch x steps / decode time: each process's mean over its runs, then their mean
    decode_tok_s: float | None = _metric("tok/s")
    # its 95 % interval over the processes' means (Student t, cut at 0; None from one process)
    decode_tok_s_ci_low: float | None = _metric("tok/s")
    decode_tok_s_ci_high: float | None = _metric("tok/s")
    decode_tok_s_per_seq: float | None = _metric("tok/s")  # what one sequence's user sees
    decode_steady_tok_s: float | None = _metric("tok/s")  # without the first step
    decode_cv: float | None = _metric("")  # of every run's decode tok/s, over every process
    token_ms_p50: float | None = _metric("ms", "decode_token_ms_p50")  # one step of the batch
    token_ms_p90: float | None = _metric("ms", "decode_token_ms_p90")
    token_ms_p99: float | None = _metric("ms", "decode_token_ms_p99")
    first_step_ms: float | None = _metric("ms", "decode_first_step_ms")
    decode_ctx_mean: float | None = _metric("tokens")  # mean KV length of a sequence in decode
    kv_tokens_per_seq: int | None = _metric("tokens")  # KV length of a sequence at the end
    peak_mem_mib: float | None = _metric("MiB")  # largest sample while serving this point
    # the engine's KV cache at this batch size (the summary's is the memory breakdown's)
    kv_cache_mib: float | None = _metric("MiB", summary=False)
    # GPU: NVML energy over the timed runs (the summary's is the trace_gpu stage's)
    energy_j_per_tok: float | None = _metric("J/tok", summary=False)

    @property
    def key(self) -> OperatingPoint:
        return OperatingPoint(self.batch_size, self.context_depth, self.prompt_tokens)

    @classmethod
    def metric_fields(cls):
        return [f for f in fields(cls) if "unit" in f.metadata]

    @classmethod
    def units(cls) -> dict[str, str]:
        return {f.name: f.metadata["unit"] for f in cls.metric_fields()}

    def summary_metrics(self) -> dict:
        """The point's figures under the summary table's names (the headline point's row)."""
        return {f.metadata["summary"] or f.name: getattr(self, f.name)
                for f in self.metric_fields() if f.metadata["summary"] is not False}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LatencyPoint:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def sweep(prompt_tokens, batch_sizes, context_depths) -> list[OperatingPoint]:
    """Every point of the grid, in the order a sweep measures them: batch sizes ascending (one
    context each), then depths ascending (one fill each), then prompts."""
    return sorted({OperatingPoint(b, d, p) for b in batch_sizes for d in context_depths
                   for p in prompt_tokens})


def headline(prompt_tokens, headline_spec: dict | None) -> OperatingPoint:
    """The point the summary table reports (default: batch 1, depth 0, the first prompt)."""
    spec = headline_spec or {}
    return OperatingPoint(spec.get("batch_size", 1), spec.get("context_depth", 0),
                          spec.get("prompt_tokens") or prompt_tokens[0])


# results/points.csv: one row per (model, precision, operating point), from the typed records
# (aggregate writes it; a table made before a column existed reads back with NaN there)
COLUMNS = ("model", "precision", "backend", "status", "reason", *KEYS,
           *(f.name for f in LatencyPoint.metric_fields()), "weights_mib", "device", "gpu_name",
           "run_id")
