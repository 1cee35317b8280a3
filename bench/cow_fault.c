// SPDX-License-Identifier: GPL-2.0-only
/*
 * cow_fault: the latency of copy-on-write write faults, seen from user
 * space and, through the cow:cow_copy tracepoint, from the kernel.
 *
 *   cow_fault user  CLASS REGIONS   time the first write to each region
 *   cow_fault trace CLASS REGIONS   the kernel's per-phase times of the
 *                                   same faults (needs the series,
 *                                   vm.cow_latency_sample=1, tracefs)
 *   cow_fault thp   - REGIONS       table D: first write, then a rewrite
 *                                   of every 4 KiB of each THP region,
 *                                   under whatever vm.cow_thp_mode and
 *                                   pre-copy knobs are set
 *   cow_fault precopy WORKLOAD PAGES  table C: after fork(), write PAGES
 *                                   4 KiB pages in the order of WORKLOAD
 *                                   (seq, desc, stride2: every other
 *                                   page, random: an eighth of the pages
 *                                   in random order), under whatever
 *                                   pre-copy knobs are set
 *   cow_fault memcpy - N            table C's yardstick: a plain 4 KiB
 *                                   memcpy(), mean of N
 *
 * CLASS is 4k, thp (a shared PMD-mapped THP; the kernel splits or copies it
 * as vm.cow_thp_mode says, thpcopy names the same run for the pmd_copy
 * tracepoint class), hugetlb2m or hugetlb1g. A region is one page of that
 * size: it is filled, the process forks (the child keeps everything shared
 * and waits), and the parent writes one byte to each region. Results are
 * one line of KEY=VALUE pairs on stdout, all times in ns of guest time
 * (under QEMU -icount shift=0, guest instructions).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <linux/mman.h>

#define TRACE_DIR	"/sys/kernel/tracing"

struct cls {
	const char *name;	/* on the command line */
	const char *kname;	/* the tracepoint's class= */
	size_t size;
	int flags;
	int advice;		/* for madvise(), 0: none */
	/* The one anon mTHP size enabled to populate ("": none), or NULL. */
	const char *mthp;
};

static const struct cls classes[] = {
	{ "4k", "pte", 4096, 0, MADV_NOHUGEPAGE },
	{ "thp", "pmd_split", 2UL << 20, 0, MADV_HUGEPAGE },
	{ "thpcopy", "pmd_copy", 2UL << 20, 0, MADV_HUGEPAGE },
	{ "hugetlb2m", "hugetlb_2m", 2UL << 20, MAP_HUGETLB | MAP_HUGE_2MB, 0 },
	{ "hugetlb1g", "hugetlb_1g", 1UL << 30, MAP_HUGETLB | MAP_HUGE_1GB, 0 },
	/* 64 KiB mTHPs: vm.cow_mthp_mode=split copies 4 KiB, copy all. */
	{ "mthp64", "pte", 64UL << 10, 0, 0, "64kB" },
	{ "mthp64copy", "mthp_o4", 64UL << 10, 0, 0, "64kB" },
	/* 4 KiB pages in a VMA that may use mTHPs (pre-copy into them). */
	{ "4kmthp", "pte", 4096, 0, 0, "" },
};

static int write_file(const char *path, const char *s);

static const struct cls *find_class(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (!strcmp(name, classes[i].name))
			return &classes[i];
	return NULL;
}

/* Enable only the anon mTHP size @size ("always"), or none ("" or NULL). */
static void mthp_only(const char *size)
{
	static const char * const sizes[] = {
		"16kB", "32kB", "64kB", "128kB", "256kB", "512kB", "1024kB",
		"2048kB",
	};
	char path[128];
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(path, sizeof(path),
			 "/sys/kernel/mm/transparent_hugepage/hugepages-%s/enabled",
			 sizes[i]);
		write_file(path, size && !strcmp(size, sizes[i]) ? "always" : "never");
	}
}

static void die(const char *what)
{
	fprintf(stderr, "cow_fault: %s: %s\n", what, strerror(errno));
	exit(1);
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Print name_p50, name_p99, name_max and name_mean of v[0..n). */
static void print_stats(const char *name, uint64_t *v, size_t n)
{
	uint64_t sum = 0;
	size_t i;

	if (!n) {
		printf(" %s_n=0", name);
		return;
	}
	qsort(v, n, sizeof(*v), cmp_u64);
	for (i = 0; i < n; i++)
		sum += v[i];
	printf(" %s_p50=%llu %s_p99=%llu %s_max=%llu %s_mean=%llu", name,
	       (unsigned long long)v[n / 2], name,
	       (unsigned long long)v[(n * 99) / 100], name,
	       (unsigned long long)v[n - 1], name,
	       (unsigned long long)(sum / n));
}

/* Map REGIONS pages of the class, aligned to their size, and fill them. */
static char *map_regions(const struct cls *c, size_t regions, char **map,
			 size_t *map_len)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | c->flags;
	size_t len = regions * c->size;
	char *mem;
	size_t i;

	/* THP: extra room to align to a PMD boundary. */
	*map_len = len + (c->flags ? 0 : c->size);
	*map = mmap(NULL, *map_len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (*map == MAP_FAILED)
		die("mmap");
	mem = (char *)(((uintptr_t)*map + c->size - 1) & ~(uintptr_t)(c->size - 1));
	/* 4 KiB means small folios, whatever mTHP sizes are enabled. */
	if (c->advice && madvise(mem, len, c->advice))
		die("madvise");
	if (c->mthp)
		mthp_only(c->mthp);
	for (i = 0; i < len; i += 4096)
		mem[i] = 1;
	return mem;
}

/* The cost of one timer read pair, to subtract from each sample. */
static uint64_t timer_overhead(void)
{
	uint64_t v[101], t;
	int i;

	for (i = 0; i < 101; i++) {
		t = now_ns();
		v[i] = now_ns() - t;
	}
	qsort(v, 101, sizeof(*v), cmp_u64);
	return v[50];
}

static int write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	int ret = 0;

	if (fd < 0)
		return -1;
	if (write(fd, s, strlen(s)) < 0)
		ret = -1;
	close(fd);
	return ret;
}

/* A child that keeps every page of the parent COW-shared until released. */
struct holder {
	pid_t pid;
	int go[2];
};

static void hold_start(struct holder *h)
{
	int ready[2];
	char ch;

	if (pipe(h->go) || pipe(ready))
		die("pipe");
	h->pid = fork();
	if (h->pid < 0)
		die("fork");
	if (!h->pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (write(ready[1], "r", 1) != 1 || read(h->go[0], &ch, 1) != 1)
			_exit(1);
		_exit(0);
	}
	if (read(ready[0], &ch, 1) != 1)
		die("read");
	close(ready[0]);
	close(ready[1]);
}

static void hold_end(struct holder *h)
{
	if (write(h->go[1], "g", 1) != 1)
		die("write");
	waitpid(h->pid, NULL, 0);
	close(h->go[0]);
	close(h->go[1]);
}

/*
 * Fork a child that holds every page shared until we are done, write one
 * byte to each region, timing each write in lat[]. Returns the time of
 * the whole write loop.
 */
static uint64_t cow_pass(char *mem, const struct cls *c, size_t regions,
			 uint64_t *lat)
{
	struct holder h;
	uint64_t t0, t1, all;
	size_t i;

	hold_start(&h);
	/* Break COW on lat[] now, not inside the timed loop. */
	memset(lat, 0, regions * sizeof(*lat));
	all = now_ns();
	for (i = 0; i < regions; i++) {
		t0 = now_ns();
		mem[i * c->size + 64] = 2;
		t1 = now_ns();
		lat[i] = t1 - t0;
	}
	all = now_ns() - all;
	hold_end(&h);
	return all;
}

static void do_user(const struct cls *c, size_t regions)
{
	uint64_t *lat = calloc(regions, sizeof(*lat));
	uint64_t ovh, all;
	size_t map_len, i;
	char *map, *mem;

	if (!lat)
		die("calloc");
	mem = map_regions(c, regions, &map, &map_len);
	ovh = timer_overhead();
	all = cow_pass(mem, c, regions, lat);
	for (i = 0; i < regions; i++)
		lat[i] = lat[i] > ovh ? lat[i] - ovh : 0;
	printf("mode=user class=%s regions=%zu timer_ns=%llu loop_ns=%llu per_fault_ns=%llu",
	       c->name, regions, (unsigned long long)ovh,
	       (unsigned long long)all, (unsigned long long)(all / regions));
	print_stats("lat", lat, regions);
	printf("\n");
	munmap(map, map_len);
	free(lat);
}

static void do_trace(const struct cls *c, size_t regions)
{
	uint64_t *ph[4], *lat = calloc(regions, sizeof(*lat));
	static const char * const names[4] = {
		"alloc", "copy", "map", "total",
	};
	unsigned long long v[4];
	unsigned long addr;
	size_t map_len, n = 0;
	char key[64], line[512], *map, *mem, *a;
	FILE *f;
	int i;

	for (i = 0; i < 4; i++) {
		ph[i] = calloc(regions, sizeof(uint64_t));
		if (!ph[i])
			die("calloc");
	}
	mem = map_regions(c, regions, &map, &map_len);
	if (write_file(TRACE_DIR "/trace", "") ||
	    write_file(TRACE_DIR "/events/cow/cow_copy/enable", "1"))
		die("enabling cow:cow_copy");
	cow_pass(mem, c, regions, lat);
	write_file(TRACE_DIR "/events/cow/cow_copy/enable", "0");

	snprintf(key, sizeof(key), " class=%s ", c->kname);
	f = fopen(TRACE_DIR "/trace", "r");
	if (!f)
		die(TRACE_DIR "/trace");
	while (fgets(line, sizeof(line), f) && n < regions) {
		a = strstr(line, "cow_copy: address=");
		if (!a || !strstr(line, key))
			continue;
		if (sscanf(a, "cow_copy: address=%lx class=%*s size=%*u alloc_ns=%llu copy_ns=%llu map_ns=%llu total_ns=%llu",
			   &addr, &v[0], &v[1], &v[2], &v[3]) != 5)
			continue;
		if (addr < (unsigned long)mem ||
		    addr >= (unsigned long)mem + regions * c->size)
			continue;
		for (i = 0; i < 4; i++)
			ph[i][n] = v[i];
		n++;
	}
	fclose(f);
	printf("mode=trace class=%s regions=%zu events=%zu", c->name, regions, n);
	for (i = 0; i < 4; i++)
		print_stats(names[i], ph[i], n);
	printf("\n");
	munmap(map, map_len);
	for (i = 0; i < 4; i++)
		free(ph[i]);
	free(lat);
}

/* Static buffers: reading them after fork() causes no COW fault. */
static char line[512];

/* The first line of a file, "absent" when it cannot be read. */
static const char *read_knob(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	snprintf(buf, len, "absent");
	if (f) {
		if (fgets(buf, len, f))
			buf[strcspn(buf, "\n")] = '\0';
		fclose(f);
	}
	return buf;
}

/* AnonPages of /proc/meminfo in KiB: anonymous memory in use. */
static long anon_kb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	long v = -1;

	if (!f)
		die("/proc/meminfo");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonPages: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* AnonHugePages in KiB summed over our mappings inside [mem, mem + len). */
static long huge_kb(char *mem, size_t len)
{
	unsigned long start, end, a = (unsigned long)mem;
	FILE *f = fopen("/proc/self/smaps", "r");
	bool inside = false;
	long v, sum = 0;

	if (!f)
		die("/proc/self/smaps");
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2)
			inside = start < a + len && end > a;
		else if (inside && sscanf(line, "AnonHugePages: %ld", &v) == 1)
			sum += v;
	}
	fclose(f);
	return sum;
}

static long minflt(void)
{
	static struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/*
 * Read one byte of every 4 KiB page of [mem, mem + len) in a scattered
 * order; ns per page. Touches a new page each time, so it walks the page
 * tables as often as the TLB misses: cheaper on PMD mappings on real
 * hardware (under -icount a TLB miss costs no guest time).
 */
static uint64_t read_pass(char *mem, size_t len)
{
	size_t n = len / 4096, stride = (2654435761UL % n) | 1, i, k = 0;
	volatile char sum = 0;
	uint64_t t;

	t = now_ns();
	for (i = 0; i < n; i++) {
		sum += mem[k * 4096 + 128];
		k = (k + stride) % n;
	}
	return (now_ns() - t) / n;
}

/*
 * Table D: after fork(), write one byte to each THP region (the first
 * write), then the other 511 4 KiB pages of each region in order (the
 * rest of a rewrite). Faults, memory and PMD mappings are measured after
 * each stage, then a read pass over everything.
 */
static void do_thp(size_t regions)
{
	const struct cls *c = &classes[1];
	size_t per = c->size / 4096, len = regions * c->size, map_len, i, j;
	uint64_t *first = calloc(regions, sizeof(uint64_t));
	uint64_t *whole = calloc(regions, sizeof(uint64_t));
	long a0, a1, a2, f0, f1, f2, pmd0, pmd1, pmd2;
	char mode[16], pages[16], adaptive[16];
	uint64_t ovh, t0, rd;
	struct holder h;
	char *map, *mem;

	if (!first || !whole)
		die("calloc");
	mem = map_regions(c, regions, &map, &map_len);
	read_knob("/proc/sys/vm/cow_thp_mode", mode, sizeof(mode));
	read_knob("/proc/sys/vm/cow_precopy_pages", pages, sizeof(pages));
	read_knob("/proc/sys/vm/cow_precopy_adaptive", adaptive,
		  sizeof(adaptive));
	ovh = timer_overhead();
	pmd0 = huge_kb(mem, len) / 2048;
	hold_start(&h);
	/* Break COW on everything the measuring touches, first. */
	memset(first, 0, regions * sizeof(uint64_t));
	memset(whole, 0, regions * sizeof(uint64_t));
	anon_kb();
	minflt();
	a0 = anon_kb();
	f0 = minflt();
	for (i = 0; i < regions; i++) {
		t0 = now_ns();
		mem[i * c->size + 64] = 2;
		first[i] = now_ns() - t0;
		first[i] = first[i] > ovh ? first[i] - ovh : 0;
	}
	f1 = minflt();
	a1 = anon_kb();
	pmd1 = huge_kb(mem, len) / 2048;
	for (i = 0; i < regions; i++) {
		t0 = now_ns();
		for (j = 1; j < per; j++)
			mem[i * c->size + j * 4096 + 64] = 2;
		whole[i] = now_ns() - t0 + first[i];
	}
	f2 = minflt();
	a2 = anon_kb();
	pmd2 = huge_kb(mem, len) / 2048;
	read_pass(mem, len);
	rd = read_pass(mem, len);
	hold_end(&h);

	printf("mode=thp thp_mode=%s precopy_pages=%s precopy_adaptive=%s regions=%zu timer_ns=%llu",
	       mode, pages, adaptive, regions, (unsigned long long)ovh);
	printf(" first_traps=%.2f rewrite_traps=%.2f first_extra_kb=%ld rewrite_extra_kb=%ld",
	       (double)(f1 - f0) / regions, (double)(f2 - f0) / regions,
	       (a1 - a0) / (long)regions, (a2 - a0) / (long)regions);
	printf(" pmd_before=%ld pmd_first=%ld pmd_rewrite=%ld read_ns_per_page=%llu first_all=",
	       pmd0, pmd1, pmd2, (unsigned long long)rd);
	for (i = 0; i < regions; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)first[i]);
	print_stats("first", first, regions);
	print_stats("rewrite", whole, regions);
	printf("\n");
	munmap(map, map_len);
	free(first);
	free(whole);
}

/* vmstat counter NAME; 0 when absent. */
static unsigned long long vmstat(const char *name)
{
	FILE *f = fopen("/proc/vmstat", "r");
	unsigned long long v = 0, x;
	char key[64];

	if (!f)
		die("/proc/vmstat");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %llu", key, &x) == 2 && !strcmp(key, name))
			v = x;
	fclose(f);
	return v;
}

struct cow_counts {
	unsigned long long copy, precopy, fail;
	long minflt;
};

static void cow_counts(struct cow_counts *c)
{
	c->copy = vmstat("cow_copy");
	c->precopy = vmstat("cow_precopy");
	c->fail = vmstat("cow_precopy_fail");
	c->minflt = minflt();
}

/* The pages a WORKLOAD writes, in order, into idx[]; how many. */
static size_t workload(const char *w, size_t n, size_t *idx)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t i, j, t;

	if (!strcmp(w, "seq") || !strcmp(w, "random")) {
		for (i = 0; i < n; i++)
			idx[i] = i;
		if (!strcmp(w, "seq"))
			return n;
		/* A fixed-seed shuffle; the first eighth is written. */
		for (i = n - 1; i > 0; i--) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			j = x % (i + 1);
			t = idx[i];
			idx[i] = idx[j];
			idx[j] = t;
		}
		return n / 8;
	}
	if (!strcmp(w, "desc")) {
		for (i = 0; i < n; i++)
			idx[i] = n - 1 - i;
		return n;
	}
	if (!strcmp(w, "stride2")) {
		for (i = 0; i < n / 2; i++)
			idx[i] = 2 * i;
		return n / 2;
	}
	return 0;
}

/*
 * Table C: fill PAGES pages, fork a child that keeps them shared, write
 * one byte to each page the workload names, timing the whole loop. Done
 * PRECOPY_REPS times (each fork() shares the pages again): the time is
 * the median, the counts (the same each time) are the last run's. With
 * @mthp (an mTHP size, e.g. "64kB") the pages are 4 KiB ones in a VMA
 * that may use that size once they are shared (pre-copy into large
 * folios), made again for each run.
 */
#define PRECOPY_REPS	3

static void do_precopy(const char *w, size_t n, const char *mthp)
{
	const struct cls *c = find_class(mthp ? "4kmthp" : "4k");
	size_t *idx = calloc(n, sizeof(*idx)), nw, map_len, i;
	char pages[16], adaptive[16], *map, *mem;
	uint64_t t, times[PRECOPY_REPS];
	struct cow_counts b, a;
	struct holder h;
	int r;

	if (!idx)
		die("calloc");
	nw = workload(w, n, idx);
	if (!nw) {
		fprintf(stderr, "cow_fault: unknown workload %s\n", w);
		exit(2);
	}
	read_knob("/proc/sys/vm/cow_precopy_pages", pages, sizeof(pages));
	read_knob("/proc/sys/vm/cow_precopy_adaptive", adaptive,
		  sizeof(adaptive));
	mem = map_regions(c, n, &map, &map_len);
	for (r = 0; r < PRECOPY_REPS; r++) {
		if (mthp && r) {
			munmap(map, map_len);
			mem = map_regions(c, n, &map, &map_len);
		}
		hold_start(&h);
		if (mthp)
			mthp_only(mthp);
		/*
		 * Break COW on what the counting touches (both structs:
		 * they may sit on different stack pages), then count.
		 */
		cow_counts(&a);
		cow_counts(&b);
		t = now_ns();
		for (i = 0; i < nw; i++)
			mem[idx[i] * c->size + 64] = 2;
		times[r] = now_ns() - t;
		cow_counts(&a);
		hold_end(&h);
	}
	qsort(times, PRECOPY_REPS, sizeof(times[0]), cmp_u64);
	t = times[PRECOPY_REPS / 2];
	printf("mode=precopy workload=%s mthp=%s precopy_pages=%s precopy_adaptive=%s pages=%zu written=%zu reps=%d time_ns=%llu time_min_ns=%llu time_max_ns=%llu per_written_ns=%llu",
	       w, mthp ? mthp : "none", pages, adaptive, n, nw, PRECOPY_REPS,
	       (unsigned long long)t,
	       (unsigned long long)times[0],
	       (unsigned long long)times[PRECOPY_REPS - 1],
	       (unsigned long long)(t / nw));
	printf(" traps=%ld cow_copy=%llu precopied=%llu precopy_fail=%llu wasted=%lld\n",
	       a.minflt - b.minflt, a.copy - b.copy, a.precopy - b.precopy,
	       a.fail - b.fail,
	       (long long)(a.copy - b.copy + a.precopy - b.precopy) - (long long)nw);
	munmap(map, map_len);
	free(idx);
}

/* Mean ns of a 4 KiB memcpy() between two private, present buffers. */
static void do_memcpy(size_t reps)
{
	static char src[4096] __attribute__((aligned(4096)));
	static char dst[4096] __attribute__((aligned(4096)));
	uint64_t t;
	size_t i;

	memset(src, 1, sizeof(src));
	memset(dst, 2, sizeof(dst));
	t = now_ns();
	for (i = 0; i < reps; i++) {
		memcpy(dst, src, sizeof(dst));
		/* Keep each copy: the compiler must not merge them. */
		__asm__ __volatile__("" : : "r"(dst) : "memory");
	}
	t = now_ns() - t;
	printf("mode=memcpy reps=%zu memcpy_4k_ns=%llu\n", reps,
	       (unsigned long long)(t / reps));
}

int main(int argc, char **argv)
{
	const struct cls *c;
	size_t regions;

	if (argc != 4 && !(argc == 5 && !strcmp(argv[1], "precopy"))) {
		fprintf(stderr, "usage: cow_fault user|trace 4k|thp|thpcopy|hugetlb2m|hugetlb1g|mthp64|mthp64copy REGIONS\n"
			"       cow_fault thp - REGIONS\n"
			"       cow_fault precopy seq|desc|stride2|random PAGES [MTHP_SIZE]\n"
			"       cow_fault memcpy - N\n");
		return 2;
	}
	c = find_class(argv[2]);
	regions = strtoul(argv[3], NULL, 0);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "thp") && regions) {
		do_thp(regions);
		return 0;
	}
	if (!strcmp(argv[1], "precopy") && regions) {
		do_precopy(argv[2], regions, argc == 5 ? argv[4] : NULL);
		return 0;
	}
	if (!strcmp(argv[1], "memcpy") && regions) {
		do_memcpy(regions);
		return 0;
	}
	if (!c || !regions) {
		fprintf(stderr, "cow_fault: bad class or region count\n");
		return 2;
	}
	if (!strcmp(argv[1], "user"))
		do_user(c, regions);
	else if (!strcmp(argv[1], "trace"))
		do_trace(c, regions);
	else
		return 2;
	return 0;
}
