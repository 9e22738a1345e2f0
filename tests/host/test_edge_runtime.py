# SPDX-License-Identifier: MIT
"""LiteRT loader and capability probe: fallbacks and errors."""

import ai_edge_litert  # noqa: F401 - in the repository or pinned: missing fails, not skips
import numpy as np
import pytest
from aii_host import AIIError
from aii_host.edge import runtime
from aii_host.edge.errors import ModelError
from aii_host.edge.tflite_build import GraphBuilder


def tiny_add():
    g = GraphBuilder()
    a = g.tensor((1, 4), "int8", 0.1, 0, name="a")
    b = g.tensor((1, 4), "int8", 0.1, 0, name="b")
    y = g.tensor((1, 4), "int8", 0.2, 0, name="y")
    g.op("ADD", [a, b], [y], "AddOptions", fusedActivationFunction=0)
    return g.build([a, b], [y])


def test_probe_reports_board():
    p = runtime.probe()
    assert p["cores"] >= 1 and p["mem_total_bytes"] > 0
    assert p["runtime"] == "ai-edge-litert" and p["runtime_version"] != "?"
    assert set(p["delegates"]) >= {"xnnpack", "gpu", "edgetpu"}
    for k in ("gpu", "edgetpu"):
        assert p["delegates"][k].startswith(("loads: ", "absent ("))


def test_missing_delegate_falls_back_to_cpu_with_a_note():
    m = runtime.Model(content=tiny_add(), delegate="/nonexistent/libnope.so")
    assert m.delegate == "cpu"
    assert len(m.notes) == 1 and "running on cpu" in m.notes[0]
    a = np.array([[10, 20, -30, 127]], np.int8)
    out = m.run(a, a)[0]
    assert out.tolist() == [[10, 20, -30, 127]]  # (a + a) * 0.1 / 0.2 == a


def test_model_errors():
    with pytest.raises(ModelError, match="give one of path, content"):
        runtime.Model()
    with pytest.raises(ModelError, match="no model file"):
        runtime.Model("/nonexistent/model.tflite")
    with pytest.raises(ModelError, match="resolver must be one of"):
        runtime.Model(content=tiny_add(), resolver="fast")
    with pytest.raises(ModelError, match="threads must be >= 1"):
        runtime.Model(content=tiny_add(), threads=0)
    with pytest.raises(ModelError, match="cannot load model"):
        runtime.Model(content=b"not a flatbuffer at all")
    m = runtime.Model(content=tiny_add())
    with pytest.raises(ModelError, match=r"input 0 wants \(1, 4\) int8, got \(4,\) int8"):
        m.set_input(np.zeros(4, np.int8))
    with pytest.raises(ModelError, match="no output named"):
        m.output_by_name("nope")
    assert issubclass(ModelError, AIIError)


def test_describe():
    d = runtime.Model(content=tiny_add(), threads=1, resolver="ref").describe()
    assert d["resolver"] == "ref" and d["threads"] == 1 and d["delegate"] == "cpu"
    assert d["inputs"] == [("a", (1, 4), "int8"), ("b", (1, 4), "int8")]
