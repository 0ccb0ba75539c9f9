#include "context/async_call.h"

namespace ep {

void AsyncCall::set_traceback(ERL_NIF_TERM traceback) {
    std::lock_guard lock(mutex_);
    if (!traceback_env_) traceback_env_.emplace();
    if (!*traceback_env_) return;  // no memory for it: await just has none
    traceback_ = traceback_env_->copy(traceback);
}

bool AsyncCall::traceback(ErlNifEnv* env, ERL_NIF_TERM* out) const {
    std::lock_guard lock(mutex_);
    if (traceback_ == 0) return false;
    *out = enif_make_copy(env, traceback_);
    return true;
}

}  // namespace ep
