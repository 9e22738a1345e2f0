// SPDX-License-Identifier: MIT
// Minimal Cortex-M startup for the C tests under qemu (microbit, mps2-an385, mps2-an386).
// Newlib's rdimon crt0 locks up on mps2-an385, so we link with -nostartfiles and do its job
// here: turn the FPU on where the ABI uses it, copy .data, zero .bss, open the semihosting
// stdio handles, then exit(main()) so stdout is flushed and the return value reaches qemu's
// exit code (see tests/c/baremetal/README.md).
#include <stdint.h>
#include <stdlib.h>

extern int main(void);
extern void initialise_monitor_handles(void);

// Symbols from tests/c/baremetal/cortex_m.ld.
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

void Reset_Handler(void);
void Fault_Handler(void);
void _init(void);
void _fini(void);

// -nostartfiles drops crti.o, which would provide these hooks for newlib's init/fini arrays.
void _init(void) {
}

void _fini(void) {
}

void Reset_Handler(void) {
#if defined(__ARM_FP) && !defined(__SOFTFP__)
    // Hard-float ABI (Cortex-M4F): the FPU is off at reset and the first floating-point
    // instruction (newlib's printf has some) would fault. CPACR: full access to CP10 and CP11.
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20;
    __asm__ volatile ("dsb\n\tisb");
#endif
    const uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    initialise_monitor_handles();
    exit(main());
}

// Any fault or unexpected interrupt ends the run with a distinct non-zero code instead of
// hanging until the timeout. The low byte of the IPSR (exception number) is added so a
// HardFault (3) and, say, a UsageFault (6) can be told apart.
void Fault_Handler(void) {
    uint32_t ipsr;
    __asm__ volatile ("mrs %0, ipsr" : "=r" (ipsr));
    _Exit(100 + (int)(ipsr & 0xff));
}

// Vector table: initial SP, reset, then the 14 system exceptions and 32 IRQs (the AN385 and
// AN386 have 32; the nRF51 has 26 and ignores the rest).
__attribute__((section(".isr_vector"), used))
void (*const vector_table[16 + 32])(void) = {
    (void (*)(void))(&_estack),
    Reset_Handler,
    [2 ... 16 + 32 - 1] = Fault_Handler,
};
