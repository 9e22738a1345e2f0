// SPDX-License-Identifier: MIT
// The MicroPython calls of _aii that py/dynruntime.h does not offer, for firmware builds; a
// native .mpy build brings its own version of these few functions (mod_aii.h).
#include <string.h>

#include "py/gc.h"
#include "py/mphal.h"
#include "py/objarray.h"
#include "py/objint.h"
#include "py/smallint.h"

#include "mod_aii.h"

void aii_mp_int(mp_obj_t o, aii_int_t *r) {
    r->over = false;
    if (mp_obj_is_small_int(o) || !mp_obj_is_exact_type(o, &mp_type_int)) {
        // mp_obj_get_int() takes bools and raises "can't convert X to int" for the rest.
        mp_int_t v = mp_obj_is_small_int(o) ? MP_OBJ_SMALL_INT_VALUE(o) : mp_obj_get_int(o);
        r->sign = v < 0 ? -1 : v > 0;
        r->mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        return;
    }
    #if MICROPY_LONGINT_IMPL != MICROPY_LONGINT_IMPL_NONE
    byte buf[8];
    r->sign = mp_obj_int_sign(o);
    // Unsigned for positive values, two's complement for negative ones.
    if (!mp_obj_int_to_bytes_impl(o, false, sizeof(buf), buf)) {
        r->over = true;
        r->mag = UINT64_MAX;
        return;
    }
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | buf[i];
    }
    r->mag = r->sign < 0 ? (uint64_t)0 - v : v;
    #endif
}

bool aii_mp_int_is_2_64(mp_obj_t o) {
    #if MICROPY_LONGINT_IMPL != MICROPY_LONGINT_IMPL_NONE
    byte buf[9];
    if (mp_obj_is_small_int(o) || !mp_obj_is_exact_type(o, &mp_type_int) ||
        mp_obj_int_sign(o) <= 0 || !mp_obj_int_to_bytes_impl(o, false, sizeof(buf), buf)) {
        return false;
    }
    for (int i = 0; i < 8; i++) {
        if (buf[i]) {
            return false;
        }
    }
    return buf[8] == 1;
    #else
    (void)o;
    return false;
    #endif
}

// A small int whenever it fits, as the host's ints compare.
mp_obj_t aii_mp_new_u64(uint64_t v) {
    if (v <= (uint64_t)MP_SMALL_INT_MAX) {
        return MP_OBJ_NEW_SMALL_INT((mp_int_t)v);
    }
    return mp_obj_new_int_from_ull(v);
}

mp_obj_t aii_mp_new_i64(int64_t v) {
    if (v >= MP_SMALL_INT_MIN && v <= MP_SMALL_INT_MAX) {
        return MP_OBJ_NEW_SMALL_INT((mp_int_t)v);
    }
    return mp_obj_new_int_from_ll(v);
}

// 32-bit ports have no wider C type to go through.
mp_obj_t aii_mp_new_i128(const aii_i128_t *v) {
    int64_t s;
    if (aii_i128_to_i64(v, &s) == AII_OK) {
        return aii_mp_new_i64(s);
    }
    byte buf[16];
    bool neg = aii_i128_magnitude(v, buf);
    mp_obj_t o = mp_obj_int_from_bytes_impl(false, sizeof(buf), buf);
    return neg ? mp_unary_op(MP_UNARY_OP_NEGATIVE, o) : o;
}

bool aii_mp_callable(mp_obj_t o) {
    return mp_obj_is_callable(o);
}

const char *aii_mp_qstr_str(qstr q) {
    return qstr_str(q);
}

MP_NORETURN void aii_mp_raise_str(const mp_obj_type_t *type, const char *msg) {
    // Through the format: texts of the core's table are plain strings, not MP_ERROR_TEXTs.
    mp_raise_msg_varg(type, MP_ERROR_TEXT("%s"), msg);
}

mp_obj_t aii_mp_new_bytes(size_t cap, size_t (*fill)(uint8_t *buf, size_t cap, void *ctx),
    void *ctx) {
    vstr_t vs;
    vstr_init_len(&vs, cap);
    vs.len = fill((uint8_t *)vs.buf, cap, ctx);
    return mp_obj_new_bytes_from_vstr(&vs);
}

mp_obj_t aii_mp_new_memoryview(char typecode, size_t n, void *items) {
    return mp_obj_new_memoryview((byte)typecode | MP_OBJ_ARRAY_TYPECODE_FLAG_RW, n, items);
}

uint64_t aii_mp_ticks_us(void) {
    return (uint64_t)mp_hal_ticks_us();
}

uint64_t aii_mp_ticks_mask(void) {
    // ticks_us() wraps at 2**30 on 32-bit ports, 2**62 on 64-bit unix.
    return (uint64_t)MICROPY_PY_TIME_TICKS_PERIOD - 1;
}

void aii_mp_wait(uint64_t dt_us, const volatile bool *stop, const volatile uint32_t *epoch) {
    mp_uint_t t0 = mp_hal_ticks_us();
    uint32_t seen = *epoch;
    for (;;) {
        uint64_t el = (uint64_t)(mp_uint_t)(mp_hal_ticks_us() - t0);
        if (el >= dt_us || *stop || *epoch != seen) {
            return;
        }
        uint64_t rem = dt_us - el;
        if (rem >= 2000) {
            // Wake a millisecond early and spin the rest, for release precision.
            uint64_t ms = rem / 1000 - 1;
            // At most the poll quantum at a time: a trigger is seen that soon (jitter_us).
            uint64_t cap = AII_SCHED_POLL_US / 1000;
            mp_event_wait_ms((mp_uint_t)(ms > cap ? cap : ms));
        } else {
            mp_event_handle_nowait();
        }
    }
}

void aii_mp_collect(void) {
    gc_collect();
}
