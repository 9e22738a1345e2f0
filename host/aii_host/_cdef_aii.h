// SPDX-License-Identifier: MIT
// cffi declarations for c_modules/aii/core/sched.h. Values marked `...` are taken from the real
// header by the C compiler, so the two cannot drift; struct fields we never touch stay hidden.

#define AII_SCHED_MAX_TASKS ...
#define AII_SCHED_EVENT_RING ...
#define AII_TIME_NEVER ...
#define AII_PRIO_AUTO ...

typedef enum {
    AII_OK, AII_IDLE, AII_ERR_ARG, AII_ERR_FULL, AII_ERR_NOT_FOUND, AII_ERR_UNSCHEDULABLE,
    AII_ERR_STATE, AII_ERR_OVERFLOW, ...
} aii_status_t;

typedef uint64_t aii_time_t;

typedef struct { ...; } aii_clock_t;

void aii_clock_init(aii_clock_t *c, uint64_t mask);
aii_time_t aii_clock_extend(aii_clock_t *c, uint64_t raw);
uint64_t aii_clock_to_raw(const aii_clock_t *c, aii_time_t t);
aii_time_t aii_clock_from_raw(const aii_clock_t *c, uint64_t raw);

typedef enum { AII_KIND_PERIODIC, AII_KIND_SPORADIC, AII_KIND_ONESHOT, ... } aii_kind_t;
typedef enum { AII_POLICY_CONTINUE, AII_POLICY_SKIP, AII_POLICY_DROP, ... } aii_policy_t;

typedef struct {
    aii_kind_t kind;
    aii_policy_t policy;
    uint32_t period_us;
    uint32_t deadline_us;
    uint32_t budget_us;
    uint32_t offset_us;
    aii_time_t release_at;
    aii_time_t deadline_at;
    int32_t priority;
    bool critical;
    ...;
} aii_task_params_t;

typedef struct {
    uint32_t jobs;
    uint32_t misses;
    uint32_t overruns;
    uint32_t dropped;
    uint32_t skipped;
    uint32_t resp_min_us;
    uint32_t resp_max_us;
    uint64_t resp_sum_us;
    uint32_t latency_max_us;
    uint32_t exec_max_us;
    ...;
} aii_task_stats_t;

typedef struct {
    int16_t task;
    int16_t level;
    uint32_t wcrt_us;
    uint32_t deadline_us;
    uint32_t blocking_us;
    uint32_t jobs;
    ...;
} aii_rta_entry_t;

typedef enum { AII_METHOD_EXPLICIT, AII_METHOD_DM, AII_METHOD_OPA, ... } aii_method_t;

typedef struct {
    aii_method_t method;
    int16_t n;
    int16_t failed_task;
    uint32_t failed_wcrt_us;
    uint32_t failed_deadline_us;
    aii_rta_entry_t entry[...];
    ...;
} aii_rta_result_t;

typedef enum { AII_EVENT_MISS, AII_EVENT_OVERRUN, AII_EVENT_DROP, ... } aii_event_kind_t;

typedef struct {
    int16_t task;
    uint8_t kind;
    uint32_t detail;
    ...;
} aii_event_t;

typedef struct {
    int16_t task;
    aii_time_t release;
    aii_time_t deadline;
    aii_time_t start;
    aii_time_t wake_at;
    ...;
} aii_job_t;

typedef struct {
    uint32_t gc_idle_us;
    aii_method_t method;
    int16_t n_tasks;
    uint32_t total_jobs;
    uint32_t total_misses;
    uint32_t dispatches;
    uint32_t gc_runs;
    uint32_t ev_lost;
    ...;
} aii_sched_t;

void aii_sched_init(aii_sched_t *s, uint32_t overhead_us);
aii_status_t aii_sched_add(aii_sched_t *s, const aii_task_params_t *p, aii_time_t now, int *id,
    aii_rta_result_t *rta);
aii_status_t aii_sched_remove(aii_sched_t *s, int id);
aii_status_t aii_sched_admit(const aii_sched_t *s, aii_rta_result_t *rta);
aii_status_t aii_sched_trigger(aii_sched_t *s, int id);
aii_status_t aii_sched_dispatch(aii_sched_t *s, aii_time_t now, aii_job_t *job);
aii_status_t aii_sched_complete(aii_sched_t *s, const aii_job_t *job, aii_time_t now);
bool aii_sched_gc_due(const aii_sched_t *s, aii_time_t now, aii_time_t wake_at);
void aii_sched_gc_done(aii_sched_t *s);
bool aii_sched_wdt_ok(const aii_sched_t *s);
bool aii_sched_event_pop(aii_sched_t *s, aii_event_t *ev);
aii_status_t aii_sched_stats(const aii_sched_t *s, int id, aii_task_stats_t *out);
bool aii_sched_task_used(const aii_sched_t *s, int id);
aii_status_t aii_rta_analyse(const aii_task_params_t *p, int n, uint32_t overhead_us,
    aii_rta_result_t *rta, int16_t *prio_order);
const char *aii_sched_param_error(const aii_sched_t *s, const aii_task_params_t *p);
