// SPDX-License-Identifier: MIT
// Exact-momentum, bit-reversible particle dynamics (docs/particles.md): integer positions in a
// periodic box, integer velocities in position units per step, integer masses, a short-range
// pair potential from an integer table (Lennard-Jones, generated on the host), cell lists (a
// step costs O(N)) and the integer leapfrog. Plain C99, no heap, no float: the caller gives one
// 8-byte-aligned block of memory (aii_pt_need says how much) and the core carves its arrays
// from it.
//
// Exactness. Every pair (i, j) within the cutoff gets one impulse J, a pure function of its
// displacement d = x_i - x_j: J = odd_round(G(r2) * d / 2^frac), then J is made a multiple of
// the system's quantum q (a multiple of every mass) by truncation toward zero. odd_round
// rounds the magnitude and puts the sign back (C's truncating division of |t| + half; never an
// arithmetic shift or a floor division of a negative), so J(-d) == -J(d) exactly: i gets +J,
// j gets -J, and total momentum sum(m v) is unchanged to the unit. Velocities change by J / m,
// exact because J is a multiple of q.
//
// The leapfrog. The state is (x_n, v_{n-1/2}): the velocity that brought each particle to x_n.
// A step kicks, then drifts:  v_{n+1/2} = v_{n-1/2} + a(x_n),  x_{n+1} = x_n + v_{n+1/2}.
// Reversal negates the NEXT half-step velocity: v <- -(v_{n-1/2} + a(x_n)) = -v_{n+1/2}
// (aii_pt_reverse, after a force pass). It is an involution, and N steps, a reversal, N steps
// and a reversal give back every bit of x and v (the forces being pure functions of x).
//
// Neighbour lists. The cells are at least cut + skin wide; aii_pt_build sorts the particles by
// cell and, with list storage, lists every pair closer than cut + skin. Until some owned
// particle has moved more than skin / 2 from where the list was built (aii_pt_moved, exact),
// the list holds every pair within the cutoff, so a force pass over it gives the same bits as
// one over the cells: when lists are rebuilt never changes a result. Without list storage
// every force pass sorts the cells again (the small-memory mode).
//
// Domains. Particles 0..n-1 are owned, n..n+n_ghost-1 are ghosts (copies of other domains'
// particles, in the same global coordinates). At a build every cell holds owned particles or
// ghosts, never both. A pair of two owned particles is computed here; an owned-ghost pair only
// when the owned particle has the smaller id (so the other domain skips it), and the ghost's
// impulse is left in imp[] for its owner; ghost-ghost pairs are skipped. Integer sums do not
// depend on their order, so any decomposition gives bit-identical states.
//
// Units: see docs/particles.md section 3 (positions in 1/S sigma, velocities per step of dt,
// energies in E_u = m_u (1/S sigma / dt)^2).
#ifndef AII_PARTICLES_H
#define AII_PARTICLES_H

#include <stddef.h>
#include <stdint.h>

#include "aii_config.h"
#include "aii_status.h"
#include "aii_text.h"
#include "wide.h"

// The table blob (written by aii_host.particles.table, little-endian): a head of
// AII_PT_TABLE_HEAD bytes, n int64 G entries, n int64 U entries, then a CRC-32 of all before.
#define AII_PT_TABLE_MAGIC (0x54504941)  // "AIPT" read as a little-endian uint32
#define AII_PT_TABLE_VERSION (1)
#define AII_PT_TABLE_HEAD (48)
// Bits of the interpolation fraction between two table entries.
#define AII_PT_IFRAC (16)
#define AII_PT_BOX_MAX (1073741824)      // 2^30: any difference of two positions fits int32
#define AII_PT_CELLS_MAX (16777216)
#define AII_PT_CAP_MAX (16777216)
#define AII_PT_MASS_MAX (65535)
#define AII_PT_DIGEST_LEN (16)
#define AII_PT_DIGEST_ITEM (32)          // bytes hashed per particle (docs/particles.md 4)

typedef struct {
    const int64_t *g;            // [n] G at r2 = k << shift: J = G * d / 2^frac
    const int64_t *u;            // [n] pair energy at the same r2, in E_u
    int64_t r2_cut;              // pairs with r2 < r2_cut interact
    int64_t r2_min;              // k_min << shift: closer pairs are refused (overlap)
    uint32_t n;
    uint32_t k_min;
    int32_t cut;                 // smallest int with cut * cut >= r2_cut: the cell size bound
    int32_t v_max;               // largest |v| per axis, units per step (<= cut)
    uint32_t per_sigma;          // S, position units per sigma (for hosts; the core ignores it)
    uint32_t dt_micro;           // dt in 1e-6 tau (the same)
    uint32_t rc_micro;           // the cutoff in 1e-6 sigma (the same)
    uint8_t shift;               // table index of r2: r2 >> shift
    uint8_t frac;
} aii_pt_table_t;

typedef struct {
    aii_pt_table_t t;
    int32_t box[3];
    int32_t ncell[3];            // cells per axis (>= 3), each at least cut + skin wide
    uint32_t cells;              // ncell[0] * ncell[1] * ncell[2]
    uint32_t quantum;            // every impulse is a multiple of it; every mass divides it
    int32_t skin;                // list margin, position units
    uint32_t cap;                // capacity of the particle arrays
    uint32_t list_cap;           // capacity of the neighbour list (0: none)
    uint32_t listed;             // entries in the list
    uint32_t built;              // 1 while the list (or the cell order) of the last build holds
    uint32_t n;                  // owned particles
    uint32_t n_ghost;            // ghosts after them
    int32_t *x;                  // [cap][3]
    int32_t *v;                  // [cap][3]
    uint32_t *m;                 // [cap]
    uint32_t *id;                // [cap]
    int64_t *imp;                // [cap][3] impulses of the last force pass (+ what the caller added)
    uint32_t *cell;              // [cap] each particle's cell (aii_pt_forces, aii_pt_locate)
    // Work arrays of the force pass.
    uint32_t *order;             // [cap] particles sorted by cell
    uint32_t *start;             // [cells + 1]
    int32_t *xs;                 // [cap][3] positions in that order
    int64_t *ps;                 // [cap][3] impulses in that order
    uint8_t *kind;               // [cells] 0 empty, 1 owned, 2 ghosts
    int32_t *x0;                 // [cap][3] positions at the last build
    uint32_t *row;               // [cap + 1] list rows, by sorted index
    uint32_t *nbr;               // [list_cap] sorted indices
    // Why the last refused call was refused, and the particle ids it names.
    aii_text_t why;
    uint32_t why_a;
    uint32_t why_b;
} aii_pt_t;

// What a force pass found, over the pairs it computed (owned-owned, and owned-ghost pairs it
// owns): the potential energy, the virial sum of J . d (both in E_u), and the pair count.
typedef struct {
    aii_i128_t pe;
    aii_i128_t virial;
    uint64_t pairs;
} aii_pt_energy_t;

typedef struct {
    uint64_t count;
    uint64_t mass;
    aii_i128_t p[3];             // momentum sum(m v), mass units x position units per step
} aii_pt_totals_t;

// Reads a table blob's head (CRC and bounds included) into t (g and u stay NULL), so a binding
// can size the memory: AII_ERR_ARG with why AII_T_PT_TABLE when it is not a valid table.
aii_status_t aii_pt_table_head(const uint8_t *blob, size_t len, aii_pt_table_t *t,
    aii_text_t *why);
// Bytes of memory aii_pt_init needs for this table, box, skin and capacities (0 on refusal).
aii_status_t aii_pt_need(const uint8_t *blob, size_t len, const int32_t box[3], int32_t skin,
    uint32_t cap, uint32_t list_cap, size_t *bytes, aii_text_t *why);
// Validates table, box and skin, carves `mem` (8-byte aligned, aii_pt_need bytes) and copies
// the table's entries in; no particles yet. Refusals set p->why (and p->why_a: a box side).
aii_status_t aii_pt_init(aii_pt_t *p, const uint8_t *blob, size_t len, const int32_t box[3],
    int32_t skin, uint32_t cap, uint32_t list_cap, uint32_t quantum, void *mem, size_t mem_len);
// Sets how many owned particles and ghosts the arrays hold (AII_ERR_FULL beyond cap); the
// list is then stale until the next build.
aii_status_t aii_pt_set_count(aii_pt_t *p, uint32_t n, uint32_t n_ghost);
// Checks every particle: position inside the box, mass 1..AII_PT_MASS_MAX dividing the
// quantum, |v| <= v_max per axis (owned ones). Overlaps are found by the next force pass.
aii_status_t aii_pt_check(aii_pt_t *p);
// Each particle's cell in p->cell (and AII_ERR_ARG for a position outside the box).
aii_status_t aii_pt_locate(aii_pt_t *p);
// The cell of a position (already inside the box).
uint32_t aii_pt_cell_of(const aii_pt_t *p, const int32_t x[3]);
// Sorts the particles by cell and builds the neighbour list (AII_ERR_FULL when it does not
// fit list_cap). Refuses a position outside the box, or a cell holding both owned particles
// and ghosts (why_a: the owned particle's id: it should have migrated).
aii_status_t aii_pt_build(aii_pt_t *p);
// 1 when the list must be rebuilt before the next force pass: none built, or an owned
// particle moved more than skin / 2 since (exact, through the periodic boundary).
int aii_pt_moved(const aii_pt_t *p);
// The force pass, over the list when one is built, else over the cells (sorted again first):
// imp[] of every particle (owned and ghost) is overwritten with the impulses of the pairs
// computed here. e may be NULL (no energy, virial or pair count: faster). Refuses, changing no
// particle, a pair closer than r_min (why_a, why_b: their ids) and what aii_pt_build refuses.
aii_status_t aii_pt_forces(aii_pt_t *p, aii_pt_energy_t *e);
// Kick then drift every owned particle with its imp[] (the caller has added the impulses
// other domains computed for it): v += imp / m, x += v, wrapped into the box. ke8 (may be
// NULL) gets sum(m (v_old + v_new)^2) = 8 x the kinetic energy at the integer step, in E_u.
// Refuses, changing nothing, a velocity beyond v_max or an impulse that is not a multiple of
// the mass (why_a: the id).
aii_status_t aii_pt_advance(aii_pt_t *p, aii_i128_t *ke8);
// The reversal: v <- -(v + imp / m) for every owned particle (after a force pass); refuses
// as aii_pt_advance does.
aii_status_t aii_pt_reverse(aii_pt_t *p);
// Forces then advance, `steps` times, for a system with no ghosts (one domain), rebuilding
// the list when aii_pt_moved says so.
aii_status_t aii_pt_run(aii_pt_t *p, uint32_t steps);
void aii_pt_totals(const aii_pt_t *p, aii_pt_totals_t *t);
// SHA-256 of the owned particles (ids strictly ascending, else AII_ERR_ARG), truncated.
aii_status_t aii_pt_digest(aii_pt_t *p, uint8_t out[AII_PT_DIGEST_LEN]);

#endif // AII_PARTICLES_H
