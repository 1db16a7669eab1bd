#!/usr/bin/env bash
# The README's first command on a fresh Debian userland.
#
#   bash tests/install/fresh_debian.sh [bookworm] [trixie]     # as root; both by default
#
# For each release: debootstrap a minimal Debian (minbase plus python3, as a
# standard install has it; cached, pristine, in $MEMCGCTL_FRESH_CACHE, default
# /var/cache/memcgctl-fresh), copy it to a scratch directory, bind-mount /proc,
# /sys and /dev, copy this checkout to /root/memcgctl in it, run the README's
# first command there in a clean environment, and check that `memcgctl stat`
# lists this host's top-level memory groups.  Every mount is undone and the
# scratch copy removed on every exit path (error, Ctrl-C, SIGTERM).
#
# Network: the chroot uses this host's resolv.conf, and, when this host's CA
# bundle holds authorities a fresh Debian lacks (a TLS-inspecting proxy), that
# bundle is bound read-only over the chroot's: only what the network needs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT="$(cd "$HERE/../.." && pwd)"
CACHE="${MEMCGCTL_FRESH_CACHE:-/var/cache/memcgctl-fresh}"
MIRROR="${MEMCGCTL_FRESH_MIRROR:-http://deb.debian.org/debian}"
RELEASES=("$@")
[ ${#RELEASES[@]} -gt 0 ] || RELEASES=(bookworm trixie)

say() { echo "fresh-debian: $*" >&2; }
die() { echo "fresh-debian: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mounts)"
command -v debootstrap >/dev/null || {
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null || die "apt-get install debootstrap failed"
}

# The README's first command: the first line of its first ```sh block, comment cut.
readme_command() {
    awk '/^```sh/ {inside=1; next} inside {print; exit}' "$PROJECT/README.md" | sed 's/[[:space:]]*#.*$//'
}

# This host's top-level memory groups, as `memcgctl stat` names them.
host_groups() {
    local mount
    mount="$(awk '$9 == "cgroup" && $NF ~ /(^|,)memory(,|$)/ {print $5; exit}' /proc/self/mountinfo)"
    if [ -z "$mount" ]; then
        mount="$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)"
    fi
    [ -n "$mount" ] || die "no memory cgroup hierarchy on this host"
    find "$mount" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort
}

rootfs() {  # the cached pristine userland of release $1
    local release=$1 dir="$CACHE/$1"
    if [ ! -x "$dir/usr/bin/python3" ]; then
        say "$release: debootstrap (minbase + python3) into $dir"
        rm -rf "$dir.new"
        mkdir -p "$CACHE"
        debootstrap --variant=minbase --include=python3,ca-certificates "$release" "$dir.new" "$MIRROR" \
            >"$CACHE/$release.log" 2>&1 || { tail -20 "$CACHE/$release.log" >&2; rm -rf "$dir.new"; die "debootstrap $release failed"; }
        rm -rf "$dir"
        mv "$dir.new" "$dir"
    fi
    echo "$dir"
}

WORK=""
MOUNTS=()
cleanup() {
    local i
    for ((i=${#MOUNTS[@]}-1; i>=0; i--)); do
        umount -R "${MOUNTS[$i]}" 2>/dev/null || umount -R -l "${MOUNTS[$i]}" 2>/dev/null || true
    done
    MOUNTS=()
    if [ -n "$WORK" ]; then
        if findmnt -rno TARGET | grep -q "^$WORK"; then
            echo "fresh-debian: WARNING: mounts left under $WORK; not removing it" >&2
        else
            rm -rf "$WORK"
        fi
    fi
    WORK=""
}
CHILD=""
stop() {  # on SIGINT/SIGTERM: end the command in the chroot (its own session), then clean up
    if [ -n "$CHILD" ]; then
        kill -TERM -- "-$CHILD" 2>/dev/null || true
        wait "$CHILD" 2>/dev/null || true
    fi
    exit "$1"
}
trap cleanup EXIT
trap 'stop 130' INT
trap 'stop 143' TERM

bind() {  # bind $1 onto $2 (recursively), remembered for cleanup
    mount --rbind "$1" "$2"
    MOUNTS+=("$2")
    mount --make-rslave "$2"
}

try_release() {
    local release=$1 pristine root command started output
    pristine="$(rootfs "$release")"
    started=$SECONDS
    WORK="$(mktemp -d /var/tmp/memcgctl-fresh-"$release".XXXXXX)"
    root="$WORK/root"
    cp -a "$pristine" "$root"
    bind /proc "$root/proc"
    bind /sys "$root/sys"
    bind /dev "$root/dev"
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
    if ! cmp -s /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"; then
        mount --bind -o ro /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
        MOUNTS+=("$root/etc/ssl/certs/ca-certificates.crt")
    fi
    mkdir -p "$root/root/memcgctl"
    git -C "$PROJECT" ls-files -z --cached --others --exclude-standard \
        | (cd "$PROJECT" && tar --null -T - -cf -) | tar -xf - -C "$root/root/memcgctl"
    command="$(readme_command)"
    say "$release: running the README's first command: $command"
    output="$WORK/output"
    # In the background and in a session of its own, so that a signal stops
    # it at once (bash runs traps only between commands).
    setsid chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
        /bin/sh -c "cd /root/memcgctl && $command" </dev/null >"$output" 2>&1 &
    CHILD=$!
    local status=0
    wait "$CHILD" || status=$?
    CHILD=""
    if [ "$status" != 0 ]; then
        tail -30 "$output" >&2
        die "$release: the README's first command failed (exit $status)"
    fi
    local missing="" group
    while read -r group; do
        grep -q "^$group\( \|$\)" "$output" || missing="$missing $group"
    done < <(host_groups)
    if [ -n "$missing" ]; then
        tail -30 "$output" >&2
        die "$release: memcgctl stat does not list this host's groups:$missing"
    fi
    grep '^Successfully installed' "$output" >&2 || true
    grep -A3 '^GROUP ' "$output" >&2 || true
    say "$release: ok in $((SECONDS - started)) s: memcgctl stat listed $(host_groups | wc -l) top-level group(s) ($(chroot "$root" /usr/bin/python3 -V))"
    cleanup
}

for release in "${RELEASES[@]}"; do
    try_release "$release"
done
