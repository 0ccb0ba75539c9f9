#include "context/handle.h"

namespace ep {

std::atomic<std::size_t> Handle::alive_{0};

Handle::Handle(PyObject* obj, std::shared_ptr<Interpreter> interp, std::weak_ptr<Context> context)
    : obj_(obj), interp_(std::move(interp)), context_(std::move(context)) {
    alive_.fetch_add(1, std::memory_order_relaxed);
}

Handle::~Handle() {
    interp_->release(obj_, ReleaseKind::Decref);
    alive_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace ep
