"""The report's recommendations per scenario (fastest or smallest within the quality budget, best
quality within a memory budget) and the trade-off fronts, from the summary table."""

from __future__ import annotations

import pandas as pd

from quantbench.report.aggregate import pareto_front
from quantbench.report.findings import (
    Budgets,
    Pick,
    budget_words,
    no_reference_quality,
    ok_rows,
    quality_known,
    within_quality,
)
from quantbench.report.numbers import fmt, sci
from quantbench.stats import known

# digits shown for each ranked column: values equal at this precision are a tie for the reader
DIGITS = {"decode_tok_s": 1, "size_mib": 1, "peak_mem_mib": 0, "ppl": 3}


def _rank(df: pd.DataFrame, column: str, *, largest: bool, then: str, then_largest: bool
          ) -> tuple[pd.Series, list[str]]:
    """The best row by ``column`` and the names of rows tied with it as displayed."""
    key = df[column].round(DIGITS.get(column, 3))
    best = key.max() if largest else key.min()
    tied = df[key == best]
    tied = tied.sort_values([then, "precision"], ascending=[not then_largest, True])
    pick = tied.iloc[0]
    return pick, [p for p in tied["precision"] if p != pick["precision"]]


def _unmeasured(g: pd.DataFrame, b: Budgets | None = None, reference: str = "") -> str:
    ok = ok_rows(g)
    missing = ok[ok["ppl"].isna()]["precision"].tolist()
    out = f" Not ranked (quality not measured): {', '.join(missing)}." if missing else ""
    if b is not None and b.kld_budget is not None:
        no_kl = ok[ok["ppl"].notna() & ok["kld_mean"].isna() & (ok["precision"] != reference)]
        if not no_kl.empty:
            out += f" Not ranked (KL divergence not measured): {', '.join(no_kl['precision'])}."
    return out


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
    ok = ok_rows(g)
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
        lowest = q.loc[q["ppl_delta_pct"].idxmin()]
        return Pick(model, scenario, None,
                    f"{model}, fastest within {budget_words(reference, b)}: no precision "
                    f"qualifies; the lowest change in perplexity is {lowest['precision']}'s "
                    f"({lowest['ppl_delta_pct']:+.2f} %)."
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
    ok = ok_rows(g).dropna(subset=["size_mib"])
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
    ok = ok_rows(g).dropna(subset=["peak_mem_mib"])
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
    close = [r for _, r in rated.iterrows()
             if r["precision"] != pick["precision"] and not ppl_apart(pick, r, reference)]
    if close:  # perplexity does not separate them: another measure of quality decides
        group = [pick, *close]
        pick, why = by_divergence(pd.DataFrame(group), reference)
        return Pick(model, scenario, pick["precision"],
                    f"{model}, best quality within {words}: perplexity does not separate "
                    f"{_changes(group, reference)} (their paired 95 % intervals of the change "
                    f"against {reference} overlap, or are not measured); {why} — "
                    f"{fmt(pick['peak_mem_mib'], 0)} MiB peak, "
                    f"{fmt(pick['decode_tok_s'], 1)} tok/s.{_unmeasured(fits)}", True)
    delta = (f", {_change(pick, reference)} against {reference}"
             if not pd.isna(pick["ppl_delta_pct"]) else "")
    return Pick(model, scenario, pick["precision"],
                f"{model}, best quality within {words}: {pick['precision']} — perplexity "
                f"{fmt(pick['ppl'], 3)}{delta}, {fmt(pick['peak_mem_mib'], 0)} MiB peak, "
                f"{fmt(pick['decode_tok_s'], 1)} tok/s.{_ties(ties, 'faster decode')}"
                f"{_unmeasured(fits)}", True)


def ppl_interval(row: pd.Series, reference: str) -> tuple[float, float] | None:
    """A precision's paired 95 % interval of its perplexity change against the reference (the
    reference's own: exactly 0), or None where it has none."""
    if row["precision"] == reference:
        return 0.0, 0.0
    low, high = row.get("ppl_delta_pct_ci_low"), row.get("ppl_delta_pct_ci_high")
    return (float(low), float(high)) if known(low) and known(high) else None


def ppl_apart(low: pd.Series, high: pd.Series, reference: str) -> bool:
    """Whether ``low``'s perplexity is below ``high``'s with their paired intervals (each a
    change against the reference, which is 0 exactly) apart; never without both intervals."""
    a, b = ppl_interval(low, reference), ppl_interval(high, reference)
    return a is not None and b is not None and a[1] < b[0]


def _change(row: pd.Series, reference: str) -> str:
    if row["precision"] == reference:
        return "0 %, the reference"
    if pd.isna(row.get("ppl_delta_pct")):
        return f"perplexity {fmt(row['ppl'], 3)}"
    ci = ppl_interval(row, reference)
    return (f"{row['ppl_delta_pct']:+.2f} %"
            + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else " [n/a]"))


def _changes(rows: list, reference: str) -> str:
    named = [f"{r['precision']} ({_change(r, reference)})" for r in rows]
    return ", ".join(named[:-1]) + f" and {named[-1]}"


def by_divergence(group: pd.DataFrame, reference: str) -> tuple[pd.Series, str]:
    """The best of precisions whose perplexities are not told apart, and the words of why: the
    lowest mean KL divergence when it is lower than the next one's by more than the noise floor
    (``kld_floor``); else the highest top-1 agreement when it is higher as shown (one
    decimal); else none separates them and the higher decode tok/s names one. The reference
    has divergence 0 and agreement 100 % against itself."""
    group = group.reset_index(drop=True)
    ref = group["precision"] == reference
    kld = group["kld_mean"].astype(float).where(~ref, 0.0)
    floor = group["kld_floor"].dropna()
    floor = float(floor.iloc[0]) if not floor.empty else None
    if kld.notna().all():
        order = kld.sort_values(kind="stable").index
        first, second = group.loc[order[0]], group.loc[order[1]]
        if floor is not None and kld[order[1]] - kld[order[0]] > floor:
            return first, (f"by KL divergence, {first['precision']}: {sci(kld[order[0]])} "
                           f"against {sci(kld[order[1]])} for {second['precision']}, apart by "
                           f"more than the noise floor of {sci(floor)}")
    top1 = group["top1_agreement_pct"].astype(float).where(~ref, 100.0)
    if top1.notna().all():
        order = top1.round(1).sort_values(ascending=False, kind="stable").index
        first, second = group.loc[order[0]], group.loc[order[1]]
        if round(top1[order[0]], 1) > round(top1[order[1]], 1):
            return first, (f"{_kld_words(kld, floor)}by top-1 agreement, {first['precision']}: "
                           f"{fmt(top1[order[0]], 1)} % against {fmt(top1[order[1]], 1)} % for "
                           f"{second['precision']}")
    fastest, ties = _rank(group, "decode_tok_s", largest=True, then="peak_mem_mib",
                          then_largest=False)
    return fastest, (f"{_kld_words(kld, floor)}no measure of quality separates them, so the "
                     f"higher decode tok/s names {fastest['precision']}"
                     + (f" (tied with {', '.join(ties)} as shown; lower peak memory decides)"
                        if ties else ""))


def _kld_words(kld: pd.Series, floor: float | None) -> str:
    if not kld.notna().all():
        return "KL divergence was not measured for each of them; "
    if floor is None:
        return "their KL divergences have no noise floor to be told apart by; "
    return f"their KL divergences are within the noise floor of {sci(floor)} of each other; "


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
        ok = ok_rows(g)
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
