// Process-independent erl_nif environments owned by C++ objects.
#pragma once

#include <erl_nif.h>

#include <utility>

namespace ep {

// Owns an environment allocated with enif_alloc_env. Terms that cross from a
// caller to a context thread are copied into one of these, because the
// caller's own environment dies when its NIF call returns.
class MsgEnv {
public:
    MsgEnv() : env_(enif_alloc_env()) {}
    MsgEnv(const MsgEnv&) = delete;
    MsgEnv& operator=(const MsgEnv&) = delete;
    MsgEnv(MsgEnv&& other) noexcept : env_(std::exchange(other.env_, nullptr)) {}
    MsgEnv& operator=(MsgEnv&& other) noexcept {
        if (this != &other) {
            if (env_) enif_free_env(env_);
            env_ = std::exchange(other.env_, nullptr);
        }
        return *this;
    }
    ~MsgEnv() {
        if (env_) enif_free_env(env_);
    }

    ErlNifEnv* get() const { return env_; }
    explicit operator bool() const { return env_ != nullptr; }
    ERL_NIF_TERM copy(ERL_NIF_TERM term) const { return enif_make_copy(env_, term); }

    // Sends msg (built in this env) to pid; the env is left empty for reuse.
    // `caller_env` is the calling NIF's or callback's env, or nullptr on a
    // thread the VM did not create (erl_nif's rule for enif_send).
    bool send(const ErlNifPid& pid, ERL_NIF_TERM msg, ErlNifEnv* caller_env = nullptr) {
        bool sent = enif_send(caller_env, &pid, env_, msg) != 0;
        enif_clear_env(env_);
        return sent;
    }

    // As send, but a failed send leaves the env and its terms as they were,
    // for another try (enif_send invalidates them only when it succeeds).
    bool try_send(const ErlNifPid& pid, ERL_NIF_TERM msg, ErlNifEnv* caller_env = nullptr) {
        if (enif_send(caller_env, &pid, env_, msg) == 0) return false;
        enif_clear_env(env_);
        return true;
    }

private:
    ErlNifEnv* env_;
};

}  // namespace ep
