// SPDX-License-Identifier: MIT
// _aii, the MicroPython binding of the AII core (docs/architecture.md): one file per area, each
// converting arguments, calling the core and raising what it says.
//
//   mod_aii.c         the module: its table of names and its registration
//   mod_aii_sched.c   Scheduler (the run loop asks the core for each step: aii_sched_step)
//   mod_aii_ledger.c  Ledger (the core gives each refusal's reason: aii_ledger_t.why)
//   mod_aii_fixed.c   fixed point, exact sums, CRC-32
//   mod_aii_particles.c  Particles (the particle kernel, AII_HAS_PARTICLES)
//   mod_aii_conv.c    argument conversion and raising, shared by the three
//   mod_aii_port.c    the few MicroPython calls that py/dynruntime.h does not offer
//
// Two builds use these files. Firmware (USER_C_MODULES; micropython.mk, micropython.cmake)
// gets ROM tables. A native .mpy (py/dynruntime.h, tools/mpy_ld.py) has no static QSTR tables
// and builds its types at import, so it compiles the same area files with AII_DYNRUNTIME set,
// its own definitions of the few macros below, and its own mod_aii_port.c; every table and type
// is declared through these macros for that reason, and argument tables are built on the stack.
#ifndef AII_MOD_AII_H
#define AII_MOD_AII_H

#if AII_DYNRUNTIME
#include "py/dynruntime.h"
#include "natmod/mod_aii_natmod.h"
#else
#include "py/binary.h"
#include "py/objexcept.h"
#include "py/runtime.h"
#endif

#include "core/aii_sched.h"
#include "core/aii_text.h"
#include "core/crc32.h"
#include "core/fixed.h"
#include "core/ledger.h"
#include "core/particles.h"
#include "core/wide.h"

// ---- tables and types (the natmod adapter defines these itself) ----------------------------

#if !AII_DYNRUNTIME
// A method table entry: X(name, function object).
#define AII_METHOD_ENTRY(name, obj) { MP_ROM_QSTR(MP_QSTR_##name), MP_ROM_PTR(&obj) },
// type: the mp_obj_type_t to define; METHODS(X) lists its methods with X(name, obj).
#define AII_DEFINE_TYPE(type, name, make_new_fn, METHODS) \
    static const mp_rom_map_elem_t type##_locals_table[] = { METHODS(AII_METHOD_ENTRY) }; \
    static MP_DEFINE_CONST_DICT(type##_locals, type##_locals_table); \
    MP_DEFINE_CONST_OBJ_TYPE(type, MP_QSTR_##name, MP_TYPE_FLAG_NONE, make_new, make_new_fn, \
        locals_dict, &type##_locals)
#define AII_DECLARE_TYPE(type) extern const mp_obj_type_t type
#define AII_DEFINE_EXCEPTION(name, base) MP_DEFINE_EXCEPTION(name, base)
#define AII_DECLARE_EXCEPTION(name) extern const mp_obj_type_t mp_type_##name
#define AII_STATICMETHOD(obj, fun_obj) \
    static MP_DEFINE_CONST_STATICMETHOD_OBJ(obj, MP_ROM_PTR(&fun_obj))
// try { body } then, whether it raised or not, `finally`; a raise goes on after `finally`.
#define AII_TRY_FINALLY(body, finally) \
    do { \
        nlr_buf_t aii_nlr_; \
        if (nlr_push(&aii_nlr_) == 0) { \
            body; \
            nlr_pop(); \
        } else { \
            finally; \
            nlr_jump(aii_nlr_.ret_val); \
        } \
        finally; \
    } while (0)
#endif

// An exception type as the raising functions take it (a static type, or a natmod's full one).
#define AII_EXC(name) ((const mp_obj_type_t *)&mp_type_##name)

// Module-level functions (mod_aii_fixed.c).
MP_DECLARE_CONST_FUN_OBJ_2(aii_mod_fx_parse_obj);
MP_DECLARE_CONST_FUN_OBJ_2(aii_mod_fx_parse_exact_obj);
MP_DECLARE_CONST_FUN_OBJ_2(aii_mod_fx_format_obj);
MP_DECLARE_CONST_FUN_OBJ_3(aii_mod_fx_mul_obj);
MP_DECLARE_CONST_FUN_OBJ_3(aii_mod_fx_div_obj);
MP_DECLARE_CONST_FUN_OBJ_3(aii_mod_fx_rescale_obj);
MP_DECLARE_CONST_FUN_OBJ_3(aii_mod_fx_muldiv_obj);
MP_DECLARE_CONST_FUN_OBJ_1(aii_mod_q_obj);
MP_DECLARE_CONST_FUN_OBJ_1(aii_mod_dec_obj);
MP_DECLARE_CONST_FUN_OBJ_2(aii_mod_check_sum_obj);
MP_DECLARE_CONST_FUN_OBJ_1(aii_mod_exact_sum_obj);
MP_DECLARE_CONST_FUN_OBJ_VAR_BETWEEN(aii_mod_crc32_obj);

AII_DECLARE_TYPE(aii_type_Scheduler);
AII_DECLARE_TYPE(aii_type_Ledger);
#if AII_HAS_PARTICLES
AII_DECLARE_TYPE(aii_type_Particles);
#endif
AII_DECLARE_EXCEPTION(AdmissionError);
AII_DECLARE_EXCEPTION(BalanceError);
AII_DECLARE_EXCEPTION(InsufficientError);
AII_DECLARE_EXCEPTION(CorruptError);

// ---- the port layer (mod_aii_port.c; a natmod supplies its own) -----------------------------

// An int as a sign and a magnitude; `over` when the magnitude does not fit 64 bits.
typedef struct {
    uint64_t mag;
    int sign;
    bool over;
} aii_int_t;

// Any int (a bool too; "can't convert X to int" for the rest, as mp_obj_get_int says).
void aii_mp_int(mp_obj_t o, aii_int_t *r);
// True for the int 2**64 exactly (the one valid tick period beyond 64 bits).
bool aii_mp_int_is_2_64(mp_obj_t o);
mp_obj_t aii_mp_new_u64(uint64_t v);
mp_obj_t aii_mp_new_i64(int64_t v);
mp_obj_t aii_mp_new_i128(const aii_i128_t *v);
bool aii_mp_callable(mp_obj_t o);
const char *aii_mp_qstr_str(qstr q);
MP_NORETURN void aii_mp_raise_str(const mp_obj_type_t *type, const char *msg);
// A new bytes object of at most cap bytes, written by fill(), which returns how many it wrote.
mp_obj_t aii_mp_new_bytes(size_t cap, size_t (*fill)(uint8_t *buf, size_t cap, void *ctx),
    void *ctx);
// A memoryview of n items of `typecode` over memory the caller keeps alive.
mp_obj_t aii_mp_new_memoryview(char typecode, size_t n, void *items);
// The port's microsecond tick counter and its period - 1.
uint64_t aii_mp_ticks_us(void);
uint64_t aii_mp_ticks_mask(void);
// Waits dt_us on the port's clock while letting callbacks run; returns early when *stop is set
// or *epoch changes (a trigger, possibly from an interrupt).
void aii_mp_wait(uint64_t dt_us, const volatile bool *stop, const volatile uint32_t *epoch);
void aii_mp_collect(void);

// ---- conversion and raising (mod_aii_conv.c) ------------------------------------------------

// Decimal digits of v, for a text's argument.
const char *aii_fmt_int(char buf[AII_I128_STR_MAX], int64_t v);

uint64_t aii_arg_low64(mp_obj_t o);
uint32_t aii_arg_u32(mp_obj_t o, qstr name);
uint64_t aii_arg_u64(mp_obj_t o, qstr name);
int64_t aii_arg_i64(mp_obj_t o, qstr name);
uint8_t aii_arg_small(mp_obj_t o, unsigned max, qstr name);
int aii_arg_tid(mp_obj_t o);
int aii_arg_id(mp_obj_t o);
const char *aii_arg_text(mp_obj_t o, size_t *len, qstr what);
// A callable, or None when none_ok ("<name> must be callable" otherwise).
mp_obj_t aii_arg_callable(mp_obj_t o, qstr name, bool none_ok);
uint8_t aii_arg_fmt_byte(mp_obj_t o);
uint8_t aii_fmt_valid(uint8_t fmt);
uint8_t aii_arg_fmt(mp_obj_t o);

mp_obj_t aii_call0(mp_obj_t fn);
mp_obj_t aii_call1(mp_obj_t fn, mp_obj_t arg);

// Raises text t with its `{}` marks filled by args[0..n-1].
MP_NORETURN void aii_raise_args(const mp_obj_type_t *type, aii_text_t t, const char *const *args,
    int n);
MP_NORETURN void aii_raise(const mp_obj_type_t *type, aii_text_t t);
// t with a parameter's name in its mark ("budget_us out of range").
MP_NORETURN void aii_raise_q(const mp_obj_type_t *type, aii_text_t t, qstr name);
// The exception a status becomes, with the text `why` (AII_T_NONE: the status's own text).
// AII_OK and AII_IDLE return.
void aii_check(aii_status_t st, aii_text_t why);
// The same with the text's `{}` marks filled by args[0..n-1] (aii_check passes the status).
void aii_check_args(aii_status_t st, aii_text_t why, const char *const *args, int n);

#endif // AII_MOD_AII_H
