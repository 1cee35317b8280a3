// SPDX-License-Identifier: GPL-2.0-only
/*
 * madvise(MADV_COW_UNSHARE): the corner cases.
 *
 *  - race:  a hole stays a hole when MADV_DONTNEED zaps the range while
 *           MADV_COW_UNSHARE walks it: unsharing never populates memory,
 *           not even with the zero page.
 *  - lock:  unsharing a large range does not hold the mmap lock for the
 *           whole call (as MADV_POPULATE_* do not): an mmap() started
 *           while it runs returns before it is done.
 *  - hole:  a range with an unmapped hole in the middle: ENOMEM, and the
 *           mapped parts are unshared all the same.
 *
 * Every test checks with /proc/self/pagemap (present, exclusive, PFN) and
 * the data, and skips on a kernel without cow_snapshot().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/mman.h>

#include "kselftest_harness.h"
#include "cow_util.h"

#define PAGE		COW_SUBPAGE
#define SEED		3

static uint64_t pfn_of(const void *addr)
{
	return cow_pagemap(addr) & PM_PFN_MASK;
}

static bool exclusive(const void *addr)
{
	return cow_pagemap(addr) & PM_MMAP_EXCLUSIVE;
}

static bool pfns_visible(void)
{
	static char probe;

	probe = 1;
	return pfn_of(&probe) != 0;
}

/* A child that keeps the memory COW-shared until told to exit. */
static int idle_child(void *arg)
{
	return 0;
}

/*
 * race: RACE_PAGES populated pages made COW-shared (by a snapshot, or by
 * a fork() child), then MADV_COW_UNSHARE in this thread while another
 * thread zaps the range with MADV_DONTNEED, again and again.
 */
#define RACE_PAGES	64
/* Busy-loop rounds the zapper waits, at most (some 100 us). */
#define RACE_SPIN	100000

FIXTURE(race) {
	char *mem;
	size_t len;
	pthread_t zapper;
	pthread_barrier_t start, done;
	bool thread;
	int stop, zap_ret;
	unsigned long spin;
};

FIXTURE_VARIANT(race) {
	bool fork;
	int iterations;
};

FIXTURE_VARIANT_ADD(race, snapshot) {
	.fork = false,
	.iterations = 3000,
};

FIXTURE_VARIANT_ADD(race, fork) {
	.fork = true,
	.iterations = 1000,
};

static void *zapper_fn(void *arg)
{
	struct _test_data_race *self = arg;

	for (;;) {
		unsigned long spin;

		pthread_barrier_wait(&self->start);
		if (__atomic_load_n(&self->stop, __ATOMIC_ACQUIRE))
			break;
		/* Land anywhere in the unshare's walk: start, middle, end. */
		for (spin = self->spin; spin; spin--)
			__asm__ __volatile__("" ::: "memory");
		if (madvise(self->mem, self->len, MADV_DONTNEED))
			self->zap_ret = errno;
		pthread_barrier_wait(&self->done);
	}
	return NULL;
}

FIXTURE_SETUP(race)
{
	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	if (!pfns_visible())
		SKIP(return, "pagemap shows no PFNs (needs CAP_SYS_ADMIN)");
	self->len = RACE_PAGES * PAGE;
	self->mem = mmap(NULL, self->len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->mem, MAP_FAILED);
	ASSERT_EQ(madvise(self->mem, self->len, MADV_NOHUGEPAGE), 0);
	ASSERT_EQ(pthread_barrier_init(&self->start, NULL, 2), 0);
	ASSERT_EQ(pthread_barrier_init(&self->done, NULL, 2), 0);
	ASSERT_EQ(pthread_create(&self->zapper, NULL, zapper_fn, self), 0);
	self->thread = true;
}

FIXTURE_TEARDOWN(race)
{
	if (self->thread) {
		__atomic_store_n(&self->stop, 1, __ATOMIC_RELEASE);
		pthread_barrier_wait(&self->start);
		pthread_join(self->zapper, NULL);
	}
	if (self->mem && self->mem != MAP_FAILED)
		munmap(self->mem, self->len);
}

TEST_F_TIMEOUT(race, zap_during_unshare_leaves_holes, 600)
{
	int it, bad_iters = 0, bad_pages = 0, zero_pages = 0, unshare_err = 0;
	int first_bad = -1, child;
	size_t i;

	for (it = 0; it < variant->iterations; it++) {
		char *snap = MAP_FAILED;
		pid_t pid = -1;
		int go = -1, bad = 0;

		cow_fill(self->mem, self->len, SEED + it);
		self->spin = (it * 7919UL) % RACE_SPIN;
		if (variant->fork) {
			pid = cow_fork_waiter(idle_child, NULL, &go);
			ASSERT_GT(pid, 0);
		} else {
			snap = (char *)cow_snapshot_sys((unsigned long)self->mem,
							self->len, 0, 0);
			ASSERT_NE(snap, MAP_FAILED)
				TH_LOG("cow_snapshot: %s", strerror(errno));
		}
		ASSERT_FALSE(exclusive(self->mem));

		pthread_barrier_wait(&self->start);
		if (madvise(self->mem, self->len, MADV_COW_UNSHARE))
			unshare_err = errno;
		pthread_barrier_wait(&self->done);

		for (i = 0; i < RACE_PAGES; i++) {
			const char *p = self->mem + i * PAGE;
			size_t j;

			if (!(cow_pagemap(p) & PM_PRESENT))
				continue;
			bad++;
			for (j = 0; j < PAGE && !p[j]; j++)
				;
			zero_pages += j == PAGE;
		}
		if (bad) {
			bad_iters++;
			bad_pages += bad;
			if (first_bad < 0)
				first_bad = it;
		}
		child = 0;
		if (variant->fork)
			child = cow_checker_result(pid, go);
		else
			munmap(snap, self->len);
		ASSERT_EQ(child, 0) TH_LOG("the child's view changed");
		ASSERT_EQ(self->zap_ret, 0) TH_LOG("MADV_DONTNEED: %s",
						   strerror(self->zap_ret));
		ASSERT_EQ(unshare_err, 0) TH_LOG("MADV_COW_UNSHARE: %s",
						 strerror(unshare_err));
	}
	TH_LOG("%d of %d iterations left %d pages (%d zero-filled), first %d",
	       bad_iters, variant->iterations, bad_pages, zero_pages,
	       first_bad);
	EXPECT_EQ(bad_iters, 0) TH_LOG("MADV_COW_UNSHARE populated holes");
}

/*
 * lock: LOCK_LEN of 4 KiB pages shared with a fork() child, unshared by
 * one thread; another waits until the first page is the parent's own
 * (the call has started) and maps and unmaps a page elsewhere. That
 * mmap() must come back while the unshare still has work left: the last
 * page still shared, the call not returned.
 */
#define LOCK_LEN	(256UL << 20)

FIXTURE(lock) {
	char *mem;
	int done, ret, err;
};

FIXTURE_SETUP(lock)
{
	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	if (!pfns_visible())
		SKIP(return, "pagemap shows no PFNs (needs CAP_SYS_ADMIN)");
	self->mem = mmap(NULL, LOCK_LEN, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->mem, MAP_FAILED);
	ASSERT_EQ(madvise(self->mem, LOCK_LEN, MADV_NOHUGEPAGE), 0);
	cow_fill(self->mem, LOCK_LEN, SEED);
}

FIXTURE_TEARDOWN(lock)
{
	if (self->mem && self->mem != MAP_FAILED)
		munmap(self->mem, LOCK_LEN);
}

static void *unsharer_fn(void *arg)
{
	struct _test_data_lock *self = arg;

	self->ret = madvise(self->mem, LOCK_LEN, MADV_COW_UNSHARE);
	self->err = errno;
	__atomic_store_n(&self->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

TEST_F_TIMEOUT(lock, mmap_not_blocked_for_whole_range, 300)
{
	const char *last = self->mem + LOCK_LEN - PAGE;
	bool started = false, done_at, last_excl_at;
	unsigned long polls;
	pthread_t t;
	pid_t pid;
	void *p;
	int go;

	pid = cow_fork_checker(self->mem, LOCK_LEN, SEED, 0,
			       (char)cow_word(SEED, 0, 0), &go);
	ASSERT_GT(pid, 0);
	ASSERT_FALSE(exclusive(self->mem));
	ASSERT_FALSE(exclusive(last));

	ASSERT_EQ(pthread_create(&t, NULL, unsharer_fn, self), 0);
	/* Bounded: the unshare ends, and then so does this loop. */
	for (polls = 0; !__atomic_load_n(&self->done, __ATOMIC_ACQUIRE);
	     polls++) {
		if (exclusive(self->mem)) {
			started = true;
			break;
		}
	}
	if (started) {
		p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		done_at = __atomic_load_n(&self->done, __ATOMIC_ACQUIRE);
		last_excl_at = exclusive(last);
		EXPECT_NE(p, MAP_FAILED);
		if (p != MAP_FAILED)
			munmap(p, PAGE);
	}
	pthread_join(t, NULL);
	ASSERT_EQ(self->ret, 0) TH_LOG("MADV_COW_UNSHARE: %s",
				       strerror(self->err));
	ASSERT_TRUE(started)
		TH_LOG("the unshare returned before page 0 was seen copied (%lu polls)",
		       polls);
	TH_LOG("at mmap() return: unshare %s, last page %s",
	       done_at ? "returned" : "running",
	       last_excl_at ? "already copied" : "still shared");
	EXPECT_FALSE(done_at || last_excl_at)
		TH_LOG("mmap() waited for the whole MADV_COW_UNSHARE");
	EXPECT_TRUE(exclusive(last));
	EXPECT_EQ(cow_check(self->mem, LOCK_LEN, SEED), -1);
	EXPECT_EQ(cow_checker_result(pid, go), 0)
		TH_LOG("the child's view changed");
}

/*
 * hole: five pages with page 2 unmapped, shared with a fork() child.
 * MADV_COW_UNSHARE over all five: ENOMEM, as madvise() says for an
 * unmapped hole, and pages 0, 1, 3 and 4 are unshared all the same.
 */
#define HOLE_PAGES	5
#define HOLE_AT		2

static int hole_child_check(void *arg)
{
	const char *mem = arg;
	size_t i;

	for (i = 0; i < HOLE_PAGES; i++)
		if (i != HOLE_AT && cow_check(mem + i * PAGE, PAGE, SEED + i) >= 0)
			return 1;
	return 0;
}

FIXTURE(hole) {
	char *mem;
};

FIXTURE_SETUP(hole)
{
	size_t i;

	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	if (!pfns_visible())
		SKIP(return, "pagemap shows no PFNs (needs CAP_SYS_ADMIN)");
	self->mem = mmap(NULL, HOLE_PAGES * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->mem, MAP_FAILED);
	ASSERT_EQ(madvise(self->mem, HOLE_PAGES * PAGE, MADV_NOHUGEPAGE), 0);
	for (i = 0; i < HOLE_PAGES; i++)
		cow_fill(self->mem + i * PAGE, PAGE, SEED + i);
	ASSERT_EQ(munmap(self->mem + HOLE_AT * PAGE, PAGE), 0);
}

FIXTURE_TEARDOWN(hole)
{
	if (self->mem && self->mem != MAP_FAILED)
		munmap(self->mem, HOLE_PAGES * PAGE);
}

TEST_F_TIMEOUT(hole, enomem_and_mapped_parts_unshared, 120)
{
	uint64_t old[HOLE_PAGES];
	int go, ret, err;
	size_t i;
	pid_t pid;

	pid = cow_fork_waiter(hole_child_check, self->mem, &go);
	ASSERT_GT(pid, 0);
	for (i = 0; i < HOLE_PAGES; i++) {
		if (i == HOLE_AT)
			continue;
		old[i] = pfn_of(self->mem + i * PAGE);
		ASSERT_FALSE(exclusive(self->mem + i * PAGE)) TH_LOG("page %zu", i);
	}

	ret = madvise(self->mem, HOLE_PAGES * PAGE, MADV_COW_UNSHARE);
	err = errno;
	EXPECT_EQ(ret, -1);
	EXPECT_EQ(err, ENOMEM) TH_LOG("errno %s", strerror(err));

	for (i = 0; i < HOLE_PAGES; i++) {
		uint64_t e;

		if (i == HOLE_AT)
			continue;
		e = cow_pagemap(self->mem + i * PAGE);
		EXPECT_TRUE(e & PM_PRESENT) TH_LOG("page %zu", i);
		EXPECT_TRUE(e & PM_MMAP_EXCLUSIVE) TH_LOG("page %zu not unshared", i);
		EXPECT_NE(e & PM_PFN_MASK, old[i]) TH_LOG("page %zu not copied", i);
		EXPECT_EQ(cow_check(self->mem + i * PAGE, PAGE, SEED + i), -1)
			TH_LOG("page %zu", i);
	}
	EXPECT_EQ(cow_checker_result(pid, go), 0)
		TH_LOG("the child's view changed");
}

TEST_HARNESS_MAIN
