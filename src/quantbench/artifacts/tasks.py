"""Two offline tasks derived from the evaluation text, as lm-evaluation-harness task folders.

They are made from the text's held-out part only (``quantbench.evaltext``: the characters no
perplexity window, KL-divergence window, ``tail`` calibration or latency prompt reads), by rules
of the characters alone: the same items for every model, and the same bytes on every run with
the same text, sizes and seed. They are not a published benchmark.

- ``qb_lastword``: last-word prediction with LAMBADA's protocol (lm-eval's ``lambada_openai``):
  a passage of whole sentences of one paragraph, 40 to 120 words, whose last word (letters only,
  three or more, not a function word) closes its last sentence; the final mark is dropped. The
  model scores ``" " + word`` given the words before it: ``acc`` (the greedy continuation is
  exactly the word) and ``perplexity``.
- ``qb_nextsentence``: four-way choice of the true next sentence (lm-eval's ``multiple_choice``,
  as HellaSwag): a context of whole sentences of one paragraph (15 to 100 words), its true next
  sentence in that paragraph, and three sentences of other paragraphs of the held-out part whose
  length is within half to twice the true one's, drawn with the seed; the true one's position
  among the four is drawn too. ``acc`` and ``acc_norm`` (log-likelihood per byte).

Within a task the items' passages are disjoint; each item keeps its character range in the text.
When the text allows more items than asked, the items are drawn with the seed (kept in text
order); when it allows fewer, all are kept and the manifest says so.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from quantbench.errors import DatasetError
from quantbench.evaltext import (
    DERIVED_TASKS,
    WORD_EDGES,
    letter_share,
    split_point,
    word_share,
)
from quantbench.records import atomic_write_text

LASTWORD_WORDS = (40, 120)  # words of a last-word passage, target included
CONTEXT_WORDS = (15, 100)  # words of a next-sentence context
NEXT_WORDS = (6, 60)  # words of a choice
MIN_WORD_SHARE = 0.8  # a passage of prose (quantbench.evaltext.word_share) ...
MIN_LETTER_SHARE = 0.85  # ... and not a list of names, dates and references (letter_share)
NOTE = ("Derived from the evaluation text by quantbench (its held-out part, disjoint from the "
        "perplexity windows); not a published benchmark.")
# words a sentence rarely ends on that say nothing of the context
FUNCTION_WORDS = frozenset(
    ["the", "of", "and", "to", "in", "a", "an", "is", "that", "was", "his", "he", "it", "with",
     "as", "for", "by", "on", "be", "at", "this", "which", "from", "but", "not", "had", "or",
     "are", "have", "were", "their", "they", "its", "been", "has", "her", "she", "him", "would",
     "who", "all", "one", "so", "no", "there", "them", "these", "those", "than", "then"]
)
# a word before a full stop that does not end a sentence
ABBREVIATIONS = frozenset(
    ["mr", "mrs", "dr", "st", "rev", "bp", "vol", "vols", "ed", "eds", "cf", "viz", "no", "pp",
     "p", "c", "ca", "fol", "esq", "jr", "sr", "ch", "chap", "sc", "ll", "l", "sig", "mss", "ms"]
)
SENTENCE_END = re.compile(r"[.!?][\"')\]”’]*(?=\s+[\"'(\[“‘]*[A-Z])")
ROMAN = re.compile(r"[IVXLC]{2,}")


@dataclass(frozen=True)
class Span:
    start: int  # characters of the text: text[start:end]
    end: int

    def words(self, text: str) -> list[str]:
        return text[self.start:self.end].split()


def paragraphs(text: str, start: int) -> list[Span]:
    """The blocks of ``text[start:]`` between blank lines."""
    out, pos = [], start
    for block in re.split(r"(\n[ \t]*\n)", text[start:]):
        if block.strip() and not re.fullmatch(r"\n[ \t]*\n", block):
            lead = len(block) - len(block.lstrip())
            out.append(Span(pos + lead, pos + len(block.rstrip())))
        pos += len(block)
    return out


def sentences(text: str, para: Span) -> list[Span]:
    """The sentences of one paragraph: a full stop, question or exclamation mark (and closing
    quotes or brackets) before a capital, unless the word it ends is an initial, an
    abbreviation or a Roman numeral."""
    out, first = [], para.start
    body = text[para.start:para.end]
    for m in SENTENCE_END.finditer(body):
        word = body[:m.start()].rsplit(None, 1)[-1] if body[:m.start()].strip() else ""
        bare = word.strip(WORD_EDGES)
        if body[m.start()] == "." and (len(bare) <= 1 or "." in bare or ROMAN.fullmatch(bare)
                                       or bare.lower() in ABBREVIATIONS):
            continue
        out.append(Span(first, para.start + m.end()))
        first = para.start + m.end() + (len(body[m.end():]) - len(body[m.end():].lstrip()))
    if first < para.end:
        out.append(Span(first, para.end))
    return out


def flat(text: str, start: int, end: int) -> str:
    """The characters as one line, single spaces (LAMBADA's split on ' ' needs them)."""
    return " ".join(text[start:end].split())


def is_prose(text: str, start: int, end: int) -> bool:
    return (word_share(text[start:end]) >= MIN_WORD_SHARE
            and letter_share(text[start:end]) >= MIN_LETTER_SHARE)


def lastword_target(text: str, sentence: Span) -> str | None:
    """The word that closes a sentence plainly (``word.``), when it may be a target."""
    m = re.search(r"(?<!\S)([A-Za-z]{3,})[.!?]$", text[sentence.start:sentence.end])
    if m is None or m.group(1).lower() in FUNCTION_WORDS:
        return None
    return m.group(1)


def lastword_candidates(text: str, paras: list[Span]) -> list[dict]:
    lo, hi = LASTWORD_WORDS
    found = []
    for para in paras:
        sents = sentences(text, para)
        i = 0
        while i < len(sents):
            for j in range(i, len(sents)):
                n = sum(len(s.words(text)) for s in sents[i:j + 1])
                if n > hi:
                    i += 1  # too long from here: start one sentence later
                    break
                target = lastword_target(text, sents[j])
                if n >= lo and target and is_prose(text, sents[i].start, sents[j].end):
                    end = sents[j].end - 1  # the final mark dropped
                    found.append({"text": flat(text, sents[i].start, end),
                                  "chars": [sents[i].start, end]})
                    i = j + 1
                    break
            else:
                break
    return found


def nextsentence_candidates(text: str, paras: list[Span]) -> tuple[list[dict], list[tuple]]:
    """Items without their distractors, and the pool of sentences (paragraph, span) to draw
    these from."""
    lo, hi = CONTEXT_WORDS
    found, pool = [], []
    for k, para in enumerate(paras):
        sents = sentences(text, para)
        pool += [(k, s) for s in sents if NEXT_WORDS[0] <= len(s.words(text)) <= NEXT_WORDS[1]
                 and is_prose(text, s.start, s.end)]
        i = 0
        while i < len(sents) - 1:
            for j in range(i, len(sents) - 1):
                n = sum(len(s.words(text)) for s in sents[i:j + 1])
                nxt = sents[j + 1]
                if n > hi:
                    i += 1
                    break
                if (n >= lo and NEXT_WORDS[0] <= len(nxt.words(text)) <= NEXT_WORDS[1]
                        and is_prose(text, sents[i].start, nxt.end)):
                    found.append({"context": flat(text, sents[i].start, sents[j].end),
                                  "true": nxt, "paragraph": k,
                                  "chars": [sents[i].start, nxt.end]})
                    i = j + 2
                    break
            else:
                break
    return found, pool


def add_choices(text: str, items: list[dict], pool: list[tuple], rng: random.Random) -> None:
    for item in items:
        true = item.pop("true")
        size = true.end - true.start
        others = [s for k, s in pool if k != item["paragraph"]
                  and size / 2 <= s.end - s.start <= size * 2
                  and flat(text, s.start, s.end) != flat(text, true.start, true.end)]
        if len(others) < 3:
            raise DatasetError("the held-out text has too few sentences to draw three wrong "
                               "choices from other paragraphs")
        wrong = rng.sample(others, 3)
        label = rng.randrange(4)
        spans = wrong[:label] + [true] + wrong[label:]
        item.update(choices=[flat(text, s.start, s.end) for s in spans], label=label,
                    choice_chars=[[s.start, s.end] for s in spans])
        del item["paragraph"]


def draw(items: list[dict], n: int, rng: random.Random) -> list[dict]:
    """``n`` of the items (all when 0 or fewer are found), in text order."""
    if not n or n >= len(items):
        return list(items)
    keep = sorted(rng.sample(range(len(items)), n))
    return [items[i] for i in keep]


def task_yaml(task: str, items_path: Path, *, seed: int) -> dict:
    """The lm-eval task config: LAMBADA's protocol or a four-way multiple choice."""
    head = {"task": task, "tag": ["quantbench_derived"], "dataset_path": "json",
            "dataset_name": None,
            # relative to the YAML's folder, where the accuracy stage runs each task
            "dataset_kwargs": {"data_files": {"test": items_path.name}},
            "test_split": "test"}
    if task == "qb_lastword":
        body = {"output_type": "loglikelihood",
                "doc_to_text": "{{text.split(' ')[:-1]|join(' ')}}",
                "doc_to_target": "{{' '+text.split(' ')[-1]}}",
                "metric_list": [
                    {"metric": "perplexity", "aggregation": "perplexity",
                     "higher_is_better": False},
                    {"metric": "acc", "aggregation": "mean", "higher_is_better": True}]}
    else:
        body = {"output_type": "multiple_choice", "doc_to_text": "{{context}}",
                "doc_to_choice": "choices", "doc_to_target": "label",
                "metric_list": [
                    {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                    {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}]}
    # metadata, not description: lm-eval prepends a task's description to every prompt
    meta = {"version": 1.0, "derived_from_evaluation_text": True, "published_benchmark": False,
            "note": NOTE, "seed": seed}
    return {**head, **body, "metadata": meta}


def make_tasks(text_path, out_dir, *, dataset: str, held_out_share: float,
               lastword_items: int, choice_items: int, seed: int) -> dict:
    """Write ``out_dir/<task>/{<task>.yaml, items.jsonl}`` for both tasks and
    ``out_dir/manifest.json``; return the manifest."""
    import yaml

    text = Path(text_path).read_text(encoding="utf-8")
    start = split_point(text, held_out_share)
    paras = paragraphs(text, start)
    lastword = draw(lastword_candidates(text, paras), lastword_items,
                    random.Random(f"qb_lastword-{seed}"))
    found, pool = nextsentence_candidates(text, paras)
    rng = random.Random(f"qb_nextsentence-{seed}")
    choice = draw(found, choice_items, rng)
    add_choices(text, choice, pool, rng)
    made = {"qb_lastword": (lastword, lastword_items, len(lastword_candidates(text, paras))),
            "qb_nextsentence": (choice, choice_items, len(found))}
    manifest = {"dataset": dataset, "text": str(text_path),
                "text_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "held_out_share": held_out_share, "held_out_chars": [start, len(text)],
                "seed": seed, "note": NOTE, "tasks": {}}
    for task in DERIVED_TASKS:
        items, asked, available = made[task]
        if not items:
            raise DatasetError(
                f"the held-out part of {text_path} (characters {start} to {len(text)}, "
                f"tasks_data.held_out_share {held_out_share}) gives no item of {task}"
            )
        folder = Path(out_dir) / task
        folder.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"id": f"{task}-{i:04d}", **item}, ensure_ascii=False)
                 for i, item in enumerate(items)]
        atomic_write_text(folder / "items.jsonl", "\n".join(lines) + "\n")
        config = task_yaml(task, folder / "items.jsonl", seed=seed)
        atomic_write_text(folder / f"{task}.yaml", f"# {NOTE}\n"
                          + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        manifest["tasks"][task] = {
            "items": len(items), "requested": asked, "available": available,
            "chars": [min(it["chars"][0] for it in items), max(it["chars"][1] for it in items)],
            "yaml": str(folder / f"{task}.yaml"), "items_file": str(folder / "items.jsonl")}
    atomic_write_text(Path(out_dir) / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest
