#include "erl/atoms.h"

namespace ep::atoms {

#define EP_ATOM_DEF(...) EP_ATOM_PICK(__VA_ARGS__, EP_ATOM_DEF_2, EP_ATOM_DEF_1)(__VA_ARGS__)
#define EP_ATOM_DEF_1(name) ERL_NIF_TERM name;
#define EP_ATOM_DEF_2(name, text) ERL_NIF_TERM name;
EP_ATOM_LIST(EP_ATOM_DEF)

#define EP_ATOM_MAKE(...) EP_ATOM_PICK(__VA_ARGS__, EP_ATOM_MAKE_2, EP_ATOM_MAKE_1)(__VA_ARGS__)
#define EP_ATOM_MAKE_1(name) name = enif_make_atom(env, #name);
#define EP_ATOM_MAKE_2(name, text) name = enif_make_atom(env, text);

void init(ErlNifEnv* env) { EP_ATOM_LIST(EP_ATOM_MAKE) }

}  // namespace ep::atoms
