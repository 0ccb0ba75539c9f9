// A call started by py:spawn_call. Its Ref is a resource holding this, so
// await can tell who may wait for it and find the traceback of a Python
// exception, and parallel can cancel it.
#pragma once

#include <erl_nif.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>

#include "erl/msg_env.h"

namespace ep {

class Context;

class AsyncCall {
public:
    AsyncCall(const ErlNifPid& owner, std::weak_ptr<Context> context) : owner_(owner), context_(std::move(context)) {}
    AsyncCall(const AsyncCall&) = delete;
    AsyncCall& operator=(const AsyncCall&) = delete;

    // The process the answer goes to, the only one that may await it.
    const ErlNifPid& owner() const { return owner_; }
    std::shared_ptr<Context> context() const { return context_.lock(); }

    // The request's id on its context once queued (0 before, or when it never was).
    void set_request_id(std::uint64_t id) { id_.store(id, std::memory_order_release); }
    std::uint64_t request_id() const { return id_.load(std::memory_order_acquire); }

    // Context thread: the formatted traceback of the exception it raised
    // (a binary), before the answer is sent. Copied.
    void set_traceback(ERL_NIF_TERM traceback);
    // The traceback copied into `env`, or false if there is none.
    bool traceback(ErlNifEnv* env, ERL_NIF_TERM* out) const;

private:
    ErlNifPid owner_;
    std::weak_ptr<Context> context_;
    std::atomic<std::uint64_t> id_{0};
    mutable std::mutex mutex_;
    std::optional<MsgEnv> traceback_env_;  // made only for a call that raised
    ERL_NIF_TERM traceback_ = 0;
};

}  // namespace ep
