# SPDX-License-Identifier: MIT
"""Writes small int8 .tflite models with the flatbuffer schema shipped in the LiteRT wheel.

No TensorFlow: the object API of ai_edge_litert.schema_py_generated (or, where only
tflite-runtime is installed, the `tflite` package's generated schema) packs a ModelT. Used by
`aii edge-bench mobilenet` and by the golden tests; every quantisation choice (scales, zero
points, per-channel axis) is explicit so the tests' numpy reference (tests/host/int8ref.py)
can follow it. The scales are calibrated in floating point: only the reference's integer
arithmetic is checked against the interpreter.
"""

import numpy as np

from .errors import RuntimeMissingError


def pad_amounts(size, k, stride, padding):
    """(output size, padding before, padding after) of one axis: SAME or VALID with TFLite's
    split (the extra row or column goes after)."""
    if padding == "valid":
        return (size - k) // stride + 1, 0, 0
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def patches(x, x_zp, kh, kw, stride, padding):
    """(N, H, W, C) -> (N, OH, OW, KH, KW, C) windows of x - x_zp, padding contributing zero."""
    _n, h, w, _c = x.shape
    oh, pt, pb = pad_amounts(h, kh, stride, padding)
    ow, pl, pr = pad_amounts(w, kw, stride, padding)
    # Out-of-image taps are skipped by the kernels: the same as padding with the zero point.
    xp = np.pad(np.asarray(x, np.int64) - x_zp, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))
    win = win[:, : (oh - 1) * stride + 1 : stride, : (ow - 1) * stride + 1 : stride]
    return np.moveaxis(win, 3, -1)  # (N, OH, OW, KH, KW, C)


def _calibration_out(acc, s_b, s_out, zp_out, act):
    # The next layer's calibration sample, requantised in floating point: close to what the
    # integer kernels give (a unit apart at most), which is all a scale needs.
    y = np.rint(acc * (np.asarray(s_b, np.float64) / float(s_out))) + zp_out
    lo, hi = -128, 127
    if act in ("relu", "relu6"):
        lo = max(lo, zp_out)
    if act == "relu6":
        hi = min(hi, zp_out + round(6.0 / float(s_out)))
    return np.clip(y, lo, hi).astype(np.int8)


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as s

        return s
    except ImportError:
        pass
    try:
        import tflite as s  # the `tflite` PyPI package: same flatbuffers-generated schema

        return s
    except ImportError:
        raise RuntimeMissingError(
            "no tflite schema: pip install ai-edge-litert (ships schema_py_generated)"
        ) from None


_TYPES = {"float32": "FLOAT32", "int8": "INT8", "int32": "INT32", "uint8": "UINT8"}
_ACT = {None: "NONE", "relu": "RELU", "relu6": "RELU6"}
# Operator versions as TFLite's converter writes them for int8 graphs; the kernels are found by
# (op, version) and every one of these is registered by the builtin and reference resolvers.
_VERSIONS = {
    "CONV_2D": 3,
    "DEPTHWISE_CONV_2D": 3,
    "FULLY_CONNECTED": 4,
    "ADD": 2,
    "AVERAGE_POOL_2D": 2,
    "RESHAPE": 1,
}


class GraphBuilder:
    """One subgraph: tensor(...) and op(...) in order, then build(inputs, outputs) -> bytes."""

    def __init__(self):
        self.s = _schema()
        self.tensors = []
        self.buffers = [self.s.BufferT()]  # buffer 0 is the empty sentinel
        self.ops = []
        self.opcodes = []

    def tensor(
        self, shape, dtype="int8", scale=None, zero_point=None, data=None, name=None, axis=0
    ):
        """Adds a tensor; scale/zero_point scalars (per tensor) or sequences (per channel)."""
        s = self.s
        t = s.TensorT()
        t.shape = [int(v) for v in shape]
        t.type = getattr(s.TensorType, _TYPES[dtype])
        t.name = name or f"t{len(self.tensors)}"
        t.buffer = 0
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data, dtype=dtype))
            if tuple(arr.shape) != tuple(t.shape):
                raise ValueError(f"data shape {arr.shape} != {tuple(t.shape)}")
            b = s.BufferT()
            b.data = np.frombuffer(arr.tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            q = s.QuantizationParametersT()
            sc = np.atleast_1d(np.asarray(scale, np.float32))
            zp = np.atleast_1d(np.asarray(0 if zero_point is None else zero_point, np.int64))
            if zp.size == 1 and sc.size > 1:
                zp = np.repeat(zp, sc.size)
            q.scale = [float(v) for v in sc]
            q.zeroPoint = [int(v) for v in zp]
            q.quantizedDimension = axis
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def _opcode(self, name):
        if name not in self.opcodes:
            self.opcodes.append(name)
        return self.opcodes.index(name)

    def op(self, name, inputs, outputs, options=None, **fields):
        """Adds an operator; options is the schema's options class name, fields its fields."""
        s = self.s
        o = s.OperatorT()
        o.opcodeIndex = self._opcode(name)
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        if options is not None:
            opt = getattr(s, options + "T")()
            for k, v in fields.items():
                setattr(opt, k, v)
            o.builtinOptionsType = getattr(s.BuiltinOptions, options)
            o.builtinOptions = opt
        self.ops.append(o)

    def build(self, inputs, outputs):
        import flatbuffers

        s = self.s
        g = s.SubGraphT()
        g.tensors = self.tensors
        g.inputs = list(inputs)
        g.outputs = list(outputs)
        g.operators = self.ops
        g.name = "main"
        m = s.ModelT()
        m.version = 3
        m.description = "aii_host.edge.tflite_build"
        m.subgraphs = [g]
        m.buffers = self.buffers
        codes = []
        for name in self.opcodes:
            c = s.OperatorCodeT()
            code = getattr(s.BuiltinOperator, name)
            c.builtinCode = code
            c.deprecatedBuiltinCode = min(code, 127)  # 127: PLACEHOLDER_FOR_GREATER_OP_CODES
            c.version = _VERSIONS.get(name, 1)
            codes.append(c)
        m.operatorCodes = codes
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    # --- layers, with the parameters int8ref needs kept alongside ------------------------------

    def conv(
        self,
        x,
        shape_in,
        q_in,
        cout,
        k,
        stride,
        rng,
        sample,
        act="relu",
        depthwise=False,
        padding="same",
    ):
        """Conv or depthwise conv with random per-channel int8 weights and int32 bias.

        q_in is (scale, zero_point) of x; sample an int8 batch of x's values, used to calibrate:
        the output scale puts the accumulators' spread at ~40 LSB so activations neither
        collapse to one value nor saturate (with ReLU the zero point is -128, using the range).
        Returns (tensor, shape, (scale, zp), layer, sample out); layer holds what the tests'
        reference (int8ref.run_reference) needs.
        """
        s = self.s
        n, h, w, cin = shape_in
        s_in, zp_in = q_in
        cout = cin if depthwise else cout
        wshape = (1, k, k, cout) if depthwise else (cout, k, k, cin)
        wq = rng.integers(-127, 128, size=wshape, dtype=np.int64).astype(np.int8)
        s_w = rng.uniform(0.002, 0.02, size=cout).astype(np.float32)
        s_b = np.float32(s_in) * s_w  # bias scale = input scale * weight scale, per channel
        bias = rng.integers(-2000, 2000, size=cout).astype(np.int32)
        p = patches(sample, zp_in, k, k, stride, padding)
        acc = (
            np.einsum("nhwijc,ijc->nhwc", p, wq[0].astype(np.int64))
            if depthwise
            else np.einsum("nhwijc,oijc->nhwo", p, wq.astype(np.int64))
        ) + bias
        # Real-valued spread of the accumulators, per channel, mapped to ~40 LSB.
        spread = float(np.median(acc.reshape(-1, cout).std(0) * s_b)) or float(np.median(s_b))
        s_out = np.float32(spread / 40.0)
        zp_out = -128 if act else 0
        wt = self.tensor(wshape, "int8", s_w, 0, wq, axis=3 if depthwise else 0)
        bt = self.tensor((cout,), "int32", s_b, 0, bias)
        oh, _, _ = pad_amounts(h, k, stride, padding)
        ow, _, _ = pad_amounts(w, k, stride, padding)
        out_shape = (n, oh, ow, cout)
        y = self.tensor(out_shape, "int8", s_out, zp_out)
        pad = s.Padding.SAME if padding == "same" else s.Padding.VALID
        fields = dict(
            padding=pad,
            strideW=stride,
            strideH=stride,
            fusedActivationFunction=getattr(s.ActivationFunctionType, _ACT[act]),
            dilationWFactor=1,
            dilationHFactor=1,
        )
        if depthwise:
            self.op(
                "DEPTHWISE_CONV_2D",
                [x, wt, bt],
                [y],
                "DepthwiseConv2DOptions",
                depthMultiplier=1,
                **fields,
            )
        else:
            self.op("CONV_2D", [x, wt, bt], [y], "Conv2DOptions", **fields)
        layer = dict(
            kind="dw" if depthwise else "conv",
            w=wq,
            bias=bias,
            s_w=s_w,
            s_in=s_in,
            zp_in=zp_in,
            s_out=s_out,
            zp_out=zp_out,
            stride=stride,
            padding=padding,
            act=act,
        )
        return y, out_shape, (s_out, zp_out), layer, _calibration_out(acc, s_b, s_out, zp_out, act)


def mobilenet_like(size=160, width=16, seed=0):
    """A MobileNet-v1-shaped int8 model: a 3x3/2 conv, then depthwise-separable blocks.

    Returns (tflite bytes, input (scale, zp), layers). Random weights: this measures latency
    and checks arithmetic, it classifies nothing.
    """
    rng = np.random.default_rng(seed)
    sample = rng.integers(-128, 128, size=(1, size, size, 3)).astype(np.int8)
    g = GraphBuilder()
    q = (np.float32(1 / 128), 0)
    shape = (1, size, size, 3)
    x = g.tensor(shape, "int8", q[0], q[1], name="input")
    inp = x
    layers = []
    x, shape, q, L, sample = g.conv(x, shape, q, width, 3, 2, rng, sample)
    layers.append(L)
    # (channels, stride) of the separable blocks: MobileNet v1's first seven, at 1/2 width.
    for cout, st in ((2, 1), (4, 2), (4, 1), (8, 2), (8, 1), (16, 2), (16, 1)):
        x, shape, q, L, sample = g.conv(x, shape, q, None, 3, st, rng, sample, depthwise=True)
        layers.append(L)
        x, shape, q, L, sample = g.conv(x, shape, q, width * cout, 1, 1, rng, sample)
        layers.append(L)
    return g.build([inp], [x]), (np.float32(1 / 128), 0), layers
