// SPDX-License-Identifier: MIT
// _aii: the MicroPython binding of the AII core (docs/scheduler.md, docs/ledger.md). The
// scheduler's loop around the core (extend the clock, dispatch, run the job, complete it, report
// events, feed the watchdog, collect in idle gaps, wait) mirrors host/aii_host/sched.py call for
// call, so a test with an injected clock prints the same on the device and on CPython. The
// ledger's messages follow host/aii_host/ledger.py, chosen from the status and the state.
#include <string.h>

#include "py/binary.h"
#include "py/gc.h"
#include "py/mphal.h"
#include "py/objexcept.h"
#include "py/objint.h"
#include "py/runtime.h"
#include "py/smallint.h"

#include "core/aii_sched.h"
#include "core/crc32.h"
#include "core/fixed.h"
#include "core/ledger.h"
#include "core/wide.h"

// Longest single idle wait when nothing is due (same as the host): bounds how long run() takes
// to notice the end of a custom clock's world.
#define AII_IDLE_CAP_US (100000)

MP_DEFINE_EXCEPTION(AdmissionError, ValueError)

typedef struct _aii_scheduler_obj_t {
    mp_obj_base_t base;
    // Job callables live here, in a fixed array inside a GC-heap object: the GC sees them, and
    // dispatch never allocates. MP_OBJ_NULL marks a free slot.
    mp_obj_t fn[AII_SCHED_MAX_TASKS];
    mp_obj_t on_miss;
    mp_obj_t wdt;
    mp_obj_t clock;  // mp_const_none: the port's mp_hal_ticks_us()
    mp_obj_t sleep;
    uint64_t max_wait;  // a quarter of the tick period: the clock must be seen every half period
    bool stop;
    bool running;
    bool gc_idle;
    aii_clock_t clk;
    aii_job_t job;
    aii_rta_result_t rta;  // scratch for add() and admit(), kept off the C stack
    aii_sched_t s;
} aii_scheduler_obj_t;

// ---------------------------------------------------------------------------------------------
// Argument conversion, with the same rules and texts as host/aii_host/sched.py.

// An int as a sign and a magnitude; `over` when the magnitude does not fit 64 bits.
typedef struct {
    uint64_t mag;
    int sign;
    bool over;
} aii_int_t;

static void int_get(mp_obj_t o, aii_int_t *r) {
    r->over = false;
    if (mp_obj_is_small_int(o) || !mp_obj_is_exact_type(o, &mp_type_int)) {
        // mp_obj_get_int() takes bools and raises "can't convert X to int" for the rest.
        mp_int_t v = mp_obj_is_small_int(o) ? MP_OBJ_SMALL_INT_VALUE(o) : mp_obj_get_int(o);
        r->sign = v < 0 ? -1 : v > 0;
        r->mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        return;
    }
    #if MICROPY_LONGINT_IMPL != MICROPY_LONGINT_IMPL_NONE
    byte buf[8];
    r->sign = mp_obj_int_sign(o);
    // Unsigned for positive values, two's complement for negative ones.
    if (!mp_obj_int_to_bytes_impl(o, false, sizeof(buf), buf)) {
        r->over = true;
        r->mag = UINT64_MAX;
        return;
    }
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | buf[i];
    }
    r->mag = r->sign < 0 ? (uint64_t)0 - v : v;
    #endif
}

// Low 64 bits of an int, two's complement (what `v & mask` needs for a clock reading).
static uint64_t int_low64(mp_obj_t o) {
    aii_int_t r;
    int_get(o, &r);
    return r.sign < 0 ? (uint64_t)0 - r.mag : r.mag;
}

// A Python int for a 64-bit count: a small int whenever it fits, as the host's ints compare.
static mp_obj_t new_u64(uint64_t v) {
    if (v <= (uint64_t)MP_SMALL_INT_MAX) {
        return MP_OBJ_NEW_SMALL_INT((mp_int_t)v);
    }
    return mp_obj_new_int_from_ull(v);
}

static uint32_t arg_u32(mp_obj_t o, qstr name) {
    aii_int_t r;
    int_get(o, &r);
    if (r.sign < 0) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%q must be >= 0"), name);
    }
    if (r.over || r.mag > UINT32_MAX) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%q out of range"), name);
    }
    return (uint32_t)r.mag;
}

static int arg_tid(mp_obj_t o) {
    aii_int_t r;
    int_get(o, &r);
    if (r.sign < 0 || r.over || r.mag >= AII_SCHED_MAX_TASKS) {
        mp_raise_ValueError(MP_ERROR_TEXT("no such task"));
    }
    return (int)r.mag;
}

// Status codes become exceptions here, once.
static void check(aii_status_t st) {
    switch (st) {
        case AII_OK:
        case AII_IDLE:
            return;
        case AII_ERR_ARG:
            mp_raise_ValueError(MP_ERROR_TEXT("invalid argument"));
        case AII_ERR_FULL:
            mp_raise_msg(&mp_type_RuntimeError, MP_ERROR_TEXT("task table full"));
        case AII_ERR_NOT_FOUND:
            mp_raise_ValueError(MP_ERROR_TEXT("no such task"));
        case AII_ERR_UNSCHEDULABLE:
            mp_raise_msg(&mp_type_AdmissionError, MP_ERROR_TEXT("task set not schedulable"));
        case AII_ERR_STATE:
            mp_raise_msg(&mp_type_RuntimeError, MP_ERROR_TEXT("not allowed now"));
        case AII_ERR_OVERFLOW:
            mp_raise_msg(&mp_type_OverflowError, MP_ERROR_TEXT("overflow"));
        default:
            mp_raise_msg_varg(&mp_type_RuntimeError, MP_ERROR_TEXT("error %d"), (int)st);
    }
}

// ---------------------------------------------------------------------------------------------
// Time.

static aii_time_t sched_now(aii_scheduler_obj_t *self) {
    uint64_t raw;
    if (self->clock == mp_const_none) {
        raw = (uint64_t)mp_hal_ticks_us();
    } else {
        raw = int_low64(mp_call_function_0(self->clock));
    }
    raw &= self->clk.mask;
    // A counter that steps back a little (the qemu port's SysTick-based ticks_us does, by up to
    // a millisecond) must not read as a whole wrap forward: hold the time instead. The clock is
    // read at least every quarter period, so a step of half a period or more is such a glitch.
    if (self->clk.started && ((raw - self->clk.last_raw) & self->clk.mask) > (self->clk.mask >> 1)) {
        raw = self->clk.last_raw;
    }
    return aii_clock_extend(&self->clk, raw);
}

// An absolute time in the clock's tick domain, as extended time.
static aii_time_t sched_raw(aii_scheduler_obj_t *self, mp_obj_t o, qstr name) {
    aii_int_t r;
    int_get(o, &r);
    if (r.sign < 0 || r.over || r.mag > self->clk.mask) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%q out of range"), name);
    }
    return aii_clock_from_raw(&self->clk, r.mag);
}

// Waits dt_us on the port's clock, letting scheduled callbacks and background work run; returns
// early when a trigger (possibly from an ISR) arrives or a callback calls stop().
static void wait_real(aii_scheduler_obj_t *self, uint64_t dt_us) {
    mp_uint_t t0 = mp_hal_ticks_us();
    uint32_t epoch = self->s.trig_epoch;
    for (;;) {
        uint64_t el = (uint64_t)(mp_uint_t)(mp_hal_ticks_us() - t0);
        if (el >= dt_us || self->stop || self->s.trig_epoch != epoch) {
            return;
        }
        uint64_t rem = dt_us - el;
        if (rem >= 2000) {
            // Wake a millisecond early and spin the rest, for release precision.
            uint64_t ms = rem / 1000 - 1;
            mp_event_wait_ms((mp_uint_t)(ms > 10 ? 10 : ms));
        } else {
            mp_event_handle_nowait();
        }
    }
}

static void sched_wait(aii_scheduler_obj_t *self, aii_time_t now, aii_time_t wake_at,
    aii_time_t end) {
    aii_time_t until = wake_at < end ? wake_at : end;
    if (until != AII_TIME_NEVER && until <= now) {
        return;
    }
    uint64_t dt = until == AII_TIME_NEVER ? AII_IDLE_CAP_US : until - now;
    if (dt > self->max_wait) {
        dt = self->max_wait;
    }
    if (self->sleep != mp_const_none) {
        mp_call_function_1(self->sleep, new_u64(dt));
    } else {
        wait_real(self, dt > AII_IDLE_CAP_US ? AII_IDLE_CAP_US : dt);
    }
}

// ---------------------------------------------------------------------------------------------
// Running jobs.

static void sched_forget(aii_scheduler_obj_t *self, int tid) {
    self->fn[tid] = MP_OBJ_NULL;
}

static void sched_drain(aii_scheduler_obj_t *self) {
    aii_event_t ev;
    while (aii_sched_event_pop(&self->s, &ev)) {
        if (!aii_sched_task_used(&self->s, ev.task)) {
            sched_forget(self, ev.task);  // a dropped one-shot
        }
        if (self->on_miss != mp_const_none) {
            mp_obj_t args[3] = {
                MP_OBJ_NEW_SMALL_INT(ev.task),
                MP_OBJ_NEW_SMALL_INT(ev.kind),
                mp_obj_new_int_from_uint(ev.detail),
            };
            mp_call_function_n_kw(self->on_miss, 3, 0, args);
        }
    }
}

static void sched_feed(aii_scheduler_obj_t *self) {
    if (self->wdt != mp_const_none && aii_sched_wdt_ok(&self->s)) {
        mp_obj_t dest[2];
        mp_load_method(self->wdt, MP_QSTR_feed, dest);
        mp_call_method_n_kw(0, 0, dest);
    }
}

static void sched_finish(aii_scheduler_obj_t *self, int tid) {
    // Not found: the job removed its own task; nothing is left to account to.
    aii_sched_complete(&self->s, &self->job, sched_now(self));
    if (!aii_sched_task_used(&self->s, tid)) {
        sched_forget(self, tid);  // a one-shot has run
    }
    sched_drain(self);
}

static int sched_run_job(aii_scheduler_obj_t *self) {
    int tid = self->job.task;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_call_function_0(self->fn[tid]);
        nlr_pop();
    } else {
        // Recorded even when the job raised, so stats stay consistent and run() can resume.
        sched_finish(self, tid);
        nlr_jump(nlr.ret_val);
    }
    sched_finish(self, tid);
    return tid;
}

static void sched_enter(aii_scheduler_obj_t *self) {
    // One job record is reused, and a job nested in a job has no meaning without preemption.
    if (self->running) {
        mp_raise_msg(&mp_type_RuntimeError, MP_ERROR_TEXT("scheduler already running"));
    }
    self->running = true;
}

// Not inlined, for the nlr handlers of run() and run_once(): the compiler does not know that
// nlr_push() returns twice, and inlined it took the `false` from a stack slot that held zero
// before nlr_push() and that the loop had reused since, so `running` stayed set after a job
// raised (Cortex-M0 at -Os: the MICROBIT image and the RPI_PICO build).
static MP_NOINLINE void sched_leave(aii_scheduler_obj_t *self) {
    self->running = false;
}

// ---------------------------------------------------------------------------------------------
// Scheduler.

// Scheduler(*, overhead_us=0, gc_idle_us=0, on_miss=None, wdt=None, clock=None,
//           tick_period=None, sleep=None)
static mp_obj_t aii_scheduler_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
    const mp_obj_t *all_args) {
    enum { ARG_overhead_us, ARG_gc_idle_us, ARG_on_miss, ARG_wdt, ARG_clock, ARG_tick_period,
           ARG_sleep };
    static const mp_arg_t allowed_args[] = {
        { MP_QSTR_overhead_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_gc_idle_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_on_miss, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_wdt, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_clock, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_tick_period, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_sleep, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
    };
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all_kw_array(n_args, n_kw, all_args, MP_ARRAY_SIZE(allowed_args), allowed_args,
        args);

    uint32_t overhead_us = arg_u32(args[ARG_overhead_us].u_obj, MP_QSTR_overhead_us);
    uint32_t gc_idle_us = arg_u32(args[ARG_gc_idle_us].u_obj, MP_QSTR_gc_idle_us);
    mp_obj_t on_miss = args[ARG_on_miss].u_obj;
    if (on_miss != mp_const_none && !mp_obj_is_callable(on_miss)) {
        mp_raise_TypeError(MP_ERROR_TEXT("on_miss must be callable"));
    }
    mp_obj_t wdt = args[ARG_wdt].u_obj;
    if (wdt != mp_const_none) {
        mp_obj_t dest[2];
        mp_load_method_maybe(wdt, MP_QSTR_feed, dest);
        if (dest[0] == MP_OBJ_NULL || !mp_obj_is_callable(dest[0])) {
            mp_raise_TypeError(MP_ERROR_TEXT("wdt must have feed()"));
        }
    }
    mp_obj_t clock = args[ARG_clock].u_obj;
    if (clock != mp_const_none && !mp_obj_is_callable(clock)) {
        mp_raise_TypeError(MP_ERROR_TEXT("clock must be callable"));
    }
    mp_obj_t sleep = args[ARG_sleep].u_obj;
    if (sleep != mp_const_none && !mp_obj_is_callable(sleep)) {
        mp_raise_TypeError(MP_ERROR_TEXT("sleep must be callable"));
    }
    // The port's ticks_us() period: 2**30 on 32-bit ports, 2**62 on 64-bit unix.
    uint64_t mask = (uint64_t)MICROPY_PY_TIME_TICKS_PERIOD - 1;
    if (args[ARG_tick_period].u_obj != mp_const_none) {
        aii_int_t r;
        int_get(args[ARG_tick_period].u_obj, &r);
        bool ok;
        if (r.over) {
            // 2**64 is the one valid period beyond 64 bits.
            #if MICROPY_LONGINT_IMPL != MICROPY_LONGINT_IMPL_NONE
            byte buf[9];
            ok = r.sign > 0 && mp_obj_int_to_bytes_impl(args[ARG_tick_period].u_obj, false, 9, buf)
                && buf[8] == 1;
            for (int i = 0; ok && i < 8; i++) {
                ok = buf[i] == 0;
            }
            #else
            ok = false;
            #endif
            mask = UINT64_MAX;
        } else {
            ok = r.sign > 0 && r.mag >= 2 && (r.mag & (r.mag - 1)) == 0;
            mask = r.mag - 1;
        }
        if (!ok) {
            mp_raise_ValueError(MP_ERROR_TEXT("tick_period must be a power of two"));
        }
    }

    aii_scheduler_obj_t *self = mp_obj_malloc(aii_scheduler_obj_t, type);
    for (int i = 0; i < AII_SCHED_MAX_TASKS; i++) {
        self->fn[i] = MP_OBJ_NULL;
    }
    self->on_miss = on_miss;
    self->wdt = wdt;
    self->clock = clock;
    self->sleep = sleep;
    self->max_wait = mask / 4 + 1 > 1 ? mask / 4 + 1 : 1;  // (mask + 1) // 4, even for 2**64
    self->stop = false;
    self->running = false;
    self->gc_idle = gc_idle_us > 0;
    aii_sched_init(&self->s, overhead_us);
    self->s.gc_idle_us = gc_idle_us;
    aii_clock_init(&self->clk, mask);
    memset(&self->job, 0, sizeof(self->job));
    sched_now(self);
    return MP_OBJ_FROM_PTR(self);
}

// Scheduler.add(fn, *, budget_us, period_us=0, min_gap_us=0, deadline_us=0, offset_us=0,
//               deadline_at=None, release_at=None, priority=None, policy=CONTINUE,
//               critical=False) -> tid
static mp_obj_t aii_scheduler_add(size_t n_args, const mp_obj_t *pos_args, mp_map_t *kw_args) {
    enum { ARG_fn, ARG_budget_us, ARG_period_us, ARG_min_gap_us, ARG_deadline_us, ARG_offset_us,
           ARG_deadline_at, ARG_release_at, ARG_priority, ARG_policy, ARG_critical };
    static const mp_arg_t allowed_args[] = {
        { MP_QSTR_fn, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_budget_us, MP_ARG_REQUIRED | MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_period_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_min_gap_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_deadline_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_offset_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_deadline_at, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_release_at, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_priority, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_policy, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(AII_POLICY_CONTINUE)} },
        { MP_QSTR_critical, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_FALSE} },
    };
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(pos_args[0]);
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all(n_args - 1, pos_args + 1, kw_args, MP_ARRAY_SIZE(allowed_args),
        allowed_args, args);

    // Checks in the host's order, so a call with several faults fails the same way; the range
    // and consistency checks and their texts live in the core (aii_sched_param_error).
    mp_obj_t fn = args[ARG_fn].u_obj;
    if (!mp_obj_is_callable(fn)) {
        mp_raise_TypeError(MP_ERROR_TEXT("fn must be callable"));
    }
    uint32_t budget_us = arg_u32(args[ARG_budget_us].u_obj, MP_QSTR_budget_us);
    aii_int_t r;
    int_get(args[ARG_period_us].u_obj, &r);
    bool period_neg = r.sign < 0;
    int_get(args[ARG_min_gap_us].u_obj, &r);
    // 0 means "not given"; a negative value gets the core's text for a missing period.
    if (period_neg) {
        mp_raise_ValueError(MP_ERROR_TEXT("period_us must be > 0"));
    }
    if (r.sign < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("min_gap_us must be > 0"));
    }
    uint32_t period_us = arg_u32(args[ARG_period_us].u_obj, MP_QSTR_period_us);
    uint32_t min_gap_us = arg_u32(args[ARG_min_gap_us].u_obj, MP_QSTR_min_gap_us);
    uint32_t deadline_us = arg_u32(args[ARG_deadline_us].u_obj, MP_QSTR_deadline_us);
    uint32_t offset_us = arg_u32(args[ARG_offset_us].u_obj, MP_QSTR_offset_us);
    int_get(args[ARG_policy].u_obj, &r);
    // An unknown policy is passed on as 255 so that the core names it.
    uint32_t policy = r.sign >= 0 && !r.over && r.mag <= 255 ? (uint32_t)r.mag : 255;
    mp_obj_t prio_in = args[ARG_priority].u_obj;
    int32_t priority = AII_PRIO_AUTO;
    if (prio_in != mp_const_none) {
        int_get(prio_in, &r);
        // AII_PRIO_AUTO (INT32_MIN) itself is reserved.
        if (r.over || (r.sign < 0 && r.mag >= (uint64_t)1 << 31)
            || (r.sign > 0 && r.mag > INT32_MAX)) {
            mp_raise_ValueError(MP_ERROR_TEXT("priority out of range"));
        }
        priority = r.sign < 0 ? -(int32_t)r.mag : (int32_t)r.mag;
    }
    bool oneshot = args[ARG_deadline_at].u_obj != mp_const_none;
    if ((period_us > 0) + (min_gap_us > 0) + oneshot > 1) {
        mp_raise_ValueError(MP_ERROR_TEXT("give only one of period_us, min_gap_us, deadline_at"));
    }

    aii_task_params_t p;
    memset(&p, 0, sizeof(p));
    p.policy = (aii_policy_t)policy;
    p.budget_us = budget_us;
    p.deadline_us = deadline_us;
    p.offset_us = offset_us;
    p.priority = priority;
    p.critical = mp_obj_is_true(args[ARG_critical].u_obj);
    aii_time_t now = sched_now(self);
    if (oneshot) {
        p.kind = AII_KIND_ONESHOT;
        p.deadline_at = sched_raw(self, args[ARG_deadline_at].u_obj, MP_QSTR_deadline_at);
        p.release_at = args[ARG_release_at].u_obj == mp_const_none
            ? now : sched_raw(self, args[ARG_release_at].u_obj, MP_QSTR_release_at);
    } else if (min_gap_us) {
        p.kind = AII_KIND_SPORADIC;
        p.period_us = min_gap_us;
    } else {
        p.kind = AII_KIND_PERIODIC;
        p.period_us = period_us;
    }
    const char *why = aii_sched_param_error(&self->s, &p);
    if (why) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%s"), why);
    }
    int tid = -1;
    aii_status_t st = aii_sched_add(&self->s, &p, now, &tid, &self->rta);
    if (st == AII_ERR_UNSCHEDULABLE) {
        if (self->rta.failed_wcrt_us == UINT32_MAX) {
            mp_raise_msg_varg(&mp_type_AdmissionError,
                MP_ERROR_TEXT("task %d: worst-case response inf us > deadline %u us"),
                (int)self->rta.failed_task, (unsigned)self->rta.failed_deadline_us);
        }
        mp_raise_msg_varg(&mp_type_AdmissionError,
            MP_ERROR_TEXT("task %d: worst-case response %u us > deadline %u us"),
            (int)self->rta.failed_task, (unsigned)self->rta.failed_wcrt_us,
            (unsigned)self->rta.failed_deadline_us);
    }
    check(st);
    self->fn[tid] = fn;
    return MP_OBJ_NEW_SMALL_INT(tid);
}
static MP_DEFINE_CONST_FUN_OBJ_KW(aii_scheduler_add_obj, 1, aii_scheduler_add);

// Scheduler.remove(tid)
static mp_obj_t aii_scheduler_remove(mp_obj_t self_in, mp_obj_t tid_in) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(self_in);
    int tid = arg_tid(tid_in);
    check(aii_sched_remove(&self->s, tid));
    sched_forget(self, tid);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_scheduler_remove_obj, aii_scheduler_remove);

// Scheduler.trigger(tid)
// Safe from a hard interrupt handler: nothing here allocates unless the call is wrong.
static mp_obj_t aii_scheduler_trigger(mp_obj_t self_in, mp_obj_t tid_in) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(self_in);
    aii_status_t st = aii_sched_trigger(&self->s, arg_tid(tid_in));
    if (st == AII_ERR_STATE) {
        mp_raise_msg(&mp_type_RuntimeError, MP_ERROR_TEXT("not a sporadic task"));
    }
    check(st);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_scheduler_trigger_obj, aii_scheduler_trigger);

// Scheduler.run([duration_us]) -> number of jobs run
static mp_obj_t aii_scheduler_run(size_t n_args, const mp_obj_t *args) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    bool timed = n_args > 1 && args[1] != mp_const_none;
    uint64_t duration = 0;
    if (timed) {
        aii_int_t r;
        int_get(args[1], &r);
        if (r.sign < 0) {
            mp_raise_ValueError(MP_ERROR_TEXT("duration_us must be >= 0"));
        }
        duration = r.mag;
    }
    sched_enter(self);
    mp_uint_t n = 0;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        self->stop = false;
        aii_time_t end = AII_TIME_NEVER;
        if (timed) {
            aii_time_t t = sched_now(self);
            end = duration >= AII_TIME_NEVER - t ? AII_TIME_NEVER - 1 : t + duration;
        }
        while (!self->stop) {
            aii_time_t now = sched_now(self);
            if (timed && now >= end) {
                break;
            }
            aii_status_t st = aii_sched_dispatch(&self->s, now, &self->job);
            check(st);
            if (st == AII_OK) {
                n++;
                sched_run_job(self);
                sched_feed(self);
                continue;
            }
            sched_drain(self);  // dropped jobs are reported by dispatch
            sched_feed(self);
            aii_time_t wake_at = self->job.wake_at;
            if (self->gc_idle && aii_sched_gc_due(&self->s, now, wake_at)) {
                gc_collect();
                aii_sched_gc_done(&self->s);
                continue;
            }
            sched_wait(self, now, wake_at, end);
        }
        nlr_pop();
    } else {
        sched_leave(self);
        nlr_jump(nlr.ret_val);
    }
    sched_leave(self);
    return mp_obj_new_int_from_uint(n);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_scheduler_run_obj, 1, 2, aii_scheduler_run);

// Scheduler.run_once() -> tid or None
static mp_obj_t aii_scheduler_run_once(mp_obj_t self_in) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(self_in);
    sched_enter(self);
    mp_obj_t ret = mp_const_none;
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        aii_status_t st = aii_sched_dispatch(&self->s, sched_now(self), &self->job);
        check(st);
        if (st != AII_OK) {
            sched_drain(self);
            sched_feed(self);
        } else {
            ret = MP_OBJ_NEW_SMALL_INT(sched_run_job(self));
            sched_feed(self);
        }
        nlr_pop();
    } else {
        sched_leave(self);
        nlr_jump(nlr.ret_val);
    }
    sched_leave(self);
    return ret;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_scheduler_run_once_obj, aii_scheduler_run_once);

// Scheduler.stop()
static mp_obj_t aii_scheduler_stop(mp_obj_t self_in) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(self_in);
    self->stop = true;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_scheduler_stop_obj, aii_scheduler_stop);

static mp_obj_t stats_tuple(aii_scheduler_obj_t *self, int tid) {
    aii_task_stats_t st;
    check(aii_sched_stats(&self->s, tid, &st));
    uint32_t jobs = st.jobs;
    mp_obj_t t[10] = {
        mp_obj_new_int_from_uint(jobs),
        mp_obj_new_int_from_uint(st.misses),
        mp_obj_new_int_from_uint(st.overruns),
        mp_obj_new_int_from_uint(st.dropped),
        mp_obj_new_int_from_uint(st.skipped),
        mp_obj_new_int_from_uint(jobs ? st.resp_min_us : 0),
        mp_obj_new_int_from_uint(st.resp_max_us),
        new_u64(jobs ? st.resp_sum_us / jobs : 0),
        mp_obj_new_int_from_uint(st.latency_max_us),
        mp_obj_new_int_from_uint(st.exec_max_us),
    };
    return mp_obj_new_tuple(10, t);
}

// Scheduler.stats([tid]) -> tuple, or {tid: tuple}
static mp_obj_t aii_scheduler_stats(size_t n_args, const mp_obj_t *args) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    if (n_args > 1 && args[1] != mp_const_none) {
        return stats_tuple(self, arg_tid(args[1]));
    }
    mp_obj_t d = mp_obj_new_dict(0);
    for (int i = 0; i < AII_SCHED_MAX_TASKS; i++) {
        if (aii_sched_task_used(&self->s, i)) {
            mp_obj_dict_store(d, MP_OBJ_NEW_SMALL_INT(i), stats_tuple(self, i));
        }
    }
    return d;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_scheduler_stats_obj, 1, 2, aii_scheduler_stats);

// Scheduler.admit() -> [(tid, level, wcrt_us, deadline_us, blocking_us, jobs), ...]
static mp_obj_t aii_scheduler_admit(mp_obj_t self_in) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(self_in);
    check(aii_sched_admit(&self->s, &self->rta));
    int n = self->rta.n;
    mp_obj_t list = mp_obj_new_list(n, NULL);
    for (int i = 0; i < n; i++) {
        const aii_rta_entry_t *e = &self->rta.entry[i];
        mp_obj_t t[6] = {
            MP_OBJ_NEW_SMALL_INT(e->task),
            MP_OBJ_NEW_SMALL_INT(e->level),
            mp_obj_new_int_from_uint(e->wcrt_us),
            mp_obj_new_int_from_uint(e->deadline_us),
            mp_obj_new_int_from_uint(e->blocking_us),
            mp_obj_new_int_from_uint(e->jobs),
        };
        mp_obj_list_store(list, MP_OBJ_NEW_SMALL_INT(i), mp_obj_new_tuple(6, t));
    }
    return list;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_scheduler_admit_obj, aii_scheduler_admit);

// Scheduler.info() -> (method, n_tasks, total_jobs, total_misses, dispatches, gc_runs)
static mp_obj_t aii_scheduler_info(mp_obj_t self_in) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(self_in);
    qstr method = MP_QSTR__question_;
    switch (self->s.method) {
        case AII_METHOD_EXPLICIT:
            method = MP_QSTR_explicit;
            break;
        case AII_METHOD_DM:
            method = MP_QSTR_dm;
            break;
        case AII_METHOD_OPA:
            method = MP_QSTR_opa;
            break;
    }
    mp_obj_t t[6] = {
        MP_OBJ_NEW_QSTR(method),
        MP_OBJ_NEW_SMALL_INT(self->s.n_tasks),
        mp_obj_new_int_from_uint(self->s.total_jobs),
        mp_obj_new_int_from_uint(self->s.total_misses),
        mp_obj_new_int_from_uint(self->s.dispatches),
        mp_obj_new_int_from_uint(self->s.gc_runs),
    };
    return mp_obj_new_tuple(6, t);
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_scheduler_info_obj, aii_scheduler_info);

static const mp_rom_map_elem_t aii_scheduler_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_add), MP_ROM_PTR(&aii_scheduler_add_obj) },
    { MP_ROM_QSTR(MP_QSTR_remove), MP_ROM_PTR(&aii_scheduler_remove_obj) },
    { MP_ROM_QSTR(MP_QSTR_trigger), MP_ROM_PTR(&aii_scheduler_trigger_obj) },
    { MP_ROM_QSTR(MP_QSTR_run), MP_ROM_PTR(&aii_scheduler_run_obj) },
    { MP_ROM_QSTR(MP_QSTR_run_once), MP_ROM_PTR(&aii_scheduler_run_once_obj) },
    { MP_ROM_QSTR(MP_QSTR_stop), MP_ROM_PTR(&aii_scheduler_stop_obj) },
    { MP_ROM_QSTR(MP_QSTR_stats), MP_ROM_PTR(&aii_scheduler_stats_obj) },
    { MP_ROM_QSTR(MP_QSTR_admit), MP_ROM_PTR(&aii_scheduler_admit_obj) },
    { MP_ROM_QSTR(MP_QSTR_info), MP_ROM_PTR(&aii_scheduler_info_obj) },
};
static MP_DEFINE_CONST_DICT(aii_scheduler_locals_dict, aii_scheduler_locals_dict_table);

MP_DEFINE_CONST_OBJ_TYPE(
    aii_type_Scheduler,
    MP_QSTR_Scheduler,
    MP_TYPE_FLAG_NONE,
    make_new, aii_scheduler_make_new,
    locals_dict, &aii_scheduler_locals_dict
    );

// ---------------------------------------------------------------------------------------------
// Ledger (docs/ledger.md): the core's aii_ledger_t lives inside the object, so the storage is
// allocated once by the constructor and no operation allocates (except results that are new
// objects: bytes, tuples, lists, ints beyond the small-int range).

MP_DEFINE_EXCEPTION(BalanceError, RuntimeError)
MP_DEFINE_EXCEPTION(InsufficientError, ValueError)
MP_DEFINE_EXCEPTION(CorruptError, ValueError)

// Binding functions are aii_Ledger_<method>: the core owns aii_ledger_<verb>.
extern const mp_obj_type_t aii_type_Ledger;

typedef struct _aii_ledger_obj_t {
    mp_obj_base_t base;
    aii_ledger_t l;
} aii_ledger_obj_t;

// What a call was doing when the core refused it: picks the message for a status.
enum {
    W_FX,       // fx_mul, fx_rescale, fx_format
    W_PARSE,    // fx_parse
    W_DIV,      // fx_div, fx_muldiv
    W_SUM,      // check_sum
    W_QTY,      // add_quantity
    W_OPEN,     // open
    W_TRANSFER,
    W_MOVE,     // inflow, outflow
    W_HOLD,     // hold, prepare
    W_TXID,     // settle, release, hold_info
    W_ACCT,     // account lookups
    W_QTYID,    // quantity lookups
    W_TX,       // begin, commit, rollback, verify, seal, checkpoint
    W_REPLAY,
    W_RESTORE,
};

typedef struct {
    uint8_t what;
    bool bits;              // add_quantity: the format was given as bits (else digits)
    int a, b, qty;          // a movement's ids (-1: not a possible id)
    int64_t amount;
    const char *name;       // add_quantity, open
    size_t len;
    const uint8_t *recs;    // replay: the records, how many, how many the core applied
    size_t n, done;
} why_t;

static mp_obj_t new_i64(int64_t v) {
    if (v >= MP_SMALL_INT_MIN && v <= MP_SMALL_INT_MAX) {
        return MP_OBJ_NEW_SMALL_INT((mp_int_t)v);
    }
    return mp_obj_new_int_from_ll(v);
}

// An exact Python int from a 128-bit total (32-bit ports have no wider C type to go through).
static mp_obj_t new_i128(const aii_i128_t *v) {
    int64_t s;
    if (aii_i128_to_i64(v, &s) == AII_OK) {
        return new_i64(s);
    }
    aii_i128_t m = *v;
    bool neg = (int64_t)m.hi < 0;
    if (neg) {
        m.lo = ~m.lo + 1;
        m.hi = ~m.hi + (m.lo == 0);
    }
    byte buf[16];
    for (int i = 0; i < 8; i++) {
        buf[i] = (byte)(m.lo >> (8 * i));
        buf[8 + i] = (byte)(m.hi >> (8 * i));
    }
    mp_obj_t o = mp_obj_int_from_bytes_impl(false, sizeof(buf), buf);
    return neg ? mp_unary_op(MP_UNARY_OP_NEGATIVE, o) : o;
}

// Ints that do not fit their C type are refused, never truncated.
static int64_t arg_i64(mp_obj_t o, qstr name) {
    aii_int_t r;
    int_get(o, &r);
    if (r.over || r.mag > (r.sign < 0 ? (uint64_t)1 << 63 : (uint64_t)INT64_MAX)) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%q out of range"), name);
    }
    return r.sign < 0 ? (int64_t)((uint64_t)0 - r.mag) : (int64_t)r.mag;
}

// An amount beyond int64 below zero is as wrong as any amount <= 0 (which the core refuses
// after its account checks); one beyond int64 above zero is out of range.
static int64_t arg_amount(mp_obj_t o) {
    aii_int_t r;
    int_get(o, &r);
    if (r.sign < 0 && (r.over || r.mag > (uint64_t)1 << 63)) {
        mp_raise_ValueError(MP_ERROR_TEXT("amount must be > 0"));
    }
    return arg_i64(o, MP_QSTR_amount);
}

static uint64_t arg_u64(mp_obj_t o, qstr name) {
    aii_int_t r;
    int_get(o, &r);
    if (r.over || r.sign < 0) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%q out of range"), name);
    }
    return r.mag;
}

// An account or quantity id; one that cannot exist becomes -1, which the core does not find.
// A name or string argument: str, bytes or bytearray (as aii_host accepts); anything else is
// "<what> must be str", the same TypeError on every binding.
static const char *arg_text(mp_obj_t o, size_t *len, qstr what) {
    mp_buffer_info_t bi;
    if (mp_obj_is_str(o) || mp_obj_is_type(o, &mp_type_bytes)) {
        return mp_obj_str_get_data(o, len);
    }
    if (mp_obj_is_type(o, &mp_type_bytearray) && mp_get_buffer(o, &bi, MP_BUFFER_READ)) {
        *len = bi.len;
        return (const char *)bi.buf;
    }
    mp_raise_msg_varg(&mp_type_TypeError, MP_ERROR_TEXT("%q must be str"), what);
}

static int arg_id(mp_obj_t o) {
    aii_int_t r;
    int_get(o, &r);
    return r.sign < 0 || r.over || r.mag > 0xffff ? -1 : (int)r.mag;
}

// A format byte in 0..255; whether it is a valid one is checked after every argument was
// converted (fmt_valid), as aii_host does, so both bindings report errors in the same order.
static uint8_t arg_fmt_byte(mp_obj_t o) {
    aii_int_t r;
    int_get(o, &r);
    if (r.sign < 0 || r.over || r.mag > 255) {
        mp_raise_ValueError(MP_ERROR_TEXT("bad format"));
    }
    return (uint8_t)r.mag;
}

// A valid format: Q(0..62) or DEC(0..18).
static uint8_t fmt_valid(uint8_t fmt) {
    uint64_t den;
    if (aii_fx_den(fmt, &den) != AII_OK) {
        mp_raise_ValueError(MP_ERROR_TEXT("bad format"));
    }
    return fmt;
}

static uint8_t arg_fmt(mp_obj_t o) {
    return fmt_valid(arg_fmt_byte(o));
}

static uint8_t arg_small(mp_obj_t o, unsigned max, qstr name) {
    aii_int_t r;
    int_get(o, &r);
    if (r.sign < 0 || r.over || r.mag > max) {
        mp_raise_msg_varg(&mp_type_ValueError, MP_ERROR_TEXT("%q out of range"), name);
    }
    return (uint8_t)r.mag;
}

// A name for a quantity or account: 1..12 bytes (UTF-8 for a str), no NUL.
static bool name_ok(const char *s, size_t len) {
    return len > 0 && len <= AII_LEDGER_NAME_LEN && memchr(s, 0, len) == NULL;
}

static uint32_t rec_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// Which record replay stopped at, and why: the core keeps the state of the last complete
// transaction and says no more. Replaying a prefix of the rest that ends before the bad record
// is an incomplete transaction, which the core drops without a change, so a binary search over
// prefix lengths finds the record without a second ledger.
static const char *replay_fault(aii_ledger_t *l, const why_t *w, size_t *at) {
    const uint8_t *rest = w->recs + w->done * AII_LEDGER_REC_SIZE;
    size_t lo = 1, hi = w->n - w->done;  // the prefix of length hi fails
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (aii_ledger_replay(l, rest, mid, NULL) == AII_OK) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *at = w->done + hi - 1;
    const uint8_t *r = rest + (hi - 1) * AII_LEDGER_REC_SIZE;
    if (aii_crc32(0, r, 40) != rec_u32(r + 40)) {
        return "bad crc";
    }
    if (rec_u32(r) != l->cur.seq + hi) {
        return "sequence gap";
    }
    return r[4] == AII_OP_SEAL ? "seal does not match" : "record does not apply";
}

static MP_NORETURN void raise_violation(const aii_ledger_violation_t *v) {
    mp_obj_t args[5] = {
        MP_OBJ_NULL,
        MP_OBJ_NEW_SMALL_INT(v->qty),
        new_i128(&v->expected),
        new_i128(&v->actual),
        new_i128(&v->delta),
    };
    vstr_t vs;
    mp_print_t pr;
    vstr_init_print(&vs, 48, &pr);
    mp_printf(&pr, "quantity %d: actual ", v->qty);
    mp_obj_print_helper(&pr, args[3], PRINT_STR);
    mp_print_str(&pr, " != expected ");
    mp_obj_print_helper(&pr, args[2], PRINT_STR);
    args[0] = mp_obj_new_str_from_vstr(&vs);
    nlr_raise(mp_obj_new_exception_args(&mp_type_BalanceError, 5, args));
}

// Ledger and fixed-point status codes become exceptions here, once (docs/ledger.md section 4).
static void lcheck(aii_ledger_obj_t *self, aii_status_t st, const why_t *w) {
    if (st == AII_OK) {
        return;
    }
    aii_ledger_t *l = self ? &self->l : NULL;
    const mp_obj_type_t *type = &mp_type_ValueError;
    mp_rom_error_text_t msg;
    switch (st) {
        case AII_ERR_ARG:
            if (w->what == W_PARSE) {
                msg = MP_ERROR_TEXT("bad number");
            } else if (w->what == W_DIV) {
                msg = MP_ERROR_TEXT("division by zero");
            } else if ((w->what == W_QTY || w->what == W_OPEN) && !name_ok(w->name, w->len)) {
                msg = MP_ERROR_TEXT("bad name");
            } else if (w->what == W_QTY) {
                msg = w->bits ? MP_ERROR_TEXT("bits out of range")
                    : MP_ERROR_TEXT("digits out of range");
            } else if (w->what == W_OPEN) {
                msg = MP_ERROR_TEXT("initial must be >= 0");
            } else if (w->amount <= 0) {
                msg = MP_ERROR_TEXT("amount must be > 0");
            } else if (w->what == W_TRANSFER && w->a == w->b) {
                msg = MP_ERROR_TEXT("same account");
            } else {
                msg = MP_ERROR_TEXT("wrong quantity");
            }
            break;
        case AII_ERR_NOT_FOUND:
            if (w->what == W_TXID) {
                msg = MP_ERROR_TEXT("no such hold");
            } else if (w->what == W_QTYID || w->what == W_OPEN ||
                (w->what >= W_TRANSFER && w->what <= W_HOLD && w->a >= 0 &&
                 w->a < l->cur.n_account &&
                 (w->what != W_TRANSFER || (w->b >= 0 && w->b < l->cur.n_account)))) {
                // The core checks the quantity before it looks the accounts up: when they
                // exist, the quantity is what it did not find.
                msg = MP_ERROR_TEXT("no such quantity");
            } else {
                msg = MP_ERROR_TEXT("no such account");
            }
            break;
        case AII_ERR_EXISTS:
            msg = w->what == W_HOLD ? MP_ERROR_TEXT("txid in use") : MP_ERROR_TEXT("name in use");
            break;
        case AII_ERR_FULL:
            type = &mp_type_RuntimeError;
            // The core refuses before it changes anything, so the state still shows which
            // limit was hit.
            if (l->r_pend >= AII_LEDGER_JOURNAL - 1) {
                msg = MP_ERROR_TEXT("transaction too long");
            } else if (l->cur.seq >= UINT32_MAX - 1) {
                msg = MP_ERROR_TEXT("journal sequence exhausted");
            } else if (w->what == W_QTY) {
                msg = MP_ERROR_TEXT("quantity table full");
            } else if (w->what == W_OPEN) {
                msg = MP_ERROR_TEXT("account table full");
            } else {
                msg = MP_ERROR_TEXT("hold table full");
            }
            break;
        case AII_ERR_STATE:
            type = &mp_type_RuntimeError;
            msg = l->in_tx ? MP_ERROR_TEXT("transaction open") : MP_ERROR_TEXT("no transaction");
            break;
        case AII_ERR_OVERFLOW:
            type = &mp_type_OverflowError;
            msg = w->what == W_SUM ? MP_ERROR_TEXT("sum does not fit int64")
                : w->what <= W_DIV ? MP_ERROR_TEXT("result out of range")
                : MP_ERROR_TEXT("balance would overflow");
            break;
        case AII_ERR_INSUFFICIENT:
            type = &mp_type_InsufficientError;
            msg = MP_ERROR_TEXT("insufficient balance");
            break;
        case AII_ERR_VIOLATION:
            raise_violation(&l->violation);
        case AII_ERR_CORRUPT:
            type = &mp_type_CorruptError;
            if (w->what == W_REPLAY) {
                size_t at;
                const char *why = replay_fault(l, w, &at);
                mp_raise_msg_varg(type, MP_ERROR_TEXT("journal record %u: %s"), (unsigned)at, why);
            }
            msg = w->what == W_RESTORE ? MP_ERROR_TEXT("bad checkpoint")
                : MP_ERROR_TEXT("ledger state corrupt");
            break;
        default:
            mp_raise_msg_varg(&mp_type_RuntimeError, MP_ERROR_TEXT("error %d"), (int)st);
    }
    mp_raise_msg(type, msg);
}

static void lcheck_what(aii_ledger_obj_t *self, aii_status_t st, uint8_t what) {
    why_t w = { .what = what, .a = -1, .b = -1, .qty = -1, .amount = 1 };
    lcheck(self, st, &w);
}

static mp_obj_t ledger_new(const mp_obj_type_t *type) {
    aii_ledger_obj_t *self = mp_obj_malloc(aii_ledger_obj_t, type);
    aii_ledger_init(&self->l);
    return MP_OBJ_FROM_PTR(self);
}

// Ledger()
static mp_obj_t aii_Ledger_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
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
    lcheck_what(self, aii_ledger_restore(&self->l, bi.buf, bi.len), W_RESTORE);
    return o;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_restore_fun_obj, aii_Ledger_restore);
static MP_DEFINE_CONST_STATICMETHOD_OBJ(aii_Ledger_restore_obj,
    MP_ROM_PTR(&aii_Ledger_restore_fun_obj));

// Ledger.add_quantity(name, *, digits=None, bits=None) -> qid
static mp_obj_t aii_Ledger_add_quantity(size_t n_args, const mp_obj_t *pos_args,
    mp_map_t *kw_args) {
    enum { ARG_name, ARG_digits, ARG_bits };
    static const mp_arg_t allowed_args[] = {
        { MP_QSTR_name, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_digits, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_bits, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
    };
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(pos_args[0]);
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all(n_args - 1, pos_args + 1, kw_args, MP_ARRAY_SIZE(allowed_args),
        allowed_args, args);
    mp_obj_t digits = args[ARG_digits].u_obj, bits = args[ARG_bits].u_obj;
    if (digits != mp_const_none && bits != mp_const_none) {
        mp_raise_ValueError(MP_ERROR_TEXT("give only one of digits, bits"));
    }
    why_t w = { .what = W_QTY, .bits = bits != mp_const_none };
    // Only the format byte's range here: the core checks the name, then the format.
    uint8_t fmt = w.bits ? arg_small(bits, 0x7f, MP_QSTR_bits)
        : AII_FX_DECIMAL | (digits == mp_const_none ? 0 : arg_small(digits, 0x7f, MP_QSTR_digits));
    w.name = arg_text(args[ARG_name].u_obj, &w.len, MP_QSTR_name);
    int q = -1;
    lcheck(self, aii_ledger_add_qty(&self->l, w.name, w.len, fmt, &q), &w);
    return MP_OBJ_NEW_SMALL_INT(q);
}
static MP_DEFINE_CONST_FUN_OBJ_KW(aii_Ledger_add_quantity_obj, 1, aii_Ledger_add_quantity);

// Ledger.open(name, quantity, *, initial=0, non_negative=True) -> aid
static mp_obj_t aii_Ledger_open(size_t n_args, const mp_obj_t *pos_args, mp_map_t *kw_args) {
    enum { ARG_name, ARG_quantity, ARG_initial, ARG_non_negative };
    static const mp_arg_t allowed_args[] = {
        { MP_QSTR_name, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_quantity, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
        { MP_QSTR_initial, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_non_negative, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_TRUE} },
    };
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(pos_args[0]);
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all(n_args - 1, pos_args + 1, kw_args, MP_ARRAY_SIZE(allowed_args),
        allowed_args, args);
    why_t w = { .what = W_OPEN };
    w.name = arg_text(args[ARG_name].u_obj, &w.len, MP_QSTR_name);
    int q = arg_id(args[ARG_quantity].u_obj);
    int64_t initial = arg_i64(args[ARG_initial].u_obj, MP_QSTR_initial);
    uint8_t flags = mp_obj_is_true(args[ARG_non_negative].u_obj) ? AII_ACCT_NON_NEGATIVE : 0;
    int a = -1;
    lcheck(self, aii_ledger_open(&self->l, w.name, w.len, q, flags, initial, &a), &w);
    return MP_OBJ_NEW_SMALL_INT(a);
}
static MP_DEFINE_CONST_FUN_OBJ_KW(aii_Ledger_open_obj, 1, aii_Ledger_open);

// Ledger.quantity(name) -> qid
static mp_obj_t aii_Ledger_quantity(mp_obj_t self_in, mp_obj_t name_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    size_t len;
    const char *name = arg_text(name_in, &len, MP_QSTR_name);
    int q = -1;
    lcheck_what(self, aii_ledger_find_qty(&self->l, name, len, &q), W_QTYID);
    return MP_OBJ_NEW_SMALL_INT(q);
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_quantity_obj, aii_Ledger_quantity);

// Ledger.account(name) -> aid
static mp_obj_t aii_Ledger_account(mp_obj_t self_in, mp_obj_t name_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    size_t len;
    const char *name = arg_text(name_in, &len, MP_QSTR_name);
    int a = -1;
    lcheck_what(self, aii_ledger_find_account(&self->l, name, len, &a), W_ACCT);
    return MP_OBJ_NEW_SMALL_INT(a);
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_account_obj, aii_Ledger_account);

// Ledger.format(quantity) -> format byte
static mp_obj_t aii_Ledger_format(mp_obj_t self_in, mp_obj_t q_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    int q = arg_id(q_in);
    if (q < 0 || q >= self->l.cur.n_qty) {
        lcheck_what(self, AII_ERR_NOT_FOUND, W_QTYID);
    }
    return MP_OBJ_NEW_SMALL_INT(self->l.cur.qty[q].fmt);
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_format_obj, aii_Ledger_format);

// The movements share their argument handling: args are (account ids..., quantity, amount).
static void move_args(const mp_obj_t *args, int n_ids, why_t *w) {
    w->what = W_MOVE;
    w->a = arg_id(args[0]);
    w->b = n_ids > 1 ? arg_id(args[1]) : -1;
    w->qty = arg_id(args[n_ids]);
    w->amount = arg_amount(args[n_ids + 1]);
}

// Ledger.transfer(src, dst, quantity, amount)
static mp_obj_t aii_Ledger_transfer(size_t n_args, const mp_obj_t *args) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    why_t w;
    move_args(args + 1, 2, &w);
    w.what = W_TRANSFER;
    lcheck(self, aii_ledger_transfer(&self->l, w.a, w.b, w.qty, w.amount), &w);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_Ledger_transfer_obj, 5, 5, aii_Ledger_transfer);

// Ledger.inflow(account, quantity, amount)
static mp_obj_t aii_Ledger_inflow(size_t n_args, const mp_obj_t *args) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    why_t w;
    move_args(args + 1, 1, &w);
    lcheck(self, aii_ledger_inflow(&self->l, w.a, w.qty, w.amount), &w);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_Ledger_inflow_obj, 4, 4, aii_Ledger_inflow);

// Ledger.outflow(account, quantity, amount)
static mp_obj_t aii_Ledger_outflow(size_t n_args, const mp_obj_t *args) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    why_t w;
    move_args(args + 1, 1, &w);
    lcheck(self, aii_ledger_outflow(&self->l, w.a, w.qty, w.amount), &w);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_Ledger_outflow_obj, 4, 4, aii_Ledger_outflow);

// Ledger.hold(txid, account, quantity, amount)
static mp_obj_t aii_Ledger_hold(size_t n_args, const mp_obj_t *args) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    uint64_t txid = arg_u64(args[1], MP_QSTR_txid);
    why_t w;
    move_args(args + 2, 1, &w);
    w.what = W_HOLD;
    lcheck(self, aii_ledger_hold(&self->l, txid, w.a, w.qty, w.amount), &w);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_Ledger_hold_obj, 5, 5, aii_Ledger_hold);

// Ledger.prepare(txid, account, quantity, amount)
static mp_obj_t aii_Ledger_prepare(size_t n_args, const mp_obj_t *args) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    uint64_t txid = arg_u64(args[1], MP_QSTR_txid);
    why_t w;
    move_args(args + 2, 1, &w);
    w.what = W_HOLD;
    lcheck(self, aii_ledger_prepare(&self->l, txid, w.a, w.qty, w.amount), &w);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_Ledger_prepare_obj, 5, 5, aii_Ledger_prepare);

// Ledger.settle(txid)
static mp_obj_t aii_Ledger_settle(mp_obj_t self_in, mp_obj_t txid) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck_what(self, aii_ledger_settle(&self->l, arg_u64(txid, MP_QSTR_txid)), W_TXID);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_settle_obj, aii_Ledger_settle);

// Ledger.release(txid)
static mp_obj_t aii_Ledger_release(mp_obj_t self_in, mp_obj_t txid) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck_what(self, aii_ledger_release(&self->l, arg_u64(txid, MP_QSTR_txid)), W_TXID);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_release_obj, aii_Ledger_release);

// Ledger.begin()
static mp_obj_t aii_Ledger_begin(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck_what(self, aii_ledger_begin(&self->l), W_TX);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_begin_obj, aii_Ledger_begin);

// Ledger.commit()
static mp_obj_t aii_Ledger_commit(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck_what(self, aii_ledger_commit(&self->l, NULL), W_TX);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_commit_obj, aii_Ledger_commit);

// Ledger.rollback()
static mp_obj_t aii_Ledger_rollback(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck_what(self, aii_ledger_rollback(&self->l), W_TX);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_rollback_obj, aii_Ledger_rollback);

// Ledger.verify()
static mp_obj_t aii_Ledger_verify(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck_what(self, aii_ledger_verify(&self->l, NULL), W_TX);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_verify_obj, aii_Ledger_verify);

// Ledger.balance(account) -> int
static mp_obj_t aii_Ledger_balance(mp_obj_t self_in, mp_obj_t a_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    int a = arg_id(a_in);
    if (a < 0 || a >= self->l.cur.n_account) {
        lcheck_what(self, AII_ERR_NOT_FOUND, W_ACCT);
    }
    return new_i64(self->l.cur.account[a].balance);
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_balance_obj, aii_Ledger_balance);

// Ledger.hold_info(txid) -> (account, amount, kind)
static mp_obj_t aii_Ledger_hold_info(mp_obj_t self_in, mp_obj_t txid) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    aii_ledger_hold_t h;
    lcheck_what(self, aii_ledger_get_hold(&self->l, arg_u64(txid, MP_QSTR_txid), &h), W_TXID);
    mp_obj_t t[3] = {
        MP_OBJ_NEW_SMALL_INT(h.account), new_i64(h.amount), MP_OBJ_NEW_SMALL_INT(h.kind)
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
            new_u64(h->txid), MP_OBJ_NEW_SMALL_INT(h->account), new_i64(h->amount),
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
    lcheck_what(self, aii_ledger_totals(&self->l, arg_id(q_in), &b, &h, &e), W_QTYID);
    mp_obj_t t[3] = { new_i128(&b), new_i128(&h), new_i128(&e) };
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
    aii_ledger_set_time(&self->l, arg_u64(t, MP_QSTR_t));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_set_time_obj, aii_Ledger_set_time);

// Ledger.journal() -> bytes
static mp_obj_t aii_Ledger_journal(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    size_t n = self->l.r_len;
    vstr_t vs;
    vstr_init_len(&vs, n * AII_LEDGER_REC_SIZE);
    for (size_t i = 0; i < n; i++) {
        aii_ledger_journal_pop(&self->l, (uint8_t *)vs.buf + i * AII_LEDGER_REC_SIZE);
    }
    return mp_obj_new_bytes_from_vstr(&vs);
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_journal_obj, aii_Ledger_journal);

// Ledger.seal()
static mp_obj_t aii_Ledger_seal(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    lcheck_what(self, aii_ledger_seal(&self->l), W_TX);
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
    why_t w = { .what = W_REPLAY, .recs = bi.buf, .n = bi.len / AII_LEDGER_REC_SIZE };
    lcheck(self, aii_ledger_replay(&self->l, w.recs, w.n, &w.done), &w);
    return mp_obj_new_int_from_uint(w.done);
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Ledger_replay_obj, aii_Ledger_replay);

// Ledger.checkpoint() -> bytes
static mp_obj_t aii_Ledger_checkpoint(mp_obj_t self_in) {
    aii_ledger_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (self->l.in_tx) {
        // Checked first so that a refused call allocates nothing.
        lcheck_what(self, AII_ERR_STATE, W_TX);
    }
    vstr_t vs;
    vstr_init_len(&vs, AII_LEDGER_CHECKPOINT_MAX);
    size_t len = 0;
    lcheck_what(self, aii_ledger_checkpoint(&self->l, (uint8_t *)vs.buf, vs.len, &len), W_TX);
    vs.len = len;
    return mp_obj_new_bytes_from_vstr(&vs);
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Ledger_checkpoint_obj, aii_Ledger_checkpoint);

static const mp_rom_map_elem_t aii_ledger_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_restore), MP_ROM_PTR(&aii_Ledger_restore_obj) },
    { MP_ROM_QSTR(MP_QSTR_add_quantity), MP_ROM_PTR(&aii_Ledger_add_quantity_obj) },
    { MP_ROM_QSTR(MP_QSTR_open), MP_ROM_PTR(&aii_Ledger_open_obj) },
    { MP_ROM_QSTR(MP_QSTR_quantity), MP_ROM_PTR(&aii_Ledger_quantity_obj) },
    { MP_ROM_QSTR(MP_QSTR_account), MP_ROM_PTR(&aii_Ledger_account_obj) },
    { MP_ROM_QSTR(MP_QSTR_format), MP_ROM_PTR(&aii_Ledger_format_obj) },
    { MP_ROM_QSTR(MP_QSTR_transfer), MP_ROM_PTR(&aii_Ledger_transfer_obj) },
    { MP_ROM_QSTR(MP_QSTR_inflow), MP_ROM_PTR(&aii_Ledger_inflow_obj) },
    { MP_ROM_QSTR(MP_QSTR_outflow), MP_ROM_PTR(&aii_Ledger_outflow_obj) },
    { MP_ROM_QSTR(MP_QSTR_hold), MP_ROM_PTR(&aii_Ledger_hold_obj) },
    { MP_ROM_QSTR(MP_QSTR_prepare), MP_ROM_PTR(&aii_Ledger_prepare_obj) },
    { MP_ROM_QSTR(MP_QSTR_settle), MP_ROM_PTR(&aii_Ledger_settle_obj) },
    { MP_ROM_QSTR(MP_QSTR_release), MP_ROM_PTR(&aii_Ledger_release_obj) },
    { MP_ROM_QSTR(MP_QSTR_begin), MP_ROM_PTR(&aii_Ledger_begin_obj) },
    { MP_ROM_QSTR(MP_QSTR_commit), MP_ROM_PTR(&aii_Ledger_commit_obj) },
    { MP_ROM_QSTR(MP_QSTR_rollback), MP_ROM_PTR(&aii_Ledger_rollback_obj) },
    { MP_ROM_QSTR(MP_QSTR_verify), MP_ROM_PTR(&aii_Ledger_verify_obj) },
    { MP_ROM_QSTR(MP_QSTR_balance), MP_ROM_PTR(&aii_Ledger_balance_obj) },
    { MP_ROM_QSTR(MP_QSTR_hold_info), MP_ROM_PTR(&aii_Ledger_hold_info_obj) },
    { MP_ROM_QSTR(MP_QSTR_holds), MP_ROM_PTR(&aii_Ledger_holds_obj) },
    { MP_ROM_QSTR(MP_QSTR_totals), MP_ROM_PTR(&aii_Ledger_totals_obj) },
    { MP_ROM_QSTR(MP_QSTR_digest), MP_ROM_PTR(&aii_Ledger_digest_obj) },
    { MP_ROM_QSTR(MP_QSTR_info), MP_ROM_PTR(&aii_Ledger_info_obj) },
    { MP_ROM_QSTR(MP_QSTR_set_time), MP_ROM_PTR(&aii_Ledger_set_time_obj) },
    { MP_ROM_QSTR(MP_QSTR_journal), MP_ROM_PTR(&aii_Ledger_journal_obj) },
    { MP_ROM_QSTR(MP_QSTR_seal), MP_ROM_PTR(&aii_Ledger_seal_obj) },
    { MP_ROM_QSTR(MP_QSTR_replay), MP_ROM_PTR(&aii_Ledger_replay_obj) },
    { MP_ROM_QSTR(MP_QSTR_checkpoint), MP_ROM_PTR(&aii_Ledger_checkpoint_obj) },
};
static MP_DEFINE_CONST_DICT(aii_ledger_locals_dict, aii_ledger_locals_dict_table);

MP_DEFINE_CONST_OBJ_TYPE(
    aii_type_Ledger,
    MP_QSTR_Ledger,
    MP_TYPE_FLAG_NONE,
    make_new, aii_Ledger_make_new,
    locals_dict, &aii_ledger_locals_dict
    );

// ---------------------------------------------------------------------------------------------
// Fixed point and exact sums (module-level functions).

// fx_parse(s, fmt) -> int
static mp_obj_t aii_mod_fx_parse(mp_obj_t s_in, mp_obj_t fmt_in) {
    size_t len;
    const char *s = arg_text(s_in, &len, MP_QSTR_s);
    uint8_t fmt = arg_fmt(fmt_in);
    int64_t v = 0;
    lcheck_what(NULL, aii_fx_parse(s, len, fmt, &v), W_PARSE);
    return new_i64(v);
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_mod_fx_parse_obj, aii_mod_fx_parse);

// fx_format(v, fmt) -> str
static mp_obj_t aii_mod_fx_format(mp_obj_t v_in, mp_obj_t fmt_in) {
    int64_t v = arg_i64(v_in, MP_QSTR_v);
    uint8_t fmt = arg_fmt(fmt_in);
    char buf[AII_FX_STR_MAX];
    size_t len = 0;
    lcheck_what(NULL, aii_fx_format(v, fmt, buf, sizeof(buf), &len), W_FX);
    return mp_obj_new_str(buf, len);
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_mod_fx_format_obj, aii_mod_fx_format);

// fx_mul(a, b, fmt) -> int
static mp_obj_t aii_mod_fx_mul(mp_obj_t a_in, mp_obj_t b_in, mp_obj_t fmt_in) {
    int64_t a = arg_i64(a_in, MP_QSTR_a), b = arg_i64(b_in, MP_QSTR_b), v = 0;
    lcheck_what(NULL, aii_fx_mul(a, b, arg_fmt(fmt_in), &v), W_FX);
    return new_i64(v);
}
static MP_DEFINE_CONST_FUN_OBJ_3(aii_mod_fx_mul_obj, aii_mod_fx_mul);

// fx_div(a, b, fmt) -> int
static mp_obj_t aii_mod_fx_div(mp_obj_t a_in, mp_obj_t b_in, mp_obj_t fmt_in) {
    int64_t a = arg_i64(a_in, MP_QSTR_a), b = arg_i64(b_in, MP_QSTR_b), v = 0;
    lcheck_what(NULL, aii_fx_div(a, b, arg_fmt(fmt_in), &v), W_DIV);
    return new_i64(v);
}
static MP_DEFINE_CONST_FUN_OBJ_3(aii_mod_fx_div_obj, aii_mod_fx_div);

// fx_rescale(v, from_fmt, to_fmt) -> int
static mp_obj_t aii_mod_fx_rescale(mp_obj_t v_in, mp_obj_t from_in, mp_obj_t to_in) {
    int64_t v = arg_i64(v_in, MP_QSTR_v), out = 0;
    uint8_t from = arg_fmt_byte(from_in), to = arg_fmt_byte(to_in);
    fmt_valid(from);
    fmt_valid(to);
    lcheck_what(NULL, aii_fx_rescale(v, from, to, &out), W_FX);
    return new_i64(out);
}
static MP_DEFINE_CONST_FUN_OBJ_3(aii_mod_fx_rescale_obj, aii_mod_fx_rescale);

// fx_muldiv(a, b, d) -> int
static mp_obj_t aii_mod_fx_muldiv(mp_obj_t a_in, mp_obj_t b_in, mp_obj_t d_in) {
    int64_t a = arg_i64(a_in, MP_QSTR_a), b = arg_i64(b_in, MP_QSTR_b);
    int64_t d = arg_i64(d_in, MP_QSTR_d), v = 0;
    lcheck_what(NULL, aii_fx_muldiv(a, b, d, &v), W_DIV);
    return new_i64(v);
}
static MP_DEFINE_CONST_FUN_OBJ_3(aii_mod_fx_muldiv_obj, aii_mod_fx_muldiv);

// Q(bits) -> format byte
static mp_obj_t aii_mod_q(mp_obj_t bits) {
    return MP_OBJ_NEW_SMALL_INT(AII_FX_Q(arg_small(bits, AII_FX_MAX_BITS, MP_QSTR_bits)));
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_mod_q_obj, aii_mod_q);

// DEC(digits) -> format byte
static mp_obj_t aii_mod_dec(mp_obj_t digits) {
    return MP_OBJ_NEW_SMALL_INT(AII_FX_DEC(arg_small(digits, AII_FX_MAX_DIGITS, MP_QSTR_digits)));
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_mod_dec_obj, aii_mod_dec);

// The buffer's signed int32/int64 items, read in place ('l' is 4 bytes on 32-bit ports).
static void sum_buffer(mp_obj_t o, mp_buffer_info_t *bi, unsigned *size) {
    mp_get_buffer_raise(o, bi, MP_BUFFER_READ);
    char t = (char)bi->typecode;
    *size = t == 'i' || t == 'l' || t == 'q' ? (unsigned)mp_binary_get_size('@', t, NULL) : 0;
    if (*size != 4 && *size != 8) {
        mp_raise_TypeError(MP_ERROR_TEXT("buffer items must be int32 or int64"));
    }
}

// check_sum(buffer, expected) -> bool
static mp_obj_t aii_mod_check_sum(mp_obj_t buf_in, mp_obj_t expected_in) {
    mp_buffer_info_t bi;
    unsigned size;
    sum_buffer(buf_in, &bi, &size);
    int64_t expected = arg_i64(expected_in, MP_QSTR_expected);
    aii_status_t st = aii_check_sum(bi.buf, bi.len / size, size, expected, NULL);
    if (st == AII_ERR_VIOLATION) {
        return mp_const_false;  // a different sum is an answer here, not an error
    }
    lcheck_what(NULL, st, W_SUM);
    return mp_const_true;
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_mod_check_sum_obj, aii_mod_check_sum);

// exact_sum(buffer) -> int
static mp_obj_t aii_mod_exact_sum(mp_obj_t buf_in) {
    mp_buffer_info_t bi;
    unsigned size;
    sum_buffer(buf_in, &bi, &size);
    aii_i128_t total;
    // Only the total is wanted: a mismatch with 0 or a total beyond int64 is no error here.
    aii_check_sum(bi.buf, bi.len / size, size, 0, &total);
    return new_i128(&total);
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_mod_exact_sum_obj, aii_mod_exact_sum);

// ---------------------------------------------------------------------------------------------
// Module.

static const mp_rom_map_elem_t aii_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__aii) },
    { MP_ROM_QSTR(MP_QSTR_Scheduler), MP_ROM_PTR(&aii_type_Scheduler) },
    { MP_ROM_QSTR(MP_QSTR_AdmissionError), MP_ROM_PTR(&mp_type_AdmissionError) },
    { MP_ROM_QSTR(MP_QSTR_CONTINUE), MP_ROM_INT(AII_POLICY_CONTINUE) },
    { MP_ROM_QSTR(MP_QSTR_SKIP), MP_ROM_INT(AII_POLICY_SKIP) },
    { MP_ROM_QSTR(MP_QSTR_DROP), MP_ROM_INT(AII_POLICY_DROP) },
    { MP_ROM_QSTR(MP_QSTR_MISS), MP_ROM_INT(AII_EVENT_MISS) },
    { MP_ROM_QSTR(MP_QSTR_OVERRUN), MP_ROM_INT(AII_EVENT_OVERRUN) },
    { MP_ROM_QSTR(MP_QSTR_DROPPED), MP_ROM_INT(AII_EVENT_DROP) },
    { MP_ROM_QSTR(MP_QSTR_MAX_TASKS), MP_ROM_INT(AII_SCHED_MAX_TASKS) },
    { MP_ROM_QSTR(MP_QSTR_Ledger), MP_ROM_PTR(&aii_type_Ledger) },
    { MP_ROM_QSTR(MP_QSTR_BalanceError), MP_ROM_PTR(&mp_type_BalanceError) },
    { MP_ROM_QSTR(MP_QSTR_InsufficientError), MP_ROM_PTR(&mp_type_InsufficientError) },
    { MP_ROM_QSTR(MP_QSTR_CorruptError), MP_ROM_PTR(&mp_type_CorruptError) },
    { MP_ROM_QSTR(MP_QSTR_fx_parse), MP_ROM_PTR(&aii_mod_fx_parse_obj) },
    { MP_ROM_QSTR(MP_QSTR_fx_format), MP_ROM_PTR(&aii_mod_fx_format_obj) },
    { MP_ROM_QSTR(MP_QSTR_fx_mul), MP_ROM_PTR(&aii_mod_fx_mul_obj) },
    { MP_ROM_QSTR(MP_QSTR_fx_div), MP_ROM_PTR(&aii_mod_fx_div_obj) },
    { MP_ROM_QSTR(MP_QSTR_fx_rescale), MP_ROM_PTR(&aii_mod_fx_rescale_obj) },
    { MP_ROM_QSTR(MP_QSTR_fx_muldiv), MP_ROM_PTR(&aii_mod_fx_muldiv_obj) },
    { MP_ROM_QSTR(MP_QSTR_Q), MP_ROM_PTR(&aii_mod_q_obj) },
    { MP_ROM_QSTR(MP_QSTR_DEC), MP_ROM_PTR(&aii_mod_dec_obj) },
    { MP_ROM_QSTR(MP_QSTR_check_sum), MP_ROM_PTR(&aii_mod_check_sum_obj) },
    { MP_ROM_QSTR(MP_QSTR_exact_sum), MP_ROM_PTR(&aii_mod_exact_sum_obj) },
    { MP_ROM_QSTR(MP_QSTR_HOLD), MP_ROM_INT(AII_HOLD_DEBIT) },
    { MP_ROM_QSTR(MP_QSTR_CREDIT), MP_ROM_INT(AII_HOLD_CREDIT) },
    { MP_ROM_QSTR(MP_QSTR_MAX_QTY), MP_ROM_INT(AII_LEDGER_MAX_QTY) },
    { MP_ROM_QSTR(MP_QSTR_MAX_ACCOUNTS), MP_ROM_INT(AII_LEDGER_MAX_ACCOUNTS) },
    { MP_ROM_QSTR(MP_QSTR_MAX_HOLDS), MP_ROM_INT(AII_LEDGER_MAX_HOLDS) },
    { MP_ROM_QSTR(MP_QSTR_JOURNAL), MP_ROM_INT(AII_LEDGER_JOURNAL) },
    { MP_ROM_QSTR(MP_QSTR_SEGMENT), MP_ROM_INT(AII_LEDGER_SEGMENT) },
    { MP_ROM_QSTR(MP_QSTR_RECORD_SIZE), MP_ROM_INT(AII_LEDGER_REC_SIZE) },
    { MP_ROM_QSTR(MP_QSTR_DIGEST_SIZE), MP_ROM_INT(AII_LEDGER_DIGEST_LEN) },
};
static MP_DEFINE_CONST_DICT(aii_module_globals, aii_module_globals_table);

const mp_obj_module_t aii_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&aii_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR__aii, aii_user_cmodule);
