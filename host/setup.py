# SPDX-License-Identifier: MIT
# Metadata lives in pyproject.toml; setup.py only exists because cffi_modules needs it.
import os

from setuptools import setup
from setuptools.command.build_ext import build_ext


class _BuildExt(build_ext):
    # The C core's sources are ../c_modules/...: their objects would go to build_temp/.., a
    # folder every build on the machine shares (another checkout's objects got linked in).
    # One level deeper keeps them inside this build's own temp folder.
    def finalize_options(self):
        super().finalize_options()
        self.build_temp = os.path.join(self.build_temp, "core")


setup(cffi_modules=["aii_host/core/_build_aii.py:ffibuilder"], cmdclass={"build_ext": _BuildExt})
