"""The report's analysis: recommendations per scenario, trade-offs, anomalies and limitations.

Every sentence is computed from the summary table (one row per model and precision, as written
by ``aggregate.summary_table``), the budgets of the config's ``report:`` section and the model
descriptions; nothing here is boilerplate that would read the same whatever was measured.
The hardware analysis, anomalies and timing limitations are typed findings (``Finding``: kind,
model, precision, numbers) worded by ``quantbench.report.wording``; a sentence that explains a
figure (overhead-bound, dequantizing, rows that do not split, a shared machine) is a kind of its
own, emitted only when the measurement it rests on holds.

Scenarios (per model, over the precisions that ran):
- fastest within a quality budget: highest decode tok/s among precisions within
  ``quality_budget_pct`` % perplexity of the reference (and ``kld_budget``, if set);
- smallest within a quality budget: smallest weights among the same;
- best quality within a memory budget: lowest perplexity among precisions whose peak memory is
  at most ``memory_budget_mib`` (default: half the reference's peak memory), where its paired
  interval separates it from the others; else by KL divergence beyond its noise floor, then by
  top-1 agreement (``recommend.by_divergence``).
When no quality was measured (random weights), each scenario says so and ranks by speed or size.
Ties (values equal as displayed) are broken by the other axis, then by name, and are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import pandas as pd

from quantbench import precisions
from quantbench.records import Status
from quantbench.report.wording import say


@dataclass(frozen=True)
class Finding:
    """What the analysis found, apart from how it is worded (``quantbench.report.wording``): a kind,
    where it was found, the figures it rests on (from the summary table or derived from it) and
    the names and flags its wording needs (other precisions, type lists, which case held)."""

    kind: str
    model: str
    precision: str | None
    numbers: dict = field(default_factory=dict)
    names: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return say(self)


@dataclass(frozen=True)
class Budgets:
    """The config's ``report:`` section (defaults as in workflow/schemas/config.schema.yaml)."""

    quality_budget_pct: float = 2.0
    kld_budget: float | None = None
    accuracy_drop_pp: float | None = None
    memory_budget_mib: float | None = None
    cv_threshold_pct: float = 10.0
    ppl_jump_pct: float = 10.0

    @classmethod
    def from_config(cls, section: dict | None) -> Budgets:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (section or {}).items() if k in names})


@dataclass(frozen=True)
class Pick:
    """One scenario's answer for one model: the precision (None if nothing qualifies)."""

    model: str
    scenario: str
    precision: str | None
    text: str
    quality_known: bool


def ok_rows(g: pd.DataFrame) -> pd.DataFrame:
    return g[(g["status"] == Status.OK) & g["decode_tok_s"].notna()]


def quality_known(g: pd.DataFrame) -> bool:
    return bool(ok_rows(g)["ppl"].notna().any())


def within_quality(g: pd.DataFrame, reference: str, b: Budgets) -> pd.DataFrame:
    ok = ok_rows(g).dropna(subset=["ppl_delta_pct"])
    within = ok[ok["ppl_delta_pct"] <= b.quality_budget_pct]
    if b.kld_budget is not None:  # the reference has no KL against itself: it is within
        kld = within["kld_mean"].where(within["precision"] != reference, 0.0)
        within = within[kld <= b.kld_budget]
    return within


def budget_words(reference: str, b: Budgets) -> str:
    words = f"+{b.quality_budget_pct:g} % perplexity of {reference}"
    if b.kld_budget is not None:
        words += f" and a mean KL divergence of at most {b.kld_budget:g}"
    return words


def no_reference_quality(g: pd.DataFrame) -> bool:
    return not ok_rows(g)["ppl_delta_pct"].notna().any()


def with_baselines(ok: pd.DataFrame):
    """(name, row, its baseline's name, the baseline's row) for each precision of ``ok``
    (indexed by precision) whose baseline was measured too."""
    for name, row in ok.iterrows():
        base = precisions.baseline_of(name, ok.index)
        if base is not None:
            yield name, row, base, ok.loc[base]


# ONNX Runtime's dynamic int8 and the int8 formats of the other engines it is compared with
INT8_ENGINES = ("onnx-int8", "bnb-int8", "gguf-q8_0")


def apart(fast, slow) -> bool:
    """Whether ``fast`` decodes faster than ``slow`` with their 95 % intervals apart (rows of
    a table, as Series or dicts): the one test of "faster" every finding and the decision
    use."""
    low, high = fast.get("decode_tok_s_ci_low"), slow.get("decode_tok_s_ci_high")
    return not (pd.isna(low) or pd.isna(high)) and bool(low > high)


# -- where decode time goes (the kernel traces, results/kernels.csv) ---------------------------


# -- KV-cache types (llama.cpp type_k / type_v) ---------------------------------------------------


# -- importance matrix A/B (results/imatrix.csv, quantbench.report.imatrix_ab) ----------------
