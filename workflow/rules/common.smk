import os
import re

from snakemake.exceptions import WorkflowError

from quantbench import config as qb_config
from quantbench import evaltext as qb_evaltext
from quantbench import evaltasks as qb_evaltasks
from quantbench import figures as qb_figures
from quantbench import inputs as qb_inputs
from quantbench import kvcache as qb_kvcache
from quantbench import locks as qb_locks
from quantbench import outcome as qb_outcome
from quantbench import points as qb_points
from quantbench import precisions as qb_precisions
from quantbench import runs as qb_runs
from quantbench import targets as qb_targets
from quantbench.inputs import dataset_id
from quantbench.device import resolve_threads

qb_config.check(config)
qb_config.check_output_folders(Path.cwd())
# device: cuda needs a GPU here only where the jobs run here: the main process of a local run
# (a cluster run sends its jobs with --jobs, and each job checks the node it lands on)
if workflow.is_main_process and workflow.resource_settings.nodes is None:
    qb_config.check_device(config)
qb_locks.clear_stale_locks(Path.cwd(), main_process=workflow.is_main_process)
# this invocation's run id, which every record it makes keeps (quantbench.runs): new in the main
# process, the one it was sent with in a job's own process (a cluster job reads this file again)
qb_runs.start(main_process=workflow.is_main_process)


envvars:
    qb_runs.RUN_ID_VARIABLE,


MODELS = list(config["models"])
PRECISIONS = list(config["precisions"])
TABLE = qb_precisions.table()
DATASET = dataset_id(config["dataset"])
REFERENCE = qb_config.reference_precision(config)
CONVERT_TYPES = [
    p.settings["gguf_type"] for p in TABLE.values() if p.settings.get("made_by") == "convert"
]
QUANT_TYPES = [
    p.settings["gguf_type"].lower()
    for p in TABLE.values()
    if p.settings.get("made_by") == "quantize"
]
# the calibrations whose importance matrices the precisions run are quantized with
CALIBRATIONS = sorted(
    {qb_config.calibration_of(config, p) for p in PRECISIONS if TABLE[p].engine.imatrix} - {None}
)
# the ONNX types quantised from the fp32 export, with the quantiser's settings
ONNX_QUANT_SETTINGS = {
    p.settings["onnx_type"]: {k: v for k, v in p.settings.items() if k == "block_size"}
    for p in TABLE.values()
    if "onnx_type" in p.settings and p.quantized
}
HAS_GPU = qb_targets.uses_gpu(config["device"])
# the precisions whose decode gets a kernel trace (config kernels.enabled; none when off)
TRACED = qb_targets.traced_precisions(config, TABLE, HAS_GPU)
# the point the kernel traces are taken at (config kernels.point; default the headline point)
TRACED_POINT = qb_points.headline(
    config["latency"]["prompt_tokens"],
    {**(config["latency"].get("headline") or {}), **(config["kernels"].get("point") or {})},
)
# prompts against each model's context window and the tokenised text (where already known)
qb_config.check_lengths(config, Path.cwd(), gpu_trace=HAS_GPU, kernels=bool(TRACED))
# The summary's figures (quantbench.figures; each has a caption in workflow/report/) and one
# NVML time series per model and precision: those that have data are drawn (rule plot_results).
FIGURES = list(qb_figures.SUMMARY_FIGURES)
NVML_FIGURES = [qb_figures.timeseries_name(m, p) for m in MODELS for p in PRECISIONS]
# the config files of this run, as the report's "Reproduce" section should name them
CONFIGFILES = [
    (
        os.path.relpath(Path(f).resolve(), workflow.basedir)
        if Path(f).resolve().is_relative_to(workflow.basedir)
        else str(f)
    )
    for f in (workflow.overwrite_configfiles or ["config/config.yaml"])
]


wildcard_constraints:
    model="|".join(map(re.escape, MODELS)),
    precision="|".join(map(re.escape, PRECISIONS)),
    outtype="|".join(CONVERT_TYPES),
    qtype="|".join(QUANT_TYPES),
    calibration="|".join(map(re.escape, CALIBRATIONS)) or "(?!)",
    onnx_qtype="|".join(ONNX_QUANT_SETTINGS),


def model_dir(model):
    return f"resources/models/{model}/hf"


def get_model_artifact(wildcards):
    """The file or folder a precision loads: the HF folder, its GGUF or its ONNX folder."""
    precision = qb_precisions.get(
        wildcards.precision, config["precision_settings"].get(wildcards.precision)
    )
    return f"resources/models/{wildcards.model}/{precision.engine.artifact(precision.settings)}"


def get_calibration_files(wildcards):
    """A `file` calibration's text: editing it reruns its importance matrix."""
    spec = config["imatrix"]["calibrations"][wildcards.calibration]
    return [spec["path"]] if spec["source"] == "file" else []


def get_tokenizer_text(wildcards):
    """Random-weights models train their tokenizer on the evaluation text."""
    if config["models"][wildcards.model]["source"] == "random":
        return f"resources/datasets/{DATASET}.txt"
    return []


def get_model_files(wildcards):
    """A local model folder's files: editing one reruns the model and what was made from it."""
    return qb_inputs.model_files(config["models"][wildcards.model])


def get_dataset_files(wildcards):
    """A `file` dataset's text: editing it reruns its tokens and every quality measurement."""
    return qb_inputs.dataset_files(config["dataset"])


def get_converter_files(wildcards):
    """A local converter source's files (none when it comes from the registry)."""
    return qb_inputs.converter_files(config["converter"]["source"])


def get_conda_env(wildcards):
    """The toolchain environment of the precision's backend."""
    engine = TABLE[wildcards.precision].engine
    return str(Path(workflow.basedir) / "envs" / f"{engine.env}.yaml")


def imatrix_pairs():
    """Each importance-matrix precision run with its plain twin (quantbench.precisions.pairs),
    for every model whose quality is measured."""
    found = qb_precisions.pairs(PRECISIONS, TABLE, lambda p: qb_config.calibration_of(config, p))
    out = []
    for model in MODELS:
        if config["models"][model]["source"] == "random":
            continue
        for imat, plain, cal in found:
            stem = qb_inputs.gguf_stem(TABLE[imat].settings["gguf_type"], cal)
            out.append(
                {
                    "model": model,
                    "precision": imat,
                    "plain": plain,
                    "calibration": cal,
                    "gguf_type": TABLE[imat].settings["gguf_type"],
                    "imat_npz": f"results/{model}/logprobs/{imat}.npz",
                    "plain_npz": f"results/{model}/logprobs/{plain}.npz",
                    "imat_info": f"resources/models/{model}/gguf/{stem}.json",
                    "plain_info": f"resources/models/{model}/gguf/"
                    f"{TABLE[plain].settings['gguf_type'].lower()}.json",
                    "split": f"resources/models/{model}/imatrix/{cal}.split.json",
                }
            )
    return out


def get_reference_logprobs(wildcards):
    """Non-reference precisions are compared with the reference's stored log-probabilities."""
    if wildcards.precision == REFERENCE:
        return []
    return f"results/{wildcards.model}/logprobs/{REFERENCE}.npz"


def get_kv_reference_logprobs(wildcards):
    """A precision with a quantized KV cache is also compared with the same weights with an
    f16 KV cache, where that precision runs."""
    twin = qb_precisions.f16_twin(wildcards.precision, PRECISIONS)
    return f"results/{wildcards.model}/logprobs/{twin}.npz" if twin else []


def get_precision_overrides(wildcards):
    return config["precision_settings"].get(wildcards.precision, {})


def get_time_limit(wildcards, resources):
    """Seconds a measuring job may run before it records a timeout: its runtime resource
    (minutes), less a tenth so that the job stops itself before a cluster kills it."""
    runtime = getattr(resources, "runtime", None)
    return runtime * 60 * 0.9 if isinstance(runtime, (int, float)) and runtime > 0 else None


def needs_gpu(wildcards):
    return int(HAS_GPU and config["device"] != "cpu")


# The threads a measuring job runs with: config `threads`, 0 meaning every core this process may
# use. A job reads the threads Snakemake granted it (never more than --cores).
MEASURE_THREADS = resolve_threads(config["threads"])


def get_timed_threads(wildcards):
    """Threads a timed job reserves. On the CPU of this machine it reserves every core Snakemake
    may use (--cores), so that no other job runs while it measures; it measures with
    MEASURE_THREADS of them. On a GPU (the GPU slots keep GPU jobs apart) and where each job gets
    an allocation of its own (a cluster: --cpus-per-task, and --exclusive in profiles/slurm) it
    reserves the threads it measures with."""
    if needs_gpu(wildcards) or not workflow.local_exec or workflow.remote_exec:
        return MEASURE_THREADS
    try:
        return max(workflow.cores, MEASURE_THREADS)
    except WorkflowError:  # no --cores (e.g. --summary, --lint): nothing is scheduled
        return MEASURE_THREADS


def random_on_gpu(wildcards):
    """1 when a random-weights model is made on this run's GPU (it holds a card meanwhile)."""
    return needs_gpu(wildcards) * int(config["models"][wildcards.model]["source"] == "random")


def quality_applicable(wildcards):
    return config["models"][wildcards.model]["source"] != "random"


def measuring_params(protocol):
    """The params of every measuring job (read by quantbench.scenarios.jobs.run_job), one set for all of
    them; protocol is the config section of what is measured, then the precision's settings
    overrides, the time limit, device and threads."""
    return dict(
        protocol=protocol,
        overrides=get_precision_overrides,
        time_limit_s=get_time_limit,
        device=config["device"],
        threads=MEASURE_THREADS,
    )


def results_of(kind):
    return expand(
        f"results/{{model}}/{kind}/{{precision}}.json", model=MODELS, precision=PRECISIONS
    )


def traces():
    """The kernel trace records of the traced precisions (none when the stage is off)."""
    return expand("results/{model}/kernels/{precision}.json", model=MODELS, precision=TRACED)


# The accuracy stage's tasks (config tasks:), found and checked before any job: a task that
# cannot be had offline is refused here (quantbench.evaltasks). None when the stage is off.
ACCURACY = qb_targets.evaluates_tasks(config)
# the tasks derived from the evaluation text (made by make_tasks), named by their names
DERIVED_TASKS = qb_evaltext.derived_task_folders(DATASET)
TASK_SOURCES = (
    qb_evaltasks.resolve(config["tasks"], Path.cwd(), DERIVED_TASKS) if ACCURACY else []
)


def get_task_folders(wildcards):
    """The files of the configured local task folders (their YAML and data): editing one
    reruns every precision's accuracy. Registry tasks have no file here (their dataset is in
    the Hugging Face cache, checked above)."""
    return [f for source in TASK_SOURCES for f in source.files]


def accuracy_records():
    return results_of(qb_targets.ACCURACY) if ACCURACY else []


def accuracy_items():
    """The items beside each accuracy record (the paired statistics read them)."""
    return [path.removesuffix(".json") + ".items.jsonl" for path in accuracy_records()]


RECORDS = (
    [path for kind in qb_targets.KINDS for path in results_of(kind)] + traces() + accuracy_records()
)


def figure_captions():
    """Each figure's caption for Snakemake's report, by file stem: its
    workflow/report/<name>.rst, the NVML time series' shared one for each of those. The
    captions name the reference as Snakemake's own would; workflow/report/figure.rst inserts
    them as text, so it is filled in here."""
    folder = Path(workflow.basedir) / "workflow" / "report"

    def caption(name):
        text = (folder / f"{name}.rst").read_text()
        return text.replace("{{ snakemake.params.reference }}", str(REFERENCE))

    series = caption("nvml_timeseries")
    return {
        **{name: caption(name) for name in FIGURES},
        **{name: series for name in NVML_FIGURES},
    }


def figure_category(wildcards):
    """The section of Snakemake's report that shows a figure of rule plot_results."""
    if wildcards.name.startswith(qb_figures.TIMESERIES_PREFIX):
        return "GPU over time (NVML)"
    return "Figures"
