import numpy as np

from quantbench.trackers import MemoryTracker, rss_mib


def test_memory_tracker_samples_on_entry_and_exit_whatever_its_period():
    before = rss_mib()
    with MemoryTracker(period_s=None) as mem:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched, alive until after the exit sample
        assert mem.peak_rss_sampled_mib <= before + 32  # only the entry sample so far
    assert mem.peak_rss_sampled_mib >= before + 60
    del block


def test_memory_tracker_ticks_when_asked_and_samples_in_a_thread_only_with_a_period():
    import time

    with MemoryTracker(period_s=None) as mem:
        assert mem._thread is None
        block = np.ones(64 * 2**20 // 8)
        before_tick = mem.peak_rss_sampled_mib
        mem.tick()
        assert mem.peak_rss_sampled_mib >= before_tick + 60
    del block
    with MemoryTracker(period_s=0.01) as mem:
        block = np.ones(64 * 2**20 // 8)
        deadline = time.monotonic() + 5
        while mem.peak_rss_sampled_mib < before_tick + 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mem.peak_rss_sampled_mib >= before_tick + 60  # the thread saw it before the exit
    del block
