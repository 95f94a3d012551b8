"""A record's provenance describes the source tree that ran: its commit, whether it was
modified, and a hash of its source files (which also tells two copies without git apart)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from quantbench import records

REPO = Path(__file__).resolve().parents[1]


def _git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


def _project(root: Path) -> Path:
    (root / "src" / "quantbench").mkdir(parents=True)
    (root / "src" / "quantbench" / "core.py").write_text("X = 1\n")
    (root / "workflow" / "rules").mkdir(parents=True)
    (root / "workflow" / "rules" / "a.smk").write_text("rule a:\n    output: 'a'\n")
    (root / "Snakefile").write_text("include: 'workflow/rules/a.smk'\n")
    (root / "notes.txt").write_text("not source\n")
    (root / ".gitignore").write_text("__pycache__/\n")
    return root


def test_commit_and_dirty_flag_describe_the_tree_that_ran(tmp_path):
    tree = _project(tmp_path / "tree")
    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-q", "-m", "first")
    clean = records.source_provenance(tree)
    assert clean["git_commit"] == _git(tree, "rev-parse", "HEAD")
    assert clean["git_dirty"] is False
    # a compiled file (ignored) and a file outside the source leave it clean
    (tree / "src" / "quantbench" / "__pycache__").mkdir()
    (tree / "src" / "quantbench" / "__pycache__" / "core.pyc").write_bytes(b"\0")
    (tree / "notes.txt").write_text("edited\n")
    assert records.source_provenance(tree) == clean
    (tree / "workflow" / "rules" / "a.smk").write_text("rule a:\n    output: 'b'\n")
    modified = records.source_provenance(tree)
    assert modified["git_dirty"] is True and modified["git_commit"] == clean["git_commit"]
    assert modified["source_sha256"] != clean["source_sha256"]
    _git(tree, "checkout", "--", "workflow")
    (tree / "src" / "quantbench" / "new.py").write_text("")  # untracked source
    assert records.source_provenance(tree)["git_dirty"] is True


def test_copy_without_git_has_no_commit_and_a_content_hash(tmp_path):
    tree = _project(tmp_path / "tree")
    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-q", "-m", "first")
    # the copy lies inside another repository: that one's commit would describe another tree
    outer = tmp_path / "outer"
    outer.mkdir()
    _git(outer, "init", "-q")
    _git(outer, "commit", "-q", "--allow-empty", "-m", "outer")
    copy = outer / "copy"
    shutil.copytree(tree, copy, ignore=shutil.ignore_patterns(".git"))
    prov = records.source_provenance(copy)
    assert prov["git_commit"] is None and prov["git_dirty"] is None
    assert prov["source_sha256"] == records.source_provenance(tree)["source_sha256"]
    (copy / "src" / "quantbench" / "core.py").write_text("X = 2\n")
    assert records.source_provenance(copy)["source_sha256"] != prov["source_sha256"]


def test_records_describe_the_checkout_they_run_from():
    assert records.source_tree() == REPO
    prov = records.provenance()
    assert {k: prov[k] for k in ("git_commit", "git_dirty", "source_sha256")} == \
        records.source_provenance(REPO)
