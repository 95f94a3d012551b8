"""Diagnostic for research/kquant-fallback.md: how much of a file's loss is the gain of its Q5_1
tensors? Each Q5_1 tensor's gain g (sum((Wq - W) W) / sum(W^2), against the F16 file) is removed
while every stored level is kept: per block, d' = d / (1 + g) and m' = c - 15.5 d' about the
block centre c = m + 15.5 d, so x' = c + (x - c) / (1 + g). Then weight error, PPL and KLD of the
corrected copy, as research/bench_kquant_fallback.py measures them.

    python -m research.diag_q5_1_gain --f16 F16.gguf --text TEXT \
        --gguf /tmp/kquant/smollm2/q5_k_m.gguf --out /tmp/kquant/q5_k_m_degained.gguf
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from . import bench_kquant_fallback as bench

Q5_1_BLOCK_BYTES = 24  # f16 d, f16 m, 4 bytes of high bits, 16 bytes of low nibbles


def remove_q5_1_gain(f16: Path, src: Path, out: Path) -> int:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    shutil.copy(src, out)
    ref = {t.name: t for t in GGUFReader(str(f16)).tensors}
    n = 0
    for t in GGUFReader(str(out), "r+").tensors:
        if t.tensor_type.name != "Q5_1":
            continue
        w0 = np.asarray(ref[t.name].data, dtype=np.float64).reshape(-1)
        err = dequantize(t.data, t.tensor_type).reshape(-1) - w0
        gain = (err @ w0) / (w0 @ w0)
        blocks = t.data.reshape(-1, Q5_1_BLOCK_BYTES)
        d = blocks[:, 0:2].copy().view(np.float16).astype(np.float64)
        m = blocks[:, 2:4].copy().view(np.float16).astype(np.float64)
        centre = m + 15.5 * d
        d_new = d / (1 + gain)
        blocks[:, 0:2] = d_new.astype(np.float16).view(np.uint8)
        blocks[:, 2:4] = (centre - 15.5 * d_new).astype(np.float16).view(np.uint8)
        n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--f16", type=Path, required=True)
    ap.add_argument("--gguf", type=Path, required=True, help="the file whose Q5_1 gain to remove")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--text", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=8)
    a = ap.parse_args()
    n = remove_q5_1_gain(a.f16, a.gguf, a.out)
    ref = bench.weights(a.f16)
    scorer = bench.Scorer(a.text, a.f16, ctx=a.ctx, chunks=a.chunks, threads=a.threads)
    print(f"{n} Q5_1 tensors corrected; F16 PPL {scorer.ref_ppl['ppl']:.4f}")
    for label, path in (("as made", a.gguf), ("gain removed", a.out)):
        err = bench.weight_error(ref, path)
        s = scorer.score(path)
        print(f"{label:<13} rel RMS {100 * err['rel_rms']:.3f} %  gain {100 * err['gain']:+.3f} %  "
              f"PPL {s['ppl']:.4f}  ΔPPL {s['ppl_delta_pct']:+.2f} %  KLD {s['kld_mean']:.4f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
