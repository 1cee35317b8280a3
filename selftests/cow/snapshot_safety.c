// SPDX-License-Identifier: GPL-2.0-only
/*
 * cow_snapshot(): safety against the rest of the memory manager.
 *
 * - fatal_signal: a SIGKILLed caller of a long snapshot stops copying
 *   (no pages counted in cow_snapshot_pages).
 * - map_count: vm.max_map_count bounds how often one page can be
 *   snapshotted; /proc/kpagecount follows the snapshots.
 * - large_folio: a PTE-mapped mTHP shared by a snapshot is never reused
 *   by a write on either side.
 * - madv_free: a snapshot of MADV_FREE'd memory keeps its data across
 *   memcg reclaim.
 * - pinned_memcg: pinned pages copied at the call in a memory cgroup at
 *   its limit: ENOMEM, nothing changed, no OOM kill.
 * - uffd_move: the page-table lock order of a snapshot against
 *   UFFDIO_MOVE, which runs under per-VMA locks only and so alongside a
 *   snapshot when its VMAs share the snapshot's PTE tables. An ABBA
 *   deadlock shows as a hang (of the whole machine: both sides spin), so
 *   these run last.
 *
 * Every test skips on a kernel without the system call. Most need root
 * (pagemap PFNs, sysctls, cgroups).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <linux/mman.h>
#include <linux/userfaultfd.h>
#include <liburing.h>

#include "kselftest_harness.h"
#include "cow_util.h"

#define PAGE		COW_SUBPAGE
#define SZ_2M		(2UL << 20)
#define SEED		7
#define SEED_NEW	8
#define OFF		128
#define CGROUP_ROOT	"/sys/fs/cgroup"
#define MAX_MAP_COUNT	"/proc/sys/vm/max_map_count"

#define KPF_COMPOUND_HEAD	15
#define KPF_COMPOUND_TAIL	16
#define KPF_THP			22

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t pfn(const void *addr)
{
	return cow_pfn(addr);
}

/* An entry of a /proc/kpage* file for @pfn; ~0 when it cannot be read. */
static uint64_t kpage(const char *file, uint64_t pfn)
{
	uint64_t v = ~0ULL;
	int fd = open(file, O_RDONLY);

	if (fd < 0)
		return ~0ULL;
	if (pread(fd, &v, sizeof(v), pfn * sizeof(v)) != sizeof(v))
		v = ~0ULL;
	close(fd);
	return v;
}

static uint64_t page_count_at(uint64_t pfn)
{
	return kpage("/proc/kpagecount", pfn);
}

static uint64_t page_flags_at(uint64_t pfn)
{
	return kpage("/proc/kpageflags", pfn);
}

#define MAPS_MAX	(256 * 1024)
static char maps_before[MAPS_MAX], maps_after[MAPS_MAX];

/* The VMAs of this process, as mm->map_count counts them. */
static int vma_count(void)
{
	return cow_vma_count(maps_after, MAPS_MAX);
}

/* The 2 MiB-aligned @n * 2 MiB inside a fresh PROT_NONE reservation. */
static char *reserve_2m(size_t n)
{
	char *p = mmap(NULL, (n + 1) * SZ_2M, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + SZ_2M - 1) & ~(SZ_2M - 1));
	if (a > p)
		munmap(p, a - p);
	munmap(a + n * SZ_2M, p + SZ_2M - a);
	return a;
}

/* A private anonymous read-write mapping exactly at @at, no THP. */
static int map_at(char *at, size_t len)
{
	if (mmap(at, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != at)
		return -1;
	return madvise(at, len, MADV_NOHUGEPAGE);
}

/* The cgroup v2 path of this process ("" for the root); 0 or -errno. */
static int own_cgroup(char *buf, size_t len)
{
	char line[512];

	if (cow_read_line("/proc/self/cgroup", line, sizeof(line)))
		return -ENOENT;
	if (strncmp(line, "0::", 3))
		return -EINVAL;
	snprintf(buf, len, "%s", strcmp(line + 3, "/") ? line + 3 : "");
	return 0;
}

/* A key of a "key value" file such as memory.events; -1 when absent. */
static long keyed(const char *path, const char *key)
{
	char line[128], k[64];
	long v = -1, val;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %ld", k, &val) == 2 && !strcmp(k, key))
			v = val;
	fclose(f);
	return v;
}

/*
 * A memory cgroup below this process's own one: its path in @path. 0,
 * or the reason to skip in @why and -1.
 */
static int memcg_make(char *path, size_t len, char *parent, size_t plen,
		      const char *name, const char **why)
{
	char buf[1024], ctl[256] = "";

	if (own_cgroup(parent, plen)) {
		*why = "no cgroup v2 hierarchy in /proc/self/cgroup";
		return -1;
	}
	snprintf(buf, sizeof(buf), CGROUP_ROOT "%s/cgroup.controllers",
		 parent);
	if (cow_read_line(buf, ctl, sizeof(ctl)) || !strstr(ctl, "memory")) {
		*why = "no cgroup v2 memory controller";
		return -1;
	}
	snprintf(buf, sizeof(buf), CGROUP_ROOT "%s/cgroup.subtree_control",
		 parent);
	if (cow_write_file(buf, "+memory")) {
		*why = "cannot enable +memory in cgroup.subtree_control";
		return -1;
	}
	snprintf(path, len, CGROUP_ROOT "%s/%s", parent, name);
	if (mkdir(path, 0755) && errno != EEXIST) {
		*why = "cannot create a cgroup";
		return -1;
	}
	return 0;
}

static int memcg_file(const char *cg, const char *file, const char *val)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s/%s", cg, file);
	return cow_write_file(buf, val);
}

/* Move this process to @cg (a cgroup directory); 0 or the errno. */
static int memcg_enter(const char *cg)
{
	return memcg_file(cg, "cgroup.procs", "0");
}

/* ------------------------------------------------------------------ */

/*
 * A fatal signal during a long snapshot, one that copies all the page
 * tables in the call (COW_SNAPSHOT_EAGER). A child builds a large range of
 * zero-page PTEs (cheaply: one chunk populated, then doubled by fixed
 * snapshots of itself), the last doubling timing the call, then waits to
 * be told to snapshot the whole range. The parent kills it a tenth of the
 * expected time after. A call that stops at the signal fails with EINTR
 * and adds nothing to cow_snapshot_pages; one that runs to the end adds
 * the whole range.
 */
#define FS_CHUNK	(64UL << 20)
#define FS_MAX		(128UL << 30)
#define FS_TARGET_S	2.0	/* wanted duration of the killed call */
#define FS_MIN_S	0.5	/* below this it cannot be hit mid-way */

struct fs_calib {
	size_t len;		/* of the range the killed call copies */
	double secs;		/* expected duration of that call */
	int err;		/* errno of a failed step, 0 if none */
};

static void fs_child(int res, int go)
{
	/* The call must copy the page tables itself: not asynchronously. */
	unsigned int flags = COW_SNAPSHOT_FIXED | cow_snapshot_eager_flag();
	struct fs_calib c = { 0 };
	char *base, ch;
	size_t len = FS_CHUNK;
	double t;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	base = mmap(NULL, FS_MAX, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED ||
	    mmap(base, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
		 -1, 0) != base ||
	    madvise(base, len, MADV_NOHUGEPAGE) ||
	    madvise(base, len, MADV_POPULATE_READ)) {
		c.err = errno;
		goto report;
	}
	/*
	 * One written page gives the VMA an anon_vma: without one, like
	 * fork(), the snapshot need not copy the page tables at all.
	 */
	base[0] = 1;
	/* Double until a call of the current size takes half the target. */
	while (2 * len <= FS_MAX) {
		munmap(base + len, len);
		t = now_s();
		if (cow_snapshot(base, len, base + len, flags) != base + len) {
			/* Out of memory for page tables: stay at this size. */
			if (!c.secs)
				c.err = errno;
			mmap(base + len, len, PROT_NONE, MAP_PRIVATE |
			     MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
			break;
		}
		t = now_s() - t;
		len *= 2;
		c.secs = 2 * t;
		if (t >= FS_TARGET_S / 2)
			break;
	}
	if (len >= FS_MAX) {
		/* The whole reservation is the range: no room for a copy. */
		len /= 2;
		munmap(base + len, len);
		c.secs /= 2;
	} else {
		munmap(base + len, len);
	}
	c.len = len;
report:
	if (write(res, &c, sizeof(c)) != sizeof(c) || c.err)
		_exit(2);
	if (read(go, &ch, 1) != 1)
		_exit(2);
	cow_snapshot(base, len, base + len, flags);
	_exit(0);
}

FIXTURE(fatal_signal) {
	pid_t pid;
};

FIXTURE_SETUP(fatal_signal)
{
	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
}

FIXTURE_TEARDOWN(fatal_signal)
{
	if (self->pid > 0) {
		kill(self->pid, SIGKILL);
		waitpid(self->pid, NULL, 0);
	}
}

TEST_F_TIMEOUT(fatal_signal, sigkill_stops_the_copy, 240)
{
	unsigned long long before, after, pages;
	struct fs_calib c;
	int res[2], go[2], status;
	double t0, t1;

	ASSERT_EQ(pipe(res), 0);
	ASSERT_EQ(pipe(go), 0);
	before = cow_vmstat("cow_snapshot_pages");
	self->pid = fork();
	ASSERT_GE(self->pid, 0);
	if (self->pid == 0) {
		close(res[0]);
		close(go[1]);
		fs_child(res[1], go[0]);
	}
	close(res[1]);
	close(go[0]);
	ASSERT_EQ(read(res[0], &c, sizeof(c)), sizeof(c));
	ASSERT_EQ(c.err, 0) TH_LOG("building the range: %s", strerror(c.err));
	ksft_print_msg("range %zu MiB, one snapshot of it: %.2f s\n",
		       c.len >> 20, c.secs);
	if (c.secs < FS_MIN_S)
		SKIP(return, "a snapshot of %zu MiB takes %.2f s, too short to kill mid-way",
		     c.len >> 20, c.secs);
	if (cow_vmstat("cow_snapshot_pages") == before)
		SKIP(return, "no cow_snapshot_pages counter in /proc/vmstat");
	pages = c.len / PAGE;
	before = cow_vmstat("cow_snapshot_pages");
	t0 = now_s();
	ASSERT_EQ(write(go[1], "g", 1), 1);
	usleep(c.secs / 10 * 1e6);
	t1 = now_s();
	ASSERT_EQ(kill(self->pid, SIGKILL), 0);
	ASSERT_EQ(waitpid(self->pid, &status, 0), self->pid);
	self->pid = 0;
	ksft_print_msg("killed %.2f s after go, dead %.2f s later (a call: %.2f s)\n",
		       t1 - t0, now_s() - t1, c.secs);
	after = cow_vmstat("cow_snapshot_pages");
	ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	EXPECT_EQ(after - before, 0)
		TH_LOG("cow_snapshot_pages +%llu of %llu: the killed call ran on",
		       after - before, pages);
}

/* ------------------------------------------------------------------ */

/*
 * vm.max_map_count bounds the snapshots of one page: each is a VMA.
 * The page's /proc/kpagecount is one more than the number of snapshots,
 * every one reads the data, a write to the source leaves them all with
 * it, and unmapping them all brings the count back to one.
 */
#define MC_EXTRA	500

FIXTURE(map_count) {
	char saved[32];
	char *src;
	char *snaps[MC_EXTRA + 8];
	int n;
};

FIXTURE_SETUP(map_count)
{
	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	ASSERT_EQ(cow_read_line(MAX_MAP_COUNT, self->saved,
				sizeof(self->saved)), 0);
	self->src = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->src, MAP_FAILED);
	ASSERT_EQ(madvise(self->src, PAGE, MADV_NOHUGEPAGE), 0);
	cow_fill(self->src, PAGE, SEED);
	if (!pfn(self->src))
		SKIP(return, "pagemap shows no PFNs (needs CAP_SYS_ADMIN)");
}

FIXTURE_TEARDOWN_PARENT(map_count)
{
	if (self->saved[0])
		cow_write_file(MAX_MAP_COUNT, self->saved);
}

static void mc_unmap_all(struct _test_data_map_count *self)
{
	while (self->n > 0)
		munmap(self->snaps[--self->n], PAGE);
}

/* Snapshot the page until the limit; how many before ENOMEM, or -1. */
static int mc_fill(struct __test_metadata *_metadata,
		   struct _test_data_map_count *self, int limit)
{
	int count;
	char *r;

	for (;;) {
		count = vma_count();
		if (count < 0)
			return -1;
		if (self->n == (int)ARRAY_SIZE(self->snaps)) {
			TH_LOG("no ENOMEM after %d snapshots", self->n);
			return -1;
		}
		r = cow_snapshot(self->src, PAGE, NULL, 0);
		if (r == MAP_FAILED) {
			if (errno != ENOMEM || count + 1 <= limit) {
				TH_LOG("snapshot %d: %s with %d VMAs, limit %d",
				       self->n, strerror(errno), count, limit);
				return -1;
			}
			return self->n;
		}
		self->snaps[self->n++] = r;
		if (count + 1 > limit) {
			TH_LOG("snapshot %d made with %d VMAs, limit %d",
			       self->n, count, limit);
			return -1;
		}
		if (vma_count() != count + 1) {
			TH_LOG("snapshot %d: %d VMAs, was %d", self->n,
			       vma_count(), count);
			return -1;
		}
	}
}

TEST_F_TIMEOUT(map_count, bounded_by_max_map_count, 120)
{
	uint64_t p = pfn(self->src), q;
	char val[32];
	int limit, n, i, bad;

	limit = vma_count() + MC_EXTRA;
	snprintf(val, sizeof(val), "%d", limit);
	ASSERT_EQ(cow_write_file(MAX_MAP_COUNT, val), 0);

	n = mc_fill(_metadata, self, limit);
	ASSERT_GT(n, 0);
	ksft_print_msg("%d snapshots of one page with vm.max_map_count %d\n",
		       n, limit);
	EXPECT_GE(n, MC_EXTRA - 8);
	EXPECT_EQ(page_count_at(p), 1 + n);
	for (i = 0, bad = 0; i < n; i++) {
		if (cow_check(self->snaps[i], PAGE, SEED) >= 0)
			bad++;
		if (pfn(self->snaps[i]) != p)
			bad++;
	}
	EXPECT_EQ(bad, 0) TH_LOG("snapshots with wrong data or page");
	mc_unmap_all(self);
	EXPECT_EQ(pfn(self->src), p);
	EXPECT_EQ(page_count_at(p), 1);

	/* Again, then write the source: every snapshot keeps the old data. */
	ASSERT_EQ(mc_fill(_metadata, self, limit), n);
	EXPECT_EQ(page_count_at(p), 1 + n);
	cow_fill(self->src, PAGE, SEED_NEW);
	q = pfn(self->src);
	EXPECT_NE(q, p);
	EXPECT_EQ(page_count_at(q), 1);
	EXPECT_EQ(page_count_at(p), n);
	EXPECT_EQ(cow_check(self->src, PAGE, SEED_NEW), -1);
	for (i = 0, bad = 0; i < n; i++)
		if (cow_check(self->snaps[i], PAGE, SEED) >= 0)
			bad++;
	EXPECT_EQ(bad, 0) TH_LOG("snapshots that saw the source's write");
	mc_unmap_all(self);
	EXPECT_EQ(page_count_at(q), 1);
	cow_write_file(MAX_MAP_COUNT, self->saved);
}

/* ------------------------------------------------------------------ */

/*
 * A PTE-mapped large folio shared by a snapshot. On 6.12 a write fault
 * never reuses a large anonymous folio (wp_can_reuse_anon_folio()), so a
 * write on one side copies the page; a kernel that tracked large folios
 * as exclusive per mm could reuse it and show the write on the other.
 */
#define LF_SIZE		(64UL << 10)
#define LF_PAGES	(LF_SIZE / PAGE)
#define LF_WRITTEN	5

FIXTURE(large_folio) {
	char *map, *mem, *snap;
};

FIXTURE_VARIANT(large_folio) {
	bool write_snapshot;
};

FIXTURE_VARIANT_ADD(large_folio, write_source) { .write_snapshot = false };
FIXTURE_VARIANT_ADD(large_folio, write_snapshot) { .write_snapshot = true };

FIXTURE_SETUP(large_folio)
{
	uint64_t f, p0;
	size_t i;

	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	self->map = mmap(NULL, 2 * LF_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->map, MAP_FAILED);
	self->mem = (char *)(((uintptr_t)self->map + LF_SIZE - 1) &
			     ~(LF_SIZE - 1));
	/* Exactly the aligned 64 KiB: no other folio size fits the VMA. */
	if (self->mem > self->map)
		munmap(self->map, self->mem - self->map);
	munmap(self->mem + LF_SIZE, self->map + LF_SIZE - self->mem);
	self->map = NULL;
	self->mem[0] = 1;
	cow_fill(self->mem, LF_SIZE, SEED);
	p0 = pfn(self->mem);
	if (!p0)
		SKIP(return, "pagemap shows no PFNs (needs CAP_SYS_ADMIN)");
	f = page_flags_at(p0);
	if (f == ~0ULL || !(f & (1ULL << KPF_COMPOUND_HEAD)))
		SKIP(return, "no 64 KiB mTHP (hugepages-64kB not enabled?)");
	for (i = 1; i < LF_PAGES; i++) {
		ASSERT_EQ(pfn(self->mem + i * PAGE), p0 + i);
		ASSERT_TRUE(page_flags_at(p0 + i) & (1ULL << KPF_COMPOUND_TAIL));
	}
	TH_LOG("kpageflags %#llx (THP %d)", (unsigned long long)f,
	       !!(f & (1ULL << KPF_THP)));
}

FIXTURE_TEARDOWN(large_folio)
{
	if (self->mem)
		munmap(self->mem, LF_SIZE);
	if (self->snap && self->snap != MAP_FAILED)
		munmap(self->snap, LF_SIZE);
}

TEST_F(large_folio, write_copies_the_page)
{
	char *w, *o;	/* the side written, the other */
	uint64_t p[LF_PAGES];
	size_t i;
	int moved = 0, shared = 0;

	for (i = 0; i < LF_PAGES; i++)
		p[i] = pfn(self->mem + i * PAGE);
	self->snap = cow_snapshot(self->mem, LF_SIZE, NULL, 0);
	ASSERT_NE(self->snap, MAP_FAILED) TH_LOG("%s", strerror(errno));
	ASSERT_EQ(cow_check(self->snap, LF_SIZE, SEED), -1);
	for (i = 0; i < LF_PAGES; i++)
		ASSERT_EQ(pfn(self->snap + i * PAGE), p[i]);

	w = variant->write_snapshot ? self->snap : self->mem;
	o = variant->write_snapshot ? self->mem : self->snap;
	w[LF_WRITTEN * PAGE + OFF] = 0x5a;

	EXPECT_EQ(cow_check(o, LF_SIZE, SEED), -1)
		TH_LOG("the other side saw the write");
	EXPECT_EQ(o[LF_WRITTEN * PAGE + OFF], 0);
	EXPECT_EQ(w[LF_WRITTEN * PAGE + OFF], 0x5a);
	EXPECT_EQ(cow_check(w, LF_SIZE, SEED), -1);
	for (i = 0; i < LF_PAGES; i++) {
		if (pfn(o + i * PAGE) != p[i])
			moved++;
		if (i != LF_WRITTEN && pfn(w + i * PAGE) == p[i])
			shared++;
	}
	EXPECT_NE(pfn(w + LF_WRITTEN * PAGE), p[LF_WRITTEN])
		TH_LOG("the written page was not copied");
	EXPECT_EQ(moved, 0) TH_LOG("pages of the other side changed");
	EXPECT_EQ(shared, LF_PAGES - 1) TH_LOG("pages left shared");
}

/* ------------------------------------------------------------------ */

/*
 * A snapshot of MADV_FREE'd memory reads the data of the call, and keeps
 * it when memcg reclaim frees the lazily freed pages: whether the source
 * was written since (every page copied, the snapshot alone maps the old
 * pages) or not (both map them).
 */
#define MF_PAGES	1536

FIXTURE(madv_free) {
	char parent[512], cg[640];
	bool entered;
	char *mem, *snap;
};

FIXTURE_VARIANT(madv_free) {
	bool write_source;
};

FIXTURE_VARIANT_ADD(madv_free, source_written) { .write_source = true };
FIXTURE_VARIANT_ADD(madv_free, source_untouched) { .write_source = false };

FIXTURE_SETUP(madv_free)
{
	const char *why;

	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	if (memcg_make(self->cg, sizeof(self->cg), self->parent,
		       sizeof(self->parent), "cow_snapshot_safety_mf", &why))
		SKIP(return, "%s", why);
	/* Before allocating: the pages are charged here and reclaimed here. */
	ASSERT_EQ(memcg_enter(self->cg), 0);
	self->entered = true;
}

FIXTURE_TEARDOWN(madv_free)
{
	char buf[600];

	if (self->mem && self->mem != MAP_FAILED)
		munmap(self->mem, MF_PAGES * PAGE);
	if (self->snap && self->snap != MAP_FAILED)
		munmap(self->snap, MF_PAGES * PAGE);
	if (self->entered) {
		snprintf(buf, sizeof(buf), CGROUP_ROOT "%s", self->parent);
		memcg_enter(buf);
	}
	if (self->cg[0])
		rmdir(self->cg);
}

TEST_F_TIMEOUT(madv_free, snapshot_survives_reclaim, 120)
{
	size_t len = MF_PAGES * PAGE, i;
	long before, after, bad;
	int err;

	self->mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->mem, MAP_FAILED);
	ASSERT_EQ(madvise(self->mem, len, MADV_NOHUGEPAGE), 0);
	cow_fill(self->mem, len, SEED);
	ASSERT_EQ(madvise(self->mem, len, MADV_FREE), 0);
	self->snap = cow_snapshot(self->mem, len, NULL, 0);
	ASSERT_NE(self->snap, MAP_FAILED) TH_LOG("%s", strerror(errno));
	ASSERT_EQ(cow_check(self->snap, len, SEED), -1);
	if (variant->write_source)
		for (i = 0; i < MF_PAGES; i++)
			self->mem[i * PAGE + OFF] = 0x5a;

	before = cow_smaps_kb(self->snap, "Rss");
	err = memcg_file(self->cg, "memory.reclaim", "1G");
	ASSERT_TRUE(err == 0 || err == EAGAIN) TH_LOG("memory.reclaim: %s",
						      strerror(err));
	after = cow_smaps_kb(self->snap, "Rss");
	ksft_print_msg("snapshot Rss %ld kB before reclaim, %ld kB after\n",
		       before, after);

	bad = cow_check(self->snap, len, SEED);
	EXPECT_EQ(bad, -1) TH_LOG("snapshot sub-page %ld: %#llx, want %#llx",
				  bad, bad < 0 ? 0ULL : (unsigned long long)
				  *(uint64_t *)(self->snap + bad * PAGE),
				  (unsigned long long)cow_word(SEED,
							       bad < 0 ? 0 : bad,
							       0));
	for (i = 0, bad = 0; i < MF_PAGES; i++)
		if (!*(uint64_t *)(self->snap + i * PAGE) &&
		    !*(uint64_t *)(self->snap + (i + 1) * PAGE - 8))
			bad++;
	EXPECT_EQ(bad, 0) TH_LOG("%ld of %d snapshot pages read zeros", bad,
				 MF_PAGES);
	if (variant->write_source)
		for (i = 0, bad = 0; i < MF_PAGES; i++)
			bad += self->mem[i * PAGE + OFF] != 0x5a;
	else
		bad = 0;
	EXPECT_EQ(bad, 0) TH_LOG("source pages lost the write");
}

/* ------------------------------------------------------------------ */

/*
 * Pinned pages (io_uring fixed buffers) are copied at the call. In a
 * memory cgroup with room for the source but not for the copy (and no
 * swap), the call must fail with ENOMEM and change nothing: the caller
 * must not be OOM-killed. The caller is a child, so that an OOM kill
 * shows as its death by SIGKILL.
 */
#define PM_LEN		(4UL << 20)
#define PM_MAX		"6M"

struct pm_result {
	int stage;		/* how far the child got */
	long ret;
	int err;
	int maps_same;
	long bad;
};

FIXTURE(pinned_memcg) {
	char parent[512], cg[640];
	struct pm_result *res;
};

FIXTURE_SETUP(pinned_memcg)
{
	const char *why;

	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	if (memcg_make(self->cg, sizeof(self->cg), self->parent,
		       sizeof(self->parent), "cow_snapshot_safety_pm", &why))
		SKIP(return, "%s", why);
	ASSERT_EQ(memcg_file(self->cg, "memory.max", PM_MAX), 0);
	if (memcg_file(self->cg, "memory.swap.max", "0"))
		TH_LOG("no memory.swap.max: swap may hide the limit");
	/* Shared, faulted here: charged to this cgroup, not the child's. */
	self->res = mmap(NULL, sizeof(*self->res), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->res, MAP_FAILED);
	memset(self->res, 0, sizeof(*self->res));
}

FIXTURE_TEARDOWN(pinned_memcg)
{
	if (self->res && self->res != MAP_FAILED)
		munmap(self->res, sizeof(*self->res));
	if (self->cg[0])
		rmdir(self->cg);
}

static void pm_child(const char *cg, struct pm_result *res)
{
	struct io_uring ring;
	struct iovec iov;
	char *mem;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (memcg_enter(cg))
		_exit(10);
	res->stage = 1;
	mem = mmap(NULL, PM_LEN, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || madvise(mem, PM_LEN, MADV_NOHUGEPAGE))
		_exit(11);
	cow_fill(mem, PM_LEN, SEED);
	if (io_uring_queue_init(4, &ring, 0))
		_exit(12);
	iov.iov_base = mem;
	iov.iov_len = PM_LEN;
	if (io_uring_register_buffers(&ring, &iov, 1))
		_exit(13);
	res->stage = 2;
	if (cow_read_file("/proc/self/maps", maps_before, MAPS_MAX) < 0 ||
	    cow_read_file("/proc/self/maps", maps_before, MAPS_MAX) < 0)
		_exit(14);
	res->ret = cow_snapshot_sys((unsigned long)mem, PM_LEN, 0, 0);
	res->err = errno;
	res->stage = 3;
	if (cow_read_file("/proc/self/maps", maps_after, MAPS_MAX) < 0)
		_exit(15);
	res->maps_same = !strcmp(maps_before, maps_after);
	res->bad = cow_check(mem, PM_LEN, SEED);
	res->stage = 4;
	_exit(0);
}

TEST_F_TIMEOUT(pinned_memcg, enomem_not_oom_kill, 120)
{
	char events[700];
	long kills0, kills1;
	int status;
	pid_t pid;

	snprintf(events, sizeof(events), "%s/memory.events", self->cg);
	kills0 = keyed(events, "oom_kill");
	ASSERT_GE(kills0, 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0)
		pm_child(self->cg, self->res);
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	kills1 = keyed(events, "oom_kill");
	ASSERT_FALSE(WIFSIGNALED(status))
		TH_LOG("the caller was killed by signal %d at stage %d (oom_kill %ld -> %ld)",
		       WTERMSIG(status), self->res->stage, kills0, kills1);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("child exit %d at stage %d", WEXITSTATUS(status),
		       self->res->stage);
	EXPECT_EQ(self->res->ret, -1)
		TH_LOG("the snapshot succeeded at %#lx", self->res->ret);
	EXPECT_EQ(self->res->err, ENOMEM) TH_LOG("errno %s",
						 strerror(self->res->err));
	EXPECT_TRUE(self->res->maps_same) TH_LOG("the address space changed");
	EXPECT_EQ(self->res->bad, -1) TH_LOG("source sub-page %ld changed",
					     self->res->bad);
	EXPECT_EQ(kills1, kills0);
}

/* ------------------------------------------------------------------ */

/*
 * Page-table lock order against UFFDIO_MOVE. Two 2 MiB-aligned 2 MiB
 * regions T1 and T2, each covered by one PTE table. T1 holds the source
 * S and a userfaultfd-registered neighbour X, T2 the fixed destination D
 * and a registered neighbour Y. One thread moves X's pages to Y and back
 * (double_pt_lock(): T1's and T2's PTLs, ordered by address, under the
 * per-VMA locks of X and Y only), the other snapshots S to D and unmaps
 * D (the destination's PTL, then the source's). The variants run the
 * snapshot from T1 to T2 and from T2 to T1, so that whatever the order
 * of the two PTLs in memory, one of them takes them against the move.
 */
#define UM_SRC_PAGES	256
#define UM_MOVE_PAGES	16
#define UM_SECONDS	20
/*
 * S (or D) and X (or Y) in their region, PROT_NONE around them: a hole
 * left at D must not be where the kernel puts a thread stack.
 */
#define UM_SRC_OFF	(256UL << 10)
#define UM_NEIGH_OFF	(1536UL << 10)

FIXTURE(uffd_move) {
	char *t[2];
	int uffd;
};

FIXTURE_VARIANT(uffd_move) {
	int src;	/* which region holds S (and X) */
};

FIXTURE_VARIANT_ADD(uffd_move, t1_to_t2) { .src = 0 };
FIXTURE_VARIANT_ADD(uffd_move, t2_to_t1) { .src = 1 };

FIXTURE_SETUP(uffd_move)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_MOVE,
	};
	struct uffdio_register reg = {
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	char *base;
	int i;

	self->uffd = -1;
	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	self->uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (self->uffd < 0)
		SKIP(return, "userfaultfd: %s", strerror(errno));
	if (ioctl(self->uffd, UFFDIO_API, &api) ||
	    !(api.features & UFFD_FEATURE_MOVE))
		SKIP(return, "no UFFD_FEATURE_MOVE");
	base = reserve_2m(2);
	ASSERT_NE(base, NULL);
	self->t[0] = base;
	self->t[1] = base + SZ_2M;
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(map_at(self->t[i] + UM_SRC_OFF,
				 UM_SRC_PAGES * PAGE), 0);
		ASSERT_EQ(map_at(self->t[i] + UM_NEIGH_OFF,
				 UM_MOVE_PAGES * PAGE), 0);
	}
	/*
	 * X: the moved pages, S: the source, written before X is registered
	 * (a missing page of a registered VMA would wait for a handler).
	 * D: free, its region's PTE table kept by Y.
	 */
	cow_fill(self->t[variant->src] + UM_NEIGH_OFF, UM_MOVE_PAGES * PAGE,
		 SEED_NEW);
	cow_fill(self->t[variant->src] + UM_SRC_OFF, UM_SRC_PAGES * PAGE,
		 SEED);
	ASSERT_EQ(munmap(self->t[!variant->src] + UM_SRC_OFF,
			 UM_SRC_PAGES * PAGE), 0);
	for (i = 0; i < 2; i++) {
		reg.range.start = (unsigned long)self->t[i] + UM_NEIGH_OFF;
		reg.range.len = UM_MOVE_PAGES * PAGE;
		ASSERT_EQ(ioctl(self->uffd, UFFDIO_REGISTER, &reg), 0);
	}
}

FIXTURE_TEARDOWN(uffd_move)
{
	if (self->uffd >= 0)
		close(self->uffd);
	if (self->t[0])
		munmap(self->t[0], 2 * SZ_2M);
}

struct um_mover {
	int uffd;
	char *x, *y;
	int *stop;		/* read and set with __atomic builtins */
	unsigned long *snap_seq;	/* odd while a snapshot is in flight */
	unsigned long rounds, eagain, overlapped;
	int err;		/* errno of a failed move, 0 if none */
	long bad;		/* sub-page that lost its data, -1 if none */
};

/* Move [from, from + len) to @to, page by page where one is busy. */
static int um_move(struct um_mover *m, char *from, char *to, size_t len)
{
	size_t done = 0;

	while (done < len) {
		struct uffdio_move mv = {
			.dst = (unsigned long)to + done,
			.src = (unsigned long)from + done,
			.len = len - done,
		};
		unsigned long seq = __atomic_load_n(m->snap_seq,
						    __ATOMIC_ACQUIRE);
		int ret = ioctl(m->uffd, UFFDIO_MOVE, &mv);

		/* Only a hint that the two ran at once; never asserted. */
		if ((seq & 1) &&
		    __atomic_load_n(m->snap_seq, __ATOMIC_ACQUIRE) == seq)
			m->overlapped++;
		if (ret == 0) {
			done += mv.move;
			continue;
		}
		if (mv.move > 0)
			done += mv.move;
		if (errno == EAGAIN) {
			m->eagain++;
			continue;
		}
		return errno;
	}
	return 0;
}

static void *um_mover_run(void *arg)
{
	struct um_mover *m = arg;
	size_t len = UM_MOVE_PAGES * PAGE;

	while (!__atomic_load_n(m->stop, __ATOMIC_ACQUIRE)) {
		m->err = um_move(m, m->x, m->y, len);
		if (m->err)
			break;
		m->err = um_move(m, m->y, m->x, len);
		if (m->err)
			break;
		m->rounds++;
		if (m->rounds % 64 == 0) {
			m->bad = cow_check(m->x, len, SEED_NEW);
			if (m->bad >= 0)
				break;
		}
	}
	__atomic_store_n(m->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

TEST_F_TIMEOUT(uffd_move, ptl_order_no_deadlock, 120)
{
	char *s = self->t[variant->src] + UM_SRC_OFF;
	char *d = self->t[!variant->src] + UM_SRC_OFF;
	size_t len = UM_SRC_PAGES * PAGE;
	unsigned long snaps = 0, seq = 0;
	int stop = 0;
	struct um_mover m = {
		.snap_seq = &seq,
		.uffd = self->uffd,
		.x = self->t[variant->src] + UM_NEIGH_OFF,
		.y = self->t[!variant->src] + UM_NEIGH_OFF,
		.stop = &stop,
		.bad = -1,
	};
	long bad = -1;
	double end;
	pthread_t th;
	char *r;

	ASSERT_EQ(pthread_create(&th, NULL, um_mover_run, &m), 0);
	end = now_s() + UM_SECONDS;
	while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE) && now_s() < end) {
		__atomic_add_fetch(&seq, 1, __ATOMIC_RELEASE);
		r = cow_snapshot(s, len, d, COW_SNAPSHOT_FIXED);
		__atomic_add_fetch(&seq, 1, __ATOMIC_RELEASE);
		if (r != d) {
			TH_LOG("snapshot %lu: %s", snaps, strerror(errno));
			break;
		}
		bad = cow_check(d, len, SEED);
		if (bad >= 0)
			break;
		if (munmap(d, len))
			break;
		snaps++;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	ksft_print_msg("%lu snapshots, %lu move rounds (%lu EAGAIN, %lu in a call)\n",
		       snaps, m.rounds, m.eagain, m.overlapped);
	EXPECT_EQ(bad, -1) TH_LOG("snapshot %lu: sub-page %ld differs",
				  snaps, bad);
	EXPECT_EQ(m.err, 0) TH_LOG("UFFDIO_MOVE: %s", strerror(m.err));
	EXPECT_EQ(m.bad, -1) TH_LOG("moved page %ld lost its data", m.bad);
	EXPECT_GT(snaps, 0);
	EXPECT_GT(m.rounds, 0);
	EXPECT_EQ(cow_check(s, len, SEED), -1);
	EXPECT_EQ(cow_check(m.x, UM_MOVE_PAGES * PAGE, SEED_NEW), -1);
}

TEST_HARNESS_MAIN
