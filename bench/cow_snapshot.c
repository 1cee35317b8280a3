// SPDX-License-Identifier: GPL-2.0-only
/*
 * cow_snapshot: what a cow_snapshot() call costs next to fork() and a
 * plain copy (table E), and what taking a consistent image of an
 * in-memory store does to its writer (table G).
 *
 *   cow_snapshot table-e SIZE_MIB 4k|thp
 *	A populated region of SIZE_MIB (4k: MADV_NOHUGEPAGE; thp: 2 MiB
 *	aligned, MADV_HUGEPAGE). Each of: (i) cow_snapshot() of the region,
 *	(ii) fork() of a process holding only the region, (iii) fork() of a
 *	process holding the region and 4 x SIZE_MIB more (SIZE_MIB <= 256),
 *	(iv) mmap() + memcpy() of the region: its time (median of E_REPS
 *	runs, one run from 1 GiB on) and the memory it adds.
 *
 *   cow_snapshot table-g fork|snapshot|snapshot-unshare HEAP_MIB OTHER_MIB SECONDS
 *	A key-value store of fixed-size records in a HEAP_MIB heap, in a
 *	process with OTHER_MIB more populated memory. The main thread
 *	updates random records (90% of them in the first eighth of the
 *	heap), each update timed; after SECONDS of warm-up it takes one
 *	image of the heap: fork() (the child serialises it), cow_snapshot()
 *	(a thread serialises it) or cow_snapshot() plus MADV_COW_UNSHARE of
 *	the hot eighth from another thread, and keeps updating until the
 *	image is serialised and gone.
 *
 * Results are one line of KEY=VALUE pairs on stdout ("table=E ..." or
 * "table=G ..."); a part that cannot run is left out and a *skipped= key
 * says why, spaces written as '+'. All times in ns of CLOCK_MONOTONIC
 * (under QEMU -icount shift=0: guest instructions), memory in KiB. Exit 1
 * when an image read back differs from what it was taken of.
 *
 * Built with -DCOW_SNAPSHOT_EMULATE, cow_snapshot() is emulated with
 * mmap() + memcpy() and MADV_COW_UNSHARE is a no-op: only to try the
 * program's own logic on a kernel without the series (numbers are
 * meaningless, and the lines say emulated=1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/mman.h>

#ifndef __NR_cow_snapshot
#define __NR_cow_snapshot	470
#endif
#ifndef COW_SNAPSHOT_FIXED
#define COW_SNAPSHOT_FIXED	0x01
#endif
#ifndef MADV_COW_UNSHARE
#define MADV_COW_UNSHARE	104
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

#define PAGE		4096UL
#define MIB		(1UL << 20)
#define PMD_SIZE_	(2UL << 20)

static void die(const char *what)
{
	fprintf(stderr, "cow_snapshot: %s: %s\n", what, strerror(errno));
	exit(1);
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int64_t median(int64_t *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_i64);
	return v[n / 2];
}

/* strerror() with '+' for the spaces, for a skipped= value. */
static const char *reason(int err)
{
	static char buf[128];
	char *p;

	snprintf(buf, sizeof(buf), "%s", strerror(err));
	for (p = buf; *p; p++)
		if (*p == ' ')
			*p = '+';
	return buf;
}

#ifdef COW_SNAPSHOT_EMULATE
static long cow_snapshot(void *start, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -1;
	memcpy(p, start, len);
	return (long)p;
}

static int cow_unshare(void *start, size_t len)
{
	return 0;
}

#define EMULATED	" emulated=1"
#else
/* The snapshot's address, or -1 with errno set. */
static long cow_snapshot(void *start, size_t len)
{
	return syscall(__NR_cow_snapshot, (unsigned long)start, len, 0UL, 0U);
}

static int cow_unshare(void *start, size_t len)
{
	return madvise(start, len, MADV_COW_UNSHARE);
}

#define EMULATED	""
#endif

/* 0 when this kernel has cow_snapshot(), else the errno that says not. */
static int snapshot_missing(void)
{
#ifdef COW_SNAPSHOT_EMULATE
	return 0;
#else
	/* len == 0 is EINVAL where the call exists. */
	if (syscall(__NR_cow_snapshot, 0UL, 0UL, 0UL, 0U) == -1 &&
	    errno == ENOSYS)
		return ENOSYS;
	return 0;
#endif
}

/*
 * Memory use, from /proc/meminfo. "Extra memory" below is the growth of
 * AnonPages + PageTables + KernelStack + Slab: what the operation made the
 * kernel allocate (copied and new anonymous pages, page tables, a child's
 * kernel stack, task and VMA structures). MemFree/MemAvailable would
 * count the same, but they move by up to several MiB with the per-CPU
 * free page lists, more than a snapshot's page tables; the page tables
 * alone are reported too, as VmPTE growth (a fork: the child's VmPTE).
 * The counters are per-CPU and folded into the totals /proc/meminfo shows
 * only now and then: vm.stat_refresh folds them first (root only; without
 * it a reading lags by up to a few MiB).
 */
struct meminfo {
	long anon, ptab, kstack, slab;
};

/* Static: reading them after fork() adds no COW fault of our stack. */
static char line[512];

static long used_kb(void)
{
	int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY);
	struct meminfo m = { 0 };
	FILE *f;
	long v;

	if (fd >= 0) {
		if (write(fd, "1", 1) < 0)
			errno = 0;	/* not fatal: the totals lag */
		close(fd);
	}
	f = fopen("/proc/meminfo", "r");
	if (!f)
		die("/proc/meminfo");
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "AnonPages: %ld", &v) == 1)
			m.anon = v;
		else if (sscanf(line, "PageTables: %ld", &v) == 1)
			m.ptab = v;
		else if (sscanf(line, "KernelStack: %ld", &v) == 1)
			m.kstack = v;
		else if (sscanf(line, "Slab: %ld", &v) == 1)
			m.slab = v;
	}
	fclose(f);
	return m.anon + m.ptab + m.kstack + m.slab;
}

/* VmPTE of a process (0: ourselves) in KiB. */
static long vmpte_kb(pid_t pid)
{
	char path[64];
	FILE *f;
	long v = -1;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/status", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	f = fopen(path, "r");
	if (!f)
		die(path);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPTE: %ld", &v) == 1)
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

/*
 * Private anonymous memory of LEN bytes, 2 MiB aligned, with ADVICE
 * (MADV_HUGEPAGE, MADV_NOHUGEPAGE), not populated. *map and *map_len are
 * what to munmap().
 */
static char *map_aligned(size_t len, int advice, char **map, size_t *map_len)
{
	char *mem;

	*map_len = len + PMD_SIZE_;
	*map = mmap(NULL, *map_len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*map == MAP_FAILED)
		die("mmap");
	mem = (char *)(((uintptr_t)*map + PMD_SIZE_ - 1) & ~(PMD_SIZE_ - 1));
	if (madvise(mem, len, advice))
		die("madvise");
	return mem;
}

/* Every page present and writable; one kernel call where it can. */
static void populate(char *mem, size_t len)
{
	size_t i;

	if (!madvise(mem, len, MADV_POPULATE_WRITE))
		return;
	for (i = 0; i < len; i += PAGE)
		((volatile char *)mem)[i] = 0;
}

/* ---------------------------------------------------------------- E */

#define E_REPS		3
#define E_FORK4X_MAX	256	/* MiB: the largest region fork4x runs for */

struct sample {
	int64_t ns, extra_kb, pte_kb;
};

/* The median of each field over n samples. */
static struct sample sample_median(struct sample *s, int n)
{
	int64_t ns[E_REPS], ex[E_REPS], pt[E_REPS];
	struct sample m;
	int i;

	for (i = 0; i < n; i++) {
		ns[i] = s[i].ns;
		ex[i] = s[i].extra_kb;
		pt[i] = s[i].pte_kb;
	}
	m.ns = median(ns, n);
	m.extra_kb = median(ex, n);
	m.pte_kb = median(pt, n);
	return m;
}

static void print_sample(const char *name, const struct sample *s)
{
	printf(" %s_ns=%lld %s_extra_kb=%lld %s_pte_kb=%lld", name,
	       (long long)s->ns, name, (long long)s->extra_kb, name,
	       (long long)s->pte_kb);
}

/*
 * Write a stamp into the first and last word of every page: the pages get
 * contents to compare, and each PTE is writable and exclusive again (a
 * fork or snapshot before left them write-protected), as in a process
 * that has been writing its memory.
 */
static void stamp(char *mem, size_t len, uint64_t salt)
{
	size_t i;

	for (i = 0; i < len; i += PAGE) {
		*(volatile uint64_t *)(mem + i) = (i / PAGE) ^ salt;
		*(volatile uint64_t *)(mem + i + PAGE - 8) = ~((i / PAGE) ^ salt);
	}
}

/* Exit 1 unless the first and last page of COPY equal those of SRC. */
static void check_copy(const char *what, char *copy, char *src, size_t len,
		       uint64_t salt)
{
	size_t last = len - PAGE;

	if (*(uint64_t *)src != salt ||
	    *(uint64_t *)(src + last) != ((last / PAGE) ^ salt)) {
		fprintf(stderr, "cow_snapshot: source stamp lost\n");
		exit(1);
	}
	if (memcmp(copy, src, PAGE) || memcmp(copy + last, src + last, PAGE)) {
		fprintf(stderr, "cow_snapshot: %s at %p differs from its source %p (len %zu)\n",
			what, copy, src, len);
		exit(1);
	}
}

/*
 * fork() of this process: time from before fork() to its return in the
 * parent; extra memory while the child lives (it signals, then blocks on
 * a pipe until released).
 */
static struct sample fork_once(void)
{
	int go[2], ready[2];
	struct sample s;
	uint64_t t0, t1;
	long before;
	pid_t pid;
	char ch;

	if (pipe(go) || pipe(ready))
		die("pipe");
	before = used_kb();
	t0 = now_ns();
	pid = fork();
	t1 = now_ns();
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
	s.ns = t1 - t0;
	s.extra_kb = used_kb() - before;
	s.pte_kb = vmpte_kb(pid);
	if (write(go[1], "g", 1) != 1)
		die("write");
	if (waitpid(pid, NULL, 0) != pid)
		die("waitpid");
	close(go[0]);
	close(go[1]);
	close(ready[0]);
	close(ready[1]);
	return s;
}

/*
 * (iii) in a helper child, so that our own footprint stays the region:
 * the helper maps and fills its own region and 4 x len more (same
 * backing), then times its fork()s. Its result comes back through a pipe.
 */
static int fork4x(size_t len, int advice, int reps, struct sample *res)
{
	struct sample s[E_REPS];
	char *map, *omap, *mem, *other;
	size_t map_len, omap_len;
	int p[2], status, i;
	pid_t pid;

	if (pipe(p))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (!pid) {
		close(p[0]);
		mem = map_aligned(len, advice, &map, &map_len);
		other = map_aligned(4 * len, advice, &omap, &omap_len);
		populate(mem, len);
		populate(other, 4 * len);
		for (i = 0; i < reps; i++) {
			stamp(mem, len, i + 1);
			stamp(other, 4 * len, i + 1);
			s[i] = fork_once();
		}
		s[0] = sample_median(s, reps);
		if (write(p[1], &s[0], sizeof(s[0])) != sizeof(s[0]))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	i = read(p[0], res, sizeof(*res));
	close(p[0]);
	if (waitpid(pid, &status, 0) != pid)
		die("waitpid");
	return i == sizeof(*res) && WIFEXITED(status) && !WEXITSTATUS(status);
}

static int do_table_e(size_t mib, const char *backing)
{
	struct sample sn[E_REPS], fk[E_REPS], cp[E_REPS], f4, m;
	int thp = !strcmp(backing, "thp"), advice, reps, i, err = 0;
	size_t len = mib * MIB, map_len, dmap_len;
	char *map, *mem, *dmap, *dst, *snap;
	long before, pte0, thp_kb, addr;
	uint64_t t0, t1;

	if ((!thp && strcmp(backing, "4k")) || !mib) {
		fprintf(stderr, "cow_snapshot: table-e SIZE_MIB 4k|thp\n");
		return 2;
	}
	advice = thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE;
	reps = mib >= 1024 ? 1 : E_REPS;

	/* (iii) first, while this process holds nothing big. */
	if (mib <= E_FORK4X_MAX && !fork4x(len, advice, reps, &f4)) {
		fprintf(stderr, "cow_snapshot: the fork4x helper failed\n");
		return 1;
	}

	mem = map_aligned(len, advice, &map, &map_len);
	populate(mem, len);
	stamp(mem, len, 0);
	thp_kb = huge_kb(mem, len);

	/* (iv) mmap + memcpy, the copy with the source's backing. */
	for (i = 0; i < reps; i++) {
		before = used_kb();
		pte0 = vmpte_kb(0);
		t0 = now_ns();
		dst = map_aligned(len, advice, &dmap, &dmap_len);
		memcpy(dst, mem, len);
		cp[i].ns = now_ns() - t0;
		cp[i].extra_kb = used_kb() - before;
		cp[i].pte_kb = vmpte_kb(0) - pte0;
		check_copy("copy", dst, mem, len, 0);
		munmap(dmap, dmap_len);
	}

	/* (i) cow_snapshot() of the region, just written all over. */
	for (i = 0; i < reps; i++) {
		stamp(mem, len, i + 1);
		before = used_kb();
		pte0 = vmpte_kb(0);
		t0 = now_ns();
		addr = cow_snapshot(mem, len);
		t1 = now_ns();
		if (addr == -1) {
			err = errno;
			break;
		}
		sn[i].ns = t1 - t0;
		sn[i].extra_kb = used_kb() - before;
		sn[i].pte_kb = vmpte_kb(0) - pte0;
		snap = (char *)addr;
		check_copy("snapshot", snap, mem, len, i + 1);
		/*
		 * A write to the snapshot copies one page (a shared THP: the
		 * snapshot's PMD is split, the source's stays) and must not
		 * show in the source.
		 */
		*(volatile uint64_t *)(snap + len - PAGE) = 0;
		if (*(uint64_t *)(mem + len - PAGE) != (((len - PAGE) / PAGE) ^ (i + 1))) {
			fprintf(stderr, "cow_snapshot: a write to the snapshot shows in the source\n");
			exit(1);
		}
		munmap(snap, len);
	}

	/* (ii) fork() of this process: the region and little else. */
	for (i = 0; i < reps; i++) {
		stamp(mem, len, i + 1);
		fk[i] = fork_once();
	}

	printf("table=E size_mib=%zu backing=%s reps=%d thp_kb=%ld", mib,
	       backing, reps, thp_kb);
	if (!err) {
		m = sample_median(sn, reps);
		print_sample("snap", &m);
	}
	m = sample_median(fk, reps);
	print_sample("fork", &m);
	if (mib <= E_FORK4X_MAX)
		print_sample("fork4x", &f4);
	else
		printf(" fork4x_skipped=memory");
	m = sample_median(cp, reps);
	print_sample("memcpy", &m);
	if (err == ENOSYS)
		printf(" skipped=cow_snapshot+not+in+this+kernel+(ENOSYS)");
	else if (err)
		printf(" skipped=cow_snapshot+failed:+%s", reason(err));
	printf("%s\n", EMULATED);
	munmap(map, map_len);
	return err && err != ENOSYS;
}

/* ---------------------------------------------------------------- G */

/*
 * The store: a header, then fixed-size records. Records are found by
 * their offset from the heap's base, never through a pointer, so that a
 * reader can walk an image of the heap mapped at any address. That is the
 * price of a same-process snapshot: the image lives beside the heap at
 * another address (a fork()ed child sees its copy at the same address),
 * so a pointer stored in the heap would lead a reader of the image back
 * into the live, changing heap.
 */
#define REC_WORDS	29
#define STORE_MAGIC	0x636f776b76737421ULL
#define G_HOT_PCT	90	/* updates that go to the hot set */
#define G_HOT_DIV	8	/* the hot set: the first 1/G_HOT_DIV of the records */

struct rec {
	uint64_t key;
	uint64_t version;
	uint64_t val[REC_WORDS];
	uint64_t csum;
};

_Static_assert(sizeof(struct rec) == 256, "a record is 256 bytes");

struct store_hdr {
	uint64_t magic;
	uint64_t nrec;
	uint64_t rec_off;	/* of record 0, from the heap base */
	uint64_t rec_size;
};

static inline struct rec *rec_at(char *base, const struct store_hdr *h,
				 uint64_t i)
{
	return (struct rec *)(base + h->rec_off + i * h->rec_size);
}

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* The first value word of KEY at VERSION: the others follow from it. */
static inline uint64_t rec_seed(uint64_t key, uint64_t version)
{
	return mix64(key * 0x9e3779b97f4a7c15ULL + version);
}

/* FNV-1a over the words before the checksum. */
static inline uint64_t rec_csum(const struct rec *r)
{
	const uint64_t *w = (const uint64_t *)r;
	uint64_t h = 0xcbf29ce484222325ULL;
	int i;

	for (i = 0; i < 2 + REC_WORDS; i++)
		h = (h ^ w[i]) * 0x100000001b3ULL;
	return h;
}

static inline void rec_fill(struct rec *r, uint64_t key, uint64_t version)
{
	uint64_t seed = rec_seed(key, version);
	int i;

	r->key = key;
	r->version = version;
	for (i = 0; i < REC_WORDS; i++)
		r->val[i] = seed + i * 0x9e3779b97f4a7c15ULL;
	r->csum = rec_csum(r);
}

struct store {
	char *base;
	size_t len;
	struct store_hdr h;	/* the writer's copy of the header */
	uint64_t hot;		/* records in the hot set */
	uint64_t rng;
	uint64_t updates;	/* so far: the sum of all versions */
};

static inline uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

/* One update: a new version of a random record, value and checksum. */
static inline void store_update(struct store *s)
{
	uint64_t r = rnd(&s->rng), i;
	struct rec *p;

	if (r % 100 < G_HOT_PCT)
		i = (r >> 8) % s->hot;
	else
		i = s->hot + (r >> 8) % (s->h.nrec - s->hot);
	p = rec_at(s->base, &s->h, i);
	rec_fill(p, i, p->version + 1);
	s->updates++;
}

static void store_init(struct store *s, size_t len)
{
	char *map;
	size_t map_len;
	uint64_t i;

	/*
	 * 4 KiB pages, like the rest of the process: with THP, fork() would
	 * copy one PMD per 2 MiB instead of 512 PTEs and the comparison
	 * would be about THP, not about what is copied.
	 */
	s->base = map_aligned(len, MADV_NOHUGEPAGE, &map, &map_len);
	s->len = len;
	populate(s->base, len);
	s->h.magic = STORE_MAGIC;
	s->h.rec_off = sizeof(struct rec);
	s->h.rec_size = sizeof(struct rec);
	s->h.nrec = len / sizeof(struct rec) - 1;
	memcpy(s->base, &s->h, sizeof(s->h));
	for (i = 0; i < s->h.nrec; i++)
		rec_fill(rec_at(s->base, &s->h, i), i, 0);
	s->hot = s->h.nrec / G_HOT_DIV;
	s->rng = 0x9e3779b97f4a7c15ULL;
	s->updates = 0;
}

struct ser_result {
	uint64_t ns, nrec, bad, vsum, hash;
	int ok;
};

/*
 * Serialise an image of the heap at BASE: walk every record through the
 * image's own header, check its checksum, key and value, hash it (the
 * "output"). The image is consistent when nothing is damaged and the
 * versions add up to the updates done before it was taken.
 */
static void serialise(char *base, uint64_t expect, struct ser_result *res)
{
	const struct store_hdr *h = (const struct store_hdr *)base;
	uint64_t t0 = now_ns(), i, c;
	const struct rec *r;

	memset(res, 0, sizeof(*res));
	if (h->magic != STORE_MAGIC || h->rec_size != sizeof(struct rec)) {
		res->bad = 1;
		res->ns = now_ns() - t0;
		return;
	}
	for (i = 0; i < h->nrec; i++) {
		r = rec_at(base, h, i);
		c = rec_csum(r);
		if (c != r->csum || r->key != i ||
		    r->val[0] != rec_seed(i, r->version))
			res->bad++;
		res->vsum += r->version;
		res->hash = (res->hash ^ c) * 0x100000001b3ULL;
	}
	res->nrec = h->nrec;
	res->ns = now_ns() - t0;
	res->ok = !res->bad && res->vsum == expect;
}

/* Log-linear latency histogram: 1/64 resolution, exact max. */
#define HSUB		6
#define HBUCKETS	((64 - HSUB + 1) << HSUB)

struct hist {
	uint64_t n, max;
	uint64_t b[HBUCKETS];
};

static inline unsigned int hbucket(uint64_t v)
{
	unsigned int e;

	if (v < (1U << HSUB))
		return v;
	e = 63 - __builtin_clzll(v);
	return ((e - HSUB + 1) << HSUB) |
	       ((v >> (e - HSUB)) & ((1U << HSUB) - 1));
}

static inline void hist_add(struct hist *h, uint64_t v)
{
	h->n++;
	h->b[hbucket(v)]++;
	if (v > h->max)
		h->max = v;
}

/* The value below which a fraction q of the samples lie (bucket middle). */
static uint64_t hist_pct(const struct hist *h, double q)
{
	uint64_t want = (uint64_t)(q * h->n + 0.999999), sum = 0, lo, w;
	unsigned int b, e;

	if (!want)
		want = 1;
	for (b = 0; b < HBUCKETS; b++) {
		sum += h->b[b];
		if (sum >= want)
			break;
	}
	if (b < (1U << HSUB))
		return b;
	e = (b >> HSUB) + HSUB - 1;
	w = 1ULL << (e - HSUB);
	lo = (1ULL << e) | ((uint64_t)(b & ((1U << HSUB) - 1)) << (e - HSUB));
	return lo + w / 2 < h->max ? lo + w / 2 : h->max;
}

struct gres {
	struct hist base;	/* warm-up updates */
	struct hist win;	/* the window, the call's update included */
	uint64_t warmup, warmup_ns, max_rest, stall, call_ns, window_ns, unshare_ns;
	int unshare_err;
	struct ser_result ser;
};

/*
 * TLB-shootdown IPIs received so far, all CPUs (x86 /proc/interrupts
 * "TLB:" line); -1 when there is no such line.  A writer's copy faults
 * flush the TLBs of the other CPUs running its mm: a serialiser thread's,
 * not a fork()ed child's.
 */
static long long tlb_shootdowns(void)
{
	char line[1024], *p, *q;
	long long sum = -1;
	FILE *f = fopen("/proc/interrupts", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		p = line + strspn(line, " ");
		if (strncmp(p, "TLB:", 4))
			continue;
		sum = 0;
		for (p += 4;; p = q) {
			long long v = strtoll(p, &q, 10);

			if (q == p)
				break;
			sum += v;
		}
		break;
	}
	fclose(f);
	return sum;
}

static inline void win_add(struct gres *g, uint64_t v)
{
	hist_add(&g->win, v);
	if (v > g->max_rest)
		g->max_rest = v;
}

/* fork(): the child serialises its copy, the parent updates on. */
static void image_fork(struct store *s, struct gres *g)
{
	uint64_t start, t0, t1, expect = s->updates, n;
	int p[2], status;
	pid_t pid;

	if (pipe(p))
		die("pipe");
	start = now_ns();
	pid = fork();
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(p[0]);
		serialise(s->base, expect, &g->ser);
		if (write(p[1], &g->ser, sizeof(g->ser)) != sizeof(g->ser))
			_exit(1);
		_exit(0);
	}
	g->call_ns = now_ns() - start;
	if (pid < 0)
		die("fork");
	store_update(s);
	g->stall = now_ns() - start;
	hist_add(&g->win, g->stall);
	/* Reaped yet? Asked between updates, outside their timing. */
	for (n = 1;; n++) {
		t0 = now_ns();
		store_update(s);
		t1 = now_ns();
		win_add(g, t1 - t0);
		if (!(n & 63) && waitpid(pid, &status, WNOHANG) == pid)
			break;
	}
	g->window_ns = now_ns() - start;
	close(p[1]);
	if (read(p[0], &g->ser, sizeof(g->ser)) != sizeof(g->ser))
		memset(&g->ser, 0, sizeof(g->ser));
	close(p[0]);
}

struct image_ctx {
	sem_t go_ser, go_uns;
	char *snap;		/* NULL: nothing to do */
	size_t len;
	uint64_t expect;
	struct ser_result ser;
	atomic_int done;
	char *hot;
	size_t hot_len;
	uint64_t uns_ns;
	int uns_err;
};

static void sem_wait_intr(sem_t *s)
{
	while (sem_wait(s) && errno == EINTR)
		;
}

static void *serialiser(void *arg)
{
	struct image_ctx *c = arg;

	sem_wait_intr(&c->go_ser);
	if (c->snap) {
		serialise(c->snap, c->expect, &c->ser);
		munmap(c->snap, c->len);
	}
	atomic_store_explicit(&c->done, 1, memory_order_release);
	return NULL;
}

static void *unsharer(void *arg)
{
	struct image_ctx *c = arg;
	uint64_t t0;

	sem_wait_intr(&c->go_uns);
	if (!c->snap)
		return NULL;
	t0 = now_ns();
	if (cow_unshare(c->hot, c->hot_len))
		c->uns_err = errno;
	c->uns_ns = now_ns() - t0;
	return NULL;
}

/*
 * cow_snapshot() inline in the writer (the update it precedes is timed
 * with it); a serialiser thread reads the image and unmaps it, and with
 * UNSHARE another thread breaks the sharing of the hot set at once, so
 * that the writer's next writes there find their own pages.
 */
static int image_snapshot(struct store *s, struct gres *g,
			  struct image_ctx *c, bool unshare)
{
	uint64_t start, t0, t1, expect = s->updates;
	long addr;
	int err = 0;

	start = now_ns();
	addr = cow_snapshot(s->base, s->len);
	g->call_ns = now_ns() - start;
	if (addr == -1) {
		err = errno;
	} else {
		store_update(s);
		g->stall = now_ns() - start;
		hist_add(&g->win, g->stall);
		c->snap = (char *)addr;
		c->len = s->len;
		c->expect = expect;
	}
	sem_post(&c->go_ser);
	if (unshare)
		sem_post(&c->go_uns);
	if (err)
		return err;
	while (!atomic_load_explicit(&c->done, memory_order_acquire)) {
		t0 = now_ns();
		store_update(s);
		t1 = now_ns();
		win_add(g, t1 - t0);
	}
	g->window_ns = now_ns() - start;
	g->ser = c->ser;
	g->unshare_ns = c->uns_ns;
	g->unshare_err = c->uns_err;
	return 0;
}

static int do_table_g(const char *method, size_t heap_mib, size_t other_mib,
		      double warm_s)
{
	bool fork_m = !strcmp(method, "fork");
	bool unshare = !strcmp(method, "snapshot-unshare");
	pthread_t ser_t, uns_t;
	static struct gres g;
	struct image_ctx c;
	struct store s;
	size_t map_len;
	uint64_t start, t0, t1, end;
	char *map, *other;
	long long tlb;
	int err = 0;

	if ((!fork_m && !unshare && strcmp(method, "snapshot")) ||
	    heap_mib < 1 || warm_s < 0) {
		fprintf(stderr, "cow_snapshot: table-g fork|snapshot|snapshot-unshare HEAP_MIB OTHER_MIB SECONDS\n");
		return 2;
	}
	printf("table=G method=%s heap_mib=%zu other_mib=%zu", method,
	       heap_mib, other_mib);
	if (!fork_m && snapshot_missing()) {
		printf(" skipped=cow_snapshot+not+in+this+kernel+(ENOSYS)\n");
		return 0;
	}

	/* The rest of the process: populated, never touched again. */
	if (other_mib) {
		other = map_aligned(other_mib * MIB, MADV_NOHUGEPAGE, &map,
				    &map_len);
		populate(other, other_mib * MIB);
	}
	store_init(&s, heap_mib * MIB);

	memset(&c, 0, sizeof(c));
	if (!fork_m) {
		if (sem_init(&c.go_ser, 0, 0) || sem_init(&c.go_uns, 0, 0))
			die("sem_init");
		c.hot = s.base;
		c.hot_len = (s.h.rec_off + s.hot * s.h.rec_size + PAGE - 1) &
			    ~(PAGE - 1);
		if (pthread_create(&ser_t, NULL, serialiser, &c) ||
		    (unshare && pthread_create(&uns_t, NULL, unsharer, &c)))
			die("pthread_create");
	}

	/* Warm-up, timed too: the latencies without an image being taken. */
	start = now_ns();
	end = start + (uint64_t)(warm_s * 1e9);
	do {
		t0 = now_ns();
		store_update(&s);
		t1 = now_ns();
		hist_add(&g.base, t1 - t0);
	} while (t1 < end);
	g.warmup = s.updates;
	g.warmup_ns = t1 - start;
	tlb = tlb_shootdowns();

	if (fork_m)
		image_fork(&s, &g);
	else
		err = image_snapshot(&s, &g, &c, unshare);
	if (!fork_m) {
		pthread_join(ser_t, NULL);
		if (unshare)
			pthread_join(uns_t, NULL);
	}
	if (tlb >= 0)
		tlb = tlb_shootdowns() - tlb;
	if (err) {
		printf(" skipped=cow_snapshot+failed:+%s\n", reason(err));
		return 1;
	}

	printf(" warmup_ns=%llu warmup_updates=%llu base_p50_ns=%llu base_p99_ns=%llu",
	       (unsigned long long)g.warmup_ns, (unsigned long long)g.warmup,
	       (unsigned long long)hist_pct(&g.base, 0.50),
	       (unsigned long long)hist_pct(&g.base, 0.99));
	printf(" updates=%llu window_ns=%llu p50_ns=%llu p99_ns=%llu max_ns=%llu stall_ns=%llu call_ns=%llu serialise_ns=%llu",
	       (unsigned long long)g.win.n, (unsigned long long)g.window_ns,
	       (unsigned long long)hist_pct(&g.win, 0.50),
	       (unsigned long long)hist_pct(&g.win, 0.99),
	       (unsigned long long)g.max_rest, (unsigned long long)g.stall,
	       (unsigned long long)g.call_ns, (unsigned long long)g.ser.ns);
	if (tlb >= 0)
		printf(" tlb_ipis=%lld", tlb);
	if (unshare && g.unshare_err)
		printf(" unshare_error=%s", reason(g.unshare_err));
	else if (unshare)
		printf(" unshare_ns=%llu", (unsigned long long)g.unshare_ns);
	printf(" records=%llu bad=%llu verified=%d%s\n",
	       (unsigned long long)g.ser.nrec, (unsigned long long)g.ser.bad,
	       g.ser.ok, EMULATED);
	return !g.ser.ok || (unshare && g.unshare_err);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && !strcmp(argv[1], "table-e"))
		return do_table_e(strtoul(argv[2], NULL, 0), argv[3]);
	if (argc == 6 && !strcmp(argv[1], "table-g"))
		return do_table_g(argv[2], strtoul(argv[3], NULL, 0),
				  strtoul(argv[4], NULL, 0),
				  strtod(argv[5], NULL));
	fprintf(stderr, "usage: cow_snapshot table-e SIZE_MIB 4k|thp\n"
		"       cow_snapshot table-g fork|snapshot|snapshot-unshare HEAP_MIB OTHER_MIB SECONDS\n");
	return 2;
}
