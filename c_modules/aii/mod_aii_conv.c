// SPDX-License-Identifier: MIT
// Argument conversion and raising for every area of _aii: ints that do not fit their C type
// are refused, never truncated, and every message is a text of the core's table (aii_text.h),
// so the device, the host (aii_host) and the pure-Python ports say the same.
#include <string.h>

#include "mod_aii.h"

MP_NORETURN void aii_raise_args(const mp_obj_type_t *type, aii_text_t t, const char *const *args,
    int n) {
    char buf[128];
    aii_text_format(buf, sizeof(buf), t, args, n);
    aii_mp_raise_str(type, buf);
}

MP_NORETURN void aii_raise(const mp_obj_type_t *type, aii_text_t t) {
    aii_raise_args(type, t, NULL, 0);
}

MP_NORETURN void aii_raise_q(const mp_obj_type_t *type, aii_text_t t, qstr name) {
    const char *arg = aii_mp_qstr_str(name);
    aii_raise_args(type, t, &arg, 1);
}

// Status codes become exceptions here, once.
void aii_check_args(aii_status_t st, aii_text_t why, const char *const *args, int n) {
    const mp_obj_type_t *type;
    switch (st) {
        case AII_OK:
        case AII_IDLE:
            return;
        case AII_ERR_ARG:
        case AII_ERR_NOT_FOUND:
        case AII_ERR_EXISTS:
        case AII_ERR_INEXACT:
            type = &mp_type_ValueError;
            break;
        case AII_ERR_UNSCHEDULABLE:
            type = AII_EXC(AdmissionError);
            break;
        case AII_ERR_OVERFLOW:
            type = &mp_type_OverflowError;
            break;
        case AII_ERR_INSUFFICIENT:
            type = AII_EXC(InsufficientError);
            break;
        case AII_ERR_CORRUPT:
            type = AII_EXC(CorruptError);
            break;
        default:
            type = &mp_type_RuntimeError;
            break;
    }
    if (why == AII_T_NONE) {
        why = aii_status_text(st);
    }
    aii_raise_args(type, why, args, n);
}

void aii_check(aii_status_t st, aii_text_t why) {
    if (st == AII_OK || st == AII_IDLE) {
        return;
    }
    char n[AII_I128_STR_MAX];
    const char *arg = aii_fmt_int(n, st);
    aii_check_args(st, why, &arg, 1);
}

const char *aii_fmt_int(char buf[AII_I128_STR_MAX], int64_t v) {
    aii_i128_t w;
    aii_i128_set(&w, v);
    aii_i128_format(&w, buf);
    return buf;
}

mp_obj_t aii_call0(mp_obj_t fn) {
    return mp_call_function_n_kw(fn, 0, 0, NULL);
}

mp_obj_t aii_call1(mp_obj_t fn, mp_obj_t arg) {
    return mp_call_function_n_kw(fn, 1, 0, &arg);
}

// Low 64 bits of an int, two's complement (what `v & mask` needs for a clock reading).
uint64_t aii_arg_low64(mp_obj_t o) {
    aii_int_t r;
    aii_mp_int(o, &r);
    return r.sign < 0 ? (uint64_t)0 - r.mag : r.mag;
}

uint32_t aii_arg_u32(mp_obj_t o, qstr name) {
    aii_int_t r;
    aii_mp_int(o, &r);
    if (r.sign < 0) {
        aii_raise_q(&mp_type_ValueError, AII_T_NOT_NEGATIVE, name);
    }
    if (r.over || r.mag > UINT32_MAX) {
        aii_raise_q(&mp_type_ValueError, AII_T_OUT_OF_RANGE, name);
    }
    return (uint32_t)r.mag;
}

uint64_t aii_arg_u64(mp_obj_t o, qstr name) {
    aii_int_t r;
    aii_mp_int(o, &r);
    if (r.over || r.sign < 0) {
        aii_raise_q(&mp_type_ValueError, AII_T_OUT_OF_RANGE, name);
    }
    return r.mag;
}

int64_t aii_arg_i64(mp_obj_t o, qstr name) {
    aii_int_t r;
    aii_mp_int(o, &r);
    if (r.over || r.mag > (r.sign < 0 ? (uint64_t)1 << 63 : (uint64_t)INT64_MAX)) {
        aii_raise_q(&mp_type_ValueError, AII_T_OUT_OF_RANGE, name);
    }
    return r.sign < 0 ? (int64_t)((uint64_t)0 - r.mag) : (int64_t)r.mag;
}

uint8_t aii_arg_small(mp_obj_t o, unsigned max, qstr name) {
    aii_int_t r;
    aii_mp_int(o, &r);
    if (r.sign < 0 || r.over || r.mag > max) {
        aii_raise_q(&mp_type_ValueError, AII_T_OUT_OF_RANGE, name);
    }
    return (uint8_t)r.mag;
}

int aii_arg_tid(mp_obj_t o) {
    aii_int_t r;
    aii_mp_int(o, &r);
    if (r.sign < 0 || r.over || r.mag >= AII_SCHED_MAX_TASKS) {
        aii_raise(&mp_type_ValueError, AII_T_NO_SUCH_TASK);
    }
    return (int)r.mag;
}

// An account or quantity id; one that cannot exist becomes -1, which the core does not find.
int aii_arg_id(mp_obj_t o) {
    aii_int_t r;
    aii_mp_int(o, &r);
    return r.sign < 0 || r.over || r.mag > 0xffff ? -1 : (int)r.mag;
}

mp_obj_t aii_arg_callable(mp_obj_t o, qstr name, bool none_ok) {
    if (!(none_ok && o == mp_const_none) && !aii_mp_callable(o)) {
        aii_raise_q(&mp_type_TypeError, AII_T_NOT_CALLABLE, name);
    }
    return o;
}

// A name or string argument: str, bytes or bytearray (as aii_host accepts); anything else is
// "<what> must be str", the same TypeError on every binding.
const char *aii_arg_text(mp_obj_t o, size_t *len, qstr what) {
    mp_buffer_info_t bi;
    if (mp_obj_is_str(o) || mp_obj_is_type(o, &mp_type_bytes)) {
        return mp_obj_str_get_data(o, len);
    }
    if (mp_obj_is_type(o, &mp_type_bytearray) && mp_get_buffer(o, &bi, MP_BUFFER_READ)) {
        *len = bi.len;
        return (const char *)bi.buf;
    }
    aii_raise_q(&mp_type_TypeError, AII_T_NOT_STR, what);
}

// A format byte in 0..255; whether it is a valid one is checked after every argument was
// converted (aii_fmt_valid), as aii_host does, so both bindings report errors in the same order.
uint8_t aii_arg_fmt_byte(mp_obj_t o) {
    aii_int_t r;
    aii_mp_int(o, &r);
    if (r.sign < 0 || r.over || r.mag > 255) {
        aii_raise(&mp_type_ValueError, AII_T_BAD_FORMAT);
    }
    return (uint8_t)r.mag;
}

// A valid format: Q(0..62) or DEC(0..18).
uint8_t aii_fmt_valid(uint8_t fmt) {
    uint64_t den;
    if (aii_fx_den(fmt, &den) != AII_OK) {
        aii_raise(&mp_type_ValueError, AII_T_BAD_FORMAT);
    }
    return fmt;
}

uint8_t aii_arg_fmt(mp_obj_t o) {
    return aii_fmt_valid(aii_arg_fmt_byte(o));
}
