#include "convert/shared_bytes.h"

#include <atomic>
#include <new>

#include "erl/resource_type.h"
#include "runtime/interpreter.h"

namespace ep {
namespace {

struct SharedBytes {
    PyObject* obj;
    std::shared_ptr<Interpreter> interp;
};

ErlNifResourceType* shared_bytes_type = nullptr;
std::atomic<std::size_t> alive{0};

// On whatever thread the VM frees the binary: only queue the release
// (design.md fact 11). A closed interpreter drops the pointer unread.
void shared_bytes_dtor(ErlNifEnv*, void* raw) {
    auto* held = static_cast<SharedBytes*>(raw);
    held->interp->release(held->obj, ReleaseKind::Decref);
    held->~SharedBytes();
    alive.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace

bool open_shared_bytes_type(ErlNifEnv* load_env) {
    shared_bytes_type = open_resource_type(load_env, "py_shared_bytes", shared_bytes_dtor);
    return shared_bytes_type != nullptr;
}

ERL_NIF_TERM share_bytes(ErlNifEnv* env, PyObject* owner, const char* data, std::size_t size,
                         const std::shared_ptr<Interpreter>& interp) {
    void* raw = enif_alloc_resource(shared_bytes_type, sizeof(SharedBytes));
    new (raw) SharedBytes{Py_NewRef(owner), interp};
    alive.fetch_add(1, std::memory_order_relaxed);
    ERL_NIF_TERM bin = enif_make_resource_binary(env, raw, data, size);
    enif_release_resource(raw);  // the binary holds it now
    return bin;
}

std::size_t shared_bytes_alive() { return alive.load(std::memory_order_relaxed); }

}  // namespace ep
