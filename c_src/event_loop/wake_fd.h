// A file descriptor another thread makes readable to wake a thread that
// sleeps in a poller (epoll, select): the asyncio loop watches one with
// add_reader, so an idle loop sleeps in the kernel and costs no CPU.
#pragma once

#include <atomic>
#include <string>

namespace ep {

class WakeFd {
public:
    WakeFd() = default;
    WakeFd(const WakeFd&) = delete;
    WakeFd& operator=(const WakeFd&) = delete;
    ~WakeFd();

    // Makes the descriptor (an eventfd). False, with a reason, if it cannot.
    bool open(std::string* error);
    int fd() const { return fd_; }

    // Any thread, never blocks. Wakes the reader unless a wake-up is already
    // pending; returns true when this call wrote one.
    bool signal();

    // The reader, before it looks at what it was woken for: consumes the
    // pending wake-up, so work queued after this call signals again.
    void consume();

    // A wake-up is pending (signalled since the last consume).
    bool pending() const { return pending_.load(std::memory_order_acquire); }

private:
    int fd_ = -1;
    std::atomic<bool> pending_{false};
};

}  // namespace ep
