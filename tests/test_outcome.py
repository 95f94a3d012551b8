"""The end of a run: failed measurements named, an error record fatal when asked."""

import json

import pytest

from quantbench.outcome import end_of_run, fail_on_error, failures


def _record(path, status, reason="", kind="latency", precision="fp32"):
    path.write_text(json.dumps({"kind": kind, "model": "m", "precision": precision,
                                "status": status, "reason": reason}))
    return path


def test_failed_measurements_are_named_and_by_design_statuses_are_not(tmp_path, capsys):
    paths = [_record(tmp_path / "a.json", "ok"),
             _record(tmp_path / "b.json", "oom", "CUDA out of memory", precision="fp16"),
             _record(tmp_path / "c.json", "not_applicable", "random weights", kind="quality"),
             _record(tmp_path / "d.json", "no_gpu", kind="gpu"),
             _record(tmp_path / "e.json", "error", "ValueError: bad\nsecond line",
                     kind="quality", precision="bnb-nf4"),
             tmp_path / "missing.json"]
    assert [(f.precision, f.scenario, f.status) for f in failures(paths)] == [
        ("fp16", "latency", "oom"), ("bnb-nf4", "quality", "error")]
    assert end_of_run(paths, fatal=False) is None
    err = capsys.readouterr().err
    assert "2 measurement(s) did not succeed" in err
    assert "  m fp16 latency: oom: CUDA out of memory\n" in err
    assert "  m bnb-nf4 quality: error: ValueError: bad second line\n" in err
    assert "not_applicable" not in err and "no_gpu" not in err


def test_only_an_error_record_is_fatal_and_only_when_asked(tmp_path):
    oom = [_record(tmp_path / "a.json", "oom"), _record(tmp_path / "b.json", "timeout")]
    assert end_of_run(oom, fatal=True) is None
    error = [*oom, _record(tmp_path / "c.json", "error", "boom")]
    assert "1 measurement(s) ended in an error record" in end_of_run(error, fatal=True)
    assert end_of_run(error, fatal=False) is None


@pytest.mark.parametrize(("setting", "environ", "on"), [
    (True, {}, True), (False, {"CI": "true"}, False), (None, {"CI": "true"}, True),
    (None, {"CI": "1"}, True), (None, {"CI": "false"}, False), (None, {}, False),
])
def test_the_switch_defaults_to_on_where_the_environment_says_ci(setting, environ, on):
    assert fail_on_error(setting, environ) is on
