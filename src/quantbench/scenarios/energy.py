"""Energy per phase from the card's energy counter: the prefill's and the decode steps' apart.

NVML's total-energy counter (mJ since the driver loaded) counts every joule but moves in steps:
on an H100 and an H200 (driver 580) once every 100 ms, and one read takes about a millisecond.
A window shorter than a step reads 0 J or a whole step, so no figure is read around one run's
decode steps (16 steps of a small model take a few milliseconds). Instead, after the timed runs
(which never see the counter), two windows of at least ``min_s`` seconds each:

- runs: whole runs (a prefill, then the decode steps) back to back, until their decode steps add
  up to ``min_s`` (and there are at least ``min_runs``);
- prefills: the prefill alone, back to back, as many times as there were runs and until they
  add up to ``min_s``.

One prefill's energy is the prefills window's over its prefills; one run's decode steps' is the
runs window's less one prefill's for each run. The counter is read only at a window's two ends,
so a window's energy is off by at most one step of the counter's (100 ms of the card's draw):
over a second of decode steps the decode energy is off by about 20 % at worst and a few per cent
typically; a longer ``min_s`` narrows it. ``idle`` reads the card's draw with nothing running
over a window of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Window:
    """A stretch of back-to-back work between two readings of the counter."""

    name: str
    start: float  # time.perf_counter
    end: float
    count: int  # runs or prefills
    busy_s: float  # the phase's own time in it: the runs' decode steps, the prefills
    energy_j: float | None  # the counter's difference; None: no counter, or it did not move

    @property
    def s(self) -> float:
        return self.end - self.start


def window(read_mj: Callable[[], float | None], name: str, step: Callable[[], float],
           enough: Callable[[int, float], bool]) -> Window:
    """Run ``step`` (it returns the seconds of its phase) until ``enough(count, busy_s)``, the
    counter read before the first and after the last."""
    e0, t0 = read_mj(), time.perf_counter()
    count, busy = 0, 0.0
    while True:
        busy += step()
        count += 1
        if enough(count, busy):
            break
    e1, t1 = read_mj(), time.perf_counter()
    moved = e0 is not None and e1 is not None and e1 > e0
    return Window(name, t0, t1, count, busy, (e1 - e0) / 1e3 if moved else None)


def phase_windows(read_mj: Callable[[], float | None], *, run: Callable[[], float],
                  prefill: Callable[[], float], min_s: float, min_runs: int = 1
                  ) -> tuple[Window, Window]:
    """The runs window (``run`` returns a run's decode-step seconds) and the prefills window
    (``prefill`` returns a prefill's seconds), as the module says."""
    runs = window(read_mj, "generate", run, lambda n, s: n >= min_runs and s >= min_s)
    prefills = window(read_mj, "prefill", prefill, lambda n, s: n >= runs.count and s >= min_s)
    return runs, prefills


def idle(read_mj: Callable[[], float | None], seconds: float) -> Window:
    """The card with nothing running for ``seconds``: its draw is the window's energy over its
    length."""

    def rest() -> float:
        time.sleep(seconds)
        return seconds

    return window(read_mj, "idle", rest, lambda n, s: True)


@dataclass(frozen=True)
class PhaseEnergy:
    """One prefill's and one run's decode steps' energy (J, the whole batch's) and time (s);
    an energy is None where the counter gave none, or the decode's came out at 0 J or less."""

    prefill_j: float | None
    decode_j: float | None
    prefill_s: float
    decode_s: float

    @classmethod
    def split(cls, runs: Window, prefills: Window) -> PhaseEnergy:
        prefill = None if prefills.energy_j is None else prefills.energy_j / prefills.count
        decode = (None if prefill is None or runs.energy_j is None
                  else runs.energy_j / runs.count - prefill)
        return cls(prefill, decode if decode is not None and decode > 0 else None,
                   prefills.busy_s / prefills.count, runs.busy_s / runs.count)

    def per_token(self, batch_size: int, prompt_tokens: int, new_tokens: int
                  ) -> dict[str, float | None]:
        """J per prompt token of the batch (prefill) and J per decoded token (decode)."""
        return {"prefill_j_per_tok": _per(self.prefill_j, batch_size * prompt_tokens),
                "decode_j_per_tok": _per(self.decode_j, batch_size * new_tokens)}


def _per(joules: float | None, tokens: int) -> float | None:
    return None if joules is None or not tokens else joules / tokens
