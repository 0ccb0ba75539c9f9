#include "context/stream.h"

#include "context/context.h"
#include "context/request.h"
#include "erl/atoms.h"
#include "erl/erl_terms.h"
#include "runtime/interpreter.h"

namespace ep {

std::atomic<std::size_t> Stream::alive_{0};

Stream::Stream(const ErlNifPid& owner, std::size_t window, std::shared_ptr<Interpreter> interp,
               std::weak_ptr<Context> context)
    : owner_(owner), window_(window), interp_(std::move(interp)), context_(std::move(context)) {
    alive_.fetch_add(1, std::memory_order_relaxed);
}

Stream::~Stream() {
    // May run on any thread: the iterator is its interpreter's to release
    // (normally the context closed it long before).
    interp_->release(iterator_, ReleaseKind::Decref);
    alive_.fetch_sub(1, std::memory_order_relaxed);
}

void Stream::set_ref(ERL_NIF_TERM ref) {
    std::lock_guard lock(mutex_);
    // Cancelled already (an owner dead before the stream was made): holding
    // its own Ref now would keep it alive for ever.
    if (cancelled_ || ended_) return;
    ref_ = ref_env_.copy(ref);
}

bool Stream::ack(std::size_t n) {
    std::lock_guard lock(mutex_);
    unacked_ = n >= unacked_ ? 0 : unacked_ - n;
    if (!waiting_ || cancelled_ || ended_ || (window_ != 0 && unacked_ >= window_)) return false;
    waiting_ = false;
    return true;
}

bool Stream::cancel() {
    std::lock_guard lock(mutex_);
    if (cancelled_) return false;
    cancelled_ = true;
    bool had_ended = ended_;
    end_locked();
    return !had_ended;
}

void Stream::end_with_error(ErlNifEnv* env, ERL_NIF_TERM reason, ErlNifEnv* caller_env) {
    std::lock_guard lock(mutex_);
    if (!cancelled_ && !ended_) send_locked(env, make_error(env, reason), false, caller_env);
    else enif_clear_env(env);
    end_locked();
}

void Stream::close_on_context() {
    if (auto ctx = context()) ctx->submit_internal(Request::internal(Op::StreamClose, shared_from_this()));
}

void Stream::mark_printed() {
    std::lock_guard lock(mutex_);
    relayed_ = true;
}

void Stream::forward(ErlNifEnv* env, ERL_NIF_TERM message, ErlNifEnv* caller_env) {
    std::lock_guard lock(mutex_);
    if (!cancelled_) enif_send(caller_env, &owner_, env, message);
    enif_clear_env(env);
}

Stream::Gate Stream::gate() {
    std::lock_guard lock(mutex_);
    if (cancelled_ || ended_) return Gate::Stop;
    if (window_ != 0 && unacked_ >= window_) {
        waiting_ = true;
        return Gate::Wait;
    }
    return Gate::Go;
}

bool Stream::send_item(ErlNifEnv* env, ERL_NIF_TERM item, bool deferred_maps) {
    std::lock_guard lock(mutex_);
    if (cancelled_ || ended_) {
        enif_clear_env(env);
        return false;
    }
    send_locked(env, enif_make_tuple2(env, atoms::data, item), deferred_maps, nullptr);
    ++unacked_;
    return true;
}

void Stream::end_done(ErlNifEnv* env) {
    std::lock_guard lock(mutex_);
    if (!cancelled_ && !ended_) send_locked(env, atoms::done, false, nullptr);
    end_locked();
}

bool Stream::ended() const {
    std::lock_guard lock(mutex_);
    return ended_ || cancelled_;
}

void Stream::send_locked(ErlNifEnv* env, ERL_NIF_TERM payload, bool deferred_maps, ErlNifEnv* caller_env) {
    ERL_NIF_TERM ref = enif_make_copy(env, ref_);
    ERL_NIF_TERM message = enif_make_tuple3(env, atoms::py_stream, ref, payload);
    relayed_ = relayed_ || deferred_maps;
    if (relayed_) {
        // py_relay builds the maps, or writes the output printed so far,
        // and passes the message on (through
        // forward, which keeps the cancel promise); every later message
        // takes the same way, so the owner sees them in order.
        ErlNifPid relay;
        if (enif_whereis_pid(caller_env, atoms::py_relay, &relay) &&
            enif_send(caller_env, &relay, env,
                      enif_make_tuple4(env, atoms::py_stream_relay_tag, ref, make_pid(env, owner_), message))) {
            enif_clear_env(env);
            return;
        }
        if (deferred_maps) {
            message = enif_make_tuple3(env, atoms::py_stream, ref, make_error(env, atoms::relay_not_running));
            end_locked();
        }
    }
    enif_send(caller_env, &owner_, env, message);
    enif_clear_env(env);
}

void Stream::end_locked() {
    ended_ = true;
    // The Ref held itself alive through this copy while the stream ran;
    // whoever called still holds the stream.
    ref_ = 0;
    enif_clear_env(ref_env_.get());
}

}  // namespace ep
