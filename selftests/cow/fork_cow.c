// SPDX-License-Identifier: GPL-2.0-only
/*
 * COW after fork(): once either side writes, each keeps its own view.
 *
 * The baseline the COW changes must never break, for every backing a COW
 * fault can hit: 4 KiB anonymous pages, a PMD-mapped THP, and 2 MiB and
 * 1 GiB hugetlb pages. Needs no kernel change; a backing the machine cannot
 * provide is skipped with the reason.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <linux/mman.h>

#include "kselftest_harness.h"
#include "cow_util.h"

#define SEED_OLD	1
#define SEED_NEW	2
#define NR_4K_PAGES	64
/* A 1 GiB clear plus a 1 GiB COW copy take ~6 s under QEMU TCG. */
#define TEST_TIMEOUT	120

enum backing { ANON_4K, ANON_THP, HUGETLB_2M, HUGETLB_1G };

FIXTURE(cow_fork) {
	char *map;	/* what mmap() returned */
	size_t map_len;
	char *mem;	/* the region under test */
	size_t size;
};

FIXTURE_VARIANT(cow_fork) {
	enum backing backing;
};

FIXTURE_VARIANT_ADD(cow_fork, anon_4k) { .backing = ANON_4K };
FIXTURE_VARIANT_ADD(cow_fork, anon_thp) { .backing = ANON_THP };
FIXTURE_VARIANT_ADD(cow_fork, hugetlb_2m) { .backing = HUGETLB_2M };
FIXTURE_VARIANT_ADD(cow_fork, hugetlb_1g) { .backing = HUGETLB_1G };

FIXTURE_SETUP(cow_fork)
{
	int prot = PROT_READ | PROT_WRITE;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	unsigned long huge_kb = 0;
	size_t pmd;

	switch (variant->backing) {
	case ANON_4K:
		self->size = NR_4K_PAGES * getpagesize();
		self->map_len = self->size;
		break;
	case ANON_THP:
		pmd = read_pmd_pagesize();
		if (!pmd)
			SKIP(return, "THP not supported by this kernel");
		/* Twice the size, so that a PMD-aligned PMD fits inside. */
		self->size = pmd;
		self->map_len = 2 * pmd;
		break;
	case HUGETLB_2M:
		huge_kb = 2048;
		flags |= MAP_HUGETLB | MAP_HUGE_2MB;
		break;
	case HUGETLB_1G:
		huge_kb = 1024 * 1024;
		flags |= MAP_HUGETLB | MAP_HUGE_1GB;
		break;
	}
	if (huge_kb) {
		if (!cow_hugetlb_size_supported(huge_kb))
			SKIP(return, "no %lu KiB hugetlb pages in this kernel",
			     huge_kb);
		/* The COW copy needs a second free page. */
		if (cow_hugetlb_free(huge_kb) < 2)
			SKIP(return, "fewer than 2 free %lu KiB hugetlb pages",
			     huge_kb);
		self->size = huge_kb * 1024;
		self->map_len = self->size;
	}

	self->map = mmap(NULL, self->map_len, prot, flags, -1, 0);
	ASSERT_NE(self->map, MAP_FAILED) TH_LOG("mmap: %s", strerror(errno));
	self->mem = self->map;

	/* 4 KiB means small folios, whatever mTHP sizes are enabled. */
	if (variant->backing == ANON_4K)
		ASSERT_EQ(madvise(self->mem, self->size, MADV_NOHUGEPAGE), 0);

	if (variant->backing == ANON_THP) {
		uintptr_t a = ((uintptr_t)self->map + self->size - 1) &
			      ~(uintptr_t)(self->size - 1);

		self->mem = (char *)a;
		ASSERT_EQ(madvise(self->mem, self->size, MADV_HUGEPAGE), 0);
	}

	cow_fill(self->mem, self->size, SEED_OLD);

	if (variant->backing == ANON_THP &&
	    cow_smaps_kb(self->mem, "AnonHugePages") < (long)(self->size / 1024))
		SKIP(return, "no PMD-mapped THP populated (THP disabled?)");
}

FIXTURE_TEARDOWN(cow_fork)
{
	if (self->map && self->map != MAP_FAILED)
		munmap(self->map, self->map_len);
}

/* The parent rewrites everything: the child still reads the old data. */
TEST_F_TIMEOUT(cow_fork, parent_write_child_keeps_old, TEST_TIMEOUT)
{
	int go;
	pid_t pid = cow_fork_checker(self->mem, self->size, SEED_OLD, 100, 0, &go);

	ASSERT_GT(pid, 0);
	cow_fill(self->mem, self->size, SEED_NEW);
	EXPECT_EQ(cow_checker_result(pid, go), 0)
		TH_LOG("child saw the parent's write");
	EXPECT_EQ(cow_check(self->mem, self->size, SEED_NEW), -1);
}

/* The child rewrites everything: the parent still reads the old data. */
TEST_F_TIMEOUT(cow_fork, child_write_parent_keeps_old, TEST_TIMEOUT)
{
	pid_t pid = fork();

	ASSERT_GE(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		cow_fill(self->mem, self->size, SEED_NEW);
		_exit(cow_check(self->mem, self->size, SEED_NEW) == -1 ? 0 : 1);
	}
	ASSERT_EQ(cow_wait_exit(pid), 0) TH_LOG("child lost its own write");
	EXPECT_EQ(cow_check(self->mem, self->size, SEED_OLD), -1)
		TH_LOG("parent saw the child's write");
}

/*
 * One byte written in the middle of the region: the writer sees that byte
 * and nothing else changed; the other side sees no change at all.
 */
TEST_F_TIMEOUT(cow_fork, one_byte_write_diverges_only_that_byte,
	       TEST_TIMEOUT)
{
	size_t off = self->size / 2 + 100;
	int go;
	pid_t pid = cow_fork_checker(self->mem, self->size, SEED_OLD, off, 0, &go);

	ASSERT_GT(pid, 0);
	self->mem[off] = 0x5a;
	EXPECT_EQ(cow_checker_result(pid, go), 0)
		TH_LOG("child saw the parent's write");
	EXPECT_EQ(cow_check(self->mem, self->size, SEED_OLD), -1);
	EXPECT_EQ(self->mem[off], 0x5a);
}

TEST_HARNESS_MAIN
