# SPDX-License-Identifier: MIT
"""check_sum / exact_sum over numpy arrays and other buffers: exact, order-independent,
overflow reported where numpy's int64 sum silently wraps, read in place, other types refused."""

import array
import tracemalloc

import aii_host as a
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32 = st.integers(-(2**31), 2**31 - 1)
I64 = st.one_of(
    st.integers(I64_MIN, I64_MAX), st.sampled_from([I64_MIN, I64_MAX, I64_MAX - 1, -1, 0, 1])
)


def test_numpy_int64_sum_wraps_ours_does_not():
    x = np.full(4, 2**62, dtype=np.int64)
    with np.errstate(all="ignore"):
        wrapped = int(x.sum())
    assert wrapped == 0  # numpy: 2**64 wrapped to 0, silently
    assert a.exact_sum(x) == 2**64
    with pytest.raises(OverflowError, match="sum does not fit int64"):
        a.check_sum(x, wrapped)
    y = np.array([I64_MIN, -1], dtype=np.int64)
    assert a.exact_sum(y) == I64_MIN - 1
    with pytest.raises(OverflowError):
        a.check_sum(y, I64_MAX)


def test_overflow_midway_is_not_overflow():
    # Partial sums leave int64 and come back; the exact total fits, so it is checked.
    x = np.array([I64_MAX, I64_MAX, -I64_MAX, -I64_MAX, 5], dtype=np.int64)
    assert a.check_sum(x, 5) is True
    assert a.check_sum(x, 4) is False
    assert a.check_sum(x[::-1].copy(), 5) is True


def test_int32_totals_beyond_int32():
    x = np.full(1000, 2**31 - 1, dtype=np.int32)
    assert a.check_sum(x, 1000 * (2**31 - 1)) is True
    assert a.exact_sum(-x) == -1000 * (2**31 - 1)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(I64, max_size=40),
    seed=st.integers(0, 2**32 - 1),
    wrong=st.integers(-3, 3),
)
def test_int64_exact_and_order_independent(values, seed, wrong):
    total = sum(values)
    x = np.array(values, dtype=np.int64)
    perm = x[np.random.default_rng(seed).permutation(len(x))]
    for buf in (x, perm, array.array("q", values), memoryview(x.tobytes()).cast("q")):
        assert a.exact_sum(buf) == total
        if I64_MIN <= total <= I64_MAX:
            guess = min(max(total + wrong, I64_MIN), I64_MAX)
            assert a.check_sum(buf, guess) is (guess == total)
        else:
            with pytest.raises(OverflowError):
                a.check_sum(buf, 0)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(I32, max_size=60), seed=st.integers(0, 2**32 - 1))
def test_int32_exact_and_order_independent(values, seed):
    total = sum(values)
    x = np.array(values, dtype=np.int32)
    perm = x[np.random.default_rng(seed).permutation(len(x))]
    for buf in (x, perm, array.array("i", values)):
        assert a.exact_sum(buf) == total
        assert a.check_sum(buf, total) is True
        assert a.check_sum(buf, total + 1) is False


def test_multidimensional_and_readonly_arrays():
    x = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
    assert a.check_sum(x, 276)
    x.flags.writeable = False
    assert a.check_sum(x, 276)


def test_reads_in_place():
    """10**7 int64 (80 MB): a copy would show in tracemalloc, where numpy reports its buffers."""
    x = np.arange(10**7, dtype=np.int64)
    tracemalloc.start()
    try:
        assert a.check_sum(x, 10**7 * (10**7 - 1) // 2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize(
    "buf",
    [
        np.zeros(4, dtype=np.float64),
        np.zeros(4, dtype=np.uint64),
        np.zeros(4, dtype=np.uint32),
        np.zeros(4, dtype=np.int16),
        np.zeros(4, dtype=np.int8),
        np.zeros(4, dtype=bool),
        np.zeros(4, dtype=">i8") if np.little_endian else np.zeros(4, dtype="<i8"),
        np.zeros(8, dtype=np.int64)[::2],
        b"\0" * 8,
        bytearray(8),
        array.array("d", [1.0]),
        array.array("Q", [1]),
        [1, 2, 3],
        None,
    ],
    ids=lambda b: type(b).__name__ + ("-" + str(b.dtype) if hasattr(b, "dtype") else ""),
)
def test_other_item_types_are_refused(buf):
    with pytest.raises(TypeError):
        a.check_sum(buf, 0)
    with pytest.raises(TypeError):
        a.exact_sum(buf)


def test_expected_must_be_an_int64():
    x = np.arange(3, dtype=np.int64)
    with pytest.raises(TypeError):
        a.check_sum(x, 3.0)
    with pytest.raises(ValueError, match="expected out of range"):
        a.check_sum(x, 2**63)
