"""Energy per phase (quantbench.scenarios.energy) on a made-up card: its energy counter moves in
steps, as a real one does (every 100 ms on an H100 and an H200; here every 10 ms, the runs ten
times shorter), and its draw is known in each phase."""

import math
from dataclasses import replace
from types import SimpleNamespace

import pytest

from quantbench.backends import base
from quantbench.backends.base import BackendBase
from quantbench.points import OperatingPoint, phase_power_w, power_check
from quantbench.scenarios import energy, latency
from quantbench.scenarios.energy import PhaseEnergy, Window, idle, phase_windows
from quantbench.scenarios.latency import measure_point, point_figures, timed_run

LIMIT_W = 700.0


class Card:
    """A card drawing ``idle_w`` plus what the work adds while it runs, whose energy counter
    (mJ) moves once every ``step_s``, on a clock of its own: work advances it by exactly its
    length, so nothing here depends on how fast this machine is (``clocked`` puts the modules
    that time the work on it)."""

    def __init__(self, idle_w: float = 70.0, step_s: float = 0.01):
        self.idle_w, self.step_s, self.now, self.t0 = idle_w, step_s, 1000.0, 1000.0
        self.spans: list[tuple[float, float, float]] = []  # start, end, watts

    def clock(self) -> float:
        return self.now

    def work(self, seconds: float, watts: float) -> None:
        self.spans.append((self.now, self.now + seconds, watts))
        self.now += seconds

    def energy_mj(self) -> float:
        seen = self.t0 + math.floor((self.now - self.t0) / self.step_s) * self.step_s
        joules = self.idle_w * (seen - self.t0) + sum(
            (w - self.idle_w) * max(0.0, min(end, seen) - start) for start, end, w in self.spans)
        return joules * 1e3

    def clocked(self, monkeypatch, *modules) -> None:
        fake = SimpleNamespace(perf_counter=self.clock, monotonic=self.clock,
                               sleep=lambda s: self.work(s, self.idle_w))
        for module in modules:
            monkeypatch.setattr(module, "time", fake)


class Backend(BackendBase):
    """Runs nothing but the card: a prefill of the batch takes ``prefill_s`` at
    ``prefill_w``, a decode step ``step_s`` at ``decode_w`` (decode runs: the base's, a step at
    a time on the card's clock)."""

    def __init__(self, card: Card, *, prefill_s: float, prefill_w: float, step_s: float,
                 decode_w: float):
        self.card, self.prefill_s, self.prefill_w = card, prefill_s, prefill_w
        self.step_s, self.decode_w = step_s, decode_w

    def sync(self):
        pass

    def prefill(self, prompt):
        self.card.work(self.prefill_s, self.prefill_w)
        return 0

    def prefill_batch(self, prompt):
        return [self.prefill(prompt)] * BATCH

    def decode(self, token):
        self.card.work(self.step_s, self.decode_w)
        return token

    def decode_batch(self, tokens):
        self.decode(tokens[0])  # one step of the whole batch
        return tokens


# 8B gguf-q8_0 at batch 64, depth 512 on the H200 sweep, ten times shorter: a prefill of the
# batch as long as two of its runs' decode steps, at the card's higher draw
BATCH, PROMPT, NEW = 64, [1] * 512, 16
SHAPE = dict(prefill_s=0.03, prefill_w=650.0, step_s=0.002, decode_w=450.0)


def test_no_point_draws_more_than_the_cards_power_limit_with_energy_per_phase(monkeypatch):
    """J/token x tok/s is the phase's mean power. The timed runs' energy over the decoded tokens
    (what a point gave before: each run's prefill in it) puts decode far above the card's limit,
    which no card can draw; the decode steps' energy alone gives their own draw, within it."""
    card = Card()
    card.clocked(monkeypatch, latency, energy, base)
    backend = Backend(card, **SHAPE)
    monkeypatch.setattr(latency, "total_energy_mj", lambda handle: card.energy_mj())
    where = OperatingPoint(BATCH, 512, len(PROMPT))
    timings = measure_point(backend, SimpleNamespace(tick=lambda: 0.0),
                            SimpleNamespace(handle="card"), where, PROMPT, new_tokens=NEW,
                            warmup_runs=1, measured_runs=3, energy_s=0.2)
    point = point_figures(where, [timings], NEW)
    power = phase_power_w(point)
    assert power["decode_w"] == pytest.approx(SHAPE["decode_w"], rel=0.25)
    assert power["prefill_w"] == pytest.approx(SHAPE["prefill_w"], rel=0.25)
    assert max(power.values()) <= LIMIT_W
    assert power_check(point, LIMIT_W) == point  # nothing to flag

    # the figure as it was: the counter read around the timed runs, over the decoded tokens
    e0 = card.energy_mj()
    for _ in range(3):
        timed_run(backend, PROMPT, NEW, BATCH)
    mixed = (card.energy_mj() - e0) / 1e3 / (3 * BATCH * NEW)
    old = replace(point, prefill_j_per_tok=None, decode_j_per_tok=mixed)
    assert phase_power_w(old)["decode_w"] > LIMIT_W
    flagged = power_check(old, LIMIT_W)
    assert flagged.decode_j_per_tok is None
    assert "above the card's power limit" in flagged.energy_note


def test_the_windows_are_long_enough_for_the_counter_and_hold_as_many_prefills_as_runs(
        monkeypatch):
    card = Card(step_s=0.005)
    card.clocked(monkeypatch, latency, energy, base)
    backend = Backend(card, **{**SHAPE, "prefill_s": 0.005})
    runs, prefills = phase_windows(
        card.energy_mj, min_s=0.1, min_runs=2,
        run=lambda: sum(timed_run(backend, PROMPT, NEW, BATCH)[1]),
        prefill=lambda: timed_run(backend, PROMPT, 0, BATCH)[0])
    assert runs.busy_s >= 0.1 and runs.count >= 2 and runs.name == "generate"
    # a prefill is short: the window goes on past as many prefills as runs, to 0.1 s
    assert prefills.busy_s >= 0.1 and prefills.count > runs.count
    phase = PhaseEnergy.split(runs, prefills)
    assert phase.decode_j / phase.decode_s == pytest.approx(SHAPE["decode_w"], rel=0.25)
    figures = phase.per_token(BATCH, len(PROMPT), NEW)
    assert figures["decode_j_per_tok"] == pytest.approx(phase.decode_j / (BATCH * NEW))
    assert figures["prefill_j_per_tok"] == pytest.approx(phase.prefill_j / (BATCH * 512))


def test_a_phase_the_counter_gives_nothing_for_has_no_energy():
    def w(name, count, busy, joules):
        return Window(name, 0.0, busy, count, busy, joules)

    no_counter = PhaseEnergy.split(w("generate", 3, 1.0, None), w("prefill", 3, 0.5, None))
    assert (no_counter.prefill_j, no_counter.decode_j) == (None, None)
    # the prefills came out dearer than whole runs (a counter step on the wrong side): no
    # decode figure rather than a negative one
    upside_down = PhaseEnergy.split(w("generate", 3, 1.0, 300.0), w("prefill", 3, 0.5, 330.0))
    assert upside_down.prefill_j == 110.0 and upside_down.decode_j is None
    assert upside_down.per_token(1, 100, 10) == {"prefill_j_per_tok": 1.1,
                                                  "decode_j_per_tok": None}


def test_the_idle_window_reads_the_cards_draw_with_nothing_running(monkeypatch):
    card = Card(idle_w=72.0)
    card.clocked(monkeypatch, energy)
    rest = idle(card.energy_mj, 0.2)
    assert rest.name == "idle" and rest.s >= 0.2
    assert rest.energy_j / rest.s == pytest.approx(72.0, rel=0.15)
