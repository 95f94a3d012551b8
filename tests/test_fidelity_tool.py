"""quantbench.tools.fidelity (quantbench fidelity): reading llama-batched-bench and building the
ratio table."""

import pytest

# llama-batched-bench (llama-cpp-python 0.3.36's llama.cpp) on SmolLM2-135M Q4_1, stdout:
#   -c 322 -b 322 -ub 322 -npp 128 -ntg 32 -npl 2,2,2 -t 2 -tb 2 -ngl 0 -fa auto
BATCHED_OUT = """
llama_batched_bench: n_kv_max = 512, n_batch = 322, n_ubatch = 322, flash_attn = -1, \
is_pp_shared = 0, is_tg_separate = 0, n_gpu_layers = 0, n_threads = 2, n_threads_batch = 2

|    PP |     TG |    B |   N_KV |   T_PP s | S_PP t/s |   T_TG s | S_TG t/s |      T s |    S t/s |
|-------|--------|------|--------|----------|----------|----------|----------|----------|----------|
|   128 |     32 |    2 |    320 |    1.647 |   155.42 |    1.678 |    38.15 |    3.325 |    96.25 |
|   128 |     32 |    2 |    320 |    1.551 |   165.03 |    1.691 |    37.85 |    3.242 |    98.70 |
|   128 |     32 |    2 |    320 |    1.493 |   171.45 |   15.768 |     4.06 |   17.261 |    18.54 |

llama_perf_context_print:        load time =     137.27 ms
"""


@pytest.fixture(scope="module")
def tool():
    from quantbench.tools import fidelity

    return fidelity


def test_batched_bench_output_is_read(tool):
    parsed = tool.parse_batched_bench(BATCHED_OUT)
    assert parsed["settings"]["n_threads"] == 2
    assert parsed["settings"]["is_pp_shared"] == 0
    assert parsed["settings"]["flash_attn"] == -1
    assert len(parsed["rows"]) == 3
    first = parsed["rows"][0]
    assert (first["pp"], first["tg"], first["pl"], first["n_kv"]) == (128, 32, 2, 320)
    assert first["speed_pp"] == 155.42 and first["speed_tg"] == 38.15
    assert parsed["rows"][2]["t_tg"] == 15.768
    # the first row is the warm-up: the mean of the other two, as llama-bench's avg_ts
    means = tool.batched_means(parsed, 2, skip=1)
    assert means["tg"] == pytest.approx((37.85 + 4.06) / 2)
    assert means["pp"] == pytest.approx((165.03 + 171.45) / 2)
    with pytest.raises(RuntimeError, match="no row for batch 4"):
        tool.batched_means(parsed, 4)
    with pytest.raises(RuntimeError, match="no result row"):
        tool.parse_batched_bench(BATCHED_OUT.split("|    PP")[0])


def test_llama_bench_rows_are_keyed_by_test_and_depth(tool):
    rows = [{"n_prompt": 128, "n_gen": 0, "n_depth": 0, "avg_ts": 500.0},
            {"n_prompt": 0, "n_gen": 32, "n_depth": 128, "avg_ts": 80.0},
            {"n_prompt": 128, "n_gen": 32, "n_depth": 0, "avg_ts": 1.0}]  # pg: not compared
    assert tool.read_llama_bench(rows) == {("pp", 0): 500.0, ("tg", 128): 80.0}


def _point(prefill, steady, every, first_ms=10.0):
    return {"prefill_tok_s": prefill, "decode_steady_tok_s": steady, "decode_tok_s": every,
            "first_step_ms": first_ms, "decode_cv": 0.01}


def test_ratio_table(tool):
    a = tool.parse_args(["m.gguf", "--text", "t.txt", "--n-prompt", "128", "--n-gen", "32",
                         "--batch-sizes", "2", "--depths", "64"])
    assert a.batch_sizes == [1, 2] and a.depths == [0, 64]
    assert tool.bench_depths(a) == [0, 64, 128, 192]
    # two rounds; medians of two values are their means
    ours = [{(1, 0): _point(100, 50, 40), (1, 64): _point(90, 45, 44),
             (2, 0): _point(150, 70, 60)},
            {(1, 0): _point(120, 70, 60), (1, 64): _point(110, 55, 46),
             (2, 0): _point(170, 90, 80)}]
    bench = [{("pp", 0): 100, ("pp", 64): 100, ("tg", 128): 50, ("tg", 192): 50},
             {("pp", 0): 120, ("pp", 64): 100, ("tg", 128): 70, ("tg", 192): 50}]
    batched = [{1: {"pp": 100, "tg": 50}, 2: {"pp": 200, "tg": 100}},
               {1: {"pp": 100, "tg": 50}, 2: {"pp": 200, "tg": 100}}]
    rows = tool.point_rows(ours, bench, batched, a)
    by = {(r["what"], r["batch"], r["depth"], r["reference"].split()[0]): r for r in rows}
    pp = by[("prefill", 1, 0, "llama-bench")]
    assert pp["reference"] == "llama-bench pp128 @ d0"
    assert pp["ours"] == 110 and pp["ref"] == 110 and pp["ratio"] == pytest.approx(1.0)
    assert pp["ratio_min"] == pytest.approx(1.0) and pp["ratio_max"] == pytest.approx(1.0)
    # decode at depth 64 against llama-bench's tg at depth 64 + the prompt
    tg = by[("decode steady", 1, 64, "llama-bench")]
    assert tg["reference"] == "llama-bench tg32 @ d192"
    assert tg["ratio"] == pytest.approx(50 / 50)
    assert tg["ratio_all_steps"] == pytest.approx(45 / 50)
    assert (tg["ratio_min"], tg["ratio_max"]) == (pytest.approx(0.9), pytest.approx(1.1))
    # batch 2: our total decode over every step against S_TG, the steady state beside it
    b2 = by[("decode total", 2, 0, "batched-bench")]
    assert b2["ratio"] == pytest.approx(70 / 100)
    assert b2["ratio_steady"] == pytest.approx(80 / 100)
    assert (b2["ratio_min"], b2["ratio_max"]) == (pytest.approx(0.6), pytest.approx(0.8))
    assert by[("prefill", 2, 0, "batched-bench")]["ratio"] == pytest.approx(160 / 200)
    text = tool.format_points("m.gguf", rows)
    assert "batched-bench S_TG tg32 B2" in text and "0.700" in text
    # a point ours could not measure (oom) has no ratio and the table still prints
    del ours[0][(2, 0)], ours[1][(2, 0)]
    rows = tool.point_rows(ours, bench, batched, a)
    b2 = next(r for r in rows if r["what"] == "decode total" and r["batch"] == 2)
    assert b2["ratio"] is None and b2["ratio_min"] is None
    assert "batched-bench S_TG tg32 B2" in tool.format_points("m.gguf", rows)


def test_step_parts_time_the_step_and_its_greedy_tokens_apart(tool, tiny_gguf, tiny_tokens):
    """--step-parts: at each batch size, the step alone (batched-bench's region), our whole
    step and the greedy tokens alone, in that order, with consistent units; a step alone and
    one of ours each advance every sequence by one position."""
    import argparse

    import numpy as np

    from quantbench import precisions
    from quantbench.backends import load_backend

    ids = np.load(tiny_tokens["ids"])
    a = argparse.Namespace(n_prompt=16, warmup=1, parts_reps=3, batch_sizes=[1, 3], ngl=0,
                           threads=2, greedy=["host"])
    rows = tool.step_parts(tiny_gguf["f16"], ids, a)
    assert [(r["batch_size"], r["part"].split(" (")[0]) for r in rows] == [
        (b, part) for b in (1, 3) for part in
        ("llama_decode + sync", "our decode step", "the greedy tokens alone")]
    for r in rows:
        assert r["ms"] > 0 and r["tok_s"] == pytest.approx(r["batch_size"] / (r["ms"] / 1e3))
    backend = load_backend(precisions.get("gguf-f16"), tiny_gguf["f16"], device="cpu",
                           threads=2, n_ctx=24, batch_size=2)
    prompt = [int(i) for i in ids[:16]]
    first = backend.prefill_batch(prompt)
    backend.step_batch(first)
    assert backend.pos == 17
    assert backend.decode_batch(backend.next_tokens(lambda s: s)) and backend.pos == 18
    backend.close()


def test_prefill_parts_time_each_part_and_llama_bench_beside(tool, tiny_gguf, tiny_tokens,
                                                              llama_tools):
    """--prefill-parts: every part of our timed prefill, llama_decode at each --ubatch and in a
    context of llama-bench's size, and llama-bench's pp beside (same -ub values, graph reuse on
    and off); consistent units."""
    import argparse

    import numpy as np

    ids = np.load(tiny_tokens["ids"])
    a = argparse.Namespace(n_prompt=16, n_gen=4, warmup=1, parts_reps=3, ubatch=[8, 16],
                           bench_reps=2, ngl=0, threads=2)
    rows = tool.prefill_parts(llama_tools, tiny_gguf["f16"], ids, a)
    parts = [r["part"] for r in rows]
    assert parts[:4] == ["llama_decode + sync (llama-bench's region)",
                         "the same after a decode step (graph rebuilt)",
                         "+ first token's argmax",
                         "our timed prefill (rewind, array, decode, argmax)"]
    assert parts[7:] == ["llama_decode + sync, n_ubatch 8", "llama_decode + sync, n_ubatch 16",
                         "llama_decode + sync, n_ctx 16 (llama-bench's)",
                         "llama-bench pp16, -ub 8", "llama-bench pp16, -ub 16",
                         "llama-bench pp16, LLAMA_GRAPH_REUSE_DISABLE=0",
                         "llama-bench pp16, LLAMA_GRAPH_REUSE_DISABLE=1"]
    for r in rows:
        assert r["ms"] > 0 and r["tok_s"] == pytest.approx(16 / (r["ms"] / 1e3), rel=1e-3)
