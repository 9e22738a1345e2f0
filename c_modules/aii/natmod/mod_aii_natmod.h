// SPDX-License-Identifier: MIT
// The table and type macros of mod_aii.h for _aii as a native .mpy (AII_DYNRUNTIME; docs/natmod.md).
// A natmod has no ROM tables and no initialised data: its types, exceptions, method tables and
// Ledger.restore's staticmethod are zeroed BSS that import fills in (mod_aii_natmod.c calls the
// *_init functions these macros define). BSS must be global in a natmod (mpy_ld cannot relocate
// static BSS); the method dicts themselves are rodata pointing at their BSS tables.
#ifndef AII_MOD_AII_NATMOD_H
#define AII_MOD_AII_NATMOD_H

// py/dynruntime.h defines the common exception types through builtins; the bindings raise this
// one too.
#define mp_type_OverflowError (*(mp_obj_type_t *)(mp_load_global(MP_QSTR_OverflowError)))

// The full type in BSS, seen as the mp_obj_type_t the area files take the address of.
#define aii_type_Scheduler (*(const mp_obj_type_t *)&aii_type_Scheduler_full)
#define aii_type_Ledger (*(const mp_obj_type_t *)&aii_type_Ledger_full)
#define aii_type_Particles (*(const mp_obj_type_t *)&aii_type_Particles_full)

#define AII_METHOD_COUNT(name, obj) +1
#define AII_METHOD_STORE(name, obj) \
    table[i++] = (mp_map_elem_t) { MP_OBJ_NEW_QSTR(MP_QSTR_##name), MP_OBJ_FROM_PTR(&obj) };

// Every use of `t` is pasted, so the aii_type_* names above are not expanded here (and the
// parameters are not called `type` and `name`: the struct has members of those names).
#define AII_DEFINE_TYPE(t, qname, make_new_fn, METHODS) \
    mp_map_elem_t t##_locals_table[0 METHODS(AII_METHOD_COUNT)]; \
    static MP_DEFINE_CONST_DICT(t##_locals, t##_locals_table); \
    void t##_init(void) { \
        mp_map_elem_t *table = t##_locals_table; \
        size_t i = 0; \
        METHODS(AII_METHOD_STORE) \
        t##_full.base.type = &mp_type_type; \
        t##_full.flags = MP_TYPE_FLAG_NONE; \
        t##_full.name = MP_QSTR_##qname; \
        MP_OBJ_TYPE_SET_SLOT(&t##_full, make_new, make_new_fn, 0); \
        MP_OBJ_TYPE_SET_SLOT(&t##_full, locals_dict, (void *)&t##_locals, 1); \
    } \
    mp_obj_full_type_t t##_full
#define AII_DECLARE_TYPE(t) \
    extern mp_obj_full_type_t t##_full; \
    void t##_init(void)

#define AII_DEFINE_EXCEPTION(name, base) \
    mp_obj_full_type_t mp_type_##name; \
    void aii_exc_##name##_init(void) { \
        mp_obj_exception_init(&mp_type_##name, MP_QSTR_##name, &mp_type_##base); \
    }
#define AII_DECLARE_EXCEPTION(name) \
    extern mp_obj_full_type_t mp_type_##name; \
    void aii_exc_##name##_init(void)

// The staticmethod type is no constant a natmod can link against: builtins has it.
#define AII_STATICMETHOD(obj, fun_obj) \
    extern mp_rom_obj_static_class_method_t obj; \
    void obj##_init(void) { \
        obj.base.type = MP_OBJ_TO_PTR(mp_load_global(MP_QSTR_staticmethod)); \
        obj.fun = MP_OBJ_FROM_PTR(&fun_obj); \
    } \
    mp_rom_obj_static_class_method_t obj

// nlr through mp_fun_table, as native code does. The compiler does not know that nlr_push()
// returns twice: `finally` may only read what `body` does not change (mod_aii_sched.c's uses
// pass `self` and a task id, set before the push).
#define AII_TRY_FINALLY(body, finally) \
    do { \
        nlr_buf_t aii_nlr_; \
        if (mp_fun_table.nlr_push(&aii_nlr_) == 0) { \
            body; \
            mp_fun_table.nlr_pop(); \
        } else { \
            finally; \
            mp_raise_dyn(MP_OBJ_FROM_PTR(aii_nlr_.ret_val)); \
        } \
        finally; \
    } while (0)

// mod_aii.c: the module's names, stored into the module's globals at import.
void aii_natmod_store_globals(void);

#endif // AII_MOD_AII_NATMOD_H
