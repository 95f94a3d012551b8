# Two commands on a fresh machine: `make run` (the default pipeline) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(VENV)/bin/snakemake
QUANTBENCH := $(VENV)/bin/quantbench
STAMP := $(VENV)/.quantbench-ready

.PHONY: setup run test lint bench-pipeline bench-dag rerun clean

setup: $(STAMP)

$(STAMP): pyproject.toml tools/setup-env.sh tools/llama-cmake-args.sh
	bash tools/setup-env.sh $(VENV)
	touch $@

run: setup
	$(SNAKEMAKE) --profile profiles/default

# Rerun one precision's or one model's jobs (and what depends on them):
#   make rerun PRECISION=gguf-q8_0 | MODEL=smollm2-135m | both  [CONFIG=my.yaml]
# Their measurements only, not the summary and report: add TARGET=gguf_q8_0 (a named target).
# (TARGET goes before --configfile, which would take it for a second config file.)
rerun: setup
	files=$$($(QUANTBENCH) targets $(if $(PRECISION),--precision $(PRECISION)) \
	  $(if $(MODEL),--model $(MODEL)) $(if $(CONFIG),--config $(CONFIG))) && \
	  $(SNAKEMAKE) --profile profiles/default $(TARGET) $(if $(CONFIG),--configfile $(CONFIG)) \
	  --forcerun $$files

test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(SNAKEMAKE) --lint

# Wall time of the default run (from nothing, in a new folder), of a no-op rerun, of a dry run.
bench-pipeline: setup
	$(QUANTBENCH) bench-pipeline

# DAG building time: a dry run of 3 models x 15 precisions.
bench-dag: setup
	$(QUANTBENCH) bench-dag

clean:
	rm -rf results logs benchmarks .snakemake
