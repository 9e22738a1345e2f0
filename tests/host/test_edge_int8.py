# SPDX-License-Identifier: MIT
"""Golden int8 tests: models built here, expected outputs from the numpy reference (int8ref).

The reference is an independent implementation of TFLite's integer arithmetic, not a saved run:
the interpreter's reference kernels must match it bit for bit, the default (XNNPACK) path within
1 LSB per operator. The data is chosen so outputs spread over the int8 range (checked), and a
naive float requantisation is shown to differ, so the comparisons can fail.
"""

import ai_edge_litert  # noqa: F401 - in the repository or pinned: missing fails, not skips
import numpy as np
import pytest
from aii_host.edge import int8ref
from aii_host.edge.runtime import Model
from aii_host.edge.tflite_build import GraphBuilder, mobilenet_like, run_reference

# --- the fixed-point primitives against hand-worked values ---------------------------------------


def test_quantize_multiplier_values():
    assert int8ref.quantize_multiplier(0.5) == (1 << 30, 0)
    assert int8ref.quantize_multiplier(1.0) == (1 << 30, 1)
    assert int8ref.quantize_multiplier(0.25) == (1 << 30, -1)
    assert int8ref.quantize_multiplier(0.0) == (0, 0)
    # 0.75 = 0.75 * 2**0: significand 0.75 * 2**31
    assert int8ref.quantize_multiplier(0.75) == (3 << 29, 0)
    # A significand that rounds up to 2**31 is halved and the shift bumped.
    assert int8ref.quantize_multiplier(1.0 - 2.0**-40) == (1 << 30, 1)
    assert int8ref.quantize_multiplier(2.0**-40) == (0, 0)  # below 2**-31 range: zero


def test_srdhm_and_rounding_divide():
    m = int8ref.I32_MIN
    assert int(int8ref.srdhm(m, m)) == int8ref.I32_MAX  # the one saturating case
    assert int(int8ref.srdhm(1 << 30, 1 << 30)) == 1 << 29
    assert int(int8ref.srdhm(3, 1 << 30)) == 2  # +1.5 rounds up
    # gemmlowp's nudge for a negative product is 1 - 2**30 and the division truncates, so an
    # exact negative half goes toward zero: -1.5 -> -1 (a symmetric rounding would give -2).
    assert int(int8ref.srdhm(-3, 1 << 30)) == -1
    assert int(int8ref.srdhm(-7, 1 << 30)) == -3
    r = int8ref.rounding_divide_by_pot(np.array([5, -5, 6, -6, 7, -7]), 1)
    assert r.tolist() == [3, -3, 3, -3, 4, -4]
    assert int8ref.rounding_divide_by_pot(np.array([-12]), 3).tolist() == [-2]  # -1.5 -> -2


# --- single-operator models --------------------------------------------------------------------


def _spread_scale(acc, s_prod, lsb=50.0):
    """An output scale that maps the accumulators' spread to ~lsb LSB (so outputs use the range)."""
    return np.float32(float(np.std(acc) * np.median(s_prod)) / lsb)


def _check(buf, inputs, expected, name):
    outs = {}
    for resolver in ("ref", "auto"):
        got = Model(content=buf, threads=1, resolver=resolver).run(*inputs)[0]
        assert got.shape == expected.shape and got.dtype == np.int8
        outs[resolver] = got
    # Non-trivial data: outputs spread, some clamp at each end is fine, not all.
    assert len(np.unique(expected)) > 40, f"{name}: degenerate golden data"
    diff_ref = np.flatnonzero(outs["ref"] != expected)
    if diff_ref.size:
        k = diff_ref[0]
        pytest.fail(
            f"{name}: reference kernels differ at {diff_ref.size} places, first at {k}: "
            f"{outs['ref'].flat[k]} vs {expected.flat[k]}"
        )
    d = np.abs(outs["auto"].astype(int) - expected.astype(int))
    assert d.max() <= 1, f"{name}: XNNPACK off by {d.max()} LSB"
    print(f"{name}: XNNPACK differs by 1 LSB at {(d > 0).sum()} of {d.size} outputs")
    return outs


def test_fully_connected_per_tensor():
    rng = np.random.default_rng(10)
    n, k, o = 8, 96, 40
    s_in, zp_in, s_w = np.float32(0.05), 7, np.float32(0.013)
    x = rng.integers(-128, 128, size=(n, k)).astype(np.int8)
    w = rng.integers(-127, 128, size=(o, k)).astype(np.int8)
    bias = rng.integers(-5000, 5000, size=o).astype(np.int32)
    acc = (x.astype(np.int64) - zp_in) @ w.astype(np.int64).T + bias
    s_out, zp_out = _spread_scale(acc, s_in * s_w), -3
    g = GraphBuilder()
    xi = g.tensor((n, k), "int8", s_in, zp_in, name="x")
    wi = g.tensor((o, k), "int8", s_w, 0, w)
    bi = g.tensor((o,), "int32", s_in * s_w, 0, bias)
    yi = g.tensor((n, o), "int8", s_out, zp_out, name="y")
    g.op(
        "FULLY_CONNECTED",
        [xi, wi, bi],
        [yi],
        "FullyConnectedOptions",
        fusedActivationFunction=0,
        weightsFormat=0,
        keepNumDims=False,
    )
    want = int8ref.fully_connected(x, zp_in, w, bias, s_in, s_w, s_out, zp_out)
    _check(g.build([xi], [yi]), [x], want, "fully_connected")


@pytest.mark.parametrize(
    "stride,padding,act", [(1, "same", None), (2, "valid", "relu"), (2, "same", "relu6")]
)
def test_conv2d_per_channel(stride, padding, act):
    rng = np.random.default_rng(20 + stride)
    h, w_, cin, cout, k = 13, 11, 5, 12, 3
    s_in, zp_in = np.float32(0.02), -9
    x = rng.integers(-128, 128, size=(2, h, w_, cin)).astype(np.int8)
    w = rng.integers(-127, 128, size=(cout, k, k, cin)).astype(np.int8)
    s_w = rng.uniform(0.001, 0.03, size=cout).astype(np.float32)
    bias = rng.integers(-3000, 3000, size=cout).astype(np.int32)
    p = int8ref._patches(x, zp_in, k, k, stride, padding)
    acc = np.einsum("nhwijc,oijc->nhwo", p, w.astype(np.int64)) + bias
    s_out, zp_out = _spread_scale(acc, s_in * s_w), 5
    if act == "relu6":
        # Put the real outputs' spread near 4.0 and the clamp at 6.0 high in the int8 range, so
        # the clamp cuts some outputs, not most.
        s_w = (s_w * (4.0 / float(np.std(acc) * np.median(s_in * s_w)))).astype(np.float32)
        s_out = np.float32(6.0 / 110)
    want = int8ref.conv2d(x, zp_in, w, bias, s_in, s_w, s_out, zp_out, stride, padding, act)
    g = GraphBuilder()
    s = g.s
    xi = g.tensor(x.shape, "int8", s_in, zp_in, name="x")
    wi = g.tensor(w.shape, "int8", s_w, 0, w, axis=0)
    bi = g.tensor((cout,), "int32", np.float32(s_in) * s_w, 0, bias)
    yi = g.tensor(want.shape, "int8", s_out, zp_out, name="y")
    g.op(
        "CONV_2D",
        [xi, wi, bi],
        [yi],
        "Conv2DOptions",
        padding=s.Padding.SAME if padding == "same" else s.Padding.VALID,
        strideW=stride,
        strideH=stride,
        dilationWFactor=1,
        dilationHFactor=1,
        fusedActivationFunction={None: 0, "relu": 1, "relu6": 3}[act],
    )
    _check(g.build([xi], [yi]), [x], want, "conv2d")


def test_depthwise_conv2d_per_channel():
    rng = np.random.default_rng(30)
    c, k = 16, 3
    s_in, zp_in = np.float32(0.03), 4
    x = rng.integers(-128, 128, size=(1, 15, 15, c)).astype(np.int8)
    w = rng.integers(-127, 128, size=(1, k, k, c)).astype(np.int8)
    s_w = rng.uniform(0.002, 0.04, size=c).astype(np.float32)
    bias = rng.integers(-1000, 1000, size=c).astype(np.int32)
    p = int8ref._patches(x, zp_in, k, k, 1, "same")
    acc = np.einsum("nhwijc,ijc->nhwc", p, w[0].astype(np.int64)) + bias
    s_out, zp_out = _spread_scale(acc, s_in * s_w), 0
    want = int8ref.depthwise_conv2d(x, zp_in, w, bias, s_in, s_w, s_out, zp_out, 1, "same")
    g = GraphBuilder()
    s = g.s
    xi = g.tensor(x.shape, "int8", s_in, zp_in, name="x")
    wi = g.tensor(w.shape, "int8", s_w, 0, w, axis=3)
    bi = g.tensor((c,), "int32", np.float32(s_in) * s_w, 0, bias)
    yi = g.tensor(want.shape, "int8", s_out, zp_out, name="y")
    g.op(
        "DEPTHWISE_CONV_2D",
        [xi, wi, bi],
        [yi],
        "DepthwiseConv2DOptions",
        padding=s.Padding.SAME,
        strideW=1,
        strideH=1,
        depthMultiplier=1,
        dilationWFactor=1,
        dilationHFactor=1,
        fusedActivationFunction=0,
    )
    _check(g.build([xi], [yi]), [x], want, "depthwise_conv2d")


def test_add_two_scales():
    rng = np.random.default_rng(40)
    shape = (1, 9, 7, 6)
    a = rng.integers(-128, 128, size=shape).astype(np.int8)
    b = rng.integers(-128, 128, size=shape).astype(np.int8)
    sa, za, sb, zb, so, zo = 0.031, -5, 0.017, 12, 0.037, 3
    want = int8ref.add(a, za, sa, b, zb, sb, so, zo)
    g = GraphBuilder()
    ai = g.tensor(shape, "int8", sa, za, name="a")
    bi = g.tensor(shape, "int8", sb, zb, name="b")
    yi = g.tensor(shape, "int8", so, zo, name="y")
    g.op("ADD", [ai, bi], [yi], "AddOptions", fusedActivationFunction=0)
    _check(g.build([ai, bi], [yi]), [a, b], want, "add")


def test_naive_float_requantisation_differs():
    """The golden data would catch an implementation that only approximates TFLite's rounding."""
    rng = np.random.default_rng(50)
    acc = rng.integers(-200000, 200000, size=20000)
    real = 0.00037123
    m, sh = int8ref.quantize_multiplier(real)
    exact = int8ref.multiply_by_quantized_multiplier(acc, m, sh)
    naive = np.round(acc * real).astype(np.int64)
    assert (exact != naive).any()
    assert np.abs(exact - naive).max() <= 1


def test_mobilenet_like_chain_bit_exact_with_reference_kernels():
    buf, _, layers = mobilenet_like(size=48, seed=3)
    x = np.random.default_rng(4).integers(-128, 128, size=(1, 48, 48, 3)).astype(np.int8)
    want = run_reference(layers, x)
    got = Model(content=buf, threads=1, resolver="ref").run(x)[0]
    assert len(np.unique(want)) > 40
    assert (got == want).all()
