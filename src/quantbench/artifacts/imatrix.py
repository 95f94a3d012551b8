"""Importance matrices for GGUF quantization: the calibration text, llama-imatrix, its file.

The importance matrix is computed by llama.cpp's own ``llama-imatrix`` (built from the
llama-cpp-python sdist of the installed library by tools/build-llama-tools.sh) on a calibration
text that shares no token with what perplexity and KL divergence score:

- ``tail``: the evaluation text's scored part (``quantbench.evaltext``: the part that is
  tokenised, never the derived tasks' held-out part) beyond the last scored window (the quality
  scenario's windows cover ids ``[0, scored_end)``; calibration starts at ``scored_end``, at that
  token's first character). The split (token and character ranges) is recorded.
- ``file``: another text (a calibration/evaluation mismatch), recorded by its hash.

The quantizer then takes the matrix through the C API (``llama_model_quantize_params.imatrix``,
an array of ``llama_model_imatrix_data``), normalised as ``llama-quantize --imatrix`` does, so a
``-imat`` GGUF and its plain twin come from the same quantizer and differ only in the matrix.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from quantbench.artifacts.manifest import model_options
from quantbench.errors import ConversionError
from quantbench.evaltext import scored_part
from quantbench.gguf_header import metadata_value
from quantbench.inputs import IMATRIX_TOOL
from quantbench.perplexity import windows_for
from quantbench.records import atomic_write_text

# numpy and the records module are imported where used: the config check (building the DAG)
# imports this module for needs_imatrix and IMATRIX_TOOL only


def scored_end(n_ids: int, meta: dict, *, mode: str, context_length: int,
               stride: int | None = None, max_windows: int = 0, **_) -> int:
    """The first id (of the tokenised evaluation text) that no scored window reads: every
    window's tokens, context and targets, lie in ids ``[0, scored_end)``."""
    import numpy as np


    windows = windows_for(np.zeros(n_ids, dtype=np.int64), meta, mode=mode,
                          context_length=context_length, stride=stride,
                          max_windows=max_windows)
    if mode == "llama.cpp":
        bos = 1 if meta.get("add_bos") else 0  # the BOS prefixed to the ids takes a slot
        return len(windows) * context_length - bos
    return 1 + sum(len(w.targets) for w in windows)  # every target after the first id, once


def calibration_text(spec: dict, *, text_path, ids_path, meta_path, model_dir, protocol: dict,
                     out_text, out_json, held_out_share: float = 0.0) -> dict:
    """Write the calibration text of ``spec`` ({source: tail | file, path, max_tokens}) and its
    record (the split against the scored windows)."""
    import numpy as np
    from transformers import AutoTokenizer


    tok = AutoTokenizer.from_pretrained(str(model_dir), **model_options(model_dir))
    source = spec.get("source", "tail")
    max_tokens = int(spec.get("max_tokens") or 0)
    if source == "tail":
        text = scored_part(Path(text_path).read_text(encoding="utf-8"), held_out_share)
        ids = np.load(ids_path)
        meta = json.loads(Path(meta_path).read_text())
        end = scored_end(len(ids), meta, **protocol)
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        if list(enc["input_ids"]) != ids.tolist():
            raise ConversionError("the evaluation text no longer gives its stored token ids")
        stop = len(ids) if not max_tokens else min(len(ids), end + max_tokens)
        if stop <= end:
            raise ConversionError(
                f"the evaluation text has no tokens beyond its scored windows ({end} of "
                f"{len(ids)} scored): shorten perplexity.max_windows or use a longer text"
            )
        first_char = enc["offset_mapping"][end][0]
        last_char = enc["offset_mapping"][stop - 1][1]
        calib = text[first_char:last_char]
        record = {"source": "tail", "text": str(text_path), "n_ids": len(ids),
                  "scored_ids": [0, end], "calibration_ids": [end, stop],
                  "scored_chars": [0, first_char], "calibration_chars": [first_char, last_char]}
    elif source == "file":
        calib = Path(spec["path"]).read_text(encoding="utf-8")
        if max_tokens:
            enc = tok(calib, add_special_tokens=False, return_offsets_mapping=True)
            if len(enc["input_ids"]) > max_tokens:
                calib = calib[:enc["offset_mapping"][max_tokens - 1][1]]
        record = {"source": "file", "text": str(spec["path"])}
    else:
        raise ConversionError(f"unknown calibration source {source!r} (tail or file)")
    record.update(n_tokens=len(tok(calib, add_special_tokens=False)["input_ids"]),
                  sha256=hashlib.sha256(calib.encode()).hexdigest())
    atomic_write_text(out_text, calib)
    atomic_write_text(out_json, json.dumps(record, indent=2) + "\n")
    return record


def find_tool(folder) -> Path:
    """llama-imatrix in ``folder``, or a clear error."""
    path = Path(folder) / IMATRIX_TOOL
    if not (path.is_file() and path.stat().st_mode & 0o111):
        raise ConversionError(
            f"{IMATRIX_TOOL} not found in {folder}: build it with "
            "`bash tools/build-llama-tools.sh` "
            "(or set imatrix.tools to a folder that holds it)"
        )
    return path


def compute(gguf, text, out, *, tools, context_length: int, chunks: int = 0,
            threads: int = 1, calibration: dict | None = None, log_path=None) -> dict:
    """Run llama-imatrix on ``gguf`` over ``text``; the matrix is written to ``out`` (GGUF) and
    its record beside it (``.json``: the calibration split, chunks, tool, hash)."""

    tool = find_tool(tools)
    out = Path(out)
    tmp = out.with_name(out.name + ".partial.gguf")
    cmd = [str(tool), "-m", str(gguf), "-f", str(text), "-o", str(tmp), "-c",
           str(context_length), "-b", str(context_length), "-t", str(threads), "--no-ppl",
           "--output-format", "gguf"]
    if chunks:
        cmd += ["--chunks", str(chunks)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if log_path:
        Path(log_path).write_text(" ".join(cmd) + "\n" + res.stdout + res.stderr)
    if res.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        tail = "\n".join(res.stderr.strip().splitlines()[-3:])
        raise ConversionError(f"{IMATRIX_TOOL} failed: {tail}")
    matrix = load(tmp)
    info = {"path": out.name, "tool": str(tool), "context_length": context_length,
            "chunks": _meta(tmp, "imatrix.chunk_count"), "n_entries": len(matrix),
            "sha256": hashlib.sha256(tmp.read_bytes()).hexdigest(),
            "calibration": calibration or {}}
    tmp.replace(out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(info, indent=2) + "\n")
    return info


def _meta(path, key):
    return metadata_value(path, key)


def load(path) -> dict:
    """The importance matrix of a llama-imatrix GGUF file, one float32 array a weight: the sums
    of squared activations over their counts, per expert (1 where a count is 0), as
    llama-quantize's load_imatrix computes them."""
    import numpy as np
    from gguf import GGUFReader

    tensors = {t.name: np.asarray(t.data, dtype=np.float32) for t in GGUFReader(str(path)).tensors}
    out = {}
    for name, sums in tensors.items():
        if not name.endswith(".in_sum2"):
            continue
        base = name[:-len(".in_sum2")]
        counts = tensors.get(base + ".counts")
        if counts is None:
            raise ConversionError(f"{path}: {base} has sums but no counts")
        counts = np.rint(counts.ravel()).astype(np.float32)
        rows = sums.reshape(len(counts), -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(counts[:, None] > 0, rows / counts[:, None], 1.0)
        out[base] = np.ascontiguousarray(values.ravel(), dtype=np.float32)
    if not out:
        raise ConversionError(f"{path} holds no importance matrix")
    return out


def locate_tools(folder: str | None, *, venv_python: str, repo: Path) -> Path:
    """The folder with llama-imatrix: ``folder`` when given, else the cached build of
    tools/build-llama-tools.sh (built on first use)."""
    if folder:
        return find_tool(folder).parent
    import os

    venv = Path(venv_python).parents[1]
    # the environment's own cmake (tools/setup-env.sh installs one where the machine has none)
    path = os.pathsep.join([str(venv / "bin"), os.environ.get("PATH", "")])
    if shutil.which("cmake", path=path) is None:
        raise ConversionError("building llama-imatrix needs cmake (or set imatrix.tools)")
    res = subprocess.run(["bash", str(repo / "tools" / "build-llama-tools.sh"), str(venv)],
                         capture_output=True, text=True, env={**os.environ, "PATH": path})
    if res.returncode != 0:
        raise ConversionError(f"tools/build-llama-tools.sh failed: {res.stderr[-800:]}")
    return find_tool(res.stdout.strip().splitlines()[-1]).parent
