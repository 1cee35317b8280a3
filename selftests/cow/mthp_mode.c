// SPDX-License-Identifier: GPL-2.0-only
/*
 * vm.cow_mthp_mode: a write to a COW-shared PTE-mapped large folio (mTHP)
 * either copies the 4 KiB written ("split", Linux's behaviour) or copies
 * the whole folio into a new one of the same order ("copy"). Either way
 * each side keeps its own view; cow_mthp_copy and the folio shapes seen in
 * /proc/kpageflags tell which one happened. Skips on a kernel without the
 * knob or without the mTHP size.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "kselftest_harness.h"
#include "cow_util.h"
#include "mm/thp_settings.h"

#define COW_MTHP_MODE_PATH	"/proc/sys/vm/cow_mthp_mode"
#define KPF_COMPOUND_HEAD	15
#define KPF_COMPOUND_TAIL	16
/* 1 MiB of 4 KiB pages in a 2 MiB aligned range: one page table. */
#define NR_PAGES		256
#define SEED_OLD		1
#define SEED_NEW		2

/* The /proc/kpageflags bits of the page mapped at @addr; 0 if unknown. */
static uint64_t page_flags(const void *addr)
{
	uint64_t pfn = cow_pfn(addr), flags = 0;
	int fd = open("/proc/kpageflags", O_RDONLY);

	if (fd < 0)
		return 0;
	if (!pfn || pread(fd, &flags, sizeof(flags), pfn * sizeof(flags)) != sizeof(flags))
		flags = 0;
	close(fd);
	return flags;
}

/* How many of the @nr pages at @mem are the head page of a large folio. */
static int count_heads(const char *mem, int nr)
{
	int i, heads = 0;

	for (i = 0; i < nr; i++)
		heads += !!(page_flags(mem + (size_t)i * getpagesize()) &
			    (1ULL << KPF_COMPOUND_HEAD));
	return heads;
}

/* How many of the @nr pages at @mem belong to no large folio. */
static int count_small(const char *mem, int nr)
{
	uint64_t large = (1ULL << KPF_COMPOUND_HEAD) | (1ULL << KPF_COMPOUND_TAIL);
	int i, small = 0;

	for (i = 0; i < nr; i++)
		small += !(page_flags(mem + (size_t)i * getpagesize()) & large);
	return small;
}

/*
 * This process's minor faults. getrusage() stores to the stack after it
 * counted: to count the faults of a write, call it once before the
 * reading the count starts from, which takes the COW fault of that stack
 * page (the child still shares it) so that the reading after the write
 * has none of its own.
 */
static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/* Enable only the anon mTHP of @order ("always"), every other "never". */
static void enable_only(int order)
{
	struct thp_settings t;
	int i;

	thp_read_settings(&t);
	for (i = 0; i < NR_ORDERS; i++)
		t.hugepages[i].enabled = i == order ? THP_ALWAYS : THP_NEVER;
	thp_write_settings(&t);
}

FIXTURE(mthp) {
	bool thp_saved;
	char saved_mode[16];
	char *map, *mem;
	int go;
	pid_t child;
	bool populated;
};

FIXTURE_VARIANT(mthp) {
	const char *size;	/* the mTHP size the range is made of */
	int pages;		/* pages a folio of it has */
	const char *mode;	/* vm.cow_mthp_mode during the write */
};

FIXTURE_VARIANT_ADD(mthp, split_16k) { "16kB", 4, "split" };
FIXTURE_VARIANT_ADD(mthp, copy_16k) { "16kB", 4, "copy" };
FIXTURE_VARIANT_ADD(mthp, split_32k) { "32kB", 8, "split" };
FIXTURE_VARIANT_ADD(mthp, copy_32k) { "32kB", 8, "copy" };
FIXTURE_VARIANT_ADD(mthp, split_64k) { "64kB", 16, "split" };
FIXTURE_VARIANT_ADD(mthp, copy_64k) { "64kB", 16, "copy" };

/*
 * A range of mTHPs of the variant's size, filled with SEED_OLD and shared
 * with a child that checks, once told to, that it still reads SEED_OLD.
 */
FIXTURE_SETUP(mthp)
{
	size_t len = NR_PAGES * getpagesize(), pmd = 2UL << 20;
	int order = ffs(variant->pages) - 1;

	if (access(COW_MTHP_MODE_PATH, F_OK))
		SKIP(return, "vm.cow_mthp_mode not in this kernel");
	ASSERT_EQ(cow_read_line(COW_MTHP_MODE_PATH, self->saved_mode,
				sizeof(self->saved_mode)), 0);
	if (!(thp_supported_orders() & (1UL << order)))
		SKIP(return, "no %s anon mTHP size", variant->size);
	thp_save_settings();
	self->thp_saved = true;
	enable_only(order);
	self->map = mmap(NULL, len + pmd, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->map, MAP_FAILED);
	self->mem = (char *)(((uintptr_t)self->map + pmd - 1) & ~(pmd - 1));
	cow_fill(self->mem, len, SEED_OLD);
	if (count_heads(self->mem, NR_PAGES) != NR_PAGES / variant->pages)
		SKIP(return, "range not populated with %s folios", variant->size);
	self->populated = true;
	/* Offset 100 of a page is a byte cow_fill() leaves 0. */
	self->child = cow_fork_checker(self->mem, len, SEED_OLD, 100, 0, &self->go);
	ASSERT_GT(self->child, 0);
	ASSERT_EQ(cow_write_file(COW_MTHP_MODE_PATH, variant->mode), 0);
}

FIXTURE_TEARDOWN(mthp)
{
	if (self->saved_mode[0])
		cow_write_file(COW_MTHP_MODE_PATH, self->saved_mode);
	if (self->thp_saved)
		thp_restore_settings();
	if (self->map)
		munmap(self->map, NR_PAGES * getpagesize() + (2UL << 20));
}

/*
 * One byte written in the middle of each folio: "copy" takes one fault
 * and one whole-folio copy per folio and leaves the parent with new folios
 * of the same size (new head pages); "split" copies the 4 KiB written,
 * which ends up in no large folio, and the rest stays in the old folios.
 * The child's view never changes.
 */
TEST_F(mthp, write_middle_of_each_folio)
{
	bool copy = !strcmp(variant->mode, "copy");
	int folios = NR_PAGES / variant->pages, i;
	size_t off = (size_t)variant->pages / 2 * getpagesize() + 100;
	size_t step = (size_t)variant->pages * getpagesize();
	uint64_t head = cow_pfn(self->mem);
	unsigned long long copies;
	long faults;

	if (!self->populated)
		return;
	copies = cow_vmstat("cow_mthp_copy");
	minflt();
	faults = minflt();
	for (i = 0; i < folios; i++)
		self->mem[i * step + off] = SEED_NEW;
	faults = minflt() - faults;
	copies = cow_vmstat("cow_mthp_copy") - copies;

	EXPECT_EQ(faults, folios);
	EXPECT_EQ(copies, copy ? folios : 0);
	EXPECT_EQ(count_heads(self->mem, NR_PAGES), folios);
	EXPECT_EQ(cow_pfn(self->mem) != head, copy);
	EXPECT_EQ(count_small(self->mem, NR_PAGES), copy ? 0 : folios);
	EXPECT_EQ(cow_check_or_report("parent", self->mem, NR_PAGES * getpagesize(),
				      SEED_OLD, off, SEED_NEW), 0);
	for (i = 1; i < folios; i++)
		EXPECT_EQ(self->mem[i * step + off], SEED_NEW);
	EXPECT_EQ(cow_checker_result(self->child, self->go), 0);
	self->child = 0;
}

/*
 * Every byte of every page rewritten: "copy" still takes one fault per
 * folio, "split" one per page.
 */
TEST_F(mthp, rewrite_all)
{
	bool copy = !strcmp(variant->mode, "copy");
	size_t len = NR_PAGES * getpagesize(), i, wrong = 0;
	long faults;

	if (!self->populated)
		return;
	minflt();
	faults = minflt();
	memset(self->mem, SEED_NEW, len);
	faults = minflt() - faults;

	EXPECT_EQ(faults, copy ? NR_PAGES / variant->pages : NR_PAGES);
	for (i = 0; i < len; i++)
		wrong += self->mem[i] != SEED_NEW;
	EXPECT_EQ(wrong, 0);
	EXPECT_EQ(cow_checker_result(self->child, self->go), 0);
	self->child = 0;
}

/*
 * MADV_NOHUGEPAGE after the range was populated: the folios stay, but
 * "copy" may not make new ones there, and copies 4 KiB.
 */
TEST_F(mthp, nohugepage_copies_4k)
{
	int folios = NR_PAGES / variant->pages, i;
	size_t step = (size_t)variant->pages * getpagesize();
	unsigned long long copies;

	if (!self->populated)
		return;
	ASSERT_EQ(madvise(self->mem, NR_PAGES * getpagesize(), MADV_NOHUGEPAGE), 0);
	copies = cow_vmstat("cow_mthp_copy");
	for (i = 0; i < folios; i++)
		self->mem[i * step] = SEED_NEW;
	EXPECT_EQ(cow_vmstat("cow_mthp_copy") - copies, 0);
	EXPECT_EQ(count_small(self->mem, NR_PAGES), folios);
	EXPECT_EQ(cow_checker_result(self->child, self->go), 0);
	self->child = 0;
}

/* Only a whole "split" or "copy" is accepted; the rest changes nothing. */
TEST(bad_values_rejected)
{
	static const char * const bad[] = {
		"", "cpy", "copy x", "split\nx", "Copy", "1",
		"copycopycopycopycopy",
	};
	char saved[16], now[16];
	unsigned int i;

	if (access(COW_MTHP_MODE_PATH, F_OK))
		SKIP(return, "vm.cow_mthp_mode not in this kernel");
	ASSERT_EQ(cow_read_line(COW_MTHP_MODE_PATH, saved, sizeof(saved)), 0);
	ASSERT_EQ(cow_write_file(COW_MTHP_MODE_PATH, "copy\n"), 0);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(cow_write_file(COW_MTHP_MODE_PATH, bad[i]), EINVAL)
			TH_LOG("value '%s'", bad[i]);
		ASSERT_EQ(cow_read_line(COW_MTHP_MODE_PATH, now, sizeof(now)), 0);
		EXPECT_STREQ(now, "copy");
	}
	EXPECT_EQ(cow_write_file(COW_MTHP_MODE_PATH, "split"), 0);
	ASSERT_EQ(cow_read_line(COW_MTHP_MODE_PATH, now, sizeof(now)), 0);
	EXPECT_STREQ(now, "split");
	cow_write_file(COW_MTHP_MODE_PATH, saved);
}

TEST_HARNESS_MAIN
