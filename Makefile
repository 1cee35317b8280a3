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
# make kselftest: only the programs these patterns name, with these arguments.
TESTS     ?=
TEST_ARGS ?=
# make qemu: this command in the guest instead of an interactive shell.
CMD     ?=
# A benchmark boot takes under a minute here; a hung one fails after this.
RUN_TIMEOUT ?= 120
# make run: boots of tables E and G under multi-threaded TCG (0: none).
MTTCG_BOOTS ?= 3
export LINUX_DEB_VERSION KSRC ACCEL CPUS MEM CMD TESTS TEST_ARGS MTTCG_BOOTS

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
STOCK_BZIMAGE = $(STOCK_OBJ)/arch/x86/boot/bzImage
INITRD     := $(GUEST)/initramfs.cpio
# Every guest job goes through one runner: boot, results into out/JOB/,
# one verdict (finished, exit status, kernel splats, TAP counts).
JOB        := scripts/guest/job.sh

# make mm-suites: the upstream mm programs, and transhuge-stress bounded as
# run_vmtests.sh bounds it (-d 20), to 512 MiB rather than all of guest
# memory, so that one pass takes seconds under TCG.
MM_SUITES  := cow madv_populate ksm_functional_tests mremap_test mremap_dontunmap \
	      uffd-unit-tests gup_longterm soft-dirty pagemap_ioctl split_huge_page_test \
	      mkdirty transhuge-stress
THS_ARGS   ?= -d 20 512
MM_GUEST   := $(GUEST)-mm-suites

.DEFAULT_GOAL := run
.PHONY: run check kselftest kernel initramfs qemu stock lint clean help mm-suites stress reliability \
	deps source stock-source guest-programs series bisect-check trace mm-suites-initramfs

help:
	@echo 'make run        build, boot, run the benchmarks, write out/report.md (default); tables E and G'
	@echo '                also under multi-threaded TCG, MTTCG_BOOTS=3 boots (wall clock; 0: none)'
	@echo 'make check      build, boot, run kselftest cow + upstream mm/cow under every knob (out/check/)'
	@echo 'make kselftest TARGETS="cow ..."   run those kselftest targets in the guest (out/kselftest/)'
	@echo '     TESTS="snapshot fork_*"   only the programs these shell patterns name'
	@echo '     TEST_ARGS="-t NAME"       arguments for each program (harness: -t TEST, -f FIXTURE, -l)'
	@echo 'make qemu       interactive guest shell; CMD='"'"'...'"'"': run that in the guest, stream its output, return its exit status'
	@echo 'make trace      histogram of cow:cow_copy total_ns by class over a COW workload (out/trace/)'
	@echo 'make kernel | initramfs         the build steps'
	@echo 'make stock      the same kernel without the series ($(STOCK_OBJ))'
	@echo 'make mm-suites  upstream mm selftests (ksm, uffd, gup_longterm, ...): stock vs series, knobs off/on'
	@echo 'make stress     the stress program long: plain, fail_page_alloc, failslab (STRESS_SECONDS=60; injection needs CONFIG=debug)'
	@echo 'make reliability  out/reliability.md from the last check (this CONFIG), stress and mm-suites runs'
	@echo 'make lint       checkpatch --strict, shellcheck, the series applies (quilt and git am), patches/ is what make series makes'
	@echo 'make series     regenerate the selftests patch from selftests/cow, rewrite patches/ as git format-patch output'
	@echo 'make bisect-check   build the kernel at every prefix of the series (not run by CI; ~1 h on 2 cores)'
	@echo 'make clean      remove build/ and out/'
	@echo 'variables: KSRC=<6.12.y tree> ACCEL=auto|kvm|tcg|icount|mttcg CPUS=2 MEM=6144 CONFIG=debug|kasan TIMEOUT=1500 MTTCG_BOOTS=3'
	@echo 'outputs: out/JOB$(SUFFIX)/ per guest job (console.log, results.out, results.tap, verdict), out/*.md, out/build/'

deps:
	@scripts/build/deps.sh

source: deps
	@scripts/build/source.sh $(SRC) series

stock-source: deps
	@scripts/build/source.sh $(STOCK_SRC) stock

kernel: source
	@scripts/build/build-kernel.sh $(SRC) $(OBJ) $(FRAGS)

stock: stock-source
	@scripts/build/build-kernel.sh $(STOCK_SRC) $(STOCK_OBJ) $(FRAGS)

# Guest programs: the kselftest targets, the upstream mm/cow suite (built
# from the kernel tree, unmodified) and the benchmarks.
guest-programs: kernel
	@scripts/build/ksft-build.sh $(SRC) $(OBJ) $(GUEST)/ksft $(TARGETS)
	@scripts/build/ksft-build.sh $(SRC) $(OBJ) $(GUEST)/ksft-mm mm:cow
	@scripts/build/bench-build.sh $(OBJ) $(GUEST)/bench

initramfs: guest-programs
	@scripts/build/initramfs.sh $(OBJ)/usr/gen_init_cpio $(INITRD) \
		/ksft:$(GUEST)/ksft /ksft-mm:$(GUEST)/ksft-mm /bench:$(GUEST)/bench

mm-suites-initramfs: kernel
	@scripts/build/ksft-build.sh $(SRC) $(OBJ) $(MM_GUEST)/ksft $(addprefix mm:,$(MM_SUITES))
	@scripts/build/ksft-wrap.sh $(MM_GUEST)/ksft/mm/transhuge-stress $(THS_ARGS)
	@scripts/build/initramfs.sh $(OBJ)/usr/gen_init_cpio $(MM_GUEST)/initramfs.cpio /ksft:$(MM_GUEST)/ksft

# Benchmarks compare guest times: without working KVM they run under
# -icount (instruction-counted time), not plain TCG; tables E and G also
# under multi-threaded TCG (wall clock), where the vCPUs run at once.
run: initramfs stock
	@TIMEOUT=$(RUN_TIMEOUT) scripts/guest/run-bench.sh $(BZIMAGE) $(STOCK_BZIMAGE) $(INITRD) out/run$(SUFFIX)
	@scripts/report/report.sh out/run$(SUFFIX) out/report$(SUFFIX).md

# CONFIG=kasan: each program may take 900 s (the fuzz takes ~300 s there).
KSFT_APPEND := $(if $(filter kasan,$(CONFIG)),cowlab.timeout=900)

# CONFIG=debug also runs the stress program's long version (60 s). The
# runner's self-tests (SKIP_RUNNER_TESTS=1 leaves them out) join its TAP.
check: initramfs
	@APPEND="$(if $(filter debug,$(CONFIG)),cowlab.stress=60) $(KSFT_APPEND)" \
		$(JOB) check $(BZIMAGE) $(INITRD) out/check$(SUFFIX) \
		$(if $(filter 1,$(SKIP_RUNNER_TESTS)),,scripts/guest/test-runner.sh $(BZIMAGE) $(INITRD) out/check$(SUFFIX)/runner)

kselftest: initramfs
	@APPEND="$(KSFT_APPEND)" GUEST_TESTS="$$TESTS" GUEST_ARGS="$$TEST_ARGS" \
		$(JOB) kselftest $(BZIMAGE) $(INITRD) out/kselftest$(SUFFIX)

qemu: initramfs
	@if [ -n "$$CMD" ]; then \
		GUEST_CMD="$$CMD" STREAM=all $(JOB) cmd $(BZIMAGE) $(INITRD) out/qemu$(SUFFIX); \
	else \
		$(JOB) shell $(BZIMAGE) $(INITRD) out/qemu$(SUFFIX); \
	fi

trace: initramfs
	@STREAM=all $(JOB) trace $(BZIMAGE) $(INITRD) out/trace$(SUFFIX)

# The stress program's long run, plain and with allocation failures injected
# (those need CONFIG=debug); STRESS_SECONDS a phase (default 60).
stress: initramfs
	@STRESS_CONFIG=$(CFGNAME) scripts/guest/stress.sh $(BZIMAGE) $(INITRD) out/stress$(SUFFIX) out/stress$(SUFFIX).md

# The wider upstream mm selftests on the stock kernel and on the series with
# knobs off and on; writes out/mm-suites.md. Not part of make check.
mm-suites: mm-suites-initramfs stock
	@scripts/guest/mm-suites.sh $(BZIMAGE) $(STOCK_BZIMAGE) $(MM_GUEST)/initramfs.cpio out/mm-suites out/mm-suites.md

# One table from the last check, stress and mm-suites runs (no boot).
reliability:
	@scripts/report/reliability.sh $(CFGNAME)

series: stock-source
	@scripts/dev/selftests-patch.sh $(STOCK_SRC) patches/$$(tail -n 1 patches/series)
	@scripts/dev/format-series.sh $(STOCK_SRC)

bisect-check: stock-source
	@scripts/dev/bisect-check.sh $(STOCK_SRC) $(B)/bisect $(FRAGS)

lint: stock-source
	@scripts/dev/lint.sh $(STOCK_SRC)

clean:
	rm -rf $(B) out
