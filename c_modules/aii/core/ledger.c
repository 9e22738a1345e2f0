// SPDX-License-Identifier: MIT
#include <stdbool.h>
#include <string.h>

#include "aii_config.h"
#include "crc32.h"
#include "fixed.h"
#include "ledger.h"

#define CAP (AII_LEDGER_JOURNAL)
#define SZ (AII_LEDGER_REC_SIZE)
// A record field by its name in aii_record.h.
#define REC_PUT(r, field, v) put_le((r) + AII_REC_##field, (uint64_t)(v), AII_REC_##field##_LEN)
#define REC_GET(r, field) get_le((r) + AII_REC_##field, AII_REC_##field##_LEN)

// The fields of aii_record.h must tile the record and the checkpoint entries hold what
// the state holds (the build fails here otherwise).
typedef char aii_record_layout_check[(AII_REC_CRC + AII_REC_CRC_LEN == SZ &&
    AII_REC_NAME_LEN == AII_LEDGER_NAME_LEN && AII_CKPT_QTY_NAME_LEN == AII_LEDGER_NAME_LEN &&
    AII_CKPT_ACCOUNT_NAME_LEN == AII_LEDGER_NAME_LEN &&
    AII_CKPT_HEAD_CHAIN_LEN == AII_LEDGER_DIGEST_LEN && AII_REC_HASH_LEN == AII_LEDGER_DIGEST_LEN &&
    sizeof(AII_CKPT_MAGIC) - 1 == AII_CKPT_HEAD_MAGIC_LEN) ? 1 : -1];

// Records and checkpoints are little-endian byte strings so a host can read a device's
// journal whatever its own byte order and struct padding.
static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    while (n--) {
        v = v << 8 | p[n];
    }
    return v;
}

// Every refusal goes through here: the status for the caller, the reason for its message.
static aii_status_t refuse(aii_ledger_t *l, aii_status_t st, aii_text_t why) {
    l->why = why;
    return st;
}

static aii_status_t pack_name(const char *name, size_t len, uint8_t out[AII_LEDGER_NAME_LEN]) {
    if (name == NULL || len == 0 || len > AII_LEDGER_NAME_LEN) {
        return AII_ERR_ARG;
    }
    memset(out, 0, AII_LEDGER_NAME_LEN);
    for (size_t i = 0; i < len; i++) {
        if (name[i] == 0) {
            return AII_ERR_ARG;
        }
        out[i] = (uint8_t)name[i];
    }
    return AII_OK;
}

// Index of the entry with this packed name in a table of `stride`-byte entries, or -1.
static int find_name(const void *table, size_t stride, int n, const uint8_t *name) {
    for (int i = 0; i < n; i++) {
        if (memcmp((const uint8_t *)table + stride * (size_t)i, name, AII_LEDGER_NAME_LEN) == 0) {
            return i;
        }
    }
    return -1;
}

static aii_ledger_hold_t *find_hold(const aii_ledger_state_t *s, uint64_t txid) {
    for (int i = 0; i < AII_LEDGER_MAX_HOLDS; i++) {
        if (s->hold[i].amount != 0 && s->hold[i].txid == txid) {
            return (aii_ledger_hold_t *)&s->hold[i];
        }
    }
    return NULL;
}

static void chain_reset(aii_ledger_state_t *s) {
    #if AII_HAS_DIGEST
    aii_sha256_init(&s->seg);
    aii_sha256_update(&s->seg, s->chain, AII_LEDGER_DIGEST_LEN);
    #endif
    s->seg_count = 0;
}

void aii_ledger_init(aii_ledger_t *l) {
    memset(l, 0, sizeof(*l));
    chain_reset(&l->cur);
    l->violation.qty = -1;
}

void aii_ledger_set_time(aii_ledger_t *l, uint64_t now) {
    l->now = now;
}

void aii_ledger_set_origin(aii_ledger_t *l, uint8_t origin, uint32_t id) {
    l->origin = origin;
    l->origin_id = id;
}

// ---- balance equation ----

aii_status_t aii_ledger_totals(const aii_ledger_t *l, int qty, aii_i128_t *balances,
    aii_i128_t *held, aii_i128_t *expected) {
    const aii_ledger_state_t *s = &l->cur;
    aii_i128_t b, h, e;
    if (qty < 0 || qty >= s->n_qty) {
        return AII_ERR_NOT_FOUND;
    }
    aii_i128_set(&b, 0);
    aii_i128_set(&h, 0);
    for (int i = 0; i < s->n_account; i++) {
        if (s->account[i].qty == qty) {
            aii_i128_add64(&b, s->account[i].balance);
        }
    }
    for (int i = 0; i < AII_LEDGER_MAX_HOLDS; i++) {
        const aii_ledger_hold_t *x = &s->hold[i];
        // A corrupted account index must not read out of bounds; its amount then simply
        // goes missing from the sum and the equation reports it.
        if (x->amount != 0 && x->kind == AII_HOLD_DEBIT && x->account < s->n_account &&
            s->account[x->account].qty == qty) {
            aii_i128_add64(&h, x->amount);
        }
    }
    e = s->qty[qty].initial;
    aii_i128_add(&e, &s->qty[qty].inflow);
    aii_i128_sub(&e, &s->qty[qty].outflow);
    if (balances) {
        *balances = b;
    }
    if (held) {
        *held = h;
    }
    if (expected) {
        *expected = e;
    }
    return AII_OK;
}

aii_status_t aii_ledger_verify(aii_ledger_t *l, aii_ledger_violation_t *v) {
    aii_ledger_violation_t *w = &l->violation;
    aii_status_t st = AII_OK;
    w->qty = -1;
    for (int q = 0; q < l->cur.n_qty; q++) {
        aii_i128_t held;
        aii_ledger_totals(l, q, &w->actual, &held, &w->expected);
        aii_i128_add(&w->actual, &held);
        if (aii_i128_cmp(&w->actual, &w->expected) != 0) {
            w->qty = q;
            w->delta = w->actual;
            aii_i128_sub(&w->delta, &w->expected);
            st = AII_ERR_VIOLATION;
            break;
        }
    }
    if (v) {
        *v = *w;
    }
    return st == AII_OK ? AII_OK : refuse(l, st, AII_T_VIOLATION);
}

// ---- applying one record (shared by live operations and replay) ----

// Validates the record against the state, then applies it; a refusal changes nothing.
// Live: SETTLE/RELEASE records get the hold's fields filled in. Replay: they must match.
static aii_status_t exec(aii_ledger_t *l, uint8_t *r, int live) {
    aii_ledger_state_t *s = &l->cur;
    int op = r[AII_REC_OP];
    uint64_t txid = REC_GET(r, TXID);
    aii_ledger_hold_t *h = NULL, *slot = NULL;
    if (op == AII_OP_SETTLE || op == AII_OP_RELEASE) {
        h = find_hold(s, txid);
        if (h == NULL) {
            return refuse(l, AII_ERR_NOT_FOUND, AII_T_NO_SUCH_HOLD);
        }
        if (h->account >= s->n_account) {
            return refuse(l, AII_ERR_CORRUPT, AII_T_STATE_CORRUPT);
        }
        if (live) {
            REC_PUT(r, A, h->account);
            r[AII_REC_QTY] = s->account[h->account].qty;
            r[AII_REC_FLAGS] = h->kind;
            REC_PUT(r, AMOUNT, h->amount);
        }
    }
    int q = r[AII_REC_QTY], flags = r[AII_REC_FLAGS];
    unsigned ia = (unsigned)REC_GET(r, A), ib = (unsigned)REC_GET(r, B);
    int64_t amount = (int64_t)REC_GET(r, AMOUNT);
    const uint8_t *name = r + AII_REC_NAME;
    aii_ledger_account_t *a = ia < s->n_account ? &s->account[ia] : NULL;
    aii_ledger_account_t *deb = NULL, *cred = NULL;
    aii_i128_t *flow = NULL;
    uint64_t den;

    if (op == AII_OP_QTY) {
        if (s->n_qty >= AII_LEDGER_MAX_QTY) {
            return refuse(l, AII_ERR_FULL, AII_T_QTY_TABLE_FULL);
        }
        if (q != s->n_qty) {
            return refuse(l, AII_ERR_CORRUPT, AII_T_STATE_CORRUPT);
        }
        if (name[0] == 0) {
            return refuse(l, AII_ERR_ARG, AII_T_BAD_NAME);
        }
        if (aii_fx_den((uint8_t)flags, &den) != AII_OK) {
            // A decimal format came from `digits`, a binary one from `bits`.
            return refuse(l, AII_ERR_ARG,
                flags & AII_FX_DECIMAL ? AII_T_DIGITS_RANGE : AII_T_BITS_RANGE);
        }
        if (find_name(s->qty, sizeof(s->qty[0]), s->n_qty, name) >= 0) {
            return refuse(l, AII_ERR_EXISTS, AII_T_NAME_IN_USE);
        }
        aii_ledger_qty_t *x = &s->qty[s->n_qty++];
        memset(x, 0, sizeof(*x));
        memcpy(x->name, name, AII_LEDGER_NAME_LEN);
        x->fmt = (uint8_t)flags;
        s->seq++;
        return AII_OK;
    }
    if (op == AII_OP_OPEN) {
        if (s->n_account >= AII_LEDGER_MAX_ACCOUNTS) {
            return refuse(l, AII_ERR_FULL, AII_T_ACCOUNT_TABLE_FULL);
        }
        if (ia != s->n_account) {
            return refuse(l, AII_ERR_CORRUPT, AII_T_STATE_CORRUPT);
        }
        if (q >= s->n_qty) {
            return refuse(l, AII_ERR_NOT_FOUND, AII_T_NO_SUCH_QUANTITY);
        }
        if (flags & ~AII_ACCT_NON_NEGATIVE) {
            return refuse(l, AII_ERR_ARG, AII_T_INVALID_ARGUMENT);
        }
        if (name[0] == 0) {
            return refuse(l, AII_ERR_ARG, AII_T_BAD_NAME);
        }
        if ((flags & AII_ACCT_NON_NEGATIVE) && amount < 0) {
            return refuse(l, AII_ERR_ARG, AII_T_INITIAL_NEGATIVE);
        }
        if (find_name(s->account, sizeof(s->account[0]), s->n_account, name) >= 0) {
            return refuse(l, AII_ERR_EXISTS, AII_T_NAME_IN_USE);
        }
        a = &s->account[s->n_account++];
        memcpy(a->name, name, AII_LEDGER_NAME_LEN);
        a->qty = (uint8_t)q;
        a->flags = (uint8_t)flags;
        a->balance = amount;
        aii_i128_add64(&s->qty[q].initial, amount);
        s->seq++;
        return AII_OK;
    }

    if (a == NULL) {
        return refuse(l, AII_ERR_NOT_FOUND, AII_T_NO_SUCH_ACCOUNT);
    }
    if (amount <= 0) {
        return refuse(l, AII_ERR_ARG, AII_T_AMOUNT_NOT_POSITIVE);
    }
    if (a->qty != q) {
        // A transfer to itself says so first, whatever else is wrong with it.
        return refuse(l, AII_ERR_ARG,
            op == AII_OP_TRANSFER && ib == ia ? AII_T_SAME_ACCOUNT : AII_T_WRONG_QUANTITY);
    }
    aii_ledger_qty_t *x = &s->qty[q];
    switch (op) {
        case AII_OP_TRANSFER:
            if (ib >= s->n_account) {
                return refuse(l, AII_ERR_NOT_FOUND, AII_T_NO_SUCH_ACCOUNT);
            }
            if (ib == ia) {
                return refuse(l, AII_ERR_ARG, AII_T_SAME_ACCOUNT);
            }
            if (s->account[ib].qty != q) {
                return refuse(l, AII_ERR_ARG, AII_T_WRONG_QUANTITY);
            }
            deb = a;
            cred = &s->account[ib];
            break;
        case AII_OP_INFLOW:
            cred = a;
            flow = &x->inflow;
            break;
        case AII_OP_OUTFLOW:
            deb = a;
            flow = &x->outflow;
            break;
        case AII_OP_HOLD:
        case AII_OP_PREPARE:
            if (find_hold(s, txid) != NULL) {
                return refuse(l, AII_ERR_EXISTS, AII_T_TXID_IN_USE);
            }
            for (int i = AII_LEDGER_MAX_HOLDS - 1; i >= 0; i--) {
                if (s->hold[i].amount == 0) {
                    slot = &s->hold[i];
                }
            }
            if (slot == NULL) {
                return refuse(l, AII_ERR_FULL, AII_T_HOLD_TABLE_FULL);
            }
            deb = op == AII_OP_HOLD ? a : NULL;
            break;
        case AII_OP_SETTLE:
        case AII_OP_RELEASE:
            if (h->account != ia || h->amount != amount || h->kind != flags) {
                return refuse(l, AII_ERR_CORRUPT, AII_T_STATE_CORRUPT);
            }
            // Escrow settles as an outflow; a prepared credit settles as an inflow into the
            // account; releasing escrow returns it; releasing a prepared credit drops it.
            if (op == AII_OP_SETTLE) {
                flow = flags == AII_HOLD_DEBIT ? &x->outflow : &x->inflow;
            }
            if ((op == AII_OP_SETTLE) == (flags == AII_HOLD_CREDIT)) {
                cred = a;
            }
            break;
        default:
            return refuse(l, AII_ERR_CORRUPT, AII_T_STATE_CORRUPT);
    }
    if (deb && (deb->flags & AII_ACCT_NON_NEGATIVE) && deb->balance < amount) {
        return refuse(l, AII_ERR_INSUFFICIENT, AII_T_INSUFFICIENT);
    }
    if ((deb && deb->balance < INT64_MIN + amount) ||
        (cred && cred->balance > INT64_MAX - amount)) {
        return refuse(l, AII_ERR_OVERFLOW, AII_T_BALANCE_OVERFLOW);
    }
    if (deb) {
        deb->balance -= amount;
    }
    if (cred) {
        cred->balance += amount;
    }
    if (flow) {
        aii_i128_add64(flow, amount);
    }
    if (slot) {
        slot->txid = txid;
        slot->amount = amount;
        slot->account = (uint16_t)ia;
        slot->kind = op == AII_OP_HOLD ? AII_HOLD_DEBIT : AII_HOLD_CREDIT;
    }
    if (h) {
        memset(h, 0, sizeof(*h));
    }
    s->seq++;
    return AII_OK;
}

// ---- journal ring, segments and transactions ----

static uint8_t *ring_at(aii_ledger_t *l, unsigned i) {
    return l->ring[(l->r_first + i) % CAP];
}

// Adds one record (already complete, CRC included) to the ring as committed or pending.
static void ring_push(aii_ledger_t *l, const uint8_t *r, int committed) {
    if (l->r_len + l->r_pend == CAP) {
        // The binding did not drain in time: lose the oldest committed record, visibly.
        l->r_first = (uint16_t)((l->r_first + 1) % CAP);
        l->r_len--;
        l->r_lost++;
    }
    memmove(ring_at(l, l->r_len + l->r_pend), r, SZ);
    if (committed) {
        l->r_len++;
    } else {
        l->r_pend++;
    }
}

#if AII_HAS_DIGEST
static void seal_hash(aii_ledger_state_t *s, uint8_t out[AII_LEDGER_DIGEST_LEN]) {
    uint8_t full[32];
    aii_sha256_final(&s->seg, full);
    memcpy(out, full, AII_LEDGER_DIGEST_LEN);
}

// Closes the open segment with record r: live writes the hash, replay checks it.
static aii_status_t seal_apply(aii_ledger_t *l, uint8_t *r, int live) {
    aii_ledger_state_t *s = &l->cur;
    uint8_t hash[AII_LEDGER_DIGEST_LEN];
    aii_sha256_t keep = s->seg;
    seal_hash(s, hash);
    if (live) {
        memcpy(r + AII_REC_HASH, hash, sizeof(hash));
    } else if (memcmp(r + AII_REC_HASH, hash, sizeof(hash)) != 0) {
        s->seg = keep;
        return AII_ERR_CORRUPT;
    }
    memcpy(s->chain, hash, sizeof(hash));
    chain_reset(s);
    s->seq++;
    return AII_OK;
}
#elif AII_HAS_REPLAY
// No hash chain: a SEAL record cannot be checked, so replay refuses it.
static aii_status_t seal_apply(aii_ledger_t *l, uint8_t *r, int live) {
    (void)l, (void)r, (void)live;
    return AII_ERR_CORRUPT;
}
#endif

static void rec_start(aii_ledger_t *l, uint8_t *r, int op) {
    memset(r, 0, SZ);
    REC_PUT(r, SEQ, l->cur.seq + 1);
    r[AII_REC_OP] = (uint8_t)op;
    REC_PUT(r, TIME, l->now);
    if (op != AII_OP_SEAL) {
        r[AII_REC_ORIGIN] = l->origin;
        REC_PUT(r, ORIGIN_ID, l->origin_id);
    }
}

static void rec_crc(uint8_t *r) {
    REC_PUT(r, CRC, aii_crc32(0, r, AII_REC_CRC));
}

static void chain_add(aii_ledger_state_t *s, const uint8_t *r) {
    #if AII_HAS_DIGEST
    aii_sha256_update(&s->seg, r, SZ);
    #else
    (void)r;
    #endif
    s->seg_count++;
}

#if AII_HAS_DIGEST
static void seal_live(aii_ledger_t *l) {
    uint8_t r[SZ];
    rec_start(l, r, AII_OP_SEAL);
    r[AII_REC_LAST] = AII_REC_END;
    seal_apply(l, r, 1);
    rec_crc(r);
    ring_push(l, r, 1);
}

aii_status_t aii_ledger_seal(aii_ledger_t *l) {
    if (l->in_tx) {
        return refuse(l, AII_ERR_STATE, AII_T_TX_OPEN);
    }
    l->undo = 0;
    if (l->cur.seg_count > 0) {
        seal_live(l);
    }
    return AII_OK;
}
#endif

static void snapshot(aii_ledger_t *l) {
    memcpy(&l->snap, &l->cur, sizeof(l->cur));
    l->undo = 0;  // the snapshot undo() would return to is gone
}

static void restore(aii_ledger_t *l) {
    memcpy(&l->cur, &l->snap, sizeof(l->cur));
    l->r_pend = 0;
    l->in_tx = 0;
}

aii_status_t aii_ledger_begin(aii_ledger_t *l) {
    if (l->in_tx) {
        return refuse(l, AII_ERR_STATE, AII_T_TX_OPEN);
    }
    snapshot(l);
    l->in_tx = 1;
    return AII_OK;
}

aii_status_t aii_ledger_rollback(aii_ledger_t *l) {
    if (!l->in_tx) {
        return refuse(l, AII_ERR_STATE, AII_T_NO_TX);
    }
    restore(l);
    return AII_OK;
}

aii_status_t aii_ledger_commit(aii_ledger_t *l, aii_ledger_violation_t *v) {
    if (!l->in_tx) {
        return refuse(l, AII_ERR_STATE, AII_T_NO_TX);
    }
    if (aii_ledger_verify(l, v) != AII_OK) {
        restore(l);
        return AII_ERR_VIOLATION;  // verify() gave the reason
    }
    // Only now is it known which record ends the commit; CRCs and the chain follow from it.
    for (unsigned i = 0; i < l->r_pend; i++) {
        uint8_t *r = ring_at(l, l->r_len + i);
        r[AII_REC_LAST] = i + 1 == l->r_pend ? AII_REC_END : 0;
        rec_crc(r);
        chain_add(&l->cur, r);
    }
    l->r_len = (uint16_t)(l->r_len + l->r_pend);
    uint8_t n = (uint8_t)l->r_pend;
    l->r_pend = 0;
    l->in_tx = 0;
    #if AII_HAS_DIGEST
    if (l->cur.seg_count >= AII_LEDGER_SEGMENT) {
        seal_live(l);
        n++;
    }
    #endif
    l->undo = n;  // l->snap still holds the state begin() saw
    return AII_OK;
}

aii_status_t aii_ledger_undo(aii_ledger_t *l) {
    if (l->in_tx) {
        return refuse(l, AII_ERR_STATE, AII_T_TX_OPEN);
    }
    if (l->undo == 0) {
        return refuse(l, AII_ERR_STATE, AII_T_NOTHING_TO_UNDO);
    }
    // The commit's records are the newest committed ones; those not drained yet go.
    l->r_len = (uint16_t)(l->r_len > l->undo ? l->r_len - l->undo : 0);
    memcpy(&l->cur, &l->snap, sizeof(l->cur));
    l->undo = 0;
    return AII_OK;
}

// One live operation: inside begin()/commit() it joins the open transaction, otherwise it
// is a transaction of its own.
static aii_status_t run(aii_ledger_t *l, uint8_t *r) {
    // One slot stays free for the SEAL record a commit may append. The sequence number
    // must never wrap (replay relies on it): refuse rather than reuse numbers.
    if (l->r_pend >= CAP - 1) {
        return refuse(l, AII_ERR_FULL, AII_T_TX_TOO_LONG);
    }
    if (l->cur.seq >= UINT32_MAX - 1) {
        return refuse(l, AII_ERR_FULL, AII_T_SEQ_EXHAUSTED);
    }
    int implicit = !l->in_tx;
    if (implicit) {
        aii_ledger_begin(l);
    }
    aii_status_t st = exec(l, r, 1);
    if (st == AII_OK) {
        ring_push(l, r, 0);
    }
    if (implicit) {
        if (st == AII_OK) {
            st = aii_ledger_commit(l, NULL);
        } else {
            aii_ledger_rollback(l);
        }
    }
    return st;
}

bool aii_ledger_journal_pop(aii_ledger_t *l, uint8_t rec[AII_LEDGER_REC_SIZE]) {
    if (l->r_len == 0) {
        return false;
    }
    memcpy(rec, ring_at(l, 0), SZ);
    l->r_first = (uint16_t)((l->r_first + 1) % CAP);
    l->r_len--;
    return true;
}

// ---- public operations ----

aii_status_t aii_ledger_add_qty(aii_ledger_t *l, const char *name, size_t len, uint8_t fmt,
    int *qty) {
    uint8_t r[SZ];
    rec_start(l, r, AII_OP_QTY);
    if (pack_name(name, len, r + AII_REC_NAME) != AII_OK) {
        return refuse(l, AII_ERR_ARG, AII_T_BAD_NAME);
    }
    r[AII_REC_QTY] = l->cur.n_qty;
    r[AII_REC_FLAGS] = fmt;
    aii_status_t st = run(l, r);
    if (st == AII_OK && qty) {
        *qty = r[AII_REC_QTY];
    }
    return st;
}

aii_status_t aii_ledger_open(aii_ledger_t *l, const char *name, size_t len, int qty,
    uint8_t flags, int64_t initial, int *account) {
    uint8_t r[SZ];
    rec_start(l, r, AII_OP_OPEN);
    if (pack_name(name, len, r + AII_REC_NAME) != AII_OK) {
        return refuse(l, AII_ERR_ARG, AII_T_BAD_NAME);
    }
    if (qty < 0 || qty >= l->cur.n_qty) {
        return refuse(l, AII_ERR_NOT_FOUND, AII_T_NO_SUCH_QUANTITY);
    }
    REC_PUT(r, A, l->cur.n_account);
    r[AII_REC_QTY] = (uint8_t)qty;
    r[AII_REC_FLAGS] = flags;
    REC_PUT(r, AMOUNT, initial);
    aii_status_t st = run(l, r);
    if (st == AII_OK && account) {
        *account = l->cur.n_account - 1;
    }
    return st;
}

aii_status_t aii_ledger_find_qty(const aii_ledger_t *l, const char *name, size_t len, int *qty) {
    uint8_t n[AII_LEDGER_NAME_LEN];
    int i = pack_name(name, len, n) == AII_OK ?
        find_name(l->cur.qty, sizeof(l->cur.qty[0]), l->cur.n_qty, n) : -1;
    if (i < 0) {
        return AII_ERR_NOT_FOUND;
    }
    *qty = i;
    return AII_OK;
}

aii_status_t aii_ledger_find_account(const aii_ledger_t *l, const char *name, size_t len,
    int *account) {
    uint8_t n[AII_LEDGER_NAME_LEN];
    int i = pack_name(name, len, n) == AII_OK ?
        find_name(l->cur.account, sizeof(l->cur.account[0]), l->cur.n_account, n) : -1;
    if (i < 0) {
        return AII_ERR_NOT_FOUND;
    }
    *account = i;
    return AII_OK;
}

// Builds and runs a movement record; account indices outside 0..65535 cannot be valid.
static aii_status_t move(aii_ledger_t *l, int op, uint64_t txid, int a, int b, int qty,
    int64_t amount) {
    uint8_t r[SZ];
    if (a < 0 || a > 0xffff || b < 0 || b > 0xffff) {
        return refuse(l, AII_ERR_NOT_FOUND, AII_T_NO_SUCH_ACCOUNT);
    }
    if (qty < 0 || qty >= l->cur.n_qty) {
        // The quantity is checked first, but an account that does not exist either is what
        // the message names.
        int n = l->cur.n_account;
        bool known = a < n && (op != AII_OP_TRANSFER || b < n);
        return refuse(l, AII_ERR_NOT_FOUND, known ? AII_T_NO_SUCH_QUANTITY : AII_T_NO_SUCH_ACCOUNT);
    }
    rec_start(l, r, op);
    r[AII_REC_QTY] = (uint8_t)qty;
    REC_PUT(r, A, a);
    REC_PUT(r, B, b);
    REC_PUT(r, TXID, txid);
    REC_PUT(r, AMOUNT, amount);
    return run(l, r);
}

aii_status_t aii_ledger_transfer(aii_ledger_t *l, int src, int dst, int qty, int64_t amount) {
    return move(l, AII_OP_TRANSFER, 0, src, dst, qty, amount);
}

aii_status_t aii_ledger_inflow(aii_ledger_t *l, int account, int qty, int64_t amount) {
    return move(l, AII_OP_INFLOW, 0, account, 0, qty, amount);
}

aii_status_t aii_ledger_outflow(aii_ledger_t *l, int account, int qty, int64_t amount) {
    return move(l, AII_OP_OUTFLOW, 0, account, 0, qty, amount);
}

aii_status_t aii_ledger_hold(aii_ledger_t *l, uint64_t txid, int account, int qty,
    int64_t amount) {
    return move(l, AII_OP_HOLD, txid, account, 0, qty, amount);
}

aii_status_t aii_ledger_prepare(aii_ledger_t *l, uint64_t txid, int account, int qty,
    int64_t amount) {
    return move(l, AII_OP_PREPARE, txid, account, 0, qty, amount);
}

static aii_status_t finish(aii_ledger_t *l, int op, uint64_t txid) {
    uint8_t r[SZ];
    rec_start(l, r, op);
    REC_PUT(r, TXID, txid);
    return run(l, r);
}

aii_status_t aii_ledger_settle(aii_ledger_t *l, uint64_t txid) {
    return finish(l, AII_OP_SETTLE, txid);
}

aii_status_t aii_ledger_release(aii_ledger_t *l, uint64_t txid) {
    return finish(l, AII_OP_RELEASE, txid);
}

aii_status_t aii_ledger_get_hold(const aii_ledger_t *l, uint64_t txid, aii_ledger_hold_t *out) {
    const aii_ledger_hold_t *h = find_hold(&l->cur, txid);
    if (h == NULL) {
        return AII_ERR_NOT_FOUND;
    }
    *out = *h;
    return AII_OK;
}

// ---- replay ----

#if AII_HAS_REPLAY
aii_status_t aii_ledger_replay(aii_ledger_t *l, const uint8_t *recs, size_t n, size_t *applied) {
    aii_ledger_state_t *s = &l->cur;
    aii_text_t why = AII_T_NONE;
    size_t done = 0, i;
    int open = 0;
    if (l->in_tx) {
        return refuse(l, AII_ERR_STATE, AII_T_TX_OPEN);
    }
    if (recs == NULL && n > 0) {
        return refuse(l, AII_ERR_ARG, AII_T_INVALID_ARGUMENT);
    }
    l->undo = 0;  // a SEAL it applies changes the state without a snapshot
    for (i = 0; i < n; i++) {
        uint8_t r[SZ];
        memcpy(r, recs + i * SZ, SZ);
        uint32_t seq = (uint32_t)REC_GET(r, SEQ);
        if (aii_crc32(0, r, AII_REC_CRC) != (uint32_t)REC_GET(r, CRC)) {
            why = AII_T_BAD_CRC;
            break;
        }
        if (!open && seq <= s->seq) {
            done = i + 1;  // already part of the state (e.g. covered by a checkpoint)
            continue;
        }
        if (seq != s->seq + 1) {
            why = AII_T_SEQUENCE_GAP;  // a record is missing
            break;
        }
        if (r[AII_REC_OP] == AII_OP_SEAL) {
            if (open || seal_apply(l, r, 0) != AII_OK) {
                why = AII_T_SEAL_MISMATCH;
                break;
            }
            done = i + 1;
            continue;
        }
        if (!open) {
            snapshot(l);
            open = 1;
        }
        if (exec(l, r, 0) != AII_OK) {
            why = AII_T_DOES_NOT_APPLY;
            break;
        }
        chain_add(s, r);
        if (r[AII_REC_LAST] & AII_REC_END) {
            if (aii_ledger_verify(l, NULL) != AII_OK) {
                why = AII_T_DOES_NOT_APPLY;
                break;
            }
            open = 0;
            done = i + 1;
        }
    }
    if (open) {
        restore(l);
    }
    if (applied) {
        *applied = done;
    }
    if (why != AII_T_NONE) {
        l->why_at = (uint32_t)i;
        l->why_record = why;
        return refuse(l, AII_ERR_CORRUPT, AII_T_JOURNAL_RECORD);
    }
    return AII_OK;
}
#endif // AII_HAS_REPLAY

// ---- digest and checkpoint ----

#if AII_HAS_DIGEST || AII_HAS_CHECKPOINT

// One walker both writes the canonical byte stream (for the digest and checkpoints) and
// reads it back (restore), so the two cannot disagree about the layout.
typedef struct {
    aii_sha256_t *sha;     // write: hash the bytes
    uint8_t *out;          // write: copy the bytes
    const uint8_t *in;     // read: take the bytes from here instead
    size_t len;
} walk_t;

static void raw(walk_t *k, void *p, size_t n) {
    if (k->in) {
        memcpy(p, k->in + k->len, n);
    } else {
        #if AII_HAS_DIGEST
        if (k->sha) {
            aii_sha256_update(k->sha, p, n);
        }
        #endif
        if (k->out) {
            memcpy(k->out + k->len, p, n);
        }
    }
    k->len += n;
}

// An n-byte unsigned field, little-endian in the stream whatever the host's byte order.
static void field(walk_t *k, void *f, int n) {
    uint8_t b[8];
    uint64_t v = n == 1 ? *(uint8_t *)f : n == 2 ? *(uint16_t *)f :
        n == 4 ? *(uint32_t *)f : *(uint64_t *)f;
    put_le(b, v, n);
    raw(k, b, (size_t)n);
    v = get_le(b, n);
    if (!k->in) {
        return;
    }
    if (n == 1) {
        *(uint8_t *)f = (uint8_t)v;
    } else if (n == 2) {
        *(uint16_t *)f = (uint16_t)v;
    } else if (n == 4) {
        *(uint32_t *)f = (uint32_t)v;
    } else {
        *(uint64_t *)f = v;
    }
}

static int count_holds(const aii_ledger_state_t *s) {
    int n = 0;
    for (int i = 0; i < AII_LEDGER_MAX_HOLDS; i++) {
        n += s->hold[i].amount != 0;
    }
    return n;
}

static size_t state_size(unsigned nq, unsigned na, unsigned nh) {
    return AII_CKPT_HEAD_SIZE + AII_CKPT_QTY_SIZE * nq + AII_CKPT_ACCOUNT_SIZE * na +
           AII_CKPT_HOLD_SIZE * nh;
}

// One checkpoint field of aii_record.h, in its table's order.
#define CKPT_FIELD(k, table, name, p) field((k), (p), AII_CKPT_##table##_##name##_LEN)
#define CKPT_BYTES(k, table, name, p) raw((k), (p), AII_CKPT_##table##_##name##_LEN)

// The canonical layout of aii_record.h, field by field in its tables' order; the holds by
// ascending txid. Reading: `size` is the stream length, checked against the counts before
// anything is read past the head.
static aii_status_t walk(aii_ledger_state_t *s, walk_t *k, size_t size) {
    uint8_t magic[AII_CKPT_HEAD_MAGIC_LEN], nh = (uint8_t)count_holds(s);
    memcpy(magic, AII_CKPT_MAGIC, sizeof(magic));
    CKPT_BYTES(k, HEAD, MAGIC, magic);
    CKPT_FIELD(k, HEAD, SEQ, &s->seq);
    CKPT_FIELD(k, HEAD, N_QTY, &s->n_qty);
    CKPT_FIELD(k, HEAD, N_HOLDS, &nh);
    CKPT_FIELD(k, HEAD, N_ACCOUNTS, &s->n_account);
    CKPT_BYTES(k, HEAD, CHAIN, s->chain);
    if (k->in && (memcmp(magic, AII_CKPT_MAGIC, sizeof(magic)) != 0 ||
        s->n_qty > AII_LEDGER_MAX_QTY ||
        s->n_account > AII_LEDGER_MAX_ACCOUNTS || nh > AII_LEDGER_MAX_HOLDS ||
        size != state_size(s->n_qty, s->n_account, nh))) {
        return AII_ERR_CORRUPT;
    }
    for (int i = 0; i < s->n_qty; i++) {
        aii_ledger_qty_t *x = &s->qty[i];
        CKPT_BYTES(k, QTY, NAME, x->name);
        CKPT_FIELD(k, QTY, FMT, &x->fmt);
        // INITIAL, INFLOW, OUTFLOW: kind W, lo then hi.
        aii_i128_t *w[3] = {&x->initial, &x->inflow, &x->outflow};
        for (int j = 0; j < 3; j++) {
            field(k, &w[j]->lo, AII_CKPT_QTY_INITIAL_LEN / 2);
            field(k, &w[j]->hi, AII_CKPT_QTY_INITIAL_LEN / 2);
        }
    }
    for (int i = 0; i < s->n_account; i++) {
        aii_ledger_account_t *a = &s->account[i];
        CKPT_BYTES(k, ACCOUNT, NAME, a->name);
        CKPT_FIELD(k, ACCOUNT, QTY, &a->qty);
        CKPT_FIELD(k, ACCOUNT, FLAGS, &a->flags);
        CKPT_FIELD(k, ACCOUNT, BALANCE, &a->balance);
    }
    aii_ledger_hold_t *prev = NULL;
    for (int i = 0; i < nh; i++) {
        aii_ledger_hold_t *h = &s->hold[i];
        if (!k->in) {
            h = NULL;
            for (int j = 0; j < AII_LEDGER_MAX_HOLDS; j++) {
                aii_ledger_hold_t *c = &s->hold[j];
                if (c->amount != 0 && (prev == NULL || c->txid > prev->txid) &&
                    (h == NULL || c->txid < h->txid)) {
                    h = c;
                }
            }
            if (h == NULL) {
                break;  // duplicate txids (only after corruption): stop rather than loop
            }
            prev = h;
        }
        CKPT_FIELD(k, HOLD, TXID, &h->txid);
        CKPT_FIELD(k, HOLD, AMOUNT, &h->amount);
        CKPT_FIELD(k, HOLD, ACCOUNT, &h->account);
        CKPT_FIELD(k, HOLD, KIND, &h->kind);
    }
    return AII_OK;
}

#endif // AII_HAS_DIGEST || AII_HAS_CHECKPOINT

#if AII_HAS_DIGEST
void aii_ledger_digest(const aii_ledger_t *l, uint8_t out[AII_LEDGER_DIGEST_LEN]) {
    aii_sha256_t sha;
    uint8_t full[32];
    walk_t k = {&sha, NULL, NULL, 0};
    aii_sha256_init(&sha);
    // Writing only reads the state, so the cast is safe.
    walk((aii_ledger_state_t *)&l->cur, &k, 0);
    aii_sha256_final(&sha, full);
    memcpy(out, full, AII_LEDGER_DIGEST_LEN);
}
#endif

#if AII_HAS_CHECKPOINT
aii_status_t aii_ledger_checkpoint(aii_ledger_t *l, uint8_t *buf, size_t cap, size_t *len) {
    aii_ledger_state_t *s = &l->cur;
    if (l->in_tx) {
        return refuse(l, AII_ERR_STATE, AII_T_TX_OPEN);
    }
    if (buf == NULL ||
        cap < state_size(s->n_qty, s->n_account, (unsigned)count_holds(s)) + AII_CKPT_CRC_LEN) {
        return refuse(l, AII_ERR_ARG, AII_T_BUFFER_TOO_SMALL);
    }
    // Sealing first makes the checkpoint fall on a segment boundary, so the chain hash in it
    // is all a later segment needs: records before it can be dropped.
    #if AII_HAS_DIGEST
    aii_ledger_seal(l);
    #endif
    walk_t k = {NULL, buf, NULL, 0};
    walk(s, &k, 0);
    put_le(buf + k.len, aii_crc32(0, buf, k.len), AII_CKPT_CRC_LEN);
    if (len) {
        *len = k.len + AII_CKPT_CRC_LEN;
    }
    return AII_OK;
}

aii_status_t aii_ledger_restore(aii_ledger_t *l, const uint8_t *buf, size_t len) {
    aii_ledger_state_t *s = &l->cur;
    walk_t k = {NULL, NULL, buf, 0};
    aii_ledger_init(l);
    const size_t body = len - AII_CKPT_CRC_LEN;
    if (buf == NULL || len < AII_CKPT_HEAD_SIZE + AII_CKPT_CRC_LEN ||
        aii_crc32(0, buf, body) != (uint32_t)get_le(buf + body, AII_CKPT_CRC_LEN) ||
        walk(s, &k, body) != AII_OK) {
        aii_ledger_init(l);
        return refuse(l, AII_ERR_CORRUPT, AII_T_BAD_CHECKPOINT);
    }
    // The CRC catches accidents; these refuse a crafted blob anything replay() would refuse
    // (so every restored state is one the operations can reach, and checkpoints again).
    int bad = 0;
    uint64_t den;
    for (int i = 0; i < s->n_qty; i++) {
        const aii_ledger_qty_t *x = &s->qty[i];
        bad |= x->name[0] == 0 || aii_fx_den(x->fmt, &den) != AII_OK ||
            find_name(s->qty, sizeof(s->qty[0]), i, x->name) >= 0;
    }
    for (int i = 0; i < s->n_account; i++) {
        const aii_ledger_account_t *a = &s->account[i];
        bad |= a->qty >= s->n_qty || a->name[0] == 0 || (a->flags & ~AII_ACCT_NON_NEGATIVE) ||
            ((a->flags & AII_ACCT_NON_NEGATIVE) && a->balance < 0) ||
            find_name(s->account, sizeof(s->account[0]), i, a->name) >= 0;
    }
    // Holds were read into the first slots in the blob's order (its head's N_HOLDS counts
    // them): positive amounts, known kinds, ascending (hence unique) txids.
    for (int i = 0; i < buf[AII_CKPT_HEAD_N_HOLDS]; i++) {
        const aii_ledger_hold_t *h = &s->hold[i];
        bad |= h->amount <= 0 || h->account >= s->n_account ||
            (h->kind != AII_HOLD_DEBIT && h->kind != AII_HOLD_CREDIT) ||
            (i > 0 && h->txid <= s->hold[i - 1].txid);
    }
    chain_reset(s);
    if (bad || aii_ledger_verify(l, NULL) != AII_OK) {
        aii_ledger_init(l);
        return refuse(l, AII_ERR_CORRUPT, AII_T_BAD_CHECKPOINT);
    }
    return AII_OK;
}
#endif // AII_HAS_CHECKPOINT
