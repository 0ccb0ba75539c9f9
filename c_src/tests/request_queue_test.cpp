#include "context/request_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

using Queue = ep::RequestQueue<int>;
using namespace std::chrono_literals;

TEST(RequestQueue, RunsInOrderAndTracksTheRunningItem) {
    Queue q;
    auto a = q.push(std::make_unique<int>(1));
    auto b = q.push(std::make_unique<int>(2));
    EXPECT_NE(a, 0u);
    EXPECT_NE(a, b);
    std::uint64_t id = 0;
    auto first = q.start_next(&id);
    EXPECT_EQ(*first, 1);
    EXPECT_EQ(id, a);
    EXPECT_EQ(q.running_id(), a);
    EXPECT_TRUE(q.finish_running());
    EXPECT_EQ(q.running_id(), 0u);
    EXPECT_EQ(*q.start_next(&id), 2);
    EXPECT_EQ(id, b);
}

TEST(RequestQueue, CancelRemovesQueuedItem) {
    Queue q;
    auto a = q.push(std::make_unique<int>(1));
    q.push(std::make_unique<int>(2));
    std::unique_ptr<int> removed;
    EXPECT_EQ(q.cancel(a, &removed), Queue::Cancel::Dequeued);
    EXPECT_EQ(*removed, 1);
    std::uint64_t id = 0;
    EXPECT_EQ(*q.start_next(&id), 2);
}

TEST(RequestQueue, CancelOfRunningItemSuppressesItsReply) {
    Queue q;
    auto a = q.push(std::make_unique<int>(1));
    std::uint64_t id = 0;
    q.start_next(&id);
    std::unique_ptr<int> removed;
    EXPECT_EQ(q.cancel(a, &removed), Queue::Cancel::Running);
    EXPECT_EQ(q.cancelled_running_id(), a);
    EXPECT_FALSE(q.finish_running());
    EXPECT_EQ(q.cancel(a, &removed), Queue::Cancel::NotFound);
}

TEST(RequestQueue, CloseReturnsPendingAndRefusesMore) {
    Queue q;
    q.push(std::make_unique<int>(1));
    q.push(std::make_unique<int>(2));
    auto pending = q.close();
    ASSERT_EQ(pending.size(), 2u);
    EXPECT_EQ(*pending[0], 1);
    EXPECT_TRUE(q.closed());
    EXPECT_EQ(q.push(std::make_unique<int>(3)), 0u);
    q.wait(0ns);  // returns at once once closed
}

TEST(RequestQueue, WakesASleepingConsumer) {
    Queue q;
    std::atomic<int> seen{0};
    std::thread consumer([&] {
        while (seen.load() < 1000) {
            q.wait(0ns);
            std::uint64_t id = 0;
            while (auto item = q.start_next(&id)) {
                q.finish_running();
                seen.fetch_add(1);
            }
            if (q.closed()) break;
        }
    });
    std::vector<std::thread> producers;
    for (int p = 0; p < 4; ++p)
        producers.emplace_back([&] {
            for (int i = 0; i < 250; ++i) q.push(std::make_unique<int>(i));
        });
    for (auto& t : producers) t.join();
    consumer.join();
    EXPECT_EQ(seen.load(), 1000);
}

TEST(RequestQueue, PokeWakesAWaitWithoutAnItem) {
    Queue q;
    std::thread poker([&] {
        std::this_thread::sleep_for(20ms);
        q.poke();
    });
    q.wait(0ns);  // returns once poked
    poker.join();
    std::uint64_t id = 0;
    EXPECT_EQ(q.start_next(&id), nullptr);
    q.poke();
    q.wait(1ms);  // a poke before the wait counts too
}

TEST(RequestQueue, NestedRunningItemsFormAStack) {
    Queue q;
    auto outer = q.push(std::make_unique<int>(1));
    auto inner = q.push(std::make_unique<int>(2));
    std::uint64_t id = 0;
    q.start_next(&id);  // outer runs, then waits for a callback...
    q.start_next(&id);  // ...and serves inner meanwhile
    EXPECT_EQ(q.running_id(), inner);
    std::unique_ptr<int> removed;
    EXPECT_EQ(q.cancel(outer, &removed), Queue::Cancel::Running);
    EXPECT_TRUE(q.is_cancelled(outer));
    EXPECT_FALSE(q.is_cancelled(inner));
    EXPECT_EQ(q.cancelled_running_id(), 0u);  // the innermost is not the cancelled one
    EXPECT_TRUE(q.finish_running());           // inner replies
    EXPECT_EQ(q.running_id(), outer);
    EXPECT_EQ(q.cancelled_running_id(), outer);
    EXPECT_FALSE(q.finish_running());          // outer's reply is suppressed
    EXPECT_EQ(q.running_id(), 0u);
}

TEST(RequestQueue, StartNextIfSkipsOthersAndKeepsTheirOrder) {
    Queue q;
    q.push(std::make_unique<int>(1));
    auto wanted = q.push(std::make_unique<int>(2));
    q.push(std::make_unique<int>(3));
    std::uint64_t id = 0;
    auto even = q.start_next_if([](const int& v) { return v % 2 == 0; }, &id);
    ASSERT_NE(even, nullptr);
    EXPECT_EQ(*even, 2);
    EXPECT_EQ(id, wanted);
    EXPECT_EQ(q.start_next_if([](const int& v) { return v > 10; }, &id), nullptr);
    q.finish_running();
    EXPECT_EQ(*q.start_next(&id), 1);
    q.finish_running();
    EXPECT_EQ(*q.start_next(&id), 3);
}

TEST(RequestQueue, WaitForIgnoresItemsThatDoNotMatch) {
    Queue q;
    q.push(std::make_unique<int>(1));
    std::thread producer([&] {
        std::this_thread::sleep_for(20ms);
        q.push(std::make_unique<int>(2));
    });
    q.wait_for([](const int& v) { return v == 2; }, 0ns);  // 1 is there all along; waits for 2
    producer.join();
    EXPECT_EQ(q.size(), 2u);
}
