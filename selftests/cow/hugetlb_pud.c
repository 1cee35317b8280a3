// SPDX-License-Identifier: GPL-2.0-only
/*
 * 1 GiB hugetlb pages are mapped by PUD entries, which no other process
 * shares: only PMD tables are shared (huge_pmd_share()), and only they
 * keep a share count (ptdesc->pt_share_count). The count of a PUD table
 * overlays a field nobody initialises, so asking hugetlb_pmd_shared()
 * about a 1 GiB entry answers with whatever the table page's previous
 * user left there. These tests ask through every user of the helper:
 *
 *  - pagemap:  PM_MMAP_EXCLUSIVE of a page mapped once;
 *  - smaps:    Private_Hugetlb, not Shared_Hugetlb, of a page mapped once;
 *  - mbind:    MPOL_MF_MOVE migrates a page mapped once (two NUMA nodes).
 *
 * fork() of a private 1 GiB mapping is tested in fork_cow.
 *
 * Each test maps one 1 GiB page of a hugetlb memfd at NR_REGIONS addresses
 * 512 GiB apart, so that each mapping has a PUD table of its own, and
 * checks them one at a time: the page is faulted in at one address and
 * zapped (MADV_DONTNEED, which keeps the table) before the next. Whether
 * a table page holds a stale count is chance: NR_REGIONS of them make a
 * wrong answer likely to show, not certain (on 6.12.117 under QEMU, one
 * boot in seven showed none). The layout assumes 4 KiB pages and 4-level
 * page tables (a PUD table spans 512 GiB) and a 47-bit address space.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/memfd.h>
#include <linux/mempolicy.h>

#include "kselftest_harness.h"
#include "cow_util.h"

#define GIB		(1024UL * 1024 * 1024)
#define PUD_TABLE_SPAN	(512 * GIB)
/* Far above anything mmap() hands out by itself, 512 GiB aligned. */
#define REGION_BASE	(16UL << 40)
#define NR_REGIONS	128
/* mbind copies the whole page each time: fewer rounds. */
#define NR_MBIND	8
#define NODE_HP_DIR	"/sys/devices/system/node/node%d/hugepages/hugepages-1048576kB/"

FIXTURE(pud) {
	int fd;
	char *addr[NR_REGIONS];
	/* Node pools grown by mbind_move, restored by the teardown. */
	long nr_node[2];
};

FIXTURE_SETUP(pud)
{
	size_t i;

	self->fd = -1;
	self->nr_node[0] = -1;
	self->nr_node[1] = -1;
	for (i = 0; i < NR_REGIONS; i++)
		self->addr[i] = MAP_FAILED;
	if (cow_hugetlb_free(1024 * 1024) < 1)
		SKIP(return, "no free 1 GiB hugetlb page");
	self->fd = memfd_create("hugetlb_pud", MFD_HUGETLB | MFD_HUGE_1GB);
	ASSERT_GE(self->fd, 0);
	ASSERT_EQ(fallocate(self->fd, 0, 0, GIB), 0);

	for (i = 0; i < NR_REGIONS; i++) {
		void *want = (void *)(REGION_BASE + i * PUD_TABLE_SPAN);

		self->addr[i] = mmap(want, GIB, PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_FIXED_NOREPLACE,
				     self->fd, 0);
		if (self->addr[i] == MAP_FAILED && !i)
			SKIP(return, "no room for %d GiB-mappings at %#lx: %s",
			     NR_REGIONS, REGION_BASE, strerror(errno));
		ASSERT_EQ(self->addr[i], want);
	}
	memset(self->addr[0], 0x5a, 4096);
	ASSERT_EQ(madvise(self->addr[0], GIB, MADV_DONTNEED), 0);
}

static void node_pool_path(char *path, size_t size, int node, const char *f)
{
	snprintf(path, size, NODE_HP_DIR "%s", node, f);
}

static unsigned long node_pool(int node, const char *f)
{
	char path[128];

	node_pool_path(path, sizeof(path), node, f);
	return cow_read_ulong(path);
}

static int node_pool_set(int node, long nr)
{
	char path[128], val[32];

	node_pool_path(path, sizeof(path), node, "nr_hugepages");
	snprintf(val, sizeof(val), "%ld", nr);
	return cow_write_file(path, val);
}

FIXTURE_TEARDOWN(pud)
{
	size_t i;

	for (i = 0; i < NR_REGIONS; i++)
		if (self->addr[i] != MAP_FAILED)
			munmap(self->addr[i], GIB);
	if (self->fd >= 0)
		close(self->fd);
	for (i = 0; i < 2; i++)
		if (self->nr_node[i] >= 0)
			node_pool_set(i, self->nr_node[i]);
}

/* Map the page at @p (a read fault); its pagemap entry, 0 on bad data. */
static uint64_t fault_in(char *p)
{
	if (p[0] != 0x5a)
		return 0;
	return cow_pagemap(p);
}

TEST_F(pud, pagemap_exclusive)
{
	int i, wrong = 0;

	for (i = 0; i < NR_REGIONS; i++) {
		uint64_t e = fault_in(self->addr[i]);

		ASSERT_TRUE(e & PM_PRESENT) {
			TH_LOG("region %d: not present or bad data", i);
		}
		if (!(e & PM_MMAP_EXCLUSIVE))
			wrong++;
		ASSERT_EQ(madvise(self->addr[i], GIB, MADV_DONTNEED), 0);
	}
	EXPECT_EQ(wrong, 0) {
		TH_LOG("%d of %d mappings of a page mapped once not reported exclusive",
		       wrong, NR_REGIONS);
	}
}

TEST_F(pud, smaps_private)
{
	int i, wrong = 0;

	for (i = 0; i < NR_REGIONS; i++) {
		ASSERT_TRUE(fault_in(self->addr[i]) & PM_PRESENT);
		if (cow_smaps_kb(self->addr[i], "Private_Hugetlb") != 1024 * 1024 ||
		    cow_smaps_kb(self->addr[i], "Shared_Hugetlb") != 0)
			wrong++;
		ASSERT_EQ(madvise(self->addr[i], GIB, MADV_DONTNEED), 0);
	}
	EXPECT_EQ(wrong, 0) {
		TH_LOG("%d of %d mappings of a page mapped once not counted private",
		       wrong, NR_REGIONS);
	}
}

static int node_of(void *p)
{
	int node = -1;

	if (syscall(__NR_get_mempolicy, &node, NULL, 0, p,
		    MPOL_F_NODE | MPOL_F_ADDR))
		return -1;
	return node;
}

TEST_F(pud, mbind_move)
{
	int i, wrong = 0;

	if (access("/sys/devices/system/node/node1", F_OK))
		SKIP(return, "one NUMA node");
	/* A free page on each node, for the page to move to and back. */
	for (i = 0; i < 2; i++) {
		if (node_pool(i, "free_hugepages"))
			continue;
		self->nr_node[i] = node_pool(i, "nr_hugepages");
		if (node_pool_set(i, self->nr_node[i] + 1) ||
		    !node_pool(i, "free_hugepages"))
			SKIP(return, "no free 1 GiB page on node %d", i);
	}
	for (i = 0; i < NR_MBIND; i++) {
		unsigned long mask;
		int from, to;

		ASSERT_TRUE(fault_in(self->addr[i]) & PM_PRESENT);
		from = node_of(self->addr[i]);
		ASSERT_GE(from, 0);
		to = !from;
		mask = 1UL << to;
		ASSERT_EQ(syscall(__NR_mbind, self->addr[i], GIB, MPOL_BIND,
				  &mask, 8 * sizeof(mask),
				  MPOL_MF_MOVE | MPOL_MF_STRICT), 0) {
			TH_LOG("region %d: mbind: %s", i, strerror(errno));
		}
		if (node_of(self->addr[i]) != to)
			wrong++;
		ASSERT_EQ(self->addr[i][0], 0x5a);
		ASSERT_EQ(madvise(self->addr[i], GIB, MADV_DONTNEED), 0);
	}
	EXPECT_EQ(wrong, 0) {
		TH_LOG("%d of %d pages mapped once not migrated", wrong, NR_MBIND);
	}
}

TEST_HARNESS_MAIN
