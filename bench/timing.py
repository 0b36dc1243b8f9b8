"""Side-by-side timing: methods run alternately, in a rotating order, and compared by medians.

Running every method once per round, each round starting with a different one, spreads the
noise of a shared machine (other processes, page cache, CPU frequency) over all of them alike,
so a ratio of medians from the same run holds even when the absolute times drift.
"""

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Samples:
    """The wall-clock seconds of one method's runs, and what each run returned."""

    seconds: list[float] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    @property
    def median(self) -> float:
        """The median of ``seconds``."""
        return statistics.median(self.seconds)

    def as_json(self) -> dict[str, Any]:
        """Median, min, max and every sample, in seconds."""
        return {
            "median_s": self.median,
            "min_s": min(self.seconds),
            "max_s": max(self.seconds),
            "samples_s": self.seconds,
        }


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Runs ``function`` once; returns its wall-clock seconds and its value."""
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def rotated(names: list[str], round_index: int) -> list[str]:
    """``names`` starting at position ``round_index`` (mod its length)."""
    shift = round_index % len(names)
    return names[shift:] + names[:shift]


def interleave(
    methods: Mapping[str, Callable[[], Any]],
    *,
    rounds: int,
    samples: Mapping[str, Samples] | None = None,
    round_offset: int = 0,
) -> dict[str, Samples]:
    """Runs every method once per round, in a rotating order, and records each run.

    Args:
        methods: The methods to compare, by name; each is called with no argument.
        rounds: How many rounds (runs of each method).
        samples: Samples to append to (so several calls build one series); new ones if ``None``.
        round_offset: Added to the round number to pick the starting method.

    Returns:
        The samples of every method, by name.
    """
    result = {name: Samples() for name in methods} if samples is None else dict(samples)
    names = list(methods)
    for round_index in range(rounds):
        for name in rotated(names, round_index + round_offset):
            seconds, value = timed(methods[name])
            result[name].seconds.append(seconds)
            result[name].values.append(value)
    return result


def ratio(numerator: Samples, denominator: Samples) -> float:
    """The ratio of two medians (how many times slower ``numerator`` is)."""
    return numerator.median / denominator.median
