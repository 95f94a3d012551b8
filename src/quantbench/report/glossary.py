"""The report's glossary: each term a deployer may not know, defined once.

A term is listed in a report only when its text uses it (``used``); the definitions hold on
every device, so none names what one kind of device has and another has not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    term: str
    pattern: str  # where the report's text uses the term (a regular expression)
    definition: str


TERMS = (
    Term("TTFT", r"\bTTFT\b|time to first token",
         "time to first token: from a batch's prompts to its first generated tokens, that is "
         "the prefill of the whole batch (the tables' prefill ms)."),
    Term("TPOT", r"\bTPOT\b|per-token latency|token ms|per token \(p90\)",
         "time per output token: one decode step, in which every sequence of the batch gets "
         "one token (token ms p50 / p90 / p99). A per-token latency budget is a bound on its "
         "p90."),
    Term("prefill, decode", r"\bprefill\b",
         "prefill reads the prompt in one forward pass and ends with the first token; decode "
         "then generates one token a step. Decode tok/s counts the tokens of every sequence "
         "of the batch; per sequence, divided by the batch size."),
    Term("J/token (prefill, decode)", r"J/token|energy per decoded token",
         "energy per token from the card's energy counter, each phase apart: prefill J/token "
         "is one prefill's energy over the batch's prompt tokens, decode J/token the decode "
         "steps' alone over the tokens they decoded. Both are the whole card's draw, its idle "
         "draw included; J/token × tok/s is that phase's mean power."),
    Term("idle draw, power limit", r"idle with the model loaded|power limit",
         "idle draw: the card's power with the model loaded and nothing running (the GPU "
         "traces' idle window). Power limit: the power the card enforces (NVML's enforced "
         "limit); no phase's mean power can be above it, so an energy figure that puts one "
         "above it was mismeasured and is left out."),
    Term("operating point", r"operating point",
         "prompt tokens, batch size (sequences decoded together) and context depth (tokens "
         "already in each sequence's KV cache before the prompt)."),
    Term("headline point", r"headline point",
         "the one operating point the summary tables report (latency.headline); every "
         "measured point is in the operating-points section."),
    Term("KV cache", r"\bKV\b",
         "the keys and values of the tokens a sequence has seen, kept so that each decode step "
         "reads them instead of recomputing them; it grows with the context and the batch."),
    Term("p50 / p90 / p99", r"\bp(50|90|99)\b",
         "the 50th, 90th and 99th percentiles of the timed steps: half, 90 % and 99 % of them "
         "took at most that long."),
    Term("CV", r"\bCV\b|coefficient of variation",
         "coefficient of variation: the standard deviation of the timed runs' decode speeds "
         "over their mean."),
    Term("95 % interval (CI)", r"95 % (confidence )?interval|\bCI\b|intervals? (are |is )?apart",
         "the range given with a measured figure (the Methodology says how each is computed). "
         "Two precisions are called faster or slower only when their intervals do not overlap "
         "(\"apart\"); otherwise they are a tie: not told apart."),
    Term("MBU", r"\bMBU\b",
         "model bandwidth utilisation: the bytes a decode step must read (the weights once, "
         "plus each sequence's KV cache) times the steps per second, over the machine's peak "
         "memory bandwidth."),
    Term("decode limit", r"decode limit",
         "how fast a model's weights can be read once per token on this machine: one decode "
         "step's weight products alone, timed at each batch size (the Methodology says how). "
         "No engine computing in that type decodes faster; \"% of decode limit\" is a decode "
         "speed's share of it (a format that reads fewer bytes can pass 100 %)."),
    Term("MFU", r"\bMFU\b",
         "model FLOPs utilisation: the model's arithmetic per second (2 FLOP per matmul "
         "parameter per token) over the machine's best measured matmul rate."),
    Term("ridge point", r"ridge point|\bridge\b",
         "the machine's peak matmul rate over its peak memory bandwidth, in FLOP per byte. By "
         "the roofline model, a step that does fewer FLOP per byte read is capped by the "
         "bandwidth, one that does more by the compute rate."),
    Term("realised %", r"realised|realises?\b",
         "of the speed-up a quantized precision's byte saving would give a decode bound by "
         "memory bandwidth (the byte ratio against its baseline), the share it achieved: "
         "100 × (speed ratio − 1) / (byte ratio − 1); 0 for a precision no faster than its "
         "baseline."),
    Term("baseline", r"\bbaselines?\b",
         "the unquantized precision of the same engine a quantized precision is compared "
         "with (a compiled one with a compiled baseline first)."),
    Term("twin", r"\btwins?\b",
         "the same weights run another way: a precision's eager twin (its name without "
         "-compiled) or compiled twin (with it), or a quantized KV cache's f16 KV twin (the "
         "same GGUF with an f16 KV cache)."),
    Term("eager, fast path", r"\beager\b|fast path",
         "eager: the engine's default decode, operators dispatched one by one from Python; "
         "fast path: the -compiled precision, with a static KV cache and torch.compile of the "
         "decode step."),
    Term("perplexity", r"perplexity",
         "exp of the mean negative log-likelihood of the text's actual next tokens: lower is "
         "better. Its change against the reference (Δ ppl %) is paired, position by position, "
         "on the same tokens."),
    Term("KL divergence (KLD)", r"\bKL\b|\bKLD\b",
         "the mean Kullback-Leibler divergence of a precision's next-token distribution from "
         "the reference's at the same positions: 0 when they predict alike."),
    Term("noise floor", r"noise floor",
         "the KL divergence that rounding alone gives (see the quality table's notes): a "
         "difference of KL divergences within it is not told apart."),
    Term("top-1 agreement", r"top-1 agreement",
         "the share of positions at which a precision's most likely next token is the "
         "reference's."),
    Term("front", r"\bfront of\b|Pareto",
         "the Pareto front: the precisions that no other precision beats on both axes at "
         "once."),
)


def used(text: str) -> list[Term]:
    """The terms ``text`` uses, in the glossary's order."""
    return [t for t in TERMS if re.search(t.pattern, text)]
