#include "context/lru_cache.h"

#include <gtest/gtest.h>

#include <memory>

TEST(LruCache, FindsInsertedValues) {
    ep::LruCache<int> cache(4);
    cache.insert("a", 1);
    cache.insert("b", 2);
    ASSERT_NE(cache.find("a"), nullptr);
    EXPECT_EQ(*cache.find("a"), 1);
    EXPECT_EQ(cache.find("zz"), nullptr);
}

TEST(LruCache, EvictsLeastRecentlyUsed) {
    ep::LruCache<int> cache(2);
    cache.insert("a", 1);
    cache.insert("b", 2);
    ASSERT_NE(cache.find("a"), nullptr);  // a is now the most recent
    cache.insert("c", 3);
    EXPECT_EQ(cache.size(), 2u);
    EXPECT_EQ(cache.find("b"), nullptr);
    EXPECT_NE(cache.find("a"), nullptr);
    EXPECT_NE(cache.find("c"), nullptr);
}

TEST(LruCache, ReplacesExistingKeyAndHoldsMoveOnlyValues) {
    ep::LruCache<std::unique_ptr<int>> cache(2);
    cache.insert("k", std::make_unique<int>(1));
    cache.insert("k", std::make_unique<int>(7));
    EXPECT_EQ(cache.size(), 1u);
    EXPECT_EQ(**cache.find("k"), 7);
    cache.clear();
    EXPECT_EQ(cache.size(), 0u);
    EXPECT_EQ(cache.find("k"), nullptr);
}

TEST(LruCache, LookupDoesNotNeedAnOwnedKey) {
    ep::LruCache<int> cache(8);
    std::string key = "source = 1";
    cache.insert(key, 5);
    std::string_view view(key.data(), key.size());
    EXPECT_EQ(*cache.find(view), 5);
}
