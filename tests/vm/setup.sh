#!/bin/bash
# Prepare the cgroup v2 test VM used by tests/vm/run.py.  Idempotent.
#
#   bash tests/vm/setup.sh [--force]
#
# * apt-installs qemu-system-x86, busybox-static and e2fsprogs when missing;
# * downloads (never installs) Debian's linux-image-amd64 kernel package,
#   extracts it and keeps, in $MEMCGCTL_VM_CACHE/$MEMCGCTL_VM_KERNEL (default
#   /var/cache/memcgctl-vm/6.1): vmlinux (uncompressed, PVH-bootable), vmlinuz,
#   config, kernel-version and initramfs.cpio (busybox + 9p/virtio/ext4).
#
# Environment:
#   MEMCGCTL_VM_KERNEL      6.1 (default): Debian 12's kernel, from the host's
#                           apt sources; 6.12: Debian 13's, from Debian 13's
#                           package lists, fetched with a private sources file
#                           and state folder under the cache (the host's apt
#                           configuration is never changed)
#   MEMCGCTL_VM_CACHE       base asset folder (default /var/cache/memcgctl-vm)
#   MEMCGCTL_VM_KERNEL_PKG  kernel package to use instead of the one that
#                           linux-image-amd64 depends on
#   MEMCGCTL_VM_MIRROR      Debian mirror for 6.12 (default http://deb.debian.org/debian)
#   PYTHON                  python3 to run build_assets.py with
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KERNEL="${MEMCGCTL_VM_KERNEL:-6.1}"
BASE="${MEMCGCTL_VM_CACHE:-/var/cache/memcgctl-vm}"
CACHE="$BASE/$KERNEL"
PYTHON="${PYTHON:-python3}"
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

say() { echo "vm-setup: $*"; }
die() { echo "vm-setup: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get, /var/cache)"
command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian/Ubuntu hosts only"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=/path/to/python3)"

# The kernel's own apt: the host's for 6.1 (Debian 12), a private one for
# 6.12 (Debian 13): its own sources file, no sources.list.d, its own package
# lists and cache, all under $BASE/apt-trixie.  Host packages (qemu...) always
# come from the host's apt.
KAPT=(apt-get)
KCACHE=(apt-cache)
case "$KERNEL" in
    6.1) ;;
    6.12)
        APTDIR="$BASE/apt-trixie"
        mirror="${MEMCGCTL_VM_MIRROR:-http://deb.debian.org/debian}"
        keyring=/usr/share/keyrings/debian-archive-keyring.gpg
        [ -s "$keyring" ] || die "$keyring missing (package debian-archive-keyring)"
        mkdir -p "$APTDIR/sources.list.d" "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
        {
            echo "deb [signed-by=$keyring] $mirror trixie main"
            echo "deb [signed-by=$keyring] $mirror trixie-updates main"
            echo "deb [signed-by=$keyring] ${mirror%/debian}/debian-security trixie-security main"
        } >"$APTDIR/sources.list"
        private=(-o "Dir::Etc::SourceList=$APTDIR/sources.list"
                 -o "Dir::Etc::SourceParts=$APTDIR/sources.list.d"
                 -o "Dir::State::Lists=$APTDIR/lists"
                 -o "Dir::Cache=$APTDIR/cache"
                 -o "APT::Architecture=amd64" -o "APT::Architectures=amd64")
        KAPT=(apt-get "${private[@]}")
        KCACHE=(apt-cache "${private[@]}")
        ;;
    *) die "MEMCGCTL_VM_KERNEL=$KERNEL: expected 6.1 (Debian 12's kernel) or 6.12 (Debian 13's)" ;;
esac

APT_UPDATED=0
apt_update_once() {
    if [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update"
        apt-get update -q >/dev/null || die "apt-get update failed (is the Debian mirror reachable?)"
        APT_UPDATED=1
    fi
}
KAPT_UPDATED=0
kernel_apt_update_once() {
    if [ "$KERNEL" = 6.1 ]; then
        apt_update_once
    elif [ "$KAPT_UPDATED" = 0 ]; then
        say "apt-get update (Debian 13's package lists, in $APTDIR)"
        "${KAPT[@]}" update -q >/dev/null \
            || die "apt-get update of Debian 13's package lists failed (is the Debian mirror reachable?)"
        KAPT_UPDATED=1
    fi
}

# --- 1. host packages ------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for pkg in qemu-system-x86 busybox-static e2fsprogs; do
    installed "$pkg" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt_update_once
    for pkg in "${missing[@]}"; do
        apt-cache show "$pkg" >/dev/null 2>&1 \
            || die "package $pkg is not available from the configured apt sources"
    done
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        >/tmp/memcgctl-vm-apt.log 2>&1 \
        || { tail -20 /tmp/memcgctl-vm-apt.log >&2; rm -f /tmp/memcgctl-vm-apt.log;
             die "apt-get install ${missing[*]} failed"; }
    rm -f /tmp/memcgctl-vm-apt.log
fi
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing after install"
[ -x /bin/busybox ] || die "/bin/busybox missing (package busybox-static)"

# --- 2. which kernel -------------------------------------------------------
kernel_pkg() {
    if [ -n "${MEMCGCTL_VM_KERNEL_PKG:-}" ]; then
        echo "$MEMCGCTL_VM_KERNEL_PKG"
        return
    fi
    # linux-image-amd64 (the meta package) Depends: linux-image-6.1.0-NN-amd64
    # (Debian 13: linux-image-6.12.NN+debMM-amd64)
    # (no package lists yet: nothing, not a failure under pipefail)
    { "${KCACHE[@]}" depends linux-image-amd64 2>/dev/null || true; } \
        | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -1
}

have_assets() {
    [ -s "$CACHE/vmlinux" ] || [ -s "$CACHE/vmlinuz" ] || return 1
    [ -s "$CACHE/initramfs.cpio" ] && [ -s "$CACHE/stamp" ]
}
builder_hash="$(sha256sum "$HERE/build_assets.py" | cut -c1-16)"

pkg="$(kernel_pkg)"
if [ -z "$pkg" ] && have_assets && [ "$FORCE" = 0 ]; then
    # No package lists (yet): keep what we have rather than touching apt.
    if grep -q " $builder_hash\$" "$CACHE/stamp"; then
        say "assets in $CACHE are present ($(cat "$CACHE/stamp")); nothing to do"
        exit 0
    fi
fi
if [ -z "$pkg" ]; then
    kernel_apt_update_once
    pkg="$(kernel_pkg)"
fi
[ -n "$pkg" ] || die "cannot find the kernel package: 'apt-cache depends linux-image-amd64' \
names no linux-image-*-amd64 (set MEMCGCTL_VM_KERNEL_PKG=linux-image-...-amd64)"

want="$pkg $builder_hash"
if [ "$FORCE" = 0 ] && have_assets && [ "$(cat "$CACHE/stamp")" = "$want" ]; then
    say "assets in $CACHE are up to date ($pkg)"
    exit 0
fi

# --- 3. download + extract + build -------------------------------------------
mkdir -p "$CACHE"
work="$(mktemp -d "$CACHE/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
# apt-get download writes as the _apt user when it can: let it.
if id _apt >/dev/null 2>&1; then chown _apt "$work"; fi

if ! "${KCACHE[@]}" show "$pkg" >/dev/null 2>&1; then
    kernel_apt_update_once
    "${KCACHE[@]}" show "$pkg" >/dev/null 2>&1 || die "kernel package $pkg is not available from apt"
fi
say "downloading $pkg"
(cd "$work" && "${KAPT[@]}" download -q "$pkg" >/dev/null 2>"$work/download.err") || {
    # The package lists may be stale (old kernel ABI removed from the mirror).
    kernel_apt_update_once
    pkg2="$(kernel_pkg)"; [ -n "$pkg2" ] && pkg="$pkg2"
    (cd "$work" && "${KAPT[@]}" download -q "$pkg" >/dev/null 2>"$work/download.err") || {
        cat "$work/download.err" >&2; die "apt-get download $pkg failed"; }
}
deb="$(ls "$work"/*.deb 2>/dev/null | head -1)"
[ -n "$deb" ] || die "apt-get download $pkg produced no .deb"
say "extracting $(basename "$deb")"
dpkg-deb -x "$deb" "$work/root"
rm -f "$deb"

"$PYTHON" "$HERE/build_assets.py" --kernel-root "$work/root" --busybox /bin/busybox \
    --out "$work/out" || die "building the VM assets failed"

for f in vmlinux vmlinuz config kernel-version initramfs.cpio; do
    if [ -e "$work/out/$f" ]; then
        mv -f "$work/out/$f" "$CACHE/$f"
    else
        rm -f "$CACHE/$f"
    fi
done
echo "$pkg $builder_hash" >"$CACHE/stamp"
say "ready: $CACHE ($(cat "$CACHE/kernel-version")); try: MEMCGCTL_VM_KERNEL=$KERNEL python3 tests/vm/run.py -- cat /sys/fs/cgroup/cgroup.controllers"
