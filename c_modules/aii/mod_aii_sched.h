// SPDX-License-Identifier: MIT
// _aii.Scheduler's object, shared by its two files: mod_aii_sched.c (the task set and the run
// loop) and mod_aii_sched_info.c (statistics, analysis, costs, calibration, the timeline).
#ifndef AII_MOD_AII_SCHED_H
#define AII_MOD_AII_SCHED_H

#include "mod_aii.h"

typedef struct _aii_scheduler_obj_t {
    mp_obj_base_t base;
    // Job callables live here, in a fixed array inside a GC-heap object: the GC sees them, and
    // dispatch never allocates. MP_OBJ_NULL marks a free slot.
    mp_obj_t fn[AII_SCHED_MAX_TASKS];
    mp_obj_t on_miss;
    mp_obj_t wdt;
    mp_obj_t clock;  // mp_const_none: the port's ticks_us()
    mp_obj_t sleep;
    bool stop;
    bool running;
    aii_clock_t clk;
    aii_job_t job;
    aii_rta_result_t rta;  // scratch for add() and admit(), kept off the C stack
    aii_calib_t calib;     // what calibrate() measured last
    aii_sched_t s;
} aii_scheduler_obj_t;

// The scheduler clock now, extended.
aii_time_t aii_sched_now(aii_scheduler_obj_t *self);
// run_once() without its re-entry guard: at most one job; its tid, or None when idle.
mp_obj_t aii_sched_once(aii_scheduler_obj_t *self);
// aii_sched_add(), raising what the analysis refused with its reason (add() and calibrate()'s
// probes alike, as the host's calibrate() goes through its add()); the new task's id.
int aii_sched_add_checked(aii_scheduler_obj_t *self, const aii_task_params_t *p, aii_time_t now);
void aii_sched_enter(aii_scheduler_obj_t *self);
void aii_sched_leave(aii_scheduler_obj_t *self);

// The methods of mod_aii_sched_info.c.
MP_DECLARE_CONST_FUN_OBJ_VAR_BETWEEN(aii_scheduler_stats_obj);
MP_DECLARE_CONST_FUN_OBJ_1(aii_scheduler_admit_obj);
MP_DECLARE_CONST_FUN_OBJ_1(aii_scheduler_analysis_obj);
MP_DECLARE_CONST_FUN_OBJ_1(aii_scheduler_info_obj);
MP_DECLARE_CONST_FUN_OBJ_1(aii_scheduler_costs_obj);
MP_DECLARE_CONST_FUN_OBJ_1(aii_scheduler_calibrate_obj);
MP_DECLARE_CONST_FUN_OBJ_VAR_BETWEEN(aii_scheduler_trace_obj);
MP_DECLARE_CONST_FUN_OBJ_1(aii_scheduler_trace_lost_obj);

#endif // AII_MOD_AII_SCHED_H
