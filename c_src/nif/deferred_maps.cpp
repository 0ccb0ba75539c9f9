#include "nif/deferred_maps.h"

#include <algorithm>
#include <vector>

#include "convert/py_to_term.h"
#include "erl/atoms.h"

namespace ep {
namespace {

class MapBuilder {
public:
    explicit MapBuilder(ErlNifEnv* env) : env_(env), marker_(map_marker(env)) {}

    // *out is `term` with its deferred maps built; true if it differs.
    // False from build() alone: duplicate() says which key was given twice.
    bool build(ERL_NIF_TERM term, ERL_NIF_TERM* out, bool* changed) {
        *out = term;
        *changed = false;
        switch (enif_term_type(env_, term)) {
        case ERL_NIF_TERM_TYPE_TUPLE: return tuple(term, out, changed);
        case ERL_NIF_TERM_TYPE_LIST: return list(term, out, changed);
        case ERL_NIF_TERM_TYPE_MAP: return map(term, out, changed);
        default: return true;
        }
    }

    ERL_NIF_TERM duplicate() const { return duplicate_; }

private:
    bool tuple(ERL_NIF_TERM term, ERL_NIF_TERM* out, bool* changed) {
        int arity = 0;
        const ERL_NIF_TERM* items = nullptr;
        enif_get_tuple(env_, term, &arity, &items);
        if (arity == 2 && enif_is_identical(items[0], marker_) && enif_is_list(env_, items[1])) {
            *changed = true;
            return pairs(items[1], out);
        }
        std::vector<ERL_NIF_TERM> built;
        for (int i = 0; i < arity; ++i) {
            ERL_NIF_TERM item;
            bool item_changed = false;
            if (!build(items[i], &item, &item_changed)) return false;
            if (item_changed && built.empty()) built.assign(items, items + arity);
            if (item_changed) built[static_cast<std::size_t>(i)] = item;
        }
        if (built.empty()) return true;
        *changed = true;
        *out = enif_make_tuple_from_array(env_, built.data(), static_cast<unsigned>(arity));
        return true;
    }

    // Nothing is collected until an item changes; then the items before it
    // are taken as they are and the rest built.
    bool list(ERL_NIF_TERM term, ERL_NIF_TERM* out, bool* changed) {
        ERL_NIF_TERM head, tail = term;
        std::vector<ERL_NIF_TERM> items;
        std::size_t unchanged = 0;
        bool any = false;
        while (enif_get_list_cell(env_, tail, &head, &tail)) {
            ERL_NIF_TERM item;
            bool item_changed = false;
            if (!build(head, &item, &item_changed)) return false;
            if (item_changed && !any) {
                any = true;
                ERL_NIF_TERM h, t = term;
                for (std::size_t i = 0; i < unchanged && enif_get_list_cell(env_, t, &h, &t); ++i) items.push_back(h);
            }
            if (any) items.push_back(item);
            else ++unchanged;
        }
        if (!any) return true;
        *changed = true;
        *out = enif_make_list_from_array(env_, items.data(), static_cast<unsigned>(items.size()));
        return true;
    }

    // Most maps in a result hold no marker (they were small enough to be
    // built where they were made): those are looked through, not copied.
    bool map(ERL_NIF_TERM term, ERL_NIF_TERM* out, bool* changed) {
        if (!any_pair_changes(term)) return !failed_;
        if (failed_) return false;
        std::vector<ERL_NIF_TERM> keys, values;
        ErlNifMapIterator it;
        if (!enif_map_iterator_create(env_, term, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return true;
        ERL_NIF_TERM k, v;
        bool ok = true;
        while (ok && enif_map_iterator_get_pair(env_, &it, &k, &v)) {
            ERL_NIF_TERM kb, vb;
            bool kc = false, vc = false;
            ok = build(k, &kb, &kc) && build(v, &vb, &vc);
            keys.push_back(kb);
            values.push_back(vb);
            enif_map_iterator_next(env_, &it);
        }
        enif_map_iterator_destroy(env_, &it);
        if (!ok) return false;
        *changed = true;
        return make_map(keys, values, out);
    }

    // Whether building some key or value of `map` changes it (a failure
    // counts as a change and sets failed_).
    bool any_pair_changes(ERL_NIF_TERM map) {
        ErlNifMapIterator it;
        if (!enif_map_iterator_create(env_, map, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return false;
        ERL_NIF_TERM k, v, built;
        bool any = false;
        while (!any && enif_map_iterator_get_pair(env_, &it, &k, &v)) {
            bool kc = false, vc = false;
            if (!build(k, &built, &kc) || !build(v, &built, &vc)) failed_ = any = true;
            any = any || kc || vc;
            enif_map_iterator_next(env_, &it);
        }
        enif_map_iterator_destroy(env_, &it);
        return any;
    }

    bool pairs(ERL_NIF_TERM list, ERL_NIF_TERM* out) {
        std::vector<ERL_NIF_TERM> keys, values;
        unsigned len = 0;
        if (enif_get_list_length(env_, list, &len)) {
            keys.reserve(len);
            values.reserve(len);
        }
        ERL_NIF_TERM head, tail = list;
        while (enif_get_list_cell(env_, tail, &head, &tail)) {
            int arity = 0;
            const ERL_NIF_TERM* kv = nullptr;
            if (!enif_get_tuple(env_, head, &arity, &kv) || arity != 2) continue;  // only the NIF makes these
            ERL_NIF_TERM kb, vb;
            bool changed = false;
            if (!build(kv[0], &kb, &changed) || !build(kv[1], &vb, &changed)) return false;
            keys.push_back(kb);
            values.push_back(vb);
        }
        return make_map(keys, values, out);
    }

    bool make_map(std::vector<ERL_NIF_TERM>& keys, std::vector<ERL_NIF_TERM>& values, ERL_NIF_TERM* out) {
        if (enif_make_map_from_arrays(env_, keys.data(), values.data(), keys.size(), out)) return true;
        // Refused only for a key given twice.
        std::sort(keys.begin(), keys.end(), [](ERL_NIF_TERM a, ERL_NIF_TERM b) { return enif_compare(a, b) < 0; });
        auto dup = std::adjacent_find(keys.begin(), keys.end(),
                                      [](ERL_NIF_TERM a, ERL_NIF_TERM b) { return enif_compare(a, b) == 0; });
        duplicate_ = dup != keys.end() ? *dup : atoms::undefined;
        return false;
    }

    ErlNifEnv* env_;
    ERL_NIF_TERM marker_;
    ERL_NIF_TERM duplicate_ = 0;
    bool failed_ = false;
};

ERL_NIF_TERM finish(ErlNifEnv* env, ERL_NIF_TERM term) {
    MapBuilder builder(env);
    ERL_NIF_TERM out;
    bool changed = false;
    if (!builder.build(term, &out, &changed))
        return enif_make_tuple2(env, atoms::error, enif_make_tuple2(env, atoms::duplicate_key, builder.duplicate()));
    return enif_make_tuple2(env, atoms::ok, out);
}

}  // namespace

// Registered as a dirty CPU NIF: only results that hold a dict of more than
// 128 keys come here, and their maps may be as large as memory allows.
ERL_NIF_TERM nif_finish_maps(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) { return finish(env, argv[0]); }

}  // namespace ep
