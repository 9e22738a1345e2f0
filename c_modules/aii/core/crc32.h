// SPDX-License-Identifier: MIT
// CRC-32 as in zlib / Python's zlib.crc32 (reflected, polynomial 0xEDB88320).
#ifndef AII_CRC32_H
#define AII_CRC32_H

#include <stddef.h>
#include <stdint.h>

// Pass crc = 0 to start; feed the previous result to continue over more data.
uint32_t aii_crc32(uint32_t crc, const void *data, size_t n);

#endif // AII_CRC32_H
