# cowlab: build, boot and test a Linux 6.12 kernel with the COW series.
# `make help` lists the targets; README.md explains them.

# The kernel base, pinned here and nowhere else.
LINUX_DEB_VERSION := 6.12.117-1~deb12u1

KSRC    ?=
ACCEL   ?= auto
CPUS    ?= 2
MEM     ?= 6144
CONFIG  ?=
TARGETS ?= cow
# A benchmark boot takes under a minute here; a hung one fails after this.
RUN_TIMEOUT ?= 120
export LINUX_DEB_VERSION KSRC ACCEL CPUS MEM

B          := build
SRC        := $(B)/linux
STOCK_SRC  := $(B)/linux-stock
FRAGS      := configs/qemu.config $(if $(filter debug kasan,$(CONFIG)),configs/debug.config) \
	      $(if $(filter kasan,$(CONFIG)),configs/kasan.config)
SUFFIX     := $(if $(CONFIG),-$(CONFIG))
CFGNAME    := $(or $(CONFIG),default)
OBJ        := $(B)/obj$(SUFFIX)
STOCK_OBJ  := $(B)/obj-stock$(SUFFIX)
GUEST      := $(B)/guest$(SUFFIX)
BZIMAGE    := $(OBJ)/arch/x86/boot/bzImage
INITRD     := $(GUEST)/initramfs.cpio
SELFTESTS_PATCH := patches/0099-selftests-cow-add-the-cow-kselftest-target.patch

.DEFAULT_GOAL := run
.PHONY: run check kselftest kernel initramfs qemu stock lint clean help mm-suites stress reliability \
	deps source stock-source guest-programs selftests-patch

help:
	@echo 'make run        build, boot, run the benchmarks, write out/report.md (default)'
	@echo 'make check      build, boot, run kselftest cow + upstream mm/cow under every knob'
	@echo 'make kselftest TARGETS="cow ..."   run those kselftest targets in the guest'
	@echo 'make kernel | initramfs | qemu      the steps; qemu = interactive guest shell'
	@echo 'make stock      the same kernel without the series ($(STOCK_OBJ))'
	@echo 'make mm-suites  upstream mm selftests (ksm, uffd, gup_longterm, ...): stock vs series, knobs off/on'
	@echo 'make stress     the stress program long: plain, fail_page_alloc, failslab (STRESS_SECONDS=60; injection needs CONFIG=debug)'
	@echo 'make reliability  out/reliability.md from the last check (this CONFIG), stress and mm-suites runs'
	@echo 'make lint       checkpatch --strict, shellcheck, series applies, selftests patch in sync'
	@echo 'make selftests-patch   regenerate $(SELFTESTS_PATCH) from selftests/cow'
	@echo 'make clean      remove build/ and out/'
	@echo 'variables: KSRC=<6.12.y tree> ACCEL=auto|kvm|tcg|icount CPUS=2 MEM=6144 CONFIG=debug|kasan'

deps:
	@scripts/deps.sh

source: deps
	@scripts/source.sh $(SRC) series

stock-source: deps
	@scripts/source.sh $(STOCK_SRC) stock

kernel: source
	@scripts/build-kernel.sh $(SRC) $(OBJ) $(FRAGS)

stock: stock-source
	@scripts/build-kernel.sh $(STOCK_SRC) $(STOCK_OBJ) $(FRAGS)

# Guest programs: the kselftest targets, the upstream mm/cow suite (built
# from the kernel tree, unmodified) and the benchmarks.
guest-programs: kernel
	@scripts/ksft-build.sh $(SRC) $(OBJ) $(GUEST)/ksft $(TARGETS)
	@scripts/ksft-build.sh $(SRC) $(OBJ) $(GUEST)/ksft-mm mm:cow
	@scripts/bench-build.sh $(OBJ) $(GUEST)/bench

initramfs: guest-programs
	@scripts/initramfs.sh $(OBJ)/usr/gen_init_cpio $(INITRD) \
		/ksft:$(GUEST)/ksft /ksft-mm:$(GUEST)/ksft-mm /bench:$(GUEST)/bench

# Benchmarks compare guest times: without working KVM they run under
# -icount (instruction-counted time), not plain TCG.
run: initramfs stock
	@TIMEOUT=$(RUN_TIMEOUT) scripts/run-bench.sh $(BZIMAGE) $(STOCK_OBJ)/arch/x86/boot/bzImage $(INITRD)
	@scripts/report.sh out/run out/run-stock out/report.md

# CONFIG=debug also runs the stress program's long version (60 s).
# Its TAP and console are also kept as out/check-CONFIG.* for make reliability.
check: initramfs
	@APPEND="$(if $(filter debug,$(CONFIG)),cowlab.stress=60) $(KSFT_APPEND)" scripts/check.sh $(BZIMAGE) $(INITRD); \
	rc=$$?; for f in tap log; do [ ! -f out/check.$$f ] || cp out/check.$$f out/check-$(CFGNAME).$$f; done; \
	exit $$rc

# One table from the last check, stress and mm-suites runs (no boot).
reliability:
	@scripts/reliability.sh $(CFGNAME)

# The wider upstream mm selftests on the stock kernel and on the series with
# knobs off and on; writes out/mm-suites.md. Not part of make check.
mm-suites: kernel stock
	@scripts/mm-suites.sh $(SRC) $(OBJ) $(BZIMAGE) $(STOCK_OBJ)/arch/x86/boot/bzImage

# The stress program's long run, plain and with allocation failures injected
# (those need CONFIG=debug); STRESS_SECONDS a phase (default 60).
stress: initramfs
	@STRESS_CONFIG=$(CFGNAME) scripts/stress.sh $(BZIMAGE) $(INITRD)

# CONFIG=kasan: each program may take 900 s (the fuzz takes ~300 s there).
KSFT_APPEND := $(if $(filter kasan,$(CONFIG)),cowlab.timeout=900)

kselftest: initramfs
	@APPEND="$(KSFT_APPEND)" scripts/qemu-run.sh $(BZIMAGE) $(INITRD) kselftest out/kselftest
	@tr -d '\r' <out/kselftest.out | grep -v '^cowlab-done' >out/kselftest.tap
	@scripts/tap-count.sh out/kselftest.tap | tee out/kselftest.summary
	@grep -q ' 0 failed' out/kselftest.summary

qemu: initramfs
	@scripts/qemu-run.sh $(BZIMAGE) $(INITRD) shell out/qemu

selftests-patch: stock-source
	@scripts/selftests-patch.sh $(STOCK_SRC) $(SELFTESTS_PATCH)

lint: stock-source
	@scripts/lint.sh $(STOCK_SRC) $(SELFTESTS_PATCH)

clean:
	rm -rf $(B) out
