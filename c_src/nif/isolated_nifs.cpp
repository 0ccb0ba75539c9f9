#include "nif/isolated_nifs.h"

#include <new>
#include <string_view>

#include "convert/atom_budget.h"
#include "erl/erl_terms.h"
#include "erl/msg_env.h"
#include "erl/resource_type.h"

namespace ep {

namespace {

ErlNifResourceType* token_type = nullptr;

struct ReleaseToken {
    ErlNifPid to;
    MsgEnv env;
    ERL_NIF_TERM msg;
};

void token_dtor(ErlNifEnv* caller_env, void* obj) {
    auto* token = static_cast<ReleaseToken*>(obj);
    // A dead receiver has nothing left to release: the send just fails.
    if (token->env) token->env.send(token->to, token->msg, caller_env);
    token->~ReleaseToken();
}

}  // namespace

bool open_release_token_type(ErlNifEnv* env) {
    token_type = open_resource_type(env, "py_release_token", token_dtor);
    return token_type != nullptr;
}

bool is_release_token(ErlNifEnv* env, ERL_NIF_TERM term) {
    void* raw = nullptr;
    return token_type != nullptr && enif_get_resource(env, term, token_type, &raw);
}

ERL_NIF_TERM nif_release_token(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ErlNifPid to;
    if (!enif_get_local_pid(env, argv[0], &to)) return make_error(env, enif_make_atom(env, "badarg"));
    void* raw = enif_alloc_resource(token_type, sizeof(ReleaseToken));
    if (raw == nullptr) throw std::bad_alloc();
    auto* token = new (raw) ReleaseToken{to, MsgEnv(), 0};
    if (!token->env) {
        enif_release_resource(raw);
        throw std::bad_alloc();
    }
    token->msg = token->env.copy(argv[1]);
    ERL_NIF_TERM term = enif_make_resource(env, raw);
    enif_release_resource(raw);
    return term;
}

ERL_NIF_TERM nif_release_token_info(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    void* raw = nullptr;
    if (!enif_get_resource(env, argv[0], token_type, &raw)) return enif_make_atom(env, "error");
    auto* token = static_cast<ReleaseToken*>(raw);
    return enif_make_tuple2(env, make_pid(env, token->to), enif_make_copy(env, token->msg));
}

ERL_NIF_TERM nif_encode_request(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ErlNifBinary bin;
    if (!enif_term_to_binary(env, argv[0], &bin)) throw std::bad_alloc();
    return enif_make_binary(env, &bin);
}

ERL_NIF_TERM nif_atoms_from_python(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) {
    ERL_NIF_TERM list = argv[0];
    ERL_NIF_TERM head;
    while (enif_get_list_cell(env, list, &head, &list)) {
        ErlNifBinary name;
        ERL_NIF_TERM atom;
        if (!enif_inspect_binary(env, head, &name)) return make_error(env, atoms::badarg);
        std::string_view utf8(reinterpret_cast<const char*>(name.data), name.size);
        if (!make_atom_from_python(env, utf8, &atom))
            return make_error(env, atoms::badarg,
                              "erlang.Atom: name over 255 characters, or too many new atoms made from Python");
    }
    return enif_make_atom(env, "ok");
}

}  // namespace ep
