"""Operating points: what one latency measurement is keyed by, and what it measured there.

An operating point is (prompt tokens, batch size, context depth): ``batch_size`` sequences, each
with its KV cache filled to ``context_depth`` tokens, prefill ``prompt_tokens`` more and then
decode. ``LatencyPoint`` is the typed record of one point: every metric field carries its unit
(and, where the summary table names it otherwise, its summary column), so the long table, the
points table and the summary are built from the type, not from lists of keys (quantbench.metrics
has the typed figures of the other records). Kept light (no numpy, pandas or torch): the
aggregate and analysis code import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from quantbench.metrics import Measurement, metric, text
from quantbench.records import Status

KEYS = ("prompt_tokens", "batch_size", "context_depth")


@dataclass(frozen=True, order=True)
class OperatingPoint:
    batch_size: int
    context_depth: int
    prompt_tokens: int

    def label(self) -> str:
        return f"p{self.prompt_tokens} b{self.batch_size} d{self.context_depth}"


@dataclass
class LatencyPoint(Measurement):
    """One measured operating point of one precision. Its figures under their summary names
    are the latency record's metrics at the headline point (``summary_metrics``)."""

    prompt_tokens: int
    batch_size: int
    context_depth: int
    status: Status = Status.OK
    reason: str | None = None
    runs: int = 0  # timed runs, over every process
    steps: int = 0  # timed decode steps, over every run
    processes: int = 0  # fresh processes whose runs these figures pool
    prefill_ms: float | None = metric("ms")  # time to first token of the batch, p50
    # ... its p90 over every run of every process (what a scenario's TTFT target is held to),
    # and the 95 % interval of its mean over the processes' means (Student t; None from one)
    prefill_ms_p90: float | None = metric("ms")
    prefill_ms_ci_low: float | None = metric("ms")
    prefill_ms_ci_high: float | None = metric("ms")
    prefill_tok_s: float | None = metric("tok/s")  # batch x prompt / prefill time, mean
    # batch x steps / decode time: each process's mean over its runs, then their mean
    decode_tok_s: float | None = metric("tok/s")
    # its 95 % interval over the processes' means (Student t, cut at 0; None from one process)
    decode_tok_s_ci_low: float | None = metric("tok/s")
    decode_tok_s_ci_high: float | None = metric("tok/s")
    decode_tok_s_per_seq: float | None = metric("tok/s")  # what one sequence's user sees
    token_ms_p50: float | None = metric("ms", "decode_token_ms_p50")  # one step of the batch
    token_ms_p90: float | None = metric("ms", "decode_token_ms_p90")
    token_ms_p99: float | None = metric("ms", "decode_token_ms_p99")
    decode_cv: float | None = metric("")  # of every run's decode tok/s, over every process
    decode_steady_tok_s: float | None = metric("tok/s")  # without the first step
    first_step_ms: float | None = metric("ms", "decode_first_step_ms")
    # the point itself: the summary places these beside its prompt and batch size
    decode_ctx_mean: float | None = metric("tokens", section="point")  # mean KV length in decode
    kv_tokens_per_seq: int | None = metric("tokens", section="point")  # KV length at the end
    peak_mem_mib: float | None = metric("MiB")  # largest sample while serving this point
    # the engine's KV cache at this batch size (the summary's is the memory breakdown's)
    kv_cache_mib: float | None = metric("MiB", summary=False)
    # GPU: the card's energy counter, each phase apart (scenarios/energy.py): the prefill's over
    # the batch's prompt tokens, the decode steps' alone over the tokens they decoded. A record
    # made before the phases were apart has neither (its energy_j_per_tok, the timed runs'
    # energy over the decoded tokens with every prefill in it, is not read).
    prefill_j_per_tok: float | None = metric("J/tok")
    decode_j_per_tok: float | None = metric("J/tok")
    # set where the records are read (quantbench.report.aggregate): why a phase's energy is not
    # given, its J/token x tok/s being above the card's power limit (power_check)
    energy_note: str | None = text()

    def __post_init__(self):
        self.status = Status(self.status)

    @property
    def key(self) -> OperatingPoint:
        return OperatingPoint(self.batch_size, self.context_depth, self.prompt_tokens)

    def to_dict(self) -> dict:
        return asdict(self)


def sweep(prompt_tokens, batch_sizes, context_depths, pairs=None) -> list[OperatingPoint]:
    """Every point of the grid, in the order a sweep measures them: batch sizes ascending (one
    context each), then depths ascending (one fill each), then prompts. ``pairs`` (the config's
    latency.points: batch size and depth of each point to measure) keeps those of the grid."""
    keep = None if not pairs else {(q["batch_size"], q.get("context_depth", 0)) for q in pairs}
    return sorted({OperatingPoint(b, d, p) for b in batch_sizes for d in context_depths
                   for p in prompt_tokens if keep is None or (b, d) in keep})


def headline(prompt_tokens, headline_spec: dict | None) -> OperatingPoint:
    """The point the summary table reports (default: batch 1, depth 0, the first prompt)."""
    spec = headline_spec or {}
    return OperatingPoint(spec.get("batch_size", 1), spec.get("context_depth", 0),
                          spec.get("prompt_tokens") or prompt_tokens[0])


def phase_power_w(point: LatencyPoint) -> dict[str, float | None]:
    """Each phase's mean power: its J per token x its tokens per second (prefill: over the
    batch's prompt tokens; decode: over the decoded tokens)."""
    def power(j_per_tok, tok_s):
        return None if j_per_tok is None or tok_s is None else j_per_tok * tok_s

    return {"prefill_w": power(point.prefill_j_per_tok, point.prefill_tok_s),
            "decode_w": power(point.decode_j_per_tok, point.decode_tok_s)}


def power_check(point: LatencyPoint, limit_w: float | None) -> LatencyPoint:
    """The point with a phase's energy given only where its mean power (``phase_power_w``) is
    within the card's power limit ``limit_w``: above it, the figure is a measurement error, not
    a cost. It is left out and ``energy_note`` says so, with the power it gives and the limit."""
    if limit_w is None or limit_w != limit_w:
        return point
    over = {k: w for k, w in phase_power_w(point).items() if w is not None and w > limit_w}
    if not over:
        return point
    names = {"prefill_w": "prefill_j_per_tok", "decode_w": "decode_j_per_tok"}
    said = "; ".join(f"{k.removesuffix('_w')} J/token × tok/s = {w:.0f} W" for k, w in over.items())
    return replace(point, **{names[k]: None for k in over},
                   energy_note=f"{said}, above the card's power limit of {limit_w:.0f} W: a "
                               "measurement error, not shown")


# results/points.csv: one row per (model, precision, operating point), from the typed records
# (aggregate writes it; a table made before a column existed reads back with NaN there)
COLUMNS = ("model", "precision", "backend", "status", "reason", *KEYS,
           *(f.name for f in LatencyPoint.metric_fields()), "weights_mib", "device", "gpu_name",
           # the record's run (quantbench.runs) and code
           "run_id", "git_commit", "git_dirty",
           # the model's decode limit at the point's batch size, and the point's share of it
           "decode_limit_tok_s", "limit_pct",
           # each phase's mean power (phase_power_w) against the card's limit (power_check)
           "prefill_w", "decode_w", "power_limit_w", "energy_note")
