"""quantbench's llama.cpp path against llama.cpp's own tools, on the same GGUF files.

    python tools/bench_llamacpp_fidelity.py --text resources/datasets/britannica.txt \
        resources/models/smollm2-135m/gguf/*.gguf [--ngl 99] [--threads N]

Speed: llama-bench's prompt processing (pp) and token generation at depth (tg @ d) against
quantbench's latency scenario with the same prompt length, decoded tokens and threads:
ratio = ours / llama-bench (target for decode: >= 0.97). llama-bench's tg decodes after a decode
(its depth comes from a saved state), so the table compares our steady-state decode (every step
but the first after the prefill); the ratio over every step and our first step's time are
printed beside it. Both sides run in fresh processes, alternating, --rounds times (medians).
Perplexity: llama-perplexity (-c CTX -b CTX --chunks N) against quantbench's llama.cpp-compatible
protocol on the same file, fed the ids of llama.cpp's own tokenizer (so that only the protocol
is compared), target |difference| <= 0.05 %.
The tools are built from the llama-cpp-python sdist that matches the installed library
(tools/build-llama-tools.sh). Prints a table.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tools"))

from bench_repeatability import fresh_latency  # noqa: E402

from quantbench import precisions  # noqa: E402
from quantbench.backends.llamacpp import LlamaCppBackend  # noqa: E402
from quantbench.perplexity import llamacpp_windows, perplexity, token_nll  # noqa: E402

PPL_LINE = re.compile(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)")


def llama_bench(tools: Path, gguf: Path, a) -> dict:
    cmd = [str(tools / "llama-bench"), "-m", str(gguf), "-p", str(a.n_prompt), "-n", str(a.n_gen),
           "-d", f"0,{a.n_prompt}", "-r", str(a.bench_reps), "-t", str(a.threads),
           "-ngl", str(a.ngl), "-fa", "auto", "-o", "json"]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rows = json.loads(res.stdout)
    pp = next(r for r in rows if r["n_prompt"] == a.n_prompt and r["n_depth"] == 0)
    tg = next(r for r in rows if r["n_gen"] == a.n_gen and r["n_depth"] == a.n_prompt)
    return {"pp_tok_s": pp["avg_ts"], "pp_sd": pp["stddev_ts"],
            "tg_tok_s": tg["avg_ts"], "tg_sd": tg["stddev_ts"]}


def ours_speed(gguf: Path, ids_path: Path, a, memory_hz: float, greedy: str) -> dict:
    """Our latency scenario on ``gguf`` in a fresh process, as every pipeline benchmark job."""
    m = fresh_latency("gguf-f16", gguf, ids_path, prompt_tokens=[a.n_prompt],
                      new_tokens=a.n_gen, warmup_runs=a.warmup, measured_runs=a.reps,
                      device="cuda" if a.ngl else "cpu", threads=a.threads,
                      memory_sample_hz=memory_hz, llamacpp_greedy=greedy)
    if m["status"] != "ok":
        raise RuntimeError(m["reason"])
    return {"pp_tok_s": m["prefill_tok_s"], "tg_tok_s": m["decode_steady_tok_s"],
            "tg_all_tok_s": m["decode_tok_s"], "first_step_ms": m["decode_first_step_ms"],
            "tg_cv": m["decode_cv"]}


def compare_speed(tools: Path, gguf: Path, ids_path: Path, a, variants) -> dict:
    """llama-bench and each of our variants in alternating order, ``a.rounds`` times, each run a
    fresh process: run-to-run drift of the machine falls on both sides alike. Medians over the
    rounds; the per-round decode ratios give the range."""
    runs = [("bench", None, None)] + variants
    got = {name: [] for name, _, _ in runs}
    for r in range(a.rounds):
        for name, hz, greedy in (runs if r % 2 == 0 else runs[::-1]):
            got[name].append(llama_bench(tools, gguf, a) if name == "bench"
                             else ours_speed(gguf, ids_path, a, hz, greedy))
    out = {}
    for name, rows in got.items():
        out[name] = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        if name != "bench":
            ratios = [o["tg_tok_s"] / b["tg_tok_s"]
                      for o, b in zip(rows, got["bench"], strict=True)]
            out[name]["tg_ratio_min"], out[name]["tg_ratio_max"] = min(ratios), max(ratios)
            tg = [row["tg_tok_s"] for row in rows]
            out[name]["tg_cv_processes"] = (statistics.stdev(tg) / statistics.mean(tg)
                                            if len(tg) > 1 else float("nan"))
    return out


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
    return out["ppl"], out["ppl_stderr"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gguf", nargs="+", type=Path)
    ap.add_argument("--text", type=Path, required=True)
    ap.add_argument("--tools", type=Path, help="folder with llama-bench and llama-perplexity")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--ngl", type=int, default=0, help="layers on the GPU (99 = all)")
    ap.add_argument("--n-prompt", type=int, default=128)
    ap.add_argument("--n-gen", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5, help="our measured runs per process")
    ap.add_argument("--bench-reps", type=int, default=5, help="llama-bench's -r")
    ap.add_argument("--warmup", type=int, default=10,
                    help="our warm-up runs before the measured ones (the protocol's default)")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=8)
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
    a = ap.parse_args()
    from quantbench.device import resolve_threads

    a.threads = resolve_threads(a.threads)
    if a.tools is None:
        build = [str(REPO / "tools" / "build-llama-tools.sh"), str(Path(sys.executable).parents[1])]
        res = subprocess.run(["bash", *build], capture_output=True, text=True, check=True)
        a.tools = Path(res.stdout.strip().splitlines()[-1])
    tools = a.tools
    # the table's run, then extra decode figures, each changing one of its settings
    variants = ([("ours", a.memory_hz[0], a.greedy[0])]
                + [(f"tg_ratio_mem{hz:g}hz", hz, a.greedy[0]) for hz in a.memory_hz[1:]]
                + [(f"tg_ratio_greedy_{g}", a.memory_hz[0], g) for g in a.greedy[1:]])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for gguf in a.gguf:
            # the latency prompt: the first tokens of the text, by llama.cpp's tokenizer
            llm = llama_cpp.Llama(str(gguf), n_ctx=16, vocab_only=True, verbose=False)
            ids_path = Path(tmp) / "ids.npy"
            np.save(ids_path, np.asarray(llm.tokenize(a.text.read_bytes(), add_bos=False),
                                         dtype=np.int32))
            del llm
            speed = compare_speed(tools, gguf, ids_path, a, variants)
            ref, ours = speed["bench"], speed["ours"]
            extra = {name: speed[name]["tg_tok_s"] / ref["tg_tok_s"] for name, _, _ in variants[1:]}
            ppl_ref, se_ref = llama_perplexity(tools, gguf, a.text, a)
            ppl_ours, se_ours = ours_perplexity(gguf, a.text, a)
            rows.append({
                "file": gguf.name, "pp_bench": ref["pp_tok_s"], "pp_ours": ours["pp_tok_s"],
                "pp_ratio": ours["pp_tok_s"] / ref["pp_tok_s"], "tg_bench": ref["tg_tok_s"],
                "tg_ours": ours["tg_tok_s"], "tg_ratio": ours["tg_tok_s"] / ref["tg_tok_s"],
                "tg_ratio_min": ours["tg_ratio_min"], "tg_ratio_max": ours["tg_ratio_max"],
                "tg_ratio_all_steps": ours["tg_all_tok_s"] / ref["tg_tok_s"],
                "first_step_ms": ours["first_step_ms"], "step_ms": 1e3 / ours["tg_tok_s"],
                "tg_cv_ours": ours["tg_cv"], "tg_cv_processes": ours["tg_cv_processes"],
                "ppl_bench": ppl_ref, "ppl_ours": ppl_ours,
                "ppl_diff_pct": 100 * (ppl_ours / ppl_ref - 1), **extra,
            })
    head = (f"{'file':<16}{'pp bench':>10}{'pp ours':>10}{'ratio':>7}{'tg bench':>10}"
            f"{'tg ours':>10}{'ratio':>7}{'ppl bench':>11}{'ppl ours':>11}{'diff %':>9}")
    print(f"threads={a.threads} ngl={a.ngl} prompt={a.n_prompt} gen={a.n_gen} "
          f"ours: warmup={a.warmup} reps={a.reps}; llama-bench reps={a.bench_reps} "
          f"ctx={a.ctx} chunks={a.chunks} rounds={a.rounds} (speed: medians over rounds)")
    print(head)
    for r in rows:
        print(f"{r['file']:<16}{r['pp_bench']:>10.1f}{r['pp_ours']:>10.1f}{r['pp_ratio']:>7.3f}"
              f"{r['tg_bench']:>10.1f}{r['tg_ours']:>10.1f}{r['tg_ratio']:>7.3f}"
              f"{r['ppl_bench']:>11.4f}{r['ppl_ours']:>11.4f}{r['ppl_diff_pct']:>+9.4f}"
              + f"  tg ratio per round {r['tg_ratio_min']:.3f}..{r['tg_ratio_max']:.3f}"
              + f"  over every step {r['tg_ratio_all_steps']:.3f} (first step "
              f"{r['first_step_ms']:.2f} ms, then {r['step_ms']:.2f} ms)"
              + f"  our tg CV across {a.rounds} processes {100 * r['tg_cv_processes']:.2f} %"
              + "".join(f"  {name}={r[name]:.3f}" for name, _, _ in variants[1:]))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
