"""quantbench's llama.cpp path against llama.cpp's own tools, on the same GGUF files.

    quantbench fidelity --text resources/datasets/britannica.txt \
        resources/models/smollm2-135m/gguf/*.gguf [--ngl 99] [--threads N] \
        [--batch-sizes 1 4 16 64] [--depths 0 128] [--prefill-parts] [--step-parts]

Speed, at every operating point of our latency sweep that llama.cpp's tools can measure (same
file, threads, -ngl, flash attention "auto"; ratio = ours / theirs):
- batch-1 prefill of --n-prompt P tokens at depth d: our ``prefill_tok_s`` against llama-bench's
  ``pp P @ d`` (target >= 0.97);
- batch-1 decode at depth d: our steady-state decode (every step but the first after the
  prefill) against llama-bench's ``tg G @ d+P``: llama-bench's tg has no prompt, so its depth is
  ours plus our prompt (both decode from the same KV length). llama-bench's tg decodes after a
  decode (its depth comes from a saved state); our ratio over every step and our first step's
  time are printed beside it (target for decode: >= 0.97);
- batch b (depth 0): our total decode over the batch (``decode_tok_s``, every step) against
  llama-batched-bench's S_TG (b x G tokens over the time from the end of the prefill, so its
  first step is in it too: our steady-state ratio is printed beside), and our batch prefill
  against its S_PP. llama-batched-bench runs without -pps: each sequence gets its own prompt in
  its own KV sequence, all in one batch, as our prefill_batch does (it draws random tokens, we put
  the same text in each sequence: the work is the same). Its context is set as ours
  (-c = -b = b x (P + G + 1) KV cells, -ub 512, one KV stream per sequence), one process per
  batch size, the -npl value repeated --bench-reps + 1 times, the first dropped as a warm-up
  (its only other warm-up is one 16-token batch).
Both sides run in fresh processes, alternating, --rounds times (medians over the rounds; the
per-round ratios give the range). Our side is one latency job (quantbench.tools.repeatability
fresh_latency) sweeping batch sizes x depths at the prompt length.
Perplexity: llama-perplexity (-c CTX -b CTX --chunks N) against quantbench's llama.cpp-compatible
protocol on the same file, fed the ids of llama.cpp's own tokenizer (so that only the protocol
is compared), target |difference| <= 0.05 %.
--prefill-parts, --step-parts: where our prefill's and decode step's time goes
(quantbench.tools.fidelity_parts).
The tools are built from the llama-cpp-python sdist that matches the installed library
(tools/build-llama-tools.sh). Prints tables; --json writes the rows.

What the two prefills share and what they do not (read from llama-bench.cpp of the sdist):
llama-bench clears the KV cache (and restores a saved depth) outside its timed region, runs one
warm-up, then times llama_decode of the whole prompt (n_batch 2048, so one call) and
llama_synchronize, and reports the mean over -r reps of P / time. Ours (latency.timed_run) times
backend.prefill: the rewind to the depth (llama_memory_clear or seq_rm: bookkeeping, inside our
timed region), the prompt's ctypes array, llama_decode (n_batch = the context, n_ubatch
min(n_batch, 512): one ubatch up to 512 tokens, as llama-bench's 512), synchronise and the first
token's argmax over one logits row; the mean over runs of P / time after 10 warm-ups. Flash
attention is "auto" on both sides; both libraries use OpenMP threads (llama-bench attaches a
ggml threadpool, which an OpenMP build runs on OpenMP's threads as well).
Two more differences: our timed region holds fixed host-side costs llama-bench's does not (the
rewind, the ctypes array, the argmax), and llama-bench's reps reuse the previous rep's prefill
graph (llama.cpp reuses a graph whose shape is unchanged), while each of our prefills follows
decode steps and so builds its graph again (time to first token in serving pays that too).
Measured on a 2-core AMD EPYC VM, shared (SmolLM2-135M Q4_1, prompt 128, 2 threads; numbers in
docs/examples/cpu/fidelity_cpu_points.txt): the rewind, the array and the argmax cost about 34,
37 and 4 microseconds a prefill (alone, medians), 0.03 % of the 270 ms prefill: nothing
measurable here, and llama-bench's pp with graph reuse off is within its run-to-run spread of pp
with it on; n_ubatch 128 and 512 are the same computation at 128 tokens (one ubatch; 64 splits
it in two: ours 448 against 478 tok/s in the quieter run; n_ubatch is 512 on both sides). On
this CPU the batch-1 prefill ratio was 1.020 (rounds 0.960..1.051) on an otherwise quiet
machine. A fixed cost c per prefill gives ratio = 1 / (1 + c x pp_tok_s / P): on a GPU, where a
prefill of a small model takes a millisecond or two, c of 0.1 to 0.2 ms is the observed 0.917
for f16, less for the slower q4_k_m prefill (0.968). Whether it is there is for --prefill-parts
--ngl 99 on the GPU to show: the graph-reuse A/B and the after-a-decode-step line give the graph
build, the "alone" lines the host-side rest.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import llama_cpp  # before numpy: see quantbench.backends.preload
import numpy as np

from quantbench import precisions
from quantbench.backends import llamacpp
from quantbench.backends.llamacpp import LlamaCppBackend
from quantbench.device import resolve_threads
from quantbench.perplexity import llamacpp_windows, perplexity, token_nll
from quantbench.records import Status, source_tree
from quantbench.scenarios.latency import fresh_latency
from quantbench.tools.fidelity_parts import n_ctx_per_seq, prefill_parts, step_parts

PPL_LINE = re.compile(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)")
# llama-batched-bench's table: |PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s |
# S t/s| (batched-bench.cpp); its settings line: "...: n_kv_max = 4096, n_batch = 2048, ..."
BATCHED_COLUMNS = ("pp", "tg", "pl", "n_kv", "t_pp", "speed_pp", "t_tg", "speed_tg", "t", "speed")
_NUM = r"\s*([0-9.eE+-]+|inf|nan)\s*\|"
BATCHED_ROW = re.compile(r"^\|" + r"\s*(\d+)\s*\|" * 4 + _NUM * 6 + r"\s*$", re.MULTILINE)
BATCHED_SETTING = re.compile(r"(\w+) = (-?\d+)")


def parse_batched_bench(text: str) -> dict:
    """llama-batched-bench's output: ``settings`` (its "n_kv_max = ..., n_threads = ..." line)
    and ``rows`` (one dict a table row, keyed by BATCHED_COLUMNS: S_TG is ``speed_tg``)."""
    settings = {}
    for line in text.splitlines():
        if "n_kv_max =" in line:
            settings = {k: int(v) for k, v in BATCHED_SETTING.findall(line)}
    rows = []
    for m in BATCHED_ROW.finditer(text):
        row = dict(zip(BATCHED_COLUMNS, m.groups(), strict=True))
        rows.append({k: int(v) if k in ("pp", "tg", "pl", "n_kv") else float(v)
                     for k, v in row.items()})
    if not rows:
        raise RuntimeError("llama-batched-bench printed no result row")
    return {"settings": settings, "rows": rows}


def batched_means(parsed: dict, batch: int, skip: int = 1) -> dict:
    """Mean S_PP and S_TG over the rows of ``batch`` sequences, without the first ``skip``
    (warm-up) rows: as llama-bench's avg_ts, a mean of rates."""
    rows = [r for r in parsed["rows"] if r["pl"] == batch][skip:]
    if not rows:
        raise RuntimeError(f"llama-batched-bench has no row for batch {batch} after the warm-up")
    return {"pp": statistics.mean(r["speed_pp"] for r in rows),
            "tg": statistics.mean(r["speed_tg"] for r in rows)}


def bench_depths(a) -> list[int]:
    """llama-bench's -d list: our depths (pp @ d) and our depths plus the prompt (tg @ d+P)."""
    return sorted(set(a.depths) | {d + a.n_prompt for d in a.depths})


def llama_bench(tools: Path, gguf: Path, a) -> dict:
    """llama-bench's pp P @ d and tg G @ d (tok/s, mean over -r reps), keyed ("pp"|"tg", d)."""
    cmd = [str(tools / "llama-bench"), "-m", str(gguf), "-p", str(a.n_prompt), "-n", str(a.n_gen),
           "-d", ",".join(map(str, bench_depths(a))), "-r", str(a.bench_reps),
           "-t", str(a.threads), "-ngl", str(a.ngl), "-fa", "auto", "-o", "json"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return read_llama_bench(json.loads(res.stdout))


def read_llama_bench(rows: list[dict]) -> dict:
    out = {}
    for r in rows:
        kind = "pp" if r["n_gen"] == 0 else "tg" if r["n_prompt"] == 0 else None
        if kind:
            out[(kind, r["n_depth"])] = r["avg_ts"]
    return out


def batched_bench(tools: Path, gguf: Path, batch: int, a) -> dict:
    """llama-batched-bench at ``batch`` sequences with our context's settings: S_PP and S_TG."""
    ctx = batch * n_ctx_per_seq(a)
    cmd = [str(tools / "llama-batched-bench"), "-m", str(gguf), "-c", str(ctx), "-b", str(ctx),
           "-ub", str(min(ctx, llamacpp.UBATCH)), "-npp", str(a.n_prompt), "-ntg", str(a.n_gen),
           "-npl", ",".join([str(batch)] * (a.bench_reps + 1)), "-t", str(a.threads),
           "-tb", str(a.threads), "-ngl", str(a.ngl), "-fa", "auto"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return batched_means(parse_batched_bench(res.stdout + res.stderr), batch, skip=1)


def ours_points(gguf: Path, ids_path: Path, a, memory_hz: float, greedy: str) -> dict:
    """Our latency sweep (the prompt x batch sizes x depths) on ``gguf`` in a fresh process, as
    every pipeline benchmark job: the points keyed (batch, depth)."""
    m = fresh_latency("gguf-f16", gguf, ids_path, prompt_tokens=[a.n_prompt],
                      new_tokens=a.n_gen, warmup_runs=a.warmup, measured_runs=a.reps,
                      batch_sizes=a.batch_sizes, context_depths=a.depths,
                      device="cuda" if a.ngl else "cpu", threads=a.threads,
                      memory_sample_hz=memory_hz, llamacpp_greedy=greedy, energy_s=0)
    if m["status"] != Status.OK:
        raise RuntimeError(m["reason"])
    return {(p["batch_size"], p["context_depth"]): p for p in m["points"]
            if p["status"] == Status.OK}


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _row(what, batch, depth, reference, ours, ref, **extra) -> dict:
    """One comparison: medians over rounds of ours and the reference, their ratio and the range
    of the per-round ratios."""
    rounds = [o / r for o, r in zip(ours, ref, strict=True) if o is not None and r]
    mo, mr = _median(ours), _median(ref)
    return {"what": what, "batch": batch, "depth": depth, "reference": reference,
            "ours": mo, "ref": mr, "ratio": mo / mr if mo is not None and mr else None,
            "ratio_min": min(rounds) if rounds else None,
            "ratio_max": max(rounds) if rounds else None, **extra}


def point_rows(ours: list[dict], bench: list[dict], batched: list[dict], a) -> list[dict]:
    """The comparison table from the rounds: ``ours`` a list (one a round) of points keyed
    (batch, depth), ``bench`` of llama-bench results keyed ("pp"|"tg", depth), ``batched`` of
    llama-batched-bench means keyed by batch size."""
    p, g = a.n_prompt, a.n_gen

    def col(rounds, key, field=None):
        return [(r.get(key) or {}).get(field) if field else r.get(key) for r in rounds]

    rows = []
    for d in a.depths:
        rows.append(_row("prefill", 1, d, f"llama-bench pp{p} @ d{d}",
                         col(ours, (1, d), "prefill_tok_s"), col(bench, ("pp", d))))
    for d in a.depths:
        ref = col(bench, ("tg", d + p))
        every = _median(col(ours, (1, d), "decode_tok_s"))
        rows.append(_row("decode steady", 1, d, f"llama-bench tg{g} @ d{d + p}",
                         col(ours, (1, d), "decode_steady_tok_s"), ref,
                         ratio_all_steps=every / _median(ref) if every and _median(ref) else None,
                         first_step_ms=_median(col(ours, (1, d), "first_step_ms"))))
    if 0 in a.depths:
        for b in a.batch_sizes:
            rows.append(_row("prefill", b, 0, f"batched-bench S_PP pp{p} B{b}",
                             col(ours, (b, 0), "prefill_tok_s"), col(batched, b, "pp")))
        for b in a.batch_sizes:
            ref = col(batched, b, "tg")
            steady = _median(col(ours, (b, 0), "decode_steady_tok_s"))
            rows.append(_row("decode total", b, 0, f"batched-bench S_TG tg{g} B{b}",
                             col(ours, (b, 0), "decode_tok_s"), ref,
                             ratio_steady=steady / _median(ref) if steady and _median(ref)
                             else None))
    return rows


def _fmt(v, width: int, digits: int) -> str:
    return f"{v:>{width}.{digits}f}" if v is not None else f"{'-':>{width}}"


def format_points(file: str, rows: list[dict]) -> str:
    lines = [f"{file}: ours / llama.cpp's tools, tok/s (medians over rounds)",
             f"{'what':<14}{'batch':>6}{'depth':>6}  {'reference':<28}{'ours':>10}{'ref':>10}"
             f"{'ratio':>8}  per round"]
    for r in rows:
        extra = ""
        if r.get("ratio_all_steps") is not None:
            extra = (f"  over every step {r['ratio_all_steps']:.3f} (first step "
                     f"{r['first_step_ms']:.2f} ms)")
        if r.get("ratio_steady") is not None:
            extra = f"  steady state {r['ratio_steady']:.3f}"
        span = (f"{r['ratio_min']:.3f}..{r['ratio_max']:.3f}" if r["ratio_min"] is not None
                else "-")
        lines.append(f"{r['what']:<14}{r['batch']:>6}{r['depth']:>6}  {r['reference']:<28}"
                     f"{_fmt(r['ours'], 10, 1)}{_fmt(r['ref'], 10, 1)}{_fmt(r['ratio'], 8, 3)}"
                     f"  {span}{extra}")
    return "\n".join(lines)


def batch_ratios(rows: list[dict]) -> dict[int, tuple[float | None, float | None]]:
    """Our batched decode over llama-batched-bench's S_TG at each batch size: (over every
    step, steady state), from the comparison table's rows."""
    return {r["batch"]: (r["ratio"], r.get("ratio_steady")) for r in rows
            if r["what"] == "decode total"}


def format_batch_ratios(results: list[dict]) -> str:
    """One line a file: its batched decode ratio at each batch size (steady state after it)."""
    batches = sorted({b for res in results for b in res["summary"]["decode_ratio_by_batch"]})
    lines = ["batched decode, ours / llama-batched-bench S_TG (medians over rounds; steady "
             "state after /)",
             f"{'file':<16}" + "".join(f"{f'B{b}':>15}" for b in batches)]
    for res in results:
        by = res["summary"]["decode_ratio_by_batch"]
        cells = []
        for b in batches:
            every, steady = by.get(b, (None, None))
            cells.append(f"{_fmt(every, 7, 3)} /{_fmt(steady, 6, 3)}")
        lines.append(f"{res['summary']['file']:<16}" + "".join(cells))
    return "\n".join(lines)


def compare_speed(tools: Path, gguf: Path, ids_path: Path, a, variants) -> dict:
    """llama-bench, llama-batched-bench (one process per batch size) and each of our variants in
    alternating order, ``a.rounds`` times, each run a fresh process: run-to-run drift of the
    machine falls on both sides alike. The per-round results of each side."""
    runs = [("bench", None, None), ("batched", None, None)] + variants
    got = {name: [] for name, _, _ in runs}
    for r in range(a.rounds):
        for name, hz, greedy in (runs if r % 2 == 0 else runs[::-1]):
            if name == "bench":
                got[name].append(llama_bench(tools, gguf, a))
            elif name == "batched":
                got[name].append({b: batched_bench(tools, gguf, b, a) for b in a.batch_sizes})
            else:
                got[name].append(ours_points(gguf, ids_path, a, hz, greedy))
    return got


def summary_row(gguf: Path, got: dict, rows: list[dict], a, variants) -> dict:
    """The batch-1, depth-0 figures of the first table (pp, tg, across-process CV)."""
    pp = next(r for r in rows if r["what"] == "prefill" and r["batch"] == 1 and r["depth"] == 0
              and r["reference"].startswith("llama-bench"))
    tg = next(r for r in rows if r["what"] == "decode steady" and r["depth"] == 0)
    steady = [o[(1, 0)]["decode_steady_tok_s"] for o in got["ours"]]
    extra = {}
    for name, _, _ in variants[1:]:
        ours = _median([o[(1, 0)]["decode_steady_tok_s"] for o in got[name]])
        extra[name] = ours / tg["ref"]
    return {
        "file": gguf.name, "pp_bench": pp["ref"], "pp_ours": pp["ours"], "pp_ratio": pp["ratio"],
        "tg_bench": tg["ref"], "tg_ours": tg["ours"], "tg_ratio": tg["ratio"],
        "tg_ratio_min": tg["ratio_min"], "tg_ratio_max": tg["ratio_max"],
        "tg_ratio_all_steps": tg["ratio_all_steps"], "first_step_ms": tg["first_step_ms"],
        "step_ms": 1e3 / tg["ours"],
        "tg_cv_ours": _median([o[(1, 0)]["decode_cv"] for o in got["ours"]]),
        "tg_cv_processes": (statistics.stdev(steady) / statistics.mean(steady)
                            if len(steady) > 1 else float("nan")),
        "decode_ratio_by_batch": batch_ratios(rows),
        **extra,
    }


def llama_perplexity(tools: Path, gguf: Path, text: Path, a) -> tuple[float, float]:
    cmd = [str(tools / "llama-perplexity"), "-m", str(gguf), "-f", str(text), "-c", str(a.ctx),
           "-b", str(a.ctx), "--chunks", str(a.chunks), "-t", str(a.threads), "-ngl", str(a.ngl),
           "-fa", "auto"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    m = PPL_LINE.search(res.stdout + res.stderr)
    if not m:
        raise RuntimeError("llama-perplexity printed no final estimate")
    return float(m.group(1)), float(m.group(2))


def ours_perplexity(gguf: Path, text: Path, a) -> tuple[float, float]:

    backend = LlamaCppBackend(precisions.get("gguf-f16"), gguf, device="cuda" if a.ngl else "cpu",
                              threads=a.threads, n_ctx=a.ctx)
    vocab = llama_cpp.llama_model_get_vocab(backend.model)
    bos = llama_cpp.llama_vocab_bos(vocab) if llama_cpp.llama_vocab_get_add_bos(vocab) else None
    tokenizer = llama_cpp.Llama(str(gguf), n_ctx=16, vocab_only=True, verbose=False)
    ids = tokenizer.tokenize(text.read_bytes(), add_bos=False, special=False)
    windows = llamacpp_windows(ids, a.ctx, bos_id=bos, max_windows=a.chunks)
    nll = np.concatenate([token_nll(backend.logits(w.ids), w) for w in windows])
    out = perplexity(nll)
    backend.close()
    return out["ppl"], out["ppl_stderr"]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="quantbench fidelity", description=__doc__.splitlines()[0])
    ap.add_argument("gguf", nargs="+", type=Path)
    ap.add_argument("--text", type=Path, required=True)
    ap.add_argument("--tools", type=Path,
                    help="folder with llama-bench, llama-batched-bench and llama-perplexity")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ngl", type=int, default=0,
                    help="layers on the GPU: 0 or 99 (all; ours offloads every layer on cuda)")
    ap.add_argument("--n-prompt", type=int, default=128)
    ap.add_argument("--n-gen", type=int, default=32)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16, 64],
                    help="batch sizes compared with llama-batched-bench (1 is always measured)")
    ap.add_argument("--depths", type=int, nargs="+", default=[0],
                    help="context depths compared with llama-bench -d (0 is always measured)")
    ap.add_argument("--reps", type=int, default=5, help="our measured runs per point")
    ap.add_argument("--bench-reps", type=int, default=5,
                    help="llama-bench's -r; llama-batched-bench's repeats per batch size")
    ap.add_argument("--warmup", type=int, default=10,
                    help="our warm-up runs before the measured ones (the protocol's default)")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--no-ppl", action="store_true", help="skip the perplexity comparison")
    ap.add_argument("--prefill-parts", action="store_true",
                    help="also time the parts of our batch-1 prefill in one process")
    ap.add_argument("--step-parts", action="store_true",
                    help="also time the parts of our batched decode step at each batch size")
    ap.add_argument("--parts-reps", type=int, default=30)
    ap.add_argument("--ubatch", type=int, nargs="*", default=[],
                    help="with --prefill-parts: n_ubatch values to time llama_decode at "
                         "(ours and llama-bench -ub)")
    ap.add_argument("--memory-hz", type=float, nargs="+", default=[0.0],
                    help="background GPU-memory sampling rates of our runs (0: between runs "
                         "only, the default): the first is the table's, the others are extra "
                         "decode figures (the sampler's cost)")
    ap.add_argument("--greedy", choices=("host", "device"), nargs="+", default=["host"],
                    help="where our decode picks the greedy token (see latency.llamacpp_greedy): "
                         "the first is the table's, the others extra decode figures")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating llama-bench / ours rounds, each a fresh process")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    a = ap.parse_args(argv)
    a.batch_sizes = sorted(set(a.batch_sizes) | {1})
    a.depths = sorted(set(a.depths) | {0})
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)

    a.threads = resolve_threads(a.threads)
    if a.tools is None:
        build = [str(source_tree() / "tools" / "build-llama-tools.sh"),
                 str(Path(sys.executable).parents[1])]
        res = subprocess.run(["bash", *build], capture_output=True, text=True, check=True)
        a.tools = Path(res.stdout.strip().splitlines()[-1])
    tools = a.tools
    # the table's run, then extra decode figures, each changing one of its settings
    variants = ([("ours", a.memory_hz[0], a.greedy[0])]
                + [(f"tg_ratio_mem{hz:g}hz", hz, a.greedy[0]) for hz in a.memory_hz[1:]]
                + [(f"tg_ratio_greedy_{g}", a.memory_hz[0], g) for g in a.greedy[1:]])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for gguf in a.gguf:
            # the latency prompt: the first tokens of the text, by llama.cpp's tokenizer
            llm = llama_cpp.Llama(str(gguf), n_ctx=16, vocab_only=True, verbose=False)
            ids = np.asarray(llm.tokenize(a.text.read_bytes(), add_bos=False), dtype=np.int32)
            del llm
            ids_path = Path(tmp) / "ids.npy"
            np.save(ids_path, ids)
            got = compare_speed(tools, gguf, ids_path, a, variants)
            rows = point_rows(got["ours"], got["bench"], got["batched"], a)
            summary = summary_row(gguf, got, rows, a, variants)
            if not a.no_ppl:
                ppl_ref, _ = llama_perplexity(tools, gguf, a.text, a)
                ppl_ours, _ = ours_perplexity(gguf, a.text, a)
                summary.update(ppl_bench=ppl_ref, ppl_ours=ppl_ours,
                               ppl_diff_pct=100 * (ppl_ours / ppl_ref - 1))
            parts = prefill_parts(tools, gguf, ids, a) if a.prefill_parts else []
            steps = step_parts(gguf, ids, a) if a.step_parts else []
            # each extra variant's whole table (e.g. device-side greedy at batch > 1)
            others = {name: point_rows(got[name], got["bench"], got["batched"], a)
                      for name, _, _ in variants[1:]}
            results.append({"summary": summary, "points": rows, "prefill_parts": parts,
                            "step_parts": steps,
                            "variant_points": others,
                            "ours_points": [{f"b{b} d{d}": p for (b, d), p in o.items()}
                                            for o in got["ours"]]})
    print(f"threads={a.threads} ngl={a.ngl} prompt={a.n_prompt} gen={a.n_gen} "
          f"batch sizes={a.batch_sizes} depths={a.depths} ours: warmup={a.warmup} reps={a.reps}; "
          f"llama-bench reps={a.bench_reps} ctx={a.ctx} chunks={a.chunks} rounds={a.rounds} "
          "(speed: medians over rounds)")
    print(f"{'file':<16}{'pp bench':>10}{'pp ours':>10}{'ratio':>7}{'tg bench':>10}"
          f"{'tg ours':>10}{'ratio':>7}{'ppl bench':>11}{'ppl ours':>11}{'diff %':>9}")
    for res in results:
        r = res["summary"]
        ppl = (f"{r['ppl_bench']:>11.4f}{r['ppl_ours']:>11.4f}{r['ppl_diff_pct']:>+9.4f}"
               if "ppl_bench" in r else f"{'-':>11}{'-':>11}{'-':>9}")
        print(f"{r['file']:<16}{r['pp_bench']:>10.1f}{r['pp_ours']:>10.1f}{r['pp_ratio']:>7.3f}"
              f"{r['tg_bench']:>10.1f}{r['tg_ours']:>10.1f}{r['tg_ratio']:>7.3f}{ppl}"
              + f"  tg ratio per round {r['tg_ratio_min']:.3f}..{r['tg_ratio_max']:.3f}"
              + f"  over every step {r['tg_ratio_all_steps']:.3f} (first step "
              f"{r['first_step_ms']:.2f} ms, then {r['step_ms']:.2f} ms)"
              + f"  our tg CV across {a.rounds} processes {100 * r['tg_cv_processes']:.2f} %"
              + "".join(f"  {name}={r[name]:.3f}" for name, _, _ in variants[1:]))
    print()
    print(format_batch_ratios(results))
    for res in results:
        print()
        print(format_points(res["summary"]["file"], res["points"]))
        for name, rows in res["variant_points"].items():
            print()
            print(format_points(f"{res['summary']['file']} [{name}]", rows))
        if res["prefill_parts"]:
            print(f"{res['summary']['file']}: batch-1 prefill of {a.n_prompt} tokens, parts "
                  f"(median of {a.parts_reps} runs in one process)")
            for part in res["prefill_parts"]:
                print(f"  {part['part']:<52}{part['ms']:>10.4f} ms{part['tok_s']:>12.1f} tok/s")
        if res["step_parts"]:
            print(f"{res['summary']['file']}: one decode step after a {a.n_prompt}-token prefill "
                  f"of each sequence, parts (median of {a.parts_reps} steps in one process; "
                  f"greedy on the {a.greedy[0]})")
            for part in res["step_parts"]:
                print(f"  B{part['batch_size']:<4}{part['part']:<48}{part['ms']:>10.4f} ms"
                      f"{part['tok_s']:>12.1f} tok/s")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return 0
