#!/bin/sh
# Run tomato's cgroup test-suite on a pure cgroup2 hierarchy inside a KVM guest.
#
#   tools/cgroup2-vm/run.sh [build|test|test-legacy]
#
#   test         (default) pure cgroup2: the v2 backend
#   test-legacy  the same suite on a v1-only guest laid out like older distributions
#                (cpu,cpuacct and net_cls,net_prio co-mounted; hugetlb, rdma, net_cls
#                present), which the development machine cannot show; its systemd
#                phase runs systemd (and the systemd cgroup driver) on cgroup v1
#   build        only prepare the cached image
#
# The guest is Debian's own kernel (/boot/vmlinuz-<kver> of the host's
# linux-image-amd64) booted by qemu-system-x86_64 -enable-kvm (or TCG where
# KVM cannot boot it: kvm_pvm hosts such as the development VM) with a custom
# initramfs that *is* the root filesystem: an mmdebstrap'd Debian (python3,
# python3-pytest, busybox-static, stress, systemd, dbus, containerd) plus the few
# kernel modules 9p and overlay need.  Its /init mounts cgroup2 at /sys/fs/cgroup
# (no systemd), mounts the project read-only over 9p (virtfs) and runs pytest on
# the cgroup tests (phase "plain"); then it execs systemd as PID 1, which runs the
# systemd cgroup driver's tests, containerd's CRI with SystemdCgroup among them,
# from tomato-systemd-tests.service (phase "systemd") and powers off.  Under TCG
# on an idle 2-core machine: the plain phase ~50 s, the systemd phase ~3 min,
# ~5 min in all.  The console (ttyS0) is captured in $CACHE/console.log; the first
# failing phase's pytest exit code (or 3 when a phase never reported) is this
# script's exit code.
#
# Environment:
#   TOMATO_CGROUP2_VM_CACHE   cache directory (default /var/tmp/tomato-cgroup2-vm)
#   TOMATO_CGROUP2_VM_MIRROR  mmdebstrap mirror (default: the host's apt sources)
#   TOMATO_CGROUP2_VM_KVER    kernel version from /boot (default: newest vmlinuz-*-amd64)
#   TOMATO_CGROUP2_VM_TESTS   pytest arguments (default: the cgroup and cgroup-tool tests;
#                             "none" skips the plain phase)
#   TOMATO_CGROUP2_VM_SYSTEMD_TESTS  pytest arguments of the systemd phase (default: the
#                             systemd driver's tests and its CRI test, which needs crictl
#                             from tools/cri/build-cri-tools.sh; "none" skips the phase)
#   TOMATO_CGROUP2_VM_CPU     qemu -cpu model (default host,-arch-capabilities: nested KVM
#                             here cannot set MSR 0x10a that "host" alone would copy)
#   TOMATO_CGROUP2_VM_ACCEL   kvm, tcg or auto (default: kvm, falling back to TCG when a
#                             nested KVM guest does not reach its init within
#                             TOMATO_CGROUP2_VM_KVM_GRACE seconds, default 45)
#   TOMATO_CGROUP2_VM_TRY_PVM set to try KVM even on a kvm_pvm host (to see it fail over)
#   TOMATO_CGROUP2_VM_KARGS   extra kernel arguments (default "quiet loglevel=3")
#   TOMATO_CGROUP2_VM_TIMEOUT seconds before the guest is killed (default 480)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/../.." && pwd)
CACHE=${TOMATO_CGROUP2_VM_CACHE:-/var/tmp/tomato-cgroup2-vm}
TESTS=${TOMATO_CGROUP2_VM_TESTS:-tests/integration/cgroups tests/unit/cgroups tests/integration/lab/test_cgroup_versions.py tests/unit/lab tests/integration/rootless/test_rootless_cgroup2.py}
SYSTEMD_TESTS=${TOMATO_CGROUP2_VM_SYSTEMD_TESTS:-tests/integration/cgroups/test_systemd_driver.py tests/integration/cgroups/test_systemd_cri.py}
TIMEOUT=${TOMATO_CGROUP2_VM_TIMEOUT:-480}
PACKAGES=python3,python3-pytest,busybox-static,stress,systemd,dbus,containerd,uidmap,passwd
# Bump when the image recipe changes so cached images are rebuilt.
RECIPE=11

log() { echo "cgroup2-vm: $*" >&2; }
die() { log "$*"; exit 2; }

[ "$(id -u)" = 0 ] || die "must run as root (mmdebstrap into a directory, /dev/kvm)"

need() {  # need COMMAND PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >&2 || die "cannot install $2"
}
need mmdebstrap mmdebstrap
need qemu-system-x86_64 qemu-system-x86
need cpio cpio

if [ -n "${TOMATO_CGROUP2_VM_KVER:-}" ]; then
    KVER=$TOMATO_CGROUP2_VM_KVER
else
    if ! ls /boot/vmlinuz-*-amd64 >/dev/null 2>&1; then
        log "installing linux-image-amd64"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-image-amd64 >&2 \
            || die "cannot install linux-image-amd64"
    fi
    KVER=$(ls /boot/vmlinuz-*-amd64 | sed 's|/boot/vmlinuz-||' | sort -V | tail -n1)
fi
KERNEL=/boot/vmlinuz-$KVER
MODDIR=/lib/modules/$KVER
[ -r "$KERNEL" ] || die "no readable $KERNEL"
[ -d "$MODDIR" ] || die "no $MODDIR (modules of the guest kernel)"

. /etc/os-release
SUITE=${VERSION_CODENAME:-bookworm}
if [ -n "${TOMATO_CGROUP2_VM_MIRROR:-}" ]; then
    MIRROR=$TOMATO_CGROUP2_VM_MIRROR
elif [ -s /etc/apt/sources.list.d/debian.sources ]; then
    MIRROR=/etc/apt/sources.list.d/debian.sources      # the mirror apt uses
elif grep -qs '^deb ' /etc/apt/sources.list; then
    MIRROR=/etc/apt/sources.list
else
    MIRROR=http://deb.debian.org/debian
fi

mkdir -p "$CACHE"
KEY="recipe=$RECIPE suite=$SUITE kver=$KVER packages=$PACKAGES"
IMAGE=$CACHE/initramfs.cpio

# Kernel modules (and their dependencies, in load order) that 9p over virtio needs,
# and overlay (containerd's snapshotter in the systemd phase).
modules_in_order() {
    seen=" "
    visit() {
        case "$seen" in *" $1 "*) return;; esac
        seen="$seen$1 "
        for dep in $(modinfo -k "$KVER" -F depends "$1" 2>/dev/null | tr ',' ' '); do
            visit "$dep"
        done
        f=$(modinfo -k "$KVER" -n "$1" 2>/dev/null) || return 0
        case "$f" in /*) echo "$f";; esac   # "(builtin)" needs nothing
    }
    for m in virtio_pci virtio_blk 9pnet_virtio 9p overlay; do visit "$m"; done
}

build() {
    if [ -f "$IMAGE" ] && [ "$(cat "$CACHE/key" 2>/dev/null)" = "$KEY" ]; then
        log "cached image $IMAGE ($KEY)"
        return 0
    fi
    need modinfo kmod
    log "building the guest rootfs with mmdebstrap ($SUITE: $PACKAGES; from $MIRROR)"
    root=$CACHE/rootfs.partial
    rm -rf "$root" "$IMAGE.partial"
    mmdebstrap --quiet --variant=essential --include="$PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        "$SUITE" "$root" "$MIRROR" >&2
    mkdir -p "$root/modules" "$root/project" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"
    : >"$root/modules/order"
    for f in $(modules_in_order); do
        name=$(basename "$f")
        case "$name" in
            *.ko.xz) xz -dc "$f" >"$root/modules/${name%.xz}"; name=${name%.xz};;
            *.ko.zst) zstd -qdc "$f" >"$root/modules/${name%.zst}"; name=${name%.zst};;
            *) cp "$f" "$root/modules/$name";;
        esac
        echo "$name" >>"$root/modules/order"
    done
    install -m 0755 "$HERE/init" "$root/init"
    # What a debootstrap'd system has and containerd copies into host-network pods.
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
    printf '# the guest has no network\n' >"$root/etc/resolv.conf"
    install -m 0644 "$HERE/tomato-systemd-tests.service" "$HERE/tomato-systemd-tests.target" \
        "$root/etc/systemd/system/"
    (cd "$root" && find . -xdev | cpio --quiet -o -H newc) >"$IMAGE.partial"
    mv "$IMAGE.partial" "$IMAGE"
    rm -rf "$root"
    echo "$KEY" >"$CACHE/key"
    log "image ready: $IMAGE ($(du -h "$IMAGE" | cut -f1))"
}

# boot ACCEL CONSOLE_LOG: run the guest once; returns qemu's exit status.
boot() {
    accel=$1
    case "$accel" in
        kvm) accel_args="-enable-kvm -cpu ${TOMATO_CGROUP2_VM_CPU:-host,-arch-capabilities}";;
        tcg) accel_args="-accel tcg,thread=multi -cpu max";;
    esac
    # The test arguments reach the guest on the kernel command line.
    args=$(echo "$TESTS" | tr ' ' ',')
    sdargs=$(echo "$SYSTEMD_TESTS" | tr ' ' ',')
    # shellcheck disable=SC2086
    timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 $accel_args \
        -smp 2 -m 2048 -nographic -no-reboot \
        -kernel "$KERNEL" -initrd "$IMAGE" \
        -append "console=ttyS0 panic=-1 ${TOMATO_CGROUP2_VM_KARGS:-quiet loglevel=3} $LAYOUT_ARGS tomato.tests=$args tomato.systemd_tests=$sdargs" \
        -virtfs local,path="$PROJECT",mount_tag=project,security_model=none,readonly=on \
        -drive file="$CACHE/scratch.img",if=virtio,format=raw \
        -serial "file:$2" -monitor none -display none -nic none &
    qpid=$!
    if [ "$accel" = kvm ] && [ "${TOMATO_CGROUP2_VM_ACCEL:-auto}" = auto ]; then
        # Nested KVM can be unusably slow (a guest that does not reach its init
        # in a minute); then give up on it and let the caller use TCG.
        waited=0
        while kill -0 "$qpid" 2>/dev/null && ! grep -qs 'tomato-cgroup2-vm: init' "$2"; do
            if [ "$waited" -ge "${TOMATO_CGROUP2_VM_KVM_GRACE:-45}" ]; then
                log "kvm guest did not reach init in ${waited}s; stopping it"
                kill "$qpid" 2>/dev/null
                wait "$qpid" 2>/dev/null
                return 124
            fi
            sleep 1
            waited=$((waited + 1))
        done
    fi
    wait "$qpid"
}

run() {
    console=$CACHE/console.log
    [ -f "$CACHE/scratch.img" ] || truncate -s 64M "$CACHE/scratch.img"
    accel=${TOMATO_CGROUP2_VM_ACCEL:-auto}
    if [ "$accel" = auto ]; then
        if [ ! -w /dev/kvm ]; then
            accel=tcg
        elif [ -d /sys/module/kvm_pvm ] && [ -z "${TOMATO_CGROUP2_VM_TRY_PVM:-}" ]; then
            # PVM (pagetable-based nested KVM, e.g. on a cloud VM) runs only
            # PVM-enabled guest kernels; Debian's stock kernel never reaches init.
            log "/dev/kvm is kvm_pvm, which cannot boot Debian's kernel: using TCG"
            accel=tcg
        else
            accel=kvm
        fi
    fi
    : >"$console"
    log "booting $KERNEL ($accel; $LAYOUT_ARGS) (console: $console)"
    set +e
    boot "$accel" "$console"
    qrc=$?
    if [ "$accel" = kvm ] && ! grep -qs 'tomato-cgroup2-vm: init' "$console"; then
        # KVM refused the CPU model, crashed or crawled: the run proves nothing
        # yet, so retry the same guest under TCG when the choice was ours.
        if [ "${TOMATO_CGROUP2_VM_ACCEL:-auto}" = auto ]; then
            log "falling back to TCG (software emulation; slower but complete)"
            mv "$console" "$console.kvm"
            : >"$console"
            boot tcg "$console"
            qrc=$?
        fi
    fi
    set -e
    # Show the guest's output (pytest's report) and take its exit code.
    sed -n '/^=== tomato-cgroup2-vm begin/,/^=== tomato-cgroup2-vm end/p' "$console" | tr -d '\r'
    phases=""
    [ "$TESTS" = none ] || phases=plain
    [ "$SYSTEMD_TESTS" = none ] || phases="$phases systemd"
    for phase in $phases; do
        rc=$(tr -d '\r' <"$console" |
             sed -n "s/^=== tomato-cgroup2-vm end rc=\([0-9]*\) phase=$phase\$/\1/p" | tail -n1)
        if [ -z "$rc" ]; then
            log "the guest did not report its $phase phase (qemu exit $qrc); last console lines:"
            tail -n 40 "$console" | tr -d '\r' >&2
            exit 3
        fi
        if [ "$rc" -ne 0 ]; then
            log "the $phase phase failed (pytest exit $rc)"
            exit "$rc"
        fi
    done
    exit 0
}

LAYOUT_ARGS="cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 tomato.cgroups=unified"
case "${1:-test}" in
    build) build;;
    test) build; run;;
    test-legacy)
        LAYOUT_ARGS="systemd.unified_cgroup_hierarchy=0 tomato.cgroups=legacy"
        build; run;;
    *) die "usage: $0 [build|test|test-legacy]";;
esac
