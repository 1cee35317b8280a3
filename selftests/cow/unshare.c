// SPDX-License-Identifier: GPL-2.0-only
/*
 * madvise(MADV_COW_UNSHARE): break COW sharing in advance.
 *
 *  - unshare, unshare_sharer: which pages it copies (the populated ones
 *           that are shared, after fork() or cow_snapshot()), and what it
 *           leaves alone: holes, pages already exclusive, protections,
 *           the other side's view; the copies are anonymous memory of
 *           their own that reclaim must not discard.
 *  - unshare_thp: one page of a THP shared at PMD level.
 *  - bad_unshare: the errors, and len == 0; nothing may change.
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

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB		(21 << 26)
#endif

#define PAGE		COW_SUBPAGE
#define SEED		3
/* Where the tests write in a page; any 8-byte aligned offset would do. */
#define OFF		128
#define COUNTER		"cow_snapshot_pages"
#define NO_PFNS		"pagemap shows no PFNs (needs CAP_SYS_ADMIN)"

static uint64_t pfn_of(const void *addr)
{
	return cow_pfn(addr);
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

/* The 64-bit word @i of the pattern of @seed. */
static inline uint64_t pat(uint64_t seed, size_t i)
{
	return (seed * 0x9e3779b97f4a7c15ULL) ^ (i * 0xbf58476d1ce4e5b9ULL) ^
	       (i + 1);
}

/* Every word of [p, p + len). */
static void fill(char *p, size_t len, uint64_t seed)
{
	uint64_t *w = (uint64_t *)p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = pat(seed, i);
}

/* The byte offset of the first word that differs, -1 when all match. */
static long verify(const char *p, size_t len, uint64_t seed)
{
	const uint64_t *w = (const uint64_t *)p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i] != pat(seed, i))
			return i * 8;
	return -1;
}

/*
 * unshare: UN_PAGES pages, every fourth one (1, 5, ...) never touched,
 * the others each filled with its own pattern.
 */
#define UN_PAGES	32

static bool un_hole(size_t i)
{
	return i % 4 == 1;
}

static int un_data_ok(const char *mem)
{
	size_t i;

	for (i = 0; i < UN_PAGES; i++)
		if (!un_hole(i) && verify(mem + i * PAGE, PAGE, SEED + i) != -1)
			return 1;
	return 0;
}

/* The child's check: its view of the populated pages is intact. */
static int un_child_check(void *mem)
{
	return un_data_ok(mem);
}

struct un_region {
	char *mem;
	size_t len;
	long populated;
	uint64_t pfn[UN_PAGES];
	struct cow_precopy_knobs precopy;
};

static const char *un_setup(struct __test_metadata *_metadata,
			    struct un_region *r)
{
	size_t i;

	if (!cow_snapshot_present())
		return COW_NO_SNAPSHOT;
	r->len = UN_PAGES * PAGE;
	r->mem = mmap(NULL, r->len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(r->mem, MAP_FAILED);
	ASSERT_EQ(madvise(r->mem, r->len, MADV_NOHUGEPAGE), 0);
	for (i = 0; i < UN_PAGES; i++) {
		if (un_hole(i))
			continue;
		fill(r->mem + i * PAGE, PAGE, SEED + i);
		r->populated++;
	}
	if (!pfn_of(r->mem))
		return NO_PFNS;
	/* Counted copies are the unshared pages, no pre-copy. */
	ASSERT_EQ(cow_precopy_set(&r->precopy, "0", "0"), 0);
	return NULL;
}

static void un_teardown(struct un_region *r)
{
	cow_precopy_restore(&r->precopy);
	if (r->mem && r->mem != MAP_FAILED)
		munmap(r->mem, r->len);
}

/*
 * pagemap of the populated pages of @mem: present, @excl as given; note
 * their PFNs in @pfn. Holes: not present. Never reads the memory itself.
 */
static void un_expect_pages(struct __test_metadata *_metadata,
			    const char *mem, uint64_t *pfn, bool excl)
{
	size_t i;

	for (i = 0; i < UN_PAGES; i++) {
		uint64_t e = cow_pagemap(mem + i * PAGE);

		if (un_hole(i)) {
			EXPECT_FALSE(e & PM_PRESENT) TH_LOG("hole %zu", i);
			continue;
		}
		EXPECT_TRUE(e & PM_PRESENT) TH_LOG("page %zu", i);
		EXPECT_EQ(!!(e & PM_MMAP_EXCLUSIVE), excl)
			TH_LOG("page %zu", i);
		pfn[i] = PAGEMAP_PFN(e);
	}
}

/* PFNs of the populated pages: all changed (@moved) or all the same. */
static void un_expect_pfns(struct __test_metadata *_metadata,
			   const uint64_t *pfn, const uint64_t *old,
			   bool moved)
{
	size_t i;

	for (i = 0; i < UN_PAGES; i++)
		if (!un_hole(i))
			EXPECT_EQ(pfn[i] != old[i], moved)
				TH_LOG("page %zu", i);
}

/*
 * unshare_sharer: the pages shared with a fork() child or with a
 * cow_snapshot() of them. MADV_COW_UNSHARE copies the populated pages,
 * now the source's own; holes stay holes; protections and data unchanged
 * on both sides; cow_copy counts one per page; the other side keeps its
 * view (a snapshot: the very pages it shared, now its own); and the next
 * write to them copies nothing more.
 */
FIXTURE(unshare_sharer) {
	struct un_region r;
};

FIXTURE_VARIANT(unshare_sharer) {
	bool snapshot;	/* shared with a snapshot, not a fork() child */
};

FIXTURE_VARIANT_ADD(unshare_sharer, fork) {
	.snapshot = false,
};

FIXTURE_VARIANT_ADD(unshare_sharer, snapshot) {
	.snapshot = true,
};

FIXTURE_SETUP(unshare_sharer)
{
	const char *skip = un_setup(_metadata, &self->r);

	if (skip)
		SKIP(return, "%s", skip);
}

FIXTURE_TEARDOWN(unshare_sharer)
{
	un_teardown(&self->r);
}

TEST_F(unshare_sharer, copies_populated_pages)
{
	static char maps_before[1024], maps_after[1024];
	struct un_region *r = &self->r;
	struct cow_counts b, a, b2, a2;
	uint64_t old[UN_PAGES];
	char *s = MAP_FAILED;
	pid_t pid = -1;
	size_t i;
	int go = -1, ret;

	if (variant->snapshot) {
		s = cow_snapshot(r->mem, r->len, NULL, 0);
		ASSERT_NE(s, MAP_FAILED)
			TH_LOG("cow_snapshot: %s", strerror(errno));
	} else {
		pid = cow_fork_waiter(un_child_check, r->mem, &go);
		ASSERT_GT(pid, 0);
	}
	un_expect_pages(_metadata, r->mem, r->pfn, false);
	memcpy(old, r->pfn, sizeof(old));
	if (variant->snapshot)
		for (i = 0; i < UN_PAGES; i++)
			if (!un_hole(i))
				EXPECT_EQ(pfn_of(s + i * PAGE), old[i])
					TH_LOG("page %zu", i);
	ASSERT_EQ(cow_maps_text(r->mem, r->mem + r->len, maps_before,
				sizeof(maps_before)), 0);

	cow_counts_before(&b, &a);
	ret = madvise(r->mem, r->len, MADV_COW_UNSHARE);
	cow_get_counts(&a);
	ASSERT_EQ(ret, 0) TH_LOG("madvise: %s", strerror(errno));
	EXPECT_EQ(a.cow_copy - b.cow_copy, r->populated);

	un_expect_pages(_metadata, r->mem, r->pfn, true);
	un_expect_pfns(_metadata, r->pfn, old, true);
	ASSERT_EQ(cow_maps_text(r->mem, r->mem + r->len, maps_after,
				sizeof(maps_after)), 0);
	EXPECT_STREQ(maps_before, maps_after);
	EXPECT_EQ(un_data_ok(r->mem), 0);
	if (variant->snapshot) {
		for (i = 0; i < UN_PAGES; i++) {
			if (un_hole(i))
				continue;
			EXPECT_EQ(pfn_of(s + i * PAGE), old[i])
				TH_LOG("page %zu", i);
			EXPECT_TRUE(exclusive(s + i * PAGE))
				TH_LOG("page %zu", i);
		}
		EXPECT_EQ(un_data_ok(s), 0);
	}

	/* Writable: the next writes reuse the pages, no copy. */
	cow_counts_before(&b2, &a2);
	for (i = 0; i < UN_PAGES; i++) {
		char *c = r->mem + i * PAGE + OFF;

		if (!un_hole(i))
			__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED),
					 __ATOMIC_RELAXED);
	}
	cow_get_counts(&a2);
	EXPECT_EQ(a2.cow_copy - b2.cow_copy, 0);

	if (!variant->snapshot)
		EXPECT_EQ(cow_checker_result(pid, go), 0)
			TH_LOG("the child's view changed");
}

/* unshare: the same pages, for the cases with no matrix. */
FIXTURE(unshare) {
	struct un_region r;
};

FIXTURE_SETUP(unshare)
{
	const char *skip = un_setup(_metadata, &self->r);

	if (skip)
		SKIP(return, "%s", skip);
}

FIXTURE_TEARDOWN(unshare)
{
	un_teardown(&self->r);
}

/*
 * A read-only mapping: unshared all the same, and still read-only (a
 * write from a child kills it with SIGSEGV).
 */
TEST_F(unshare, read_only_stays_read_only)
{
	struct un_region *r = &self->r;
	char before[1024], after[1024];
	struct cow_vma v;
	int go, status;
	pid_t pid;

	ASSERT_EQ(mprotect(r->mem, r->len, PROT_READ), 0);
	pid = cow_fork_waiter(un_child_check, r->mem, &go);
	ASSERT_GT(pid, 0);
	un_expect_pages(_metadata, r->mem, r->pfn, false);
	ASSERT_EQ(cow_maps_text(r->mem, r->mem + r->len, before,
				sizeof(before)), 0);
	ASSERT_EQ(madvise(r->mem, r->len, MADV_COW_UNSHARE), 0)
		TH_LOG("madvise: %s", strerror(errno));
	un_expect_pages(_metadata, r->mem, r->pfn, true);
	ASSERT_EQ(cow_maps_text(r->mem, r->mem + r->len, after,
				sizeof(after)), 0);
	EXPECT_STREQ(before, after);
	ASSERT_EQ(cow_vmas_in(r->mem, r->mem + r->len, &v, 1), 1);
	EXPECT_STREQ(v.perms, "r--p");
	EXPECT_EQ(un_data_ok(r->mem), 0);
	EXPECT_EQ(cow_checker_result(pid, go), 0);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		__atomic_store_n(r->mem, 1, __ATOMIC_RELAXED);
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV)
		TH_LOG("a write to the read-only mapping did not fault");
}

/* Pages already exclusive: nothing copied, nothing moved. */
TEST_F(unshare, exclusive_pages_copy_nothing)
{
	struct un_region *r = &self->r;
	struct cow_counts b, a;
	uint64_t old[UN_PAGES];
	int ret;

	un_expect_pages(_metadata, r->mem, r->pfn, true);
	memcpy(old, r->pfn, sizeof(old));
	cow_counts_before(&b, &a);
	ret = madvise(r->mem, r->len, MADV_COW_UNSHARE);
	cow_get_counts(&a);
	ASSERT_EQ(ret, 0) TH_LOG("madvise: %s", strerror(errno));
	EXPECT_EQ(a.cow_copy - b.cow_copy, 0);
	un_expect_pages(_metadata, r->mem, r->pfn, true);
	un_expect_pfns(_metadata, r->pfn, old, false);
	EXPECT_EQ(un_data_ok(r->mem), 0);
}

/*
 * The copies are the parent's data and nothing else backs them: MADV_FREE
 * of another mapping of them must not let reclaim discard them. Unshare
 * after fork(), fork() again, MADV_FREE in that child, then reclaim
 * (MADV_PAGEOUT) in the parent once that child is gone. A regression test:
 * an unshare copy was mapped clean on a clean folio, and so became
 * lazily freeable by any process that shared it.
 */
TEST_F(unshare, copies_survive_madv_free_elsewhere)
{
	struct un_region *r = &self->r;
	int go, status;
	pid_t pid, child;

	pid = cow_fork_waiter(un_child_check, r->mem, &go);
	ASSERT_GT(pid, 0);
	ASSERT_EQ(madvise(r->mem, r->len, MADV_COW_UNSHARE), 0)
		TH_LOG("madvise: %s", strerror(errno));
	child = fork();
	ASSERT_GE(child, 0);
	if (child == 0)
		_exit(madvise(r->mem, r->len, MADV_FREE) ? 1 : 0);
	ASSERT_EQ(waitpid(child, &status, 0), child);
	ASSERT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("MADV_FREE in the child failed");
	ASSERT_EQ(madvise(r->mem, r->len, MADV_PAGEOUT), 0)
		TH_LOG("MADV_PAGEOUT: %s", strerror(errno));
	EXPECT_EQ(un_data_ok(r->mem), 0);
	EXPECT_EQ(cow_checker_result(pid, go), 0);
}

/*
 * unshare_thp: a PMD-mapped, PMD-aligned huge page filled with the
 * pattern, then snapshot: the kernel-chosen dst has the same offset in
 * the PMD (0), and the huge page is shared at PMD level (both VMAs show
 * it in AnonHugePages, same PFNs, neither exclusive).
 */
FIXTURE(unshare_thp) {
	char *map, *mem, *snap;
	size_t pmd;
	struct cow_precopy_knobs precopy;
};

FIXTURE_SETUP(unshare_thp)
{
	long kb;

	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	self->pmd = read_pmd_pagesize();
	if (!self->pmd)
		SKIP(return, "THP not supported by this kernel");
	kb = self->pmd / 1024;
	self->mem = cow_map_thp(self->pmd, &self->map);
	ASSERT_NE(self->mem, NULL);
	fill(self->mem, self->pmd, SEED);
	if (cow_smaps_kb(self->mem, "AnonHugePages") < kb)
		SKIP(return, "no PMD-mapped THP populated (THP disabled?)");
	ASSERT_EQ(cow_precopy_set(&self->precopy, "0", "0"), 0);

	self->snap = cow_snapshot(self->mem, self->pmd, NULL, 0);
	ASSERT_NE(self->snap, MAP_FAILED)
		TH_LOG("cow_snapshot: %s", strerror(errno));
	EXPECT_EQ((uintptr_t)self->snap % self->pmd, 0)
		TH_LOG("kernel-chosen dst %p not PMD-aligned", self->snap);
	EXPECT_EQ(cow_smaps_kb(self->snap, "AnonHugePages"), kb);
	EXPECT_EQ(cow_smaps_kb(self->mem, "AnonHugePages"), kb);
	EXPECT_EQ(memcmp(self->snap, self->mem, self->pmd), 0);
	if (pfns_visible()) {
		EXPECT_EQ(pfn_of(self->snap), pfn_of(self->mem));
		EXPECT_EQ(pfn_of(self->snap + self->pmd - PAGE),
			  pfn_of(self->mem + self->pmd - PAGE));
		EXPECT_FALSE(exclusive(self->snap));
		EXPECT_FALSE(exclusive(self->mem));
	}
}

FIXTURE_TEARDOWN(unshare_thp)
{
	cow_precopy_restore(&self->precopy);
	if (self->mem)
		munmap(self->map, 2 * self->pmd);
}

/*
 * MADV_COW_UNSHARE on one page of a huge page shared at PMD level splits
 * the PMD and makes that page the source's own.
 */
TEST_F(unshare_thp, one_page_splits_pmd)
{
	ASSERT_EQ(madvise(self->mem, PAGE, MADV_COW_UNSHARE), 0)
		TH_LOG("madvise: %s", strerror(errno));
	EXPECT_EQ(cow_smaps_kb(self->mem, "AnonHugePages"), 0);
	if (pfns_visible()) {
		EXPECT_TRUE(exclusive(self->mem));
		EXPECT_NE(pfn_of(self->mem), pfn_of(self->snap));
	}
	EXPECT_EQ(verify(self->mem, self->pmd, SEED), -1);
	EXPECT_EQ(verify(self->snap, self->pmd, SEED), -1);
}

/*
 * bad_unshare: one madvise(MADV_COW_UNSHARE) per variant, on BAD_PAGES
 * of private anonymous memory holding the pattern or on a mapping that
 * cannot be unshared. It must return the variant's result (-1 and its
 * errno, or 0) and change nothing: the test reads /proc/self/maps and
 * cow_snapshot_pages just before and just after the call, and checks the
 * data. Nothing between the two reads allocates: the file is read with
 * open()/read() into static buffers.
 */
#define BAD_PAGES	8
#define MAPS_MAX	(256 * 1024)

static char maps_before[MAPS_MAX], maps_after[MAPS_MAX];

enum unshare_target {
	UN_ANON,	/* the BAD_PAGES */
	UN_FREE,	/* a free range */
	UN_HUGETLB,	/* a 2 MiB hugetlb page, MAP_PRIVATE */
	UN_VVAR,	/* [vvar] (VM_PFNMAP) */
};

FIXTURE(bad_unshare) {
	char *src, *hugetlb;
	char *addr;
	size_t len;
};

FIXTURE_VARIANT(bad_unshare) {
	enum unshare_target target;
	unsigned long offset;	/* added to the target's address */
	bool whole;		/* len: the whole target, not the row's len */
	unsigned long len;
	int ret, err;		/* the result, and the errno when it is -1 */
};

FIXTURE_VARIANT_ADD(bad_unshare, unaligned) {
	.target = UN_ANON, .offset = 1, .len = PAGE, .ret = -1, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_unshare, len_wraps) {
	.target = UN_ANON, .len = -PAGE, .ret = -1, .err = EINVAL,
};

/* len 0: nothing to do, as for any madvise()... */
FIXTURE_VARIANT_ADD(bad_unshare, len_zero) {
	.target = UN_ANON, .len = 0, .ret = 0,
};

/* ... even where nothing is mapped. */
FIXTURE_VARIANT_ADD(bad_unshare, len_zero_unmapped) {
	.target = UN_FREE, .len = 0, .ret = 0,
};

FIXTURE_VARIANT_ADD(bad_unshare, hugetlb) {
	.target = UN_HUGETLB, .whole = true, .ret = -1, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_unshare, vvar) {
	.target = UN_VVAR, .whole = true, .ret = -1, .err = EINVAL,
};

FIXTURE_SETUP(bad_unshare)
{
	unsigned long start = 0, end = 0;
	size_t whole = BAD_PAGES * PAGE;
	char line[512];
	FILE *f;

	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	self->src = mmap(NULL, BAD_PAGES * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->src, MAP_FAILED);
	cow_fill(self->src, BAD_PAGES * PAGE, SEED);
	self->addr = self->src;
	switch (variant->target) {
	case UN_ANON:
		break;
	case UN_FREE:
		self->addr = mmap(NULL, PAGE, PROT_NONE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(self->addr, MAP_FAILED);
		ASSERT_EQ(munmap(self->addr, PAGE), 0);
		break;
	case UN_HUGETLB:
		whole = 2UL << 20;
		if (cow_hugetlb_free(2048) < 1)
			SKIP(return, "no free 2 MiB hugetlb page");
		self->hugetlb = mmap(NULL, whole, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB |
				     MAP_HUGE_2MB, -1, 0);
		if (self->hugetlb == MAP_FAILED)
			SKIP(return, "no 2 MiB hugetlb page: %s",
			     strerror(errno));
		cow_fill(self->hugetlb, whole, SEED + 1);
		self->addr = self->hugetlb;
		break;
	case UN_VVAR:
		f = fopen("/proc/self/maps", "r");
		ASSERT_NE(f, NULL);
		while (fgets(line, sizeof(line), f))
			if (strstr(line, "[vvar]\n") &&
			    sscanf(line, "%lx-%lx", &start, &end) == 2)
				break;
		fclose(f);
		if (!end)
			SKIP(return, "no [vvar] in /proc/self/maps");
		self->addr = (char *)start;
		whole = end - start;
		break;
	}
	self->addr += variant->offset;
	self->len = variant->whole ? whole : variant->len;
}

FIXTURE_TEARDOWN(bad_unshare)
{
	if (self->hugetlb && self->hugetlb != MAP_FAILED)
		munmap(self->hugetlb, 2UL << 20);
	if (self->src && self->src != MAP_FAILED)
		munmap(self->src, BAD_PAGES * PAGE);
}

TEST_F(bad_unshare, changes_nothing)
{
	unsigned long long v0, v1;
	ssize_t n0, n1;
	int ret, err;

	v0 = cow_vmstat(COUNTER);
	n0 = cow_read_file("/proc/self/maps", maps_before, MAPS_MAX);
	errno = 0;
	ret = madvise(self->addr, self->len, MADV_COW_UNSHARE);
	err = errno;
	n1 = cow_read_file("/proc/self/maps", maps_after, MAPS_MAX);
	v1 = cow_vmstat(COUNTER);

	EXPECT_EQ(ret, variant->ret)
		TH_LOG("madvise(%p, %#zx): errno %d (%s)", self->addr,
		       self->len, err, strerror(err));
	if (variant->ret == -1)
		EXPECT_EQ(err, variant->err)
			TH_LOG("errno %s, want %s", strerror(err),
			       strerror(variant->err));
	ASSERT_GT(n0, 0);
	ASSERT_GT(n1, 0);
	EXPECT_EQ(n0, n1);
	if (n0 == n1 && memcmp(maps_before, maps_after, n0)) {
		cow_maps_diff("MADV_COW_UNSHARE", maps_before, maps_after);
		EXPECT_TRUE(false);
	}
	EXPECT_EQ(v1, v0) TH_LOG("%s changed", COUNTER);
	EXPECT_EQ(cow_check(self->src, BAD_PAGES * PAGE, SEED), -1);
	if (self->hugetlb)
		EXPECT_EQ(cow_check(self->hugetlb, 2UL << 20, SEED + 1), -1);
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
 * unmapped hole, and pages 0, 1, 3 and 4 are unshared all the same; no
 * VMA changes, and no snapshot is made.
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
		SKIP(return, NO_PFNS);
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
	unsigned long long v0, v1;
	uint64_t old[HOLE_PAGES];
	ssize_t n0, n1;
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

	v0 = cow_vmstat(COUNTER);
	n0 = cow_read_file("/proc/self/maps", maps_before, MAPS_MAX);
	ret = madvise(self->mem, HOLE_PAGES * PAGE, MADV_COW_UNSHARE);
	err = errno;
	n1 = cow_read_file("/proc/self/maps", maps_after, MAPS_MAX);
	v1 = cow_vmstat(COUNTER);
	EXPECT_EQ(ret, -1);
	EXPECT_EQ(err, ENOMEM) TH_LOG("errno %s", strerror(err));
	ASSERT_GT(n0, 0);
	EXPECT_EQ(n0, n1);
	if (n0 == n1 && memcmp(maps_before, maps_after, n0)) {
		cow_maps_diff("hole at page 2", maps_before, maps_after);
		EXPECT_TRUE(false);
	}
	EXPECT_EQ(v1, v0) TH_LOG("%s changed", COUNTER);

	for (i = 0; i < HOLE_PAGES; i++) {
		uint64_t e = cow_pagemap(self->mem + i * PAGE);

		if (i == HOLE_AT) {
			EXPECT_FALSE(e & PM_PRESENT);
			continue;
		}
		EXPECT_TRUE(e & PM_PRESENT) TH_LOG("page %zu", i);
		EXPECT_TRUE(e & PM_MMAP_EXCLUSIVE) TH_LOG("page %zu not unshared", i);
		EXPECT_NE(PAGEMAP_PFN(e), old[i]) TH_LOG("page %zu not copied", i);
		EXPECT_EQ(cow_check(self->mem + i * PAGE, PAGE, SEED + i), -1)
			TH_LOG("page %zu", i);
	}
	EXPECT_EQ(cow_checker_result(pid, go), 0)
		TH_LOG("the child's view changed");
}

TEST_HARNESS_MAIN
