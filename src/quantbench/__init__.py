"""quantbench: one model, many precisions, one measurement harness.

This package must stay light to import: the Snakefile imports it while building the DAG,
so nothing here imports torch, transformers or llama_cpp at module level.
"""

__version__ = "0.1.0"
