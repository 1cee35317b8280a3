// SPDX-License-Identifier: GPL-2.0-only
/*
 * A bounded, seeded random run of system calls and sysctl writes that mixes
 * the COW interfaces with the calls they interact with: cow_snapshot(),
 * madvise() (MADV_COW_UNSHARE among the others), mmap(), munmap(),
 * mprotect(), fork() and writes to the vm.cow_* knobs, the THP and the KSM
 * switches. Half of the calls are well formed and aimed at an arena of
 * 4096 pages (THPs allowed); the others have hostile arguments (kernel and
 * unaligned addresses, overflowing lengths, unknown flags, advice and
 * values) and may aim anywhere, but only with what cannot change data.
 *
 * A model of the arena (per page: mapped or not, protection, contents)
 * predicts every result that the model decides: what each page reads,
 * which cow_snapshot(COW_SNAPSHOT_FIXED) calls succeed and with which
 * errno the others fail, MAP_FIXED_NOREPLACE, munmap() of bad ranges, and
 * that a refused sysctl write leaves the value as it was. Forked children
 * check the whole arena against their copy of the model, which is the
 * parent's as of the fork, run calls of their own and check again, while
 * the parent goes on. Snapshots taken at a kernel-chosen address are kept
 * for a while, written to and checked again.
 *
 * Two modes, one test each: eager, every cow_snapshot() call with
 * COW_SNAPSHOT_EAGER (where the kernel has it), and async, without it:
 * there the fixed snapshots often keep the source's offset in 2 MiB, the
 * kept ones may be a PMD long and half the arena starts in small pages,
 * so that whole PMDs are left for later copying, and the background
 * worker is held back (debugfs cow_snapshot/pause) or let go at random
 * like a knob.
 *
 * COW_MIX_CALLS (default 60000) sets the number of calls of each mode,
 * COW_MIX_SEED (default: the time) the seed, printed to repeat a run (of
 * one mode: -v eager or -v async). Any wrong byte, wrong result or failed
 * child fails the test; the runner scans the console for kernel splats.
 * As root only: the sysctl writes, restored at the end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "cow_util.h"

#define PAGE		COW_SUBPAGE
#define ARENA_PAGES	4096UL
#define PMD_PAGES	512UL
#define MAGIC		0x5a5a00ff00ff5a5aULL
#define KEPT		4	/* snapshots kept at kernel-chosen addresses */
#define KEPT_PAGES	64	/* their length at most, eager */
#define KEPT_MAX	(PMD_PAGES + 64)	/* ..., async */
#define CHILDREN	3	/* forked children at a time */
#define CHILD_CALLS	40
#define FULL_CHECK	2000	/* calls between whole-arena checks */
#define REPORTS		10

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif
#ifndef PROT_SEM
#define PROT_SEM	0x8
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE	0x100000
#endif

enum { P_UNMAPPED, P_KNOWN, P_FREED };	/* P_FREED: tag or zeros */

struct pg {
	uint64_t tag;	/* 0: zeros */
	uint8_t state;
	uint8_t prot;
};

struct kept {
	char *addr;
	size_t n;
	struct pg pg[KEPT_MAX];
};

enum {
	C_WRITE, C_MMAP, C_MUNMAP, C_MPROTECT, C_MADVISE, C_SNAP_FIXED,
	C_SNAP_KEPT, C_FORK, C_KNOB, C_KNOB_REFUSED, C_HOSTILE, C_HOSTILE_OK,
	C_CHECKED, C_NR
};

static const char * const c_names[C_NR] = {
	"writes", "mmaps", "munmaps", "mprotects", "madvises", "fixed_snapshots",
	"kept_snapshots", "forks", "sysctl_writes", "sysctl_refused",
	"hostile_calls", "hostile_succeeded", "pages_checked",
};

/* Everything a child inherits, so that it is the state as of the fork. */
static struct {
	char *arena;
	struct pg pg[ARENA_PAGES];
	struct kept kept[KEPT];
	uint64_t rnd, next_tag;
	unsigned long long calls, count[C_NR];
	int bad;
	bool snapshot, root;
	bool async;		/* the mode: see above */
	unsigned int flags;	/* of every well-formed cow_snapshot() */
	size_t kept_max;
	const char *skip;
	char why[256];
} s;

struct knob {
	const char *path;
	const char * const *vals;	/* NULL-terminated */
	char saved[64];
	bool usable;
	bool async;	/* of the async mode only */
};

static const char * const v_precopy[] = { "0", "1", "15", "31", "512", "513",
	"-1", "4294967296", "abc", "", " 7", "15x", NULL };
static const char * const v_bool[] = { "0", "1", "2", "-1", "yes", NULL };
static const char * const v_thp_mode[] = { "split", "copy", "split\n",
	"copy ", "Copy", "spli", "", "1", NULL };
static const char * const v_sample[] = { "0", "1", "64", "-1", "x", NULL };
/* Small thresholds would printk on every fault: big ones only. */
static const char * const v_warn[] = { "0", "1000000000", "-5", "1e9", NULL };
static const char * const v_thp[] = { "always", "madvise", "never",
	"sometimes", "", NULL };
static const char * const v_defrag[] = { "always", "defer", "madvise",
	"never", "defer+madvise", "nope", NULL };
static const char * const v_ksm[] = { "0", "1", "2", "3", "-1", NULL };

static struct knob knobs[] = {
	{ .path = COW_PRECOPY_PAGES_PATH, .vals = v_precopy },
	{ .path = COW_PRECOPY_ADAPT_PATH, .vals = v_bool },
	{ .path = COW_THP_MODE_PATH, .vals = v_thp_mode },
	{ .path = "/proc/sys/vm/cow_latency_sample", .vals = v_sample },
	{ .path = "/proc/sys/vm/cow_latency_warn_ns", .vals = v_warn },
	{ .path = "/sys/kernel/mm/transparent_hugepage/enabled", .vals = v_thp },
	{ .path = "/sys/kernel/mm/transparent_hugepage/defrag", .vals = v_defrag },
	{ .path = "/sys/kernel/mm/ksm/run", .vals = v_ksm },
	{ .path = COW_SNAPSHOT_PAUSE_PATH, .vals = v_bool, .async = true },
};

/* Advice that changes no data and no fork() behaviour: any range. */
static const int safe_advice[] = {
	MADV_NORMAL, MADV_RANDOM, MADV_SEQUENTIAL, MADV_WILLNEED, MADV_DOFORK,
	MADV_MERGEABLE, MADV_UNMERGEABLE, MADV_HUGEPAGE, MADV_NOHUGEPAGE,
	MADV_DONTDUMP, MADV_DODUMP, MADV_KEEPONFORK, MADV_COLD, MADV_PAGEOUT,
	MADV_POPULATE_READ, MADV_POPULATE_WRITE, MADV_COLLAPSE,
	MADV_COW_UNSHARE,
};

/*
 * The calls made, for the report of a wrong page: which of the last
 * TRACE calls touched it (a child has its parent's trace up to the fork).
 */
#define TRACE	8192
static struct ev {
	unsigned long long call;
	const char *what;
	unsigned long addr, len, dst;	/* dst: 0 or a second range */
	long arg, ret;
} trace[TRACE];
static unsigned long long nr_ev;

/* Note a call; returns its result, -errno for -1. */
static long ev(const char *what, const void *addr, size_t len,
	       const void *dst, long arg, long ret)
{
	struct ev *e = &trace[nr_ev++ % TRACE];

	e->call = s.calls;
	e->what = what;
	e->addr = (unsigned long)addr;
	e->len = len;
	e->dst = (unsigned long)dst;
	e->arg = arg;
	e->ret = ret == -1 ? -errno : ret;
	return e->ret;
}

static void history(const char *p)
{
	unsigned long a = (unsigned long)p, i, shown = 0;
	struct ev *e;

	for (i = nr_ev; i-- > 0 && nr_ev - i <= TRACE && shown < 24;) {
		e = &trace[i % TRACE];
		if (!((a >= e->addr && a - e->addr < e->len) ||
		      (e->dst && a >= e->dst && a - e->dst < e->len)))
			continue;
		ksft_print_msg("  call %llu: %s(%#lx, %#lx, dst %#lx, arg %ld) = %ld\n",
			       e->call, e->what, e->addr, e->len, e->dst,
			       e->arg, e->ret);
		shown++;
	}
}

/* COW_MIX_SKIP: a comma-separated list of what not to do (to bisect). */
static bool skip(const char *what)
{
	size_t n = strlen(what);
	const char *p;

	for (p = s.skip; p && (p = strstr(p, what)); p += n)
		if ((p == s.skip || p[-1] == ',') && (!p[n] || p[n] == ','))
			return true;
	return false;
}

static uint64_t rnd(void)
{
	s.rnd ^= s.rnd >> 12;
	s.rnd ^= s.rnd << 25;
	s.rnd ^= s.rnd >> 27;
	return s.rnd * 0x2545f4914f6cdd1dULL;
}

static unsigned long below(unsigned long n)
{
	return n ? rnd() % n : 0;
}

static void fail(const char *fmt, ...)
{
	va_list ap;

	if (s.bad++ >= REPORTS)
		return;
	va_start(ap, fmt);
	vsnprintf(s.why, sizeof(s.why), fmt, ap);
	va_end(ap);
	ksft_print_msg("call %llu (pid %d): %s\n", s.calls, getpid(), s.why);
}

static char *page_addr(size_t i)
{
	return s.arena + i * PAGE;
}

static bool readable(int prot)
{
	return prot & (PROT_READ | PROT_WRITE);
}

/* Check one page against the model; a P_UNMAPPED page is not read. */
static void check_page(const char *who, char *p, const struct pg *m)
{
	uint64_t w0, w1, t = m->tag;

	if (m->state == P_UNMAPPED || !readable(m->prot))
		return;
	w0 = __atomic_load_n((uint64_t *)p, __ATOMIC_RELAXED);
	w1 = __atomic_load_n((uint64_t *)(p + PAGE - 8), __ATOMIC_RELAXED);
	s.count[C_CHECKED]++;
	if (w0 == t && w1 == (t ? t ^ MAGIC : 0))
		return;
	if (m->state == P_FREED && !w0 && !w1)
		return;
	fail("%s page %p: %#llx %#llx, want %#llx%s", who, p,
	     (unsigned long long)w0, (unsigned long long)w1,
	     (unsigned long long)t, m->state == P_FREED ? " or zeros" : "");
	if (s.bad <= 2)
		history(p);
}

static void check_range(size_t first, size_t n)
{
	size_t i;

	for (i = first; i < first + n; i++)
		check_page("arena", page_addr(i), &s.pg[i]);
}

static void check_kept(struct kept *k)
{
	size_t i;

	for (i = 0; k->addr && i < k->n; i++)
		check_page("kept snapshot", k->addr + i * PAGE, &k->pg[i]);
}

static void check_all(void)
{
	int i;

	check_range(0, ARENA_PAGES);
	for (i = 0; i < KEPT; i++)
		check_kept(&s.kept[i]);
}

static void write_page(char *p, struct pg *m)
{
	uint64_t t = ++s.next_tag * 0x9e3779b97f4a7c15ULL | 1;

	__atomic_store_n((uint64_t *)p, t, __ATOMIC_RELAXED);
	__atomic_store_n((uint64_t *)(p + PAGE - 8), t ^ MAGIC,
			 __ATOMIC_RELAXED);
	ev("write", p, PAGE, NULL, (long)t, 0);
	m->tag = t;
	m->state = P_KNOWN;
	s.count[C_WRITE]++;
}

/* A random range of the arena: mostly a few pages, sometimes a PMD. */
static size_t pick_range(size_t *n)
{
	size_t first;

	switch (below(8)) {
	case 0:
		*n = PMD_PAGES;
		return below(ARENA_PAGES / PMD_PAGES) * PMD_PAGES;
	case 1:
		*n = 1 + below(PMD_PAGES + 64);
		break;
	default:
		*n = 1 + below(16);
	}
	first = below(ARENA_PAGES);
	if (first + *n > ARENA_PAGES)
		*n = ARENA_PAGES - first;
	return first;
}

static bool any_state(size_t first, size_t n, bool unmapped)
{
	size_t i;
	bool hole;

	for (i = first; i < first + n; i++) {
		hole = s.pg[i].state == P_UNMAPPED;
		if (hole == unmapped)
			return true;
	}
	return false;
}

static void set_range(size_t first, size_t n, int state, int prot)
{
	size_t i;

	for (i = first; i < first + n; i++) {
		s.pg[i].tag = 0;
		s.pg[i].state = state;
		s.pg[i].prot = prot;
	}
}

static void op_write(void)
{
	size_t n, first = pick_range(&n), i;
	struct kept *k = &s.kept[below(KEPT)];

	if (n > 32)
		n = 32;
	if (k->addr && !below(8)) {
		for (i = 0; i < k->n; i += 1 + below(4))
			if (k->pg[i].prot & PROT_WRITE)
				write_page(k->addr + i * PAGE, &k->pg[i]);
		return;
	}
	for (i = first; i < first + n; i++)
		if (s.pg[i].state != P_UNMAPPED && s.pg[i].prot & PROT_WRITE)
			write_page(page_addr(i), &s.pg[i]);
}

static void op_mmap(void)
{
	size_t n, first = pick_range(&n);
	bool noreplace = below(3) == 0, want_ok;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	void *p;

	flags |= noreplace ? MAP_FIXED_NOREPLACE : MAP_FIXED;
	if (below(2))
		flags |= MAP_NORESERVE;
	want_ok = !noreplace || !any_state(first, n, false);
	s.calls++;
	s.count[C_MMAP]++;
	p = mmap(page_addr(first), n * PAGE, PROT_READ | PROT_WRITE, flags,
		 -1, 0);
	ev("mmap", page_addr(first), n * PAGE, NULL, flags, (long)p);
	if (p == MAP_FAILED) {
		if (want_ok || errno != EEXIST)
			fail("mmap(+%zu, %zu pages, %#x): %s, want %s", first,
			     n, flags, strerror(errno),
			     want_ok ? "success" : "EEXIST");
		return;
	}
	if (!want_ok || p != page_addr(first)) {
		fail("mmap(+%zu, %zu pages, %#x) = %p, want %s", first, n,
		     flags, p, want_ok ? "the address" : "EEXIST");
		return;
	}
	set_range(first, n, P_KNOWN, PROT_READ | PROT_WRITE);
	if (below(2))
		madvise(p, n * PAGE, MADV_HUGEPAGE);
}

static void op_munmap(void)
{
	size_t n, first = pick_range(&n);

	s.calls++;
	s.count[C_MUNMAP]++;
	if (ev("munmap", page_addr(first), n * PAGE, NULL, 0,
	       munmap(page_addr(first), n * PAGE))) {
		fail("munmap(+%zu, %zu pages): %s", first, n, strerror(errno));
		return;
	}
	set_range(first, n, P_UNMAPPED, 0);
}

static void op_mprotect(void)
{
	static const int prots[] = { PROT_NONE, PROT_READ, PROT_WRITE,
		PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC };
	size_t n, first = pick_range(&n), i;
	int prot = prots[below(ARRAY_SIZE(prots))];

	/* A hole stops mprotect() part way: keep the model exact. */
	if (any_state(first, n, true))
		return;
	s.calls++;
	s.count[C_MPROTECT]++;
	if (ev("mprotect", page_addr(first), n * PAGE, NULL, prot,
	       mprotect(page_addr(first), n * PAGE, prot))) {
		if (errno != ENOMEM)	/* out of VMAs or memory: no change */
			fail("mprotect(+%zu, %zu pages, %d): %s", first, n,
			     prot, strerror(errno));
		return;
	}
	for (i = first; i < first + n; i++)
		s.pg[i].prot = prot;
}

static void op_madvise(void)
{
	static const int advice[] = { MADV_DONTNEED, MADV_FREE,
		MADV_COW_UNSHARE, MADV_COW_UNSHARE, MADV_PAGEOUT,
		MADV_COLLAPSE, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_MERGEABLE,
		MADV_POPULATE_WRITE, MADV_COLD };
	int adv = advice[below(ARRAY_SIZE(advice))];
	size_t n, first = pick_range(&n), i;
	int ret;

	if ((adv == MADV_PAGEOUT && skip("pageout")) ||
	    (adv == MADV_MERGEABLE && skip("ksm")) ||
	    (adv == MADV_FREE && skip("free")) ||
	    (adv == MADV_COW_UNSHARE && skip("unshare")) ||
	    (adv == MADV_COLLAPSE && skip("collapse")))
		return;

	s.calls++;
	s.count[C_MADVISE]++;
	ret = madvise(page_addr(first), n * PAGE, adv);
	ev("madvise", page_addr(first), n * PAGE, NULL, adv, ret);
	/* DONTNEED and FREE act on what is mapped; ENOMEM tells of holes. */
	for (i = first; (!ret || errno == ENOMEM) && i < first + n; i++) {
		if (s.pg[i].state == P_UNMAPPED)
			continue;
		if (adv == MADV_DONTNEED)
			s.pg[i].tag = 0;
		else if (adv == MADV_FREE && s.pg[i].tag)
			s.pg[i].state = P_FREED;
	}
	if (ret && errno != ENOMEM && errno != EINVAL && errno != EFAULT &&
	    errno != EAGAIN && errno != EBUSY)
		fail("madvise(+%zu, %zu pages, %d): %s", first, n, adv,
		     strerror(errno));
}

/* cow_snapshot(FIXED) from one arena range to another: result predicted. */
static void op_snap_fixed(void)
{
	size_t n, src = pick_range(&n), dst = below(ARENA_PAGES - n + 1);
	size_t off = src % PMD_PAGES;
	int want = 0;
	long ret;

	/* Async: often the same offset in 2 MiB, so that PMDs are deferred. */
	if (s.async && below(2) && n + off <= ARENA_PAGES)
		dst = off + below((ARENA_PAGES - n - off) / PMD_PAGES + 1) *
			    PMD_PAGES;
	if (dst < src + n && src < dst + n)
		want = EINVAL;
	else if (any_state(src, n, true))
		want = ENOMEM;
	else if (any_state(dst, n, false))
		want = EEXIST;
	s.calls++;
	s.count[C_SNAP_FIXED]++;
	ret = cow_snapshot_sys((unsigned long)page_addr(src), n * PAGE,
			       (unsigned long)page_addr(dst),
			       COW_SNAPSHOT_FIXED | s.flags);
	ev("cow_snapshot", page_addr(src), n * PAGE, page_addr(dst),
	   COW_SNAPSHOT_FIXED | s.flags, ret);
	if (ret == -1 ? errno != want : want || ret != (long)page_addr(dst)) {
		fail("cow_snapshot(+%zu, %zu pages, +%zu, FIXED) = %ld (%s), want %s",
		     src, n, dst, ret, ret == -1 ? strerror(errno) : "ok",
		     want ? strerror(want) : "success");
		return;
	}
	if (ret == -1)
		return;
	memcpy(&s.pg[dst], &s.pg[src], n * sizeof(s.pg[0]));
	check_range(src, n);
	check_range(dst, n);
}

/*
 * Async: a whole PMD of the arena in small pages, one in 16 of them
 * written, for a snapshot to defer (holes are common in the arena, and
 * a PMD with one is not snapshotted).
 */
static void fresh_pmd(size_t first)
{
	void *p;
	size_t i;

	s.calls++;
	s.count[C_MMAP]++;
	p = mmap(page_addr(first), PMD_PAGES * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ev("mmap", page_addr(first), PMD_PAGES * PAGE, NULL, MAP_FIXED,
	   (long)p);
	if (p != page_addr(first)) {
		fail("mmap(+%zu, a PMD, MAP_FIXED): %s", first,
		     strerror(errno));
		return;
	}
	set_range(first, PMD_PAGES, P_KNOWN, PROT_READ | PROT_WRITE);
	madvise(p, PMD_PAGES * PAGE, MADV_NOHUGEPAGE);
	for (i = first; i < first + PMD_PAGES; i += 16)
		write_page(page_addr(i), &s.pg[i]);
}

/* cow_snapshot() at a kernel-chosen address, kept for a while. */
static void op_snap_kept(void)
{
	struct kept *k = &s.kept[below(KEPT)];
	size_t n, src = pick_range(&n);
	long ret;

	if (k->addr) {
		check_kept(k);
		munmap(k->addr, k->n * PAGE);
		k->addr = NULL;
	}
	/* Async: a whole PMD, fully mapped, a quarter of the time. */
	if (s.async && !below(4)) {
		n = PMD_PAGES;
		src = below(ARENA_PAGES / PMD_PAGES) * PMD_PAGES;
		if (any_state(src, n, true))
			fresh_pmd(src);
	}
	if (n > s.kept_max)
		n = s.kept_max;
	s.calls++;
	s.count[C_SNAP_KEPT]++;
	ret = cow_snapshot_sys((unsigned long)page_addr(src), n * PAGE, 0,
			       s.flags);
	ev("cow_snapshot", page_addr(src), n * PAGE, (void *)ret, s.flags, ret);
	if (ret == -1) {
		if (errno != (any_state(src, n, true) ? ENOMEM : 0))
			fail("cow_snapshot(+%zu, %zu pages): %s", src, n,
			     strerror(errno));
		return;
	}
	if (any_state(src, n, true))
		fail("cow_snapshot(+%zu, %zu pages) of a hole = %#lx", src, n,
		     ret);
	k->addr = (char *)ret;
	k->n = n;
	memcpy(k->pg, &s.pg[src], n * sizeof(s.pg[0]));
	/* Async: left unread at times, its PMDs pending for what comes. */
	if (!s.async || below(2))
		check_kept(k);
	/*
	 * In a hole of the arena, even in part, the model would not know
	 * it: let it go.
	 */
	if (k->addr < s.arena + ARENA_PAGES * PAGE &&
	    k->addr + n * PAGE > s.arena) {
		munmap(k->addr, n * PAGE);
		k->addr = NULL;
	}
}

/* An address worth trying: in the arena, around it, or nowhere sane. */
static unsigned long hostile_addr(void)
{
	static const unsigned long odd[] = {
		0, 1, PAGE - 1, PAGE, 0x10000, 0x7ffffffff000UL,
		0x800000000000UL, 0xffff800000000000UL, ~0UL, -PAGE,
		0x7fffffffe000UL,
	};
	unsigned long a = (unsigned long)s.arena;

	switch (below(6)) {
	case 0:
		return odd[below(ARRAY_SIZE(odd))];
	case 1:
		return a + below(ARENA_PAGES * PAGE);	/* mostly unaligned */
	case 2:
		return rnd();
	case 3:
		return (unsigned long)&s;	/* our own data */
	default:
		return a + below(ARENA_PAGES + 8) * PAGE - 4 * PAGE;
	}
}

static size_t hostile_len(void)
{
	static const size_t odd[] = {
		0, 1, PAGE - 1, PAGE + 1, 2UL << 20, (2UL << 20) + PAGE,
		1UL << 46, ~0UL, -PAGE, 64UL << 20,
	};

	if (below(2))
		return odd[below(ARRAY_SIZE(odd))];
	return (1 + below(64)) * PAGE - below(2);
}

/*
 * Undo a hostile success: munmap what appeared, if it can be named; a
 * hugetlb mapping only goes whole.
 */
static void hostile_undo(unsigned long addr, size_t len, bool huge)
{
	size_t align = huge ? PMD_PAGES * PAGE : PAGE;

	len = (len + align - 1) & ~(align - 1);
	s.count[C_HOSTILE_OK]++;
	if (addr & (PAGE - 1) || !len) {
		fail("hostile call gave %#lx for %zu bytes", addr, len);
		return;
	}
	ev("munmap (undo)", (void *)addr, len, NULL, 0,
	   munmap((void *)addr, len));
}

static void op_hostile(void)
{
	static const int prot_bits[] = { PROT_READ, PROT_WRITE, PROT_EXEC,
		PROT_SEM, PROT_GROWSDOWN, PROT_GROWSUP, 0x10, 0x40000000 };
	static const int map_bits[] = { MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS,
		MAP_NORESERVE, MAP_POPULATE, MAP_GROWSDOWN, MAP_HUGETLB,
		MAP_STACK, MAP_FIXED_NOREPLACE, MAP_LOCKED, 0x40, 0x8000000 };
	unsigned long addr = hostile_addr(), dst = hostile_addr();
	size_t len = hostile_len();
	int i, prot = 0, flags = 0, adv;
	long ret;
	void *p;

	s.calls++;
	s.count[C_HOSTILE]++;
	switch (below(5)) {
	case 0:	/* cow_snapshot(): never replaces, so anything goes */
		flags = below(3) ? (int)below(2) : (int)rnd();
		errno = 0;
		dst = below(2) ? dst : 0;
		ret = cow_snapshot_sys(addr, len, dst, flags);
		ev("cow_snapshot", (void *)addr, len, (void *)dst, flags, ret);
		if (ret != -1)
			hostile_undo(ret, len, false);
		else if (errno != EINVAL && errno != ENOMEM &&
			 errno != EEXIST && errno != EPERM)
			fail("cow_snapshot(%#lx, %#zx, %#lx, %#x): %s", addr,
			     len, dst, flags, strerror(errno));
		break;
	case 1:	/* madvise() that changes no data, or unknown advice */
		adv = below(2) ? safe_advice[below(ARRAY_SIZE(safe_advice))] :
			(int)(26 + below(74));
		if ((adv == MADV_PAGEOUT && skip("pageout")) ||
		    (adv == MADV_MERGEABLE && skip("ksm")) ||
		    (adv == MADV_COW_UNSHARE && skip("unshare")) ||
		    (adv == MADV_COLLAPSE && skip("collapse")))
			break;
		ev("madvise", (void *)addr, len, NULL, adv,
		   madvise((void *)addr, len, adv));
		break;
	case 2:	/* mmap(), never MAP_FIXED: undone when it succeeds */
		for (i = 0; i < (int)ARRAY_SIZE(prot_bits); i++)
			if (below(3) == 0)
				prot |= prot_bits[i];
		for (i = 0; i < (int)ARRAY_SIZE(map_bits); i++)
			if (below(3) == 0)
				flags |= map_bits[i];
		if (len > (64UL << 20))
			flags &= ~(MAP_POPULATE | MAP_LOCKED);
		p = mmap((void *)addr, len, prot, flags, -1, 0);
		ev("mmap", (void *)addr, len, p == MAP_FAILED ? NULL : p, flags,
		   (long)p);
		if (p != MAP_FAILED)
			hostile_undo((unsigned long)p, len,
				     flags & MAP_HUGETLB);
		break;
	case 3:	/* munmap() of what is no range: EINVAL, nothing unmapped */
		addr = (unsigned long)s.arena + below(ARENA_PAGES) * PAGE;
		switch (below(3)) {
		case 0:
			addr += 1 + below(PAGE - 1);
			break;
		case 1:
			len = 0;
			break;
		default:
			addr = 0x800000000000UL + below(4) * PAGE;
		}
		if (!munmap((void *)addr, len) || errno != EINVAL)
			fail("munmap(%#lx, %#zx): %s, want EINVAL", addr, len,
			     strerror(errno));
		break;
	default:	/* mprotect() with odd bits on a mapped arena range */
		prot = (int)below(16) | (below(4) ? 0 : prot_bits[below(8)]);
		i = (int)below(ARENA_PAGES);
		len = 1 + below(8);
		if (i + len > ARENA_PAGES || any_state(i, len, true))
			break;
		if (!ev("mprotect", page_addr(i), len * PAGE, NULL, prot,
			mprotect(page_addr(i), len * PAGE, prot))) {
			if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC |
				     PROT_SEM))
				fail("mprotect(+%d, %zu pages, %#x) succeeded",
				     i, len, prot);
			while (len--)
				s.pg[i + len].prot = prot & 7;
		}
	}
}

static void op_knob(void)
{
	struct knob *k = &knobs[below(ARRAY_SIZE(knobs))];
	char before[64], after[64];
	const char *val;
	int n, err;

	if (!k->usable || (strstr(k->path, "/ksm/") && skip("ksm")) ||
	    (strstr(k->path, "/cow_") && skip("cow_knobs")))
		return;
	for (n = 0; k->vals[n]; n++)
		;
	val = k->vals[below(n)];
	if (cow_read_line(k->path, before, sizeof(before)))
		return;
	s.calls++;
	s.count[C_KNOB]++;
	err = cow_write_file(k->path, val);
	if (!err)
		return;
	s.count[C_KNOB_REFUSED]++;
	if (err != EINVAL)
		fail("writing '%s' to %s: %s, want EINVAL", val, k->path,
		     strerror(err));
	if (!cow_read_line(k->path, after, sizeof(after)) &&
	    strcmp(before, after))
		fail("refused '%s' changed %s from '%s' to '%s'", val, k->path,
		     before, after);
}

static void one_call(bool child);

static void child_run(void)
{
	int i;

	s.bad = 0;
	s.rnd = (s.rnd * 31 + getpid()) | 1;
	check_all();
	for (i = 0; i < CHILD_CALLS && !s.bad; i++)
		one_call(true);
	check_all();
	fflush(stdout);
	_exit(s.bad ? 1 : 0);
}

static pid_t children[CHILDREN];

static void reap(bool wait)
{
	int i, status;
	pid_t r;

	for (i = 0; i < CHILDREN; i++) {
		if (!children[i])
			continue;
		r = waitpid(children[i], &status, wait ? 0 : WNOHANG);
		if (!r)
			continue;
		if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			fail("child %d: status %#x (its findings are above)",
			     children[i], status);
		children[i] = 0;
	}
}

static void op_fork(void)
{
	int i;
	pid_t pid;

	reap(false);
	for (i = 0; i < CHILDREN && children[i]; i++)
		;
	if (i == CHILDREN)
		return;
	s.calls++;
	s.count[C_FORK]++;
	fflush(stdout);
	pid = fork();
	if (!pid)
		child_run();
	if (pid < 0)
		fail("fork: %s", strerror(errno));
	else
		children[i] = pid;
}

static void one_call(bool child)
{
	unsigned long r = below(100);

	if ((r >= 52 && r < 67 && skip("snapshot")) ||
	    (r >= 67 && r < 69 && skip("fork")) ||
	    (r >= 69 && r < 72 && skip("knob")) ||
	    (r >= 75 && skip("hostile")))
		return;
	if (r < 25)
		op_write();
	else if (r < 30)
		op_mmap();
	else if (r < 34)
		op_munmap();
	else if (r < 40)
		op_mprotect();
	else if (r < 52)
		op_madvise();
	else if (r < 62 && s.snapshot)
		op_snap_fixed();
	else if (r < 67 && s.snapshot)
		op_snap_kept();
	else if (r < 69 && !child)
		op_fork();
	else if (r < 72 && !child && s.root)
		op_knob();
	else if (r >= 75)
		op_hostile();
	else
		check_range(below(ARENA_PAGES - 64), 64);
}

static void knobs_save(void)
{
	size_t i;

	for (i = 0; s.root && i < ARRAY_SIZE(knobs); i++) {
		struct knob *k = &knobs[i];
		char *b;

		k->usable = false;
		if ((k->async && !s.async) ||
		    cow_read_line(k->path, k->saved, sizeof(k->saved)))
			continue;
		/* "always [madvise] never": the choice in brackets */
		b = strchr(k->saved, '[');
		if (b) {
			memmove(k->saved, b + 1, strlen(b));
			k->saved[strcspn(k->saved, "]")] = '\0';
		}
		k->usable = !cow_write_file(k->path, k->saved);
	}
}

static void knobs_restore(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(knobs); i++)
		if (knobs[i].usable)
			cow_write_file(knobs[i].path, knobs[i].saved);
}

FIXTURE(mixed) {
	char *map;
};

FIXTURE_VARIANT(mixed) {
	bool async;
};

FIXTURE_VARIANT_ADD(mixed, eager) { .async = false };
FIXTURE_VARIANT_ADD(mixed, async) { .async = true };

FIXTURE_SETUP(mixed)
{
	size_t len = (ARENA_PAGES + PMD_PAGES) * PAGE;

	self->map = mmap(NULL, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(self->map, MAP_FAILED);
	s.arena = (char *)(((uintptr_t)self->map + PMD_PAGES * PAGE - 1) &
			   ~(uintptr_t)(PMD_PAGES * PAGE - 1));
	madvise(s.arena, ARENA_PAGES * PAGE, MADV_HUGEPAGE);
	set_range(0, ARENA_PAGES, P_KNOWN, PROT_READ | PROT_WRITE);
	s.snapshot = cow_snapshot_present();
	s.root = !geteuid();
	s.async = variant->async;
	s.flags = s.async || !s.snapshot ? 0 : cow_snapshot_eager_flag();
	s.kept_max = s.async ? KEPT_MAX : KEPT_PAGES;
	/* Async: page tables, not THPs, in half the arena, to be deferred. */
	if (s.async)
		madvise(s.arena, ARENA_PAGES * PAGE / 2, MADV_NOHUGEPAGE);
	knobs_save();
}

FIXTURE_TEARDOWN(mixed)
{
	size_t i;

	knobs_restore();
	for (i = 0; i < KEPT; i++)
		if (s.kept[i].addr)
			munmap(s.kept[i].addr, s.kept[i].n * PAGE);
	munmap(self->map, (ARENA_PAGES + PMD_PAGES) * PAGE);
}

TEST_F_TIMEOUT(mixed, random_calls, 900)
{
	const char *env = getenv("COW_MIX_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	unsigned long long want = 60000, last_full = 0;
	struct cow_async_counts a0, a1;
	char line[768];
	int i, n = 0;

	s.skip = getenv("COW_MIX_SKIP");
	env = getenv("COW_MIX_CALLS");
	if (env)
		want = strtoull(env, NULL, 0);
	s.rnd = seed * 0x9e3779b97f4a7c15ULL | 1;
	ksft_print_msg("%s, seed %llu (COW_MIX_SEED=%llu repeats this run)%s%s\n",
		       s.async ? "async" : "eager",
		       (unsigned long long)seed, (unsigned long long)seed,
		       s.snapshot ? "" : ", " COW_NO_SNAPSHOT,
		       s.root ? "" : ", not root: no sysctl writes");
	cow_async_counts_get(&a0);

	/* Half the arena written, so that there is something to lose. */
	for (i = 0; i < (int)ARENA_PAGES; i += 2)
		write_page(page_addr(i), &s.pg[i]);
	while (s.calls < want && !s.bad) {
		one_call(false);
		if (s.calls - last_full >= FULL_CHECK) {
			last_full = s.calls;
			check_all();
			reap(false);
		}
	}
	reap(true);
	check_all();

	for (i = 0; i < C_NR; i++)
		n += snprintf(line + n, sizeof(line) - n, " %s %llu",
			      c_names[i], s.count[i]);
	ksft_print_msg("%llu calls, seed %llu:%s\n", s.calls,
		       (unsigned long long)seed, line);
	cow_async_counts_get(&a1);
	if (a1.present) {
		snprintf(line, sizeof(line),
			 "PMDs deferred %llu; settled by a fault %llu, by an operation %llu, in the background %llu; dropped %llu",
			 a1.deferred - a0.deferred, a1.fault - a0.fault,
			 a1.op - a0.op, a1.bg - a0.bg, a1.dropped - a0.dropped);
		ksft_print_msg("%s\n", line);
	}
	ASSERT_EQ(s.bad, 0) TH_LOG("first: %s (COW_MIX_SEED=%llu)", s.why,
				   (unsigned long long)seed);
}

TEST_HARNESS_MAIN
