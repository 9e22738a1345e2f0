// SPDX-License-Identifier: MIT
// _aii: the MicroPython binding of the AII core (docs/scheduler.md). The loop around the core
// (extend the clock, dispatch, run the job, complete it, report events, feed the watchdog,
// collect in idle gaps, wait) mirrors host/aii_host/sched.py call for call, so a test with an
// injected clock prints the same on the device and on CPython.
#include <string.h>

#include "py/gc.h"
#include "py/mphal.h"
#include "py/objexcept.h"
#include "py/objint.h"
#include "py/runtime.h"
#include "py/smallint.h"

#include "core/aii_sched.h"

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
        self->running = false;
        nlr_jump(nlr.ret_val);
    }
    self->running = false;
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
        self->running = false;
        nlr_jump(nlr.ret_val);
    }
    self->running = false;
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
};
static MP_DEFINE_CONST_DICT(aii_module_globals, aii_module_globals_table);

const mp_obj_module_t aii_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&aii_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR__aii, aii_user_cmodule);
