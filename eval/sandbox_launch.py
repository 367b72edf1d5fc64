# Launcher of eval's code sandbox (embedded in the Go binary, run as
# `python3 -I -S launch.py CONFIG_JSON` inside the namespaces the Go side
# created). It confines the process, then replaces itself with the sample:
#   1. (mount namespace) every mount read-only except the sample's directory;
#   2. resource limits: CPU, address space, processes, file size, no core;
#   3. (as root) drop to an unprivileged uid, which RLIMIT_NPROC binds and
#      which cannot undo the mounts;
#   4. run python3 -I -B prog.py in the sample's directory as a child
#      (steps 2-3 in the child) and exit with its status (128 + signal
#      when killed).
# A failure to set up is written to fd 3, which the caller reads and the
# sample never inherits, so the caller can tell it from a failing sample.
import ctypes
import json
import os
import resource
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND = 32, 1024, 2048, 4096
MS_REC, MS_PRIVATE, MS_RELATIME = 16384, 1 << 18, 1 << 21
OPT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
             "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}


def fail(msg):
    # fd 3 is the caller's channel for setup failures; the sample never
    # inherits it.
    os.write(3, msg.encode() + b"\n")
    os._exit(97)


def unescape(path):
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and i + 3 < len(path) and path[i + 1:i + 4].isdigit():
            out.append(chr(int(path[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def read_only_except(keep):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]

    def mount(src, target, flags):
        if libc.mount(src, target.encode() if target else None, None, flags, None) != 0:
            e = ctypes.get_errno()
            return os.strerror(e)
        return None

    err = mount(None, "/", MS_REC | MS_PRIVATE)
    if err:
        fail("making mounts private: " + err)
    err = mount(keep.encode(), keep, MS_BIND)
    if err:
        fail("binding %s: %s" % (keep, err))
    with open("/proc/self/mountinfo") as f:
        lines = f.read().splitlines()
    for ln in lines:
        fields = ln.split()
        target, opts = unescape(fields[4]), fields[5].split(",")
        if target == keep:
            continue
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        for o in opts:
            flags |= OPT_FLAGS.get(o, 0)
        err = mount(None, target, flags)
        if err and "ro" not in opts:
            fail("remounting %s read-only: %s" % (target, err))


def confine(cfg):
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (cfg["cpu"], cfg["cpu"] + 1))
        resource.setrlimit(resource.RLIMIT_AS, (cfg["memory"], cfg["memory"]))
        resource.setrlimit(resource.RLIMIT_FSIZE, (cfg["file_size"], cfg["file_size"]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if cfg["uid"] >= 0:
            resource.setrlimit(resource.RLIMIT_NPROC, (cfg["procs"], cfg["procs"]))
            os.setgroups([])
            os.setgid(cfg["uid"])
            os.setuid(cfg["uid"])
    except OSError as e:
        fail("limits: %s" % e)


def main():
    os.set_inheritable(3, False)
    cfg = json.loads(sys.argv[1])
    d = cfg["dir"]
    if cfg["mounts"]:
        read_only_except(d)
    os.chdir(d)
    # The sample runs as a child: the first process of a PID namespace
    # ignores signals it has no handler for (SIGXCPU at the CPU limit
    # among them), while the child dies of them as a sample would anywhere
    # else. The fork comes before the drop to the sandbox user, so it does
    # not count against that user's process limit (which other samples
    # running at the same time share). This process waits and passes the
    # outcome on: the exit status, or 128 + the signal that killed the
    # sample.
    pid = os.fork()
    if pid == 0:
        try:
            confine(cfg)
            os.execv(cfg["python"], [cfg["python"], "-I", "-B", "prog.py"])
        finally:
            os._exit(127)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


main()
