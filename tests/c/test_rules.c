// SPDX-License-Identifier: MIT
// The rules the bindings take from the core: each ledger refusal's reason (l->why, and which
// record for a replay), the text table and its formatting, the run loop's step.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "aii_sched.h"
#include "aii_text.h"
#include "check.h"
#include "crc32.h"
#include "fixed.h"
#include "ledger.h"

#define SZ AII_LEDGER_REC_SIZE

static aii_ledger_t L, R;

// The status and the reason of one refused call.
#define REFUSED(call, status, reason) \
    do { \
        CHECK_EQ((call), (status)); \
        CHECK_EQ(L.why, (reason)); \
    } while (0)

static void test_texts(void) {
    CHECK(strcmp(aii_text(AII_T_NONE), "") == 0);
    CHECK(strcmp(aii_text(AII_T_BAD_NAME), "bad name") == 0);
    CHECK(strcmp(aii_text((aii_text_t)AII_T_COUNT), "") == 0);
    CHECK(strcmp(aii_text((aii_text_t)-1), "") == 0);
    for (int t = 1; t < AII_T_COUNT; t++) {
        CHECK(aii_text((aii_text_t)t)[0] != 0);  // only NONE is empty
    }
    CHECK_EQ(aii_status_text(AII_ERR_FULL), AII_T_TASK_TABLE_FULL);
    CHECK_EQ(aii_status_text(AII_ERR_NOT_FOUND), AII_T_NO_SUCH_TASK);
    CHECK_EQ(aii_status_text(AII_ERR_CORRUPT), AII_T_ERROR_N);

    char buf[96];
    const char *args[3] = {"2", "inf", "1000"};
    size_t n = aii_text_format(buf, sizeof(buf), AII_T_ADMISSION, args, 3);
    CHECK(strcmp(buf, "task 2: worst-case response inf us > deadline 1000 us") == 0);
    CHECK_EQ(n, strlen(buf));
    aii_text_format(buf, sizeof(buf), AII_T_OUT_OF_RANGE, args, 0);  // a mark stays a mark
    CHECK(strcmp(buf, "{} out of range") == 0);
    n = aii_text_format(buf, 8, AII_T_JOURNAL_RECORD, args, 2);  // truncated, terminated
    CHECK_EQ(n, 7);
    CHECK(strcmp(buf, "journal") == 0);

    char d[AII_I128_STR_MAX];
    aii_i128_t v = {0, 0};
    aii_i128_format(&v, d);
    CHECK(strcmp(d, "0") == 0);
    aii_i128_set(&v, INT64_MIN);
    aii_i128_format(&v, d);
    CHECK(strcmp(d, "-9223372036854775808") == 0);
    v.lo = 0;
    v.hi = (uint64_t)1 << 63;  // -2^127
    CHECK_EQ(aii_i128_format(&v, d), 40);
    CHECK(strcmp(d, "-170141183460469231731687303715884105728") == 0);
    v.lo = UINT64_MAX;
    v.hi = UINT64_MAX >> 1;  // 2^127 - 1
    aii_i128_format(&v, d);
    CHECK(strcmp(d, "170141183460469231731687303715884105727") == 0);
    v.lo = 10000000000000000000u;  // 2^64 + 10^19 - ... : a value across both halves
    v.hi = 1;
    aii_i128_format(&v, d);
    CHECK(strcmp(d, "28446744073709551616") == 0);
}

static void test_ledger_reasons(void) {
    int q, w, a, b, g, x;
    aii_ledger_init(&L);
    REFUSED(aii_ledger_add_qty(&L, "", 0, AII_FX_DEC(3), &q), AII_ERR_ARG, AII_T_BAD_NAME);
    REFUSED(aii_ledger_add_qty(&L, "a\0b", 3, AII_FX_DEC(3), &q), AII_ERR_ARG, AII_T_BAD_NAME);
    REFUSED(aii_ledger_add_qty(&L, "Wh", 2, AII_FX_DEC(19), &q), AII_ERR_ARG,
        AII_T_DIGITS_RANGE);
    REFUSED(aii_ledger_add_qty(&L, "Wh", 2, AII_FX_Q(63), &q), AII_ERR_ARG, AII_T_BITS_RANGE);
    CHECK_EQ(aii_ledger_add_qty(&L, "Wh", 2, AII_FX_DEC(3), &q), AII_OK);
    REFUSED(aii_ledger_add_qty(&L, "Wh", 2, AII_FX_Q(4), &w), AII_ERR_EXISTS, AII_T_NAME_IN_USE);
    CHECK_EQ(aii_ledger_add_qty(&L, "l", 1, AII_FX_Q(4), &w), AII_OK);
    CHECK_EQ(aii_ledger_add_qty(&L, "q2", 2, AII_FX_Q(4), &x), AII_OK);
    CHECK_EQ(aii_ledger_add_qty(&L, "q3", 2, AII_FX_Q(4), &x), AII_OK);
    REFUSED(aii_ledger_add_qty(&L, "q4", 2, AII_FX_Q(4), &x), AII_ERR_FULL,
        AII_T_QTY_TABLE_FULL);

    REFUSED(aii_ledger_open(&L, "bat", 3, 9, AII_ACCT_NON_NEGATIVE, 0, &a), AII_ERR_NOT_FOUND,
        AII_T_NO_SUCH_QUANTITY);
    REFUSED(aii_ledger_open(&L, "bat", 3, q, AII_ACCT_NON_NEGATIVE, -1, &a), AII_ERR_ARG,
        AII_T_INITIAL_NEGATIVE);
    REFUSED(aii_ledger_open(&L, "bat", 3, q, 4, 0, &a), AII_ERR_ARG, AII_T_INVALID_ARGUMENT);
    CHECK_EQ(aii_ledger_open(&L, "bat", 3, q, AII_ACCT_NON_NEGATIVE, 100, &a), AII_OK);
    CHECK_EQ(aii_ledger_open(&L, "load", 4, q, AII_ACCT_NON_NEGATIVE, 0, &b), AII_OK);
    CHECK_EQ(aii_ledger_open(&L, "grid", 4, q, 0, 0, &g), AII_OK);
    CHECK_EQ(aii_ledger_open(&L, "tank", 4, w, AII_ACCT_NON_NEGATIVE, 5, &x), AII_OK);
    REFUSED(aii_ledger_open(&L, "bat", 3, q, 0, 0, &x), AII_ERR_EXISTS, AII_T_NAME_IN_USE);

    REFUSED(aii_ledger_transfer(&L, a, b, q, 0), AII_ERR_ARG, AII_T_AMOUNT_NOT_POSITIVE);
    REFUSED(aii_ledger_transfer(&L, a, a, q, 1), AII_ERR_ARG, AII_T_SAME_ACCOUNT);
    REFUSED(aii_ledger_transfer(&L, a, a, w, 1), AII_ERR_ARG, AII_T_SAME_ACCOUNT);
    REFUSED(aii_ledger_transfer(&L, a, x, q, 1), AII_ERR_ARG, AII_T_WRONG_QUANTITY);
    REFUSED(aii_ledger_transfer(&L, a, b, w, 1), AII_ERR_ARG, AII_T_WRONG_QUANTITY);
    REFUSED(aii_ledger_transfer(&L, a, 99, q, 1), AII_ERR_NOT_FOUND, AII_T_NO_SUCH_ACCOUNT);
    REFUSED(aii_ledger_transfer(&L, 99, b, q, 1), AII_ERR_NOT_FOUND, AII_T_NO_SUCH_ACCOUNT);
    REFUSED(aii_ledger_transfer(&L, -1, b, q, 1), AII_ERR_NOT_FOUND, AII_T_NO_SUCH_ACCOUNT);
    // The quantity is looked up first; it is named only when the accounts exist.
    REFUSED(aii_ledger_transfer(&L, a, b, 7, 1), AII_ERR_NOT_FOUND, AII_T_NO_SUCH_QUANTITY);
    REFUSED(aii_ledger_transfer(&L, a, 99, 7, 1), AII_ERR_NOT_FOUND, AII_T_NO_SUCH_ACCOUNT);
    REFUSED(aii_ledger_inflow(&L, a, 7, 1), AII_ERR_NOT_FOUND, AII_T_NO_SUCH_QUANTITY);
    REFUSED(aii_ledger_inflow(&L, 99, 7, 1), AII_ERR_NOT_FOUND, AII_T_NO_SUCH_ACCOUNT);
    REFUSED(aii_ledger_transfer(&L, b, a, q, 1), AII_ERR_INSUFFICIENT, AII_T_INSUFFICIENT);
    REFUSED(aii_ledger_inflow(&L, g, q, INT64_MAX), AII_OK, AII_T_INSUFFICIENT);
    REFUSED(aii_ledger_inflow(&L, g, q, 1), AII_ERR_OVERFLOW, AII_T_BALANCE_OVERFLOW);

    CHECK_EQ(aii_ledger_hold(&L, 7, a, q, 10), AII_OK);
    REFUSED(aii_ledger_hold(&L, 7, a, q, 10), AII_ERR_EXISTS, AII_T_TXID_IN_USE);
    REFUSED(aii_ledger_settle(&L, 8), AII_ERR_NOT_FOUND, AII_T_NO_SUCH_HOLD);
    for (int t = 100; t < 100 + AII_LEDGER_MAX_HOLDS - 1; t++) {
        CHECK_EQ(aii_ledger_prepare(&L, (uint64_t)t, b, q, 1), AII_OK);
    }
    REFUSED(aii_ledger_prepare(&L, 1, b, q, 1), AII_ERR_FULL, AII_T_HOLD_TABLE_FULL);

    REFUSED(aii_ledger_commit(&L, NULL), AII_ERR_STATE, AII_T_NO_TX);
    REFUSED(aii_ledger_rollback(&L), AII_ERR_STATE, AII_T_NO_TX);
    CHECK_EQ(aii_ledger_begin(&L), AII_OK);
    REFUSED(aii_ledger_begin(&L), AII_ERR_STATE, AII_T_TX_OPEN);
    REFUSED(aii_ledger_seal(&L), AII_ERR_STATE, AII_T_TX_OPEN);
    uint8_t cp[AII_LEDGER_CHECKPOINT_MAX];
    size_t len = 0;
    REFUSED(aii_ledger_checkpoint(&L, cp, sizeof(cp), &len), AII_ERR_STATE, AII_T_TX_OPEN);
    REFUSED(aii_ledger_replay(&L, cp, 0, NULL), AII_ERR_STATE, AII_T_TX_OPEN);
    int ops = 0;
    while (aii_ledger_transfer(&L, g, b, q, 1) == AII_OK) {
        ops++;
    }
    CHECK_EQ(ops, AII_LEDGER_JOURNAL - 1);
    CHECK_EQ(L.why, AII_T_TX_TOO_LONG);
    CHECK_EQ(aii_ledger_rollback(&L), AII_OK);

    // A violation (a balance changed behind the core's back) says so through commit and verify.
    CHECK_EQ(aii_ledger_begin(&L), AII_OK);
    L.cur.account[b].balance += 1;
    REFUSED(aii_ledger_commit(&L, NULL), AII_ERR_VIOLATION, AII_T_VIOLATION);
    L.cur.account[b].balance += 1;
    REFUSED(aii_ledger_verify(&L, NULL), AII_ERR_VIOLATION, AII_T_VIOLATION);
    L.cur.account[b].balance -= 1;
    CHECK_EQ(aii_ledger_verify(&L, NULL), AII_OK);

    REFUSED(aii_ledger_checkpoint(&L, cp, 10, &len), AII_ERR_ARG, AII_T_BUFFER_TOO_SMALL);
    CHECK_EQ(aii_ledger_checkpoint(&L, cp, sizeof(cp), &len), AII_OK);
    cp[len - 1] ^= 1;
    CHECK_EQ(aii_ledger_restore(&R, cp, len), AII_ERR_CORRUPT);
    CHECK_EQ(R.why, AII_T_BAD_CHECKPOINT);

    L.cur.seq = UINT32_MAX - 1;  // as a restored checkpoint could have it
    REFUSED(aii_ledger_inflow(&L, a, q, 1), AII_ERR_FULL, AII_T_SEQ_EXHAUSTED);
}

// Makes a journal of five commits (records 0..n-1), one of them two records long.
static size_t journal_of(uint8_t recs[][SZ], size_t cap) {
    int q, a, b;
    size_t n = 0;
    aii_ledger_init(&L);
    aii_ledger_add_qty(&L, "Wh", 2, AII_FX_DEC(3), &q);
    aii_ledger_open(&L, "a", 1, q, 0, 100, &a);
    aii_ledger_open(&L, "b", 1, q, 0, 0, &b);
    aii_ledger_begin(&L);
    aii_ledger_transfer(&L, a, b, q, 5);
    aii_ledger_transfer(&L, b, a, q, 2);
    aii_ledger_commit(&L, NULL);
    aii_ledger_seal(&L);
    aii_ledger_inflow(&L, a, q, 9);
    while (n < cap && aii_ledger_journal_pop(&L, recs[n])) {
        n++;
    }
    return n;
}

static void put_crc(uint8_t *r) {
    uint32_t c = aii_crc32(0, r, AII_REC_CRC);
    for (int i = 0; i < AII_REC_CRC_LEN; i++) {
        r[AII_REC_CRC + i] = (uint8_t)(c >> (8 * i));
    }
}

static void test_replay_reasons(void) {
    static uint8_t recs[16][SZ], bad[16][SZ];
    size_t n = journal_of(recs, 16), done;
    CHECK_EQ(n, 7);  // QTY, OPEN, OPEN, 2 TRANSFERs, SEAL, INFLOW
    struct {
        int at;          // record changed
        int offset;      // byte changed (-1: the record is dropped)
        int fix_crc;
        aii_text_t why;
        int why_at;
        size_t done;
    } cases[] = {
        {4, AII_REC_AMOUNT, 0, AII_T_BAD_CRC, 4, 3},
        {1, -1, 0, AII_T_SEQUENCE_GAP, 1, 1},
        {5, AII_REC_HASH, 1, AII_T_SEAL_MISMATCH, 5, 5},
        {3, AII_REC_A, 1, AII_T_DOES_NOT_APPLY, 3, 3},
        {6, AII_REC_A, 1, AII_T_DOES_NOT_APPLY, 6, 6},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if ((int)i == cases[c].at && cases[c].offset < 0) {
                continue;
            }
            memcpy(bad[m], recs[i], SZ);
            if ((int)i == cases[c].at) {
                bad[m][cases[c].offset] ^= 0x40;
                if (cases[c].fix_crc) {
                    put_crc(bad[m]);
                }
            }
            m++;
        }
        aii_ledger_init(&R);
        CHECK_EQ(aii_ledger_replay(&R, &bad[0][0], m, &done), AII_ERR_CORRUPT);
        CHECK_EQ(R.why, AII_T_JOURNAL_RECORD);
        CHECK_EQ(R.why_record, cases[c].why);
        CHECK_EQ(R.why_at, cases[c].why_at);
        CHECK_EQ(done, cases[c].done);
    }
    aii_ledger_init(&R);
    CHECK_EQ(aii_ledger_replay(&R, &recs[0][0], n, &done), AII_OK);
    CHECK_EQ(done, n);
    // A SEAL inside an open commit does not match, wherever its hash points.
    aii_ledger_init(&R);
    CHECK_EQ(aii_ledger_replay(&R, &recs[0][0], 3, &done), AII_OK);
    memcpy(bad[0], recs[3], SZ);
    memcpy(bad[1], recs[5], SZ);
    bad[1][AII_REC_SEQ] = 5;
    put_crc(bad[1]);
    CHECK_EQ(aii_ledger_replay(&R, &bad[0][0], 2, &done), AII_ERR_CORRUPT);
    CHECK_EQ(R.why_record, AII_T_SEAL_MISMATCH);
    CHECK_EQ(R.why_at, 1);
}

static void test_step(void) {
    static aii_sched_t s;
    aii_job_t job;
    uint64_t dt = 99;
    aii_sched_init(&s, 0);
    memset(&job, 0, sizeof(job));
    // A job was started.
    CHECK_EQ(aii_sched_step(&s, AII_OK, &job, 10, AII_TIME_NEVER, 1000, true, &dt), AII_STEP_RUN);
    CHECK_EQ(dt, 0);
    // Nothing due: the idle cap, also below a long max_wait.
    job.wake_at = AII_TIME_NEVER;
    CHECK_EQ(aii_sched_step(&s, AII_IDLE, &job, 10, AII_TIME_NEVER, 1u << 30, false, &dt),
        AII_STEP_WAIT);
    CHECK_EQ(dt, AII_SCHED_IDLE_CAP_US);
    CHECK_EQ(aii_sched_step(&s, AII_IDLE, &job, 10, AII_TIME_NEVER, 500, false, &dt),
        AII_STEP_WAIT);
    CHECK_EQ(dt, 500);
    // A release ahead: up to it, or to the end of the run, whichever is first.
    job.wake_at = 10 + 300000;
    CHECK_EQ(aii_sched_step(&s, AII_IDLE, &job, 10, AII_TIME_NEVER, 1u << 30, false, &dt),
        AII_STEP_WAIT);
    CHECK_EQ(dt, 300000);
    CHECK_EQ(aii_sched_step(&s, AII_IDLE, &job, 10, AII_TIME_NEVER, 1u << 30, true, &dt),
        AII_STEP_WAIT);
    CHECK_EQ(dt, AII_SCHED_IDLE_CAP_US);  // on the real clock, a bounded wait
    CHECK_EQ(aii_sched_step(&s, AII_IDLE, &job, 10, 60, 1u << 30, false, &dt), AII_STEP_WAIT);
    CHECK_EQ(dt, 50);
    // Already due (or past the end): no wait, dispatch again.
    job.wake_at = 10;
    CHECK_EQ(aii_sched_step(&s, AII_IDLE, &job, 10, AII_TIME_NEVER, 1000, false, &dt),
        AII_STEP_WAIT);
    CHECK_EQ(dt, 0);
    // An idle gap long enough after a job: collect first.
    s.gc_idle_us = 2000;
    job.wake_at = 10 + 1999;
    s.jobs_since_gc = 1;
    CHECK_EQ(aii_sched_step(&s, AII_IDLE, &job, 10, AII_TIME_NEVER, 1u << 30, false, &dt),
        AII_STEP_WAIT);
    CHECK_EQ(dt, 1999);
    job.wake_at = 10 + 2000;
    CHECK_EQ(aii_sched_step(&s, AII_IDLE, &job, 10, AII_TIME_NEVER, 1u << 30, false, &dt),
        AII_STEP_COLLECT);
    aii_sched_gc_done(&s, 10, 510);
    CHECK_EQ(aii_sched_step(&s, AII_IDLE, &job, 10, AII_TIME_NEVER, 1u << 30, false, &dt),
        AII_STEP_WAIT);

    CHECK_EQ(aii_sched_run_end(100, 50), 150);
    CHECK(aii_sched_run_end(100, UINT64_MAX) == AII_TIME_NEVER - 1);
    CHECK(aii_sched_run_end(AII_TIME_NEVER - 2, 1) == AII_TIME_NEVER - 1);
    aii_clock_t c;
    aii_clock_init(&c, 1);  // period 2
    CHECK_EQ(aii_clock_max_wait(&c), 1);
    aii_clock_init(&c, (1u << 30) - 1);
    CHECK_EQ(aii_clock_max_wait(&c), 1u << 28);
    aii_clock_init(&c, UINT64_MAX);
    CHECK(aii_clock_max_wait(&c) == (uint64_t)1 << 62);

    aii_task_params_t p;
    memset(&p, 0, sizeof(p));
    p.kind = AII_KIND_PERIODIC;
    p.period_us = 1000;
    p.priority = AII_PRIO_AUTO;
    CHECK_EQ(aii_sched_param_why(&s, &p), AII_T_BUDGET_ZERO);
    p.budget_us = 10;
    CHECK_EQ(aii_sched_param_why(&s, &p), AII_T_NONE);
    CHECK(aii_sched_param_error(&s, &p) == NULL);
}

int main(void) {
    test_texts();
    test_ledger_reasons();
    test_replay_reasons();
    test_step();
    return check_report("test_rules");
}
