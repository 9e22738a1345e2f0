// SPDX-License-Identifier: MIT
// Ledger: conservation, refusals that change nothing, holds, transactions, the journal and
// its replay, seals, checkpoints, and fault injection (bit flips, a dropped side of a
// transfer, dropped or altered journal records) that the balance equation or the digest
// must always catch. Ledgers are static: the bare-metal stack is small.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "crc32.h"
#include "fixed.h"
#include "ledger.h"
#include "sha256.h"
#include "vectors_ledger.h"

#define SZ AII_LEDGER_REC_SIZE
#define MAXREC 2500

static aii_ledger_t L, R, C;  // live, replayed, restored
static uint8_t journal[MAXREC][SZ];
static size_t njournal;
static uint8_t cp[AII_LEDGER_CHECKPOINT_MAX];

static void drain(aii_ledger_t *l) {
    uint8_t r[SZ];
    while (aii_ledger_journal_pop(l, r)) {
        if (njournal < MAXREC) {
            memcpy(journal[njournal++], r, SZ);
        }
    }
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    while (n--) {
        v = v << 8 | p[n];
    }
    return v;
}

static int same_digest(const aii_ledger_t *a, const aii_ledger_t *b) {
    uint8_t da[AII_LEDGER_DIGEST_LEN], db[AII_LEDGER_DIGEST_LEN];
    aii_ledger_digest(a, da);
    aii_ledger_digest(b, db);
    return memcmp(da, db, sizeof(da)) == 0;
}

static int64_t bal(const aii_ledger_t *l, int a) {
    return l->cur.account[a].balance;
}

// Balance equation checked independently of the core: plain sums that cannot overflow here.
static int64_t held_in(const aii_ledger_t *l, int q) {
    int64_t h = 0;
    for (int i = 0; i < AII_LEDGER_MAX_HOLDS; i++) {
        const aii_ledger_hold_t *x = &l->cur.hold[i];
        if (x->amount && x->kind == AII_HOLD_DEBIT && l->cur.account[x->account].qty == q) {
            h += x->amount;
        }
    }
    return h;
}

static int q_wh, q_l, a_bat, a_load, a_grid, a_tank, a_free;

static void setup(aii_ledger_t *l) {
    aii_ledger_init(l);
    aii_ledger_set_time(l, 1000);
    njournal = 0;
    CHECK_EQ(aii_ledger_add_qty(l, "Wh", 2, AII_FX_DEC(3), &q_wh), AII_OK);
    CHECK_EQ(aii_ledger_add_qty(l, "litre", 5, AII_FX_Q(8), &q_l), AII_OK);
    CHECK_EQ(aii_ledger_open(l, "battery", 7, q_wh, AII_ACCT_NON_NEGATIVE, 5000, &a_bat), AII_OK);
    CHECK_EQ(aii_ledger_open(l, "load", 4, q_wh, AII_ACCT_NON_NEGATIVE, 0, &a_load), AII_OK);
    CHECK_EQ(aii_ledger_open(l, "grid", 4, q_wh, 0, 0, &a_grid), AII_OK);
    CHECK_EQ(aii_ledger_open(l, "tank", 4, q_l, AII_ACCT_NON_NEGATIVE, 256, &a_tank), AII_OK);
    CHECK_EQ(aii_ledger_open(l, "free", 4, q_l, 0, -10, &a_free), AII_OK);
    drain(l);
}

static void test_structure(void) {
    int i;
    setup(&L);
    CHECK_EQ(aii_ledger_add_qty(&L, "Wh", 2, AII_FX_DEC(3), &i), AII_ERR_EXISTS);
    CHECK_EQ(aii_ledger_add_qty(&L, "", 0, 0, &i), AII_ERR_ARG);
    CHECK_EQ(aii_ledger_add_qty(&L, "a\0b", 3, 0, &i), AII_ERR_ARG);
    CHECK_EQ(aii_ledger_add_qty(&L, "thirteen-char", 13, 0, &i), AII_ERR_ARG);
    CHECK_EQ(aii_ledger_add_qty(&L, "bad", 3, AII_FX_Q(63), &i), AII_ERR_ARG);
    CHECK_EQ(aii_ledger_add_qty(&L, "twelve-chars", 12, 0, &i), AII_OK);
    CHECK_EQ(aii_ledger_add_qty(&L, "q4", 2, 0, &i), AII_OK);
    CHECK_EQ(aii_ledger_add_qty(&L, "q5", 2, 0, &i), AII_ERR_FULL);
    CHECK_EQ(aii_ledger_open(&L, "battery", 7, q_wh, 0, 0, &i), AII_ERR_EXISTS);
    CHECK_EQ(aii_ledger_open(&L, "x", 1, 9, 0, 0, &i), AII_ERR_NOT_FOUND);
    CHECK_EQ(aii_ledger_open(&L, "x", 1, q_wh, 4, 0, &i), AII_ERR_ARG);
    CHECK_EQ(aii_ledger_open(&L, "x", 1, q_wh, AII_ACCT_NON_NEGATIVE, -1, &i), AII_ERR_ARG);
    CHECK_EQ(aii_ledger_find_account(&L, "tank", 4, &i), AII_OK);
    CHECK_EQ(i, a_tank);
    CHECK_EQ(aii_ledger_find_account(&L, "tan", 3, &i), AII_ERR_NOT_FOUND);
    CHECK_EQ(aii_ledger_find_qty(&L, "litre", 5, &i), AII_OK);
    CHECK_EQ(i, q_l);
    int opened = 0;
    char name[4] = "acN";
    for (int k = 0; k < AII_LEDGER_MAX_ACCOUNTS + 2; k++) {
        name[2] = (char)('A' + k);
        opened += aii_ledger_open(&L, name, 3, q_l, 0, 0, &i) == AII_OK;
    }
    CHECK_EQ(opened, AII_LEDGER_MAX_ACCOUNTS - 5);
    CHECK_EQ(aii_ledger_verify(&L, NULL), AII_OK);
}

static void test_transfer(void) {
    uint8_t before[AII_LEDGER_DIGEST_LEN], after[AII_LEDGER_DIGEST_LEN];
    setup(&L);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 1200), AII_OK);
    CHECK_EQ(bal(&L, a_bat), 3800);
    CHECK_EQ(bal(&L, a_load), 1200);
    aii_ledger_digest(&L, before);
    uint32_t seq = L.cur.seq;
    // Each refusal leaves the state, digest and sequence number exactly as they were.
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 3801), AII_ERR_INSUFFICIENT);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 0), AII_ERR_ARG);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, -5), AII_ERR_ARG);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_bat, q_wh, 1), AII_ERR_ARG);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_tank, q_wh, 1), AII_ERR_ARG);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_l, 1), AII_ERR_ARG);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, 99, q_wh, 1), AII_ERR_NOT_FOUND);
    CHECK_EQ(aii_ledger_transfer(&L, -1, a_load, q_wh, 1), AII_ERR_NOT_FOUND);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, 7, 1), AII_ERR_NOT_FOUND);
    CHECK_EQ(aii_ledger_outflow(&L, a_load, q_wh, 1201), AII_ERR_INSUFFICIENT);
    aii_ledger_digest(&L, after);
    CHECK(memcmp(before, after, sizeof(before)) == 0);
    CHECK_EQ(L.cur.seq, seq);
    // A signed account may go negative; overflow is refused, never wrapped.
    CHECK_EQ(aii_ledger_transfer(&L, a_grid, a_bat, q_wh, INT64_MAX - 3800), AII_OK);
    CHECK_EQ(bal(&L, a_bat), INT64_MAX);
    CHECK_EQ(aii_ledger_inflow(&L, a_bat, q_wh, 1), AII_ERR_OVERFLOW);
    CHECK_EQ(aii_ledger_transfer(&L, a_grid, a_load, q_wh, INT64_MAX), AII_ERR_OVERFLOW);
    CHECK_EQ(aii_ledger_transfer(&L, a_grid, a_load, q_wh, 1), AII_OK);
    CHECK_EQ(bal(&L, a_grid), INT64_MIN + 3800);
    CHECK_EQ(aii_ledger_outflow(&L, a_grid, q_wh, 3801), AII_ERR_OVERFLOW);
    CHECK_EQ(aii_ledger_verify(&L, NULL), AII_OK);
    // Totals past int64: inflows of INT64_MAX into two accounts are tracked exactly.
    CHECK_EQ(aii_ledger_outflow(&L, a_bat, q_wh, INT64_MAX), AII_OK);
    CHECK_EQ(aii_ledger_inflow(&L, a_bat, q_wh, INT64_MAX), AII_OK);
    CHECK_EQ(aii_ledger_inflow(&L, a_load, q_wh, INT64_MAX - 1201), AII_OK);
    aii_i128_t b, h, e;
    CHECK_EQ(aii_ledger_totals(&L, q_wh, &b, &h, &e), AII_OK);
    CHECK(aii_i128_cmp(&b, &e) == 0);
    CHECK(b.hi == 0 && b.lo == (uint64_t)INT64_MAX + 3799);
    CHECK_EQ(aii_ledger_verify(&L, NULL), AII_OK);
    CHECK_EQ(aii_ledger_totals(&L, 5, &b, &h, &e), AII_ERR_NOT_FOUND);
}

static void test_holds(void) {
    aii_ledger_hold_t h;
    setup(&L);
    CHECK_EQ(aii_ledger_hold(&L, 7, a_bat, q_wh, 2000), AII_OK);
    CHECK_EQ(bal(&L, a_bat), 3000);
    CHECK_EQ(held_in(&L, q_wh), 2000);
    CHECK_EQ(aii_ledger_hold(&L, 7, a_bat, q_wh, 1), AII_ERR_EXISTS);
    CHECK_EQ(aii_ledger_prepare(&L, 7, a_load, q_wh, 1), AII_ERR_EXISTS);
    CHECK_EQ(aii_ledger_hold(&L, 8, a_bat, q_wh, 3001), AII_ERR_INSUFFICIENT);
    CHECK_EQ(aii_ledger_hold(&L, 8, a_bat, q_wh, 0), AII_ERR_ARG);
    CHECK_EQ(aii_ledger_hold(&L, 8, a_tank, q_wh, 1), AII_ERR_ARG);
    CHECK_EQ(aii_ledger_get_hold(&L, 7, &h), AII_OK);
    CHECK(h.account == a_bat && h.amount == 2000 && h.kind == AII_HOLD_DEBIT);
    CHECK_EQ(aii_ledger_verify(&L, NULL), AII_OK);
    // Settle: escrow leaves as outflow.
    CHECK_EQ(aii_ledger_settle(&L, 7), AII_OK);
    CHECK_EQ(aii_ledger_settle(&L, 7), AII_ERR_NOT_FOUND);
    CHECK_EQ(aii_ledger_get_hold(&L, 7, &h), AII_ERR_NOT_FOUND);
    CHECK_EQ(bal(&L, a_bat), 3000);
    CHECK(L.cur.qty[q_wh].outflow.lo == 2000);
    // Release: escrow comes back.
    CHECK_EQ(aii_ledger_hold(&L, 9, a_bat, q_wh, 500), AII_OK);
    CHECK_EQ(aii_ledger_release(&L, 9), AII_OK);
    CHECK_EQ(bal(&L, a_bat), 3000);
    CHECK_EQ(aii_ledger_release(&L, 9), AII_ERR_NOT_FOUND);
    // Prepared credit: nothing until settled, then an inflow.
    CHECK_EQ(aii_ledger_prepare(&L, 10, a_load, q_wh, 700), AII_OK);
    CHECK_EQ(bal(&L, a_load), 0);
    CHECK_EQ(held_in(&L, q_wh), 0);
    CHECK_EQ(aii_ledger_verify(&L, NULL), AII_OK);
    CHECK_EQ(aii_ledger_settle(&L, 10), AII_OK);
    CHECK_EQ(bal(&L, a_load), 700);
    CHECK(L.cur.qty[q_wh].inflow.lo == 700);
    CHECK_EQ(aii_ledger_prepare(&L, 11, a_load, q_wh, 5), AII_OK);
    CHECK_EQ(aii_ledger_release(&L, 11), AII_OK);
    CHECK_EQ(bal(&L, a_load), 700);
    // Many open at once, in both quantities; the table fills up.
    int ok = 0;
    for (uint64_t t = 100; t < 100 + AII_LEDGER_MAX_HOLDS + 1; t++) {
        ok += aii_ledger_hold(&L, t << 40, t & 1 ? a_bat : a_tank, t & 1 ? q_wh : q_l, 3) ==
            AII_OK;
    }
    CHECK_EQ(ok, AII_LEDGER_MAX_HOLDS);
    CHECK_EQ(aii_ledger_prepare(&L, 1, a_load, q_wh, 1), AII_ERR_FULL);
    CHECK_EQ(aii_ledger_verify(&L, NULL), AII_OK);
    CHECK_EQ(held_in(&L, q_wh) + bal(&L, a_bat) + bal(&L, a_load) + bal(&L, a_grid),
        5000 + 700 - 2000);
    // A prepared credit that would overflow its account on settle is refused and stays open.
    setup(&L);
    CHECK_EQ(aii_ledger_prepare(&L, 1, a_grid, q_wh, 10), AII_OK);
    CHECK_EQ(aii_ledger_inflow(&L, a_grid, q_wh, INT64_MAX - 5), AII_OK);
    CHECK_EQ(aii_ledger_settle(&L, 1), AII_ERR_OVERFLOW);
    CHECK_EQ(aii_ledger_get_hold(&L, 1, &h), AII_OK);
    CHECK_EQ(aii_ledger_release(&L, 1), AII_OK);
}

static void test_transactions(void) {
    uint8_t d0[AII_LEDGER_DIGEST_LEN], d1[AII_LEDGER_DIGEST_LEN];
    aii_ledger_violation_t v;
    setup(&L);
    aii_ledger_digest(&L, d0);
    CHECK_EQ(aii_ledger_commit(&L, &v), AII_ERR_STATE);
    CHECK_EQ(aii_ledger_rollback(&L), AII_ERR_STATE);
    CHECK_EQ(aii_ledger_begin(&L), AII_OK);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 100), AII_OK);
    CHECK_EQ(aii_ledger_hold(&L, 5, a_bat, q_wh, 100), AII_OK);
    CHECK_EQ(aii_ledger_begin(&L), AII_ERR_STATE);  // nested: refused, tx still open
    CHECK_EQ(aii_ledger_transfer(&L, a_load, a_bat, q_wh, 101), AII_ERR_INSUFFICIENT);
    CHECK_EQ(bal(&L, a_load), 100);
    CHECK(!aii_ledger_journal_pop(&L, journal[0]));  // nothing committed yet
    CHECK_EQ(aii_ledger_rollback(&L), AII_OK);
    aii_ledger_digest(&L, d1);
    CHECK(memcmp(d0, d1, sizeof(d0)) == 0);
    CHECK_EQ(bal(&L, a_bat), 5000);
    CHECK_EQ(L.r_len + L.r_pend, 0);
    // Commit: three records, the last one marked as the end of the commit.
    CHECK_EQ(aii_ledger_begin(&L), AII_OK);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 100), AII_OK);
    CHECK_EQ(aii_ledger_transfer(&L, a_load, a_grid, q_wh, 40), AII_OK);
    CHECK_EQ(aii_ledger_inflow(&L, a_tank, q_l, 3), AII_OK);
    CHECK_EQ(aii_ledger_commit(&L, &v), AII_OK);
    CHECK_EQ(v.qty, -1);
    size_t n0 = njournal;
    drain(&L);
    CHECK_EQ(njournal - n0, 3);
    CHECK_EQ(journal[n0][7], 0);
    CHECK_EQ(journal[n0 + 1][7], 0);
    CHECK_EQ(journal[n0 + 2][7], AII_REC_END);
    // A transaction longer than the ring (less one slot kept for a seal) is refused at the
    // op that does not fit; the rest commits without losing a record.
    CHECK_EQ(aii_ledger_begin(&L), AII_OK);
    int ok = 0;
    for (int i = 0; i < AII_LEDGER_JOURNAL + 1; i++) {
        ok += aii_ledger_transfer(&L, a_bat, a_load, q_wh, 1) == AII_OK;
    }
    CHECK_EQ(ok, AII_LEDGER_JOURNAL - 1);
    CHECK_EQ(aii_ledger_commit(&L, &v), AII_OK);
    drain(&L);
    CHECK_EQ(L.r_lost, 0);
}

// undo(): the last commit, SEAL included, is taken back exactly; the journal of what stays
// replays to the same state; undo is refused once anything followed the commit.
static void test_undo(void) {
    uint8_t d0[AII_LEDGER_DIGEST_LEN], d1[AII_LEDGER_DIGEST_LEN];
    uint8_t r[SZ];
    setup(&L);
    aii_ledger_digest(&L, d0);
    uint32_t seq0 = L.cur.seq;
    // Records still in the ring go with the commit.
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 7), AII_OK);
    CHECK_EQ(L.r_len, 1);
    CHECK_EQ(aii_ledger_undo(&L), AII_OK);
    CHECK_EQ(L.r_len, 0);
    CHECK_EQ(bal(&L, a_bat), 5000);
    CHECK_EQ(L.cur.seq, seq0);
    aii_ledger_digest(&L, d1);
    CHECK(memcmp(d0, d1, sizeof(d0)) == 0);
    CHECK_EQ(aii_ledger_undo(&L), AII_ERR_STATE);  // once
    // Drained records are the binding's to drop; the ring keeps older undrained ones.
    CHECK_EQ(aii_ledger_inflow(&L, a_tank, q_l, 3), AII_OK);
    CHECK_EQ(aii_ledger_hold(&L, 9, a_bat, q_wh, 50), AII_OK);
    CHECK(aii_ledger_journal_pop(&L, r));  // the inflow, kept
    CHECK(aii_ledger_journal_pop(&L, r));  // the hold, drained and "not written"
    CHECK_EQ(aii_ledger_undo(&L), AII_OK);
    aii_ledger_hold_t h;
    CHECK_EQ(aii_ledger_get_hold(&L, 9, &h), AII_ERR_NOT_FOUND);
    CHECK_EQ(bal(&L, a_tank), 259);
    // A commit that closed a segment: its SEAL goes too, and the chain is as before.
    setup(&L);
    aii_ledger_init(&R);
    while (L.cur.seg_count + 1 < AII_LEDGER_SEGMENT) {
        CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 1), AII_OK);
    }
    drain(&L);
    aii_ledger_digest(&L, d0);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 1), AII_OK);
    CHECK_EQ(L.r_len, 2);  // the transfer and the SEAL
    CHECK_EQ(L.cur.seg_count, 0);
    CHECK_EQ(aii_ledger_undo(&L), AII_OK);
    CHECK_EQ(L.r_len, 0);
    aii_ledger_digest(&L, d1);
    CHECK(memcmp(d0, d1, sizeof(d0)) == 0);
    // The next commit continues from there: the whole journal replays to the live state.
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 2), AII_OK);
    drain(&L);
    CHECK_EQ(aii_ledger_replay(&R, journal[0], njournal, NULL), AII_OK);
    CHECK(same_digest(&L, &R));
    // Refused: after another operation (even a refused one), seal, checkpoint, in a
    // transaction, after a rolled-back or replayed state.
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 1), AII_OK);
    CHECK_EQ(aii_ledger_transfer(&L, a_load, a_bat, q_wh, 1 << 30), AII_ERR_INSUFFICIENT);
    CHECK_EQ(aii_ledger_undo(&L), AII_ERR_STATE);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 1), AII_OK);
    CHECK_EQ(aii_ledger_seal(&L), AII_OK);
    CHECK_EQ(aii_ledger_undo(&L), AII_ERR_STATE);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 1), AII_OK);
    size_t len;
    CHECK_EQ(aii_ledger_checkpoint(&L, cp, sizeof(cp), &len), AII_OK);
    CHECK_EQ(aii_ledger_undo(&L), AII_ERR_STATE);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 1), AII_OK);
    CHECK_EQ(aii_ledger_begin(&L), AII_OK);
    CHECK_EQ(aii_ledger_undo(&L), AII_ERR_STATE);
    CHECK_EQ(aii_ledger_rollback(&L), AII_OK);
    CHECK_EQ(aii_ledger_undo(&L), AII_ERR_STATE);
    // An explicit transaction of several records is one commit.
    drain(&L);
    aii_ledger_digest(&L, d0);
    CHECK_EQ(aii_ledger_begin(&L), AII_OK);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 5), AII_OK);
    CHECK_EQ(aii_ledger_outflow(&L, a_load, q_wh, 5), AII_OK);
    CHECK_EQ(aii_ledger_commit(&L, NULL), AII_OK);
    CHECK_EQ(aii_ledger_undo(&L), AII_OK);
    aii_ledger_digest(&L, d1);
    CHECK(memcmp(d0, d1, sizeof(d0)) == 0);
    CHECK_EQ(L.r_len, 0);
}

static void test_fault_injection(void) {
    uint8_t d0[AII_LEDGER_DIGEST_LEN], d1[AII_LEDGER_DIGEST_LEN];
    aii_ledger_violation_t v;
    setup(&L);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 1234), AII_OK);
    CHECK_EQ(aii_ledger_hold(&L, 3, a_bat, q_wh, 66), AII_OK);
    aii_ledger_digest(&L, d0);
    // Flip every bit of a balance in turn: the equation and the digest both notice.
    for (int bit = 0; bit < 64; bit++) {
        int64_t keep = L.cur.account[a_load].balance;
        L.cur.account[a_load].balance = (int64_t)((uint64_t)keep ^ ((uint64_t)1 << bit));
        CHECK_EQ(aii_ledger_verify(&L, &v), AII_ERR_VIOLATION);
        CHECK_EQ(v.qty, q_wh);
        int64_t delta;
        CHECK_EQ(aii_i128_to_i64(&v.delta, &delta), AII_OK);
        CHECK(delta == L.cur.account[a_load].balance - keep);
        aii_ledger_digest(&L, d1);
        CHECK(memcmp(d0, d1, sizeof(d0)) != 0);
        // A corrupted ledger refuses to commit anything.
        CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_grid, q_wh, 1), AII_ERR_VIOLATION);
        L.cur.account[a_load].balance = keep;
    }
    // Bit flips in a hold amount and in the flows are caught as well.
    for (int i = 0; i < AII_LEDGER_MAX_HOLDS; i++) {
        if (L.cur.hold[i].amount) {
            L.cur.hold[i].amount ^= 8;
            CHECK_EQ(aii_ledger_verify(&L, &v), AII_ERR_VIOLATION);
            L.cur.hold[i].amount ^= 8;
        }
    }
    L.cur.qty[q_wh].inflow.hi ^= 1;
    CHECK_EQ(aii_ledger_verify(&L, &v), AII_ERR_VIOLATION);
    L.cur.qty[q_wh].inflow.hi ^= 1;
    CHECK_EQ(aii_ledger_verify(&L, &v), AII_OK);
    // Drop one side of a transfer inside a transaction: commit reports it and rolls back.
    CHECK_EQ(aii_ledger_begin(&L), AII_OK);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 500), AII_OK);
    L.cur.account[a_bat].balance += 500;  // the debit is lost
    CHECK_EQ(aii_ledger_commit(&L, &v), AII_ERR_VIOLATION);
    CHECK_EQ(v.qty, q_wh);
    CHECK(v.delta.lo == 500 && v.delta.hi == 0);
    aii_i128_t d = v.actual;
    aii_i128_sub(&d, &v.expected);
    CHECK(aii_i128_cmp(&d, &v.delta) == 0);
    CHECK(L.violation.qty == q_wh);
    aii_ledger_digest(&L, d1);
    CHECK(memcmp(d0, d1, sizeof(d0)) == 0);  // back to the state before begin()
    CHECK_EQ(L.in_tx, 0);
    CHECK_EQ(L.r_pend, 0);
}

// A scripted history with every operation kind; its journal is collected in `journal`.
static void history(aii_ledger_t *l) {
    setup(l);
    for (int i = 0; i < 40; i++) {
        aii_ledger_set_time(l, 2000 + (uint64_t)i);
        aii_ledger_set_origin(l, (uint8_t)(i % 5), 0xFFFFFF00u + (uint32_t)i);
        CHECK_EQ(aii_ledger_transfer(l, a_bat, a_load, q_wh, 10 + i), AII_OK);
        if (i % 3 == 0) {
            CHECK_EQ(aii_ledger_hold(l, 1000 + (uint64_t)i, a_bat, q_wh, 5), AII_OK);
        }
        if (i % 3 == 2) {
            CHECK_EQ(i % 2 ? aii_ledger_settle(l, 1000 + (uint64_t)i - 2) :
                aii_ledger_release(l, 1000 + (uint64_t)i - 2), AII_OK);
        }
        if (i % 7 == 0) {
            CHECK_EQ(aii_ledger_begin(l), AII_OK);
            CHECK_EQ(aii_ledger_inflow(l, a_tank, q_l, 256), AII_OK);
            CHECK_EQ(aii_ledger_transfer(l, a_tank, a_free, q_l, 250), AII_OK);
            CHECK_EQ(aii_ledger_prepare(l, 5000 + (uint64_t)i, a_load, q_wh, 9), AII_OK);
            CHECK_EQ(aii_ledger_outflow(l, a_free, q_l, 1), AII_OK);
            CHECK_EQ(aii_ledger_commit(l, NULL), AII_OK);
        }
        if (i % 7 == 3) {
            CHECK_EQ(aii_ledger_settle(l, 5000 + (uint64_t)i - 3), AII_OK);
        }
        drain(l);
    }
    // Left open on purpose: holds must survive the replay.
    CHECK_EQ(aii_ledger_hold(l, 77, a_load, q_wh, 50), AII_OK);
    CHECK_EQ(aii_ledger_prepare(l, 78, a_grid, q_wh, 60), AII_OK);
    drain(l);
}

static void test_journal(void) {
    size_t applied;
    aii_ledger_hold_t h;
    history(&L);
    CHECK_EQ(L.r_lost, 0);
    CHECK(njournal > 2 * AII_LEDGER_SEGMENT && njournal < MAXREC);
    // Records: CRC, consecutive sequence numbers from 1, timestamps from set_time().
    // Origins: each record has the one set before it, a SEAL none.
    int crc_ok = 0, seq_ok = 0, seals = 0, origin_ok = 0;
    for (size_t i = 0; i < njournal; i++) {
        crc_ok += aii_crc32(0, journal[i], AII_REC_CRC) == (uint32_t)le(journal[i] + AII_REC_CRC, 4);
        seq_ok += le(journal[i], 4) == i + 1;
        seals += journal[i][4] == AII_OP_SEAL;
        uint64_t t = le(journal[i] + AII_REC_TIME, 8), id = le(journal[i] + AII_REC_ORIGIN_ID, 4);
        int origin = journal[i][AII_REC_ORIGIN];
        if (journal[i][4] == AII_OP_SEAL) {
            origin_ok += origin == 0 && id == 0;
        } else if (t >= 2000) {
            origin_ok += origin == (int)(t - 2000) % 5 && id == 0xFFFFFF00u + (t - 2000);
        } else {
            origin_ok += origin == 0 && id == 0;  // setup() ran before any set_origin()
        }
    }
    CHECK_EQ(origin_ok, (int)njournal);
    CHECK_EQ(crc_ok, (int)njournal);
    CHECK_EQ(seq_ok, (int)njournal);
    CHECK(seals >= 2);
    CHECK_EQ(le(journal[njournal - 1] + 8, 8), 2039);
    // Seals: recompute the chain with SHA-256 directly, from the records themselves.
    uint8_t chain[AII_LEDGER_DIGEST_LEN] = {0}, full[32];
    aii_sha256_t sha;
    aii_sha256_init(&sha);
    aii_sha256_update(&sha, chain, sizeof(chain));
    int chain_ok = 0, inseg = 0;
    for (size_t i = 0; i < njournal; i++) {
        if (journal[i][4] == AII_OP_SEAL) {
            aii_sha256_final(&sha, full);
            chain_ok += memcmp(full, journal[i] + 16, AII_LEDGER_DIGEST_LEN) == 0;
            CHECK(inseg >= AII_LEDGER_SEGMENT);
            inseg = 0;
            memcpy(chain, full, sizeof(chain));
            aii_sha256_init(&sha);
            aii_sha256_update(&sha, chain, sizeof(chain));
        } else {
            aii_sha256_update(&sha, journal[i], SZ);
            inseg++;
        }
    }
    CHECK_EQ(chain_ok, seals);
    CHECK(memcmp(chain, L.cur.chain, sizeof(chain)) == 0);

    // Replay on a fresh ledger: same digest, open holds included.
    aii_ledger_init(&R);
    CHECK_EQ(aii_ledger_replay(&R, journal[0], njournal, &applied), AII_OK);
    CHECK_EQ(applied, njournal);
    CHECK(same_digest(&L, &R));
    CHECK_EQ(aii_ledger_get_hold(&R, 77, &h), AII_OK);
    CHECK(h.amount == 50 && h.kind == AII_HOLD_DEBIT && h.account == a_load);
    CHECK_EQ(aii_ledger_get_hold(&R, 78, &h), AII_OK);
    CHECK(h.amount == 60 && h.kind == AII_HOLD_CREDIT);
    CHECK_EQ(R.r_len, 0);  // replayed records are not journalled again
    // Replaying the same records again is a no-op (all already covered).
    CHECK_EQ(aii_ledger_replay(&R, journal[0], njournal, &applied), AII_OK);
    CHECK(same_digest(&L, &R));
    // The replayed ledger carries on exactly like the original.
    CHECK_EQ(aii_ledger_settle(&R, 77), AII_OK);
    CHECK_EQ(aii_ledger_settle(&L, 77), AII_OK);
    CHECK(same_digest(&L, &R));
    CHECK_EQ(aii_ledger_begin(&R), AII_OK);
    CHECK_EQ(aii_ledger_replay(&R, journal[0], 1, &applied), AII_ERR_STATE);
    CHECK_EQ(aii_ledger_rollback(&R), AII_OK);
}

static void test_journal_faults(void) {
    static uint8_t cut[MAXREC][SZ];
    size_t applied;
    history(&L);
    size_t n = njournal;
    // Every single dropped record is caught: a sequence gap, or (the last one) a digest that
    // no longer matches.
    int caught = 0;
    for (size_t k = 0; k < n; k++) {
        memcpy(cut[0], journal[0], k * SZ);
        memcpy(cut[k], journal[k + 1], (n - k - 1) * SZ);
        aii_ledger_init(&R);
        aii_status_t st = aii_ledger_replay(&R, cut[0], n - 1, &applied);
        caught += (st == AII_ERR_CORRUPT && applied <= k) || !same_digest(&L, &R);
        CHECK_EQ(aii_ledger_verify(&R, NULL), AII_OK);  // what was kept is consistent
    }
    CHECK_EQ(caught, (int)n);
    // A flipped bit anywhere in a record: the CRC refuses it.
    caught = 0;
    for (int bit = 0; bit < SZ * 8; bit += 5) {
        memcpy(cut[0], journal[0], n * SZ);
        cut[20][bit / 8] ^= (uint8_t)(1 << (bit % 8));
        aii_ledger_init(&R);
        caught += aii_ledger_replay(&R, cut[0], n, &applied) == AII_ERR_CORRUPT && applied < 21;
    }
    CHECK_EQ(caught, (SZ * 8 + 4) / 5);
    // An altered amount with a recomputed CRC: the next SEAL's chain hash refuses it.
    size_t t = 0;
    while (journal[t][4] != AII_OP_TRANSFER) {
        t++;
    }
    memcpy(cut[0], journal[0], n * SZ);
    cut[t][AII_REC_AMOUNT] ^= 1;
    uint32_t crc = aii_crc32(0, cut[t], AII_REC_CRC);
    for (int i = 0; i < 4; i++) {
        cut[t][AII_REC_CRC + i] = (uint8_t)(crc >> (8 * i));
    }
    aii_ledger_init(&R);
    CHECK_EQ(aii_ledger_replay(&R, cut[0], n, &applied), AII_ERR_CORRUPT);
    CHECK(applied < AII_LEDGER_SEGMENT + 2);
    CHECK(journal[applied][4] == AII_OP_SEAL);  // stopped at the first seal after the change
    // A commit cut short (power lost while persisting): the incomplete tail is dropped.
    size_t end = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (journal[i][7] == 0) {
            end = i;  // a record in the middle of a multi-record commit
            break;
        }
    }
    CHECK(end > 0);
    aii_ledger_init(&R);
    CHECK_EQ(aii_ledger_replay(&R, journal[0], end + 1, &applied), AII_OK);
    CHECK_EQ(applied, end);
    CHECK_EQ(R.cur.seq, (uint32_t)end);
}

static void test_checkpoint(void) {
    size_t len, applied;
    history(&L);
    size_t n = njournal;
    CHECK_EQ(aii_ledger_checkpoint(&L, cp, 10, &len), AII_ERR_ARG);
    CHECK_EQ(aii_ledger_checkpoint(&L, cp, sizeof(cp), &len), AII_OK);
    drain(&L);
    CHECK_EQ(journal[njournal - 1][4], AII_OP_SEAL);  // checkpoints fall on a seal
    CHECK_EQ(L.cur.seg_count, 0);
    CHECK_EQ(aii_ledger_restore(&C, cp, len), AII_OK);
    CHECK(same_digest(&L, &C));
    // Both carry on; the restored one can also be brought forward by replaying the journal
    // written after the checkpoint (older records are skipped).
    size_t mark = njournal;
    for (int i = 0; i < 30; i++) {
        CHECK_EQ(aii_ledger_transfer(&L, a_load, a_grid, q_wh, 3), AII_OK);
        if (i == 10) {
            CHECK_EQ(aii_ledger_release(&L, 78), AII_OK);
        }
        drain(&L);
    }
    CHECK_EQ(aii_ledger_replay(&C, journal[0], njournal, &applied), AII_OK);
    CHECK_EQ(applied, njournal);
    CHECK(same_digest(&L, &C));
    aii_ledger_init(&R);
    CHECK_EQ(aii_ledger_restore(&R, cp, len), AII_OK);
    CHECK_EQ(aii_ledger_replay(&R, journal[mark], njournal - mark, &applied), AII_OK);
    CHECK(same_digest(&L, &R));
    CHECK(n < mark);
    // A damaged checkpoint is refused and leaves an empty ledger.
    cp[40] ^= 1;
    CHECK_EQ(aii_ledger_restore(&C, cp, len), AII_ERR_CORRUPT);
    CHECK_EQ(C.cur.n_qty, 0);
    cp[40] ^= 1;
    CHECK_EQ(aii_ledger_restore(&C, cp, len - 1), AII_ERR_CORRUPT);
    CHECK_EQ(aii_ledger_begin(&L), AII_OK);
    CHECK_EQ(aii_ledger_checkpoint(&L, cp, sizeof(cp), &len), AII_ERR_STATE);
    CHECK_EQ(aii_ledger_seal(&L), AII_ERR_STATE);
    CHECK_EQ(aii_ledger_rollback(&L), AII_OK);
}

static void test_ring_overrun(void) {
    setup(&L);
    for (int i = 0; i < AII_LEDGER_JOURNAL + 5; i++) {
        CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 1), AII_OK);
    }
    // Not drained: the oldest records are gone, and that is counted, not hidden.
    CHECK(L.r_lost >= 5);
    CHECK_EQ(L.r_len, AII_LEDGER_JOURNAL);
    uint8_t r[SZ];
    uint32_t last = 0;
    int ordered = 1;
    while (aii_ledger_journal_pop(&L, r)) {
        ordered &= last == 0 || le(r, 4) == last + 1;
        last = (uint32_t)le(r, 4);
    }
    CHECK(ordered);
    CHECK_EQ(last, L.cur.seq);
    // Sequence numbers never wrap: the last two are kept for a record and its seal.
    L.cur.seq = UINT32_MAX - 3;
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 1), AII_OK);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 1), AII_OK);
    CHECK_EQ(aii_ledger_transfer(&L, a_bat, a_load, q_wh, 1), AII_ERR_FULL);
    CHECK_EQ(aii_ledger_seal(&L), AII_OK);
    CHECK_EQ(L.cur.seq, UINT32_MAX);
}

static uint32_t rnd_state = 2463534242u;

static uint32_t rnd(uint32_t n) {
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 17;
    rnd_state ^= rnd_state << 5;
    return rnd_state % n;
}

// Random operations, many of them refused: a refusal never changes the digest, the equation
// holds after every step, a rollback restores the exact state, and the journal replays to
// the same digest at the end.
static void test_random(void) {
    static const int64_t amounts[] = {1, 2, 50, 1000, INT64_MAX / 2, INT64_MAX, 0, -1};
    uint8_t d0[AII_LEDGER_DIGEST_LEN], d1[AII_LEDGER_DIGEST_LEN], dt[AII_LEDGER_DIGEST_LEN];
    int unchanged = 0, refused = 0, eq = 0, rolled = 0, rollbacks = 0, done = 0, tx_ok = 1;
    setup(&L);
    for (int i = 0; i < 2000; i++) {
        int a = (int)rnd(6) - (rnd(10) == 0), b = (int)rnd(6), q = (int)rnd(3);
        int64_t amt = amounts[rnd(8)];
        uint64_t txid = rnd(12);
        aii_ledger_digest(&L, d0);
        aii_status_t st;
        switch (rnd(10)) {
            case 0:
                st = aii_ledger_transfer(&L, a, b, q, amt);
                break;
            case 1:  // mostly the right quantity, so more of them go through
                st = aii_ledger_transfer(&L, a, b, a >= 0 ? L.cur.account[a % 5].qty : 0, amt);
                break;
            case 2:
                st = aii_ledger_inflow(&L, a, q, amt);
                break;
            case 3:
                st = aii_ledger_outflow(&L, a, q, amt);
                break;
            case 4:
                st = aii_ledger_hold(&L, txid, a, q, amt);
                break;
            case 5:
                st = aii_ledger_prepare(&L, txid, a, q, amt);
                break;
            case 6:
                st = aii_ledger_settle(&L, txid);
                break;
            case 7:
                st = aii_ledger_release(&L, txid);
                break;
            case 8:
                if (!L.in_tx) {
                    aii_ledger_digest(&L, dt);
                    CHECK_EQ(aii_ledger_begin(&L), AII_OK);
                } else if (rnd(2)) {
                    CHECK_EQ(aii_ledger_commit(&L, NULL), AII_OK);
                } else {
                    CHECK_EQ(aii_ledger_rollback(&L), AII_OK);
                    aii_ledger_digest(&L, d1);
                    rollbacks++;
                    rolled += memcmp(d1, dt, sizeof(d1)) == 0;
                }
                drain(&L);
                continue;
            default:
                st = aii_ledger_seal(&L);
                break;
        }
        drain(&L);
        aii_ledger_digest(&L, d1);
        if (st != AII_OK) {
            refused++;
            unchanged += memcmp(d0, d1, sizeof(d0)) == 0;
        } else {
            done++;
        }
        eq += aii_ledger_verify(&L, NULL) == AII_OK;
        tx_ok &= L.r_pend < AII_LEDGER_JOURNAL;
    }
    if (L.in_tx) {
        CHECK_EQ(aii_ledger_commit(&L, NULL), AII_OK);
        drain(&L);
    }
    printf("random: %d done, %d refused, %d rollbacks, %u records\n", done, refused, rollbacks,
        (unsigned)njournal);
    CHECK(refused > 100 && done > 100 && rollbacks > 10);
    CHECK_EQ(unchanged, refused);
    CHECK_EQ(rolled, rollbacks);
    CHECK_EQ(eq, refused + done);
    CHECK(tx_ok);
    CHECK_EQ(L.r_lost, 0);
    CHECK(njournal < MAXREC);
    size_t applied;
    aii_ledger_init(&R);
    CHECK_EQ(aii_ledger_replay(&R, journal[0], njournal, &applied), AII_OK);
    CHECK_EQ(applied, njournal);
    CHECK(same_digest(&L, &R));
}

// The history in tests/vectors/ledger.json, computed by the Python reference
// (tools/ledger_ref.py): every status, every journal byte, the digest and the checkpoint
// must come out identical.
static int step(aii_ledger_t *l, const vl_step_t *v) {
    const int64_t *a = v->a;
    size_t n = strlen(v->name);
    switch (v->op) {
        case VL_TIME:
            aii_ledger_set_time(l, (uint64_t)a[0]);
            return AII_OK;
        case VL_ORIGIN:
            aii_ledger_set_origin(l, (uint8_t)a[0], (uint32_t)a[1]);
            return AII_OK;
        case VL_QTY:
            return aii_ledger_add_qty(l, v->name, n, (uint8_t)a[0], NULL);
        case VL_OPEN:
            return aii_ledger_open(l, v->name, n, (int)a[0], (uint8_t)a[1], a[2], NULL);
        case VL_TRANSFER:
            return aii_ledger_transfer(l, (int)a[0], (int)a[1], (int)a[2], a[3]);
        case VL_INFLOW:
            return aii_ledger_inflow(l, (int)a[0], (int)a[1], a[2]);
        case VL_OUTFLOW:
            return aii_ledger_outflow(l, (int)a[0], (int)a[1], a[2]);
        case VL_HOLD:
            return aii_ledger_hold(l, (uint64_t)a[0], (int)a[1], (int)a[2], a[3]);
        case VL_PREPARE:
            return aii_ledger_prepare(l, (uint64_t)a[0], (int)a[1], (int)a[2], a[3]);
        case VL_SETTLE:
            return aii_ledger_settle(l, (uint64_t)a[0]);
        case VL_RELEASE:
            return aii_ledger_release(l, (uint64_t)a[0]);
        case VL_BEGIN:
            return aii_ledger_begin(l);
        case VL_COMMIT:
            return aii_ledger_commit(l, NULL);
        case VL_ROLLBACK:
            return aii_ledger_rollback(l);
        case VL_SEAL:
            return aii_ledger_seal(l);
        case VL_CHECKPOINT:
            return aii_ledger_checkpoint(l, cp, sizeof(cp), NULL);
    }
    return 99;
}

static void test_reference_vectors(void) {
#if AII_LEDGER_MAX_QTY == 4 && AII_LEDGER_MAX_ACCOUNTS == 16 && AII_LEDGER_MAX_HOLDS == 8 && \
    AII_LEDGER_JOURNAL == 16 && AII_LEDGER_SEGMENT == 16
    size_t nsteps = sizeof(vl_steps) / sizeof(vl_steps[0]);
    size_t njour = sizeof(vl_journal) / sizeof(vl_journal[0]);
    int bad = 0;
    aii_ledger_init(&L);
    njournal = 0;
    for (size_t i = 0; i < nsteps; i++) {
        int st = step(&L, &vl_steps[i]);
        drain(&L);
        if (st != vl_steps[i].st && bad++ < 10) {
            printf("step %u (op %d): status %d, reference %d\n", (unsigned)i, vl_steps[i].op, st,
                vl_steps[i].st);
        }
        CHECK_EQ(st, vl_steps[i].st);
    }
    CHECK_EQ(njournal, njour);
    int same = 0;
    for (size_t i = 0; i < njour && i < njournal; i++) {
        same += memcmp(journal[i], vl_journal[i], SZ) == 0;
    }
    CHECK_EQ(same, (int)njour);
    for (size_t i = 0; i < sizeof(vl_balances) / sizeof(vl_balances[0]); i++) {
        CHECK_EQ(bal(&L, (int)i), vl_balances[i]);
    }
    uint8_t d[AII_LEDGER_DIGEST_LEN];
    aii_ledger_digest(&L, d);
    CHECK(memcmp(d, vl_digest, sizeof(d)) == 0);
    size_t len = 0;
    CHECK_EQ(aii_ledger_checkpoint(&L, cp, sizeof(cp), &len), AII_OK);
    CHECK_EQ(len, sizeof(vl_checkpoint));
    CHECK(memcmp(cp, vl_checkpoint, sizeof(vl_checkpoint)) == 0);
    drain(&L);
    CHECK_EQ(njournal, njour + VL_N_AFTER_CHECKPOINT);
    // The reference journal replays to the reference digest; its checkpoint restores.
    size_t applied;
    aii_ledger_init(&R);
    CHECK_EQ(aii_ledger_replay(&R, vl_journal[0], njour, &applied), AII_OK);
    CHECK_EQ(applied, njour);
    aii_ledger_digest(&R, d);
    CHECK(memcmp(d, vl_digest, sizeof(d)) == 0);
    CHECK_EQ(aii_ledger_restore(&C, vl_checkpoint, sizeof(vl_checkpoint)), AII_OK);
    CHECK(same_digest(&C, &L));
#else
    printf("test_reference_vectors: SKIP (vectors are for the default table sizes)\n");
#endif
}

int main(void) {
    printf("sizeof(aii_ledger_t) = %u\n", (unsigned)sizeof(aii_ledger_t));
    test_structure();
    test_transfer();
    test_holds();
    test_transactions();
    test_undo();
    test_fault_injection();
    test_journal();
    test_journal_faults();
    test_checkpoint();
    test_ring_overrun();
    test_reference_vectors();
    test_random();
    return check_report("test_ledger");
}
