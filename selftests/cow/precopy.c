// SPDX-License-Identifier: GPL-2.0-only
/*
 * Pre-copy (vm.cow_precopy_pages, vm.cow_precopy_adaptive): a COW fault
 * also copies the shared neighbours the next writes would copy. Checks
 * the data on both sides, the number of faults and pre-copies, where the
 * window must stop, bad sysctl values, and that a memory cgroup sees no
 * OOM kill from it; then the copies into large folios of the enabled anon
 * mTHP sizes, folio by folio. Skips on a kernel without the knobs.
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
#include "mm/thp_settings.h"

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

/*
 * NR_PAGES PMD-aligned pages in small folios holding the pattern, with
 * pre-copy off; a reason to skip, or NULL.
 */
static const char *region_setup(struct __test_metadata *_metadata,
				struct cow_precopy_knobs *saved, char **map,
				struct region *r)
{
	size_t pmd = read_pmd_pagesize() ?: 2UL << 20;
	size_t len = NR_PAGES * page_size();

	if (access(COW_PRECOPY_PAGES_PATH, F_OK) ||
	    access(COW_PRECOPY_ADAPT_PATH, F_OK))
		return "vm.cow_precopy_* not in this kernel";
	ASSERT_EQ(cow_precopy_set(saved, "0", "0"), 0);
	*map = mmap(NULL, 2 * pmd, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(*map, MAP_FAILED);
	r->mem = (char *)(((uintptr_t)*map + pmd - 1) & ~(pmd - 1));
	/* Small folios, whatever mTHP sizes are enabled. */
	ASSERT_EQ(madvise(r->mem, len, MADV_NOHUGEPAGE), 0);
	cow_fill(r->mem, len, SEED);
	return NULL;
}

static void region_teardown(struct cow_precopy_knobs *saved, char *map)
{
	cow_precopy_restore(saved);
	if (map && map != MAP_FAILED)
		munmap(map, 2 * (read_pmd_pagesize() ?: 2UL << 20));
}

FIXTURE_SETUP(precopy)
{
	const char *skip = region_setup(_metadata, &self->saved, &self->map,
					&self->r);

	if (skip)
		SKIP(return, "%s", skip);
}

FIXTURE_TEARDOWN(precopy)
{
	region_teardown(&self->saved, self->map);
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

/*
 * A sequential rewrite with a fixed window of W pages takes one fault per
 * W + 1 pages, for each window size.
 */
FIXTURE(precopy_window) {
	struct cow_precopy_knobs saved;
	char *map;
	struct region r;
};

FIXTURE_VARIANT(precopy_window) {
	const char *pages;	/* vm.cow_precopy_pages: W */
	int window;
};

FIXTURE_VARIANT_ADD(precopy_window, window_1) { "1", 1 };
FIXTURE_VARIANT_ADD(precopy_window, window_3) { "3", 3 };
FIXTURE_VARIANT_ADD(precopy_window, window_15) { "15", 15 };
FIXTURE_VARIANT_ADD(precopy_window, window_31) { "31", 31 };

FIXTURE_SETUP(precopy_window)
{
	const char *skip = region_setup(_metadata, &self->saved, &self->map,
					&self->r);

	if (skip)
		SKIP(return, "%s", skip);
}

FIXTURE_TEARDOWN(precopy_window)
{
	region_teardown(&self->saved, self->map);
}

TEST_F(precopy_window, sequential_rewrite)
{
	long w = variant->window, want = (SEQ_PAGES + w) / (w + 1);
	struct region *r = &self->r;

	run_writes(_metadata, r, variant->pages, "0", NULL, SEQ_PAGES);
	EXPECT_EQ(faults(r), want);
	/* The last window may reach past the pages written. */
	EXPECT_EQ(precopied(r), want * w);
	EXPECT_GE(r->a.minflt - r->b.minflt, want);
	EXPECT_LE(r->a.minflt - r->b.minflt, want + 2);
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

/*
 * Pre-copy into large folios: the copies go into naturally aligned folios
 * of the anon mTHP sizes enabled (16, 32 and 64 KiB), a fault on a page
 * whose whole block qualifies copies that block, and a window that can
 * use large folios ends on a block boundary. The region is populated with
 * every size "never", so that it is made of 4 KiB pages, and the size
 * under test is enabled after fork(). Each page's folio is read through
 * /proc/self/pagemap and /proc/kpageflags.
 */
#define LARGE_PAGES	1024	/* two page tables, PMD-aligned */
#define THP_DIR		"/sys/kernel/mm/transparent_hugepage"
/* Bits of /proc/kpageflags */
#define KPF_SWAPBACKED		14
#define KPF_COMPOUND_HEAD	15
#define KPF_COMPOUND_TAIL	16
#define MEMCG_MAX	(16UL << 20)	/* memory.max of the near-limit writer */
#define LAZY_PAGES	64	/* written after MADV_FREE, or near the limit */

/* Set the mode of one size, "64kB"; 0 or the errno. */
static int mthp_set(const char *size, const char *mode)
{
	char path[128];

	snprintf(path, sizeof(path), THP_DIR "/hugepages-%s/enabled", size);
	return cow_write_file(path, mode);
}

/* Every anon mTHP size "never". */
static void mthp_disable_all(void)
{
	struct thp_settings t;
	int i;

	thp_read_settings(&t);
	for (i = 0; i < NR_ORDERS; i++)
		t.hugepages[i].enabled = THP_NEVER;
	thp_write_settings(&t);
}

/* What pagemap and kpageflags say of one page of the region. */
struct page_snap {
	uint64_t ent, flags;
};

/* The region, what was written to it, the counters, its pages' folios. */
struct large_state {
	struct cow_precopy_knobs knobs;
	/*
	 * The THP settings to put back: here, not thp_save_settings(), for
	 * the teardown runs in the parent.
	 */
	struct thp_settings thp;
	bool saved;		/* knobs and THP settings to put back */
	bool cgroup;		/* CGROUP_TEST to remove */
	pid_t owner;		/* the process that mapped the region */
	char *map, *mem;
	size_t map_len;
	pid_t child;		/* the holder of the shared copy */
	int go;
	size_t idx[LARGE_PAGES];
	bool written[LARGE_PAGES];
	struct cow_counts b, a;
	struct page_snap snap[LARGE_PAGES];
};

/* Why the large-folio tests cannot run here, or NULL. */
static const char *large_missing(void)
{
	if (access(COW_PRECOPY_PAGES_PATH, F_OK) ||
	    access(COW_PRECOPY_ADAPT_PATH, F_OK))
		return "vm.cow_precopy_* not in this kernel";
	if (access(THP_DIR "/hugepages-16kB/enabled", W_OK) ||
	    access(THP_DIR "/hugepages-32kB/enabled", W_OK) ||
	    access(THP_DIR "/hugepages-64kB/enabled", W_OK))
		return "no 16kB, 32kB and 64kB anon mTHP sizes";
	if (access("/proc/kpageflags", R_OK))
		return "/proc/kpageflags not readable";
	return NULL;
}

/*
 * Save the knobs and the mTHP modes, turn pre-copy off and every size to
 * "never", then map LARGE_PAGES PMD-aligned pages and fill them: 4 KiB
 * pages all. 0 or the errno.
 */
static int large_setup(struct large_state *s)
{
	size_t pmd = read_pmd_pagesize() ?: 2UL << 20;
	size_t len = LARGE_PAGES * page_size();
	int err;

	s->owner = getpid();
	thp_read_settings(&s->thp);
	s->saved = true;
	err = cow_precopy_set(&s->knobs, "0", "0");
	if (err)
		return err;
	mthp_disable_all();
	s->map_len = len + pmd;
	s->map = mmap(NULL, s->map_len, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->map == MAP_FAILED)
		return errno;
	s->mem = (char *)(((uintptr_t)s->map + pmd - 1) & ~(pmd - 1));
	cow_fill(s->mem, len, SEED);
	return 0;
}

/* Put back what large_setup() changed; also after a failed setup. */
static void large_teardown(struct large_state *s)
{
	if (s->saved) {
		cow_precopy_restore(&s->knobs);
		thp_write_settings(&s->thp);
	}
	if (s->cgroup)
		rmdir(CGROUP_TEST);
	if (s->map && s->map != MAP_FAILED && s->owner == getpid())
		munmap(s->map, s->map_len);
}

enum large_pattern {
	ASCENDING,		/* 0, 1, ..., LARGE_PAGES - 1 */
	ASCENDING_FROM_1,	/* 1, 2, ..., LARGE_PAGES - 1 */
	DESCENDING,		/* LARGE_PAGES - 1, ..., 0 */
	RANDOM_EIGHTH,		/* LARGE_PAGES / 8 pages, fixed seed */
};

/* The pages to write, in order, into @idx; how many. */
static size_t large_pattern(enum large_pattern p, size_t *idx)
{
	bool taken[LARGE_PAGES] = { };
	uint32_t x = 2463534242U;	/* xorshift32 */
	size_t n = 0, i;

	switch (p) {
	case ASCENDING:
	case ASCENDING_FROM_1:
		for (i = p == ASCENDING ? 0 : 1; i < LARGE_PAGES; i++)
			idx[n++] = i;
		break;
	case DESCENDING:
		for (i = 0; i < LARGE_PAGES; i++)
			idx[n++] = LARGE_PAGES - 1 - i;
		break;
	case RANDOM_EIGHTH:
		/*
		 * Distinct pages, none next to the one written just before
		 * it: no write lands right after or right before what the
		 * previous fault copied.
		 */
		while (n < LARGE_PAGES / 8) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			i = x % LARGE_PAGES;
			if (taken[i] ||
			    (n && (i + 1 == idx[n - 1] || i == idx[n - 1] + 1)))
				continue;
			taken[i] = true;
			idx[n++] = i;
		}
		break;
	}
	return n;
}

static int large_holder_check(void *mem)
{
	return region_ok("child", mem, LARGE_PAGES, NULL);
}

/* Fork the child that keeps the original of every page COW-shared. */
static void large_fork(struct __test_metadata *_metadata,
		       struct large_state *s)
{
	s->child = cow_fork_waiter(large_holder_check, s->mem, &s->go);
	ASSERT_GT(s->child, 0);
}

/* Read pagemap and kpageflags for every page of the region. */
static void large_snapshot(struct __test_metadata *_metadata,
			   struct large_state *s)
{
	int pm = open("/proc/self/pagemap", O_RDONLY);
	int kpf = open("/proc/kpageflags", O_RDONLY);
	uint64_t pfn;
	size_t i;
	off_t off;

	ASSERT_GE(pm, 0);
	ASSERT_GE(kpf, 0);
	for (i = 0; i < LARGE_PAGES; i++) {
		struct page_snap *ps = &s->snap[i];

		off = ((uintptr_t)s->mem / page_size() + i) * sizeof(ps->ent);
		ASSERT_EQ(pread(pm, &ps->ent, sizeof(ps->ent), off),
			  sizeof(ps->ent));
		pfn = PAGEMAP_PFN(ps->ent);
		ASSERT_TRUE(ps->ent & PM_PRESENT) TH_LOG("page %zu", i);
		ASSERT_NE(pfn, 0) TH_LOG("page %zu: no PFN in pagemap", i);
		ASSERT_EQ(pread(kpf, &ps->flags, sizeof(ps->flags),
				pfn * sizeof(ps->flags)), sizeof(ps->flags));
	}
	close(pm);
	close(kpf);
}

/*
 * With the size @size ("64kB"; NULL: none) enabled and the knobs set,
 * write one byte to each of the @n pages of s->idx, in order, between two
 * counter readings; then take the folio snapshot while the child still
 * holds its copy.
 */
static void large_write(struct __test_metadata *_metadata,
			struct large_state *s, const char *size,
			const char *pages, const char *adaptive, size_t n)
{
	struct cow_precopy_knobs unused;
	size_t i;

	if (size)
		ASSERT_EQ(mthp_set(size, "always"), 0);
	ASSERT_EQ(cow_precopy_set(&unused, pages, adaptive), 0);
	cow_counts_before(&s->b, &s->a);
	for (i = 0; i < n; i++)
		s->mem[s->idx[i] * page_size() + OFF] = 0x5a;
	cow_get_counts(&s->a);
	for (i = 0; i < n; i++)
		s->written[s->idx[i]] = true;
	large_snapshot(_metadata, s);
}

/*
 * The child's view of all pages, then the parent's of the first @nr (all
 * of them but after MADV_FREE).
 */
static void large_finish(struct __test_metadata *_metadata,
			 struct large_state *s, size_t nr)
{
	EXPECT_EQ(cow_checker_result(s->child, s->go), 0)
		TH_LOG("the child saw a write of the parent");
	EXPECT_EQ(region_ok("parent", s->mem, nr, s->written), 0);
}

static long large_minflt(const struct large_state *s)
{
	return s->a.minflt - s->b.minflt;
}

static long large_copies(const struct large_state *s)
{
	return s->a.cow_copy - s->b.cow_copy;
}

static long large_precopied(const struct large_state *s)
{
	return s->a.precopy - s->b.precopy;
}

static long large_failed(const struct large_state *s)
{
	return s->a.precopy_fail - s->b.precopy_fail;
}

/*
 * Check the snapshot: a written page is the parent's alone, in a folio of
 * 2^@order pages naturally aligned (pages [@lo, @hi) in 4 KiB folios
 * whatever @order), whose pages are physically contiguous; an unwritten
 * one is still the 4 KiB page shared with the child. The heads seen, or
 * -1 after reporting the first page that differs.
 */
static long large_folios(const struct large_state *s, int order, size_t lo,
			 size_t hi)
{
	size_t ppf = 1UL << order, i, k;
	uint64_t head_pfn = 0, pfn;
	bool head, tail, excl;
	long heads = 0;
	const char *bad;

	for (i = 0; i < LARGE_PAGES; i++) {
		pfn = PAGEMAP_PFN(s->snap[i].ent);
		head = s->snap[i].flags & (1ULL << KPF_COMPOUND_HEAD);
		tail = s->snap[i].flags & (1ULL << KPF_COMPOUND_TAIL);
		excl = s->snap[i].ent & PM_MMAP_EXCLUSIVE;
		k = i % ppf;
		bad = NULL;
		if (!s->written[i])
			bad = excl || head || tail ? "not a shared 4 KiB page" : NULL;
		else if (!excl)
			bad = "written but not exclusive";
		else if (!order || (i >= lo && i < hi))
			bad = head || tail ? "in a large folio" : NULL;
		else if (!k)
			bad = !head || tail ? "not a folio head" : NULL;
		else if (!tail || head)
			bad = "not a folio tail";
		else if (pfn != head_pfn + k)
			bad = "not contiguous with its head";
		if (bad) {
			ksft_print_msg("page %zu (pfn %#llx, kpageflags %#llx): %s\n",
				       i, (unsigned long long)pfn,
				       (unsigned long long)s->snap[i].flags, bad);
			return -1;
		}
		if (head) {
			head_pfn = pfn;
			heads++;
		}
	}
	return heads;
}

/*
 * One write pattern with one size enabled: the exact faults (minor faults
 * and cow_copy), pre-copied pages, and every page's folio.
 */
FIXTURE(precopy_large) {
	struct large_state s;
};

FIXTURE_VARIANT(precopy_large) {
	const char *pages, *adaptive;
	const char *size;		/* the mTHP size enabled, NULL: none */
	enum large_pattern pattern;
	long faults, precopied;
	int order;			/* of the written pages' folios */
	size_t small_lo, small_hi;	/* pages in 4 KiB folios even so */
	long heads;
};

/*
 * Fixed window W, ascending from page 0: each fault copies itself and W
 * pages above it. With W + 1 = 16 the fault's 64 KiB block is the whole
 * window (64 KiB: one folio; 32 or 16 KiB: the fault's block, then the
 * rest in folios of that size); order 0 without a size.
 */
FIXTURE_VARIANT_ADD(precopy_large, fixed15_none) {
	.pages = "15", .adaptive = "0", .size = NULL, .pattern = ASCENDING,
	.faults = LARGE_PAGES / 16, .precopied = LARGE_PAGES / 16 * 15,
	.order = 0, .heads = 0,
};

FIXTURE_VARIANT_ADD(precopy_large, fixed15_16k) {
	.pages = "15", .adaptive = "0", .size = "16kB", .pattern = ASCENDING,
	.faults = LARGE_PAGES / 16, .precopied = LARGE_PAGES / 16 * 15,
	.order = 2, .heads = LARGE_PAGES / 4,
};

FIXTURE_VARIANT_ADD(precopy_large, fixed15_32k) {
	.pages = "15", .adaptive = "0", .size = "32kB", .pattern = ASCENDING,
	.faults = LARGE_PAGES / 16, .precopied = LARGE_PAGES / 16 * 15,
	.order = 3, .heads = LARGE_PAGES / 8,
};

FIXTURE_VARIANT_ADD(precopy_large, fixed15_64k) {
	.pages = "15", .adaptive = "0", .size = "64kB", .pattern = ASCENDING,
	.faults = LARGE_PAGES / 16, .precopied = LARGE_PAGES / 16 * 15,
	.order = 4, .heads = LARGE_PAGES / 16,
};

/* W = 31: the fault's block, then the next block in one more folio. */
FIXTURE_VARIANT_ADD(precopy_large, fixed31_64k) {
	.pages = "31", .adaptive = "0", .size = "64kB", .pattern = ASCENDING,
	.faults = LARGE_PAGES / 32, .precopied = LARGE_PAGES / 32 * 31,
	.order = 4, .heads = LARGE_PAGES / 16,
};

/* W = 7: no 64 KiB block fits in 8 pages, so 4 KiB pages as before. */
FIXTURE_VARIANT_ADD(precopy_large, fixed7_64k_too_small) {
	.pages = "7", .adaptive = "0", .size = "64kB", .pattern = ASCENDING,
	.faults = LARGE_PAGES / 8, .precopied = LARGE_PAGES / 8 * 7,
	.order = 0, .heads = 0,
};

/*
 * From page 1: page 1's window, 1-16, is cut back to the block boundary
 * at 16, so it copies 2-15 in 4 KiB pages and the stream's next fault,
 * at 16, copies a whole block, as do all after it: 1 + 63 faults, 14 +
 * 63 * 15 pre-copied. Page 0 stays shared.
 */
FIXTURE_VARIANT_ADD(precopy_large, fixed15_64k_from_page_1) {
	.pages = "15", .adaptive = "0", .size = "64kB",
	.pattern = ASCENDING_FROM_1,
	.faults = 1 + 63, .precopied = 14 + 63 * 15,
	.order = 4, .small_lo = 0, .small_hi = 16, .heads = 63,
};

/* A fixed window only looks upwards, at pages already copied. */
FIXTURE_VARIANT_ADD(precopy_large, fixed15_64k_descending) {
	.pages = "15", .adaptive = "0", .size = "64kB", .pattern = DESCENDING,
	.faults = LARGE_PAGES, .precopied = 0, .order = 0, .heads = 0,
};

/*
 * The adaptive ramp, ascending from page 0, W = 0 (limit 16): page 0
 * faults with window 0; 1 gets window 1 (pre-copies 2); 3 gets 2 (4, 5);
 * 6 gets 4 (7-10); 11 gets 8, cut back to the block boundary at 16
 * (12-15). None of those windows holds the fault's 64 KiB block, so pages
 * 0-15 are 4 KiB ones. From 16 on the window of 16 is the fault's block:
 * one fault and one folio per block. 5 + 63 faults, 1 + 2 + 4 + 4 + 63 *
 * 15 pre-copied.
 */
FIXTURE_VARIANT_ADD(precopy_large, adaptive_64k) {
	.pages = "0", .adaptive = "1", .size = "64kB", .pattern = ASCENDING,
	.faults = 5 + 63, .precopied = 1 + 2 + 4 + 4 + 63 * 15,
	.order = 4, .small_lo = 0, .small_hi = 16, .heads = 63,
};

/*
 * The same ramp downwards from page 1023: 1023 (window 0), 1022 (1: 1021),
 * 1020 (2: 1019, 1018), 1017 (4: 1016-1013), 1012 (8, cut back to the
 * block boundary at 1008: 1011-1008), then from 1007 on the block below
 * each fault, 1007 in [992, 1008) and so on down to 15 in [0, 16).
 */
FIXTURE_VARIANT_ADD(precopy_large, adaptive_64k_descending) {
	.pages = "0", .adaptive = "1", .size = "64kB", .pattern = DESCENDING,
	.faults = 5 + 63, .precopied = 1 + 2 + 4 + 4 + 63 * 15,
	.order = 4, .small_lo = LARGE_PAGES - 16, .small_hi = LARGE_PAGES,
	.heads = 63,
};

/*
 * W = 31: the ramp as above up to 16, whose window (16 by then) is its
 * block; from 32 on the window of 31 is the fault's block and the next:
 * 6 + 31 faults (0, 1, 3, 6, 11, 16, 32, 64, ..., 992), 1 + 2 + 4 + 4 +
 * 15 + 31 * 31 pre-copied.
 */
FIXTURE_VARIANT_ADD(precopy_large, adaptive31_64k) {
	.pages = "31", .adaptive = "1", .size = "64kB", .pattern = ASCENDING,
	.faults = 6 + 31, .precopied = 1 + 2 + 4 + 4 + 15 + 31 * 31,
	.order = 4, .small_lo = 0, .small_hi = 16, .heads = 63,
};

/*
 * 16 KiB: 0 (window 0), 1 (1: 2), 3 (2: 4, 5, no block fits), 6 (4, cut
 * back to the boundary at 8: 7), 8 (8: its block 8-11, then 12-15), then
 * from 16 on its block and three more: 5 + 63 faults, 1 + 2 + 1 + 7 + 63
 * * 15 pre-copied, pages 0-7 in 4 KiB folios.
 */
FIXTURE_VARIANT_ADD(precopy_large, adaptive_16k) {
	.pages = "0", .adaptive = "1", .size = "16kB", .pattern = ASCENDING,
	.faults = 5 + 63, .precopied = 1 + 2 + 1 + 7 + 63 * 15,
	.order = 2, .small_lo = 0, .small_hi = 8, .heads = (LARGE_PAGES - 8) / 4,
};

/* Scattered writes: the window never opens, nothing is pre-copied. */
FIXTURE_VARIANT_ADD(precopy_large, adaptive_64k_random) {
	.pages = "0", .adaptive = "1", .size = "64kB",
	.pattern = RANDOM_EIGHTH,
	.faults = LARGE_PAGES / 8, .precopied = 0, .order = 0, .heads = 0,
};

/* Both fixtures' setup: skip without the knobs, else set up @s. */
static void large_fixture_setup(struct __test_metadata *_metadata,
				struct large_state *s)
{
	const char *why = large_missing();
	int err;

	if (why)
		SKIP(return, "%s", why);
	err = large_setup(s);
	if (err)
		large_teardown(s);
	ASSERT_EQ(err, 0) TH_LOG("setup: %s", strerror(err));
}

FIXTURE_SETUP(precopy_large)
{
	large_fixture_setup(_metadata, &self->s);
}

FIXTURE_TEARDOWN_PARENT(precopy_large)
{
	large_teardown(&self->s);
}

TEST_F(precopy_large, folios_and_counts)
{
	struct large_state *s = &self->s;
	size_t n = large_pattern(variant->pattern, s->idx);

	large_fork(_metadata, s);
	large_write(_metadata, s, variant->size, variant->pages,
		    variant->adaptive, n);
	EXPECT_EQ(large_minflt(s), variant->faults);
	EXPECT_EQ(large_copies(s), variant->faults);
	EXPECT_EQ(large_precopied(s), variant->precopied);
	EXPECT_EQ(large_failed(s), 0);
	EXPECT_EQ(large_folios(s, variant->order, variant->small_lo,
			       variant->small_hi), variant->heads);
	large_finish(_metadata, s, LARGE_PAGES);
}

/* Single behaviours of pre-copy with 64 KiB folios enabled. */
FIXTURE(precopy_mthp) {
	struct large_state s;
};

FIXTURE_SETUP(precopy_mthp)
{
	large_fixture_setup(_metadata, &self->s);
}

FIXTURE_TEARDOWN_PARENT(precopy_mthp)
{
	large_teardown(&self->s);
}

/* MADV_NOHUGEPAGE: 4 KiB copies only, the counts of order 0. */
TEST_F(precopy_mthp, nohugepage_vma_uses_small_pages)
{
	struct large_state *s = &self->s;
	size_t n = large_pattern(ASCENDING, s->idx);

	ASSERT_EQ(madvise(s->mem, LARGE_PAGES * page_size(), MADV_NOHUGEPAGE),
		  0);
	large_fork(_metadata, s);
	large_write(_metadata, s, "64kB", "15", "0", n);
	EXPECT_EQ(large_minflt(s), LARGE_PAGES / 16);
	EXPECT_EQ(large_copies(s), LARGE_PAGES / 16);
	EXPECT_EQ(large_precopied(s), LARGE_PAGES / 16 * 15);
	EXPECT_EQ(large_failed(s), 0);
	EXPECT_EQ(large_folios(s, 0, 0, 0), 0);
	large_finish(_metadata, s, LARGE_PAGES);
}

/* How many of the first @nr pages are swap-backed, -1 on error. */
static long swapbacked_pages(const char *mem, size_t nr)
{
	int kpf = open("/proc/kpageflags", O_RDONLY);
	uint64_t flags;
	long n = 0;
	size_t i;

	if (kpf < 0)
		return -1;
	for (i = 0; i < nr && n >= 0; i++) {
		uint64_t pfn = cow_pfn(mem + i * page_size());

		if (!pfn || pread(kpf, &flags, sizeof(flags),
				  pfn * sizeof(flags)) != sizeof(flags))
			n = -1;
		else if (flags & (1ULL << KPF_SWAPBACKED))
			n++;
	}
	close(kpf);
	return n;
}

/*
 * Lazily freed pages (MADV_FREE in the parent after fork) are not
 * pre-copied, in a block or page by page; the written pages are copied
 * by their own faults. The parent's pages not written may read as zero
 * or as before: only the written ones, and the child's view, are checked.
 */
TEST_F(precopy_mthp, lazyfree_not_precopied)
{
	struct large_state *s = &self->s;
	size_t i;

	for (i = 0; i < LAZY_PAGES; i++)
		s->idx[i] = i;
	large_fork(_metadata, s);
	ASSERT_EQ(madvise(s->mem, LARGE_PAGES * page_size(), MADV_FREE), 0);
	/* The premise: the pages and their windows are lazily freed now. */
	ASSERT_EQ(swapbacked_pages(s->mem, LAZY_PAGES + 16), 0);
	large_write(_metadata, s, "64kB", "15", "0", LAZY_PAGES);
	EXPECT_EQ(large_minflt(s), LAZY_PAGES);
	EXPECT_EQ(large_copies(s), LAZY_PAGES);
	EXPECT_EQ(large_precopied(s), 0);
	EXPECT_EQ(large_folios(s, 0, 0, 0), 0);
	large_finish(_metadata, s, LAZY_PAGES);
}

/* What the near-limit writer saw, in memory shared with the test. */
struct memcg_result {
	struct cow_counts b, a;
	unsigned long usage;	/* memory.current before its writes */
};

/*
 * In CGROUP_TEST, fill memory up to half a MiB into the last eighth of
 * MEMCG_MAX, then write the first LAZY_PAGES pages of the region; the
 * exit code says whether they read right.
 */
static int memcg_writer(char *mem, struct memcg_result *res)
{
	static bool written[LAZY_PAGES];
	size_t want = MEMCG_MAX - MEMCG_MAX / 8 + (512UL << 10), fill, i;
	unsigned long cur;
	char *filler;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (cow_write_file(CGROUP_TEST "/cgroup.procs", "0"))
		return 3;
	cur = cow_read_ulong(CGROUP_TEST "/memory.current");
	if (cur >= want)
		return 4;
	fill = want - cur;
	filler = mmap(NULL, fill, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (filler == MAP_FAILED || madvise(filler, fill, MADV_NOHUGEPAGE))
		return 5;
	for (i = 0; i < fill; i += page_size())
		filler[i] = 1;
	res->usage = cow_read_ulong(CGROUP_TEST "/memory.current");
	cow_counts_before(&res->b, &res->a);
	for (i = 0; i < LAZY_PAGES; i++)
		mem[i * page_size() + OFF] = 0x5a;
	cow_get_counts(&res->a);
	for (i = 0; i < LAZY_PAGES; i++)
		written[i] = true;
	return region_ok("writer", mem, LAZY_PAGES, written) ? 6 : 0;
}

/*
 * A memory cgroup within an eighth of memory.max: no pre-copy, not even
 * of a 64 KiB block, and no OOM kill; every write copies its own page.
 */
TEST_F(precopy_mthp, memcg_near_limit_no_large_precopy)
{
	struct cow_precopy_knobs unused;
	struct memcg_result *res;
	char controllers[256] = "", max[32];
	int status;
	pid_t pid;

	if (cow_read_line(CGROUP_ROOT "/cgroup.controllers", controllers,
			  sizeof(controllers)) || !strstr(controllers, "memory"))
		SKIP(return, "no cgroup v2 memory controller");
	ASSERT_EQ(cow_write_file(CGROUP_ROOT "/cgroup.subtree_control",
				 "+memory"), 0);
	ASSERT_TRUE(!mkdir(CGROUP_TEST, 0755) || errno == EEXIST);
	self->s.cgroup = true;
	snprintf(max, sizeof(max), "%lu", MEMCG_MAX);
	ASSERT_EQ(cow_write_file(CGROUP_TEST "/memory.max", max), 0);
	/* Without swap nothing the writer has can be reclaimed. */
	cow_write_file(CGROUP_TEST "/memory.swap.max", "0");
	ASSERT_EQ(mthp_set("64kB", "always"), 0);
	ASSERT_EQ(cow_precopy_set(&unused, "15", "0"), 0);
	res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(res, MAP_FAILED);
	/* The writer's region is COW-shared with this process. */
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		_exit(memcg_writer(self->s.mem, res));
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("writer: %s %d", WIFSIGNALED(status) ? "signal" : "exit",
		       WIFSIGNALED(status) ? WTERMSIG(status) :
		       WEXITSTATUS(status));
	EXPECT_EQ(oom_kills(), 0);
	/* The premise: not even one page fit outside the last eighth. */
	ASSERT_GE(res->usage, MEMCG_MAX - MEMCG_MAX / 8);
	EXPECT_EQ(res->a.minflt - res->b.minflt, LAZY_PAGES);
	EXPECT_EQ(res->a.cow_copy - res->b.cow_copy, LAZY_PAGES);
	EXPECT_EQ(res->a.precopy - res->b.precopy, 0);
	/* Every fault tried and was refused. */
	EXPECT_GE(res->a.precopy_fail - res->b.precopy_fail, LAZY_PAGES)
		TH_LOG("cow_precopy_fail +%llu",
		       res->a.precopy_fail - res->b.precopy_fail);
	ksft_print_msg("near limit: cow_precopy_fail +%llu for %d faults\n",
		       res->a.precopy_fail - res->b.precopy_fail, LAZY_PAGES);
	EXPECT_EQ(region_ok("parent", self->s.mem, LARGE_PAGES, NULL), 0);
	munmap(res, sizeof(*res));
}

TEST_HARNESS_MAIN
