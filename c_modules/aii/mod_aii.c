// SPDX-License-Identifier: MIT
// _aii: the MicroPython module of the AII core (docs/scheduler.md, docs/ledger.md). This file
// is only its table of names; each area is its own file (mod_aii.h lists them).
#include "mod_aii.h"

// The module's names: OBJ(name, object) and INT(name, value). A native .mpy stores the same
// list with mp_store_global() at import.
#define AII_MODULE_GLOBALS(OBJ, INT) \
    OBJ(Scheduler, aii_type_Scheduler) \
    OBJ(AdmissionError, mp_type_AdmissionError) \
    INT(CONTINUE, AII_POLICY_CONTINUE) \
    INT(SKIP, AII_POLICY_SKIP) \
    INT(DROP, AII_POLICY_DROP) \
    INT(MISS, AII_EVENT_MISS) \
    INT(OVERRUN, AII_EVENT_OVERRUN) \
    INT(DROPPED, AII_EVENT_DROP) \
    INT(MAX_TASKS, AII_SCHED_MAX_TASKS) \
    OBJ(Ledger, aii_type_Ledger) \
    OBJ(BalanceError, mp_type_BalanceError) \
    OBJ(InsufficientError, mp_type_InsufficientError) \
    OBJ(CorruptError, mp_type_CorruptError) \
    OBJ(fx_parse, aii_mod_fx_parse_obj) \
    OBJ(fx_parse_exact, aii_mod_fx_parse_exact_obj) \
    OBJ(fx_format, aii_mod_fx_format_obj) \
    OBJ(fx_mul, aii_mod_fx_mul_obj) \
    OBJ(fx_div, aii_mod_fx_div_obj) \
    OBJ(fx_rescale, aii_mod_fx_rescale_obj) \
    OBJ(fx_muldiv, aii_mod_fx_muldiv_obj) \
    OBJ(Q, aii_mod_q_obj) \
    OBJ(DEC, aii_mod_dec_obj) \
    OBJ(check_sum, aii_mod_check_sum_obj) \
    OBJ(exact_sum, aii_mod_exact_sum_obj) \
    OBJ(crc32, aii_mod_crc32_obj) \
    INT(HOLD, AII_HOLD_DEBIT) \
    INT(CREDIT, AII_HOLD_CREDIT) \
    INT(MAX_QTY, AII_LEDGER_MAX_QTY) \
    INT(MAX_ACCOUNTS, AII_LEDGER_MAX_ACCOUNTS) \
    INT(MAX_HOLDS, AII_LEDGER_MAX_HOLDS) \
    INT(JOURNAL, AII_LEDGER_JOURNAL) \
    INT(SEGMENT, AII_LEDGER_SEGMENT) \
    INT(RECORD_SIZE, AII_LEDGER_REC_SIZE) \
    INT(DIGEST_SIZE, AII_LEDGER_DIGEST_LEN) \
    AII_PARTICLES_GLOBALS(OBJ, INT)

// The particle kernel is out of the minimal configuration (core/particles.h).
#if AII_HAS_PARTICLES
#define AII_PARTICLES_GLOBALS(OBJ, INT) OBJ(Particles, aii_type_Particles)
#else
#define AII_PARTICLES_GLOBALS(OBJ, INT)
#endif

#if !AII_DYNRUNTIME
#define AII_GLOBAL_OBJ(name, obj) { MP_ROM_QSTR(MP_QSTR_##name), MP_ROM_PTR(&obj) },
#define AII_GLOBAL_INT(name, value) { MP_ROM_QSTR(MP_QSTR_##name), MP_ROM_INT(value) },

static const mp_rom_map_elem_t aii_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__aii) },
    AII_MODULE_GLOBALS(AII_GLOBAL_OBJ, AII_GLOBAL_INT)
};
static MP_DEFINE_CONST_DICT(aii_module_globals, aii_module_globals_table);

const mp_obj_module_t aii_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&aii_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR__aii, aii_user_cmodule);
#else
#define AII_STORE_OBJ(name, obj) mp_store_global(MP_QSTR_##name, MP_OBJ_FROM_PTR(&obj));
#define AII_STORE_INT(name, value) mp_store_global(MP_QSTR_##name, MP_OBJ_NEW_SMALL_INT(value));

void aii_natmod_store_globals(void) {
    AII_MODULE_GLOBALS(AII_STORE_OBJ, AII_STORE_INT)
}
#endif
