# SPDX-License-Identifier: MIT
# Metadata lives in pyproject.toml; setup.py only exists because cffi_modules needs it, and for
# the copies a package built outside the checkout needs (docs/architecture.md §5): the C core's
# sources (aii_core/, a link to ../c_modules/aii/core in the checkout) and the firmware
# (aii_host/_firmware/, from ../firmware). Both are copied when the package is built, never kept
# by hand: an sdist carries them as real files, and a wheel built from it takes them from there.
import importlib.util
import os
import shutil

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(HERE)
CORE = os.path.join(CHECKOUT, "c_modules", "aii", "core")
# The firmware packages `aii vboard`, `deploy` and `demo` run, from the one module that names
# them (loaded by path: aii_host itself cannot be imported before its extension is built).
_spec = importlib.util.spec_from_file_location(
    "aii_host_paths", os.path.join(HERE, "aii_host", "core", "paths.py")
)
_paths = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_paths)
FIRMWARE = _paths.FIRMWARE_PACKAGES
SHIPPED = os.path.join("aii_host", "_firmware")


def _firmware_source():
    """firmware/ of the checkout, else the copy an sdist carries; None when neither exists."""
    for base in (os.path.join(CHECKOUT, "firmware"), os.path.join(HERE, SHIPPED)):
        if all(os.path.isfile(os.path.join(base, p, "__init__.py")) for p in FIRMWARE):
            return base
    return None


def _copy_firmware(dest):
    src = _firmware_source()
    if src is None:
        raise SystemExit("setup.py: no firmware/ (neither ../firmware nor aii_host/_firmware)")
    for pkg in FIRMWARE:
        out = os.path.join(dest, pkg)
        shutil.rmtree(out, ignore_errors=True)
        # What a board runs: its .py files and the mip package.json (no caches).
        shutil.copytree(
            os.path.join(src, pkg), out, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )


class _BuildExt(build_ext):
    # The C core's sources are ../c_modules/...: their objects would go to build_temp/.., a
    # folder every build on the machine shares (another checkout's objects got linked in).
    # One level deeper keeps them inside this build's own temp folder.
    def finalize_options(self):
        super().finalize_options()
        self.build_temp = os.path.join(self.build_temp, "core")


class _BuildPy(build_py):
    def run(self):
        super().run()
        if not self.editable_mode:  # an editable install runs firmware/ of the checkout
            _copy_firmware(os.path.join(self.build_lib, SHIPPED))


class _Sdist(sdist):
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        core = os.path.join(base_dir, "aii_core")
        if os.path.islink(core) or os.path.isfile(core):
            os.remove(core)
        shutil.rmtree(core, ignore_errors=True)
        src = CORE if os.path.isdir(CORE) else os.path.join(HERE, "aii_core")
        shutil.copytree(src, core, ignore=shutil.ignore_patterns("*.o", "__pycache__"))
        _copy_firmware(os.path.join(base_dir, SHIPPED))


setup(
    cffi_modules=["aii_host/core/_build_aii.py:ffibuilder"],
    cmdclass={"build_ext": _BuildExt, "build_py": _BuildPy, "sdist": _Sdist},
)
