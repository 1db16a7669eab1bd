#!/usr/bin/env python3
"""Run one command inside a throw-away QEMU VM with a cgroup v2 kernel.

    python3 tests/vm/run.py [--timeout S] [--memory MiB] [--cpus N]
                            [--env NAME=VALUE]... [--cwd DIR] [--debug]
                            [--init busybox|systemd|systemd-v1]
                            [--before-boot SHELL_COMMAND] -- COMMAND [ARG...]

The guest boots the Debian kernel prepared by tests/vm/setup.sh, mounts the
host's / read-only (9p), this project folder read-write at the same path,
cgroup2 at /sys/fs/cgroup with +memory in the root's subtree_control and a
fresh ext4 disk as /tmp, then chroots into the host root and runs COMMAND.
The command's stdout+stderr are streamed to our stdout; we exit with its
exit code (124 on timeout, 125 when the VM itself failed).

Importable: run_in_vm(argv, timeout, env=None, cwd=None) -> (code, output).
Stdlib only.
"""

import argparse
import codecs
import fcntl
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT_DIR = os.path.dirname(os.path.dirname(HERE))
DEFAULT_CACHE = "/var/cache/memcgctl-vm"
# MEMCGCTL_VM_KERNEL picks the guest kernel: Debian 12's 6.1 (the default
# while it is Debian's oldstable) or Debian 13's 6.12 (no cgroup v1, MGLRU,
# memory.reclaim swappiness=).  Each has its own asset folder under the cache.
KERNELS = ("6.1", "6.12")
DEFAULT_KERNEL = "6.1"
DEFAULT_TIMEOUT = 600
DEFAULT_MEMORY = 1536  # MiB
DEFAULT_CPUS = 2
DISK_SIZE = 4 << 30  # sparse; the guest's /tmp
QBOOT = "/usr/share/qemu/qboot.rom"
EXIT_TIMEOUT = 124
EXIT_VM_ERROR = 125

# Host variables passed through to the guest command (when set on the host).
PASSTHROUGH_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ",
    "PYENV_ROOT", "PYENV_VERSION", "VIRTUAL_ENV", "CI", "PYTEST_ADDOPTS",
)
PASSTHROUGH_PREFIX = "MEMCGCTL_"  # the project's own settings (not MEMCGCTL_VM_*)
FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class VMError(Exception):
    """The VM could not run the command (missing assets, boot failure...)."""


class MissingAssets(VMError):
    pass


def guest_kernel():
    """The kernel chosen by MEMCGCTL_VM_KERNEL, read at each run (importers
    set it in os.environ too)."""
    kernel = os.environ.get("MEMCGCTL_VM_KERNEL", "").strip() or DEFAULT_KERNEL
    if kernel not in KERNELS:
        raise VMError(f"MEMCGCTL_VM_KERNEL={kernel}: expected one of {', '.join(KERNELS)}")
    return kernel


def cache_dir():
    base = os.environ.get("MEMCGCTL_VM_CACHE") or DEFAULT_CACHE
    return os.path.join(base, guest_kernel())


def find_assets():
    d = cache_dir()
    initrd = os.path.join(d, "initramfs.cpio")
    kernel = os.path.join(d, "vmlinux")
    if not os.path.exists(kernel):
        kernel = os.path.join(d, "vmlinuz")  # slower fallback
    missing = [os.path.basename(p) for p in (kernel, initrd) if not os.path.exists(p)]
    if missing and not os.path.exists(os.path.join(d, "vmlinux")):
        missing[0:1] = ["vmlinux"] if missing[0] == "vmlinuz" else missing[0:1]
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        missing.append("qemu-system-x86_64")
    mkfs = shutil.which("mkfs.ext4") or next(
        (p for p in ("/sbin/mkfs.ext4", "/usr/sbin/mkfs.ext4") if os.path.exists(p)), None)
    if not mkfs:
        missing.append("mkfs.ext4 (e2fsprogs)")
    if missing:
        raise MissingAssets("VM assets missing in {} ({}): run {}tests/vm/setup.sh first".format(
            d, ", ".join(missing), f"MEMCGCTL_VM_KERNEL={guest_kernel()} bash "))
    return qemu, kernel, initrd, mkfs


def pick_accel():
    """'kvm' or 'tcg'. MEMCGCTL_VM_ACCEL=kvm|tcg overrides."""
    forced = os.environ.get("MEMCGCTL_VM_ACCEL", "").strip().lower()
    if forced in ("kvm", "tcg"):
        return forced
    # PVM ("kvm_pvm") only boots PVM-enabled guest kernels: stock ones hang.
    if os.path.exists("/sys/module/kvm_pvm"):
        return "tcg"
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return "tcg"
    try:
        return "kvm" if fcntl.ioctl(fd, 0xAE00) == 12 else "tcg"  # KVM_GET_API_VERSION
    except OSError:
        return "tcg"
    finally:
        os.close(fd)


# Stage 2 of the guest's init; stage 1 (in the initramfs) loaded the modules,
# mounted this folder's share at /vm and runs us with busybox sh.
GUEST_INIT = r"""
export PATH=/bin
R=/mnt/root
P=__PROJECT__
O9P=trans=virtio,version=9p2000.L,msize=262144
fail() {
    echo "vm-init: $*" >/dev/console
    echo "$*" >>/vm/error
    poweroff -f
}
mkdir -p $R
mount -t 9p -o $O9P,cache=loose,ro hostroot $R || fail "cannot mount the host root"
mount -t proc proc $R/proc || fail "cannot mount /proc"
mount -t sysfs sysfs $R/sys || fail "cannot mount /sys"
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || fail "cannot mount cgroup2"
# debugfs, as systemd mounts it: the multi-gen LRU's lru_gen (read only).
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
echo +memory >$R/sys/fs/cgroup/cgroup.subtree_control || fail "cannot enable +memory"
mount -t devtmpfs devtmpfs $R/dev || fail "cannot mount /dev"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
ln -sf /proc/self/fd $R/dev/fd
ln -sf /proc/self/fd/0 $R/dev/stdin
ln -sf /proc/self/fd/1 $R/dev/stdout
ln -sf /proc/self/fd/2 $R/dev/stderr
mount -t tmpfs -o mode=755 tmpfs $R/run
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mount -t ext4 -o noinit_itable /dev/vda $R/tmp || fail "cannot mount the /tmp disk"
chmod 1777 $R/tmp
mkdir -p "$R$P" 2>/dev/null
mount -t 9p -o $O9P,cache=loose project "$R$P" || fail "cannot mount the project at $P"
hostname memcgctl-vm
ip link set lo up 2>/dev/null
echo ready >/vm/ready
env -i chroot $R /bin/sh -c "$(cat /vm/cmd.sh)" </dev/null >>/vm/output 2>&1
echo $? >/vm/rc.tmp
mv /vm/rc.tmp /vm/rc
sync
umount "$R$P" 2>/dev/null
poweroff -f
"""


# Stage 2 with systemd as PID 1 (--init systemd).  The root stays the host's,
# read-only; /etc is a tmpfs copy of the host's without what the host enabled
# (its *.wants links, fstab, machine-id), /var and /run are fresh tmpfs.  The
# command runs as memcgctl-vm-command.service once multi-user.target is up,
# in a delegated group of its own (a leaf, "command", so that the service's
# group may give +memory to the groups a test creates beside it); then the
# guest powers off.  It starts as GUEST_INIT does (PATH, paths, fail).
GUEST_INIT_SYSTEMD = GUEST_INIT[:GUEST_INIT.index("mkdir -p $R\n")] + r"""mkdir -p $R /mnt/etc
mount -t 9p -o $O9P,cache=loose,ro hostroot $R || fail "cannot mount the host root"
mount -t tmpfs -o mode=755 tmpfs /mnt/etc || fail "cannot mount a tmpfs for /etc"
cp -a $R/etc/. /mnt/etc/ || fail "cannot copy /etc"
rm -f /mnt/etc/systemd/system/*.wants/* /mnt/etc/systemd/system/*.requires/* /mnt/etc/rc?.d/[SK]*
rm -f /mnt/etc/systemd/system/default.target
: >/mnt/etc/fstab
cat /proc/sys/kernel/random/uuid | tr -d - >/mnt/etc/machine-id
echo memcgctl-vm >/mnt/etc/hostname
ln -sf /dev/null /mnt/etc/systemd/system/serial-getty@ttyS0.service
cp /vm/memcgctl-vm.target /vm/memcgctl-vm-command.service /mnt/etc/systemd/system/
ln -sf memcgctl-vm.target /mnt/etc/systemd/system/default.target
mount -o move /mnt/etc $R/etc || fail "cannot mount /etc"
mount -t tmpfs -o mode=755 tmpfs $R/var || fail "cannot mount /var"
mkdir -p $R/var/lib/systemd $R/var/log $R/var/cache $R/var/spool $R/var/tmp
chmod 1777 $R/var/tmp
ln -s ../run $R/var/run
ln -s ../run/lock $R/var/lock
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs $R/run || fail "cannot mount /run"
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mount -t ext4 -o noinit_itable /dev/vda $R/tmp || fail "cannot mount the /tmp disk"
chmod 1777 $R/tmp
mkdir -p "$R$P" 2>/dev/null
mount -t 9p -o $O9P,cache=loose project "$R$P" || fail "cannot mount the project at $P"
mkdir -p $R/run/vm
mount -o move /vm $R/run/vm || fail "cannot move the control share"
umount /proc /sys 2>/dev/null
mount -o move /dev $R/dev 2>/dev/null || umount /dev
# --before-boot: its command runs here, chrooted into the guest's root with
# /proc, /sys and the cgroup hierarchy systemd uses (__HIERARCHY__, mounted as
# systemd would), before systemd starts; what it leaves (units in /etc,
# records in /run, groups in the hierarchy) is what the boot finds.  The
# mounts stay: systemd takes them over, as after an initrd (unmounted, a v1
# hierarchy would come back on another device, and a record naming a group
# by device and inode would rightly not be believed).
if [ -e $R/run/vm/before-boot.sh ]; then
    before_boot_failed() {
        echo "$*" >>$R/run/vm/error
        poweroff -f
    }
    mount -t proc proc $R/proc && mount -t sysfs sysfs $R/sys || before_boot_failed "cannot mount /proc and /sys"
    if [ __HIERARCHY__ = v1 ]; then
        mount -t tmpfs -o mode=755 tmpfs $R/sys/fs/cgroup && mkdir $R/sys/fs/cgroup/memory \
            && mount -t cgroup -o memory cgroup $R/sys/fs/cgroup/memory
    else
        mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 $R/sys/fs/cgroup \
            && echo +memory >$R/sys/fs/cgroup/cgroup.subtree_control
    fi || before_boot_failed "cannot mount the cgroup hierarchy for --before-boot"
    env -i chroot $R /bin/sh /run/vm/before-boot.sh <$R/dev/null >>$R/run/vm/output 2>&1 \
        || before_boot_failed "the --before-boot command failed (exit $?)"
fi
# The host root may hold /.dockerenv (a container host): an empty $container
# tells systemd as PID 1 it runs on a machine, so it reads the kernel's
# command line and starts udev as on one.
export container=
exec switch_root $R /lib/systemd/systemd
"""

SYSTEMD_TARGET = """\
[Unit]
Description=run.py: multi-user system, then the command
Requires=multi-user.target
After=multi-user.target
Wants=memcgctl-vm-command.service
AllowIsolate=yes
"""

SYSTEMD_COMMAND_UNIT = """\
[Unit]
Description=run.py: the command
After=multi-user.target

[Service]
Type=oneshot
Delegate=yes
StandardInput=null
StandardOutput=append:/run/vm/output
StandardError=inherit
TimeoutStartSec=infinity
ExecStart=/bin/sh /run/vm/systemd-command.sh
"""

SYSTEMD_COMMAND = r"""
own=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then  # v2 (not --init systemd-v1)
    mkdir "$own/command" && echo $$ >"$own/command/cgroup.procs" && echo +memory >"$own/cgroup.subtree_control" \
        || echo "run.py: cannot make the command's leaf group under $own" >&2
fi
echo ready >/run/vm/ready
/bin/sh /run/vm/cmd.sh
echo $? >/run/vm/rc.tmp
mv /run/vm/rc.tmp /run/vm/rc
sync
systemctl --force --force poweroff >/dev/null 2>&1
"""

INITS = ("busybox", "systemd", "systemd-v1")


def with_init_arguments(cmd, init):
    """The qemu command CMD with the kernel arguments INIT needs:
    "systemd-v1" boots systemd on the legacy hierarchy (the cgroup v1 memory
    controller, as on hosts that still run v1) instead of turning v1 off."""
    if init != "systemd-v1":
        return cmd
    at = cmd.index("-append") + 1
    return cmd[:at] + [cmd[at].replace("cgroup_no_v1=all", "systemd.unified_cgroup_hierarchy=0")] + cmd[at + 1:]


def write_guest_init(ctl, init):
    """The stage-2 init of INIT ("busybox": chroot and run; "systemd": boot
    systemd, which runs the command) and the files it needs, into CTL."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r} (one of {', '.join(INITS)})")
    template = GUEST_INIT if init == "busybox" else GUEST_INIT_SYSTEMD
    template = template.replace("__HIERARCHY__", "v1" if init == "systemd-v1" else "v2")
    files = {"guest-init.sh": template.replace("__PROJECT__", shlex.quote(PROJECT_DIR))}
    if init.startswith("systemd"):
        files.update({"memcgctl-vm.target": SYSTEMD_TARGET,
                      "memcgctl-vm-command.service": SYSTEMD_COMMAND_UNIT,
                      "systemd-command.sh": SYSTEMD_COMMAND})
    for name, text in files.items():
        with open(os.path.join(ctl, name), "w") as f:
            f.write(text)


def guest_env(env=None):
    out = {}
    for name, value in os.environ.items():
        if name in PASSTHROUGH_ENV or (name.startswith(PASSTHROUGH_PREFIX)
                                       and not name.startswith("MEMCGCTL_VM_")):
            out[name] = value
    out.setdefault("PATH", FALLBACK_PATH)
    out.setdefault("HOME", "/root")
    out.setdefault("LANG", "C.UTF-8")
    out["TERM"] = "dumb"
    out["MEMCGCTL_IN_VM"] = "1"
    for k, v in (env or {}).items():
        out[str(k)] = str(v)
    return out


def command_script(argv, env, cwd):
    lines = ["umask 022"]
    for k, v in sorted(env.items()):
        if not k.replace("_", "a").isalnum() or k[0].isdigit():
            raise ValueError(f"bad environment variable name: {k!r}")
        lines.append("export {}".format(shlex.quote(f"{k}={v}")))
    hint = (f"run.py: cannot cd to {cwd} in the VM (the guest sees the host root read-only, "
            "this project read-write, and a fresh empty /tmp)")
    lines.append(f"cd -- {shlex.quote(cwd)} || {{ printf '%s\\n' {shlex.quote(hint)} >&2; exit 125; }}")
    lines.append("exec " + " ".join(shlex.quote(a) for a in argv))
    return "\n".join(lines) + "\n"


TMP_PREFIX = "memcgctl-vm-"

# A watchdog process per run: it blocks reading a pipe whose write end only
# we hold.  EOF means we are gone (finished, or killed even with SIGKILL):
# it then kills our qemu (checked by its command line, which names our temp
# folder) and removes the temp folder.  (PR_SET_PDEATHSIG is not enough: it
# does not fire on every kernel this runs on.)
WATCHDOG = r"""
import os, shutil, signal, sys, time
pid, tmp = int(sys.argv[1]), sys.argv[2]
signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    while os.read(0, 4096):
        pass
except OSError:
    pass
def ours():
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return tmp.encode() in f.read()
    except OSError:
        return False
if ours():
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    for _ in range(100):
        if not ours():
            break
        time.sleep(0.05)
shutil.rmtree(tmp, ignore_errors=True)
"""


def _start_watchdog(qemu_pid, tmp):
    r, w = os.pipe()
    try:
        dog = subprocess.Popen([sys.executable, "-S", "-c", WATCHDOG, str(qemu_pid), tmp],
                               stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    except OSError:
        os.close(w)
        return None, None
    finally:
        os.close(r)
    return dog, w


def qemu_command(qemu, kernel, initrd, accel, memory, cpus, ctl, disk, console, debug):
    if accel == "kvm":
        accel_args = ["-accel", "kvm", "-cpu", "host"]
    else:
        accel_args = ["-accel", "tcg,thread=multi", "-cpu", "max"]
    # no_timer_check: on a busy host a TCG guest's timer may not tick within
    # the kernel's boot-time IO-APIC check, which then panics ("IO-APIC +
    # timer doesn't work!"; seen on 6.1 with two guests and a test run).
    append = ("console=ttyS0 rdinit=/init panic=-1 cgroup_no_v1=all mitigations=off no_timer_check "
              "8250.nr_uarts=1 i8042.noaux i8042.nokbd i8042.nopnp")
    append += " loglevel=7" if debug else " quiet loglevel=1"
    if os.environ.get("MEMCGCTL_VM_APPEND"):
        append += " " + os.environ["MEMCGCTL_VM_APPEND"]

    machine = os.environ.get("MEMCGCTL_VM_MACHINE") or "q35"
    bus = "device" if machine.startswith("microvm") else "pci"

    def share(tag, path, ro):
        return [
            "-fsdev", f"local,id={tag},path={path.replace(',', ',,')},security_model=none,multidevs=remap"
                      + (",readonly=on" if ro else ""),
            "-device", f"virtio-9p-{bus},fsdev={tag},mount_tag={tag}",
        ]

    return ([qemu, "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
             "-machine", machine, "-m", str(memory), "-smp", str(cpus)]
            + accel_args
            + (["-bios", QBOOT] if os.path.exists(QBOOT) else [])  # faster than SeaBIOS
            + ["-kernel", kernel, "-initrd", initrd, "-append", append,
               "-serial", "file:" + console, "-monitor", "none",
               "-net", "none"]
            + share("vmctl", ctl, False)
            + share("hostroot", "/", True)
            + share("project", PROJECT_DIR, False)
            + ["-drive", f"file={disk.replace(',', ',,')},format=raw,if=none,id=tmpdisk,cache=unsafe,discard=unmap",
               "-device", f"virtio-blk-{bus},drive=tmpdisk"]
            + shlex.split(os.environ.get("MEMCGCTL_VM_QEMU_ARGS", "")))


def _tail(path, n=30):
    try:
        with open(path, "rb") as f:
            text = f.read().decode(errors="replace")
        text = re.sub(r"\x1b(\[[0-9;?]*[A-Za-z]|[@-Z\\-_])|\r", "", text)
        lines = text.splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return ""


def run_in_vm(argv, timeout=DEFAULT_TIMEOUT, env=None, cwd=None, memory=DEFAULT_MEMORY,
              cpus=DEFAULT_CPUS, stream=None, debug=False, timings=None, init="busybox",
              before_boot=None):
    """Run argv in a fresh VM; return (exit_code, output_text).

    output_text is the command's stdout+stderr (interleaved as written).
    exit_code is the command's exit status (128+N if killed by signal N),
    124 if the whole run (boot included) exceeded `timeout` seconds.
    `stream`: optional file object (binary or text) that gets the output live.
    `timings`: optional dict that gets 'ready' (boot to command, s), 'total'
    and, on timeout, 'timed_out': True.
    `init`: "busybox" (chroot into the host root and run), "systemd"
    (systemd as PID 1 runs the command once multi-user.target is up) or
    "systemd-v1" (the same on the legacy cgroup v1 hierarchy).
    `before_boot`: with a systemd init, a shell command line run as root
    (same environment and directory as argv) in the guest's root before
    systemd starts; its output goes with the command's, and its failure
    stops the run (VMError).
    Raises VMError (MissingAssets) when the VM cannot run the command.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r} (one of {', '.join(INITS)})")
    if not argv:
        raise ValueError("empty command")
    if before_boot is not None and not init.startswith("systemd"):
        raise ValueError("before_boot needs a systemd init")
    qemu, kernel, initrd, mkfs = find_assets()
    cwd = os.path.abspath(cwd or os.getcwd())
    script = command_script(list(argv), guest_env(env), cwd)
    accel = pick_accel()
    start = time.monotonic()
    deadline = start + timeout
    tmp = tempfile.mkdtemp(prefix=TMP_PREFIX)
    dog = dog_pipe = None
    proc = None
    chunks = []
    try:
        ctl = os.path.join(tmp, "ctl")
        os.mkdir(ctl)
        disk = os.path.join(tmp, "tmp.ext4")
        console = os.path.join(tmp, "console.log")
        qemu_log = os.path.join(tmp, "qemu.log")
        write_guest_init(ctl, init)
        with open(os.path.join(ctl, "cmd.sh"), "wb") as f:
            f.write(script.encode("utf-8", "surrogateescape"))
        if before_boot is not None:
            with open(os.path.join(ctl, "before-boot.sh"), "wb") as f:
                f.write(command_script(["/bin/sh", "-c", before_boot], guest_env(env), cwd)
                        .encode("utf-8", "surrogateescape"))
        out_path = os.path.join(ctl, "output")
        open(out_path, "wb").close()
        with open(disk, "wb") as f:
            f.truncate(DISK_SIZE)
        r = subprocess.run([mkfs, "-q", "-F", "-m", "0", "-E",
                            "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0", disk],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode:
            raise VMError("mkfs.ext4 failed: {}".format(r.stdout.decode(errors="replace")))

        cmd = with_init_arguments(qemu_command(qemu, kernel, initrd, accel, memory, cpus, ctl, disk,
                                               console, debug), init)
        with open(qemu_log, "wb") as qlog:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=qlog,
                                    stderr=qlog, start_new_session=True)
        dog, dog_pipe = _start_watchdog(proc.pid, tmp)
        ready_path = os.path.join(ctl, "ready")
        text_stream = stream is not None and isinstance(stream, io.TextIOBase)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        with open(out_path, "rb") as out:
            def pump():
                data = out.read()
                if data:
                    chunks.append(data)
                    if stream is not None:
                        stream.write(decoder.decode(data) if text_stream else data)
                        stream.flush()
            timed_out = False
            while True:
                pump()
                if timings is not None and "ready" not in timings \
                        and os.path.exists(ready_path):
                    timings["ready"] = time.monotonic() - start
                if proc.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    timed_out = True
                    break
                time.sleep(0.05)
            if timed_out:
                proc.kill()
                proc.wait()
            pump()
        if timings is not None:
            timings["total"] = time.monotonic() - start
        text = b"".join(chunks).decode(errors="replace")
        if timed_out:
            if timings is not None:
                timings["timed_out"] = True
            return EXIT_TIMEOUT, text + f"\n[run_in_vm: timed out after {timeout:g} s; the VM was killed]\n"
        rc_path = os.path.join(ctl, "rc")
        if os.path.exists(rc_path):
            with open(rc_path) as f:
                return int(f.read().strip() or EXIT_VM_ERROR), text
        err = ""
        if os.path.exists(os.path.join(ctl, "error")):
            with open(os.path.join(ctl, "error")) as f:
                err = f.read().strip()
        reason = ": " + err if err else ""
        raise VMError(f"the VM stopped without running the command to its end{reason} "
                      f"(qemu exit status {proc.returncode}, accel {accel})\n--- qemu:\n{_tail(qemu_log)}\n"
                      f"--- guest console (rerun with --debug for kernel messages):\n{_tail(console)}")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if debug and os.path.exists(os.path.join(tmp, "console.log")):
            sys.stderr.write("--- guest console:\n{}\n".format(_tail(os.path.join(tmp, "console.log"), 10000)))
        shutil.rmtree(tmp, ignore_errors=True)
        if dog_pipe is not None:
            os.close(dog_pipe)  # lets the watchdog exit
            try:
                dog.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


def main(args=None):
    ap = argparse.ArgumentParser(
        description="Run COMMAND inside a throw-away cgroup v2 QEMU VM.",
        usage="%(prog)s [--timeout S] [--memory MiB] [--cpus N] [--env NAME=VALUE]... "
              "[--cwd DIR] [--debug] -- COMMAND [ARG...]")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                    help="seconds for the whole run, boot included (default %(default)s)")
    ap.add_argument("--memory", type=int, default=DEFAULT_MEMORY,
                    help="guest RAM in MiB (default %(default)s)")
    ap.add_argument("--cpus", type=int, default=DEFAULT_CPUS,
                    help="guest vCPUs (default %(default)s)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="extra environment variable for the command (repeatable)")
    ap.add_argument("--cwd", help="working directory in the guest (default: current)")
    ap.add_argument("--debug", action="store_true",
                    help="verbose guest kernel; print the guest console at the end")
    ap.add_argument("--time", action="store_true",
                    help="print boot/total timings to stderr at the end")
    ap.add_argument("--init", choices=INITS, default="busybox",
                    help="busybox: chroot and run (default); systemd: boot systemd as PID 1, "
                         "run COMMAND as a unit once the system is up; systemd-v1: the same on "
                         "the legacy cgroup v1 hierarchy")
    ap.add_argument("--before-boot", metavar="SHELL_COMMAND",
                    help="with --init systemd or systemd-v1: run SHELL_COMMAND as root in the guest's "
                         "root (writable /etc, /run, the cgroup hierarchy) before systemd starts, e.g. to "
                         "install and enable units or leave a record for the boot to find")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(args)
    argv = a.command
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        ap.error("no COMMAND given (put it after --)")
    if a.before_boot is not None and a.init == "busybox":
        ap.error("--before-boot needs --init systemd or systemd-v1")
    env = {}
    for item in a.env:
        if "=" not in item:
            ap.error(f"--env wants NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        env[k] = v

    class Terminated(KeyboardInterrupt):
        pass

    def on_term(signum, _frame):
        raise Terminated(signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_term)

    timings = {}
    try:
        code, _ = run_in_vm(argv, timeout=a.timeout, env=env, cwd=a.cwd, memory=a.memory,
                            cpus=a.cpus, stream=sys.stdout.buffer, debug=a.debug,
                            timings=timings, init=a.init, before_boot=a.before_boot)
    except KeyboardInterrupt as e:
        sys.stderr.write("run.py: interrupted; the VM was stopped\n")
        return 128 + (e.args[0] if isinstance(e, Terminated) else signal.SIGINT)
    except VMError as e:
        sys.stderr.write(f"run.py: {e}\n")
        return EXIT_VM_ERROR
    except BrokenPipeError:  # e.g. `run.py ... | head`: the VM is stopped already
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    sys.stdout.flush()
    if timings.get("timed_out"):
        sys.stderr.write(f"run.py: timed out after {a.timeout:g} s; the VM was killed\n")
    if a.time:
        sys.stderr.write(f"run.py: boot to command {timings.get('ready', -1):.2f} s, "
                         f"total {timings.get('total', -1):.2f} s\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
