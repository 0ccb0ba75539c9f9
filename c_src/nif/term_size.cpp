#include "nif/term_size.h"

#include <vector>

namespace ep {
namespace {

// Words for a term that holds no other terms; containers are 0 here and
// are pushed for a later visit instead.
std::size_t leaf_words(ErlNifEnv* env, ERL_NIF_TERM t, ErlNifTermType type) {
    if (type == ERL_NIF_TERM_TYPE_BITSTRING) {
        ErlNifBinary bin;
        // Up to 64 bytes live on the heap and are copied; larger ones are
        // reference-counted and copying them costs a few words.
        return enif_inspect_binary(env, t, &bin) && bin.size <= 64 ? 2 + bin.size / 8 : 6;
    }
    return 3;  // immediates, floats, pids, references, funs (refused later anyway)
}

bool is_container(ErlNifTermType type) {
    return type == ERL_NIF_TERM_TYPE_LIST || type == ERL_NIF_TERM_TYPE_TUPLE || type == ERL_NIF_TERM_TYPE_MAP;
}

}  // namespace

std::size_t copy_size_upto(ErlNifEnv* env, ERL_NIF_TERM term, std::size_t limit) {
    std::size_t words = 0;
    std::vector<ERL_NIF_TERM> pending{term};
    // Leaves are counted where they are found; only containers are queued.
    auto visit = [&](ERL_NIF_TERM t) {
        ErlNifTermType type = enif_term_type(env, t);
        if (is_container(type)) pending.push_back(t);
        else words += leaf_words(env, t, type);
    };
    while (!pending.empty() && words <= limit) {
        ERL_NIF_TERM t = pending.back();
        pending.pop_back();
        switch (enif_term_type(env, t)) {
        case ERL_NIF_TERM_TYPE_LIST: {
            ERL_NIF_TERM head, tail = t;
            while (words <= limit && enif_get_list_cell(env, tail, &head, &tail)) {
                words += 2;
                visit(head);
            }
            if (!enif_is_empty_list(env, tail)) visit(tail);  // improper tail
            break;
        }
        case ERL_NIF_TERM_TYPE_TUPLE: {
            int arity = 0;
            const ERL_NIF_TERM* items = nullptr;
            enif_get_tuple(env, t, &arity, &items);
            words += static_cast<std::size_t>(arity) + 1;
            for (int i = 0; i < arity; ++i) visit(items[i]);
            break;
        }
        case ERL_NIF_TERM_TYPE_MAP: {
            std::size_t size = 0;
            enif_get_map_size(env, t, &size);
            words += 2 * size + 3;
            ErlNifMapIterator it;
            if (words <= limit && enif_map_iterator_create(env, t, &it, ERL_NIF_MAP_ITERATOR_FIRST)) {
                ERL_NIF_TERM k, v;
                while (enif_map_iterator_get_pair(env, &it, &k, &v)) {
                    visit(k);
                    visit(v);
                    enif_map_iterator_next(env, &it);
                }
                enif_map_iterator_destroy(env, &it);
            }
            break;
        }
        default:
            words += leaf_words(env, t, enif_term_type(env, t));
        }
    }
    return words;
}

}  // namespace ep
