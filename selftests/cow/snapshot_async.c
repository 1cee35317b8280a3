// SPDX-License-Identifier: GPL-2.0-only
/*
 * Asynchronous cow_snapshot(): page tables copied after the call.
 *
 * Without COW_SNAPSHOT_EAGER, each 2 MiB-aligned PMD that lies wholly in
 * the range and maps a page table of the source is "deferred": the call
 * write-protects the source's PMD entry and leaves the snapshot's empty.
 * The page table is copied with fork()'s rules, and the source PMD made
 * writable again ("settled"), by a fault or GUP under it on either side,
 * before an operation that changes either range's page tables or VMAs,
 * or by a background worker. The counters of /proc/vmstat say which:
 * cow_snapshot_pmds_deferred, cow_snapshot_settle_{fault,op,bg} and
 * cow_snapshot_pmds_dropped (pending when the mm went).
 *
 * - pending: one operation on a pending range of one side, the worker
 *   held back (debugfs cow_snapshot/pause). Both sides must then hold,
 *   byte for byte, what the operation leaves (the snapshot: the data of
 *   the call, unless the operation is on the snapshot), and the counter
 *   the operation should move must move by the PMDs it meets. Every
 *   operation also runs with COW_SNAPSHOT_EAGER: the same bytes, nothing
 *   deferred.
 * - call: what the call leaves in the page tables, partial PMDs at the
 *   ends, the sharing a settle leaves;
 * - fallback: when the call copies eagerly although not asked to
 *   (misaligned destination, pinned pages, THP and empty PMDs), and when
 *   it does not;
 * - worker, exit: the worker settles everything once let go; an mm that
 *   goes with PMDs pending drops them;
 * - writers: threads rewrite pages during the call; each page of the
 *   snapshot holds one version of it, no later than the call;
 * - reclaim: reclaim (an rmap walk, no settle) of a pending source;
 * - paused, khugepaged: brk(), core dumps, mmu notifiers and khugepaged;
 *   what cannot be triggered here is skipped with the reason.
 *
 * Everything needs root (debugfs, pagemap PFNs, sysctls) and skips on a
 * kernel without the system call or without asynchronous snapshots.
 * Tests that pin pages (O_DIRECT, io_uring, process_vm_readv) do so in
 * their own process: the harness forks one for each test, and an mm that
 * ever pinned gets eager snapshots only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/io_uring.h>
#include <linux/kvm.h>
#include <linux/mman.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>

#include "kselftest_harness.h"
#include "cow_util.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25
#endif
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED	24
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT		0x01
#endif
#ifndef __NR_mseal
#define __NR_mseal		462
#endif

/* mm/gup_test.h: the ABI of /sys/kernel/debug/gup_test. */
#ifndef GUP_FAST_BENCHMARK
struct gup_test {
	__u64 get_delta_usec;
	__u64 put_delta_usec;
	__u64 addr;
	__u64 size;
	__u32 nr_pages_per_call;
	__u32 gup_flags;
	__u32 test_flags;
	__u32 which_pages[8];
};

#define GUP_FAST_BENCHMARK	_IOWR('g', 1, struct gup_test)
#define PIN_FAST_BENCHMARK	_IOWR('g', 2, struct gup_test)
#define GUP_BASIC_TEST		_IOWR('g', 4, struct gup_test)
#define PIN_BASIC_TEST		_IOWR('g', 5, struct gup_test)
#endif
#define GUP_TEST_PATH		"/sys/kernel/debug/gup_test"
#define GUP_FOLL_WRITE		0x01	/* FOLL_WRITE, include/linux/mm_types.h */

#define PAGE		COW_SUBPAGE
#define PMD_LEN		(2UL << 20)
#define PMD_PAGES	(PMD_LEN / PAGE)
#define NR_PMDS		2
#define LEN		(NR_PMDS * PMD_LEN)
#define NR_PAGES	(LEN / PAGE)
/* What most operations act on: 16 pages inside PMD 0, not at its start. */
#define T_FIRST		16
#define T_PAGES		16
#define T_LEN		(T_PAGES * PAGE)
/* Never written before the call: a hole in PMD 0 on both sides. */
#define HOLE_FIRST	64
#define HOLE_PAGES	4
#define SEED		1
#define SEED_NEW	2
/* How long the kernel may take to finish what a dead process left. */
#define QUIESCE_MS	5000

#define WORDS		(PAGE / 8)

/* Word @k of page @pg of the pattern of @seed: unique to all three. */
static inline uint64_t pat(uint64_t seed, size_t pg, size_t k)
{
	return (seed << 56) ^ ((uint64_t)pg << 32) ^
	       (k * 0x9e3779b97f4a7c15ULL) ^ 0x5a5a;
}

static void fill_page(char *p, uint64_t seed, size_t pg)
{
	uint64_t *w = (uint64_t *)p;
	size_t k;

	for (k = 0; k < WORDS; k++)
		w[k] = pat(seed, pg, k);
}

/* Pages [first, first + n) of the pattern, page @first at @p. */
static void fill_pages(char *p, uint64_t seed, size_t first, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		fill_page(p + i * PAGE, seed, first + i);
}

static bool is_hole(size_t pg)
{
	return pg >= HOLE_FIRST && pg < HOLE_FIRST + HOLE_PAGES;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * Is @err what a system call fails with that this kernel lacks? That of
 * a number no kernel has (-1), rather than spelled out.
 */
static bool no_such_syscall(int err)
{
	syscall(-1L);
	return errno == err;
}

/* A free address range of @len, aligned to @align: mapped, then unmapped. */
static char *free_area(size_t len, size_t align)
{
	char *p = mmap(NULL, len + align, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	munmap(p, len + align);
	a = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	return a;
}

/*
 * Private anonymous memory of @len at a PMD boundary, alone in its VMA,
 * in small folios; NULL on failure.
 */
static char *map_aligned(size_t len)
{
	char *p = mmap(NULL, len + PMD_LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + PMD_LEN - 1) & ~(PMD_LEN - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + len, p + PMD_LEN - a);
	if (madvise(a, len, MADV_NOHUGEPAGE)) {
		munmap(a, len);
		return NULL;
	}
	return a;
}

static uint64_t pagemap(const void *addr)
{
	return cow_pagemap(addr);
}

static bool present(const void *addr)
{
	return pagemap(addr) & PM_PRESENT;
}

static uint64_t pfn(const void *addr)
{
	return PAGEMAP_PFN(pagemap(addr));
}

static bool exclusive(const void *addr)
{
	return pagemap(addr) & PM_MMAP_EXCLUSIVE;
}

/* Is the page at @p mapped at all (PROT_NONE counts)? */
static bool mapped(const void *p)
{
	unsigned char vec;

	return !mincore((void *)p, PAGE, &vec) || errno != ENOMEM;
}

/*
 * Reads that may fault for good (hardware poison, a UFFDIO_POISON
 * marker): SIGBUS or SIGSEGV is caught and returned.
 */
static sigjmp_buf fault_jmp;
static int fault_armed;		/* __atomic_* accesses only */

static void on_fault(int sig)
{
	if (__atomic_load_n(&fault_armed, __ATOMIC_SEQ_CST))
		siglongjmp(fault_jmp, sig);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void catch_faults(void)
{
	struct sigaction sa = { .sa_handler = on_fault };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

/* Copy the page at @p into @buf: 0, or the signal the read raised. */
static int read_page(const char *p, uint64_t *buf)
{
	int sig;

	__atomic_store_n(&fault_armed, 1, __ATOMIC_SEQ_CST);
	sig = sigsetjmp(fault_jmp, 1);
	if (!sig)
		memcpy(buf, p, PAGE);
	/* Not before the copy is done (an atomic store orders it). */
	__atomic_store_n(&fault_armed, 0, __ATOMIC_SEQ_CST);
	return sig;
}

/* What a page must hold. */
enum want {
	W_PAT,		/* the pattern of SEED: the data of the call */
	W_NEW,		/* the pattern of SEED_NEW: written since */
	W_ZERO,
	W_PAT_OR_ZERO,	/* MADV_FREE: either, until written */
	W_GONE,		/* not mapped */
	W_SIGBUS,	/* a read raises SIGBUS */
	W_DEV,		/* what the block device holds (the region's dev) */
};

static const char * const want_name[] = {
	"the data of the call", "the data written since", "zeros",
	"the data of the call or zeros", "unmapped", "SIGBUS on a read",
	"the device's data",
};

/* A range to check: page i at base + i * PAGE is page first + i. */
struct region {
	const char *name;
	char *base;
	size_t first, n;
	const uint64_t *dev;
	unsigned char want[NR_PAGES + 32];
};

static int cmp_page(const uint64_t *buf, int want, size_t pg,
		    const uint64_t *dev, size_t *word)
{
	size_t k;
	bool zero = true, p = true;

	for (k = 0; k < WORDS; k++) {
		switch (want) {
		case W_PAT:
		case W_NEW:
			if (buf[k] != pat(want == W_PAT ? SEED : SEED_NEW,
					  pg, k)) {
				*word = k;
				return 1;
			}
			break;
		case W_ZERO:
			if (buf[k]) {
				*word = k;
				return 1;
			}
			break;
		case W_PAT_OR_ZERO:
			zero = zero && !buf[k];
			p = p && buf[k] == pat(SEED, pg, k);
			if (!zero && !p) {
				*word = k;
				return 1;
			}
			break;
		case W_DEV:
			if (buf[k] != dev[k]) {
				*word = k;
				return 1;
			}
			break;
		}
	}
	return 0;
}

/*
 * The first page of @r that does not hold what it must, -1 when all do;
 * what differs in @why. No harness macros: a fork()ed child uses it.
 */
static long region_bad(const struct region *r, char *why, size_t len)
{
	static uint64_t buf[WORDS];
	size_t i, k;
	int sig;

	for (i = 0; i < r->n; i++) {
		const char *p = r->base + i * PAGE;
		size_t pg = r->first + i;
		int want = r->want[i];

		if (want == W_GONE) {
			if (!mapped(p))
				continue;
			snprintf(why, len, "%s page %zu (%p) is mapped, want %s",
				 r->name, pg, p, want_name[want]);
			return i;
		}
		sig = read_page(p, buf);
		if (want == W_SIGBUS) {
			if (sig == SIGBUS)
				continue;
			snprintf(why, len, "%s page %zu (%p): %s, want %s",
				 r->name, pg, p,
				 sig ? strsignal(sig) : "read", want_name[want]);
			return i;
		}
		if (sig) {
			snprintf(why, len, "%s page %zu (%p): %s on a read, want %s",
				 r->name, pg, p, strsignal(sig), want_name[want]);
			return i;
		}
		if (cmp_page(buf, want, pg, r->dev, &k)) {
			snprintf(why, len,
				 "%s page %zu (%p) word %zu: %#llx, want %s (%#llx)",
				 r->name, pg, p, k, (unsigned long long)buf[k],
				 want_name[want],
				 want == W_DEV ? (unsigned long long)r->dev[k] :
				 want == W_ZERO ? 0ULL :
				 (unsigned long long)pat(want == W_NEW ?
							 SEED_NEW : SEED, pg, k));
			return i;
		}
	}
	return -1;
}

/* Expect @r to hold what it must. */
static void expect_region(struct __test_metadata *_metadata,
			  const struct region *r)
{
	char why[256];

	if (!r->base)
		return;
	EXPECT_EQ(region_bad(r, why, sizeof(why)), -1) TH_LOG("%s", why);
}

/* @r as a source filled by fill_source(): the pattern, the hole zero. */
static void region_init(struct region *r, const char *name, char *base)
{
	size_t i;

	memset(r, 0, sizeof(*r));
	r->name = name;
	r->base = base;
	r->n = NR_PAGES;
	for (i = 0; i < NR_PAGES; i++)
		r->want[i] = is_hole(i) ? W_ZERO : W_PAT;
}

/* The pattern in every page of [src, src + LEN) but the hole. */
static void fill_source(char *src)
{
	size_t i;

	for (i = 0; i < NR_PAGES; i++)
		if (!is_hole(i))
			fill_page(src + i * PAGE, SEED, i);
}

/*
 * The worker held back (or not, @pause), and nothing pending anywhere:
 * a process that went with PMDs pending has had them dropped. 0, or 1
 * when the test was skipped.
 */
static int async_begin(struct __test_metadata *_metadata, bool pause,
		       bool *paused)
{
	struct cow_async_counts c;
	double end;
	int err;

	if (!cow_snapshot_present())
		SKIP(return 1, COW_NO_SNAPSHOT);
	cow_async_counts_get(&c);
	if (!c.present)
		SKIP(return 1, COW_NO_ASYNC " (no cow_snapshot_pmds_deferred in /proc/vmstat)");
	err = cow_debugfs_mount();
	if (err)
		SKIP(return 1, "cannot mount debugfs: %s", strerror(err));
	if (access(COW_SNAPSHOT_PAUSE_PATH, F_OK))
		SKIP(return 1, "no " COW_SNAPSHOT_PAUSE_PATH);
	err = cow_snapshot_pause(pause);
	if (err)
		SKIP(return 1, "writing " COW_SNAPSHOT_PAUSE_PATH ": %s",
		     strerror(err));
	*paused = pause;
	end = now_s() + QUIESCE_MS / 1000.0;
	while (cow_async_counts_get(&c), cow_async_pending(&c) && now_s() < end)
		sleep_ms(10);
	ASSERT_EQ(cow_async_pending(&c), 0)
		TH_LOG("%lld PMDs pending system-wide with no test running",
		       cow_async_pending(&c));
	catch_faults();
	return 0;
}

/*
 * The counters moved from @b to @a as a call or an operation should:
 * @deferred PMDs deferred, @fault, @op and @bg PMDs settled each way,
 * none dropped.
 */
static void expect_counts(struct __test_metadata *_metadata, const char *when,
			  const struct cow_async_counts *b,
			  const struct cow_async_counts *a,
			  unsigned long long deferred, unsigned long long fault,
			  unsigned long long op, unsigned long long bg)
{
	EXPECT_EQ(a->deferred - b->deferred, deferred)
		TH_LOG("%s: cow_snapshot_pmds_deferred", when);
	EXPECT_EQ(a->fault - b->fault, fault)
		TH_LOG("%s: cow_snapshot_settle_fault", when);
	EXPECT_EQ(a->op - b->op, op)
		TH_LOG("%s: cow_snapshot_settle_op", when);
	EXPECT_EQ(a->bg - b->bg, bg)
		TH_LOG("%s: cow_snapshot_settle_bg", when);
	EXPECT_EQ(a->dropped - b->dropped, 0)
		TH_LOG("%s: cow_snapshot_pmds_dropped", when);
}

/* ------------------------------------------------------------------ */

/*
 * pending: LEN of small pages, PMD-aligned, every page but the hole
 * holding its pattern; snapshot it with the worker held back, then make
 * one operation on one side. The variants are the operations; the tests,
 * the side and the mode. The regions: the source, the snapshot, and what
 * an operation makes (a moved range, a copy, a second snapshot).
 */
enum { R_SRC, R_SNAP, R_MORE, R_AGAIN, NR_REGIONS };

/* How an operation settles, on the side it is made on. */
enum { S_NONE, S_FAULT, S_OP };

#define WHOLE_MM	0x2	/* of the whole mm: made once, "on the source" */

FIXTURE(pending) {
	bool paused;
	bool async;
	int side;		/* R_SRC or R_SNAP: where the operation is made */
	unsigned int flags;	/* of every cow_snapshot() call */
	struct cow_async_counts c0, c1;	/* before and after the call */
	struct region r[NR_REGIONS];
	int uffd, fd;
	pid_t child;
};

FIXTURE_VARIANT(pending) {
	const char *name;
	/* The operation: 0, or 1 after a SKIP(). */
	int (*run)(struct __test_metadata *_metadata,
		   struct _test_data_pending *self,
		   const struct _fixture_variant_pending *op);
	/* After the counters are read: what lets the checks read. */
	void (*post)(struct __test_metadata *_metadata,
		     struct _test_data_pending *self);
	long arg, arg2;
	/* By side: how the operation settles, and how many PMDs. */
	unsigned char settle[2], pmds[2];
	/* PMDs the operation itself defers (another snapshot). */
	unsigned char deferred;
	unsigned int need;
};

/* The side the operation is made on: its range, its region. */
static char *xbase(struct _test_data_pending *self)
{
	return self->r[self->side].base;
}

static struct region *xr(struct _test_data_pending *self)
{
	return &self->r[self->side];
}

static char *t_addr(struct _test_data_pending *self)
{
	return xbase(self) + T_FIRST * PAGE;
}

static char *hole_addr(struct _test_data_pending *self)
{
	return xbase(self) + HOLE_FIRST * PAGE;
}

static void set_want(struct region *r, size_t first, size_t n, int want)
{
	memset(r->want + first, want, n);
}

/* A new region @n pages long at @base, page @first of @from onwards. */
static void region_from(struct region *r, const char *name, char *base,
			const struct region *from, size_t first, size_t n)
{
	memset(r, 0, sizeof(*r));
	r->name = name;
	r->base = base;
	r->first = first;
	r->n = n;
	r->dev = from->dev;
	memcpy(r->want, from->want + first, n);
}

/* @n pages of the pattern of SEED_NEW for pages @first on: a buffer. */
static char *new_data(struct __test_metadata *_metadata, size_t first, size_t n)
{
	char *buf = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (buf == MAP_FAILED)
		return NULL;
	fill_pages(buf, SEED_NEW, first, n);
	return buf;
}

FIXTURE_SETUP(pending)
{
	char *src;

	self->uffd = -1;
	self->fd = -1;
	if (async_begin(_metadata, true, &self->paused))
		return;
	src = map_aligned(LEN);
	ASSERT_NE(src, NULL);
	fill_source(src);
	region_init(&self->r[R_SRC], "source", src);
}

FIXTURE_TEARDOWN_PARENT(pending)
{
	if (self->paused)
		cow_snapshot_pause(false);
}

static uint64_t sink;

/* A write fault: new data in T. */
static int run_write(struct __test_metadata *_metadata,
		     struct _test_data_pending *self,
		     const struct _fixture_variant_pending *op)
{
	fill_pages(t_addr(self), SEED_NEW, T_FIRST, T_PAGES);
	set_want(xr(self), T_FIRST, T_PAGES, W_NEW);
	return 0;
}

/*
 * A read fault: in the snapshot any read, in the source a read of the
 * hole (its other pages are mapped: a read does not fault).
 */
static int run_read(struct __test_metadata *_metadata,
		    struct _test_data_pending *self,
		    const struct _fixture_variant_pending *op)
{
	char *p = self->side == R_SRC ? hole_addr(self) : t_addr(self);

	__atomic_store_n(&sink, __atomic_load_n((uint64_t *)p, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
	return 0;
}

static int run_munmap(struct __test_metadata *_metadata,
		      struct _test_data_pending *self,
		      const struct _fixture_variant_pending *op)
{
	ASSERT_EQ(munmap(t_addr(self), T_LEN), 0);
	set_want(xr(self), T_FIRST, T_PAGES, W_GONE);
	return 0;
}

static int run_munmap_whole(struct __test_metadata *_metadata,
			    struct _test_data_pending *self,
			    const struct _fixture_variant_pending *op)
{
	ASSERT_EQ(munmap(xbase(self), LEN), 0);
	set_want(xr(self), 0, NR_PAGES, W_GONE);
	return 0;
}

/* mmap(MAP_FIXED) over T: fresh zeros there. */
static int run_map_fixed(struct __test_metadata *_metadata,
			 struct _test_data_pending *self,
			 const struct _fixture_variant_pending *op)
{
	ASSERT_EQ(mmap(t_addr(self), T_LEN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
		  t_addr(self));
	set_want(xr(self), T_FIRST, T_PAGES, W_ZERO);
	return 0;
}

/* mremap() T elsewhere: its data goes with it. */
static int run_mremap(struct __test_metadata *_metadata,
		      struct _test_data_pending *self,
		      const struct _fixture_variant_pending *op)
{
	char *to = free_area(T_LEN, PAGE);

	ASSERT_NE(to, NULL);
	ASSERT_EQ(mremap(t_addr(self), T_LEN, T_LEN,
			 MREMAP_MAYMOVE | MREMAP_FIXED, to), to)
		TH_LOG("mremap: %s", strerror(errno));
	region_from(&self->r[R_MORE], "moved range", to, xr(self), T_FIRST,
		    T_PAGES);
	set_want(xr(self), T_FIRST, T_PAGES, W_GONE);
	return 0;
}

/* The whole range to another PMD-aligned place: PMDs may move whole. */
static int run_mremap_whole(struct __test_metadata *_metadata,
			    struct _test_data_pending *self,
			    const struct _fixture_variant_pending *op)
{
	char *to = free_area(LEN, PMD_LEN);

	ASSERT_NE(to, NULL);
	ASSERT_EQ(mremap(xbase(self), LEN, LEN, MREMAP_MAYMOVE | MREMAP_FIXED,
			 to), to)
		TH_LOG("mremap: %s", strerror(errno));
	region_from(&self->r[R_MORE], "moved range", to, xr(self), 0,
		    NR_PAGES);
	set_want(xr(self), 0, NR_PAGES, W_GONE);
	return 0;
}

/* MREMAP_DONTUNMAP: the data moves, T stays mapped, empty. */
static int run_mremap_dontunmap(struct __test_metadata *_metadata,
				struct _test_data_pending *self,
				const struct _fixture_variant_pending *op)
{
	/* glibc passes new_address on for MREMAP_DONTUNMAP too: none. */
	char *to = mremap(t_addr(self), T_LEN, T_LEN,
			  MREMAP_MAYMOVE | MREMAP_DONTUNMAP, NULL);

	ASSERT_NE(to, MAP_FAILED) TH_LOG("mremap: %s", strerror(errno));
	region_from(&self->r[R_MORE], "moved range", to, xr(self), T_FIRST,
		    T_PAGES);
	set_want(xr(self), T_FIRST, T_PAGES, W_ZERO);
	return 0;
}

/* mremap() shrinking in place: the old range is all of it. */
static int run_mremap_shrink(struct __test_metadata *_metadata,
			     struct _test_data_pending *self,
			     const struct _fixture_variant_pending *op)
{
	ASSERT_EQ(mremap(xbase(self), LEN, LEN - T_LEN, 0), xbase(self))
		TH_LOG("mremap: %s", strerror(errno));
	set_want(xr(self), NR_PAGES - T_PAGES, T_PAGES, W_GONE);
	return 0;
}

/* mprotect() of T: three VMAs in PMD 0. */
static int run_mprotect(struct __test_metadata *_metadata,
			struct _test_data_pending *self,
			const struct _fixture_variant_pending *op)
{
	ASSERT_EQ(mprotect(t_addr(self), T_LEN, op->arg), 0)
		TH_LOG("mprotect: %s", strerror(errno));
	return 0;
}

static void post_readable(struct __test_metadata *_metadata,
			  struct _test_data_pending *self)
{
	ASSERT_EQ(mprotect(t_addr(self), T_LEN, PROT_READ), 0);
}

/* mprotect() of the first half: a VMA split at the PMD boundary. */
static int run_mprotect_half(struct __test_metadata *_metadata,
			     struct _test_data_pending *self,
			     const struct _fixture_variant_pending *op)
{
	ASSERT_EQ(mprotect(xbase(self), LEN / 2, PROT_READ), 0)
		TH_LOG("mprotect: %s", strerror(errno));
	return 0;
}

/*
 * madvise(@op->arg) of T, or of PMD 0 for MADV_COLLAPSE (a huge page
 * takes a whole PMD); what DONTNEED and FREE leave there.
 *
 * MADV_COLLAPSE wants a writable PTE in the PMD (else SCAN_PAGE_RO:
 * EINVAL). Once settled, or copied eagerly, every page is COW-shared,
 * read-only: nothing to collapse. A pending source PMD still has its
 * writable PTEs: collapsing it there would take the page table from
 * under the snapshot.
 */
static int run_madvise(struct __test_metadata *_metadata,
		       struct _test_data_pending *self,
		       const struct _fixture_variant_pending *op)
{
	bool collapse = op->arg == MADV_COLLAPSE;
	char *p = collapse ? xbase(self) : t_addr(self);
	size_t i, first = collapse ? 0 : T_FIRST;
	size_t n = collapse ? PMD_PAGES : T_PAGES;
	int ret, err;

	/*
	 * MADV_HUGEPAGE here, not at setup: khugepaged could collapse the
	 * source before the call. It settles the PMD that COLLAPSE needs.
	 */
	if (collapse)
		ASSERT_EQ(madvise(p, n * PAGE, MADV_HUGEPAGE), 0);
	ret = madvise(p, n * PAGE, op->arg);
	err = errno;
	if (collapse) {
		EXPECT_EQ(ret, -1);
		EXPECT_EQ(err, EINVAL) TH_LOG("MADV_COLLAPSE: %s", strerror(err));
		EXPECT_EQ(cow_smaps_kb(p, "AnonHugePages"), 0)
			TH_LOG("MADV_COLLAPSE collapsed COW-shared pages");
		return 0;
	}
	ASSERT_EQ(ret, 0) TH_LOG("%s: %s", op->name, strerror(err));
	for (i = first; i < first + n; i++) {
		unsigned char *w = &xr(self)->want[i];

		if (op->arg == MADV_DONTNEED || op->arg == MADV_DONTNEED_LOCKED)
			*w = W_ZERO;
		else if (op->arg == MADV_FREE && *w == W_PAT)
			*w = W_PAT_OR_ZERO;
	}
	return 0;
}

/* The SIGBUS that MADV_HWPOISON sends the caller: taken, and returned. */
static void on_sigbus_return(int sig)
{
}

/*
 * MADV_HWPOISON of the first page of T: the page, shared by both sides
 * once settled, is lost to both. The kernel tells the caller with a
 * SIGBUS (BUS_MCEERR_AR), taken here. No settle on the source side:
 * memory failure works through rmap, like reclaim (the later settle
 * copies the poisoned entry); on the snapshot side, the GUP that finds
 * the page faults the PMD in.
 */
static int run_hwpoison(struct __test_metadata *_metadata,
			struct _test_data_pending *self,
			const struct _fixture_variant_pending *op)
{
	struct sigaction sa = { .sa_handler = on_sigbus_return };
	int ret, err;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	ret = madvise(t_addr(self), PAGE, MADV_HWPOISON);
	err = errno;
	catch_faults();
	if (ret && (err == EINVAL || err == EPERM))
		SKIP(return 1, "MADV_HWPOISON: %s (CONFIG_MEMORY_FAILURE, root)",
		     strerror(err));
	ASSERT_EQ(ret, 0) TH_LOG("MADV_HWPOISON: %s", strerror(err));
	self->r[R_SRC].want[T_FIRST] = W_SIGBUS;
	self->r[R_SNAP].want[T_FIRST] = W_SIGBUS;
	return 0;
}

/*
 * MADV_SOFT_OFFLINE of the first page of T: migrated to a new page, its
 * data kept on both sides. As MADV_HWPOISON, through rmap.
 */
static int run_soft_offline(struct __test_metadata *_metadata,
			    struct _test_data_pending *self,
			    const struct _fixture_variant_pending *op)
{
	char *src_page = self->r[R_SRC].base + T_FIRST * PAGE;
	uint64_t old = pfn(src_page);
	int ret = madvise(t_addr(self), PAGE, MADV_SOFT_OFFLINE);

	if (ret && (errno == EINVAL || errno == EPERM))
		SKIP(return 1, "MADV_SOFT_OFFLINE: %s (CONFIG_MEMORY_FAILURE, root)",
		     strerror(errno));
	ASSERT_EQ(ret, 0) TH_LOG("MADV_SOFT_OFFLINE: %s", strerror(errno));
	if (old)
		EXPECT_NE(pfn(src_page), old) TH_LOG("the page did not move");
	return 0;
}

/* mseal() of T: splits the VMAs, changes no page table: no settle. */
static int run_mseal(struct __test_metadata *_metadata,
		     struct _test_data_pending *self,
		     const struct _fixture_variant_pending *op)
{
	long ret = syscall(__NR_mseal, t_addr(self), T_LEN, 0);
	int err = errno;

	if (ret && no_such_syscall(err))
		SKIP(return 1, "no mseal() in this kernel");
	errno = err;
	ASSERT_EQ(ret, 0) TH_LOG("mseal: %s", strerror(errno));
	return 0;
}

static int run_mlock(struct __test_metadata *_metadata,
		     struct _test_data_pending *self,
		     const struct _fixture_variant_pending *op)
{
	ASSERT_EQ(syscall(__NR_mlock2, t_addr(self), T_LEN, op->arg), 0)
		TH_LOG("mlock2(%#lx): %s", op->arg, strerror(errno));
	return 0;
}

static int run_mlockall(struct __test_metadata *_metadata,
			struct _test_data_pending *self,
			const struct _fixture_variant_pending *op)
{
	ASSERT_EQ(mlockall(MCL_CURRENT), 0)
		TH_LOG("mlockall: %s", strerror(errno));
	return 0;
}

static void post_munlockall(struct __test_metadata *_metadata,
			    struct _test_data_pending *self)
{
	munlockall();
}

/* fork(): the child checks both ranges (and exits: no PMD of its own). */
static int run_fork(struct __test_metadata *_metadata,
		    struct _test_data_pending *self,
		    const struct _fixture_variant_pending *op)
{
	char why[256];
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	/* self is shared with the child (FIXTURE_TEARDOWN_PARENT). */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		int i;

		for (i = R_SRC; i <= R_SNAP; i++)
			if (region_bad(&self->r[i], why, sizeof(why)) >= 0) {
				fprintf(stderr, "# child: %s\n", why);
				_exit(1);
			}
		_exit(0);
	}
	self->child = pid;
	return 0;
}

static void post_fork(struct __test_metadata *_metadata,
		      struct _test_data_pending *self)
{
	int status = 0;

	ASSERT_EQ(waitpid(self->child, &status, 0), self->child);
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the child's view of the ranges is wrong (above): %s %d",
		       WIFSIGNALED(status) ? "killed by signal" : "exit",
		       WIFSIGNALED(status) ? WTERMSIG(status) :
					     WEXITSTATUS(status));
}

static int run_clear_refs(struct __test_metadata *_metadata,
			  struct _test_data_pending *self,
			  const struct _fixture_variant_pending *op)
{
	ASSERT_EQ(cow_write_file("/proc/self/clear_refs", "4"), 0)
		TH_LOG("clear_refs 4 (CONFIG_MEM_SOFT_DIRTY)");
	return 0;
}

/*
 * userfaultfd: a context with @features, the whole of the side's range
 * registered with @mode (and @extra, a page, when not NULL).
 */
static int uffd_open(struct __test_metadata *_metadata,
		     struct _test_data_pending *self, __u64 features,
		     __u64 mode, char *extra)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	struct uffdio_register reg = { .mode = mode };

	self->uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (self->uffd < 0)
		SKIP(return 1, "userfaultfd: %s", strerror(errno));
	if (ioctl(self->uffd, UFFDIO_API, &api))
		SKIP(return 1, "UFFDIO_API with features %#llx: %s",
		     (unsigned long long)features, strerror(errno));
	reg.range.start = (uintptr_t)xbase(self);
	reg.range.len = LEN;
	ASSERT_EQ(ioctl(self->uffd, UFFDIO_REGISTER, &reg), 0)
		TH_LOG("UFFDIO_REGISTER: %s", strerror(errno));
	if (extra) {
		reg.range.start = (uintptr_t)extra;
		reg.range.len = PAGE;
		ASSERT_EQ(ioctl(self->uffd, UFFDIO_REGISTER, &reg), 0)
			TH_LOG("UFFDIO_REGISTER: %s", strerror(errno));
	}
	return 0;
}

/* Closing the context unregisters: a missing page no longer waits. */
static void post_uffd(struct __test_metadata *_metadata,
		      struct _test_data_pending *self)
{
	close(self->uffd);
	self->uffd = -1;
}

/* UFFDIO_COPY of new data into the hole. */
static int run_uffd_copy(struct __test_metadata *_metadata,
			 struct _test_data_pending *self,
			 const struct _fixture_variant_pending *op)
{
	char *buf = new_data(_metadata, HOLE_FIRST, 1);
	struct uffdio_copy c = {
		.dst = (uintptr_t)hole_addr(self),
		.src = (uintptr_t)buf,
		.len = PAGE,
	};

	ASSERT_NE(buf, NULL);
	if (uffd_open(_metadata, self, 0, UFFDIO_REGISTER_MODE_MISSING, NULL))
		return 1;
	ASSERT_EQ(ioctl(self->uffd, UFFDIO_COPY, &c), 0)
		TH_LOG("UFFDIO_COPY: %s (copy %lld)", strerror(errno),
		       (long long)c.copy);
	EXPECT_EQ(c.copy, PAGE);
	xr(self)->want[HOLE_FIRST] = W_NEW;
	return 0;
}

/*
 * UFFDIO_COPY onto a page the side maps: EEXIST once settled (in the
 * snapshot, an unsettled PMD would look empty).
 */
static int run_uffd_copy_present(struct __test_metadata *_metadata,
				 struct _test_data_pending *self,
				 const struct _fixture_variant_pending *op)
{
	char *buf = new_data(_metadata, T_FIRST, 1);
	struct uffdio_copy c = {
		.dst = (uintptr_t)t_addr(self),
		.src = (uintptr_t)buf,
		.len = PAGE,
	};

	int ret, err;

	ASSERT_NE(buf, NULL);
	if (uffd_open(_metadata, self, 0, UFFDIO_REGISTER_MODE_MISSING, NULL))
		return 1;
	ret = ioctl(self->uffd, UFFDIO_COPY, &c);
	err = errno;
	EXPECT_EQ(ret, -1);
	EXPECT_EQ(err, EEXIST) TH_LOG("UFFDIO_COPY: %s", strerror(err));
	return 0;
}

static int run_uffd_zeropage(struct __test_metadata *_metadata,
			     struct _test_data_pending *self,
			     const struct _fixture_variant_pending *op)
{
	struct uffdio_zeropage z = {
		.range = { (uintptr_t)hole_addr(self), PAGE },
	};

	if (uffd_open(_metadata, self, 0, UFFDIO_REGISTER_MODE_MISSING, NULL))
		return 1;
	ASSERT_EQ(ioctl(self->uffd, UFFDIO_ZEROPAGE, &z), 0)
		TH_LOG("UFFDIO_ZEROPAGE: %s", strerror(errno));
	EXPECT_EQ(z.zeropage, PAGE);
	return 0;
}

/* UFFDIO_POISON into the hole: a read there raises SIGBUS. */
static int run_uffd_poison(struct __test_metadata *_metadata,
			   struct _test_data_pending *self,
			   const struct _fixture_variant_pending *op)
{
	struct uffdio_poison p = {
		.range = { (uintptr_t)hole_addr(self), PAGE },
	};

	if (uffd_open(_metadata, self, UFFD_FEATURE_POISON,
		      UFFDIO_REGISTER_MODE_MISSING, NULL))
		return 1;
	ASSERT_EQ(ioctl(self->uffd, UFFDIO_POISON, &p), 0)
		TH_LOG("UFFDIO_POISON: %s", strerror(errno));
	EXPECT_EQ(p.updated, PAGE);
	xr(self)->want[HOLE_FIRST] = W_SIGBUS;
	return 0;
}

/* UFFDIO_MOVE of a page of new data (exclusive) into the hole. */
static int run_uffd_move_in(struct __test_metadata *_metadata,
			    struct _test_data_pending *self,
			    const struct _fixture_variant_pending *op)
{
	char *page = new_data(_metadata, HOLE_FIRST, 1);
	struct uffdio_move m = {
		.dst = (uintptr_t)hole_addr(self),
		.src = (uintptr_t)page,
		.len = PAGE,
	};

	ASSERT_NE(page, NULL);
	if (uffd_open(_metadata, self, UFFD_FEATURE_MOVE,
		      UFFDIO_REGISTER_MODE_MISSING, NULL))
		return 1;
	ASSERT_EQ(ioctl(self->uffd, UFFDIO_MOVE, &m), 0)
		TH_LOG("UFFDIO_MOVE: %s (move %lld)", strerror(errno),
		       (long long)m.move);
	EXPECT_EQ(m.move, PAGE);
	xr(self)->want[HOLE_FIRST] = W_NEW;
	return 0;
}

/*
 * UFFDIO_MOVE of the first page of T out to an empty registered page:
 * EBUSY, the page being COW-shared once settled. Unsettled, the source's
 * page would look exclusive and move away from under the snapshot; the
 * snapshot's would look missing (ENOENT).
 */
static int run_uffd_move_out(struct __test_metadata *_metadata,
			     struct _test_data_pending *self,
			     const struct _fixture_variant_pending *op)
{
	char *to = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct uffdio_move m = {
		.dst = (uintptr_t)to,
		.src = (uintptr_t)t_addr(self),
		.len = PAGE,
	};

	int ret, err;

	ASSERT_NE(to, MAP_FAILED);
	if (uffd_open(_metadata, self, UFFD_FEATURE_MOVE,
		      UFFDIO_REGISTER_MODE_MISSING, to))
		return 1;
	ret = ioctl(self->uffd, UFFDIO_MOVE, &m);
	err = errno;
	EXPECT_EQ(ret, -1);
	EXPECT_EQ(err, EBUSY) TH_LOG("UFFDIO_MOVE: %s (move %lld)",
				     strerror(err), (long long)m.move);
	return 0;
}

/* UFFDIO_WRITEPROTECT of T (change_protection()). */
static int run_uffd_wp(struct __test_metadata *_metadata,
		       struct _test_data_pending *self,
		       const struct _fixture_variant_pending *op)
{
	struct uffdio_writeprotect wp = {
		.range = { (uintptr_t)t_addr(self), T_LEN },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};

	if (uffd_open(_metadata, self, 0, UFFDIO_REGISTER_MODE_WP, NULL))
		return 1;
	ASSERT_EQ(ioctl(self->uffd, UFFDIO_WRITEPROTECT, &wp), 0)
		TH_LOG("UFFDIO_WRITEPROTECT: %s", strerror(errno));
	return 0;
}

/* GUP for write from another mm's point of view: process_vm_writev(). */
static int run_vm_writev(struct __test_metadata *_metadata,
			 struct _test_data_pending *self,
			 const struct _fixture_variant_pending *op)
{
	char *buf = new_data(_metadata, T_FIRST, T_PAGES);
	struct iovec l = { buf, T_LEN }, r = { t_addr(self), T_LEN };

	ssize_t n;
	int err;

	ASSERT_NE(buf, NULL);
	n = process_vm_writev(getpid(), &l, 1, &r, 1, 0);
	err = errno;
	if (n < 0 && no_such_syscall(err))
		SKIP(return 1, "no process_vm_writev() (CONFIG_CROSS_MEMORY_ATTACH)");
	ASSERT_EQ(n, T_LEN) TH_LOG("process_vm_writev: %s", strerror(err));
	set_want(xr(self), T_FIRST, T_PAGES, W_NEW);
	return 0;
}

/* A read-only pin (process_vm_readv()): the copy holds the side's data. */
static int run_vm_readv(struct __test_metadata *_metadata,
			struct _test_data_pending *self,
			const struct _fixture_variant_pending *op)
{
	char *buf = mmap(NULL, T_LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iovec l = { buf, T_LEN }, r = { t_addr(self), T_LEN };

	ssize_t n;
	int err;

	ASSERT_NE(buf, MAP_FAILED);
	n = process_vm_readv(getpid(), &l, 1, &r, 1, 0);
	err = errno;
	if (n < 0 && no_such_syscall(err))
		SKIP(return 1, "no process_vm_readv() (CONFIG_CROSS_MEMORY_ATTACH)");
	ASSERT_EQ(n, T_LEN) TH_LOG("process_vm_readv: %s", strerror(err));
	region_from(&self->r[R_MORE], "process_vm_readv() copy", buf, xr(self),
		    T_FIRST, T_PAGES);
	return 0;
}

/* GUP with FOLL_FORCE | FOLL_WRITE: a write to /proc/self/mem. */
static int run_proc_mem(struct __test_metadata *_metadata,
			struct _test_data_pending *self,
			const struct _fixture_variant_pending *op)
{
	char *buf = new_data(_metadata, T_FIRST, T_PAGES);
	int fd = open("/proc/self/mem", O_RDWR);

	ASSERT_NE(buf, NULL);
	ASSERT_GE(fd, 0) TH_LOG("/proc/self/mem: %s", strerror(errno));
	ASSERT_EQ(pwrite(fd, buf, T_LEN, (off_t)(uintptr_t)t_addr(self)),
		  T_LEN) TH_LOG("pwrite: %s", strerror(errno));
	close(fd);
	set_want(xr(self), T_FIRST, T_PAGES, W_NEW);
	return 0;
}

/* The kernel's copy_to_user(): read() from a pipe, page by page. */
static int run_pipe_read(struct __test_metadata *_metadata,
			 struct _test_data_pending *self,
			 const struct _fixture_variant_pending *op)
{
	char *buf = new_data(_metadata, T_FIRST, T_PAGES);
	int fds[2];
	size_t i;

	ASSERT_NE(buf, NULL);
	ASSERT_EQ(pipe(fds), 0);
	for (i = 0; i < T_PAGES; i++) {
		ASSERT_EQ(write(fds[1], buf + i * PAGE, PAGE), PAGE);
		ASSERT_EQ(read(fds[0], t_addr(self) + i * PAGE, PAGE), PAGE)
			TH_LOG("read: %s", strerror(errno));
	}
	close(fds[0]);
	close(fds[1]);
	set_want(xr(self), T_FIRST, T_PAGES, W_NEW);
	return 0;
}

/*
 * An O_DIRECT read from the RAM disk into the first page of T: the page
 * pinned by the fast GUP for write, then written by the device. What the
 * device holds is read first into a page of its own.
 */
#define RAMDISK		"/dev/ram0"

static int run_odirect(struct __test_metadata *_metadata,
		       struct _test_data_pending *self,
		       const struct _fixture_variant_pending *op)
{
	char *dev = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = open(RAMDISK, O_RDONLY | O_DIRECT);
	ssize_t n;

	ASSERT_NE(dev, MAP_FAILED);
	if (fd < 0)
		SKIP(return 1, RAMDISK ": %s (a brd RAM disk)", strerror(errno));
	n = pread(fd, dev, PAGE, 0);
	if (n < 0 && errno == EINVAL)
		SKIP(return 1, RAMDISK ": no O_DIRECT");
	ASSERT_EQ(n, PAGE) TH_LOG("pread: %s", strerror(errno));
	ASSERT_EQ(pread(fd, t_addr(self), PAGE, 0), PAGE)
		TH_LOG("pread: %s", strerror(errno));
	close(fd);
	xr(self)->want[T_FIRST] = W_DEV;
	xr(self)->dev = (const uint64_t *)dev;
	return 0;
}

/* io_uring fixed buffers: a long-term pin (fast GUP, FOLL_WRITE). */
static int run_io_uring(struct __test_metadata *_metadata,
			struct _test_data_pending *self,
			const struct _fixture_variant_pending *op)
{
	struct io_uring_params p = { 0 };
	struct iovec iov = { t_addr(self), T_LEN };

	self->fd = syscall(__NR_io_uring_setup, 2, &p);
	if (self->fd < 0)
		SKIP(return 1, "io_uring_setup: %s", strerror(errno));
	ASSERT_EQ(syscall(__NR_io_uring_register, self->fd,
			  IORING_REGISTER_BUFFERS, &iov, 1), 0)
		TH_LOG("IORING_REGISTER_BUFFERS: %s", strerror(errno));
	return 0;
}

static void post_close(struct __test_metadata *_metadata,
		       struct _test_data_pending *self)
{
	close(self->fd);
	self->fd = -1;
}

/* gup_test: GUP or pin, fast or not, @op->arg2 the FOLL_* flags. */
static int run_gup_test(struct __test_metadata *_metadata,
			struct _test_data_pending *self,
			const struct _fixture_variant_pending *op)
{
	struct gup_test g = {
		.addr = (uintptr_t)t_addr(self),
		.size = T_LEN,
		.nr_pages_per_call = T_PAGES,
		.gup_flags = op->arg2,
	};
	int fd = open(GUP_TEST_PATH, O_RDWR);

	if (fd < 0)
		SKIP(return 1, GUP_TEST_PATH ": %s (CONFIG_GUP_TEST)",
		     strerror(errno));
	ASSERT_EQ(ioctl(fd, op->arg, &g), 0)
		TH_LOG("%s: %s", op->name, strerror(errno));
	close(fd);
	EXPECT_EQ(g.size, T_LEN) TH_LOG("%s got %llu bytes", op->name,
					(unsigned long long)g.size);
	return 0;
}

/* A snapshot of T of the side: settles T's PMD first. */
static int run_snapshot_t(struct __test_metadata *_metadata,
			  struct _test_data_pending *self,
			  const struct _fixture_variant_pending *op)
{
	char *s = cow_snapshot(t_addr(self), T_LEN, NULL, self->flags);

	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	region_from(&self->r[R_AGAIN], "second snapshot", s, xr(self), T_FIRST,
		    T_PAGES);
	return 0;
}

/* A snapshot of the whole side: settles both, defers both anew. */
static int run_snapshot_whole(struct __test_metadata *_metadata,
			      struct _test_data_pending *self,
			      const struct _fixture_variant_pending *op)
{
	char *s = cow_snapshot(xbase(self), LEN, NULL, self->flags);

	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	ASSERT_EQ(((uintptr_t)s ^ (uintptr_t)xbase(self)) & (PMD_LEN - 1), 0);
	region_from(&self->r[R_AGAIN], "second snapshot", s, xr(self), 0,
		    NR_PAGES);
	return 0;
}

/* A fault or GUP: settles the PMD it meets, on either side. */
#define FAULT1	.settle = { S_FAULT, S_FAULT }, .pmds = { 1, 1 }
/* An operation on a range: settles the PMDs of the range first. */
#define OP1	.settle = { S_OP, S_OP }, .pmds = { 1, 1 }
#define OP2	.settle = { S_OP, S_OP }, .pmds = { 2, 2 }
/*
 * Memory failure works through rmap, like reclaim: no settle on the
 * source side (the later settle copies what it finds); on the snapshot
 * side the GUP that finds the page faults its PMD in.
 */
#define RMAP	.settle = { S_NONE, S_FAULT }, .pmds = { 0, 1 }

/*
 * The operations. Faults and GUP settle the PMD they meet; operations on
 * a range settle the PMDs of the range first; fork(), mlockall() and
 * clear_refs settle the whole mm; mseal() changes no page table.
 */

FIXTURE_VARIANT_ADD(pending, write) {
	.name = "a write", .run = run_write, FAULT1,
};

FIXTURE_VARIANT_ADD(pending, read) {
	.name = "a read", .run = run_read, FAULT1,
};

FIXTURE_VARIANT_ADD(pending, munmap) {
	.name = "munmap", .run = run_munmap, OP1,
};

FIXTURE_VARIANT_ADD(pending, munmap_all) {
	.name = "munmap of all", .run = run_munmap_whole, OP2,
};

FIXTURE_VARIANT_ADD(pending, map_fixed) {
	.name = "mmap(MAP_FIXED) over", .run = run_map_fixed, OP1,
};

FIXTURE_VARIANT_ADD(pending, mremap) {
	.name = "mremap", .run = run_mremap, OP1,
};

FIXTURE_VARIANT_ADD(pending, mremap_all) {
	.name = "mremap of all", .run = run_mremap_whole, OP2,
};

FIXTURE_VARIANT_ADD(pending, mremap_dontunmap) {
	.name = "mremap(MREMAP_DONTUNMAP)", .run = run_mremap_dontunmap, OP1,
};

FIXTURE_VARIANT_ADD(pending, mremap_shrink) {
	.name = "mremap shrinking", .run = run_mremap_shrink, OP2,
};

FIXTURE_VARIANT_ADD(pending, mprotect_ro) {
	.name = "mprotect(PROT_READ)", .run = run_mprotect, .arg = PROT_READ,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, mprotect_none) {
	.name = "mprotect(PROT_NONE)", .run = run_mprotect,
	.post = post_readable, .arg = PROT_NONE, OP1,
};

FIXTURE_VARIANT_ADD(pending, mprotect_half) {
	.name = "mprotect of half", .run = run_mprotect_half, OP1,
};

FIXTURE_VARIANT_ADD(pending, dontneed) {
	.name = "MADV_DONTNEED", .run = run_madvise, .arg = MADV_DONTNEED,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, dontneed_locked) {
	.name = "MADV_DONTNEED_LOCKED", .run = run_madvise,
	.arg = MADV_DONTNEED_LOCKED, OP1,
};

FIXTURE_VARIANT_ADD(pending, free) {
	.name = "MADV_FREE", .run = run_madvise, .arg = MADV_FREE, OP1,
};

FIXTURE_VARIANT_ADD(pending, pageout) {
	.name = "MADV_PAGEOUT", .run = run_madvise, .arg = MADV_PAGEOUT, OP1,
};

FIXTURE_VARIANT_ADD(pending, cold) {
	.name = "MADV_COLD", .run = run_madvise, .arg = MADV_COLD, OP1,
};

FIXTURE_VARIANT_ADD(pending, willneed) {
	.name = "MADV_WILLNEED", .run = run_madvise, .arg = MADV_WILLNEED,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, normal) {
	.name = "MADV_NORMAL", .run = run_madvise, .arg = MADV_NORMAL, OP1,
};

FIXTURE_VARIANT_ADD(pending, random) {
	.name = "MADV_RANDOM", .run = run_madvise, .arg = MADV_RANDOM, OP1,
};

FIXTURE_VARIANT_ADD(pending, sequential) {
	.name = "MADV_SEQUENTIAL", .run = run_madvise, .arg = MADV_SEQUENTIAL,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, hugepage) {
	.name = "MADV_HUGEPAGE", .run = run_madvise, .arg = MADV_HUGEPAGE,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, nohugepage) {
	.name = "MADV_NOHUGEPAGE", .run = run_madvise, .arg = MADV_NOHUGEPAGE,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, mergeable) {
	.name = "MADV_MERGEABLE", .run = run_madvise, .arg = MADV_MERGEABLE,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, unmergeable) {
	.name = "MADV_UNMERGEABLE", .run = run_madvise,
	.arg = MADV_UNMERGEABLE, OP1,
};

FIXTURE_VARIANT_ADD(pending, dontfork) {
	.name = "MADV_DONTFORK", .run = run_madvise, .arg = MADV_DONTFORK,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, dofork) {
	.name = "MADV_DOFORK", .run = run_madvise, .arg = MADV_DOFORK, OP1,
};

FIXTURE_VARIANT_ADD(pending, wipeonfork) {
	.name = "MADV_WIPEONFORK", .run = run_madvise, .arg = MADV_WIPEONFORK,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, keeponfork) {
	.name = "MADV_KEEPONFORK", .run = run_madvise, .arg = MADV_KEEPONFORK,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, dontdump) {
	.name = "MADV_DONTDUMP", .run = run_madvise, .arg = MADV_DONTDUMP,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, dodump) {
	.name = "MADV_DODUMP", .run = run_madvise, .arg = MADV_DODUMP, OP1,
};

FIXTURE_VARIANT_ADD(pending, cow_unshare) {
	.name = "MADV_COW_UNSHARE", .run = run_madvise,
	.arg = MADV_COW_UNSHARE, OP1,
};

FIXTURE_VARIANT_ADD(pending, populate_read) {
	.name = "MADV_POPULATE_READ", .run = run_madvise,
	.arg = MADV_POPULATE_READ, OP1,
};

FIXTURE_VARIANT_ADD(pending, populate_write) {
	.name = "MADV_POPULATE_WRITE", .run = run_madvise,
	.arg = MADV_POPULATE_WRITE, OP1,
};

FIXTURE_VARIANT_ADD(pending, collapse) {
	.name = "MADV_COLLAPSE", .run = run_madvise, .arg = MADV_COLLAPSE,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, hwpoison) {
	.name = "MADV_HWPOISON", .run = run_hwpoison, RMAP,
};

FIXTURE_VARIANT_ADD(pending, soft_offline) {
	.name = "MADV_SOFT_OFFLINE", .run = run_soft_offline, RMAP,
};

FIXTURE_VARIANT_ADD(pending, mseal) {
	.name = "mseal", .run = run_mseal,
};

FIXTURE_VARIANT_ADD(pending, mlock) {
	.name = "mlock", .run = run_mlock, OP1,
};

FIXTURE_VARIANT_ADD(pending, mlock_onfault) {
	.name = "mlock2(MLOCK_ONFAULT)", .run = run_mlock,
	.arg = MLOCK_ONFAULT, OP1,
};

FIXTURE_VARIANT_ADD(pending, mlockall) {
	.name = "mlockall", .run = run_mlockall, .post = post_munlockall, OP2,
	.need = WHOLE_MM,
};

FIXTURE_VARIANT_ADD(pending, fork) {
	.name = "fork", .run = run_fork, .post = post_fork, OP2,
	.need = WHOLE_MM,
};

FIXTURE_VARIANT_ADD(pending, clear_refs) {
	.name = "clear_refs (soft-dirty)", .run = run_clear_refs, OP2,
	.need = WHOLE_MM,
};

FIXTURE_VARIANT_ADD(pending, uffd_copy) {
	.name = "UFFDIO_COPY", .run = run_uffd_copy, .post = post_uffd, OP1,
};

FIXTURE_VARIANT_ADD(pending, uffd_copy_present) {
	.name = "UFFDIO_COPY onto a page", .run = run_uffd_copy_present,
	.post = post_uffd, OP1,
};

FIXTURE_VARIANT_ADD(pending, uffd_zeropage) {
	.name = "UFFDIO_ZEROPAGE", .run = run_uffd_zeropage,
	.post = post_uffd, OP1,
};

FIXTURE_VARIANT_ADD(pending, uffd_poison) {
	.name = "UFFDIO_POISON", .run = run_uffd_poison, .post = post_uffd,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, uffd_move_in) {
	.name = "UFFDIO_MOVE in", .run = run_uffd_move_in, .post = post_uffd,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, uffd_move_out) {
	.name = "UFFDIO_MOVE out", .run = run_uffd_move_out,
	.post = post_uffd, OP1,
};

FIXTURE_VARIANT_ADD(pending, uffd_wp) {
	.name = "UFFDIO_WRITEPROTECT", .run = run_uffd_wp, .post = post_uffd,
	OP1,
};

FIXTURE_VARIANT_ADD(pending, vm_writev) {
	.name = "process_vm_writev", .run = run_vm_writev, FAULT1,
};

FIXTURE_VARIANT_ADD(pending, vm_readv) {
	.name = "process_vm_readv", .run = run_vm_readv, FAULT1,
};

FIXTURE_VARIANT_ADD(pending, proc_mem) {
	.name = "a write to /proc/self/mem", .run = run_proc_mem, FAULT1,
};

FIXTURE_VARIANT_ADD(pending, pipe_read) {
	.name = "read() from a pipe", .run = run_pipe_read, FAULT1,
};

FIXTURE_VARIANT_ADD(pending, odirect) {
	.name = "an O_DIRECT read", .run = run_odirect, FAULT1,
};

FIXTURE_VARIANT_ADD(pending, io_uring) {
	.name = "IORING_REGISTER_BUFFERS", .run = run_io_uring,
	.post = post_close, FAULT1,
};

FIXTURE_VARIANT_ADD(pending, gup_fast_write) {
	.name = "GUP_FAST_BENCHMARK", .run = run_gup_test,
	.arg = GUP_FAST_BENCHMARK, .arg2 = GUP_FOLL_WRITE, FAULT1,
};

FIXTURE_VARIANT_ADD(pending, pin_fast_write) {
	.name = "PIN_FAST_BENCHMARK", .run = run_gup_test,
	.arg = PIN_FAST_BENCHMARK, .arg2 = GUP_FOLL_WRITE, FAULT1,
};

FIXTURE_VARIANT_ADD(pending, gup_write) {
	.name = "GUP_BASIC_TEST", .run = run_gup_test, .arg = GUP_BASIC_TEST,
	.arg2 = GUP_FOLL_WRITE, FAULT1,
};

FIXTURE_VARIANT_ADD(pending, pin_read) {
	.name = "PIN_BASIC_TEST", .run = run_gup_test, .arg = PIN_BASIC_TEST,
	FAULT1,
};

FIXTURE_VARIANT_ADD(pending, snapshot) {
	.name = "cow_snapshot", .run = run_snapshot_t, OP1,
};

FIXTURE_VARIANT_ADD(pending, snapshot_all) {
	.name = "cow_snapshot of all", .run = run_snapshot_whole, OP2,
	.deferred = NR_PMDS,
};

/*
 * Snapshot the source, with the mode's flags, then make the operation on
 * @side: it settles what it should and nothing else; then each range
 * holds what it must, and every PMD deferred has been settled exactly
 * once (the checks fault in what the operation left pending).
 */
static void pending_op(struct __test_metadata *_metadata,
		       struct _test_data_pending *self,
		       const struct _fixture_variant_pending *op, int side,
		       bool eager)
{
	char *src = self->r[R_SRC].base, *snap, what[96];
	unsigned long long n;
	struct cow_async_counts a;
	int i, how;

	if (side == R_SNAP && (op->need & WHOLE_MM))
		SKIP(return, "%s is of the whole mm: made once, on the source",
		     op->name);
	self->async = !eager;
	self->flags = eager ? COW_SNAPSHOT_EAGER : 0;
	self->side = side;
	how = self->async ? op->settle[side] : S_NONE;
	n = self->async ? op->pmds[side] : 0;

	cow_async_counts_get(&self->c0);
	snap = cow_snapshot(src, LEN, NULL, self->flags);
	cow_async_counts_get(&self->c1);
	ASSERT_NE(snap, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	region_init(&self->r[R_SNAP], "snapshot", snap);
	/* A kernel-chosen address keeps the offset in the PMD. */
	ASSERT_EQ(((uintptr_t)snap ^ (uintptr_t)src) & (PMD_LEN - 1), 0)
		TH_LOG("source %p, snapshot %p", src, snap);
	ASSERT_EQ(self->c1.deferred - self->c0.deferred,
		  self->async ? NR_PMDS : 0);
	EXPECT_EQ(self->c1.pages - self->c0.pages, NR_PAGES);
	expect_counts(_metadata, "the call", &self->c0, &self->c1,
		      self->async ? NR_PMDS : 0, 0, 0, 0);

	if (op->run(_metadata, self, op))
		return;
	cow_async_counts_get(&a);
	snprintf(what, sizeof(what), "%s on the %s", op->name,
		 side == R_SRC ? "source" : "snapshot");
	expect_counts(_metadata, what, &self->c1, &a,
		      self->async ? op->deferred : 0,
		      how == S_FAULT ? n : 0, how == S_OP ? n : 0, 0);
	if (op->post)
		op->post(_metadata, self);
	for (i = 0; i < NR_REGIONS; i++)
		expect_region(_metadata, &self->r[i]);
	cow_async_counts_get(&a);
	EXPECT_EQ(cow_async_settled(&a) - cow_async_settled(&self->c0),
		  a.deferred - self->c0.deferred)
		TH_LOG("PMDs settled since the call, of %llu deferred",
		       a.deferred - self->c0.deferred);
	EXPECT_EQ(a.bg - self->c0.bg, 0);
	EXPECT_EQ(a.dropped - self->c0.dropped, 0);
}

TEST_F(pending, src_async)
{
	pending_op(_metadata, self, variant, R_SRC, false);
}

TEST_F(pending, src_eager)
{
	pending_op(_metadata, self, variant, R_SRC, true);
}

TEST_F(pending, snap_async)
{
	pending_op(_metadata, self, variant, R_SNAP, false);
}

TEST_F(pending, snap_eager)
{
	pending_op(_metadata, self, variant, R_SNAP, true);
}

/* ------------------------------------------------------------------ */

/*
 * call: what the call leaves in the page tables. Asynchronous: nothing
 * in the snapshot's PMDs, the source's pages still its own alone; eager
 * (and asynchronous once settled): every page mapped on both sides, the
 * same page, shared.
 */
FIXTURE(call) {
	bool paused;
	unsigned int flags;
	bool async;
	char *map;	/* LEN + 2 PMDs; the source is LEN after the first */
	char *src;
	struct cow_precopy_knobs precopy;
	bool precopy_set;
};

FIXTURE_VARIANT(call) {
	bool eager;
};

FIXTURE_VARIANT_ADD(call, async) { .eager = false };
FIXTURE_VARIANT_ADD(call, eager) { .eager = true };

FIXTURE_SETUP(call)
{
	if (async_begin(_metadata, true, &self->paused))
		return;
	self->async = !variant->eager;
	self->flags = variant->eager ? COW_SNAPSHOT_EAGER : 0;
	/* A write copies the page written, no neighbour. */
	ASSERT_EQ(cow_precopy_set(&self->precopy, "0", "0"), 0);
	self->precopy_set = true;
	self->map = map_aligned(LEN + 2 * PMD_LEN);
	ASSERT_NE(self->map, NULL);
	self->src = self->map + PMD_LEN;
}

FIXTURE_TEARDOWN_PARENT(call)
{
	if (self->paused)
		cow_snapshot_pause(false);
	if (self->precopy_set)
		cow_precopy_restore(&self->precopy);
}

/* Pages of [s, s + n pages) and [src, ...) as the eager copy leaves them. */
static int count_unshared(const char *src, const char *s, size_t n)
{
	int bad = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		const char *a = src + i * PAGE, *b = s + i * PAGE;

		if (is_hole(i))
			continue;
		if (!present(a) || !present(b) || pfn(a) != pfn(b) ||
		    exclusive(a) || exclusive(b))
			bad++;
	}
	return bad;
}

TEST_F(call, page_tables)
{
	struct cow_async_counts c0, c1, c2;
	struct region rs, rd;
	int snap_present = 0, src_shared = 0;
	size_t i;
	char *s;

	fill_source(self->src);
	ASSERT_NE(pfn(self->src), 0) TH_LOG("pagemap shows no PFNs (root?)");
	cow_async_counts_get(&c0);
	s = cow_snapshot(self->src, LEN, NULL, self->flags);
	cow_async_counts_get(&c1);
	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	expect_counts(_metadata, "the call", &c0, &c1,
		      self->async ? NR_PMDS : 0, 0, 0, 0);
	EXPECT_EQ(c1.pages - c0.pages, NR_PAGES);

	if (self->async) {
		/* O(PMDs): nothing done per page, on either side. */
		for (i = 0; i < NR_PAGES; i++) {
			snap_present += present(s + i * PAGE);
			if (!is_hole(i))
				src_shared += !exclusive(self->src + i * PAGE);
		}
		EXPECT_EQ(snap_present, 0);
		EXPECT_EQ(src_shared, 0);
	} else {
		EXPECT_EQ(count_unshared(self->src, s, NR_PAGES), 0);
	}
	/* pagemap reads no page: it settles nothing. */
	cow_async_counts_get(&c2);
	expect_counts(_metadata, "pagemap", &c1, &c2, 0, 0, 0, 0);

	region_init(&rs, "source", self->src);
	region_init(&rd, "snapshot", s);
	expect_region(_metadata, &rs);
	expect_region(_metadata, &rd);
	cow_async_counts_get(&c2);
	expect_counts(_metadata, "reading both", &c1, &c2, 0,
		      self->async ? NR_PMDS : 0, 0, 0);
	/* Settled with fork()'s rules: as the eager call leaves them. */
	EXPECT_EQ(count_unshared(self->src, s, NR_PAGES), 0);
}

/*
 * A range with 8 pages on each side of its PMDs: those partial PMDs are
 * copied in the call, the whole ones deferred.
 */
TEST_F(call, partial_ends)
{
	const size_t extra = 8, n = NR_PAGES + 2 * extra;
	char *start = self->src - extra * PAGE;
	struct cow_async_counts c0, c1, c2;
	struct region rs, rd;
	int head = 0, inside = 0;
	size_t i;
	char *s;

	fill_pages(start, SEED, 0, n);
	cow_async_counts_get(&c0);
	s = cow_snapshot(start, n * PAGE, NULL, self->flags);
	cow_async_counts_get(&c1);
	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	ASSERT_EQ(((uintptr_t)s ^ (uintptr_t)start) & (PMD_LEN - 1), 0);
	expect_counts(_metadata, "the call", &c0, &c1,
		      self->async ? NR_PMDS : 0, 0, 0, 0);
	EXPECT_EQ(c1.pages - c0.pages, n);
	for (i = 0; i < n; i++) {
		bool edge = i < extra || i >= n - extra;

		if (edge)
			head += present(s + i * PAGE);
		else
			inside += present(s + i * PAGE);
	}
	EXPECT_EQ(head, 2 * extra) TH_LOG("partial PMDs not copied in the call");
	EXPECT_EQ(inside, self->async ? 0 : NR_PAGES);

	/* The copied ends: reading them settles nothing. */
	memset(&rd, 0, sizeof(rd));
	rd.name = "snapshot";
	for (i = 0; i < n; i++)
		rd.want[i] = W_PAT;
	rd.base = s;
	rd.n = extra;
	expect_region(_metadata, &rd);
	rd.base = s + (n - extra) * PAGE;
	rd.first = n - extra;
	expect_region(_metadata, &rd);
	cow_async_counts_get(&c2);
	expect_counts(_metadata, "reading the ends", &c1, &c2, 0, 0, 0, 0);

	rd.base = s;
	rd.first = 0;
	rd.n = n;
	rs = rd;
	rs.name = "source";
	rs.base = start;
	expect_region(_metadata, &rs);
	expect_region(_metadata, &rd);
	cow_async_counts_get(&c2);
	expect_counts(_metadata, "reading all", &c1, &c2, 0,
		      self->async ? NR_PMDS : 0, 0, 0);
}

/*
 * Once settled, writes on either side copy the page written, as after
 * fork(): the source PMD takes writes again, no settle is counted, and
 * the pages not written stay shared.
 */
TEST_F(call, writes_after_settle)
{
	static const size_t src_pg[] = { 5, PMD_PAGES + 100 };
	static const size_t snap_pg[] = { 9, PMD_PAGES + 200 };
	struct cow_async_counts c1, c2;
	uint64_t old[NR_PAGES];
	struct region rs, rd;
	long first_bad = -1;
	int bad = 0;
	size_t i;
	char *s;

	fill_source(self->src);
	ASSERT_NE(pfn(self->src), 0) TH_LOG("pagemap shows no PFNs (root?)");
	s = cow_snapshot(self->src, LEN, NULL, self->flags);
	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	region_init(&rs, "source", self->src);
	region_init(&rd, "snapshot", s);
	expect_region(_metadata, &rd);	/* settles */
	for (i = 0; i < NR_PAGES; i++)
		old[i] = pfn(self->src + i * PAGE);

	cow_async_counts_get(&c1);
	for (i = 0; i < 2; i++) {
		fill_page(self->src + src_pg[i] * PAGE, SEED_NEW, src_pg[i]);
		rs.want[src_pg[i]] = W_NEW;
		fill_page(s + snap_pg[i] * PAGE, SEED_NEW, snap_pg[i]);
		rd.want[snap_pg[i]] = W_NEW;
	}
	cow_async_counts_get(&c2);
	expect_counts(_metadata, "the writes", &c1, &c2, 0, 0, 0, 0);
	expect_region(_metadata, &rs);
	expect_region(_metadata, &rd);
	for (i = 0; i < NR_PAGES; i++) {
		char *a = self->src + i * PAGE, *b = s + i * PAGE;

		if (is_hole(i))
			continue;
		if (rs.want[i] == W_NEW) {
			EXPECT_TRUE(exclusive(a)) TH_LOG("page %zu", i);
			EXPECT_NE(pfn(a), old[i]) TH_LOG("page %zu", i);
			EXPECT_EQ(pfn(b), old[i]) TH_LOG("page %zu", i);
		} else if (rd.want[i] == W_NEW) {
			EXPECT_TRUE(exclusive(b)) TH_LOG("page %zu", i);
			EXPECT_NE(pfn(b), old[i]) TH_LOG("page %zu", i);
			EXPECT_EQ(pfn(a), old[i]) TH_LOG("page %zu", i);
		} else if (pfn(a) != old[i] || pfn(b) != old[i] ||
			   exclusive(a) || exclusive(b)) {
			if (!bad++)
				first_bad = i;
		}
	}
	EXPECT_EQ(bad, 0) TH_LOG("%d pages not written no longer shared, the first %ld",
				 bad, first_bad);
}

/* ------------------------------------------------------------------ */

/*
 * fallback: which PMDs a call without COW_SNAPSHOT_EAGER defers. Only
 * where the snapshot's PMD can take the source's page table (the same
 * offset in 2 MiB), in an mm that never pinned a page and has no mmu
 * notifier, only page tables (not huge or empty PMDs): else the call
 * copies in place, as if eager.
 */
enum {
	F_KERNEL_DST,		/* dst chosen by the kernel */
	F_ALIGNED_FIXED,	/* COW_SNAPSHOT_FIXED, the same offset */
	F_MISALIGNED_FIXED,	/* COW_SNAPSHOT_FIXED, 16 pages off */
	F_ALIGNED_HINT,		/* a free hint at the same offset */
	F_MISALIGNED_HINT,	/* a free hint 16 pages off */
	F_NO_WHOLE_PMD,		/* 2 MiB that straddle two PMDs */
	F_THP,			/* PMD 0 a PMD-mapped THP */
	F_EMPTY,		/* PMD 1 never touched: no page table */
	F_ZERO_PAGES,		/* PMD 1 all zero-page PTEs */
	F_PINNED,		/* gup_test pinned (and unpinned) before */
	F_PINNED_ODIRECT,	/* an O_DIRECT read pinned before */
	F_PINNED_IO_URING,	/* io_uring fixed buffers, unregistered */
	F_PINNED_PARENT,	/* the parent pinned: not inherited */
	F_MMU_NOTIFIER,		/* a KVM VM registered an mmu notifier */
};

FIXTURE(fallback) {
	bool paused;
};

FIXTURE_VARIANT(fallback) {
	int kind;
	int deferred;
};

FIXTURE_VARIANT_ADD(fallback, kernel_dst) {
	.kind = F_KERNEL_DST, .deferred = NR_PMDS,
};

FIXTURE_VARIANT_ADD(fallback, aligned_fixed) {
	.kind = F_ALIGNED_FIXED, .deferred = NR_PMDS,
};

FIXTURE_VARIANT_ADD(fallback, misaligned_fixed) {
	.kind = F_MISALIGNED_FIXED, .deferred = 0,
};

FIXTURE_VARIANT_ADD(fallback, aligned_hint) {
	.kind = F_ALIGNED_HINT, .deferred = NR_PMDS,
};

FIXTURE_VARIANT_ADD(fallback, misaligned_hint) {
	.kind = F_MISALIGNED_HINT, .deferred = 0,
};

FIXTURE_VARIANT_ADD(fallback, no_whole_pmd) {
	.kind = F_NO_WHOLE_PMD, .deferred = 0,
};

FIXTURE_VARIANT_ADD(fallback, thp_pmd) {
	.kind = F_THP, .deferred = NR_PMDS - 1,
};

FIXTURE_VARIANT_ADD(fallback, empty_pmd) {
	.kind = F_EMPTY, .deferred = NR_PMDS - 1,
};

FIXTURE_VARIANT_ADD(fallback, zero_page_pmd) {
	.kind = F_ZERO_PAGES, .deferred = NR_PMDS,
};

FIXTURE_VARIANT_ADD(fallback, pinned) {
	.kind = F_PINNED, .deferred = 0,
};

FIXTURE_VARIANT_ADD(fallback, pinned_odirect) {
	.kind = F_PINNED_ODIRECT, .deferred = 0,
};

FIXTURE_VARIANT_ADD(fallback, pinned_io_uring) {
	.kind = F_PINNED_IO_URING, .deferred = 0,
};

FIXTURE_VARIANT_ADD(fallback, pinned_by_parent) {
	.kind = F_PINNED_PARENT, .deferred = NR_PMDS,
};

FIXTURE_VARIANT_ADD(fallback, mmu_notifier) {
	.kind = F_MMU_NOTIFIER, .deferred = 0,
};

FIXTURE_SETUP(fallback)
{
	async_begin(_metadata, true, &self->paused);
}

FIXTURE_TEARDOWN_PARENT(fallback)
{
	if (self->paused)
		cow_snapshot_pause(false);
}

/*
 * Pin a page of our own for a moment: MMF_HAS_PINNED from now on. 0, or
 * 1 after a SKIP().
 */
static int pin_once(struct __test_metadata *_metadata, int how)
{
	char *buf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct iovec l = { buf, PAGE };
	struct io_uring_params p = { 0 };
	struct gup_test g = {
		.addr = (uintptr_t)buf,
		.size = PAGE,
		.nr_pages_per_call = 1,
		.gup_flags = GUP_FOLL_WRITE,
	};
	int fd;

	ASSERT_NE(buf, MAP_FAILED);
	memset(buf, 7, PAGE);
	switch (how) {
	case F_PINNED_ODIRECT:
		fd = open(RAMDISK, O_RDONLY | O_DIRECT);
		if (fd < 0)
			SKIP(return 1, RAMDISK ": %s", strerror(errno));
		ASSERT_EQ(pread(fd, buf, PAGE, 0), PAGE)
			TH_LOG("O_DIRECT pread: %s", strerror(errno));
		close(fd);
		break;
	case F_PINNED_IO_URING:
		fd = syscall(__NR_io_uring_setup, 2, &p);
		if (fd < 0)
			SKIP(return 1, "io_uring_setup: %s", strerror(errno));
		ASSERT_EQ(syscall(__NR_io_uring_register, fd,
				  IORING_REGISTER_BUFFERS, &l, 1), 0)
			TH_LOG("IORING_REGISTER_BUFFERS: %s", strerror(errno));
		close(fd);
		break;
	default:
		fd = open(GUP_TEST_PATH, O_RDWR);
		if (fd < 0)
			SKIP(return 1, GUP_TEST_PATH ": %s (CONFIG_GUP_TEST)",
			     strerror(errno));
		ASSERT_EQ(ioctl(fd, PIN_BASIC_TEST, &g), 0)
			TH_LOG("PIN_BASIC_TEST: %s", strerror(errno));
		close(fd);
	}
	munmap(buf, PAGE);
	return 0;
}

/*
 * Snapshot what variant @kind asks for and read both sides: 0 when the
 * data is right, 1 when the set-up cannot be had (@why says), -1 when
 * wrong; the counters are the caller's to look at.
 */
static int fallback_call(struct __test_metadata *_metadata, int kind, char *why,
			 size_t len)
{
	char *src = map_aligned(LEN + PMD_LEN), *start = src, *dst = NULL;
	size_t n = NR_PAGES, i;
	unsigned int flags = 0;
	struct region rs, rd;
	char *s;

	if (!src) {
		snprintf(why, len, "mmap: %s", strerror(errno));
		return -1;
	}
	region_init(&rs, "source", src);
	switch (kind) {
	case F_THP:
		/* The first PMD in THPs, before it is written. */
		if (madvise(src, PMD_LEN, MADV_HUGEPAGE)) {
			snprintf(why, len, "MADV_HUGEPAGE: %s", strerror(errno));
			return -1;
		}
		fill_source(src);
		if (cow_smaps_kb(src, "AnonHugePages") < (long)(PMD_LEN >> 10)) {
			snprintf(why, len, "no PMD-mapped THP (THP disabled?)");
			return 1;
		}
		break;
	case F_EMPTY:
		fill_pages(src, SEED, 0, PMD_PAGES);
		set_want(&rs, PMD_PAGES, PMD_PAGES, W_ZERO);
		for (i = HOLE_FIRST; i < HOLE_FIRST + HOLE_PAGES; i++)
			rs.want[i] = W_PAT;
		break;
	case F_ZERO_PAGES:
		fill_pages(src, SEED, 0, PMD_PAGES);
		set_want(&rs, PMD_PAGES, PMD_PAGES, W_ZERO);
		for (i = HOLE_FIRST; i < HOLE_FIRST + HOLE_PAGES; i++)
			rs.want[i] = W_PAT;
		if (madvise(src + PMD_LEN, PMD_LEN, MADV_POPULATE_READ)) {
			snprintf(why, len, "MADV_POPULATE_READ: %s",
				 strerror(errno));
			return -1;
		}
		break;
	case F_NO_WHOLE_PMD:
		fill_pages(src, SEED, 0, NR_PAGES + 16);
		set_want(&rs, 0, NR_PAGES + 16, W_PAT);
		start = src + 16 * PAGE;
		n = PMD_PAGES;
		rs.base = start;
		rs.first = 16;
		memmove(rs.want, rs.want + 16, n);
		break;
	default:
		fill_source(src);
	}
	rs.n = n;

	if (kind == F_ALIGNED_FIXED || kind == F_MISALIGNED_FIXED)
		flags = COW_SNAPSHOT_FIXED;
	if (flags || kind == F_ALIGNED_HINT || kind == F_MISALIGNED_HINT)
		dst = free_area(LEN + PMD_LEN, PMD_LEN);
	if (kind == F_MISALIGNED_FIXED || kind == F_MISALIGNED_HINT)
		dst += 16 * PAGE;
	s = cow_snapshot(start, n * PAGE, dst, flags);
	if (s == MAP_FAILED) {
		snprintf(why, len, "cow_snapshot: %s", strerror(errno));
		return -1;
	}
	if (dst && s != dst) {
		snprintf(why, len, "snapshot at %p, not at %p", s, dst);
		return -1;
	}
	rd = rs;
	rd.name = "snapshot";
	rd.base = s;
	if (region_bad(&rs, why, len) >= 0 || region_bad(&rd, why, len) >= 0)
		return -1;
	return 0;
}

TEST_F(fallback, pmds_deferred)
{
	int kind = variant->kind, kvm = -1, vm = -1, ret;
	struct cow_async_counts c0, c1;
	size_t pages = kind == F_NO_WHOLE_PMD ? PMD_PAGES : NR_PAGES;
	char why[256] = "";
	pid_t pid;

	switch (kind) {
	case F_PINNED:
	case F_PINNED_ODIRECT:
	case F_PINNED_IO_URING:
	case F_PINNED_PARENT:
		if (pin_once(_metadata, kind))
			return;
		break;
	case F_MMU_NOTIFIER:
		kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		if (kvm < 0)
			SKIP(return, "/dev/kvm: %s: no way to register an mmu notifier here",
			     strerror(errno));
		vm = ioctl(kvm, KVM_CREATE_VM, 0);
		if (vm < 0)
			SKIP(return, "KVM_CREATE_VM: %s", strerror(errno));
		break;
	case F_THP:
		if (!read_pmd_pagesize())
			SKIP(return, "no THP");
		break;
	}

	cow_async_counts_get(&c0);
	if (kind == F_PINNED_PARENT) {
		fflush(stdout);
		fflush(stderr);
		pid = fork();
		ASSERT_GE(pid, 0);
		if (!pid) {
			if (fallback_call(_metadata, kind, why, sizeof(why))) {
				fprintf(stderr, "# child: %s\n", why);
				_exit(1);
			}
			_exit(0);
		}
		ASSERT_EQ(cow_wait_exit(pid), 0);
	} else {
		ret = fallback_call(_metadata, kind, why, sizeof(why));
		if (ret == 1)
			SKIP(return, "%s", why);
		ASSERT_EQ(ret, 0) TH_LOG("%s", why);
	}
	cow_async_counts_get(&c1);
	EXPECT_EQ(c1.pages - c0.pages, pages);
	/* Read on both sides: what was deferred is settled by faults. */
	expect_counts(_metadata, "the call", &c0, &c1, variant->deferred,
		      variant->deferred, 0, 0);
	if (vm >= 0)
		close(vm);
	if (kvm >= 0)
		close(kvm);
}

/* ------------------------------------------------------------------ */

/* worker: the background worker settles what nothing else touches. */
FIXTURE(worker) {
	bool paused;
	char *src, *snap;
	struct cow_async_counts c0, c1;
};

FIXTURE_VARIANT(worker) {
	bool pause;	/* held back over the call, then let go */
};

FIXTURE_VARIANT_ADD(worker, unpaused) { .pause = true };
FIXTURE_VARIANT_ADD(worker, running) { .pause = false };

FIXTURE_SETUP(worker)
{
	if (async_begin(_metadata, variant->pause, &self->paused))
		return;
	self->src = map_aligned(LEN);
	ASSERT_NE(self->src, NULL);
	fill_source(self->src);
	cow_async_counts_get(&self->c0);
	self->snap = cow_snapshot(self->src, LEN, NULL, 0);
	cow_async_counts_get(&self->c1);
	ASSERT_NE(self->snap, MAP_FAILED)
		TH_LOG("cow_snapshot: %s", strerror(errno));
	EXPECT_EQ(self->c1.deferred - self->c0.deferred, NR_PMDS);
}

FIXTURE_TEARDOWN_PARENT(worker)
{
	if (self->paused)
		cow_snapshot_pause(false);
}

/*
 * Let go (or never held back), the worker settles every PMD within a few
 * seconds; then reading either side faults nothing in.
 */
TEST_F_TIMEOUT(worker, settles_everything, 60)
{
	struct cow_async_counts a, b;
	struct region rs, rd;
	double t0 = now_s(), end = t0 + 20;

	if (variant->pause) {
		/* Held back: nothing happens. */
		sleep_ms(200);
		cow_async_counts_get(&a);
		expect_counts(_metadata, "paused", &self->c1, &a, 0, 0, 0, 0);
		ASSERT_EQ(cow_snapshot_pause(false), 0);
		t0 = now_s();
	}
	do {
		cow_async_counts_get(&a);
		if (!cow_async_pending(&a))
			break;
		sleep_ms(10);
	} while (now_s() < end);
	ksft_print_msg("settled in %.2f s\n", now_s() - t0);
	EXPECT_EQ(cow_async_pending(&a), 0);
	expect_counts(_metadata, "the worker", &self->c0, &a, NR_PMDS, 0, 0,
		      NR_PMDS);

	region_init(&rs, "source", self->src);
	region_init(&rd, "snapshot", self->snap);
	expect_region(_metadata, &rs);
	expect_region(_metadata, &rd);
	cow_async_counts_get(&b);
	expect_counts(_metadata, "reading both", &a, &b, 0, 0, 0, 0);
}

/*
 * exit: a process that goes with PMDs pending, however it goes, leaves
 * none: they are counted dropped, and nothing settled them.
 */
enum { E_EXIT, E_KILL, E_EXEC };

FIXTURE(exit) {
	bool paused;
};

FIXTURE_VARIANT(exit) {
	int how;
};

FIXTURE_VARIANT_ADD(exit, exit) { .how = E_EXIT };
FIXTURE_VARIANT_ADD(exit, sigkill) { .how = E_KILL };
FIXTURE_VARIANT_ADD(exit, exec) { .how = E_EXEC };

FIXTURE_SETUP(exit)
{
	async_begin(_metadata, true, &self->paused);
}

FIXTURE_TEARDOWN_PARENT(exit)
{
	if (self->paused)
		cow_snapshot_pause(false);
}

#define TRUE_PATH	"/bin/true"

TEST_F(exit, drops_pending)
{
	struct cow_async_counts c0, c1;
	int ready[2], status;
	double end;
	pid_t pid;
	char c;

	if (variant->how == E_EXEC && access(TRUE_PATH, X_OK))
		SKIP(return, TRUE_PATH ": %s", strerror(errno));
	ASSERT_EQ(pipe(ready), 0);
	cow_async_counts_get(&c0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		char *src = map_aligned(LEN), *s;

		close(ready[0]);
		if (!src)
			_exit(2);
		fill_source(src);
		s = cow_snapshot(src, LEN, NULL, 0);
		if (s == MAP_FAILED || write(ready[1], "r", 1) != 1)
			_exit(3);
		switch (variant->how) {
		case E_KILL:
			for (;;)
				pause();
		case E_EXEC:
			execl(TRUE_PATH, "true", (char *)NULL);
			_exit(4);
		}
		_exit(0);
	}
	close(ready[1]);
	ASSERT_EQ(read(ready[0], &c, 1), 1) TH_LOG("the child failed");
	if (variant->how == E_KILL)
		kill(pid, SIGKILL);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	if (variant->how == E_KILL) {
		EXPECT_TRUE(WIFSIGNALED(status));
	} else {
		EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
			TH_LOG("status %#x", status);
	}
	/* The last mmput() may come from the worker's: later. */
	end = now_s() + QUIESCE_MS / 1000.0;
	do {
		cow_async_counts_get(&c1);
		if (c1.dropped - c0.dropped >= NR_PMDS)
			break;
		sleep_ms(10);
	} while (now_s() < end);
	EXPECT_EQ(c1.deferred - c0.deferred, NR_PMDS);
	EXPECT_EQ(c1.dropped - c0.dropped, NR_PMDS);
	EXPECT_EQ(cow_async_settled(&c1) - cow_async_settled(&c0), 0);
	EXPECT_EQ(cow_async_pending(&c1), 0);
}

/* ------------------------------------------------------------------ */

/*
 * writers: threads rewrite whole pages of the source while the main
 * thread snapshots it, again and again. Every word of a page at version
 * v is (v, page, word), v from a counter taken before the page is
 * written. Even pages are written by one pwrite() to /proc/self/mem:
 * under the mmap lock, which the call takes for write, so the snapshot
 * must hold one whole version of each. Odd pages are written by plain
 * stores, first word to last: the snapshot may catch one in the middle,
 * so it must hold a version's first words and the version before's last
 * ones, nothing else. Either way no version later than the counter read
 * after the call, none older than the last write done before it.
 */
#define W_WRITERS	3
#define W_ROUNDS	8
#define WV_SHIFT	24

static inline uint64_t wword(uint64_t v, size_t pg, size_t k)
{
	return v << WV_SHIFT | pg << 9 | k;
}

struct writers {
	char *src;
	int mem_fd;
	uint64_t version;		/* the counter: __atomic_* only */
	uint64_t done[NR_PAGES];	/* last version written whole */
	bool stop;
	unsigned long long writes[W_WRITERS];
	int idx[W_WRITERS];
};

static struct writers wr;

static void *writer(void *arg)
{
	static __thread uint64_t buf[WORDS];
	int me = *(int *)arg;
	size_t pg, k;

	while (!__atomic_load_n(&wr.stop, __ATOMIC_RELAXED)) {
		for (pg = me; pg < NR_PAGES; pg += W_WRITERS) {
			uint64_t v = __atomic_add_fetch(&wr.version, 1,
							__ATOMIC_SEQ_CST);
			uint64_t *w = (uint64_t *)(wr.src + pg * PAGE);

			/* Release: word by word, in order. */
			if (pg & 1) {
				for (k = 0; k < WORDS; k++)
					__atomic_store_n(&w[k], wword(v, pg, k),
							 __ATOMIC_RELEASE);
			} else {
				for (k = 0; k < WORDS; k++)
					buf[k] = wword(v, pg, k);
				if (pwrite(wr.mem_fd, buf, PAGE,
					   (off_t)(uintptr_t)w) != PAGE)
					return (void *)(uintptr_t)errno;
			}
			__atomic_store_n(&wr.done[pg], v, __ATOMIC_RELEASE);
			wr.writes[me]++;
			if (__atomic_load_n(&wr.stop, __ATOMIC_RELAXED))
				break;
		}
	}
	return NULL;
}

/*
 * Page @pg at @p as a snapshot taken between versions @lo and @hi: 0, or
 * 1 with @why.
 */
static int wpage_bad(const char *p, size_t pg, uint64_t lo, uint64_t hi,
		     char *why, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t first = w[0] >> WV_SHIFT, v, prev = first;
	int changes = 0;
	size_t k;

	for (k = 0; k < WORDS; k++) {
		v = w[k] >> WV_SHIFT;
		if (w[k] != wword(v, pg, k)) {
			snprintf(why, len, "page %zu word %zu: %#llx, not a word of this page",
				 pg, k, (unsigned long long)w[k]);
			return 1;
		}
		if (v != prev) {
			changes++;
			if (v > prev || changes > 1 || !(pg & 1)) {
				snprintf(why, len,
					 "page %zu: version %llu at word 0, %llu at word %zu: not %s",
					 pg, (unsigned long long)first,
					 (unsigned long long)v, k,
					 pg & 1 ? "a newer head on an older tail" :
					 "one version");
				return 1;
			}
		}
		prev = v;
	}
	if (first > hi || prev < lo) {
		snprintf(why, len, "page %zu: versions %llu..%llu, want within %llu..%llu",
			 pg, (unsigned long long)prev, (unsigned long long)first,
			 (unsigned long long)lo, (unsigned long long)hi);
		return 1;
	}
	return 0;
}

FIXTURE(writers) {
	bool paused;
};

FIXTURE_VARIANT(writers) {
	bool eager;
	bool pause;
};

FIXTURE_VARIANT_ADD(writers, eager) { .eager = true, .pause = true };
FIXTURE_VARIANT_ADD(writers, async_paused) { .pause = true };
FIXTURE_VARIANT_ADD(writers, async_worker) { .pause = false };

FIXTURE_SETUP(writers)
{
	async_begin(_metadata, variant->pause, &self->paused);
}

FIXTURE_TEARDOWN_PARENT(writers)
{
	if (self->paused)
		cow_snapshot_pause(false);
}

TEST_F_TIMEOUT(writers, one_version_per_page, 240)
{
	unsigned int flags = variant->eager ? COW_SNAPSHOT_EAGER : 0;
	static uint64_t lo[NR_PAGES];
	struct cow_async_counts c0, c1;
	unsigned long long total = 0, during = 0;
	pthread_t th[W_WRITERS];
	uint64_t before, hi;
	char why[256];
	int round, i, bad = 0;
	size_t pg;
	void *ret;
	char *s;

	wr.src = map_aligned(LEN);
	ASSERT_NE(wr.src, NULL);
	wr.mem_fd = open("/proc/self/mem", O_RDWR);
	ASSERT_GE(wr.mem_fd, 0) TH_LOG("/proc/self/mem: %s", strerror(errno));
	for (pg = 0; pg < NR_PAGES; pg++)
		for (i = 0; i < (int)WORDS; i++)
			((uint64_t *)(wr.src + pg * PAGE))[i] = wword(0, pg, i);
	for (i = 0; i < W_WRITERS; i++) {
		wr.idx[i] = i;
		ASSERT_EQ(pthread_create(&th[i], NULL, writer, &wr.idx[i]), 0);
	}
	/* Let them get going. */
	while (__atomic_load_n(&wr.version, __ATOMIC_RELAXED) < NR_PAGES)
		sched_yield();

	cow_async_counts_get(&c0);
	for (round = 0; round < W_ROUNDS && !bad; round++) {
		for (pg = 0; pg < NR_PAGES; pg++)
			lo[pg] = __atomic_load_n(&wr.done[pg], __ATOMIC_ACQUIRE);
		before = __atomic_load_n(&wr.version, __ATOMIC_SEQ_CST);
		s = cow_snapshot(wr.src, LEN, NULL, flags);
		hi = __atomic_load_n(&wr.version, __ATOMIC_SEQ_CST);
		ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s",
						strerror(errno));
		during += hi - before;
		for (pg = 0; pg < NR_PAGES && !bad; pg++)
			bad = wpage_bad(s + pg * PAGE, pg, lo[pg], hi, why,
					sizeof(why));
		EXPECT_EQ(bad, 0) TH_LOG("round %d: %s", round, why);
		ASSERT_EQ(munmap(s, LEN), 0);
	}
	__atomic_store_n(&wr.stop, true, __ATOMIC_RELAXED);
	for (i = 0; i < W_WRITERS; i++) {
		ASSERT_EQ(pthread_join(th[i], &ret), 0);
		EXPECT_EQ(ret, NULL) TH_LOG("writer %d: pwrite: %s", i,
					    strerror((int)(uintptr_t)ret));
		total += wr.writes[i];
	}
	cow_async_counts_get(&c1);
	ksft_print_msg("%d rounds, %llu page writes, %llu while a call ran\n",
		       round, total, during);

	/* The source: every page whole, its last version. */
	for (pg = 0, bad = 0; pg < NR_PAGES && !bad; pg++)
		bad = wpage_bad(wr.src + pg * PAGE, pg, wr.done[pg],
				wr.done[pg], why, sizeof(why));
	EXPECT_EQ(bad, 0) TH_LOG("source: %s", why);
	EXPECT_EQ(c1.deferred - c0.deferred, variant->eager ? 0 :
		  (unsigned long long)round * NR_PMDS);
	EXPECT_EQ(cow_async_settled(&c1) - cow_async_settled(&c0),
		  c1.deferred - c0.deferred);
	if (variant->pause)
		EXPECT_EQ(c1.bg - c0.bg, 0);
}

/* ------------------------------------------------------------------ */

/*
 * reclaim: rmap walks do not settle. Memory cgroup reclaim of a pending
 * source swaps its pages out, or (MADV_FREE before the call) would
 * discard them, from under the write-protected PMD; the settle later
 * copies what it finds. The snapshot must still read the data of the
 * call, and so must the source (MADV_FREE'd pages are taken back at the
 * call: cow_snapshot(2)).
 */
#define CGROUP_ROOT	"/sys/fs/cgroup"

/* Our cgroup v2 directory below CGROUP_ROOT ("" for the root); 0 or -1. */
static int own_cgroup(char *buf, size_t len)
{
	char line[512];

	if (cow_read_line("/proc/self/cgroup", line, sizeof(line)) ||
	    strncmp(line, "0::", 3))
		return -1;
	snprintf(buf, len, "%s", strcmp(line + 3, "/") ? line + 3 : "");
	return 0;
}

FIXTURE(reclaim) {
	bool paused;
	char parent[512], cg[640];
	bool entered;
};

FIXTURE_VARIANT(reclaim) {
	bool madv_free;
	bool eager;
};

FIXTURE_VARIANT_ADD(reclaim, swap_async) { .madv_free = false };
FIXTURE_VARIANT_ADD(reclaim, swap_eager) { .eager = true };
FIXTURE_VARIANT_ADD(reclaim, madv_free_async) { .madv_free = true };
FIXTURE_VARIANT_ADD(reclaim, madv_free_eager) {
	.madv_free = true, .eager = true,
};

FIXTURE_SETUP(reclaim)
{
	char buf[1024], ctl[256] = "";

	if (async_begin(_metadata, true, &self->paused))
		return;
	if (own_cgroup(self->parent, sizeof(self->parent)))
		SKIP(return, "no cgroup v2 hierarchy in /proc/self/cgroup");
	snprintf(buf, sizeof(buf), CGROUP_ROOT "%s/cgroup.controllers",
		 self->parent);
	if (cow_read_line(buf, ctl, sizeof(ctl)) || !strstr(ctl, "memory"))
		SKIP(return, "no cgroup v2 memory controller");
	snprintf(buf, sizeof(buf), CGROUP_ROOT "%s/cgroup.subtree_control",
		 self->parent);
	if (cow_write_file(buf, "+memory"))
		SKIP(return, "cannot enable +memory in cgroup.subtree_control");
	snprintf(self->cg, sizeof(self->cg), CGROUP_ROOT "%s/cow_snapshot_async",
		 self->parent);
	if (mkdir(self->cg, 0755) && errno != EEXIST)
		SKIP(return, "mkdir %s: %s", self->cg, strerror(errno));
	snprintf(buf, sizeof(buf), "%s/cgroup.procs", self->cg);
	/* Before the memory is touched: charged, and reclaimed, there. */
	ASSERT_EQ(cow_write_file(buf, "0"), 0);
	self->entered = true;
}

FIXTURE_TEARDOWN_PARENT(reclaim)
{
	if (self->paused)
		cow_snapshot_pause(false);
	/* The test process has gone: the cgroup is empty. */
	if (self->cg[0])
		rmdir(self->cg);
}

TEST_F_TIMEOUT(reclaim, snapshot_keeps_data, 120)
{
	unsigned int flags = variant->eager ? COW_SNAPSHOT_EAGER : 0;
	struct cow_async_counts c0, c1, c2;
	struct region rs, rd;
	char path[700];
	long before, after;
	char *src, *s;
	int err, i;

	src = map_aligned(LEN);
	ASSERT_NE(src, NULL);
	fill_source(src);
	if (variant->madv_free)
		ASSERT_EQ(madvise(src, LEN, MADV_FREE), 0);
	cow_async_counts_get(&c0);
	s = cow_snapshot(src, LEN, NULL, flags);
	cow_async_counts_get(&c1);
	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	expect_counts(_metadata, "the call", &c0, &c1,
		      variant->eager ? 0 : NR_PMDS, 0, 0, 0);

	before = cow_smaps_kb(src, "Rss");
	after = before;
	snprintf(path, sizeof(path), "%s/memory.reclaim", self->cg);
	/* A lazily freed page made dirty again is kept once, then swapped. */
	for (i = 0; i < 4 && after >= before; i++) {
		err = cow_write_file(path, "1G");
		ASSERT_TRUE(err == 0 || err == EAGAIN)
			TH_LOG("memory.reclaim: %s", strerror(err));
		after = cow_smaps_kb(src, "Rss");
	}
	ksft_print_msg("source Rss %ld kB before reclaim, %ld kB after\n",
		       before, after);
	cow_async_counts_get(&c2);
	expect_counts(_metadata, "reclaim", &c1, &c2, 0, 0, 0, 0);
	/* Eager, the data must be there whatever reclaim did. */
	if (after >= before && !variant->eager)
		SKIP(return, "reclaim took nothing from the source (no swap?)");

	region_init(&rs, "source", src);
	region_init(&rd, "snapshot", s);
	expect_region(_metadata, &rd);
	expect_region(_metadata, &rs);
}

/* ------------------------------------------------------------------ */

/* paused: the other operations that settle, one test each. */
FIXTURE(paused) {
	bool paused;
	char core_pattern[256];
	struct rlimit core;
	bool core_set;
};

FIXTURE_SETUP(paused)
{
	async_begin(_metadata, true, &self->paused);
}

FIXTURE_TEARDOWN_PARENT(paused)
{
	if (self->paused)
		cow_snapshot_pause(false);
	if (self->core_set)
		cow_write_file("/proc/sys/kernel/core_pattern",
			       self->core_pattern);
}

/*
 * brk() shrinking over a pending source on the heap: settles the PMD it
 * unmaps. Nothing here may allocate between the brk() calls (glibc's
 * malloc would move the break too): no stdio, the counters read with
 * read(2).
 */
TEST_F(paused, brk_shrink)
{
	struct cow_async_counts c0, c1, c2;
	struct region rs, rd;
	char *cur, *src, *s, *top;

	/* Small pages on the heap without a madvise() that splits it. */
	ASSERT_EQ(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0), 0);
	cur = sbrk(0);
	src = (char *)(((uintptr_t)cur + PMD_LEN - 1) & ~(PMD_LEN - 1));
	ASSERT_NE(sbrk(src + LEN - cur), (void *)-1)
		TH_LOG("sbrk: %s", strerror(errno));
	fill_source(src);
	cow_async_counts_get(&c0);
	s = cow_snapshot(src, LEN, NULL, 0);
	cow_async_counts_get(&c1);
	if (s == MAP_FAILED) {
		sbrk(cur - (char *)sbrk(0));
		ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s",
						strerror(errno));
	}
	/* Down to 16 pages into PMD 1: PMD 1 is unmapped in part. */
	top = src + PMD_LEN + T_LEN;
	ASSERT_NE(sbrk(top - src - LEN), (void *)-1);
	cow_async_counts_get(&c2);
	expect_counts(_metadata, "the call", &c0, &c1, NR_PMDS, 0, 0, 0);
	expect_counts(_metadata, "brk()", &c1, &c2, 0, 0, 1, 0);

	region_init(&rs, "heap", src);
	set_want(&rs, PMD_PAGES + T_PAGES, PMD_PAGES - T_PAGES, W_GONE);
	region_init(&rd, "snapshot", s);
	expect_region(_metadata, &rs);
	expect_region(_metadata, &rd);
	sbrk(cur - top);
	cow_async_counts_get(&c2);
	EXPECT_EQ(cow_async_settled(&c2) - cow_async_settled(&c0), NR_PMDS);
}

/*
 * A core dump of a process with PMDs pending settles them all first, and
 * so dumps the snapshot's data: the core holds page 5's pattern twice,
 * once for each side.
 */
#define CORE_PATH	"/tmp/cow_snapshot_async.core"

TEST_F_TIMEOUT(paused, core_dump, 120)
{
	static uint64_t want[WORDS], buf[WORDS];
	struct cow_async_counts c0, c1;
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	int found = 0, fd, status;
	pid_t pid;

	if (cow_read_line("/proc/sys/kernel/core_pattern", self->core_pattern,
			  sizeof(self->core_pattern)))
		SKIP(return, "no /proc/sys/kernel/core_pattern (CONFIG_COREDUMP)");
	self->core_set = true;
	ASSERT_EQ(cow_write_file("/proc/sys/kernel/core_pattern", CORE_PATH), 0);
	unlink(CORE_PATH);

	cow_async_counts_get(&c0);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		char *src = map_aligned(LEN);

		if (!src || setrlimit(RLIMIT_CORE, &unlimited) ||
		    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
			_exit(2);
		fill_source(src);
		if (cow_snapshot(src, LEN, NULL, 0) == MAP_FAILED)
			_exit(3);
		signal(SIGABRT, SIG_DFL);
		abort();
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	cow_async_counts_get(&c1);
	ASSERT_TRUE(WIFSIGNALED(status)) TH_LOG("status %#x", status);
	if (!WCOREDUMP(status))
		SKIP(return, "no core dumped");
	expect_counts(_metadata, "the call and the dump", &c0, &c1, NR_PMDS,
		      0, NR_PMDS, 0);

	fill_page((char *)want, SEED, 5);
	fd = open(CORE_PATH, O_RDONLY);
	ASSERT_GE(fd, 0) TH_LOG(CORE_PATH ": %s", strerror(errno));
	/* ELF aligns PT_LOAD contents to pages in the file. */
	while (read(fd, buf, PAGE) == PAGE)
		found += !memcmp(buf, want, PAGE);
	close(fd);
	unlink(CORE_PATH);
	EXPECT_EQ(found, 2) TH_LOG("page 5 found %d times in the core", found);
}

/*
 * Registering an mmu notifier settles the whole mm (a secondary MMU does
 * not honour a write-protected PMD): KVM_CREATE_VM registers one.
 */
TEST_F(paused, mmu_notifier_registration)
{
	struct cow_async_counts c0, c1, c2;
	struct region rs, rd;
	int kvm, vm;
	char *src, *s;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		SKIP(return, "/dev/kvm: %s: no way to register an mmu notifier here",
		     strerror(errno));
	src = map_aligned(LEN);
	ASSERT_NE(src, NULL);
	fill_source(src);
	cow_async_counts_get(&c0);
	s = cow_snapshot(src, LEN, NULL, 0);
	cow_async_counts_get(&c1);
	ASSERT_NE(s, MAP_FAILED);
	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	cow_async_counts_get(&c2);
	if (vm < 0)
		SKIP(return, "KVM_CREATE_VM: %s", strerror(errno));
	expect_counts(_metadata, "the call", &c0, &c1, NR_PMDS, 0, 0, 0);
	expect_counts(_metadata, "KVM_CREATE_VM", &c1, &c2, 0, 0, NR_PMDS, 0);
	region_init(&rs, "source", src);
	region_init(&rd, "snapshot", s);
	expect_region(_metadata, &rs);
	expect_region(_metadata, &rd);
	close(vm);
	close(kvm);
}

/*
 * NUMA hinting (change_prot_numa()) settles the range it marks; the OOM
 * reaper unmaps a dying mm's pending source. Neither can be made to run
 * at a given moment from here.
 */
TEST_F(paused, numa_hinting)
{
	if (access("/sys/devices/system/node/node1", F_OK))
		SKIP(return, "one NUMA node: no NUMA hinting faults");
	SKIP(return,
	     "NUMA hinting runs from task_numa_work() on its own schedule: not deterministic");
}

TEST_F(paused, oom_reaper)
{
	SKIP(return,
	     "the OOM reaper acts on a victim that has not exited in 2 s: not deterministic (exit.* exits with PMDs pending)");
}

/* ------------------------------------------------------------------ */

/*
 * khugepaged: a pending source, MADV_HUGEPAGE, is not collapsed while
 * pending, though khugepaged scans it, and fast: a control range beside
 * it, the same but not snapshotted, is collapsed meanwhile. Nothing is
 * settled by the scans either.
 */
#define KHUGEPAGED	"/sys/kernel/mm/transparent_hugepage/khugepaged/"

static const char * const khugepaged_knobs[] = {
	"scan_sleep_millisecs", "alloc_sleep_millisecs", "pages_to_scan",
};

FIXTURE(khugepaged) {
	bool paused;
	char saved[3][32];
};

FIXTURE_SETUP(khugepaged)
{
	char path[256];
	int i;

	if (async_begin(_metadata, true, &self->paused))
		return;
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), KHUGEPAGED "%s",
			 khugepaged_knobs[i]);
		if (cow_read_line(path, self->saved[i], sizeof(self->saved[i])))
			SKIP(return, "no " KHUGEPAGED " (THP)");
	}
}

FIXTURE_TEARDOWN_PARENT(khugepaged)
{
	char path[256];
	int i;

	if (self->paused)
		cow_snapshot_pause(false);
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), KHUGEPAGED "%s",
			 khugepaged_knobs[i]);
		if (self->saved[i][0])
			cow_write_file(path, self->saved[i]);
	}
}

TEST_F_TIMEOUT(khugepaged, skips_pending, 180)
{
	static const char * const fast[] = { "10", "10", "65536" };
	struct cow_async_counts c0, c1, c2;
	unsigned long scans0, scans;
	long thp_control = 0, thp_src = 0;
	char *src, *control, *s;
	struct region rs, rd;
	double end;
	int i;

	if (!read_pmd_pagesize())
		SKIP(return, "no THP");
	src = map_aligned(LEN);
	control = map_aligned(PMD_LEN);
	ASSERT_NE(src, NULL);
	ASSERT_NE(control, NULL);
	fill_source(src);
	fill_pages(control, SEED, 0, PMD_PAGES);
	/* Small pages now, and khugepaged may have them. */
	ASSERT_EQ(madvise(src, LEN, MADV_HUGEPAGE), 0);
	ASSERT_EQ(madvise(control, PMD_LEN, MADV_HUGEPAGE), 0);
	cow_async_counts_get(&c0);
	s = cow_snapshot(src, LEN, NULL, 0);
	cow_async_counts_get(&c1);
	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	expect_counts(_metadata, "the call", &c0, &c1, NR_PMDS, 0, 0, 0);

	scans0 = cow_read_ulong(KHUGEPAGED "full_scans");
	for (i = 0; i < 3; i++) {
		char path[256];

		snprintf(path, sizeof(path), KHUGEPAGED "%s",
			 khugepaged_knobs[i]);
		ASSERT_EQ(cow_write_file(path, fast[i]), 0);
	}
	/* Two full scans after the control's collapse: ours was scanned. */
	end = now_s() + 120;
	do {
		sleep_ms(100);
		scans = cow_read_ulong(KHUGEPAGED "full_scans");
		if (!thp_control) {
			thp_control = cow_smaps_kb(control, "AnonHugePages");
			if (thp_control)
				scans0 = scans;
		}
	} while (now_s() < end && (!thp_control || scans < scans0 + 2));
	thp_src = cow_smaps_kb(src, "AnonHugePages");
	cow_async_counts_get(&c2);
	ksft_print_msg("control %ld kB of THP, source %ld kB; %lu full scans\n",
		       thp_control, thp_src, scans - scans0);
	if (!thp_control)
		SKIP(return, "khugepaged collapsed nothing in 120 s");
	EXPECT_GE(scans, scans0 + 2);
	EXPECT_EQ(thp_src, 0) TH_LOG("khugepaged collapsed a pending PMD");
	expect_counts(_metadata, "khugepaged", &c1, &c2, 0, 0, 0, 0);

	region_init(&rs, "source", src);
	region_init(&rd, "snapshot", s);
	expect_region(_metadata, &rs);
	expect_region(_metadata, &rd);
}

TEST_HARNESS_MAIN
