#include "context/source_text.h"

#include <gtest/gtest.h>

using ep::dedent;

TEST(Dedent, LeavesUnindentedSourceAlone) {
    EXPECT_EQ(dedent("x = 1\nif x:\n    y = 2\n"), "x = 1\nif x:\n    y = 2\n");
}

TEST(Dedent, StripsTheCommonMargin) {
    EXPECT_EQ(dedent("\n    def f():\n        return 1\n    "), "\ndef f():\n    return 1\n");
}

TEST(Dedent, BlankLinesDoNotLimitTheMargin) {
    EXPECT_EQ(dedent("  a = 1\n\n  b = 2"), "a = 1\n\nb = 2");
    EXPECT_EQ(dedent("    a = 1\n  \n    b = 2"), "a = 1\n\nb = 2");
}

TEST(Dedent, MixedMarginsUseTheSharedPrefix) {
    EXPECT_EQ(dedent("    a\n  b"), "  a\nb");
    EXPECT_EQ(dedent("\ta\n\t\tb"), "a\n\tb");
    // a tab and spaces share no prefix: nothing is stripped
    EXPECT_EQ(dedent("\ta\n    b"), "\ta\n    b");
}

TEST(Dedent, EmptyAndWhitespaceOnly) {
    EXPECT_EQ(dedent(""), "");
    EXPECT_EQ(dedent("   \n  "), "   \n  ");
}
