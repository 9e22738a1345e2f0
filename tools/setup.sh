#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs everything a fresh machine needs: apt toolchains, .venv with pinned dev packages,
# and the host package (editable, with its cffi extension). Idempotent and quick when done:
# each step is skipped unless something it depends on is missing or newer than its stamp.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
STAMPS=build/setup
VENV=.venv
mkdir -p "$STAMPS"

log() { printf 'setup: %s\n' "$*"; }

# pip is chatty about this machine's local index mirrors; keep its output in a log and show
# the tail only when it fails.
pip_q() {
    if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" \
            >"$STAMPS/pip.log" 2>&1; then
        tail -n 40 "$STAMPS/pip.log" >&2
        log "pip install $* failed (full log: $STAMPS/pip.log)"
        exit 1
    fi
}

# --- 1. apt packages (only when a tool is missing) ---------------------------------------
missing=()
command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
command -v arm-none-eabi-gcc >/dev/null || missing+=(gcc-arm-none-eabi binutils-arm-none-eabi)
[ -d /usr/lib/arm-none-eabi/newlib ] || missing+=(libnewlib-arm-none-eabi)
# RV32 (tools/ctest.py, the qemu VIRT_RV32 image): Debian's bare-metal RISC-V gcc has rv32
# multilibs but no C library; picolibc is the one MicroPython's qemu port selects too.
command -v qemu-system-riscv32 >/dev/null || missing+=(qemu-system-misc)
command -v riscv64-unknown-elf-gcc >/dev/null || missing+=(gcc-riscv64-unknown-elf)
[ -d /usr/lib/picolibc/riscv64-unknown-elf ] || missing+=(picolibc-riscv64-unknown-elf)
command -v valgrind >/dev/null || missing+=(valgrind)
# MPI for `aii particles run --procs K` (mpi4py, pinned in requirements-dev.txt, runs over it).
command -v mpirun >/dev/null || missing+=(openmpi-bin)
[ -n "$(compgen -G '/usr/lib/*/openmpi/include/mpi.h')" ] || missing+=(libopenmpi-dev)
# aii dashboard's tests (docs/dashboard.md): a real browser (Playwright drives Debian's chromium,
# no browser download), a real Prometheus server and promtool (check the alerting rules).
command -v chromium >/dev/null || missing+=(chromium)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
command -v make >/dev/null || missing+=(make)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing apt packages: ${missing[*]}"
    SUDO=
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # Debian's prometheus package starts its own service where systemd runs; the tests start
    # their own server (own config, free port), so the package's is stopped again.
    if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null \
            && systemctl is-active --quiet prometheus 2>/dev/null; then
        $SUDO systemctl disable --now prometheus || true
    fi
fi

# --- 2. venv with pinned dev packages ----------------------------------------------------
# The stamp holds the hash of the requirements file, so editing a pin reinstalls.
REQ=tools/requirements-dev.txt
req_hash=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMPS/venv.stamp" 2>/dev/null)" != "$req_hash" ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    log "installing $REQ"
    pip_q -r "$REQ"
    echo "$req_hash" >"$STAMPS/venv.stamp"
    rm -f "$STAMPS/host.stamp"
fi

# --- 3. host package, editable --------------------------------------------------------------
# Its cffi extension compiles the C core and reads its headers, so a core source newer than the
# stamp (or any change to the host build files) triggers a reinstall, which rebuilds it.
if [ -f host/pyproject.toml ]; then
    stale=
    if [ ! -f "$STAMPS/host.stamp" ]; then
        stale=1
    elif [ -n "$(find host/pyproject.toml host/setup.py host/setup.cfg host/aii_host \
            c_modules/aii/core \( -name '*.c' -o -name '*.h' -o -name 'pyproject.toml' \
            -o -name 'setup.py' -o -name 'setup.cfg' -o -name '_build_*.py' -o -name '_headers.py' \) \
            -newer "$STAMPS/host.stamp" 2>/dev/null | head -1)" ]; then
        stale=1
    fi
    if [ -n "$stale" ]; then
        log "installing host package (editable, builds the cffi extension)"
        pip_q --no-build-isolation -e host
        touch "$STAMPS/host.stamp"
    fi
else
    log "host/pyproject.toml is missing: no host package to install (a broken checkout?)"
    exit 1
fi

# --- 4. models (aii_host.edge): the face detector from the mediapipe wheel; quick when present --
"$VENV/bin/python" tools/fetch_models.py

# Make's own stamp, so `make <target>` does not re-run this script every time.
touch build/.setup.stamp
log "ok ($ROOT)"
