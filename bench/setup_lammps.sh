#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The bench's own setup: Debian's LAMMPS (its `lmp`), for bench/particles_bench.py only;
# `make setup` does not install it (a large package the tests do not need).
set -euo pipefail
if command -v lmp >/dev/null; then
    exit 0
fi
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
echo "setup_lammps: installing Debian's lammps (for bench/particles_bench.py)"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends lammps
