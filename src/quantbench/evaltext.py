"""The evaluation text's two parts, and what makes a text usable as one.

The text (``resources/datasets/<dataset>.txt``) is split once, by a rule of its characters
alone, into a **scored part** and a **held-out part**:

- the scored part is what is tokenised (``resources/models/<model>/tokens/<dataset>.npy``):
  every perplexity and KL-divergence window, in every mode and with any ``max_windows``, the
  ``tail`` calibration of the importance matrices and the latency prompts read it and nothing
  else;
- the held-out part is the text from the first non-empty line that starts at or after
  ``(1 - held_out_share)`` of the characters; the tasks derived from the text
  (``quantbench.artifacts.tasks``) read it and nothing else.

The rule needs no tokenizer, so the tasks are the same for every model and share no character
with any window. A text whose last line starts before the point holds nothing out.

Kept light: the config check (building the DAG) reads a dataset file through this module.
"""

from __future__ import annotations

import re
from pathlib import Path

# the fewest characters (stripped) an evaluation text may have
MIN_TEXT_CHARS = 200
# a word: letters, with inner apostrophes or hyphens, capitalised or lower case
WORD = re.compile(r"[A-Za-z][a-z]*(?:['’-][A-Za-z][a-z]*)*")
# what may stand around a word: punctuation, quotes, brackets, emphasis
WORD_EDGES = ".,;:!?\"'()[]“”‘’*"


def word_share(text: str) -> float:
    """The share of the whitespace-separated pieces of ``text`` that are words once their
    punctuation is stripped: about 0.9 in prose, under 0.8 in tables, lists of references
    and OCR of plates (0 for a text without pieces)."""
    pieces = text.split()
    if not pieces:
        return 0.0
    return sum(bool(WORD.fullmatch(p.strip(WORD_EDGES))) for p in pieces) / len(pieces)


def letter_share(text: str) -> float:
    """The share of the non-space characters of ``text`` that are letters (about 0.9 in prose,
    lower in lists of dates, initials and page references)."""
    chars = [c for c in text if not c.isspace()]
    return sum(c.isalpha() for c in chars) / len(chars) if chars else 0.0


def split_point(text: str, held_out_share: float) -> int:
    """The first character of the held-out part (``len(text)`` when nothing is held out)."""
    if not held_out_share:
        return len(text)
    target = round(len(text) * (1 - held_out_share))
    for match in re.finditer(r"^[^\n]*\S", text, flags=re.M):  # non-empty lines, in order
        if match.start() >= target:
            return match.start()
    return len(text)


def scored_part(text: str, held_out_share: float) -> str:
    return text[:split_point(text, held_out_share)]


def text_file_problem(path: str | Path) -> str | None:
    """Why the file at ``path`` cannot be an evaluation text, or None."""
    p = Path(path)
    if not p.is_file():
        return f"file {str(path)!r} does not exist"
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return f"file {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start})"
    n = len(text.strip())
    if n < MIN_TEXT_CHARS:
        what = "is empty" if n == 0 else f"is too short ({n} characters)"
        return f"file {str(path)!r} {what}: an evaluation text needs {MIN_TEXT_CHARS} at least"
    return None


# the tasks derived from the held-out part (quantbench.artifacts.tasks), in this order
DERIVED_TASKS = ("qb_lastword", "qb_nextsentence")


def derived_task_folders(dataset: str, root: str = "resources/tasks") -> dict[str, str]:
    """Each derived task's folder (made by rule make_tasks): what ``tasks:`` names it by."""
    return {task: f"{root}/{dataset}/{task}" for task in DERIVED_TASKS}


def derived_task_files(dataset: str, root: str = "resources/tasks") -> dict[str, str]:
    """The files rule make_tasks writes: each task's YAML and items, and the manifest."""
    files = {"manifest": f"{root}/{dataset}/manifest.json"}
    for task in DERIVED_TASKS:
        files[f"{task}_yaml"] = f"{root}/{dataset}/{task}/{task}.yaml"
        files[f"{task}_items"] = f"{root}/{dataset}/{task}/items.jsonl"
    return files
