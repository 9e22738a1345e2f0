// SPDX-License-Identifier: MIT
// AII unix build: the standard variant's features plus the frozen `aii` package.
// Used as VARIANT_DIR of ports/unix (the include resolves against the port directory).
#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)

#include "variants/mpconfigvariant_common.h"
