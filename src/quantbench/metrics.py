"""Typed measurements: what a record measures, each figure with its unit and its column in the
summary table, so that records, the long table's units and the summary's columns are built from
the types, not from lists of keys.

A type's figures are dataclass fields made by ``metric`` (a number, with its unit) or ``text``.
``QualityMetrics`` is a quality record's (quantbench.scenarios.quality), ``GpuMetrics`` a GPU
trace record's (quantbench.scenarios.gpu), ``quantbench.points.LatencyPoint`` one operating
point of a latency record; each is built by one constructor and stored with ``to_metrics``.

Figures measured together form a part (the perplexity, the comparison with the reference, a GPU
phase): a record holds a part whole, an estimate it could not make included as None (an
interval from too few windows), or not at all (a reference has no comparison with itself).
Kept light (no numpy, pandas or torch): the aggregate and the DAG's helpers import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


def metric(unit: str, summary: str | bool | None = None, *, section: str | None = None,
           interval: bool = False, part: str | None = None):
    """A measured number: None until measured. ``unit``: its unit ('' for a pure number).
    ``summary``: its column in the summary table (None: the same name; False: the summary does
    not take it); ``section``: where the summary places it (None: with its type's main
    columns). An ``interval`` is a [low, high] pair: the summary takes it as two columns,
    ``<summary>_ci_low`` and ``<summary>_ci_high``. ``part``: the figures measured with it."""
    return field(default=None, metadata={"unit": unit, "summary": summary, "section": section,
                                         "interval": interval, "part": part})


def text(part: str | None = None):
    """A word the record states beside its numbers (no unit, never in the summary)."""
    return field(default=None, metadata={"part": part})


class Measurement:
    """What the typed measurements share: their figures' units and summary columns, their
    record's metrics and their reading back from one."""

    @classmethod
    def metric_fields(cls):
        return [f for f in fields(cls) if "unit" in f.metadata]

    @classmethod
    def units(cls) -> dict[str, str]:
        """Every figure's unit, under the figure's name (a record's metrics key)."""
        return {f.name: f.metadata["unit"] for f in cls.metric_fields()}

    @classmethod
    def summary_fields(cls):
        return [f for f in cls.metric_fields() if f.metadata["summary"] is not False]

    @staticmethod
    def summary_names(f) -> list[str]:
        """A figure's column (an interval's two) in the summary table."""
        if not f.metadata["interval"]:
            return [f.metadata["summary"] or f.name]
        base = f.metadata["summary"] or f.name.removesuffix("_ci95")
        return [f"{base}_ci_low", f"{base}_ci_high"]

    @classmethod
    def summary_columns(cls, section: str | None = None) -> list[str]:
        """The summary table's columns of one section of this type, in the type's order."""
        return [c for f in cls.summary_fields() if f.metadata["section"] == section
                for c in cls.summary_names(f)]

    @classmethod
    def summary_units(cls) -> dict[str, str]:
        """Every summary column of this type (all sections), with its unit."""
        return {c: f.metadata["unit"] for f in cls.summary_fields() for c in cls.summary_names(f)}

    def summary_metrics(self) -> dict:
        """The figures under the summary table's names (None where not measured)."""
        out = {}
        for f in self.summary_fields():
            value = getattr(self, f.name)
            if not f.metadata["interval"]:
                value = [value]
            elif not isinstance(value, list | tuple):
                value = [None, None]
            out.update(zip(self.summary_names(f), value, strict=True))
        return out

    def to_metrics(self) -> dict:
        """The record's metrics: the figures measured, each part whole or not at all."""
        values = asdict(self)
        parts = {f.metadata.get("part") for f in fields(self) if values[f.name] is not None}
        return {f.name: values[f.name] for f in fields(self)
                if values[f.name] is not None or f.metadata.get("part") in parts - {None}}

    @classmethod
    def from_dict(cls, data: dict):
        """The type's figures out of a record's metrics (other keys left out)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class QualityMetrics(Measurement):
    """One quality job: perplexity on the evaluation text (quantbench.perplexity); against the
    reference precision, the divergence of the log-probabilities, the paired change in
    perplexity and the agreement of greedy generations (quantbench.kld); the same divergence
    against the f16-KV twin for a quantized KV cache (``kv_``). KL divergences and log-ratios
    are in nats."""

    ppl: float | None = metric("", section="perplexity", part="perplexity")
    ppl_stderr: float | None = metric("", section="perplexity", part="perplexity")
    nll_mean: float | None = metric("nats", False, part="perplexity")
    n_tokens: int | None = metric("tokens", False, part="perplexity")  # positions scored
    n_windows: int | None = metric("", False, part="perplexity")
    # the reference's own: the divergence of its stored top-k from itself (the summary's floor
    # is kld_floor, from the half-precision run where there is one)
    kld_floor_self: float | None = metric("nats", False)
    # against the reference (intervals and errors from a block bootstrap over the windows:
    # None with fewer than three)
    kld_mean: float | None = metric("nats", part="divergence")
    kld_stderr: float | None = metric("nats", False, part="divergence")
    kld_mean_ci95: list | None = metric("nats", False, interval=True, part="divergence")
    kld_median: float | None = metric("nats", False, part="divergence")
    kld_p99: float | None = metric("nats", False, part="divergence")
    top1_agreement_pct: float | None = metric("%", part="divergence")
    ref_tail_mass_mean: float | None = metric("", False, part="divergence")  # outside top-k
    # change in the probability of the actual next token, percentiles (percentage points)
    delta_p_p01_pct: float | None = metric("%", False, part="divergence")
    delta_p_p05_pct: float | None = metric("%", False, part="divergence")
    delta_p_p50_pct: float | None = metric("%", False, part="divergence")
    delta_p_p95_pct: float | None = metric("%", False, part="divergence")
    delta_p_p99_pct: float | None = metric("%", False, part="divergence")
    ln_ppl_ratio: float | None = metric("nats", False, part="divergence")
    ln_ppl_ratio_stderr: float | None = metric("nats", False, part="divergence")
    # paired; the summary's ppl_delta_pct is the ratio of the two perplexities (the same
    # number but for rounding), with this interval
    ppl_delta_pct: float | None = metric("%", False, part="divergence")
    ppl_delta_pct_ci95: list | None = metric("%", "ppl_delta_pct", section="change",
                                             interval=True, part="divergence")
    gen_exact_match_pct: float | None = metric("%", part="agreement")
    gen_first_divergence_mean: float | None = metric("tokens", False, part="agreement")
    # against the same weights with an f16 KV cache: what the KV cache's type alone changes
    kv_ln_ppl_ratio: float | None = metric("nats", False, part="kv")
    kv_ln_ppl_ratio_stderr: float | None = metric("nats", False, part="kv")
    kv_ppl_delta_pct: float | None = metric("%", section="kv", part="kv")
    kv_ppl_delta_pct_ci95: list | None = metric("%", section="kv", interval=True, part="kv")
    kv_kld_mean: float | None = metric("nats", section="kv", part="kv")
    kv_kld_stderr: float | None = metric("nats", False, part="kv")
    kv_kld_mean_ci95: list | None = metric("nats", False, interval=True, part="kv")
    kv_kld_median: float | None = metric("nats", False, part="kv")
    kv_kld_p99: float | None = metric("nats", False, part="kv")
    kv_top1_agreement_pct: float | None = metric("%", False, part="kv")
    kv_ref_tail_mass_mean: float | None = metric("", False, part="kv")
    kv_delta_p_p01_pct: float | None = metric("%", False, part="kv")
    kv_delta_p_p05_pct: float | None = metric("%", False, part="kv")
    kv_delta_p_p50_pct: float | None = metric("%", False, part="kv")
    kv_delta_p_p95_pct: float | None = metric("%", False, part="kv")
    kv_delta_p_p99_pct: float | None = metric("%", False, part="kv")

    @classmethod
    def measured(cls, perplexity: dict, n_windows: int, *, floor: dict | None = None,
                 divergence: dict | None = None, agreement: dict | None = None,
                 kv_divergence: dict | None = None) -> QualityMetrics:
        """A quality job's figures from what measured them: ``perplexity``
        (quantbench.perplexity.perplexity) over ``n_windows`` windows; the reference's
        ``floor`` (kld.ReferenceWriter.floor); against the reference, ``divergence``
        (kld.Comparison.metrics) and ``agreement`` (its generation_agreement); against the
        f16-KV twin, ``kv_divergence``. A figure the type does not know is an error."""
        kv = {f"kv_{k}": v for k, v in (kv_divergence or {}).items()}
        return cls(**perplexity, n_windows=n_windows, **(floor or {}), **(divergence or {}),
                   **(agreement or {}), **kv)


@dataclass
class GpuMetrics(Measurement):
    """A GPU trace (quantbench.scenarios.gpu): the card idle with the model loaded, then windows
    of whole runs (``generate``: a prefill, then decode steps) and of prefills alone
    (quantbench.scenarios.energy). Per window NVML's mean utilisation and SM clock over its
    samples and its energy from the card's energy counter or, where that did not move, from the
    power samples (``<window>_energy_method``); the decode steps' energy is the generate
    window's less its prefills' (``decode_``). A phase's power is its energy over its time."""

    power_limit_w: float | None = metric("W", False)  # what the card enforced
    idle_s: float | None = metric("s", False, part="idle")
    idle_w: float | None = metric("W", part="idle")  # the card's draw, nothing running
    idle_energy_method: str | None = text(part="idle")
    # each window's total (its prefills, its runs)
    prefill_s: float | None = metric("s", False, part="prefill")
    prefills: int | None = metric("", False, part="prefill")
    prefill_power_w: float | None = metric("W", False, part="prefill")
    prefill_energy_j: float | None = metric("J", False, part="prefill")
    prefill_j_per_tok: float | None = metric("J/tok", False, part="prefill")  # prompt tokens
    prefill_energy_method: str | None = text(part="prefill")  # counter | power samples
    prefill_gpu_util_pct: float | None = metric("%", False, part="prefill")
    prefill_mem_util_pct: float | None = metric("%", False, part="prefill")
    prefill_sm_clock_mhz: float | None = metric("MHz", False, part="prefill")
    prefill_samples: int | None = metric("", False, part="prefill")
    generate_s: float | None = metric("s", False, part="generate")
    generate_runs: int | None = metric("", False, part="generate")
    generate_power_w: float | None = metric("W", False, part="generate")
    generate_energy_j: float | None = metric("J", False, part="generate")
    generate_energy_method: str | None = text(part="generate")
    generate_gpu_util_pct: float | None = metric("%", False, part="generate")
    generate_mem_util_pct: float | None = metric("%", False, part="generate")
    generate_sm_clock_mhz: float | None = metric("MHz", False, part="generate")
    generate_samples: int | None = metric("", False, part="generate")
    # the generate window's decode steps alone
    decode_s: float | None = metric("s", False, part="decode")
    decode_power_w: float | None = metric("W", False, part="decode")
    decode_energy_j: float | None = metric("J", False, part="decode")
    decode_j_per_tok: float | None = metric("J/tok", False, part="decode")

    @classmethod
    def upgraded(cls, metrics: dict) -> dict:
        """A trace record's metrics under today's names. A trace made before the decode steps'
        energy was apart from the prefills' called its window of whole runs "decode": its
        ``decode_`` figures are the generate window's, and its figures per decoded token
        (``decode_energy_j_per_tok``, ``energy_j_per_tok``, ``tok_per_j``: prefills included)
        are left out; its prefill phase was prefills alone (``prefill_energy_j_per_tok`` is
        today's ``prefill_j_per_tok``, over the phase's prompt tokens)."""
        if "decode_energy_j_per_tok" not in metrics:
            return metrics
        out = {}
        for key, value in metrics.items():
            if key in MIXED_PHASE_FIGURES:
                continue
            if key == "prefill_energy_j_per_tok":
                key = "prefill_j_per_tok"
            elif key.startswith("decode_"):
                key = "generate_" + key.removeprefix("decode_")
            out[key] = value
        return out


# the figures of a trace made before the decode steps' energy was apart (GpuMetrics.upgraded)
MIXED_PHASE_FIGURES = ("decode_energy_j_per_tok", "energy_j_per_tok", "tok_per_j")
# ... and the name its window of whole runs had then
RENAMED_PHASES = {"decode": "generate"}
