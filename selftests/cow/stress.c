// SPDX-License-Identifier: GPL-2.0-only
/*
 * A time-bounded, seedable stress run of copy-on-write.
 *
 * A 64 MiB region (THPs allowed, 2 MiB aligned) holds 512-byte records:
 * record id, version, a payload derived from both and a checksum. Writer
 * threads rewrite random records under striped locks and a global rwlock
 * taken shared; they count every write. Operation threads meanwhile pick
 * at random among:
 *
 * - fork(): taken with the rwlock held exclusively, so the child gets one
 *   instant: it checks every record against the versions of that instant
 *   (its own copy of the version table) and that they add up to the write
 *   count, writes to its copy, and sends its verdict through a pipe while
 *   the parent's writers go on;
 * - cow_snapshot() of the region (or part of it) at such an instant, and
 *   of a scratch area: checked the same way while the writers go on, with
 *   MADV_COW_UNSHARE of part of the snapshot or of the source first,
 *   writes to the snapshot, and some snapshots kept for a while and
 *   checked again later (no more than two at a time);
 * - MADV_COW_UNSHARE of parts of the region, whose records are then checked
 *   under their locks;
 * - munmap() and mmap() again, mprotect() flips and MADV_DONTNEED of the
 *   scratch area, whose pages hold a pattern or zeros (after DONTNEED);
 * - as root, writes to vm.cow_precopy_pages, vm.cow_precopy_adaptive,
 *   vm.cow_thp_mode and vm.cow_latency_sample (and, async, debugfs
 *   cow_snapshot/pause), restored at the end (and on a fatal signal).
 *
 * Two modes, one kselftest test each, run one after the other in a
 * process of their own: async, cow_snapshot() without flags (whole PMDs of
 * page tables copied after the call: the first half of the region is kept
 * in small pages for that, and the background worker is held back or let
 * go like a knob, debugfs cow_snapshot/pause), and eager, every call with
 * COW_SNAPSHOT_EAGER (where the kernel has it). COW_STRESS_MODE=async or
 * eager runs one only.
 *
 * COW_STRESS_SECONDS (default 10) sets the duration of each mode,
 * COW_STRESS_SEED (default: the time) the seed, printed to repeat a run;
 * a mode ends by its duration plus 10 s. ENOMEM and EAGAIN are tolerated
 * and counted, as fault injection (fail_page_alloc, failslab) makes them,
 * and so are the other errors an allocation failure gives (see T_ENFILE,
 * T_EFAULT); a data mismatch, any other error or a child killed by a
 * signal fails.
 * COW_STRESS_MAKE_IT_FAIL=1 sets /proc/self/make-it-fail once set up.
 * Without cow_snapshot() (and MADV_COW_UNSHARE) those operations are
 * skipped.
 *
 * Without the harness: its fork() per test would fail under fault
 * injection. The process that forks each mode's own is never under fault
 * injection: the mode's process turns it on once set up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#ifdef __has_include
#if __has_include("sys/rseq.h")
#include <sys/rseq.h>
#endif
#endif

#include "kselftest.h"
#include "cow_util.h"

#define PAGE		COW_SUBPAGE
#define REGION_LEN	(64UL << 20)
#define REC_SIZE	512
#define REC_WORDS	(REC_SIZE / 8)
#define NR_RECS		(REGION_LEN / REC_SIZE)
#define RECS_PER_PAGE	(PAGE / REC_SIZE)
#define NR_STRIPES	1024
/* Records a writer rewrites per hold of the rwlock. */
#define WRITE_BATCH	16
#define SCRATCH_LEN	(4UL << 20)
#define SCRATCH_PAGES	(SCRATCH_LEN / PAGE)
/* Snapshots and fork children alive at once: each may pin 64 MiB. */
#define MAX_IMAGES	2
#define NR_SLOTS	MAX_IMAGES
/* How many times a kept snapshot is checked again before it goes. */
#define MAX_AGE		3
#define NR_OPERATORS	2
#define MAX_WRITERS	3
#define DEFAULT_SECONDS	10
/* After the duration: operations under way may finish until ... */
#define OPS_GRACE	5
/* ... and the threads must be done by then; the final check follows. */
#define JOIN_GRACE	7
/* Version bumps written by snapshot and child sides: never the source's. */
#define SNAP_BUMP	0x10000000000ULL
#define CHILD_BUMP	0x20000000000ULL
/* Records a fork child or a kept snapshot writes: each may copy 2 MiB. */
#define SIDE_WRITES	4
#define MAX_REPORTS	10

#define SAMPLE_PATH	"/proc/sys/vm/cow_latency_sample"

enum {
	C_WRITES, C_FORKS, C_FORK_VERIFIES, C_SNAPSHOTS, C_SNAPSHOT_VERIFIES,
	C_UNSHARES, C_MUNMAPS, C_MPROTECTS, C_DONTNEEDS, C_KNOB_FLIPS,
	C_ENOMEM, C_SPOT_CHECKS, C_CHILD_TIMEOUTS, C_NR
};

static const char * const count_name[C_NR] = {
	"writes", "forks", "fork_verifies", "snapshots", "snapshot_verifies",
	"unshares", "munmaps", "mprotects", "dontneeds", "knob_flips",
	"enomem_tolerated", "spot_checks", "child_timeouts",
};

/* A scratch page: its pattern, zeros, or one of the two (unknown). */
enum { PG_PATTERN, PG_ZERO, PG_EITHER };

/* What the scratch area should hold, and where. */
struct scratch_view {
	char *mem;
	uint64_t seed;
	unsigned char state[SCRATCH_PAGES];
};

struct scratch {
	pthread_mutex_t lock;
	char *map;	/* what to munmap(); NULL while unmapped */
	size_t map_len;
	struct scratch_view v;
	unsigned char ro[SCRATCH_PAGES];	/* maybe read-only: no writes */
};

enum { SLOT_FREE, SLOT_BUSY, SLOT_KEPT };

/* A snapshot and what it must hold. */
struct snap {
	int state;	/* SLOT_*, __atomic_* accesses only */
	char *mem;
	size_t first, nr;	/* records [first, first + nr) of the region */
	uint64_t *ver;		/* versions at the instant, by record id */
	uint64_t sum;		/* what its versions add up to */
	int age;
	char *smem;		/* the scratch area's snapshot, or NULL */
	struct scratch_view sv;
};

struct knob {
	const char *path;
	const char * const *vals;
	int nr_vals;
	char saved[32];
	bool usable;	/* present, writable, saved: restored at the end */
	bool async;	/* flipped in the async mode only */
};

static const char * const precopy_vals[] = { "0", "1", "15", "31" };
static const char * const adaptive_vals[] = { "0", "1" };
static const char * const thp_mode_vals[] = { "split", "copy" };
static const char * const sample_vals[] = { "0", "1", "64" };
static const char * const pause_vals[] = { "0", "1" };

static struct knob knobs[] = {
	{ .path = COW_PRECOPY_PAGES_PATH, .vals = precopy_vals,
	  .nr_vals = ARRAY_SIZE(precopy_vals) },
	{ .path = COW_PRECOPY_ADAPT_PATH, .vals = adaptive_vals,
	  .nr_vals = ARRAY_SIZE(adaptive_vals) },
	{ .path = COW_THP_MODE_PATH, .vals = thp_mode_vals,
	  .nr_vals = ARRAY_SIZE(thp_mode_vals) },
	{ .path = SAMPLE_PATH, .vals = sample_vals,
	  .nr_vals = ARRAY_SIZE(sample_vals) },
	{ .path = COW_SNAPSHOT_PAUSE_PATH, .vals = pause_vals,
	  .nr_vals = ARRAY_SIZE(pause_vals), .async = true },
};

struct worker {
	pthread_t thread;
	int idx;
	uint64_t rnd;
	const char *doing;	/* __atomic_* accesses only */
	pid_t child;		/* __atomic_* accesses only */
	bool started;
	bool finished;		/* __atomic_* accesses only */
};

/* All the shared state; flags and counters: __atomic_* accesses only. */
static struct {
	char *region;
	uint64_t *ver;		/* each record's version, under its stripe */
	uint64_t total;		/* writes done: what the versions add up to */
	pthread_rwlock_t image;	/* shared: writers; exclusive: an instant */
	pthread_mutex_t stripe[NR_STRIPES];
	struct scratch scratch;
	struct snap slot[NR_SLOTS];
	int images;		/* snapshots and children alive */
	bool have_snapshot, have_unshare;
	bool async;		/* the mode */
	unsigned int snap_flags;	/* of every cow_snapshot() call */
	size_t pmd;
	unsigned long long count[C_NR];
	bool stop;
	bool failed;
	int reports;
	pthread_mutex_t print;
	struct timespec t0;
	double deadline, ops_deadline;
	int done;		/* threads finished */
	pid_t main_pid;
} st;

static double now(void)
{
	struct timespec ts;

	/* Without the vDSO, a fault on &ts can fail under fault injection. */
	while (clock_gettime(CLOCK_MONOTONIC, &ts))
		;
	return (ts.tv_sec - st.t0.tv_sec) + (ts.tv_nsec - st.t0.tv_nsec) / 1e9;
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * glibc registers every thread for rseq, and the kernel then updates the
 * thread's rseq area on its way back to user space; when that write
 * faults, as it does on a page fork() made COW-shared whose copy cannot
 * be allocated (fault injection), the kernel sends SIGSEGV. Unregister
 * each thread before the first fork(). The length glibc registered: 32,
 * or __rseq_size where that is more.
 */
static void rseq_off(void)
{
#ifdef RSEQ_SIG
	char *area = (char *)__builtin_thread_pointer() + __rseq_offset;

	if (__rseq_size &&
	    syscall(__NR_rseq, area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) &&
	    syscall(__NR_rseq, area, __rseq_size, RSEQ_FLAG_UNREGISTER,
		    RSEQ_SIG) && getpid() == gettid())
		ksft_print_msg("rseq stays registered: %s\n", strerror(errno));
#endif
}

static bool stopping(void)
{
	return __atomic_load_n(&st.stop, __ATOMIC_RELAXED);
}

static void count(int c, unsigned long long n)
{
	__atomic_add_fetch(&st.count[c], n, __ATOMIC_RELAXED);
}

/*
 * Print "# @head@text" to stdout, trying again where a pipe buffer page
 * fails to allocate (fault injection): a failure must not go unsaid.
 */
static void say(const char *head, const char *fmt, va_list ap)
{
	char buf[768];
	size_t len, done = 0;
	ssize_t n;
	int tries;

	len = snprintf(buf, sizeof(buf), "# %s", head);
	vsnprintf(buf + len, sizeof(buf) - len, fmt, ap);
	len = strlen(buf);
	pthread_mutex_lock(&st.print);
	fflush(stdout);
	for (tries = 0; done < len && tries < 1000; tries++) {
		n = write(STDOUT_FILENO, buf + done, len - done);
		if (n > 0)
			done += n;
		else if (n < 0 && errno != EINTR && errno != ENOMEM &&
			 errno != EAGAIN)
			break;
	}
	pthread_mutex_unlock(&st.print);
}

/* A failure: say what, stop the run. */
static __printf(1, 2) void fail(const char *fmt, ...)
{
	char head[32];
	va_list ap;

	__atomic_store_n(&st.failed, true, __ATOMIC_RELAXED);
	__atomic_store_n(&st.stop, true, __ATOMIC_RELAXED);
	if (__atomic_add_fetch(&st.reports, 1, __ATOMIC_RELAXED) > MAX_REPORTS)
		return;
	snprintf(head, sizeof(head), "FAIL at %.2f s: ", now());
	va_start(ap, fmt);
	say(head, fmt, ap);
	va_end(ap);
}

static __printf(1, 2) void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say("", fmt, ap);
	va_end(ap);
}

/*
 * Also an allocation failure: ENFILE from pipe() and open() when a file
 * cannot be allocated; EFAULT from a system call that writes to our
 * memory when fork() just made that page COW-shared and the copy cannot
 * be allocated (the fault happens in the kernel, which cannot retry it).
 */
#define T_ENFILE	1
#define T_EFAULT	2

/*
 * An error of @what: true when it is an allocation failure to tolerate
 * (ENOMEM or EAGAIN, or one of @also), counted; otherwise fail.
 */
static bool tolerated(int err, const char *what, int also)
{
	if (err == ENOMEM || err == EAGAIN ||
	    ((also & T_ENFILE) && err == ENFILE) ||
	    ((also & T_EFAULT) && err == EFAULT)) {
		count(C_ENOMEM, 1);
		return true;
	}
	fail("%s: unexpected error %d (%s)\n", what, err, strerror(err));
	return false;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t rnd64(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ULL;
	return mix64(*s);
}

static size_t rnd_below(uint64_t *s, size_t n)
{
	return rnd64(s) % n;
}

/* Records: word 0 the id, 1 the version, then the payload, the checksum. */
static uint64_t *rec_at(const char *img, size_t id)
{
	return (uint64_t *)(img + id * REC_SIZE);
}

static uint64_t rec_base(uint64_t id, uint64_t ver)
{
	return mix64(id * 0x9e3779b97f4a7c15ULL ^ ver);
}

static uint64_t rec_word(uint64_t base, size_t j)
{
	return base ^ (j * 0xd6e8feb86659fd93ULL);
}

static uint64_t rec_sum(uint64_t id, uint64_t ver)
{
	return mix64(rec_base(id, ver) + id + 0x5851f42d4c957f2dULL);
}

static void rec_write(char *img, size_t id, uint64_t ver)
{
	uint64_t *w = rec_at(img, id), base = rec_base(id, ver);
	size_t j;

	w[0] = id;
	w[1] = ver;
	for (j = 2; j < REC_WORDS - 1; j++)
		w[j] = rec_word(base, j);
	w[REC_WORDS - 1] = rec_sum(id, ver);
}

/* What is wrong with a record. */
struct bad {
	size_t id;
	const char *what;
	size_t word;
	uint64_t found, want;
};

/* 0 when record @id of @img is whole and has version @ver; else 1, @b. */
static int rec_check(const char *img, size_t id, uint64_t ver, struct bad *b)
{
	const uint64_t *w = rec_at(img, id);
	uint64_t base = rec_base(id, ver);
	size_t j;

	b->id = id;
	if (w[0] != id) {
		b->what = "id";
		b->word = 0;
		b->want = id;
		goto bad;
	}
	if (w[1] != ver) {
		b->what = "version";
		b->word = 1;
		b->want = ver;
		goto bad;
	}
	for (j = 2; j < REC_WORDS - 1; j++) {
		if (w[j] != rec_word(base, j)) {
			b->what = "payload";
			b->word = j;
			b->want = rec_word(base, j);
			goto bad;
		}
	}
	if (w[REC_WORDS - 1] != rec_sum(id, ver)) {
		b->what = "checksum";
		b->word = REC_WORDS - 1;
		b->want = rec_sum(id, ver);
		goto bad;
	}
	return 0;
bad:
	b->found = w[b->word];
	return 1;
}

static void bad_text(char *buf, size_t len, const char *who, const char *img,
		     const struct bad *b)
{
	const uint64_t *w = rec_at(img, b->id);

	snprintf(buf, len,
		 "%s: record %zu (byte %#zx): %s (word %zu) %#llx, want %#llx; it holds id %#llx version %#llx checksum %#llx\n",
		 who, b->id, b->id * REC_SIZE, b->what, b->word,
		 (unsigned long long)b->found, (unsigned long long)b->want,
		 (unsigned long long)w[0], (unsigned long long)w[1],
		 (unsigned long long)w[REC_WORDS - 1]);
}

/*
 * Check records [first, first + nr) of @img (the region's layout) against
 * @ver, and that their versions add up to @sum. 0, or 1 with @why set.
 */
static int image_check(const char *who, const char *img, size_t first,
		       size_t nr, const uint64_t *ver, uint64_t sum, char *why,
		       size_t len)
{
	uint64_t total = 0;
	struct bad b;
	size_t id;

	for (id = first; id < first + nr; id++) {
		if (rec_check(img, id, ver[id], &b)) {
			bad_text(why, len, who, img, &b);
			return 1;
		}
		total += ver[id];
	}
	if (total != sum) {
		snprintf(why, len,
			 "%s: versions of records %zu..%zu add up to %llu, want %llu\n",
			 who, first, first + nr - 1, (unsigned long long)total,
			 (unsigned long long)sum);
		return 1;
	}
	return 0;
}

/* Check live records [first, first + nr) of the region under their locks. */
static int live_check(const char *who, size_t first, size_t nr)
{
	char why[512];
	struct bad b;
	size_t id;
	int bad;

	for (id = first; id < first + nr; id++) {
		pthread_mutex_lock(&st.stripe[id % NR_STRIPES]);
		bad = rec_check(st.region, id, st.ver[id], &b);
		if (bad)
			bad_text(why, sizeof(why), who, st.region, &b);
		pthread_mutex_unlock(&st.stripe[id % NR_STRIPES]);
		if (bad) {
			fail("%s", why);
			return 1;
		}
	}
	return 0;
}

/* Scratch pages: every word from the seed, the page and its place. */
static uint64_t scratch_word(uint64_t seed, size_t pg, size_t i)
{
	return mix64(seed ^ (pg << 20)) + i * 0x9e3779b97f4a7c15ULL;
}

static void scratch_fill_page(char *mem, uint64_t seed, size_t pg)
{
	uint64_t *w = (uint64_t *)(mem + pg * PAGE);
	size_t i;

	for (i = 0; i < PAGE / 8; i++)
		w[i] = scratch_word(seed, pg, i);
}

/* 0 when the page holds @state's content; else 1, @why set. */
static int scratch_page_check(const char *who, const char *mem,
			      const struct scratch_view *v, size_t pg,
			      char *why, size_t len)
{
	const uint64_t *w = (const uint64_t *)(mem + pg * PAGE);
	int state = v->state[pg];
	/* After a failed MADV_DONTNEED: whichever the first word says. */
	bool zero = state == PG_ZERO || (state == PG_EITHER && !w[0]);
	size_t i;

	for (i = 0; i < PAGE / 8; i++) {
		uint64_t want = zero ? 0 : scratch_word(v->seed, pg, i);

		if (w[i] != want) {
			snprintf(why, len,
				 "%s: scratch page %zu word %zu: %#llx, want %#llx (%s)\n",
				 who, pg, i, (unsigned long long)w[i],
				 (unsigned long long)want,
				 state == PG_PATTERN ? "its pattern" :
				 state == PG_ZERO ? "zero since MADV_DONTNEED" :
				 "pattern or zero");
			return 1;
		}
	}
	return 0;
}

static int scratch_check(const char *who, const char *mem,
			 const struct scratch_view *v, size_t first, size_t nr,
			 char *why, size_t len)
{
	size_t pg;

	for (pg = first; pg < first + nr; pg++)
		if (scratch_page_check(who, mem, v, pg, why, len))
			return 1;
	return 0;
}

/* munmap(), again while it fails for lack of memory. */
static int unmap(void *p, size_t len, const char *what)
{
	int tries;

	for (tries = 0; tries < 1000; tries++) {
		if (!munmap(p, len))
			return 0;
		if (!tolerated(errno, what, 0))
			return -1;
		nap_ms(1);
	}
	fail("%s: munmap() failed 1000 times\n", what);
	return -1;
}

/* The fork() child: check the instant it got, write, send the verdict. */
static __noreturn void child_run(int fd, uint64_t want_total, uint64_t rnd)
{
	char why[512];
	int ret = 0, tries;
	size_t i, n, id;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (image_check("fork child", st.region, 0, NR_RECS, st.ver, want_total,
			why, sizeof(why)))
		ret = 1;
	if (!ret && st.scratch.map &&
	    scratch_check("fork child", st.scratch.v.mem, &st.scratch.v, 0,
			  SCRATCH_PAGES, why, sizeof(why)))
		ret = 1;
	/* Its own writes stay its own: the parent checks its side. */
	for (i = 0; !ret && i < SIDE_WRITES; i++) {
		struct bad b;

		id = rnd_below(&rnd, NR_RECS);
		st.ver[id] += CHILD_BUMP;
		rec_write(st.region, id, st.ver[id]);
		if (rec_check(st.region, id, st.ver[id], &b)) {
			bad_text(why, sizeof(why), "fork child after its write",
				 st.region, &b);
			ret = 1;
		}
	}
	if (ret) {
		n = strlen(why);
		/* A pipe buffer page may fail to allocate: try again. */
		for (tries = 0; n && tries < 1000; tries++) {
			ssize_t w = write(fd, why, n);

			if (w > 0) {
				memmove(why, why + w, n - w);
				n -= w;
			} else if (w < 0 && errno != ENOMEM && errno != EINTR &&
				   errno != EAGAIN) {
				break;
			}
		}
	}
	_exit(ret);
}

static bool reserve_image(void)
{
	int n = __atomic_load_n(&st.images, __ATOMIC_RELAXED);

	do {
		if (n >= MAX_IMAGES)
			return false;
	} while (!__atomic_compare_exchange_n(&st.images, &n, n + 1, false,
					      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
	return true;
}

static void release_image(void)
{
	__atomic_sub_fetch(&st.images, 1, __ATOMIC_ACQ_REL);
}

/* Read the child's verdict until EOF or the deadline; -1: timed out. */
static int read_verdict(int fd, char *buf, size_t len)
{
	size_t got = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double left = st.ops_deadline - now();
		ssize_t r;

		if (left <= 0)
			return -1;
		if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			continue;
		r = read(fd, buf + got, len - 1 - got);
		if (r > 0 && got + r < len - 1) {
			got += r;
			continue;
		}
		if (r < 0 && (errno == EINTR ||
			      tolerated(errno, "read() of a verdict", T_EFAULT)))
			continue;
		if (r > 0)
			got += r;
		buf[got] = '\0';
		return 0;
	}
}

/*
 * Wait for child @pid to end, into @info. waitid() copies @info out
 * before it reaps the child, and that copy can fail (see T_EFAULT): look
 * with WNOWAIT until it works, then reap. 0, or -1 after a failure.
 */
static int child_wait(pid_t pid, siginfo_t *info)
{
	for (;;) {
		memset(info, 0, sizeof(*info));
		if (!waitid(P_PID, pid, info, WEXITED | WNOWAIT))
			break;
		if (errno != EINTR && !tolerated(errno, "waitid()", T_EFAULT))
			return -1;
	}
	while (waitpid(pid, NULL, 0) != pid)
		if (errno != EINTR) {
			fail("waitpid(%d): %s\n", pid, strerror(errno));
			return -1;
		}
	return 0;
}

static void op_fork(struct worker *w)
{
	char verdict[512] = "";
	uint64_t want_total;
	int fds[2], err, timed_out;
	siginfo_t info;
	pid_t pid;

	if (!reserve_image())
		return;
	if (pipe2(fds, O_CLOEXEC)) {
		tolerated(errno, "pipe()", T_ENFILE | T_EFAULT);
		release_image();
		return;
	}
	pthread_mutex_lock(&st.scratch.lock);
	pthread_rwlock_wrlock(&st.image);
	want_total = __atomic_load_n(&st.total, __ATOMIC_RELAXED);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		child_run(fds[1], want_total, rnd64(&w->rnd));
	}
	err = errno;
	pthread_rwlock_unlock(&st.image);
	pthread_mutex_unlock(&st.scratch.lock);
	close(fds[1]);
	if (pid < 0) {
		tolerated(err, "fork()", 0);
		goto out;
	}
	count(C_FORKS, 1);
	__atomic_store_n(&w->child, pid, __ATOMIC_RELAXED);
	timed_out = read_verdict(fds[0], verdict, sizeof(verdict));
	if (timed_out)
		kill(pid, SIGKILL);
	if (child_wait(pid, &info))
		goto out;
	__atomic_store_n(&w->child, 0, __ATOMIC_RELAXED);
	if (timed_out && info.si_code == CLD_KILLED &&
	    info.si_status == SIGKILL) {
		note("fork child %d: no verdict by the deadline, killed\n",
		     pid);
		count(C_CHILD_TIMEOUTS, 1);
	} else if (info.si_code != CLD_EXITED) {
		fail("fork child %d killed by signal %d (%s)\n", pid,
		     info.si_status, strsignal(info.si_status));
	} else if (info.si_status) {
		fail("%s", verdict[0] ? verdict :
		     "fork child: mismatch (its message was lost)\n");
	} else {
		count(C_FORK_VERIFIES, 1);
	}
out:
	close(fds[0]);
	release_image();
}

/* A page-aligned random part of the region, in records. */
static void rnd_recs(struct worker *w, size_t max_pages, size_t *first,
		     size_t *nr)
{
	size_t pages = 1 + rnd_below(&w->rnd, max_pages);
	size_t pg = rnd_below(&w->rnd, REGION_LEN / PAGE - pages + 1);

	*first = pg * RECS_PER_PAGE;
	*nr = pages * RECS_PER_PAGE;
}

/* MADV_COW_UNSHARE of [p, p + len): 0, or -1 after a tolerated failure. */
static int cow_unshare(char *p, size_t len, const char *what)
{
	if (madvise(p, len, MADV_COW_UNSHARE)) {
		tolerated(errno, what, 0);
		return -1;
	}
	count(C_UNSHARES, 1);
	return 0;
}

/* MADV_COW_UNSHARE of part of the region, then check that part live. */
static void unshare_source(struct worker *w)
{
	size_t first, nr;

	rnd_recs(w, 1024, &first, &nr);
	if (!cow_unshare(st.region + first * REC_SIZE, nr * REC_SIZE,
			 "MADV_COW_UNSHARE of the region"))
		live_check("region after MADV_COW_UNSHARE", first, nr);
}

static void op_unshare(struct worker *w)
{
	struct scratch *s = &st.scratch;
	char why[512];
	size_t pg, n;

	if (!st.have_unshare)
		return;
	if (rnd_below(&w->rnd, 4)) {
		unshare_source(w);
		return;
	}
	pthread_mutex_lock(&s->lock);
	if (s->map) {
		n = 1 + rnd_below(&w->rnd, SCRATCH_PAGES);
		pg = rnd_below(&w->rnd, SCRATCH_PAGES - n + 1);
		if (!cow_unshare(s->v.mem + pg * PAGE, n * PAGE,
				 "MADV_COW_UNSHARE of the scratch area") &&
		    scratch_check("scratch after MADV_COW_UNSHARE", s->v.mem,
				  &s->v, pg, n, why, sizeof(why)))
			fail("%s", why);
	}
	pthread_mutex_unlock(&s->lock);
}

/* An address with @len free after it, not 2 MiB aligned; NULL if none. */
static char *odd_hint(size_t len)
{
	char *p = mmap(NULL, len + 2 * st.pmd, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t a;

	if (p == MAP_FAILED)
		return NULL;
	if (munmap(p, len + 2 * st.pmd))
		return NULL;
	a = ((uintptr_t)p + st.pmd - 1) & ~(uintptr_t)(st.pmd - 1);
	return (char *)a + 16 * PAGE;
}

/* Check snapshot @sl: the region's part, then the scratch area's. */
static int snap_check(struct snap *sl, const char *who)
{
	char why[512];

	if (image_check(who, sl->mem - sl->first * REC_SIZE, sl->first, sl->nr,
			sl->ver, sl->sum, why, sizeof(why)) ||
	    (sl->smem && scratch_check(who, sl->smem, &sl->sv, 0, SCRATCH_PAGES,
				       why, sizeof(why)))) {
		fail("%s", why);
		return 1;
	}
	count(C_SNAPSHOT_VERIFIES, 1);
	return 0;
}

static void snap_drop(struct snap *sl)
{
	if (sl->mem)
		unmap(sl->mem, sl->nr * REC_SIZE, "munmap() of a snapshot");
	if (sl->smem)
		unmap(sl->smem, SCRATCH_LEN, "munmap() of a scratch snapshot");
	sl->mem = NULL;
	sl->smem = NULL;
	__atomic_store_n(&sl->state, SLOT_FREE, __ATOMIC_RELEASE);
	release_image();
}

/*
 * Keep @sl for a later check, after some writes to it (which the source
 * must not see), or drop it.
 */
static void snap_done(struct worker *w, struct snap *sl)
{
	size_t i, id;

	if (stopping() || sl->age >= MAX_AGE || rnd_below(&w->rnd, 3)) {
		snap_drop(sl);
		return;
	}
	for (i = 0; i < SIDE_WRITES; i++) {
		id = sl->first + rnd_below(&w->rnd, sl->nr);
		sl->ver[id] += SNAP_BUMP;
		sl->sum += SNAP_BUMP;
		rec_write(sl->mem - sl->first * REC_SIZE, id, sl->ver[id]);
	}
	sl->age++;
	__atomic_store_n(&sl->state, SLOT_KEPT, __ATOMIC_RELEASE);
}

static struct snap *claim_slot(int from)
{
	int i, state;

	for (i = 0; i < NR_SLOTS; i++) {
		state = from;
		if (__atomic_compare_exchange_n(&st.slot[i].state, &state,
						SLOT_BUSY, false,
						__ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED))
			return &st.slot[i];
	}
	return NULL;
}

/* A kept snapshot again: it holds what it held, and its own writes. */
static void snap_recheck(struct worker *w, struct snap *sl)
{
	if (snap_check(sl, "kept snapshot")) {
		snap_drop(sl);
		return;
	}
	snap_done(w, sl);
}

/* Take the scratch area's snapshot into @sl (none while it is unmapped). */
static void snap_scratch(struct snap *sl)
{
	struct scratch *s = &st.scratch;

	pthread_mutex_lock(&s->lock);
	if (s->map) {
		sl->smem = cow_snapshot(s->v.mem, SCRATCH_LEN, NULL,
					st.snap_flags);
		if (sl->smem == MAP_FAILED) {
			sl->smem = NULL;
			tolerated(errno, "cow_snapshot() of the scratch area",
				  0);
		} else {
			sl->sv = s->v;
		}
	}
	pthread_mutex_unlock(&s->lock);
}

static void op_snapshot(struct worker *w)
{
	struct snap *sl;
	char *hint = NULL;
	size_t first = 0, nr = NR_RECS, id;
	int err;

	if (!st.have_snapshot)
		return;
	if (rnd_below(&w->rnd, 2)) {
		sl = claim_slot(SLOT_KEPT);
		if (sl) {
			snap_recheck(w, sl);
			return;
		}
	}
	if (!reserve_image())
		return;
	sl = claim_slot(SLOT_FREE);
	if (!sl) {
		/* Children hold the other images: not reached. */
		release_image();
		return;
	}
	if (!rnd_below(&w->rnd, 3))
		rnd_recs(w, REGION_LEN / PAGE, &first, &nr);
	if (!rnd_below(&w->rnd, 8))
		hint = odd_hint(nr * REC_SIZE);

	pthread_rwlock_wrlock(&st.image);
	sl->mem = cow_snapshot(st.region + first * REC_SIZE, nr * REC_SIZE,
			       hint, st.snap_flags);
	err = errno;
	if (sl->mem != MAP_FAILED) {
		memcpy(sl->ver, st.ver, NR_RECS * sizeof(*st.ver));
		sl->sum = __atomic_load_n(&st.total, __ATOMIC_RELAXED);
	}
	pthread_rwlock_unlock(&st.image);
	if (sl->mem == MAP_FAILED) {
		sl->mem = NULL;
		tolerated(err, "cow_snapshot() of the region", 0);
		snap_drop(sl);
		return;
	}
	count(C_SNAPSHOTS, 1);
	sl->first = first;
	sl->nr = nr;
	sl->age = 0;
	if (nr != NR_RECS)
		for (sl->sum = 0, id = first; id < first + nr; id++)
			sl->sum += sl->ver[id];
	if (!rnd_below(&w->rnd, 2))
		snap_scratch(sl);

	/* Unshare part of either side first, or not. */
	switch (rnd_below(&w->rnd, 4)) {
	case 0: {
		size_t off = rnd_below(&w->rnd, nr / RECS_PER_PAGE);
		size_t n = 1 + rnd_below(&w->rnd, nr / RECS_PER_PAGE - off);

		if (st.have_unshare)
			cow_unshare(sl->mem + off * PAGE, n * PAGE,
				    "MADV_COW_UNSHARE of a snapshot");
		break;
	}
	case 1:
		if (st.have_unshare)
			unshare_source(w);
		break;
	}
	if (snap_check(sl, "snapshot")) {
		snap_drop(sl);
		return;
	}
	snap_done(w, sl);
}

/* Refill some writable pages of [pg, pg + n) of the scratch area. */
static void scratch_refill(struct worker *w, size_t pg, size_t n)
{
	struct scratch *s = &st.scratch;
	size_t i;

	for (i = pg; i < pg + n; i++) {
		if (s->ro[i] || rnd_below(&w->rnd, 2))
			continue;
		scratch_fill_page(s->v.mem, s->v.seed, i);
		s->v.state[i] = PG_PATTERN;
	}
}

/* Map the scratch area afresh: 2 MiB aligned, THPs allowed, filled. */
static void scratch_map(struct worker *w)
{
	struct scratch *s = &st.scratch;
	size_t len = SCRATCH_LEN + st.pmd;
	char *map;
	uintptr_t a;

	map = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED) {
		tolerated(errno, "mmap() of the scratch area", 0);
		return;
	}
	a = ((uintptr_t)map + st.pmd - 1) & ~(uintptr_t)(st.pmd - 1);
	s->map = map;
	s->map_len = len;
	s->v.mem = (char *)a;
	s->v.seed = rnd64(&w->rnd);
	/* Without THP support this fails: it only helps. */
	madvise(s->v.mem, SCRATCH_LEN, MADV_HUGEPAGE);
	memset(s->ro, 0, sizeof(s->ro));
	memset(s->v.state, PG_ZERO, sizeof(s->v.state));
	scratch_refill(w, 0, SCRATCH_PAGES);
}

/* A random part of the scratch area, in pages. */
static void rnd_pages(struct worker *w, size_t *pg, size_t *n)
{
	*n = 1 + rnd_below(&w->rnd, rnd_below(&w->rnd, 2) ? 16 : SCRATCH_PAGES);
	*pg = rnd_below(&w->rnd, SCRATCH_PAGES - *n + 1);
}

static void op_scratch(struct worker *w, int what)
{
	struct scratch *s = &st.scratch;
	size_t pg = 0, n = SCRATCH_PAGES;
	char why[512];
	int prot;

	pthread_mutex_lock(&s->lock);
	if (!s->map) {
		scratch_map(w);
		goto out;
	}
	switch (what) {
	case C_MUNMAPS:
		if (scratch_check("scratch before munmap()", s->v.mem, &s->v, 0,
				  SCRATCH_PAGES, why, sizeof(why))) {
			fail("%s", why);
			goto out;
		}
		if (unmap(s->map, s->map_len, "munmap() of the scratch area"))
			goto out;
		s->map = NULL;
		count(C_MUNMAPS, 1);
		scratch_map(w);
		if (!s->map)
			goto out;
		break;
	case C_MPROTECTS:
		rnd_pages(w, &pg, &n);
		prot = rnd_below(&w->rnd, 2) ? PROT_READ : PROT_READ | PROT_WRITE;
		if (mprotect(s->v.mem + pg * PAGE, n * PAGE, prot)) {
			/* Maybe done in part: take it as read-only. */
			memset(s->ro + pg, 1, n);
			tolerated(errno, "mprotect() of the scratch area", 0);
			break;
		}
		count(C_MPROTECTS, 1);
		memset(s->ro + pg, prot == PROT_READ, n);
		scratch_refill(w, pg, n);
		break;
	case C_DONTNEEDS:
		rnd_pages(w, &pg, &n);
		if (madvise(s->v.mem + pg * PAGE, n * PAGE, MADV_DONTNEED)) {
			memset(s->v.state + pg, PG_EITHER, n);
			tolerated(errno, "MADV_DONTNEED of the scratch area", 0);
			break;
		}
		count(C_DONTNEEDS, 1);
		memset(s->v.state + pg, PG_ZERO, n);
		if (scratch_check("scratch after MADV_DONTNEED", s->v.mem,
				  &s->v, pg, n, why, sizeof(why))) {
			fail("%s", why);
			goto out;
		}
		scratch_refill(w, pg, n);
		break;
	}
	if (scratch_check("scratch", s->v.mem, &s->v, pg, n, why, sizeof(why)))
		fail("%s", why);
out:
	pthread_mutex_unlock(&s->lock);
}

static void op_knob(struct worker *w)
{
	struct knob *k = &knobs[rnd_below(&w->rnd, ARRAY_SIZE(knobs))];
	const char *val;
	char what[96];
	int err;

	if (!k->usable)
		return;
	val = k->vals[rnd_below(&w->rnd, k->nr_vals)];
	err = cow_write_file(k->path, val);
	if (err) {
		snprintf(what, sizeof(what), "writing %s to %s", val, k->path);
		tolerated(err, what, T_ENFILE);
		return;
	}
	count(C_KNOB_FLIPS, 1);
}

static void op_spot_check(struct worker *w)
{
	size_t first, nr;

	rnd_recs(w, 64, &first, &nr);
	if (!live_check("live region", first, nr))
		count(C_SPOT_CHECKS, 1);
}

enum { OP_FORK, OP_SNAPSHOT, OP_UNSHARE, OP_REMAP, OP_MPROTECT,
	OP_DONTNEED, OP_KNOB, OP_SPOT, OP_NR };

static const char * const op_name[OP_NR] = {
	"fork", "cow_snapshot", "MADV_COW_UNSHARE", "munmap+mmap", "mprotect",
	"MADV_DONTNEED", "knob flip", "spot check",
};

/* Out of 100; the heavy ones (fork, snapshot) take longest. */
static const int op_weight[OP_NR] = { 12, 14, 12, 8, 14, 14, 14, 12 };

static void *operator(void *p)
{
	struct worker *w = p;
	int op, r;

	rseq_off();
	while (!stopping() && now() < st.deadline) {
		r = rnd_below(&w->rnd, 100);
		for (op = 0; op < OP_NR - 1 && r >= op_weight[op]; op++)
			r -= op_weight[op];
		__atomic_store_n(&w->doing, op_name[op], __ATOMIC_RELAXED);
		switch (op) {
		case OP_FORK:
			op_fork(w);
			break;
		case OP_SNAPSHOT:
			op_snapshot(w);
			break;
		case OP_UNSHARE:
			op_unshare(w);
			break;
		case OP_REMAP:
			op_scratch(w, C_MUNMAPS);
			break;
		case OP_MPROTECT:
			op_scratch(w, C_MPROTECTS);
			break;
		case OP_DONTNEED:
			op_scratch(w, C_DONTNEEDS);
			break;
		case OP_KNOB:
			op_knob(w);
			break;
		default:
			op_spot_check(w);
			break;
		}
	}
	__atomic_store_n(&w->finished, true, __ATOMIC_RELEASE);
	__atomic_add_fetch(&st.done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *writer(void *p)
{
	struct worker *w = p;
	unsigned long long n = 0;
	size_t id;
	int i;

	rseq_off();
	while (!stopping() && now() < st.deadline) {
		pthread_rwlock_rdlock(&st.image);
		for (i = 0; i < WRITE_BATCH; i++) {
			id = rnd_below(&w->rnd, NR_RECS);
			pthread_mutex_lock(&st.stripe[id % NR_STRIPES]);
			rec_write(st.region, id, st.ver[id] + 1);
			st.ver[id]++;
			pthread_mutex_unlock(&st.stripe[id % NR_STRIPES]);
			__atomic_add_fetch(&st.total, 1, __ATOMIC_RELAXED);
		}
		pthread_rwlock_unlock(&st.image);
		n += WRITE_BATCH;
	}
	count(C_WRITES, n);
	__atomic_store_n(&w->finished, true, __ATOMIC_RELEASE);
	__atomic_add_fetch(&st.done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Knobs back as they were; async-signal-safe (open, write, close). */
static void knobs_restore(void)
{
	size_t i;
	int fd, tries;

	for (i = 0; i < ARRAY_SIZE(knobs); i++) {
		if (!knobs[i].usable)
			continue;
		/* An allocation may fail under fault injection: again. */
		for (tries = 0; tries < 100; tries++) {
			fd = open(knobs[i].path, O_WRONLY | O_TRUNC);
			if (fd < 0)
				continue;
			if (write(fd, knobs[i].saved, strlen(knobs[i].saved)) > 0) {
				close(fd);
				break;
			}
			close(fd);
		}
	}
}

static void on_fatal_signal(int sig)
{
	if (getpid() == st.main_pid)
		knobs_restore();
	raise(sig);
}

/* Which knobs this kernel has and we may write; their values now. */
static void knobs_setup(void)
{
	static const int sigs[] = { SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGABRT,
				    SIGBUS, SIGFPE, SIGSEGV, SIGTERM };
	struct sigaction sa = {
		.sa_handler = on_fatal_signal,
		.sa_flags = SA_RESETHAND | SA_NODEFER,
	};
	int n = 0, err, tries;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
	if (geteuid()) {
		ksft_print_msg("not root: no knob flips\n");
		return;
	}
	for (i = 0; i < ARRAY_SIZE(knobs); i++) {
		struct knob *k = &knobs[i];

		if ((k->async && !st.async) || access(k->path, F_OK))
			continue;
		for (tries = 0, err = ENOMEM; err && tries < 100; tries++)
			err = cow_read_line(k->path, k->saved, sizeof(k->saved));
		/* Writing back what it holds tells whether we may. */
		for (tries = 0; !err && tries < 100; tries++) {
			err = cow_write_file(k->path, k->saved);
			if (err != ENOMEM && err != ENFILE && err != EAGAIN)
				break;
		}
		if (err) {
			ksft_print_msg("%s: %s, not flipped\n", k->path,
				       strerror(err));
			continue;
		}
		k->usable = true;
		n++;
	}
	if (!n)
		ksft_print_msg("no vm.cow_* knob to flip in this kernel\n");
}

/* The region: 2 MiB aligned, MADV_HUGEPAGE, every record at version 0. */
static int region_setup(void)
{
	size_t len = REGION_LEN + st.pmd, id;
	uintptr_t a;
	char *map;
	int tries, i;

	for (tries = 0; tries < 100; tries++) {
		map = mmap(NULL, len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (map != MAP_FAILED)
			break;
		if (!tolerated(errno, "mmap() of the region", 0))
			return -1;
	}
	if (map == MAP_FAILED) {
		ksft_print_msg("mmap() of the region: %s\n", strerror(errno));
		return -1;
	}
	a = ((uintptr_t)map + st.pmd - 1) & ~(uintptr_t)(st.pmd - 1);
	st.region = (char *)a;
	/* One VMA of its own: trim the slack (it may stay on failure). */
	if (st.region > map)
		munmap(map, st.region - map);
	munmap(st.region + REGION_LEN, map + len - (st.region + REGION_LEN));
	madvise(st.region, REGION_LEN, MADV_HUGEPAGE);
	st.ver = calloc(NR_RECS, sizeof(*st.ver));
	for (i = 0; i < NR_SLOTS; i++)
		st.slot[i].ver = malloc(NR_RECS * sizeof(*st.ver));
	for (i = 0; i < NR_SLOTS; i++)
		if (!st.slot[i].ver)
			st.ver = NULL;
	if (!st.ver) {
		ksft_print_msg("no memory for the version tables\n");
		return -1;
	}
	for (id = 0; id < NR_RECS; id++)
		rec_write(st.region, id, 0);
	return 0;
}

static int start(struct worker *w, void *(*fn)(void *))
{
	int tries, err = 0;

	for (tries = 0; tries < 1000; tries++) {
		err = pthread_create(&w->thread, NULL, fn, w);
		if (!err) {
			w->started = true;
			return 0;
		}
		if (!tolerated(err, "pthread_create()", 0))
			return -1;
		nap_ms(1);
	}
	ksft_print_msg("pthread_create(): %s\n", strerror(err));
	return -1;
}

static unsigned long long env_ull(const char *name, unsigned long long def)
{
	const char *s = getenv(name);
	unsigned long long v;
	char *end;

	if (!s || !*s)
		return def;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end) {
		ksft_print_msg("%s=%s is not a number: %llu\n", name, s, def);
		return def;
	}
	return v;
}

#define MAKE_IT_FAIL	"/proc/self/make-it-fail"

/*
 * Fault injection (fail_page_alloc, failslab with task-filter) for this
 * process, its threads and children from now on (@on), or no longer.
 * COW_STRESS_MAKE_IT_FAIL=1 turns it on after the set-up, rather than
 * for the exec() and the set-up too as "echo 1 >/proc/self/make-it-fail;
 * exec stress" does. Either way it is off for the final check and the
 * report. Quiet where there is no fault injection.
 */
static void make_it_fail(bool on)
{
	char now_set[8] = "";
	int tries, err = 0;

	if (on && !env_ull("COW_STRESS_MAKE_IT_FAIL", 0))
		return;
	if (access(MAKE_IT_FAIL, F_OK))
		return;
	if (!on && (cow_read_line(MAKE_IT_FAIL, now_set, sizeof(now_set)) ||
		    !strcmp(now_set, "0")))
		return;
	for (tries = 0; tries < 100; tries++) {
		err = cow_write_file(MAKE_IT_FAIL, on ? "1" : "0");
		if (err != ENOMEM && err != ENFILE && err != EAGAIN)
			break;
	}
	if (on)
		ksft_print_msg("%s: %s\n", MAKE_IT_FAIL,
			       err ? strerror(err) : "1, fault injection on");
}

/* After the threads: the region, the scratch area, the kept snapshots. */
static void final_check(void)
{
	char why[512];
	int i;

	if (image_check("region at the end", st.region, 0, NR_RECS, st.ver,
			st.total, why, sizeof(why)))
		fail("%s", why);
	else
		ksft_print_msg("final check: %lu records, versions add up to %llu writes\n",
			       NR_RECS, (unsigned long long)st.total);
	if (st.scratch.map &&
	    scratch_check("scratch at the end", st.scratch.v.mem,
			  &st.scratch.v, 0, SCRATCH_PAGES, why, sizeof(why)))
		fail("%s", why);
	for (i = 0; i < NR_SLOTS; i++) {
		struct snap *sl = &st.slot[i];

		if (__atomic_load_n(&sl->state, __ATOMIC_ACQUIRE) != SLOT_KEPT)
			continue;
		snap_check(sl, "kept snapshot at the end");
		snap_drop(sl);
	}
}

/* MADV_COW_UNSHARE: EINVAL (unknown advice) without it. */
static bool unshare_present(void)
{
	return !madvise(st.region, PAGE, MADV_COW_UNSHARE) || errno == ENOMEM;
}

/* Wait for the threads until deadline + JOIN_GRACE; 0 when all ended. */
static int wait_threads(struct worker *w, int n)
{
	int i, started = 0;

	for (i = 0; i < n; i++)
		started += w[i].started;
	while (__atomic_load_n(&st.done, __ATOMIC_ACQUIRE) < started) {
		if (now() > st.deadline + JOIN_GRACE)
			goto stuck;
		nap_ms(20);
	}
	/*
	 * Not joined: glibc's pthread_join() waits for the kernel to clear
	 * the thread's id at exit, a write that fault injection can make
	 * fail (see T_EFAULT). The work is done: that is what counts.
	 */
	return 0;
stuck:
	for (i = 0; i < n; i++) {
		pid_t child = __atomic_load_n(&w[i].child, __ATOMIC_RELAXED);

		if (!w[i].started ||
		    __atomic_load_n(&w[i].finished, __ATOMIC_ACQUIRE))
			continue;
		fail("thread %d still in %s at %.1f s\n", i,
		     __atomic_load_n(&w[i].doing, __ATOMIC_RELAXED), now());
		if (child > 0)
			kill(child, SIGKILL);
	}
	return -1;
}

/*
 * One mode, in a process of its own: KSFT_PASS or KSFT_FAIL (and _exit()
 * where threads are stuck).
 */
static int run_mode(bool async, unsigned long long seed,
		    unsigned long long secs)
{
	struct worker w[MAX_WRITERS + NR_OPERATORS] = { 0 };
	struct cow_async_counts a0, a1;
	pthread_rwlockattr_t ra;
	int nw, n = 0, i, ret = -1;
	char line[512];
	size_t len;

	clock_gettime(CLOCK_MONOTONIC, &st.t0);
	st.main_pid = getpid();
	rseq_off();
	st.async = async;
	ksft_print_msg("%s: seed %llu, %llu s (COW_STRESS_SEED=%llu repeats the choices)\n",
		       async ? "async" : "eager", seed, secs, seed);
	/* From the start: set-up counts in the duration. */
	st.deadline = secs;
	st.ops_deadline = st.deadline + OPS_GRACE;

	st.pmd = read_pmd_pagesize() ?: 2UL << 20;
	pthread_mutex_init(&st.print, NULL);
	pthread_mutex_init(&st.scratch.lock, NULL);
	for (i = 0; i < NR_STRIPES; i++)
		pthread_mutex_init(&st.stripe[i], NULL);
	/* Writers hold it shared all the time: an instant must get its turn. */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&st.image, &ra);

	st.have_snapshot = cow_snapshot_present();
	if (st.have_snapshot && !async)
		st.snap_flags = cow_snapshot_eager_flag();
	knobs_setup();
	if (region_setup())
		goto out;
	/* Async: page tables in half the region, THPs in the other. */
	if (async)
		madvise(st.region, REGION_LEN / 2, MADV_NOHUGEPAGE);
	st.have_unshare = st.have_snapshot && unshare_present();
	if (!st.have_snapshot)
		ksft_print_msg("%s: no snapshots, no MADV_COW_UNSHARE\n",
			       COW_NO_SNAPSHOT);
	else if (!st.have_unshare)
		ksft_print_msg("no MADV_COW_UNSHARE in this kernel\n");
	cow_async_counts_get(&a0);

	nw = sysconf(_SC_NPROCESSORS_ONLN) > 2 ? MAX_WRITERS : 2;
	make_it_fail(true);
	n = nw + NR_OPERATORS;
	for (i = 0; i < n; i++) {
		w[i].idx = i;
		w[i].rnd = mix64(seed + i * 0x632be59bd9b4e019ULL);
		w[i].doing = i < nw ? "writing" : "starting";
		if (start(&w[i], i < nw ? writer : operator)) {
			fail("cannot start thread %d\n", i);
			break;
		}
	}
	while (!stopping() && now() < st.deadline)
		nap_ms(50);
	__atomic_store_n(&st.stop, true, __ATOMIC_RELAXED);
	ret = wait_threads(w, n);
	make_it_fail(false);
	if (!ret)
		final_check();
out:
	make_it_fail(false);
	knobs_restore();
	len = snprintf(line, sizeof(line), "%.1f s, seed %llu, %s:", now(),
		       seed, async ? "async" : "eager");
	for (i = 0; i < C_NR && len < sizeof(line); i++)
		len += snprintf(line + len, sizeof(line) - len, " %s %llu",
				count_name[i], st.count[i]);
	ksft_print_msg("%s\n", line);
	if (a0.present && !cow_async_counts_get(&a1)) {
		snprintf(line, sizeof(line),
			 "%s: PMDs deferred %llu; settled by a fault %llu, by an operation %llu, in the background %llu; dropped %llu",
			 async ? "async" : "eager", a1.deferred - a0.deferred,
			 a1.fault - a0.fault, a1.op - a0.op, a1.bg - a0.bg,
			 a1.dropped - a0.dropped);
		ksft_print_msg("%s\n", line);
	}
	fflush(stdout);
	if (ret || st.failed) {
		/* Threads may be stuck: leave without waiting for them. */
		_exit(KSFT_FAIL);
	}
	return KSFT_PASS;
}

int main(void)
{
	static const struct {
		const char *name;
		bool async;
	} modes[] = { { "async", true }, { "eager", false } };
	const char *only = getenv("COW_STRESS_MODE");
	unsigned long long seed, secs;
	int i, n = 0, status;
	pid_t pid;

	setvbuf(stdout, NULL, _IOLBF, 0);
	ksft_print_header();
	if (only && strcmp(only, "async") && strcmp(only, "eager")) {
		ksft_print_msg("COW_STRESS_MODE=%s: not async or eager, both run\n",
			       only);
		only = NULL;
	}
	for (i = 0; i < (int)ARRAY_SIZE(modes); i++)
		n += !only || !strcmp(only, modes[i].name);
	ksft_set_plan(n);
	secs = env_ull("COW_STRESS_SECONDS", DEFAULT_SECONDS);
	if (!secs)
		secs = DEFAULT_SECONDS;
	seed = env_ull("COW_STRESS_SEED", time(NULL));

	for (i = 0; i < (int)ARRAY_SIZE(modes); i++) {
		if (only && strcmp(only, modes[i].name))
			continue;
		fflush(stdout);
		pid = fork();
		if (!pid) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			_exit(run_mode(modes[i].async, seed, secs));
		}
		if (pid < 0) {
			ksft_print_msg("fork: %s\n", strerror(errno));
			ksft_test_result_fail("stress %s\n", modes[i].name);
			continue;
		}
		while (waitpid(pid, &status, 0) != pid) {
			if (errno != EINTR) {
				ksft_print_msg("waitpid: %s\n", strerror(errno));
				status = -1;
				break;
			}
		}
		if (status != -1 && WIFEXITED(status) &&
		    WEXITSTATUS(status) == KSFT_PASS) {
			ksft_test_result_pass("stress %s\n", modes[i].name);
			continue;
		}
		if (status != -1 && WIFSIGNALED(status))
			ksft_print_msg("%s: killed by signal %d (%s)\n",
				       modes[i].name, WTERMSIG(status),
				       strsignal(WTERMSIG(status)));
		ksft_test_result_fail("stress %s\n", modes[i].name);
	}
	ksft_finished();
}
