%% Type conversion, spec §5, both directions, row by row.
-module(py_convert_SUITE).
-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").
-compile([export_all, nowarn_export_all]).

%% The rule book runs against an in-process context and, unchanged, against
%% an isolated one (spec §11: one definition of conversion, two paths).
all() ->
    [{group, in_process}, {group, isolated}].

groups() ->
    [{in_process, [], cases()},
     {isolated, [], cases() -- in_process_only()}].

%% What only the NIF has: its receiver-side map building (py_maps) is not
%% on the isolated path, which decodes maps of any size in the caller.
in_process_only() ->
    [deferred_maps_anywhere_in_a_result].

cases() ->
    [erlang_to_python_types, integers_any_size, floats_and_specials, binaries_and_bytes,
     atoms, containers, maps_of_every_size, pids_and_refs, erlang_atom_type,
     python_to_erlang_types, subclasses_convert_as_their_base, surrogates_keep_their_bytes,
     handles, handles_cross_processes, handle_after_context_stop, to_term_unwraps,
     nesting_bound_erlang_to_python, nesting_bound_python_to_erlang, cyclic_python_values,
     shared_python_values_bounded, shared_erlang_terms_bounded, int_subclass_overrides_ignored,
     unicode_exception_names, keys_equal_in_python_refused, python_keys_colliding_refused,
     round_trip_property, deferred_maps_anywhere_in_a_result].

init_per_suite(Config) ->
    ok = py_test_util:start(),
    Config.

end_per_suite(_Config) ->
    py_test_util:stop().

init_per_group(isolated, Config) ->
    {ok, Ctx} = py_context:start_link(convert_isolated, isolated),
    unlink(Ctx),
    [{ctx, Ctx} | Config];
init_per_group(_, Config) ->
    Config.

end_per_group(isolated, Config) ->
    py_context:stop(?config(ctx, Config));
end_per_group(_, _Config) ->
    ok.

%% Calls without a context use the one bound to the process.
init_per_testcase(_Case, Config) ->
    case ?config(ctx, Config) of
        undefined -> ok;
        Ctx -> put(py_context, Ctx)
    end,
    Config.

end_per_testcase(_Case, _Config) ->
    ok.

%% Python type name of an Erlang value after conversion.
type_of(Value) ->
    {ok, Name} = py:eval(<<"type(v).__name__">>, #{v => Value}),
    Name.

%% Python repr of an Erlang value after conversion.
repr(Value) ->
    {ok, Repr} = py:eval(<<"repr(v)">>, #{v => Value}),
    Repr.

echo(Value) ->
    py:eval(<<"v">>, #{v => Value}).

erlang_to_python_types(_Config) ->
    <<"int">> = type_of(42),
    <<"float">> = type_of(1.5),
    <<"str">> = type_of(<<"text">>),
    <<"bytes">> = type_of(<<255, 0>>),
    <<"bytes">> = type_of({bytes, <<"text">>}),
    <<"bool">> = type_of(true),
    <<"bool">> = type_of(false),
    <<"NoneType">> = type_of(none),
    <<"NoneType">> = type_of(nil),
    <<"NoneType">> = type_of(undefined),
    <<"str">> = type_of(hello),
    <<"list">> = type_of([1, 2]),
    <<"list">> = type_of([]),
    <<"tuple">> = type_of({1, 2}),
    <<"tuple">> = type_of({}),
    <<"dict">> = type_of(#{a => 1}),
    <<"Pid">> = type_of(self()),
    <<"Ref">> = type_of(make_ref()),
    <<"True">> = repr(true),
    <<"'hello'">> = repr(hello),
    <<"{'a': 1, 'b': [2, (3, 'x')]}">> = repr(#{a => 1, <<"b">> => [2, {3, x}]}).

integers_any_size(_Config) ->
    Values = [0, 1, -1, 255, 256, (1 bsl 31) - 1, -(1 bsl 31), (1 bsl 63) - 1, -(1 bsl 63),
              1 bsl 63, (1 bsl 64) - 1, 1 bsl 64, -(1 bsl 64), 1 bsl 200, -(1 bsl 200) + 7,
              1 bsl 4000, -(1 bsl 4000)],
    [begin
         {ok, V} = echo(V),
         {ok, Str} = py:eval(<<"str(v)">>, #{v => V}),
         ?assertEqual(integer_to_binary(V), Str)
     end || V <- Values],
    {ok, 1267650600228229401496703205376} = py:eval(<<"2 ** 100">>),
    {ok, -1267650600228229401496703205376} = py:eval(<<"-(2 ** 100)">>),
    {ok, F} = py:eval(<<"__import__('math').factorial(300)">>),
    ?assertEqual(F, lists:foldl(fun erlang:'*'/2, 1, lists:seq(1, 300))).

floats_and_specials(_Config) ->
    {ok, 1.5} = echo(1.5),
    {ok, -0.0} = echo(-0.0),
    {ok, 1.0e300} = echo(1.0e300),
    {ok, nan} = py:eval(<<"float('nan')">>),
    {ok, infinity} = py:eval(<<"float('inf')">>),
    {ok, neg_infinity} = py:eval(<<"float('-inf')">>),
    {ok, [1.0, infinity, nan]} = py:eval(<<"[1.0, float('inf'), float('nan')]">>).

binaries_and_bytes(_Config) ->
    {ok, <<"héllo"/utf8>>} = echo(<<"héllo"/utf8>>),
    {ok, 5} = py:eval(<<"len(v)">>, #{v => <<"héllo"/utf8>>}),
    {ok, <<255, 254>>} = echo(<<255, 254>>),
    {ok, true} = py:eval(<<"v == b'\\xff\\xfe'">>, #{v => <<255, 254>>}),
    {ok, true} = py:eval(<<"v == b'abc'">>, #{v => {bytes, <<"abc">>}}),
    {ok, <<"abc">>} = py:eval(<<"b'abc'">>),
    {ok, <<"abc">>} = py:eval(<<"bytearray(b'abc')">>),
    {ok, <<>>} = echo(<<>>),
    Big = crypto_free_random(100000),
    {ok, Big} = echo({bytes, Big}),
    %% a bitstring has no Python form
    {error, {unsupported_term, _}} = echo(<<1:3>>).

crypto_free_random(N) ->
    list_to_binary([rand:uniform(256) - 1 || _ <- lists:seq(1, N)]).

atoms(_Config) ->
    {ok, <<"ok">>} = echo(ok),
    {ok, <<"with space">>} = echo('with space'),
    {ok, <<"ünïcödé"/utf8>>} = echo('ünïcödé'),
    {ok, <<"日本"/utf8>>} = echo(binary_to_atom(<<"日本"/utf8>>, utf8)),
    {ok, true} = echo(true),
    {ok, none} = echo(nil),
    {ok, none} = echo(undefined).

containers(_Config) ->
    {ok, [1, [2, [3]]]} = echo([1, [2, [3]]]),
    {ok, {1, {2, {}}}} = echo({1, {2, {}}}),
    {ok, #{<<"a">> := #{<<"b">> := [1]}}} = echo(#{a => #{b => [1]}}),
    {ok, #{1 := <<"one">>, {1, 2} := <<"pair">>}} = echo(#{1 => <<"one">>, {1, 2} => <<"pair">>}),
    %% a string list is a list of ints, as in Erlang
    {ok, [104, 105]} = echo("hi"),
    {error, improper_list} = echo([1 | 2]).

maps_of_every_size(_Config) ->
    [begin
         Map = maps:from_list([{integer_to_binary(I), I} || I <- lists:seq(1, N)]),
         {ok, N} = py:eval(<<"len(v)">>, #{v => Map}),
         {ok, Map} = echo(Map),
         {ok, Made} = py:eval(<<"{str(i): i for i in range(1, n + 1)}">>, #{n => N}),
         ?assertEqual(Map, Made)
     end || N <- [0, 1, 32, 33, 127, 128, 129, 1000, 50000]],
    %% keys that collide after conversion are refused (python_keys_colliding_refused)
    {error, {duplicate_key, <<"k">>}} = py:eval(<<"{'k': 1, b'k': 2}">>).

pids_and_refs(_Config) ->
    Self = self(),
    Ref = make_ref(),
    {ok, Self} = echo(Self),
    {ok, Ref} = echo(Ref),
    {ok, true} = py:eval(<<"a == b and hash(a) == hash(b)">>, #{a => Self, b => Self}),
    {ok, false} = py:eval(<<"a == b">>, #{a => Self, b => spawn(fun() -> ok end)}),
    {ok, 2} = py:eval(<<"len({a: 1, b: 2})">>, #{a => Ref, b => make_ref()}),
    {ok, <<"Pid(<", _/binary>>} = py:eval(<<"repr(p)">>, #{p => Self}),
    {ok, [Self, Ref]} = py:eval(<<"[p, r]">>, #{p => Self, r => Ref}),
    {error, {'TypeError', _}} = py:eval(<<"__import__('erlang').Pid()">>),
    %% stored in the env and read back later
    ok = py:exec(<<"saved = None">>),
    {ok, none} = py:eval(<<"globals().__setitem__('saved', p)">>, #{p => Self}),
    {ok, Self} = py:eval(<<"saved">>).

erlang_atom_type(_Config) ->
    {ok, hello} = py:eval(<<"__import__('erlang').Atom('hello')">>),
    {ok, 'ünï'} = py:eval(<<"__import__('erlang').Atom('ünï')"/utf8>>),
    {ok, [ok, <<"ok">>]} = py:eval(<<"[__import__('erlang').Atom('ok'), 'ok']">>),
    {ok, true} = py:eval(<<"isinstance(__import__('erlang').Atom('x'), str)">>),
    {ok, <<"Atom('x')">>} = py:eval(<<"repr(__import__('erlang').Atom('x'))">>),
    {error, {badarg, _}} = py:eval(<<"__import__('erlang').Atom('x' * 300)">>).

python_to_erlang_types(_Config) ->
    {ok, {1, 2.5, <<"s">>, <<"b">>, true, false, none, [1], {}, #{}}} =
        py:eval(<<"(1, 2.5, 's', b'b', True, False, None, [1], (), {})">>),
    {ok, #{<<"nested">> := #{1 := [{<<"t">>}]}}} = py:eval(<<"{'nested': {1: [('t',)]}}">>),
    {ok, #{{1, 2} := <<"tuple key">>, none := <<"none key">>}} =
        py:eval(<<"{(1, 2): 'tuple key', None: 'none key'}">>).

subclasses_convert_as_their_base(_Config) ->
    ok = py:exec(<<"import collections, enum\n"
                   "class Color(enum.IntEnum):\n    RED = 1\n"
                   "Point = collections.namedtuple('Point', 'x y')\n">>),
    {ok, 1} = py:eval(<<"Color.RED">>),
    {ok, {1, 2}} = py:eval(<<"Point(1, 2)">>),
    {ok, #{<<"a">> := 1}} = py:eval(<<"collections.OrderedDict(a=1)">>),
    {ok, #{<<"a">> := 0}} = py:eval(<<"collections.defaultdict(int, a=0)">>),
    {ok, #{<<"x">> := 2}} = py:eval(<<"collections.Counter('xx')">>).

surrogates_keep_their_bytes(_Config) ->
    {ok, <<237, 178, 128>>} = py:eval(<<"'\\udc80'">>).

handles(_Config) ->
    {ok, H} = py:eval(<<"__import__('fractions').Fraction(3, 4)">>),
    true = is_reference(H),
    true = py:is_handle(H),
    false = py:is_handle(make_ref()),
    {ok, 3} = py:getattr(H, numerator),
    {ok, 4} = py:getattr(H, <<"denominator">>),
    {ok, 0.75} = py:call_method(H, '__float__', []),
    {ok, <<"3/4">>} = py:call_method(H, '__str__', []),
    {ok, 1} = py:call_method(H, '__round__', [], #{}),
    {error, {'AttributeError', _}} = py:getattr(H, no_such_attribute),
    %% passed back into Python it is the object itself
    {ok, 1.5} = py:eval(<<"float(f * 2)">>, #{f => H}),
    {ok, true} = py:call(operator, is_, [H, H]),
    {error, {badarg, handle}} = py:getattr(make_ref(), x),
    {error, {badarg, name}} = py:getattr(H, 42).

handles_cross_processes(_Config) ->
    {ok, H} = py:eval(<<"__import__('collections').deque([1, 2, 3])">>),
    Self = self(),
    spawn(fun() -> Self ! {len, py:call_method(H, '__len__', [])} end),
    receive {len, R} -> {ok, 3} = R end,
    %% the handle keeps the object alive after the creating process died
    Ctx = get(py_context),  %% bound by the first call
    Pid = spawn(fun() -> Self ! {h, py:eval(Ctx, <<"[object()]">>)} end),
    receive {h, {ok, [Obj]}} -> ok end,
    true = py_test_util:wait_until(fun() -> not is_process_alive(Pid) end, 1000),
    py_test_util:drain_gc(),
    {ok, <<"object">>} = py:eval(<<"type(o).__name__">>, #{o => Obj}).

handle_after_context_stop(_Config) ->
    {ok, Ctx} = py_context:start_link(handle_owner, worker),
    {ok, H} = py:eval(Ctx, <<"object()">>),
    ok = py_context:stop(Ctx),
    {error, context_not_running} = py:getattr(H, '__class__').

to_term_unwraps(_Config) ->
    {ok, S} = py:eval(<<"{3, 1, 2}">>),
    {ok, L} = py:to_term(S),
    [1, 2, 3] = lists:sort(L),
    {ok, R} = py:eval(<<"range(3)">>),
    {ok, [0, 1, 2]} = py:to_term(R),
    {ok, K} = py:eval(<<"{'a': 1}.keys()">>),
    {ok, [<<"a">>]} = py:to_term(K),
    {ok, M} = py:eval(<<"__import__('types').MappingProxyType({'a': 1})">>),
    {ok, #{<<"a">> := 1}} = py:to_term(M),
    {ok, O} = py:eval(<<"object()">>),
    {ok, O2} = py:to_term(O),
    true = py:is_handle(O2).

nesting_bound_erlang_to_python(_Config) ->
    Deep = fun(N) -> lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, N)) end,
    ok = py:exec(<<"def depth(v):\n    n = 0\n    while v:\n        v = v[0]\n        n += 1\n    return n\n">>),
    {ok, 999} = py:call('__main__', depth, [Deep(999)]),
    {error, nesting_too_deep} = py:call('__main__', depth, [Deep(1001)]),
    {error, nesting_too_deep} = py:call('__main__', depth, [Deep(100000)]),
    {ok, 1} = py:eval(<<"1">>).

nesting_bound_python_to_erlang(_Config) ->
    {ok, _} = py:eval(<<"__import__('functools').reduce(lambda a, _: [a], range(999), [])">>),
    {error, nesting_too_deep} = py:eval(<<"__import__('functools').reduce(lambda a, _: [a], range(1001), [])">>),
    {error, nesting_too_deep} = py:eval(<<"__import__('functools').reduce(lambda a, _: {'k': a}, range(5000), {})">>).

cyclic_python_values(_Config) ->
    ok = py:exec(<<"cyc = []\ncyc.append(cyc)\nd = {}\nd['self'] = d">>),
    {error, nesting_too_deep} = py:eval(<<"cyc">>),
    {error, nesting_too_deep} = py:eval(<<"d">>),
    ok = py:exec(<<"cyc.clear(); d.clear()">>).

%% 5 KB of Python objects sharing their lists would be a term of 16 GB:
%% refused before the VM runs out of memory.
shared_python_values_bounded(_Config) ->
    {error, {result_too_large, Bytes}} = py:eval(<<"[[[0] * 1000] * 1000] * 1000">>),
    true = Bytes >= 1 bsl 30,
    {error, {result_too_large, _}} = py:eval(<<"[b'x' * 10000000] * 200">>),
    {ok, 1} = py:eval(<<"1">>).

%% The same on the way in: shared subterms expand when copied.
shared_erlang_terms_bounded(_Config) ->
    Huge = lists:duplicate(1000, lists:duplicate(1000, lists:duplicate(1000, 0))),
    {error, {argument_too_large, _}} = py:call(builtins, len, [Huge]),
    %% large but reasonable arguments are fine (copied on a dirty scheduler)
    Big = lists:seq(1, 200000),
    {ok, 200000} = py:call(builtins, len, [Big]).

%% An int subclass's __abs__ or __index__ is never asked for its value.
int_subclass_overrides_ignored(_Config) ->
    ok = py:exec(<<"class B(int):\n    def __abs__(self):\n        return 'x'\n    def __index__(self):\n        return 3\n">>),
    {ok, 1180591620717411303424} = py:eval(<<"B(2 ** 70)">>),
    {ok, -1180591620717411303424} = py:eval(<<"B(-2 ** 70)">>),
    {ok, 7} = py:eval(<<"B(7)">>).

unicode_exception_names(_Config) ->
    ok = py:exec(<<"class Ошибка(Exception):\n    pass\n"/utf8>>),
    {error, {Type, <<"плохо"/utf8>>}} = py:exec(<<"raise Ошибка('плохо')"/utf8>>),
    Type = binary_to_atom(<<"Ошибка"/utf8>>, utf8).

keys_equal_in_python_refused(_Config) ->
    {error, {duplicate_key, _}} = py:eval(<<"len(d)">>, #{d => #{a => 1, <<"a">> => 2}}),
    {error, {duplicate_key, _}} = py:eval(<<"len(d)">>, #{d => #{1 => a, 1.0 => b}}),
    {ok, 2} = py:eval(<<"len(d)">>, #{d => #{a => 1, b => 2}}).

%% Random terms of the convertible kinds survive Erlang -> Python -> Erlang.
round_trip_property(_Config) ->
    rand:seed(exsss, {1, 2, 3}),
    [begin
         T = random_term(4),
         {ok, Back} = echo(T),
         ?assertEqual(normalise(T), Back)
     end || _ <- lists:seq(1, 500)],
    ok.

random_term(0) -> random_leaf();
random_term(D) ->
    case rand:uniform(6) of
        1 -> [random_term(D - 1) || _ <- lists:seq(1, rand:uniform(4) - 1)];
        2 -> list_to_tuple([random_term(D - 1) || _ <- lists:seq(1, rand:uniform(4) - 1)]);
        3 -> maps:from_list([{random_key(), random_term(D - 1)} || _ <- lists:seq(1, rand:uniform(4) - 1)]);
        _ -> random_leaf()
    end.

random_leaf() ->
    case rand:uniform(7) of
        1 -> rand:uniform(1 bsl 80) - (1 bsl 79);
        2 -> rand:uniform(100) - 50;
        3 -> rand:uniform() * 1000;
        4 -> list_to_binary([rand:uniform(26) + 96 || _ <- lists:seq(1, rand:uniform(8))]);
        5 -> lists:nth(rand:uniform(3), [true, false, none]);
        6 -> self();
        7 -> {bytes, <<(rand:uniform(255))>>}
    end.

random_key() ->
    case rand:uniform(2) of
        1 -> rand:uniform(1000);
        2 -> list_to_binary([rand:uniform(26) + 96 || _ <- lists:seq(1, 3)])
    end.

%% What a term looks like after a round trip: atoms other than booleans and
%% none come back as binaries, {bytes, B} as B.
normalise({bytes, B}) when is_binary(B) -> B;
normalise(L) when is_list(L) -> [normalise(X) || X <- L];
normalise(T) when is_tuple(T) -> list_to_tuple([normalise(X) || X <- tuple_to_list(T)]);
normalise(M) when is_map(M) -> maps:from_list([{normalise(K), normalise(V)} || {K, V} <- maps:to_list(M)]);
normalise(X) -> X.

%% Distinct Python keys of one dict that become one Erlang term are refused
%% with the key, in a small dict (a map made on the context thread) and in a
%% big one (built by the receiver); keys that merely look alike are not.
python_keys_colliding_refused(_Config) ->
    ok = py:exec(<<"
import erlang
class IdInt(int):
    __hash__ = object.__hash__
    __eq__ = object.__eq__
class IdStr(str):
    __hash__ = object.__hash__
    __eq__ = object.__eq__
def with_filler(d):
    big = {i: i for i in range(1000, 1300)}  # ints: nothing in them may collide
    big.update(d)
    return big
def send_error(d):
    try:
        erlang.send(erlang.self(), d)
    except ValueError as e:
        return str(e)
">>),
    Collisions = [{<<"{'x': 1, b'x': 2}">>, <<"x">>},
                  {<<"{None: 1, erlang.Atom('none'): 2}">>, none},
                  {<<"{True: 1, erlang.Atom('true'): 2}">>, true},
                  {<<"{False: 1, erlang.Atom('false'): 2}">>, false},
                  {<<"{float('nan'): 1, float('nan'): 2}">>, nan},
                  {<<"{float('nan'): 1, erlang.Atom('nan'): 2}">>, nan},
                  {<<"{float('inf'): 1, erlang.Atom('infinity'): 2}">>, infinity},
                  {<<"{float('-inf'): 1, erlang.Atom('neg_infinity'): 2}">>, neg_infinity},
                  {<<"{('x', 1): 1, (b'x', 1): 2}">>, {<<"x">>, 1}},
                  {<<"{'\\udcff': 1, b'\\xed\\xb3\\xbf': 2}">>, <<237, 179, 191>>},
                  {<<"{IdInt(5): 1, IdInt(5): 2}">>, 5},
                  {<<"{IdInt(5): 1, 5: 2}">>, 5},
                  {<<"{IdStr('s'): 1, IdStr('s'): 2}">>, <<"s">>}],
    [begin
         {Dict, {error, {duplicate_key, Key}}} = {Dict, py:eval(Dict)},
         {Dict, {error, {duplicate_key, Key}}} = {Dict, py:eval(<<"with_filler(", Dict/binary, ")">>)},
         %% found by the NIF itself, not only by the receiver's check: a send
         %% raises at once
         {ok, <<"erlang.send: two keys of one dict", _/binary>>} =
             py:eval(<<"send_error(with_filler(", Dict/binary, "))">>)
     end || {Dict, Key} <- Collisions],
    {messages, []} = process_info(self(), messages),
    %% alike but distinct in Erlang too
    Fine = [<<"{'a': 1, 'b': 2, 3: 'c'}">>,
            <<"{1: 'int', '1': 'str', b'2': 'bytes', 1.5: 'float'}">>,
            <<"{'x': 1, b'y': 2, None: 3, erlang.Atom('nothing'): 4, float('nan'): 5}">>,
            <<"{('x',): 1, ('y',): 2, (b'z',): 3}">>,
            <<"{IdInt(5): 1, IdInt(6): 2}">>],
    [begin
         {ok, Small} = py:eval(Dict),
         {ok, Big} = py:eval(<<"with_filler(", Dict/binary, ")">>),
         {ok, N} = py:eval(<<"len(", Dict/binary, ")">>),
         N = map_size(Small),
         N = map_size(Big) - 300
     end || Dict <- Fine],
    %% an atom's name is text: lone surrogates are refused, not made bytes
    {error, {badarg, _}} = py:eval(<<"erlang.Atom('\\udcff')">>),
    %% the receiver's own check, should a collision ever get past the NIF
    {error, {duplicate_key, a}} = py_maps:finish({ok, [{py_nif:map_marker(), [{a, 1}, {b, 2}, {a, 3}]}]}).

%% Dicts of more than 128 keys are built by the receiver (py_maps): wherever
%% they sit in the result, and with whatever inside them, they come out as
%% the maps they are, and what holds no such dict comes out untouched.
deferred_maps_anywhere_in_a_result(_Config) ->
    ok = py:exec(<<"big = {i: str(i) for i in range(200)}\nbigger = {('k', i): dict(big) for i in range(150)}">>),
    Big = maps:from_list([{I, integer_to_binary(I)} || I <- lists:seq(0, 199)]),
    Bigger = maps:from_list([{{<<"k">>, I}, Big} || I <- lists:seq(0, 149)]),
    {ok, #{<<"a">> := [Big, {Big, #{<<"x">> := Big}}, 1.5, [2, 3]], <<"b">> := Bigger, <<"c">> := #{<<"small">> := [1]}}} =
        py:eval(<<"{'a': [big, (big, {'x': big}), 1.5, [2, 3]], 'b': bigger, 'c': {'small': [1]}}">>),
    {ok, [[], {}, #{}, Big]} = py:eval(<<"[[], (), {}, big]">>),
    %% The receiving NIF's own refusal of a key given twice, and of nothing else.
    M = py_nif:map_marker(),
    {error, {duplicate_key, {1, 2}}} = py_nif:finish_maps([x, #{k => {M, [{{1, 2}, a}, {b, c}, {{1, 2}, d}]}}]),
    {ok, {x, #{1 := #{}}}} = py_nif:finish_maps({x, {M, [{1, {M, []}}]}}),
    %% 1 and 1.0 are two keys (=:=); the one given twice is named.
    {error, {duplicate_key, k}} = py_nif:finish_maps({M, [{1, a}, {1.0, b}, {k, c}, {k, d}]}),
    {ok, #{1 := a, 1.0 := b}} = py_nif:finish_maps({M, [{1, a}, {1.0, b}]}),
    {ok, [M, {M, notalist}]} = py_nif:finish_maps([M, {M, notalist}]),
    %% Small maps on the way to a big one are walked once each (40 levels
    %% would be 2^40 walks otherwise), and markers nested past the NIF's
    %% depth bound are finished in Erlang: both answer in full.
    ok = py:exec(<<"w = dict(big)\nfor _ in range(40): w = {'k': w}\n"
                   "deep = {i: i for i in range(130)}\nfor _ in range(300): deep = {**{i: i for i in range(130)}, 'd': deep}">>),
    {ok, Wrapped} = py:eval(<<"w">>),
    Big = lists:foldl(fun(_, #{<<"k">> := Inner}) -> Inner end, Wrapped, lists:seq(1, 40)),
    {ok, Deep} = py:eval(<<"deep">>),
    Levels = fun L(#{<<"d">> := D}, N) -> L(D, N + 1); L(#{129 := 129}, N) -> N end,
    300 = Levels(Deep, 0),
    %% An erlang.Buffer key equals its bytes: with a str of the same text,
    %% two Python keys become one binary, whatever the dict's size.
    [{error, {duplicate_key, <<"x">>}} = py:eval(<<"dict([(b, 1), ('x', 2)] + [(i, i) for i in range(n)])">>,
                                                  #{b => {buffer, <<"x">>}, n => N}) || N <- [0, 200]],
    ok.
