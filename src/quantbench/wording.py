"""How the report words each kind of finding: one jinja snippet per kind, kept apart from the
analysis that decides which findings hold (``quantbench.analysis``).

A snippet sees the finding's ``model`` and ``precision``, its ``numbers`` (figures read from
the summary table, or derived from it) and its ``names`` (other precisions, type lists). Causal
words ("goes to dequantizing", "bound by overhead", "fell back", "shared with other work")
belong only to kinds the analysis emits when the measurement that supports them holds.
"""

from __future__ import annotations

import math

import jinja2

WORDING = {
    # -- hardware analysis --------------------------------------------------------------------
    "compiled_faster": (
        "{{ model }}: {{ precision }} decodes at {{ compiled_tok_s | fmt(1) }} tok/s, "
        "{{ speedup | fmt(2) }}× eager {{ eager }} ({{ eager_tok_s | fmt(1) }} tok/s) with the "
        "same weights, their 95 % intervals apart: eager decode"
        "{% if eager_mbu_pct is known and compiled_mbu_pct is known %} "
        "({{ eager_mbu_pct | fmt(1) }} % MBU against {{ compiled_mbu_pct | fmt(1) }} %){% endif %}"
        " is bound by per-token Python and kernel-launch overhead, not by memory: compiling "
        "removes {{ removed_pct | fmt(0) }} % of its time per token."
    ),
    "compiled_not_faster": (
        "{{ model }}: {{ precision }} decodes at {{ compiled_tok_s | fmt(1) }} tok/s, "
        "{{ speedup | fmt(2) }}× eager {{ eager }} ({{ eager_tok_s | fmt(1) }} tok/s) with the "
        "same weights: compiling does not make decode clearly faster here (clearly: at least "
        "{{ margin | fmt(2) }}× with the 95 % intervals apart), so this run does not say what "
        "bounds eager decode."
    ),
    "bytes_to_speed": (
        "{{ model }}: {{ kept | fmt(0) }} of {{ n | fmt(0) }} quantized precisions turn their "
        "fewer bytes per token into a matching speed-up (at least {{ realised_min | fmt(0) }} % "
        "of it); furthest off is {{ precision }}, which reads {{ bytes_ratio | fmt(1) }}× fewer "
        "bytes than {{ baseline }} and decodes {{ speed_ratio | fmt(2) }}× as fast "
        "({{ realised_pct | fmt(0) }} % of the byte saving realised)."
    ),
    "bytes_to_speed_slower": (
        "{{ model }}: {{ kept | fmt(0) }} of {{ n | fmt(0) }} quantized precisions turn their "
        "fewer bytes per token into a matching speed-up (at least {{ realised_min | fmt(0) }} % "
        "of it); furthest off is {{ precision }}, which reads {{ bytes_ratio | fmt(1) }}× fewer "
        "bytes than {{ baseline }} yet decodes {{ speed_ratio | fmt(2) }}× as fast, slower with "
        "the 95 % intervals apart: its time per token goes to dequantizing and to kernel "
        "overhead, not to reading memory."
    ),
    # -- anomalies ----------------------------------------------------------------------------
    "slower_than_baseline": (
        "{{ model }}: {{ precision }} decodes slower than its baseline {{ baseline }} "
        "({{ tok_s | fmt(1) }} against {{ baseline_tok_s | fmt(1) }} tok/s, "
        "{{ speed_ratio | fmt(2) }}×) although its weights are {{ size_ratio | fmt(1) }}× smaller"
        "{% if not resolved %} (the 95 % confidence intervals overlap){% endif %}"
        "{% if split in ('all', 'part') %}; without outlier decomposition ({{ t0 }}) it runs at "
        "{{ t0_tok_s | fmt(1) }} tok/s, so the LLM.int8 split into an int8 and an fp16 matmul "
        "explains {{ split }} of the loss"
        "{% elif split == 'none' %}; without outlier decomposition ({{ t0 }}) it runs at "
        "{{ t0_tok_s | fmt(1) }} tok/s, no faster, so the LLM.int8 split into an int8 and an "
        "fp16 matmul does not explain the loss"
        "{% elif split == 'unmeasured' %}; run {{ t0 }} as well (no outlier decomposition) to "
        "measure how much of this the LLM.int8 split into an int8 and an fp16 matmul explains"
        "{% endif %}."
    ),
    "ppl_jump": (
        "{{ model }}: {{ precision }} loses {{ ppl_delta_pct | signed }} % perplexity against "
        "{{ reference }}, beyond the {{ ppl_jump_pct | fmt_g }} % expected of these formats "
        "(report.ppl_jump_pct)."
    ),
    "out_of_line_with_size": (
        "{{ model }}: {{ precision }} ({{ size_mib | fmt(1) }} MiB) loses "
        "{{ ppl_delta_pct | signed }} % perplexity, more than the smaller {{ smaller }} "
        "({{ smaller_size_mib | fmt(1) }} MiB, {{ smaller_ppl_delta_pct | signed }} %): a "
        "perplexity jump out of line with its size."
    ),
    "noisy_timings": (
        "{{ model }}: {{ precision }}'s decode timings are noisy: coefficient of variation "
        "{{ cv_pct | fmt(1) }} % across runs (above {{ cv_threshold_pct | fmt_g }} %); compare "
        "it with care."
    ),
    "named_type_low": (
        "{{ model }}: {{ precision }} holds only {{ named_type_pct | fmt(1) }} % of its weights in "
        "the type it is named after ({{ weight_types }})"
        "{% if misaligned_rows_pct is known and misaligned_rows_pct > 0 %}: "
        "{{ misaligned_rows_pct | fmt(1) }} % of its weights are in matrices whose rows are not "
        "multiples of {{ row_block | fmt(0) }}, which llama.cpp cannot store in that type and "
        "puts in others"
        "{% elif misaligned_rows_pct is known %}; every matrix's rows are multiples of "
        "{{ row_block | fmt(0) }}, so row widths do not explain it: the other types are "
        "llama.cpp's choices for this file type"
        "{% endif %}; its size and quality are those of this mix, not of the named type alone."
    ),
    # -- limitations --------------------------------------------------------------------------
    "timing_spread": (
        "Timings are from device `{{ device }}`: the decode coefficient of variation is "
        "{{ cv_median_pct | fmt(1) }} % in the median and {{ cv_max_pct | fmt(1) }} % at worst "
        "({{ precision }})."
    ),
    "machine_shared": (
        "Timings are from a machine shared with other work: while {{ precision }} was measured, "
        "other processes used {{ other_cpu_pct | fmt(1) }} % of the machine's CPU time"
        "{% if steal_pct is known and steal_pct > 0 %} and the hypervisor took "
        "{{ steal_pct | fmt(1) }} % (steal){% endif %}, load average {{ loadavg | fmt(2) }} "
        "(above {{ other_cpu_max_pct | fmt(0) }} % other CPU or {{ steal_max_pct | fmt(0) }} % "
        "steal); such work slows and spreads the timings, so small differences between "
        "precisions may not hold on an idle machine."
    ),
    "machine_quiet": (
        "Other work on the machine while the timings were taken: at most "
        "{{ other_cpu_pct | fmt(1) }} % of its CPU time went to other processes "
        "({{ precision }}){% if steal_pct is known %} and at most {{ steal_pct | fmt(1) }} % "
        "to steal{% endif %}."
    ),
}


def _known(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _env() -> jinja2.Environment:
    from quantbench.analysis import fmt

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = fmt
    env.filters["signed"] = lambda v: f"{v:+.2f}"
    env.filters["fmt_g"] = lambda v: f"{v:g}"
    env.tests["known"] = _known
    return env


_TEMPLATES: dict[str, jinja2.Template] = {}


def say(finding) -> str:
    """The sentence of one finding (``analysis.Finding``)."""
    if finding.kind not in _TEMPLATES:
        _TEMPLATES[finding.kind] = _env().from_string(WORDING[finding.kind])
    return _TEMPLATES[finding.kind].render(
        model=finding.model, precision=finding.precision,
        **{k: (float(v) if isinstance(v, int | float) else v)
           for k, v in finding.numbers.items()},
        **finding.names)
