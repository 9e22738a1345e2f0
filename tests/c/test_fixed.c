// SPDX-License-Identifier: MIT
// Fixed-point arithmetic, string conversion, the wide accumulator and check_sum against the
// shared vectors (computed by tools/gen_vectors.py with Python's exact arithmetic), plus
// properties the vectors cannot cover by listing.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "fixed.h"
#include "vectors_fixed.h"
#include "wide.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static aii_status_t arith(const vf_arith_t *v, int64_t *r) {
    switch (v->op) {
        case VF_ADD:
            return aii_fx_add(v->a, v->b, r);
        case VF_SUB:
            return aii_fx_sub(v->a, v->b, r);
        case VF_ADD_SAT:
            *r = aii_fx_add_sat(v->a, v->b);
            return AII_OK;
        case VF_SUB_SAT:
            *r = aii_fx_sub_sat(v->a, v->b);
            return AII_OK;
        case VF_MULDIV:
            return aii_fx_muldiv(v->a, v->b, v->arg, r);
        case VF_MUL:
            return aii_fx_mul(v->a, v->b, v->fmt, r);
        case VF_MUL_SAT:
            return aii_fx_mul_sat(v->a, v->b, v->fmt, r);
        case VF_DIV:
            return aii_fx_div(v->a, v->b, v->fmt, r);
        case VF_RESCALE:
            return aii_fx_rescale(v->a, v->fmt, (uint8_t)v->arg, r);
    }
    return AII_ERR_ARG;
}

static void test_arith_vectors(void) {
    int bad = 0;
    for (size_t i = 0; i < N(vf_arith); i++) {
        const vf_arith_t *v = &vf_arith[i];
        int64_t r = 0x5555;
        aii_status_t st = arith(v, &r);
        int ok = st == v->st && (st != AII_OK || r == v->r) && (st == AII_OK || r == 0x5555);
        if (!ok && bad++ < 10) {
            printf("arith[%u] op %d fmt %d: %lld, %lld, %lld -> st %d r %lld, want st %d r %lld\n",
                (unsigned)i, v->op, v->fmt, (long long)v->a, (long long)v->b, (long long)v->arg,
                st, (long long)r, v->st, (long long)v->r);
        }
        CHECK(ok);
    }
}

static void test_parse_vectors(void) {
    int bad = 0;
    for (size_t i = 0; i < N(vf_parse); i++) {
        const vf_parse_t *v = &vf_parse[i];
        int64_t r = 0;
        aii_status_t st = aii_fx_parse(v->s, strlen(v->s), v->fmt, &r);
        int ok = st == v->st && (st != AII_OK || r == v->r);
        if (!ok && bad++ < 10) {
            printf("parse[%u] \"%s\" fmt %d -> st %d r %lld, want st %d r %lld\n", (unsigned)i,
                v->s, v->fmt, st, (long long)r, v->st, (long long)v->r);
        }
        CHECK(ok);
    }
}

static void test_parse_exact_vectors(void) {
    int bad = 0, inexact = 0;
    for (size_t i = 0; i < N(vf_parse_exact); i++) {
        const vf_parse_t *v = &vf_parse_exact[i];
        int64_t r = 0, rounded = 0;
        aii_status_t st = aii_fx_parse_exact(v->s, strlen(v->s), v->fmt, &r);
        int ok = st == v->st && (st != AII_OK || r == v->r);
        // Exact or refused: whatever it accepts, the rounding parser reads the same.
        if (st == AII_OK) {
            ok = ok && aii_fx_parse(v->s, strlen(v->s), v->fmt, &rounded) == AII_OK && rounded == r;
        }
        inexact += st == AII_ERR_INEXACT;
        if (!ok && bad++ < 10) {
            printf("parse_exact[%u] \"%s\" fmt %d -> st %d r %lld, want st %d r %lld\n",
                (unsigned)i, v->s, v->fmt, st, (long long)r, v->st, (long long)v->r);
        }
        CHECK(ok);
    }
    CHECK(inexact > 0);
}

static void test_format_vectors(void) {
    char buf[AII_FX_STR_MAX];
    int bad = 0;
    for (size_t i = 0; i < N(vf_format); i++) {
        const vf_format_t *v = &vf_format[i];
        size_t len = 0;
        aii_status_t st = aii_fx_format(v->v, v->fmt, buf, sizeof(buf), &len);
        int ok = st == AII_OK && strcmp(buf, v->s) == 0 && len == strlen(v->s);
        if (!ok && bad++ < 10) {
            printf("format[%u] %lld fmt %d -> st %d \"%s\", want \"%s\"\n", (unsigned)i,
                (long long)v->v, v->fmt, st, buf, v->s);
        }
        CHECK(ok);
        // One byte short of what it needs: refused, and no truncated number is left behind.
        if (st == AII_OK) {
            CHECK_EQ(aii_fx_format(v->v, v->fmt, buf, len, NULL), AII_ERR_ARG);
            CHECK_EQ(buf[0], 0);
        }
    }
}

static void test_format_limits(void) {
    char buf[AII_FX_STR_MAX];
    size_t len;
    // The longest output fits AII_FX_STR_MAX: most negative value, 62 fractional bits.
    CHECK_EQ(aii_fx_format(INT64_MIN + 1, AII_FX_Q(62), buf, sizeof(buf), &len), AII_OK);
    CHECK(len < sizeof(buf));
    CHECK_EQ(aii_fx_format(-1, AII_FX_Q(0), buf, 1, &len), AII_ERR_ARG);
    CHECK_EQ(aii_fx_format(-1, AII_FX_Q(0), buf, 3, &len), AII_OK);
    CHECK(strcmp(buf, "-1") == 0);
    CHECK_EQ(aii_fx_format(1, AII_FX_Q(63), buf, sizeof(buf), &len), AII_ERR_ARG);
    CHECK_EQ(aii_fx_format(1, AII_FX_DEC(19), buf, sizeof(buf), &len), AII_ERR_ARG);
    CHECK_EQ(aii_fx_format(1, 0, NULL, 8, &len), AII_ERR_ARG);
    int64_t r;
    CHECK_EQ(aii_fx_parse(NULL, 0, 0, &r), AII_ERR_ARG);
    // Parsing uses `len`, not a NUL: "12" out of "123".
    CHECK_EQ(aii_fx_parse("123", 2, AII_FX_DEC(0), &r), AII_OK);
    CHECK_EQ(r, 12);
}

static void i128_of(aii_i128_t *x, uint64_t lo, uint64_t hi) {
    x->lo = lo;
    x->hi = hi;
}

static void test_sum_vectors(void) {
    for (size_t i = 0; i < N(vf_sum); i++) {
        const vf_sum_t *v = &vf_sum[i];
        const void *p = v->size == 8 ? (const void *)(vf_pool64 + v->off) :
            (const void *)(vf_pool32 + v->off);
        aii_i128_t t = {1, 1};
        CHECK_EQ(aii_check_sum(p, v->n, v->size, v->expected, &t), v->st);
        CHECK(t.lo == v->total_lo && t.hi == v->total_hi);
    }
}

// check_sum on unaligned data and in reverse order gives the same exact total.
static void test_sum_order_alignment(void) {
    static int64_t vals[64];
    static uint8_t raw[64 * 8 + 1];
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 64; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        vals[i] = (int64_t)x;
    }
    aii_i128_t fwd, rev, una, ref;
    aii_i128_set(&ref, 0);
    for (int i = 0; i < 64; i++) {
        aii_i128_add64(&ref, vals[i]);
    }
    aii_status_t st = aii_check_sum(vals, 64, 8, 0, &fwd);
    for (int i = 0; i < 32; i++) {
        int64_t t = vals[i];
        vals[i] = vals[63 - i];
        vals[63 - i] = t;
    }
    CHECK_EQ(aii_check_sum(vals, 64, 8, 0, &rev), st);
    memcpy(raw + 1, vals, sizeof(vals));
    CHECK_EQ(aii_check_sum(raw + 1, 64, 8, 0, &una), st);
    CHECK(aii_i128_cmp(&fwd, &ref) == 0 && aii_i128_cmp(&rev, &ref) == 0 &&
        aii_i128_cmp(&una, &ref) == 0);
    CHECK_EQ(aii_check_sum(vals, 1, 2, 0, NULL), AII_ERR_ARG);
    CHECK_EQ(aii_check_sum(NULL, 1, 8, 0, NULL), AII_ERR_ARG);
    CHECK_EQ(aii_check_sum(NULL, 0, 8, 0, NULL), AII_OK);
}

static void test_wide(void) {
    aii_i128_t a, b;
    uint64_t hi, lo, q, r;
    aii_mul_u64(UINT64_MAX, UINT64_MAX, &hi, &lo);  // (2^64-1)^2 = 2^128 - 2^65 + 1
    CHECK(hi == UINT64_MAX - 1 && lo == 1);
    aii_mul_u64(0x123456789abcdef0ull, 0xfedcba9876543210ull, &hi, &lo);
    CHECK(hi == 0x121fa00ad77d7422ull && lo == 0x236d88fe5618cf00ull);
    CHECK_EQ(aii_div_u128(hi, lo, 0xfedcba9876543210ull, &q, &r), AII_OK);
    CHECK(q == 0x123456789abcdef0ull && r == 0);
    CHECK_EQ(aii_div_u128(1, 0, 1, &q, &r), AII_ERR_OVERFLOW);
    CHECK_EQ(aii_div_u128(0, 5, 0, &q, &r), AII_ERR_ARG);
    CHECK_EQ(aii_div_u128(UINT64_MAX - 1, UINT64_MAX, UINT64_MAX, &q, &r), AII_OK);
    CHECK(q == UINT64_MAX && r == UINT64_MAX - 1);
    // INT64_MIN - 1 does not fit; adding it back does.
    aii_i128_set(&a, INT64_MIN);
    aii_i128_add64(&a, -1);
    int64_t v = 7;
    CHECK_EQ(aii_i128_to_i64(&a, &v), AII_ERR_OVERFLOW);
    CHECK_EQ(v, 7);
    i128_of(&b, UINT64_MAX, UINT64_MAX);  // -1
    aii_i128_sub(&a, &b);
    CHECK_EQ(aii_i128_to_i64(&a, &v), AII_OK);
    CHECK(v == INT64_MIN);
    CHECK_EQ(aii_i128_cmp(&a, &b), -1);
    CHECK_EQ(aii_i128_cmp(&b, &a), 1);
    CHECK_EQ(aii_i128_cmp(&a, &a), 0);
}

int main(void) {
    test_arith_vectors();
    test_parse_vectors();
    test_parse_exact_vectors();
    test_format_vectors();
    test_format_limits();
    test_sum_vectors();
    test_sum_order_alignment();
    test_wide();
    return check_report("test_fixed");
}
