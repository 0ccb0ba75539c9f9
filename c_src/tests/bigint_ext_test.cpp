#include "convert/bigint_ext.h"

#include <gtest/gtest.h>

using ep::BigInt;

namespace {
std::vector<std::uint8_t> bytes(std::initializer_list<int> list) {
    std::vector<std::uint8_t> out;
    for (int b : list) out.push_back(static_cast<std::uint8_t>(b));
    return out;
}
}  // namespace

TEST(BigIntExt, EncodesSmallBigWithSign) {
    // 2^64 = <<131,110,9,0, 0,0,0,0,0,0,0,0,1>> (term_to_binary(1 bsl 64))
    BigInt v{false, bytes({0, 0, 0, 0, 0, 0, 0, 0, 1})};
    EXPECT_EQ(ep::encode_bigint_ext(v), bytes({131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
    v.negative = true;
    EXPECT_EQ(ep::encode_bigint_ext(v), bytes({131, 110, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
}

TEST(BigIntExt, TrimsHighZeroBytes) {
    BigInt v{false, bytes({5, 0, 0})};
    EXPECT_EQ(ep::encode_bigint_ext(v), bytes({131, 110, 1, 0, 5}));
}

TEST(BigIntExt, ZeroIsNeverNegative) {
    BigInt v{true, {}};
    EXPECT_EQ(ep::encode_bigint_ext(v), bytes({131, 110, 0, 0}));
}

TEST(BigIntExt, UsesLargeBigPast255Bytes) {
    BigInt v{false, std::vector<std::uint8_t>(300, 0xff)};
    auto ext = ep::encode_bigint_ext(v);
    ASSERT_EQ(ext.size(), 2u + 4 + 1 + 300);
    EXPECT_EQ(ext[1], 111);
    EXPECT_EQ(ext[4], 0x01);
    EXPECT_EQ(ext[5], 0x2c);
    BigInt back;
    ASSERT_TRUE(ep::decode_bigint_ext(ext, &back));
    EXPECT_EQ(back.magnitude, v.magnitude);
    EXPECT_FALSE(back.negative);
}

TEST(BigIntExt, DecodesSmallIntegerAndInteger) {
    BigInt out;
    ASSERT_TRUE(ep::decode_bigint_ext(bytes({131, 97, 200}), &out));
    EXPECT_EQ(out.magnitude, bytes({200}));
    ASSERT_TRUE(ep::decode_bigint_ext(bytes({131, 98, 0xff, 0xff, 0xff, 0xfe}), &out));  // -2
    EXPECT_TRUE(out.negative);
    EXPECT_EQ(out.magnitude, bytes({2}));
}

TEST(BigIntExt, RejectsOtherTermsAndTruncatedInput) {
    BigInt out;
    EXPECT_FALSE(ep::decode_bigint_ext(bytes({131, 100, 0, 1, 'a'}), &out));
    EXPECT_FALSE(ep::decode_bigint_ext(bytes({131, 110, 3, 0, 1}), &out));
    EXPECT_FALSE(ep::decode_bigint_ext(bytes({130, 97, 1}), &out));
    EXPECT_FALSE(ep::decode_bigint_ext({}, &out));
}
