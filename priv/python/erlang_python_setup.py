# What py_packages applies in each interpreter (spec §12): sys.path
# entries, imports, preload code and the active venv.
#
# Loaded once per interpreter by py_packages. Worker contexts share
# the main interpreter, so the state lives in one object per interpreter,
# found through sys.modules: whichever context comes first applies a step,
# the others see it done. Steps are numbered; each interpreter applies each
# number once, in order, under a lock (a step may release the GIL).
# Only what every interpreter has loaded anyway: user code may rely on
# logging or importlib not being imported yet.
import os
import sys
import threading


def _site_dirs():
    import site
    dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    if getattr(site, "ENABLE_USER_SITE", False) and hasattr(site, "getusersitepackages"):
        dirs.append(site.getusersitepackages())
    return [os.path.normpath(d) for d in dirs]


def _under(path, dirs):
    path = os.path.normpath(path)
    return any(path == d or path.startswith(d + os.sep) for d in dirs)


def _site_entries(site_dir):
    """site_dir and the directories its .pth files name, and their import
    lines, as the site module reads them."""
    entries, imports = [site_dir], []
    try:
        names = sorted(os.listdir(site_dir))
    except OSError:
        return entries, imports
    for name in names:
        if not name.endswith(".pth") or name.startswith("."):
            continue
        try:
            with open(os.path.join(site_dir, name), encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        for line in lines:
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith(("import ", "import\t")):
                imports.append((name, line))
                continue
            entry = os.path.normpath(os.path.join(site_dir, line.rstrip()))
            if os.path.exists(entry) and entry not in entries:
                entries.append(entry)
    return entries, imports


class _Routed:
    """sys.stdout / sys.stderr of this interpreter. Writes made for an
    Erlang process (a call, spawn_call, cast or stream on a context's
    thread; an event-loop job or task) go to that process's group leader,
    before the answer; others to the stream the interpreter had (spec §13)."""

    def __init__(self, original, is_stderr, write):
        self._original = original
        self._is_stderr = is_stderr
        self._write = write

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not " + type(text).__name__)
        if self._write(self._is_stderr, text):
            return len(text)
        if self._original is None:
            return len(text)
        return self._original.write(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if self._original is not None:
            self._original.flush()

    def writable(self):
        return True

    def isatty(self):
        return False

    def __getattr__(self, name):  # encoding, errors, buffer, fileno...
        # through __dict__: copy and pickle call this before __init__ ran
        original = self.__dict__.get("_original")
        if original is None:
            raise AttributeError(name)
        return getattr(original, name)


def _route_output():
    import erlang
    write = getattr(erlang, "_write", None)
    if write is None:
        return
    if not isinstance(sys.stdout, _Routed):
        sys.stdout = _Routed(sys.stdout, False, write)
    if not isinstance(sys.stderr, _Routed):
        sys.stderr = _Routed(sys.stderr, True, write)


class _Setup:
    def __init__(self):
        self.lock = threading.Lock()
        self.applied = 0
        self.venv_entries = []
        # The base Python's site directories on sys.path, recorded when a
        # venv is first activated: a venv without system site packages hides
        # them, and deactivating puts them back.
        self.system_entries = None
        self.base_globals = None
        self.epoch = None
        self.routed = False

    def sync(self, epoch):
        """A context joins: forget an earlier epoch's steps now, even if
        there are no steps to apply yet; route print output."""
        with self.lock:
            self._sync(epoch)
            if not self.routed:  # once: a stream the user sets later stays theirs
                self.routed = True
                _route_output()

    def _sync(self, epoch):
        if epoch != self.epoch:
            self._reset()
            self.epoch = epoch

    def _reset(self):
        if self.venv_entries:
            self._no_venv(None)
        if self.base_globals is not None:
            import erlang
            erlang.__dict__.pop("_base_globals", None)
            self.base_globals = None
        self.applied = 0

    def apply(self, epoch, seq, kind, arg):
        """Applies step `seq` unless this interpreter has already; True if it
        ran here. An exception is the step's failure. A new epoch (the
        application restarted) starts again from a clean state."""
        with self.lock:
            self._sync(epoch)
            if seq <= self.applied:
                return False
            self.applied = seq
            getattr(self, "_" + kind)(arg)
            return True

    def _add_path(self, path):
        if not sys.path or sys.path[0] != path:
            # one slice assignment: atomic for other threads
            sys.path[:] = [path] + [p for p in sys.path if p != path]

    def _import(self, name):
        __import__("importlib").import_module(name)

    def _preload(self, code):
        if self.base_globals is None:
            import erlang
            self.base_globals = {"__builtins__": __builtins__, "__name__": "__main__"}
            # Envs made from now on start as a copy of it (context/env.cpp).
            erlang.__dict__["_base_globals"] = self.base_globals
        exec(compile(code, "<preload>", "exec"), self.base_globals)

    def _venv(self, spec):
        entries, imports = [], []
        # What is on sys.path for another reason (add_path, python_path)
        # stays theirs: the venv neither adds it twice nor takes it away.
        others = set(sys.path) - set(self.venv_entries)
        for site_dir in spec["site_packages"]:
            more, lines = _site_entries(os.path.normpath(site_dir))
            entries += [e for e in more if e not in entries and e not in others]
            imports += lines
        self._set_path(entries, spec["system_site_packages"])
        for name, line in imports:
            try:
                exec(line)
            except Exception as e:  # as site does: the rest of the venv still counts
                __import__("logging").getLogger("erlang_python").warning("%s: %s: %s", name, type(e).__name__, e)

    def _no_venv(self, _):
        self._set_path([], True)

    def _set_path(self, venv_entries, keep_system):
        if self.system_entries is None:
            dirs = _site_dirs()
            self.system_entries = [p for p in sys.path if _under(p, dirs)]
        moving = set(self.venv_entries) | set(self.system_entries)
        rest, at = [], None
        for p in sys.path:
            if p in moving:
                at = len(rest) if at is None else at
            else:
                rest.append(p)
        at = len(rest) if at is None else at
        system = [p for p in self.system_entries if p not in venv_entries] if keep_system else []
        # One slice assignment: no other thread sees a half-made path.
        sys.path[:] = rest[:at] + venv_entries + system + rest[at:]
        self.venv_entries = venv_entries


# Loaded as module _erlang_python_setup by py_packages (never into an env,
# whose namespace is emptied when it dies); when two worker contexts load it
# at once, sys.modules.setdefault keeps the first, and both use its state.
setup = _Setup()
