"""Term <-> object conversion for isolated contexts: spec §5 over the
external term format.

The NIF converts with erl_nif inside the VM; an isolated worker gets and
sends the external term format instead. The rules are the same, and
test/py_convert_SUITE.erl (the rule book) runs unchanged against both.

Decoding: integer -> int, float -> float, binary -> str (not valid UTF-8:
bytes), {bytes, B} -> bytes, {buffer, B} -> erlang.Buffer (read-only
bytes, with the buffer protocol; they came over a pipe, so zero-copy has no
meaning here),
true/false -> bool, none/nil/undefined -> None, other atoms -> str, list ->
list, tuple -> tuple, map -> dict, pid -> Pid, reference -> Ref, a handle of
this worker (the VM's reference for it) -> the object.

Encoding: bool, int (exact), float (nan/inf as atoms), str (lone surrogates
keep their bytes), bytes, bytearray, None, list, tuple, dict, Pid, Ref, Atom;
anything else becomes a handle (see Encoder.handle).
"""
import math
import struct

MAX_NESTING = 1000
MAX_RESULT_BYTES = 1 << 30  # as the NIF: a term of 1 GiB at most

_pack_d = struct.Struct(">d").pack
_unpack_d = struct.Struct(">d").unpack_from
_pack_i = struct.Struct(">i").pack
_unpack_i = struct.Struct(">i").unpack_from
_pack_I = struct.Struct(">I").pack
_unpack_I = struct.Struct(">I").unpack_from
_unpack_H = struct.Struct(">H").unpack_from


class ConversionError(Exception):
    """A term or object with no form on the other side. `reason` is the
    Erlang reason, an object the encoder can write."""

    def __init__(self, reason):
        Exception.__init__(self, reason)
        self.reason = reason


class Raw:
    """Bytes already in the external term format (without the 131 tag)."""
    __slots__ = ("etf",)

    def __init__(self, etf):
        self.etf = etf


class _Opaque:
    """An Erlang pid or reference: its external form, compared and hashed
    by it."""
    __slots__ = ("_etf",)

    def __init__(self, etf):
        if not isinstance(etf, bytes):
            raise TypeError("%s objects come from Erlang" % type(self).__name__)
        self._etf = etf

    def __eq__(self, other):
        return type(other) is type(self) and other._etf == self._etf

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((type(self).__name__, self._etf))

    def __reduce__(self):
        return (type(self), (self._etf,))


class Pid(_Opaque):
    """An Erlang process identifier."""
    __slots__ = ()

    def __repr__(self):
        return "Pid(%s)" % _describe_pid(self._etf)


class Ref(_Opaque):
    """An Erlang reference."""
    __slots__ = ()

    def __repr__(self):
        return "Ref(%s)" % _describe_ref(self._etf)


class Atom(str):
    """An Erlang atom. Converts to an atom; other str values convert to
    binaries."""
    __slots__ = ()

    def __repr__(self):
        return "Atom(%s)" % str.__repr__(self)


LOCAL_NODE = [b""]  # the VM's node name, set at start-up


def _node_at(etf, pos):
    """(node name, position after it) of the atom at etf[pos]."""
    tag = etf[pos]
    if tag in (118, 100):
        n = _unpack_H(etf, pos + 1)[0]
        return etf[pos + 3:pos + 3 + n], pos + 3 + n
    n = etf[pos + 1]
    return etf[pos + 2:pos + 2 + n], pos + 2 + n


def _describe_pid(etf):
    node, pos = _node_at(etf, 1)
    ident, serial = _unpack_I(etf, pos)[0], _unpack_I(etf, pos + 4)[0]
    where = "0" if node == LOCAL_NODE[0] else node.decode("utf-8", "replace")
    return "<%s.%d.%d>" % (where, ident, serial)


def _describe_ref(etf):
    n = _unpack_H(etf, 1)[0]
    node, pos = _node_at(etf, 3)
    pos += 4 if etf[0] == 90 else 1
    words = [_unpack_I(etf, pos + 4 * i)[0] for i in range(n)]
    where = "0" if node == LOCAL_NODE[0] else node.decode("utf-8", "replace")
    return "#Ref<%s.%s>" % (where, ".".join(str(w) for w in reversed(words)))


_ATOMS = {b"true": True, b"false": False, b"none": None, b"nil": None, b"undefined": None}

# Atoms the VM is known to have: the codec's own, and every one a term from
# the VM named. An answer naming others lists them in front (Encoder.
# new_atoms), so the VM makes them within its budget, or refuses.
KNOWN_ATOMS = {"ok", "error", "true", "false", "none", "nil", "undefined", "nan", "infinity",
               "neg_infinity", "hello", "interrupted", "nesting_too_deep", "badarg", "duplicate_key",
               "unsupported_term", "result_too_large", "improper_list", "envs", "handles", "version",
               "executable", "version_info", "pid", "prefix", "stdout", "stderr", "atom",
               "atom_too_long", "operation", "bad_external_term", "exit", "throw", "busy", "data",
               "format", "itemsize", "shape", "not_a_buffer", "not_contiguous"}


def _check_contents(n, depth):
    """A container at the bound may only be empty: its contents would sit
    past it."""
    if n and depth >= MAX_NESTING:
        raise ConversionError(Atom("nesting_too_deep"))


class Buffer(bytes):
    """erlang.Buffer: what {buffer, Bin} becomes; back in Erlang, a binary."""

    __slots__ = ()

    def __repr__(self):
        return "<erlang.Buffer of %d bytes>" % len(self)


class Decoder:
    """Reads one term. `handles` maps the external form of a handle's
    reference (the VM's release token for it) to its object."""

    def __init__(self, data, handles):
        self.data = data
        self.handles = handles

    def term(self, pos=1, depth=0):
        """(object, position after it) of the term at data[pos], which
        sits inside `depth` containers (negative for an envelope's own)."""
        return self._term(pos, depth)

    def _atom_bytes(self, pos):
        data = self.data
        tag = data[pos]
        if tag in (119, 115):
            n = data[pos + 1]
            return data[pos + 2:pos + 2 + n], pos + 2 + n
        if tag in (118, 100):
            n = _unpack_H(data, pos + 1)[0]
            return data[pos + 3:pos + 3 + n], pos + 3 + n
        return None, pos

    def _term(self, pos, depth):
        data = self.data
        tag = data[pos]
        if tag == 97:
            return data[pos + 1], pos + 2
        if tag == 98:
            return _unpack_i(data, pos + 1)[0], pos + 5
        if tag == 109:
            n = _unpack_I(data, pos + 1)[0]
            raw = data[pos + 5:pos + 5 + n]
            try:
                return raw.decode("utf-8"), pos + 5 + n
            except UnicodeDecodeError:
                return raw, pos + 5 + n
        if tag in (119, 118, 115, 100):
            name, end = self._atom_bytes(pos)
            if name in _ATOMS:
                return _ATOMS[name], end
            text = name.decode("utf-8" if tag in (119, 118) else "latin-1")
            KNOWN_ATOMS.add(text)
            return text, end
        if tag == 70:
            return _unpack_d(data, pos + 1)[0], pos + 9
        # depth counts the containers around this term, as the NIF's
        # converter does: a term inside more than MAX_NESTING is refused.
        if depth > MAX_NESTING:
            raise ConversionError(Atom("nesting_too_deep"))
        if tag == 106:
            return [], pos + 1
        inner = depth + 1
        if tag == 108:
            n = _unpack_I(data, pos + 1)[0]
            _check_contents(n, depth)
            pos += 5
            out = []
            append = out.append
            for _ in range(n):
                item, pos = self._term(pos, inner)
                append(item)
            if data[pos] != 106:
                raise ConversionError(Atom("improper_list"))
            return out, pos + 1
        if tag == 107:  # a list of small integers, sent as a string
            n = _unpack_H(data, pos + 1)[0]
            _check_contents(n, depth)
            return list(data[pos + 3:pos + 3 + n]), pos + 3 + n
        if tag == 104 or tag == 105:
            if tag == 104:
                n, pos = data[pos + 1], pos + 2
            else:
                n, pos = _unpack_I(data, pos + 1)[0], pos + 5
            if n == 2:
                special = self._special_pair(pos)
                if special is not None:
                    return special
            _check_contents(n, depth)
            items = []
            for _ in range(n):
                item, pos = self._term(pos, inner)
                items.append(item)
            return tuple(items), pos
        if tag == 116:
            n = _unpack_I(data, pos + 1)[0]
            _check_contents(n, depth)
            pos += 5
            out = {}
            for _ in range(n):
                start = pos
                key, pos = self._term(pos, inner)
                value, pos = self._term(pos, inner)
                try:
                    if key in out:
                        raise ConversionError((Atom("duplicate_key"), Raw(data[start:self._skip(start)])))
                    out[key] = value
                except TypeError:
                    raise ConversionError((Atom("unsupported_term"), Raw(data[start:self._skip(start)])))
            return out, pos
        if tag == 110 or tag == 111:
            if tag == 110:
                n, pos = data[pos + 1], pos + 2
            else:
                n, pos = _unpack_I(data, pos + 1)[0], pos + 5
            value = int.from_bytes(data[pos + 1:pos + 1 + n], "little")
            return (-value if data[pos] else value), pos + 1 + n
        if tag in (88, 103):
            end = self._skip(pos)
            return Pid(bytes(data[pos:end])), end
        if tag in (90, 114):
            end = self._skip(pos)
            raw = bytes(data[pos:end])
            obj = self.handles.get(raw, _NOT_A_HANDLE)
            return (Ref(raw) if obj is _NOT_A_HANDLE else obj), end
        if tag == 99:  # an old-style float, as text
            return float(data[pos + 1:pos + 32].split(b"\0", 1)[0]), pos + 32
        end = self._skip(pos)
        raise ConversionError((Atom("unsupported_term"), Raw(data[pos:end])))

    def _special_pair(self, pos):
        """{bytes, B} and {buffer, B}, or None."""
        data = self.data
        if data[pos] in (119, 118, 115, 100):
            name, after = self._atom_bytes(pos)
            if name in (b"bytes", b"buffer") and data[after] == 109:
                n = _unpack_I(data, after + 1)[0]
                raw = bytes(data[after + 5:after + 5 + n])
                return (raw if name == b"bytes" else Buffer(raw)), after + 5 + n
        return None

    def _skip(self, pos):
        """The position after the term at data[pos], without building it."""
        data = self.data
        tag = data[pos]
        if tag == 97:
            return pos + 2
        if tag == 98:
            return pos + 5
        if tag == 70:
            return pos + 9
        if tag == 99:
            return pos + 32
        if tag in (109, 77):
            n = _unpack_I(data, pos + 1)[0]
            return pos + 5 + n + (1 if tag == 77 else 0)
        if tag in (119, 115):
            return pos + 2 + data[pos + 1]
        if tag in (118, 100, 107):
            return pos + 3 + _unpack_H(data, pos + 1)[0]
        if tag == 106:
            return pos + 1
        if tag == 108:
            n = _unpack_I(data, pos + 1)[0]
            pos += 5
            for _ in range(n + 1):
                pos = self._skip(pos)
            return pos
        if tag in (104, 105):
            if tag == 104:
                n, pos = data[pos + 1], pos + 2
            else:
                n, pos = _unpack_I(data, pos + 1)[0], pos + 5
            for _ in range(n):
                pos = self._skip(pos)
            return pos
        if tag == 116:
            n = _unpack_I(data, pos + 1)[0]
            pos += 5
            for _ in range(2 * n):
                pos = self._skip(pos)
            return pos
        if tag in (110, 111):
            if tag == 110:
                return pos + 3 + data[pos + 1]
            return pos + 6 + _unpack_I(data, pos + 1)[0]
        if tag in (88, 103):  # node, id, serial, creation
            pos = self._skip(pos + 1)
            return pos + 8 + (4 if tag == 88 else 1)
        if tag in (90, 114):
            n = _unpack_H(data, pos + 1)[0]
            pos = self._skip(pos + 3)
            return pos + (4 if tag == 90 else 1) + 4 * n
        if tag in (89, 102):  # ports
            pos = self._skip(pos + 1)
            return pos + (8 if tag == 89 else 4)
        if tag == 120:  # V4 port
            pos = self._skip(pos + 1)
            return pos + 12
        if tag == 112:  # a fun: its size is in its header
            return pos + 1 + _unpack_I(data, pos + 1)[0]
        if tag == 113:  # an export: module, function, arity
            pos = self._skip(pos + 1)
            pos = self._skip(pos)
            return self._skip(pos)
        raise ConversionError((Atom("unsupported_term"), Atom("unknown_external_tag")))


_NOT_A_HANDLE = object()


def decode(data, handles=None, depth=0):
    """The object a whole external term stands for; `depth` as for
    Decoder.term."""
    if data[:1] != b"\x83":
        raise ConversionError(Atom("bad_external_term"))
    value, _ = Decoder(data, handles or {}).term(1, depth)
    return value


def _atom(name):
    raw = name.encode("utf-8")
    if len(name) > 255:
        raise ConversionError((Atom("badarg"), Atom("atom_too_long")))
    if len(raw) < 256:
        return b"w" + bytes((len(raw),)) + raw
    return b"v" + struct.pack(">H", len(raw)) + raw


_NONE = _atom("none")
_TRUE = _atom("true")
_FALSE = _atom("false")
_NAN = _atom("nan")
_INF = _atom("infinity")
_NEG_INF = _atom("neg_infinity")


def _int(value):
    if 0 <= value < 256:
        return b"a" + bytes((value,))
    if -2147483648 <= value < 2147483648:
        return b"b" + _pack_i(value)
    magnitude = -value if value < 0 else value
    n = (magnitude.bit_length() + 7) // 8
    digits = magnitude.to_bytes(n, "little")
    sign = b"\x01" if value < 0 else b"\x00"
    if n < 256:
        return b"n" + bytes((n,)) + sign + digits
    return b"o" + _pack_I(n) + sign + digits


class Encoder:
    """Writes one object as a term. `handle(obj)` gives the handle term for
    an object with no Erlang form; `handles_made` tells whether it was
    asked."""

    def __init__(self, handle):
        self.handle = handle
        self.handles_made = False
        self.size = 0
        self.memo = {}
        self.new_atoms = []

    def encode(self, obj, depth=0):
        """The external term of obj, which sits inside `depth` containers
        (negative for the envelope around a value: {ok, V} is -1)."""
        return b"\x83" + self._term(obj, depth)

    def _grow(self, n):
        self.size += n
        if self.size > MAX_RESULT_BYTES:
            raise ConversionError((Atom("result_too_large"), MAX_RESULT_BYTES))

    def _term(self, obj, depth):
        kind = type(obj)
        if kind is str:
            raw = obj.encode("utf-8", "surrogatepass")
            self._grow(len(raw))
            return b"m" + _pack_I(len(raw)) + raw
        if kind is int:
            return _int(obj)
        if kind is bool:
            return _TRUE if obj else _FALSE
        if obj is None:
            return _NONE
        if kind is float:
            return self._float(obj)
        if kind is bytes or kind is bytearray:
            self._grow(len(obj))
            return b"m" + _pack_I(len(obj)) + bytes(obj)
        if kind is list or kind is tuple or kind is dict:
            return self._container(obj, kind, depth)
        if kind is Atom:
            return self._atom(obj)
        if kind is Pid or kind is Ref:
            return obj._etf
        if kind is Raw:
            return obj.etf
        # Subclasses convert as their base, whatever they override.
        if isinstance(obj, bool):
            return _TRUE if obj else _FALSE
        if isinstance(obj, int):
            return _int(int.__pos__(obj))
        if isinstance(obj, float):
            return self._float(float.__pos__(obj))
        if isinstance(obj, Atom):
            return self._atom(obj)
        if isinstance(obj, str):
            raw = str.encode(obj, "utf-8", "surrogatepass")
            self._grow(len(raw))
            return b"m" + _pack_I(len(raw)) + raw
        if isinstance(obj, (bytes, bytearray)):
            raw = bytes(obj)
            self._grow(len(raw))
            return b"m" + _pack_I(len(raw)) + raw
        if isinstance(obj, tuple):
            return self._container(tuple.__iter__(obj), tuple, depth, tuple.__len__(obj))
        if isinstance(obj, list):
            return self._container(list.__iter__(obj), list, depth, list.__len__(obj))
        if isinstance(obj, dict):
            return self._container(dict.items(obj), dict, depth, dict.__len__(obj))
        self.handles_made = True
        return self.handle(obj)

    def _atom(self, obj):
        try:
            str.encode(obj, "utf-8")
        except UnicodeEncodeError:
            raise ConversionError((Atom("badarg"), Atom("atom")))
        name = str.__str__(obj)
        if name not in KNOWN_ATOMS:
            self.new_atoms.append(name)
        return _atom(name)

    def framed(self, payload):
        """payload (an encode() result) as the VM reads it: behind the
        names of the atoms it may not have, if there are any."""
        if not self.new_atoms:
            return payload
        names = list(dict.fromkeys(self.new_atoms))
        KNOWN_ATOMS.update(names)  # made now, or past the budget for good
        return b"\x00" + Encoder(None).encode((names, payload))

    @staticmethod
    def _float(value):
        if value != value:
            return _NAN
        if value == math.inf:
            return _INF
        if value == -math.inf:
            return _NEG_INF
        return b"F" + _pack_d(value)

    def _container(self, obj, kind, depth, n=None):
        # Shared parts are written once and their bytes reused: a result
        # that expands to gigabytes is refused at once, not after minutes.
        # They are reused only at a depth no greater than the one they were
        # checked at, so the nesting bound holds wherever they reappear.
        key = id(obj)
        if n is None:
            n = len(obj)
            known = self.memo.get(key)
            if known is not None and known[0] is obj and depth <= known[2]:
                self._grow(len(known[1]))
                return known[1]
            items = obj.items() if kind is dict else obj
        else:
            items, obj = obj, None
        if depth > MAX_NESTING:
            raise ConversionError(Atom("nesting_too_deep"))
        _check_contents(n, depth)
        start = self.size
        term = self._term
        depth += 1
        if kind is list:
            if n == 0:
                return b"j"
            out = [b"l" + _pack_I(n)]
            out.extend([term(item, depth) for item in items])
            out.append(b"j")
        elif kind is tuple:
            out = [b"h" + bytes((n,)) if n < 256 else b"i" + _pack_I(n)]
            out.extend([term(item, depth) for item in items])
        else:
            out = [b"t" + _pack_I(n)]
            seen = set()
            for k, v in items:
                encoded = term(k, depth)
                if encoded in seen:
                    raise ConversionError((Atom("duplicate_key"), Raw(encoded)))
                seen.add(encoded)
                out.append(encoded)
                out.append(term(v, depth))
        written = b"".join(out)
        if obj is not None:
            self.memo[key] = (obj, written, depth - 1)
            self.size = start + len(written)
        return written
