# SPDX-License-Identifier: MIT
# MicroPython side of the build, called by the Makefile:
#
#   tools/mpy_build.sh firmware        build BOARD (UNIX, MPS2_AN385) with _aii and the frozen aii package;
#                                      boards/<BOARD>/board.env boards print what SDK they need
#   tools/mpy_build.sh test-device     tests/device/*.py on the unix build and on MPS2_AN385 under qemu
#   tools/mpy_build.sh test-mpy-suite  MicroPython's own tests (basics, ...) on MPS2_AN385, with and
#                                      without _aii: fails only on a test that _aii makes fail
#   tools/mpy_build.sh size            text/data/bss of MPS2_AN385 with and without _aii
#   tools/mpy_build.sh flash           put the firmware of BOARD on PORT
#
# Environment: MICROPY_DIR (a MicroPython v1.28.0 tree; submodules are not needed), BOARD, PORT,
# PYTHON (default .venv/bin/python), JOBS (default: number of cores), MPY_SUITE_DIRS.
# Build output goes to build/ in this repository, never into MICROPY_DIR (except what
# MicroPython's makefiles write there themselves).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD="$REPO/build"
RESULTS="$BUILD/results"
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
MICROPY_DIR=${MICROPY_DIR:-}
BOARD=${BOARD:-}
PORT=${PORT:-}
MPY_SUITE_DIRS=${MPY_SUITE_DIRS:-basics micropython float misc extmod}
WANT_VERSION=1.28.0
SKIP_HINT="set MICROPY_DIR to a MicroPython v$WANT_VERSION tree (git clone -b v$WANT_VERSION https://github.com/micropython/micropython ~/micropython)"
QEMU_MPS2="qemu-system-arm -machine mps2-an385 -nographic -monitor null -semihosting"

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

# The manifest tool insists on a micropython-lib checkout even when nothing is require()d; our
# manifests require nothing, so a placeholder stands in when the submodule is not checked out.
mpy_lib_dir() {
    if [ -f "$MICROPY_DIR/lib/micropython-lib/README.md" ]; then
        echo "$MICROPY_DIR/lib/micropython-lib"
    else
        mkdir -p "$BUILD/no-micropython-lib"
        echo "placeholder for lib/micropython-lib: AII manifests require() nothing" \
            >"$BUILD/no-micropython-lib/README.md"
        echo "$BUILD/no-micropython-lib"
    fi
}

# mpy-cross from the same tree (freezing needs the exact bytecode version), built under build/.
build_mpy_cross() {
    make -C "$MICROPY_DIR/mpy-cross" BUILD="$BUILD/mpy-cross" -j"$JOBS" >"$BUILD/mpy-cross.log" 2>&1 \
        || { tail -30 "$BUILD/mpy-cross.log"; die "mpy-cross build failed (log: $BUILD/mpy-cross.log)"; }
}

# Common make variables: our C modules, our mpy-cross, the micropython-lib stand-in.
make_port() {
    local port=$1 log=$2
    shift 2
    mkdir -p "$BUILD"
    build_mpy_cross
    say "building $port ($*)"
    if ! make -C "$MICROPY_DIR/ports/$port" -j"$JOBS" \
        MICROPY_MPYCROSS="$BUILD/mpy-cross/mpy-cross" MPY_LIB_DIR="$(mpy_lib_dir)" "$@" \
        >"$log" 2>&1; then
        grep -E 'error|Error' "$log" | head -20 || true
        die "$port build failed (log: $log)"
    fi
}

build_unix() {
    make_port unix "$BUILD/unix.log" VARIANT_DIR="$REPO/boards/UNIX" BUILD="$BUILD/unix" \
        USER_C_MODULES="$REPO/c_modules"
    say "built $BUILD/unix/micropython"
}

# $1: build dir; $2: "aii" to include _aii (the frozen aii package is in both).
build_mps2() {
    command -v arm-none-eabi-gcc >/dev/null \
        || die "MPS2_AN385 needs arm-none-eabi-gcc (make setup installs gcc-arm-none-eabi)"
    local mods=()
    [ "$2" = aii ] && mods=(USER_C_MODULES="$REPO/c_modules")
    # MicroPython's makefiles do not regenerate qstrs when the board's flags change (e.g. a
    # new VFS), so a changed mpconfigboard.mk starts the build afresh.
    local stamp
    stamp=$(cksum <"$REPO/boards/MPS2_AN385/mpconfigboard.mk")
    if [ -d "$1" ] && [ "$(cat "$1/.aii-board" 2>/dev/null)" != "$stamp" ]; then
        say "boards/MPS2_AN385 changed: rebuilding $1 from scratch"
        rm -rf "$1"
    fi
    mkdir -p "$1" && echo "$stamp" >"$1/.aii-board"
    make_port qemu "$1.log" BOARD=MPS2_AN385 BOARD_DIR="$REPO/boards/MPS2_AN385" BUILD="$1" \
        "${mods[@]}"
    say "built $1/firmware.elf"
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

# Boards built with an SDK this setup lacks are described by boards/<BOARD>/board.env
# (PORT_DIR, MPY_BOARD, SDK, SDK_CHECK, SDK_TOOL, BUILD_CMD, IMAGE, SERIAL, BAUD, FLASH_TOOL,
# FLASH_CMD); its $MICROPY_DIR, $REPO, $IMAGE and $PORT are expanded when it is read.
load_board_env() {
    local env="$REPO/boards/$BOARD/board.env"
    [ -f "$env" ] || die "$1: unknown BOARD=$BOARD (boards: $(ls "$REPO/boards" | paste -sd' '))"
    MICROPY_DIR=${MICROPY_DIR:-\$MICROPY_DIR}
    PORT=${PORT:-$(. "$env" && echo "$SERIAL")}
    # shellcheck disable=SC1090
    . "$env"
}

build_sdk_board() {
    load_board_env firmware
    local missing=""
    have_micropython || missing="a MicroPython v$WANT_VERSION tree in MICROPY_DIR and $SDK"
    [ -z "$missing" ] && [ ! -e "$SDK_CHECK" ] && missing="$SDK"
    [ -z "$missing" ] && ! command -v "$SDK_TOOL" >/dev/null && missing="$SDK_TOOL ($SDK)"
    if [ -n "$missing" ]; then
        echo "firmware: BOARD=$BOARD (MicroPython port $PORT_DIR) needs $missing, not on this machine."
        echo "On a machine that has it, build with:"
        echo "  $BUILD_CMD"
        echo "image: $IMAGE"
        exit 2
    fi
    say "building $PORT_DIR BOARD=$MPY_BOARD: $BUILD_CMD"
    eval "$BUILD_CMD"
    say "built $IMAGE"
}

cmd_firmware() {
    case "${BOARD:-UNIX}" in
        UNIX) need_micropython firmware; build_unix ;;
        MPS2_AN385) need_micropython firmware; build_mps2 "$BUILD/mps2-an385" aii ;;
        *) build_sdk_board ;;
    esac
}

cmd_test_device() {
    if ! have_micropython; then
        echo "SKIP test-device: $SKIP_HINT"
        skip_result test-device
        exit 0
    fi
    need_micropython test-device
    cpython_env
    local tests=("$REPO"/tests/device/*.py) rc=0
    rm -f "$RESULTS/test-device.json"
    build_unix
    rm -rf "$RESULTS/device-unix"
    say "tests/device on unix"
    MICROPY_MICROPYTHON="$BUILD/unix/micropython" \
        run_tests -r "$RESULTS/device-unix" "${tests[@]}" || rc=1
    if command -v qemu-system-arm >/dev/null && command -v arm-none-eabi-gcc >/dev/null; then
        build_mps2 "$BUILD/mps2-an385" aii
        rm -rf "$RESULTS/device-mps2"
        say "tests/device on MPS2_AN385 (qemu)"
        run_tests -t execpty:"$QEMU_MPS2 -serial pty -kernel $BUILD/mps2-an385/firmware.elf" \
            -r "$RESULTS/device-mps2" "${tests[@]}" || rc=1
    else
        echo "SKIP tests/device on MPS2_AN385: qemu-system-arm or arm-none-eabi-gcc missing (make setup)"
        skip_result device-mps2
    fi
    return $rc
}

# Names of failed tests in a run-tests.py result dir.
failed_tests() {
    "$PYTHON" - "$1/_results.json" <<'EOF'
import json, sys
for name, kind, _ in json.load(open(sys.argv[1]))["results"]:
    if kind == "fail":
        print(name)
EOF
}

cmd_test_mpy_suite() {
    need_micropython test-mpy-suite
    command -v qemu-system-arm >/dev/null || die "test-mpy-suite needs qemu-system-arm (make setup)"
    local out="$BUILD/mpy-suite" dirs
    read -r -a dirs <<<"$MPY_SUITE_DIRS"
    build_mps2 "$BUILD/mps2-an385" aii
    build_mps2 "$BUILD/mps2-an385-base" base
    # Tests written with unittest need micropython-lib's unittest frozen in, which AII images
    # do not carry; run-tests.py would abort the whole run at the first one.
    local unittest_tests
    unittest_tests=$(cd "$MICROPY_DIR/tests" && grep -lE '^(import|from) unittest' \
        $(printf '%s/*.py ' "${dirs[@]}") 2>/dev/null | sed 's/\./\\./g' | paste -sd'|' || true)
    local exclude=()
    if [ -n "$unittest_tests" ]; then
        exclude=(-e "($unittest_tests)")
        say "leaving out $(echo "$unittest_tests" | tr '|' '\n' | wc -l) unittest-based tests"
    fi
    for img in mps2-an385 mps2-an385-base; do
        rm -rf "$out/$img"
        say "MicroPython tests (${dirs[*]}) on $img"
        # A failing test is compared below; the exit code is not the verdict here.
        run_tests -t execpty:"$QEMU_MPS2 -serial pty -kernel $BUILD/$img/firmware.elf" \
            -r "$out/$img" -d "${dirs[@]}" "${exclude[@]}" >"$out-$img.log" 2>&1 || true
        tail -3 "$out-$img.log"
        [ -f "$out/$img/_results.json" ] || die "no results for $img (log: $out-$img.log)"
    done
    local new
    new=$(comm -23 <(failed_tests "$out/mps2-an385" | sort) <(failed_tests "$out/mps2-an385-base" | sort))
    if [ -n "$new" ]; then
        echo "$new"
        die "test-mpy-suite: the tests above fail only with _aii (logs: $out-*.log)"
    fi
    say "test-mpy-suite: _aii breaks no test (failures without _aii too: $(failed_tests "$out/mps2-an385-base" | wc -l))"
}

cmd_size() {
    need_micropython size
    build_mps2 "$BUILD/mps2-an385" aii
    build_mps2 "$BUILD/mps2-an385-base" base
    local with without
    with=$(arm-none-eabi-size "$BUILD/mps2-an385/firmware.elf" | awk 'NR==2{print $1, $2, $3}')
    without=$(arm-none-eabi-size "$BUILD/mps2-an385-base/firmware.elf" | awk 'NR==2{print $1, $2, $3}')
    read -r t1 d1 b1 <<<"$with"
    read -r t0 d0 b0 <<<"$without"
    echo "MPS2_AN385 with _aii:    text $t1 data $d1 bss $b1"
    echo "MPS2_AN385 without _aii: text $t0 data $d0 bss $b0"
    echo "_aii costs: text $((t1 - t0)) data $((d1 - d0)) bss $((b1 - b0)) bytes"
}

cmd_flash() {
    case "${BOARD:-}" in
        UNIX) echo "flash: nothing to flash for UNIX; run $BUILD/unix/micropython (make firmware BOARD=UNIX)" ;;
        MPS2_AN385)
            [ -f "$BUILD/mps2-an385/firmware.elf" ] || die "flash: build first: make firmware BOARD=MPS2_AN385"
            echo "flash: MPS2_AN385 is a qemu machine; its REPL:"
            echo "  $QEMU_MPS2 -serial mon:stdio -kernel $BUILD/mps2-an385/firmware.elf"
            ;;
        "") die "flash: set BOARD (and PORT for a real board)" ;;
        *) flash_sdk_board ;;
    esac
}

# Runs the port's usual flashing tool only when it is installed and the image exists.
flash_sdk_board() {
    load_board_env flash
    echo "flash: BOARD=$BOARD PORT=$PORT ($BAUD baud): $FLASH_CMD"
    [ -f "$IMAGE" ] || die "flash: no image at $IMAGE; build it first (make firmware BOARD=$BOARD)"
    command -v "$FLASH_TOOL" >/dev/null \
        || die "flash: $FLASH_TOOL is not installed; run the command above where it is"
    eval "$FLASH_CMD"
}

case "${1:-}" in
    firmware) cmd_firmware ;;
    test-device) cmd_test_device ;;
    test-mpy-suite) cmd_test_mpy_suite ;;
    size) cmd_size ;;
    flash) cmd_flash ;;
    *) die "usage: tools/mpy_build.sh firmware|test-device|test-mpy-suite|size|flash" ;;
esac
