"""Importance matrices: the calibration split, the refusals, the paired A/B and its report
(the real llama-imatrix runs: tests/test_imatrix_tools.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import IMATRIX_PROTOCOL as PROTOCOL

from quantbench import config as qb_config
from quantbench.artifacts import imatrix as qb_imatrix
from quantbench.artifacts.gguf import quantize
from quantbench.config import ConfigError
from quantbench.errors import ConversionError
from quantbench.perplexity import windows_for

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("meta", "protocol"), [
    ({"add_bos": True, "bos_id": -1}, PROTOCOL),
    ({"add_bos": False, "bos_id": None}, PROTOCOL),
    ({"add_bos": False}, {**PROTOCOL, "mode": "sliding", "stride": 24, "max_windows": 5}),
])
def test_scored_end_bounds_every_token_a_window_reads(meta, protocol):
    n = 1000
    ids = np.arange(n)  # each id is its own index: a window's ids say which tokens it read
    windows = windows_for(ids, meta, **{k: protocol[k] for k in
                                        ("mode", "context_length", "stride", "max_windows")})
    end = qb_imatrix.scored_end(n, meta, **protocol)
    read = {i for w in windows for i in (*w.ids, *w.targets) if i >= 0}
    assert max(read) == end - 1  # the last token read is the one before the calibration


def test_tail_calibration_is_the_text_beyond_the_scored_windows(tail_calibration, tiny_tokens,
                                                                tiny_model, sample_text):
    from transformers import AutoTokenizer

    rec = json.loads(tail_calibration["split"].read_text())
    ids = np.load(tiny_tokens["ids"])
    meta = json.loads(tiny_tokens["meta"].read_text())
    end = qb_imatrix.scored_end(len(ids), meta, **PROTOCOL)
    assert 0 < end < len(ids)
    assert rec["scored_ids"] == [0, end]
    assert rec["calibration_ids"] == [end, len(ids)]
    text = sample_text.read_text(encoding="utf-8")
    first, last = rec["calibration_chars"]
    assert rec["scored_chars"] == [0, first]
    assert tail_calibration["text"].read_text(encoding="utf-8") == text[first:last]
    # every character of a scored token lies before the calibration text
    offsets = AutoTokenizer.from_pretrained(str(tiny_model))(
        text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert offsets[end - 1][1] <= first == offsets[end][0]


def test_no_tail_left_is_a_clear_error(tmp_path, tiny_model, tiny_tokens, sample_text):
    """Sliding windows without a cap score the whole text."""
    with pytest.raises(ConversionError, match="no tokens beyond its scored windows"):
        qb_imatrix.calibration_text(
            {"source": "tail"}, text_path=sample_text, ids_path=tiny_tokens["ids"],
            meta_path=tiny_tokens["meta"], model_dir=tiny_model,
            protocol={**PROTOCOL, "mode": "sliding", "stride": 32, "max_windows": 0},
            out_text=tmp_path / "t.txt",
            out_json=tmp_path / "t.json")


def test_an_iq_type_without_an_imatrix_is_refused(tmp_path, tiny_gguf):
    with pytest.raises(ConversionError, match="IQ2_XS needs an importance matrix"):
        quantize(tiny_gguf["f16"], tmp_path / "x.gguf", gguf_type="iq2_xs", threads=2)


def _config(**overrides) -> dict:
    from snakemake.utils import validate

    cfg = {"models": {"m": {"source": "embedded"}}, "precisions": ["gguf-f16"], **overrides}
    validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return cfg


def test_imatrix_config_is_checked_before_any_job(tmp_path):
    qb_config.check(_config(precisions=["gguf-f16", "gguf-iq2_xs", "gguf-q4_k_m-imat"]))
    with pytest.raises(ConfigError, match="gguf-iq2_xs .IQ2_XS. needs an importance matrix"):
        qb_config.check(_config(precisions=["gguf-iq2_xs"],
                                precision_settings={"gguf-iq2_xs": {"imatrix": None}}))
    with pytest.raises(ConfigError, match="uses calibration 'other', which is not configured"):
        qb_config.check(_config(precisions=["gguf-q4_k_m-imat-other"]))
    with pytest.raises(ConfigError, match="holds no llama-imatrix"):
        qb_config.check(_config(precisions=["gguf-q2_k-imat"],
                                imatrix={"tools": str(tmp_path)}))
    with pytest.raises(ConfigError, match="calibrations.other.path"):
        qb_config.check(_config(precisions=["gguf-q4_k_m-imat-other"], imatrix={
            "calibrations": {"other": {"source": "file", "path": str(tmp_path / "none.txt")}}}))
    # a precision without an imatrix asks for no tool
    qb_config.check(_config(precisions=["gguf-q2_k"], imatrix={"tools": str(tmp_path)}))


def _arrays(rng, shift: float, n_windows: int = 8, n: int = 40) -> dict:
    return {"dnll": rng.normal(shift, 0.05, n_windows * n),
            "kld": rng.gamma(2, 0.01, n_windows * n), "window_len": np.full(n_windows, n)}


def _ab_row(imat: dict, plain: dict) -> dict:
    from quantbench.report.imatrix_ab import paired

    return {"model": "m", "precision": "gguf-q4_k_m-imat", "plain": "gguf-q4_k_m",
            "calibration": "tail", "size_bytes_imat": 100, "size_bytes_plain": 100,
            **paired(imat, plain)}


@pytest.mark.parametrize(("shift", "kind", "words"), [
    (-0.05, "imatrix_lowered_ppl", "the importance matrix (calibration tail) lowered perplexity"),
    (0.05, "imatrix_raised_ppl", "the importance matrix (calibration tail) raised perplexity"),
    (0.0, "imatrix_no_clear_difference", "no clear difference in perplexity"),
])
def test_the_imatrix_finding_follows_the_paired_interval(shift, kind, words):
    import pandas as pd

    from quantbench.report.variants import imatrix_findings

    rng = np.random.default_rng(0)
    plain = _arrays(rng, 0.02)
    # no shift: windows alternately better and worse by the same amount (mean change 0)
    alternate = np.repeat(np.resize([0.01, -0.01], 8), 40)
    imat = {**plain, "dnll": plain["dnll"] + (shift if shift else alternate)}
    row = _ab_row(imat, plain)
    if shift:  # a shift of every position moves the whole interval
        assert row["ppl_change_pct_ci_low"] == pytest.approx(100 * np.expm1(shift), abs=1e-9)
    [finding] = imatrix_findings(pd.DataFrame([row]))
    assert finding.kind == kind
    assert words in finding.text and "gguf-q4_k_m-imat against gguf-q4_k_m" in finding.text
    others = {"imatrix_lowered_ppl", "imatrix_raised_ppl", "imatrix_no_clear_difference"} - {kind}
    assert finding.kind not in others


def test_too_few_windows_say_nothing_about_the_imatrix():
    import pandas as pd

    from quantbench.report.variants import imatrix_findings

    rng = np.random.default_rng(1)
    plain = _arrays(rng, 0.02, n_windows=2)
    row = _ab_row({**plain, "dnll": plain["dnll"] - 0.5}, plain)
    [finding] = imatrix_findings(pd.DataFrame([row]))
    assert finding.kind == "imatrix_no_interval"
    assert "lowered" not in finding.text and "does not say" in finding.text


def test_pairs_match_each_imat_type_with_its_plain_twin():
    from quantbench import precisions
    from quantbench.precisions import pairs

    table = precisions.table()
    run = ["gguf-f16", "gguf-q4_k_m", "gguf-q4_k_m-imat", "gguf-q4_k_m-imat-other",
           "gguf-q2_k-imat", "gguf-iq2_xs"]
    found = pairs(run, table, lambda p: table[p].settings.get("imatrix"))
    assert found == [("gguf-q4_k_m-imat", "gguf-q4_k_m", "tail"),
                     ("gguf-q4_k_m-imat-other", "gguf-q4_k_m", "other")]


def _report_inputs():
    """A summary of three GGUF precisions (no importance-matrix pair of its own) and a config."""
    from quantbench.report.aggregate import summary_table

    def rec(kind, precision, **metrics):
        return {"kind": kind, "model": "m", "precision": precision, "backend": "llama.cpp",
                "status": "ok", "reason": None, "metrics": metrics,
                "details": {"backend": {"n_params": 1_000_000}},
                "provenance": {"config_hash": "abc", "device": {"kind": "cpu"}}}

    records = [rec(kind, p, decode_tok_s=tok_s, size_mib=1.0, ppl=10.0)
               for p, tok_s in (("gguf-f16", 20.0), ("gguf-q4_k_m", 40.0),
                                ("gguf-q4_k_m-imat", 40.0)) for kind in ("latency", "quality")]
    config = {"dataset": {"name": "text"},
              "latency": {"prompt_tokens": [128], "new_tokens": 32, "warmup_runs": 1,
                          "measured_runs": 3},
              "perplexity": {"mode": "llama.cpp", "context_length": 512, "max_windows": 8}}
    return summary_table(records, "gguf-f16"), config


def test_the_report_shows_the_imatrix_table_only_when_a_pair_was_run():
    import pandas as pd

    from quantbench.report.imatrix_ab import COLUMNS
    from quantbench.report.markdown import report_text

    df, config = _report_inputs()
    assert "## Importance matrix" not in report_text(df, reference="gguf-f16", config=config)
    rng = np.random.default_rng(2)
    plain = _arrays(rng, 0.02)
    row = {**_ab_row({**plain, "dnll": plain["dnll"] - 0.03}, plain), "gguf_type": "Q4_K_M",
           "calibration_ids": "[4095, 9000]", "scored_ids": "[0, 4095]"}
    ab = pd.DataFrame([row], columns=COLUMNS)
    text = report_text(df, reference="gguf-f16", config=config, imatrix=ab)
    section = text.split("## Importance matrix", 1)[1].split("\n## ", 1)[0]
    assert "| m | gguf-q4_k_m-imat | gguf-q4_k_m | tail | -2.96 [-2.96, -2.96] |" in section
    assert "[0, 4095] | [4095, 9000] |" in section
    assert "the importance matrix (calibration tail) lowered perplexity" in section


def test_small_kl_divergences_of_an_imatrix_pair_are_not_shown_as_zero():
    """A model whose quantized files stay close to it has mean KL divergences near 1e-4: the
    finding and the table give them in scientific notation, so that a change whose interval
    excludes 0 does not read as [0.0000, 0.0000]."""
    import pandas as pd

    from quantbench.report.imatrix_ab import COLUMNS
    from quantbench.report.markdown import report_text
    from quantbench.report.variants import imatrix_findings

    rng = np.random.default_rng(3)
    plain = {**_arrays(rng, 0.0), "kld": rng.gamma(2, 6e-5, 8 * 40)}
    imat = {**plain, "dnll": plain["dnll"] - 0.001, "kld": plain["kld"] + 4e-5}
    row = {**_ab_row(imat, plain), "gguf_type": "Q4_K_M", "calibration_ids": "[4095, 9000]",
           "scored_ids": "[0, 4095]"}
    assert row["kld_change_ci_low"] == pytest.approx(4e-5, rel=1e-6)
    [finding] = imatrix_findings(pd.DataFrame([row]))
    assert "(change [4.00e-05, 4.00e-05])" in finding.text
    assert f"mean KL divergence {row['kld_imat']:.2e} against {row['kld_plain']:.2e}" in (
        finding.text)
    df, config = _report_inputs()
    text = report_text(df, reference="gguf-f16", config=config,
                       imatrix=pd.DataFrame([row], columns=COLUMNS))
    section = text.split("## Importance matrix", 1)[1].split("\n## ", 1)[0]
    cells = f"| {row['kld_imat']:.2e} | {row['kld_plain']:.2e} | 4.00e-05 [4.00e-05, 4.00e-05] |"
    assert cells in section
    assert "0.0000" not in section


@pytest.mark.parametrize(("kld_shift", "direction", "disagree"), [
    (4e-3, "higher with the matrix", True),    # lower perplexity, predictions further away
    (-4e-3, "lower with the matrix", False),   # both better
])
def test_the_imatrix_finding_says_where_kl_divergence_went_and_when_it_disagrees(
        kld_shift, direction, disagree):
    """Perplexity can fall while the quantized model's predictions move away from the
    unquantized model's: the finding gives the KL divergence's direction from its interval and
    says when the two measures disagree."""
    import pandas as pd

    from quantbench.report.variants import imatrix_findings

    rng = np.random.default_rng(4)
    plain = _arrays(rng, 0.02)
    imat = {**plain, "dnll": plain["dnll"] - 0.05, "kld": plain["kld"] + kld_shift}
    [finding] = imatrix_findings(pd.DataFrame([_ab_row(imat, plain)]))
    assert finding.kind == "imatrix_lowered_ppl"
    assert direction in finding.text
    assert ("perplexity and KL divergence disagree" in finding.text) == disagree
    alternate = np.repeat(np.resize([1e-3, -1e-3], 8), 40)  # no clear change in KLD
    [unclear] = imatrix_findings(pd.DataFrame([_ab_row(
        {**imat, "kld": plain["kld"] + alternate}, plain)]))
    assert "no clear difference (change [" in unclear.text and "disagree" not in unclear.text


def test_a_file_calibration_has_no_split_and_the_table_says_so_without_nan(tmp_path):
    """A `file` calibration is no part of the evaluation text: results/imatrix.csv leaves its
    split's cells empty, and the report's table shows them as '–', not 'nan'."""
    import pandas as pd

    from quantbench.report.imatrix_ab import COLUMNS
    from quantbench.report.markdown import report_text

    rng = np.random.default_rng(4)
    plain = _arrays(rng, 0.02)
    row = {**_ab_row({**plain, "dnll": plain["dnll"] - 0.03}, plain), "gguf_type": "Q4_K_M",
           "calibration": "other", "calibration_ids": "", "scored_ids": ""}
    path = tmp_path / "imatrix.csv"
    pd.DataFrame([row], columns=COLUMNS).to_csv(path, index=False)
    df, config = _report_inputs()
    text = report_text(df, reference="gguf-f16", config=config, imatrix=pd.read_csv(path))
    section = text.split("## Importance matrix", 1)[1].split("\n## ", 1)[0]
    [line] = [x for x in section.splitlines() if x.startswith("| m | gguf-q4_k_m-imat |")]
    assert "nan" not in line
    assert line.endswith("| – | – |")
