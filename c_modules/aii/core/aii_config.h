// SPDX-License-Identifier: MIT
// The core's optional parts, listed once (docs/boards.md section 8: what each costs). Each
// AII_HAS_<PART> defaults to 1; build with -DAII_HAS_<PART>=0 to leave the part's code out.
// Headers stay whole (the state's layout and the declarations do not change), so a binding
// that calls a part left out fails to link instead of misbehaving.
//
// The minimal configuration (make size reports it; the bare core for an MCU that runs the
// scheduler with admission and keeps a ledger of accounts, transfers and holds whose journal
// records carry a CRC-32): every part below at 0.
#ifndef AII_CONFIG_H
#define AII_CONFIG_H

// The scheduler's timeline: a ring of trace events (release, start, finish, miss, drop,
// collection) that a binding drains (aii_sched_trace_pop). 0: no instruction is left on the
// dispatch path; compiled in, each event site costs a test of trace_on while off.
#ifndef AII_HAS_TRACE
#define AII_HAS_TRACE (1)
#endif

// Automatic priorities: deadline-monotonic, then Audsley's assignment when that fails. 0:
// deadline-monotonic only.
#ifndef AII_HAS_OPA
#define AII_HAS_OPA (1)
#endif

// The core's own SHA-256 (sha256.c). 0: the port provides aii_sha256_init/update/final, e.g.
// over its hashlib's C implementation (mbedtls, lib/crypto-algorithms), when AII_HAS_DIGEST.
#ifndef AII_HAS_SHA256
#define AII_HAS_SHA256 (1)
#endif

// Ledger digests and the journal's hash chain: aii_ledger_digest(), aii_ledger_seal() and the
// SEAL record closing every AII_LEDGER_SEGMENT records. 0: no SEAL is written, none replays.
#ifndef AII_HAS_DIGEST
#define AII_HAS_DIGEST (1)
#endif

// aii_ledger_checkpoint() and aii_ledger_restore().
#ifndef AII_HAS_CHECKPOINT
#define AII_HAS_CHECKPOINT (1)
#endif

// aii_ledger_replay(): a journal read back into a ledger.
#ifndef AII_HAS_REPLAY
#define AII_HAS_REPLAY (1)
#endif

// Decimal strings: aii_fx_parse(), aii_fx_parse_exact(), aii_fx_format().
#ifndef AII_HAS_DECIMAL
#define AII_HAS_DECIMAL (1)
#endif

// Fixed-point arithmetic: aii_fx_add/sub/mul/div (and _sat), aii_fx_rescale(), aii_fx_muldiv().
#ifndef AII_HAS_FIXED
#define AII_HAS_FIXED (1)
#endif

// Exact sums of int32/int64 buffers: aii_check_sum().
#ifndef AII_HAS_SUMS
#define AII_HAS_SUMS (1)
#endif

// The particle kernel (particles.c, docs/particles.md), and the binding's Particles type.
#ifndef AII_HAS_PARTICLES
#define AII_HAS_PARTICLES (1)
#endif

#endif // AII_CONFIG_H
