// A stream (spec §9): the items of a Python iterator (a generator, any
// iterable, an async generator) sent to an owner process one message each,
// {py_stream, Ref, {data, V}}, then {py_stream, Ref, done} or
// {py_stream, Ref, {error, R}}. It advances in steps queued on its context
// like any request, so a stream that waits (on its window, or for the
// owner's acks) never holds the context. This object is its state; the
// Python side is driven by StreamDriver on the context thread.
#pragma once

#include <Python.h>
#include <erl_nif.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

#include "erl/msg_env.h"

namespace ep {

class Context;
class Env;
class Interpreter;

class Stream : public std::enable_shared_from_this<Stream> {
public:
    // `window`: at most this many items unacknowledged; 0 for no limit.
    Stream(const ErlNifPid& owner, std::size_t window, std::shared_ptr<Interpreter> interp,
           std::weak_ptr<Context> context);
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    ~Stream();

    const ErlNifPid& owner() const { return owner_; }
    // The Erlang call the stream was started for (its steps run nested in
    // the context waiting for that call), or 0. Set before it is queued.
    void set_callback_parent(std::uint64_t parent) { callback_parent_ = parent; }
    std::uint64_t callback_parent() const { return callback_parent_; }
    std::shared_ptr<Context> context() const { return context_.lock(); }
    const std::shared_ptr<Interpreter>& interpreter() const { return interp_; }

    // The Ref its messages carry (a resource holding this stream), copied.
    // Held until the stream ends, so a running stream lives on whoever
    // drops its Ref.
    void set_ref(ERL_NIF_TERM ref);

    // Any thread. The owner took `n` more items. True when the stream had
    // stopped at its window and a step must be queued now.
    bool ack(std::size_t n);
    // Any thread. Once this returns no message of the stream is sent. True
    // the first time for a stream that has not ended: its iterator must be
    // closed on its context (a StreamClose request).
    bool cancel();
    // Any thread. Ends the stream with {error, Reason} unless it has ended
    // (or been cancelled); `env` holds the reason.
    void end_with_error(ErlNifEnv* env, ERL_NIF_TERM reason, ErlNifEnv* caller_env = nullptr);
    // Context thread: the stream printed (erlang._write went through
    // py_relay); its later messages go that way too, behind the text.
    void mark_printed();
    // py_relay built the maps of a relayed message (or wrote the output
    // before it): pass it on, unless
    // the stream was cancelled meanwhile. `env` holds `message`.
    void forward(ErlNifEnv* env, ERL_NIF_TERM message, ErlNifEnv* caller_env);

    // Context thread, before producing an item.
    enum class Gate : std::uint8_t {
        Go,    // send one more
        Wait,  // the window is full: an ack queues the next step
        Stop,  // cancelled or ended
    };
    Gate gate();
    // Context thread: sends {data, Item} (built in `env`, cleared after).
    // False when the stream was cancelled meanwhile (nothing sent).
    bool send_item(ErlNifEnv* env, ERL_NIF_TERM item, bool deferred_maps);
    // Context thread: the iterator is exhausted.
    void end_done(ErlNifEnv* env);
    bool ended() const;

    // Context thread, GIL held. The iterator (owned); nullptr before the
    // start ran, or once closed.
    void set_iterator(PyObject* iterator, bool async) {
        iterator_ = iterator;
        async_ = async;
    }
    PyObject* iterator() const { return iterator_; }
    bool is_async() const { return async_; }
    PyObject* take_iterator() {
        PyObject* it = iterator_;
        iterator_ = nullptr;
        return it;
    }

    // The env the stream runs in, held until its iterator is closed: the
    // generator's globals must outlive it (its finally may use them), even
    // when the process that owned the env has gone. Set before the stream
    // is queued; released by the context thread when it closes the stream.
    void hold_env(std::shared_ptr<Env> env) { env_ = std::move(env); }
    std::shared_ptr<Env> release_env() { return std::move(env_); }

    // Any thread: queues the closing of the iterator on the stream's context
    // (after a cancel or an end decided elsewhere). A stopped context has
    // closed it already.
    void close_on_context();

    static std::size_t alive() { return alive_.load(std::memory_order_relaxed); }

private:
    // Lock held. {py_stream, Ref, Payload} to the owner, or through the relay
    // once one message had maps only a scheduler may build (order is kept).
    void send_locked(ErlNifEnv* env, ERL_NIF_TERM payload, bool deferred_maps, ErlNifEnv* caller_env);
    void end_locked();

    const ErlNifPid owner_;
    const std::size_t window_;
    const std::shared_ptr<Interpreter> interp_;
    const std::weak_ptr<Context> context_;
    std::uint64_t callback_parent_ = 0;

    mutable std::mutex mutex_;
    MsgEnv ref_env_;
    ERL_NIF_TERM ref_ = 0;
    std::size_t unacked_ = 0;
    bool waiting_ = false;    // stopped at the window, no step queued
    bool cancelled_ = false;
    bool ended_ = false;
    bool relayed_ = false;

    // Context thread only (GIL held).
    PyObject* iterator_ = nullptr;
    std::shared_ptr<Env> env_;
    bool async_ = false;

    static std::atomic<std::size_t> alive_;
};

}  // namespace ep
