// Atoms the NIF uses, made once at load time. Atom terms are global
// constants, valid in every environment and on every thread.
#pragma once

#include <erl_nif.h>

namespace ep::atoms {

#define EP_ATOM_LIST(X)                                                      \
    X(ok) X(error) X(true_, "true") X(false_, "false") X(none) X(nil)        \
    X(undefined) X(nan) X(infinity) X(neg_infinity) X(bytes) X(timeout)      \
    X(badarg) X(cancelled) X(finished) X(context_not_running)                \
    X(context_stopped) X(stopped) X(worker) X(subinterp) X(owngil)           \
    X(unsupported_term) X(nesting_too_deep) X(py_error) X(python_error)      \
    X(env_wrong_interpreter) X(no_memory) X(code) X(expr) X(module)          \
    X(function) X(args) X(kwargs) X(locals) X(name) X(handle) X(mode)        \
    X(queue_length) X(running) X(interpreter_id) X(thread_id) X(requests)    \
    X(main) X(main_module, "__main__") X(improper_list) X(invalid_key)       \
    X(already_stopped) X(handle_stale) X(deferred_maps) X(result_too_large) X(duplicate_key) X(internal_error) \
    X(py_logger) X(py_log) X(event_loop_stopped) X(event_loop_not_running) X(spawn_task_failed) X(task) X(spawn) X(exec) X(eval) \
    X(py_callbacks) X(exit) X(py_callback_tag, "$py_callback") X(py_send_tag, "$py_send") X(py_callback_cancel_tag, "$py_callback_cancel") \
    X(overloaded) X(interrupted) X(not_running) X(py_response) X(py_response_relay_tag, "$py_response") \
    X(py_stream) X(py_stream_relay_tag, "$py_stream") X(data) X(done) X(relay_not_running) \
    X(py_relay) X(py_output_tag, "$py_output") X(py_forward_tag, "$py_forward") \
    X(buffer) X(not_a_buffer) X(not_contiguous) X(format) X(itemsize) X(shape)

#define EP_ATOM_DECL_1(name) extern ERL_NIF_TERM name;
#define EP_ATOM_DECL_2(name, text) extern ERL_NIF_TERM name;
#define EP_ATOM_PICK(_1, _2, NAME, ...) NAME
#define EP_ATOM_DECL(...) EP_ATOM_PICK(__VA_ARGS__, EP_ATOM_DECL_2, EP_ATOM_DECL_1)(__VA_ARGS__)
EP_ATOM_LIST(EP_ATOM_DECL)
#undef EP_ATOM_DECL

// Fills every atom above; call from the NIF load callback.
void init(ErlNifEnv* env);

}  // namespace ep::atoms
