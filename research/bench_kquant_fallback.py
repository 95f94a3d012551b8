"""What a GGUF file type really holds, and what that costs: types, weight error, PPL, KLD.

    python -m research.bench_kquant_fallback --f16 MODEL/gguf/f16.gguf \
        --text resources/datasets/britannica.txt --out /tmp/kquant/MODEL \
        q8_0 q6_k q5_k_m q4_k_m q3_k_m q2_k q4_0 [--threads 2] [--by-role] [--json FILE]
    (--hf HF_FOLDER instead of --f16 converts the folder to OUT/f16.gguf first)

Each file type is quantized from the F16 GGUF with quantbench.gguf.quantize (the pipeline's own
call; files already in --out are reused). llama.cpp's K-quants need rows that are multiples of
256; for other tensors it falls back (0.3.36: Q2_K, Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1,
Q6_K -> Q8_0), so a "Q5_K_M" file may hold little or no Q5_K. For each file:
- the share of the weights in each tensor type;
- the relative RMS error of the weights against the F16 file, sqrt(sum (Wq - W)^2 / sum W^2)
  over every tensor, each dequantized with gguf-py (gguf.quants.dequantize), and its gain
  sum((Wq - W) W) / sum(W^2), the systematic part of that error (see weight_error);
- unless --no-ppl: the perplexity with quantbench's llama.cpp-compatible protocol (windows of
  --ctx tokens, second half scored, the first --chunks windows), its change against the F16 file,
  and the mean KL divergence from the F16 file on the same positions (quantbench.kld: top-32 of
  the F16 distribution plus a tail bucket), with the 95 % interval of the perplexity change from
  the paired per-position differences of negative log-likelihood, resampled window by window
  (quantbench.kld; n/a with fewer than 3 chunks).
--by-role adds, per tensor role (attn_q, ffn_down, token_embd, ...), the types, error and gain;
--json also keeps the type of every tensor.
Run with threads fixed (--threads): llama.cpp's results do not depend on timing, only on threads.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import llama_cpp  # before numpy, as in quantbench.backends.llamacpp
import numpy as np

from quantbench import precisions
from quantbench.artifacts.gguf import (
    convert,
    fetch_converter,
    installed_llama_cpp_version,
    quantize,
    tensor_types,
)
from quantbench.kld import Comparison, ReferenceWriter
from quantbench.perplexity import llamacpp_windows, perplexity, scored_logprobs

ROLE = re.compile(r"^blk\.\d+\.")


def weights(path: Path) -> dict[str, tuple[str, np.ndarray]]:
    """Every tensor of a GGUF as (type name, float32 values), dequantized by gguf-py."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    return {t.name: (t.tensor_type.name,
                     dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1))
            for t in GGUFReader(str(path)).tensors}


def weight_error(ref: dict, path: Path) -> dict:
    """Relative RMS error of the weights, and their gain: the part of the error along the weights
    themselves, sum((Wq - W) W) / sum(W^2) (Wq ~ (1 + gain) W + noise). Rounding noise has no
    gain; a quantizer whose grid is misaligned with a grid the weights already lie on can have
    one. Over all weights, per role ({role: {types by share, rel_rms, gain}}) and the type of
    each tensor."""
    sums = defaultdict(lambda: np.zeros(3))  # error^2, error * W, W^2
    types, per_tensor = defaultdict(Counter), {}
    for name, (qtype, w) in weights(path).items():
        per_tensor[name] = qtype
        w0 = ref[name][1].astype(np.float64)
        err = w - w0
        role = ROLE.sub("", name).removesuffix(".weight")
        sums[role] += (err @ err, err @ w0, w0 @ w0)
        types[role][qtype] += w.size

    def summary(e2, ew, w2):
        return {"rel_rms": float(np.sqrt(e2 / w2)) if w2 else 0.0,
                "gain": float(ew / w2) if w2 else 0.0}

    roles = {r: {"types": {t: 100 * n / sum(c.values()) for t, n in c.most_common()},
                 **summary(*sums[r])} for r, c in types.items()}
    return {**summary(*sum(sums.values())), "roles": roles, "tensors": per_tensor}


class Scorer:
    """Log-probabilities of each file on the same windows, compared with the first file's."""

    def __init__(self, text: Path, f16: Path, *, ctx: int, chunks: int, threads: int):
        tok = llama_cpp.Llama(str(f16), n_ctx=16, vocab_only=True, verbose=False)
        ids = tok.tokenize(text.read_bytes(), add_bos=False, special=False)
        vocab = llama_cpp.llama_model_get_vocab(tok._model.model)
        bos = llama_cpp.llama_vocab_bos(vocab) if llama_cpp.llama_vocab_get_add_bos(vocab) else None
        self.windows = llamacpp_windows(ids, ctx, bos_id=bos, max_windows=chunks)
        self.ctx, self.threads = ctx, threads
        ref = ReferenceWriter()
        self.ref_ppl = self._run(f16, ref.add)
        self.ref = {"topk_ids": np.concatenate(ref.ids),
                    "topk_logprobs": np.concatenate(ref.logprobs),
                    "target_logprob": np.concatenate(ref.target_logprob)}

    def _run(self, path: Path, sink) -> dict:
        from quantbench.backends.llamacpp import LlamaCppBackend

        backend = LlamaCppBackend(precisions.get("gguf-f16"), path, device="cpu",
                                  threads=self.threads, n_ctx=self.ctx)
        nll = []
        try:
            for w in self.windows:
                lp = scored_logprobs(backend.logits(w.ids), w)
                nll.append(-lp[np.arange(len(w.targets)), w.targets])
                sink(lp, w.targets)
        finally:
            backend.close()
        return perplexity(np.concatenate(nll))

    def score(self, path: Path) -> dict:
        cmp = Comparison(self.ref)
        out = self._run(path, cmp.add)
        m = cmp.metrics()
        out["kld_mean"], out["ppl_delta_pct_ci95"] = m["kld_mean"], m["ppl_delta_pct_ci95"]
        out["ppl_delta_pct"] = 100 * (out["ppl"] / self.ref_ppl["ppl"] - 1)
        return out


def f16_from_hf(hf: Path, out: Path, converter: Path | None) -> Path:
    if not out.exists():
        if converter is None:
            converter = (Path.home() / ".cache" / "quantbench"
                         / f"converter-{installed_llama_cpp_version()}")
            if not (converter / "convert_hf_to_gguf.py").is_file():
                fetch_converter(converter)
        convert(hf, out, outtype="f16", converter=converter)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("types", nargs="+", help="GGUF file types (llama.cpp's names: q5_k_m, ...)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--f16", type=Path, help="the F16 GGUF to quantize from")
    src.add_argument("--hf", type=Path, help="or an HF folder, converted to OUT/f16.gguf first")
    ap.add_argument("--converter", type=Path, help="llama.cpp's converter folder (with --hf; "
                    "default: fetched once into ~/.cache/quantbench)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the quantized files")
    ap.add_argument("--text", type=Path, help="evaluation text (needed unless --no-ppl)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--no-ppl", action="store_true", help="weight error only")
    ap.add_argument("--by-role", action="store_true", help="also print types and error per role")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    a = ap.parse_args()
    if not a.no_ppl and a.text is None:
        ap.error("--text is needed unless --no-ppl")
    a.out.mkdir(parents=True, exist_ok=True)
    if a.hf:
        a.f16 = f16_from_hf(a.hf, a.out / "f16.gguf", a.converter)
    ref = weights(a.f16)
    scorer = None if a.no_ppl else Scorer(a.text, a.f16, ctx=a.ctx, chunks=a.chunks,
                                          threads=a.threads)
    print_head(scorer)
    rows = []
    for qtype in a.types:
        path = a.out / f"{qtype}.gguf"
        if not path.exists():
            quantize(a.f16, path, gguf_type=qtype, threads=a.threads)
        err = weight_error(ref, path)
        row = {"type": qtype, "size_mib": path.stat().st_size / 2**20,
               "types_pct": tensor_types(path), "weight_rel_rms": err["rel_rms"],
               "weight_gain": err["gain"], "roles": err["roles"], "tensors": err["tensors"]}
        if scorer:
            row.update(scorer.score(path))
        rows.append(row)
        print_row(row, scorer)
    if a.by_role:
        print_roles(rows)
    if a.json:
        a.json.write_text(json.dumps({"f16_ppl": scorer and scorer.ref_ppl, "rows": rows},
                                     indent=2) + "\n")
    return 0


def print_head(scorer: Scorer | None) -> None:
    if scorer:
        ref = scorer.ref_ppl
        print(f"F16 reference: PPL {ref['ppl']:.4f} ± {ref['ppl_stderr']:.4f} over "
              f"{ref['n_tokens']} tokens")
    print(f"{'type':<8}{'MiB':>7}{'rel RMS %':>10}{'gain %':>8}"
          + (f"{'PPL':>11}{'ΔPPL %':>8}{'paired 95 % CI':>18}{'KLD':>10}" if scorer else "")
          + "  weights by type %")


def print_row(row: dict, scorer: Scorer | None) -> None:
    types = ", ".join(f"{t} {p:.1f}" for t, p in row["types_pct"].items() if p >= 0.05)
    line = (f"{row['type']:<8}{row['size_mib']:>7.1f}{100 * row['weight_rel_rms']:>10.3f}"
            f"{100 * row['weight_gain']:>+8.3f}")
    if scorer:
        low, high = row["ppl_delta_pct_ci95"]
        ci = "n/a" if low is None else f"[{low:+.2f}, {high:+.2f}]"  # fewer than 3 chunks
        line += (f"{row['ppl']:>11.4f}{row['ppl_delta_pct']:>+8.2f}"
                 f"{ci:>18}{row['kld_mean']:>10.2e}")
    print(line + "  " + types, flush=True)


def print_roles(rows: list[dict]) -> None:
    roles = [r for r, v in rows[0]["roles"].items() if "F32" not in v["types"]]
    print("\nper role: relative RMS error %, gain %, types (% of the role's weights)")
    for role in roles:
        print(f"{role}:")
        for row in rows:
            v = row["roles"][role]
            mix = ", ".join(f"{t} {p:.0f}" for t, p in v["types"].items())
            print(f"  {row['type']:<8}{100 * v['rel_rms']:>8.3f}{100 * v['gain']:>+8.3f}  {mix}")


if __name__ == "__main__":
    sys.exit(main())
