"""The metrics page: parsed back with a strict reader of the 0.0.4 text format."""

from __future__ import annotations

import math
import re
import threading

import pytest

from bot.core.model import TaskState
from bot.metrics import (
    CONTENT_TYPE,
    LATENCY_BUCKETS,
    Counter,
    Gauge,
    Histogram,
    Registry,
    bot_metrics,
    escape_label_value,
    format_value,
)

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL_VALUE = r'"(?:[^"\\\n]|\\\\|\\"|\\n)*"'
_LABEL = rf"[a-zA-Z_][a-zA-Z0-9_]*={_LABEL_VALUE}"
_VALUE = r"(?:[+-]Inf|NaN|-?\d+(?:\.\d+)?(?:e[+-]?\d+)?)"
_LABELS = rf"\{{(?P<labels>{_LABEL}(?:,{_LABEL})*)\}}"
SAMPLE_RE = re.compile(rf"^(?P<name>{_NAME})(?:{_LABELS})? (?P<value>{_VALUE})$")
HELP_RE = re.compile(rf"^# HELP (?P<name>{_NAME}) (?P<text>(?:[^\\\n]|\\\\|\\n)*)$")
TYPE_RE = re.compile(rf"^# TYPE (?P<name>{_NAME}) (?P<type>counter|gauge|histogram)$")
PAIR_RE = re.compile(rf"([a-zA-Z_][a-zA-Z0-9_]*)=({_LABEL_VALUE})")

Sample = tuple[str, frozenset[tuple[str, str]]]


def unescape(quoted: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), quoted[1:-1])


def parse(text: str) -> tuple[dict[str, str], dict[Sample, float]]:
    """Strictly parse an exposition page into ({family: type}, {(name, labels): value}).

    Fails on any line that does not fit, on samples before their TYPE line, on a family typed
    twice, and on a repeated sample.
    """
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples: dict[Sample, float] = {}
    current = None
    for line in text[:-1].split("\n"):
        if match := HELP_RE.match(line):
            assert match["name"] not in types, f"HELP after TYPE or twice: {line}"
            continue
        if match := TYPE_RE.match(line):
            assert match["name"] not in types, f"family typed twice: {line}"
            current = match["name"]
            types[current] = match["type"]
            continue
        match = SAMPLE_RE.match(line)
        assert match is not None, f"not a valid line: {line!r}"
        name = match["name"]
        assert current is not None
        if types[current] == "histogram":
            assert name in {f"{current}_bucket", f"{current}_sum", f"{current}_count"}, line
        else:
            assert name == current, line
        labels = frozenset((k, unescape(v)) for k, v in PAIR_RE.findall(match["labels"] or ""))
        key = (name, labels)
        assert key not in samples, f"repeated sample {line}"
        samples[key] = float(match["value"].replace("Inf", "inf"))
    return types, samples


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


def test_bot_metrics_page_parses_and_holds_values() -> None:
    m = bot_metrics()
    m.webhook_deliveries.inc(event="issues", outcome="stored")
    m.webhook_deliveries.inc(event="issues", outcome="stored")
    m.webhook_deliveries.inc(event="ping", outcome="duplicate")
    m.delivery_queue_depth.set(4)
    m.dispatch_latency.observe(0.003)
    m.dispatch_latency.observe(0.7)
    m.dispatch_latency.observe(120)
    m.merges.inc(outcome="merged")
    m.github_requests.inc(status="200")
    m.watch_tasks(lambda: {"queued": 3, TaskState.RUNNING: 1})

    types, samples = parse(m.render())

    assert types == {
        "stoneforge_webhook_deliveries_total": "counter",
        "stoneforge_delivery_queue_depth": "gauge",
        "stoneforge_tasks": "gauge",
        "stoneforge_dispatch_latency_seconds": "histogram",
        "stoneforge_merges_total": "counter",
        "stoneforge_github_requests_total": "counter",
        "stoneforge_stale_results_total": "counter",
        "stoneforge_flaky_checks_total": "counter",
    }
    deliveries = "stoneforge_webhook_deliveries_total"
    assert samples[(deliveries, labels(event="issues", outcome="stored"))] == 2
    assert samples[(deliveries, labels(event="ping", outcome="duplicate"))] == 1
    assert samples[("stoneforge_delivery_queue_depth", labels())] == 4
    assert samples[("stoneforge_merges_total", labels(outcome="merged"))] == 1
    assert samples[("stoneforge_github_requests_total", labels(status="200"))] == 1
    tasks = {dict(lb)["state"]: v for (n, lb), v in samples.items() if n == "stoneforge_tasks"}
    assert tasks == {s.value: 0.0 for s in TaskState} | {"queued": 3.0, "running": 1.0}

    hist = "stoneforge_dispatch_latency_seconds"
    buckets = {dict(lb)["le"]: v for (n, lb), v in samples.items() if n == f"{hist}_bucket"}
    assert len(buckets) == len(LATENCY_BUCKETS) + 1
    assert buckets["0.005"] == 1
    assert buckets["0.5"] == 1
    assert buckets["1.0"] == 2
    assert buckets["60.0"] == 2
    assert buckets["+Inf"] == 3
    assert samples[(f"{hist}_count", labels())] == 3
    assert samples[(f"{hist}_sum", labels())] == pytest.approx(120.703)


def test_buckets_are_cumulative_and_end_with_inf() -> None:
    registry = Registry()
    hist = registry.histogram("h_seconds", "h", buckets=(1, 0.1, 10), labelnames=("kind",))
    for value in (0.05, 0.1, 0.2, 5, 11):
        hist.observe(value, kind="a")
    _, samples = parse(registry.render())
    got = [samples[("h_seconds_bucket", labels(kind="a", le=le))] for le in ("0.1", "1.0", "10.0")]
    assert got == [2, 3, 4]
    assert samples[("h_seconds_bucket", labels(kind="a", le="+Inf"))] == 5
    assert hist.count(kind="a") == 5
    assert hist.count(kind="b") == 0


def test_label_values_and_help_are_escaped() -> None:
    registry = Registry()
    counter = registry.counter("odd_total", 'Help with \\ and\nnewline and "quotes"', ("path",))
    nasty = 'C:\\dir\n"quoted"'
    counter.inc(path=nasty)
    text = registry.render()
    assert '# HELP odd_total Help with \\\\ and\\nnewline and "quotes"\n' in text
    _, samples = parse(text)
    assert samples[("odd_total", labels(path=nasty))] == 1


def test_unlabelled_metrics_start_at_zero_and_labelled_ones_are_empty() -> None:
    registry = Registry()
    registry.counter("a_total", "a")
    registry.gauge("b", "b", ("x",))
    registry.histogram("c_seconds", "c", buckets=(1,))
    _, samples = parse(registry.render())
    assert samples == {
        ("a_total", labels()): 0,
        ("c_seconds_bucket", labels(le="1.0")): 0,
        ("c_seconds_bucket", labels(le="+Inf")): 0,
        ("c_seconds_sum", labels()): 0,
        ("c_seconds_count", labels()): 0,
    }


def test_gauge_callback_replaces_set_values_and_a_failing_one_is_skipped() -> None:
    registry = Registry()
    gauge = registry.gauge("depth", "d")
    other = registry.counter("other_total", "o")
    gauge.set(5)
    gauge.set_callback(lambda: 9)
    assert parse(registry.render())[1][("depth", labels())] == 9

    def broken() -> float:
        raise RuntimeError("store is down")

    gauge.set_callback(broken)
    _, samples = parse(registry.render())
    assert ("depth", labels()) not in samples
    assert samples[("other_total", labels())] == 0
    other.inc()
    gauge.set_callback(None)
    assert parse(registry.render())[1][("depth", labels())] == 5


def test_gauge_inc_dec_and_multi_label_callback() -> None:
    gauge = Gauge("g", "g", ("repo", "state"))
    gauge.inc(repo="o/r", state="queued")
    gauge.inc(2, repo="o/r", state="queued")
    gauge.dec(repo="o/r", state="queued")
    assert gauge.value(repo="o/r", state="queued") == 2
    gauge.set_callback(lambda: {("o/r", "running"): 1})
    assert list(gauge.samples()) == ['g{repo="o/r",state="running"} 1.0']


@pytest.mark.parametrize(
    "call",
    [
        lambda: Counter("c_total", "c", ("a",)).inc(b="x"),
        lambda: Counter("c_total", "c", ("a",)).inc(),
        lambda: Counter("c_total", "c").inc(-1),
        lambda: Counter("bad-name", "c"),
        lambda: Counter("c_total", "c", ("__x",)),
        lambda: Histogram("h", "h", buckets=(1,), labelnames=("le",)),
        lambda: Histogram("h", "h", buckets=()),
    ],
)
def test_misuse_raises(call) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        call()


def test_duplicate_registration_raises() -> None:
    registry = Registry()
    registry.counter("x_total", "x")
    with pytest.raises(ValueError, match="already registered"):
        registry.counter("x_total", "x")


def test_updates_from_many_threads_are_not_lost() -> None:
    m = bot_metrics()

    def work() -> None:
        for _ in range(2000):
            m.webhook_deliveries.inc(event="issues", outcome="stored")
            m.dispatch_latency.observe(0.01)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert m.webhook_deliveries.value(event="issues", outcome="stored") == 16000
    assert m.dispatch_latency.count() == 16000


def test_value_formatting() -> None:
    assert format_value(math.inf) == "+Inf"
    assert format_value(-math.inf) == "-Inf"
    assert format_value(math.nan) == "NaN"
    assert format_value(3) == "3.0"
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")
