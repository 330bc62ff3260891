"""Shared helpers for benchmarks: interleaved timing and the RATIO line format."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable


def per_call_seconds(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call of ``fn`` over one batch of ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def interleaved_medians(
    cases: dict[str, Callable[[], object]], *, calls: int, rounds: int
) -> dict[str, float]:
    """Median seconds per call of each case, measuring the cases in turn each round.

    Interleaving makes a floor and the thing compared to it see the same machine state;
    rotating the order each round keeps a case from always following the same other one.
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():  # warm-up
        per_call_seconds(fn, max(1, calls // 10))
    order = list(cases.items())
    for round_index in range(rounds):
        shift = round_index % len(order)  # each case takes each position in turn
        for name, fn in order[shift:] + order[:shift]:
            samples[name].append(per_call_seconds(fn, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def report(medians: dict[str, float]) -> None:
    for name, seconds in medians.items():
        print(f"{name:<28} {seconds * 1e6:10.2f} us")


def ratio(measure: str, value: float, target: float) -> None:
    """Print the one machine-readable line a benchmark emits per measure."""
    print(f"RATIO {measure} {value:.2f} target {target}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a server a benchmark started, by its PID: terminate, wait up to 10 s, kill."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
