// SPDX-License-Identifier: MIT
#include "crc32.h"

uint32_t aii_crc32(uint32_t crc, const void *data, size_t n) {
    // Bitwise: no 1 KB table in flash; records are 44 bytes, so speed does not matter.
    const uint8_t *p = data;
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0 - (crc & 1)));
        }
    }
    return ~crc;
}
