"""The decision table: per model and deployment scenario (``report.scenarios``), the precision to
deploy, the runner-up, the margin between them against the measured uncertainty, the latencies
the scenario's targets hold them to, memory, the quality evidence behind the pick, and what would
change it.

A scenario is a workload: how many sequences are decoded together, the prompt and the context
already held (``context_depth``), a time-to-first-token target and a per-token target (both at
p90) and a quality budget. It is answered only from the operating point that is that workload;
where that point was not measured the answer says so and names the nearest measured point, and
never answers from another workload. ``sequences: max`` is offline throughput: each precision at
the largest batch it ran at that prompt and depth, ranked by total decode throughput.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from quantbench import kvcache, precisions
from quantbench.records import Status
from quantbench.report.findings import Budgets, apart
from quantbench.report.numbers import fmt
from quantbench.stats import known

MAX = "max"  # sequences: the largest batch each precision ran (offline throughput)

# published serving targets the defaults are modelled on (MLPerf Inference, Llama-3.1-8B)
MLPERF_SOURCE = ("MLPerf Inference, mlcommons/inference loadgen/mlperf.conf: llama3_1-8b "
                 "Server (TTFT 2000 ms, TPOT 100 ms) and llama3_1-8b-interactive (TTFT 500 ms, "
                 "TPOT 30 ms), each at p99 under Poisson arrivals")


@dataclass(frozen=True)
class Scenario:
    """One workload of the config's ``report.scenarios`` (defaults and meanings in
    workflow/schemas/config.schema.yaml)."""

    name: str
    sequences: int | str = 1
    prompt_tokens: int | None = None  # None: the run's first prompt length
    context_depth: int = 0
    ttft_p90_ms: float | None = None
    token_p90_ms: float | None = None
    quality_budget_pct: float | None = None  # None: the report's quality_budget_pct
    kld_budget: float | None = None  # None: the report's kld_budget
    accuracy_drop_pp: float | None = None  # None: the report's accuracy_drop_pp
    note: str | None = None

    @property
    def offline(self) -> bool:
        return self.sequences == MAX

    def prompt(self, prompts) -> int | None:
        return self.prompt_tokens if self.prompt_tokens is not None else (
            min(prompts) if len(prompts) else None)

    def targets(self) -> str:
        parts = []
        if self.ttft_p90_ms is not None:
            parts.append(f"TTFT p90 ≤ {fmt(self.ttft_p90_ms, 0)} ms")
        if self.token_p90_ms is not None:
            parts.append(f"per-token p90 ≤ {fmt(self.token_p90_ms, 0)} ms")
        return ", ".join(parts) or "no latency target"

    def workload(self, prompt) -> str:
        who = ("the largest batch each precision ran" if self.offline
               else f"{self.sequences} sequence{'s' if self.sequences != 1 else ''}")
        return f"{who}, prompt {prompt}, context depth {self.context_depth}"


def scenarios_from_config(section: dict | None) -> list[Scenario]:
    return [Scenario(**s) for s in (section or {}).get("scenarios") or []]


@dataclass
class Answer:
    """One model's answer to one scenario."""

    model: str
    scenario: Scenario
    prompt: int | None
    status: str  # answered | tie | none_within | not_measured | unchecked
    pick: dict | None = None
    runner_up: dict | None = None
    # the other candidates whose decode interval overlaps the pick's, fastest first: the tie
    tied: list = field(default_factory=list)
    margin_pct: float | None = None
    separated: bool = False
    fastest_unquantized: dict | None = None
    nearest: str | None = None
    candidates: int = 0
    note: str = ""  # offline: how far the batch sizes went
    evidence: str = ""
    changes: list[str] = field(default_factory=list)

    def row(self) -> dict:
        """The decision table's cells."""
        p, s = self.pick or {}, self.scenario
        if self.status == "not_measured":
            verdict = f"not measured (nearest measured point: {self.nearest})"
        elif self.status == "unchecked":
            verdict = ("not checkable: TTFT p90 not recorded at this point (records made before "
                       "it was)")
        elif self.status == "none_within":
            verdict = f"none meets {s.targets()}"
        elif self.status == "tie":
            names = [p["precision"], *(t["precision"] for t in self.tied)]
            shown = names[:TIE_NAMES_SHOWN]
            more = len(names) - len(shown)
            verdict = "tie: " + " / ".join(shown) + (f" (+{more} more)" if more else "")
        else:
            verdict = p["precision"]
        runner = self.runner_up["precision"] if self.runner_up else "–"
        margin = "–"
        if self.margin_pct is not None:
            margin = (f"{self.margin_pct:+.1f} % ({'beyond' if self.separated else 'within'} "
                      "the 95 % intervals)")
        vs = "–"
        if p and self.fastest_unquantized:
            f = self.fastest_unquantized
            vs = ("is it" if f["precision"] == p["precision"] else
                  f"{fmt(p['decode_tok_s'] / f['decode_tok_s'], 2)}× {f['precision']}"
                  + ("" if apart(p, f) else " (not told apart)"))
        return {
            "model": self.model, "scenario": s.name, "pick": verdict, "runner_up": runner,
            "margin": margin,
            "point": (f"b{fmt(p.get('batch_size'), 0)} d{s.context_depth} p{self.prompt}"
                      + (f" ({self.note})" if self.note else "") if p else "–"),
            "throughput": p.get("decode_tok_s"), "per_seq": p.get("decode_tok_s_per_seq"),
            "ttft_p90": p.get("prefill_ms_p90"), "token_p50": p.get("token_ms_p50"),
            "token_p90": p.get("token_ms_p90"), "memory": p.get("peak_mem_mib"),
            "vs_unquantized": vs, "quality": self.evidence if p else "–",
        }


# a tie's names in the table: the rest are counted
TIE_NAMES_SHOWN = 4


def _ok(points: pd.DataFrame) -> pd.DataFrame:
    return points[(points["status"] == Status.OK) & points["decode_tok_s"].notna()]


def _at(points: pd.DataFrame, scenario: Scenario, prompt) -> pd.DataFrame:
    """The rows of the scenario's workload: its point, or for offline each precision's row at
    the largest batch it ran at that prompt and depth."""
    ok = _ok(points)
    ok = ok[(ok["prompt_tokens"] == prompt) & (ok["context_depth"] == scenario.context_depth)]
    if not scenario.offline:
        return ok[ok["batch_size"] == scenario.sequences]
    if ok.empty:
        return ok
    return ok.loc[ok.groupby("precision")["batch_size"].idxmax()]


def nearest_point(points: pd.DataFrame, scenario: Scenario, prompt) -> str | None:
    """The measured point closest to the scenario's, by the distance of log batch size and log
    context (prompt + depth): named, never used to answer."""
    ok = _ok(points)
    if ok.empty:
        return None
    batch = ok["batch_size"].max() if scenario.offline else scenario.sequences
    context = (prompt or 0) + scenario.context_depth

    def dist(r):
        return (math.log2(r["batch_size"] / batch) ** 2
                + math.log2((r["prompt_tokens"] + r["context_depth"] + 1) / (context + 1)) ** 2)

    keys = ok[["prompt_tokens", "batch_size", "context_depth"]].drop_duplicates()
    best = min(keys.to_dict("records"), key=dist)
    return f"b{best['batch_size']} d{best['context_depth']} p{best['prompt_tokens']}"


def within_targets(rows: pd.DataFrame, scenario: Scenario) -> pd.DataFrame:
    """The rows whose TTFT p90 and per-token p90 meet the scenario's targets; a figure not
    measured does not meet a target that asks for it."""
    keep = pd.Series(True, index=rows.index)
    if scenario.ttft_p90_ms is not None:
        keep &= rows.get("prefill_ms_p90", pd.Series(index=rows.index, dtype=float)) \
            .le(scenario.ttft_p90_ms)
    if scenario.token_p90_ms is not None:
        keep &= rows["token_ms_p90"].le(scenario.token_p90_ms)
    return rows[keep]


def quality_of(summary: pd.DataFrame, model: str) -> pd.DataFrame:
    g = summary[summary["model"] == model]
    return g.set_index("precision")


def within_quality(rows: pd.DataFrame, quality: pd.DataFrame, budget_pct: float,
                   kld_budget: float | None, reference: str,
                   accuracy_drop_pp: float | None = None) -> pd.DataFrame:
    """Where quality was measured, the rows within the budget (the perplexity change's point
    estimate, the KL divergence where a KL budget is set, the paired accuracy change where an
    accuracy budget is set); where it was not, every row."""
    if rows.empty or quality.get("ppl", pd.Series(dtype=float)).notna().sum() == 0:
        return rows

    def ok(precision):
        if precision == reference:
            return True
        if precision not in quality.index:
            return False
        q = quality.loc[precision]
        if not known(q.get("ppl_delta_pct")) or q["ppl_delta_pct"] > budget_pct:
            return False
        if accuracy_drop_pp is not None and not (
                known(q.get("acc_change_pp")) and q["acc_change_pp"] >= -accuracy_drop_pp):
            return False
        return kld_budget is None or (known(q.get("kld_mean")) and q["kld_mean"] <= kld_budget)

    return rows[rows["precision"].map(ok)]


def evidence(precision: str, quality: pd.DataFrame, reference: str, weights_note: str) -> str:
    """What the pick's quality rests on: the measured change against the reference on the
    model's own weights, or none (random weights, or quality not measured)."""
    if precision not in quality.index or not known(quality.loc[precision].get("ppl")):
        return f"none: {weights_note}" if weights_note else "none: quality not measured"
    if precision == reference:
        return f"the reference ({reference})"
    q = quality.loc[precision]
    out = f"Δppl {q['ppl_delta_pct']:+.2f} %"
    low, high = q.get("ppl_delta_pct_ci_low"), q.get("ppl_delta_pct_ci_high")
    if known(low) and known(high):
        out += f" [{low:+.2f}, {high:+.2f}]"
    if known(q.get("kld_mean")):
        out += f", KLD {q['kld_mean']:.2g}"
    if known(q.get("acc_change_pp")):
        out += f", accuracy {points(q['acc_change_pp'])} pp"
        low, high = q.get("acc_change_lo_pp"), q.get("acc_change_hi_pp")
        if known(low) and known(high):
            out += f" [{points(low)}, {points(high)}]"
        if known(q.get("flips_lost")) and known(q.get("flips_gained")):
            out += f" ({int(q['flips_lost'])} right→wrong, {int(q['flips_gained'])} wrong→right)"
    return out


def points(value: float) -> str:
    """Signed, to a tenth; no "-0.0" for a change that rounds to nothing."""
    return f"{round(float(value), 1) + 0.0:+.1f}"


def rank(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values("decode_tok_s", ascending=False)


def ties(ranked: pd.DataFrame) -> list[dict]:
    """The rows after the first of ``ranked`` (fastest first) that the first is not apart
    from: every one whose interval reaches the first's, not only the runner-up's."""
    first = ranked.iloc[0].to_dict()
    return [r for r in (ranked.iloc[i].to_dict() for i in range(1, len(ranked)))
            if not apart(first, r)]


def answer(model: str, scenario: Scenario, points: pd.DataFrame, summary: pd.DataFrame, *,
           reference: str, budgets: Budgets, weights_note: str = "") -> Answer:
    g = points[points["model"] == model]
    prompt = scenario.prompt(sorted(g["prompt_tokens"].dropna().unique()))
    rows = _at(g, scenario, prompt)
    out = Answer(model, scenario, prompt, "not_measured")
    if rows.empty:
        out.nearest = nearest_point(g, scenario, prompt) or "none"
        return out
    if scenario.offline:
        out.note = offline_note(g, rows)
    quality = quality_of(summary, model)
    budget = (scenario.quality_budget_pct if scenario.quality_budget_pct is not None
              else budgets.quality_budget_pct)
    kld = scenario.kld_budget if scenario.kld_budget is not None else budgets.kld_budget
    drop = (scenario.accuracy_drop_pp if scenario.accuracy_drop_pp is not None
            else budgets.accuracy_drop_pp)
    unquantized = rows[~rows["precision"].map(is_quantized)]
    if not unquantized.empty:
        out.fastest_unquantized = rank(unquantized).iloc[0].to_dict()
    if scenario.ttft_p90_ms is not None and (
            "prefill_ms_p90" not in rows or rows["prefill_ms_p90"].isna().all()):
        out.status = "unchecked"
        return out
    fitting = within_targets(rows, scenario)
    candidates = rank(within_quality(fitting, quality, budget, kld, reference, drop))
    out.candidates = len(candidates)
    if candidates.empty:
        out.status = "none_within"
        return out
    out.pick = candidates.iloc[0].to_dict()
    out.status = "answered"
    if len(candidates) > 1:
        out.runner_up = candidates.iloc[1].to_dict()
        out.margin_pct = (out.pick["decode_tok_s"] / out.runner_up["decode_tok_s"] - 1) * 100
        out.separated = apart(out.pick, out.runner_up)
        out.tied = ties(candidates)
        if out.tied:
            out.status = "tie"
    out.evidence = evidence(out.pick["precision"], quality, reference, weights_note)
    out.changes = what_would_change(out, g, quality, reference=reference, budget=budget,
                                    kld=kld, fitting=fitting, drop=drop)
    return out


def offline_note(g: pd.DataFrame, rows: pd.DataFrame) -> str:
    """How far the batch sizes went: the largest measured, and whether any precision failed
    above the batch it ran (else a larger batch was not tried, and may fit)."""
    largest = int(g["batch_size"].max())
    failed = g[(g["status"] != Status.OK) & g["precision"].isin(rows["precision"])]
    ran = failed["precision"].map(rows.set_index("precision")["batch_size"]).astype(float)
    above = failed[failed["batch_size"].astype(float) > ran] if not failed.empty else failed
    if not above.empty:
        return f"largest that ran; {len(above)} larger point(s) failed"
    return f"largest measured: b{largest}; none larger tried"


def is_quantized(name: str) -> bool:
    """Whether a precision stores its weights or its KV cache below 16 bits: an unquantized
    path (the baseline of a speed-up) has neither."""
    spec = precisions.table().get(name)
    return bool(spec and (spec.quantized or kvcache.quantized(spec.settings)))


def what_would_change(ans: Answer, g: pd.DataFrame, quality: pd.DataFrame, *, reference: str,
                      budget: float, kld, fitting: pd.DataFrame, drop=None) -> list[str]:
    """From measured data only: the pick under a tighter quality budget (where the pick's
    perplexity change is measured and above another candidate's), and at a longer context
    (the same batch and prompt at a larger measured depth)."""
    pick, s, out = ans.pick, ans.scenario, []
    name = pick["precision"]
    if name in quality.index and known(quality.loc[name].get("ppl_delta_pct")) \
            and name != reference:
        cost = quality.loc[name]["ppl_delta_pct"]
        better = [p for p in rank(fitting)["precision"]
                  if p != name and (p == reference or (
                      p in quality.index and known(quality.loc[p].get("ppl_delta_pct"))
                      and quality.loc[p]["ppl_delta_pct"] < cost))]
        if better:
            out.append(f"A quality budget below {cost:+.2f} % perplexity: {better[0]}.")
    deeper = sorted(d for d in _ok(g)["context_depth"].unique() if d > s.context_depth)
    for depth in deeper[-1:]:
        longer = Scenario(**{**s.__dict__, "context_depth": int(depth)})
        rows = within_targets(_at(g, longer, ans.prompt), longer)
        rows = rank(within_quality(rows, quality, budget, kld, reference, drop))
        if rows.empty:
            out.append(f"At depth {int(depth)}: no precision meets the targets.")
        elif tied := ties(rows):
            names = [rows.iloc[0]["precision"], *(t["precision"] for t in tied)]
            out.append(f"At depth {int(depth)}: a tie of {' / '.join(names[:TIE_NAMES_SHOWN])}"
                       + (f" (+{len(names) - TIE_NAMES_SHOWN} more)"
                          if len(names) > TIE_NAMES_SHOWN else "") + ".")
        elif rows.iloc[0]["precision"] != name:
            out.append(f"At depth {int(depth)}: {rows.iloc[0]['precision']} "
                       f"({fmt(rows.iloc[0]['decode_tok_s'], 1)} tok/s).")
        else:
            out.append(f"At depth {int(depth)}: still {name}.")
    return out


def decision(points: pd.DataFrame | None, summary: pd.DataFrame, scenarios: list[Scenario], *,
             reference: str, budgets: Budgets, weights_notes: dict | None = None
             ) -> list[Answer]:
    """Every model's answer to every scenario, in the config's order."""
    if points is None or points.empty or not scenarios:
        return []
    notes = weights_notes or {}
    return [answer(model, s, points, summary, reference=reference, budgets=budgets,
                   weights_note=notes.get(model, ""))
            for model in sorted(points["model"].unique()) for s in scenarios]
