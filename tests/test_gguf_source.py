"""`source: gguf`: a GGUF file dequantized to an HF folder whose tokenizer treats BOS as
llama.cpp does for that file, so that both backends score the same windows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from snakemake.utils import validate

from quantbench import config as qb_config
from quantbench import inputs
from quantbench.artifacts.dataset import save_tokens
from quantbench.artifacts.gguf import llamacpp_tokenize
from quantbench.artifacts.manifest import MODEL_JSON
from quantbench.artifacts.model import prepare_model
from quantbench.backends.hf import HFBackend
from quantbench.backends.llamacpp import LlamaCppBackend
from quantbench.errors import ConfigError, ModelSourceError
from quantbench.gguf_header import metadata_value
from quantbench.perplexity import windows_for
from quantbench.scenarios.quality import run_quality

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
PROMPTS = ["The river ran past"]
BOS_KEY = "tokenizer.ggml.add_bos_token"


def _with_bos_flag(src: Path, dest: Path, flag: bool) -> Path:
    """A copy of a GGUF file whose tokenizer.ggml.add_bos_token is ``flag`` (added where the
    file has none), written by gguf-py's own metadata copier."""
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    reader = gguf.GGUFReader(src, "r")
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE).contents()
    writer = gguf.GGUFWriter(dest, arch=arch, endianess=reader.endianess)
    alignment = reader.get_field(gguf.Keys.General.ALIGNMENT)
    if alignment is not None:
        writer.data_alignment = alignment.contents()
    copy_with_new_metadata(reader, writer, {BOS_KEY: MetadataDetails(gguf.GGUFValueType.BOOL,
                                                                     flag)}, [])
    assert metadata_value(dest, BOS_KEY) is flag
    return dest


@pytest.fixture(scope="module", params=[True, False, None], ids=["bos", "no-bos", "no-key"])
def gguf_source(request, tmp_path_factory, tiny_gguf, sample_text):
    """A Q8_0 GGUF saying add_bos_token = param (None: the converter's file, without the key),
    prepared as a model, with its tokens. ``flag``: whether llama.cpp adds BOS for it (where the
    key is absent, llama.cpp's own default for the vocabulary decides)."""
    out = tmp_path_factory.mktemp("gguf-source")
    path = out / "user.Q8_0.gguf"
    if request.param is None:
        shutil.copyfile(tiny_gguf["q8_0"], path)
        assert metadata_value(path, BOS_KEY) is None
    else:
        _with_bos_flag(tiny_gguf["q8_0"], path, request.param)
    info = prepare_model({"source": "gguf", "path": str(path)}, out / "hf")
    tokens = {"ids": out / "text.npy", "meta": out / "text.json", "prompts": out / "prompts.json"}
    save_tokens(sample_text, out / "hf", PROMPTS, ids_path=tokens["ids"],
                meta_path=tokens["meta"], prompts_path=tokens["prompts"])
    flag = info["tokenizer_bos"]["add_bos"] if request.param is None else request.param
    return {"flag": flag, "key": request.param, "path": path, "folder": out / "hf", "info": info,
            "tokens": tokens}


def test_the_folder_tokenizer_adds_bos_exactly_when_llamacpp_does(gguf_source, sample_text):
    from transformers import AutoTokenizer

    flag, folder = gguf_source["flag"], gguf_source["folder"]
    text = sample_text.read_text()[:400]
    ours = AutoTokenizer.from_pretrained(str(folder))(text)["input_ids"]
    theirs = llamacpp_tokenize(gguf_source["path"], text)
    assert ours == theirs
    bos = gguf_source["info"]["tokenizer_bos"]
    assert bos["add_bos"] is flag and bos["file_add_bos_token"] is gguf_source["key"]
    assert (ours[0] == bos["bos_id"]) is flag
    meta = json.loads(gguf_source["tokens"]["meta"].read_text())
    assert meta["add_bos"] is flag and meta["bos_id"] == bos["bos_id"]


def test_a_tokenizer_that_disagrees_with_llamacpp_is_made_to_agree_or_refused(gguf_source,
                                                                              tmp_path):
    """Where transformers' GGUF tokenizer and llama.cpp disagree about BOS (here: told the
    opposite of what the file says), llama.cpp's answer is what the saved tokenizer does, and a
    saved tokenizer that still disagrees is refused."""
    from transformers import AutoTokenizer

    from quantbench.artifacts.model import check_bos, match_bos

    path, flag = gguf_source["path"], gguf_source["flag"]
    other = dict(gguf_source["info"]["tokenizer_bos"], add_bos=not flag)
    with pytest.raises(ModelSourceError, match="llama.cpp's tokenizer for the file"):
        check_bos(gguf_source["folder"], other, path)
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    assert (tok("a")["input_ids"][0] == other["bos_id"]) is flag
    match_bos(tok, other, path)
    tok.save_pretrained(tmp_path)
    check_bos(tmp_path, other, path)
    ids = AutoTokenizer.from_pretrained(str(tmp_path))("a")["input_ids"]
    assert (ids[0] == other["bos_id"]) is (not flag)


@pytest.mark.parametrize("mode", ["llama.cpp", "sliding"])
def test_every_window_starts_with_bos_exactly_when_the_file_says_so(gguf_source, mode):
    meta = json.loads(gguf_source["tokens"]["meta"].read_text())
    ids = np.load(gguf_source["tokens"]["ids"])
    windows = windows_for(ids, meta, mode=mode, context_length=64, stride=None, max_windows=6)
    assert len(windows) > 1
    bos = gguf_source["info"]["tokenizer_bos"]["bos_id"]
    assert [w.ids[0] == bos for w in windows] == [gguf_source["flag"]] * len(windows)
    assert all(w.ids[w.first + 1:] == w.targets for w in windows)


def test_both_backends_are_fed_the_same_windows(gguf_source, tmp_path, monkeypatch):
    """The HF folder (transformers) and the source file itself (llama.cpp, Q8_0) get the same
    token ids, BOS first in every window exactly when the file says so."""
    fed = {}

    def recorder(cls, key):
        logits = cls.logits

        def spy(self, ids):
            fed.setdefault(key, []).append(list(ids))
            return logits(self, ids)
        monkeypatch.setattr(cls, "logits", spy)

    recorder(HFBackend, "fp32")
    recorder(LlamaCppBackend, "gguf-q8_0")
    t = gguf_source["tokens"]
    artifacts = {"fp32": gguf_source["folder"], "gguf-q8_0": gguf_source["path"]}
    for precision, artifact in artifacts.items():
        rec = run_quality("g", precision, artifact, t["ids"], t["prompts"],
                          gguf_source["folder"] / "tokenizer.json", mode="llama.cpp",
                          context_length=64, stride=None, max_windows=3, max_new_tokens=2,
                          logprobs_out=tmp_path / f"{precision}.npz", device="cpu", threads=2)
        assert rec.status == "ok", rec.reason
    assert fed["fp32"] == fed["gguf-q8_0"] and len(fed["fp32"]) == 3
    bos = gguf_source["info"]["tokenizer_bos"]["bos_id"]
    assert [w[0] == bos for w in fed["fp32"]] == [gguf_source["flag"]] * 3


def test_the_weights_are_the_file_dequantized_and_the_report_note_says_so(gguf_source):
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.numpy import load_file

    info, path = gguf_source["info"], gguf_source["path"]
    assert info["dequantized_from"] == {"file": path.name, "type": "Q8_0"}
    assert info["weights_note"].startswith(
        f"Full-precision weights are {path.name}'s Q8_0 weights dequantized to FP32")
    assert json.loads((gguf_source["folder"] / MODEL_JSON).read_text())["source"] == "gguf"
    tensor = next(t for t in GGUFReader(path).tensors if t.name == "blk.0.ffn_down.weight")
    assert tensor.tensor_type.name == "Q8_0"
    want = dequantize(tensor.data, tensor.tensor_type)
    saved = {}
    for f in gguf_source["folder"].glob("*.safetensors"):
        saved.update(load_file(f))
    np.testing.assert_array_equal(saved["model.layers.0.mlp.down_proj.weight"], want)


def _config(models: dict) -> dict:
    cfg = {"models": models, "precisions": ["fp32"]}
    validate(cfg, str(SCHEMA))
    return cfg


def test_a_missing_or_non_gguf_file_is_refused_before_any_job(tmp_path, tiny_gguf):
    missing = tmp_path / "absent.gguf"
    with pytest.raises(ConfigError, match=r"'models.g.path': GGUF file .*absent.gguf' does "
                                          "not exist"):
        qb_config.check(_config({"g": {"source": "gguf", "path": str(missing)}}))
    text = tmp_path / "model.gguf"
    text.write_text("not a model\n" * 10)
    with pytest.raises(ConfigError, match=r"'models.g.path': .*model.gguf' is not a GGUF file"):
        qb_config.check(_config({"g": {"source": "gguf", "path": str(text)}}))
    with pytest.raises(ConfigError, match="is not a file"):
        qb_config.check(_config({"g": {"source": "gguf", "path": str(tmp_path)}}))
    good = {"source": "gguf", "path": str(tiny_gguf["q8_0"])}
    qb_config.check(_config({"g": good}))
    # the file is an input of the model stage, and its metadata gives the context window
    assert inputs.model_files(good) == [str(tiny_gguf["q8_0"])]
    window, where = qb_config.context_window("g", good, tmp_path)
    assert window == metadata_value(tiny_gguf["q8_0"], "llama.context_length")
    assert where == f"llama.context_length of {tiny_gguf['q8_0'].name}"
