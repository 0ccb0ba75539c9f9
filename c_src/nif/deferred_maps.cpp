#include "nif/deferred_maps.h"

#include <vector>

#include "convert/py_to_term.h"
#include "erl/atoms.h"

namespace ep {
namespace {

constexpr int kMaxDepth = 100;

class MapBuilder {
public:
    explicit MapBuilder(ErlNifEnv* env) : env_(env), marker_(map_marker(env)) {}

    // *out is `term` with its deferred maps built; true if it differs.
    // False from build() alone: duplicate() says which key was given twice.
    // Results nest up to 1000 levels, each a few frames here: past
    // kMaxDepth the walk gives up (too_deep()) rather than risk a dirty
    // scheduler's small stack, and py_maps finishes the term in Erlang.
    bool build(ERL_NIF_TERM term, ERL_NIF_TERM* out, bool* changed) {
        *out = term;
        *changed = false;
        ErlNifTermType type = enif_term_type(env_, term);
        if (type != ERL_NIF_TERM_TYPE_TUPLE && type != ERL_NIF_TERM_TYPE_LIST && type != ERL_NIF_TERM_TYPE_MAP)
            return true;
        if (depth_ >= kMaxDepth) {
            too_deep_ = true;
            return false;
        }
        ++depth_;
        bool ok = type == ERL_NIF_TERM_TYPE_TUPLE ? tuple(term, out, changed)
                  : type == ERL_NIF_TERM_TYPE_LIST ? list(term, out, changed)
                                                   : map(term, out, changed);
        --depth_;
        return ok;
    }

    ERL_NIF_TERM duplicate() const { return duplicate_; }
    bool too_deep() const { return too_deep_; }

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

    // One pass: a map that is not itself deferred has at most 128 pairs,
    // so collecting them costs little; it is rebuilt only if one changed.
    bool map(ERL_NIF_TERM term, ERL_NIF_TERM* out, bool* changed) {
        std::vector<ERL_NIF_TERM> keys, values;
        ErlNifMapIterator it;
        if (!enif_map_iterator_create(env_, term, &it, ERL_NIF_MAP_ITERATOR_FIRST)) return true;
        ERL_NIF_TERM k, v;
        bool ok = true, any = false;
        while (ok && enif_map_iterator_get_pair(env_, &it, &k, &v)) {
            ERL_NIF_TERM kb, vb;
            bool kc = false, vc = false;
            ok = build(k, &kb, &kc) && build(v, &vb, &vc);
            any = any || kc || vc;
            keys.push_back(kb);
            values.push_back(vb);
            enif_map_iterator_next(env_, &it);
        }
        enif_map_iterator_destroy(env_, &it);
        if (!ok) return false;
        if (!any) return true;
        *changed = true;
        return make_map(keys, values, out);
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
        std::size_t dup = find_duplicate_key(keys);
        duplicate_ = dup < keys.size() ? keys[dup] : atoms::undefined;
        return false;
    }

    ErlNifEnv* env_;
    ERL_NIF_TERM marker_;
    ERL_NIF_TERM duplicate_ = 0;
    int depth_ = 0;
    bool too_deep_ = false;
};

ERL_NIF_TERM finish(ErlNifEnv* env, ERL_NIF_TERM term) {
    MapBuilder builder(env);
    ERL_NIF_TERM out;
    bool changed = false;
    if (builder.build(term, &out, &changed)) return enif_make_tuple2(env, atoms::ok, out);
    if (builder.too_deep()) return enif_make_atom(env, "too_deep");
    return enif_make_tuple2(env, atoms::error, enif_make_tuple2(env, atoms::duplicate_key, builder.duplicate()));
}

}  // namespace

// Registered as a dirty CPU NIF: only results that hold a dict of more than
// 128 keys come here, and their maps may be as large as memory allows.
ERL_NIF_TERM nif_finish_maps(ErlNifEnv* env, int, const ERL_NIF_TERM argv[]) { return finish(env, argv[0]); }

}  // namespace ep
