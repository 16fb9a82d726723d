# cgroup v2 test lane: boots a KVM guest on a pure cgroup2 hierarchy and runs
# the cgroup tests inside it.  Usage: make -f mk/cgroup2.mk test-cgroup2
# Cache: $(TOMATO_CGROUP2_VM_CACHE) (default /var/tmp/tomato-cgroup2-vm).
.PHONY: test-cgroup2 test-cgroup1-legacy cgroup2-image

test-cgroup2:
	tools/cgroup2-vm/run.sh test

# The same suite on a v1-only guest with co-mounted cpu,cpuacct and net_cls,net_prio.
test-cgroup1-legacy:
	tools/cgroup2-vm/run.sh test-legacy

cgroup2-image:
	tools/cgroup2-vm/run.sh build
