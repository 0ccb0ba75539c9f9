// The NIF library py_nif: load-time set-up and the function table.
#include <erl_nif.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "erl/atoms.h"
#include "erlang_module/callbacks.h"
#include "erlang_module/output.h"
#include "context/context.h"
#include "nif/async_nifs.h"
#include "nif/context_nifs.h"
#include "context/stream.h"
#include "context/env.h"
#include "event_loop/event_loop.h"
#include "nif/event_loop_nifs.h"
#include "nif/isolated_nifs.h"
#include "runtime/gil_check.h"
#include "erl/erl_terms.h"
#include "context/handle.h"
#include "convert/py_to_term.h"
#include "convert/shared_bytes.h"
#include "nif/deferred_maps.h"
#include "runtime/python_runtime.h"
#include "nif/resources.h"
#include "runtime/subinterpreter.h"
#include "nif/term_size.h"

namespace ep {
namespace {

// Python failing to start must not fail the load: the library stays loaded
// and every call that needs Python reports why instead.
std::string python_start_error;
bool python_started = false;

std::string string_option(ErlNifEnv* env, ERL_NIF_TERM map, const char* key, const char* fallback) {
    ERL_NIF_TERM value;
    ErlNifBinary bin;
    if (enif_is_map(env, map) && enif_get_map_value(env, map, enif_make_atom(env, key), &value) &&
        enif_inspect_iolist_as_binary(env, value, &bin) && bin.size > 0)
        return std::string(reinterpret_cast<const char*>(bin.data), bin.size);
    return fallback;
}

std::vector<std::string> path_option(ErlNifEnv* env, ERL_NIF_TERM map) {
    std::vector<std::string> out;
    ERL_NIF_TERM list, head;
    if (!enif_is_map(env, map) || !enif_get_map_value(env, map, enif_make_atom(env, "python_path"), &list)) return out;
    while (enif_get_list_cell(env, list, &head, &list)) {
        ErlNifBinary bin;
        if (enif_inspect_iolist_as_binary(env, head, &bin))
            out.emplace_back(reinterpret_cast<const char*>(bin.data), bin.size);
    }
    return out;
}

int load(ErlNifEnv* env, void**, ERL_NIF_TERM load_info) {
    atoms::init(env);
    init_map_marker(env);
    if (!open_resource_types(env) || !open_callback_watch_type(env) || !open_shared_bytes_type(env) ||
        !open_release_token_type(env))
        return 1;
    RuntimeOptions options;
    // ERLANG_PYTHON_HOME beats the app env, which beats the build's Python.
    const char* env_home = std::getenv("ERLANG_PYTHON_HOME");
    options.home = env_home && *env_home ? env_home : string_option(env, load_info, "python_home", EP_PYTHON_HOME);
    options.executable = string_option(env, load_info, "python_executable", EP_PYTHON_EXECUTABLE);
    options.extra_path = path_option(env, load_info);
    python_started = start_python(options, &python_start_error);
    return 0;
}

ERL_NIF_TERM not_started(ErlNifEnv* env) { return make_error(env, enif_make_atom(env, "python_not_started"), python_start_error); }

#define EP_REQUIRE_PYTHON(env) \
    if (!python_started) return not_started(env)

ERL_NIF_TERM runtime_info(ErlNifEnv* env, int, const ERL_NIF_TERM[]) {
    EP_REQUIRE_PYTHON(env);
    const RuntimeInfo& info = ep::runtime_info();
    ERL_NIF_TERM keys[] = {
        enif_make_atom(env, "version"),        enif_make_atom(env, "version_info"),
        enif_make_atom(env, "executable"),     enif_make_atom(env, "home"),
        enif_make_atom(env, "contexts_alive"), enif_make_atom(env, "envs_alive"),
        enif_make_atom(env, "handles_alive"),  enif_make_atom(env, "owngil_supported"),
        enif_make_atom(env, "subinterp_supported"), enif_make_atom(env, "gil_violations"),
        enif_make_atom(env, "releases_pending"), enif_make_atom(env, "streams_alive"),
        enif_make_atom(env, "shared_binaries"),
    };
    ERL_NIF_TERM values[] = {
        make_binary(env, info.version),
        enif_make_tuple3(env, enif_make_int(env, info.major), enif_make_int(env, info.minor), enif_make_int(env, info.micro)),
        make_binary(env, info.executable),
        make_binary(env, info.home),
        enif_make_uint64(env, Context::alive()),
        enif_make_uint64(env, Env::alive()),
        enif_make_uint64(env, Handle::alive()),
        owngil_supported() ? atoms::true_ : atoms::false_,
        shared_gil_subinterpreters_supported() ? atoms::true_ : atoms::false_,
        enif_make_uint64(env, gil_violations()),
        enif_make_uint64(env, Interpreter::releases_unfinished_everywhere()),
        enif_make_uint64(env, Stream::alive()),
        enif_make_uint64(env, shared_bytes_alive()),
    };
    ERL_NIF_TERM map;
    enif_make_map_from_arrays(env, keys, values, sizeof keys / sizeof keys[0], &map);
    return make_ok(env, map);
}

using NifFn = ERL_NIF_TERM (*)(ErlNifEnv*, int, const ERL_NIF_TERM[]);

template <NifFn F>
ERL_NIF_TERM guarded(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    EP_REQUIRE_PYTHON(env);
    // Nothing below may let a C++ exception reach the VM.
    try {
        return F(env, argc, argv);
    } catch (const std::bad_alloc&) {
        return make_error(env, atoms::no_memory);
    } catch (...) {
        return make_error(env, atoms::python_error, "internal error in erlang_python");
    }
}

// Arguments are copied into the request. Small ones (nearly all) are copied
// right here; a large one would hold the scheduler for milliseconds, so the
// call moves itself to a dirty scheduler first. Past kMaxRequestWords the
// request is refused: a term with shared subterms can be tiny on the heap and
// expand to gigabytes when copied, and a failed allocation ends the VM.
constexpr std::size_t kInlineCopyWords = 64 * 1024;  // about 512 KB
constexpr std::size_t kMaxRequestWords = std::size_t{128} << 20;  // 1 GiB

// Told when sized_request refuses its arguments, with the size limit in
// bytes: for a NIF whose refusal someone else is waiting on.
using RefusedFn = void (*)(ErlNifEnv*, const ERL_NIF_TERM[], std::uint64_t limit_bytes);

template <NifFn F, RefusedFn Refused = nullptr>
ERL_NIF_TERM sized_request(ErlNifEnv* env, int argc, const ERL_NIF_TERM argv[]) {
    EP_REQUIRE_PYTHON(env);
    bool dirty = enif_thread_type() != ERL_NIF_THR_NORMAL_SCHEDULER;
    std::size_t limit = dirty ? kMaxRequestWords : kInlineCopyWords;
    std::size_t words = 0;
    for (int i = 0; i < argc && words <= limit; ++i) words += copy_size_upto(env, argv[i], limit - words);
    if (words > limit) {
        if (!dirty)
            return enif_schedule_nif(env, "py_nif_large_request", ERL_NIF_DIRTY_JOB_CPU_BOUND,
                                     sized_request<F, Refused>, argc, argv);
        if constexpr (Refused != nullptr) {
            try {
                Refused(env, argv, kMaxRequestWords * 8);
            } catch (...) {
                // out of memory: the refusal below still stands
            }
        }
        return make_error(env, enif_make_atom(env, "argument_too_large"), enif_make_uint64(env, kMaxRequestWords * 8));
    }
    return guarded<F>(env, argc, argv);
}

ERL_NIF_TERM nif_map_marker(ErlNifEnv* env, int, const ERL_NIF_TERM[]) { return map_marker(env); }

// callback_reply(Id, Result): the answer of a registered Erlang function.
ERL_NIF_TERM nif_callback_reply(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ErlNifUInt64 id;
    if (!enif_get_uint64(env, argv[0], &id)) return make_error(env, atoms::badarg, enif_make_atom(env, "id"));
    return deliver_callback_reply(id, argv[1]) ? atoms::ok : enif_make_atom(env, "nobody_waiting");
}

// A result too large to hand to Python still answers the call waiting for
// it, with erlang.Error: Python must not wait for a reply that never comes.
void callback_reply_refused(ErlNifEnv* env, const ERL_NIF_TERM argv[], std::uint64_t limit_bytes) {
    ErlNifUInt64 id;
    if (!enif_get_uint64(env, argv[0], &id)) return;
    char text[160];
    enif_snprintf(text, sizeof text, "the Erlang function's result is larger than %lu bytes as a term",
                  static_cast<unsigned long>(limit_bytes));
    ERL_NIF_TERM reason = enif_make_tuple2(env, atoms::result_too_large, enif_make_uint64(env, limit_bytes));
    deliver_callback_reply(id, enif_make_tuple4(env, atoms::error, atoms::error, reason, make_binary(env, text)));
}

// callback_begin(Id): the calling process runs the Erlang function of call Id.
ERL_NIF_TERM nif_callback_begin(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ErlNifUInt64 id;
    ErlNifPid self;
    if (!enif_get_uint64(env, argv[0], &id) || !enif_self(env, &self))
        return make_error(env, atoms::badarg, enif_make_atom(env, "id"));
    callback_started(id, self);
    return atoms::ok;
}

// callback_names_reset(): py_callbacks starts with an empty registry.
ERL_NIF_TERM nif_callback_names_reset(ErlNifEnv*, int, const ERL_NIF_TERM[]) {
    reset_callback_names();
    return atoms::ok;
}

// output_written(Cost): py_relay has written (or given up on) Cost bytes of
// relayed output; output_reset(): a new py_relay holds nothing yet.
ERL_NIF_TERM nif_output_written(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ErlNifUInt64 cost;
    if (!enif_get_uint64(env, argv[0], &cost)) return make_error(env, atoms::badarg, enif_make_atom(env, "cost"));
    relayed_output_written(static_cast<std::size_t>(cost));
    return atoms::ok;
}

ERL_NIF_TERM nif_output_reset(ErlNifEnv*, int, const ERL_NIF_TERM[]) {
    relayed_output_reset();
    return atoms::ok;
}

// callback_name(Name, Registered): what erlang.<Name> resolves to in Python.
ERL_NIF_TERM nif_callback_name(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ErlNifBinary bin;
    if (!enif_inspect_binary(env, argv[0], &bin) || (argv[1] != atoms::true_ && argv[1] != atoms::false_))
        return make_error(env, atoms::badarg, atoms::name);
    set_callback_name(std::string(reinterpret_cast<const char*>(bin.data), bin.size), argv[1] == atoms::true_);
    return atoms::ok;
}

ErlNifFunc functions[] = {
    {"runtime_info", 0, runtime_info, 0},
    {"map_marker", 0, nif_map_marker, 0},
    {"finish_maps", 1, guarded<nif_finish_maps>, ERL_NIF_DIRTY_JOB_CPU_BOUND},
    {"callback_reply", 2, sized_request<nif_callback_reply, callback_reply_refused>, 0},
    {"callback_begin", 1, guarded<nif_callback_begin>, 0},
    {"callback_names_reset", 0, guarded<nif_callback_names_reset>, 0},
    {"callback_name", 2, guarded<nif_callback_name>, 0},
    {"output_written", 1, guarded<nif_output_written>, 0},
    {"output_reset", 0, guarded<nif_output_reset>, 0},
    {"context_new", 3, guarded<nif_context_new>, 0},
    {"context_stop", 2, guarded<nif_context_stop>, 0},
    {"context_info", 1, guarded<nif_context_info>, 0},
    {"env_new", 1, guarded<nif_env_new>, 0},
    {"exec", 3, sized_request<nif_exec>, 0},
    {"eval", 4, sized_request<nif_eval>, 0},
    {"call", 6, sized_request<nif_call>, 0},
    {"handle_getattr", 3, sized_request<nif_handle_getattr>, 0},
    {"handle_call_method", 5, sized_request<nif_handle_call_method>, 0},
    {"handle_to_term", 2, sized_request<nif_handle_to_term>, 0},
    {"handle_buffer", 2, sized_request<nif_handle_buffer>, 0},
    {"ctx_exec", 4, sized_request<nif_context_exec>, 0},
    {"ctx_eval", 5, sized_request<nif_context_eval>, 0},
    {"cancel", 2, guarded<nif_cancel>, 0},
    {"context_interrupt", 1, guarded<nif_context_interrupt>, 0},
    {"spawn_call", 5, sized_request<nif_spawn_call>, 0},
    {"cast", 5, sized_request<nif_cast>, 0},
    {"async_failed", 1, guarded<nif_async_failed>, 0},
    {"async_new", 0, guarded<nif_async_new>, 0},
    {"async_set_traceback", 2, guarded<nif_async_set_traceback>, 0},
    {"async_owner", 1, guarded<nif_async_owner>, 0},
    {"async_traceback", 1, guarded<nif_async_traceback>, 0},
    {"async_cancel", 1, guarded<nif_async_cancel>, 0},
    {"stream_start", 7, sized_request<nif_stream_start>, 0},
    {"stream_ack", 2, guarded<nif_stream_ack>, 0},
    {"stream_cancel", 1, guarded<nif_stream_cancel>, 0},
    {"stream_forward", 2, sized_request<nif_stream_forward>, 0},
    {"stream_fail", 2, guarded<nif_stream_fail>, 0},
    {"is_handle", 1, nif_is_handle, 0},
    {"release_token", 2, guarded<nif_release_token>, 0},
    {"release_token_info", 1, guarded<nif_release_token_info>, 0},
    {"encode_request", 1, sized_request<nif_encode_request>, 0},
    {"atoms_from_python", 1, guarded<nif_atoms_from_python>, 0},
    {"event_loop_new", 1, guarded<nif_event_loop_new>, 0},
    {"event_loop_stop", 1, guarded<nif_event_loop_stop>, 0},
    {"event_loop_info", 1, guarded<nif_event_loop_info>, 0},
    {"event_loop_env_new", 0, guarded<nif_event_loop_env_new>, 0},
    {"event_loop_submit", 8, sized_request<nif_event_loop_submit>, 0},
    {"event_loop_code", 6, sized_request<nif_event_loop_code>, 0},
};

}  // namespace
}  // namespace ep

extern "C" {
ERL_NIF_INIT(py_nif, ep::functions, ep::load, nullptr, nullptr, nullptr)
}
