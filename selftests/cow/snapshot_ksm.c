// SPDX-License-Identifier: GPL-2.0-only
/*
 * cow_snapshot() and KSM.
 *
 * KSM finds the mappings of one of its pages by the (mm, address) of their
 * rmap_items, and for fork() children by the same address in another mm.
 * A snapshot maps memory at another address of the same mm, so a KSM page
 * mapped at the snapshot's address without an rmap_item of its own would
 * be invisible to reclaim, migration and compaction. The man page says
 * no KSM page comes to be shared by the two ranges. These tests check,
 * with the PFNs of /proc/self/pagemap, every way one could:
 *
 *  - present:      the source maps a KSM page at the call: it is copied;
 *  - swapped:      the source holds a swap entry whose swap-cache folio is
 *                  still the KSM page, and the snapshot faults it in;
 *  - merged later: source and snapshot share ordinary pages, then ksmd
 *                  runs: it does not merge them in place;
 *  - remerged:     the snapshot's copies of KSM pages, mergeable like the
 *                  source, merged again by ksmd (each with an rmap_item).
 *
 * Each ends by migrating the page (MADV_SOFT_OFFLINE): migration fails
 * while the rmap walk misses a mapping, and must move every one of them.
 * ksmd is driven through /sys/kernel/mm/ksm and stopped again; every knob
 * is restored.
 *
 * KPF_KSM of /proc/kpageflags is not used: 6.12 reports it for every
 * anonymous page. Merging shows as equal PFNs of identical pages and in
 * pages_shared / pages_sharing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <linux/mman.h>

#include "kselftest_harness.h"
#include "cow_util.h"

#define PAGE		COW_SUBPAGE
#define NR_PAGES	8
#define SEED		7

/* How long ksmd may take to merge (it runs under TCG here). */
#define KSM_WAIT_S	120

static const char * const ksm_knobs[] = {
	"run", "pages_to_scan", "sleep_millisecs", "smart_scan",
	"use_zero_pages",
};

/* The page every source page holds: one pattern, the same for all. */
static char ref_page[PAGE];

static void make_ref_page(uint64_t seed)
{
	uint64_t *w = (uint64_t *)ref_page;
	size_t i;

	for (i = 0; i < PAGE / 8; i++)
		w[i] = (seed * 0x9e3779b97f4a7c15ULL) ^ (i * 0xbf58476d1ce4e5b9ULL);
}

static uint64_t pfn_of(const void *addr)
{
	return cow_pfn(addr);
}

/* The first page of [p, p + NR_PAGES * PAGE) not holding ref_page, or -1. */
static long bad_page(const char *p)
{
	size_t i;

	for (i = 0; i < NR_PAGES; i++)
		if (memcmp(p + i * PAGE, ref_page, PAGE))
			return i;
	return -1;
}

/* Present pages of [p, p + NR_PAGES * PAGE) all with PFN @pfn. */
static bool all_at_pfn(const char *p, uint64_t pfn)
{
	size_t i;

	for (i = 0; i < NR_PAGES; i++) {
		uint64_t e = cow_pagemap(p + i * PAGE);

		if (!(e & PM_PRESENT) || PAGEMAP_PFN(e) != pfn)
			return false;
	}
	return true;
}

/* A swap device is on: /proc/swaps has more than its header. */
static bool swap_on(void)
{
	char line[256];
	int n = 0;
	FILE *f = fopen("/proc/swaps", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n > 1;
}

static bool vma_mergeable(const void *addr)
{
	unsigned long start, end, a = (unsigned long)addr;
	bool inside = false, mg = false;
	char line[512];
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			inside = a >= start && a < end;
			continue;
		}
		if (inside && !strncmp(line, "VmFlags:", 8)) {
			mg = !!strstr(line, " mg");
			break;
		}
	}
	fclose(f);
	return mg;
}

/*
 * NR_PAGES identical pages of private anonymous memory, MADV_MERGEABLE,
 * in small folios. ksmd stopped.
 */
FIXTURE(ksm) {
	char *src, *snap;
	size_t len;
	char knob[ARRAY_SIZE(ksm_knobs)][32];
	int pipe[2];
};

FIXTURE_SETUP(ksm)
{
	size_t i;

	self->pipe[0] = -1;
	self->pipe[1] = -1;
	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	if (access(COW_KSM_DIR "run", W_OK))
		SKIP(return, "KSM not in this kernel (or not root)");
	if (!swap_on())
		SKIP(return, "no swap device for MADV_PAGEOUT");
	make_ref_page(SEED);

	for (i = 0; i < ARRAY_SIZE(ksm_knobs); i++)
		if (cow_read_line(cow_ksm_path(ksm_knobs[i]), self->knob[i],
				  sizeof(self->knob[i])))
			self->knob[i][0] = '\0';
	ASSERT_EQ(cow_ksm_set("run", "0"), 0);
	ASSERT_EQ(cow_ksm_set("pages_to_scan", "10000"), 0);
	ASSERT_EQ(cow_ksm_set("sleep_millisecs", "0"), 0);
	if (self->knob[3][0])
		ASSERT_EQ(cow_ksm_set("smart_scan", "0"), 0);
	if (self->knob[4][0])
		ASSERT_EQ(cow_ksm_set("use_zero_pages", "0"), 0);

	self->len = NR_PAGES * PAGE;
	self->src = mmap(NULL, self->len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->src, MAP_FAILED);
	ASSERT_EQ(madvise(self->src, self->len, MADV_NOHUGEPAGE), 0);
	for (i = 0; i < NR_PAGES; i++)
		memcpy(self->src + i * PAGE, ref_page, PAGE);
	if (!pfn_of(self->src))
		SKIP(return, "pagemap shows no PFNs (needs CAP_SYS_ADMIN)");
	ASSERT_EQ(madvise(self->src, self->len, MADV_MERGEABLE), 0)
		TH_LOG("MADV_MERGEABLE: %s", strerror(errno));
}

FIXTURE_TEARDOWN(ksm)
{
	int i;

	if (self->pipe[0] >= 0) {
		close(self->pipe[1]);
		close(self->pipe[0]);
	}
	if (self->snap && self->snap != MAP_FAILED)
		munmap(self->snap, self->len);
	if (self->src && self->src != MAP_FAILED)
		munmap(self->src, self->len);
	/* ksmd stopped first, then the rest as it was. */
	cow_ksm_set("run", "0");
	for (i = ARRAY_SIZE(ksm_knobs) - 1; i >= 0; i--)
		if (self->knob[i][0])
			cow_ksm_set(ksm_knobs[i], self->knob[i]);
}

typedef bool (*ksm_pred)(struct _test_data_ksm *self);

/*
 * Run ksmd until @done has held for two more full scans, then stop it.
 * Those scans also settle the LRU: each starts with lru_add_drain_all(),
 * so no folio that merging touched is left in a per-CPU batch, off the
 * LRU lists where reclaim could not see it. False when @done did not
 * hold within KSM_WAIT_S.
 */
static bool ksm_run_until(struct _test_data_ksm *self, ksm_pred done)
{
	unsigned long scans = 0;
	time_t end = time(NULL) + KSM_WAIT_S;
	bool ok = false, held = false;

	if (cow_ksm_set("run", "1"))
		return false;
	while (time(NULL) < end) {
		if (!done(self)) {
			held = false;
		} else if (!held) {
			held = true;
			scans = cow_ksm_get("full_scans");
		} else if (cow_ksm_get("full_scans") >= scans + 2) {
			ok = true;
			break;
		}
		usleep(10000);
	}
	/* Once this returns ksmd is between batches and stays there. */
	cow_ksm_set("run", "0");
	return ok;
}

/* Run ksmd for @n more full scans, then stop it; false on a timeout. */
static bool ksm_run_scans(unsigned long n)
{
	unsigned long want = cow_ksm_get("full_scans") + n;
	time_t end = time(NULL) + KSM_WAIT_S;
	bool ok = false;

	if (cow_ksm_set("run", "1"))
		return false;
	while (time(NULL) < end && !ok) {
		ok = cow_ksm_get("full_scans") >= want;
		usleep(10000);
	}
	cow_ksm_set("run", "0");
	return ok;
}

static bool src_merged(struct _test_data_ksm *self)
{
	return all_at_pfn(self->src, pfn_of(self->src));
}

/* Source and snapshot all on one page. */
static bool both_merged(struct _test_data_ksm *self)
{
	uint64_t p = pfn_of(self->src);

	return all_at_pfn(self->src, p) && all_at_pfn(self->snap, p);
}

/* The PFN @addr maps, 0 when it is not present. */
static uint64_t present_pfn(const void *addr)
{
	uint64_t e = cow_pagemap(addr);

	return e & PM_PRESENT ? PAGEMAP_PFN(e) : 0;
}

/*
 * Migrate the page that the snapshot's first page maps, with
 * MADV_SOFT_OFFLINE (which then takes the old page out of use). Migration
 * replaces every mapping the rmap walk finds and fails while one stays
 * mapped: it succeeds only if KSM's rmap walk finds the mappings at the
 * snapshot's addresses too. Afterwards every address that mapped the old
 * page maps the new one, and the data is intact.
 */
static void expect_migrated_alike(struct __test_metadata *_metadata,
				  struct _test_data_ksm *self)
{
	char *side[2] = { self->src, self->snap };
	uint64_t old = present_pfn(self->snap), new;
	bool was[2][NR_PAGES];
	int s, i, n = 0;

	ASSERT_NE(old, 0) TH_LOG("the snapshot's first page is not present");
	for (s = 0; s < 2; s++)
		for (i = 0; i < NR_PAGES; i++) {
			was[s][i] = present_pfn(side[s] + i * PAGE) == old;
			n += was[s][i];
		}
	if (madvise(self->snap, PAGE, MADV_SOFT_OFFLINE)) {
		if (errno == EINVAL)
			SKIP(return, "no MADV_SOFT_OFFLINE (CONFIG_MEMORY_FAILURE)");
		ASSERT_EQ(errno, 0)
			/* A mapping the rmap walk missed keeps the page. */
			TH_LOG("migrating the page %d addresses map: %s", n,
			       strerror(errno));
	}
	new = present_pfn(self->snap);
	EXPECT_NE(new, old) TH_LOG("the page did not move");
	for (s = 0; s < 2; s++)
		for (i = 0; i < NR_PAGES; i++)
			if (was[s][i])
				EXPECT_EQ(present_pfn(side[s] + i * PAGE), new)
					TH_LOG("%s page %d did not move with the others",
					       s ? "snapshot" : "source", i);
	TH_LOG("%d mappings of one page migrated together", n);
	for (s = 0; s < 2; s++)
		for (i = 0; i < NR_PAGES; i++)
			if (was[s][i])
				EXPECT_EQ(memcmp(side[s] + i * PAGE, ref_page,
						 PAGE), 0)
					TH_LOG("%s page %d lost its data",
					       s ? "snapshot" : "source", i);
}

/*
 * present: the source maps one KSM page at the call (ksmd stopped). The
 * snapshot reads the data from pages of its own, copied at the call; the
 * source keeps the KSM page.
 */
TEST_F_TIMEOUT(ksm, present_ksm_page_copied, 300)
{
	uint64_t kpfn, e;
	int i;

	ASSERT_TRUE(ksm_run_until(self, src_merged))
		TH_LOG("ksmd did not merge the source in %ds", KSM_WAIT_S);
	kpfn = pfn_of(self->src);
	ASSERT_GE(cow_ksm_get("pages_sharing"), NR_PAGES - 1);

	self->snap = (char *)cow_snapshot_sys((unsigned long)self->src,
					      self->len, 0, 0);
	ASSERT_NE(self->snap, MAP_FAILED) TH_LOG("cow_snapshot: %s",
						 strerror(errno));
	for (i = 0; i < NR_PAGES; i++) {
		e = cow_pagemap(self->snap + i * PAGE);
		EXPECT_TRUE(e & PM_PRESENT) TH_LOG("page %d not copied at the call", i);
		EXPECT_NE(PAGEMAP_PFN(e), kpfn)
			TH_LOG("page %d: the snapshot maps the KSM page %#llx",
			       i, (unsigned long long)kpfn);
	}
	EXPECT_EQ(bad_page(self->snap), -1);
	for (i = 0; i < NR_PAGES; i++)
		EXPECT_NE(pfn_of(self->snap + i * PAGE), kpfn) TH_LOG("page %d", i);
	EXPECT_TRUE(all_at_pfn(self->src, kpfn));
	EXPECT_EQ(bad_page(self->src), -1);
}

/*
 * swapped: the source's PTE is a swap entry while the swap-cache folio is
 * still the KSM page. The KSM page is left mapped once (the other source
 * pages zapped), so MADV_PAGEOUT takes it, and a pipe holds a reference to
 * it so that reclaim cannot free it after writing it out. The snapshot
 * copies the swap entry, and its first access maps the KSM page from the
 * swap cache at the snapshot's address, where KSM has no rmap_item: KSM's
 * rmap walk must find it there all the same.
 */
TEST_F_TIMEOUT(ksm, swapped_ksm_page_found_at_snapshot, 300)
{
	struct iovec iov = { .iov_base = NULL, .iov_len = PAGE };
	uint64_t kpfn, e;

	ASSERT_TRUE(ksm_run_until(self, src_merged))
		TH_LOG("ksmd did not merge the source in %ds", KSM_WAIT_S);
	kpfn = pfn_of(self->src);
	ASSERT_EQ(madvise(self->src + PAGE, self->len - PAGE, MADV_DONTNEED), 0);

	/* A reference on the KSM page that outlives its mapping. */
	ASSERT_EQ(pipe(self->pipe), 0);
	iov.iov_base = self->src;
	ASSERT_EQ(vmsplice(self->pipe[1], &iov, 1, 0), PAGE)
		TH_LOG("vmsplice: %s", strerror(errno));
	ASSERT_EQ(madvise(self->src, PAGE, MADV_PAGEOUT), 0);
	e = cow_pagemap(self->src);
	if (!(e & PM_SWAP))
		SKIP(return, "MADV_PAGEOUT left the KSM page %s",
		     e & PM_PRESENT ? "mapped" : "unmapped, not swapped");

	self->snap = (char *)cow_snapshot_sys((unsigned long)self->src,
					      self->len, 0, 0);
	ASSERT_NE(self->snap, MAP_FAILED) TH_LOG("cow_snapshot: %s",
						 strerror(errno));
	ASSERT_TRUE(cow_pagemap(self->snap) & PM_SWAP)
		TH_LOG("the snapshot does not share the swap entry");

	/* Fault the snapshot in (a read). */
	EXPECT_EQ(memcmp(self->snap, ref_page, PAGE), 0);
	e = cow_pagemap(self->snap);
	ASSERT_TRUE(e & PM_PRESENT);
	TH_LOG("the snapshot maps %s", PAGEMAP_PFN(e) == kpfn ?
	       "the KSM page from the swap cache" : "a copy");
	/* Let go of the pipe's reference, which would fail migration. */
	close(self->pipe[1]);
	close(self->pipe[0]);
	self->pipe[0] = -1;
	self->pipe[1] = -1;
	expect_migrated_alike(_metadata, self);
}

/*
 * merged later: the snapshot shares ordinary identical pages with the
 * source, then ksmd runs three full scans. It must not turn a page mapped
 * at both addresses into a KSM page in place (rmap_walk_ksm() would not
 * find the second address): every page stays shared by source and
 * snapshot alone, and migration moves both mappings of it with its data.
 */
TEST_F_TIMEOUT(ksm, merged_after_snapshot_migrated_alike, 300)
{
	unsigned long sharing0;
	int i;

	sharing0 = cow_ksm_get("pages_sharing");
	self->snap = (char *)cow_snapshot_sys((unsigned long)self->src,
					      self->len, 0, 0);
	ASSERT_NE(self->snap, MAP_FAILED) TH_LOG("cow_snapshot: %s",
						 strerror(errno));
	for (i = 0; i < NR_PAGES; i++)
		ASSERT_EQ(pfn_of(self->snap + i * PAGE),
			  pfn_of(self->src + i * PAGE))
			TH_LOG("page %d not shared by the snapshot", i);
	ASSERT_TRUE(vma_mergeable(self->snap))
		TH_LOG("the snapshot VMA lost VM_MERGEABLE");

	ASSERT_TRUE(ksm_run_scans(3)) TH_LOG("ksmd made no 3 full scans in %ds",
					     KSM_WAIT_S);
	for (i = 0; i < NR_PAGES; i++) {
		EXPECT_EQ(pfn_of(self->snap + i * PAGE),
			  pfn_of(self->src + i * PAGE));
		if (i)
			EXPECT_NE(pfn_of(self->src + i * PAGE),
				  pfn_of(self->src))
				TH_LOG("page %d merged with page 0", i);
	}
	/* Stale KSM pages of earlier tests may go; none of ours came. */
	EXPECT_LE(cow_ksm_get("pages_sharing"), sharing0);
	EXPECT_EQ(bad_page(self->src), -1);
	EXPECT_EQ(bad_page(self->snap), -1);
	expect_migrated_alike(_metadata, self);
}

/*
 * remerged: the snapshot of a merged source gets copies, in a VMA that
 * is VM_MERGEABLE like the source's. ksmd merges them back into the KSM
 * page; migration must then move every mapping alike.
 */
TEST_F_TIMEOUT(ksm, snapshot_copies_remerged_migrated_alike, 300)
{
	uint64_t kpfn;
	int i;

	ASSERT_TRUE(ksm_run_until(self, src_merged))
		TH_LOG("ksmd did not merge the source in %ds", KSM_WAIT_S);
	kpfn = pfn_of(self->src);
	self->snap = (char *)cow_snapshot_sys((unsigned long)self->src,
					      self->len, 0, 0);
	ASSERT_NE(self->snap, MAP_FAILED) TH_LOG("cow_snapshot: %s",
						 strerror(errno));
	EXPECT_TRUE(vma_mergeable(self->snap))
		TH_LOG("the snapshot VMA lost VM_MERGEABLE");
	for (i = 0; i < NR_PAGES; i++)
		EXPECT_NE(pfn_of(self->snap + i * PAGE), kpfn) TH_LOG("page %d", i);

	ASSERT_TRUE(ksm_run_until(self, both_merged))
		TH_LOG("ksmd did not merge the snapshot's copies in %ds",
		       KSM_WAIT_S);
	EXPECT_EQ(pfn_of(self->src), kpfn) TH_LOG("the KSM page changed");
	EXPECT_GE(cow_ksm_get("pages_sharing"), 2 * NR_PAGES - 1);
	EXPECT_EQ(bad_page(self->src), -1);
	EXPECT_EQ(bad_page(self->snap), -1);
	expect_migrated_alike(_metadata, self);
}

TEST_HARNESS_MAIN
