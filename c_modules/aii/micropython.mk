# SPDX-License-Identifier: MIT
# Make ports (unix, qemu, stm32, ...): pass USER_C_MODULES=<repo>/c_modules.
AII_MOD_DIR := $(USERMOD_DIR)

# The binding (mod_aii*.c, one file per area) is scanned for QSTRs; the plain-C core is not (it
# never includes py/).
SRC_USERMOD_C += $(sort $(wildcard $(AII_MOD_DIR)/mod_aii*.c))
SRC_USERMOD_LIB_C += $(sort $(wildcard $(AII_MOD_DIR)/core/*.c))

# No -I for core/: CFLAGS_USERMOD reaches every file of the port, where a core header could
# shadow a system one. mod_aii.h includes "core/aii_sched.h" and friends by path instead.
