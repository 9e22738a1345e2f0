// SPDX-License-Identifier: MIT
// Every message a binding raises, defined once: one code (aii_text_t) per text. The core
// answers with codes (aii_ledger_t.why, aii_sched_param_why(), aii_status_text()); each binding
// raises aii_text(code) with its arguments put in place of the `{}` marks, in order
// (aii_text_format). The pure-Python ports read this table from firmware/aii/_texts.py (and
// their codes from their generated block of names), which tools/gen_tables.py generates from
// this file; tests/host/test_rules_once.py fails when a text is written anywhere else. New texts go at the end of a group; codes are not stored anywhere,
// so renumbering is harmless.
#ifndef AII_TEXT_H
#define AII_TEXT_H

#include <stddef.h>

#include "aii_status.h"

#define AII_TEXTS(X) \
    X(NONE, "") \
    X(INVALID_ARGUMENT, "invalid argument") \
    X(TASK_TABLE_FULL, "task table full") \
    X(NO_SUCH_TASK, "no such task") \
    X(NOT_SCHEDULABLE, "task set not schedulable") \
    X(NOT_ALLOWED, "not allowed now") \
    X(OVERFLOW, "overflow") \
    X(ERROR_N, "error {}") \
    X(OUT_OF_RANGE, "{} out of range") \
    X(NOT_NEGATIVE, "{} must be >= 0") \
    X(NOT_CALLABLE, "{} must be callable") \
    X(NOT_STR, "{} must be str") \
    X(NOT_BYTES, "{} must be bytes-like") \
    X(NOT_INT, "can't convert {} to int") \
    X(NO_FEED, "wdt must have feed()") \
    X(TICK_PERIOD, "tick_period must be a power of two") \
    X(ONE_KIND, "give only one of period_us, min_gap_us, deadline_at") \
    X(NOT_SPORADIC, "not a sporadic task") \
    X(ALREADY_RUNNING, "scheduler already running") \
    X(ADMISSION, "task {}: worst-case response {} us > deadline {} us") \
    X(INVALID_KIND, "invalid kind") \
    X(INVALID_POLICY, "invalid policy") \
    X(BUDGET_ZERO, "budget_us must be > 0") \
    X(DEADLINE_AT_ORDER, "deadline_at must be after release_at") \
    X(DEADLINE_AT_FAR, "deadline_at too far away") \
    X(PERIOD_ZERO, "period_us must be > 0") \
    X(MIN_GAP_ZERO, "min_gap_us must be > 0") \
    X(DEADLINE_OVER_PERIOD, "deadline_us must be <= period") \
    X(PRIORITY_MIX, "mix of explicit and automatic priorities") \
    X(ANALYSIS_CAP, "task {}: analysis stopped at its cap of {} iterations") \
    X(WAIT_IDLE, "task {}: the set may change only at the next idle instant, at most {} us away") \
    X(ISR_GAP, "isr_min_gap_us must be > 0 with isr_budget_us") \
    X(ONE_FORMAT, "give only one of digits, bits") \
    X(BAD_NAME, "bad name") \
    X(BITS_RANGE, "bits out of range") \
    X(DIGITS_RANGE, "digits out of range") \
    X(INITIAL_NEGATIVE, "initial must be >= 0") \
    X(AMOUNT_NOT_POSITIVE, "amount must be > 0") \
    X(SAME_ACCOUNT, "same account") \
    X(WRONG_QUANTITY, "wrong quantity") \
    X(NO_SUCH_HOLD, "no such hold") \
    X(NO_SUCH_QUANTITY, "no such quantity") \
    X(NO_SUCH_ACCOUNT, "no such account") \
    X(TXID_IN_USE, "txid in use") \
    X(NAME_IN_USE, "name in use") \
    X(TX_TOO_LONG, "transaction too long") \
    X(SEQ_EXHAUSTED, "journal sequence exhausted") \
    X(QTY_TABLE_FULL, "quantity table full") \
    X(ACCOUNT_TABLE_FULL, "account table full") \
    X(HOLD_TABLE_FULL, "hold table full") \
    X(TX_OPEN, "transaction open") \
    X(NO_TX, "no transaction") \
    X(NOTHING_TO_UNDO, "nothing to undo") \
    X(BALANCE_OVERFLOW, "balance would overflow") \
    X(INSUFFICIENT, "insufficient balance") \
    X(VIOLATION, "quantity {}: actual {} != expected {}") \
    X(STATE_CORRUPT, "ledger state corrupt") \
    X(BAD_CHECKPOINT, "bad checkpoint") \
    X(BUFFER_TOO_SMALL, "buffer too small") \
    X(JOURNAL_RECORD, "journal record {}: {}") \
    X(BAD_CRC, "bad crc") \
    X(SEQUENCE_GAP, "sequence gap") \
    X(SEAL_MISMATCH, "seal does not match") \
    X(DOES_NOT_APPLY, "record does not apply") \
    X(BAD_FORMAT, "bad format") \
    X(BAD_NUMBER, "bad number") \
    X(DIVISION_BY_ZERO, "division by zero") \
    X(RESULT_RANGE, "result out of range") \
    X(INEXACT, "more decimals than the unit has") \
    X(SUM_RANGE, "sum does not fit int64") \
    X(NOT_INT_ITEMS, "buffer items must be int32 or int64") \
    X(NO_BUFFER, "buffer must support the buffer protocol") \
    X(NOT_CONTIGUOUS, "buffer must be contiguous") \
    X(PT_TABLE, "not a particle table (damaged, or of another version)") \
    X(PT_BOX, "box side {} out of range (3 x (cutoff + skin) .. 2**30 units)") \
    X(PT_ALIGN, "memory must be 8-byte aligned") \
    X(PT_FULL, "more particles than the capacity") \
    X(PT_LIST, "neighbour list full (give it more capacity)") \
    X(PT_QUANTUM, "quantum must be 1 .. 2**32-1") \
    X(PT_SKIN, "skin must be 0 .. the cutoff") \
    X(PT_MASS, "particle {}: mass must be 1..65535 and divide the quantum") \
    X(PT_POSITION, "particle {}: position outside the box") \
    X(PT_VELOCITY, "particle {}: velocity beyond the table's v_max") \
    X(PT_OVERLAP, "particles {} and {} overlap (closer than the table's r_min)") \
    X(PT_DOMAIN, "particle {} is in a cell of ghosts") \
    X(PT_IMPULSE, "particle {}: impulse not a multiple of its mass") \
    X(PT_IDS, "particle ids must ascend")

#define AII_TEXT_ENUM(name, text) AII_T_##name,
typedef enum {
    AII_TEXTS(AII_TEXT_ENUM)
    AII_T_COUNT
} aii_text_t;
#undef AII_TEXT_ENUM

// What a status says when the call has no better reason (the scheduler's refusals; the ledger
// always gives one). Statuses not listed say AII_T_ERROR_N with their number.
#define AII_STATUS_TEXTS(X) \
    X(AII_ERR_ARG, INVALID_ARGUMENT) \
    X(AII_ERR_FULL, TASK_TABLE_FULL) \
    X(AII_ERR_NOT_FOUND, NO_SUCH_TASK) \
    X(AII_ERR_UNSCHEDULABLE, NOT_SCHEDULABLE) \
    X(AII_ERR_STATE, NOT_ALLOWED) \
    X(AII_ERR_OVERFLOW, OVERFLOW)

// The text of a code ("" for AII_T_NONE or an unknown code); never NULL.
const char *aii_text(aii_text_t t);
aii_text_t aii_status_text(aii_status_t st);
// Writes text t with the `{}` marks replaced by args[0..n-1] in order (a mark without an argument
// stays as it is), NUL-terminated and truncated to cap - 1 bytes; returns the length written.
size_t aii_text_format(char *buf, size_t cap, aii_text_t t, const char *const *args, int n);
#endif // AII_TEXT_H
