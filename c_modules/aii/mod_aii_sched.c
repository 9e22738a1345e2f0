// SPDX-License-Identifier: MIT
// _aii.Scheduler (docs/scheduler.md): the task set and the run loop; its reports are in
// mod_aii_sched_info.c. The loop around the core - extend the clock, dispatch, then do the step
// the core decides (run the job and complete it, collect garbage, or wait), report events, feed
// the watchdog - is host/aii_host/core/sched.py's call for call, so a test with an injected clock
// prints the same on the device and on CPython.
#include <string.h>

#include "mod_aii_sched.h"

AII_DEFINE_EXCEPTION(AdmissionError, ValueError)

// ---------------------------------------------------------------------------------------------
// Time.

static uint64_t sched_raw_now(aii_scheduler_obj_t *self) {
    uint64_t raw = self->clock == mp_const_none ? aii_mp_ticks_us()
        : aii_arg_low64(aii_call0(self->clock));
    return raw & self->clk.mask;
}

aii_time_t aii_sched_now(aii_scheduler_obj_t *self) {
    // A counter that steps back a little (qemu's ticks_us does) is held by the core.
    return aii_clock_extend(&self->clk, sched_raw_now(self));
}

// An absolute time in the clock's tick domain, as extended time.
static aii_time_t sched_raw(aii_scheduler_obj_t *self, mp_obj_t o, qstr name) {
    aii_int_t r;
    aii_mp_int(o, &r);
    if (r.sign < 0 || r.over || r.mag > self->clk.mask) {
        aii_raise_q(&mp_type_ValueError, AII_T_OUT_OF_RANGE, name);
    }
    return aii_clock_from_raw(&self->clk, r.mag);
}

// ---------------------------------------------------------------------------------------------
// Running jobs.

static void sched_drain(aii_scheduler_obj_t *self) {
    aii_event_t ev;
    while (aii_sched_event_pop(&self->s, &ev)) {
        if (!aii_sched_task_used(&self->s, ev.task)) {
            self->fn[ev.task] = MP_OBJ_NULL;  // a dropped one-shot
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
        // A method call that allocates no bound method.
        mp_obj_t dest[2];
        mp_load_method(self->wdt, MP_QSTR_feed, dest);
        mp_call_function_n_kw(dest[0], dest[1] != MP_OBJ_NULL, 0, &dest[1]);
    }
}

static void sched_finish(aii_scheduler_obj_t *self, int tid) {
    // Not found: the job removed its own task; nothing is left to account to.
    aii_sched_complete(&self->s, &self->job, aii_sched_now(self));
    if (!aii_sched_task_used(&self->s, tid)) {
        self->fn[tid] = MP_OBJ_NULL;  // a one-shot has run
    }
    sched_drain(self);
}

static int sched_run_job(aii_scheduler_obj_t *self) {
    int tid = self->job.task;
    // Recorded even when the job raised, so stats stay consistent and run() can resume.
    AII_TRY_FINALLY(aii_call0(self->fn[tid]), sched_finish(self, tid));
    return tid;
}

int aii_sched_add_checked(aii_scheduler_obj_t *self, const aii_task_params_t *p, aii_time_t now) {
    int tid = -1;
    aii_status_t st = aii_sched_add(&self->s, p, now, &tid, &self->rta);
    if (st == AII_ERR_UNSCHEDULABLE) {
        char task[AII_I128_STR_MAX], wcrt[AII_I128_STR_MAX], deadline[AII_I128_STR_MAX];
        const aii_rta_result_t *rta = &self->rta;
        // The analysis' reason, with the task and its two numbers; a response of UINT32_MAX:
        // the busy period did not converge.
        bool inf = rta->why == AII_T_ADMISSION && rta->failed_wcrt_us == UINT32_MAX;
        const char *args3[3] = {
            aii_fmt_int(task, rta->failed_task),
            inf ? "inf" : aii_fmt_int(wcrt, rta->failed_wcrt_us),
            aii_fmt_int(deadline, rta->failed_deadline_us),
        };
        aii_raise_args(AII_EXC(AdmissionError), rta->why, args3, 3);
    }
    aii_check(st, AII_T_NONE);
    return tid;
}

void aii_sched_enter(aii_scheduler_obj_t *self) {
    // One job record is reused, and a job nested in a job has no meaning without preemption.
    if (self->running) {
        aii_raise(&mp_type_RuntimeError, AII_T_ALREADY_RUNNING);
    }
    self->running = true;
}

// Not inlined, for AII_TRY_FINALLY's nlr handler in run() and run_once(): the compiler does not
// know that nlr_push() returns twice, and inlined it took the `false` from a stack slot that
// held zero before nlr_push() and that the loop had reused since, so `running` stayed set after
// a job raised (Cortex-M0 at -Os: the MICROBIT image, the RPI_PICO build; sched_raise.py).
MP_NOINLINE void aii_sched_leave(aii_scheduler_obj_t *self) {
    self->running = false;
}

// The loop of run(): `end` is AII_TIME_NEVER for a run until stop().
static mp_uint_t sched_loop(aii_scheduler_obj_t *self, bool timed, uint64_t duration) {
    mp_uint_t n = 0;
    bool real = self->sleep == mp_const_none;
    uint64_t max_wait = aii_clock_max_wait(&self->clk);
    self->stop = false;
    aii_time_t end = timed ? aii_sched_run_end(aii_sched_now(self), duration) : AII_TIME_NEVER;
    while (!self->stop) {
        aii_time_t now = aii_sched_now(self);
        if (now >= end) {
            break;
        }
        aii_status_t st = aii_sched_dispatch(&self->s, now, &self->job);
        aii_check(st, AII_T_NONE);
        uint64_t wait_us;
        aii_step_t step = aii_sched_step(&self->s, st, &self->job, now, end, max_wait, real,
            &wait_us);
        if (step == AII_STEP_RUN) {
            n++;
            sched_run_job(self);
            sched_feed(self);
            continue;
        }
        sched_drain(self);  // dropped jobs are reported by dispatch
        if (step == AII_STEP_COLLECT) {
            aii_time_t t0 = aii_sched_now(self);
            aii_mp_collect();
            aii_sched_gc_done(&self->s, t0, aii_sched_now(self));
        } else if (wait_us && !real) {
            aii_call1(self->sleep, aii_mp_new_u64(wait_us));
        } else if (wait_us) {
            aii_mp_wait(wait_us, &self->stop, &self->s.trig_epoch);
        }
        // After the wait, not before: time spent between deciding a wait and starting it would
        // make the wake late.
        sched_feed(self);
    }
    return n;
}

// ---------------------------------------------------------------------------------------------
// Scheduler.

// Scheduler(*, overhead_us=0, gc_idle_us=0, jitter_us=None, isr_budget_us=0, isr_min_gap_us=0,
//           on_miss=None, wdt=None, clock=None, tick_period=None, sleep=None)
static mp_obj_t aii_scheduler_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
    const mp_obj_t *all_args) {
    enum { ARG_overhead_us, ARG_gc_idle_us, ARG_jitter_us, ARG_isr_budget_us, ARG_isr_min_gap_us,
           ARG_on_miss, ARG_wdt, ARG_clock, ARG_tick_period, ARG_sleep };
    // On the stack, not static: a native .mpy knows its QSTRs only at run time.
    const mp_arg_t allowed_args[] = {
        { MP_QSTR_overhead_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_gc_idle_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_jitter_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_isr_budget_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_isr_min_gap_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_on_miss, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_wdt, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_clock, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_tick_period, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_sleep, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none} },
    };
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all_kw_array(n_args, n_kw, all_args, MP_ARRAY_SIZE(allowed_args), allowed_args,
        args);

    // overhead_us="auto": measured by calibrate() once the scheduler exists.
    mp_obj_t over = args[ARG_overhead_us].u_obj;
    bool auto_over = false;
    if (mp_obj_is_str(over)) {
        size_t len;
        const char *t = aii_arg_text(over, &len, MP_QSTR_overhead_us);
        auto_over = len == 4 && memcmp(t, "auto", 4) == 0;
    }
    uint32_t overhead_us = auto_over ? 0 : aii_arg_u32(over, MP_QSTR_overhead_us);
    uint32_t gc_idle_us = aii_arg_u32(args[ARG_gc_idle_us].u_obj, MP_QSTR_gc_idle_us);
    mp_obj_t jitter = args[ARG_jitter_us].u_obj;
    uint32_t jitter_us = jitter == mp_const_none ? 0 : aii_arg_u32(jitter, MP_QSTR_jitter_us);
    uint32_t isr_budget_us = aii_arg_u32(args[ARG_isr_budget_us].u_obj, MP_QSTR_isr_budget_us);
    uint32_t isr_min_gap_us = aii_arg_u32(args[ARG_isr_min_gap_us].u_obj, MP_QSTR_isr_min_gap_us);
    aii_text_t why = aii_sched_costs_why(isr_budget_us, isr_min_gap_us);
    if (why != AII_T_NONE) {
        aii_raise(&mp_type_ValueError, why);
    }
    mp_obj_t on_miss = aii_arg_callable(args[ARG_on_miss].u_obj, MP_QSTR_on_miss, true);
    mp_obj_t wdt = args[ARG_wdt].u_obj;
    if (wdt != mp_const_none) {
        mp_obj_t dest[2];
        mp_load_method_maybe(wdt, MP_QSTR_feed, dest);
        if (dest[0] == MP_OBJ_NULL || !aii_mp_callable(dest[0])) {
            aii_raise(&mp_type_TypeError, AII_T_NO_FEED);
        }
    }
    mp_obj_t clock = aii_arg_callable(args[ARG_clock].u_obj, MP_QSTR_clock, true);
    mp_obj_t sleep = aii_arg_callable(args[ARG_sleep].u_obj, MP_QSTR_sleep, true);
    uint64_t mask = aii_mp_ticks_mask();
    mp_obj_t period = args[ARG_tick_period].u_obj;
    if (period != mp_const_none) {
        aii_int_t r;
        aii_mp_int(period, &r);
        bool ok;
        if (r.over) {
            ok = aii_mp_int_is_2_64(period);
            mask = UINT64_MAX;
        } else {
            ok = r.sign > 0 && r.mag >= 2 && (r.mag & (r.mag - 1)) == 0;
            mask = r.mag - 1;
        }
        if (!ok) {
            aii_raise(&mp_type_ValueError, AII_T_TICK_PERIOD);
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
    self->stop = false;
    self->running = false;
    memset(&self->calib, 0, sizeof(self->calib));
    aii_sched_init(&self->s, overhead_us);
    aii_sched_set_tick_mask(&self->s, mask);
    self->s.gc_idle_us = gc_idle_us;
    // An injected sleep() waits exactly; the real clock's idle wait polls for triggers.
    self->s.jitter_us = jitter != mp_const_none ? jitter_us
        : sleep != mp_const_none ? 0 : AII_SCHED_POLL_US;
    self->s.isr_budget_us = isr_budget_us;
    self->s.isr_min_gap_us = isr_min_gap_us;
    aii_clock_init(&self->clk, mask);
    memset(&self->job, 0, sizeof(self->job));
    aii_sched_now(self);
    if (auto_over) {
        aii_call1(MP_OBJ_FROM_PTR(&aii_scheduler_calibrate_obj), MP_OBJ_FROM_PTR(self));
    }
    return MP_OBJ_FROM_PTR(self);
}

// Scheduler.add(fn, *, budget_us, period_us=0, min_gap_us=0, deadline_us=0, offset_us=0,
//               deadline_at=None, release_at=None, priority=None, policy=CONTINUE,
//               critical=False) -> tid
static mp_obj_t aii_scheduler_add(size_t n_args, const mp_obj_t *pos_args, mp_map_t *kw_args) {
    enum { ARG_fn, ARG_budget_us, ARG_period_us, ARG_min_gap_us, ARG_deadline_us, ARG_offset_us,
           ARG_deadline_at, ARG_release_at, ARG_priority, ARG_policy, ARG_critical };
    const mp_arg_t allowed_args[] = {
        { MP_QSTR_fn, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_budget_us, MP_ARG_REQUIRED | MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_period_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_min_gap_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_deadline_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_offset_us, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_deadline_at, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_release_at, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_priority, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_policy, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(AII_POLICY_CONTINUE)} },
        { MP_QSTR_critical, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_obj = mp_const_false} },
    };
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(pos_args[0]);
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all(n_args - 1, pos_args + 1, kw_args, MP_ARRAY_SIZE(allowed_args),
        allowed_args, args);

    // Checks in the host's order, so a call with several faults fails the same way; the range
    // and consistency checks are the core's (aii_sched_param_why).
    mp_obj_t fn = aii_arg_callable(args[ARG_fn].u_obj, MP_QSTR_fn, false);
    uint32_t budget_us = aii_arg_u32(args[ARG_budget_us].u_obj, MP_QSTR_budget_us);
    aii_int_t r;
    aii_mp_int(args[ARG_period_us].u_obj, &r);
    bool period_neg = r.sign < 0;
    aii_mp_int(args[ARG_min_gap_us].u_obj, &r);
    // 0 means "not given"; a negative value gets the core's text for a missing period.
    if (period_neg) {
        aii_raise(&mp_type_ValueError, AII_T_PERIOD_ZERO);
    }
    if (r.sign < 0) {
        aii_raise(&mp_type_ValueError, AII_T_MIN_GAP_ZERO);
    }
    uint32_t period_us = aii_arg_u32(args[ARG_period_us].u_obj, MP_QSTR_period_us);
    uint32_t min_gap_us = aii_arg_u32(args[ARG_min_gap_us].u_obj, MP_QSTR_min_gap_us);
    uint32_t deadline_us = aii_arg_u32(args[ARG_deadline_us].u_obj, MP_QSTR_deadline_us);
    uint32_t offset_us = aii_arg_u32(args[ARG_offset_us].u_obj, MP_QSTR_offset_us);
    aii_mp_int(args[ARG_policy].u_obj, &r);
    // An unknown policy is passed on as 255 so that the core names it.
    uint32_t policy = r.sign >= 0 && !r.over && r.mag <= 255 ? (uint32_t)r.mag : 255;
    mp_obj_t prio_in = args[ARG_priority].u_obj;
    int32_t priority = AII_PRIO_AUTO;
    if (prio_in != mp_const_none) {
        aii_mp_int(prio_in, &r);
        // AII_PRIO_AUTO (INT32_MIN) itself is reserved.
        if (r.over || (r.sign < 0 && r.mag >= (uint64_t)1 << 31)
            || (r.sign > 0 && r.mag > INT32_MAX)) {
            aii_raise_q(&mp_type_ValueError, AII_T_OUT_OF_RANGE, MP_QSTR_priority);
        }
        priority = r.sign < 0 ? -(int32_t)r.mag : (int32_t)r.mag;
    }
    bool oneshot = args[ARG_deadline_at].u_obj != mp_const_none;
    if ((period_us > 0) + (min_gap_us > 0) + oneshot > 1) {
        aii_raise(&mp_type_ValueError, AII_T_ONE_KIND);
    }

    aii_task_params_t p;
    memset(&p, 0, sizeof(p));
    p.policy = (aii_policy_t)policy;
    p.budget_us = budget_us;
    p.deadline_us = deadline_us;
    p.offset_us = offset_us;
    p.priority = priority;
    p.critical = mp_obj_is_true(args[ARG_critical].u_obj);
    aii_time_t now = aii_sched_now(self);
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
    aii_text_t why = aii_sched_param_why(&self->s, &p);
    if (why != AII_T_NONE) {
        aii_raise(&mp_type_ValueError, why);
    }
    int tid = aii_sched_add_checked(self, &p, now);
    self->fn[tid] = fn;
    return MP_OBJ_NEW_SMALL_INT(tid);
}
static MP_DEFINE_CONST_FUN_OBJ_KW(aii_scheduler_add_obj, 1, aii_scheduler_add);

// Scheduler.remove(tid)
static mp_obj_t aii_scheduler_remove(mp_obj_t self_in, mp_obj_t tid_in) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(self_in);
    int tid = aii_arg_tid(tid_in);
    aii_check(aii_sched_remove(&self->s, tid), AII_T_NONE);
    self->fn[tid] = MP_OBJ_NULL;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_scheduler_remove_obj, aii_scheduler_remove);

// Scheduler.trigger(tid)
// Safe from a hard interrupt handler: nothing here allocates unless the call is wrong.
static mp_obj_t aii_scheduler_trigger(mp_obj_t self_in, mp_obj_t tid_in) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(self_in);
    // The trigger's own time: its job's deadline and misses count from here.
    int tid = aii_arg_tid(tid_in);
    aii_status_t st = aii_sched_trigger(&self->s, tid, sched_raw_now(self));
    aii_check(st, st == AII_ERR_STATE ? AII_T_NOT_SPORADIC : AII_T_NONE);
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
        aii_mp_int(args[1], &r);
        if (r.sign < 0) {
            aii_raise_q(&mp_type_ValueError, AII_T_NOT_NEGATIVE, MP_QSTR_duration_us);
        }
        duration = r.mag;
    }
    aii_sched_enter(self);
    mp_uint_t n = 0;
    AII_TRY_FINALLY(n = sched_loop(self, timed, duration), aii_sched_leave(self));
    return mp_obj_new_int_from_uint(n);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_scheduler_run_obj, 1, 2, aii_scheduler_run);

mp_obj_t aii_sched_once(aii_scheduler_obj_t *self) {
    aii_status_t st = aii_sched_dispatch(&self->s, aii_sched_now(self), &self->job);
    aii_check(st, AII_T_NONE);
    mp_obj_t ret = mp_const_none;
    if (st != AII_OK) {
        sched_drain(self);
    } else {
        ret = MP_OBJ_NEW_SMALL_INT(sched_run_job(self));
    }
    sched_feed(self);
    return ret;
}

// Scheduler.run_once() -> tid or None
static mp_obj_t aii_scheduler_run_once(mp_obj_t self_in) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(self_in);
    aii_sched_enter(self);
    mp_obj_t ret = mp_const_none;
    AII_TRY_FINALLY(ret = aii_sched_once(self), aii_sched_leave(self));
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

#define AII_SCHEDULER_METHODS(X) \
    X(add, aii_scheduler_add_obj) \
    X(remove, aii_scheduler_remove_obj) \
    X(trigger, aii_scheduler_trigger_obj) \
    X(run, aii_scheduler_run_obj) \
    X(run_once, aii_scheduler_run_once_obj) \
    X(stop, aii_scheduler_stop_obj) \
    X(stats, aii_scheduler_stats_obj) \
    X(admit, aii_scheduler_admit_obj) \
    X(analysis, aii_scheduler_analysis_obj) \
    X(info, aii_scheduler_info_obj) \
    X(costs, aii_scheduler_costs_obj) \
    X(calibrate, aii_scheduler_calibrate_obj) \
    X(trace, aii_scheduler_trace_obj) \
    X(trace_lost, aii_scheduler_trace_lost_obj)

AII_DEFINE_TYPE(aii_type_Scheduler, Scheduler, aii_scheduler_make_new, AII_SCHEDULER_METHODS);
