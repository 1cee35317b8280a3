// SPDX-License-Identifier: GPL-2.0-only
/*
 * Pre-copy (vm.cow_precopy_pages, vm.cow_precopy_adaptive): a COW fault
 * also copies the shared neighbours the next writes would copy. Checks
 * the data on both sides, the number of faults and pre-copies, where the
 * window must stop, bad sysctl values, and that a memory cgroup sees no
 * OOM kill from it. Skips on a kernel without the knobs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "kselftest_harness.h"
#include "cow_util.h"

#define SEED		1
/* The byte each write sets; cow_fill() leaves it 0. */
#define OFF		100
#define NR_PAGES	512	/* one page table on x86-64 */
#define SEQ_PAGES	256
#define CGROUP_ROOT	"/sys/fs/cgroup"
#define CGROUP_TEST	CGROUP_ROOT "/cow_precopy_test"
#define MEMCG_PAGES	4096	/* 16 MiB written by the cgroup's writer */

static size_t page_size(void)
{
	return COW_SUBPAGE;
}

/*
 * 0 when every page of [mem, mem + n pages) holds the pattern, with 0x5a
 * at OFF in the pages @written marks and 0 elsewhere; else report, 1.
 */
static int region_ok(const char *who, char *mem, size_t n,
		     const bool *written)
{
	long bad = cow_check(mem, n * page_size(), SEED);
	size_t i;

	if (bad >= 0) {
		ksft_print_msg("%s: page %ld lost its pattern\n", who, bad);
		return 1;
	}
	for (i = 0; i < n; i++) {
		char want = written && written[i] ? 0x5a : 0;

		if (mem[i * page_size() + OFF] != want) {
			ksft_print_msg("%s: page %zu reads %#x, want %#x\n",
				       who, i, mem[i * page_size() + OFF] & 0xff,
				       want & 0xff);
			return 1;
		}
	}
	return 0;
}

/* A child that holds every page shared, then checks it saw no write. */
static int holder_check(void *mem)
{
	return region_ok("child", mem, NR_PAGES, NULL);
}

static pid_t fork_holder(char *mem, int *go)
{
	return cow_fork_waiter(holder_check, mem, go);
}

/* NR_PAGES pages in one page table, what was written, the counters. */
struct region {
	char *mem;
	bool written[NR_PAGES];
	struct cow_counts b, a;
};

FIXTURE(precopy) {
	struct cow_precopy_knobs saved;
	char *map;
	struct region r;
};

FIXTURE_SETUP(precopy)
{
	size_t pmd = cow_pmd_size() ?: 2UL << 20;
	size_t len = NR_PAGES * page_size();

	if (access(COW_PRECOPY_PAGES_PATH, F_OK) ||
	    access(COW_PRECOPY_ADAPT_PATH, F_OK))
		SKIP(return, "vm.cow_precopy_* not in this kernel");
	ASSERT_EQ(cow_precopy_set(&self->saved, "0", "0"), 0);
	self->map = mmap(NULL, 2 * pmd, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->map, MAP_FAILED);
	self->r.mem = (char *)(((uintptr_t)self->map + pmd - 1) & ~(pmd - 1));
	/* Small folios, whatever mTHP sizes are enabled. */
	ASSERT_EQ(madvise(self->r.mem, len, MADV_NOHUGEPAGE), 0);
	cow_fill(self->r.mem, len, SEED);
}

FIXTURE_TEARDOWN(precopy)
{
	cow_precopy_restore(&self->saved);
	if (self->map && self->map != MAP_FAILED)
		munmap(self->map, 2 * (cow_pmd_size() ?: 2UL << 20));
}

static void write_page(struct region *r, size_t i)
{
	r->mem[i * page_size() + OFF] = 0x5a;
	r->written[i] = true;
}

/*
 * After fork(), with the knobs set, write @n pages in the order of @idx
 * (NULL: 0, 1, ...) between two counter snapshots; then check the data
 * on both sides.
 */
static void run_writes(struct __test_metadata *_metadata, struct region *r,
		       const char *pages, const char *adaptive,
		       const size_t *idx, size_t n)
{
	struct cow_precopy_knobs unused;
	size_t i;
	int go;
	pid_t pid;

	pid = fork_holder(r->mem, &go);
	ASSERT_GT(pid, 0);
	ASSERT_EQ(cow_precopy_set(&unused, pages, adaptive), 0);
	cow_counts_before(&r->b, &r->a);
	for (i = 0; i < n; i++)
		r->mem[(idx ? idx[i] : i) * page_size() + OFF] = 0x5a;
	cow_get_counts(&r->a);
	for (i = 0; i < n; i++)
		r->written[idx ? idx[i] : i] = true;
	EXPECT_EQ(cow_checker_result(pid, go), 0)
		TH_LOG("the child saw a write of the parent");
	EXPECT_EQ(region_ok("parent", r->mem, NR_PAGES, r->written), 0);
}

/* COW faults (copies) and pre-copied pages between the two readings. */
static long faults(const struct region *r)
{
	return r->a.cow_copy - r->b.cow_copy;
}

static long precopied(const struct region *r)
{
	return r->a.precopy - r->b.precopy;
}

/* Scattered writes: written pages changed, the others not, on both sides. */
TEST_F(precopy, data_stays_right)
{
	static const size_t idx[] = { 0, 1, 5, 17, 100, 200, 201, 511 };

	run_writes(_metadata, &self->r, "15", "0", idx, ARRAY_SIZE(idx));
	EXPECT_GT(precopied(&self->r), 0);
}

/* Knob off: one fault and copy per page, nothing pre-copied. */
TEST_F(precopy, off_copies_nothing_ahead)
{
	run_writes(_metadata, &self->r, "0", "0", NULL, SEQ_PAGES);
	EXPECT_EQ(faults(&self->r), SEQ_PAGES);
	EXPECT_EQ(precopied(&self->r), 0);
	EXPECT_GE(self->r.a.minflt - self->r.b.minflt, SEQ_PAGES);
}

/* A sequential rewrite with window W takes one fault per W + 1 pages. */
static void sequential(struct __test_metadata *_metadata, struct region *r,
		       int w)
{
	char pages[16];
	long want = (SEQ_PAGES + w) / (w + 1);

	snprintf(pages, sizeof(pages), "%d", w);
	run_writes(_metadata, r, pages, "0", NULL, SEQ_PAGES);
	EXPECT_EQ(faults(r), want);
	/* The last window may reach past the pages written. */
	EXPECT_EQ(precopied(r), want * w);
	EXPECT_GE(r->a.minflt - r->b.minflt, want);
	EXPECT_LE(r->a.minflt - r->b.minflt, want + 2);
}

TEST_F(precopy, sequential_window_1)
{
	sequential(_metadata, &self->r, 1);
}

TEST_F(precopy, sequential_window_3)
{
	sequential(_metadata, &self->r, 3);
}

TEST_F(precopy, sequential_window_15)
{
	sequential(_metadata, &self->r, 15);
}

TEST_F(precopy, sequential_window_31)
{
	sequential(_metadata, &self->r, 31);
}

/* A window never leaves the page table. */
TEST_F(precopy, stops_at_page_table_end)
{
	static const size_t idx[] = { NR_PAGES - 4 };

	run_writes(_metadata, &self->r, "15", "0", idx, 1);
	EXPECT_EQ(faults(&self->r), 1);
	EXPECT_EQ(precopied(&self->r), 3);
}

/* A window never leaves the VMA: pages 8.. are another VMA (RWX). */
TEST_F(precopy, stops_at_vma_end)
{
	static const size_t idx[] = { 4, 8 };

	ASSERT_EQ(mprotect(self->r.mem + 8 * page_size(), 8 * page_size(),
			   PROT_READ | PROT_WRITE | PROT_EXEC), 0);
	run_writes(_metadata, &self->r, "15", "0", idx, ARRAY_SIZE(idx));
	/* 5, 6, 7 ahead of page 4; page 8 faults in its own VMA. */
	EXPECT_EQ(faults(&self->r), 2);
	EXPECT_EQ(precopied(&self->r), 3 + 7);
}

/* A page no longer shared (written before) ends the window. */
TEST_F(precopy, stops_at_exclusive_page)
{
	struct cow_precopy_knobs unused;
	int go;
	pid_t pid;

	pid = fork_holder(self->r.mem, &go);
	ASSERT_GT(pid, 0);
	/* Page 5 becomes the parent's own with pre-copy off... */
	write_page(&self->r, 5);
	ASSERT_EQ(cow_precopy_set(&unused, "15", "0"), 0);
	cow_counts_before(&self->r.b, &self->r.a);
	/* ...so page 0's window stops after 1, 2, 3, 4. */
	write_page(&self->r, 0);
	cow_get_counts(&self->r.a);
	EXPECT_EQ(cow_checker_result(pid, go), 0);
	EXPECT_EQ(region_ok("parent", self->r.mem, NR_PAGES, self->r.written),
		  0);
	EXPECT_EQ(faults(&self->r), 1);
	EXPECT_EQ(precopied(&self->r), 4);
}

/* A VMA registered for uffd-wp is left alone. */
TEST_F(precopy, skips_uffd_wp_vma)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { (unsigned long)self->r.mem, NR_PAGES * page_size() },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};
	static const size_t idx[] = { 0 };
	int uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (uffd < 0)
		SKIP(return, "userfaultfd: %s", strerror(errno));
	ASSERT_EQ(ioctl(uffd, UFFDIO_API, &api), 0);
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		SKIP(return, "UFFDIO_REGISTER_MODE_WP: %s", strerror(errno));
	run_writes(_metadata, &self->r, "15", "0", idx, 1);
	EXPECT_EQ(faults(&self->r), 1);
	EXPECT_EQ(precopied(&self->r), 0);
	close(uffd);
}

/* Adaptive: a sequential stream ramps the window up, little is wasted. */
TEST_F(precopy, adaptive_sequential_ramps_up)
{
	run_writes(_metadata, &self->r, "16", "1", NULL, SEQ_PAGES);
	EXPECT_LT(faults(&self->r), SEQ_PAGES / 8);
	/* Everything written was copied once; at most a window beyond. */
	EXPECT_GE(faults(&self->r) + precopied(&self->r), SEQ_PAGES);
	EXPECT_LE(faults(&self->r) + precopied(&self->r), SEQ_PAGES + 16);
}

/* Adaptive: a descending stream pre-copies downwards. */
TEST_F(precopy, adaptive_descending)
{
	size_t idx[SEQ_PAGES], i;

	for (i = 0; i < SEQ_PAGES; i++)
		idx[i] = NR_PAGES - 1 - i;
	run_writes(_metadata, &self->r, "16", "1", idx, SEQ_PAGES);
	EXPECT_LT(faults(&self->r), SEQ_PAGES / 8);
	EXPECT_GE(faults(&self->r) + precopied(&self->r), SEQ_PAGES);
	EXPECT_LE(faults(&self->r) + precopied(&self->r), SEQ_PAGES + 16);
}

/* Adaptive: writes that are never adjacent pre-copy nothing. */
TEST_F(precopy, adaptive_scattered_wastes_nothing)
{
	size_t idx[64], i;

	for (i = 0; i < ARRAY_SIZE(idx); i++)
		idx[i] = (i * 37) % NR_PAGES;
	run_writes(_metadata, &self->r, "16", "1", idx, ARRAY_SIZE(idx));
	EXPECT_EQ(faults(&self->r), ARRAY_SIZE(idx));
	EXPECT_EQ(precopied(&self->r), 0);
}

/*
 * Memory cgroups: a writer in a cgroup sized for what it writes (no
 * swap) is not OOM-killed with pre-copy on, as it is not with it off.
 */
FIXTURE(precopy_memcg) {
	struct cow_precopy_knobs saved;
	char *mem;
	size_t len;
	bool made;
};

FIXTURE_VARIANT(precopy_memcg) {
	const char *pages, *adaptive;
	int stride;	/* write every stride-th page */
};

FIXTURE_VARIANT_ADD(precopy_memcg, off_sequential) { "0", "0", 1 };
FIXTURE_VARIANT_ADD(precopy_memcg, fixed15_sequential) { "15", "0", 1 };
FIXTURE_VARIANT_ADD(precopy_memcg, off_stride2) { "0", "0", 2 };
FIXTURE_VARIANT_ADD(precopy_memcg, adaptive_stride2) { "15", "1", 2 };

FIXTURE_SETUP(precopy_memcg)
{
	char controllers[256] = "";

	if (access(COW_PRECOPY_PAGES_PATH, F_OK))
		SKIP(return, "vm.cow_precopy_* not in this kernel");
	if (cow_read_line(CGROUP_ROOT "/cgroup.controllers", controllers,
			  sizeof(controllers)) || !strstr(controllers, "memory"))
		SKIP(return, "no cgroup v2 memory controller");
	ASSERT_EQ(cow_precopy_set(&self->saved, variant->pages,
				  variant->adaptive), 0);
	ASSERT_EQ(cow_write_file(CGROUP_ROOT "/cgroup.subtree_control",
				 "+memory"), 0);
	ASSERT_TRUE(!mkdir(CGROUP_TEST, 0755) || errno == EEXIST);
	self->made = true;
	self->len = MEMCG_PAGES * page_size();
	self->mem = mmap(NULL, self->len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->mem, MAP_FAILED);
	ASSERT_EQ(madvise(self->mem, self->len, MADV_NOHUGEPAGE), 0);
	cow_fill(self->mem, self->len, SEED);
}

FIXTURE_TEARDOWN(precopy_memcg)
{
	cow_precopy_restore(&self->saved);
	if (self->made)
		rmdir(CGROUP_TEST);
	if (self->mem && self->mem != MAP_FAILED)
		munmap(self->mem, self->len);
}

/* The cgroup's oom_kill count from memory.events. */
static long oom_kills(void)
{
	char line[128];
	long v = -1;
	FILE *f = fopen(CGROUP_TEST "/memory.events", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "oom_kill %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

TEST_F(precopy_memcg, writer_not_oom_killed)
{
	size_t n = MEMCG_PAGES / variant->stride, i;
	char max[32];
	int status;
	pid_t pid;

	/* What the writer copies, plus 2 MiB for its own stack and tables. */
	snprintf(max, sizeof(max), "%zu", n * page_size() + (2UL << 20));
	ASSERT_EQ(cow_write_file(CGROUP_TEST "/memory.max", max), 0);
	/* Without swap nothing the writer copies can be reclaimed. */
	cow_write_file(CGROUP_TEST "/memory.swap.max", "0");
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		/* The parent keeps every page shared; its pages stay outside. */
		if (cow_write_file(CGROUP_TEST "/cgroup.procs", "0"))
			_exit(3);
		for (i = 0; i < n; i++)
			self->mem[i * variant->stride * page_size() + OFF] = 0x5a;
		_exit(0);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("writer: %s %d", WIFSIGNALED(status) ? "signal" : "exit",
		       WIFSIGNALED(status) ? WTERMSIG(status) :
		       WEXITSTATUS(status));
	EXPECT_EQ(oom_kills(), 0);
	EXPECT_EQ(region_ok("parent", self->mem, MEMCG_PAGES, NULL), 0);
}

/* Out-of-range and malformed values: EINVAL and nothing changes. */
FIXTURE(precopy_sysctl) {
	struct cow_precopy_knobs saved;
};

FIXTURE_SETUP(precopy_sysctl)
{
	if (access(COW_PRECOPY_PAGES_PATH, F_OK))
		SKIP(return, "vm.cow_precopy_* not in this kernel");
	ASSERT_EQ(cow_precopy_set(&self->saved, "7", "1"), 0);
}

FIXTURE_TEARDOWN(precopy_sysctl)
{
	cow_precopy_restore(&self->saved);
}

static void expect_value(struct __test_metadata *_metadata, const char *path,
			 const char *want)
{
	char now[16];

	ASSERT_EQ(cow_read_line(path, now, sizeof(now)), 0);
	EXPECT_STREQ(now, want);
}

TEST_F(precopy_sysctl, bad_values_rejected)
{
	/* A zero-length write() writes no value: a no-op, not an error. */
	static const char * const bad_pages[] = {
		"-1", "513", "4294967296", "abc", "1x", " ", "0x",
	};
	static const char * const bad_adaptive[] = {
		"-1", "2", "abc", " ", "1x",
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad_pages); i++) {
		EXPECT_EQ(cow_write_file(COW_PRECOPY_PAGES_PATH, bad_pages[i]),
			  EINVAL) TH_LOG("pages '%s'", bad_pages[i]);
		expect_value(_metadata, COW_PRECOPY_PAGES_PATH, "7");
	}
	for (i = 0; i < ARRAY_SIZE(bad_adaptive); i++) {
		EXPECT_EQ(cow_write_file(COW_PRECOPY_ADAPT_PATH,
					 bad_adaptive[i]), EINVAL)
			TH_LOG("adaptive '%s'", bad_adaptive[i]);
		expect_value(_metadata, COW_PRECOPY_ADAPT_PATH, "1");
	}
}

TEST_F(precopy_sysctl, limits_accepted)
{
	EXPECT_EQ(cow_write_file(COW_PRECOPY_PAGES_PATH, "512"), 0);
	expect_value(_metadata, COW_PRECOPY_PAGES_PATH, "512");
	EXPECT_EQ(cow_write_file(COW_PRECOPY_PAGES_PATH, "0"), 0);
	expect_value(_metadata, COW_PRECOPY_PAGES_PATH, "0");
	EXPECT_EQ(cow_write_file(COW_PRECOPY_ADAPT_PATH, "0"), 0);
	expect_value(_metadata, COW_PRECOPY_ADAPT_PATH, "0");
}

TEST_HARNESS_MAIN
