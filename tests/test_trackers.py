import numpy as np

from quantbench.trackers import MemoryTracker, rss_mib


def test_memory_tracker_samples_on_entry_and_exit_whatever_its_period():
    before = rss_mib()
    with MemoryTracker(period_s=3600) as mem:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched, alive until after the exit sample
        assert mem.peak_rss_sampled_mib <= before + 32  # only the entry sample so far
    assert mem.peak_rss_sampled_mib >= before + 60
    del block
