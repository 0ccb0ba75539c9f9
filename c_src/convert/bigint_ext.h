// Integers of any size in the Erlang external term format.
//
// erl_nif has no call that reads or builds a bignum beyond 64 bits, so those
// cross the boundary as external-format binaries (enif_term_to_binary /
// enif_binary_to_term). This file holds the byte-level part, which needs
// neither the VM nor Python and is unit-tested on its own.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace ep {

struct BigInt {
    bool negative = false;
    std::vector<std::uint8_t> magnitude;  // little-endian, no high zero bytes
};

// External format (with the leading version byte 131) of an integer.
std::vector<std::uint8_t> encode_bigint_ext(const BigInt& value);

// Reads an integer in external format; false when `ext` holds anything else.
bool decode_bigint_ext(std::span<const std::uint8_t> ext, BigInt* out);

}  // namespace ep
