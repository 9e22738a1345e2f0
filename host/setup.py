# SPDX-License-Identifier: MIT
# Metadata lives in pyproject.toml; setup.py only exists because cffi_modules needs it.
from setuptools import setup

setup(cffi_modules=["aii_host/_build_aii.py:ffibuilder"])
