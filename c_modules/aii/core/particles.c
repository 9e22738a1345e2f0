// SPDX-License-Identifier: MIT
#include "particles.h"

#if AII_HAS_PARTICLES

#include <string.h>

#include "crc32.h"
#include "sha256.h"

// The pair computation runs a million times per step: GCC would keep it a call (it has two
// callers), which costs a third of the pass.
#if defined(__GNUC__)
#define HOT static inline __attribute__((always_inline))
#else
#define HOT static inline
#endif

// ---- helpers ----------------------------------------------------------------------------

static uint32_t rd32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t rd64(const uint8_t *b) {
    return (uint64_t)rd32(b) | (uint64_t)rd32(b + 4) << 32;
}

static void wr32(uint8_t *b, uint32_t v) {
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

static uint64_t mag(int64_t v) {
    return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

// floor(sqrt(v)), bit by bit (no float).
static uint64_t isqrt(uint64_t v) {
    uint64_t r = 0, bit = (uint64_t)1 << 62;
    while (bit > v) {
        bit >>= 2;
    }
    while (bit) {
        if (v >= r + bit) {
            v -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    return r;
}

// r += v over 128 bits (the core's aii_i128_add64, inline: it runs once per pair).
static inline void acc(aii_i128_t *r, int64_t v) {
    uint64_t lo = r->lo + (uint64_t)v;
    r->hi += (v < 0 ? UINT64_MAX : 0) + (lo < r->lo);
    r->lo = lo;
}

static void acc_u128(aii_i128_t *r, uint64_t hi, uint64_t lo) {
    uint64_t s = r->lo + lo;
    r->hi += hi + (s < lo);
    r->lo = s;
}

// The odd rounding of t / 2^frac: the magnitude rounded to nearest (ties away from zero),
// then the sign put back, so that round(-t) == -round(t) exactly. The shift is of a
// non-negative magnitude, never of a negative number.
HOT int64_t odd_round(int64_t t, uint8_t frac, uint64_t half) {
    // Branch-free (the sign of a pair's impulse is a coin toss for a branch predictor):
    // neg is all ones for a negative t, and (u ^ neg) - neg negates two's complement u then.
    uint64_t neg = (uint64_t)0 - (uint64_t)(t < 0);
    uint64_t m = ((((uint64_t)t ^ neg) - neg) + half) >> frac;
    return (int64_t)((m ^ neg) - neg);
}

// ---- the table --------------------------------------------------------------------------

#define HEAD_MAGIC 0
#define HEAD_VERSION 4
#define HEAD_SHIFT 5
#define HEAD_FRAC 6
#define HEAD_N 8
#define HEAD_KMIN 12
#define HEAD_R2CUT 16
#define HEAD_CUT 24
#define HEAD_VMAX 28
#define HEAD_PER_SIGMA 32
#define HEAD_DT 36
#define HEAD_RC 40
#define ENTRY_LIMIT ((int64_t)1 << 46)   // |entry| and |entry difference| (times 2^IFRAC fits)

static int64_t entry(const uint8_t *blob, uint32_t i) {
    return (int64_t)rd64(blob + AII_PT_TABLE_HEAD + 8 * (size_t)i);
}

aii_status_t aii_pt_table_head(const uint8_t *blob, size_t len, aii_pt_table_t *t,
    aii_text_t *why) {
    memset(t, 0, sizeof(*t));
    *why = AII_T_PT_TABLE;
    if (blob == NULL || len < AII_PT_TABLE_HEAD + 4 || rd32(blob + HEAD_MAGIC) != AII_PT_TABLE_MAGIC ||
        blob[HEAD_VERSION] != AII_PT_TABLE_VERSION) {
        return AII_ERR_ARG;
    }
    uint32_t n = rd32(blob + HEAD_N);
    if (n < 3 || n > (len - AII_PT_TABLE_HEAD - 4) / 16 ||
        len != AII_PT_TABLE_HEAD + 16 * (size_t)n + 4 ||
        aii_crc32(0, blob, len - 4) != rd32(blob + len - 4)) {
        return AII_ERR_ARG;
    }
    t->n = n;
    t->shift = blob[HEAD_SHIFT];
    t->frac = blob[HEAD_FRAC];
    t->k_min = rd32(blob + HEAD_KMIN);
    t->r2_cut = (int64_t)rd64(blob + HEAD_R2CUT);
    t->cut = (int32_t)rd32(blob + HEAD_CUT);
    t->v_max = (int32_t)rd32(blob + HEAD_VMAX);
    t->per_sigma = rd32(blob + HEAD_PER_SIGMA);
    t->dt_micro = rd32(blob + HEAD_DT);
    t->rc_micro = rd32(blob + HEAD_RC);
    if (t->shift < AII_PT_IFRAC || t->shift > 61 || t->frac < 1 || t->frac > 62 || t->k_min < 1 ||
        t->k_min >= n - 1 || (uint64_t)(n - 1) > ((uint64_t)1 << 61) >> t->shift) {
        return AII_ERR_ARG;
    }
    t->r2_min = (int64_t)t->k_min << t->shift;
    if (t->r2_cut <= t->r2_min || t->r2_cut > (int64_t)(n - 1) << t->shift || t->cut < 1 ||
        t->cut > AII_PT_BOX_MAX || (int64_t)t->cut * t->cut < t->r2_cut ||
        (int64_t)(t->cut - 1) * (t->cut - 1) >= t->r2_cut || t->v_max < 1 ||
        t->v_max > t->cut) {
        return AII_ERR_ARG;
    }
    // Every bin a pair can fall in: no intermediate of the pair computation may overflow.
    // |G| * |d| <= 2^62 (so that adding half of 2^frac stays below 2^63), |d| < sqrt(r2).
    uint32_t last = (uint32_t)((uint64_t)(t->r2_cut - 1) >> t->shift);
    for (uint32_t k = t->k_min; k <= last; k++) {
        int64_t g0 = entry(blob, k), g1 = entry(blob, k + 1);
        int64_t u0 = entry(blob, n + k), u1 = entry(blob, n + k + 1);
        if (mag(g0) >= ENTRY_LIMIT || mag(g1) >= ENTRY_LIMIT || mag(g1 - g0) >= ENTRY_LIMIT ||
            mag(u0) >= ENTRY_LIMIT || mag(u1) >= ENTRY_LIMIT || mag(u1 - u0) >= ENTRY_LIMIT) {
            return AII_ERR_ARG;
        }
        uint64_t gmax = mag(g0) > mag(g1) ? mag(g0) : mag(g1);
        uint64_t dmax = isqrt(((uint64_t)(k + 1) << t->shift) - 1) + 1;
        uint64_t hi, lo;
        aii_mul_u64(gmax, dmax, &hi, &lo);
        if (hi != 0 || lo > (uint64_t)1 << 62) {
            return AII_ERR_ARG;
        }
    }
    // The virial's three J_a * d_a of a pair (|J_a| <= 2^(62-frac) + 1, |d_a| < cut) fit int64.
    uint64_t jmax = ((uint64_t)1 << (62 - t->frac)) + 1, hi, lo;
    aii_mul_u64(jmax, 3 * (uint64_t)t->cut, &hi, &lo);
    if (hi != 0 || lo > (uint64_t)1 << 62) {
        return AII_ERR_ARG;
    }
    *why = AII_T_NONE;
    return AII_OK;
}

// ---- memory -----------------------------------------------------------------------------

typedef struct {
    size_t g, u, imp, ps, x, v, xs, x0, m, id, cell, order, row, start, nbr, kind, end;
} layout_t;

static size_t up8(size_t v) {
    return (v + 7) & ~(size_t)7;
}

static void layout(layout_t *l, uint32_t n_table, uint32_t cap, uint32_t cells,
    uint32_t list_cap) {
    size_t c = cap;
    l->g = 0;
    l->u = l->g + 8 * (size_t)n_table;
    l->imp = l->u + 8 * (size_t)n_table;
    l->ps = l->imp + 24 * c;
    l->x = l->ps + 24 * c;
    l->v = up8(l->x + 12 * c);
    l->xs = up8(l->v + 12 * c);
    // Without a list there are no build positions and no rows (small-memory mode).
    size_t listed = list_cap ? 1 : 0;
    l->x0 = up8(l->xs + 12 * c);
    l->m = up8(l->x0 + listed * 12 * c);
    l->id = l->m + 4 * c;
    l->cell = l->id + 4 * c;
    l->order = l->cell + 4 * c;
    l->row = l->order + 4 * c;
    l->start = l->row + listed * 4 * (c + 1);
    l->nbr = l->start + 4 * ((size_t)cells + 1);
    l->kind = l->nbr + 4 * (size_t)list_cap;
    l->end = up8(l->kind + cells);
}

// Cells per axis for a box side: as many as fit with each at least cut + skin wide.
static aii_status_t grid(const aii_pt_table_t *t, int32_t skin, const int32_t box[3],
    int32_t ncell[3], uint32_t *cells, uint32_t *bad) {
    uint64_t total = 1, w = (uint64_t)t->cut + (uint64_t)skin;
    for (int a = 0; a < 3; a++) {
        if (box[a] < 0 || (uint64_t)box[a] < 3 * w || box[a] > AII_PT_BOX_MAX) {
            *bad = (uint32_t)(box[a] < 0 ? 0 : box[a]);
            return AII_ERR_ARG;
        }
        ncell[a] = (int32_t)((uint64_t)box[a] / w);
        total *= (uint64_t)ncell[a];
        if (total > AII_PT_CELLS_MAX) {
            *bad = (uint32_t)box[a];
            return AII_ERR_ARG;
        }
    }
    *cells = (uint32_t)total;
    return AII_OK;
}

// Everything aii_pt_need and aii_pt_init check; fills p's table, grid and sizes.
static aii_status_t shape(aii_pt_t *p, const uint8_t *blob, size_t len, const int32_t box[3],
    int32_t skin, uint32_t cap, uint32_t list_cap, layout_t *l) {
    aii_text_t why;
    uint32_t bad = 0;
    if (aii_pt_table_head(blob, len, &p->t, &why) != AII_OK) {
        p->why = why;
        return AII_ERR_ARG;
    }
    if (skin < 0 || skin > p->t.cut) {
        p->why = AII_T_PT_SKIN;
        return AII_ERR_ARG;
    }
    if (grid(&p->t, skin, box, p->ncell, &p->cells, &bad) != AII_OK) {
        p->why = AII_T_PT_BOX;
        p->why_a = bad;
        return AII_ERR_ARG;
    }
    if (cap < 1 || cap > AII_PT_CAP_MAX || list_cap > (uint32_t)INT32_MAX) {
        p->why = AII_T_PT_FULL;
        return AII_ERR_ARG;
    }
    layout(l, p->t.n, cap, p->cells, list_cap);
    return AII_OK;
}

aii_status_t aii_pt_need(const uint8_t *blob, size_t len, const int32_t box[3], int32_t skin,
    uint32_t cap, uint32_t list_cap, size_t *bytes, aii_text_t *why) {
    aii_pt_t p;
    layout_t l;
    memset(&p, 0, sizeof(p));
    aii_status_t st = shape(&p, blob, len, box, skin, cap, list_cap, &l);
    *bytes = st == AII_OK ? l.end : 0;
    *why = p.why;
    return st;
}

static aii_status_t refuse(aii_pt_t *p, aii_status_t st, aii_text_t why, uint32_t a, uint32_t b) {
    p->why = why;
    p->why_a = a;
    p->why_b = b;
    return st;
}

aii_status_t aii_pt_init(aii_pt_t *p, const uint8_t *blob, size_t len, const int32_t box[3],
    int32_t skin, uint32_t cap, uint32_t list_cap, uint32_t quantum, void *mem, size_t mem_len) {
    memset(p, 0, sizeof(*p));
    layout_t l;
    aii_status_t st = shape(p, blob, len, box, skin, cap, list_cap, &l);
    if (st != AII_OK) {
        return st;
    }
    if (quantum < 1) {
        return refuse(p, AII_ERR_ARG, AII_T_PT_QUANTUM, 0, 0);
    }
    if (mem == NULL || ((uintptr_t)mem & 7) != 0) {
        return refuse(p, AII_ERR_ARG, AII_T_PT_ALIGN, 0, 0);
    }
    if (mem_len < l.end) {
        return refuse(p, AII_ERR_ARG, AII_T_BUFFER_TOO_SMALL, 0, 0);
    }
    uint8_t *base = mem;
    int64_t *g = (int64_t *)(void *)(base + l.g), *u = (int64_t *)(void *)(base + l.u);
    for (uint32_t k = 0; k < p->t.n; k++) {
        g[k] = entry(blob, k);
        u[k] = entry(blob, p->t.n + k);
    }
    p->t.g = g;
    p->t.u = u;
    memcpy(p->box, box, sizeof(p->box));
    p->quantum = quantum;
    p->skin = skin;
    p->cap = cap;
    p->list_cap = list_cap;
    p->imp = (int64_t *)(void *)(base + l.imp);
    p->ps = (int64_t *)(void *)(base + l.ps);
    p->x = (int32_t *)(void *)(base + l.x);
    p->v = (int32_t *)(void *)(base + l.v);
    p->xs = (int32_t *)(void *)(base + l.xs);
    p->x0 = (int32_t *)(void *)(base + l.x0);
    p->m = (uint32_t *)(void *)(base + l.m);
    p->id = (uint32_t *)(void *)(base + l.id);
    p->cell = (uint32_t *)(void *)(base + l.cell);
    p->order = (uint32_t *)(void *)(base + l.order);
    p->row = (uint32_t *)(void *)(base + l.row);
    p->start = (uint32_t *)(void *)(base + l.start);
    p->nbr = (uint32_t *)(void *)(base + l.nbr);
    p->kind = base + l.kind;
    memset(base + l.imp, 0, l.end - l.imp);
    return AII_OK;
}

aii_status_t aii_pt_set_count(aii_pt_t *p, uint32_t n, uint32_t n_ghost) {
    if (n > p->cap || n_ghost > p->cap - n) {
        return refuse(p, AII_ERR_FULL, AII_T_PT_FULL, 0, 0);
    }
    p->n = n;
    p->n_ghost = n_ghost;
    p->built = 0;
    return AII_OK;
}

// ---- checks and cells ---------------------------------------------------------------------

uint32_t aii_pt_cell_of(const aii_pt_t *p, const int32_t x[3]) {
    uint32_t c[3];
    for (int a = 0; a < 3; a++) {
        // 0 <= x < box <= 2^30 and ncell <= 2^24: the product fits int64.
        c[a] = (uint32_t)((int64_t)x[a] * p->ncell[a] / p->box[a]);
    }
    return c[0] + (uint32_t)p->ncell[0] * (c[1] + (uint32_t)p->ncell[1] * c[2]);
}

static int inside(const aii_pt_t *p, const int32_t *x) {
    return x[0] >= 0 && x[0] < p->box[0] && x[1] >= 0 && x[1] < p->box[1] && x[2] >= 0 &&
           x[2] < p->box[2];
}

aii_status_t aii_pt_locate(aii_pt_t *p) {
    uint32_t total = p->n + p->n_ghost;
    for (uint32_t i = 0; i < total; i++) {
        if (!inside(p, p->x + 3 * (size_t)i)) {
            return refuse(p, AII_ERR_ARG, AII_T_PT_POSITION, p->id[i], 0);
        }
        p->cell[i] = aii_pt_cell_of(p, p->x + 3 * (size_t)i);
    }
    return AII_OK;
}

aii_status_t aii_pt_check(aii_pt_t *p) {
    uint32_t total = p->n + p->n_ghost;
    for (uint32_t i = 0; i < total; i++) {
        uint32_t m = p->m[i];
        if (m < 1 || m > AII_PT_MASS_MAX || p->quantum % m != 0) {
            return refuse(p, AII_ERR_ARG, AII_T_PT_MASS, p->id[i], 0);
        }
        if (!inside(p, p->x + 3 * (size_t)i)) {
            return refuse(p, AII_ERR_ARG, AII_T_PT_POSITION, p->id[i], 0);
        }
        for (int a = 0; a < 3 && i < p->n; a++) {
            if (mag(p->v[3 * (size_t)i + a]) > (uint64_t)p->t.v_max) {
                return refuse(p, AII_ERR_ARG, AII_T_PT_VELOCITY, p->id[i], 0);
            }
        }
    }
    return AII_OK;
}

// ---- the force pass -----------------------------------------------------------------------

// The nearest image of a difference of two positions in a box of side L: pairs the list
// holds are closer than cut + skin < L / 2 at the build, and within the cutoff at any pass
// their nearest image is the one that interacts.
HOT int32_t nearest(int32_t d, int32_t L, int32_t half) {
    d = d > half ? d - L : d;
    return d < -half ? d + L : d;
}

// Counting sort of the particles by cell; fills order, start and kind (a cell of owned
// particles or of ghosts, never both).
static aii_status_t sort_cells(aii_pt_t *p) {
    uint32_t total = p->n + p->n_ghost, cells = p->cells;
    aii_status_t st = aii_pt_locate(p);
    if (st != AII_OK) {
        return st;
    }
    p->built = 0;
    memset(p->start, 0, 4 * ((size_t)cells + 1));
    memset(p->kind, 0, cells);
    for (uint32_t i = 0; i < total; i++) {
        uint32_t c = p->cell[i];
        uint8_t k = i < p->n ? 1 : 2;
        if (p->kind[c] != 0 && p->kind[c] != k) {
            // An owned particle in a cell of ghosts: it should have migrated.
            uint32_t owned = i;
            if (k == 2) {
                for (owned = 0; owned < p->n && p->cell[owned] != c; owned++) {
                }
            }
            return refuse(p, AII_ERR_STATE, AII_T_PT_DOMAIN, p->id[owned], 0);
        }
        p->kind[c] = k;
        p->start[c + 1]++;
    }
    for (uint32_t c = 0; c < cells; c++) {
        p->start[c + 1] += p->start[c];
    }
    // start[c] runs ahead while filling; it is put back below.
    for (uint32_t i = 0; i < total; i++) {
        p->order[p->start[p->cell[i]]++] = i;
    }
    for (uint32_t c = cells; c > 0; c--) {
        p->start[c] = p->start[c - 1];
    }
    p->start[0] = 0;
    return AII_OK;
}

// Positions in sorted order; impulses zeroed. Also checks the positions (ghosts are written
// by the caller between builds). With a list, each position is taken as its build position
// plus its displacement since (less than skin / 2 through the periodic boundary: the
// nearest image): coordinates that never wrap between builds, so that every listed pair keeps
// the image the build gave it.
static aii_status_t gather(aii_pt_t *p, int unwrap) {
    uint32_t total = p->n + p->n_ghost;
    for (uint32_t k = 0; k < total; k++) {
        uint32_t i = p->order[k];
        const int32_t *x = p->x + 3 * (size_t)i, *x0 = p->x0 + 3 * (size_t)i;
        int32_t *xs = p->xs + 3 * (size_t)k;
        if (!inside(p, x)) {
            return refuse(p, AII_ERR_ARG, AII_T_PT_POSITION, p->id[i], 0);
        }
        for (int a = 0; a < 3; a++) {
            xs[a] = unwrap ? x0[a] + nearest(x[a] - x0[a], p->box[a], p->box[a] / 2) : x[a];
        }
    }
    memset(p->ps, 0, 24 * (size_t)total);
    return AII_OK;
}

// The 13 neighbour cells of the half stencil (the other 13 are visited from the other side),
// after the cell itself.
static const int8_t STENCIL[14][3] = {
    {0, 0, 0}, {1, 0, 0}, {-1, 1, 0}, {0, 1, 0}, {1, 1, 0},
    {-1, -1, 1}, {0, -1, 1}, {1, -1, 1}, {-1, 0, 1}, {0, 0, 1}, {1, 0, 1},
    {-1, 1, 1}, {0, 1, 1}, {1, 1, 1},
};

// Neighbour n of cell (cx, cy, cz): its index, and the shift of its image across the periodic
// boundary (every axis has at least 3 cells at least cut + skin wide, so the stencil's image
// is the nearest one for every pair that can interact).
static uint32_t neighbour(const aii_pt_t *p, int32_t cx, int32_t cy, int32_t cz, int n,
    int32_t sh[3]) {
    int32_t q[3] = {cx + STENCIL[n][0], cy + STENCIL[n][1], cz + STENCIL[n][2]};
    for (int a = 0; a < 3; a++) {
        int32_t nc = p->ncell[a];
        sh[a] = q[a] < 0 ? -p->box[a] : q[a] >= nc ? p->box[a] : 0;
        q[a] = q[a] < 0 ? q[a] + nc : q[a] >= nc ? q[a] - nc : q[a];
    }
    return (uint32_t)(q[0] + p->ncell[0] * (q[1] + p->ncell[1] * q[2]));
}

// List entries: a sorted index (AII_PT_CAP_MAX is 2^24) and the image of it the pair uses,
// one of 27 shifts by -1, 0 or +1 box per axis.
#define IMAGE_SHIFT 24
#define IMAGE_MASK (((uint32_t)1 << IMAGE_SHIFT) - 1)

static uint32_t image_code(const aii_pt_t *p, const int32_t sh[3]) {
    uint32_t c = 0;
    for (int a = 2; a >= 0; a--) {
        c = 3 * c + (sh[a] < 0 ? 0 : sh[a] == 0 ? 1 : 2);
    }
    (void)p;
    return c;
}

// Whether this domain computes the pair of sorted particles a (in a cell of kind k1) and b
// (kind k2): both owned, or the owned one has the smaller id; never two ghosts.
static int ours(const aii_pt_t *p, uint8_t k1, uint8_t k2, uint32_t a, uint32_t b) {
    if (k1 == k2) {
        return k1 == 1;
    }
    uint32_t ida = p->id[p->order[a]], idb = p->id[p->order[b]];
    return k1 == 1 ? ida < idb : idb < ida;
}

typedef struct {
    const int64_t *g, *u;
    int64_t r2_cut, r2_min;
    uint64_t half;
    uint32_t quantum;
    uint8_t shift, frac;
    aii_pt_energy_t *e;
} pass_t;

// One pair: b is a position in the sorted arrays, pa the impulse sum of the other particle,
// d = x_a - x_b. Returns 0 when beyond the cutoff, 1 when computed, -1 for an overlap.
HOT int pair(const pass_t *s, int64_t *restrict ps, int64_t *restrict pa, uint32_t b,
    int32_t dx, int32_t dy, int32_t dz) {
    int64_t r2 = (int64_t)dx * dx + (int64_t)dy * dy + (int64_t)dz * dz;
    if ((uint64_t)(r2 - s->r2_min) >= (uint64_t)(s->r2_cut - s->r2_min)) {
        return r2 < s->r2_min ? -1 : 0;
    }
    uint32_t k = (uint32_t)((uint64_t)r2 >> s->shift);
    int64_t t = (int64_t)(((uint64_t)r2 >> (s->shift - AII_PT_IFRAC)) & 0xFFFF);
    int64_t g = s->g[k] + (s->g[k + 1] - s->g[k]) * t / 65536;
    int64_t jx = odd_round(g * dx, s->frac, s->half);
    int64_t jy = odd_round(g * dy, s->frac, s->half);
    int64_t jz = odd_round(g * dz, s->frac, s->half);
    if (s->quantum > 1) {
        int64_t q = s->quantum;
        jx = jx / q * q;
        jy = jy / q * q;
        jz = jz / q * q;
    }
    pa[0] += jx;
    pa[1] += jy;
    pa[2] += jz;
    ps[3 * (size_t)b] -= jx;
    ps[3 * (size_t)b + 1] -= jy;
    ps[3 * (size_t)b + 2] -= jz;
    if (s->e) {
        acc(&s->e->pe, s->u[k] + (s->u[k + 1] - s->u[k]) * t / 65536);
        acc(&s->e->virial, jx * dx);
        acc(&s->e->virial, jy * dy);
        acc(&s->e->virial, jz * dz);
        s->e->pairs++;
    }
    return 1;
}

static aii_status_t overlap(aii_pt_t *p, uint32_t a, uint32_t b) {
    uint32_t i = p->id[p->order[a]], j = p->id[p->order[b]];
    return refuse(p, AII_ERR_ARG, AII_T_PT_OVERLAP, i < j ? i : j, i < j ? j : i);
}

// Visits every cell pair of the half stencil once: fn(p, ctx, c1, c2, shift, self).
typedef aii_status_t (*cell_pair_fn)(aii_pt_t *p, void *ctx, uint32_t c1, uint32_t c2,
    const int32_t sh[3], int self);

static aii_status_t each_cell_pair(aii_pt_t *p, void *ctx, cell_pair_fn fn) {
    const int32_t *nc = p->ncell;
    for (int32_t cz = 0; cz < nc[2]; cz++) {
        for (int32_t cy = 0; cy < nc[1]; cy++) {
            for (int32_t cx = 0; cx < nc[0]; cx++) {
                uint32_t c = (uint32_t)(cx + nc[0] * (cy + nc[1] * cz));
                if (p->kind[c] == 0) {
                    continue;
                }
                for (int n = 0; n < 14; n++) {
                    int32_t sh[3];
                    uint32_t c2 = neighbour(p, cx, cy, cz, n, sh);
                    uint8_t k2 = p->kind[c2];
                    if (k2 == 0 || (p->kind[c] == 2 && k2 == 2)) {
                        continue;
                    }
                    aii_status_t st = fn(p, ctx, c, c2, sh, n == 0);
                    if (st != AII_OK) {
                        return st;
                    }
                }
            }
        }
    }
    return AII_OK;
}

// The pairs between cell c1 and cell c2 (image shifted by sh), computed directly: the force
// pass without a list.
static aii_status_t cell_forces(aii_pt_t *p, void *ctx, uint32_t c1, uint32_t c2,
    const int32_t sh[3], int self) {
    const pass_t *s = ctx;
    const int32_t *restrict xs = p->xs;
    int64_t *restrict ps = p->ps;
    uint8_t k1 = p->kind[c1], k2 = p->kind[c2];
    int mixed = k1 != k2;
    uint32_t e1 = p->start[c1 + 1], b0 = p->start[c2], e2 = p->start[c2 + 1];
    for (uint32_t a = p->start[c1]; a < e1; a++) {
        int32_t xa = xs[3 * (size_t)a] - sh[0], ya = xs[3 * (size_t)a + 1] - sh[1];
        int32_t za = xs[3 * (size_t)a + 2] - sh[2];
        int64_t pa[3] = {0, 0, 0};
        for (uint32_t b = self ? a + 1 : b0; b < e2; b++) {
            if (mixed && !ours(p, k1, k2, a, b)) {
                continue;
            }
            if (pair(s, ps, pa, b, xa - xs[3 * (size_t)b], ya - xs[3 * (size_t)b + 1],
                    za - xs[3 * (size_t)b + 2]) < 0) {
                return overlap(p, a, b);
            }
        }
        ps[3 * (size_t)a] += pa[0];
        ps[3 * (size_t)a + 1] += pa[1];
        ps[3 * (size_t)a + 2] += pa[2];
    }
    return AII_OK;
}

aii_status_t aii_pt_build(aii_pt_t *p) {
    aii_status_t st = sort_cells(p);
    if (st == AII_OK) {
        st = gather(p, 0);
    }
    if (st != AII_OK || p->list_cap == 0) {
        p->built = st == AII_OK;
        return st;
    }
    // Every pair this domain computes that is closer than cut + skin, by rows: row[a] ..
    // row[a + 1] are the partners b of sorted particle a (visited cell by cell, so rows come
    // in ascending order of a), each as b | image << 24: the image of b the stencil chose
    // (IMAGE_SHIFT).
    int64_t w = (int64_t)p->t.cut + p->skin, r2_list = w * w;
    const int32_t *nc = p->ncell;
    const int32_t *xs = p->xs;
    p->listed = 0;
    for (int32_t cz = 0; cz < nc[2]; cz++) {
        for (int32_t cy = 0; cy < nc[1]; cy++) {
            for (int32_t cx = 0; cx < nc[0]; cx++) {
                uint32_t c = (uint32_t)(cx + nc[0] * (cy + nc[1] * cz));
                uint8_t k1 = p->kind[c];
                uint32_t c2[14], code[14];
                int32_t sh[14][3];
                for (int n = 0; n < 14; n++) {
                    c2[n] = neighbour(p, cx, cy, cz, n, sh[n]);
                    code[n] = image_code(p, sh[n]);
                }
                for (uint32_t a = p->start[c]; a < p->start[c + 1]; a++) {
                    p->row[a] = p->listed;
                    for (int n = 0; n < 14; n++) {
                        uint8_t k2 = p->kind[c2[n]];
                        int32_t xa = xs[3 * (size_t)a] - sh[n][0];
                        int32_t ya = xs[3 * (size_t)a + 1] - sh[n][1];
                        int32_t za = xs[3 * (size_t)a + 2] - sh[n][2];
                        uint32_t b = n == 0 ? a + 1 : p->start[c2[n]];
                        for (; b < p->start[c2[n] + 1]; b++) {
                            if (k2 == 0 || !ours(p, k1, k2, a, b)) {
                                continue;
                            }
                            int64_t dx = xa - xs[3 * (size_t)b];
                            int64_t dy = ya - xs[3 * (size_t)b + 1];
                            int64_t dz = za - xs[3 * (size_t)b + 2];
                            if (dx * dx + dy * dy + dz * dz >= r2_list) {
                                continue;
                            }
                            if (p->listed >= p->list_cap) {
                                return refuse(p, AII_ERR_FULL, AII_T_PT_LIST, 0, 0);
                            }
                            p->nbr[p->listed++] = b | code[n] << IMAGE_SHIFT;
                        }
                    }
                }
            }
        }
    }
    p->row[p->n + p->n_ghost] = p->listed;
    memcpy(p->x0, p->x, 12 * (size_t)(p->n + p->n_ghost));
    p->built = 1;
    return AII_OK;
}

int aii_pt_moved(const aii_pt_t *p) {
    if (!p->built) {
        return 1;
    }
    if (p->list_cap == 0) {
        return 0;  // the cells are sorted again by every pass
    }
    // moved more than skin / 2: 4 |x - x0|^2 > skin^2, exactly (|d| <= L / 2 <= 2^29).
    int64_t lim = (int64_t)p->skin * p->skin;
    for (uint32_t i = 0; i < p->n; i++) {
        int64_t r2 = 0;
        for (int a = 0; a < 3; a++) {
            int64_t d = nearest(p->x[3 * (size_t)i + a] - p->x0[3 * (size_t)i + a], p->box[a],
                p->box[a] / 2);
            r2 += d * d;
        }
        if (4 * r2 > lim) {
            return 1;
        }
    }
    return 0;
}

static aii_status_t list_forces(aii_pt_t *p, const pass_t *s) {
    const int32_t *restrict xs = p->xs;
    int64_t *restrict ps = p->ps;
    const uint32_t *restrict nbr = p->nbr;
    int32_t img[27][3];
    for (int c = 0; c < 27; c++) {
        img[c][0] = (c % 3 - 1) * p->box[0];
        img[c][1] = (c / 3 % 3 - 1) * p->box[1];
        img[c][2] = (c / 9 - 1) * p->box[2];
    }
    uint32_t total = p->n + p->n_ghost;
    for (uint32_t a = 0; a < total; a++) {
        int32_t xa = xs[3 * (size_t)a], ya = xs[3 * (size_t)a + 1], za = xs[3 * (size_t)a + 2];
        int64_t pa[3] = {0, 0, 0};
        for (uint32_t e = p->row[a]; e < p->row[a + 1]; e++) {
            uint32_t b = nbr[e] & IMAGE_MASK;
            const int32_t *sh = img[nbr[e] >> IMAGE_SHIFT];
            int32_t dx = xa - xs[3 * (size_t)b] - sh[0];
            int32_t dy = ya - xs[3 * (size_t)b + 1] - sh[1];
            int32_t dz = za - xs[3 * (size_t)b + 2] - sh[2];
            if (pair(s, ps, pa, b, dx, dy, dz) < 0) {
                return overlap(p, a, b);
            }
        }
        ps[3 * (size_t)a] += pa[0];
        ps[3 * (size_t)a + 1] += pa[1];
        ps[3 * (size_t)a + 2] += pa[2];
    }
    return AII_OK;
}

aii_status_t aii_pt_forces(aii_pt_t *p, aii_pt_energy_t *e) {
    aii_status_t st;
    int listed = p->built && p->list_cap != 0;
    if (listed) {
        st = gather(p, 1);
    } else {
        st = sort_cells(p);
        if (st == AII_OK) {
            st = gather(p, 0);
        }
    }
    if (st != AII_OK) {
        return st;
    }
    pass_t s = {p->t.g, p->t.u, p->t.r2_cut, p->t.r2_min, ((uint64_t)1 << p->t.frac) >> 1,
                p->quantum, p->t.shift, p->t.frac, e};
    if (e) {
        memset(e, 0, sizeof(*e));
    }
    if (listed) {
        st = list_forces(p, &s);
    } else {
        st = each_cell_pair(p, &s, cell_forces);
        p->built = st == AII_OK;
    }
    if (st != AII_OK) {
        return st;
    }
    uint32_t total = p->n + p->n_ghost;
    for (uint32_t k = 0; k < total; k++) {
        memcpy(p->imp + 3 * (size_t)p->order[k], p->ps + 3 * (size_t)k, 24);
    }
    return AII_OK;
}

// ---- kick, drift, reversal ----------------------------------------------------------------

// v_new for particle i (negated for the reversal); refuses as aii_pt_advance says.
static aii_status_t new_velocity(aii_pt_t *p, uint32_t i, int negate, int32_t out[3]) {
    uint32_t m = p->m[i];
    for (int a = 0; a < 3; a++) {
        int64_t j = p->imp[3 * (size_t)i + a];
        if (m != 1 && j % (int64_t)m != 0) {
            return refuse(p, AII_ERR_STATE, AII_T_PT_IMPULSE, p->id[i], 0);
        }
        int64_t v = p->v[3 * (size_t)i + a] + (m == 1 ? j : j / (int64_t)m);
        if (mag(v) > (uint64_t)p->t.v_max) {
            return refuse(p, AII_ERR_ARG, AII_T_PT_VELOCITY, p->id[i], 0);
        }
        out[a] = (int32_t)(negate ? -v : v);
    }
    return AII_OK;
}

static aii_status_t kick(aii_pt_t *p, int negate, int drift, aii_i128_t *ke8) {
    int32_t nv[3];
    // Everything is checked before anything changes: a refused step leaves the state whole.
    for (uint32_t i = 0; i < p->n; i++) {
        aii_status_t st = new_velocity(p, i, negate, nv);
        if (st != AII_OK) {
            return st;
        }
    }
    if (ke8) {
        ke8->lo = ke8->hi = 0;
    }
    for (uint32_t i = 0; i < p->n; i++) {
        int32_t *v = p->v + 3 * (size_t)i, *x = p->x + 3 * (size_t)i;
        new_velocity(p, i, negate, nv);
        uint64_t sum2 = 0;
        for (int a = 0; a < 3; a++) {
            // |v|, |v_new| <= v_max <= 2^30: the sum's square fits, three of them too.
            uint64_t s = mag((int64_t)v[a] + nv[a]);
            sum2 += s * s;
            v[a] = nv[a];
            if (drift) {
                int32_t y = x[a] + nv[a];  // |v| <= cut < box <= 2^30: no overflow, one wrap
                x[a] = y < 0 ? y + p->box[a] : y >= p->box[a] ? y - p->box[a] : y;
            }
        }
        if (ke8) {
            uint64_t hi, lo;
            aii_mul_u64(sum2, p->m[i], &hi, &lo);
            acc_u128(ke8, hi, lo);
        }
    }
    return AII_OK;
}

aii_status_t aii_pt_advance(aii_pt_t *p, aii_i128_t *ke8) {
    return kick(p, 0, 1, ke8);
}

aii_status_t aii_pt_reverse(aii_pt_t *p) {
    return kick(p, 1, 0, NULL);
}

aii_status_t aii_pt_run(aii_pt_t *p, uint32_t steps) {
    if (p->n_ghost != 0) {
        return refuse(p, AII_ERR_STATE, AII_T_NOT_ALLOWED, 0, 0);
    }
    for (uint32_t k = 0; k < steps; k++) {
        aii_status_t st = aii_pt_moved(p) ? aii_pt_build(p) : AII_OK;
        if (st == AII_OK) {
            st = aii_pt_forces(p, NULL);
        }
        if (st == AII_OK) {
            st = aii_pt_advance(p, NULL);
        }
        if (st != AII_OK) {
            return st;
        }
    }
    return AII_OK;
}

// ---- totals and digest --------------------------------------------------------------------

void aii_pt_totals(const aii_pt_t *p, aii_pt_totals_t *t) {
    memset(t, 0, sizeof(*t));
    t->count = p->n;
    for (uint32_t i = 0; i < p->n; i++) {
        t->mass += p->m[i];
        for (int a = 0; a < 3; a++) {
            acc(&t->p[a], (int64_t)p->m[i] * p->v[3 * (size_t)i + a]);
        }
    }
}

aii_status_t aii_pt_digest(aii_pt_t *p, uint8_t out[AII_PT_DIGEST_LEN]) {
    for (uint32_t i = 1; i < p->n; i++) {
        if (p->id[i] <= p->id[i - 1]) {
            return refuse(p, AII_ERR_ARG, AII_T_PT_IDS, p->id[i], 0);
        }
    }
    aii_sha256_t h;
    uint8_t b[AII_PT_DIGEST_ITEM];
    aii_sha256_init(&h);
    for (int a = 0; a < 3; a++) {
        wr32(b + 4 * a, (uint32_t)p->box[a]);
    }
    wr32(b + 12, p->quantum);
    wr32(b + 16, p->n);
    aii_sha256_update(&h, b, 20);
    for (uint32_t i = 0; i < p->n; i++) {
        wr32(b, p->id[i]);
        for (int a = 0; a < 3; a++) {
            wr32(b + 4 + 4 * a, (uint32_t)p->x[3 * (size_t)i + a]);
            wr32(b + 16 + 4 * a, (uint32_t)p->v[3 * (size_t)i + a]);
        }
        wr32(b + 28, p->m[i]);
        aii_sha256_update(&h, b, sizeof(b));
    }
    uint8_t full[32];
    aii_sha256_final(&h, full);
    memcpy(out, full, AII_PT_DIGEST_LEN);
    return AII_OK;
}

#endif // AII_HAS_PARTICLES
