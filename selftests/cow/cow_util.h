/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the cow selftests: page-pattern fill and check, THP and
 * hugetlb discovery, /proc/self/smaps and /proc/vmstat look-ups, sysctl
 * writes, and a forked child that checks its frozen view. The pagemap and
 * THP helpers of the mm selftests (mm/vm_util.h) come with it. Include
 * after kselftest_harness.h.
 */
#ifndef COW_UTIL_H
#define COW_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include "mm/vm_util.h"

#define COW_SUBPAGE	4096UL

/* A 64-bit word, unique per (seed, 4 KiB sub-page, position in it). */
static inline uint64_t cow_word(uint64_t seed, size_t subpage, int end)
{
	return (seed * 0x9e3779b97f4a7c15ULL) ^ (subpage << 1) ^ (uint64_t)end;
}

/* Write the first and last word of every 4 KiB sub-page of [p, p + len). */
static inline void cow_fill(char *p, size_t len, uint64_t seed)
{
	size_t i;

	for (i = 0; i < len / COW_SUBPAGE; i++) {
		char *sp = p + i * COW_SUBPAGE;

		*(uint64_t *)sp = cow_word(seed, i, 0);
		*(uint64_t *)(sp + COW_SUBPAGE - 8) = cow_word(seed, i, 1);
	}
}

/*
 * Check what cow_fill() wrote: the index of the first 4 KiB sub-page that
 * differs, or -1 when all match.
 */
static inline long cow_check(const char *p, size_t len, uint64_t seed)
{
	size_t i;

	for (i = 0; i < len / COW_SUBPAGE; i++) {
		const char *sp = p + i * COW_SUBPAGE;

		if (*(const uint64_t *)sp != cow_word(seed, i, 0) ||
		    *(const uint64_t *)(sp + COW_SUBPAGE - 8) != cow_word(seed, i, 1))
			return i;
	}
	return -1;
}

/*
 * 0 when [mem, mem + size) holds the pattern of @seed with @byte at @off;
 * else say what differs and return 1.
 */
static inline int cow_check_or_report(const char *who, char *mem, size_t size,
				      uint64_t seed, size_t off, char byte)
{
	long bad = cow_check(mem, size, seed);
	char *sp;

	if (bad >= 0) {
		sp = mem + bad * COW_SUBPAGE;
		ksft_print_msg("%s: sub-page %ld of %zu: %#llx %#llx, want %#llx %#llx\n",
			       who, bad, size / COW_SUBPAGE,
			       (unsigned long long)*(uint64_t *)sp,
			       (unsigned long long)*(uint64_t *)(sp + COW_SUBPAGE - 8),
			       (unsigned long long)cow_word(seed, bad, 0),
			       (unsigned long long)cow_word(seed, bad, 1));
		return 1;
	}
	if (mem[off] != byte) {
		ksft_print_msg("%s: byte at %zu is %#x, want %#x\n", who, off,
			       mem[off] & 0xff, byte & 0xff);
		return 1;
	}
	return 0;
}

/*
 * Fork a child that runs @check(@arg) once the parent writes to *go and
 * exits with its result. Until then the child keeps every page of the
 * parent COW-shared, and it has taken every fault of its own before this
 * returns, so that none lands among what the parent counts. -1 on error.
 */
static inline pid_t cow_fork_waiter(int (*check)(void *), void *arg, int *go)
{
	int fds[2], ready[2];
	pid_t pid;
	char c;

	if (pipe(fds) || pipe(ready))
		return -1;
	pid = fork();
	if (pid == 0) {
		/* Never outlive a killed test: it would pin the memory. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(fds[1]);
		/* A zero-length read touches the stack the real one will. */
		if (read(fds[0], &c, 0) || write(ready[1], "r", 1) != 1 ||
		    read(fds[0], &c, 1) != 1)
			_exit(2);
		_exit(check(arg));
	}
	close(fds[0]);
	close(ready[1]);
	if (pid < 0 || read(ready[0], &c, 1) != 1) {
		close(fds[1]);
		close(ready[0]);
		return -1;
	}
	close(ready[0]);
	*go = fds[1];
	return pid;
}

struct cow_checker_arg {
	char *mem;
	size_t size, off;
	uint64_t seed;
	char byte;
};

static inline int cow_checker_run(void *p)
{
	struct cow_checker_arg *a = p;

	return cow_check_or_report("child", a->mem, a->size, a->seed, a->off,
				   a->byte);
}

/*
 * A cow_fork_waiter() child that checks that [mem, mem + size) still
 * holds the pattern of @seed with @byte at @off.
 */
static inline pid_t cow_fork_checker(char *mem, size_t size, uint64_t seed,
				     size_t off, char byte, int *go)
{
	struct cow_checker_arg arg = { mem, size, off, seed, byte };

	return cow_fork_waiter(cow_checker_run, &arg, go);
}

/* A child's exit code; -1 when it did not exit normally. */
static inline int cow_wait_exit(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* Tell a cow_fork_checker() child to check; its exit code, -1 if killed. */
static inline int cow_checker_result(pid_t pid, int go)
{
	int ret = write(go, "g", 1) == 1 ? 0 : -1;

	close(go);
	return ret ? ret : cow_wait_exit(pid);
}

/* Write a string to a file (truncating it): 0 or the errno. */
static inline int cow_write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	int err = 0;

	if (fd < 0)
		return errno;
	if (write(fd, val, strlen(val)) < 0)
		err = errno;
	close(fd);
	return err;
}

/*
 * A counter of /proc/vmstat, 0 when absent. The line buffer is static so
 * that reading it after fork() touches no stack page that a test counts
 * COW faults on.
 */
static inline unsigned long long cow_vmstat(const char *name)
{
	static char line[256];
	unsigned long long v = 0, val;
	char key[64];
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %llu", key, &val) == 2 && !strcmp(key, name))
			v = val;
	fclose(f);
	return v;
}

/*
 * Map twice @pmd bytes and return the PMD-aligned @pmd bytes inside,
 * MADV_HUGEPAGE; *map is what to munmap() (2 * pmd). NULL on failure.
 */
static inline char *cow_map_thp(size_t pmd, char **map)
{
	char *mem;

	*map = mmap(NULL, 2 * pmd, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*map == MAP_FAILED)
		return NULL;
	mem = (char *)(((uintptr_t)*map + pmd - 1) & ~(uintptr_t)(pmd - 1));
	if (madvise(mem, pmd, MADV_HUGEPAGE)) {
		munmap(*map, 2 * pmd);
		return NULL;
	}
	return mem;
}

/* The first line of a file, without its newline; 0 or the errno. */
static inline int cow_read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	int err = 0;

	if (!f)
		return errno;
	if (!fgets(buf, len, f))
		err = EIO;
	else
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
	return err;
}

#define COW_THP_MODE_PATH	"/proc/sys/vm/cow_thp_mode"
#define COW_PRECOPY_PAGES_PATH	"/proc/sys/vm/cow_precopy_pages"
#define COW_PRECOPY_ADAPT_PATH	"/proc/sys/vm/cow_precopy_adaptive"

/* The pre-copy knobs as they were; "" for one this kernel lacks. */
struct cow_precopy_knobs {
	char pages[16];
	char adaptive[16];
};

/* Save the pre-copy knobs in @k and set them; 0 or the errno. */
static inline int cow_precopy_set(struct cow_precopy_knobs *k,
				  const char *pages, const char *adaptive)
{
	int err = 0;

	if (cow_read_line(COW_PRECOPY_PAGES_PATH, k->pages, sizeof(k->pages)))
		k->pages[0] = '\0';
	if (cow_read_line(COW_PRECOPY_ADAPT_PATH, k->adaptive,
			  sizeof(k->adaptive)))
		k->adaptive[0] = '\0';
	if (k->pages[0])
		err = cow_write_file(COW_PRECOPY_PAGES_PATH, pages);
	if (!err && k->adaptive[0])
		err = cow_write_file(COW_PRECOPY_ADAPT_PATH, adaptive);
	return err;
}

static inline void cow_precopy_restore(const struct cow_precopy_knobs *k)
{
	if (k->pages[0])
		cow_write_file(COW_PRECOPY_PAGES_PATH, k->pages);
	if (k->adaptive[0])
		cow_write_file(COW_PRECOPY_ADAPT_PATH, k->adaptive);
}

/* The COW counters of /proc/vmstat and this process's minor faults. */
struct cow_counts {
	unsigned long long cow_copy, thp_copy, thp_split, fallback_charge;
	unsigned long long precopy, precopy_fail;
	long minflt;
};

static inline void cow_get_counts(struct cow_counts *c)
{
	struct rusage ru;

	c->cow_copy = cow_vmstat("cow_copy");
	c->thp_copy = cow_vmstat("cow_thp_copy");
	c->thp_split = cow_vmstat("cow_thp_split");
	c->fallback_charge = cow_vmstat("thp_fault_fallback_charge");
	c->precopy = cow_vmstat("cow_precopy");
	c->precopy_fail = cow_vmstat("cow_precopy_fail");
	getrusage(RUSAGE_SELF, &ru);
	c->minflt = ru.ru_minflt;
}

/*
 * The counters before a write, into @b. Filling @a and @b first breaks
 * COW on every stack and static page that counting touches, so that the
 * real reading and the one after the write cause no COW fault of their
 * own.
 */
static inline void cow_counts_before(struct cow_counts *b,
				     struct cow_counts *a)
{
	cow_get_counts(a);
	cow_get_counts(b);
	cow_get_counts(b);
}

/* Read one unsigned number from a file; 0 when it cannot be read. */
static inline unsigned long cow_read_ulong(const char *path)
{
	unsigned long v = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	if (fscanf(f, "%lu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

/* The KSM knobs: /sys/kernel/mm/ksm/KNOB (@knob's path in a static buffer). */
#define COW_KSM_DIR	"/sys/kernel/mm/ksm/"

static inline char *cow_ksm_path(const char *knob)
{
	static char path[128];

	snprintf(path, sizeof(path), COW_KSM_DIR "%s", knob);
	return path;
}

static inline unsigned long cow_ksm_get(const char *knob)
{
	return cow_read_ulong(cow_ksm_path(knob));
}

static inline int cow_ksm_set(const char *knob, const char *val)
{
	return cow_write_file(cow_ksm_path(knob), val);
}

/* Free hugetlb pages of the given size (in KiB). */
static inline unsigned long cow_hugetlb_free(unsigned long kb)
{
	char path[128];

	snprintf(path, sizeof(path),
		 "/sys/kernel/mm/hugepages/hugepages-%lukB/free_hugepages", kb);
	return cow_read_ulong(path);
}

/* Does this kernel have hugetlb pages of the given size (in KiB)? */
static inline bool cow_hugetlb_size_supported(unsigned long kb)
{
	size_t sizes[16];
	int i, n = detect_hugetlb_page_sizes(sizes, ARRAY_SIZE(sizes));

	for (i = 0; i < n; i++)
		if (sizes[i] == kb * 1024)
			return true;
	return false;
}

/*
 * The value (in kB) of an smaps field such as "AnonHugePages" for the
 * mapping that contains addr; -1 when not found.
 */
static inline long cow_smaps_kb(const void *addr, const char *field)
{
	unsigned long start, end, a = (unsigned long)addr;
	size_t flen = strlen(field);
	bool inside = false;
	char line[512];
	long val = -1;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			inside = a >= start && a < end;
			continue;
		}
		if (inside && !strncmp(line, field, flen) && line[flen] == ':') {
			val = strtol(line + flen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

/*
 * cow_snapshot() and MADV_COW_UNSHARE, defined here for headers that
 * predate them; the numbers are provisional.
 */
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
#define COW_NO_SNAPSHOT		"cow_snapshot() not in this kernel"

/* The system call itself: the snapshot's address, or -1 and errno. */
static inline long cow_snapshot_sys(unsigned long start, size_t len,
				    unsigned long dst, unsigned int flags)
{
	return syscall(__NR_cow_snapshot, start, len, dst, flags);
}

/* cow_snapshot(): the snapshot's address, or MAP_FAILED with errno set. */
static inline char *cow_snapshot(const void *start, size_t len,
				 const void *dst, unsigned int flags)
{
	long ret = cow_snapshot_sys((unsigned long)start, len,
				    (unsigned long)dst, flags);

	return ret == -1 ? MAP_FAILED : (char *)ret;
}

/*
 * The whole of @path into @buf, NUL-terminated, without allocating; its
 * length, or -1 (also when it does not fit).
 */
static inline ssize_t cow_read_file(const char *path, char *buf, size_t size)
{
	size_t used = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf + used, size - 1 - used)) > 0) {
		used += n;
		if (used == size - 1) {
			n = -1;
			break;
		}
	}
	close(fd);
	if (n < 0)
		return -1;
	buf[used] = '\0';
	return used;
}

/*
 * The VMAs of this process, counted as mm->map_count counts them, read
 * through @buf (of @size bytes); -1 on error.
 */
static inline int cow_vma_count(char *buf, size_t size)
{
	int n = 0;
	char *p;

	if (cow_read_file("/proc/self/maps", buf, size) < 0)
		return -1;
	for (p = buf; *p; p++)
		n += *p == '\n';
	/* The gate area is no VMA. */
	if (strstr(buf, "[vsyscall]"))
		n--;
	return n;
}

/* A VMA of /proc/self/maps. */
struct cow_vma {
	unsigned long start, end;
	char perms[5];
	char name[64];
};

/*
 * The VMAs that intersect [start, end), at most @max into @v; how many
 * there are, -1 on error.
 */
static inline int cow_vmas_in(const void *start, const void *end,
			      struct cow_vma *v, int max)
{
	unsigned long s = (unsigned long)start, e = (unsigned long)end;
	char line[512];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		struct cow_vma cur = { 0 };
		int name_at = 0;

		if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &cur.start,
			   &cur.end, cur.perms, &name_at) < 3)
			continue;
		if (cur.end <= s || cur.start >= e)
			continue;
		if (name_at)
			snprintf(cur.name, sizeof(cur.name), "%.*s",
				 (int)strcspn(line + name_at, "\n"),
				 line + name_at);
		if (n < max)
			v[n] = cur;
		n++;
	}
	fclose(f);
	return n;
}

/* Say where two texts of /proc/self/maps, @before and @after, first differ. */
static inline void cow_maps_diff(const char *what, const char *before,
				 const char *after)
{
	size_t i = 0, b;

	while (before[i] && before[i] == after[i])
		i++;
	for (b = i; b && before[b - 1] != '\n'; b--)
		;
	ksft_print_msg("%s: /proc/self/maps changed at\n#  before: %.*s\n#  after:  %.*s\n",
		       what, (int)strcspn(before + b, "\n"), before + b,
		       (int)strcspn(after + b, "\n"), after + b);
}

/* The lines of /proc/self/maps that intersect [start, end), in @buf. */
static inline int cow_maps_text(const void *start, const void *end,
				char *buf, size_t size)
{
	unsigned long s = (unsigned long)start, e = (unsigned long)end;
	unsigned long vs, ve;
	char line[512];
	size_t used = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return -1;
	buf[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx", &vs, &ve) != 2 || ve <= s ||
		    vs >= e)
			continue;
		used += snprintf(buf + used, size - used, "%s", line);
		if (used >= size) {
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

/*
 * The pagemap entry of the page at @addr (PM_* and PAGEMAP_PFN() of
 * vm_util.h read it); 0 when /proc/self/pagemap cannot be opened. Opened
 * for each read: a descriptor kept open across fork() would read the
 * parent's page tables in the child.
 */
static inline uint64_t cow_pagemap(const void *addr)
{
	uint64_t ent;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	ent = pagemap_get_entry(fd, (char *)addr);
	close(fd);
	return ent;
}

/* The PFN of the page at @addr; 0 when not present or not shown. */
static inline uint64_t cow_pfn(const void *addr)
{
	return PAGEMAP_PFN(cow_pagemap(addr));
}

/*
 * Unknown flags: EINVAL with the system call, ENOSYS without. ENOSYS is
 * taken from a system call number that no kernel has (-1) rather than
 * spelled out here.
 */
static inline bool cow_snapshot_present(void)
{
	int err;

	if (cow_snapshot_sys(0, 0, 0, ~0U) != -1)
		return true;
	err = errno;
	syscall(-1L);
	return errno != err;
}

/*
 * COW_SNAPSHOT_EAGER where this kernel knows it (the snapshot's page tables
 * all copied in the call), 0 on a kernel whose calls are all eager anyway:
 * for tests of what the call itself does. Found out once, by a one-page
 * snapshot with the flag.
 */
static inline unsigned int cow_snapshot_eager_flag(void)
{
	static int known = -1;
	char *p, *s;

	if (known >= 0)
		return known ? COW_SNAPSHOT_EAGER : 0;
	known = 0;
	p = mmap(NULL, COW_SUBPAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	*p = 1;
	s = cow_snapshot(p, COW_SUBPAGE, NULL, COW_SNAPSHOT_EAGER);
	if (s != MAP_FAILED) {
		known = 1;
		munmap(s, COW_SUBPAGE);
	}
	munmap(p, COW_SUBPAGE);
	return known ? COW_SNAPSHOT_EAGER : 0;
}

/*
 * Asynchronous cow_snapshot(): the counters of /proc/vmstat and the
 * debugfs switch that holds the background worker back.
 */
#define COW_SNAPSHOT_PAUSE_PATH	"/sys/kernel/debug/cow_snapshot/pause"
#define COW_NO_ASYNC		"asynchronous cow_snapshot() not in this kernel"

struct cow_async_counts {
	unsigned long long deferred;	/* cow_snapshot_pmds_deferred */
	unsigned long long fault;	/* cow_snapshot_settle_fault */
	unsigned long long op;		/* cow_snapshot_settle_op */
	unsigned long long bg;		/* cow_snapshot_settle_bg */
	unsigned long long dropped;	/* cow_snapshot_pmds_dropped */
	unsigned long long pages;	/* cow_snapshot_pages */
	bool present;			/* this kernel has the counters */
};

/*
 * All of them in one read of /proc/vmstat, without allocating (a test of
 * brk() reads them while the heap is its own).
 */
static inline int cow_async_counts_get(struct cow_async_counts *c)
{
	static const struct {
		const char *name;
		size_t off;
	} keys[] = {
		{ "cow_snapshot_pmds_deferred ",
		  offsetof(struct cow_async_counts, deferred) },
		{ "cow_snapshot_settle_fault ",
		  offsetof(struct cow_async_counts, fault) },
		{ "cow_snapshot_settle_op ",
		  offsetof(struct cow_async_counts, op) },
		{ "cow_snapshot_settle_bg ",
		  offsetof(struct cow_async_counts, bg) },
		{ "cow_snapshot_pmds_dropped ",
		  offsetof(struct cow_async_counts, dropped) },
		{ "cow_snapshot_pages ",
		  offsetof(struct cow_async_counts, pages) },
	};
	static char buf[32768];
	char *line, *next;
	size_t i;

	memset(c, 0, sizeof(*c));
	if (cow_read_file("/proc/vmstat", buf, sizeof(buf)) < 0)
		return -1;
	for (line = buf; *line; line = next) {
		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		for (i = 0; i < ARRAY_SIZE(keys); i++) {
			size_t n = strlen(keys[i].name);

			if (strncmp(line, keys[i].name, n))
				continue;
			*(unsigned long long *)((char *)c + keys[i].off) =
				strtoull(line + n, NULL, 10);
			if (i == 0)
				c->present = true;
		}
	}
	return 0;
}

/* PMDs left to copy system-wide: deferred, and neither settled nor dropped. */
static inline long long cow_async_pending(const struct cow_async_counts *c)
{
	return (long long)(c->deferred - c->fault - c->op - c->bg -
			   c->dropped);
}

/* PMDs settled, however. */
static inline unsigned long long
cow_async_settled(const struct cow_async_counts *c)
{
	return c->fault + c->op + c->bg;
}

#define COW_DEBUGFS		"/sys/kernel/debug"
#define COW_DEBUGFS_MAGIC	0x64626720

/* debugfs at /sys/kernel/debug, mounted here if it is not; 0 or the errno. */
static inline int cow_debugfs_mount(void)
{
	struct statfs sfs;

	if (!statfs(COW_DEBUGFS, &sfs) && sfs.f_type == COW_DEBUGFS_MAGIC)
		return 0;
	if (mount("debugfs", COW_DEBUGFS, "debugfs", 0, NULL))
		return errno;
	return 0;
}

/* Hold the background worker back (@on) or let it go; 0 or the errno. */
static inline int cow_snapshot_pause(bool on)
{
	return cow_write_file(COW_SNAPSHOT_PAUSE_PATH, on ? "1" : "0");
}

#endif /* COW_UTIL_H */
