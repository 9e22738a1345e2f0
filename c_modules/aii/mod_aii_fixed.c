// SPDX-License-Identifier: MIT
// _aii's module-level functions (docs/ledger.md sections 3 and 6): fixed point over the core's
// fixed.c, exact sums over buffers read in place (wide.c), and the core's CRC-32.
#include "mod_aii.h"

// A fixed-point status as an exception: `arg` says what AII_ERR_ARG means for this call (the
// formats were checked before the call, so it is about the operands).
static void fx_check(aii_status_t st, aii_text_t arg) {
    aii_check(st, st == AII_ERR_ARG ? arg
        : st == AII_ERR_INEXACT ? AII_T_INEXACT
        : AII_T_RESULT_RANGE);
}

static mp_obj_t parse_with(aii_status_t (*parse)(const char *, size_t, uint8_t, int64_t *),
    mp_obj_t s_in, mp_obj_t fmt_in) {
    size_t len;
    const char *s = aii_arg_text(s_in, &len, MP_QSTR_s);
    uint8_t fmt = aii_arg_fmt(fmt_in);
    int64_t v = 0;
    fx_check(parse(s, len, fmt, &v), AII_T_BAD_NUMBER);
    return aii_mp_new_i64(v);
}

// fx_parse(s, fmt) -> int
static mp_obj_t aii_mod_fx_parse(mp_obj_t s_in, mp_obj_t fmt_in) {
    return parse_with(aii_fx_parse, s_in, fmt_in);
}
MP_DEFINE_CONST_FUN_OBJ_2(aii_mod_fx_parse_obj, aii_mod_fx_parse);

// fx_parse_exact(s, fmt) -> int
static mp_obj_t aii_mod_fx_parse_exact(mp_obj_t s_in, mp_obj_t fmt_in) {
    return parse_with(aii_fx_parse_exact, s_in, fmt_in);
}
MP_DEFINE_CONST_FUN_OBJ_2(aii_mod_fx_parse_exact_obj, aii_mod_fx_parse_exact);

// fx_format(v, fmt) -> str
static mp_obj_t aii_mod_fx_format(mp_obj_t v_in, mp_obj_t fmt_in) {
    int64_t v = aii_arg_i64(v_in, MP_QSTR_v);
    uint8_t fmt = aii_arg_fmt(fmt_in);
    char buf[AII_FX_STR_MAX];
    size_t len = 0;
    fx_check(aii_fx_format(v, fmt, buf, sizeof(buf), &len), AII_T_BAD_FORMAT);
    return mp_obj_new_str(buf, len);
}
MP_DEFINE_CONST_FUN_OBJ_2(aii_mod_fx_format_obj, aii_mod_fx_format);

// fx_mul(a, b, fmt) -> int
static mp_obj_t aii_mod_fx_mul(mp_obj_t a_in, mp_obj_t b_in, mp_obj_t fmt_in) {
    int64_t a = aii_arg_i64(a_in, MP_QSTR_a), b = aii_arg_i64(b_in, MP_QSTR_b), v = 0;
    fx_check(aii_fx_mul(a, b, aii_arg_fmt(fmt_in), &v), AII_T_BAD_FORMAT);
    return aii_mp_new_i64(v);
}
MP_DEFINE_CONST_FUN_OBJ_3(aii_mod_fx_mul_obj, aii_mod_fx_mul);

// fx_div(a, b, fmt) -> int
static mp_obj_t aii_mod_fx_div(mp_obj_t a_in, mp_obj_t b_in, mp_obj_t fmt_in) {
    int64_t a = aii_arg_i64(a_in, MP_QSTR_a), b = aii_arg_i64(b_in, MP_QSTR_b), v = 0;
    fx_check(aii_fx_div(a, b, aii_arg_fmt(fmt_in), &v), AII_T_DIVISION_BY_ZERO);
    return aii_mp_new_i64(v);
}
MP_DEFINE_CONST_FUN_OBJ_3(aii_mod_fx_div_obj, aii_mod_fx_div);

// fx_rescale(v, from_fmt, to_fmt) -> int
static mp_obj_t aii_mod_fx_rescale(mp_obj_t v_in, mp_obj_t from_in, mp_obj_t to_in) {
    int64_t v = aii_arg_i64(v_in, MP_QSTR_v), out = 0;
    uint8_t from = aii_arg_fmt_byte(from_in), to = aii_arg_fmt_byte(to_in);
    aii_fmt_valid(from);
    aii_fmt_valid(to);
    fx_check(aii_fx_rescale(v, from, to, &out), AII_T_BAD_FORMAT);
    return aii_mp_new_i64(out);
}
MP_DEFINE_CONST_FUN_OBJ_3(aii_mod_fx_rescale_obj, aii_mod_fx_rescale);

// fx_muldiv(a, b, d) -> int
static mp_obj_t aii_mod_fx_muldiv(mp_obj_t a_in, mp_obj_t b_in, mp_obj_t d_in) {
    int64_t a = aii_arg_i64(a_in, MP_QSTR_a), b = aii_arg_i64(b_in, MP_QSTR_b);
    int64_t d = aii_arg_i64(d_in, MP_QSTR_d), v = 0;
    fx_check(aii_fx_muldiv(a, b, d, &v), AII_T_DIVISION_BY_ZERO);
    return aii_mp_new_i64(v);
}
MP_DEFINE_CONST_FUN_OBJ_3(aii_mod_fx_muldiv_obj, aii_mod_fx_muldiv);

// Q(bits) -> format byte
static mp_obj_t aii_mod_q(mp_obj_t bits) {
    return MP_OBJ_NEW_SMALL_INT(AII_FX_Q(aii_arg_small(bits, AII_FX_MAX_BITS, MP_QSTR_bits)));
}
MP_DEFINE_CONST_FUN_OBJ_1(aii_mod_q_obj, aii_mod_q);

// DEC(digits) -> format byte
static mp_obj_t aii_mod_dec(mp_obj_t digits) {
    uint8_t d = aii_arg_small(digits, AII_FX_MAX_DIGITS, MP_QSTR_digits);
    return MP_OBJ_NEW_SMALL_INT(AII_FX_DEC(d));
}
MP_DEFINE_CONST_FUN_OBJ_1(aii_mod_dec_obj, aii_mod_dec);

// The buffer's signed int32/int64 items, read in place ('l' is 4 bytes on 32-bit ports).
static void sum_buffer(mp_obj_t o, mp_buffer_info_t *bi, unsigned *size) {
    mp_get_buffer_raise(o, bi, MP_BUFFER_READ);
    char t = (char)bi->typecode;
    *size = t == 'i' || t == 'l' || t == 'q' ? (unsigned)mp_binary_get_size('@', t, NULL) : 0;
    if (*size != 4 && *size != 8) {
        aii_raise(&mp_type_TypeError, AII_T_NOT_INT_ITEMS);
    }
}

// check_sum(buffer, expected) -> bool
static mp_obj_t aii_mod_check_sum(mp_obj_t buf_in, mp_obj_t expected_in) {
    mp_buffer_info_t bi;
    unsigned size;
    sum_buffer(buf_in, &bi, &size);
    int64_t expected = aii_arg_i64(expected_in, MP_QSTR_expected);
    aii_status_t st = aii_check_sum(bi.buf, bi.len / size, size, expected, NULL);
    if (st == AII_ERR_VIOLATION) {
        return mp_const_false;  // a different sum is an answer here, not an error
    }
    aii_check(st, AII_T_SUM_RANGE);
    return mp_const_true;
}
MP_DEFINE_CONST_FUN_OBJ_2(aii_mod_check_sum_obj, aii_mod_check_sum);

// exact_sum(buffer) -> int
static mp_obj_t aii_mod_exact_sum(mp_obj_t buf_in) {
    mp_buffer_info_t bi;
    unsigned size;
    sum_buffer(buf_in, &bi, &size);
    aii_i128_t total;
    // Only the total is wanted: a mismatch with 0 or a total beyond int64 is no error here.
    aii_check_sum(bi.buf, bi.len / size, size, 0, &total);
    return aii_mp_new_i128(&total);
}
MP_DEFINE_CONST_FUN_OBJ_1(aii_mod_exact_sum_obj, aii_mod_exact_sum);

// crc32(data[, crc]) -> int, as binascii.crc32 (the journal's and the protocol's checksum)
static mp_obj_t aii_mod_crc32(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t bi;
    mp_get_buffer_raise(args[0], &bi, MP_BUFFER_READ);
    uint32_t crc = n_args > 1 ? (uint32_t)aii_arg_low64(args[1]) : 0;
    return mp_obj_new_int_from_uint(aii_crc32(crc, bi.buf, bi.len));
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_mod_crc32_obj, 1, 2, aii_mod_crc32);
