// SPDX-License-Identifier: MIT
// _aii.Scheduler's reports (docs/scheduler.md): statistics, the analysis, the runtime costs, the
// calibration of overhead_us and the timeline. The task set and the run loop are in
// mod_aii_sched.c.
#include <string.h>

#include "mod_aii_sched.h"

static mp_obj_t u32(uint32_t v) {
    return mp_obj_new_int_from_uint(v);
}

static mp_obj_t stats_tuple(aii_scheduler_obj_t *self, int tid) {
    aii_task_stats_t st;
    aii_check(aii_sched_stats(&self->s, tid, &st), AII_T_NONE);
    uint32_t jobs = st.jobs;
    mp_obj_t t[10] = {
        u32(jobs),
        u32(st.misses),
        u32(st.overruns),
        u32(st.dropped),
        u32(st.skipped),
        u32(jobs ? st.resp_min_us : 0),
        u32(st.resp_max_us),
        aii_mp_new_u64(jobs ? st.resp_sum_us / jobs : 0),
        u32(st.latency_max_us),
        u32(st.exec_max_us),
    };
    return mp_obj_new_tuple(10, t);
}

// Scheduler.stats([tid]) -> tuple, or {tid: tuple}
static mp_obj_t aii_scheduler_stats(size_t n_args, const mp_obj_t *args) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    if (n_args > 1 && args[1] != mp_const_none) {
        return stats_tuple(self, aii_arg_tid(args[1]));
    }
    mp_obj_t d = mp_obj_new_dict(0);
    for (int i = 0; i < AII_SCHED_MAX_TASKS; i++) {
        if (aii_sched_task_used(&self->s, i)) {
            mp_obj_dict_store(d, MP_OBJ_NEW_SMALL_INT(i), stats_tuple(self, i));
        }
    }
    return d;
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_scheduler_stats_obj, 1, 2, aii_scheduler_stats);

// The analysis of the set in force as a list of tuples of the first n fields of
// (tid, level, wcrt_us, deadline_us, blocking_us, jobs, blocker, jitter_us).
static mp_obj_t analysis_list(mp_obj_t self_in, size_t n) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(self_in);
    aii_check(aii_sched_admit(&self->s, &self->rta), AII_T_NONE);
    mp_obj_t list = mp_obj_new_list(0, NULL);
    for (int i = 0; i < self->rta.n; i++) {
        const aii_rta_entry_t *e = &self->rta.entry[i];
        mp_obj_t t[8] = {
            MP_OBJ_NEW_SMALL_INT(e->task),
            MP_OBJ_NEW_SMALL_INT(e->level),
            u32(e->wcrt_us),
            u32(e->deadline_us),
            u32(e->blocking_us),
            u32(e->jobs),
            MP_OBJ_NEW_SMALL_INT(e->blocker),
            u32(e->jitter_us),
        };
        mp_obj_list_append(list, mp_obj_new_tuple(n, t));
    }
    return list;
}

// Scheduler.admit() -> [(tid, level, wcrt_us, deadline_us, blocking_us, jobs), ...]
static mp_obj_t aii_scheduler_admit(mp_obj_t self_in) {
    return analysis_list(self_in, 6);
}
MP_DEFINE_CONST_FUN_OBJ_1(aii_scheduler_admit_obj, aii_scheduler_admit);

// Scheduler.analysis() -> [(tid, level, wcrt_us, deadline_us, blocking_us, jobs, blocker,
//                          jitter_us), ...]
static mp_obj_t aii_scheduler_analysis(mp_obj_t self_in) {
    return analysis_list(self_in, 8);
}
MP_DEFINE_CONST_FUN_OBJ_1(aii_scheduler_analysis_obj, aii_scheduler_analysis);

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
        case AII_METHOD_INSERTED:
            method = MP_QSTR_inserted;
            break;
    }
    mp_obj_t t[6] = {
        MP_OBJ_NEW_QSTR(method),
        MP_OBJ_NEW_SMALL_INT(self->s.n_tasks),
        u32(self->s.total_jobs),
        u32(self->s.total_misses),
        u32(self->s.dispatches),
        u32(self->s.gc_runs),
    };
    return mp_obj_new_tuple(6, t);
}
MP_DEFINE_CONST_FUN_OBJ_1(aii_scheduler_info_obj, aii_scheduler_info);

// Scheduler.costs() -> (overhead_us, jitter_us, gc_idle_us, gc_max_us, isr_budget_us,
//                       isr_min_gap_us, busy_us, retiring)
static mp_obj_t aii_scheduler_costs(mp_obj_t self_in) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(self_in);
    const aii_sched_t *s = &self->s;
    mp_obj_t t[8] = {
        u32(s->overhead_us),
        u32(s->jitter_us),
        u32(s->gc_idle_us),
        u32(s->gc_max_us),
        u32(s->isr_budget_us),
        u32(s->isr_min_gap_us),
        u32(s->busy_us),
        MP_OBJ_NEW_SMALL_INT(s->n_levels - s->n_tasks),
    };
    return mp_obj_new_tuple(8, t);
}
MP_DEFINE_CONST_FUN_OBJ_1(aii_scheduler_costs_obj, aii_scheduler_costs);

static mp_obj_t sched_noop(void) {
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(sched_noop_obj, sched_noop);

static void calibration_probes(aii_scheduler_obj_t *self, aii_task_params_t *p, uint64_t far,
    uint32_t *x) {
    for (int i = 0; i < AII_SCHED_CALIB_SAMPLES; i++) {
        aii_time_t now = aii_sched_now(self);
        p->release_at = now;
        p->deadline_at = now + far;
        int tid = aii_sched_add_checked(self, p, now);
        self->fn[tid] = MP_OBJ_FROM_PTR(&sched_noop_obj);
        aii_time_t t0 = aii_sched_now(self);
        aii_sched_once(self);
        uint64_t dt = aii_sched_now(self) - t0;
        x[i] = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
        aii_sched_once(self);  // an idle dispatch: the finished probe leaves the analysis
    }
}

// Scheduler.calibrate() -> (overhead_us, n, min_us, median_us, p99_us, max_us)
// Times run_once() of a no-op one-shot AII_SCHED_CALIB_SAMPLES times on this (empty) scheduler,
// then starts it afresh with overhead_us = what aii_sched_calibration() makes of the samples.
static mp_obj_t aii_scheduler_calibrate(mp_obj_t self_in) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(self_in);
    if (self->s.n_levels || self->running) {
        aii_raise(&mp_type_RuntimeError, AII_T_NOT_ALLOWED);
    }
    uint32_t x[AII_SCHED_CALIB_SAMPLES];
    aii_task_params_t p;
    memset(&p, 0, sizeof(p));
    p.kind = AII_KIND_ONESHOT;
    p.priority = AII_PRIO_AUTO;
    // A deadline the probe meets, within a quarter tick period (as the Python bindings, which
    // give it as a tick count, must), and a budget it keeps: no overrun reaches on_miss.
    uint64_t far = aii_clock_max_wait(&self->clk);
    far = far < 1000000 ? far : 1000000;
    p.budget_us = far / 2 ? (uint32_t)(far / 2) : 1;
    aii_sched_enter(self);
    // A clock or watchdog that raises must not leave the scheduler marked as running.
    AII_TRY_FINALLY(calibration_probes(self, &p, far, x), aii_sched_leave(self));
    aii_sched_calibration(x, AII_SCHED_CALIB_SAMPLES, &self->calib);
    // Afresh: the probes' jobs and dispatches are not the user's.
    aii_sched_restart(&self->s);
    self->s.overhead_us = self->calib.overhead_us;
    const aii_calib_t *c = &self->calib;
    mp_obj_t t[6] = {
        u32(c->overhead_us), u32(c->n), u32(c->min_us), u32(c->median_us), u32(c->p99_us),
        u32(c->max_us),
    };
    return mp_obj_new_tuple(6, t);
}
MP_DEFINE_CONST_FUN_OBJ_1(aii_scheduler_calibrate_obj, aii_scheduler_calibrate);

// Scheduler.trace([on]) -> [(t_us, kind, tid, arg), ...]
// The events since the last call, oldest first (times from when the timeline was switched on);
// with `on`, then switches it on (emptied) or off.
static mp_obj_t aii_scheduler_trace(size_t n_args, const mp_obj_t *args) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    mp_obj_t list = mp_obj_new_list(0, NULL);
    aii_trace_event_t ev;
    while (aii_sched_trace_pop(&self->s, &ev)) {
        mp_obj_t t[4] = {
            aii_mp_new_i64((int64_t)ev.t),  // a signed difference from the start
            MP_OBJ_NEW_SMALL_INT(ev.kind),
            MP_OBJ_NEW_SMALL_INT(ev.task),
            u32(ev.arg),
        };
        mp_obj_list_append(list, mp_obj_new_tuple(4, t));
    }
    if (n_args > 1 && args[1] != mp_const_none) {
        aii_sched_trace_enable(&self->s, mp_obj_is_true(args[1]), aii_sched_now(self));
    }
    return list;
}
MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_scheduler_trace_obj, 1, 2, aii_scheduler_trace);

// Scheduler.trace_lost() -> events overwritten since the timeline was switched on
static mp_obj_t aii_scheduler_trace_lost(mp_obj_t self_in) {
    aii_scheduler_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return u32(self->s.trace_lost);
}
MP_DEFINE_CONST_FUN_OBJ_1(aii_scheduler_trace_lost_obj, aii_scheduler_trace_lost);
