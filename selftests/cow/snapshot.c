// SPDX-License-Identifier: GPL-2.0-only
/*
 * cow_snapshot(): what it does.
 *
 * cow_snapshot(start, len, dst, flags) makes, in the caller's own address
 * space, a copy-on-write copy of private anonymous memory. These tests
 * check the data on both sides (at the call, and after writes to either),
 * which pages stay shared (pagemap), the counters (cow_snapshot_pages,
 * cow_copy, RSS), the VMAs in /proc/self/maps, THPs, pinned pages, fork(),
 * snapshots of snapshots, and a snapshot taken while other threads write.
 * The errors are in snapshot_errors.c; MADV_COW_UNSHARE, which breaks the
 * sharing in advance, is in unshare.c.
 *
 * Every test skips on a kernel without the system call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/mman.h>
#include <linux/types.h>

#include "kselftest_harness.h"
#include "cow_util.h"

/* mm/gup_test.h: the ABI of /sys/kernel/debug/gup_test. */
#ifndef PIN_LONGTERM_TEST_START
struct pin_longterm_test {
	__u64 addr;
	__u64 size;
	__u32 flags;
};

#define PIN_LONGTERM_TEST_START		_IOW('g', 7, struct pin_longterm_test)
#define PIN_LONGTERM_TEST_STOP		_IO('g', 8)
#define PIN_LONGTERM_TEST_READ		_IOW('g', 9, __u64)
#define PIN_LONGTERM_TEST_FLAG_USE_WRITE	1
#endif
#define GUP_TEST_PATH	"/sys/kernel/debug/gup_test"

#define PAGE		COW_SUBPAGE
#define NR_PAGES	16
#define SEED		1
/* Where the tests write in a page; any 8-byte aligned offset would do. */
#define OFF		128

/* The 64-bit word @i of the pattern of @seed. */
static inline uint64_t pat(uint64_t seed, size_t i)
{
	return (seed * 0x9e3779b97f4a7c15ULL) ^ (i * 0xbf58476d1ce4e5b9ULL) ^
	       (i + 1);
}

/* Every word of [p, p + len), word @first of the pattern first. */
static void fill_from(char *p, size_t len, uint64_t seed, size_t first)
{
	uint64_t *w = (uint64_t *)p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		w[i] = pat(seed, first + i);
}

static void fill(char *p, size_t len, uint64_t seed)
{
	fill_from(p, len, seed, 0);
}

/* One word written by a test: at byte @off, @val. */
struct poke {
	size_t off;
	uint64_t val;
};

static void do_poke(char *p, const struct poke *pk)
{
	__atomic_store_n((uint64_t *)(p + pk->off), pk->val, __ATOMIC_RELAXED);
}

/*
 * Check every word of [p, p + len) against the pattern (word @first
 * first), except those @pk lists, which must hold their value. The byte
 * offset of the first word that differs, -1 when all match.
 */
static long verify_from(const char *p, size_t len, uint64_t seed,
			size_t first, const struct poke *pk, int npk)
{
	const uint64_t *w = (const uint64_t *)p;
	size_t i;
	int k;

	for (i = 0; i < len / 8; i++) {
		uint64_t want = pat(seed, first + i);

		for (k = 0; k < npk; k++)
			if (pk[k].off == i * 8)
				want = pk[k].val;
		if (w[i] != want)
			return i * 8;
	}
	return -1;
}

static long verify(const char *p, size_t len, uint64_t seed,
		   const struct poke *pk, int npk)
{
	return verify_from(p, len, seed, 0, pk, npk);
}

/* A free address range of @len: mapped, then unmapped. */
static char *free_area(size_t len)
{
	char *p = mmap(NULL, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	munmap(p, len);
	return p;
}

static uint64_t pfn(const void *addr)
{
	return cow_pfn(addr);
}

static bool present(const void *addr)
{
	return cow_pagemap(addr) & PM_PRESENT;
}

static bool exclusive(const void *addr)
{
	return cow_pagemap(addr) & PM_MMAP_EXCLUSIVE;
}

/* Does pagemap show PFNs (CAP_SYS_ADMIN)? @addr: a present page. */
static bool pfns_visible(const void *addr)
{
	return pfn(addr) != 0;
}

/* The VmFlags line of the smaps entry of the VMA at @addr, in @buf. */
static int vm_flags(const void *addr, char *buf, size_t size)
{
	unsigned long start, end, a = (unsigned long)addr;
	bool inside = false;
	char line[512];
	int ret = -1;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			inside = a >= start && a < end;
			continue;
		}
		if (inside && !strncmp(line, "VmFlags:", 8)) {
			snprintf(buf, size, "%s", line + 8);
			ret = 0;
			break;
		}
	}
	fclose(f);
	return ret;
}

static bool has_vm_flag(const char *flags, const char *flag)
{
	char want[8];

	snprintf(want, sizeof(want), " %s", flag);
	return strstr(flags, want);
}

/* A field of /proc/self/status in kB ("RssAnon"); -1 when absent. */
static long status_kb(const char *field)
{
	size_t flen = strlen(field);
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, flen) && line[flen] == ':') {
			v = strtol(line + flen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* Is @name a counter of /proc/vmstat? */
static bool vmstat_has(const char *name)
{
	char line[256], key[64];
	bool found = false;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%63s", key) == 1 && !strcmp(key, name);
	fclose(f);
	return found;
}

/*
 * NR_PAGES pages of private anonymous memory in small folios, every word
 * holding the pattern of SEED.
 */
FIXTURE(snap) {
	char *src;
	size_t len;
	struct cow_precopy_knobs precopy;
};

FIXTURE_SETUP(snap)
{
	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	/* Only the page written is copied: no pre-copy around it. */
	ASSERT_EQ(cow_precopy_set(&self->precopy, "0", "0"), 0);
	self->len = NR_PAGES * PAGE;
	self->src = mmap(NULL, self->len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->src, MAP_FAILED);
	ASSERT_EQ(madvise(self->src, self->len, MADV_NOHUGEPAGE), 0);
	fill(self->src, self->len, SEED);
}

FIXTURE_TEARDOWN(snap)
{
	cow_precopy_restore(&self->precopy);
	if (self->src && self->src != MAP_FAILED)
		munmap(self->src, self->len);
}

/*
 * The snapshot at @s of the fixture's source: one private anonymous VMA
 * read-write over [s, s + len), the same bytes as the source.
 */
static void expect_copy(struct __test_metadata *_metadata, const char *src,
			const char *s, size_t len)
{
	struct cow_vma v;

	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	EXPECT_EQ((uintptr_t)s % PAGE, 0);
	EXPECT_TRUE(s + len <= src || s >= src + len)
		TH_LOG("snapshot %p overlaps the source %p", s, src);
	EXPECT_EQ(memcmp(s, src, len), 0);
	ASSERT_EQ(cow_vmas_in(s, s + len, &v, 1), 1);
	EXPECT_LE(v.start, (unsigned long)s);
	EXPECT_GE(v.end, (unsigned long)s + len);
	EXPECT_STREQ(v.perms, "rw-p");
	EXPECT_STREQ(v.name, "");
}

/* dst a free address without the flag: a hint that is taken, like mmap. */
TEST_F(snap, hint_dst_same_content)
{
	char *hint = free_area(self->len);
	char *s;

	ASSERT_NE(hint, NULL);
	s = cow_snapshot(self->src, self->len, hint, 0);
	expect_copy(_metadata, self->src, s, self->len);
	EXPECT_EQ(s, hint);
	EXPECT_EQ(verify(s, self->len, SEED, NULL, 0), -1);
}

/* A hint on a busy address goes elsewhere and leaves that mapping alone. */
TEST_F(snap, hint_on_busy_address_goes_elsewhere)
{
	struct cow_vma v;
	char *busy, *s;

	busy = mmap(NULL, self->len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(busy, MAP_FAILED);
	fill(busy, self->len, SEED + 1);
	s = cow_snapshot(self->src, self->len, busy, 0);
	expect_copy(_metadata, self->src, s, self->len);
	EXPECT_TRUE(s + self->len <= busy || s >= busy + self->len);
	/* Still one private read-write VMA over it, with its data. */
	ASSERT_EQ(cow_vmas_in(busy, busy + self->len, &v, 1), 1);
	EXPECT_LE(v.start, (unsigned long)busy);
	EXPECT_GE(v.end, (unsigned long)busy + self->len);
	EXPECT_STREQ(v.perms, "rw-p");
	EXPECT_EQ(verify(busy, self->len, SEED + 1, NULL, 0), -1);
}

/* COW_SNAPSHOT_FIXED: exactly at dst. */
TEST_F(snap, fixed_dst_same_content)
{
	char *dst = free_area(self->len);
	char *s;

	ASSERT_NE(dst, NULL);
	s = cow_snapshot(self->src, self->len, dst, COW_SNAPSHOT_FIXED);
	expect_copy(_metadata, self->src, s, self->len);
	EXPECT_EQ(s, dst);
	EXPECT_EQ(verify(s, self->len, SEED, NULL, 0), -1);
}

/* len is rounded up to pages: 3 pages and a byte make 4. */
TEST_F(snap, len_rounded_up_to_pages)
{
	unsigned long long before = cow_vmstat("cow_snapshot_pages");
	char *s = cow_snapshot(self->src, 3 * PAGE + 1, NULL, 0);

	expect_copy(_metadata, self->src, s, 4 * PAGE);
	EXPECT_EQ(cow_vmstat("cow_snapshot_pages") - before, 4);
	EXPECT_EQ(verify(s, 4 * PAGE, SEED, NULL, 0), -1);
}

/*
 * pagemap: right after the call every page is the same physical page on
 * both sides, mapped twice (not exclusive). A write copies only the page
 * written: it becomes exclusive on the writer's side with a new PFN, the
 * others stay shared.
 */
TEST_F(snap, unwritten_pages_stay_shared)
{
	struct poke ps = { 3 * PAGE + OFF, 1 }, pd = { 9 * PAGE + OFF, 2 };
	char *s = cow_snapshot(self->src, self->len, NULL, 0);
	uint64_t old_src[NR_PAGES], old_s[NR_PAGES];
	size_t i;

	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	if (!pfns_visible(self->src))
		SKIP(return, "pagemap shows no PFNs (needs CAP_SYS_ADMIN)");
	for (i = 0; i < NR_PAGES; i++) {
		char *a = self->src + i * PAGE, *b = s + i * PAGE;

		ASSERT_TRUE(present(a) && present(b)) TH_LOG("page %zu", i);
		EXPECT_EQ(pfn(a), pfn(b)) TH_LOG("page %zu", i);
		EXPECT_FALSE(exclusive(a)) TH_LOG("page %zu", i);
		EXPECT_FALSE(exclusive(b)) TH_LOG("page %zu", i);
		old_src[i] = pfn(a);
		old_s[i] = pfn(b);
	}
	do_poke(self->src, &ps);
	do_poke(s, &pd);
	for (i = 0; i < NR_PAGES; i++) {
		char *a = self->src + i * PAGE, *b = s + i * PAGE;

		if (i == 3) {
			EXPECT_TRUE(exclusive(a));
			EXPECT_NE(pfn(a), pfn(b));
			EXPECT_EQ(pfn(b), old_s[i]);
		} else if (i == 9) {
			EXPECT_TRUE(exclusive(b));
			EXPECT_NE(pfn(a), pfn(b));
			EXPECT_EQ(pfn(a), old_src[i]);
		} else {
			EXPECT_EQ(pfn(a), old_src[i]) TH_LOG("page %zu", i);
			EXPECT_EQ(pfn(b), old_src[i]) TH_LOG("page %zu", i);
			EXPECT_FALSE(exclusive(a)) TH_LOG("page %zu", i);
			EXPECT_FALSE(exclusive(b)) TH_LOG("page %zu", i);
		}
	}
	EXPECT_EQ(verify(self->src, self->len, SEED, &ps, 1), -1);
	EXPECT_EQ(verify(s, self->len, SEED, &pd, 1), -1);
}

/*
 * vmstat cow_snapshot_pages grows by the pages of each call, and not at
 * all for a rejected one.
 */
TEST_F(snap, vmstat_counts_pages)
{
	static const size_t pages[] = { 1, 3, NR_PAGES };
	unsigned long long before, after;
	char *hole = free_area(PAGE);
	size_t i;
	char *s;
	int err;

	ASSERT_TRUE(vmstat_has("cow_snapshot_pages"))
		TH_LOG("no cow_snapshot_pages in /proc/vmstat");
	for (i = 0; i < ARRAY_SIZE(pages); i++) {
		before = cow_vmstat("cow_snapshot_pages");
		s = cow_snapshot(self->src, pages[i] * PAGE, NULL, 0);
		after = cow_vmstat("cow_snapshot_pages");
		ASSERT_NE(s, MAP_FAILED);
		EXPECT_EQ(after - before, pages[i]);
		munmap(s, pages[i] * PAGE);
	}

	ASSERT_NE(hole, NULL);
	before = cow_vmstat("cow_snapshot_pages");
	EXPECT_EQ(cow_snapshot(self->src, self->len, NULL, 4), MAP_FAILED);
	EXPECT_EQ(cow_snapshot(self->src, 0, NULL, 0), MAP_FAILED);
	EXPECT_EQ(cow_snapshot(self->src + 1, PAGE, NULL, 0), MAP_FAILED);
	s = cow_snapshot(hole, PAGE, NULL, 0);
	err = errno;
	EXPECT_EQ(s, MAP_FAILED);
	EXPECT_EQ(err, ENOMEM);
	after = cow_vmstat("cow_snapshot_pages");
	EXPECT_EQ(after, before);
}

/*
 * Three VMAs rw, r, rw: the snapshot has three VMAs at the same offsets
 * with the same protections, and the same data.
 */
TEST_F(snap, multi_vma_source_keeps_protections)
{
	static const char * const perms[] = { "rw-p", "r--p", "rw-p" };
	size_t len = 9 * PAGE;
	struct cow_vma v[4];
	char *s;
	int i;

	ASSERT_EQ(mprotect(self->src + 3 * PAGE, 3 * PAGE, PROT_READ), 0);
	ASSERT_EQ(cow_vmas_in(self->src, self->src + len, v, 4), 3);
	s = cow_snapshot(self->src, len, NULL, 0);
	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	EXPECT_EQ(memcmp(s, self->src, len), 0);
	ASSERT_EQ(cow_vmas_in(s, s + len, v, 4), 3);
	for (i = 0; i < 3; i++) {
		EXPECT_STREQ(v[i].perms, perms[i]) TH_LOG("VMA %d", i);
		if (i > 0)
			EXPECT_EQ(v[i].start, (unsigned long)s + i * 3 * PAGE);
		if (i < 2)
			EXPECT_EQ(v[i].end,
				  (unsigned long)s + (i + 1) * 3 * PAGE);
	}
	EXPECT_LE(v[0].start, (unsigned long)s);
	EXPECT_GE(v[2].end, (unsigned long)s + len);
	/* The writable parts take writes, on their own side only. */
	s[OFF] = 1;
	s[7 * PAGE + OFF] = 1;
	EXPECT_EQ(verify(self->src, self->len, SEED, NULL, 0), -1);
}

/*
 * A range in the middle of a bigger VMA: the source's VMA is not split
 * (its line in /proc/self/maps stays as it was).
 */
TEST_F(snap, partial_vma_source_not_split)
{
	char before[1024], after[1024];
	size_t len = 8 * PAGE;
	struct cow_vma v;
	char *s;

	ASSERT_EQ(cow_maps_text(self->src, self->src + self->len, before,
				sizeof(before)), 0);
	s = cow_snapshot(self->src + 4 * PAGE, len, NULL, 0);
	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	ASSERT_EQ(cow_maps_text(self->src, self->src + self->len, after,
				sizeof(after)), 0);
	EXPECT_STREQ(before, after);
	EXPECT_EQ(verify_from(s, len, SEED, 4 * PAGE / 8, NULL, 0), -1);
	ASSERT_EQ(cow_vmas_in(s, s + len, &v, 1), 1);
	EXPECT_STREQ(v.perms, "rw-p");
}

/*
 * A source never touched: nothing is populated by the call, the snapshot
 * reads zeros, and writes on either side stay there.
 */
TEST_F(snap, untouched_source_reads_zero)
{
	size_t len = 8 * PAGE, i;
	char *src, *s;

	src = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(src, MAP_FAILED);
	s = cow_snapshot(src, len, NULL, 0);
	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	for (i = 0; i < 8; i++) {
		EXPECT_FALSE(present(src + i * PAGE)) TH_LOG("page %zu", i);
		EXPECT_FALSE(present(s + i * PAGE)) TH_LOG("page %zu", i);
	}
	for (i = 0; i < len; i++)
		if (s[i]) {
			EXPECT_EQ(s[i], 0) TH_LOG("byte %zu", i);
			break;
		}
	s[2 * PAGE + OFF] = 7;
	src[5 * PAGE + OFF] = 9;
	for (i = 0; i < len; i++) {
		char ws = i == 2 * PAGE + OFF ? 7 : 0;
		char wsrc = i == 5 * PAGE + OFF ? 9 : 0;

		if (s[i] != ws || src[i] != wsrc) {
			EXPECT_EQ(s[i], ws) TH_LOG("byte %zu", i);
			EXPECT_EQ(src[i], wsrc) TH_LOG("byte %zu", i);
			break;
		}
	}
	munmap(src, len);
}

/*
 * Three generations: b = snapshot(a), c = snapshot(b) after b was
 * written; then each is written. Each sees its own writes and those made
 * before it was taken, nothing else.
 */
TEST_F(snap, snapshot_of_snapshot)
{
	struct poke b1 = { 2 * PAGE + OFF, 0xb1 }, b2 = { 5 * PAGE, 0xb2 };
	struct poke a1 = { 1 * PAGE + OFF, 0xa1 }, c1 = { 3 * PAGE + 8, 0xc1 };
	struct poke want_b[] = { b1, b2 }, want_c[] = { b1, c1 };
	char *b, *c;

	b = cow_snapshot(self->src, self->len, NULL, 0);
	ASSERT_NE(b, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	do_poke(b, &b1);
	c = cow_snapshot(b, self->len, NULL, 0);
	ASSERT_NE(c, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	EXPECT_EQ(memcmp(b, c, self->len), 0);
	do_poke(self->src, &a1);
	do_poke(b, &b2);
	do_poke(c, &c1);
	EXPECT_EQ(verify(self->src, self->len, SEED, &a1, 1), -1);
	EXPECT_EQ(verify(b, self->len, SEED, want_b, 2), -1);
	EXPECT_EQ(verify(c, self->len, SEED, want_c, 2), -1);
}

struct fork_view {
	char *src, *s;
	size_t len;
};

/*
 * In the child: both ranges as they were at fork() whatever the parent
 * wrote since, then the child's own writes stay in the child.
 */
static int fork_view_check(void *p)
{
	struct fork_view *fv = p;
	struct poke cs = { 4 * PAGE + OFF, 0xc5 };
	struct poke cd = { 6 * PAGE + OFF, 0xcd };

	if (verify(fv->src, fv->len, SEED, NULL, 0) != -1 ||
	    verify(fv->s, fv->len, SEED, NULL, 0) != -1)
		return 1;
	do_poke(fv->src, &cs);
	do_poke(fv->s, &cd);
	if (verify(fv->src, fv->len, SEED, &cs, 1) != -1 ||
	    verify(fv->s, fv->len, SEED, &cd, 1) != -1)
		return 2;
	return 0;
}

/* fork() after a snapshot: the child gets both, each side its own view. */
TEST_F(snap, fork_after_snapshot)
{
	struct poke ps = { 1 * PAGE + OFF, 0x75 };
	struct poke pd = { 2 * PAGE + OFF, 0x7d };
	struct fork_view fv = { self->src, NULL, self->len };
	int go;
	pid_t pid;

	fv.s = cow_snapshot(self->src, self->len, NULL, 0);
	ASSERT_NE(fv.s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	pid = cow_fork_waiter(fork_view_check, &fv, &go);
	ASSERT_GT(pid, 0);
	do_poke(self->src, &ps);
	do_poke(fv.s, &pd);
	EXPECT_EQ(cow_checker_result(pid, go), 0)
		TH_LOG("1: the child saw the parent's writes, 2: lost its own");
	EXPECT_EQ(verify(self->src, self->len, SEED, &ps, 1), -1);
	EXPECT_EQ(verify(fv.s, self->len, SEED, &pd, 1), -1);
}

/* The source unmapped first: the snapshot keeps its data, takes writes. */
TEST_F(snap, unmap_source_first)
{
	struct poke pk = { 7 * PAGE + OFF, 0x99 };
	char *s = cow_snapshot(self->src, self->len, NULL, 0);

	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	ASSERT_EQ(munmap(self->src, self->len), 0);
	self->src = NULL;
	EXPECT_EQ(verify(s, self->len, SEED, NULL, 0), -1);
	do_poke(s, &pk);
	EXPECT_EQ(verify(s, self->len, SEED, &pk, 1), -1);
}

/* The snapshot unmapped first: the source is not affected. */
TEST_F(snap, unmap_snapshot_first)
{
	struct poke pk = { 7 * PAGE + OFF, 0x99 };
	char *s = cow_snapshot(self->src, self->len, NULL, 0);

	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	ASSERT_EQ(munmap(s, self->len), 0);
	EXPECT_EQ(verify(self->src, self->len, SEED, NULL, 0), -1);
	do_poke(self->src, &pk);
	EXPECT_EQ(verify(self->src, self->len, SEED, &pk, 1), -1);
	if (pfns_visible(self->src))
		EXPECT_TRUE(exclusive(self->src));
}

/* The snapshot keeps madvise flags and the anon name, drops mlock. */
TEST_F(snap, vma_flags_kept_and_dropped)
{
	char flags[512];
	char *s;
	struct cow_vma v;

	ASSERT_EQ(madvise(self->src, self->len, MADV_WIPEONFORK), 0);
	if (prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, self->src, self->len,
		  "cow_snap_test"))
		TH_LOG("no anon VMA names: %s", strerror(errno));
	if (mlock(self->src, self->len))
		TH_LOG("mlock: %s", strerror(errno));
	ASSERT_EQ(vm_flags(self->src, flags, sizeof(flags)), 0);
	s = cow_snapshot(self->src, self->len, NULL, 0);
	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	ASSERT_EQ(vm_flags(s, flags, sizeof(flags)), 0);
	EXPECT_TRUE(has_vm_flag(flags, "nh")) TH_LOG("VmFlags:%s", flags);
	EXPECT_TRUE(has_vm_flag(flags, "wf")) TH_LOG("VmFlags:%s", flags);
	EXPECT_FALSE(has_vm_flag(flags, "lo")) TH_LOG("VmFlags:%s", flags);
	ASSERT_EQ(cow_vmas_in(self->src, self->src + PAGE, &v, 1), 1);
	if (strstr(v.name, "cow_snap_test")) {
		ASSERT_EQ(cow_vmas_in(s, s + PAGE, &v, 1), 1);
		EXPECT_STREQ(v.name, "[anon:cow_snap_test]");
	}
	EXPECT_EQ(verify(s, self->len, SEED, NULL, 0), -1);
}

/*
 * RSS like fork(): the snapshot's pages count in RssAnon again (the rss
 * counters are per-CPU, hence the margin); smaps of the snapshot VMA
 * counts them exactly, each page mapped twice (Pss half). The page tables
 * copied in the call (COW_SNAPSHOT_EAGER): an asynchronous snapshot maps
 * the pages of a whole PMD only when it copies that page table, later
 * (snapshot_async.c).
 */
TEST(rss_counts_snapshot_pages)
{
	const size_t nr = 1024, len = nr * PAGE;
	long before, after, delta, margin;
	unsigned int eager;
	char *src, *s;

	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	eager = cow_snapshot_eager_flag();
	margin = 32 * sysconf(_SC_NPROCESSORS_CONF);
	if (margin < 64)
		margin = 64;
	margin += 16;
	src = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(src, MAP_FAILED);
	ASSERT_EQ(madvise(src, len, MADV_NOHUGEPAGE), 0);
	cow_fill(src, len, SEED);
	before = status_kb("RssAnon");
	ASSERT_GE(before, 0);
	s = cow_snapshot(src, len, NULL, eager);
	after = status_kb("RssAnon");
	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	delta = (after - before) / (PAGE / 1024);
	EXPECT_GE(delta, (long)nr - margin) TH_LOG("RssAnon grew %ld pages",
						   delta);
	EXPECT_LE(delta, (long)nr + margin) TH_LOG("RssAnon grew %ld pages",
						   delta);
	EXPECT_EQ(cow_smaps_kb(s, "Rss"), (long)(len / 1024));
	EXPECT_EQ(cow_smaps_kb(s, "Anonymous"), (long)(len / 1024));
	EXPECT_EQ(cow_smaps_kb(s, "Pss"), (long)(len / 2048));
	EXPECT_EQ(cow_smaps_kb(src, "Pss"), (long)(len / 2048));
	EXPECT_EQ(cow_check(s, len, SEED), -1);
}

/*
 * A page of the source pinned (FOLL_PIN | FOLL_LONGTERM, writable) is
 * copied at the call: the source keeps the pinned page, exclusive, so
 * that what the pin sees stays what the source holds; the snapshot gets
 * a copy. The other pages are shared as usual.
 */
FIXTURE(snap_pin) {
	char *src;
	size_t len;
	int gup_fd;
	bool pinned;
};

FIXTURE_SETUP(snap_pin)
{
	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	self->gup_fd = open(GUP_TEST_PATH, O_RDWR);
	if (self->gup_fd < 0)
		SKIP(return, GUP_TEST_PATH ": %s (CONFIG_GUP_TEST, debugfs)",
		     strerror(errno));
	self->len = NR_PAGES * PAGE;
	self->src = mmap(NULL, self->len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->src, MAP_FAILED);
	ASSERT_EQ(madvise(self->src, self->len, MADV_NOHUGEPAGE), 0);
	fill(self->src, self->len, SEED);
}

FIXTURE_TEARDOWN(snap_pin)
{
	if (self->pinned)
		ioctl(self->gup_fd, PIN_LONGTERM_TEST_STOP);
	if (self->gup_fd >= 0)
		close(self->gup_fd);
	if (self->src && self->src != MAP_FAILED)
		munmap(self->src, self->len);
}

TEST_F(snap_pin, pinned_page_copied_eagerly)
{
	const size_t pp = 5;
	char *page = self->src + pp * PAGE;
	struct pin_longterm_test args = {
		.addr = (uintptr_t)page,
		.size = PAGE,
		.flags = PIN_LONGTERM_TEST_FLAG_USE_WRITE,
	};
	static char via_pin[PAGE];
	__u64 to = (uintptr_t)via_pin;
	uint64_t pinned_pfn;
	size_t i;
	char *s;

	if (ioctl(self->gup_fd, PIN_LONGTERM_TEST_START, &args))
		SKIP(return, "PIN_LONGTERM_TEST_START: %s", strerror(errno));
	self->pinned = true;
	if (!pfns_visible(page))
		SKIP(return, "pagemap shows no PFNs (needs CAP_SYS_ADMIN)");
	/* After the pin: a long-term pin may have migrated the page. */
	pinned_pfn = pfn(page);

	s = cow_snapshot(self->src, self->len, NULL, 0);
	ASSERT_NE(s, MAP_FAILED) TH_LOG("cow_snapshot: %s", strerror(errno));
	EXPECT_EQ(memcmp(s, self->src, self->len), 0);
	EXPECT_EQ(pfn(page), pinned_pfn)
		TH_LOG("the source lost the pinned page");
	EXPECT_TRUE(exclusive(page));
	EXPECT_NE(pfn(s + pp * PAGE), pinned_pfn)
		TH_LOG("the pinned page is shared with the snapshot");
	EXPECT_TRUE(exclusive(s + pp * PAGE));
	for (i = 0; i < NR_PAGES; i++) {
		if (i == pp)
			continue;
		EXPECT_EQ(pfn(s + i * PAGE), pfn(self->src + i * PAGE))
			TH_LOG("page %zu", i);
		EXPECT_FALSE(exclusive(self->src + i * PAGE))
			TH_LOG("page %zu", i);
	}

	/* Writes through the source reach the pinned page, not the copy. */
	memset(page, 0x3c, PAGE);
	ASSERT_EQ(ioctl(self->gup_fd, PIN_LONGTERM_TEST_READ, &to), 0);
	EXPECT_EQ(memcmp(via_pin, page, PAGE), 0)
		TH_LOG("the pin no longer sees the source");
	EXPECT_EQ(pfn(page), pinned_pfn);
	EXPECT_EQ(verify(s, self->len, SEED, NULL, 0), -1);
}

/*
 * A PMD-mapped, PMD-aligned THP filled with the pattern, in the middle of
 * twice its size mapped at *map; a reason to skip, or NULL.
 */
static const char *map_thp_source(struct __test_metadata *_metadata,
				  char **map, char **mem, size_t *pmd)
{
	*pmd = read_pmd_pagesize();
	if (!*pmd)
		return "THP not supported by this kernel";
	*mem = cow_map_thp(*pmd, map);
	ASSERT_NE(*mem, NULL);
	fill(*mem, *pmd, SEED);
	if (cow_smaps_kb(*mem, "AnonHugePages") < (long)(*pmd / 1024))
		return "no PMD-mapped THP populated (THP disabled?)";
	return NULL;
}

/*
 * What a write does on either side of a snapshot, for each backing of
 * private anonymous memory: NR_PAGES pages in small folios, or one
 * PMD-mapped THP. Every word holds the pattern of SEED.
 */
FIXTURE(backing) {
	char *map, *src;
	size_t len, map_len;
	struct cow_precopy_knobs precopy;
};

FIXTURE_VARIANT(backing) {
	bool thp;
	size_t src_page;	/* the page a test writes in the source */
	size_t snap_page;	/* the page a test writes in the snapshot */
};

FIXTURE_VARIANT_ADD(backing, anon_4k) {
	.thp = false, .src_page = 5, .snap_page = 11,
};

FIXTURE_VARIANT_ADD(backing, anon_thp) {
	.thp = true, .src_page = 17, .snap_page = 300,
};

FIXTURE_SETUP(backing)
{
	const char *skip;

	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	if (variant->thp) {
		skip = map_thp_source(_metadata, &self->map, &self->src,
				      &self->len);
		self->map_len = 2 * self->len;
		if (skip)
			SKIP(return, "%s", skip);
	} else {
		self->len = NR_PAGES * PAGE;
		self->map_len = self->len;
		self->map = mmap(NULL, self->len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(self->map, MAP_FAILED);
		self->src = self->map;
		ASSERT_EQ(madvise(self->src, self->len, MADV_NOHUGEPAGE), 0);
		fill(self->src, self->len, SEED);
	}
	/* Only the page written is copied: no pre-copy around it. */
	ASSERT_EQ(cow_precopy_set(&self->precopy, "0", "0"), 0);
}

FIXTURE_TEARDOWN(backing)
{
	cow_precopy_restore(&self->precopy);
	if (self->map && self->map != MAP_FAILED)
		munmap(self->map, self->map_len);
}

/*
 * A snapshot of the whole source, the kernel picking dst: a copy of it
 * (expect_copy()). A THP is shared at PMD level: the snapshot has the
 * same offset in a PMD (0), both VMAs show the huge page in
 * AnonHugePages, with the same PFNs, neither exclusive.
 */
static char *snapshot_of(struct __test_metadata *_metadata, char *src,
			 size_t len, bool thp)
{
	long kb = len / 1024;
	char *s = cow_snapshot(src, len, NULL, 0);

	expect_copy(_metadata, src, s, len);
	if (!thp)
		return s;
	EXPECT_EQ((uintptr_t)s % len, 0)
		TH_LOG("kernel-chosen dst %p not PMD-aligned", s);
	EXPECT_EQ(cow_smaps_kb(s, "AnonHugePages"), kb);
	EXPECT_EQ(cow_smaps_kb(src, "AnonHugePages"), kb);
	if (pfns_visible(src)) {
		EXPECT_EQ(pfn(s), pfn(src));
		EXPECT_EQ(pfn(s + len - PAGE),
			  pfn(src + len - PAGE));
		EXPECT_FALSE(exclusive(s));
		EXPECT_FALSE(exclusive(src));
	}
	return s;
}

/* dst 0: the kernel picks the address; every byte is the source's. */
TEST_F(backing, kernel_dst_same_content)
{
	char *s = snapshot_of(_metadata, self->src, self->len, variant->thp);

	EXPECT_EQ(verify(s, self->len, SEED, NULL, 0), -1);
	EXPECT_EQ(verify(self->src, self->len, SEED, NULL, 0), -1);
}

/*
 * A write to the source: the snapshot keeps the old data in every page,
 * all of the huge page for a THP; only the page written differs.
 */
TEST_F(backing, source_write_not_in_snapshot)
{
	struct poke pk = { variant->src_page * PAGE + OFF, 0x5a5a5a5a };
	char *s = snapshot_of(_metadata, self->src, self->len, variant->thp);
	size_t i;

	do_poke(self->src, &pk);
	EXPECT_EQ(verify(s, self->len, SEED, NULL, 0), -1);
	EXPECT_EQ(verify(self->src, self->len, SEED, &pk, 1), -1);
	for (i = 0; i < self->len / PAGE; i++)
		EXPECT_EQ(memcmp(s + i * PAGE, self->src + i * PAGE, PAGE) != 0,
			  i == variant->src_page) TH_LOG("page %zu", i);
}

/* A write to the snapshot: the source keeps the old data. */
TEST_F(backing, snapshot_write_not_in_source)
{
	struct poke pk = { variant->snap_page * PAGE + OFF, 0xa5a5a5a5 };
	char *s = snapshot_of(_metadata, self->src, self->len, variant->thp);
	size_t i;

	do_poke(s, &pk);
	EXPECT_EQ(verify(self->src, self->len, SEED, NULL, 0), -1);
	EXPECT_EQ(verify(s, self->len, SEED, &pk, 1), -1);
	for (i = 0; i < self->len / PAGE; i++)
		EXPECT_EQ(memcmp(s + i * PAGE, self->src + i * PAGE, PAGE) != 0,
			  i == variant->snap_page) TH_LOG("page %zu", i);
}

/*
 * snap_thp: the THP of backing's anon_thp, for what only a huge page
 * does.
 */
FIXTURE(snap_thp) {
	char *map, *mem;
	size_t pmd;
	struct cow_precopy_knobs precopy;
};

FIXTURE_SETUP(snap_thp)
{
	const char *skip;

	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	skip = map_thp_source(_metadata, &self->map, &self->mem, &self->pmd);
	if (skip)
		SKIP(return, "%s", skip);
	ASSERT_EQ(cow_precopy_set(&self->precopy, "0", "0"), 0);
}

FIXTURE_TEARDOWN(snap_thp)
{
	cow_precopy_restore(&self->precopy);
	if (self->mem)
		munmap(self->map, 2 * self->pmd);
}

/*
 * FIXED dst at another offset in 2 MiB: the source's PMD is split to PTEs
 * (the huge page itself stays, PFNs contiguous) and shared by PTEs; data
 * equal, then each side's writes stay its own.
 */
TEST_F(snap_thp, fixed_dst_other_offset)
{
	struct poke ps = { 7 * PAGE + OFF, 0x11 }, pd = { 100 * PAGE, 0x22 };
	size_t nr = self->pmd / PAGE, i;
	uint64_t pfn0 = 0;
	char *area, *dst, *s;
	bool pfns = pfns_visible(self->mem);

	area = free_area(3 * self->pmd);
	ASSERT_NE(area, NULL);
	dst = (char *)(((uintptr_t)area + self->pmd - 1) & ~(self->pmd - 1)) +
	      16 * PAGE;
	if (pfns)
		pfn0 = pfn(self->mem);
	s = cow_snapshot(self->mem, self->pmd, dst, COW_SNAPSHOT_FIXED);
	ASSERT_EQ(s, dst) TH_LOG("cow_snapshot: %s", strerror(errno));
	EXPECT_EQ(memcmp(s, self->mem, self->pmd), 0);
	EXPECT_EQ(cow_smaps_kb(self->mem, "AnonHugePages"), 0)
		TH_LOG("the source's PMD was not split");
	if (pfns) {
		for (i = 0; i < nr; i += 37) {
			EXPECT_EQ(pfn(self->mem + i * PAGE), pfn0 + i)
				TH_LOG("page %zu left the huge page", i);
			EXPECT_EQ(pfn(s + i * PAGE), pfn0 + i)
				TH_LOG("page %zu not shared", i);
		}
	}
	do_poke(self->mem, &ps);
	do_poke(s, &pd);
	EXPECT_EQ(verify(self->mem, self->pmd, SEED, &ps, 1), -1);
	EXPECT_EQ(verify(s, self->pmd, SEED, &pd, 1), -1);
}

/*
 * Snapshots of one instant while threads write.
 *
 * The source holds a version and NR_REC records (sequence number, payload,
 * checksum). Writers update a random record and the version under a mutex.
 * A snapshot thread takes the mutex, snapshots, notes the version and
 * lets go: the writers go on at once, on other CPUs, with TLB entries that
 * must no longer let them write to the shared pages. The snapshot must
 * then hold valid records whose sequence numbers add up to its version,
 * which is the one noted. Another thread writes to, and zaps, pages of
 * the same mapping without the lock to make faults race with the call.
 */
#define NR_WRITERS	4
#define NR_REC		1024
#define NR_SNAPS	50
#define STRESS_PAGES	16
#define RACE_SECONDS	20

struct rec {
	uint64_t seq;
	uint64_t payload[6];
	uint64_t sum;
};

struct image {
	uint64_t version;
	uint64_t pad[7];
	struct rec recs[NR_REC];
};

#define IMAGE_LEN	((sizeof(struct image) + PAGE - 1) & ~(PAGE - 1))

struct race {
	pthread_mutex_t lock;
	struct image *img;
	char *stress;
	bool stop;	/* both flags: __atomic_* accesses only */
	/* The snapshot thread waits for the lock: writers stand back. */
	bool want;
	unsigned long long writes;
	int snaps, bad;
	char why[256];
};

static uint64_t rec_sum(size_t idx, const struct rec *r)
{
	uint64_t h = idx * 0x9e3779b97f4a7c15ULL ^ r->seq;
	int i;

	for (i = 0; i < 6; i++)
		h = (h ^ r->payload[i]) * 0x100000001b3ULL;
	return h;
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

struct writer_arg {
	struct race *r;
	uint64_t rnd;
};

static void *race_writer(void *p)
{
	struct writer_arg *w = p;
	struct race *r = w->r;
	unsigned long long n = 0;

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		size_t idx = xorshift(&w->rnd) % NR_REC;
		struct rec *rec;
		int i;

		if (__atomic_load_n(&r->want, __ATOMIC_RELAXED)) {
			sched_yield();
			continue;
		}
		pthread_mutex_lock(&r->lock);
		rec = &r->img->recs[idx];
		rec->seq++;
		for (i = 0; i < 6; i++)
			rec->payload[i] = xorshift(&w->rnd);
		rec->sum = rec_sum(idx, rec);
		r->img->version++;
		pthread_mutex_unlock(&r->lock);
		n++;
	}
	__atomic_add_fetch(&r->writes, n, __ATOMIC_RELAXED);
	return NULL;
}

/* Writes (and zaps) in the same mapping, outside the lock, unchecked. */
static void *race_stress(void *p)
{
	struct race *r = p;
	uint64_t rnd = 88172645463325252ULL;

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
		size_t pg = xorshift(&rnd) % STRESS_PAGES;

		r->stress[pg * PAGE + xorshift(&rnd) % PAGE] = 1;
		if (!(xorshift(&rnd) % 64))
			madvise(r->stress + pg * PAGE, PAGE, MADV_DONTNEED);
	}
	return NULL;
}

/* 0 when @img holds valid records that add up to @version. */
static int image_ok(const struct image *img, uint64_t version, char *why,
		    size_t len)
{
	uint64_t total = 0;
	size_t i;

	if (img->version != version) {
		snprintf(why, len, "version %llu, %llu when taken",
			 (unsigned long long)img->version,
			 (unsigned long long)version);
		return 1;
	}
	for (i = 0; i < NR_REC; i++) {
		if (img->recs[i].sum != rec_sum(i, &img->recs[i])) {
			snprintf(why, len, "record %zu torn (seq %llu)", i,
				 (unsigned long long)img->recs[i].seq);
			return 1;
		}
		total += img->recs[i].seq;
	}
	if (total != version) {
		snprintf(why, len, "records add up to %llu, version %llu",
			 (unsigned long long)total,
			 (unsigned long long)version);
		return 1;
	}
	return 0;
}

static void *race_snapshotter(void *p)
{
	struct race *r = p;
	size_t len = IMAGE_LEN + STRESS_PAGES * PAGE;
	time_t end = time(NULL) + RACE_SECONDS;
	uint64_t version;
	char *s;

	while (r->snaps < NR_SNAPS && time(NULL) < end) {
		__atomic_store_n(&r->want, true, __ATOMIC_RELAXED);
		pthread_mutex_lock(&r->lock);
		__atomic_store_n(&r->want, false, __ATOMIC_RELAXED);
		s = cow_snapshot(r->img, len, NULL, 0);
		version = r->img->version;
		pthread_mutex_unlock(&r->lock);
		if (s == MAP_FAILED) {
			snprintf(r->why, sizeof(r->why), "cow_snapshot: %s",
				 strerror(errno));
			r->bad++;
			break;
		}
		/* Let the writers run on before looking. */
		usleep(1000);
		if (image_ok((struct image *)s, version, r->why,
			     sizeof(r->why)))
			r->bad++;
		munmap(s, len);
		r->snaps++;
		if (r->bad)
			break;
	}
	__atomic_store_n(&r->stop, true, __ATOMIC_RELAXED);
	return NULL;
}

FIXTURE(snap_race) {
	char *map;
	size_t len;
};

FIXTURE_SETUP(snap_race)
{
	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	self->len = IMAGE_LEN + STRESS_PAGES * PAGE;
	self->map = mmap(NULL, self->len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->map, MAP_FAILED);
}

FIXTURE_TEARDOWN(snap_race)
{
	if (self->map && self->map != MAP_FAILED)
		munmap(self->map, self->len);
}

TEST_F_TIMEOUT(snap_race, snapshots_are_one_instant, 120)
{
	static struct race r;
	struct writer_arg w[NR_WRITERS];
	pthread_t wt[NR_WRITERS], st, sn;
	char why[256];
	size_t i;

	r.img = (struct image *)self->map;
	r.stress = self->map + IMAGE_LEN;
	for (i = 0; i < NR_REC; i++)
		r.img->recs[i].sum = rec_sum(i, &r.img->recs[i]);
	ASSERT_EQ(pthread_mutex_init(&r.lock, NULL), 0);
	for (i = 0; i < NR_WRITERS; i++) {
		w[i].r = &r;
		w[i].rnd = 0x2545f4914f6cdd1dULL * (i + 1);
		ASSERT_EQ(pthread_create(&wt[i], NULL, race_writer, &w[i]), 0);
	}
	ASSERT_EQ(pthread_create(&st, NULL, race_stress, &r), 0);
	ASSERT_EQ(pthread_create(&sn, NULL, race_snapshotter, &r), 0);
	pthread_join(sn, NULL);
	for (i = 0; i < NR_WRITERS; i++)
		pthread_join(wt[i], NULL);
	pthread_join(st, NULL);

	ksft_print_msg("%d snapshots, %llu writes\n", r.snaps, r.writes);
	EXPECT_EQ(r.bad, 0) TH_LOG("snapshot %d: %s", r.snaps, r.why);
	EXPECT_GT(r.snaps, 0);
	/* The writers did run between the snapshots. */
	EXPECT_GT(r.writes, (unsigned long long)r.snaps);
	EXPECT_EQ(image_ok(r.img, r.img->version, why, sizeof(why)), 0)
		TH_LOG("source: %s", why);
}

TEST_HARNESS_MAIN
