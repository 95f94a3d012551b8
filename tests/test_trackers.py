import numpy as np
import pytest

from quantbench.scenarios.trackers import (
    MemoryTracker,
    memory_breakdown,
    peak_rss_mib,
    reset_peak_rss,
    rss_mib,
)


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


def test_serving_memory_is_sampled_after_loading_not_the_high_water_mark():
    if not reset_peak_rss():
        pytest.skip("this kernel cannot restart the high-water mark")
    start = rss_mib()
    block = np.ones(256 * 2**20 // 8)  # "loading": a buffer touched, then freed
    del block
    load_peak = peak_rss_mib()
    assert load_peak >= start + 250  # the mark restarted at ``start``, then saw the buffer
    with MemoryTracker(period_s=None) as mem:
        pass
    assert mem.serving_mib <= load_peak - 200


def test_memory_breakdown_leaves_the_rest_to_the_runtime():
    parts = memory_breakdown(500.0, {"weights_mib": 300.0, "kv_cache_mib": 50.0})
    assert parts == {"weights_mib": 300.0, "kv_cache_mib": 50.0, "compute_mib": None,
                     "output_mib": None, "runtime_mib": 150.0}


def test_the_power_limit_is_the_one_the_card_enforces_in_watts(monkeypatch):
    """NVML gives milliwatts; where the driver cannot say which limit applies, the management
    limit; where it gives neither, None (no check of the energy figures then)."""
    import pynvml

    from quantbench.scenarios.trackers import power_limit_w

    def refused(handle):
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    monkeypatch.setattr(pynvml, "nvmlDeviceGetEnforcedPowerLimit", lambda h: 700000)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetPowerManagementLimit", lambda h: 650000)
    assert power_limit_w("card") == 700.0
    monkeypatch.setattr(pynvml, "nvmlDeviceGetEnforcedPowerLimit", refused)
    assert power_limit_w("card") == 650.0
    monkeypatch.setattr(pynvml, "nvmlDeviceGetPowerManagementLimit", refused)
    assert power_limit_w("card") is None
