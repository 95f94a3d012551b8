"""The ``quantbench`` command: the user tools around the pipeline, one subcommand each.

    quantbench COMMAND [ARGS ...]        (quantbench COMMAND --help for its options)

The pipeline itself runs with Snakemake (``make run``); these commands compare, rerun, render and
check it. This module only parses the command's name and hands the rest to the module that does
the work, imported only then: ``quantbench --help`` imports neither torch nor llama_cpp.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name: (module, function, one line of help)
COMMANDS = {
    "compare": ("quantbench.tools.compare", "main",
                "compare several runs' results folders in one markdown report"),
    "targets": ("quantbench.targets", "main",
                "print one precision's and/or one model's records, for snakemake --forcerun"),
    "render": ("quantbench.tools.render", "main",
               "aggregate, plot and report again from a finished results folder"),
    "fidelity": ("quantbench.tools.fidelity", "main",
                 "quantbench's llama.cpp path against llama.cpp's own tools, same GGUF files"),
    "repeatability": ("quantbench.tools.repeatability", "main",
                      "run-to-run spread: one precision's latency in N fresh processes"),
    "bench-pipeline": ("quantbench.tools.benchmarks", "pipeline_main",
                       "wall time of the default pipeline, a no-op rerun and a dry run"),
    "bench-dag": ("quantbench.tools.benchmarks", "dag_main",
                  "DAG building time: a dry run of M models x P precisions"),
}


def parser() -> argparse.ArgumentParser:
    listing = "\n".join(f"  {name:<16}{help_}" for name, (_, _, help_) in COMMANDS.items())
    ap = argparse.ArgumentParser(prog="quantbench", description=__doc__.splitlines()[0],
                                 epilog="commands:\n" + listing,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=list(COMMANDS), metavar="COMMAND")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="the command's arguments")
    return ap


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(sys.argv[1:] if argv is None else argv)
    module, function, _ = COMMANDS[a.command]
    return getattr(importlib.import_module(module), function)(a.args) or 0


if __name__ == "__main__":
    sys.exit(main())
