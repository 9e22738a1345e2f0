# SPDX-License-Identifier: MIT
"""TFLite's int8 arithmetic in numpy, written from the reference kernels' definitions.

This is the oracle of the golden tests, so it shares no code with the interpreter: multipliers
come from the float32 scales stored in the model, converted to double exactly as TFLite's
QuantizeMultiplier does (frexp, round half away from zero, 31-bit significand); requantisation is
gemmlowp's SaturatingRoundingDoublingHighMul followed by RoundingDivideByPOT (the "double
rounding" build, TFLite's default); ADD rescales both inputs with a left shift of 20 first.
Padding is SAME or VALID with TFLite's split (the extra row/column goes after; the windows are
the model builder's, aii_host.edge.modelgen, which shares nothing with the interpreter either). All integer math
is in int64 and checked against the int32 range where TFLite would hold an int32.
"""

import math

import numpy as np
from aii_host.edge.modelgen import patches as _patches

I32_MIN = -(1 << 31)
I32_MAX = (1 << 31) - 1


def _f32(x):
    # A scale as the model stores it (float32), widened to double as the kernels do.
    return float(np.float32(x))


def quantize_multiplier(real):
    """TFLite QuantizeMultiplier: real (double) -> (int32 significand, shift), real ~ m * 2**(shift-31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = math.floor(abs(q) * (1 << 31) + 0.5)  # TfLiteRound: half away from zero
    q_fixed = q_fixed if q >= 0 else -q_fixed
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def _check_i32(x, what):
    x = np.asarray(x, np.int64)
    if x.size and (x.min() < I32_MIN or x.max() > I32_MAX):
        raise OverflowError(f"{what} leaves the int32 range")
    return x


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values held in int64 arrays."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    overflow = (a == I32_MIN) & (b == I32_MIN)
    ab = a * b  # |a*b| <= 2**62: exact in int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    # C's division truncates toward zero; numpy's // floors.
    q = np.where(s >= 0, s // (1 << 31), -((-s) // (1 << 31)))
    return np.where(overflow, I32_MAX, q)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT: x / 2**exponent, rounding half away from zero."""
    x = np.asarray(x, np.int64)
    e = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, m, shift):
    """TFLite MultiplyByQuantizedMultiplier (int32 version); m, shift may be per-channel arrays."""
    x = _check_i32(x, "accumulator")
    shift = np.asarray(shift, np.int64)
    left = np.where(shift > 0, shift, 0)
    right = np.where(shift > 0, 0, -shift)
    shifted = _check_i32(x * (np.int64(1) << left), "shifted accumulator")
    return rounding_divide_by_pot(srdhm(shifted, m), right)


def activation_range(act, scale, zp):
    """CalculateActivationRangeQuantized for int8: act is None, "relu" or "relu6"."""
    lo, hi = -128, 127
    if act in ("relu", "relu6"):
        lo = max(lo, zp)
    if act == "relu6":
        hi = min(hi, zp + round(6.0 / _f32(scale)))
    elif act not in (None, "relu"):
        raise ValueError(f"unknown activation {act!r}")
    return lo, hi


def _requant(acc, s_in, s_w, s_out, out_zp, act):
    s_w = np.atleast_1d(np.asarray(s_w, np.float64))
    pairs = [quantize_multiplier(_f32(s_in) * _f32(w) / _f32(s_out)) for w in s_w]
    m = np.array([p[0] for p in pairs], np.int64)
    sh = np.array([p[1] for p in pairs], np.int64)
    out = multiply_by_quantized_multiplier(acc, m, sh) + out_zp
    lo, hi = activation_range(act, s_out, out_zp)
    return np.clip(out, lo, hi).astype(np.int8)


def fully_connected(x, x_zp, w, bias, s_in, s_w, s_out, out_zp, act=None):
    """x (N, K) int8, w (O, K) int8 symmetric, bias (O,) int32 -> (N, O) int8."""
    acc = (np.asarray(x, np.int64) - x_zp) @ np.asarray(w, np.int64).T
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return _requant(_check_i32(acc, "accumulator"), s_in, s_w, s_out, out_zp, act)


def conv2d(x, x_zp, w, bias, s_in, s_w, s_out, out_zp, stride=1, padding="same", act=None):
    """x (N, H, W, I) int8; w (O, KH, KW, I) int8 with per-channel scales s_w (O,); bias (O,)."""
    w = np.asarray(w, np.int64)
    p = _patches(x, x_zp, w.shape[1], w.shape[2], stride, padding)
    acc = np.einsum("nhwijc,oijc->nhwo", p, w)
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return _requant(_check_i32(acc, "accumulator"), s_in, s_w, s_out, out_zp, act)


def depthwise_conv2d(
    x, x_zp, w, bias, s_in, s_w, s_out, out_zp, stride=1, padding="same", act=None
):
    """x (N, H, W, C) int8; w (1, KH, KW, C) int8 (depth multiplier 1), per-channel s_w (C,)."""
    w = np.asarray(w, np.int64)
    p = _patches(x, x_zp, w.shape[1], w.shape[2], stride, padding)
    acc = np.einsum("nhwijc,ijc->nhwc", p, w[0])
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return _requant(_check_i32(acc, "accumulator"), s_in, s_w, s_out, out_zp, act)


def add(x1, zp1, s1, x2, zp2, s2, s_out, out_zp, act=None, left_shift=20):
    """Elementwise int8 ADD, same shapes, as reference_integer_ops::Add."""
    s1, s2, so = _f32(s1), _f32(s2), _f32(s_out)
    twice_max = 2.0 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * so))

    def scaled(x, zp, m, sh):
        v = _check_i32((np.asarray(x, np.int64) - zp) * (1 << left_shift), "shifted input")
        return rounding_divide_by_pot(srdhm(v, m), -sh)

    raw = _check_i32(scaled(x1, zp1, m1, sh1) + scaled(x2, zp2, m2, sh2), "sum")
    out = rounding_divide_by_pot(srdhm(raw, mo), -sho) + out_zp
    lo, hi = activation_range(act, s_out, out_zp)
    return np.clip(out, lo, hi).astype(np.int8)


def quantize(x, scale, zp):
    """float -> int8 with round half away from zero (test inputs only)."""
    q = np.sign(x) * np.floor(np.abs(np.asarray(x, np.float64)) / _f32(scale) + 0.5)
    return np.clip(q + zp, -128, 127).astype(np.int8)


def run_reference(layers, x):
    """Runs a chain of conv/dw layers (as GraphBuilder.conv returned them) through this reference."""
    for L in layers:
        f = depthwise_conv2d if L["kind"] == "dw" else conv2d
        x = f(
            x,
            L["zp_in"],
            L["w"],
            L["bias"],
            L["s_in"],
            L["s_w"],
            L["s_out"],
            L["zp_out"],
            L["stride"],
            L["padding"],
            L["act"],
        )
    return x
