"""Prometheus metrics in the text exposition format 0.0.4, without a client library.

A ``Registry`` holds ``Counter``, ``Gauge`` and ``Histogram`` metrics; ``Registry.render()``
returns the page to serve at ``GET /metrics`` with ``Content-Type: CONTENT_TYPE``. Every
metric is safe to update from any thread. Label values are passed as keywords and must name
exactly the metric's label names::

    m = bot_metrics()
    m.webhook_deliveries.inc(event="issues", outcome="stored")
    m.dispatch_latency.observe(0.42)
    m.tasks.set_callback(lambda: store.count_by_state())  # {"queued": 3, "running": 1}

Format reference: https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

from bot.core.model import TaskState

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Dispatch latency buckets, 5 ms .. 60 s.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

LabelValues = tuple[str, ...]
#: What a gauge callback returns: one value, or a value per label value (a plain string key
#: for a gauge with one label name, a tuple of strings otherwise).
GaugeReading = float | Mapping[str, float] | Mapping[LabelValues, float]


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it: ``+Inf``, ``-Inf``, ``NaN`` or a float."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _label_text(names: Iterable[str], values: Iterable[str]) -> str:
    pairs = [f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True)]
    return "{" + ",".join(pairs) + "}" if pairs else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = ()) -> None:
        if not _NAME_RE.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        self.name = name
        self.help = help
        self.labelnames: LabelValues = tuple(labelnames)
        for label in self.labelnames:
            if not _LABEL_RE.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} for {name}")
        if len(set(self.labelnames)) != len(self.labelnames):
            raise ValueError(f"duplicate label names for {name}: {self.labelnames}")
        self._lock = threading.Lock()

    def _key(self, labels: Mapping[str, object]) -> LabelValues:
        if set(labels) != set(self.labelnames):
            raise ValueError(
                f"{self.name} takes labels {sorted(self.labelnames)}, got {sorted(labels)}"
            )
        return tuple(str(labels[n]) for n in self.labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> Iterator[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A value that only goes up. Without label names it starts at 0 and is always shown."""

    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[LabelValues, float] = {} if self.labelnames else {(): 0.0}

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        if amount < 0:
            raise ValueError(f"{self.name}: counters only go up (got {amount})")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: object) -> float:
        key = self._key(labels)
        with self._lock:
            return self._values.get(key, 0.0)

    def samples(self) -> Iterator[str]:
        with self._lock:
            items = sorted(self._values.items())
        for key, value in items:
            yield f"{self.name}{_label_text(self.labelnames, key)} {format_value(value)}"


class Gauge(_Metric):
    """A value that goes up and down, set directly or read from a callback at render time.

    A callback replaces the values set directly. It runs inside ``Registry.render()``; if it
    raises, the gauge shows no samples on that page and the error is logged.
    """

    kind = "gauge"

    def __init__(self, name: str, help: str, labelnames: Iterable[str] = ()) -> None:
        super().__init__(name, help, labelnames)
        self._values: dict[LabelValues, float] = {} if self.labelnames else {(): 0.0}
        self._callback: Callable[[], GaugeReading] | None = None

    def set(self, value: float, **labels: object) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def dec(self, amount: float = 1.0, **labels: object) -> None:
        self.inc(-amount, **labels)

    def value(self, **labels: object) -> float:
        key = self._key(labels)
        with self._lock:
            return self._values.get(key, 0.0)

    def set_callback(self, callback: Callable[[], GaugeReading] | None) -> None:
        """Read the gauge from ``callback()`` at each render (``None`` removes it)."""
        with self._lock:
            self._callback = callback

    def _read_callback(self, callback: Callable[[], GaugeReading]) -> dict[LabelValues, float]:
        reading = callback()
        if not isinstance(reading, Mapping):
            if self.labelnames:
                raise TypeError(f"{self.name} has labels; its callback must return a mapping")
            return {(): float(reading)}
        values: dict[LabelValues, float] = {}
        for key, value in reading.items():
            key_tuple = (key,) if isinstance(key, str) else tuple(str(k) for k in key)
            if len(key_tuple) != len(self.labelnames):
                raise ValueError(f"{self.name}: callback key {key!r} does not fit the labels")
            values[key_tuple] = float(value)
        return values

    def samples(self) -> Iterator[str]:
        with self._lock:
            callback, items = self._callback, dict(self._values)
        if callback is not None:
            try:
                items = self._read_callback(callback)
            except Exception:
                log.exception("metrics_callback_failed", extra={"metric": self.name})
                return
        for key, value in sorted(items.items()):
            yield f"{self.name}{_label_text(self.labelnames, key)} {format_value(value)}"


class Histogram(_Metric):
    """Observations counted into cumulative buckets, with ``_sum`` and ``_count``."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        buckets: Iterable[float] = LATENCY_BUCKETS,
        labelnames: Iterable[str] = (),
    ) -> None:
        super().__init__(name, help, labelnames)
        if "le" in self.labelnames:
            raise ValueError(f"{name}: 'le' is reserved for histogram buckets")
        bounds = sorted(float(b) for b in buckets if not math.isinf(b))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be distinct and not empty")
        self.buckets: tuple[float, ...] = (*bounds, math.inf)
        # label values -> (per-bucket counts, not cumulative; sum)
        self._series: dict[LabelValues, tuple[list[int], list[float]]] = {}
        if not self.labelnames:
            self._series[()] = ([0] * len(self.buckets), [0.0])

    def observe(self, value: float, **labels: object) -> None:
        key = self._key(labels)
        index = next(i for i, bound in enumerate(self.buckets) if value <= bound)
        with self._lock:
            counts, total = self._series.setdefault(key, ([0] * len(self.buckets), [0.0]))
            counts[index] += 1
            total[0] += value

    def count(self, **labels: object) -> int:
        key = self._key(labels)
        with self._lock:
            series = self._series.get(key)
            return sum(series[0]) if series else 0

    def samples(self) -> Iterator[str]:
        with self._lock:
            items = sorted((k, (list(c), s[0])) for k, (c, s) in self._series.items())
        for key, (counts, total) in items:
            cumulative = 0
            for bound, count in zip(self.buckets, counts, strict=True):
                cumulative += count
                labels = _label_text((*self.labelnames, "le"), (*key, format_value(bound)))
                yield f"{self.name}_bucket{labels} {format_value(cumulative)}"
            labels = _label_text(self.labelnames, key)
            yield f"{self.name}_sum{labels} {format_value(total)}"
            yield f"{self.name}_count{labels} {format_value(cumulative)}"


M = TypeVar("M", bound=_Metric)


class Registry:
    """An ordered set of metrics with unique names."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def register(self, metric: M) -> M:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} is already registered")
            self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labelnames: Iterable[str] = ()) -> Counter:
        return self.register(Counter(name, help, labelnames))

    def gauge(self, name: str, help: str, labelnames: Iterable[str] = ()) -> Gauge:
        return self.register(Gauge(name, help, labelnames))

    def histogram(
        self,
        name: str,
        help: str,
        buckets: Iterable[float] = LATENCY_BUCKETS,
        labelnames: Iterable[str] = (),
    ) -> Histogram:
        return self.register(Histogram(name, help, buckets, labelnames))

    def render(self) -> str:
        """The exposition page: HELP and TYPE lines, then the samples, for each metric."""
        with self._lock:
            metrics = list(self._metrics.values())
        lines: list[str] = []
        for metric in metrics:
            lines.extend(metric.header())
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BotMetrics:
    """The bot's metric set; ``render()`` is the ``/metrics`` page."""

    registry: Registry
    webhook_deliveries: Counter  # labels: event, outcome (stored | duplicate | rejected)
    delivery_queue_depth: Gauge
    tasks: Gauge  # label: state; fill with watch_tasks()
    dispatch_latency: Histogram  # seconds from ready to claimed
    merges: Counter  # label: outcome
    github_requests: Counter  # label: status (HTTP status code, or "error")
    stale_results: Counter  # results for a job that was no longer running (refused, 409)
    flaky_checks: Counter  # required checks that failed once and passed on their re-run

    def watch_tasks(self, count_by_state: Callable[[], Mapping[str, int]]) -> None:
        """Read ``stoneforge_tasks`` from ``count_by_state()`` at each render.

        Every task state is shown, 0 when the callback leaves it out, so a state that empties
        drops to 0 instead of vanishing from the page.
        """

        def reading() -> dict[str, float]:
            counts: dict[str, float] = {state.value: 0.0 for state in TaskState}
            for state, count in count_by_state().items():
                counts[str(state)] = float(count)
            return counts

        self.tasks.set_callback(reading)

    def render(self) -> str:
        return self.registry.render()


def bot_metrics(registry: Registry | None = None) -> BotMetrics:
    registry = registry if registry is not None else Registry()
    return BotMetrics(
        registry=registry,
        webhook_deliveries=registry.counter(
            "stoneforge_webhook_deliveries_total",
            "Webhook deliveries received, by event and outcome (stored, duplicate, rejected).",
            ("event", "outcome"),
        ),
        delivery_queue_depth=registry.gauge(
            "stoneforge_delivery_queue_depth",
            "Stored webhook deliveries not processed yet.",
        ),
        tasks=registry.gauge("stoneforge_tasks", "Tasks by state.", ("state",)),
        dispatch_latency=registry.histogram(
            "stoneforge_dispatch_latency_seconds",
            "Time from a task becoming ready to a runner claiming it.",
            LATENCY_BUCKETS,
        ),
        merges=registry.counter(
            "stoneforge_merges_total", "Merge attempts by the steward, by outcome.", ("outcome",)
        ),
        github_requests=registry.counter(
            "stoneforge_github_requests_total",
            "Requests to the GitHub REST API, by response status.",
            ("status",),
        ),
        stale_results=registry.counter(
            "stoneforge_stale_results_total",
            "Job results refused because the job was no longer the task's running job.",
        ),
        flaky_checks=registry.counter(
            "stoneforge_flaky_checks_total",
            "Required checks that failed once and passed when the steward re-ran them.",
        ),
    )
