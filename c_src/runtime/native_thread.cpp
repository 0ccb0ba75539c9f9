#include "runtime/native_thread.h"

#include <pthread.h>

#include <cstring>
#include <memory>

namespace ep {
namespace {
struct Start {
    std::function<void()> body;
    std::string name;
};

void* trampoline(void* arg) {
    std::unique_ptr<Start> start(static_cast<Start*>(arg));
    pthread_setname_np(pthread_self(), start->name.substr(0, 15).c_str());
    try {
        start->body();
    } catch (...) {
        // A thread body must not throw; nothing sensible can be reported here.
    }
    return nullptr;
}
}  // namespace

bool spawn_detached_thread(std::function<void()> body, const std::string& name, std::string* error,
                           std::size_t stack_bytes) {
    pthread_attr_t attr;
    if (int rc = pthread_attr_init(&attr); rc != 0) {
        *error = std::string("pthread_attr_init: ") + std::strerror(rc);
        return false;
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, stack_bytes);
    auto start = std::make_unique<Start>(Start{std::move(body), name});
    pthread_t thread;
    int rc = pthread_create(&thread, &attr, trampoline, start.get());
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        *error = std::string("pthread_create: ") + std::strerror(rc);
        return false;
    }
    start.release();  // the trampoline owns it now
    return true;
}

}  // namespace ep
