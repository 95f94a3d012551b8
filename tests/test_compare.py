"""Several runs' results side by side (quantbench compare)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from quantbench.tools.compare import combine, compare, main, side_by_side

DATA = Path(__file__).resolve().parent / "data"  # compare-h200: an H200 run's summary
COLUMNS = ["model", "precision", "backend", "status", "decode_tok_s", "prefill_ms",
           "peak_mem_mib", "ppl", "ppl_delta_pct", "device", "gpu_name"]


def write_run(folder: Path, rows, *, machine=None, run_id=None) -> Path:
    folder.mkdir(parents=True)
    df = pd.DataFrame(rows, columns=COLUMNS)
    if run_id is not None:
        df.insert(0, "run_id", run_id)
    df.to_csv(folder / "summary.csv", index=False)
    if machine is not None:
        (folder / "machine.json").write_text(json.dumps(machine))
    return folder


@pytest.fixture()
def runs(tmp_path):
    cpu = write_run(tmp_path / "laptop", [
        ("m", "fp32", "transformers", "ok", 20.0, 100.0, 1400.0, 10.0, 0.0, "cpu", None),
        ("m", "gguf-q8_0", "llama.cpp", "ok", 60.0, 90.0, 500.0, 10.1, 1.0, "cpu", None),
        ("m", "bnb-int8", "bitsandbytes", "unsupported", None, None, None, None, None, "cpu",
         None),
    ], machine={"device": "cpu", "provenance": {"git_commit": "a" * 40, "cpu": "Xeon 8480"}})
    gpu = write_run(tmp_path / "big", [
        ("m", "fp32", "transformers", "ok", 80.0, 10.0, 3000.0, 10.0, 0.0, "cuda", "NVIDIA H100"),
        ("m", "gguf-q8_0", "llama.cpp", "ok", 300.0, 8.0, 1500.0, 10.1, 1.0, "cuda",
         "NVIDIA H100"),
        ("m", "bnb-int8", "bitsandbytes", "ok", 30.0, 20.0, 2000.0, 10.05, 0.5, "cuda",
         "NVIDIA H100"),
        ("m", "bnb-nf4", "bitsandbytes", "oom", None, None, None, None, None, "cuda",
         "NVIDIA H100"),
    ], run_id="h100-run")
    return cpu, gpu


def test_run_ids_come_from_the_column_or_the_folder_and_machine(runs):
    df = combine(runs)
    assert list(dict.fromkeys(df["run_id"])) == ["laptop-cpu", "h100-run"]
    laptop = df[df["run_id"] == "laptop-cpu"].iloc[0]
    assert laptop["commit"] == "a" * 40 and laptop["machine"] == "cpu (Xeon 8480)"


def test_a_folder_of_several_runs_is_one_side_of_the_comparison(runs, tmp_path):
    """A summary whose rows come from several runs (report.allow_mixed_runs) is labelled by its
    folder and machine, not split into runs."""
    mixed = pd.read_csv(runs[1] / "summary.csv").assign(run_id=["r1", "r1", "r2", "r2"])
    (tmp_path / "mixed").mkdir()
    mixed.to_csv(tmp_path / "mixed" / "summary.csv", index=False)
    df = combine([runs[0], tmp_path / "mixed"])
    assert list(dict.fromkeys(df["run_id"])) == ["laptop-cpu", "mixed-nvidia-h100"]


def test_the_same_run_twice_gets_two_ids(runs):
    df = combine([runs[0], runs[0]])
    assert list(dict.fromkeys(df["run_id"])) == ["laptop-cpu", "laptop-cpu-2"]


def test_side_by_side_gives_each_run_and_the_speed_ratio(runs):
    wide = side_by_side(combine(runs))
    assert wide.loc["gguf-q8_0", ("decode_tok_s", "h100-run")] == 300.0
    assert wide.loc["gguf-q8_0", ("speed_ratio", "h100-run")] == pytest.approx(5.0)
    assert wide.loc["fp32", ("speed_ratio", "h100-run")] == pytest.approx(4.0)
    assert pd.isna(wide.loc["bnb-int8", ("speed_ratio", "h100-run")])


def test_the_markdown_report_and_the_command(runs, tmp_path, capsys):
    out = tmp_path / "out"
    main([str(runs[0]), str(runs[1]), "--out", str(out)])
    text = (out / "comparison.md").read_text()
    assert "| gguf-q8_0 | 60.0 | 300.0 |" in text
    assert "| bnb-int8 | unsupported | 30.0 |" in text  # a failed precision shows its status
    assert "| bnb-nf4 | – | oom |" in text  # failed in the only run that has it
    assert "| gguf-q8_0 | 5.00× |" in text
    assert "over the 2 precisions that ran in both, decode is 4.50× as fast in the median, " \
           "from 4.00× (fp32) to 5.00× (gguf-q8_0)" in text
    assert "different models" not in text
    combined = pd.read_csv(out / "combined.csv")
    assert set(combined["run_id"]) == {"laptop-cpu", "h100-run"}
    assert str(out / "comparison.md") in capsys.readouterr().out


def test_the_h200_example_against_a_cpu_run(runs, tmp_path):
    text = compare([runs[0], DATA / "compare-h200"], tmp_path / "out", html=True)
    assert "compare-h200-nvidia-h200" in text  # derived: no run_id column in the example
    assert "The runs measure different models" in text
    assert "Quality was not measured in compare-h200-nvidia-h200" in text
    # gguf-q8_0: 734.4 tok/s on the H200 against 60.0 here
    assert "| gguf-q8_0 | 12.24× |" in text
    assert (tmp_path / "out" / "comparison.html").stat().st_size > 1000


def test_a_folder_without_summary_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no summary.csv"):
        combine([tmp_path])


def test_runs_with_several_models_are_compared_by_model_and_precision(tmp_path):
    rows = [("a", "fp32", "transformers", "ok", 10.0, 1.0, 100.0, None, None, "cpu", None),
            ("b", "fp32", "transformers", "ok", 5.0, 1.0, 100.0, None, None, "cpu", None)]
    one = write_run(tmp_path / "one", rows, run_id="one")
    two = write_run(tmp_path / "two", [r[:4] + (r[4] * 3,) + r[5:] for r in rows], run_id="two")
    wide = side_by_side(combine([one, two]))
    assert wide.loc[("b", "fp32"), ("speed_ratio", "two")] == pytest.approx(3.0)


def test_run_ids_cannot_inject_markup(tmp_path):
    row = ("m", "fp32", "transformers", "ok", 10.0, 1.0, 100.0, None, None, "cpu", None)
    evil = write_run(tmp_path / "evil", [row], run_id="a|b <script>")
    plain = write_run(tmp_path / "plain", [row], run_id="plain")
    text = compare([evil, plain], tmp_path / "out")
    assert "<script>" not in text and "a|b" not in text
    assert "| fp32 | 10.0 | 10.0 |" in text
