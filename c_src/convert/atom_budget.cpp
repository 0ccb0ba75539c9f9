#include "convert/atom_budget.h"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

namespace ep {
namespace {

std::atomic<std::size_t> made{0};

bool is_ascii(std::string_view s) {
    for (unsigned char c : s)
        if (c >= 0x80) return false;
    return true;
}

// ATOM_UTF8_EXT: OTP 25's erl_nif cannot make atoms from UTF-8 otherwise.
std::vector<std::uint8_t> atom_ext(std::string_view utf8) {
    std::vector<std::uint8_t> ext(4 + utf8.size());
    ext[0] = 131;
    ext[1] = 118;
    ext[2] = static_cast<std::uint8_t>(utf8.size() >> 8);
    ext[3] = static_cast<std::uint8_t>(utf8.size() & 0xff);
    if (!utf8.empty()) std::memcpy(ext.data() + 4, utf8.data(), utf8.size());
    return ext;
}

bool existing(ErlNifEnv* env, std::string_view utf8, ERL_NIF_TERM* out) {
    if (is_ascii(utf8)) return enif_make_existing_atom_len(env, utf8.data(), utf8.size(), out, ERL_NIF_LATIN1);
    auto ext = atom_ext(utf8);
    return enif_binary_to_term(env, ext.data(), ext.size(), out, ERL_NIF_BIN2TERM_SAFE) != 0;
}

}  // namespace

bool make_atom_from_python(ErlNifEnv* env, std::string_view utf8, ERL_NIF_TERM* out) {
    if (utf8.size() > 1020) return false;  // 255 characters of at most 4 bytes
    if (existing(env, utf8, out)) return true;
    if (made.fetch_add(1, std::memory_order_relaxed) >= kNewAtomBudget) {
        made.fetch_sub(1, std::memory_order_relaxed);
        return false;
    }
    if (is_ascii(utf8)) {
        if (utf8.size() > 255) return false;
        *out = enif_make_atom_len(env, utf8.data(), utf8.size());
        return true;
    }
    auto ext = atom_ext(utf8);
    return enif_binary_to_term(env, ext.data(), ext.size(), out, 0) != 0;  // fails past 255 characters
}

std::size_t atoms_made_for_python() { return made.load(std::memory_order_relaxed); }

}  // namespace ep
