// SPDX-License-Identifier: MIT
// The bytes a journal reader sees, declared once: the journal record and the checkpoint blob
// (docs/ledger.md sections 8 and 9). ledger.c reads and writes them through these names; the
// Python readers take them from modules that tools/gen_tables.py generates from this file
// (firmware/aii_node/_record.py, host/aii_host/_record.py, and the generated block of names
// in the pure-Python ledger firmware/aii/_ledger.py).
//
// Each table lists fields in order: name, offset, width in bytes, kind (U unsigned, I signed,
// B bytes, W a 128-bit two's-complement value stored as lo u64 then hi u64). Little-endian, no
// padding. For each field, AII_<TABLE>_<NAME> is its offset and AII_<TABLE>_<NAME>_LEN its width.
#ifndef AII_RECORD_H
#define AII_RECORD_H

// Journal record, AII_LEDGER_REC_SIZE bytes:
//   SEQ     sequence number, from 1, never reused
//   OP      aii_ledger_op_t (ledger.h)
//   QTY     quantity id
//   FLAGS   account flags (OPEN), format (QTY), hold kind (SETTLE, RELEASE)
//   LAST    AII_REC_END on the last record of a commit, else 0
//   TIME    aii_ledger_set_time() when the record was made
//   A, B    account ids (B: the destination of a TRANSFER)
//   NAME    zero-padded name (QTY, OPEN); TXID (holds) in its first 8 bytes, then zeros
//   AMOUNT  amount, or the opening balance (OPEN)
//   ORIGIN  who asked for the change (AII_ORIGIN_*, aii_ledger_set_origin()); NONE on SEAL
//   ORIGIN_ID  with it: the signed request's seq (SIGNED), the task's number (TASK), else 0
//   CRC     CRC-32 of the bytes before it
// A SEAL record carries its segment's chain hash in HASH (16 bytes over A, B and NAME).
#define AII_REC_FIELDS(X) \
    X(SEQ, 0, 4, U) \
    X(OP, 4, 1, U) \
    X(QTY, 5, 1, U) \
    X(FLAGS, 6, 1, U) \
    X(LAST, 7, 1, U) \
    X(TIME, 8, 8, U) \
    X(A, 16, 2, U) \
    X(B, 18, 2, U) \
    X(NAME, 20, 12, B) \
    X(AMOUNT, 32, 8, I) \
    X(ORIGIN, 40, 1, U) \
    X(ORIGIN_ID, 41, 4, U) \
    X(CRC, 45, 4, U)
#define AII_REC_ALIASES(X) \
    X(TXID, 20, 8, U) \
    X(HASH, 16, 16, B)
#define AII_LEDGER_REC_SIZE (49)
#define AII_REC_END (1)  // LAST: this record ends a commit

// ORIGIN: the application's word for who made a change; the core only stamps it. The node app
// (firmware/aii_node) and the fleet's origin policy (host/aii_host/fleet) read these names.
typedef enum {
    AII_ORIGIN_NONE = 0,     // the ledger's own records (SEAL), and records made before origins
    AII_ORIGIN_SIGNED = 1,   // a request signed with the node's key; ORIGIN_ID: its seq
    AII_ORIGIN_TASK = 2,     // a scheduled task of the node's config; ORIGIN_ID: 1 = the first
    AII_ORIGIN_CONSOLE = 3,  // the node's human console (its serial line)
    AII_ORIGIN_CONFIG = 4,   // created from the deployed config at boot (quantities, accounts)
} aii_origin_t;

// Checkpoint: a head, n_qty quantities, n_accounts accounts, n_holds holds (by ascending txid),
// then a CRC-32 (u32) of everything before it. The same bytes without the CRC are what the
// digest hashes (aii_ledger_digest).
#define AII_CKPT_HEAD_FIELDS(X) \
    X(MAGIC, 0, 4, B) \
    X(SEQ, 4, 4, U) \
    X(N_QTY, 8, 1, U) \
    X(N_HOLDS, 9, 1, U) \
    X(N_ACCOUNTS, 10, 2, U) \
    X(CHAIN, 12, 16, B)
#define AII_CKPT_QTY_FIELDS(X) \
    X(NAME, 0, 12, B) \
    X(FMT, 12, 1, U) \
    X(INITIAL, 13, 16, W) \
    X(INFLOW, 29, 16, W) \
    X(OUTFLOW, 45, 16, W)
#define AII_CKPT_ACCOUNT_FIELDS(X) \
    X(NAME, 0, 12, B) \
    X(QTY, 12, 1, U) \
    X(FLAGS, 13, 1, U) \
    X(BALANCE, 14, 8, I)
#define AII_CKPT_HOLD_FIELDS(X) \
    X(TXID, 0, 8, U) \
    X(AMOUNT, 8, 8, I) \
    X(ACCOUNT, 16, 2, U) \
    X(KIND, 18, 1, U)
#define AII_CKPT_MAGIC "AIL1"
#define AII_CKPT_CRC_LEN (4)

#define AII_LAYOUT_AT(table, name, at, width, kind) table##_##name = (at), \
    table##_##name##_LEN = (width),
#define AII_REC_AT(name, at, width, kind) AII_LAYOUT_AT(AII_REC, name, at, width, kind)
#define AII_CKPT_HEAD_AT(name, at, width, kind) AII_LAYOUT_AT(AII_CKPT_HEAD, name, at, width, kind)
#define AII_CKPT_QTY_AT(name, at, width, kind) AII_LAYOUT_AT(AII_CKPT_QTY, name, at, width, kind)
#define AII_CKPT_ACCOUNT_AT(name, at, width, kind) \
    AII_LAYOUT_AT(AII_CKPT_ACCOUNT, name, at, width, kind)
#define AII_CKPT_HOLD_AT(name, at, width, kind) AII_LAYOUT_AT(AII_CKPT_HOLD, name, at, width, kind)
enum {
    AII_REC_FIELDS(AII_REC_AT)
    AII_REC_ALIASES(AII_REC_AT)
    AII_CKPT_HEAD_FIELDS(AII_CKPT_HEAD_AT)
    AII_CKPT_QTY_FIELDS(AII_CKPT_QTY_AT)
    AII_CKPT_ACCOUNT_FIELDS(AII_CKPT_ACCOUNT_AT)
    AII_CKPT_HOLD_FIELDS(AII_CKPT_HOLD_AT)
};

// Sizes: each table ends at its last field.
#define AII_CKPT_HEAD_SIZE (AII_CKPT_HEAD_CHAIN + AII_CKPT_HEAD_CHAIN_LEN)
#define AII_CKPT_QTY_SIZE (AII_CKPT_QTY_OUTFLOW + AII_CKPT_QTY_OUTFLOW_LEN)
#define AII_CKPT_ACCOUNT_SIZE (AII_CKPT_ACCOUNT_BALANCE + AII_CKPT_ACCOUNT_BALANCE_LEN)
#define AII_CKPT_HOLD_SIZE (AII_CKPT_HOLD_KIND + AII_CKPT_HOLD_KIND_LEN)

#endif // AII_RECORD_H
