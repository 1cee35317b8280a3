// SPDX-License-Identifier: GPL-2.0-only
/*
 * Sampled COW latency instrumentation: vm.cow_latency_sample,
 * vm.cow_latency_warn_ns, /sys/kernel/debug/cow/latency, the cow:cow_copy
 * tracepoint and the cow_copy / cow_reuse vmstat counters.
 *
 * Exact counts need a quiet window: after fork() every first write to a
 * page of the test's own stack, heap or data is a COW fault too. The
 * parent takes throw-away snapshots into both result buffers first (that
 * writes the deepest stack and every buffer the measuring uses); the
 * child makes its system calls once before it says it is ready.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <linux/mman.h>

#include "kselftest_harness.h"
#include "cow_util.h"

#define SAMPLE_PATH	"/proc/sys/vm/cow_latency_sample"
#define WARN_PATH	"/proc/sys/vm/cow_latency_warn_ns"
#define HIST_PATH	"/sys/kernel/debug/cow/latency"
#define TRACE_DIR	"/sys/kernel/tracing"
#define NR_BUCKETS	40
/* klogctl() actions, from include/linux/syslog.h (glibc has no names). */
#define SYSLOG_ACTION_READ_ALL		3
#define SYSLOG_ACTION_SIZE_BUFFER	10
#define NR_PAGES	32
/* A 1 GiB clear plus a 1 GiB COW copy take ~6 s under QEMU TCG. */
#define TEST_TIMEOUT	120

enum { PTE, PMD_COPY, PMD_SPLIT, HUGETLB_2M, HUGETLB_1G, MTHP_O2, MTHP_O3, MTHP_O4, NR_CLASSES };
enum { ALLOC, COPY, MAP, PRECOPY, TOTAL, NR_PHASES };

static const char * const class_name[NR_CLASSES] = {
	"pte", "pmd_copy", "pmd_split", "hugetlb_2m", "hugetlb_1g",
	"mthp_o2", "mthp_o3", "mthp_o4",
};

static const char * const phase_name[NR_PHASES] = {
	"alloc", "copy", "map", "precopy", "total",
};

/*
 * How many events of phase @p that @n copies without pre-copy record
 * (the fixture turns pre-copy off): all phases but precopy.
 */
static unsigned long long no_precopy(int p, unsigned long long n)
{
	return p == PRECOPY ? 0 : n;
}

struct snap {
	unsigned long long count[NR_CLASSES][NR_PHASES];
	unsigned long long cow_copy, cow_reuse;
	int lines;	/* well-formed data lines */
	int bad;	/* malformed or inconsistent lines */
	int sample;	/* from the "# sample N" comment, -1 if missing */
};

/* Buffers live outside the stack and heap the workload keeps shared. */
static char line[4096];

static int lookup(const char * const *names, int n, const char *s)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(names[i], s))
			return i;
	return -1;
}

static void parse_hist_line(struct snap *s)
{
	unsigned long long count, sum, max, b, bsum = 0;
	char cls[32], ph[32];
	int off, n, c, p, nb = 0;
	char *q;

	if (sscanf(line, "# sample %d", &s->sample) == 1 || line[0] == '#')
		return;
	if (sscanf(line, "%31s %31s %llu %llu %llu%n", cls, ph, &count, &sum,
		   &max, &off) != 5) {
		s->bad++;
		return;
	}
	for (q = line + off; sscanf(q, " %llu%n", &b, &n) == 1; q += n) {
		bsum += b;
		nb++;
	}
	c = lookup(class_name, NR_CLASSES, cls);
	p = lookup(phase_name, NR_PHASES, ph);
	/* Buckets add up to the count; the max bounds the mean. */
	if (c < 0 || p < 0 || nb != NR_BUCKETS || bsum != count ||
	    max > sum || (count && sum > max * count)) {
		s->bad++;
		return;
	}
	s->count[c][p] = count;
	s->lines++;
}

static void snapshot(struct snap *s)
{
	FILE *f = fopen(HIST_PATH, "r");

	memset(s, 0, sizeof(*s));
	s->sample = -1;
	if (f) {
		while (fgets(line, sizeof(line), f))
			parse_hist_line(s);
		fclose(f);
	}
	s->cow_copy = cow_vmstat("cow_copy");
	s->cow_reuse = cow_vmstat("cow_reuse");
}

static long read_long(const char *path)
{
	long v = -1;
	FILE *f = fopen(path, "r");

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int set_long(const char *path, long v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%ld", v);
	return cow_write_file(path, buf);
}

enum child_mode { CHILD_WAITS, CHILD_EXITS };

/*
 * Fork; with CHILD_WAITS the child keeps everything shared until the
 * parent is done, with CHILD_EXITS it is gone before the parent writes
 * (so the writes reuse instead of copy). The parent writes one byte at
 * the start of each of @n pieces of @step bytes between two snapshots.
 * Returns 0, or -1 if fork/pipe failed.
 */
static int cow_writes(char *mem, size_t n, size_t step, enum child_mode mode,
		      struct snap *before, struct snap *after)
{
	int ready[2], go[2];
	size_t i;
	pid_t pid;
	char c;

	if (pipe(ready) || pipe(go))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (mode == CHILD_EXITS)
			_exit(0);
		/* A zero-length read touches the stack the real one will. */
		if (read(go[0], &c, 0) || write(ready[1], "r", 1) != 1 ||
		    read(go[0], &c, 1) != 1)
			_exit(1);
		_exit(0);
	}
	if (mode == CHILD_EXITS)
		waitpid(pid, NULL, 0);
	else if (read(ready[0], &c, 1) != 1)
		return -1;
	/* Throw-away snapshots: break COW on the measuring's own pages. */
	snapshot(before);
	snapshot(after);
	snapshot(before);
	for (i = 0; i < n; i++)
		mem[i * step] = 0x5a;
	snapshot(after);
	if (mode == CHILD_WAITS) {
		if (write(go[1], "g", 1) != 1)
			return -1;
		waitpid(pid, NULL, 0);
	}
	close(ready[0]);
	close(ready[1]);
	close(go[0]);
	close(go[1]);
	return 0;
}

static unsigned long long delta(struct snap *a, struct snap *b, int c, int p)
{
	return b->count[c][p] - a->count[c][p];
}

static char *map_4k_pages(size_t n)
{
	char *mem = mmap(NULL, n * getpagesize(), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (mem == MAP_FAILED)
		return NULL;
	/* Small folios only: every mTHP size is enabled in the guest. */
	if (madvise(mem, n * getpagesize(), MADV_NOHUGEPAGE)) {
		munmap(mem, n * getpagesize());
		return NULL;
	}
	cow_fill(mem, n * getpagesize(), 1);
	return mem;
}

FIXTURE(cow_latency) {
	long saved_sample;
	long saved_warn;
	struct cow_precopy_knobs precopy;
	struct snap before, after;
};

FIXTURE_SETUP(cow_latency)
{
	if (access(SAMPLE_PATH, F_OK))
		SKIP(return, "vm.cow_latency_sample not in this kernel");
	if (access(HIST_PATH, F_OK))
		SKIP(return, "%s missing (debugfs not mounted?)", HIST_PATH);
	self->saved_sample = read_long(SAMPLE_PATH);
	self->saved_warn = read_long(WARN_PATH);
	/* Every copy takes its own fault here. */
	ASSERT_EQ(cow_precopy_set(&self->precopy, "0", "0"), 0);
	ASSERT_EQ(cow_write_file(HIST_PATH, "reset"), 0);
}

FIXTURE_TEARDOWN(cow_latency)
{
	cow_precopy_restore(&self->precopy);
	if (self->saved_sample >= 0)
		set_long(SAMPLE_PATH, self->saved_sample);
	if (self->saved_warn >= 0)
		set_long(WARN_PATH, self->saved_warn);
}

/* sample=1: each 4 KiB COW copy is timed once, in every phase. */
TEST_F(cow_latency, sample_1_times_every_4k_copy)
{
	char *mem = map_4k_pages(NR_PAGES);
	int p;

	ASSERT_NE(mem, NULL);
	ASSERT_EQ(set_long(SAMPLE_PATH, 1), 0);
	ASSERT_EQ(cow_writes(mem, NR_PAGES, getpagesize(), CHILD_WAITS,
			     &self->before, &self->after), 0);
	for (p = 0; p < NR_PHASES; p++)
		EXPECT_EQ(delta(&self->before, &self->after, PTE, p),
			  no_precopy(p, NR_PAGES))
			TH_LOG("pte %s", phase_name[p]);
	EXPECT_EQ(self->after.cow_copy - self->before.cow_copy, NR_PAGES);
	EXPECT_EQ(self->after.cow_reuse - self->before.cow_reuse, 0);
	munmap(mem, NR_PAGES * getpagesize());
}

/* sample=0: nothing is timed, but cow_copy still counts every copy. */
TEST_F(cow_latency, sample_0_times_nothing_but_counts)
{
	char *mem = map_4k_pages(NR_PAGES);
	int c, p;

	ASSERT_NE(mem, NULL);
	ASSERT_EQ(set_long(SAMPLE_PATH, 0), 0);
	ASSERT_EQ(cow_write_file(HIST_PATH, "reset"), 0);
	ASSERT_EQ(cow_writes(mem, NR_PAGES, getpagesize(), CHILD_WAITS,
			     &self->before, &self->after), 0);
	for (c = 0; c < NR_CLASSES; c++)
		for (p = 0; p < NR_PHASES; p++)
			EXPECT_EQ(self->after.count[c][p], 0)
				TH_LOG("%s %s", class_name[c], phase_name[p]);
	EXPECT_EQ(self->after.cow_copy - self->before.cow_copy, NR_PAGES);
	munmap(mem, NR_PAGES * getpagesize());
}

/* sample=N: about one event in N, give or take one per CPU. */
TEST_F(cow_latency, sample_n_times_one_in_n)
{
	const int n = 4, pages = 4 * NR_PAGES;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	char *mem = map_4k_pages(pages);
	long long got;

	ASSERT_NE(mem, NULL);
	ASSERT_EQ(set_long(SAMPLE_PATH, n), 0);
	ASSERT_EQ(cow_writes(mem, pages, getpagesize(), CHILD_WAITS,
			     &self->before, &self->after), 0);
	got = delta(&self->before, &self->after, PTE, TOTAL);
	EXPECT_GE(got, pages / n - cpus);
	EXPECT_LE(got, pages / n + cpus);
	EXPECT_EQ(self->after.cow_copy - self->before.cow_copy, pages);
	munmap(mem, pages * getpagesize());
}

/* Writes after the child exited reuse the pages: cow_reuse, no copy. */
TEST_F(cow_latency, reuse_counted_when_no_longer_shared)
{
	char *mem = map_4k_pages(NR_PAGES);

	ASSERT_NE(mem, NULL);
	ASSERT_EQ(set_long(SAMPLE_PATH, 1), 0);
	ASSERT_EQ(cow_writes(mem, NR_PAGES, getpagesize(), CHILD_EXITS,
			     &self->before, &self->after), 0);
	EXPECT_EQ(self->after.cow_reuse - self->before.cow_reuse, NR_PAGES);
	EXPECT_EQ(self->after.cow_copy - self->before.cow_copy, 0);
	EXPECT_EQ(delta(&self->before, &self->after, PTE, TOTAL), 0);
	munmap(mem, NR_PAGES * getpagesize());
}

/* "reset" zeroes every histogram; any other write is EINVAL. */
TEST_F(cow_latency, reset_zeroes_every_histogram)
{
	char *mem = map_4k_pages(NR_PAGES);
	int c, p;

	ASSERT_NE(mem, NULL);
	ASSERT_EQ(set_long(SAMPLE_PATH, 1), 0);
	ASSERT_EQ(cow_writes(mem, NR_PAGES, getpagesize(), CHILD_WAITS,
			     &self->before, &self->after), 0);
	ASSERT_GE(self->after.count[PTE][TOTAL], NR_PAGES);
	ASSERT_EQ(set_long(SAMPLE_PATH, 0), 0);
	EXPECT_EQ(cow_write_file(HIST_PATH, "bogus"), EINVAL);
	snapshot(&self->before);
	EXPECT_EQ(self->before.count[PTE][TOTAL], self->after.count[PTE][TOTAL]);
	EXPECT_EQ(cow_write_file(HIST_PATH, "reset\n"), 0);
	snapshot(&self->after);
	for (c = 0; c < NR_CLASSES; c++)
		for (p = 0; p < NR_PHASES; p++)
			EXPECT_EQ(self->after.count[c][p], 0);
	munmap(mem, NR_PAGES * getpagesize());
}

/* One line per class and phase, every line well formed and consistent. */
TEST_F(cow_latency, histogram_file_parses)
{
	char *mem = map_4k_pages(NR_PAGES);

	ASSERT_NE(mem, NULL);
	ASSERT_EQ(set_long(SAMPLE_PATH, 3), 0);
	ASSERT_EQ(cow_writes(mem, NR_PAGES, getpagesize(), CHILD_WAITS,
			     &self->before, &self->after), 0);
	EXPECT_EQ(self->after.lines, NR_CLASSES * NR_PHASES);
	EXPECT_EQ(self->after.bad, 0);
	EXPECT_EQ(self->after.sample, 3);
	munmap(mem, NR_PAGES * getpagesize());
}

/*
 * One write to a shared PMD-mapped THP under vm.cow_thp_mode @mode (NULL:
 * a kernel without the knob, which always splits). False when skipped.
 */
static bool thp_cow_write(struct __test_metadata *_metadata,
			  struct snap *before, struct snap *after,
			  const char *mode)
{
	size_t pmd = read_pmd_pagesize();
	char saved[16] = "";
	char *map, *mem;

	if (!pmd)
		SKIP(return false, "THP not supported");
	if (mode && cow_read_line(COW_THP_MODE_PATH, saved, sizeof(saved)))
		SKIP(return false, "vm.cow_thp_mode not in this kernel");
	mem = cow_map_thp(pmd, &map);
	ASSERT_NE(mem, NULL);
	cow_fill(mem, pmd, 1);
	if (cow_smaps_kb(mem, "AnonHugePages") < (long)(pmd / 1024)) {
		munmap(map, 2 * pmd);
		SKIP(return false, "no PMD-mapped THP populated");
	}
	if (mode)
		ASSERT_EQ(cow_write_file(COW_THP_MODE_PATH, mode), 0);
	ASSERT_EQ(set_long(SAMPLE_PATH, 1), 0);
	EXPECT_EQ(cow_writes(mem, 1, pmd, CHILD_WAITS, before, after), 0);
	if (mode)
		EXPECT_EQ(cow_write_file(COW_THP_MODE_PATH, saved), 0);
	munmap(map, 2 * pmd);
	return true;
}

/* A shared PMD-mapped THP is split (pmd_split), then 4 KiB is copied. */
TEST_F_TIMEOUT(cow_latency, thp_split_lands_in_pmd_split, TEST_TIMEOUT)
{
	int p;

	if (!thp_cow_write(_metadata, &self->before, &self->after,
			   access(COW_THP_MODE_PATH, F_OK) ? NULL : "split"))
		return;
	EXPECT_EQ(delta(&self->before, &self->after, PMD_SPLIT, TOTAL), 1);
	for (p = 0; p < TOTAL; p++)
		EXPECT_EQ(delta(&self->before, &self->after, PMD_SPLIT, p), 0);
	for (p = 0; p < NR_PHASES; p++) {
		EXPECT_EQ(delta(&self->before, &self->after, PTE, p),
			  no_precopy(p, 1));
		EXPECT_EQ(delta(&self->before, &self->after, PMD_COPY, p), 0);
	}
	EXPECT_EQ(self->after.cow_copy - self->before.cow_copy, 1);
}

/* vm.cow_thp_mode=copy: one pmd_copy event with every phase, no split. */
TEST_F_TIMEOUT(cow_latency, thp_copy_lands_in_pmd_copy, TEST_TIMEOUT)
{
	int p;

	if (!thp_cow_write(_metadata, &self->before, &self->after, "copy"))
		return;
	for (p = 0; p < NR_PHASES; p++) {
		EXPECT_EQ(delta(&self->before, &self->after, PMD_COPY, p),
			  no_precopy(p, 1));
		EXPECT_EQ(delta(&self->before, &self->after, PMD_SPLIT, p), 0);
		EXPECT_EQ(delta(&self->before, &self->after, PTE, p), 0);
	}
	EXPECT_EQ(self->after.cow_copy - self->before.cow_copy, 1);
}

FIXTURE(cow_latency_hugetlb) {
	long saved_sample;
	struct cow_precopy_knobs precopy;
	struct snap before, after;
};

FIXTURE_VARIANT(cow_latency_hugetlb) {
	unsigned long kb;
	int flag;
	int class;
};

FIXTURE_VARIANT_ADD(cow_latency_hugetlb, size_2m) {
	.kb = 2048, .flag = MAP_HUGE_2MB, .class = HUGETLB_2M,
};

FIXTURE_VARIANT_ADD(cow_latency_hugetlb, size_1g) {
	.kb = 1024 * 1024, .flag = MAP_HUGE_1GB, .class = HUGETLB_1G,
};

FIXTURE_SETUP(cow_latency_hugetlb)
{
	if (access(SAMPLE_PATH, F_OK) || access(HIST_PATH, F_OK))
		SKIP(return, "COW latency instrumentation not in this kernel");
	if (!cow_hugetlb_size_supported(variant->kb))
		SKIP(return, "no %lu KiB hugetlb pages in this kernel",
		     variant->kb);
	if (cow_hugetlb_free(variant->kb) < 2)
		SKIP(return, "fewer than 2 free %lu KiB hugetlb pages",
		     variant->kb);
	self->saved_sample = read_long(SAMPLE_PATH);
	ASSERT_EQ(cow_precopy_set(&self->precopy, "0", "0"), 0);
	ASSERT_EQ(cow_write_file(HIST_PATH, "reset"), 0);
}

FIXTURE_TEARDOWN(cow_latency_hugetlb)
{
	cow_precopy_restore(&self->precopy);
	if (self->saved_sample >= 0)
		set_long(SAMPLE_PATH, self->saved_sample);
}

/* A hugetlb COW is timed in its own size class, every phase. */
TEST_F_TIMEOUT(cow_latency_hugetlb, lands_in_its_class, TEST_TIMEOUT)
{
	size_t size = variant->kb * 1024;
	char *mem;
	int c, p;

	mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | variant->flag,
		   -1, 0);
	ASSERT_NE(mem, MAP_FAILED);
	mem[0] = 1;
	ASSERT_EQ(set_long(SAMPLE_PATH, 1), 0);
	ASSERT_EQ(cow_writes(mem, 1, size, CHILD_WAITS, &self->before,
			     &self->after), 0);
	for (c = 0; c < NR_CLASSES; c++)
		for (p = 0; p < NR_PHASES; p++)
			EXPECT_EQ(delta(&self->before, &self->after, c, p),
				  c == variant->class ? no_precopy(p, 1) : 0)
				TH_LOG("%s %s", class_name[c], phase_name[p]);
	EXPECT_EQ(self->after.cow_copy - self->before.cow_copy, 1);
	munmap(mem, size);
}

FIXTURE(cow_latency_sysctl) {
	const char *path;
	long saved;
};

FIXTURE_VARIANT(cow_latency_sysctl) {
	const char *path;
};

FIXTURE_VARIANT_ADD(cow_latency_sysctl, sample) { .path = SAMPLE_PATH };
FIXTURE_VARIANT_ADD(cow_latency_sysctl, warn_ns) { .path = WARN_PATH };

FIXTURE_SETUP(cow_latency_sysctl)
{
	if (access(variant->path, F_OK))
		SKIP(return, "%s not in this kernel", variant->path);
	self->saved = read_long(variant->path);
	ASSERT_EQ(set_long(variant->path, 7), 0);
}

FIXTURE_TEARDOWN(cow_latency_sysctl)
{
	if (self->saved >= 0)
		set_long(variant->path, self->saved);
}

/* Malformed and out-of-range values: EINVAL and the value is unchanged. */
TEST_F(cow_latency_sysctl, bad_values_rejected)
{
	static const char * const common[] = {
		"-1", "abc", "1x", "99999999999999999999999", " ", "0x",
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(common); i++) {
		EXPECT_EQ(cow_write_file(variant->path, common[i]), EINVAL)
			TH_LOG("value '%s'", common[i]);
		EXPECT_EQ(read_long(variant->path), 7)
			TH_LOG("after '%s'", common[i]);
	}
	if (!strcmp(variant->path, SAMPLE_PATH)) {
		EXPECT_EQ(cow_write_file(variant->path, "1000001"), EINVAL);
		EXPECT_EQ(read_long(variant->path), 7);
		EXPECT_EQ(set_long(variant->path, 1000000), 0);
		EXPECT_EQ(read_long(variant->path), 1000000);
	}
	EXPECT_EQ(set_long(variant->path, 0), 0);
	EXPECT_EQ(read_long(variant->path), 0);
}

/*
 * vm.cow_latency_warn_ns reports a sampled event over the threshold. The
 * threshold is armed only around one write, after fork() and after this
 * process has broken COW on its own pages, so that no other event uses up
 * the printk ratelimit first.
 */
TEST_F(cow_latency, warn_ns_logs_slow_event)
{
	char *mem = map_4k_pages(1);
	char *log, needle[80];
	int go[2], len;
	pid_t pid;

	ASSERT_NE(mem, NULL);
	ASSERT_EQ(set_long(SAMPLE_PATH, 1), 0);
	ASSERT_EQ(set_long(WARN_PATH, 0), 0);
	ASSERT_EQ(pipe(go), 0);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(read(go[0], needle, 1) == 1 ? 0 : 1);
	}
	/* Warm the path: the same calls, with the same value. */
	ASSERT_EQ(set_long(WARN_PATH, 0), 0);
	ASSERT_EQ(set_long(WARN_PATH, 1), 0);
	mem[0] = 0x5a;
	ASSERT_EQ(set_long(WARN_PATH, 0), 0);
	ASSERT_EQ(write(go[1], "g", 1), 1);
	waitpid(pid, NULL, 0);

	len = klogctl(SYSLOG_ACTION_SIZE_BUFFER, NULL, 0);
	ASSERT_GT(len, 0);
	log = malloc(len + 1);
	ASSERT_NE(log, NULL);
	len = klogctl(SYSLOG_ACTION_READ_ALL, log, len);
	ASSERT_GT(len, 0);
	log[len] = '\0';
	snprintf(needle, sizeof(needle), "cow: slow pte COW in cow_latency[%d]",
		 getpid());
	EXPECT_NE(strstr(log, needle), NULL) TH_LOG("no '%s' in the log", needle);
	free(log);
	munmap(mem, getpagesize());
}

/* cow:cow_copy fires once per sampled copy, with the faulting address. */
TEST_F(cow_latency, tracepoint_reports_each_copy)
{
	char *mem = map_4k_pages(NR_PAGES);
	unsigned long addr, start = (unsigned long)mem;
	unsigned long end = start + NR_PAGES * getpagesize();
	int hits = 0;
	char *a;
	FILE *f;

	ASSERT_NE(mem, NULL);
	if (access(TRACE_DIR "/events/cow/cow_copy/enable", F_OK))
		SKIP(return, "no cow:cow_copy event in %s", TRACE_DIR);
	ASSERT_EQ(cow_write_file(TRACE_DIR "/trace", ""), 0);
	ASSERT_EQ(cow_write_file(TRACE_DIR "/events/cow/cow_copy/enable", "1"), 0);
	ASSERT_EQ(set_long(SAMPLE_PATH, 1), 0);
	ASSERT_EQ(cow_writes(mem, NR_PAGES, getpagesize(), CHILD_WAITS,
			     &self->before, &self->after), 0);
	ASSERT_EQ(cow_write_file(TRACE_DIR "/events/cow/cow_copy/enable", "0"), 0);
	f = fopen(TRACE_DIR "/trace", "r");
	ASSERT_NE(f, NULL);
	while (fgets(line, sizeof(line), f)) {
		a = strstr(line, "cow_copy: address=");
		if (!a || !strstr(line, " class=pte size=4096 "))
			continue;
		addr = strtoul(a + strlen("cow_copy: address="), NULL, 16);
		if (addr >= start && addr < end)
			hits++;
	}
	fclose(f);
	EXPECT_EQ(hits, NR_PAGES);
	munmap(mem, NR_PAGES * getpagesize());
}

TEST_HARNESS_MAIN
