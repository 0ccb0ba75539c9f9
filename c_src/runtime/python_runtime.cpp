#include "runtime/python_runtime.h"


#include <Python.h>
#include <dlfcn.h>
#include <signal.h>
#include <erl_nif.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "context/current_call.h"
#include "erlang_module/erlang_module.h"
#include "runtime/interrupter.h"
#include "runtime/native_thread.h"
#include "runtime/py_errors.h"
#include "runtime/py_ref.h"
#include "erlang_module/python_logging.h"

namespace ep {
namespace {

// The service thread is the thread that initialised Python (so Python sees
// it as the main thread). After start-up it idles without the GIL and wakes
// to release objects queued for the main interpreter when no worker context
// happens to do it. Interrupts for worker contexts go through `interrupter`,
// a thread of its own, as for every subinterpreter context.
class Service {
public:
    void run(const RuntimeOptions& options);
    bool wait_started(std::string* error);
    void wake_for_releases();

    std::shared_ptr<Interpreter> main;
    RuntimeInfo info;
    RuntimeOptions options;
    Interrupter interrupter;

private:
    bool init(const RuntimeOptions& options, std::string* error);
    void loop();

    std::mutex mutex_;
    std::condition_variable cv_;
    bool started_ = false;
    std::string start_error_;
    bool releases_pending_ = false;
    PyThreadState* tstate_ = nullptr;
};

Service* service = nullptr;
std::once_flag start_once;
bool start_ok = false;
std::string start_error;

std::string status_message(const char* what, const PyStatus& status) {
    std::string msg = what;
    if (status.func) msg += std::string(" (") + status.func + ")";
    if (status.err_msg) msg += std::string(": ") + status.err_msg;
    return msg;
}

// Atoms for every built-in exception class exist from the start, so errors
// keep their atom() type even once the budget for atoms made on Python's
// behalf is spent (see atom_budget.h). GIL held.
void make_builtin_exception_atoms() {
    ErlNifEnv* env = enif_alloc_env();
    PyObject* builtins = PyEval_GetBuiltins();  // borrowed
    Py_ssize_t pos = 0;
    PyObject *name, *value;
    while (builtins && PyDict_Next(builtins, &pos, &name, &value)) {
        if (!PyType_Check(value) || !PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(value),
                                                      reinterpret_cast<PyTypeObject*>(PyExc_BaseException)))
            continue;
        Py_ssize_t len = 0;
        const char* text = PyUnicode_AsUTF8AndSize(name, &len);
        if (text != nullptr) enif_make_atom_len(env, text, static_cast<size_t>(len));
        else PyErr_Clear();
    }
    enif_free_env(env);
}

// The VM loads NIF libraries RTLD_LOCAL; C extension modules then cannot see
// libpython's symbols (design.md fact 1). Re-open libpython globally, and pin
// this library so a purge of py_nif can never unmap code our threads run.
bool make_symbols_global(std::string* error) {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&Py_InitializeFromConfig), &info) == 0 || info.dli_fname == nullptr) {
        *error = "dladdr could not locate libpython";
        return false;
    }
    if (dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL | RTLD_NODELETE) == nullptr) {
        *error = std::string("dlopen(libpython, RTLD_GLOBAL): ") + dlerror();
        return false;
    }
    if (dladdr(reinterpret_cast<void*>(&start_python), &info) != 0 && info.dli_fname != nullptr)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    return true;
}

bool Service::init(const RuntimeOptions& options, std::string* error) {
    if (Py_IsInitialized()) {
        *error = "Python is already initialised in this OS process by someone else";
        return false;
    }
    if (!register_erlang_module()) {
        *error = "could not register the erlang module";
        return false;
    }
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;  // signals belong to the VM
    config.parse_argv = 0;
    PyStatus status = PyStatus_Ok();
    if (!options.home.empty()) status = PyConfig_SetBytesString(&config, &config.home, options.home.c_str());
    if (!PyStatus_Exception(status) && !options.executable.empty())
        status = PyConfig_SetBytesString(&config, &config.program_name, options.executable.c_str());
    if (!PyStatus_Exception(status) && !options.executable.empty())
        status = PyConfig_SetBytesString(&config, &config.executable, options.executable.c_str());
    if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        *error = status_message("Python failed to start", status);
        return false;
    }
    // Now initialised, holding the GIL with this thread's state.
    main = std::make_shared<Interpreter>(PyInterpreterState_Main(), true);
    Interpreter::enlist(main);
    bool ok = main->load_erlang_module() && install_log_handler();
    PyObject* sys_path = PySys_GetObject("path");  // borrowed
    for (auto it = options.extra_path.rbegin(); ok && it != options.extra_path.rend(); ++it) {
        PyRef entry = PyRef::steal(PyUnicode_DecodeFSDefault(it->c_str()));
        ok = entry && sys_path && PyList_Insert(sys_path, 0, entry.get()) == 0;
    }
    if (!ok) {
        *error = "Python started but erlang_python's set-up in it failed: " + take_python_error_text();
        PyEval_SaveThread();
        return false;
    }
    make_builtin_exception_atoms();
#if PY_VERSION_HEX >= 0x030D0000
    // 3.13.0 aborted ("double free") when subinterpreters imported and freed
    // _datetime concurrently (gh-136421); with it loaded in the main
    // interpreter first, they share its cached state and did not.
    if (PyRef datetime = PyRef::steal(PyImport_ImportModule("_datetime")); !datetime) PyErr_Clear();
#endif
    info.version = Py_GetVersion();
    info.executable = options.executable;
    info.home = options.home;
    info.major = PY_MAJOR_VERSION;
    info.minor = PY_MINOR_VERSION;
    info.micro = PY_MICRO_VERSION;
    main->set_waker([this] { wake_for_releases(); });
    tstate_ = PyEval_SaveThread();
    return interrupter.start(main->state(), error);
}

void Service::run(const RuntimeOptions& opts) {
    options = opts;
    std::string error;
    bool ok = init(options, &error);
    {
        std::lock_guard lock(mutex_);
        started_ = true;
        start_error_ = error;
    }
    cv_.notify_all();
    if (ok) loop();
}

bool Service::wait_started(std::string* error) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return started_; });
    *error = start_error_;
    return start_error_.empty();
}

void Service::wake_for_releases() {
    {
        std::lock_guard lock(mutex_);
        releases_pending_ = true;
    }
    cv_.notify_all();
}

void Service::loop() {
    // A __del__ run here while releasing objects must not wait for Erlang.
    current_call().no_callbacks = true;
    std::unique_lock lock(mutex_);
    for (;;) {
        cv_.wait(lock, [this] { return releases_pending_; });
        releases_pending_ = false;
        lock.unlock();
        // Worker contexts drain the main queue between batches while they
        // hold the GIL anyway; give them a moment before taking it.
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        if (main->has_pending_releases()) {
            PyEval_RestoreThread(tstate_);
            main->drain_releases();
            PyEval_SaveThread();
        }
        lock.lock();
    }
}

// ERTS leaves SIGCHLD ignored, which makes the kernel reap children by
// itself: Python's subprocess then cannot wait for its children and reports
// every exit status as 0 (design.md fact 14). The default disposition is
// also "ignore" but keeps the status for the parent. ERTS's own port
// programs are forked by its erl_child_setup helper, not by the VM, so they
// are not affected.
void restore_sigchld() {
    struct sigaction current;
    if (sigaction(SIGCHLD, nullptr, &current) == 0 && current.sa_handler == SIG_IGN) {
        struct sigaction dfl{};
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(SIGCHLD, &dfl, nullptr);
    }
}

}  // namespace

bool start_python(const RuntimeOptions& options, std::string* error) {
    std::call_once(start_once, [&] {
        restore_sigchld();
        if (!make_symbols_global(&start_error)) return;
        service = new Service();  // lives as long as the OS process: Python is never finalised
        if (!spawn_detached_thread([options] { service->run(options); }, "py_main", &start_error)) return;
        start_ok = service->wait_started(&start_error);
    });
    *error = start_error;
    return start_ok;
}

const std::shared_ptr<Interpreter>& main_interpreter() { return service->main; }
const RuntimeInfo& runtime_info() { return service->info; }
const RuntimeOptions& runtime_options() { return service->options; }

Interrupter& main_interrupter() { return service->interrupter; }

}  // namespace ep
