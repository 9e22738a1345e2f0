# SPDX-License-Identifier: MIT
"""Loads .tflite models with LiteRT (or tflite-runtime) and probes what the board offers.

ai-edge-litert is the maintained runtime and applies XNNPACK to float and int8 graphs by default;
tflite-runtime is the fallback for boards where only it is installed (it needs numpy < 2). A
delegate (GPU, Edge TPU) is tried by loading its library; when that fails the model runs on the
CPU and the reason is kept in Model.notes, never swallowed.
"""

import os

import numpy as np

from .errors import ModelError, RuntimeMissingError

# Shared libraries a board may have for accelerators, tried in order by probe() and load().
GPU_LIBS = ("libLiteRtGpuAccelerator.so", "libtensorflowlite_gpu_delegate.so")
EDGETPU_LIBS = ("libedgetpu.so.1", "libedgetpu.so")
RESOLVERS = ("auto", "ref", "no-default-delegates")


def _backend():
    """(name, version, interpreter module) of the first runtime that imports."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        from ai_edge_litert import interpreter as mod

        try:
            ver = version("ai-edge-litert")
        except PackageNotFoundError:  # metadata is best effort; the module itself imported
            ver = "?"
        return "ai-edge-litert", ver, mod
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter as mod

        return "tflite-runtime", getattr(mod, "__version__", "?"), mod
    except ImportError:
        raise RuntimeMissingError(
            "no tflite runtime: pip install ai-edge-litert (or tflite-runtime)"
        ) from None


def _try_delegate(mod, libs):
    """The first delegate of libs that loads, as (delegate, lib, None), else (None, None, why)."""
    import ctypes

    why = []
    for lib in libs:
        # Look for the library first: LiteRT's Delegate raises from its own __del__ (a noisy
        # "Exception ignored") when constructed for a library that is not there.
        try:
            ctypes.CDLL(lib)
        except OSError as e:
            why.append(f"{lib}: {str(e).strip()[:80] or 'not found'}")
            continue
        try:
            return mod.load_delegate(lib), lib, None
        except (ValueError, OSError, RuntimeError) as e:
            why.append(
                "{}: {}".format(lib, str(e).strip().splitlines()[0][:80] if str(e) else "failed")
            )
    return None, None, "; ".join(why)


def _mem_total():
    try:
        import psutil

        return psutil.virtual_memory().total
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def probe():
    """What this board offers: cores, memory, runtime and which delegates load.

    XNNPACK is not a separate library: LiteRT and tflite-runtime apply it by default to the graph
    (the "auto" resolver), so it is reported as present whenever a runtime is.
    """
    info = {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_total_bytes": _mem_total(),
        "machine": os.uname().machine,
    }
    try:
        name, ver, mod = _backend()
    except RuntimeMissingError as e:
        info.update(runtime=None, runtime_error=str(e), delegates={})
        return info
    info["runtime"] = name
    info["runtime_version"] = ver
    delegates = {"xnnpack": f"default (built into {name})", "cpu_ref": "available"}
    for key, libs in (("gpu", GPU_LIBS), ("edgetpu", EDGETPU_LIBS)):
        d, lib, why = _try_delegate(mod, libs)
        delegates[key] = (f"loads: {lib}") if d is not None else (f"absent ({why})")
    info["delegates"] = delegates
    return info


class Model:
    """One loaded interpreter with its tensors described once.

    Model(path=None, content=None, *, threads=None, delegate=None, resolver="auto")

    delegate: None (CPU; XNNPACK by default), "gpu", "edgetpu" or a library path. A delegate
    that fails to load or to apply falls back to the CPU; `notes` says why.
    resolver: "auto" (optimised kernels, XNNPACK applied), "ref" (TFLite reference kernels, used
    by the golden tests) or "no-default-delegates" (optimised kernels without XNNPACK).
    """

    def __init__(self, path=None, content=None, *, threads=None, delegate=None, resolver="auto"):
        if (path is None) == (content is None):
            raise ModelError("give one of path, content")
        if resolver not in RESOLVERS:
            raise ModelError("resolver must be one of {}".format(", ".join(RESOLVERS)))
        if threads is not None and threads < 1:
            raise ModelError("threads must be >= 1")
        if path is not None and not os.path.isfile(path):
            raise ModelError(f"no model file {path}")
        self.runtime, self.runtime_version, mod = _backend()
        self.path = path
        self.threads = threads
        self.resolver = resolver
        self.notes = []
        kw = {"num_threads": threads}
        kw["model_path" if path is not None else "model_content"] = path if path else content
        if resolver != "auto":
            rt = mod.OpResolverType
            kw["experimental_op_resolver_type"] = (
                rt.BUILTIN_REF if resolver == "ref" else rt.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        self.delegate = "cpu"
        delegates = []
        if delegate is not None:
            libs = {"gpu": GPU_LIBS, "edgetpu": EDGETPU_LIBS}.get(delegate, (delegate,))
            d, lib, why = _try_delegate(mod, libs)
            if d is None:
                self.notes.append(f"delegate {delegate} unavailable, running on cpu: {why}")
            else:
                delegates = [d]
                self.delegate = lib
        try:
            self._it = self._make(mod, kw, delegates)
        except (ValueError, RuntimeError) as e:
            if not delegates:
                raise ModelError(f"cannot load model: {str(e).strip()[:200]}") from None
            # The delegate loaded but refused the graph: the CPU still can run it.
            self.notes.append(f"delegate {self.delegate} failed, running on cpu: {e}")
            self.delegate = "cpu"
            self._it = self._make(mod, kw, [])
        self.inputs = self._it.get_input_details()
        self.outputs = self._it.get_output_details()

    @staticmethod
    def _make(mod, kw, delegates):
        it = mod.Interpreter(experimental_delegates=delegates or None, **kw)
        it.allocate_tensors()
        return it

    def set_input(self, x, i=0):
        d = self.inputs[i]
        x = np.asarray(x)
        want = tuple(int(v) for v in d["shape"])
        if tuple(x.shape) != want or x.dtype != d["dtype"]:
            raise ModelError(
                f"input {i} wants {want} {np.dtype(d['dtype']).name}, "
                f"got {tuple(x.shape)} {x.dtype.name}"
            )
        self._it.set_tensor(d["index"], x)

    def invoke(self):
        self._it.invoke()

    def output(self, i=0):
        return self._it.get_tensor(self.outputs[i]["index"])

    def output_by_name(self, name):
        for d in self.outputs:
            if d["name"] == name:
                return self._it.get_tensor(d["index"])
        raise ModelError(f"no output named {name}")

    def run(self, *xs):
        """set inputs, invoke, return copies of every output (in the model's output order)."""
        for i, x in enumerate(xs):
            self.set_input(x, i)
        self.invoke()
        return [self.output(i).copy() for i in range(len(self.outputs))]

    def describe(self):
        return {
            "path": self.path,
            "runtime": f"{self.runtime} {self.runtime_version}",
            "resolver": self.resolver,
            "delegate": self.delegate,
            "threads": self.threads,
            "inputs": [
                (d["name"], tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"]).name)
                for d in self.inputs
            ],
            "outputs": [
                (d["name"], tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"]).name)
                for d in self.outputs
            ],
            "notes": list(self.notes),
        }
