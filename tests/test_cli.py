"""The ``quantbench`` command: one entry point whose subcommands are the user tools."""

import importlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from quantbench import cli
from quantbench.targets import KINDS

REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ["compare", "targets", "render", "fidelity", "repeatability", "bench-pipeline",
               "bench-dag"]


def test_the_console_script_is_the_cli():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"quantbench": "quantbench.cli:main"}


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_names_a_function_whose_help_is_its_own(name, capsys):
    module, function, _ = cli.COMMANDS[name]
    assert callable(getattr(importlib.import_module(module), function))
    with pytest.raises(SystemExit) as done:
        cli.main([name, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: quantbench {name} ")


def test_help_lists_the_subcommands_without_importing_torch_or_llama_cpp():
    code = ("import sys\nfrom quantbench.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'llama_cpp', 'pandas', 'plotly') "
            "if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")}, check=True)
    assert res.stdout.strip().splitlines()[-1] == "[]"
    for name in SUBCOMMANDS:
        assert f"  {name} " in res.stdout


def test_python_dash_m_quantbench_dispatches_arguments_and_exit_status(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models: {m1: {source: embedded}}\nprecisions: [fp32, gguf-q8_0]\n")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "quantbench", *args], capture_output=True,
                              text=True, env=env)

    ok = run("targets", "--model", "m1", "--precision", "fp32", "--config", str(cfg))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.split() == [f"results/m1/{k}/fp32.json" for k in KINDS]
    bad = run("targets", "--precision", "fp16", "--config", str(cfg))
    assert bad.returncode == 2 and "precision 'fp16' is not in" in bad.stderr
    unknown = run("no-such-command")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_no_sys_path_insert_and_the_snakefile_imports_its_own_checkout():
    """The tools were glued to src/ (and to each other) through sys.path; the package is
    imported as installed now. The Snakefile reaches this checkout's src/quantbench through the
    link beside it (Snakemake puts the Snakefile's folder on the path), as the jobs' scripts do
    through workflow/scripts/quantbench."""
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "*.py", "*.sh", "*.smk", "Makefile", "Snakefile"],
        capture_output=True, text=True, check=True).stdout.split()
    here = Path(__file__).relative_to(REPO).as_posix()
    found = [f for f in files if f != here and (REPO / f).is_file()
             and "sys.path.insert" in (REPO / f).read_text()]
    assert found == []
    for link in (REPO / "quantbench", REPO / "workflow" / "scripts" / "quantbench"):
        assert link.is_symlink() and link.resolve() == (REPO / "src" / "quantbench").resolve()


def test_render_from_tables_makes_the_report_and_every_figure_it_links(tmp_path):
    """An example keeps its tables, not its records: the report and figures are made again
    from them, every image it links is there, and its table holds the summary's figures."""
    import re
    import shutil

    import pandas as pd

    folder = tmp_path / "example"
    shutil.copytree(REPO / "docs" / "examples" / "cpu-sweep", folder,
                    ignore=shutil.ignore_patterns("figures", "report.md"))
    assert cli.main(["render", str(folder), "--config", str(REPO / "config" / "sweep-cpu.yaml"),
                     "--tables"]) == 0
    text = (folder / "report.md").read_text()
    links = re.findall(r"\]\((figures/[^)]+\.png)\)", text)
    assert links and all((folder / link).is_file() for link in links)
    index = json.loads((folder / "figures" / "index.json").read_text())
    assert links == [f"figures/{name}.png" for name in index["made"]]
    for name in index["not_made"]:  # batch_roofline: no model shape here; the GPU series
        assert f"](figures/{name}.png)" not in text
        assert f"`{name}`" in text or name.startswith("nvml_")
    # a CPU run's tables: no GPU samples for any of its 6 precisions, said in one line
    assert "- the GPU time series of 6 precisions (smollm2-135m_fp32, " in text
    summary = pd.read_csv(folder / "summary.csv")
    fastest = summary.loc[summary["decode_tok_s"].idxmax()]
    assert f"| {fastest['precision']} |" in text and f"{fastest['decode_tok_s']:,.1f}" in text
    with pytest.raises(SystemExit, match="summary.csv does not exist"):
        cli.main(["render", str(tmp_path), "--config", str(REPO / "config" / "sweep-cpu.yaml"),
                  "--tables"])


def test_render_refuses_records_of_several_runs_unless_its_config_allows_them(tmp_path):
    """quantbench render aggregates as the workflow does: records of another commit are refused
    before anything is written, with the config's report.allow_mixed_runs as the switch."""
    import json

    for precision, commit in (("fp32", "a" * 40), ("gguf-q8_0", "b" * 40)):
        path = tmp_path / "results" / "m" / "latency" / f"{precision}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "kind": "latency", "model": "m", "precision": precision, "backend": "llama.cpp",
            "status": "oom", "reason": "no room", "metrics": {}, "details": {},
            "provenance": {"git_commit": commit, "git_dirty": False, "cpu": "x", "cpu_count": 2,
                           "created_utc": f"2026-12-0{1 + (commit == 'a' * 40)}T00:00:00"}}))
    config = REPO / "config" / "sweep-cpu.yaml"  # report.allow_mixed_runs: false by default
    with pytest.raises(SystemExit, match=r"quantbench render: the records are not of one run(.|\n)*"
                       r"another commit \(commit bbbbbbb, clean tree\): 1 record\(s\): "
                       r".*results/m/latency/gguf-q8_0.json"):
        cli.main(["render", str(tmp_path / "results"), "--config", str(config), "--out",
                  str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_render_elsewhere_keeps_the_gpu_time_series_and_links_them_there(tmp_path):
    """A GPU example rendered to another folder: its GPU time series go with the figures, and
    every image the report links is in that folder."""
    import re

    out = tmp_path / "out"
    assert cli.main(["render", str(REPO / "docs" / "examples" / "h100"), "--config",
                     str(REPO / "config" / "gpu-tinyllama.yaml"), "--tables", "--out",
                     str(out)]) == 0
    text = (out / "report.md").read_text()
    links = re.findall(r"\]\(([^)]+\.png)\)", text)
    series = [link for link in links if "/nvml_" in link]
    assert series and all(link.startswith("figures/") for link in links)
    assert all((out / link).is_file() for link in links)


@pytest.mark.parametrize("command", [["targets", "--precision", "fp32"], ["render", "."]])
def test_a_config_file_with_a_syntax_error_is_named_with_its_line(command, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("precisions: [fp32\nmodels: {}\n")
    try:
        code = cli.main([*command, "--config", str(bad)])
    except SystemExit as exc:
        code, message = exc.code, str(exc.code)
    else:
        message = capsys.readouterr().err
    assert code not in (0, None)
    assert f"config file {bad}: line " in message
