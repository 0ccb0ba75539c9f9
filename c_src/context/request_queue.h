// The queue between callers (scheduler threads) and one context thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace ep {

// Many producers, one consumer. Besides FIFO order it tracks which items are
// running, so a caller that timed out can cancel its request whether it is
// still queued or already running, and knows whether a reply will still come.
// Running items form a stack: while a request waits for an Erlang callback
// the consumer serves further requests, nested inside it.
//
// The consumer spins briefly before sleeping: a round trip that finds the
// thread awake costs a few hundred nanoseconds, one that has to wake it with a
// futex costs tens of microseconds on this hardware.
template <class T>
class RequestQueue {
public:
    enum class Cancel {
        Dequeued,  // it was still queued and never runs; no reply comes
        Running,   // it is running; its reply will be suppressed
        NotFound,  // already finished (its reply is sent or on its way)
    };

    enum class Push {
        Queued,
        Closed,  // the queue takes nothing more
        Full,    // it holds `limit` items already (the item is handed back)
    };

    // Adds an item and returns its id (never 0), or 0 when the queue is closed.
    std::uint64_t push(std::unique_ptr<T> item) {
        Push status;
        return push(item, SIZE_MAX, &status);
    }

    // Adds an item unless the queue is closed or holds `limit` items already;
    // its id (never 0), or 0 with `item` left to the caller.
    std::uint64_t push(std::unique_ptr<T>& item, std::size_t limit, Push* status) {
        bool wake = false;
        std::uint64_t id = 0;
        {
            std::lock_guard lock(mutex_);
            if (closed_) {
                *status = Push::Closed;
                return 0;
            }
            if (items_.size() >= limit) {
                refused_.fetch_add(1, std::memory_order_relaxed);
                *status = Push::Full;
                return 0;
            }
            id = ++last_id_;
            items_.push_back(Entry{id, std::move(item)});
            size_.store(items_.size(), std::memory_order_release);
            if (items_.size() > peak_.load(std::memory_order_relaxed))
                peak_.store(items_.size(), std::memory_order_relaxed);
            wake = sleeping_;
        }
        if (wake) cv_.notify_one();
        *status = Push::Queued;
        return id;
    }

    // Blocks until an item is queued, the queue is poked or closed. Spins
    // for up to `spin` first.
    void wait(std::chrono::nanoseconds spin) {
        if (spin.count() > 0) {
            auto deadline = std::chrono::steady_clock::now() + spin;
            for (unsigned i = 1;; ++i) {
                if (size_.load(std::memory_order_acquire) != 0 || closed_flag_.load(std::memory_order_acquire) ||
                    poked_.load(std::memory_order_acquire))
                    break;
                if ((i & 63) == 0) {
                    if (std::chrono::steady_clock::now() >= deadline) break;
                    std::this_thread::yield();
                }
            }
        }
        std::unique_lock lock(mutex_);
        sleeping_ = true;
        cv_.wait(lock, [this] { return !items_.empty() || closed_ || poked_.load(std::memory_order_relaxed); });
        sleeping_ = false;
        poked_.store(false, std::memory_order_relaxed);
    }

    // Wakes the consumer without an item (it has other work: releases).
    void poke() {
        bool wake = false;
        {
            std::lock_guard lock(mutex_);
            poked_.store(true, std::memory_order_release);
            wake = sleeping_;
        }
        if (wake) cv_.notify_one();
    }

    // Blocks until an item satisfying `pred` is queued, the queue is poked
    // or closed. Spins on pokes (how replies arrive) for up to `spin` first.
    template <class Pred>
    void wait_for(Pred pred, std::chrono::nanoseconds spin) {
        if (spin.count() > 0) {
            auto deadline = std::chrono::steady_clock::now() + spin;
            for (unsigned i = 1;; ++i) {
                if (poked_.load(std::memory_order_acquire) || closed_flag_.load(std::memory_order_acquire)) break;
                if ((i & 63) == 0) {
                    if (std::chrono::steady_clock::now() >= deadline) break;
                    std::this_thread::yield();
                }
            }
        }
        std::unique_lock lock(mutex_);
        sleeping_ = true;
        cv_.wait(lock, [&] {
            if (closed_ || poked_.load(std::memory_order_relaxed)) return true;
            for (const Entry& entry : items_)
                if (pred(*entry.item)) return true;
            return false;
        });
        sleeping_ = false;
        poked_.store(false, std::memory_order_relaxed);
    }

    // As start_next, for the oldest item satisfying `pred`; the others keep
    // their places.
    template <class Pred>
    std::unique_ptr<T> start_next_if(Pred pred, std::uint64_t* id) {
        std::lock_guard lock(mutex_);
        for (auto it = items_.begin(); it != items_.end(); ++it) {
            if (!pred(*it->item)) continue;
            Entry entry = std::move(*it);
            items_.erase(it);
            size_.store(items_.size(), std::memory_order_release);
            running_.push_back(Running{entry.id, false});
            *id = entry.id;
            return std::move(entry.item);
        }
        return nullptr;
    }

    // Takes the oldest item and records it as running (on top of any
    // running already).
    std::unique_ptr<T> start_next(std::uint64_t* id) {
        std::lock_guard lock(mutex_);
        if (items_.empty()) return nullptr;
        Entry entry = std::move(items_.front());
        items_.pop_front();
        size_.store(items_.size(), std::memory_order_release);
        running_.push_back(Running{entry.id, false});
        *id = entry.id;
        return std::move(entry.item);
    }

    // Ends the innermost running item. True when its reply must be sent;
    // `interrupted` says whether interrupt_running() was called for it.
    bool finish_running(bool* interrupted = nullptr) {
        std::lock_guard lock(mutex_);
        if (running_.empty()) return false;
        bool send = !running_.back().cancelled;
        if (interrupted) *interrupted = running_.back().interrupted;
        running_.pop_back();
        return send;
    }

    // Marks the innermost running item as interrupted on request (its
    // reply is still sent): an interrupt is wanted once. Its id, or 0 when
    // nothing runs.
    std::uint64_t interrupt_running() {
        std::lock_guard lock(mutex_);
        if (running_.empty()) return 0;
        running_.back().interrupted = true;
        running_.back().interrupt_wanted = true;
        return running_.back().id;
    }

    // True when `id` is the innermost running item and an interrupt should
    // be raised in it: it was cancelled, or interrupt_running() asked for one
    // not yet delivered.
    bool innermost_wants_interrupt(std::uint64_t id) const {
        std::lock_guard lock(mutex_);
        return !running_.empty() && running_.back().id == id &&
               (running_.back().cancelled || running_.back().interrupt_wanted);
    }

    // The interrupt interrupt_running() asked for in running item `id` is
    // taken care of (raised, or the request gave up its wait for it); true
    // if one was wanted. Code that catches it and goes on is not asked again.
    bool take_interrupt(std::uint64_t id) {
        std::lock_guard lock(mutex_);
        for (Running& r : running_) {
            if (r.id != id) continue;
            bool wanted = r.interrupt_wanted;
            r.interrupt_wanted = false;
            return wanted;
        }
        return false;
    }

    // Cancels item `id`. A dequeued item is handed back through `removed` so
    // the caller destroys it outside the lock.
    Cancel cancel(std::uint64_t id, std::unique_ptr<T>* removed) {
        std::lock_guard lock(mutex_);
        for (Running& r : running_) {
            if (id != 0 && r.id == id) {
                r.cancelled = true;
                return Cancel::Running;
            }
        }
        for (auto it = items_.begin(); it != items_.end(); ++it) {
            if (it->id == id) {
                *removed = std::move(it->item);
                items_.erase(it);
                size_.store(items_.size(), std::memory_order_release);
                return Cancel::Dequeued;
            }
        }
        return Cancel::NotFound;
    }

    // The innermost running item's id if it has been cancelled, else 0.
    std::uint64_t cancelled_running_id() const {
        std::lock_guard lock(mutex_);
        return !running_.empty() && running_.back().cancelled ? running_.back().id : 0;
    }

    // The innermost running item's id, or 0.
    std::uint64_t running_id() const {
        std::lock_guard lock(mutex_);
        return running_.empty() ? 0 : running_.back().id;
    }

    // Runs f() under the queue's lock unless the innermost running item has
    // been cancelled: a cancel that returns has either seen f's effect or
    // stopped it. f must not block (it may send a message).
    template <class F>
    bool unless_running_cancelled(F&& f) const {
        std::lock_guard lock(mutex_);
        if (running_.empty() || running_.back().cancelled) return false;
        f();
        return true;
    }

    // True when running item `id` (innermost or not) has been cancelled.
    bool is_cancelled(std::uint64_t id) const {
        std::lock_guard lock(mutex_);
        for (const Running& r : running_)
            if (r.id == id) return r.cancelled;
        return false;
    }



    // Refuses further pushes and returns everything still queued, oldest
    // first. The running item is left alone: it still finishes and replies.
    std::deque<std::unique_ptr<T>> close() {
        std::deque<std::unique_ptr<T>> pending;
        {
            std::lock_guard lock(mutex_);
            closed_ = true;
            closed_flag_.store(true, std::memory_order_release);
            for (auto& entry : items_) pending.push_back(std::move(entry.item));
            items_.clear();
            size_.store(0, std::memory_order_release);
        }
        cv_.notify_all();
        return pending;
    }

    bool closed() const { return closed_flag_.load(std::memory_order_acquire); }
    std::size_t size() const { return size_.load(std::memory_order_acquire); }
    std::size_t peak() const { return peak_.load(std::memory_order_relaxed); }        // the most ever queued
    std::uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }  // pushes past the limit

private:
    struct Entry {
        std::uint64_t id;
        std::unique_ptr<T> item;
    };
    struct Running {
        std::uint64_t id;
        bool cancelled;
        bool interrupted = false;       // by interrupt_running(): answer {error, interrupted}
        bool interrupt_wanted = false;  // ... and that interrupt is still to be raised
    };

    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<Entry> items_;
    std::uint64_t last_id_ = 0;
    std::vector<Running> running_;  // innermost last
    bool sleeping_ = false;
    bool closed_ = false;
    std::atomic<bool> closed_flag_{false};
    std::atomic<bool> poked_{false};
    std::atomic<std::size_t> size_{0};
    std::atomic<std::size_t> peak_{0};
    std::atomic<std::uint64_t> refused_{0};
};

}  // namespace ep
