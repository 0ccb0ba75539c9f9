#include "term_size.h"

#include <vector>

namespace ep {

std::size_t copy_size_upto(ErlNifEnv* env, ERL_NIF_TERM term, std::size_t limit) {
    std::size_t words = 0;
    std::vector<ERL_NIF_TERM> pending{term};
    while (!pending.empty() && words <= limit) {
        ERL_NIF_TERM t = pending.back();
        pending.pop_back();
        switch (enif_term_type(env, t)) {
        case ERL_NIF_TERM_TYPE_LIST: {
            ERL_NIF_TERM head, tail = t;
            while (words <= limit && enif_get_list_cell(env, tail, &head, &tail)) {
                words += 2;
                pending.push_back(head);
            }
            if (!enif_is_empty_list(env, tail)) pending.push_back(tail);  // improper tail
            break;
        }
        case ERL_NIF_TERM_TYPE_TUPLE: {
            int arity = 0;
            const ERL_NIF_TERM* items = nullptr;
            enif_get_tuple(env, t, &arity, &items);
            words += static_cast<std::size_t>(arity) + 1;
            pending.insert(pending.end(), items, items + arity);
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
                    pending.push_back(k);
                    pending.push_back(v);
                    enif_map_iterator_next(env, &it);
                }
                enif_map_iterator_destroy(env, &it);
            }
            break;
        }
        case ERL_NIF_TERM_TYPE_BITSTRING: {
            ErlNifBinary bin;
            // Up to 64 bytes live on the heap and are copied; larger ones are
            // reference-counted and copying them costs a few words.
            words += enif_inspect_binary(env, t, &bin) && bin.size <= 64 ? 2 + bin.size / 8 : 6;
            break;
        }
        default:
            words += 3;  // immediates, floats, pids, references, funs (refused later anyway)
        }
    }
    return words;
}

}  // namespace ep
