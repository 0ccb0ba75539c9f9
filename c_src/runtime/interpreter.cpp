#include "runtime/interpreter.h"

#include <unordered_map>

#include "context/context.h"
#include "erlang_module/erlang_module.h"
#include "runtime/gil_check.h"
#include "runtime/py_ref.h"

namespace ep {

namespace {
std::mutex enlisted_mutex;
std::unordered_map<PyInterpreterState*, std::weak_ptr<Interpreter>> enlisted;
}  // namespace

void Interpreter::enlist(const std::shared_ptr<Interpreter>& interp) {
    std::lock_guard lock(enlisted_mutex);
    enlisted[interp->state()] = interp;
}

std::uint64_t Interpreter::releases_unfinished_everywhere() {
    std::lock_guard lock(enlisted_mutex);
    std::uint64_t total = 0;
    for (const auto& [state, weak] : enlisted)
        if (auto interp = weak.lock()) total += interp->releases_unfinished();
    return total;
}

std::shared_ptr<Interpreter> Interpreter::current() {
    PyInterpreterState* state = PyInterpreterState_Get();
    std::lock_guard lock(enlisted_mutex);
    auto it = enlisted.find(state);
    return it == enlisted.end() ? nullptr : it->second.lock();
}

Interpreter::Interpreter(PyInterpreterState* state, bool is_main)
    : state_(state), id_(PyInterpreterState_GetID(state)), is_main_(is_main) {}

void Interpreter::release(PyObject* obj, ReleaseKind kind) noexcept {
    if (obj == nullptr) return;
    std::shared_ptr<std::function<void()>> waker;
    {
        std::lock_guard lock(mutex_);
        if (closed_) return;
        try {
            items_.push_back(Item{obj, kind});
        } catch (...) {
            return;  // out of memory in a destructor: leak this one object
        }
        pending_.store(items_.size(), std::memory_order_release);
        queued_.fetch_add(1, std::memory_order_release);
        if (items_.size() == 1) waker = waker_;
    }
    if (waker && *waker) (*waker)();
}

std::size_t Interpreter::drain_releases() {
    if (!holds_gil() || PyThreadState_GetInterpreter(PyThreadState_Get()) != state_) {
        note_gil_violation("Interpreter::drain_releases");
        return 0;
    }
    std::vector<Item> items;
    {
        std::lock_guard lock(mutex_);
        items.swap(items_);
        pending_.store(0, std::memory_order_release);
    }
    // Decref'ing can run __del__, which may release more objects: those land
    // in the queue again and are handled by the next drain.
    for (const Item& item : items) {
        if (item.kind == ReleaseKind::ClearDict && PyDict_Check(item.obj)) empty_namespace(item.obj);
        Py_DECREF(item.obj);
        finished_.fetch_add(1, std::memory_order_release);
    }
    return items.size();
}

void Interpreter::empty_namespace(PyObject* dict) {
    // Newest names first, like a stack unwinding: an object's __del__ still
    // finds the imports and classes defined before it. (A plain clear would
    // empty the dict first and run __del__ methods without their globals.)
    PyRef keys = PyRef::steal(PyDict_Keys(dict));
    if (keys) {
        for (Py_ssize_t i = PyList_GET_SIZE(keys.get()) - 1; i >= 0; --i) {
            if (PyDict_DelItem(dict, PyList_GET_ITEM(keys.get(), i)) < 0) PyErr_Clear();
        }
    }
    PyErr_Clear();
    PyDict_Clear(dict);  // whatever __del__ methods added meanwhile
}

void Interpreter::set_waker(std::function<void()> waker) {
    std::lock_guard lock(mutex_);
    waker_ = std::make_shared<std::function<void()>>(std::move(waker));
}

void Interpreter::close() {
    {
        std::lock_guard lock(enlisted_mutex);
        auto it = enlisted.find(state_);
        if (it != enlisted.end() && it->second.lock().get() == this) enlisted.erase(it);
    }
    std::lock_guard lock(mutex_);
    closed_ = true;
    finished_.fetch_add(items_.size(), std::memory_order_release);
    items_.clear();
    pending_.store(0, std::memory_order_release);
    waker_.reset();
}

void Interpreter::offer_default_context(const std::weak_ptr<Context>& ctx) {
    std::lock_guard lock(default_mutex_);
    auto current = default_context_.lock();
    if (!current || !current->running()) default_context_ = ctx;
}

std::weak_ptr<Context> Interpreter::default_context() const {
    std::lock_guard lock(default_mutex_);
    return default_context_;
}

bool Interpreter::load_erlang_module() {
    PyObject* module = PyImport_ImportModule("erlang");
    if (module == nullptr) return false;
    const ErlangModuleState* st = erlang_module_state(module);
    if (st == nullptr) {
        Py_DECREF(module);
        PyErr_SetString(PyExc_ImportError, "the 'erlang' module found is not erlang_python's");
        return false;
    }
    types_.module = module;
    types_.pid = st->pid_type;
    types_.ref = st->ref_type;
    types_.atom = st->atom_type;
    types_.buffer = st->buffer_type;
    types_.interrupted = st->interrupted;
    types_.caller_var = st->caller_var;
    return true;
}

void Interpreter::clear_erlang_module() {
    Py_CLEAR(types_.module);
    types_ = ErlangTypes{};
}

}  // namespace ep
