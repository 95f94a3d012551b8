import numpy as np
import pytest
import torch

from quantbench import perplexity as P


def test_llamacpp_windows_follow_llama_perplexity():
    ids = list(range(10, 10 + 40))
    wins = P.llamacpp_windows(ids, 16, bos_id=1)
    # BOS is prepended, then 41 tokens // 16 = 2 windows
    assert len(wins) == 2
    tokens = [1] + ids
    for k, w in enumerate(wins):
        chunk = tokens[k * 16:(k + 1) * 16]
        assert w.ids[0] == 1 and w.ids[1:] == chunk[1:]
        assert w.first == 8
        assert w.targets == chunk[9:]  # logits 8..14 predict tokens 9..15
    assert len(P.llamacpp_windows(ids, 16, bos_id=1, max_windows=1)) == 1


def test_llamacpp_windows_without_bos_keep_first_token():
    wins = P.llamacpp_windows(list(range(32)), 16, bos_id=None)
    assert wins[1].ids[0] == 16


def test_too_short_text_is_an_error():
    with pytest.raises(ValueError, match="fewer than one window"):
        P.llamacpp_windows(list(range(10)), 16, bos_id=None)


def test_sliding_windows_score_every_token_once():
    ids = list(range(100))
    wins = P.sliding_windows(ids, 32, stride=10)
    scored = [t for w in wins for t in w.targets]
    assert scored == ids[1:]
    for w in wins:
        assert len(w.ids) <= 32
        assert w.ids[w.first + 1:] == w.targets


def test_sliding_windows_with_bos_start_each_window_with_it():
    ids = list(range(10, 110))
    wins = P.sliding_windows(ids, 32, stride=10, bos_id=1)
    assert all(w.ids[0] == 1 and len(w.ids) <= 32 for w in wins)
    assert [t for w in wins for t in w.targets] == ids  # the first token too, after BOS
    for w in wins:
        assert w.ids[w.first + 1:] == w.targets
    for bos in (1, None):  # a stride of the whole context would leave a window no context
        with pytest.raises(ValueError, match="larger than 31: a window of 32 tokens keeps"):
            P.sliding_windows(ids, 32, stride=32, bos_id=bos)
    wins = P.sliding_windows(ids, 32, stride=31)
    assert wins[1].first == 0 and [t for w in wins for t in w.targets] == ids[1:]


def test_token_nll_matches_torch_log_softmax():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(12, 50)).astype(np.float32) * 5
    w = P.Window(ids=list(range(12)), first=3, targets=[4, 7, 1, 0, 49])
    ours = P.token_nll(logits, w)
    ref = -torch.log_softmax(torch.tensor(logits, dtype=torch.float64), -1)[
        torch.arange(3, 8), torch.tensor(w.targets)]
    np.testing.assert_allclose(ours, ref.numpy(), rtol=1e-10)


def test_uniform_logits_give_vocabulary_sized_perplexity():
    w = P.Window(ids=[0] * 9, first=0, targets=[1] * 8)
    nll = P.token_nll(np.zeros((9, 64), dtype=np.float32), w)
    out = P.perplexity(nll)
    assert out["ppl"] == pytest.approx(64)
    assert out["ppl_stderr"] == pytest.approx(0)
    assert out["n_tokens"] == 8
