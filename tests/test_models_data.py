import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from transformers import AutoConfig

from quantbench.artifacts import dataset as datasets
from quantbench.artifacts.model import prepare_model
from quantbench.errors import DatasetError, ModelSourceError
from quantbench.inputs import embedded_gguf_path

RAW = """## Title line
### START: scan ###
p.772:0

Shakespeare, William (1564--1616), English poet,
and playwright.

p.772:1
A second paragraph
over two lines.
"""


def test_clean_britannica_drops_markers_and_reflows():
    text = datasets.clean_britannica(RAW)
    assert "p.772" not in text and "#" not in text
    assert text == ("Shakespeare, William (1564--1616), English poet, and playwright.\n\n"
                    "A second paragraph over two lines.\n")


def test_random_model_has_the_requested_shape(tiny_model):
    cfg = AutoConfig.from_pretrained(tiny_model)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_key_value_heads) == (256, 2, 2)
    info = json.loads((tiny_model / "quantbench_model.json").read_text())
    assert info["quality_applicable"] is False
    assert (tiny_model / "tokenizer.model").is_file()


def test_tokens_meta_records_bos_and_eos(tiny_tokens):
    meta = json.loads(tiny_tokens["meta"].read_text())
    assert meta["bos_id"] == 1 and 2 in meta["eos_ids"]
    assert meta["n_tokens"] == np.load(tiny_tokens["ids"]).size


def test_local_model_folder_must_exist(tmp_path):
    with pytest.raises(ModelSourceError, match="does not exist"):
        prepare_model({"source": "local", "path": str(tmp_path / "nope")}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_local_folder_without_config_is_refused(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelSourceError, match="no config.json"):
        prepare_model({"source": "local", "path": str(tmp_path / "m")}, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def _fake_hub_cache(cache: Path, repo: str, repo_type: str, files: dict[str, Path | bytes]) -> None:
    """Lay out a Hugging Face cache as huggingface_hub writes it (refs/main -> snapshot)."""
    folder = cache / f"{repo_type}s--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snap = folder / "snapshots" / commit
    for name, content in files.items():
        target = snap / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else Path(content).read_bytes())


def test_hub_model_comes_from_the_cache_when_offline(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "org/tiny", "model",
                    {f.name: f for f in tiny_model.iterdir() if f.is_file()})
    info = prepare_model({"source": "hub", "repo_id": "org/tiny", "revision": "main"},
                         tmp_path / "out", hub_cache_dir=str(cache))
    assert info["origin"].startswith("hub org/tiny@main")
    assert (tmp_path / "out" / "config.json").is_file()


def test_unreachable_uncached_hub_model_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelSourceError, match="neither reachable nor in the cache"):
        prepare_model({"source": "hub", "repo_id": "org/absent"}, tmp_path / "out",
                      hub_cache_dir=str(tmp_path / "hub"))


def test_wikitext2_reads_the_parquet_rows_back_into_raw_text(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rows = ["", " = Valkyria Chronicles = \n", "", " Senjō no Valkyria is a game . \n"] * 50
    parquet = tmp_path / "t.parquet"
    pd.DataFrame({"text": rows}).to_parquet(parquet)
    _fake_hub_cache(tmp_path / "hub", datasets.WIKITEXT_REPO, "dataset",
                    {datasets.WIKITEXT_FILE: parquet})
    text = datasets.load_text({"name": "wikitext2"}, hub_cache_dir=str(tmp_path / "hub"))
    assert text == "".join(rows)


def test_bad_text_files_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        datasets.load_text({"name": "file", "path": str(tmp_path / "none.txt")})
    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(DatasetError, match="too short"):
        datasets.load_text({"name": "file", "path": str(short)})
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00" * 200)
    with pytest.raises(DatasetError, match="not UTF-8"):
        datasets.load_text({"name": "file", "path": str(binary)})


def test_embedded_model_file_is_found():
    path = embedded_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes()[:4] == b"GGUF"


def _copy_model(src: Path, dest: Path, **config_changes) -> Path:
    """A real copy of the tiny model (not links), its config.json edited."""
    dest.mkdir()
    for f in src.iterdir():
        if f.is_file() and f.name != "quantbench_model.json":
            (dest / f.name).write_bytes(f.read_bytes())
    config = json.loads((dest / "config.json").read_text())
    config.update(config_changes)
    (dest / "config.json").write_text(json.dumps(config))
    return dest


def _refused(tmp_path, spec: dict, match: str) -> None:
    with pytest.raises(ModelSourceError, match=match):
        prepare_model(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


@pytest.mark.parametrize(("damage", "message"), [
    (lambda b: b[:len(b) // 2], "truncated or damaged"),
    (lambda b: b[:8] + b"{not json" + b[17:], "corrupted safetensors header"),
    (lambda b: b"\xff" * 8 + b[8:], "not a safetensors file or is truncated"),
], ids=["truncated", "header-not-json", "header-length-too-big"])
def test_corrupted_safetensors_is_refused(tmp_path, tiny_model, damage, message):
    folder = _copy_model(tiny_model, tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    _refused(tmp_path, {"source": "local", "path": str(folder)}, message)
    with pytest.raises(ModelSourceError) as err:  # the user's file, not the link made to it
        prepare_model({"source": "local", "path": str(folder)}, tmp_path / "out")
    assert str(err.value).startswith(f"{weights} ")


def test_weights_are_hashed_and_checked_before_a_job_trusts_them(tmp_path, tiny_model, tiny_gguf):
    import hashlib

    from quantbench.artifacts.model import verify_artifact

    folder = _copy_model(tiny_model, tmp_path / "m")
    info = prepare_model({"source": "local", "path": str(folder)}, tmp_path / "out")
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert info["weights"]["model.safetensors"]["sha256"] == digest
    assert verify_artifact(tmp_path / "out")["sha256"] == {"model.safetensors": digest}
    gguf_info = json.loads(tiny_gguf["f16"].with_suffix(".json").read_text())
    assert verify_artifact(tiny_gguf["f16"])["sha256"] == {"f16.gguf": gguf_info["sha256"]}
    # the prepared folder links the weights: a file damaged afterwards is caught at load time
    with (folder / "model.safetensors").open("r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(ModelSourceError, match="changed since it was checked"):
        verify_artifact(tmp_path / "out")


@pytest.mark.parametrize("changes", [
    {"architectures": ["BertForMaskedLM"], "model_type": "bert"},
    {"architectures": ["LlamaModel"]},
    {"architectures": None, "model_type": "vit"},
])
def test_folder_that_is_not_a_causal_lm_is_refused(tmp_path, tiny_model, changes):
    folder = _copy_model(tiny_model, tmp_path / "m", **changes)
    _refused(tmp_path, {"source": "local", "path": str(folder)}, "not a causal language model")


def test_remote_code_needs_the_config_to_allow_it(tmp_path, tiny_model):
    from quantbench.artifacts.manifest import model_options

    auto_map = {"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    spec = {"source": "local", "path": str(_copy_model(tiny_model, tmp_path / "m",
                                                       auto_map=auto_map))}
    _refused(tmp_path, spec, "needs trust_remote_code .*auto_map: AutoModelForCausalLM")
    prepare_model({**spec, "trust_remote_code": True}, tmp_path / "out")
    assert model_options(tmp_path / "out") == {"trust_remote_code": True}


def test_pickle_weights_need_the_config_to_allow_them(tmp_path, tiny_model):
    import torch
    from safetensors.torch import load_file

    folder = _copy_model(tiny_model, tmp_path / "m")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    spec = {"source": "local", "path": str(folder)}
    _refused(tmp_path, spec, "only pickle weights \\(pytorch_model.bin\\)")
    info = prepare_model({**spec, "allow_pickle": True}, tmp_path / "out")
    assert list(info["weights"]) == ["pytorch_model.bin"]


def test_random_weights_are_made_in_the_dtype_asked_for(tmp_path, sample_text):
    import json

    from conftest import TINY

    sizes = {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / dtype
        prepare_model({**TINY, "weights_dtype": dtype}, out, text_path=sample_text)
        assert json.loads((out / "config.json").read_text())["dtype"] == dtype
        sizes[dtype] = sum(f.stat().st_size for f in out.glob("*.safetensors"))
    assert sizes["bfloat16"] < 0.51 * sizes["float32"]


def test_random_weights_fall_back_to_the_cpu_when_the_card_has_no_room(tmp_path, sample_text,
                                                                       monkeypatch):
    import torch

    from quantbench.artifacts import model as models
    from tests.conftest import TINY

    drawn = []
    real = models._random_weights

    def draw(spec, dtype, device):
        drawn.append(device)
        if device != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(spec, dtype, device)

    monkeypatch.setattr(models, "_random_weights", draw)
    info = prepare_model(TINY, tmp_path / "out", text_path=sample_text, init_device="cuda")
    assert drawn == ["cuda", "cpu"]
    assert info["weights_drawn_on"] == "cpu"
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_a_small_vocabulary_leaves_the_rarest_characters_to_byte_fallback(tmp_path, sample_text):
    """A vocabulary of 300 holds 256 byte pieces, 3 special ones, the word boundary and 40
    characters: SentencePiece refused a text with more than that; the rarest are encoded as
    bytes."""
    from conftest import TINY
    from transformers import AutoTokenizer

    text = tmp_path / "text.txt"
    rare = "".join(chr(c) for c in range(0x3b1, 0x3c9)) + " café Zürich naïve"  # greek, accents
    text.write_text(sample_text.read_text() + rare + "\n")
    out = tmp_path / "hf"
    prepare_model({**TINY, "vocab_size": 300}, out, text_path=text)
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 300
    tok = AutoTokenizer.from_pretrained(out)
    assert len(tok) <= 300
    ids = tok(rare, add_special_tokens=False)["input_ids"]
    assert max(ids) < 300 and tok.decode(ids) == rare
