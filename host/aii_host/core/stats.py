# SPDX-License-Identifier: MIT
"""The one percentile of the host's reports, benchmarks and soak tests (docs/architecture.md)."""


def percentile(values, p):
    """Nearest rank: the smallest of `values` with at least p % of them at or below it.

    p is in 0..100 (0 and 100 give the minimum and the maximum); the values need not be sorted.
    None when there are none. No interpolation: the answer is always one of the samples, so a
    p99 of latencies is a latency that happened.
    """
    s = sorted(values)
    if not s:
        return None
    k = -(-p * len(s) // 100)  # ceil(p * n / 100), exact for int p
    return s[min(len(s), max(1, int(k))) - 1]
