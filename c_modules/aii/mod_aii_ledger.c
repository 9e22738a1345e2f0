// SPDX-License-Identifier: MIT
// _aii.Ledger (docs/ledger.md): the core's aii_ledger_t lives inside the object, so the storage
// is allocated once by the constructor and no operation allocates (except results that are new
// objects: bytes, tuples, lists, ints beyond the small-int range). Every refusal is raised with
// the reason the core gives (l.why), so the texts are the core's, and the same on every binding.
#include <string.h>

#include "mod_aii.h"

AII_DEFINE_EXCEPTION(BalanceError, RuntimeError)
AII_DEFINE_EXCEPTION(InsufficientError, ValueError)
AII_DEFINE_EXCEPTION(CorruptError, ValueError)

typedef struct _aii_ledger_obj_t {
    mp_obj_base_t base;
    aii_ledger_t l;
} aii_ledger_obj_t;

// BalanceError(message, quantity, expected, actual, delta), delta = actual - expected.
static MP_NORETURN void raise_violation(const aii_ledger_violation_t *v) {
    char q[AII_I128_STR_MAX], actual[AII_I128_STR_MAX], expected[AII_I128_STR_MAX];
    char msg[3 * AII_I128_STR_MAX + 40];
    aii_i128_format(&v->actual, actual);
    aii_i128_format(&v->expected, expected);
    const char *parts[3] = {aii_fmt_int(q, v->qty), actual, expected};
    size_t len = aii_text_format(msg, sizeof(msg), AII_T_VIOLATION, parts, 3);
    mp_obj_t args[5] = {
        mp_obj_new_str(msg, len),
        MP_OBJ_NEW_SMALL_INT(v->qty),
        aii_mp_new_i128(&v->expected),
        aii_mp_new_i128(&v->actual),
        aii_mp_new_i128(&v->delta),
    };
    nlr_raise(mp_call_function_n_kw(MP_OBJ_FROM_PTR(AII_EXC(BalanceError)), 5, 0, args));
}

// The exception for a refused ledger call: the core's status and reason.
static void lcheck(aii_ledger_obj_t *self, aii_status_t st) {
    if (st == AII_OK) {
        return;
    }
    aii_ledger_t *l = &self->l;
    if (st == AII_ERR_VIOLATION) {
        raise_violation(&l->violation);
    }
    if (l->why == AII_T_JOURNAL_RECORD) {
        // A replay: which record, and what is wrong with it.
        char at[AII_I128_STR_MAX];
        const char *args[2] = {aii_fmt_int(at, l->why_at), aii_text(l->why_record)};
        aii_raise_args(AII_EXC(CorruptError), AII_T_JOURNAL_RECORD, args, 2);
    }
    aii_check(st, l->why);
}

// A lookup that the core refused (a const call, which names nothing): what was not found.
static void found(aii_status_t st, aii_text_t what) {
    if (st != AII_OK) {
        aii_raise(&mp_type_ValueError, what);
    }
}

static mp_obj_t ledger_new(const mp_obj_type_t *type) {
    aii_ledger_obj_t *self = mp_obj_malloc(aii_ledger_obj_t, type);
    aii_ledger_init(&self->l);
    return MP_OBJ_FROM_PTR(self);
}

// Ledger()
static mp_obj_t aii_ledger_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
    const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 0, 0, false);
    return ledger_new(type);
}

// Ledger.restore(blob) -> Ledger
static mp_obj_t aii_Ledger_restore(mp_obj_t blob) {
    mp_buffer_info_t bi;
    mp_get_buffer_raise(blob, &bi, MP_BUFFER_READ);
    mp_obj_t o = ledger_new(&aii_type_Ledger);
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(o);
    lcheck(self, aii_ledger_restore(&self->l, bi.buf, bi.len));
    return o;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_restore_fun_obj, aii_Ledger_restore);
AII_STATICMETHOD(aii_Ledger_restore_obj, aii_Ledger_restore_fun_obj);

// Ledger.add_quantity(name, *, digits=None, bits=None) -> qid
static mp_obj_t aii_Ledger_add_quantity(size_t n_args, const mp_obj_t *pos_args,
    mp_map_t *kw_args) {
    enum { ARG_name, ARG_digits, ARG_bits };
    const mp_arg_t allowed_args[] = {
        { MP_QSTR_name, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_digits, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_bits, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none} },
    };
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(pos_args[0]);
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all(n_args - 1, pos_args + 1, kw_args, MP_ARRAY_SIZE(allowed_args),
        allowed_args, args);
    mp_obj_t digits = args[ARG_digits].u_obj, bits = args[ARG_bits].u_obj;
    if (digits != mp_const_none && bits != mp_const_none) {
        aii_raise(&mp_type_ValueError, AII_T_ONE_FORMAT);
    }
    // Only the format byte's range here: the core checks the name, then the format.
    uint8_t fmt = bits != mp_const_none ? aii_arg_small(bits, 0x7f, MP_QSTR_bits)
        : AII_FX_DECIMAL | (digits == mp_const_none ? 0
            : aii_arg_small(digits, 0x7f, MP_QSTR_digits));
    size_t len;
    const char *name = aii_arg_text(args[ARG_name].u_obj, &len, MP_QSTR_name);
    int q = -1;
    lcheck(self, aii_ledger_add_qty(&self->l, name, len, fmt, &q));
    return MP_OBJ_NEW_SMALL_INT(q);
}
static MP_DEFINE_CONST_FUN_OBJ_KW(aii_Ledger_add_quantity_obj, 1, aii_Ledger_add_quantity);

// Ledger.open(name, quantity, *, initial=0, non_negative=True) -> aid
static mp_obj_t aii_Ledger_open(size_t n_args, const mp_obj_t *pos_args, mp_map_t *kw_args) {
    enum { ARG_name, ARG_quantity, ARG_initial, ARG_non_negative };
    const mp_arg_t allowed_args[] = {
        { MP_QSTR_name, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_quantity, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_initial, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_non_negative, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_true} },
    };
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(pos_args[0]);
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all(n_args - 1, pos_args + 1, kw_args, MP_ARRAY_SIZE(allowed_args),
        allowed_args, args);
    size_t len;
    const char *name = aii_arg_text(args[ARG_name].u_obj, &len, MP_QSTR_name);
    int q = aii_arg_id(args[ARG_quantity].u_obj);
    int64_t initial = aii_arg_i64(args[ARG_initial].u_obj, MP_QSTR_initial);
    uint8_t flags = mp_obj_is_true(args[ARG_non_negative].u_obj) ? AII_ACCT_NON_NEGATIVE : 0;
    int a = -1;
    lcheck(self, aii_ledger_open(&self->l, name, len, q, flags, initial, &a));
    return MP_OBJ_NEW_SMALL_INT(a);
}
static MP_DEFINE_CONST_FUN_OBJ_KW(aii_Ledger_open_obj, 1, aii_Ledger_open);

// Ledger.quantity(name) -> qid
static mp_obj_t aii_Ledger_quantity(mp_obj_t self_in, mp_obj_t name_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    size_t len;
    const char *name = aii_arg_text(name_in, &len, MP_QSTR_name);
    int q = -1;
    found(aii_ledger_find_qty(&self->l, name, len, &q), AII_T_NO_SUCH_QUANTITY);
    return MP_OBJ_NEW_SMALL_INT(q);
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_quantity_obj, aii_Ledger_quantity);

// Ledger.account(name) -> aid
static mp_obj_t aii_Ledger_account(mp_obj_t self_in, mp_obj_t name_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    size_t len;
    const char *name = aii_arg_text(name_in, &len, MP_QSTR_name);
    int a = -1;
    found(aii_ledger_find_account(&self->l, name, len, &a), AII_T_NO_SUCH_ACCOUNT);
    return MP_OBJ_NEW_SMALL_INT(a);
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_account_obj, aii_Ledger_account);

// Ledger.format(quantity) -> format byte
static mp_obj_t aii_Ledger_format(mp_obj_t self_in, mp_obj_t q_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    int q = aii_arg_id(q_in);
    found(q < 0 || q >= self->l.cur.n_qty ? AII_ERR_NOT_FOUND : AII_OK, AII_T_NO_SUCH_QUANTITY);
    return MP_OBJ_NEW_SMALL_INT(self->l.cur.qty[q].fmt);
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_format_obj, aii_Ledger_format);

// An amount beyond int64 below zero is as wrong as any amount <= 0 (which the core refuses
// after its account checks); one beyond int64 above zero is out of range.
static int64_t arg_amount(mp_obj_t o) {
    aii_int_t r;
    aii_mp_int(o, &r);
    if (r.sign < 0 && (r.over || r.mag > (uint64_t)1 << 63)) {
        aii_raise(&mp_type_ValueError, AII_T_AMOUNT_NOT_POSITIVE);
    }
    return aii_arg_i64(o, MP_QSTR_amount);
}

// Ledger.transfer(src, dst, quantity, amount)
static mp_obj_t aii_Ledger_transfer(size_t n_args, const mp_obj_t *args) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    int a = aii_arg_id(args[1]), b = aii_arg_id(args[2]), q = aii_arg_id(args[3]);
    lcheck(self, aii_ledger_transfer(&self->l, a, b, q, arg_amount(args[4])));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_Ledger_transfer_obj, 5, 5, aii_Ledger_transfer);

// Ledger.inflow(account, quantity, amount)
static mp_obj_t aii_Ledger_inflow(size_t n_args, const mp_obj_t *args) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    int a = aii_arg_id(args[1]), q = aii_arg_id(args[2]);
    lcheck(self, aii_ledger_inflow(&self->l, a, q, arg_amount(args[3])));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_Ledger_inflow_obj, 4, 4, aii_Ledger_inflow);

// Ledger.outflow(account, quantity, amount)
static mp_obj_t aii_Ledger_outflow(size_t n_args, const mp_obj_t *args) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    int a = aii_arg_id(args[1]), q = aii_arg_id(args[2]);
    lcheck(self, aii_ledger_outflow(&self->l, a, q, arg_amount(args[3])));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_Ledger_outflow_obj, 4, 4, aii_Ledger_outflow);

// Ledger.hold(txid, account, quantity, amount)
static mp_obj_t aii_Ledger_hold(size_t n_args, const mp_obj_t *args) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    uint64_t txid = aii_arg_u64(args[1], MP_QSTR_txid);
    int a = aii_arg_id(args[2]), q = aii_arg_id(args[3]);
    lcheck(self, aii_ledger_hold(&self->l, txid, a, q, arg_amount(args[4])));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_Ledger_hold_obj, 5, 5, aii_Ledger_hold);

// Ledger.prepare(txid, account, quantity, amount)
static mp_obj_t aii_Ledger_prepare(size_t n_args, const mp_obj_t *args) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    uint64_t txid = aii_arg_u64(args[1], MP_QSTR_txid);
    int a = aii_arg_id(args[2]), q = aii_arg_id(args[3]);
    lcheck(self, aii_ledger_prepare(&self->l, txid, a, q, arg_amount(args[4])));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_Ledger_prepare_obj, 5, 5, aii_Ledger_prepare);

// Ledger.settle(txid)
static mp_obj_t aii_Ledger_settle(mp_obj_t self_in, mp_obj_t txid) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck(self, aii_ledger_settle(&self->l, aii_arg_u64(txid, MP_QSTR_txid)));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_settle_obj, aii_Ledger_settle);

// Ledger.release(txid)
static mp_obj_t aii_Ledger_release(mp_obj_t self_in, mp_obj_t txid) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck(self, aii_ledger_release(&self->l, aii_arg_u64(txid, MP_QSTR_txid)));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_release_obj, aii_Ledger_release);

// Ledger.begin()
static mp_obj_t aii_Ledger_begin(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck(self, aii_ledger_begin(&self->l));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_begin_obj, aii_Ledger_begin);

// Ledger.commit()
static mp_obj_t aii_Ledger_commit(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck(self, aii_ledger_commit(&self->l, NULL));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_commit_obj, aii_Ledger_commit);

// Ledger.rollback()
static mp_obj_t aii_Ledger_rollback(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck(self, aii_ledger_rollback(&self->l));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_rollback_obj, aii_Ledger_rollback);

// Ledger.undo()
static mp_obj_t aii_Ledger_undo(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck(self, aii_ledger_undo(&self->l));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_undo_obj, aii_Ledger_undo);

// Ledger.verify()
static mp_obj_t aii_Ledger_verify(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck(self, aii_ledger_verify(&self->l, NULL));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_verify_obj, aii_Ledger_verify);

// Ledger.balance(account) -> int
static mp_obj_t aii_Ledger_balance(mp_obj_t self_in, mp_obj_t a_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    int a = aii_arg_id(a_in);
    found(a < 0 || a >= self->l.cur.n_account ? AII_ERR_NOT_FOUND : AII_OK,
        AII_T_NO_SUCH_ACCOUNT);
    return aii_mp_new_i64(self->l.cur.account[a].balance);
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_balance_obj, aii_Ledger_balance);

// Ledger.hold_info(txid) -> (account, amount, kind)
static mp_obj_t aii_Ledger_hold_info(mp_obj_t self_in, mp_obj_t txid) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    aii_ledger_hold_t h;
    found(aii_ledger_get_hold(&self->l, aii_arg_u64(txid, MP_QSTR_txid), &h), AII_T_NO_SUCH_HOLD);
    mp_obj_t t[3] = {
        MP_OBJ_NEW_SMALL_INT(h.account), aii_mp_new_i64(h.amount), MP_OBJ_NEW_SMALL_INT(h.kind)
    };
    return mp_obj_new_tuple(3, t);
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_hold_info_obj, aii_Ledger_hold_info);

// Ledger.holds() -> [(txid, account, amount, kind), ...] by ascending txid
static mp_obj_t aii_Ledger_holds(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    const aii_ledger_hold_t *hold = self->l.cur.hold;
    mp_obj_t list = mp_obj_new_list(0, NULL);
    const aii_ledger_hold_t *prev = NULL;
    // At most MAX_HOLDS entries: pick the next larger txid each time rather than sort.
    for (;;) {
        const aii_ledger_hold_t *h = NULL;
        for (int i = 0; i < AII_LEDGER_MAX_HOLDS; i++) {
            const aii_ledger_hold_t *c = &hold[i];
            if (c->amount != 0 && (prev == NULL || c->txid > prev->txid) &&
                (h == NULL || c->txid < h->txid)) {
                h = c;
            }
        }
        if (h == NULL) {
            return list;
        }
        mp_obj_t t[4] = {
            aii_mp_new_u64(h->txid), MP_OBJ_NEW_SMALL_INT(h->account), aii_mp_new_i64(h->amount),
            MP_OBJ_NEW_SMALL_INT(h->kind)
        };
        mp_obj_list_append(list, mp_obj_new_tuple(4, t));
        prev = h;
    }
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_holds_obj, aii_Ledger_holds);

// Ledger.totals(quantity) -> (balances, held, expected)
static mp_obj_t aii_Ledger_totals(mp_obj_t self_in, mp_obj_t q_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    aii_i128_t b, h, e;
    found(aii_ledger_totals(&self->l, aii_arg_id(q_in), &b, &h, &e), AII_T_NO_SUCH_QUANTITY);
    mp_obj_t t[3] = { aii_mp_new_i128(&b), aii_mp_new_i128(&h), aii_mp_new_i128(&e) };
    return mp_obj_new_tuple(3, t);
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_totals_obj, aii_Ledger_totals);

// Ledger.digest() -> bytes
static mp_obj_t aii_Ledger_digest(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    byte d[AII_LEDGER_DIGEST_LEN];
    aii_ledger_digest(&self->l, d);
    return mp_obj_new_bytes(d, sizeof(d));
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_digest_obj, aii_Ledger_digest);

// Ledger.info() -> (seq, lost, pending)
static mp_obj_t aii_Ledger_info(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_obj_t t[3] = {
        mp_obj_new_int_from_uint(self->l.cur.seq),
        mp_obj_new_int_from_uint(self->l.r_lost),
        MP_OBJ_NEW_SMALL_INT(self->l.r_len),
    };
    return mp_obj_new_tuple(3, t);
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_info_obj, aii_Ledger_info);

// Ledger.set_time(t)
static mp_obj_t aii_Ledger_set_time(mp_obj_t self_in, mp_obj_t t) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    aii_ledger_set_time(&self->l, aii_arg_u64(t, MP_QSTR_t));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_set_time_obj, aii_Ledger_set_time);

// Ledger.set_origin(kind, ident)
static mp_obj_t aii_Ledger_set_origin(mp_obj_t self_in, mp_obj_t kind, mp_obj_t ident) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    uint8_t k = aii_arg_small(kind, 255, MP_QSTR_kind);
    uint64_t id = aii_arg_u64(ident, MP_QSTR_ident);
    if (id > UINT32_MAX) {
        aii_raise_q(&mp_type_ValueError, AII_T_OUT_OF_RANGE, MP_QSTR_ident);
    }
    aii_ledger_set_origin(&self->l, k, (uint32_t)id);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_3(aii_Ledger_set_origin_obj, aii_Ledger_set_origin);

static size_t fill_journal(uint8_t *buf, size_t cap, void *ctx) {
    aii_ledger_t *l = ctx;
    size_t n = 0;
    while (n + AII_LEDGER_REC_SIZE <= cap && aii_ledger_journal_pop(l, buf + n)) {
        n += AII_LEDGER_REC_SIZE;
    }
    return n;
}

// Ledger.journal() -> bytes
static mp_obj_t aii_Ledger_journal(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return aii_mp_new_bytes(self->l.r_len * AII_LEDGER_REC_SIZE, fill_journal, &self->l);
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_journal_obj, aii_Ledger_journal);

// Ledger.seal()
static mp_obj_t aii_Ledger_seal(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck(self, aii_ledger_seal(&self->l));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_seal_obj, aii_Ledger_seal);

// Ledger.replay(records) -> int
static mp_obj_t aii_Ledger_replay(mp_obj_t self_in, mp_obj_t recs) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_buffer_info_t bi;
    mp_get_buffer_raise(recs, &bi, MP_BUFFER_READ);
    // A torn trailing record (power lost mid-write) is not a record yet: it is not counted,
    // so the caller truncates it away with the rest of an incomplete transaction.
    size_t done = 0;
    lcheck(self, aii_ledger_replay(&self->l, bi.buf, bi.len / AII_LEDGER_REC_SIZE, &done));
    return mp_obj_new_int_from_uint(done);
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_replay_obj, aii_Ledger_replay);

static size_t fill_checkpoint(uint8_t *buf, size_t cap, void *ctx) {
    size_t len = 0;
    // Cannot fail: the caller checked the state and the buffer holds the largest checkpoint.
    aii_ledger_checkpoint(ctx, buf, cap, &len);
    return len;
}

// Ledger.checkpoint() -> bytes
static mp_obj_t aii_Ledger_checkpoint(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (self->l.in_tx) {
        // The core's refusal first, so that a refused call allocates nothing.
        lcheck(self, aii_ledger_checkpoint(&self->l, NULL, 0, NULL));
    }
    return aii_mp_new_bytes(AII_LEDGER_CHECKPOINT_MAX, fill_checkpoint, &self->l);
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_checkpoint_obj, aii_Ledger_checkpoint);

#define AII_LEDGER_METHODS(X) \
    X(restore, aii_Ledger_restore_obj) \
    X(add_quantity, aii_Ledger_add_quantity_obj) \
    X(open, aii_Ledger_open_obj) \
    X(quantity, aii_Ledger_quantity_obj) \
    X(account, aii_Ledger_account_obj) \
    X(format, aii_Ledger_format_obj) \
    X(transfer, aii_Ledger_transfer_obj) \
    X(inflow, aii_Ledger_inflow_obj) \
    X(outflow, aii_Ledger_outflow_obj) \
    X(hold, aii_Ledger_hold_obj) \
    X(prepare, aii_Ledger_prepare_obj) \
    X(settle, aii_Ledger_settle_obj) \
    X(release, aii_Ledger_release_obj) \
    X(begin, aii_Ledger_begin_obj) \
    X(commit, aii_Ledger_commit_obj) \
    X(rollback, aii_Ledger_rollback_obj) \
    X(undo, aii_Ledger_undo_obj) \
    X(verify, aii_Ledger_verify_obj) \
    X(balance, aii_Ledger_balance_obj) \
    X(hold_info, aii_Ledger_hold_info_obj) \
    X(holds, aii_Ledger_holds_obj) \
    X(totals, aii_Ledger_totals_obj) \
    X(digest, aii_Ledger_digest_obj) \
    X(info, aii_Ledger_info_obj) \
    X(set_time, aii_Ledger_set_time_obj) \
    X(set_origin, aii_Ledger_set_origin_obj) \
    X(journal, aii_Ledger_journal_obj) \
    X(seal, aii_Ledger_seal_obj) \
    X(replay, aii_Ledger_replay_obj) \
    X(checkpoint, aii_Ledger_checkpoint_obj)

AII_DEFINE_TYPE(aii_type_Ledger, Ledger, aii_ledger_make_new, AII_LEDGER_METHODS);
