// SPDX-License-Identifier: MIT
// Status codes shared by every part of the AII core. Bindings turn them into exceptions,
// once, at their boundary (mod_aii.c on MicroPython, aii_host/_errors.py on CPython).
#ifndef AII_STATUS_H
#define AII_STATUS_H

typedef enum {
    AII_OK = 0,
    AII_IDLE = 1,                 // not an error: nothing to run yet
    AII_ERR_ARG = -1,             // a parameter is out of range
    AII_ERR_FULL = -2,            // a fixed-size table is full
    AII_ERR_NOT_FOUND = -3,       // no such task / account / transaction
    AII_ERR_UNSCHEDULABLE = -4,   // admission control rejected the task set
    AII_ERR_STATE = -5,           // operation not allowed in the current state
    AII_ERR_OVERFLOW = -6,        // exact result does not fit the type
    AII_ERR_INSUFFICIENT = -7,    // would overdraw a non-negative account
    AII_ERR_VIOLATION = -8,       // a balance equation does not hold
    AII_ERR_CORRUPT = -9,         // CRC or digest mismatch
    AII_ERR_EXISTS = -10,         // name or id already in use
    AII_ERR_INEXACT = -11,        // the value needs a finer unit than the format's (no rounding)
} aii_status_t;

#endif // AII_STATUS_H
