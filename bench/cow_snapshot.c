// SPDX-License-Identifier: GPL-2.0-only
/*
 * cow_snapshot: what a cow_snapshot() call costs next to fork() and a
 * plain copy (table E), and what taking a consistent image of an
 * in-memory store does to its writer (table G).
 *
 * cow_snapshot() has two modes. Asynchronous (flags 0, the default where
 * the kernel has it: /proc/vmstat cow_snapshot_pmds_deferred): the call
 * write-protects the source's PMD entries, one per page table fully
 * inside the range, and returns; each such 2 MiB is "settled" (its page
 * table copied for the snapshot) later, by the first fault under it on
 * either side, before an operation that changes the ranges, or by a
 * background kworker. Eager (COW_SNAPSHOT_EAGER): every page table is
 * copied in the call. On a kernel with only the eager mode, "eager" is
 * flags 0 and the asynchronous parts say they are skipped.
 *
 *   cow_snapshot table-e SIZE_MIB 4k|thp
 *	A populated region of SIZE_MIB (4k: MADV_NOHUGEPAGE; thp: 2 MiB
 *	aligned, MADV_HUGEPAGE). Each of: (i) cow_snapshot() of the region,
 *	asynchronous and eager, (ii) fork() of a process holding only the
 *	region, (iii) fork() of a process holding the region and 4 x
 *	SIZE_MIB more (SIZE_MIB <= 256), (iv) mmap() + memcpy() of the
 *	region: the call's time, the time until the copy is complete (the
 *	asynchronous snapshot: until no PMD of it is pending; the others:
 *	the call) (median of E_REPS runs, one run from 1 GiB on) and the
 *	memory it adds. One more asynchronous call with the background
 *	worker paused gives the memory at the call, before any settling.
 *
 *   cow_snapshot table-g METHOD HEAP_MIB OTHER_MIB SECONDS
 *	METHOD: fork, snapshot-eager, snapshot-async, snapshot-async-unshare
 *	(or snapshot-eager-unshare). A key-value store of fixed-size
 *	records in a HEAP_MIB heap, in a process with OTHER_MIB more
 *	populated memory. The main thread updates random records (90% of
 *	them in the first eighth of the heap), each update timed; after
 *	SECONDS of warm-up it takes one image of the heap: fork() (the
 *	child serialises it), cow_snapshot() (a thread serialises it), with
 *	-unshare plus MADV_COW_UNSHARE of the hot eighth from another
 *	thread, and keeps updating until the image is serialised and gone.
 *	The writer's first write to each 2 MiB of the heap after the call
 *	(which, asynchronous, may settle that 2 MiB) is timed apart from its
 *	first write to each other page of an already written 2 MiB.
 *
 * Results are one line of KEY=VALUE pairs on stdout ("table=E ..." or
 * "table=G ..."); a part that cannot run is left out and a *skipped= key
 * says why, spaces written as '+'. All times in ns of CLOCK_MONOTONIC
 * (under QEMU -icount shift=0: guest instructions; under MTTCG: wall
 * clock), memory in KiB. Exit 1 when an image read back differs from
 * what it was taken of.
 *
 * Built with -DCOW_SNAPSHOT_EMULATE, cow_snapshot() is emulated with
 * mmap() + memcpy() (eager only) and MADV_COW_UNSHARE is a no-op: only to
 * try the program's own logic on a kernel without the series (numbers are
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
#ifndef COW_SNAPSHOT_EAGER
#define COW_SNAPSHOT_EAGER	0x02
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
/* Pauses the kernel's background settling while it reads 1. */
#define PAUSE_FILE	"/sys/kernel/debug/cow_snapshot/pause"
/* Where the snapshot counters are read (another file: to test the parser). */
#ifndef VMSTAT_PATH
#define VMSTAT_PATH	"/proc/vmstat"
#endif
/* Longest wait for a snapshot to settle before it is reported unsettled. */
#define SETTLE_TIMEOUT_NS	(30 * 1000000000ULL)

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
static long cow_snapshot(void *start, size_t len, unsigned int flags)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)flags;
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
static long cow_snapshot(void *start, size_t len, unsigned int flags)
{
	return syscall(__NR_cow_snapshot, (unsigned long)start, len, 0UL, flags);
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
 * The asynchronous mode's /proc/vmstat counters (global: the benchmark
 * runs alone). Pending PMDs: deferred - settled (by a fault, before an
 * operation, by the background worker) - dropped (unmapped unsettled).
 */
struct snapstat {
	long long deferred, fault, op, bg, dropped;
};

static const char *const snapstat_names[] = {
	"cow_snapshot_pmds_deferred", "cow_snapshot_settle_fault",
	"cow_snapshot_settle_op", "cow_snapshot_settle_bg",
	"cow_snapshot_pmds_dropped",
};

/* Read the counters; false when this kernel has no asynchronous mode. */
static bool snapstat_read(struct snapstat *s)
{
	static char buf[32768];
	long long *v[] = { &s->deferred, &s->fault, &s->op, &s->bg, &s->dropped };
	size_t n = 0, i;
	ssize_t r;
	char *p;
	int fd = open(VMSTAT_PATH, O_RDONLY);

	if (fd < 0)
		die(VMSTAT_PATH);
	while (n < sizeof(buf) - 1 &&
	       (r = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += r;
	close(fd);
	buf[n] = '\0';
	for (i = 0; i < 5; i++) {
		size_t l = strlen(snapstat_names[i]);

		*v[i] = -1;
		for (p = buf; (p = strstr(p, snapstat_names[i])); p += l)
			if ((p == buf || p[-1] == '\n') && p[l] == ' ') {
				*v[i] = strtoll(p + l + 1, NULL, 10);
				break;
			}
	}
	return s->deferred >= 0 && s->fault >= 0 && s->op >= 0 &&
	       s->bg >= 0 && s->dropped >= 0;
}

static long long snap_pending(const struct snapstat *s)
{
	return s->deferred - s->fault - s->op - s->bg - s->dropped;
}

/* Does this kernel have the asynchronous mode? */
static bool have_async(void)
{
	struct snapstat s;

	return snapstat_read(&s);
}

/* Pause (1) or resume (0) background settling; false without the knob. */
static bool bg_pause(int on)
{
	int fd = open(PAUSE_FILE, O_WRONLY);
	bool ok;

	if (fd < 0)
		return false;
	ok = write(fd, on ? "1" : "0", 1) == 1;
	close(fd);
	return ok;
}

/* An exit while paused must not leave the worker paused for what follows. */
static void bg_resume(void)
{
	bg_pause(0);
}

/* What waiting for a snapshot to settle cost: readings of /proc/vmstat. */
struct settle_wait {
	uint64_t polls, poll_ns;
	long long left;		/* PMDs still pending at the timeout (0: settled) */
};

/*
 * Sleep until no snapshot PMD is pending; the time from T0 until the
 * reading that saw none began, or 0 after SETTLE_TIMEOUT_NS. A reading
 * of /proc/vmstat is not cheap (every vm event summed over the CPUs:
 * ~70 us of guest time under TCG), and under single-threaded TCG the
 * readings take turns with the work they wait for, so the poller sleeps
 * max(50 us, 1/8 of the time so far) between them: the result is late
 * by up to that, and W says what the readings cost.
 */
static uint64_t wait_settled(uint64_t t0, struct settle_wait *w)
{
	struct snapstat s;
	struct timespec ts;
	uint64_t t, t1, d;

	memset(w, 0, sizeof(*w));
	for (;;) {
		t = now_ns();
		snapstat_read(&s);
		t1 = now_ns();
		w->polls++;
		w->poll_ns += t1 - t;
		w->left = snap_pending(&s);
		if (w->left <= 0) {
			w->left = 0;
			return t > t0 ? t - t0 : 0;
		}
		if (t1 - t0 > SETTLE_TIMEOUT_NS)
			return 0;
		d = (t1 - t0) / 8;
		if (d < 50000)
			d = 50000;
		ts.tv_sec = d / 1000000000ULL;
		ts.tv_nsec = d % 1000000000ULL;
		nanosleep(&ts, NULL);
	}
}

/* The snapshot mode a METHOD or table E names. */
enum snap_mode { SNAP_ASYNC, SNAP_EAGER };

/*
 * The flags for MODE; -1 (and *why) when this kernel cannot do it. On a
 * kernel without the asynchronous mode the eager one is flags 0.
 */
static int mode_flags(enum snap_mode mode, const char **why)
{
	bool async = have_async();

	if (mode == SNAP_ASYNC) {
		if (async)
			return 0;
		*why = "no+asynchronous+mode+in+this+kernel+(no+vmstat+cow_snapshot_pmds_deferred)";
		return -1;
	}
	return async ? COW_SNAPSHOT_EAGER : 0;
}

/*
 * Memory use, from /proc/meminfo. "Extra memory" below is the growth of
 * AnonPages + PageTables + KernelStack + Slab: what the operation made the
 * kernel allocate (copied and new anonymous pages, page tables, a child's
 * kernel stack, task and VMA structures). MemFree/MemAvailable would
 * count the same, but they move by up to several MiB with the per-CPU
 * free page lists, more than a snapshot's page tables; the page tables
 * alone are reported too, as PageTables growth. RSS: VmRSS growth of the
 * process (a fork: the child's VmRSS), which counts a page mapped by both
 * a range and its snapshot twice. The counters are per-CPU and folded
 * into the totals /proc/meminfo shows only now and then: vm.stat_refresh
 * folds them first (root only; without it a reading lags by up to a few
 * MiB).
 */
struct meminfo {
	long anon, ptab, kstack, slab;
};

/* Static: reading them after fork() adds no COW fault of our stack. */
static char line[512];

static void meminfo_read(struct meminfo *m)
{
	int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY);
	FILE *f;
	long v;

	memset(m, 0, sizeof(*m));
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
			m->anon = v;
		else if (sscanf(line, "PageTables: %ld", &v) == 1)
			m->ptab = v;
		else if (sscanf(line, "KernelStack: %ld", &v) == 1)
			m->kstack = v;
		else if (sscanf(line, "Slab: %ld", &v) == 1)
			m->slab = v;
	}
	fclose(f);
}

static long used_of(const struct meminfo *m)
{
	return m->anon + m->ptab + m->kstack + m->slab;
}

/* VmRSS of a process (0: ourselves) in KiB. */
static long vmrss_kb(pid_t pid)
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
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
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

/*
 * One measurement: call, until complete (and the readings of /proc/vmstat
 * that waiting took), extra memory, page tables, RSS.
 */
struct sample {
	int64_t ns, settle_ns, polls, poll_ns, extra_kb, pt_kb, rss_kb;
};

#define SAMPLE_FIELDS	7

static int64_t *sample_field(struct sample *s, int f)
{
	int64_t *v[SAMPLE_FIELDS] = { &s->ns, &s->settle_ns, &s->polls,
				      &s->poll_ns, &s->extra_kb, &s->pt_kb,
				      &s->rss_kb };

	return v[f];
}

/* The median of each field over n samples. */
static struct sample sample_median(struct sample *s, int n)
{
	int64_t v[E_REPS];
	struct sample m;
	int i, f;

	for (f = 0; f < SAMPLE_FIELDS; f++) {
		for (i = 0; i < n; i++)
			v[i] = *sample_field(&s[i], f);
		*sample_field(&m, f) = median(v, n);
	}
	return m;
}

/* NAME_ns (and NAME_settle_ns with SETTLE) and the memory of a sample. */
static void print_sample(const char *name, const struct sample *s, bool settle)
{
	printf(" %s_ns=%lld", name, (long long)s->ns);
	if (settle)
		printf(" %s_settle_ns=%lld %s_settle_polls=%lld %s_settle_poll_ns=%lld",
		       name, (long long)s->settle_ns, name, (long long)s->polls,
		       name, (long long)s->poll_ns);
	printf(" %s_extra_kb=%lld %s_pt_kb=%lld %s_rss_kb=%lld", name,
	       (long long)s->extra_kb, name, (long long)s->pt_kb, name,
	       (long long)s->rss_kb);
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
 * parent (complete then: settle_ns is the same); extra memory while the
 * child lives (it signals, then blocks on a pipe until released).
 */
static struct sample fork_once(void)
{
	struct meminfo m0, m1;
	int go[2], ready[2];
	struct sample s = { 0 };
	uint64_t t0, t1;
	pid_t pid;
	char ch;

	if (pipe(go) || pipe(ready))
		die("pipe");
	meminfo_read(&m0);
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
	s.ns = s.settle_ns = t1 - t0;
	meminfo_read(&m1);
	s.extra_kb = used_of(&m1) - used_of(&m0);
	s.pt_kb = m1.ptab - m0.ptab;
	s.rss_kb = vmrss_kb(pid);
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

/* What one table E snapshot run found besides its sample. */
struct snap_run {
	long long deferred;	/* PMDs the call left pending */
	struct settle_wait w;	/* waiting for them */
	long long after_call;	/* eager: pending right after the call */
};

/*
 * One cow_snapshot() of MEM (stamped with SALT first) with FLAGS: the
 * call's time; asynchronous (ASYNC), the time from the call until nothing
 * is pending; memory once complete. The snapshot is checked, written
 * (which must not show in the source) and unmapped. 0 or the call's errno.
 */
static int snapshot_once(char *mem, size_t len, unsigned int flags,
			 bool async, uint64_t salt, struct sample *s,
			 struct snap_run *r)
{
	struct snapstat v0, v1;
	struct meminfo m0, m1;
	uint64_t t0, t1;
	long rss0, addr;
	char *snap;

	stamp(mem, len, salt);
	memset(r, 0, sizeof(*r));
	meminfo_read(&m0);
	rss0 = vmrss_kb(0);
	snapstat_read(&v0);
	t0 = now_ns();
	addr = cow_snapshot(mem, len, flags);
	t1 = now_ns();
	if (addr == -1)
		return errno;
	s->ns = t1 - t0;
	if (async) {
		s->settle_ns = wait_settled(t0, &r->w);
		s->polls = r->w.polls;
		s->poll_ns = r->w.poll_ns;
	} else {
		s->settle_ns = s->ns;
		s->polls = s->poll_ns = 0;
		if (snapstat_read(&v1))
			r->after_call = snap_pending(&v1);
	}
	if (snapstat_read(&v1))
		r->deferred = v1.deferred - v0.deferred;
	meminfo_read(&m1);
	s->extra_kb = used_of(&m1) - used_of(&m0);
	s->pt_kb = m1.ptab - m0.ptab;
	s->rss_kb = vmrss_kb(0) - rss0;
	snap = (char *)addr;
	check_copy("snapshot", snap, mem, len, salt);
	/*
	 * A write to the snapshot copies one page (a shared THP: the
	 * snapshot's PMD is split, the source's stays) and must not show in
	 * the source.
	 */
	*(volatile uint64_t *)(snap + len - PAGE) = 0;
	if (*(uint64_t *)(mem + len - PAGE) != (((len - PAGE) / PAGE) ^ salt)) {
		fprintf(stderr, "cow_snapshot: a write to the snapshot shows in the source\n");
		exit(1);
	}
	munmap(snap, len);
	return 0;
}

/*
 * The asynchronous call's memory before anything settles: one call with
 * the background worker paused, measured at once, then resumed and
 * waited for. False when there is no pause knob.
 */
static bool snapshot_at_call(char *mem, size_t len, uint64_t salt,
			     struct sample *s, long long *deferred)
{
	struct settle_wait w;
	struct snapstat v0, v1;
	struct meminfo m0, m1;
	uint64_t t0;
	long rss0, addr;

	stamp(mem, len, salt);
	if (!bg_pause(1))
		return false;
	atexit(bg_resume);
	meminfo_read(&m0);
	rss0 = vmrss_kb(0);
	snapstat_read(&v0);
	t0 = now_ns();
	addr = cow_snapshot(mem, len, 0);
	s->ns = now_ns() - t0;
	if (addr == -1) {
		bg_pause(0);
		return false;
	}
	meminfo_read(&m1);
	snapstat_read(&v1);
	s->extra_kb = used_of(&m1) - used_of(&m0);
	s->pt_kb = m1.ptab - m0.ptab;
	s->rss_kb = vmrss_kb(0) - rss0;
	*deferred = snap_pending(&v1) - snap_pending(&v0);
	bg_pause(0);
	s->settle_ns = wait_settled(t0, &w);
	check_copy("snapshot", (char *)addr, mem, len, salt);
	munmap((char *)addr, len);
	return true;
}

/*
 * REPS snapshots of MEM in MODE, their medians printed as NAME_*; 0, or
 * the errno of a failed call (printed as NAME_skipped).
 */
static int snapshot_rows(const char *name, enum snap_mode mode, char *mem,
			 size_t len, int reps)
{
	struct sample sn[E_REPS], m;
	struct snap_run r = { 0 };
	const char *why = NULL;
	int flags = mode_flags(mode, &why), i, err = 0;
	long long deferred = 0;

	if (flags < 0) {
		printf(" %s_skipped=%s", name, why);
		return 0;
	}
	for (i = 0; i < reps && !err; i++) {
		err = snapshot_once(mem, len, flags, mode == SNAP_ASYNC, i + 1,
				    &sn[i], &r);
		if (r.w.left) {
			printf(" %s_unsettled_pmds=%lld", name, r.w.left);
			break;
		}
		deferred = r.deferred;
	}
	if (err == ENOSYS) {
		printf(" %s_skipped=cow_snapshot+not+in+this+kernel+(ENOSYS)", name);
		return err;
	}
	if (err) {
		printf(" %s_skipped=cow_snapshot+failed:+%s", name, reason(err));
		return err;
	}
	if (r.w.left)
		return 0;
	m = sample_median(sn, reps);
	print_sample(name, &m, mode == SNAP_ASYNC);
	printf(" %s_flags=%d", name, flags);
	if (mode == SNAP_ASYNC) {
		printf(" %s_deferred_pmds=%lld", name, deferred);
		if (snapshot_at_call(mem, len, reps + 1, &m, &deferred))
			printf(" %s_call_extra_kb=%lld %s_call_pt_kb=%lld %s_call_rss_kb=%lld %s_call_pending_pmds=%lld",
			       name, (long long)m.extra_kb, name,
			       (long long)m.pt_kb, name, (long long)m.rss_kb,
			       name, deferred);
		else
			printf(" %s_call_skipped=no+%s", name, PAUSE_FILE);
	} else if (r.after_call) {
		printf(" %s_pending_after_call=%lld", name, r.after_call);
	}
	return 0;
}

static int do_table_e(size_t mib, const char *backing)
{
	struct sample fk[E_REPS], cp[E_REPS] = { 0 }, f4, m;
	int thp = !strcmp(backing, "thp"), advice, reps, i, ea, eb;
	size_t len = mib * MIB, map_len, dmap_len;
	struct meminfo m0, m1;
	char *map, *mem, *dmap, *dst;
	long thp_kb, rss0;
	uint64_t t0;

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
		meminfo_read(&m0);
		rss0 = vmrss_kb(0);
		t0 = now_ns();
		dst = map_aligned(len, advice, &dmap, &dmap_len);
		memcpy(dst, mem, len);
		cp[i].ns = cp[i].settle_ns = now_ns() - t0;
		meminfo_read(&m1);
		cp[i].extra_kb = used_of(&m1) - used_of(&m0);
		cp[i].pt_kb = m1.ptab - m0.ptab;
		cp[i].rss_kb = vmrss_kb(0) - rss0;
		check_copy("copy", dst, mem, len, 0);
		munmap(dmap, dmap_len);
	}

	printf("table=E size_mib=%zu backing=%s reps=%d thp_kb=%ld", mib,
	       backing, reps, thp_kb);
	/* (i) cow_snapshot() of the region, just written all over. */
	ea = snapshot_rows("async", SNAP_ASYNC, mem, len, reps);
	eb = snapshot_rows("eager", SNAP_EAGER, mem, len, reps);

	/* (ii) fork() of this process: the region and little else. */
	for (i = 0; i < reps; i++) {
		stamp(mem, len, i + 1);
		fk[i] = fork_once();
	}
	m = sample_median(fk, reps);
	print_sample("fork", &m, false);
	if (mib <= E_FORK4X_MAX)
		print_sample("fork4x", &f4, false);
	else
		printf(" fork4x_skipped=memory");
	m = sample_median(cp, reps);
	print_sample("memcpy", &m, false);
	printf("%s\n", EMULATED);
	munmap(map, map_len);
	return (ea && ea != ENOSYS) || (eb && eb != ENOSYS);
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
static inline uint64_t store_update(struct store *s)
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
	return i;
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
	/* Damaged records: the first and last index, how many read as 0. */
	uint64_t bad_first, bad_last, bad_zero;
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
		    r->val[0] != rec_seed(i, r->version)) {
			if (!res->bad++)
				res->bad_first = i;
			res->bad_last = i;
			res->bad_zero += !r->key && !r->version && !r->csum;
		}
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
	struct hist first2m;	/* the first write to a 2 MiB of the heap */
	struct hist firstpg;	/* the first to a page of a written 2 MiB */
	uint64_t warmup, warmup_ns, max_rest, stall, call_ns, window_ns, unshare_ns;
	int unshare_err;
	struct ser_result ser;
	/* Written since the call: per 4 KiB page and per 2 MiB of the heap. */
	uint8_t *pg_seen, *pmd_seen;
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

/*
 * Mark record I's page and 2 MiB written; which first it was: 2 (the
 * first write to its 2 MiB), 1 (to its page, the 2 MiB written before),
 * 0 (neither).
 */
static inline int mark_written(struct gres *g, const struct store *s,
			       uint64_t i)
{
	uint64_t off = s->h.rec_off + i * s->h.rec_size;
	int first = 0;

	if (!g->pmd_seen[off / PMD_SIZE_]) {
		g->pmd_seen[off / PMD_SIZE_] = 1;
		first = 2;
	}
	if (!g->pg_seen[off / PAGE]) {
		g->pg_seen[off / PAGE] = 1;
		first = first ? first : 1;
	}
	return first;
}

/* An update of record I in the window that took V ns. */
static inline void win_add(struct gres *g, const struct store *s,
			   uint64_t i, uint64_t v)
{
	hist_add(&g->win, v);
	if (v > g->max_rest)
		g->max_rest = v;
	switch (mark_written(g, s, i)) {
	case 2:
		hist_add(&g->first2m, v);
		break;
	case 1:
		hist_add(&g->firstpg, v);
		break;
	}
}

/* fork(): the child serialises its copy, the parent updates on. */
static void image_fork(struct store *s, struct gres *g)
{
	uint64_t start, t0, t1, expect = s->updates, n, i;
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
	i = store_update(s);
	g->stall = now_ns() - start;
	hist_add(&g->win, g->stall);
	mark_written(g, s, i);
	/* Reaped yet? Asked between updates, outside their timing. */
	for (n = 1;; n++) {
		t0 = now_ns();
		i = store_update(s);
		t1 = now_ns();
		win_add(g, s, i, t1 - t0);
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
	sem_t go_ser, go_uns, go_watch;
	char *snap;		/* NULL: nothing to do */
	size_t len;
	uint64_t expect;
	struct ser_result ser;
	atomic_int done;
	char *hot;
	size_t hot_len;
	uint64_t uns_ns;
	int uns_err;
	uint64_t start;		/* of the call */
	uint64_t settle_ns;	/* from the call until nothing was pending */
	struct settle_wait w;
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

/* Asynchronous: how long from the call until nothing is pending. */
static void *settle_watcher(void *arg)
{
	struct image_ctx *c = arg;

	sem_wait_intr(&c->go_watch);
	if (c->snap)
		c->settle_ns = wait_settled(c->start, &c->w);
	return NULL;
}

/*
 * cow_snapshot() with FLAGS inline in the writer (the update it precedes
 * is timed with it); a serialiser thread reads the image and unmaps it,
 * with UNSHARE another thread breaks the sharing of the hot set at once,
 * so that the writer's next writes there find their own pages, and with
 * WATCH a thread waits for the snapshot to settle.
 */
static int image_snapshot(struct store *s, struct gres *g,
			  struct image_ctx *c, unsigned int flags,
			  bool unshare, bool watch)
{
	uint64_t start, t0, t1, expect = s->updates, i;
	long addr;
	int err = 0;

	start = now_ns();
	addr = cow_snapshot(s->base, s->len, flags);
	g->call_ns = now_ns() - start;
	if (addr == -1) {
		err = errno;
	} else {
		i = store_update(s);
		g->stall = now_ns() - start;
		hist_add(&g->win, g->stall);
		mark_written(g, s, i);
		c->snap = (char *)addr;
		c->len = s->len;
		c->expect = expect;
		c->start = start;
	}
	sem_post(&c->go_ser);
	if (unshare)
		sem_post(&c->go_uns);
	if (watch)
		sem_post(&c->go_watch);
	if (err)
		return err;
	while (!atomic_load_explicit(&c->done, memory_order_acquire)) {
		t0 = now_ns();
		i = store_update(s);
		t1 = now_ns();
		win_add(g, s, i, t1 - t0);
	}
	g->window_ns = now_ns() - start;
	g->ser = c->ser;
	g->unshare_ns = c->uns_ns;
	g->unshare_err = c->uns_err;
	return 0;
}

/* A histogram's count, p50, p99 and max as NAME_*. */
static void print_hist(const char *name, const struct hist *h)
{
	printf(" %s_n=%llu", name, (unsigned long long)h->n);
	if (h->n)
		printf(" %s_p50_ns=%llu %s_p99_ns=%llu %s_max_ns=%llu", name,
		       (unsigned long long)hist_pct(h, 0.50), name,
		       (unsigned long long)hist_pct(h, 0.99), name,
		       (unsigned long long)h->max);
}

static int do_table_g(const char *method, size_t heap_mib, size_t other_mib,
		      double warm_s)
{
	bool fork_m = !strcmp(method, "fork"), unshare = false, async = false;
	pthread_t ser_t, uns_t, watch_t;
	struct snapstat v0, v1;
	static struct gres g;
	struct image_ctx c;
	struct store s;
	size_t map_len;
	uint64_t start, t0, t1, end;
	const char *why = NULL, *m;
	char *map, *other;
	long long tlb;
	int err = 0, flags = 0;

	if (!fork_m && !strncmp(method, "snapshot-", 9)) {
		m = method + 9;
		if (!strncmp(m, "async", 5)) {
			async = true;
			m += 5;
		} else if (!strncmp(m, "eager", 5)) {
			m += 5;
		} else {
			m = "?";
		}
		unshare = !strcmp(m, "-unshare");
		if (*m && !unshare)
			method = "?";
	} else if (!fork_m) {
		method = "?";
	}
	if (!strcmp(method, "?") || heap_mib < 1 || warm_s < 0) {
		fprintf(stderr, "cow_snapshot: table-g fork|snapshot-eager|snapshot-async[-unshare] HEAP_MIB OTHER_MIB SECONDS\n");
		return 2;
	}
	printf("table=G method=%s heap_mib=%zu other_mib=%zu", method,
	       heap_mib, other_mib);
	if (!fork_m && snapshot_missing()) {
		printf(" skipped=cow_snapshot+not+in+this+kernel+(ENOSYS)\n");
		return 0;
	}
	if (!fork_m) {
		flags = mode_flags(async ? SNAP_ASYNC : SNAP_EAGER, &why);
		if (flags < 0) {
			printf(" skipped=%s\n", why);
			return 0;
		}
	}

	/* The rest of the process: populated, never touched again. */
	if (other_mib) {
		other = map_aligned(other_mib * MIB, MADV_NOHUGEPAGE, &map,
				    &map_len);
		populate(other, other_mib * MIB);
	}
	store_init(&s, heap_mib * MIB);
	/* Populated now: no fault of their own inside the window. */
	g.pg_seen = malloc(s.len / PAGE);
	g.pmd_seen = malloc(s.len / PMD_SIZE_ + 1);
	if (!g.pg_seen || !g.pmd_seen)
		die("malloc");
	memset(g.pg_seen, 0, s.len / PAGE);
	memset(g.pmd_seen, 0, s.len / PMD_SIZE_ + 1);

	memset(&c, 0, sizeof(c));
	if (!fork_m) {
		if (sem_init(&c.go_ser, 0, 0) || sem_init(&c.go_uns, 0, 0) ||
		    sem_init(&c.go_watch, 0, 0))
			die("sem_init");
		c.hot = s.base;
		c.hot_len = (s.h.rec_off + s.hot * s.h.rec_size + PAGE - 1) &
			    ~(PAGE - 1);
		if (pthread_create(&ser_t, NULL, serialiser, &c) ||
		    (unshare && pthread_create(&uns_t, NULL, unsharer, &c)) ||
		    (async && pthread_create(&watch_t, NULL, settle_watcher, &c)))
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
	snapstat_read(&v0);

	if (fork_m)
		image_fork(&s, &g);
	else
		err = image_snapshot(&s, &g, &c, flags, unshare, async);
	if (!fork_m) {
		pthread_join(ser_t, NULL);
		if (unshare)
			pthread_join(uns_t, NULL);
		if (async)
			pthread_join(watch_t, NULL);
	}
	if (tlb >= 0)
		tlb = tlb_shootdowns() - tlb;
	if (err) {
		printf(" skipped=cow_snapshot+failed:+%s\n", reason(err));
		return 1;
	}

	printf(" flags=%d warmup_ns=%llu warmup_updates=%llu base_p50_ns=%llu base_p99_ns=%llu",
	       flags, (unsigned long long)g.warmup_ns,
	       (unsigned long long)g.warmup,
	       (unsigned long long)hist_pct(&g.base, 0.50),
	       (unsigned long long)hist_pct(&g.base, 0.99));
	printf(" updates=%llu window_ns=%llu p50_ns=%llu p99_ns=%llu max_ns=%llu stall_ns=%llu call_ns=%llu serialise_ns=%llu",
	       (unsigned long long)g.win.n, (unsigned long long)g.window_ns,
	       (unsigned long long)hist_pct(&g.win, 0.50),
	       (unsigned long long)hist_pct(&g.win, 0.99),
	       (unsigned long long)g.max_rest, (unsigned long long)g.stall,
	       (unsigned long long)g.call_ns, (unsigned long long)g.ser.ns);
	/* Complete at the call but for the asynchronous snapshot. */
	if (!async)
		printf(" settle_ns=%llu", (unsigned long long)g.call_ns);
	else if (c.w.left)
		printf(" unsettled_pmds=%lld", c.w.left);
	else
		printf(" settle_ns=%llu settle_polls=%llu settle_poll_ns=%llu",
		       (unsigned long long)c.settle_ns,
		       (unsigned long long)c.w.polls,
		       (unsigned long long)c.w.poll_ns);
	print_hist("first2m", &g.first2m);
	print_hist("firstpage", &g.firstpg);
	if (snapstat_read(&v1))
		printf(" pmds_deferred=%lld settle_fault=%lld settle_op=%lld settle_bg=%lld pmds_dropped=%lld",
		       v1.deferred - v0.deferred, v1.fault - v0.fault,
		       v1.op - v0.op, v1.bg - v0.bg, v1.dropped - v0.dropped);
	if (tlb >= 0)
		printf(" tlb_ipis=%lld", tlb);
	if (unshare && g.unshare_err)
		printf(" unshare_error=%s", reason(g.unshare_err));
	else if (unshare)
		printf(" unshare_ns=%llu", (unsigned long long)g.unshare_ns);
	printf(" records=%llu bad=%llu", (unsigned long long)g.ser.nrec,
	       (unsigned long long)g.ser.bad);
	if (g.ser.bad)
		printf(" bad_first=%llu bad_last=%llu bad_zero=%llu heap_offset_first=0x%llx",
		       (unsigned long long)g.ser.bad_first,
		       (unsigned long long)g.ser.bad_last,
		       (unsigned long long)g.ser.bad_zero,
		       (unsigned long long)(s.h.rec_off + g.ser.bad_first * s.h.rec_size));
	printf(" verified=%d%s\n", g.ser.ok, EMULATED);
	return !g.ser.ok || (unshare && g.unshare_err) || c.w.left;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* wait_settled()'s short sleeps: no 50 us of default timer slack. */
	prctl(PR_SET_TIMERSLACK, 1UL);
	if (argc == 4 && !strcmp(argv[1], "table-e"))
		return do_table_e(strtoul(argv[2], NULL, 0), argv[3]);
	if (argc == 6 && !strcmp(argv[1], "table-g"))
		return do_table_g(argv[2], strtoul(argv[3], NULL, 0),
				  strtoul(argv[4], NULL, 0),
				  strtod(argv[5], NULL));
	fprintf(stderr, "usage: cow_snapshot table-e SIZE_MIB 4k|thp\n"
		"       cow_snapshot table-g fork|snapshot-eager|snapshot-async[-unshare] HEAP_MIB OTHER_MIB SECONDS\n");
	return 2;
}
