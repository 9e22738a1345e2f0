// SPDX-License-Identifier: MIT
// Exact conservation ledger: named quantities, accounts with int64 balances, holds (escrow and
// prepared credits) by transaction id, begin/commit/rollback with a balance check per
// quantity, a CRC'd journal with a hash chain, digests and checkpoints. Plain C99, no heap,
// no float: the caller provides one aii_ledger_t (make it a static global on an MCU).
//
// Balance equation, per quantity, checked exactly (128-bit) by every commit:
//     sum(balances) + sum(open escrow holds) == initial + inflow - outflow
// Every operation is validated before anything changes, so a refused operation changes
// nothing. Outside begin()/commit() each operation is its own transaction.
#ifndef AII_LEDGER_H
#define AII_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aii_record.h"
#include "aii_status.h"
#include "aii_text.h"
#include "sha256.h"
#include "wide.h"

#ifndef AII_LEDGER_MAX_QTY
#define AII_LEDGER_MAX_QTY (4)
#endif
#ifndef AII_LEDGER_MAX_ACCOUNTS
#define AII_LEDGER_MAX_ACCOUNTS (16)
#endif
#ifndef AII_LEDGER_MAX_HOLDS
#define AII_LEDGER_MAX_HOLDS (8)
#endif
// Records the ring holds until the binding drains them; also the longest transaction.
#ifndef AII_LEDGER_JOURNAL
#define AII_LEDGER_JOURNAL (16)
#endif
// Records per journal segment; a SEAL record closes each segment with its chain hash.
#ifndef AII_LEDGER_SEGMENT
#define AII_LEDGER_SEGMENT (16)
#endif
// Name length in bytes (stored zero-padded, no NUL needed; names may not contain NUL).
#define AII_LEDGER_NAME_LEN (12)

#if AII_LEDGER_MAX_QTY > 255 || AII_LEDGER_MAX_ACCOUNTS > 65535 || AII_LEDGER_MAX_HOLDS > 255
#error "ledger table sizes exceed the journal record fields"
#endif
#if AII_LEDGER_JOURNAL < 2 || AII_LEDGER_SEGMENT < 1
#error "AII_LEDGER_JOURNAL must be >= 2 and AII_LEDGER_SEGMENT >= 1"
#endif

#define AII_ACCT_NON_NEGATIVE (1)   // account flag: refuse to go below zero

#define AII_HOLD_DEBIT (1)          // escrow taken from an account (counts in the equation)
#define AII_HOLD_CREDIT (2)         // prepared credit, not yet in the ledger

#define AII_LEDGER_DIGEST_LEN (16)  // SHA-256 truncated
// Checkpoint blob (aii_record.h): head, quantities, accounts, holds, CRC-32.
#define AII_LEDGER_CHECKPOINT_MAX (AII_CKPT_HEAD_SIZE + AII_CKPT_QTY_SIZE * AII_LEDGER_MAX_QTY + \
    AII_CKPT_ACCOUNT_SIZE * AII_LEDGER_MAX_ACCOUNTS + AII_CKPT_HOLD_SIZE * AII_LEDGER_MAX_HOLDS + \
    AII_CKPT_CRC_LEN)

// Journal record operations (the record's OP byte; its layout is in aii_record.h).
typedef enum {
    AII_OP_QTY = 1,      // define quantity: qty, flags = format, name
    AII_OP_OPEN = 2,     // open account: a, qty, flags, name, amount = initial balance
    AII_OP_TRANSFER = 3, // a -> b, qty, amount
    AII_OP_INFLOW = 4,   // a, qty, amount
    AII_OP_OUTFLOW = 5,  // a, qty, amount
    AII_OP_HOLD = 6,     // txid, a, qty, amount
    AII_OP_PREPARE = 7,  // txid, a, qty, amount
    AII_OP_SETTLE = 8,   // txid, and the hold's a, qty, amount, flags = kind
    AII_OP_RELEASE = 9,  // same fields as SETTLE
    AII_OP_SEAL = 10,    // bytes 16..31: the segment's chain hash
} aii_ledger_op_t;

typedef struct {
    uint8_t name[AII_LEDGER_NAME_LEN];
    uint8_t fmt;                 // aii_fx format of amounts (AII_FX_Q / AII_FX_DEC)
    aii_i128_t initial, inflow, outflow;
} aii_ledger_qty_t;

typedef struct {
    uint8_t name[AII_LEDGER_NAME_LEN];
    uint8_t qty;
    uint8_t flags;
    int64_t balance;
} aii_ledger_account_t;

typedef struct {
    uint64_t txid;
    int64_t amount;              // > 0; 0 marks a free slot
    uint16_t account;
    uint8_t kind;                // AII_HOLD_DEBIT or AII_HOLD_CREDIT
} aii_ledger_hold_t;

// Everything a transaction may change; begin() snapshots it, rollback() restores it.
typedef struct {
    aii_ledger_qty_t qty[AII_LEDGER_MAX_QTY];
    aii_ledger_account_t account[AII_LEDGER_MAX_ACCOUNTS];
    aii_ledger_hold_t hold[AII_LEDGER_MAX_HOLDS];
    aii_sha256_t seg;            // hash of the open segment: prev chain hash, then records
    uint8_t chain[AII_LEDGER_DIGEST_LEN];  // hash of the last sealed segment (zeros at start)
    uint32_t seq;                // sequence number of the last record
    uint16_t seg_count;          // records in the open segment
    uint16_t n_account;
    uint8_t n_qty;
} aii_ledger_state_t;

// What commit() found wrong (qty = -1 when nothing). delta = actual - expected.
typedef struct {
    int qty;
    aii_i128_t expected, actual, delta;
} aii_ledger_violation_t;

typedef struct {
    aii_ledger_state_t cur;      // read-only for bindings
    aii_ledger_state_t snap;
    aii_ledger_violation_t violation;  // from the last failed commit / verify
    uint8_t ring[AII_LEDGER_JOURNAL][AII_LEDGER_REC_SIZE];
    uint16_t r_first, r_len, r_pend;   // oldest committed, committed count, uncommitted count
    uint32_t r_lost;             // committed records overwritten before being drained
    uint64_t now;                // timestamp stamped on new records (set by the caller)
    uint32_t origin_id;          // origin stamped on new records (aii_ledger_set_origin)
    uint8_t origin;
    uint8_t in_tx;               // explicit begin() open
    uint8_t undo;                // records of the last commit that undo() can take back (0: none)
    // Why the last refused operation was refused (set by every refusal, left alone otherwise):
    // bindings raise aii_text(why). A refused replay says AII_T_JOURNAL_RECORD, with the
    // record (why_at, an index into the records it was given) and what is wrong with it
    // (why_record: AII_T_BAD_CRC, AII_T_SEQUENCE_GAP, AII_T_SEAL_MISMATCH, AII_T_DOES_NOT_APPLY).
    aii_text_t why;
    aii_text_t why_record;
    uint32_t why_at;
} aii_ledger_t;

void aii_ledger_init(aii_ledger_t *l);
// Timestamp for the records of the following operations (any unit the caller likes).
void aii_ledger_set_time(aii_ledger_t *l, uint64_t now);
// Origin for the records of the following operations: an aii_origin_t (aii_record.h) or any
// byte the caller gives meaning to, and its id (the signed seq, the task's number). SEAL
// records carry AII_ORIGIN_NONE.
void aii_ledger_set_origin(aii_ledger_t *l, uint8_t origin, uint32_t id);

// Every refusal below also sets l->why (aii_text.h), except the lookups that take a const
// ledger (find_*, get_hold, totals): their one refusal is AII_ERR_NOT_FOUND, "no such ...".
//
// Structure. Names are 1..AII_LEDGER_NAME_LEN bytes without NUL; duplicates: AII_ERR_EXISTS.
aii_status_t aii_ledger_add_qty(aii_ledger_t *l, const char *name, size_t len, uint8_t fmt,
    int *qty);
aii_status_t aii_ledger_open(aii_ledger_t *l, const char *name, size_t len, int qty,
    uint8_t flags, int64_t initial, int *account);
aii_status_t aii_ledger_find_qty(const aii_ledger_t *l, const char *name, size_t len, int *qty);
aii_status_t aii_ledger_find_account(const aii_ledger_t *l, const char *name, size_t len,
    int *account);

// Movements. amount > 0 (else AII_ERR_ARG); the accounts must be of quantity `qty`
// (AII_ERR_ARG); overdrawing a non-negative account: AII_ERR_INSUFFICIENT; a balance that
// would leave int64: AII_ERR_OVERFLOW.
aii_status_t aii_ledger_transfer(aii_ledger_t *l, int src, int dst, int qty, int64_t amount);
aii_status_t aii_ledger_inflow(aii_ledger_t *l, int account, int qty, int64_t amount);
aii_status_t aii_ledger_outflow(aii_ledger_t *l, int account, int qty, int64_t amount);

// Holds. hold: amount leaves the account into escrow. prepare: a credit the account will
// receive on settle. settle: escrow leaves the ledger (outflow), or a prepared credit enters
// it (inflow). release: escrow returns to the account, or a prepared credit is dropped.
// A txid in use: AII_ERR_EXISTS; unknown: AII_ERR_NOT_FOUND; no free slot: AII_ERR_FULL.
aii_status_t aii_ledger_hold(aii_ledger_t *l, uint64_t txid, int account, int qty, int64_t amount);
aii_status_t aii_ledger_prepare(aii_ledger_t *l, uint64_t txid, int account, int qty,
    int64_t amount);
aii_status_t aii_ledger_settle(aii_ledger_t *l, uint64_t txid);
aii_status_t aii_ledger_release(aii_ledger_t *l, uint64_t txid);
// Copies an open hold; AII_ERR_NOT_FOUND if none has this txid.
aii_status_t aii_ledger_get_hold(const aii_ledger_t *l, uint64_t txid, aii_ledger_hold_t *out);

// Transactions. begin() inside a transaction: AII_ERR_STATE (the open one is untouched).
// commit(): AII_ERR_VIOLATION restores the state at begin() and describes the first failing
// quantity in *v (may be NULL; also kept in l->violation). A transaction holds at most
// AII_LEDGER_JOURNAL - 1 records: one more operation is refused with AII_ERR_FULL.
aii_status_t aii_ledger_begin(aii_ledger_t *l);
aii_status_t aii_ledger_commit(aii_ledger_t *l, aii_ledger_violation_t *v);
aii_status_t aii_ledger_rollback(aii_ledger_t *l);
// Takes back the last commit (an operation outside a transaction, or commit()) with the SEAL it
// may have appended: the state returns to what that commit started from, and its records
// still in the ring are dropped (the binding drops those it drained). For a binding whose
// storage could not persist the commit's records: nothing unwritten stays visible. Only right
// after the commit: any operation, refused or not, begin(), seal(), checkpoint(), replay() or
// restore() since then, or an open transaction: AII_ERR_STATE, nothing changes.
aii_status_t aii_ledger_undo(aii_ledger_t *l);
// Checks every quantity's balance equation now (AII_OK or AII_ERR_VIOLATION, *v filled).
aii_status_t aii_ledger_verify(aii_ledger_t *l, aii_ledger_violation_t *v);
// Exact totals of a quantity: sum of balances, sum of escrow holds, and expected
// (= initial + inflow - outflow). Any pointer may be NULL.
aii_status_t aii_ledger_totals(const aii_ledger_t *l, int qty, aii_i128_t *balances,
    aii_i128_t *held, aii_i128_t *expected);

// Journal. Committed records wait in a ring; the binding persists and pops them. When the
// ring is full the oldest committed record is overwritten and counted in r_lost.
bool aii_ledger_journal_pop(aii_ledger_t *l, uint8_t rec[AII_LEDGER_REC_SIZE]);
// Closes the open segment now (appends a SEAL record) if it has records; not in a transaction.
aii_status_t aii_ledger_seal(aii_ledger_t *l);
// Applies `n` records (n * AII_LEDGER_REC_SIZE bytes) in order, a commit at a time. Records
// already covered by the state (seq <= current) are skipped. Bad CRC, a sequence gap, a SEAL
// hash that does not match, or a record that does not apply: AII_ERR_CORRUPT, with the state
// of the last complete commit kept. A trailing incomplete commit is dropped. *applied (may be
// NULL) = records consumed up to the last complete commit.
aii_status_t aii_ledger_replay(aii_ledger_t *l, const uint8_t *recs, size_t n, size_t *applied);

// Digest: first AII_LEDGER_DIGEST_LEN bytes of SHA-256 over the canonical state serialization
// (the checkpoint layout without its CRC; see walk() in ledger.c and docs/ledger.md): seq,
// chain hash, quantities, accounts, holds by ascending txid.
void aii_ledger_digest(const aii_ledger_t *l, uint8_t out[AII_LEDGER_DIGEST_LEN]);
// Checkpoint: seals the open segment, then writes the state (<= AII_LEDGER_CHECKPOINT_MAX
// bytes) to buf. Not in a transaction. AII_ERR_ARG if cap is too small.
aii_status_t aii_ledger_checkpoint(aii_ledger_t *l, uint8_t *buf, size_t cap, size_t *len);
// Re-initialises l from a checkpoint; AII_ERR_CORRUPT if it does not check out.
aii_status_t aii_ledger_restore(aii_ledger_t *l, const uint8_t *buf, size_t len);

#endif // AII_LEDGER_H
