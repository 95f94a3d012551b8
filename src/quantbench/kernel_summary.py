"""Where decode and prefill time go: a profiler trace's kernels summarised (no torch here).

A trace (``quantbench.scenarios.kernels``) gives one row per kernel or operator name with its
self time and its number of calls: on a GPU the device's kernels, memory copies and sets (self
time = device time), on the CPU the operators (self CPU time). This module classifies each name
coarsely by pattern (``classify``), ranks the names by self time and builds the typed summary
(``KernelSummary`` for decode steps, ``PrefillSummary`` for one prefill) that the record, the
aggregate's results/kernels.csv and the report share.
Kept light: the aggregate, the report and the DAG's helpers import it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields

from quantbench.metrics import Measurement, metric

# The coarse classes, in the order the report lists them. "elementwise" covers reductions too
# (norms, softmax-free sums, argmax): kernels that stream a tensor once with little arithmetic.
CLASSES = ("gemm", "attention", "dequant", "elementwise", "copy", "other")
CLASS_WORDS = {"gemm": "matrix multiplication (gemm/gemv)", "attention": "attention",
               "dequant": "dequantization and quantization", "elementwise":
               "elementwise and reduction", "copy": "copy and memory-set", "other": "other"}
# First match wins: attention kernels' names often hold "gemm" or "cutlass", fused
# dequantize-matmul kernels "mm", inductor's fused pointwise kernels the ops they fuse ("_to_copy").
PATTERNS = tuple((cls, re.compile(rx, re.IGNORECASE)) for cls, rx in (
    ("attention", r"attention|attn|flash|fmha|sdpa|softmax"),
    ("dequant", r"quant|rowstats|row_stats"),
    ("gemm", r"gemm|gemv|matmul|linear|cublas|cutlass|nvjet|xmma|splitk|triton_tem"
             r"|(^|[^a-z])(add|b)?mm([^a-z]|$)|_mm"),
    ("elementwise", r"triton_(poi|per|red)"),
    ("copy", r"memcpy|memset|copy|clone|contiguous|(^|::)(to|cat|stack|index_put_?"
             r"|index_copy_?|slice_scatter)$"),
    ("elementwise", r"elementwise|pointwise|reduce|norm|silu|gelu|relu|act_and_mul|rotary|rope"
                    r"|(^|::)(add|mul|sub|div|neg|pow|rsqrt|mean|sum|exp|tanh|sigmoid|where|fill"
                    r"|zero|cos|sin|argmax|max|min|clamp|masked_fill|triu|tril)_?$"),
))
NAME_CHARS = 200  # a kernel's name is kept to this many characters (C++ templates run long)
# host calls that launch work on a CUDA device: kernels one by one, or a whole CUDA graph
LAUNCH = re.compile(r"^cu(da)?(LaunchKernel|LaunchCooperativeKernel|GraphLaunch)")


def classify(name: str) -> str:
    """The coarse class of a kernel or operator, from its name."""
    for cls, rx in PATTERNS:
        if rx.search(name):
            return cls
    return "other"


@dataclass(frozen=True)
class TraceRow:
    """One kernel or operator name of a trace: its total self time (µs) and number of calls."""

    name: str
    self_us: float
    calls: int


def _metric(unit: str):
    # results/kernels.csv takes these, the summary none
    return metric(unit, summary=False)


class TraceSummary(Measurement):
    """What a trace's summaries share: their figures by name, and those measured."""

    @classmethod
    def metric_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if "unit" in f.metadata]

    def metrics(self) -> dict:
        """The measured figures (None: not measured here, e.g. launches on the CPU)."""
        return {k: v for k, v in asdict(self).items()
                if k in self.metric_names() and v is not None}


@dataclass
class KernelSummary(TraceSummary):
    """A decode trace summarised. ``busy_*`` is the time spent in the kernels (or CPU
    operators) themselves; the rest of a step is the host's Python, dispatch and launch work
    (and the profiler's own cost, which makes ``step_ms`` a little longer than an untraced
    step)."""

    device: str  # cuda: device kernels were traced; cpu: CPU operators
    steps: int
    tokens: int  # steps × batch size
    step_ms: float | None = _metric("ms")  # wall time of one decode step under the profiler
    busy_ms_per_step: float | None = _metric("ms")
    busy_pct: float | None = _metric("%")  # busy_ms_per_step / step_ms
    kernels_per_token: float | None = _metric("")  # kernels (GPU) or operators (CPU) run
    launches_per_token: float | None = _metric("")  # host launch calls (GPU only)
    gemm_pct: float | None = _metric("%")
    attention_pct: float | None = _metric("%")
    dequant_pct: float | None = _metric("%")
    elementwise_pct: float | None = _metric("%")
    copy_pct: float | None = _metric("%")
    other_pct: float | None = _metric("%")
    # a compiled decode's torch._dynamo counters, over loading, compiling, warm-up and trace
    graph_breaks: int | None = _metric("")
    graphs: int | None = _metric("")
    recompiles: int | None = _metric("")
    cudagraph_skips: int | None = _metric("")
    compiles_in_trace: int | None = _metric("")  # compilations during the traced steps
    top: list = field(default_factory=list)  # the top kernels: name, class, self_ms, share, calls

    def classes(self) -> dict[str, float]:
        """Share (0..1) of the busy time per class."""
        return {c: getattr(self, f"{c}_pct") / 100 for c in CLASSES
                if getattr(self, f"{c}_pct") is not None}


def summarise(rows: list[TraceRow], *, device: str, steps: int, batch_size: int, wall_s: float,
              launches: int | None = None, top: int = 15, compile_counts: dict | None = None
              ) -> KernelSummary:
    """The summary of ``steps`` traced decode steps of ``batch_size`` sequences that took
    ``wall_s`` seconds: the ``top`` names by self time with their share of the total, the share
    of each class, and the counts per decoded token."""
    total_us = sum(r.self_us for r in rows)
    tokens = steps * batch_size
    by_class = dict.fromkeys(CLASSES, 0.0)
    for r in rows:
        by_class[classify(r.name)] += r.self_us
    ranked = sorted(rows, key=lambda r: (-r.self_us, r.name))[:top]
    return KernelSummary(
        device=device, steps=steps, tokens=tokens,
        step_ms=wall_s * 1e3 / steps,
        busy_ms_per_step=total_us / 1e3 / steps,
        busy_pct=100 * total_us / 1e6 / wall_s if wall_s > 0 else None,
        kernels_per_token=sum(r.calls for r in rows) / tokens,
        launches_per_token=None if launches is None else launches / tokens,
        **{f"{c}_pct": (100 * us / total_us if total_us else None)
           for c, us in by_class.items()},
        **(compile_counts or {}),
        top=[{"name": r.name[:NAME_CHARS], "class": classify(r.name), "self_ms": r.self_us / 1e3,
              "share": r.self_us / total_us if total_us else None, "calls": r.calls}
             for r in ranked],
    )


@dataclass
class PrefillSummary(TraceSummary):
    """One traced prefill of the batch's prompts (the step before the first token), summarised
    as a decode trace is: its wall time under the profiler, the time in its kernels (or CPU
    operators) and each class's share of that."""

    prefill_trace_ms: float | None = _metric("ms")
    prefill_busy_ms: float | None = _metric("ms")
    prefill_busy_pct: float | None = _metric("%")
    prefill_kernels: int | None = _metric("")
    prefill_gemm_pct: float | None = _metric("%")
    prefill_attention_pct: float | None = _metric("%")
    prefill_dequant_pct: float | None = _metric("%")
    prefill_elementwise_pct: float | None = _metric("%")
    prefill_copy_pct: float | None = _metric("%")
    prefill_other_pct: float | None = _metric("%")
    top: list = field(default_factory=list)


def summarise_prefill(rows: list[TraceRow], *, wall_s: float, top: int = 15) -> PrefillSummary:
    """The summary of one traced prefill that took ``wall_s`` seconds."""
    decode = summarise(rows, device="", steps=1, batch_size=1, wall_s=wall_s, top=top)
    return PrefillSummary(
        prefill_trace_ms=decode.step_ms, prefill_busy_ms=decode.busy_ms_per_step,
        prefill_busy_pct=decode.busy_pct, prefill_kernels=sum(r.calls for r in rows),
        **{f"prefill_{c}_pct": getattr(decode, f"{c}_pct") for c in CLASSES}, top=decode.top)
