#ifndef CCRC32C_H
#define CCRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Whether this CPU has a CRC-32C instruction (x86-64 SSE 4.2, or ARMv8 CRC).
int ccrc32c_hardware_available(void);

/// CRC-32C (Castagnoli) of `length` bytes continuing from `crc` (pass 0xFFFFFFFF to start;
/// the caller inverts the result), with the CPU's instruction. Only call it when
/// ccrc32c_hardware_available() returned 1.
uint32_t ccrc32c_hardware_update(uint32_t crc, const void *bytes, size_t length);

#endif
