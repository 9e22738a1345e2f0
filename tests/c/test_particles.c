// SPDX-License-Identifier: MIT
// The particle kernel against the shared vectors (tests/vectors/particles.json, computed by the
// independent reference tools/particles_ref.py over every pair): per-step energies, virial,
// pair counts and kinetic energy, exact totals, digests, final states and the bit-exact round
// trip, with the neighbour list and with cells only; two domains with ghosts giving the one
// domain's impulses; and the refusals (a damaged table, a box too small, overlaps, velocities
// beyond v_max, masses, positions, ids) that change nothing. Same output on every target.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "particles.h"
#include "vectors_particles.h"

#define CAP 64
#define LIST (CAP * 48)
#define MEM_WORDS 6144

static uint64_t mem_a[MEM_WORDS], mem_b[MEM_WORDS];
static uint8_t table[sizeof(vp_table)];
static aii_pt_t P, Q;

static int64_t lo64(const aii_i128_t *v) {
    return (int64_t)v->lo;
}

// A system of the vectors in p (with or without a list), its particles in the vectors' order.
static void load(aii_pt_t *p, uint64_t *mem, const vp_system_t *s, uint32_t list_cap) {
    size_t need = 0;
    aii_text_t why;
    CHECK_EQ(aii_pt_need(vp_table, sizeof(vp_table), s->box, VP_SKIN, CAP, list_cap, &need, &why),
        AII_OK);
    CHECK(need <= sizeof(mem_a));
    CHECK_EQ(aii_pt_init(p, vp_table, sizeof(vp_table), s->box, VP_SKIN, CAP, list_cap, s->quantum,
                 mem, sizeof(mem_a)),
        AII_OK);
    for (uint32_t i = 0; i < s->n; i++) {
        memcpy(p->x + 3 * i, s->x[i], 12);
        memcpy(p->v + 3 * i, s->v[i], 12);
        p->m[i] = s->m[i];
        p->id[i] = s->id[i];
    }
    CHECK_EQ(aii_pt_set_count(p, s->n, 0), AII_OK);
    CHECK_EQ(aii_pt_check(p), AII_OK);
}

static void step(aii_pt_t *p, aii_pt_energy_t *e, aii_i128_t *ke8) {
    if (aii_pt_moved(p)) {
        CHECK_EQ(aii_pt_build(p), AII_OK);
    }
    CHECK_EQ(aii_pt_forces(p, e), AII_OK);
    CHECK_EQ(aii_pt_advance(p, ke8), AII_OK);
}

static void test_system(const vp_system_t *s, uint32_t list_cap) {
    uint8_t d[AII_PT_DIGEST_LEN];
    aii_pt_energy_t e;
    aii_i128_t ke8;
    aii_pt_totals_t t;
    int bad_step = -1;
    load(&P, mem_a, s, list_cap);
    CHECK_EQ(aii_pt_digest(&P, d), AII_OK);
    CHECK(memcmp(d, s->before, sizeof(d)) == 0);
    for (int k = 0; k < VP_STEPS; k++) {
        step(&P, &e, &ke8);
        const vp_step_t *w = &s->steps[k];
        if ((lo64(&e.pe) != w->pe || lo64(&e.virial) != w->virial || e.pairs != w->pairs ||
                lo64(&ke8) != w->ke8) && bad_step < 0) {
            bad_step = k;
        }
        aii_pt_totals(&P, &t);
        CHECK_EQ(t.count, s->totals[0]);
        CHECK_EQ(t.mass, s->totals[1]);
        for (int a = 0; a < 3; a++) {
            CHECK_EQ(lo64(&t.p[a]), s->totals[2 + a]);
            CHECK_EQ((int64_t)t.p[a].hi, s->totals[2 + a] < 0 ? -1 : 0);
        }
    }
    CHECK_EQ(bad_step, -1);
    CHECK_EQ(aii_pt_digest(&P, d), AII_OK);
    CHECK(memcmp(d, s->after, sizeof(d)) == 0);
    CHECK(memcmp(P.x, s->x_end, 12 * s->n) == 0);
    CHECK(memcmp(P.v, s->v_end, 12 * s->n) == 0);
    // The round trip: reverse (after a force pass), the same number of steps, reverse.
    if (aii_pt_moved(&P)) {
        CHECK_EQ(aii_pt_build(&P), AII_OK);
    }
    CHECK_EQ(aii_pt_forces(&P, NULL), AII_OK);
    CHECK_EQ(aii_pt_reverse(&P), AII_OK);
    CHECK_EQ(aii_pt_run(&P, VP_STEPS), AII_OK);
    CHECK_EQ(aii_pt_build(&P), AII_OK);
    CHECK_EQ(aii_pt_forces(&P, NULL), AII_OK);
    CHECK_EQ(aii_pt_reverse(&P), AII_OK);
    CHECK_EQ(aii_pt_digest(&P, d), AII_OK);
    CHECK(memcmp(d, s->before, sizeof(d)) == 0);
    CHECK(memcmp(P.x, s->x, 12 * s->n) == 0);
    CHECK(memcmp(P.v, s->v, 12 * s->n) == 0);
    printf("%s, list %u: %d steps, round trip ok\n", s->name, (unsigned)list_cap, VP_STEPS);
}

// Two domains (cells with cx below half the grid, and the rest), each with the other's
// particles in the cells around its own as ghosts: the impulses each domain computes for its
// own particles, plus those the other computed for them as ghosts, are the one domain's.
static void test_two_domains(const vp_system_t *s) {
    static int64_t want[CAP][3], got[CAP][3];
    static uint32_t cell_x[CAP], cell_y[CAP], cell_z[CAP];
    load(&P, mem_a, s, LIST);
    CHECK_EQ(aii_pt_build(&P), AII_OK);
    CHECK_EQ(aii_pt_forces(&P, NULL), AII_OK);
    memcpy(want, P.imp, 24 * s->n);
    memset(got, 0, sizeof(got));
    const int32_t *nc = P.ncell;
    for (uint32_t i = 0; i < s->n; i++) {
        uint32_t c = aii_pt_cell_of(&P, P.x + 3 * i);
        cell_x[i] = c % (uint32_t)nc[0];
        cell_y[i] = c / (uint32_t)nc[0] % (uint32_t)nc[1];
        cell_z[i] = c / (uint32_t)nc[0] / (uint32_t)nc[1];
    }
    int ghosts_seen = 0;
    for (int dom = 0; dom < 2; dom++) {
        load(&Q, mem_b, s, LIST);
        uint32_t n = 0, g = 0, who[CAP];
        // Owned first, then ghosts: particles of the other domain whose cell is next to (or
        // across the periodic boundary from) a cell of this one.
        for (int pass = 0; pass < 2; pass++) {
            for (uint32_t i = 0; i < s->n; i++) {
                int mine = (cell_x[i] < (uint32_t)nc[0] / 2) == (dom == 0);
                int near = 0;
                for (uint32_t j = 0; j < s->n && !mine && pass == 1; j++) {
                    int own_j = (cell_x[j] < (uint32_t)nc[0] / 2) == (dom == 0);
                    int32_t dx = (int32_t)cell_x[i] - (int32_t)cell_x[j];
                    dx = dx > nc[0] / 2 ? dx - nc[0] : dx < -nc[0] / 2 ? dx + nc[0] : dx;
                    near |= own_j && dx >= -1 && dx <= 1;
                }
                if ((pass == 0 && mine) || (pass == 1 && near)) {
                    uint32_t k = n + g;
                    memcpy(Q.x + 3 * k, s->x[i], 12);
                    memcpy(Q.v + 3 * k, s->v[i], 12);
                    Q.m[k] = s->m[i];
                    Q.id[k] = s->id[i];
                    who[k] = i;
                    if (pass == 0) {
                        n++;
                    } else {
                        g++;
                    }
                }
            }
        }
        // Ghost cells come whole (a ghost's cell holds no owned particle of this domain).
        ghosts_seen += (int)g;
        CHECK_EQ(aii_pt_set_count(&Q, n, g), AII_OK);
        CHECK_EQ(aii_pt_build(&Q), AII_OK);
        CHECK_EQ(aii_pt_forces(&Q, NULL), AII_OK);
        for (uint32_t k = 0; k < n + g; k++) {
            for (int a = 0; a < 3; a++) {
                got[who[k]][a] += Q.imp[3 * k + a];
            }
        }
        (void)cell_y;
        (void)cell_z;
    }
    CHECK(ghosts_seen > 0);
    CHECK(memcmp(want, got, 24 * s->n) == 0);
    printf("%s: two domains, %d ghosts, same impulses\n", s->name, ghosts_seen);
}

static void test_refusals(void) {
    const vp_system_t *s = &vp_systems[0];
    uint8_t d[AII_PT_DIGEST_LEN];
    size_t need;
    aii_text_t why;
    // A damaged table (one byte of an entry), and a box too small for cutoff + skin.
    memcpy(table, vp_table, sizeof(table));
    table[AII_PT_TABLE_HEAD + 100] ^= 1;
    CHECK_EQ(aii_pt_need(table, sizeof(table), s->box, VP_SKIN, CAP, 0, &need, &why),
        AII_ERR_ARG);
    CHECK_EQ(why, AII_T_PT_TABLE);
    int32_t small[3] = {s->box[0], s->box[1] / 4, s->box[2]};
    CHECK_EQ(aii_pt_init(&P, vp_table, sizeof(vp_table), small, VP_SKIN, CAP, 0, 1, mem_a,
                 sizeof(mem_a)),
        AII_ERR_ARG);
    CHECK_EQ(P.why, AII_T_PT_BOX);
    CHECK_EQ(P.why_a, (uint32_t)small[1]);
    CHECK_EQ(aii_pt_init(&P, vp_table, sizeof(vp_table), s->box, VP_SKIN, CAP, 0, 1,
                 (uint8_t *)mem_a + 4, sizeof(mem_a) - 8),
        AII_ERR_ARG);
    CHECK_EQ(P.why, AII_T_PT_ALIGN);
    CHECK_EQ(aii_pt_init(&P, vp_table, sizeof(vp_table), s->box, -1, CAP, 0, 1, mem_a,
                 sizeof(mem_a)),
        AII_ERR_ARG);
    CHECK_EQ(P.why, AII_T_PT_SKIN);
    // Overlap and velocity, as the reference refused them (ids from the vectors' refusals):
    // the state is unchanged after the refusal.
    int32_t box[3] = {9 * 16777216, 9 * 16777216, 9 * 16777216};
    CHECK_EQ(aii_pt_init(&P, vp_table, sizeof(vp_table), box, VP_SKIN, CAP, LIST, 1, mem_a,
                 sizeof(mem_a)),
        AII_OK);
    int32_t S = 16777216;
    int32_t xo[2][3] = {{S, S, S}, {S + S / 2, S, S}};
    memcpy(P.x, xo, sizeof(xo));
    memset(P.v, 0, 24);
    P.m[0] = P.m[1] = 1;
    P.id[0] = 7;
    P.id[1] = 9;
    CHECK_EQ(aii_pt_set_count(&P, 2, 0), AII_OK);
    CHECK_EQ(aii_pt_build(&P), AII_OK);
    CHECK_EQ(aii_pt_forces(&P, NULL), AII_ERR_ARG);
    CHECK_EQ(P.why, AII_T_PT_OVERLAP);
    CHECK_EQ(P.why_a, 7);
    CHECK_EQ(P.why_b, 9);
    int32_t xv[2][3] = {{S, S, S}, {S + S * 95 / 100, S, S}};
    memcpy(P.x, xv, sizeof(xv));
    P.v[0] = -P.t.v_max;
    P.id[0] = 1;
    P.id[1] = 2;
    CHECK_EQ(aii_pt_build(&P), AII_OK);
    CHECK_EQ(aii_pt_forces(&P, NULL), AII_OK);
    CHECK_EQ(aii_pt_digest(&P, d), AII_OK);
    uint8_t before[AII_PT_DIGEST_LEN];
    memcpy(before, d, sizeof(d));
    CHECK_EQ(aii_pt_advance(&P, NULL), AII_ERR_ARG);
    CHECK_EQ(P.why, AII_T_PT_VELOCITY);
    CHECK_EQ(P.why_a, 1);
    CHECK_EQ(aii_pt_digest(&P, d), AII_OK);
    CHECK(memcmp(d, before, sizeof(d)) == 0);
    // Checks of the inputs: a mass that does not divide the quantum, a position outside the
    // box, an initial velocity beyond v_max, ids out of order for the digest.
    P.v[0] = 0;
    P.m[1] = 2;
    CHECK_EQ(aii_pt_check(&P), AII_ERR_ARG);
    CHECK_EQ(P.why, AII_T_PT_MASS);
    CHECK_EQ(P.why_a, 2);
    P.m[1] = 1;
    P.x[4] = box[1];
    CHECK_EQ(aii_pt_check(&P), AII_ERR_ARG);
    CHECK_EQ(P.why, AII_T_PT_POSITION);
    P.x[4] = S;
    P.v[5] = P.t.v_max + 1;
    CHECK_EQ(aii_pt_check(&P), AII_ERR_ARG);
    CHECK_EQ(P.why, AII_T_PT_VELOCITY);
    P.v[5] = 0;
    P.id[1] = 1;
    CHECK_EQ(aii_pt_digest(&P, d), AII_ERR_ARG);
    CHECK_EQ(P.why, AII_T_PT_IDS);
    CHECK_EQ(aii_pt_set_count(&P, CAP, 1), AII_ERR_FULL);
    // A list too small for the pairs.
    load(&P, mem_a, s, 4);
    CHECK_EQ(aii_pt_build(&P), AII_ERR_FULL);
    CHECK_EQ(P.why, AII_T_PT_LIST);
    printf("refusals ok\n");
}

int main(void) {
    for (size_t k = 0; k < sizeof(vp_systems) / sizeof(vp_systems[0]); k++) {
        test_system(&vp_systems[k], LIST);
        test_system(&vp_systems[k], 0);
        test_two_domains(&vp_systems[k]);
    }
    test_refusals();
    return check_report("test_particles");
}
