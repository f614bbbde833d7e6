"""wrk output parsing and the pure-Python generator's helpers (no timing assertions)."""

from __future__ import annotations

import pytest

from wsgistack_bench.load import LoadError, LoadSpec, parse_pyload, parse_wrk, pin, wrk_argv
from wsgistack_bench.pyload import build_request, percentile

WRK_TEXT = """\
Running 5s test @ http://127.0.0.1:8080/hello
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms  512.00us  12.50ms   91.00%
    Req/Sec    15.20k   800.00    16.10k    70.00%
  Latency Distribution
     50%    1.95ms
     75%    2.30ms
     90%    2.80ms
     99%    4.10ms
  75600 requests in 5.00s, 9.01MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  15120.00
Transfer/sec:      1.80MB
"""


def test_parse_wrk_text() -> None:
    r = parse_wrk(WRK_TEXT)
    assert r.requests == 75600
    assert r.duration_s == pytest.approx(5.0)
    assert r.rps == pytest.approx(15120.0)
    assert r.p50_ms == pytest.approx(1.95)
    assert r.p99_ms == pytest.approx(4.10)
    assert r.errors == 5
    assert r.non2xx == 7


def test_parse_wrk_text_units_and_no_errors() -> None:
    text = WRK_TEXT.replace("1.95ms", "950.00us").replace("4.10ms", "1.20s")
    text = text.replace("  Socket errors: connect 0, read 3, write 0, timeout 2\n", "")
    text = text.replace("  Non-2xx or 3xx responses: 7\n", "")
    r = parse_wrk(text)
    assert r.p50_ms == pytest.approx(0.95)
    assert r.p99_ms == pytest.approx(1200.0)
    assert (r.errors, r.non2xx) == (0, 0)


def test_parse_wrk_json_line_wins_over_text() -> None:
    line = ('WSGISTACK_JSON {"requests":1000,"duration_us":2000000,"p50_us":1500,"p99_us":9000,'
            '"connect":1,"read":2,"write":0,"timeout":0,"status":4}')
    r = parse_wrk(WRK_TEXT + line + "\n")
    assert (r.requests, r.rps, r.p50_ms, r.p99_ms, r.errors, r.non2xx) == (1000, 500.0, 1.5, 9.0, 3, 4)


def test_parse_wrk_garbage_raises() -> None:
    with pytest.raises(LoadError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


def test_parse_wrk_without_latency_distribution_raises() -> None:
    text = "\n".join(line for line in WRK_TEXT.splitlines() if "%    " not in line)
    with pytest.raises(LoadError, match="--latency"):
        parse_wrk(text)


def test_wrk_argv_whole_seconds_headers_and_pinning(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = LoadSpec("http://127.0.0.1:1/x", 32, 2.4, headers=("Connection: close",))
    argv = wrk_argv(spec, 1, tmp_path / "s.lua")
    assert argv[:4] == ["wrk", "-t1", "-c32", "-d2s"]
    assert argv[-3:] == ["-H", "Connection: close", "http://127.0.0.1:1/x"]
    assert pin(argv, (1,))[:3] == ["taskset", "-c", "1"]
    assert pin(argv, ()) == argv


def test_parse_pyload() -> None:
    r = parse_pyload('noise\n{"requests": 10, "duration_s": 2.0, "p50_ms": 1.0, "p99_ms": 3.0, '
                     '"errors": 0, "non2xx": 1}\n')
    assert (r.rps, r.tool, r.non2xx) == (5.0, "python", 1)


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 99) == 0.0
    assert percentile([7.0], 50) == 7.0


def test_build_request() -> None:
    raw = build_request("http://127.0.0.1:8000/a?b=1", ["X-A: 1"], close=True).decode()
    assert raw.startswith("GET /a?b=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nX-A: 1\r\n")
    assert raw.endswith("Connection: close\r\n\r\n")


def test_think_time_reaches_wrk_and_the_python_generator() -> None:
    from wsgistack_bench.load import WRK_LUA, pyload_argv, wrk_script

    assert wrk_script(0) == WRK_LUA
    assert "delay = function()\n  return 8\nend" in wrk_script(8)
    spec = LoadSpec(url="http://127.0.0.1:1/x", connections=4, duration_s=1, think_ms=8)
    argv = pyload_argv(spec)
    assert argv[argv.index("--think-ms") + 1] == "8"
    assert "--think-ms" not in pyload_argv(LoadSpec(url="http://127.0.0.1:1/x", connections=4, duration_s=1))
