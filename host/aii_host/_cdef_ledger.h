// SPDX-License-Identifier: MIT
// cffi declarations for c_modules/aii/core/{ledger,fixed,wide}.h, appended to _cdef_aii.h
// (which declares aii_status_t). Values marked `...` come from the real headers through the C
// compiler, so table sizes and status codes cannot drift; fields we never read stay hidden.

// Status codes past the ones _cdef_aii.h lists (the enum there ends in `...`).
#define AII_ERR_INSUFFICIENT ...
#define AII_ERR_VIOLATION ...
#define AII_ERR_CORRUPT ...
#define AII_ERR_EXISTS ...
#define AII_ERR_INEXACT ...

#define AII_FX_DECIMAL ...
#define AII_FX_MAX_BITS ...
#define AII_FX_MAX_DIGITS ...
#define AII_FX_STR_MAX ...

#define AII_LEDGER_MAX_QTY ...
#define AII_LEDGER_MAX_ACCOUNTS ...
#define AII_LEDGER_MAX_HOLDS ...
#define AII_LEDGER_JOURNAL ...
#define AII_LEDGER_SEGMENT ...
#define AII_LEDGER_NAME_LEN ...
#define AII_ACCT_NON_NEGATIVE ...
#define AII_HOLD_DEBIT ...
#define AII_HOLD_CREDIT ...
#define AII_LEDGER_DIGEST_LEN ...
#define AII_LEDGER_REC_SIZE ...
#define AII_LEDGER_CHECKPOINT_MAX ...

typedef struct {
    uint64_t lo;
    uint64_t hi;
} aii_i128_t;

aii_status_t aii_check_sum(const void *data, size_t count, unsigned elem_size, int64_t expected,
    aii_i128_t *total);

aii_status_t aii_fx_den(uint8_t fmt, uint64_t *den);
aii_status_t aii_fx_add(int64_t a, int64_t b, int64_t *out);
aii_status_t aii_fx_sub(int64_t a, int64_t b, int64_t *out);
int64_t aii_fx_add_sat(int64_t a, int64_t b);
int64_t aii_fx_sub_sat(int64_t a, int64_t b);
aii_status_t aii_fx_muldiv(int64_t a, int64_t b, int64_t d, int64_t *out);
aii_status_t aii_fx_mul(int64_t a, int64_t b, uint8_t fmt, int64_t *out);
aii_status_t aii_fx_mul_sat(int64_t a, int64_t b, uint8_t fmt, int64_t *out);
aii_status_t aii_fx_div(int64_t a, int64_t b, uint8_t fmt, int64_t *out);
aii_status_t aii_fx_rescale(int64_t v, uint8_t from, uint8_t to, int64_t *out);
aii_status_t aii_fx_parse(const char *s, size_t len, uint8_t fmt, int64_t *out);
aii_status_t aii_fx_parse_exact(const char *s, size_t len, uint8_t fmt, int64_t *out);
aii_status_t aii_fx_format(int64_t v, uint8_t fmt, char *buf, size_t cap, size_t *len);

typedef struct {
    uint8_t name[...];
    uint8_t fmt;
    aii_i128_t initial, inflow, outflow;
    ...;
} aii_ledger_qty_t;

typedef struct {
    uint8_t name[...];
    uint8_t qty;
    uint8_t flags;
    int64_t balance;
    ...;
} aii_ledger_account_t;

typedef struct {
    uint64_t txid;
    int64_t amount;
    uint16_t account;
    uint8_t kind;
    ...;
} aii_ledger_hold_t;

typedef struct {
    aii_ledger_qty_t qty[...];
    aii_ledger_account_t account[...];
    aii_ledger_hold_t hold[...];
    uint32_t seq;
    uint16_t n_account;
    uint8_t n_qty;
    ...;
} aii_ledger_state_t;

typedef struct {
    int qty;
    aii_i128_t expected, actual, delta;
} aii_ledger_violation_t;

typedef struct {
    aii_ledger_state_t cur;
    aii_ledger_violation_t violation;
    uint16_t r_len, r_pend;
    uint32_t r_lost;
    uint8_t in_tx;
    ...;
} aii_ledger_t;

void aii_ledger_init(aii_ledger_t *l);
void aii_ledger_set_time(aii_ledger_t *l, uint64_t now);
aii_status_t aii_ledger_add_qty(aii_ledger_t *l, const char *name, size_t len, uint8_t fmt,
    int *qty);
aii_status_t aii_ledger_open(aii_ledger_t *l, const char *name, size_t len, int qty,
    uint8_t flags, int64_t initial, int *account);
aii_status_t aii_ledger_find_qty(const aii_ledger_t *l, const char *name, size_t len, int *qty);
aii_status_t aii_ledger_find_account(const aii_ledger_t *l, const char *name, size_t len,
    int *account);
aii_status_t aii_ledger_transfer(aii_ledger_t *l, int src, int dst, int qty, int64_t amount);
aii_status_t aii_ledger_inflow(aii_ledger_t *l, int account, int qty, int64_t amount);
aii_status_t aii_ledger_outflow(aii_ledger_t *l, int account, int qty, int64_t amount);
aii_status_t aii_ledger_hold(aii_ledger_t *l, uint64_t txid, int account, int qty, int64_t amount);
aii_status_t aii_ledger_prepare(aii_ledger_t *l, uint64_t txid, int account, int qty,
    int64_t amount);
aii_status_t aii_ledger_settle(aii_ledger_t *l, uint64_t txid);
aii_status_t aii_ledger_release(aii_ledger_t *l, uint64_t txid);
aii_status_t aii_ledger_get_hold(const aii_ledger_t *l, uint64_t txid, aii_ledger_hold_t *out);
aii_status_t aii_ledger_begin(aii_ledger_t *l);
aii_status_t aii_ledger_commit(aii_ledger_t *l, aii_ledger_violation_t *v);
aii_status_t aii_ledger_rollback(aii_ledger_t *l);
aii_status_t aii_ledger_verify(aii_ledger_t *l, aii_ledger_violation_t *v);
aii_status_t aii_ledger_totals(const aii_ledger_t *l, int qty, aii_i128_t *balances,
    aii_i128_t *held, aii_i128_t *expected);
bool aii_ledger_journal_pop(aii_ledger_t *l, uint8_t rec[]);
aii_status_t aii_ledger_seal(aii_ledger_t *l);
aii_status_t aii_ledger_replay(aii_ledger_t *l, const uint8_t *recs, size_t n, size_t *applied);
void aii_ledger_digest(const aii_ledger_t *l, uint8_t out[]);
aii_status_t aii_ledger_checkpoint(aii_ledger_t *l, uint8_t *buf, size_t cap, size_t *len);
aii_status_t aii_ledger_restore(aii_ledger_t *l, const uint8_t *buf, size_t len);
