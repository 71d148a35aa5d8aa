"""Start one student's kernel in a sandbox: ``python kernel_launcher.py -f <connection file> ...``.

The grading kernelspec points here instead of at ``ipykernel_launcher``. Run as a
script (not imported from the grading package), before the kernel exists:

1. Hide paths (mount namespace, when running as root): every directory in
   ``GRADING_HIDE`` (the instructor's solutions, .git, the original submissions,
   runs/ with the other students' copies, the other sandboxes) is covered by an
   empty read-only tmpfs in this process's private mount table. Only this
   student's sandbox is bound back. ``/tmp``, ``/var/tmp`` and ``/dev/shm`` are
   an empty writable tmpfs of this namespace (nothing written there outlives it).
2. Network namespace of its own (root, and the kernel's channels are ``ipc``:
   unix sockets in the sandbox, which grading/worker.py asks jupyter_client for):
   only its own loopback, so no other kernel's port is there to find or reach.
3. Limits (``resource.setrlimit``): address space ``GRADING_MEM_MB``, CPU time
   ``GRADING_CPU_S``, file size, process count, no core dumps.
4. No root: switch to the worker slot's own uid ``GRADING_UID`` (a different
   uid per parallel worker, so two kernels cannot read each other's files or
   /proc entries, and the student cannot undo the mounts). If that is not
   possible (the interpreter is not readable by that uid), the kernel is refused
   (exit 3) unless ``GRADING_ALLOW_WEAK_SANDBOX=1`` (``--allow-weak-sandbox``):
   then it keeps uid 0 without any capability.
5. An allow-listed environment (``ENV_ALLOW``, plus the names in
   ``GRADING_KERNEL_ENV``); cwd, HOME, TMPDIR, IPYTHONDIR, MPLCONFIGDIR = the
   sandbox; the kernel's own stdout/stderr go to ``kernel.log`` there; an IPython
   startup file caps the output of every cell at ``GRADING_OUTPUT_CHARS`` characters.

Then it execs ``python -m ipykernel_launcher`` (as ``KERNEL_BOOT``: without ipykernel's debugger). What was in force goes to the file
``GRADING_REPORT`` (in a folder of the grader's that the kernel cannot reach, written
before the uid switch), else to ``isolation.txt`` in the sandbox. ``kernel.pid`` in the
sandbox is only its start time for the worker's timings: the grader never reads a pid
from the sandbox.

``kernel_launcher.py --runner <job dir>`` sets up the same sandbox (the job dir is the sandbox)
for the grader's clean re-run instead (grading/rerun.py): the stripped bplib named by
``GRADING_BPLIB_OVERLAY`` is bind-mounted over the real bplib folder, so the reference
implementations are neither importable nor readable, and it execs
``python -I <job dir>/runner.py <job dir>``. ``--probe <dir>`` sets it up once more and only
imports what a kernel needs: the grader's check before a run (``check_sandbox``).
"""
import ctypes
import importlib.util
import json
import os
import resource
import signal
import sys

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")    # a fresh empty tmpfs each, gone with the kernel's namespace
PRIVATE_TMP_OPTIONS = "size=128m,mode=1777"
# what the kernel's environment may hold (everything else of the grader's environment is dropped)
ENV_ALLOW = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "LC_MESSAGES", "TZ", "JPY_PARENT_PID",
             "GRADING_OUTPUT_CHARS", "GRADING_MNIST_CACHE", "BPLIB_FAST", "BPLIB_RECORD_DIR")
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18

STARTUP = r'''
def _grading_ready():
    """The kernel has started: the grader tells a kernel that never started (its own fault) from one
    the learner's code stopped."""
    import os
    open(os.path.join(os.environ.get("HOME", "."), "kernel_ready"), "w").close()


_grading_ready()
del _grading_ready


def _grading_cap_output():
    """Cap what one cell may print (the grader installs this; the cap resets at every cell)."""
    import os, sys
    from IPython import get_ipython
    limit = int(os.environ.get("GRADING_OUTPUT_CHARS", "100000"))
    state = {"n": 0, "cut": False}

    def reset(*args, **kwargs):
        state["n"], state["cut"] = 0, False

    def wrap(stream):
        write = stream.write

        def capped(s):
            if not isinstance(s, str):
                return write(s)
            room = limit - state["n"]
            state["n"] += len(s)
            if room > 0:
                write(s if len(s) <= room else s[:room])
            if state["n"] > limit and not state["cut"]:
                state["cut"] = True
                write("\n[grader: the output of this cell was cut after %d characters]\n" % limit)
            return len(s)
        stream.write = capped

    wrap(sys.stdout)
    wrap(sys.stderr)
    get_ipython().events.register("pre_run_cell", reset)


_grading_cap_output()
del _grading_cap_output


def _grading_mnist_cache():
    """The same MNIST arrays, read from the grader's uncompressed copy (not 3-6 s of gunzip per kernel)."""
    import os
    path = os.environ.get("GRADING_MNIST_CACHE")
    if not path or not os.path.isfile(path):
        return
    try:
        import functools
        import numpy as np
        import bplib.data
    except Exception:
        return
    if not hasattr(bplib.data, "_mnist_arrays"):
        return

    @functools.lru_cache(maxsize=1)
    def _mnist_arrays():
        with np.load(path) as d:
            return d["x_train"], d["y_train"], d["x_test"], d["y_test"]
    bplib.data._mnist_arrays = _mnist_arrays


_grading_mnist_cache()
del _grading_mnist_cache
'''


# ``python -m ipykernel_launcher`` without the debugger: ipykernel imports debugpy at start-up if it
# can (about 0.1 CPU-s, a third of the kernel's start), and nothing in grading ever attaches a
# debugger. With ``sys.modules["debugpy"] = None`` that import fails and ipykernel runs without one.
NO_DEBUGGER = "import sys; sys.modules['debugpy'] = None; "
KERNEL_BOOT = NO_DEBUGGER + "import runpy; runpy.run_module('ipykernel_launcher', run_name='__main__', alter_sys=True)"


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _mount(libc, src, target, fstype, flags, data=None):
    enc = lambda s: s.encode() if s is not None else None   # noqa: E731
    if libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def hide_paths(paths, keep, overlay=None, notes=None, private=()):
    """Cover each path with an empty tmpfs in a new mount namespace; bind the ``keep`` paths back;
    then mount ``overlay`` (the stripped bplib) over the real bplib folder, if given. The ``private``
    folders (/tmp, /var/tmp, /dev/shm) get an empty tmpfs this process's users may write to: what the
    kernel writes there is in memory of this mount namespace only, and gone when its last process is."""
    libc = _libc()
    if libc.unshare(CLONE_NEWNS) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    fds = {k: os.open(k, os.O_RDONLY | os.O_DIRECTORY) for k in keep if os.path.isdir(k)}
    overlay_fd = os.open(overlay, os.O_RDONLY | os.O_DIRECTORY) if overlay else None
    hidden = []
    private = {os.path.realpath(p) for p in private if os.path.isdir(p)}
    for p in sorted(set(os.path.realpath(p) for p in list(paths) + sorted(private) if p)):
        if not os.path.lexists(p) or any(p == h or p.startswith(h + os.sep) for h in hidden):
            continue
        if os.path.isdir(p):
            _mount(libc, "none", p, "tmpfs", MS_NOSUID | MS_NODEV,
                   PRIVATE_TMP_OPTIONS if p in private else "size=64k,mode=0755")
            for k, fd in fds.items():
                if k.startswith(p + os.sep):
                    os.makedirs(k, exist_ok=True)
                    _mount(libc, f"/proc/self/fd/{fd}", k, None, MS_BIND | MS_REC)
        else:
            _mount(libc, "/dev/null", p, None, MS_BIND)
        hidden.append(p)
    for fd in fds.values():
        os.close(fd)
    if overlay_fd is not None:
        overlay_bplib(overlay_fd, notes if notes is not None else [])
        os.close(overlay_fd)
    return hidden


def own_network(notes, channels=True):
    """A network namespace of this process's own: only a loopback nobody else is on (no other kernel's
    ports, no grader's, no outside network). The kernel's channels are unix sockets in its sandbox
    (the grader's kernel manager uses ``transport = "ipc"``), which a path reaches across namespaces."""
    import fcntl
    import socket
    import struct
    libc = _libc()
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
    try:                                   # bring its loopback up (SIOCGIFFLAGS / SIOCSIFFLAGS, IFF_UP)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sk:
            flags = struct.unpack("16sH", fcntl.ioctl(sk, 0x8913, struct.pack("16sH", b"lo", 0)))[1]
            fcntl.ioctl(sk, 0x8914, struct.pack("16sH", b"lo", flags | 1))
        notes.append("network namespace of its own (only its own loopback"
                     + ("; kernel channels over unix sockets in its sandbox)" if channels else ")"))
    except OSError as e:
        notes.append(f"network namespace of its own (no network at all: loopback down, {e})")


def interpreter_paths():
    """What the sandbox user must be able to read to run the kernel: the interpreter, its standard
    library and the virtual environment's packages."""
    import sysconfig
    paths = [sys.executable]
    for key in ("stdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p and os.path.isdir(p):
            paths.append(p)
    return paths


def weak_sandbox_reason():
    """None if a kernel can run as an unprivileged uid of its own here (seen from inside its mount
    namespace, where the hidden home folder no longer blocks the way); else why not (the grader then
    stops, unless the instructor accepts the weaker sandbox: ``--allow-weak-sandbox``)."""
    if os.geteuid() != 0:
        return ("the grader is not root, so it cannot run each kernel as a user of its own (kernels would "
                "run as the grader's own user)")
    for p in interpreter_paths():
        if not reachable_by_others(p):
            return (f"{os.path.realpath(p)} is not readable by other users, so the kernel cannot run as an "
                    "unprivileged user (it would run as root); install the course's .venv with a Python "
                    "every user can read (book/instructors.md)")
    return None


def check_sandbox(hide, uid, workdir, timeout=60):
    """Start the sandbox once the way a kernel's starts (``--probe``) and import what a kernel needs in
    it. Returns (problem or None, the sandbox's notes). A problem: the kernel would not run as an
    unprivileged uid of its own (the grader stops unless ``--allow-weak-sandbox``)."""
    import subprocess
    import tempfile
    if os.geteuid() != 0:
        return weak_sandbox_reason(), ""
    box = tempfile.mkdtemp(prefix="probe-", dir=workdir)
    report = os.path.join(tempfile.mkdtemp(prefix="probe-notes-", dir=workdir), "notes")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADING_")}
    env.update(GRADING_SANDBOX=box, GRADING_HIDE=os.pathsep.join(hide), GRADING_UID=str(uid),
               GRADING_REPORT=report)
    try:
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--probe", box], env=env,
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        out, rc = p.stdout + p.stderr, p.returncode
    except subprocess.TimeoutExpired:
        out, rc = "timed out", -1
    try:
        with open(report) as f:
            notes = f.read().strip()
    except OSError:
        notes = ""
    if rc == 0 and "probe ok" in out and "runs as uid" in notes:
        return None, notes
    refused = [ln[len("refused: "):] for ln in notes.splitlines() if ln.startswith("refused: ")]
    if refused:
        return refused[0], notes
    tail = [ln for ln in out.strip().splitlines() if ln.strip()][-1:] or ["no output"]
    return (f"a kernel could not start in the sandbox as an unprivileged user (exit {rc}: "
            f"{tail[0][:200]})"), notes


def blocking_folders(paths):
    """The first folder above each path that other users cannot pass through (``/root`` for a pyenv
    or conda Python in root's home): covered in the kernel's mount namespace, with the path bound back,
    so the interpreter is reachable by the sandbox uid without opening the folder itself."""
    out = set()
    for p in paths:
        parts = os.path.realpath(p).split(os.sep)
        for i in range(2, len(parts)):
            d = os.sep.join(parts[:i])
            try:
                if not os.stat(d).st_mode & 0o001:
                    out.add(d)
                    break
            except OSError:
                break
    return sorted(out)


def reachable_by_others(path):
    """Can a process of another uid reach ``path`` (every parent directory o+x, the file o+r)?"""
    path = os.path.realpath(path)
    parts = path.split(os.sep)
    for i in range(1, len(parts)):
        d = os.sep.join(parts[:i]) or os.sep
        if not os.stat(d).st_mode & 0o001:
            return False
    mode = os.stat(path).st_mode
    return bool(mode & 0o004) and (not os.path.isdir(path) or bool(mode & 0o001))


def _chown_tree(path, uid, gid):
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for f in files:
            os.chown(os.path.join(root, f), uid, gid)


def drop_capabilities():
    """A root process that cannot switch uid keeps uid 0 but loses every capability: it cannot undo the
    mounts (no CAP_SYS_ADMIN), read other users' private files or signal their processes."""
    libc = _libc()
    PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and cap > 40:
            break
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]
    hdr, data = Header(0x20080522, 0), (Data * 2)()
    SYS_capset = 126 if os.uname().machine == "x86_64" else 91
    if libc.syscall(SYS_capset, ctypes.byref(hdr), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def overlay_bplib(overlay_fd, notes):
    """Bind the stripped bplib (an fd opened before the paths were hidden) over every bplib folder."""
    libc = _libc()
    spec = importlib.util.find_spec("bplib")
    targets = sorted({os.path.realpath(p) for p in (spec.submodule_search_locations or [])}) if spec else []
    for t in targets:
        _mount(libc, f"/proc/self/fd/{overlay_fd}", t, None, MS_BIND | MS_REC)
        _mount(libc, None, t, None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    notes.append("reference removed: the stripped bplib is mounted over " + " ".join(targets))


def fault_injected(name):
    """Test-only (grading/worker.py has the same): the first k events of ``name`` fail."""
    spec = dict(kv.split("=") for kv in os.environ.get("GRADING_FAULTS", "").split(",") if "=" in kv)
    k, folder = int(spec.get(name, 0)), os.environ.get("GRADING_FAULT_DIR")
    for i in range(k if folder else 0):
        try:
            os.close(os.open(os.path.join(folder, f"{name}.{i}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            return True
        except FileExistsError:
            continue
    return False


def _write_notes(report, sandbox, notes):
    """What of the sandbox was in force: to ``report`` (a file in a root-only folder of the grader,
    opened before the paths were hidden; closed at exec), else to the sandbox's isolation.txt."""
    data = ("\n".join(notes) + "\n").encode()
    if report is not None:
        os.ftruncate(report, 0)
        os.pwrite(report, data, 0)
        return
    fd = os.open(os.path.join(sandbox, "isolation.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def main(argv):
    probe = len(argv) > 2 and argv[1] == "--probe"     # the grader's check before a run: the same sandbox,
    runner = probe or (len(argv) > 2 and argv[1] == "--runner")    # then only an import of what kernels need
    if not runner and fault_injected("kernel_start"):
        sys.exit(1)                        # a kernel that never starts (the grader's fault, injected)
    sandbox = os.path.realpath(os.environ["GRADING_SANDBOX"])
    if runner:
        conn, rest, conn_text = None, [], None
    else:
        conn = argv[argv.index("-f") + 1]
        rest = [a for i, a in enumerate(argv) if a != "-f" and (i == 0 or argv[i - 1] != "-f")]
        with open(conn) as f:
            conn_text = f.read()
        with open(os.path.join(sandbox, "kernel.pid"), "w") as f:   # its time only (the grader never reads
            f.write(str(os.getpid()))                               # a pid from the sandbox)
    notes = []
    # the channels: unix sockets in the sandbox (ipc), or the shared loopback (tcp: no network namespace)
    try:
        info = json.loads(conn_text) if conn_text else {}
    except ValueError:
        info = {}
    ipc = runner or (info.get("transport") == "ipc"
                     and os.path.realpath(os.path.dirname(str(info.get("ip", "")))).startswith(sandbox + os.sep))
    report = os.environ.get("GRADING_REPORT")       # where isolation notes go: a folder the kernel cannot write
    if report:
        report = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    overlay = os.environ.get("GRADING_BPLIB_OVERLAY") if runner else None
    is_root = os.geteuid() == 0
    if is_root:
        try:
            interpreter = os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))
            # the interpreter, the virtual environment (data packages) and bplib's own
            # folder (an editable install points into the repository) stay visible even
            # when they live under a hidden path such as /tmp or the home folder
            keep = {sandbox, interpreter, os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
            spec = importlib.util.find_spec("bplib")
            for loc in (spec.submodule_search_locations or []) if spec else []:
                keep.add(os.path.realpath(loc))
            cache = os.environ.get("GRADING_MNIST_CACHE")
            if cache:
                keep.add(os.path.dirname(os.path.realpath(cache)))
            keep = sorted(keep)
            hide = os.environ.get("GRADING_HIDE", "").split(os.pathsep) + blocking_folders(keep)
            hidden = hide_paths(hide, keep, overlay, notes, private=PRIVATE_TMP)
            notes.insert(0, "mount-namespace hides: " + " ".join(hidden))
            notes.append("private " + ", ".join(p for p in PRIVATE_TMP if os.path.isdir(p))
                         + " (empty tmpfs, gone with the kernel)")
        except OSError as e:
            notes.append(f"no mount namespace ({e})")
        if ipc:
            try:
                own_network(notes, channels=not runner)
            except OSError as e:
                notes.append(f"shared network ({e})")
        else:
            notes.append("shared network (the kernel's channels are tcp on the loopback)")
    if runner and not probe and not any(n.startswith("reference removed") for n in notes):
        notes.append("reference removed from the import path only (no mount namespace: the real bplib "
                     "stays readable on disk)")

    # the files the kernel needs, inside the sandbox
    new_conn = os.path.join(sandbox, "connection.json")
    if not runner:
        with open(new_conn, "w") as f:
            f.write(conn_text)
    ipydir = os.path.join(sandbox, ".ipython")
    os.makedirs(os.path.join(ipydir, "profile_default", "startup"), exist_ok=True)
    with open(os.path.join(ipydir, "profile_default", "startup", "00-grading.py"), "w") as f:
        f.write(STARTUP)
    for d in ("tmp", ".config", "records"):
        os.makedirs(os.path.join(sandbox, d), exist_ok=True)
    record_dir = os.environ.get("BPLIB_RECORD_DIR")
    if record_dir:
        os.makedirs(record_dir, exist_ok=True)

    uid = int(os.environ.get("GRADING_UID", "-1"))
    drop = is_root and uid > 0 and all(reachable_by_others(p) for p in interpreter_paths())
    weak_ok = os.environ.get("GRADING_ALLOW_WEAK_SANDBOX") == "1"
    if is_root and not drop and not weak_ok:
        # never a root kernel unless the instructor accepted it (python -m grading --allow-weak-sandbox)
        _write_notes(report, sandbox, notes + ["refused: the kernel would run as root ("
                                               + (weak_sandbox_reason() or "no sandbox uid") + ")"])
        sys.exit(3)
    if drop:
        _chown_tree(sandbox, uid, uid)
        os.chmod(sandbox, 0o700)

    # limits (set before dropping root: a non-root process can only lower them)
    mem = int(os.environ.get("GRADING_MEM_MB", "0"))
    if mem > 0:
        resource.setrlimit(resource.RLIMIT_AS, (mem << 20, mem << 20))
    cpu = int(os.environ.get("GRADING_CPU_S", "0"))
    if cpu > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 20, 256 << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # too-large writes fail with an error instead
    if drop:
        pass                               # the uid switch comes last (below), after the notes are written
    elif is_root:
        notes.append("runs as the grader's own uid (the Python interpreter is not readable by other users)")
        try:
            drop_capabilities()
            notes.append("uid 0 without capabilities (cannot undo the mounts)")
        except OSError as e:
            notes.append(f"capabilities kept ({e})")
    else:
        notes.append("runs as the grader's own uid (not root: no uid switch, no mount namespace)")
    notes.append(f"limits: memory {mem} MB, cpu {cpu} s")
    if drop:                               # said before the switch: the kernel cannot rewrite it after
        _write_notes(report, sandbox, notes + [f"runs as uid {uid}"])
        resource.setrlimit(resource.RLIMIT_NPROC, (512, 512))
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    else:
        _write_notes(report, sandbox, notes)

    # an allow-listed environment: nothing of the grader's own (no instructor's token, no paths)
    allow = set(ENV_ALLOW) | set(filter(None, os.environ.get("GRADING_KERNEL_ENV", "").split(",")))
    allow -= {k for k in allow if k.startswith(("GRADING_", "PYTHON", "JUPYTER", "LD_"))
              and k not in ENV_ALLOW}
    if runner:
        allow.add("GRADING_BPLIB_OVERLAY")
    env = {k: v for k, v in os.environ.items() if k in allow}
    os.environ.clear()
    os.environ.update(env)
    env = os.environ
    env.update(PATH=os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]))
    env.update(HOME=sandbox, TMPDIR=os.path.join(sandbox, "tmp"), IPYTHONDIR=ipydir,
               MPLCONFIGDIR=os.path.join(sandbox, ".config"), MPLBACKEND="Agg",
               OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1")
    os.chdir(sandbox)
    if probe:
        os.execv(sys.executable, [sys.executable, "-c", "import numpy, ipykernel, bplib; print('probe ok')"])
    if runner:
        env.pop("GRADING_BPLIB_OVERLAY", None)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        path = [overlay] if overlay and not any(n.startswith("reference removed:") for n in notes) else []
        boot = ("import sys, runpy; sys.path[:0] = %r; sys.argv = sys.argv[1:]; "
                "runpy.run_path(sys.argv[0], run_name='__main__')") % [os.path.dirname(p) for p in path]
        os.execv(sys.executable, [sys.executable, "-I", "-c", boot, os.path.join(sandbox, "runner.py"), sandbox])
    log = os.open(os.path.join(sandbox, "kernel.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.execv(sys.executable, [sys.executable, "-c", KERNEL_BOOT, "-f", new_conn,
                              "--IPKernelApp.capture_fd_output=False"] + rest[1:])


if __name__ == "__main__":
    main(sys.argv)
