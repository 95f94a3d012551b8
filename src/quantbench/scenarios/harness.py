"""lm-evaluation-harness over quantbench's engines: ``BackendLM`` is an ``lm_eval`` language
model whose every score comes from one loaded ``Backend`` (transformers, bitsandbytes, torchao,
llama.cpp, ONNX Runtime), so a task's accuracy is that precision's, computed by the engine the
other measurements time.

Its conventions are those of lm-eval's own ``hf`` model (``lm_eval.models.huggingface.HFLM``), so
that its numbers are comparable with published ones and the fidelity tests can hold it to them:

- text is tokenised by the model's own tokenizer (transformers' ``AutoTokenizer`` of the
  prepared folder, as HFLM and quantbench's evaluation text), special tokens as the tokenizer
  adds them; llama.cpp and ONNX Runtime are fed the ids, never text;
- a context's trailing spaces move to the continuation, the pair is encoded whole and split at
  the context's length (``TemplateLM._encode_pair``); an empty context is the BOS token (else
  EOS);
- a sequence longer than the model's length (``max_length``, HFLM's rule) is cut from the left;
  rolling log-likelihoods score disjoint windows of ``max_length`` tokens, the first after BOS;
- log-softmax in float32 over each position's logits; ``is_greedy`` when each continuation
  token is its position's argmax;
- generation is greedy, stops at a stop string, an end-of-sequence token or ``max_gen_toks``, and
  the text is cut at the first stop string (lm-eval's own post-processing).

Requests are scored one sequence at a time through ``Backend.logits`` (one fresh window each,
the LM head over the continuation's positions alone);
requests whose input is identical (the choices of a one-token multiple choice) share one forward.
A task that asks for sampling is refused (``UnsupportedError``): quantbench decodes greedily.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from lm_eval import utils as lm_utils
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import (
    handle_stop_sequences,
    has_bos_prefix,
    normalize_gen_kwargs,
    postprocess_generated_text,
)

from quantbench.artifacts.manifest import model_options
from quantbench.errors import UnsupportedError

log = logging.getLogger(__name__)
# HFLM's length when neither the config nor the tokenizer names one
DEFAULT_MAX_LENGTH = 2048
# the config fields that hold a context length, in HFLM's order (lm_eval resolve_max_length)
LENGTH_FIELDS = ("n_positions", "max_position_embeddings", "n_ctx")
# a tokenizer's model_max_length when it names none (transformers' VERY_LARGE_INTEGER)
TOKENIZER_INFINITY = 1000000000000000019884624838656


def load_tokenizer(model_dir: str | Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), **model_options(model_dir))


def eos_ids(model_dir: str | Path) -> set[int]:
    """The end-of-sequence ids of the model's config and generation config."""
    out = set()
    for name in ("config.json", "generation_config.json"):
        path = Path(model_dir) / name
        found = json.loads(path.read_text()).get("eos_token_id") if path.is_file() else None
        out |= set(found if isinstance(found, list) else [found]) - {None}
    return out


def max_length_of(model_dir: str | Path, tokenizer) -> int:
    """The model's sequence length as HFLM resolves it: the text config's, the config's, the
    tokenizer's, else 2048."""
    config = json.loads((Path(model_dir) / "config.json").read_text())
    for section in (config.get("text_config") or {}, config):
        for name in LENGTH_FIELDS:
            if section.get(name):
                return int(section[name])
    limit = getattr(tokenizer, "model_max_length", None)
    if limit and limit != TOKENIZER_INFINITY:
        return int(limit)
    return DEFAULT_MAX_LENGTH


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float32, copy=False)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class BackendLM(TemplateLM):
    """An lm-eval model over one loaded quantbench backend and the model's tokenizer
    (``load_tokenizer``): sequences of up to ``max_length`` tokens (``max_length_of`` the
    model, or fewer), the context the backend is configured for; generation also stops at
    ``eos_ids``."""

    def __init__(self, backend, tokenizer, *, max_length: int, eos_ids=()):
        super().__init__()
        self.backend = backend
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.stop_ids = {self.eot_token_id, *eos_ids} - {None}
        self.forwards = 0  # windows scored: what a task cost, for the record
        self.generated_tokens = 0
        backend.configure(1, self.max_length)

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.tokenizer.eos_token_id

    @property
    def max_gen_toks(self) -> int:
        return 256

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs
                   ) -> list[int]:
        """HFLM's: the tokenizer's own special tokens unless told, none on a string that starts
        with the BOS text already."""
        options = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        if add_special_tokens is None and has_bos_prefix(
                string, self.tokenizer.decode(self.prefix_token_id)):
            options["add_special_tokens"] = False
        return self.tokenizer.encode(string, **options)

    def _logprobs(self, ids: list[int], last: int) -> np.ndarray:
        """Log-probabilities of the last ``last`` positions of one window."""
        self.forwards += 1
        return log_softmax(self.backend.logits(ids, last=last))

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs
                              ) -> list[tuple[float, bool]]:
        """(sum of the continuation's log-probabilities, whether each is its argmax) per
        ``(strings, context ids, continuation ids)``; the sequence is cut from the left to
        ``max_length`` + 1 tokens, its last token is not fed."""
        out, seen = [], {}
        for _, context, continuation in requests:
            if not context or not continuation or len(continuation) > self.max_length:
                raise ValueError(f"a request of {len(context)} context and {len(continuation)} "
                                 f"continuation tokens (at most {self.max_length}) is not scored")
            feed = tuple((context + continuation)[-(self.max_length + 1):][:-1])
            key = (feed, len(continuation))
            if key not in seen:
                seen.clear()  # identical inputs come together (one document's choices)
                seen[key] = self._logprobs(list(feed), len(continuation))
            rows = seen[key][-len(continuation):]
            picked = rows[np.arange(len(continuation)), continuation]
            greedy = bool((rows.argmax(axis=-1) == np.asarray(continuation)).all())
            out.append((float(picked.sum(dtype=np.float64)), greedy))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """The whole text's log-likelihood over disjoint windows of ``max_length`` tokens, the
        first predicted from BOS (HFLM's windows: lm_eval.utils.get_rolling_token_windows)."""
        out = []
        for (string,) in (r.args for r in requests):
            windows = map(lm_utils.make_disjoint_window, lm_utils.get_rolling_token_windows(
                token_list=self.tok_encode(string), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1))
            scores = self._loglikelihood_tokens([(None, c, t) for c, t in windows])
            out.append(sum(s for s, _ in scores))
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy continuation of each context, cut at the first stop string."""
        eos_text = self.tokenizer.decode(self.eot_token_id, skip_special_tokens=False)
        out = []
        for context, gen_kwargs in (r.args for r in requests):
            kwargs = normalize_gen_kwargs(dict(gen_kwargs), self.max_gen_toks)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos_text)
            max_new = kwargs.pop("max_gen_toks")
            if kwargs.get("do_sample") or (kwargs.get("temperature") or 0) > 0:
                raise UnsupportedError(
                    f"the task samples ({kwargs}); quantbench's engines decode greedily")
            prompt = self.tok_encode(context)[-(self.max_length - max_new):]
            tokens = self._greedy(prompt, max_new, until)
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            out.append(postprocess_generated_text(text, until, None))
        return out

    def _greedy(self, prompt: list[int], max_new: int, until: list[str]) -> list[int]:
        tokens = [self.backend.prefill(prompt)]
        while tokens[-1] not in self.stop_ids and len(tokens) < max_new:
            text = self.tokenizer.decode(tokens, skip_special_tokens=True)
            if any(stop in text for stop in until):
                break
            tokens.append(self.backend.decode(tokens[-1]))
        self.generated_tokens += len(tokens)
        return [t for t in tokens if t not in self.stop_ids]
