"""Config checks that run while the DAG is built (no job has started yet)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from quantbench import config as qb_config
from quantbench.config import ConfigError

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def _unprivileged(fn) -> str | None:
    """Run ``fn`` as user nobody (root writes into read-only folders); return its ConfigError."""
    if os.getuid() != 0:
        try:
            fn()
        except ConfigError as exc:
            return str(exc)
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child only drops its rights and runs fn: nothing else is imported
        os.close(read)
        code = 0
        try:
            os.setgid(65534)
            os.setuid(65534)
            fn()
        except ConfigError as exc:
            os.write(write, str(exc).encode())
            code = 3
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write, f"unexpected {exc!r}".encode())
            code = 4
        os._exit(code)
    os.close(write)
    message = os.read(read, 4096).decode()
    os.close(read)
    status = os.waitpid(pid, 0)[1]
    assert os.WEXITSTATUS(status) in (0, 3), message
    return message or None


def test_unwritable_output_folders_are_refused():
    # not pytest's tmp_path: its parents are closed to the unprivileged user
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        work.chmod(0o777)  # writable by the unprivileged user, except what the test closes
        _check_unwritable(work)


def _check_unwritable(tmp_path: Path) -> None:
    qb_config.check_output_folders(tmp_path)  # an empty folder is fine
    (tmp_path / "results").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"output folder .*results cannot be created: .* file"):
        qb_config.check_output_folders(tmp_path)
    (tmp_path / "results").unlink()
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs").chmod(0o555)
    try:
        message = _unprivileged(lambda: qb_config.check_output_folders(tmp_path))
    finally:
        (tmp_path / "logs").chmod(0o755)
    assert message is not None and "logs cannot be written" in message


def test_model_listed_twice_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("models:\n  tiny: {source: embedded}\n  other: {source: embedded}\n"
                   "  tiny: {source: random}\nprecisions: [fp32]\n")
    with pytest.raises(ConfigError, match=r"key 'tiny' is given twice \(lines 2 and 4\)"):
        qb_config.check_config_files([cfg])
    cfg.write_text("models:\n  tiny: {source: embedded}\nprecisions: [fp32]\n")
    qb_config.check_config_files([cfg])


@pytest.mark.parametrize(("text", "message"), [
    ("models:\n  m: {source: embedded\nprecisions: [fp32]\n",
     "line 3, column 11: expected ',' or '}', but got ':' (while parsing a flow mapping that "
     "starts on line 2)"),
    ("models:\n  m: {source: embedded}\nlatency:\n\tnew_tokens: 3\n",
     "line 4, column 1: found character '\\t' that cannot start any token"),
    ("- fp32\n- bf16\n", "is not a mapping of config keys (models:, precisions:, ...): it holds "
                         "list"),
    ("# all commented out\n", "it holds nothing"),
], ids=["unclosed-brace", "tab", "a-list", "empty"])
def test_a_config_file_that_is_not_a_yaml_mapping_is_named_with_its_line(tmp_path, text,
                                                                         message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        qb_config.check_config_files([cfg])
    assert str(err.value).startswith(f"config file {cfg}")
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"config file .*absent.yaml cannot be read: No such"):
        qb_config.check_config_files([tmp_path / "absent.yaml"])


def test_nested_command_line_values_are_read_as_a_config_file_reads_them():
    """Snakemake reads --config "latency={measured_runs: 1}" with YAML's base loader ('1', a
    string); read again, an unquoted number is a number and a quoted one stays text."""
    assert qb_config.typed_config_args([
        "latency={measured_runs: 1, prompt_tokens: [64, 128], warmup_runs: '2'}",
        "kernels={enabled: true}", "precisions=[fp32, gguf-q8_0]", "device=cpu",
        "fail_on_error=", "latency={new_tokens: 8}",
    ]) == [{"latency": {"measured_runs": 1, "prompt_tokens": [64, 128], "warmup_runs": "2"}},
           {"kernels": {"enabled": True}}, {"precisions": ["fp32", "gguf-q8_0"]},
           {"latency": {"new_tokens": 8}}]
    assert qb_config.typed_config_args(None) == []


def test_a_nested_command_line_value_passes_the_schema(tmp_path):
    from test_workflow import snakemake, write_config

    cfg = write_config(tmp_path / "c.yaml", models={"m": {"source": "embedded"}},
                       precisions=["fp32"], latency={"new_tokens": 8})
    res = snakemake(tmp_path, "-n", "--config",
                    "latency={measured_runs: 1, prompt_tokens: [64, 96]}", config=cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    res = snakemake(tmp_path, "-n", "--config", "latency={measured_runs: '1'}", config=cfg)
    assert res.returncode != 0 and "'1' is not of type 'integer'" in res.stdout + res.stderr


def test_model_names_equal_but_for_case_are_refused():
    cfg = {"models": {"Tiny": {"source": "embedded"}, "tiny": {"source": "embedded"}},
           "precisions": ["fp32"], "dataset": {"name": "britannica"},
           "perplexity": {"context_length": 64}}
    with pytest.raises(ConfigError, match="'Tiny' and 'tiny' differ only in case"):
        qb_config.check(cfg)


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "/abs", "x\\y", "-rf", ".hidden",
                                  "a\nb", ""])
def test_model_names_cannot_leave_the_output_folders(name):
    with pytest.raises(WorkflowError, match="does not match"):
        validate({"models": {name: {"source": "embedded"}}, "precisions": ["fp32"]}, str(SCHEMA))
    validate({"models": {"ok.name-1_x": {"source": "embedded"}}, "precisions": ["fp32"]},
             str(SCHEMA))


def _lock(tmp_path) -> Path:
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / "0.output.lock").write_text("results/x.json\n")
    return locks / "0.output.lock"


def _alive_in(folder, name, *command):
    """A process started in ``folder`` that runs ``command`` under the program name ``name``
    (bash's exec -a), returned once /proc shows that name."""
    import subprocess

    proc = subprocess.Popen(["bash", "-c", 'exec -a "$0" "$@"', name, *command], cwd=folder)
    deadline = time.monotonic() + 30  # a guard against a hung test, not a timing
    while Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[0] != name.encode():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return proc


@pytest.mark.parametrize(("argv", "is_snakemake"), [
    (["/venv/bin/python", "/venv/bin/snakemake", "--cores", "2"], True),
    (["python3", "-m", "snakemake", "-n"], True),
    (["python", "-u", "-m", "snakemake"], True),
    (["snakemake", "--cores", "1"], True),
    (["tail", "-f", ".snakemake/log/2026-12-01T100000.snakemake.log"], False),
    (["python", "-c", "import time; time.sleep(9)", "snakemake"], False),
    (["python", "-m", "snakemake_executor_plugin_slurm"], False),
    (["vim", "Snakefile"], False),
])
def test_a_snakemake_process_is_recognised_by_what_it_runs(argv, is_snakemake):
    from quantbench.locks import is_snakemake_command

    assert is_snakemake_command(argv) is is_snakemake


def test_stale_snakemake_locks_are_removed_only_when_no_run_is_alive(tmp_path, capsys):
    from quantbench.locks import clear_stale_locks

    lock = _lock(tmp_path)
    alive = _alive_in(tmp_path, "snakemake", "sleep", "60")  # a run in this folder
    try:
        assert clear_stale_locks(tmp_path) == []
        assert lock.is_file()
        assert f"Snakemake process(es) {alive.pid} run in this folder" in capsys.readouterr().err
    finally:
        alive.kill()
        alive.wait()
    assert clear_stale_locks(tmp_path) == [lock]
    assert not list(lock.parent.iterdir())


def test_a_command_that_only_names_snakemake_does_not_keep_the_locks(tmp_path):
    from quantbench.locks import clear_stale_locks

    lock = _lock(tmp_path)
    (tmp_path / ".snakemake" / "log").mkdir()
    (tmp_path / ".snakemake" / "log" / "run.snakemake.log").write_text("")
    tail = _alive_in(tmp_path, "tail", "tail", "-f", ".snakemake/log/run.snakemake.log")
    try:
        assert clear_stale_locks(tmp_path) == [lock]
    finally:
        tail.kill()
        tail.wait()


def test_a_job_of_a_run_keeps_the_locks(tmp_path):
    from quantbench.locks import clear_stale_locks

    lock = _lock(tmp_path)
    script = tmp_path / ".snakemake" / "scripts" / "tmpab12.benchmark_latency.py"
    script.parent.mkdir(parents=True)
    script.write_text("")
    job = _alive_in(tmp_path, "python3", "tail", "-f", str(script))  # python3 -f <script>
    try:
        assert clear_stale_locks(tmp_path) == [] and lock.is_file()
    finally:
        job.kill()
        job.wait()


def test_locks_stay_in_a_job_and_on_a_shared_file_system(tmp_path, monkeypatch, capsys):
    from quantbench import locks as qb_locks

    lock = _lock(tmp_path)
    assert qb_locks.clear_stale_locks(tmp_path, main_process=False) == [] and lock.is_file()
    monkeypatch.setattr(qb_locks, "file_system_type", lambda path: "nfs4")
    assert qb_locks.clear_stale_locks(tmp_path) == [] and lock.is_file()
    err = capsys.readouterr().err
    assert "shared file system (nfs4)" in err and "snakemake --unlock" in err


def test_the_file_system_of_a_path_comes_from_the_mount_table(tmp_path):
    from quantbench.locks import file_system_type, is_shared_file_system

    assert file_system_type("/proc/self") == "proc"
    assert file_system_type(tmp_path) is not None
    assert is_shared_file_system("nfs4") and is_shared_file_system("fuse.sshfs")
    assert not is_shared_file_system("ext4") and not is_shared_file_system("overlay")


SHEET_SCHEMA = SCHEMA.with_name("models.schema.yaml")


def test_the_model_sheet_has_the_fields_of_a_models_entry():
    import yaml

    config = yaml.safe_load(SCHEMA.read_text())
    sheet = yaml.safe_load(SHEET_SCHEMA.read_text())
    entry = config["$defs"]["model"]
    assert {k: v for k, v in sheet["properties"].items() if k != "name"} == entry["properties"]
    assert sheet["allOf"] == entry["allOf"]
    assert sheet["properties"]["name"]["pattern"] == config["properties"]["models"][
        "propertyNames"]["pattern"]


def test_model_sheet_cells_are_typed_and_blanks_left_out(tmp_path):
    from quantbench import modelsheet

    sheet = tmp_path / "m.tsv"
    sheet.write_text("name\tsource\trepo_id\trevision\tnum_layers\tallow_pickle\n"
                     "a\thub\to/r\t0123456\t\tTRUE\n"
                     "b\tembedded\t\t\t2\t\n")
    models = modelsheet.merge({"c": {"source": "embedded"}}, modelsheet.load(sheet, SHEET_SCHEMA),
                              sheet)
    assert models["c"] == {"source": "embedded"}
    assert models["a"]["revision"] == "0123456"  # a commit stays text
    assert models["a"]["allow_pickle"] is True and "num_layers" not in models["a"]
    assert models["b"]["num_layers"] == 2 and type(models["b"]["num_layers"]) is int
    assert models["b"]["revision"] == "main"  # the schema's default
    assert type(models["b"]["seed"]) is int


@pytest.mark.parametrize(("rows", "message"), [
    (["name\tsource", "a\tembedded", "b\tembedded\textra"],
     "line 3: 3 cells, but the header (line 1) has 2 columns"),
    (["name\tsource", "a\tembedded\textra", "b\tembedded"],  # pandas took a for an index here
     "line 2: 3 cells, but the header (line 1) has 2 columns"),
    (["name\tsource\tpath", "a\tembedded\t", "", "b\tlocal"],
     "line 4: 2 cells, but the header (line 1) has 3 columns"),
    (["name\tsource", "a\tembedded", "", "b\tembedded", "a\tembedded"],
     "model 'a' is given twice (lines 2 and 5)"),
    (["name\tsource", "a\tembedded", "", "b\tembeded"],
     "line 4: column 'source': 'embeded' is not one of ['embedded'"),
    (["name\tsource\tseed", "a\tembedded\tzero"], "line 2: column 'seed': 'zero' is not of type "
                                                  "'integer'"),
    (["name\tsource", "a\tlocal"], "line 2: 'path' is a required property"),
    ([], "is empty: it needs a header row"),
    (["", ""], "is empty: it needs a header row"),
], ids=["extra-cell", "extra-cell-first-row", "missing-cell", "twice", "bad-value", "bad-int",
        "required", "empty", "blank-lines"])
def test_a_bad_model_sheet_is_named_with_the_line_of_its_row(tmp_path, rows, message):
    """A row is named by its line in the file (the header is line 1), in every message."""
    from quantbench import modelsheet

    sheet = tmp_path / "m.tsv"
    sheet.write_text("".join(f"{row}\n" for row in rows))
    with pytest.raises(ConfigError) as err:
        modelsheet.load(sheet, SHEET_SCHEMA)
    assert str(err.value).startswith(f"model sheet {sheet}")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_model_in_the_sheet_and_the_config_is_named_with_its_line(tmp_path):
    from quantbench import modelsheet

    sheet = tmp_path / "m.tsv"
    sheet.write_text("name\tsource\nb\tembedded\na\tembedded\n")
    with pytest.raises(ConfigError, match=r"model 'a' is given twice: in the config's models "
                                          r"and in the model sheet .*m.tsv \(line 3\)"):
        modelsheet.merge({"a": {"source": "embedded"}}, modelsheet.load(sheet, SHEET_SCHEMA),
                         sheet)


RANDOM = {"source": "random", "architecture": "llama", "hidden_size": 256, "num_layers": 2,
          "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 512, "vocab_size": 512,
          "max_position_embeddings": 256, "seed": 0}


def _config(**overrides) -> dict:
    """A validated config (the schema's defaults filled in) with ``overrides``."""
    import copy

    cfg = {"models": {"r": dict(RANDOM)}, "precisions": ["fp32"], **copy.deepcopy(overrides)}
    validate(cfg, str(SCHEMA))
    return cfg


@pytest.mark.parametrize(("shape", "message"), [
    ({"num_kv_heads": 3}, "config key 'models.r.num_kv_heads': 3 does not divide num_heads 4"),
    ({"hidden_size": 260}, "config key 'models.r.hidden_size': the head size hidden_size / "
                           "num_heads = 260 / 4 = 65 is odd"),
])
def test_model_shapes_a_job_could_not_build_are_refused(shape, message):
    qb_config.check(_config())
    with pytest.raises(ConfigError) as err:
        qb_config.check(_config(models={"r": {**RANDOM, **shape}}))
    assert message in str(err.value)


@pytest.mark.parametrize(("settings", "message"), [
    ({"bnb-nf4": {"compute_dtype": "float8"}},
     "config key 'precision_settings.bnb-nf4.compute_dtype': 'float8' is not one of float32, "
     "float16, bfloat16"),
    ({"bnb-int8": {"compute_dtype": "float16"}},
     "config key 'precision_settings.bnb-int8.compute_dtype': not a setting bnb-int8 can change; "
     "allowed: threshold"),
    ({"fp32": {"dtyp": "float16"}},
     "config key 'precision_settings.fp32.dtyp': not a setting fp32 can change; allowed: dtype, "
     "compile"),
    ({"gguf-q8_0": {"gguf_type": "Q4_0"}},
     "config key 'precision_settings.gguf-q8_0.gguf_type': not a setting gguf-q8_0 can change"),
    ({"gguf-f16": {"flash_attn": "yes"}},
     "config key 'precision_settings.gguf-f16.flash_attn': 'yes' is not one of auto, on, off"),
    ({"bnb-nf4-dq": {"double_quant": "no"}},
     "config key 'precision_settings.bnb-nf4-dq.double_quant': 'no' is not true or false"),
    ({"fp33": {"dtype": "float16"}}, "config key 'precision_settings.fp33': unknown precision"),
    ({"torchao-int4wo": {"packing": ["opaque"]}},
     "config key 'precision_settings.torchao-int4wo.packing': not a setting torchao-int4wo can "
     "change; allowed: compile"),
])
def test_bad_precision_settings_are_refused(settings, message):
    qb_config.check(_config(precision_settings={"bnb-nf4": {"compute_dtype": "float16"},
                                                "bnb-int8": {"threshold": 0},
                                                "gguf-f16": {"flash_attn": "off"},
                                                "fp16": {"compile": True},
                                                "torchao-int8wo": {"compile": False}}))
    with pytest.raises(ConfigError) as err:
        qb_config.check(_config(precision_settings=settings))
    assert message in str(err.value)


def test_device_cuda_without_a_usable_gpu_is_refused(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    with pytest.raises(ConfigError, match=r"config key 'device': cuda, but no CUDA device is "
                                          r"usable on this machine: CUDA_VISIBLE_DEVICES='-1'"):
        qb_config.check_device({"device": "cuda"})
    qb_config.check_device({"device": "auto"})
    qb_config.check_device({"device": "cpu"})
    monkeypatch.setattr(qb_config, "cuda_problem", lambda: None)  # a machine with a GPU
    qb_config.check_device({"device": "cuda"})


def test_prompts_longer_than_the_context_window_are_refused(tmp_path):
    qb_config.check_lengths(_config(latency={"prompt_tokens": [64, 224], "new_tokens": 32},
                                    perplexity={"context_length": 256}), tmp_path, gpu_trace=False)
    cases = [
        (dict(latency={"prompt_tokens": [64, 300]}, perplexity={"context_length": 64}),
         "config key 'latency.prompt_tokens': 300 tokens exceed the context window of model r: "
         "256 tokens (models.r.max_position_embeddings)"),
        (dict(latency={"prompt_tokens": [64, 250], "new_tokens": 32},
              perplexity={"context_length": 64}),
         "config keys 'latency.prompt_tokens' + 'latency.new_tokens': 250 + 32 = 282 tokens "
         "exceed the context window of model r: 256 tokens"),
        (dict(latency={"prompt_tokens": [64]}, perplexity={"context_length": 512}),
         "config key 'perplexity.context_length': 512 tokens exceed the context window of "
         "model r"),
        (dict(latency={"prompt_tokens": [64]}, perplexity={"context_length": 64}),
         "config keys 'gpu_trace.prompt_tokens' + 'gpu_trace.new_tokens': 512 + 128 = 640 tokens"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError) as err:
            qb_config.check_lengths(_config(**overrides), tmp_path, gpu_trace=True)
        assert message in str(err.value)
    # the GPU trace's prompt counts only where the trace runs (a GPU)
    qb_config.check_lengths(_config(**cases[-1][0]), tmp_path, gpu_trace=False)


def test_a_sliding_stride_of_the_whole_context_is_refused():
    """A stride of context_length would leave the next window nothing before its first scored
    token (llama.cpp's and transformers' logits have no row for it)."""
    qb_config.check(_config(perplexity={"mode": "sliding", "context_length": 64, "stride": 63}))
    for stride in (64, 65):
        with pytest.raises(ConfigError, match=f"'perplexity.stride': {stride} is not below "
                                              "context_length 64"):
            qb_config.check(_config(perplexity={"mode": "sliding", "context_length": 64,
                                                "stride": stride}))


def test_traced_decode_steps_beyond_the_context_window_are_refused(tmp_path):
    cfg = _config(latency={"prompt_tokens": [200], "new_tokens": 16},
                  perplexity={"context_length": 64}, kernels={"steps": 64})
    qb_config.check_lengths(cfg, tmp_path, gpu_trace=False)  # no trace: nothing to refuse
    with pytest.raises(ConfigError) as err:
        qb_config.check_lengths(cfg, tmp_path, gpu_trace=False, kernels=True)
    assert ("config keys 'latency.prompt_tokens' + 'kernels.steps': 200 + 64 = 264 tokens "
            "exceed the context window of model r: 256 tokens") in str(err.value)


@pytest.mark.parametrize("enabled", ["auto", True, False])
def test_kernels_enabled_is_auto_true_or_false(enabled):
    assert _config(kernels={"enabled": enabled})["kernels"] == {
        "enabled": enabled, "steps": 8, "top": 15, "warmup_runs": 2, "point": {}}


def test_kernels_enabled_refuses_other_words():
    with pytest.raises(Exception, match="'yes' is not one of"):
        _config(kernels={"enabled": "yes"})


def test_context_window_is_read_from_the_model_folder_and_the_embedded_gguf(tmp_path):
    import json

    from gguf import GGUFReader

    from quantbench.inputs import embedded_gguf_path

    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"max_position_embeddings": 96}))
    local = {"source": "local", "path": str(folder)}
    assert qb_config.context_window("l", local, tmp_path) == (
        96, f"max_position_embeddings in {folder / 'config.json'}")
    cfg = _config(models={"l": local}, latency={"prompt_tokens": [80], "new_tokens": 17},
                  perplexity={"context_length": 64})
    with pytest.raises(ConfigError, match=r"80 \+ 17 = 97 tokens exceed the context window of "
                                          r"model l: 96 tokens"):
        qb_config.check_lengths(cfg, tmp_path, gpu_trace=False)
    # the embedded model, before it is prepared: its GGUF's metadata, as gguf's reader has it
    window, where = qb_config.context_window("e", {"source": "embedded"}, tmp_path)
    reader = GGUFReader(embedded_gguf_path())
    arch = reader.get_field("general.architecture").contents()
    assert window == reader.get_field(f"{arch}.context_length").contents()
    assert where == f"{arch}.context_length of {embedded_gguf_path().name}"
    # once prepared, the folder the jobs load says it
    prepared = tmp_path / "resources" / "models" / "e" / "hf"
    prepared.mkdir(parents=True)
    (prepared / "config.json").write_text(json.dumps({"max_position_embeddings": 128}))
    assert qb_config.context_window("e", {"source": "embedded"}, tmp_path)[0] == 128
    assert qb_config.context_window("h", {"source": "hub", "repo_id": "o/r"}, tmp_path) is None


def test_prompt_longer_than_the_tokenised_text_is_refused_before_any_job(tmp_path):
    import json

    cfg = _config(latency={"prompt_tokens": [32, 128]}, perplexity={"context_length": 64},
                  gpu_trace={"new_tokens": 8})
    cfg["gpu_trace"]["prompt_tokens"] = 128
    qb_config.check_lengths(cfg, tmp_path, gpu_trace=True)  # not tokenised yet: the job checks
    meta = tmp_path / "resources" / "models" / "r" / "tokens" / "britannica.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"n_tokens": 100}))
    with pytest.raises(ConfigError, match=r"config key 'latency.prompt_tokens': 128 tokens, but "
                                          r"the evaluation text is only 100 tokens long"):
        qb_config.check_lengths(cfg, tmp_path, gpu_trace=False)
    cfg["latency"]["prompt_tokens"] = [32]
    cfg["gpu_trace"]["prompt_tokens"] = 101  # within the window of 256, beyond the text
    qb_config.check_lengths(cfg, tmp_path, gpu_trace=False)
    with pytest.raises(ConfigError, match=r"config key 'gpu_trace.prompt_tokens': 101 tokens"):
        qb_config.check_lengths(cfg, tmp_path, gpu_trace=True)


def test_a_job_ends_a_quantbench_error_with_its_one_line(tmp_path):
    import subprocess
    import sys

    log = tmp_path / "job.log"
    for exc, expected in [("ConfigError(\"config key 'latency.prompt_tokens': too long\")",
                           "ConfigError: config key 'latency.prompt_tokens': too long"),
                          ("ValueError('a bug')", "ValueError: a bug")]:
        log.write_text("")
        script = ("from quantbench import logs\nfrom quantbench.errors import ConfigError\n"
                  f"logs.to_file({str(log)!r})\nraise {exc}\n")
        res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(SCHEMA.parents[2] / "src")})
        assert res.returncode == 1
        lines = log.read_text().splitlines()
        assert lines[-1] == expected
        # a bug keeps its stack; a bad setting is its message alone
        assert ("Traceback (most recent call last):" in lines) == exc.startswith("ValueError")


def test_the_old_profile_key_is_refused_naming_gpu_trace():
    cfg = {"models": {"r": dict(RANDOM)}, "precisions": ["fp32"], "profile": {"hz": 20}}
    with pytest.raises(ConfigError, match=r"config key 'profile' was renamed to 'gpu_trace'"):
        qb_config.check_keys(cfg, SCHEMA)
    cfg["gpu_trace"] = cfg.pop("profile")
    qb_config.check_keys(cfg, SCHEMA)
    validate(cfg, str(SCHEMA))
    assert cfg["gpu_trace"] == {"hz": 20, "prompt_tokens": 512, "new_tokens": 128, "repeats": 5,
                                "energy_s": 1.0, "idle_s": 2.0}


def test_the_traced_point_is_the_headline_unless_set_and_must_be_swept():
    """kernels.point: a key left out is the headline point's; a batch size or depth the sweep
    does not measure is refused before any job, naming the key."""
    from quantbench.config import check

    sweep = {"batch_sizes": [1, 4], "context_depths": [0, 64], "headline": {"batch_size": 4}}
    check(_config(latency=sweep, kernels={"point": {"context_depth": 64}}))
    check(_config(latency=sweep))
    with pytest.raises(ConfigError, match=r"'kernels.point': 16 is not in latency.batch_sizes "
                                          r"\[1, 4\]: the traced point must be a point of"):
        check(_config(latency=sweep, kernels={"point": {"batch_size": 16}}))
    with pytest.raises(ConfigError, match=r"'kernels.point': 128 is not in "
                                          r"latency.context_depths"):
        check(_config(latency=sweep, kernels={"point": {"context_depth": 128}}))
    # the headline's own error comes first, as before
    with pytest.raises(ConfigError, match=r"'latency.headline': 8 is not in"):
        check(_config(latency={**sweep, "headline": {"batch_size": 8}}))


def test_latency_points_cut_the_grid_to_the_pairs_named_and_refuse_one_outside_it():
    """latency.points keeps the named (batch, depth) pairs of the grid, at every prompt; a pair
    outside the grid, or a headline not among them, is refused before any job."""
    from quantbench.config import check
    from quantbench.points import OperatingPoint, sweep

    pairs = [{"batch_size": 1, "context_depth": 0}, {"batch_size": 4, "context_depth": 64}]
    assert sweep([16], [1, 4], [0, 64], pairs) == [OperatingPoint(1, 0, 16),
                                                  OperatingPoint(4, 64, 16)]
    assert len(sweep([16], [1, 4], [0, 64])) == 4
    grid = {"batch_sizes": [1, 4], "context_depths": [0, 64], "points": pairs}
    check(_config(latency=grid))
    with pytest.raises(ConfigError, match=r"'latency.points': .* is not in latency.batch_sizes"):
        check(_config(latency={**grid, "points": [{"batch_size": 16, "context_depth": 0}]}))
    with pytest.raises(ConfigError, match=r"'latency.headline': batch 4, depth 0 is not one of "
                                          r"latency.points"):
        check(_config(latency={**grid, "headline": {"batch_size": 4}}))


@pytest.mark.parametrize("path", sorted((SCHEMA.parents[2] / "config").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_shipped_config_passes_its_checks_and_the_schema(path):
    """Each config under config/ reads as a config file does, has no unknown key and passes the
    schema, so that its command fails on nothing but the machine it asks for."""
    import yaml

    qb_config.check_config_files([path])
    config = yaml.safe_load(path.read_text())
    qb_config.check_keys(config, SCHEMA)
    validate(config, str(SCHEMA))
