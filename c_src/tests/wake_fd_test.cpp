#include "event_loop/wake_fd.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <thread>

namespace {

bool readable(int fd, int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

TEST(WakeFd, SignalMakesReadableAndConsumeClears) {
    ep::WakeFd w;
    std::string error;
    ASSERT_TRUE(w.open(&error)) << error;
    EXPECT_FALSE(readable(w.fd(), 0));
    EXPECT_TRUE(w.signal());
    EXPECT_TRUE(readable(w.fd(), 0));
    w.consume();
    EXPECT_FALSE(readable(w.fd(), 0));
}

TEST(WakeFd, BurstsCoalesceIntoOneWrite) {
    ep::WakeFd w;
    std::string error;
    ASSERT_TRUE(w.open(&error)) << error;
    EXPECT_TRUE(w.signal());
    EXPECT_FALSE(w.signal());
    EXPECT_FALSE(w.signal());
    w.consume();
    EXPECT_TRUE(w.signal());  // after consume, the next signal writes again
    EXPECT_TRUE(readable(w.fd(), 0));
}

TEST(WakeFd, NoWakeupIsLostBetweenThreads) {
    ep::WakeFd w;
    std::string error;
    ASSERT_TRUE(w.open(&error)) << error;
    constexpr int kItems = 300000;
    std::atomic<int> produced{0};
    std::thread producer([&] {
        for (int i = 0; i < kItems; ++i) {
            produced.fetch_add(1, std::memory_order_release);
            w.signal();
            // Small pauses so signals land at every point of a consume().
            if (i % 16 == 0) std::this_thread::yield();
        }
    });
    int seen = 0;
    // The consumer only looks at the counter after a wake-up, as the loop
    // does with its queue; it must always be woken for the last item.
    while (seen < kItems) {
        // Only a lost wake-up waits the full minute: any machine is faster than that.
        ASSERT_TRUE(readable(w.fd(), 60000)) << "lost wake-up at " << seen;
        w.consume();
        seen = produced.load(std::memory_order_acquire);
    }
    producer.join();
}

}  // namespace
