#include "convert/bigint_ext.h"

namespace ep {
namespace {
constexpr std::uint8_t kVersion = 131;
constexpr std::uint8_t kSmallInteger = 97;
constexpr std::uint8_t kInteger = 98;
constexpr std::uint8_t kSmallBig = 110;
constexpr std::uint8_t kLargeBig = 111;

void trim(std::vector<std::uint8_t>* magnitude) {
    while (!magnitude->empty() && magnitude->back() == 0) magnitude->pop_back();
}

void from_u64(std::uint64_t v, BigInt* out) {
    out->magnitude.clear();
    for (; v != 0; v >>= 8) out->magnitude.push_back(static_cast<std::uint8_t>(v & 0xff));
}
}  // namespace

std::vector<std::uint8_t> encode_bigint_ext(const BigInt& value) {
    std::vector<std::uint8_t> digits = value.magnitude;
    trim(&digits);
    std::vector<std::uint8_t> out;
    out.reserve(digits.size() + 7);
    out.push_back(kVersion);
    if (digits.size() < 256) {
        out.push_back(kSmallBig);
        out.push_back(static_cast<std::uint8_t>(digits.size()));
    } else {
        auto n = static_cast<std::uint32_t>(digits.size());
        out.push_back(kLargeBig);
        for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(n >> shift));
    }
    out.push_back(value.negative && !digits.empty() ? 1 : 0);
    out.insert(out.end(), digits.begin(), digits.end());
    return out;
}

bool decode_bigint_ext(std::span<const std::uint8_t> ext, BigInt* out) {
    if (ext.size() < 2 || ext[0] != kVersion) return false;
    const std::uint8_t tag = ext[1];
    auto body = ext.subspan(2);
    switch (tag) {
    case kSmallInteger:
        if (body.size() != 1) return false;
        out->negative = false;
        from_u64(body[0], out);
        return true;
    case kInteger: {
        if (body.size() != 4) return false;
        auto raw = static_cast<std::int32_t>((std::uint32_t{body[0]} << 24) | (std::uint32_t{body[1]} << 16) |
                                             (std::uint32_t{body[2]} << 8) | std::uint32_t{body[3]});
        out->negative = raw < 0;
        from_u64(raw < 0 ? static_cast<std::uint64_t>(-static_cast<std::int64_t>(raw)) : static_cast<std::uint64_t>(raw),
                 out);
        return true;
    }
    case kSmallBig:
    case kLargeBig: {
        std::size_t header = tag == kSmallBig ? 1 : 4;
        if (body.size() < header + 1) return false;
        std::size_t n = 0;
        for (std::size_t i = 0; i < header; ++i) n = (n << 8) | body[i];
        if (body.size() != header + 1 + n) return false;
        out->negative = body[header] != 0;
        out->magnitude.assign(body.begin() + static_cast<std::ptrdiff_t>(header + 1), body.end());
        trim(&out->magnitude);
        if (out->magnitude.empty()) out->negative = false;
        return true;
    }
    default:
        return false;
    }
}

}  // namespace ep
