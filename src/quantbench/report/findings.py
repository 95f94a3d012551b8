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
  at most ``memory_budget_mib`` (default: half the reference's peak memory).
When no quality was measured (random weights), each scenario says so and ranks by speed or size.
Ties (values equal as displayed) are broken by the other axis, then by name, and are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import pandas as pd

from quantbench import kvcache, precisions, roofline
from quantbench.kernel_summary import CLASS_WORDS, CLASSES
from quantbench.kld import TOPK
from quantbench.report.aggregate import pareto_front
from quantbench.report.numbers import fmt
from quantbench.report.wording import say
from quantbench.scenarios import contention
from quantbench.stats import known as _measured

# digits shown for each ranked column: values equal at this precision are a tie for the reader
DIGITS = {"decode_tok_s": 1, "size_mib": 1, "peak_mem_mib": 0, "ppl": 3}
# a compiled twin is "clearly" faster at this speed-up or more, with the 95 % intervals apart
COMPILED_CLEAR_SPEEDUP = 1.25
# the unquantized fast path each format's fastest path is compared with, in order of preference
# (then the reference's compiled twin)
FAST_BASELINES = ("bf16-compiled",)
# a quantized precision "turns its byte saving into speed" when it realises this much of it
REALISED_OK_PCT = 80.0


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


def _ok(g: pd.DataFrame) -> pd.DataFrame:
    return g[(g["status"] == "ok") & g["decode_tok_s"].notna()]


def quality_known(g: pd.DataFrame) -> bool:
    return bool(_ok(g)["ppl"].notna().any())


def _rank(df: pd.DataFrame, column: str, *, largest: bool, then: str, then_largest: bool
          ) -> tuple[pd.Series, list[str]]:
    """The best row by ``column`` and the names of rows tied with it as displayed."""
    key = df[column].round(DIGITS.get(column, 3))
    best = key.max() if largest else key.min()
    tied = df[key == best]
    tied = tied.sort_values([then, "precision"], ascending=[not then_largest, True])
    pick = tied.iloc[0]
    return pick, [p for p in tied["precision"] if p != pick["precision"]]


def within_quality(g: pd.DataFrame, reference: str, b: Budgets) -> pd.DataFrame:
    ok = _ok(g).dropna(subset=["ppl_delta_pct"])
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


def _unmeasured(g: pd.DataFrame, b: Budgets | None = None, reference: str = "") -> str:
    ok = _ok(g)
    missing = ok[ok["ppl"].isna()]["precision"].tolist()
    out = f" Not ranked (quality not measured): {', '.join(missing)}." if missing else ""
    if b is not None and b.kld_budget is not None:
        no_kl = ok[ok["ppl"].notna() & ok["kld_mean"].isna() & (ok["precision"] != reference)]
        if not no_kl.empty:
            out += f" Not ranked (KL divergence not measured): {', '.join(no_kl['precision'])}."
    return out


def no_reference_quality(g: pd.DataFrame) -> bool:
    return not _ok(g)["ppl_delta_pct"].notna().any()


def _no_reference_text(model: str, what: str, reference: str) -> str:
    return (f"{model}, {what} within a quality budget: {reference} has no measured perplexity, "
            "so no precision can be placed against the budget; see the perplexities in the "
            "results table.")


def _ties(names: list[str], then: str) -> str:
    return f" Tied with {', '.join(names)} as shown; {then} decides." if names else ""


def _speed_overlap(pick: pd.Series, pool: pd.DataFrame) -> str:
    """Name the runner-up when its 95 % CI overlaps the pick's: the order is not resolved."""
    rest = pool[pool["precision"] != pick["precision"]].dropna(subset=["decode_tok_s"])
    if rest.empty or pd.isna(pick.get("decode_tok_s_ci_low")):
        return ""
    second = rest.loc[rest["decode_tok_s"].idxmax()]
    if pd.isna(second.get("decode_tok_s_ci_high")):
        return ""
    if second["decode_tok_s_ci_high"] >= pick["decode_tok_s_ci_low"]:
        return (f" The runner-up {second['precision']} "
                f"({fmt(second['decode_tok_s'], 1)} tok/s) is within the 95 % confidence "
                "intervals: the two are not distinguished by this run.")
    return ""


def fastest_within_quality(model: str, g: pd.DataFrame, reference: str, b: Budgets) -> Pick:
    scenario = "fastest within quality budget"
    ok = _ok(g)
    if ok.empty:
        return Pick(model, scenario, None, f"{model}: no precision ran successfully.", False)
    if not quality_known(g):
        pick, ties = _rank(ok, "decode_tok_s", largest=True, then="peak_mem_mib",
                           then_largest=False)
        return Pick(model, scenario, pick["precision"],
                    f"{model}, fastest: quality was not measured, so by speed alone "
                    f"{pick['precision']} ({fmt(pick['decode_tok_s'], 1)} tok/s); its quality "
                    f"loss is unknown.{_ties(ties, 'lower peak memory')}", False)
    if no_reference_quality(g):
        return Pick(model, scenario, None, _no_reference_text(model, "fastest", reference), True)
    within = within_quality(g, reference, b)
    if within.empty:
        q = ok.dropna(subset=["ppl_delta_pct"])
        closest = q.loc[q["ppl_delta_pct"].idxmin()]
        return Pick(model, scenario, None,
                    f"{model}, fastest within {budget_words(reference, b)}: no precision "
                    f"qualifies; the closest is {closest['precision']} "
                    f"({closest['ppl_delta_pct']:+.2f} % perplexity)."
                    f"{_unmeasured(g, b, reference)}", True)
    pick, ties = _rank(within, "decode_tok_s", largest=True, then="peak_mem_mib",
                       then_largest=False)
    return Pick(model, scenario, pick["precision"],
                f"{model}, fastest within {budget_words(reference, b)}: "
                f"{pick['precision']} — {fmt(pick['decode_tok_s'], 1)} tok/s "
                f"({pick['ppl_delta_pct']:+.2f} % perplexity, {fmt(pick['size_mib'], 1)} MiB of "
                f"weights).{_ties(ties, 'lower peak memory')}{_speed_overlap(pick, within)}"
                f"{_unmeasured(g, b, reference)}", True)


def smallest_within_quality(model: str, g: pd.DataFrame, reference: str, b: Budgets) -> Pick:
    scenario = "smallest within quality budget"
    ok = _ok(g).dropna(subset=["size_mib"])
    if ok.empty:
        return Pick(model, scenario, None, f"{model}: no precision ran successfully.", False)
    if not quality_known(g):
        pick, ties = _rank(ok, "size_mib", largest=False, then="decode_tok_s", then_largest=True)
        return Pick(model, scenario, pick["precision"],
                    f"{model}, smallest: quality was not measured, so by size alone "
                    f"{pick['precision']} ({fmt(pick['size_mib'], 1)} MiB of weights); its "
                    f"quality loss is unknown.{_ties(ties, 'faster decode')}", False)
    if no_reference_quality(g):
        return Pick(model, scenario, None, _no_reference_text(model, "smallest", reference), True)
    within = within_quality(g, reference, b).dropna(subset=["size_mib"])
    if within.empty:
        return Pick(model, scenario, None,
                    f"{model}, smallest within {budget_words(reference, b)}: no precision "
                    f"qualifies.{_unmeasured(g, b, reference)}", True)
    pick, ties = _rank(within, "size_mib", largest=False, then="decode_tok_s", then_largest=True)
    return Pick(model, scenario, pick["precision"],
                f"{model}, smallest within {budget_words(reference, b)}: "
                f"{pick['precision']} — {fmt(pick['size_mib'], 1)} MiB of weights, "
                f"{fmt(pick['peak_mem_mib'], 0)} MiB peak ({pick['ppl_delta_pct']:+.2f} % "
                f"perplexity).{_ties(ties, 'faster decode')}{_unmeasured(g, b, reference)}",
                True)


def memory_budget(g: pd.DataFrame, reference: str, b: Budgets) -> tuple[float | None, str]:
    """The memory budget in MiB and how it was set."""
    if b.memory_budget_mib is not None:
        return float(b.memory_budget_mib), f"{fmt(float(b.memory_budget_mib), 0)} MiB"
    ref = g[(g["precision"] == reference) & g["peak_mem_mib"].notna()]
    if ref.empty:
        return None, ""
    half = ref.iloc[0]["peak_mem_mib"] / 2
    return half, f"{fmt(half, 0)} MiB, half of {reference}'s peak memory"


def best_quality_within_memory(model: str, g: pd.DataFrame, reference: str, b: Budgets) -> Pick:
    scenario = "best quality within memory budget"
    ok = _ok(g).dropna(subset=["peak_mem_mib"])
    budget, words = memory_budget(g, reference, b)
    if ok.empty or budget is None:
        return Pick(model, scenario, None,
                    f"{model}: no memory budget (set report.memory_budget_mib) or no peak "
                    "memory measured.", quality_known(g))
    fits = ok[ok["peak_mem_mib"] <= budget]
    if fits.empty:
        least = ok.loc[ok["peak_mem_mib"].idxmin()]
        return Pick(model, scenario, None,
                    f"{model}, best quality within {words}: nothing fits; the lowest peak "
                    f"memory is {least['precision']} at {fmt(least['peak_mem_mib'], 0)} MiB.",
                    quality_known(g))
    rated = fits.dropna(subset=["ppl"])
    if rated.empty:
        pick, ties = _rank(fits, "decode_tok_s", largest=True, then="peak_mem_mib",
                           then_largest=False)
        why = ("quality was not measured" if not quality_known(g)
               else "no precision that fits has a measured quality")
        return Pick(model, scenario, pick["precision"],
                    f"{model}, within {words}: {why}, so by speed alone the fastest that fits "
                    f"is {pick['precision']} ({fmt(pick['decode_tok_s'], 1)} tok/s, "
                    f"{fmt(pick['peak_mem_mib'], 0)} MiB peak); its quality loss is unknown."
                    f"{_ties(ties, 'lower peak memory')}", False)
    pick, ties = _rank(rated, "ppl", largest=False, then="decode_tok_s", then_largest=True)
    delta = (f", {pick['ppl_delta_pct']:+.2f} % against {reference}"
             if not pd.isna(pick["ppl_delta_pct"]) else "")
    return Pick(model, scenario, pick["precision"],
                f"{model}, best quality within {words}: {pick['precision']} — perplexity "
                f"{fmt(pick['ppl'], 3)}{delta}, {fmt(pick['peak_mem_mib'], 0)} MiB peak, "
                f"{fmt(pick['decode_tok_s'], 1)} tok/s.{_ties(ties, 'faster decode')}"
                f"{_unmeasured(fits)}", True)


SCENARIOS = (fastest_within_quality, smallest_within_quality, best_quality_within_memory)


def recommendations(df: pd.DataFrame, reference: str, budgets: Budgets) -> list[Pick]:
    return [scenario(model, g, reference, budgets)
            for model, g in df.groupby("model") for scenario in SCENARIOS]


def _dominated(ok: pd.DataFrame, cost: str, maximize: bool) -> dict[str, str]:
    """For each precision off the (cost, perplexity) front, the front member that beats it by
    the widest margin on cost."""
    c = -ok[cost] if maximize else ok[cost]
    front = pareto_front(ok, cost, "ppl", maximize_cost=maximize)
    out = {}
    for i in ok.index[~front[ok.index]]:
        beats = ok[front & (c <= c[i]) & (ok["ppl"] <= ok.loc[i, "ppl"])]
        if not beats.empty:
            out[ok.loc[i, "precision"]] = beats.loc[c[beats.index].idxmin(), "precision"]
    return out


def tradeoffs(df: pd.DataFrame) -> list[str]:
    """The quality/speed and quality/memory Pareto fronts (aggregate.pareto_front), which
    precisions are dominated and by what; without quality, the speed/memory front."""
    out = []
    for model, g in df.groupby("model"):
        ok = _ok(g)
        if ok.empty:
            continue
        rated = ok.dropna(subset=["ppl", "decode_tok_s", "peak_mem_mib"])
        if len(rated) >= 2:
            for cost, maximize, what, unit, digits in (
                    ("decode_tok_s", True, "perplexity vs decode speed", "tok/s", 1),
                    ("peak_mem_mib", False, "perplexity vs peak memory", "MiB", 0)):
                front = rated[pareto_front(rated, cost, "ppl", maximize_cost=maximize)]
                front = front.sort_values("ppl")
                members = ", ".join(f"{r['precision']} ({fmt(r[cost], digits)} {unit}, "
                                    f"perplexity {fmt(r['ppl'], 3)})"
                                    for _, r in front.iterrows())
                line = f"{model}, front of {what}: {members}."
                dom = _dominated(rated, cost, maximize)
                if dom:
                    better = "is at least as fast" if maximize else "needs no more memory"
                    pairs = "; ".join(f"{k} by {v}" for k, v in dom.items())
                    line += (f" Dominated (a front member {better} with no higher perplexity, "
                             f"and is better on one of the two): {pairs}.")
                out.append(line)
        speed = ok.dropna(subset=["decode_tok_s", "peak_mem_mib"]).copy()
        if len(speed) >= 2:
            speed["slowness"] = -speed["decode_tok_s"]
            front = speed[pareto_front(speed, "peak_mem_mib", "slowness")]
            front = front.sort_values("peak_mem_mib")
            members = ", ".join(f"{r['precision']} ({fmt(r['peak_mem_mib'], 0)} MiB, "
                                f"{fmt(r['decode_tok_s'], 1)} tok/s)" for _, r in front.iterrows())
            caveat = "" if quality_known(g) else " (quality not measured: speed and memory only)"
            out.append(f"{model}, front of decode speed vs peak memory{caveat}: {members}; "
                       f"each of the other {len(speed) - len(front)} precisions is beaten on "
                       "speed or memory by one of these that is no worse on the other.")
    return out


def with_baselines(ok: pd.DataFrame):
    """(name, row, its baseline's name, the baseline's row) for each precision of ``ok``
    (indexed by precision) whose baseline was measured too."""
    for name, row in ok.iterrows():
        base = precisions.baseline_of(name, ok.index)
        if base is not None:
            yield name, row, base, ok.loc[base]

def anomalies(df: pd.DataFrame, reference: str, b: Budgets) -> list[str]:
    """Quantized formats slower than their baseline, perplexity jumps, noisy timings, GGUF
    files mostly not in their named type."""
    return [f.text for f in anomaly_findings(df, reference, b)]


def anomaly_findings(df: pd.DataFrame, reference: str, b: Budgets) -> list[Finding]:
    out = []
    for model, g in df.groupby("model"):
        out += slower_than_baseline(model, g, reference)
        for _, row in g[g["ppl_delta_pct"] > b.ppl_jump_pct].iterrows():
            out.append(Finding("ppl_jump", model, row["precision"],
                               numbers={"ppl_delta_pct": row["ppl_delta_pct"],
                                        "ppl_jump_pct": b.ppl_jump_pct},
                               names={"reference": reference}))
        rated = _ok(g).dropna(subset=["ppl_delta_pct", "size_mib"])
        for _, big in rated.iterrows():
            # a bigger format should not lose more quality than a smaller one; flag it when the
            # gap exceeds the quality budget (a difference the budget calls significant)
            small = rated[(rated["size_mib"] < big["size_mib"])
                          & (rated["ppl_delta_pct"] < big["ppl_delta_pct"] - b.quality_budget_pct)]
            if not small.empty:
                best = small.loc[small["ppl_delta_pct"].idxmin()]
                out.append(Finding("out_of_line_with_size", model, big["precision"],
                                   numbers={"size_mib": big["size_mib"],
                                            "ppl_delta_pct": big["ppl_delta_pct"],
                                            "smaller_size_mib": best["size_mib"],
                                            "smaller_ppl_delta_pct": best["ppl_delta_pct"]},
                                   names={"smaller": best["precision"]}))
        if "decode_cv" in g:
            noisy = _ok(g)[_ok(g)["decode_cv"] * 100 > b.cv_threshold_pct]
            out += [Finding("noisy_timings", model, row["precision"],
                            numbers={"cv_pct": row["decode_cv"] * 100,
                                     "cv_threshold_pct": b.cv_threshold_pct})
                    for _, row in noisy.iterrows()]
        out += named_type_findings(model, g)
        if "quantised_linears" in g:
            ok = _ok(g)
            part = ok[ok["quantised_linears"] < 0.5 * ok["linears"]]
            out += [Finding("partly_quantised", model, row["precision"],
                            numbers={"quantised": row["quantised_linears"], "n": row["linears"],
                                     "pct": 100 * row["quantised_linears"] / row["linears"]})
                    for _, row in part.iterrows()]
    return out


def slower_than_baseline(model: str, g: pd.DataFrame, reference: str) -> list[Finding]:
    """Quantized precisions with smaller weights that decode slower than their baseline. For
    LLM.int8 with outliers, the run without outlier decomposition (``-t0``), if measured, says
    how much of the loss the int8 + fp16 matmul split explains: all (``-t0`` is at least as
    fast as the baseline), part (between) or none (no faster than with the split)."""
    ok = _ok(g).set_index("precision")
    out = []
    for name, row, base, ref in with_baselines(ok):
        if not (row["size_mib"] < ref["size_mib"] and row["decode_tok_s"] < ref["decode_tok_s"]):
            continue
        numbers = {"tok_s": row["decode_tok_s"], "baseline_tok_s": ref["decode_tok_s"],
                   "speed_ratio": row["decode_tok_s"] / ref["decode_tok_s"],
                   "size_ratio": ref["size_mib"] / row["size_mib"]}
        names = {"baseline": base, "resolved": apart(ref, row), "t0": f"{name}-t0",
                 "split": None}
        # LLM.int8's outlier split (its threshold setting) against the same format without it
        settings = precisions.table()[name].settings if name in precisions.table() else {}
        if "threshold" in settings and names["t0"] in ok.index:
            t0_tok_s = numbers["t0_tok_s"] = ok.loc[names["t0"], "decode_tok_s"]
            names["split"] = ("all" if t0_tok_s >= ref["decode_tok_s"]
                              else "part" if t0_tok_s > row["decode_tok_s"] else "none")
        elif settings.get("threshold"):
            names["split"] = "unmeasured"
        out.append(Finding("slower_than_baseline", model, name, numbers=numbers, names=names))
    return out


def named_type_findings(model: str, g: pd.DataFrame) -> list[Finding]:
    """GGUF files holding under half their weights in the type they are named after, with the
    share of the weights in matrices whose rows the type cannot split (recorded from the file's
    tensor shapes; unknown for records made before it was)."""
    if "named_type_pct" not in g:
        return []
    return [Finding("named_type_low", model, row["precision"],
                    numbers={k: row.get(k) for k in ("named_type_pct", "misaligned_rows_pct",
                                                     "row_block")},
                    names={"weight_types": row["weight_types"]})
            for _, row in g[g["named_type_pct"] < 50].iterrows()]


# GGUF file types that store the weights unquantized
FLOAT_GGUF_TYPES = ("F32", "F16", "BF16")


def several_runs(df: pd.DataFrame) -> list[str]:
    """One sentence when the latency records come from more than one run (another commit or
    source tree of the code): the report's provenance then holds for one of them only. (Cards
    are not runs: on a multi-GPU host one run's jobs measure on several.)"""
    if "git_commit" not in df:
        return []
    known = df.dropna(subset=["git_commit"])  # rows without a latency record say nothing
    groups = known.fillna({"source_sha256": ""}).groupby(["git_commit", "source_sha256"],
                                                         sort=False)
    if groups.ngroups < 2:
        return []
    parts = []
    for (commit, _), g in groups:
        when = g["measured_utc"].dropna().min()
        date = f", measured {when[:10]}" if isinstance(when, str) else ""
        items = ", ".join(f"{m} {p}" for m, p in zip(g["model"], g["precision"], strict=True))
        parts.append(f"commit {str(commit)[:7]}{date}: {items}")
    return [f"The latency records come from {groups.ngroups} runs (other code: another commit or "
            "source tree); the provenance above is one run's. Compare precisions of different "
            "runs with care, a run's host can change the timings: " + "; ".join(parts) + "."]


def limitations(df: pd.DataFrame, models: dict, config: dict, machine: dict | None) -> list[str]:
    """What the numbers cannot say, from the model sources, the device and the protocol."""
    out = []
    for name, info in models.items():
        if info.get("quality_applicable") is False:
            out.append(f"{name} has random weights: perplexity, KL divergence and generations "
                       "are meaningless and were not measured, so every recommendation for it "
                       "rests on speed and memory only.")
        if info.get("source") == "embedded":
            out.append(f"{name}'s reference weights are a Q4_1 GGUF dequantized to FP32: "
                       "differences in perplexity measure the distance from those weights, not "
                       "from the original model; formats of 4 bits and more re-quantize "
                       "weights that already sit on a 4-bit grid, which likely flatters them.")
        source_file = info.get("dequantized_from") if info.get("source") == "gguf" else None
        if source_file:
            grid = ("" if source_file["type"] in FLOAT_GGUF_TYPES else
                    f"; formats at or above {source_file['type']}'s precision re-quantize "
                    "weights that already sit on its grid, which likely flatters them")
            out.append(f"{name}'s reference weights are {source_file['file']}'s "
                       f"{source_file['type']} weights dequantized to FP32: differences in "
                       "perplexity measure the distance from that file, not from the model it "
                       f"was made from{grid}.")
    out += several_runs(df)
    if "compile_cache_hits" in df:
        cached = df[(df["status"] == "ok") & (df["compile_cache_hits"] > 0)]
        if not cached.empty:
            names = ", ".join(f"{r.model} {r.precision} ({r.compile_s:.1f} s)"
                              for r in cached.itertuples())
            out.append("Compile times that found their graphs in torch's Inductor cache (compiled "
                       f"earlier on this machine): {names}; a first compile takes longer.")
    if "generations_eager" in df:
        for _, row in df[df["generations_eager"].notna()].iterrows():
            out.append(f"{row['model']}: {row['precision']}'s sanity generations were decoded "
                       "without its compiled graph, which was refused here ("
                       f"{row['generations_eager']}); its perplexity and KL divergence come "
                       "from the eager forward, as every precision's do.")
    ok = df[df["status"] == "ok"]
    device = (machine or {}).get("device") or (ok["device"].dropna().iloc[0]
                                                if "device" in ok and ok["device"].notna().any()
                                                else None)
    out += [f.text for f in timing_findings(ok, device)]
    lat = config.get("latency", {})
    if lat:
        out.append(f"Each latency figure comes from {lat.get('measured_runs', '?')} measured runs "
                   f"after {lat.get('warmup_runs', '?')} warm-up run(s) in one process; the 95 % "
                   "intervals are bootstrap intervals over those runs and do not include "
                   "process-to-process or machine-to-machine variation. Batch size "
                   f"{lat.get('batch_size', 1)}, prompts of "
                   f"{', '.join(map(str, lat.get('prompt_tokens', [])))} tokens.")
    rated = ok.dropna(subset=["ppl", "ppl_stderr"])
    if not rated.empty:
        rel = rated["ppl_stderr"] / rated["ppl"] * 100
        ppl_cfg = config.get("perplexity", {})
        out.append(f"Perplexity is measured on at most {ppl_cfg.get('max_windows', '?')} windows "
                   f"of {ppl_cfg.get('context_length', '?')} tokens; its standard error is up "
                   f"to {fmt(float(rel.max()), 2)} % of the perplexity: the text is a sample. "
                   "Every precision is scored on the same tokens, so differences between "
                   "precisions are more precise than that, but a ranking by a smaller margin "
                   "may not hold on other text.")
    if ok["kld_mean"].notna().any():
        out.append(f"KL divergence is computed over the reference's top-{TOPK} tokens plus one "
                   "bucket for the rest of the vocabulary: a lower bound of the full KL.")
    return out


def timing_findings(ok: pd.DataFrame, device) -> list[Finding]:
    """The spread of the decode timings, and what else used the machine while they were taken:
    "shared with other work" only when the recorded other-process CPU share or steal share of
    some precision's runs exceeds ``contention``'s thresholds."""
    out = []
    cv = ok["decode_cv"].dropna() * 100 if "decode_cv" in ok else pd.Series(dtype=float)
    if not cv.empty:
        worst = ok.loc[ok["decode_cv"].idxmax()]
        out.append(Finding("timing_spread", "", worst["precision"],
                           numbers={"cv_median_pct": float(cv.median()),
                                    "cv_max_pct": float(cv.max())},
                           names={"device": device}))
    if "other_cpu_share" not in ok or not ok["other_cpu_share"].notna().any():
        return out  # not measured (records made before it was)
    steal = ok["steal_share"] if "steal_share" in ok else pd.Series(float("nan"), ok.index)
    busy = ok[[contention.contended(o, s) for o, s in zip(ok["other_cpu_share"], steal,
                                                          strict=True)]]
    worst = (busy.loc[busy["other_cpu_share"].fillna(0).idxmax()] if not busy.empty
             else ok.loc[ok["other_cpu_share"].idxmax()])
    shared = not busy.empty
    numbers = {"other_cpu_pct": 100 * worst["other_cpu_share"],
               "steal_pct": 100 * (worst.get("steal_share") if shared
                                   else ok.get("steal_share", pd.Series(dtype=float)).max()),
               "loadavg": worst.get("loadavg"),
               "other_cpu_max_pct": 100 * contention.OTHER_CPU_SHARE_MAX,
               "steal_max_pct": 100 * contention.STEAL_SHARE_MAX}
    out.append(Finding("machine_shared" if shared else "machine_quiet", "", worst["precision"],
                       numbers=numbers))
    return out


def hardware(df: pd.DataFrame, reference: str, machine: dict | None) -> list[str]:
    """Why precisions are fast or slow, from the roofline columns and the table itself."""
    out = []
    ridge = roofline.ridge_flop_per_byte(machine or {})
    for model, g in df.groupby("model"):
        ok = _ok(g)
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
                out.append(
                    f"{model}: decoding one token does at most "
                    f"{fmt(top['decode_flop_per_byte'], 1)} FLOP per byte read "
                    f"({top['precision']}), below this machine's ridge point of "
                    f"{fmt(ridge, 0)} FLOP/byte: decode is memory-bound, so its speed follows "
                    "the bytes per token and how close a kernel gets to peak bandwidth. "
                    f"{best['precision']} gets closest: {fmt(best['decode_gb_s'], 1)} GB/s, "
                    f"{fmt(best['mbu_pct'], 1)} % MBU."
                )
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
        out += [f.text for f in compiled_twins(model, ok)]
        saving = bytes_to_speed(model, g, reference)
        if saving is not None:
            out.append(saving.text)
        int8 = int8_engines(model, g, reference)
        if int8 is not None:
            out.append(int8.text)
    return out


# ONNX Runtime's dynamic int8 and the int8 formats of the other engines it is compared with
INT8_ENGINES = ("onnx-int8", "bnb-int8", "gguf-q8_0")


def int8_engines(model: str, g: pd.DataFrame, reference: str) -> Finding | None:
    """ONNX Runtime's int8 against bitsandbytes' LLM.int8 and llama.cpp's Q8_0, when all three
    ran: its decode speed against each (faster or slower only with the 95 % intervals apart)
    and, where perplexity was measured for all three, each one's change in perplexity (and
    KLD) against the reference."""
    ok = _ok(g).set_index("precision")
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


def apart(fast: pd.Series, slow: pd.Series) -> bool:
    """Whether ``fast`` decodes faster than ``slow`` with their 95 % intervals apart."""
    low, high = fast.get("decode_tok_s_ci_low"), slow.get("decode_tok_s_ci_high")
    return not (pd.isna(low) or pd.isna(high)) and bool(low > high)


def compiled_twins(model: str, ok: pd.DataFrame) -> list[Finding]:
    """Each ``-compiled`` precision against its eager twin (same weights). Only a clear
    speed-up (``COMPILED_CLEAR_SPEEDUP``, intervals apart) says that eager decode is bound by
    per-token overhead; otherwise the finding gives the measured ratio alone."""
    by_name = ok.set_index("precision")
    out = []
    for name in by_name.index:
        base = precisions.eager_twin(name)
        if base is None or base not in by_name.index:
            continue
        c, e = by_name.loc[name], by_name.loc[base]
        speedup = c["decode_tok_s"] / e["decode_tok_s"]
        clear = speedup >= COMPILED_CLEAR_SPEEDUP and apart(c, e)
        out.append(Finding(
            "compiled_faster" if clear else "compiled_not_faster", model, name,
            numbers={"compiled_tok_s": c["decode_tok_s"], "eager_tok_s": e["decode_tok_s"],
                     "speedup": speedup, "removed_pct": 100 * (1 - 1 / speedup),
                     "compiled_mbu_pct": c.get("mbu_pct"), "eager_mbu_pct": e.get("mbu_pct"),
                     "margin": COMPILED_CLEAR_SPEEDUP},
            names={"eager": base}))
    return out


def bytes_to_speed(model: str, g: pd.DataFrame, reference: str) -> Finding | None:
    """How many quantized precisions turn their byte saving into speed, and the one furthest
    off. Its time is said to go to dequantizing and kernel overhead only when it reads fewer
    bytes than its baseline yet decodes slower, with the 95 % intervals apart (the time then
    cannot be going to reading memory); otherwise only the measured gap is given."""
    rows = speed_vs_bytes(g, reference)
    if not rows:
        return None
    worst = min(rows, key=lambda r: r["realised_pct"])
    ok = _ok(g).set_index("precision")
    slower = worst["bytes_ratio"] > 1 and apart(ok.loc[worst["baseline"]],
                                                  ok.loc[worst["precision"]])
    return Finding(
        "bytes_to_speed_slower" if slower else "bytes_to_speed", model, worst["precision"],
        numbers={"kept": sum(r["realised_pct"] >= REALISED_OK_PCT for r in rows), "n": len(rows),
                 "realised_min": REALISED_OK_PCT, "bytes_ratio": worst["bytes_ratio"],
                 "speed_ratio": worst["speed_ratio"], "realised_pct": worst["realised_pct"]},
        names={"baseline": worst["baseline"]})


def speed_vs_bytes(g: pd.DataFrame, reference: str) -> list[dict]:
    """Each quantized precision against its baseline: how much of the byte saving per decode
    token shows up as speed (100 % = exactly as a bandwidth-bound kernel would predict)."""
    bytes_col = ("decode_bytes_per_tok_mib" if "decode_bytes_per_tok_mib" in g
                 and g["decode_bytes_per_tok_mib"].notna().any() else "size_mib")
    ok = _ok(g).dropna(subset=[bytes_col]).set_index("precision")
    rows = []
    for name, row, base, b in with_baselines(ok):
        bytes_ratio = b[bytes_col] / row[bytes_col]
        speed_ratio = row["decode_tok_s"] / b["decode_tok_s"]
        rows.append({"model": row["model"], "precision": name, "baseline": base,
                     "bytes_ratio": bytes_ratio, "speed_ratio": speed_ratio,
                     "realised_pct": 100 * speed_ratio / bytes_ratio,
                     "mbu_pct": row.get("mbu_pct"), "baseline_mbu_pct": b.get("mbu_pct")})
    return rows


# -- where decode time goes (the kernel traces, results/kernels.csv) ---------------------------
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
    for _, row in kernels[kernels["status"] == "ok"].iterrows():
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
        busy = row.get("busy_pct")
        if row["device"] == "cuda" and _measured(busy) and busy < HOST_BOUND_BUSY_PCT:
            out.append(Finding("kernels_host_bound", model, name,
                               numbers={k: row.get(k) for k in (
                                   "busy_pct", "busy_ms_per_step", "step_ms",
                                   "kernels_per_token", "launches_per_token")},
                               names={"threshold": HOST_BOUND_BUSY_PCT}))
        out += _compile_findings(model, name, row)
    return out


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
    ok = _ok(g).set_index("precision")
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
    ok = _ok(g).assign(format=lambda d: d["precision"].map(precisions.format_of))
    best = ok.groupby("format")["decode_tok_s"].idxmax()
    return ok.loc[best.sort_values().values]


def fast_baseline(g: pd.DataFrame, reference: str) -> str | None:
    """The unquantized fast path of this run: bf16-compiled, else the reference's compiled
    twin, when measured."""
    names = set(_ok(g)["precision"])
    compiled_reference = f"{reference}{precisions.COMPILED_SUFFIX}"
    return next((n for n in (*FAST_BASELINES, compiled_reference) if n in names), None)


def against_fast_baseline(model: str, g: pd.DataFrame, reference: str) -> list[Finding]:
    """Which formats, each on its fastest path, decode faster than the unquantized fast path at
    the headline point (95 % intervals apart), which slower, and which are not told apart:
    one finding for each of the three that some format is in."""
    base = fast_baseline(g, reference)
    if base is None:
        return []
    b = _ok(g).set_index("precision").loc[base]
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


# -- KV-cache types (llama.cpp type_k / type_v) ---------------------------------------------------

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
    ok = points[(points["model"] == model) & (points["status"] == "ok")
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


# -- importance matrix A/B (results/imatrix.csv, quantbench.report.imatrix_ab) ----------------
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
