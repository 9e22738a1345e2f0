// SPDX-License-Identifier: MIT
// aii-config: minimal
// The minimal configuration: tools/ctest.py builds the core for this file with every AII_HAS_*
// of aii_config.h at 0 (the mark above). What is left must still work: the scheduler admits
// and refuses by its analysis; the ledger moves, holds, settles, commits and rolls back exactly,
// refuses an overdraft, and its journal records carry their CRC-32, with no SEAL among them
// (no hash chain, however many records).
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "aii_sched.h"
#include "crc32.h"
#include "fixed.h"
#include "ledger.h"

static aii_sched_t sched;
static aii_rta_result_t rta;
static aii_ledger_t led;

static void test_admission(void) {
    aii_sched_init(&sched, 0);
    aii_task_params_t p;
    memset(&p, 0, sizeof(p));
    p.kind = AII_KIND_PERIODIC;
    p.policy = AII_POLICY_CONTINUE;
    p.priority = AII_PRIO_AUTO;
    p.period_us = 1000;
    p.budget_us = 400;
    int a = -1, b = -1;
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &a, &rta), AII_OK);
    p.budget_us = 700;  // 400 + 700 > 1000 in every window: no priority order meets both
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &b, &rta), AII_ERR_UNSCHEDULABLE);
    p.budget_us = 500;
    CHECK_EQ(aii_sched_add(&sched, &p, 0, &b, &rta), AII_OK);
    CHECK(a != b);
}

static int64_t balance(int a) {
    return led.cur.account[a].balance;
}

static void test_ledger(void) {
    aii_ledger_init(&led);
    int q = -1, a = -1, b = -1;
    CHECK_EQ(aii_ledger_add_qty(&led, "Wh", 2, AII_FX_DEC(3), &q), AII_OK);
    CHECK_EQ(aii_ledger_open(&led, "bat", 3, q, AII_ACCT_NON_NEGATIVE, 1000, &a), AII_OK);
    CHECK_EQ(aii_ledger_open(&led, "load", 4, q, AII_ACCT_NON_NEGATIVE, 0, &b), AII_OK);
    CHECK_EQ(aii_ledger_transfer(&led, a, b, q, 300), AII_OK);
    CHECK_EQ(aii_ledger_transfer(&led, b, a, q, 301), AII_ERR_INSUFFICIENT);
    CHECK_EQ(aii_ledger_hold(&led, 7, a, q, 200), AII_OK);
    CHECK_EQ(balance(a), 500);
    CHECK_EQ(aii_ledger_settle(&led, 7), AII_OK);
    CHECK_EQ(aii_ledger_begin(&led), AII_OK);
    CHECK_EQ(aii_ledger_transfer(&led, a, b, q, 100), AII_OK);
    CHECK_EQ(aii_ledger_rollback(&led), AII_OK);
    for (int i = 0; i < 2 * AII_LEDGER_SEGMENT; i++) {
        CHECK_EQ(aii_ledger_transfer(&led, i % 2 ? b : a, i % 2 ? a : b, q, 1), AII_OK);
    }
    CHECK_EQ(balance(a), 500);
    CHECK_EQ(balance(b), 300);
    CHECK_EQ(aii_ledger_verify(&led, NULL), AII_OK);
    aii_i128_t bal, held, expected;
    CHECK_EQ(aii_ledger_totals(&led, q, &bal, &held, &expected), AII_OK);
    CHECK(aii_i128_cmp(&bal, &expected) == 0);

    // Every record that came out of the ring, oldest first: sequence numbers without a gap,
    // each with its CRC, and no SEAL.
    uint8_t r[AII_LEDGER_REC_SIZE];
    uint32_t n = 0, seals = 0, bad_crc = 0, gaps = 0, prev = 0;
    while (aii_ledger_journal_pop(&led, r)) {
        uint32_t crc = (uint32_t)r[AII_REC_CRC] | (uint32_t)r[AII_REC_CRC + 1] << 8 |
            (uint32_t)r[AII_REC_CRC + 2] << 16 | (uint32_t)r[AII_REC_CRC + 3] << 24;
        uint32_t seq = (uint32_t)r[AII_REC_SEQ] | (uint32_t)r[AII_REC_SEQ + 1] << 8 |
            (uint32_t)r[AII_REC_SEQ + 2] << 16 | (uint32_t)r[AII_REC_SEQ + 3] << 24;
        bad_crc += crc != aii_crc32(0, r, AII_REC_CRC);
        seals += r[AII_REC_OP] == AII_OP_SEAL;
        gaps += n > 0 && seq != prev + 1;
        prev = seq;
        n++;
    }
    CHECK_EQ(prev, led.cur.seq);
    CHECK_EQ(bad_crc, 0);
    CHECK_EQ(seals, 0);
    CHECK_EQ(gaps, 0);
    // The ring keeps the newest AII_LEDGER_JOURNAL records; the rest were counted as lost.
    CHECK_EQ(n + led.r_lost, led.cur.seq);
    CHECK_EQ(led.cur.seg_count, led.cur.seq);
}

int main(void) {
    test_admission();
    test_ledger();
    return check_report("test_minimal");
}
