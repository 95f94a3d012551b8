"""transformers backend, plain (fp32/fp16/bf16) or quantised on load by bitsandbytes or torchao.

The forward passes are called directly with a KV cache (no generate()), so the harness times
exactly one prefill and one forward per decoded token, as it does for llama.cpp.

The compiled path's decode step reads the previous tokens and their position from buffers on
the device; the forward, under torch.compile(fullgraph=True, static shapes), computes the logits
of that position only and takes their argmax on the device; three small in-place updates then
write the tokens into the token buffer and the run's token history and advance the position. On
a GPU the whole step is captured once per configured shape as one CUDA graph, so a decode step
is one graph replay and nothing else: no tensor built on the host, no copy, no synchronisation.
A decode run (``decode_run``) replays it n times and reads the tokens back once; the steps'
times come from CUDA events recorded between the replays. On the CPU the same step (compiled
forward and updates) runs each time. Its unquantised weights are read as the decode limit reads
them: each layer's q/k/v and gate/up in one product each (backends.fusion, same bytes).
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import logging
import re
import time

import numpy as np
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

from quantbench.artifacts.manifest import model_options
from quantbench.backends.base import BackendBase, DecodeRun
from quantbench.backends.fusion import fuse_projections, quantise_fused
from quantbench.backends.quantization import (
    DTYPES,
    quantised_linears,
    quantization_config,
    stored_bytes,
    torchao_config,
)
from quantbench.errors import UnsupportedError
from quantbench.precisions import Precision


class _FirstOnly(logging.Filter):
    """Let each distinct message through once (bitsandbytes warns on every int8 matmul)."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg in self.seen:
            return False
        self.seen.add(msg)
        return True


logging.getLogger("bitsandbytes.autograd._functions").addFilter(_FirstOnly())

# The depth fill runs in chunks of at most this many rows (batch × tokens) per forward: one
# forward of batch 64 × depth 4096 at an 8B model's width makes activations of several GiB,
# and bitsandbytes' int8 matmul indexes its output with a 32-bit int (rows × 14336 columns
# overflows it at 262,144 rows: the CUDA kernel launch fails and the process aborts).
FILL_ROWS = 8192

# compiles of the decode step one process allows (one per configured batch size and context)
RECOMPILES_MAX = 256
# the prompt each compiled shape is first run on, and how far below the eager forward's best
# token (in standard deviations of its logits) a compiled step's token may be: bf16 rounding
# moves a logit by a few hundredths of one, a miscompiled graph picks tokens several below
CHECK_PROMPT = [1] * 8
COMPILED_TOKEN_TOLERANCE = 0.5

def compile_failure(exc: Exception, name: str, device: str,
                    options: dict) -> UnsupportedError | None:
    """A failure while compiling the decode step as ``UnsupportedError``, naming its essence,
    when torch.compile refused the step (a graph break under ``fullgraph``, a backend that
    cannot lower an op: ``TorchDynamoException``) or a CUDA graph could not be recorded; None
    for anything else (out of memory, a bug), which stays what it is."""
    from torch._dynamo.exc import TorchDynamoException

    if _out_of_memory(exc):
        return None
    capture = isinstance(exc, RuntimeError) and "captur" in str(exc).lower()
    if not (isinstance(exc, TorchDynamoException) or capture):
        return None
    return UnsupportedError(
        f"{name} on {device}: torch.compile(mode={options['mode']!r}, "
        f"fullgraph={options['fullgraph']}) of the decode step failed: {compile_essence(exc)}")


def _out_of_memory(exc: BaseException | None) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        if (isinstance(exc, (MemoryError, torch.OutOfMemoryError))
                or "out of memory" in str(exc).lower()):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def compile_essence(exc: Exception) -> str:
    """The exception's type and first line, and the innermost line of user code it names
    (dynamo's messages run to pages of stack and hints)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else "no message"
    where = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', text)
    at = f" (at {where[-1][0]}:{where[-1][1]} in {where[-1][2]})" if where else ""
    return f"{type(exc).__name__}: {first[:300]}{at}"


# The static KV cache's length is rounded up to a multiple of this: the compiled attention
# (cuDNN's SDPA on a GPU) otherwise copies every layer's whole K and V into a padded tensor on
# every step (an 8B model at 577 cells: 136.6 tok/s on an H100; at 600: 144)
CACHE_ALIGN = 64


def static_cache_len(n_ctx: int) -> int:
    """KV cells of the compiled path's static cache for a context of ``n_ctx`` tokens."""
    return -(-n_ctx // CACHE_ALIGN) * CACHE_ALIGN


class StepClock:
    """Marks between decode steps: CUDA events on a GPU (recorded in the stream, read after
    the run's one synchronisation), the host's clock on the CPU (where a step has returned
    when its work is done)."""

    def __init__(self, device: torch.device, n: int):
        self.cuda = device.type == "cuda"
        self.marks = ([torch.cuda.Event(enable_timing=True) for _ in range(n + 1)]
                      if self.cuda else [])
        self.i = 0

    def mark(self) -> None:
        if self.cuda:
            self.marks[self.i].record()
            self.i += 1
        else:
            self.marks.append(time.perf_counter())

    def seconds(self) -> list[float]:
        """Each step's seconds (call after synchronising)."""
        pairs = zip(self.marks, self.marks[1:], strict=False)
        if self.cuda:
            return [a.elapsed_time(b) / 1e3 for a, b in pairs]
        return [b - a for a, b in pairs]


class MiscompiledError(UnsupportedError):
    """The compiled decode step of one shape disagrees with the eager forward (see
    HFBackend._check_compiled): that shape's points are refused, not timed."""


class HFBackend(BackendBase):
    def __init__(self, precision: Precision, model_dir, *, device: str, threads: int,
                 n_ctx: int = 2048, batch_size: int = 1, all_logits: bool = True):
        torch.set_num_threads(threads)
        self.n_ctx = n_ctx
        self.device = torch.device("cuda:0" if device == "cuda" else "cpu")
        self.precision = precision
        qconfig = quantization_config(precision)
        if qconfig is None:
            qconfig = torchao_config(precision, self.device)
        dtype = DTYPES[precision.settings.get("dtype", "float32")]
        # the compiled path reads each layer's q/k/v and gate/up weights in one product each
        # (backends.fusion; the same bytes); a torchao precision is then loaded unquantised,
        # fused and quantised group by group (bitsandbytes' weights, quantised as they load,
        # are left as they are)
        fuse = bool(precision.settings.get("compile")) and precision.settings.get("fuse", True)
        quantise_fused_groups = fuse and precision.backend == "torchao"
        if isinstance(qconfig, BitsAndBytesConfig):
            dtype = qconfig.bnb_4bit_compute_dtype if qconfig.load_in_4bit else torch.float16
            if self.device.type == "cpu" and qconfig.load_in_8bit:
                dtype = torch.float32
        self.fusion_refused = None  # why a torchao precision's groups were not fused
        self.model = self._from_pretrained(model_dir, dtype,
                                           None if quantise_fused_groups else qconfig)
        self.fused = (fuse_projections(self.model) if fuse
                      and (qconfig is None or quantise_fused_groups) else 0)
        if quantise_fused_groups:
            try:
                quantise_fused(self.model, qconfig.quant_type)
            except (AssertionError, NotImplementedError, RuntimeError, TypeError,
                    ValueError) as exc:
                # torchao cannot take a group whole here: the format is measured unfused,
                # quantised as it loads, and the record says why
                self.fusion_refused = f"{type(exc).__name__}: {exc}"[:400]
                self.model = None
                gc.collect()  # the fused model's forwards refer to it: a cycle
                self.model = self._from_pretrained(model_dir, dtype, qconfig)
                self.fused = 0
            if self.device.type == "cuda":
                # the unquantised weights are gone: their blocks go back to the device, or
                # the serving memory (NVML's) would still count them
                gc.collect()
                torch.cuda.empty_cache()
        self.quantised, self.qconfig = None, qconfig
        if precision.backend == "torchao":
            self.quantised = quantised_linears(self.model)
            if not self.quantised[0]:
                raise UnsupportedError(
                    f"{precision.name}: torchao quantised none of the model's "
                    f"{self.quantised[1]} linear layers (their shapes do not fit the format)"
                )
        self.dtype = dtype
        self.cache = self.static = self.graph = None
        # transformers renamed the KV-cache argument and output from past_key_values to cache
        self._cache_kw = (
            "cache" if "cache" in inspect.signature(self.model.forward).parameters
            else "past_key_values"
        )
        # (batch, context, seconds, Inductor cache hits, misses): a hit is a graph compiled
        # earlier on this machine (torch's on-disk cache), whose compile takes less time
        self.compile_log: list[tuple[int, int, float, int, int]] = []
        self.compiled = bool(precision.settings.get("compile"))
        # one graph for the whole decode step (a graph break is a failure, not a silent slow
        # path), specialised to each configured shape; on a GPU the step is captured as one
        # CUDA graph of ours (see _capture), not torch's cudagraph trees
        self.compile_options = {"mode": "default", "fullgraph": True,
                                "dynamic": False} if self.compiled else None
        self.batch_size, self.depth, self.depth_cache, self.shape = batch_size, 0, None, None
        self.refused: dict[tuple[int, int], MiscompiledError] = {}  # shapes whose check failed
        # a refused shape is refused again (configure says why); others compile afresh
        with contextlib.suppress(MiscompiledError):
            self.configure(batch_size, n_ctx)

    def configure(self, batch_size: int, n_ctx: int) -> None:
        """Decode ``batch_size`` sequences of up to ``n_ctx`` tokens each from now on. The
        compiled path gets a static KV cache of that shape, compiled (and, on a GPU, its CUDA
        graph recorded) here, untimed: its compile time is recorded per batch size."""
        if self.shape == (batch_size, n_ctx):
            return
        if (batch_size, n_ctx) in self.refused:
            raise MiscompiledError(str(self.refused[(batch_size, n_ctx)]))
        self.batch_size, self.n_ctx, self.shape = batch_size, n_ctx, (batch_size, n_ctx)
        self.cache = self.depth_cache = None
        self.depth = 0
        if self.device.type == "cuda":  # what the previous shape held is not this one's memory
            import gc

            self.static = self.graph = None
            gc.collect()
            torch.cuda.empty_cache()
        if self.compiled:
            try:
                self._compile(batch_size, n_ctx)
            except MiscompiledError as exc:
                self.refused[(batch_size, n_ctx)] = exc
                self.shape = self.static = self.graph = None
                raise

    def _compile(self, batch_size: int, n_ctx: int) -> None:
        """Static KV cache + torch.compile of the decode step (CUDA graphs on a GPU): the way
        transformers removes the per-token Python and launch overhead of eager decoding."""
        from transformers import StaticCache

        self.static = StaticCache(config=self.model.config,
                                  max_cache_len=static_cache_len(n_ctx))
        # the step's state on the device, at fixed addresses (its CUDA graph replays on them):
        # each sequence's last token, its position, and every token decoded, by position
        self.token = torch.zeros(batch_size, 1, dtype=torch.long, device=self.device)
        self.position = torch.zeros(1, dtype=torch.long, device=self.device)
        self.history = torch.zeros(batch_size, n_ctx, dtype=torch.long, device=self.device)
        self.graph, self.steps_run = None, 0
        if not hasattr(self, "_step"):
            self._step = torch.compile(self._static_forward, **self.compile_options)
        # each configured shape compiles the one decode step once: a sweep of batch sizes and
        # depths (or a process that loads several backends, as the tests do) compiles it more
        # often than dynamo's default recompile limit (8) allows, which fullgraph makes an error
        config = torch._dynamo.config
        limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
        setattr(config, limit, max(getattr(config, limit), RECOMPILES_MAX))
        from torch._dynamo.utils import counters

        def cache() -> tuple[int, int]:
            return (counters["inductor"]["fxgraph_cache_hit"],
                    counters["inductor"]["fxgraph_cache_miss"])

        cached = cache()
        start = time.perf_counter()
        try:
            steps = [self.prefill_batch(CHECK_PROMPT)]
            # the first step compiles, the second captures the CUDA graph (on a GPU), and the
            # check below sees the graph's tokens too
            steps += self.decode_run(steps[-1], 3).tokens
        except Exception as exc:
            unsupported = compile_failure(exc, self.precision.name, self.device.type,
                                          self.compile_options)
            if unsupported is None:
                raise
            raise unsupported from exc
        self.sync()
        seconds = time.perf_counter() - start
        hits, misses = (now - then for now, then in zip(cache(), cached, strict=True))
        self.compile_log.append((batch_size, n_ctx, seconds, hits, misses))
        self._check_compiled(steps)

    def _check_compiled(self, steps: list[list[int]]) -> None:
        """The compiled step's tokens against the eager forward of the same sequence (untimed):
        each must be the eager best or within COMPILED_TOKEN_TOLERANCE standard deviations of
        the logits below it (bf16 rounding apart, not a random token). A miscompile, one kernel
        of the compiled graph computing the wrong thing on this machine, is refused here rather
        than timed: what it decodes is not the format's output."""
        rows: dict[tuple[int, ...], int] = {}
        for row, tokens in enumerate(zip(*steps, strict=True)):
            rows.setdefault(tokens, row)
        for tokens, row in rows.items():
            logits = self.logits(CHECK_PROMPT + list(tokens[:-1]))[len(CHECK_PROMPT) - 1:]
            for step in range(1, len(tokens)):
                scores = logits[step]
                below = (scores.max() - scores[tokens[step]]) / scores.std()
                if below > COMPILED_TOKEN_TOLERANCE:
                    raise MiscompiledError(
                        f"{self.precision.name} on {self.device.type}: the compiled decode "
                        f"step (batch {self.batch_size}) disagrees with the eager forward: at "
                        f"decode step {step} of row {row} it chose token {tokens[step]}, "
                        f"{below:.1f} standard deviations of the logits below the eager best "
                        f"token {int(scores.argmax())}; torch {torch.__version__}'s compiled "
                        "graph miscomputes on this machine, so this path is not measured")

    def eager_if_refused(self) -> str | None:
        """Where the compiled step of the shape configured now was refused (a miscompile, see
        _check_compiled), decode eagerly from here on: the same weights and kernels without
        the graph, so that a quality job still gets the format's own generations. Returns the
        refusal's reason, or None where nothing was refused (nothing changes then)."""
        if not self.compiled or self.shape is not None or not self.refused:
            return None
        self.compiled = False
        self.cache = self.depth_cache = None
        self.depth = 0
        return str(next(reversed(self.refused.values())))

    @property
    def compile_s_by_batch(self) -> dict[int, float]:
        """Seconds spent compiling per batch size: every shape's compile counts (a batch size
        configured again for another context, the first time at load, then at each depth)."""
        by_batch: dict[int, float] = {}
        for batch_size, _, seconds, *_ in self.compile_log:
            by_batch[batch_size] = by_batch.get(batch_size, 0.0) + seconds
        return by_batch

    @property
    def compile_s(self) -> float | None:
        """Seconds spent compiling in all (None for a path that compiles nothing)."""
        return sum(entry[2] for entry in self.compile_log) if self.compiled else None

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _static_cache(self):
        """The compiled path's static KV cache: only a shape its check refused leaves none."""
        if self.static is None:
            raise MiscompiledError(str(next(reversed(self.refused.values()))))
        return self.static

    def _static_forward(self, x, position):
        out = self.model(input_ids=x, cache_position=position, use_cache=True, logits_to_keep=1,
                         **{self._cache_kw: self.static})
        return out.logits[:, -1].argmax(-1)

    def _step_in_place(self) -> None:
        """One decode step on the device's buffers: the next token of each sequence from its
        last one at ``position`` (the compiled forward), kept in ``history`` at that position
        and fed to the next step through ``token``; the position moves on by one."""
        nxt = self._step(self.token, self.position)[:, None]
        self.history.index_copy_(1, self.position, nxt)
        self.token.copy_(nxt)
        self.position.add_(1)

    def _capture(self) -> None:
        """The step as one CUDA graph on its buffers (after it ran once: its kernels are
        compiled and its memory known). Capturing runs nothing."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._step_in_place()
        self.graph = graph

    def _advance(self) -> None:
        """One compiled decode step: a replay of its CUDA graph on a GPU (captured at the
        second step of a shape), else the compiled function."""
        if self.graph is not None:
            self.graph.replay()
        else:
            if self.device.type == "cuda" and self.steps_run:
                self._capture()
                self.graph.replay()
            else:
                self._step_in_place()
            self.steps_run += 1
        self.pos += 1

    def _rows(self, ids) -> torch.Tensor:
        return torch.as_tensor([list(ids)] * self.batch_size, device=self.device)

    @torch.inference_mode()
    def fill(self, ids) -> None:
        """Fill every sequence's KV cache with ``ids``: the context depth of the runs that
        follow (untimed). Each prefill starts from that depth."""
        self.depth = len(ids)
        ids = list(ids)
        step = max(1, FILL_ROWS // self.batch_size)
        if self.compiled:
            self._static_cache().reset()
            for start in range(0, len(ids), step):
                chunk = ids[start:start + step]
                self._static_forward(self._rows(chunk), torch.arange(
                    start, start + len(chunk), device=self.device))
            return
        self.depth_cache = None
        for start in range(0, len(ids), step):
            kwargs = {} if self.depth_cache is None else {self._cache_kw: self.depth_cache}
            out = self.model(input_ids=self._rows(ids[start:start + step]), use_cache=True,
                             logits_to_keep=1, **kwargs)
            self.depth_cache = getattr(out, self._cache_kw)

    def _rewind(self, cache) -> None:
        """Drop what earlier runs added past the depth (Cache.crop with a negative count: the
        static cache only moves its write position back, its tensors keep their addresses)."""
        extra = int(cache.get_seq_length()) - self.depth
        if extra <= 0:
            return
        try:
            cache.crop(-extra)
        except AttributeError:  # transformers < 5.24: a static layer has no crop of its own
            for layer in cache.layers:
                layer.cumulative_length.fill_(self.depth)

    @torch.inference_mode()
    def _prefill(self, x) -> torch.Tensor:
        """The next token of each row of ``x``, the prompt after the depth."""
        n = x.shape[1]
        if self.compiled:
            self._rewind(self._static_cache())
            self.pos = self.depth + n
            nxt = self._static_forward(
                x, torch.arange(self.depth, self.depth + n, device=self.device))
            self.position.fill_(self.pos)  # on the device: no synchronisation
            self.token.copy_(nxt[:, None])
            return nxt
        if self.depth_cache is not None:
            self._rewind(self.depth_cache)
        kwargs = {} if self.depth_cache is None else {self._cache_kw: self.depth_cache}
        out = self.model(input_ids=x, use_cache=True, logits_to_keep=1, **kwargs)
        self.cache = getattr(out, self._cache_kw)
        return out.logits[:, -1].argmax(-1)

    @torch.inference_mode()
    def _decode(self, x) -> torch.Tensor:
        """The next token of each row of ``x`` (the rows' last tokens), on the device."""
        if self.compiled:  # (a refused shape's prefill raised before any decode)
            self.token.copy_(x)
            self._advance()
            return self.history[:, self.pos - 1]
        out = self.model(input_ids=x, use_cache=True, **{self._cache_kw: self.cache})
        self.cache = getattr(out, self._cache_kw)
        return out.logits[:, -1].argmax(-1)

    def prefill(self, ids) -> int:
        return int(self._prefill(torch.as_tensor([list(ids)], device=self.device))[0])

    def decode(self, token: int) -> int:
        return int(self._decode(torch.tensor([[token]], device=self.device))[0])

    def prefill_batch(self, ids) -> list[int]:
        """The same prompt in each of ``batch_size`` rows; the next token of each."""
        return self._prefill(self._rows(ids)).tolist()

    def decode_batch(self, tokens: list[int]) -> list[int]:
        return self._decode(torch.tensor(tokens, device=self.device)[:, None]).tolist()

    @torch.inference_mode()
    def decode_run(self, tokens: list[int], n: int) -> DecodeRun:
        """``n`` greedy steps, each step's tokens fed to the next on the device, synchronised
        once at the end: compiled, n replays of the step on its buffers, the tokens read from
        the history; eager, n forwards, each taking the last one's argmax. Each step's time
        is the interval between CUDA events recorded after each step (on a GPU: the device's
        time, gaps between steps included), or between host clock reads (CPU)."""
        clock = StepClock(self.device, n)
        x = torch.tensor(tokens, device=self.device)[:, None]
        if self.compiled:
            self.token.copy_(x)
        start, out = self.pos if self.compiled else 0, []
        clock.mark()
        for _ in range(n):
            if self.compiled:
                self._advance()
            else:
                x = self._decode(x)[:, None]
                out.append(x)
            clock.mark()
        self.sync()
        rows = (self.history[:, start:start + n] if self.compiled
                else torch.cat(out, 1) if out else x[:, :0])
        return DecodeRun(rows.t().tolist(), clock.seconds())

    @torch.inference_mode()
    def logits(self, ids, last: int | None = None) -> np.ndarray:
        x = torch.as_tensor([list(ids)], device=self.device)
        # the LM head over the last positions alone (transformers' logits_to_keep; 0 = all)
        out = self.model(input_ids=x, use_cache=False, logits_to_keep=last or 0)
        return out.logits[0].float().cpu().numpy()

    def _from_pretrained(self, model_dir, dtype, qconfig):
        try:
            model = AutoModelForCausalLM.from_pretrained(
                str(model_dir),
                dtype=dtype,
                quantization_config=qconfig,
                device_map={"": self.device},
                **model_options(model_dir),
            )
        except (ImportError, RuntimeError, ValueError, NotImplementedError) as exc:
            if qconfig is not None or self.precision.backend != "transformers" \
                    or self.device.type == "cuda":
                raise UnsupportedError(
                    f"{self.precision.name} on {self.device.type}: {exc}") from exc
            raise
        return model.eval()

    def memory_parts(self) -> dict:
        """Weights (every parameter and buffer, tied ones once) and the KV cache of ``n_ctx``
        tokens in each of ``batch_size`` sequences, from the config (transformers has no compute
        or output buffers of its own to report)."""
        weights = self._weights_bytes()
        c = self.model.config.get_text_config()
        heads = c.num_attention_heads
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // heads
        kv_heads = getattr(c, "num_key_value_heads", None) or heads
        cells = static_cache_len(self.n_ctx) if self.compiled else self.n_ctx
        kv = (2 * c.num_hidden_layers * kv_heads * head_dim * self.dtype.itemsize
              * cells * self.batch_size)
        return {"weights_mib": weights / 2**20, "kv_cache_mib": kv / 2**20}

    def _weights_bytes(self) -> int:
        """Every parameter and buffer, tied ones once, as stored."""
        tensors = {id(t): t for t in (*self.model.parameters(), *self.model.buffers())}
        return sum(stored_bytes(t) for t in tensors.values())

    def info(self) -> dict:
        return {
            "engine": "transformers",
            "compute_dtype": str(self.dtype).removeprefix("torch."),
            "kv_elem_bytes": self.dtype.itemsize,
            "compiled": self.compiled,
            "fused_projections": self.fused,
            "fusion_refused": self.fusion_refused,
            "compile_options": self.compile_options,
            # the decode step replayed as one CUDA graph of ours (see _capture)
            "cuda_graph": self.compiled and self.device.type == "cuda",
            "compile_s": self.compile_s,
            "compile_s_by_batch": {str(b): t for b, t in self.compile_s_by_batch.items()},
            "compile_log": [{"batch_size": b, "n_ctx": n, "seconds": t,
                             "inductor_cache_hits": h, "inductor_cache_misses": m}
                            for b, n, t, h, m in self.compile_log],
            "device": str(self.device),
            "footprint_mib": (self._weights_bytes() if self.quantised is not None
                              else self.model.get_memory_footprint()) / 2**20,
            "quantization": self._quantization(),
        }

    def _quantization(self) -> dict | None:
        """The precision's settings; for torchao also the config that loaded (the int4 kernel
        path found) and how many linear layers it quantised (transformers keeps lm_head)."""
        if self.precision.backend == "transformers":
            return None
        out = dict(self.precision.settings)
        if self.quantised is not None:
            out["torchao_config"] = repr(self.qconfig.quant_type)
            out["quantised_linears"] = f"{self.quantised[0]} of {self.quantised[1]}"
        return out
