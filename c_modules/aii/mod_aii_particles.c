// SPDX-License-Identifier: MIT
// _aii.Particles (docs/particles.md): the core's particle kernel (core/particles.c). The
// constructor allocates the one block the core carves its arrays from; no method allocates
// but for its result. arrays() hands out writable memoryviews of that block, so Python code
// loads, reads and exchanges particles in place. Every refusal is the core's reason (p.why,
// with the ids it names), as on the host (aii_host.particles.kernel).
#include <string.h>

#include "mod_aii.h"

#if AII_HAS_PARTICLES

typedef struct _aii_particles_obj_t {
    mp_obj_base_t base;
    aii_pt_t p;
    uint64_t *mem;               // the block p's arrays point into (kept alive here)
} aii_particles_obj_t;

// The exception for a refused call: the core's status and reason, with the ids it names.
static void pcheck(aii_particles_obj_t *self, aii_status_t st) {
    if (st == AII_OK) {
        return;
    }
    char a[AII_I128_STR_MAX], b[AII_I128_STR_MAX];
    const char *args[2] = {aii_fmt_int(a, self->p.why_a), aii_fmt_int(b, self->p.why_b)};
    aii_check_args(st, self->p.why, args, 2);
}

static int32_t arg_i32(mp_obj_t o, qstr name) {
    int64_t v = aii_arg_i64(o, name);
    if (v < INT32_MIN || v > INT32_MAX) {
        aii_raise_q(&mp_type_ValueError, AII_T_OUT_OF_RANGE, name);
    }
    return (int32_t)v;
}

// Particles(table, box, cap, quantum=1, skin=0, list_cap=0)
static mp_obj_t aii_particles_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw,
    const mp_obj_t *all_args) {
    enum { ARG_table, ARG_box, ARG_cap, ARG_quantum, ARG_skin, ARG_list_cap };
    const mp_arg_t allowed_args[] = {
        { MP_QSTR_table, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_box, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_cap, MP_ARG_REQUIRED | MP_ARG_OBJ, {.u_obj = mp_const_none} },
        { MP_QSTR_quantum, MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(1)} },
        { MP_QSTR_skin, MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
        { MP_QSTR_list_cap, MP_ARG_OBJ, {.u_obj = MP_OBJ_NEW_SMALL_INT(0)} },
    };
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all_kw_array(n_args, n_kw, all_args, MP_ARRAY_SIZE(allowed_args),
        allowed_args, args);
    mp_buffer_info_t bi;
    if (!mp_get_buffer(args[ARG_table].u_obj, &bi, MP_BUFFER_READ)) {
        aii_raise_q(&mp_type_TypeError, AII_T_NOT_BYTES, MP_QSTR_table);
    }
    size_t nbox;
    mp_obj_t *items;
    mp_obj_get_array(args[ARG_box].u_obj, &nbox, &items);
    if (nbox != 3) {
        aii_raise_q(&mp_type_ValueError, AII_T_OUT_OF_RANGE, MP_QSTR_box);
    }
    int32_t box[3];
    for (int a = 0; a < 3; a++) {
        box[a] = arg_i32(items[a], MP_QSTR_box);
    }
    uint32_t cap = aii_arg_u32(args[ARG_cap].u_obj, MP_QSTR_cap);
    uint32_t quantum = aii_arg_u32(args[ARG_quantum].u_obj, MP_QSTR_quantum);
    int32_t skin = arg_i32(args[ARG_skin].u_obj, MP_QSTR_skin);
    uint32_t list_cap = aii_arg_u32(args[ARG_list_cap].u_obj, MP_QSTR_list_cap);
    aii_particles_obj_t *self = mp_obj_malloc(aii_particles_obj_t, type);
    self->mem = NULL;
    size_t need = 0;
    aii_text_t why;
    if (aii_pt_need(bi.buf, bi.len, box, skin, cap, list_cap, &need, &why) != AII_OK) {
        // init repeats the checks and names what it refuses (a box side).
        pcheck(self, aii_pt_init(&self->p, bi.buf, bi.len, box, skin, cap, list_cap, quantum,
            NULL, 0));
    }
    self->mem = m_new(uint64_t, (need + 7) / 8);
    pcheck(self, aii_pt_init(&self->p, bi.buf, bi.len, box, skin, cap, list_cap, quantum,
        self->mem, need));
    return MP_OBJ_FROM_PTR(self);
}

// Particles.arrays() -> (x, v, m, id, imp, cell): writable memoryviews of the whole capacity
static mp_obj_t aii_Particles_arrays(mp_obj_t self_in) {
    aii_particles_obj_t *self = MP_OBJ_TO_PTR(self_in);
    aii_pt_t *p = &self->p;
    size_t c = p->cap;
    mp_obj_t t[6] = {
        aii_mp_new_memoryview('i', 3 * c, p->x),
        aii_mp_new_memoryview('i', 3 * c, p->v),
        aii_mp_new_memoryview('I', c, p->m),
        aii_mp_new_memoryview('I', c, p->id),
        aii_mp_new_memoryview('q', 3 * c, p->imp),
        aii_mp_new_memoryview('I', c, p->cell),
    };
    return mp_obj_new_tuple(6, t);
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Particles_arrays_obj, aii_Particles_arrays);

// Particles.set_count(n, n_ghost=0)
static mp_obj_t aii_Particles_set_count(size_t n_args, const mp_obj_t *args) {
    aii_particles_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    uint32_t n = aii_arg_u32(args[1], MP_QSTR_n);
    uint32_t g = n_args > 2 ? aii_arg_u32(args[2], MP_QSTR_n_ghost) : 0;
    pcheck(self, aii_pt_set_count(&self->p, n, g));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_Particles_set_count_obj, 2, 3,
    aii_Particles_set_count);

// Particles.count() -> (n, n_ghost)
static mp_obj_t aii_Particles_count(mp_obj_t self_in) {
    aii_particles_obj_t *self = MP_OBJ_TO_PTR(self_in);
    mp_obj_t t[2] = {aii_mp_new_u64(self->p.n), aii_mp_new_u64(self->p.n_ghost)};
    return mp_obj_new_tuple(2, t);
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Particles_count_obj, aii_Particles_count);

static mp_obj_t triple(const int32_t v[3]) {
    mp_obj_t t[3] = {aii_mp_new_i64(v[0]), aii_mp_new_i64(v[1]), aii_mp_new_i64(v[2])};
    return mp_obj_new_tuple(3, t);
}

// Particles.info() -> {box, ncell, cells, cap, list_cap, listed, skin, quantum, cut, v_max,
// r2_cut, r2_min}
static mp_obj_t aii_Particles_info(mp_obj_t self_in) {
    aii_particles_obj_t *self = MP_OBJ_TO_PTR(self_in);
    const aii_pt_t *p = &self->p;
    mp_obj_t d = mp_obj_new_dict(12);
    #define AII_PT_INFO(key, value) \
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_##key), value)
    AII_PT_INFO(box, triple(p->box));
    AII_PT_INFO(ncell, triple(p->ncell));
    AII_PT_INFO(cells, aii_mp_new_u64(p->cells));
    AII_PT_INFO(cap, aii_mp_new_u64(p->cap));
    AII_PT_INFO(list_cap, aii_mp_new_u64(p->list_cap));
    AII_PT_INFO(listed, aii_mp_new_u64(p->listed));
    AII_PT_INFO(skin, aii_mp_new_i64(p->skin));
    AII_PT_INFO(quantum, aii_mp_new_u64(p->quantum));
    AII_PT_INFO(cut, aii_mp_new_i64(p->t.cut));
    AII_PT_INFO(v_max, aii_mp_new_i64(p->t.v_max));
    AII_PT_INFO(r2_cut, aii_mp_new_i64(p->t.r2_cut));
    AII_PT_INFO(r2_min, aii_mp_new_i64(p->t.r2_min));
    #undef AII_PT_INFO
    return d;
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Particles_info_obj, aii_Particles_info);

// Particles.check(), locate(), build(), reverse(): the core's call, raising its refusal
#define AII_PT_CALL(name) \
    static mp_obj_t aii_Particles_##name(mp_obj_t self_in) { \
        aii_particles_obj_t *self = MP_OBJ_TO_PTR(self_in); \
        pcheck(self, aii_pt_##name(&self->p)); \
        return mp_const_none; \
    } \
    static MP_DEFINE_CONST_FUN_OBJ_1(aii_Particles_##name##_obj, aii_Particles_##name)
AII_PT_CALL(check);
AII_PT_CALL(locate);
AII_PT_CALL(build);
AII_PT_CALL(reverse);

// Particles.moved() -> bool
static mp_obj_t aii_Particles_moved(mp_obj_t self_in) {
    aii_particles_obj_t *self = MP_OBJ_TO_PTR(self_in);
    return mp_obj_new_bool(aii_pt_moved(&self->p));
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Particles_moved_obj, aii_Particles_moved);

// Particles.cell_of(x, y, z) -> int
static mp_obj_t aii_Particles_cell_of(size_t n_args, const mp_obj_t *args) {
    aii_particles_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    int32_t x[3];
    for (int a = 0; a < 3; a++) {
        x[a] = arg_i32(args[1 + a], MP_QSTR_x);
        if (x[a] < 0 || x[a] >= self->p.box[a]) {
            aii_raise_q(&mp_type_ValueError, AII_T_OUT_OF_RANGE, MP_QSTR_x);
        }
    }
    return aii_mp_new_u64(aii_pt_cell_of(&self->p, x));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_Particles_cell_of_obj, 4, 4,
    aii_Particles_cell_of);

// Particles.forces(energy=False) -> None or (pe, virial, pairs)
static mp_obj_t aii_Particles_forces(size_t n_args, const mp_obj_t *args) {
    aii_particles_obj_t *self = MP_OBJ_TO_PTR(args[0]);
    bool energy = n_args > 1 && mp_obj_is_true(args[1]);
    aii_pt_energy_t e;
    pcheck(self, aii_pt_forces(&self->p, energy ? &e : NULL));
    if (!energy) {
        return mp_const_none;
    }
    mp_obj_t t[3] = {aii_mp_new_i128(&e.pe), aii_mp_new_i128(&e.virial),
                     aii_mp_new_u64(e.pairs)};
    return mp_obj_new_tuple(3, t);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(aii_Particles_forces_obj, 1, 2,
    aii_Particles_forces);

// Particles.advance() -> 8 x the kinetic energy at the step
static mp_obj_t aii_Particles_advance(mp_obj_t self_in) {
    aii_particles_obj_t *self = MP_OBJ_TO_PTR(self_in);
    aii_i128_t ke8;
    pcheck(self, aii_pt_advance(&self->p, &ke8));
    return aii_mp_new_i128(&ke8);
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Particles_advance_obj, aii_Particles_advance);

// Particles.run(steps)
static mp_obj_t aii_Particles_run(mp_obj_t self_in, mp_obj_t steps) {
    aii_particles_obj_t *self = MP_OBJ_TO_PTR(self_in);
    pcheck(self, aii_pt_run(&self->p, aii_arg_u32(steps, MP_QSTR_steps)));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(aii_Particles_run_obj, aii_Particles_run);

// Particles.totals() -> (count, mass, px, py, pz)
static mp_obj_t aii_Particles_totals(mp_obj_t self_in) {
    aii_particles_obj_t *self = MP_OBJ_TO_PTR(self_in);
    aii_pt_totals_t t;
    aii_pt_totals(&self->p, &t);
    mp_obj_t r[5] = {aii_mp_new_u64(t.count), aii_mp_new_u64(t.mass), aii_mp_new_i128(&t.p[0]),
                     aii_mp_new_i128(&t.p[1]), aii_mp_new_i128(&t.p[2])};
    return mp_obj_new_tuple(5, r);
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Particles_totals_obj, aii_Particles_totals);

static size_t fill_digest(uint8_t *buf, size_t cap, void *ctx) {
    (void)cap;
    memcpy(buf, ctx, AII_PT_DIGEST_LEN);
    return AII_PT_DIGEST_LEN;
}

// Particles.digest() -> bytes
static mp_obj_t aii_Particles_digest(mp_obj_t self_in) {
    aii_particles_obj_t *self = MP_OBJ_TO_PTR(self_in);
    uint8_t d[AII_PT_DIGEST_LEN];
    pcheck(self, aii_pt_digest(&self->p, d));
    return aii_mp_new_bytes(AII_PT_DIGEST_LEN, fill_digest, d);
}
static MP_DEFINE_CONST_FUN_OBJ_1(aii_Particles_digest_obj, aii_Particles_digest);

#define AII_PARTICLES_METHODS(X) \
    X(arrays, aii_Particles_arrays_obj) \
    X(set_count, aii_Particles_set_count_obj) \
    X(count, aii_Particles_count_obj) \
    X(info, aii_Particles_info_obj) \
    X(check, aii_Particles_check_obj) \
    X(locate, aii_Particles_locate_obj) \
    X(cell_of, aii_Particles_cell_of_obj) \
    X(build, aii_Particles_build_obj) \
    X(moved, aii_Particles_moved_obj) \
    X(forces, aii_Particles_forces_obj) \
    X(advance, aii_Particles_advance_obj) \
    X(reverse, aii_Particles_reverse_obj) \
    X(run, aii_Particles_run_obj) \
    X(totals, aii_Particles_totals_obj) \
    X(digest, aii_Particles_digest_obj)

AII_DEFINE_TYPE(aii_type_Particles, Particles, aii_particles_make_new, AII_PARTICLES_METHODS);

#endif // AII_HAS_PARTICLES
