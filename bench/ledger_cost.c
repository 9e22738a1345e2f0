// SPDX-License-Identifier: MIT
// Ledger-cost harness: drives the ledger core so that callgrind can count the instructions of
// one transfer, hold, settle and commit (bench/ledger_bench.py reads the call graph).
//
//     ledger_cost N
//
// Two quantities, eight accounts, a couple of holds always open (so the balance check and the
// canonical walk see a realistic state). Then N rounds of:
//   transfer (its own transaction: validate, apply, commit with the balance check, CRC, chain
//   hash, and every SEGMENT records a SEAL);  hold + settle (each its own transaction);
//   begin, 4 transfers, commit (the commit measured apart from the transfers inside it).
// The journal is drained after each round, as an application persisting it would (not counted
// in the operations). Prints one line of counters (JSON) for the Python side to check.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "ledger.h"

// Static: the ledger state is a few kB and the core never allocates.
static aii_ledger_t L;

#define BENCH_RNG_SEED 0x2545f491u
#include "bench_rng.h"

// Transfers inside an explicit transaction go through this wrapper, so callgrind can tell them
// from the stand-alone transfers that main() calls directly. noipa keeps it a real call.
#if defined(__GNUC__) && !defined(__clang__)
#define AII_BENCH_WRAPPER __attribute__((noipa))
#else
#define AII_BENCH_WRAPPER __attribute__((noinline))
#endif
AII_BENCH_WRAPPER static aii_status_t transfer_in_tx(int src, int dst, int qty, int64_t amount) {
    return aii_ledger_transfer(&L, src, dst, qty, amount);
}

static int fail(const char *what, aii_status_t st) {
    fprintf(stderr, "%s failed: %d\n", what, (int)st);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2 || atol(argv[1]) < 1) {
        fprintf(stderr, "usage: ledger_cost N\n");
        return 2;
    }
    long n = atol(argv[1]);
    int q[2], acct[8];
    aii_status_t st;
    aii_ledger_init(&L);
    if ((st = aii_ledger_add_qty(&L, "Wh", 2, 0x83, &q[0])) != AII_OK ||
        (st = aii_ledger_add_qty(&L, "litre", 5, 8, &q[1])) != AII_OK) {
        return fail("add_qty", st);
    }
    for (int i = 0; i < 8; i++) {
        char name[3] = {'a', (char)('0' + i), 0};
        st = aii_ledger_open(&L, name, 2, q[i / 4], AII_ACCT_NON_NEGATIVE, 1000000000, &acct[i]);
        if (st != AII_OK) {
            return fail("open", st);
        }
    }
    if ((st = aii_ledger_hold(&L, 1, acct[0], q[0], 5)) != AII_OK ||
        (st = aii_ledger_prepare(&L, 2, acct[5], q[1], 7)) != AII_OK) {
        return fail("standing holds", st);
    }
    uint8_t rec[AII_LEDGER_REC_SIZE];
    long records = 0, transfers = 0, holds = 0, settles = 0, commits = 0, in_tx = 0;
    while (aii_ledger_journal_pop(&L, rec)) {
        records++;
    }
    for (long r = 0; r < n; r++) {
        int k = (int)(rng() % 4), j = (k + 1 + (int)(rng() % 3)) % 4, g = (int)(rng() % 2);
        int64_t amount = 1 + (int64_t)(rng() % 100);
        if ((st = aii_ledger_transfer(&L, acct[4 * g + k], acct[4 * g + j], q[g], amount)) != AII_OK) {
            return fail("transfer", st);
        }
        transfers++;
        uint64_t txid = 1000 + (uint64_t)r;
        if ((st = aii_ledger_hold(&L, txid, acct[4 * g + j], q[g], amount)) != AII_OK) {
            return fail("hold", st);
        }
        holds++;
        if ((st = aii_ledger_settle(&L, txid)) != AII_OK) {
            return fail("settle", st);
        }
        settles++;
        // Keep the balances up: the settle sent `amount` out of the ledger.
        if ((st = aii_ledger_inflow(&L, acct[4 * g + j], q[g], amount)) != AII_OK) {
            return fail("inflow", st);
        }
        if ((st = aii_ledger_begin(&L)) != AII_OK) {
            return fail("begin", st);
        }
        for (int t = 0; t < 4; t++) {
            if ((st = transfer_in_tx(acct[4 * g + t], acct[4 * g + (t + 1) % 4], q[g], 3)) != AII_OK) {
                return fail("transfer in tx", st);
            }
            in_tx++;
        }
        if ((st = aii_ledger_commit(&L, NULL)) != AII_OK) {
            return fail("commit", st);
        }
        commits++;
        while (aii_ledger_journal_pop(&L, rec)) {
            records++;
        }
    }
    if (L.r_lost != 0 || aii_ledger_verify(&L, NULL) != AII_OK) {
        fprintf(stderr, "ledger not clean at the end\n");
        return 1;
    }
    printf("{\"rounds\": %ld, \"transfers\": %ld, \"holds\": %ld, \"settles\": %ld, "
           "\"commits\": %ld, \"transfers_in_tx\": %ld, \"records\": %ld, \"seq\": %" PRIu32 ", "
           "\"lost\": %" PRIu32 "}\n",
        n, transfers, holds, settles, commits, in_tx, records, L.cur.seq, L.r_lost);
    return 0;
}
