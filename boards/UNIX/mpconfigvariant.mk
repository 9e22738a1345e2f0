# SPDX-License-Identifier: MIT
# AII unix build (VARIANT_DIR=<repo>/boards/UNIX). Features whose libraries live in MicroPython
# submodules (berkeley-db, libffi, mbedtls) are off, so a plain checkout builds.
FROZEN_MANIFEST = $(abspath $(VARIANT_DIR))/manifest.py

MICROPY_PY_BTREE = 0
MICROPY_PY_FFI = 0
MICROPY_PY_SSL = 0
MICROPY_SSL_AXTLS = 0
MICROPY_SSL_MBEDTLS = 0
