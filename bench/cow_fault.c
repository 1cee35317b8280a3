// SPDX-License-Identifier: GPL-2.0-only
/*
 * cow_fault: the latency of copy-on-write write faults, seen from user
 * space and, through the cow:cow_copy tracepoint, from the kernel.
 *
 *   cow_fault user  CLASS REGIONS   time the first write to each region
 *   cow_fault trace CLASS REGIONS   the kernel's per-phase times of the
 *                                   same faults (needs the series,
 *                                   vm.cow_latency_sample=1, tracefs)
 *
 * CLASS is 4k, thp (a shared PMD-mapped THP, split on write), hugetlb2m or
 * hugetlb1g. A region is one page of that size: it is filled, the process
 * forks (the child keeps everything shared and waits), and the parent
 * writes one byte to each region. Results are one line of KEY=VALUE pairs
 * on stdout, all times in ns of guest time (under QEMU -icount shift=0,
 * guest instructions).
 */
#define _GNU_SOURCE
#include <errno.h>
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
#include <sys/wait.h>
#include <linux/mman.h>

#define TRACE_DIR	"/sys/kernel/tracing"

struct cls {
	const char *name;	/* on the command line */
	const char *kname;	/* the tracepoint's class= */
	size_t size;
	int flags;
};

static const struct cls classes[] = {
	{ "4k", "pte", 4096, 0 },
	{ "thp", "pmd_split", 2UL << 20, 0 },
	{ "hugetlb2m", "hugetlb_2m", 2UL << 20, MAP_HUGETLB | MAP_HUGE_2MB },
	{ "hugetlb1g", "hugetlb_1g", 1UL << 30, MAP_HUGETLB | MAP_HUGE_1GB },
};

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
	if (!strcmp(c->name, "thp") && madvise(mem, len, MADV_HUGEPAGE))
		die("madvise(MADV_HUGEPAGE)");
	/* 4 KiB means small folios, whatever mTHP sizes are enabled. */
	if (!strcmp(c->name, "4k") && madvise(mem, len, MADV_NOHUGEPAGE))
		die("madvise(MADV_NOHUGEPAGE)");
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

/*
 * Fork a child that holds every page shared until we are done, write one
 * byte to each region, timing each write in lat[]. Returns the time of
 * the whole write loop.
 */
static uint64_t cow_pass(char *mem, const struct cls *c, size_t regions,
			 uint64_t *lat)
{
	int go[2], ready[2];
	uint64_t t0, t1, all;
	size_t i;
	pid_t pid;
	char ch;

	if (pipe(go) || pipe(ready))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (write(ready[1], "r", 1) != 1 || read(go[0], &ch, 1) != 1)
			_exit(1);
		_exit(0);
	}
	if (read(ready[0], &ch, 1) != 1)
		die("read");
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
	if (write(go[1], "g", 1) != 1)
		die("write");
	waitpid(pid, NULL, 0);
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
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

int main(int argc, char **argv)
{
	const struct cls *c = NULL;
	size_t i, regions;

	if (argc != 4) {
		fprintf(stderr, "usage: cow_fault user|trace 4k|thp|hugetlb2m|hugetlb1g REGIONS\n");
		return 2;
	}
	for (i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
		if (!strcmp(argv[2], classes[i].name))
			c = &classes[i];
	regions = strtoul(argv[3], NULL, 0);
	if (!c || !regions) {
		fprintf(stderr, "cow_fault: bad class or region count\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "user"))
		do_user(c, regions);
	else if (!strcmp(argv[1], "trace"))
		do_trace(c, regions);
	else
		return 2;
	return 0;
}
