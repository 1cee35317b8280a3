// SPDX-License-Identifier: GPL-2.0-only
/*
 * cow_snapshot(): every error of the interface.
 *
 * Each rejected call must leave everything as it was: the test reads
 * /proc/self/maps and the vmstat counter cow_snapshot_pages just before
 * and just after the call, and checks the data of the memory it set up.
 * Nothing between the two reads may allocate (a malloc() could grow the
 * heap, a new mapping would change the text): the files are read with
 * open()/read() into static buffers.
 *
 * The bad arguments and the mappings that cannot be snapshot are a table,
 * bad_call: one variant per call, with the errno it must fail with. The
 * errors that need a child (capabilities, resource limits, a full address
 * space) or a sysctl are tests of their own. The errors of
 * MADV_COW_UNSHARE are in unshare.c.
 *
 * Then a bounded run of random arguments: each call returns a snapshot
 * (its data is checked, then it is unmapped) or fails with one of the
 * errors the interface allows, and the one it must when the arguments
 * decide it. COW_FUZZ_SEED repeats a run.
 *
 * Every test skips on a kernel without the system call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <linux/mman.h>

#include "kselftest_harness.h"
#include "cow_util.h"

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE		0x08
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE	0x100000
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB		(21 << 26)
#endif

#define PAGE		COW_SUBPAGE
#define SRC_PAGES	8
#define GAP_PAGES	4
#define SEED		1
#define COUNTER		"cow_snapshot_pages"
#define KERNEL_ADDR	0xffff888000000000UL

#define VM_SYSCTL(name)	"/proc/sys/vm/" name

static inline unsigned long page_up(unsigned long len)
{
	return (len + PAGE - 1) & ~(PAGE - 1);
}

/*
 * Reading files without allocating: static buffers, open() and read().
 */
#define MAPS_MAX	(256 * 1024)
static char maps_before[MAPS_MAX], maps_after[MAPS_MAX];
static char file_buf[64 * 1024];

/*
 * The number after "@key" at the start of a line of @path ("cow_copy ",
 * "VmSize:"); -1 when absent.
 */
static long long file_value(const char *path, const char *key)
{
	size_t klen = strlen(key);
	char *p = file_buf;

	if (cow_read_file(path, file_buf, sizeof(file_buf)) < 0)
		return -1;
	while (p && *p) {
		if (!strncmp(p, key, klen))
			return strtoll(p + klen, NULL, 10);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

static long long read_vmstat(const char *name)
{
	char key[64];

	snprintf(key, sizeof(key), "%s ", name);
	return file_value("/proc/vmstat", key);
}

/* Memory a test set up, and the pattern it must still hold. */
struct watch {
	const char *p;
	size_t len;
	uint64_t seed;
};

static struct watch watched[8];
static int nr_watched;

static void watch(const void *p, size_t len, uint64_t seed)
{
	if (nr_watched < (int)ARRAY_SIZE(watched))
		watched[nr_watched++] = (struct watch){ p, len, seed };
}

/* Everything watched still holds its pattern; else say what, 1. */
static int watched_ok(const char *what)
{
	int i, bad = 0;

	for (i = 0; i < nr_watched; i++) {
		long sp = cow_check(watched[i].p, watched[i].len,
				    watched[i].seed);

		if (sp >= 0) {
			ksft_print_msg("%s: %p: sub-page %ld changed\n", what,
				       watched[i].p, sp);
			bad = 1;
		}
	}
	return bad;
}

/*
 * The checks around a call: maps, the counter, the watched data. @ret
 * and @err are the call's result; @want_ret what it must return, with
 * errno @want when that is -1. 0 when all is as it must be; else says
 * what is not and returns 1. Usable in a forked child.
 */
static int check_call(const char *what, long ret, int err, long want_ret,
		      int want, ssize_t n0, ssize_t n1, long long v0,
		      long long v1)
{
	int bad = 0;

	if (ret != want_ret || (want_ret == -1 && err != want)) {
		ksft_print_msg("%s: returned %#lx, errno %d (%s); want %ld, %s\n",
			       what, ret, ret == -1 ? err : 0,
			       ret == -1 ? strerror(err) : "-",
			       want_ret, strerror(want));
		bad = 1;
	}
	if (n0 < 0 || n1 < 0) {
		ksft_print_msg("%s: cannot read /proc/self/maps\n", what);
		bad = 1;
	} else if (n0 != n1 || memcmp(maps_before, maps_after, n0)) {
		cow_maps_diff(what, maps_before, maps_after);
		bad = 1;
	}
	if (v0 != v1) {
		ksft_print_msg("%s: %s went from %lld to %lld\n", what,
			       COUNTER, v0, v1);
		bad = 1;
	}
	return watched_ok(what) | bad;
}

/*
 * cow_snapshot() must fail with @want and change nothing. 0 when so;
 * else says what happened and returns 1. Usable in a forked child.
 */
static int reject(const char *what, unsigned long start, size_t len,
		  unsigned long dst, unsigned int flags, int want)
{
	long long v0, v1;
	ssize_t n0, n1;
	long ret;
	int err;

	v0 = read_vmstat(COUNTER);
	n0 = cow_read_file("/proc/self/maps", maps_before, MAPS_MAX);
	errno = 0;
	ret = cow_snapshot_sys(start, len, dst, flags);
	err = errno;
	n1 = cow_read_file("/proc/self/maps", maps_after, MAPS_MAX);
	v1 = read_vmstat(COUNTER);
	if (ret != -1 && !(ret & (PAGE - 1)))
		munmap((void *)ret, page_up(len));
	return check_call(what, ret, err, -1, want, n0, n1, v0, v1);
}

/* Run @fn(@arg) in a child; its exit code, -1 when it did not exit. */
static int in_child(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(fn(arg));
	}
	if (pid < 0)
		return -1;
	return cow_wait_exit(pid);
}

/* The highest user address + 1: 47 bits, or 56 with 5-level paging. */
static unsigned long task_size(void)
{
	void *p = mmap((void *)(1UL << 47), PAGE, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		       -1, 0);

	if (p == MAP_FAILED)
		return (1UL << 47) - PAGE;
	munmap(p, PAGE);
	return (1UL << 56) - PAGE;
}

/* A free address range of @len: mapped, then unmapped. */
static unsigned long free_area(size_t len)
{
	void *p = mmap(NULL, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return 0;
	munmap(p, len);
	return (unsigned long)p;
}

/* The start and end of the /proc/self/maps line that ends in @name. */
static int find_mapping(const char *name, unsigned long *start,
			unsigned long *end)
{
	size_t nlen = strlen(name);
	char line[512];
	int ret = -1;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return -1;
	while (ret && fgets(line, sizeof(line), f)) {
		size_t l = strcspn(line, "\n");

		if (l >= nlen && !strncmp(line + l - nlen, name, nlen) &&
		    sscanf(line, "%lx-%lx", start, end) == 2)
			ret = 0;
	}
	fclose(f);
	return ret;
}

/* A private file mapping of this program (its text or data). */
static int find_file_private(unsigned long *start, unsigned long *end)
{
	char line[512], perms[5];
	int ret = -1, at = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	if (!f)
		return -1;
	while (ret && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", start, end,
			   perms, &at) == 3 && at && line[at] == '/' &&
		    perms[0] == 'r' && perms[3] == 'p')
			ret = 0;
	}
	fclose(f);
	return ret;
}

/* Drop @cap from the effective set. */
static int drop_cap(int cap)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -1;
	d[cap / 32].effective &= ~(1U << (cap % 32));
	return syscall(SYS_capset, &h, d);
}

/*
 * SRC_PAGES of private anonymous memory holding the pattern, with
 * GAP_PAGES unmapped on both sides (at set-up: a later mmap() may fill
 * them).
 */
static void map_source(struct __test_metadata *_metadata, char **src,
		       size_t *len)
{
	char *r;

	ASSERT_GE(read_vmstat(COUNTER), 0) TH_LOG("no %s in /proc/vmstat", COUNTER);
	*len = SRC_PAGES * PAGE;
	r = mmap(NULL, *len + 2 * GAP_PAGES * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(r, MAP_FAILED);
	ASSERT_EQ(munmap(r, GAP_PAGES * PAGE), 0);
	ASSERT_EQ(munmap(r + GAP_PAGES * PAGE + *len, GAP_PAGES * PAGE), 0);
	*src = r + GAP_PAGES * PAGE;
	cow_fill(*src, *len, SEED);
	watch(*src, *len, SEED);
}

/* A mapping to snapshot that must be refused as a whole. */
static char *map_filled(int flags, int fd, size_t len, uint64_t seed)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (p == MAP_FAILED)
		return NULL;
	cow_fill(p, len, seed);
	watch(p, len, seed);
	return p;
}

static int memfd(size_t len)
{
	int fd = memfd_create("cow_snapshot_errors", MFD_CLOEXEC);

	if (fd >= 0 && ftruncate(fd, len)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* A filled, watched 2 MiB hugetlb page; NULL (errno set) without one. */
static char *map_hugetlb_2m(uint64_t seed)
{
	size_t len = 2UL << 20;
	char *p;

	if (cow_hugetlb_free(2048) < 1) {
		errno = ENOSPC;
		return NULL;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1,
		 0);
	if (p == MAP_FAILED)
		return NULL;
	cow_fill(p, len, seed);
	watch(p, len, seed);
	return p;
}

/*
 * bad_call: one call of cow_snapshot() per variant, which must fail with
 * the variant's errno and change nothing.
 *
 * What the call's start points into. Most rows use the SRC_PAGES of
 * private anonymous memory (ANON); the others set up a mapping that
 * cannot be snapshot, as a whole or in the middle.
 */
enum source {
	ANON,			/* the SRC_PAGES, with GAP_PAGES free around */
	ANON_HOLE,		/* ... page 3 unmapped */
	ANON_DONTFORK,		/* ... MADV_DONTFORK */
	ANON_DONTFORK_MIDDLE,	/* ... pages 3 and 4 MADV_DONTFORK */
	ANON_SHARED_MIDDLE,	/* ... pages 3 and 4 MAP_SHARED */
	SHARED_THEN_HOLE,	/* ... pages 0-3 MAP_SHARED, page 4 unmapped */
	SHARED_ANON,		/* MAP_SHARED | MAP_ANONYMOUS */
	MEMFD_PRIVATE,		/* a memfd, MAP_PRIVATE */
	MEMFD_SHARED,		/* a memfd, MAP_SHARED */
	DEV_ZERO_PRIVATE,	/* /dev/zero, MAP_PRIVATE: anonymous, with a file */
	FILE_PRIVATE,		/* this program's own file mapping */
	HUGETLB_PRIVATE,	/* a 2 MiB hugetlb page, MAP_PRIVATE */
	DROPPABLE,		/* MAP_DROPPABLE */
	VDSO,			/* [vdso] */
	VVAR,			/* [vvar] (VM_PFNMAP) */
};

/* Where start and dst are: this, plus the row's offset. */
enum where {
	AT_ZERO,	/* 0: the offset is the address (dst: 0, no dst) */
	AT_SOURCE,	/* the source's first page */
	AT_TASK_SIZE,	/* the top of the user address space */
	AT_FREE,	/* a free range, twice the source's length */
	AT_BUSY,	/* another mapping, four times the source's length */
	AT_PARTLY_BUSY,	/* a free range of the source's length but its last page */
};

/* What len is: */
enum len_from {
	LEN_SOURCE,	/* the source's length, plus the row's len */
	LEN_ABS,	/* the row's len */
	LEN_TO_ZERO,	/* from start to the address len (mod 2^64) */
	LEN_TO_TASK_SIZE, /* from start to TASK_SIZE + len */
};

/* What a row's source, start and dst refer to. */
struct bad_call_maps {
	char *src;		/* the SRC_PAGES */
	size_t len;
	char *map;		/* the source when it is not ANON */
	size_t map_len;
	char *busy, *partly;	/* what AT_BUSY and AT_PARTLY_BUSY map */
};

FIXTURE(bad_call) {
	struct bad_call_maps m;
	unsigned long start, dst;
	size_t call_len;
};

FIXTURE_VARIANT(bad_call) {
	enum source source;
	enum where start;
	unsigned long offset;
	enum len_from len_from;
	unsigned long len;
	enum where dst;
	unsigned long dst_offset;
	unsigned int flags;
	int err;
};

/* Flags other than COW_SNAPSHOT_FIXED and COW_SNAPSHOT_EAGER. */
FIXTURE_VARIANT_ADD(bad_call, flags_bit_2) {
	.start = AT_SOURCE, .flags = 0x4, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, flags_bit_31) {
	.start = AT_SOURCE, .flags = 1U << 31, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, flags_all_bits) {
	.start = AT_SOURCE, .flags = ~0U, .err = EINVAL,
};

/* FIXED with an unknown bit, to a free dst: would succeed without it. */
FIXTURE_VARIANT_ADD(bad_call, flags_fixed_and_unknown_bit) {
	.start = AT_SOURCE, .dst = AT_FREE,
	.flags = COW_SNAPSHOT_FIXED | 0x4, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, start_unaligned) {
	.start = AT_SOURCE, .offset = 1, .len = -PAGE, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, start_unaligned_2048) {
	.start = AT_SOURCE, .offset = 2048, .len_from = LEN_ABS, .len = PAGE,
	.err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, len_zero) {
	.start = AT_SOURCE, .len_from = LEN_ABS, .len = 0, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, len_zero_fixed) {
	.start = AT_SOURCE, .len_from = LEN_ABS, .len = 0, .dst = AT_FREE,
	.flags = COW_SNAPSHOT_FIXED, .err = EINVAL,
};

/* len -4096: start + len wraps around. */
FIXTURE_VARIANT_ADD(bad_call, len_overflow) {
	.start = AT_SOURCE, .len_from = LEN_ABS, .len = -PAGE, .err = EINVAL,
};

/* len ULONG_MAX: rounding it up to a page overflows. */
FIXTURE_VARIANT_ADD(bad_call, len_rounding_overflows) {
	.start = AT_SOURCE, .len_from = LEN_ABS, .len = ~0UL, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, len_rounding_overflows_4094) {
	.start = AT_SOURCE, .len_from = LEN_ABS, .len = ~0UL - (PAGE - 2),
	.err = EINVAL,
};

/* start + len just past the top of the address space, to page 1... */
FIXTURE_VARIANT_ADD(bad_call, start_plus_len_wraps) {
	.start = AT_SOURCE, .len_from = LEN_TO_ZERO, .len = PAGE,
	.err = EINVAL,
};

/* ... and to 0. */
FIXTURE_VARIANT_ADD(bad_call, start_plus_len_wraps_to_zero) {
	.start = AT_SOURCE, .len_from = LEN_TO_ZERO, .len = 0, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, start_kernel_address) {
	.start = AT_ZERO, .offset = KERNEL_ADDR, .len_from = LEN_ABS,
	.len = PAGE, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, start_kernel_text) {
	.start = AT_ZERO, .offset = 0xffffffff81000000UL, .len_from = LEN_ABS,
	.len = PAGE, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, start_top_page) {
	.start = AT_ZERO, .offset = -PAGE, .len_from = LEN_ABS, .len = PAGE,
	.err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, start_at_task_size) {
	.start = AT_TASK_SIZE, .len_from = LEN_ABS, .len = PAGE,
	.err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, start_at_1_shl_47) {
	.start = AT_ZERO, .offset = 1L << 47, .len_from = LEN_ABS, .len = PAGE,
	.err = EINVAL,
};

/* Below TASK_SIZE, but the range crosses it: EINVAL before ENOMEM. */
FIXTURE_VARIANT_ADD(bad_call, range_crosses_task_size) {
	.start = AT_TASK_SIZE, .offset = -PAGE, .len_from = LEN_ABS,
	.len = 2 * PAGE, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, range_from_source_crosses_task_size) {
	.start = AT_SOURCE, .len_from = LEN_TO_TASK_SIZE, .len = PAGE,
	.err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, fixed_dst_unaligned) {
	.start = AT_SOURCE, .dst = AT_FREE, .dst_offset = 1,
	.flags = COW_SNAPSHOT_FIXED, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, fixed_dst_unaligned_2048) {
	.start = AT_SOURCE, .dst = AT_FREE, .dst_offset = 2048,
	.flags = COW_SNAPSHOT_FIXED, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, fixed_dst_kernel_address) {
	.start = AT_SOURCE, .dst = AT_ZERO, .dst_offset = KERNEL_ADDR,
	.flags = COW_SNAPSHOT_FIXED, .err = EINVAL,
};

/* The source's length below 2^64. */
FIXTURE_VARIANT_ADD(bad_call, fixed_dst_top_pages) {
	.start = AT_SOURCE, .dst = AT_ZERO, .dst_offset = -SRC_PAGES * PAGE,
	.flags = COW_SNAPSHOT_FIXED, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, fixed_dst_crosses_task_size) {
	.start = AT_SOURCE, .len_from = LEN_ABS, .len = 2 * PAGE,
	.dst = AT_TASK_SIZE, .dst_offset = -PAGE,
	.flags = COW_SNAPSHOT_FIXED, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, fixed_dst_at_task_size) {
	.start = AT_SOURCE, .len_from = LEN_ABS, .len = PAGE,
	.dst = AT_TASK_SIZE, .flags = COW_SNAPSHOT_FIXED, .err = EINVAL,
};

/* dst over the source: EINVAL, checked before EEXIST. */
FIXTURE_VARIANT_ADD(bad_call, fixed_dst_is_start) {
	.start = AT_SOURCE, .dst = AT_SOURCE, .flags = COW_SNAPSHOT_FIXED,
	.err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, fixed_dst_overlaps_source_start) {
	.start = AT_SOURCE, .dst = AT_SOURCE, .dst_offset = -PAGE,
	.flags = COW_SNAPSHOT_FIXED, .err = EINVAL,
};

/* dst = start - len + 4096 */
FIXTURE_VARIANT_ADD(bad_call, fixed_dst_overlaps_source_first_page) {
	.start = AT_SOURCE, .dst = AT_SOURCE,
	.dst_offset = -(SRC_PAGES - 1) * PAGE,
	.flags = COW_SNAPSHOT_FIXED, .err = EINVAL,
};

/* dst = end - 4096 */
FIXTURE_VARIANT_ADD(bad_call, fixed_dst_overlaps_source_end) {
	.start = AT_SOURCE, .dst = AT_SOURCE,
	.dst_offset = (SRC_PAGES - 1) * PAGE,
	.flags = COW_SNAPSHOT_FIXED, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, fixed_dst_overlaps_source_second_page) {
	.start = AT_SOURCE, .dst = AT_SOURCE, .dst_offset = PAGE,
	.flags = COW_SNAPSHOT_FIXED, .err = EINVAL,
};

/* FIXED never replaces: dst on another mapping... */
FIXTURE_VARIANT_ADD(bad_call, fixed_dst_on_mapping) {
	.start = AT_SOURCE, .dst = AT_BUSY, .flags = COW_SNAPSHOT_FIXED,
	.err = EEXIST,
};

/* ... inside one... */
FIXTURE_VARIANT_ADD(bad_call, fixed_dst_inside_mapping) {
	.start = AT_SOURCE, .len_from = LEN_ABS, .len = PAGE, .dst = AT_BUSY,
	.dst_offset = 3 * PAGE, .flags = COW_SNAPSHOT_FIXED, .err = EEXIST,
};

/* ... or free but for its last page. */
FIXTURE_VARIANT_ADD(bad_call, fixed_dst_partly_on_mapping) {
	.start = AT_SOURCE, .dst = AT_PARTLY_BUSY,
	.flags = COW_SNAPSHOT_FIXED, .err = EEXIST,
};

FIXTURE_VARIANT_ADD(bad_call, start_unmapped) {
	.start = AT_FREE, .err = ENOMEM,
};

/* Unmapped start, mapped after it. */
FIXTURE_VARIANT_ADD(bad_call, start_in_gap_before) {
	.start = AT_SOURCE, .offset = -2 * PAGE, .len_from = LEN_ABS,
	.len = 4 * PAGE, .err = ENOMEM,
};

FIXTURE_VARIANT_ADD(bad_call, hole_in_middle) {
	.source = ANON_HOLE, .start = AT_SOURCE, .err = ENOMEM,
};

FIXTURE_VARIANT_ADD(bad_call, hole_in_middle_fixed) {
	.source = ANON_HOLE, .start = AT_SOURCE, .dst = AT_FREE,
	.flags = COW_SNAPSHOT_FIXED, .err = ENOMEM,
};

FIXTURE_VARIANT_ADD(bad_call, range_past_vma_end) {
	.start = AT_SOURCE, .len = PAGE, .err = ENOMEM,
};

FIXTURE_VARIANT_ADD(bad_call, range_from_middle_past_vma_end) {
	.start = AT_SOURCE, .offset = 4 * PAGE, .err = ENOMEM,
};

/* Mappings that are no private anonymous memory. */
FIXTURE_VARIANT_ADD(bad_call, map_shared_anonymous) {
	.source = SHARED_ANON, .start = AT_SOURCE, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, memfd_private) {
	.source = MEMFD_PRIVATE, .start = AT_SOURCE, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, memfd_shared) {
	.source = MEMFD_SHARED, .start = AT_SOURCE, .err = EINVAL,
};

/*
 * MAP_PRIVATE of /dev/zero is anonymous memory with a file attached: it is
 * refused with the file mappings. (A snapshot of it once took no
 * reference on the file: unmapping both sides freed it twice.)
 */
FIXTURE_VARIANT_ADD(bad_call, dev_zero_private) {
	.source = DEV_ZERO_PRIVATE, .start = AT_SOURCE, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, file_private) {
	.source = FILE_PRIVATE, .start = AT_SOURCE, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, hugetlb_private) {
	.source = HUGETLB_PRIVATE, .start = AT_SOURCE, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, madv_dontfork) {
	.source = ANON_DONTFORK, .start = AT_SOURCE, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, madv_dontfork_fixed) {
	.source = ANON_DONTFORK, .start = AT_SOURCE, .dst = AT_FREE,
	.flags = COW_SNAPSHOT_FIXED, .err = EINVAL,
};

/*
 * Private, shared, private: nothing is created, not even for the
 * first VMA.
 */
FIXTURE_VARIANT_ADD(bad_call, multi_vma_middle_shared) {
	.source = ANON_SHARED_MIDDLE, .start = AT_SOURCE, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, multi_vma_middle_shared_fixed) {
	.source = ANON_SHARED_MIDDLE, .start = AT_SOURCE, .dst = AT_FREE,
	.flags = COW_SNAPSHOT_FIXED, .err = EINVAL,
};

/* Private, DONTFORK, private. */
FIXTURE_VARIANT_ADD(bad_call, multi_vma_middle_dontfork) {
	.source = ANON_DONTFORK_MIDDLE, .start = AT_SOURCE, .err = EINVAL,
};

/* Order: a hole wins over a VMA of the wrong type. */
FIXTURE_VARIANT_ADD(bad_call, order_hole_before_type) {
	.source = SHARED_THEN_HOLE, .start = AT_SOURCE, .err = ENOMEM,
};

/*
 * Order: the source's type and holes win over a busy FIXED dst. (The
 * busy mapping is four times the source: dst may not overlap the source
 * even when it lands right below it.)
 */
FIXTURE_VARIANT_ADD(bad_call, order_type_before_eexist) {
	.source = SHARED_ANON, .start = AT_SOURCE, .dst = AT_BUSY,
	.flags = COW_SNAPSHOT_FIXED, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, order_hole_before_eexist) {
	.start = AT_SOURCE, .len = PAGE, .dst = AT_BUSY,
	.flags = COW_SNAPSHOT_FIXED, .err = ENOMEM,
};

/* Special mappings. */
FIXTURE_VARIANT_ADD(bad_call, vdso) {
	.source = VDSO, .start = AT_SOURCE, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, vdso_first_page) {
	.source = VDSO, .start = AT_SOURCE, .len_from = LEN_ABS, .len = PAGE,
	.err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, vvar) {
	.source = VVAR, .start = AT_SOURCE, .err = EINVAL,
};

FIXTURE_VARIANT_ADD(bad_call, map_droppable) {
	.source = DROPPABLE, .start = AT_SOURCE, .err = EINVAL,
};

/*
 * Set up the variant's source in place of (or in) the SRC_PAGES; a reason
 * to skip, or NULL.
 */
static const char *setup_source(struct __test_metadata *_metadata,
				struct bad_call_maps *m,
				enum source source)
{
	unsigned long start, end;
	char *mid = m->src + 3 * PAGE;
	int fd;

	m->map = m->src;
	m->map_len = m->len;
	switch (source) {
	case ANON:
		break;
	case ANON_HOLE:
		ASSERT_EQ(munmap(m->src + 3 * PAGE, PAGE), 0);
		nr_watched = 0;
		watch(m->src, 3 * PAGE, SEED);
		break;
	case ANON_DONTFORK:
		ASSERT_EQ(madvise(m->src, m->len, MADV_DONTFORK), 0);
		break;
	case ANON_DONTFORK_MIDDLE:
		ASSERT_EQ(madvise(mid, 2 * PAGE, MADV_DONTFORK), 0);
		break;
	case ANON_SHARED_MIDDLE:
		ASSERT_EQ(mmap(mid, 2 * PAGE, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
			  mid);
		nr_watched = 0;
		watch(m->src, 3 * PAGE, SEED);
		cow_fill(mid, 2 * PAGE, 11);
		watch(mid, 2 * PAGE, 11);
		break;
	case SHARED_THEN_HOLE:
		ASSERT_EQ(mmap(m->src, 4 * PAGE, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
			  m->src);
		ASSERT_EQ(munmap(m->src + 4 * PAGE, PAGE), 0);
		nr_watched = 0;
		cow_fill(m->src, 4 * PAGE, 12);
		watch(m->src, 4 * PAGE, 12);
		break;
	case SHARED_ANON:
		m->map = map_filled(MAP_SHARED | MAP_ANONYMOUS, -1,
				    m->len, 7);
		ASSERT_NE(m->map, NULL);
		break;
	case MEMFD_PRIVATE:
	case MEMFD_SHARED:
		fd = memfd(m->len);
		ASSERT_GE(fd, 0);
		m->map = map_filled(source == MEMFD_SHARED ? MAP_SHARED :
				       MAP_PRIVATE, fd, m->len, 8);
		close(fd);
		ASSERT_NE(m->map, NULL);
		break;
	case DEV_ZERO_PRIVATE:
		fd = open("/dev/zero", O_RDWR);
		if (fd < 0)
			return "/dev/zero cannot be opened";
		m->map = map_filled(MAP_PRIVATE, fd, m->len, 10);
		close(fd);
		ASSERT_NE(m->map, NULL);
		break;
	case FILE_PRIVATE:
		if (find_file_private(&start, &end))
			return "no private file mapping in /proc/self/maps";
		m->map = (char *)start;
		m->map_len = end - start;
		break;
	case HUGETLB_PRIVATE:
		m->map_len = 2UL << 20;
		m->map = map_hugetlb_2m(10);
		if (!m->map)
			return "no 2 MiB hugetlb page";
		break;
	case DROPPABLE:
		m->map = mmap(NULL, m->len, PROT_READ | PROT_WRITE,
			      MAP_DROPPABLE | MAP_ANONYMOUS, -1, 0);
		if (m->map == MAP_FAILED && errno == EINVAL)
			return "MAP_DROPPABLE not supported";
		ASSERT_NE(m->map, MAP_FAILED);
		/* Not watched: the kernel may drop its pages. */
		memset(m->map, 1, m->len);
		break;
	case VDSO:
	case VVAR:
		if (find_mapping(source == VDSO ? "[vdso]" : "[vvar]", &start,
				 &end))
			return "no such special mapping in /proc/self/maps";
		m->map = (char *)start;
		m->map_len = end - start;
		break;
	}
	return NULL;
}

/* The address a row's start or dst names. */
static unsigned long where(struct bad_call_maps *m, enum where w,
			   unsigned long offset)
{
	unsigned long base = 0;

	switch (w) {
	case AT_ZERO:
		break;
	case AT_SOURCE:
		base = (unsigned long)m->map;
		break;
	case AT_TASK_SIZE:
		base = task_size();
		break;
	case AT_FREE:
		base = free_area(2 * m->map_len);
		break;
	case AT_BUSY:
		base = (unsigned long)m->busy;
		break;
	case AT_PARTLY_BUSY:
		base = (unsigned long)m->partly;
		break;
	}
	return base + offset;
}

FIXTURE_SETUP(bad_call)
{
	const char *skip;

	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	map_source(_metadata, &self->m.src, &self->m.len);
	skip = setup_source(_metadata, &self->m, variant->source);
	if (skip)
		SKIP(return, "%s", skip);
	if (variant->dst == AT_BUSY) {
		self->m.busy = mmap(NULL, 4 * self->m.map_len,
				    PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(self->m.busy, MAP_FAILED);
		cow_fill(self->m.busy, 4 * self->m.map_len, SEED + 1);
		watch(self->m.busy, 4 * self->m.map_len, SEED + 1);
	}
	if (variant->dst == AT_PARTLY_BUSY) {
		self->m.partly = mmap(NULL, self->m.map_len,
				      PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(self->m.partly, MAP_FAILED);
		ASSERT_EQ(munmap(self->m.partly, self->m.map_len - PAGE), 0);
		cow_fill(self->m.partly + self->m.map_len - PAGE, PAGE, SEED + 2);
		watch(self->m.partly + self->m.map_len - PAGE, PAGE, SEED + 2);
	}

	self->start = where(&self->m, variant->start, variant->offset);
	self->dst = where(&self->m, variant->dst, variant->dst_offset);
	switch (variant->len_from) {
	case LEN_SOURCE:
		self->call_len = self->m.map_len + variant->len;
		break;
	case LEN_ABS:
		self->call_len = variant->len;
		break;
	case LEN_TO_ZERO:
		self->call_len = variant->len - self->start;
		break;
	case LEN_TO_TASK_SIZE:
		self->call_len = task_size() + variant->len - self->start;
		break;
	}
	ASSERT_TRUE(variant->start != AT_FREE || self->start);
	ASSERT_TRUE(variant->dst != AT_FREE || self->dst);
}

FIXTURE_TEARDOWN(bad_call)
{
	/* The process ends with the test: nothing else to unmap. */
	if (self->m.src)
		munmap(self->m.src, self->m.len);
}

TEST_F(bad_call, rejected)
{
	char what[160];

	snprintf(what, sizeof(what),
		 "cow_snapshot(%#lx, %#zx, %#lx, %#x), want %s",
		 self->start, self->call_len, self->dst, variant->flags,
		 strerror(variant->err));
	EXPECT_EQ(reject(what, self->start, self->call_len, self->dst,
			 variant->flags, variant->err), 0);
}

/*
 * The errors that need a process of their own: SRC_PAGES as for
 * bad_call's ANON.
 */
FIXTURE(err) {
	char *src;
	size_t len;
};

FIXTURE_SETUP(err)
{
	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	map_source(_metadata, &self->src, &self->len);
}

FIXTURE_TEARDOWN(err)
{
	if (self->src)
		munmap(self->src, self->len);
}

#define SRC	((unsigned long)self->src)

struct low_dst {
	unsigned long src, dst;
};

static int no_rawio_child(void *p)
{
	struct low_dst *a = p;

	if (drop_cap(CAP_SYS_RAWIO)) {
		ksft_print_msg("capset: %s\n", strerror(errno));
		return 3;
	}
	return reject("dst below mmap_min_addr", a->src, PAGE, a->dst,
		      COW_SNAPSHOT_FIXED, EPERM);
}

/*
 * FIXED dst below vm.mmap_min_addr: EPERM without CAP_SYS_RAWIO (dropped
 * in a child); allowed with it, as for mmap().
 */
TEST_F(err, fixed_dst_below_mmap_min_addr)
{
	unsigned long min = cow_read_ulong(VM_SYSCTL("mmap_min_addr"));
	struct low_dst a = { SRC, 0 };
	long s;

	if (min < PAGE)
		SKIP(return, "vm.mmap_min_addr is %lu: nothing below it", min);
	a.dst = (min - 1) & ~(PAGE - 1);
	EXPECT_EQ(in_child(no_rawio_child, &a), 0);

	s = cow_snapshot_sys(SRC, PAGE, a.dst, COW_SNAPSHOT_FIXED);
	EXPECT_EQ(s, (long)a.dst)
		TH_LOG("with CAP_SYS_RAWIO: %s", strerror(errno));
	if (s != -1)
		munmap((void *)s, PAGE);
}

/*
 * Resource limits, in a child: set the limit one page short of what the
 * snapshot needs (ENOMEM, nothing changed), then exactly to it (works).
 */
struct limit_arg {
	int resource;
	const char *field;	/* its usage in /proc/self/status */
	unsigned long src;
	size_t len;
};

static int limit_child(void *p)
{
	struct limit_arg *a = p;
	struct rlimit rl;
	long long kb;
	long s;

	if (getrlimit(a->resource, &rl))
		return 3;
	kb = file_value("/proc/self/status", a->field);
	if (kb < 0)
		return 3;
	rl.rlim_cur = kb * 1024 + a->len - PAGE;
	if (setrlimit(a->resource, &rl))
		return 3;
	if (reject(a->field, a->src, a->len, 0, 0, ENOMEM))
		return 1;

	kb = file_value("/proc/self/status", a->field);
	rl.rlim_cur = kb * 1024 + a->len;
	if (setrlimit(a->resource, &rl))
		return 3;
	s = cow_snapshot_sys(a->src, a->len, 0, 0);
	if (s == -1) {
		ksft_print_msg("%s: limit exactly enough: %s\n", a->field,
			       strerror(errno));
		return 2;
	}
	return 0;
}

TEST_F(err, rlimit_as_one_page_short)
{
	struct limit_arg a = { RLIMIT_AS, "VmSize:", SRC, self->len };

	EXPECT_EQ(in_child(limit_child, &a), 0)
		TH_LOG("1: not refused, 2: refused at the limit");
}

TEST_F(err, rlimit_data_one_page_short)
{
	struct limit_arg a = { RLIMIT_DATA, "VmData:", SRC, self->len };

	EXPECT_EQ(in_child(limit_child, &a), 0)
		TH_LOG("1: not refused, 2: refused at the limit");
}

/*
 * No free range for a kernel-chosen dst: fill the address space with
 * PROT_NONE mappings (no memory, no commit), in a child.
 */
static int no_room_child(void *p)
{
	const size_t len = 1UL << 30;
	unsigned long src;
	size_t size;
	int n = 0;

	(void)p;
	src = (unsigned long)mmap(NULL, len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				  -1, 0);
	if (src == (unsigned long)MAP_FAILED)
		return 3;
	for (size = 1UL << 46; size >= len; size >>= 1)
		while (n < 10000 &&
		       mmap(NULL, size, PROT_NONE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
			    0) != MAP_FAILED)
			n++;
	if (mmap(NULL, len, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) !=
	    MAP_FAILED) {
		ksft_print_msg("could not fill the address space\n");
		return 3;
	}
	return reject("no free 1 GiB range", src, len, 0, 0, ENOMEM);
}

TEST_F(err, no_free_range)
{
	EXPECT_EQ(in_child(no_room_child, NULL), 0);
}

/*
 * System-wide limits: vm.max_map_count and overcommit. The sysctls are
 * saved at set-up and restored by the parent at teardown, whatever
 * happened to the test; the tests also restore them as soon as the call
 * is made.
 */
#define MAX_MAP_COUNT	VM_SYSCTL("max_map_count")
#define OC_MEMORY	VM_SYSCTL("overcommit_memory")
#define OC_RATIO	VM_SYSCTL("overcommit_ratio")
#define OC_KBYTES	VM_SYSCTL("overcommit_kbytes")

/* The sysctls as found, to be put back. */
struct sysctls {
	char max_map_count[32];
	char oc_memory[32], oc_ratio[32], oc_kbytes[32];
};

FIXTURE(err_sysctl) {
	struct sysctls saved;
	char *src;
	size_t len;
};

FIXTURE_SETUP(err_sysctl)
{
	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	ASSERT_EQ(cow_read_line(MAX_MAP_COUNT, self->saved.max_map_count,
				sizeof(self->saved.max_map_count)), 0);
	ASSERT_EQ(cow_read_line(OC_MEMORY, self->saved.oc_memory,
				sizeof(self->saved.oc_memory)), 0);
	ASSERT_EQ(cow_read_line(OC_RATIO, self->saved.oc_ratio,
				sizeof(self->saved.oc_ratio)), 0);
	ASSERT_EQ(cow_read_line(OC_KBYTES, self->saved.oc_kbytes,
				sizeof(self->saved.oc_kbytes)), 0);
	map_source(_metadata, &self->src, &self->len);
}

static void restore_sysctls(const struct sysctls *saved)
{
	if (saved->max_map_count[0])
		cow_write_file(MAX_MAP_COUNT, saved->max_map_count);
	if (saved->oc_memory[0])
		cow_write_file(OC_MEMORY, saved->oc_memory);
	/* Writing either of ratio and kbytes zeroes the other. */
	if (saved->oc_kbytes[0] && strcmp(saved->oc_kbytes, "0"))
		cow_write_file(OC_KBYTES, saved->oc_kbytes);
	else if (saved->oc_ratio[0])
		cow_write_file(OC_RATIO, saved->oc_ratio);
}

FIXTURE_TEARDOWN_PARENT(err_sysctl)
{
	restore_sysctls(&self->saved);
}

/* The VMAs of this process, as mm->map_count counts them. */
static int vma_count(void)
{
	return cow_vma_count(maps_before, MAPS_MAX);
}

/* vm.max_map_count at the current count: one more VMA is too many. */
TEST_F(err_sysctl, max_map_count_reached)
{
	char val[32];
	int n, bad;

	n = vma_count();
	ASSERT_GT(n, 0);
	snprintf(val, sizeof(val), "%d", n);
	ASSERT_EQ(cow_write_file(MAX_MAP_COUNT, val), 0);
	bad = reject("max_map_count reached", SRC, self->len, 0, 0, ENOMEM);
	cow_write_file(MAX_MAP_COUNT, self->saved.max_map_count);
	EXPECT_EQ(bad, 0) TH_LOG("vm.max_map_count = %d", n);
}

/*
 * vm.overcommit_memory=2 with a tiny commit limit. Swap still counts in
 * the limit, so the source is made big enough to fit once but not twice.
 */
TEST_F(err_sysctl, overcommit_refused)
{
	char stack[64 * 1024];
	long long limit, committed;
	size_t i, len = self->len;
	unsigned long src = SRC;
	int bad;
	long s;

	/* Stack growth is accounted too: grow it now. */
	for (i = 0; i < sizeof(stack); i += PAGE / 2)
		stack[i] = 0;
	/* Keep the stores: the compiler must assume @stack is read. */
	asm volatile("" : : "r" (stack) : "memory");
	ASSERT_EQ(cow_write_file(OC_KBYTES, "1"), 0);
	ASSERT_EQ(cow_write_file(OC_MEMORY, "2"), 0);
	limit = file_value("/proc/meminfo", "CommitLimit:");
	committed = file_value("/proc/meminfo", "Committed_AS:");
	if (committed + (long long)(len / 1024) <= limit) {
		/* Three fifths of the headroom: fits once, not twice. */
		len = (size_t)(limit - committed) * 1024 / 5 * 3;
		len &= ~(size_t)(PAGE - 1);
		src = (unsigned long)mmap(NULL, len, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (src == (unsigned long)MAP_FAILED) {
			restore_sysctls(&self->saved);
			SKIP(return, "no %zu kB source under the limit: %s",
			     len / 1024, strerror(errno));
		}
		memset((void *)src, 0x5a, PAGE);
	}
	bad = reject("overcommit refused", src, len, 0, 0, ENOMEM);
	restore_sysctls(&self->saved);
	EXPECT_EQ(bad, 0);
	if (src != SRC)
		EXPECT_EQ(((char *)src)[PAGE - 1], 0x5a);

	/* And accepted again once the policy is back. */
	s = cow_snapshot_sys(src, len, 0, 0);
	EXPECT_NE(s, -1) TH_LOG("after restoring: %s", strerror(errno));
	if (s != -1)
		munmap((void *)s, len);
	if (src != SRC)
		munmap((void *)src, len);
}

/*
 * Random arguments. A reserve of FZ_PAGES pages holds a few pools, with
 * unmapped gaps between them and FZ_FREE free pages for FIXED dsts.
 * Inside the reserve the result is known; outside it, any result the
 * interface allows is accepted.
 */
#define FZ_CALLS	100000
#define FZ_SECONDS	100
#define FZ_PAGES	160
#define FZ_FREE_OFF	64
#define FZ_FREE		64
#define FZ_REPORTS	10
/* A call that went wrong, as reported; want: the errno, -1 for any. */
#define FZ_REPORT_FMT	"cow_snapshot(%#lx, %#zx, %#lx, %#x) = %#lx errno %d, want %d%s\n"

struct fz_pool {
	size_t off, pages;
	bool shared;
	uint64_t seed;	/* 0: never touched */
};

static const struct fz_pool fz_pools[] = {
	{ 8, 8, false, 21 },
	{ 24, 9, false, 22 },	/* rw, r (pages 3-5), rw */
	{ 41, 4, true, 23 },
	{ 53, 4, false, 0 },
};

/* The reserve the fuzz calls aim at, and the address space's limits. */
struct fz_ctx {
	char *base;
	unsigned long task_size, min_addr;
	unsigned int flags;	/* the flags this kernel knows */
};

FIXTURE(fuzz) {
	struct fz_ctx ctx;
};

FIXTURE_SETUP(fuzz)
{
	size_t i, at = 0;

	if (!cow_snapshot_present())
		SKIP(return, COW_NO_SNAPSHOT);
	ASSERT_GE(read_vmstat(COUNTER), 0) TH_LOG("no %s in /proc/vmstat", COUNTER);
	self->ctx.task_size = task_size();
	self->ctx.min_addr = cow_read_ulong(VM_SYSCTL("mmap_min_addr"));
	/* Found out here: the test counts its snapshots from its start. */
	self->ctx.flags = COW_SNAPSHOT_FIXED | cow_snapshot_eager_flag();
	self->ctx.base = mmap(NULL, FZ_PAGES * PAGE, PROT_NONE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ASSERT_NE(self->ctx.base, MAP_FAILED);
	for (i = 0; i < ARRAY_SIZE(fz_pools); i++) {
		const struct fz_pool *p = &fz_pools[i];
		char *m = self->ctx.base + p->off * PAGE;

		ASSERT_EQ(munmap(self->ctx.base + at * PAGE,
				 (p->off - at) * PAGE), 0);
		ASSERT_EQ(mmap(m, p->pages * PAGE, PROT_READ | PROT_WRITE,
			       MAP_FIXED | MAP_ANONYMOUS |
			       (p->shared ? MAP_SHARED : MAP_PRIVATE), -1, 0),
			  m);
		if (p->seed) {
			cow_fill(m, p->pages * PAGE, p->seed);
			watch(m, p->pages * PAGE, p->seed);
		}
		at = p->off + p->pages;
	}
	ASSERT_EQ(munmap(self->ctx.base + at * PAGE, (FZ_PAGES - at) * PAGE), 0);
	ASSERT_EQ(mprotect(self->ctx.base + 27 * PAGE, 3 * PAGE, PROT_READ), 0);
}

FIXTURE_TEARDOWN(fuzz)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fz_pools); i++)
		munmap(self->ctx.base + fz_pools[i].off * PAGE,
		       fz_pools[i].pages * PAGE);
}

static uint64_t fz_rand(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The pool of the page at @a, or NULL (free, or outside the reserve). */
static const struct fz_pool *fz_pool_at(const char *base, unsigned long a)
{
	unsigned long b = (unsigned long)base;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fz_pools); i++)
		if (a >= b + fz_pools[i].off * PAGE &&
		    a < b + (fz_pools[i].off + fz_pools[i].pages) * PAGE)
			return &fz_pools[i];
	return NULL;
}

static bool fz_in_reserve(const char *base, unsigned long a)
{
	return a >= (unsigned long)base &&
	       a < (unsigned long)base + FZ_PAGES * PAGE;
}

#define FZ_ANY	1	/* any result the interface allows (not a -errno) */

/*
 * What cow_snapshot() must do with these arguments: a negative errno, 0
 * for success, FZ_ANY when it depends on what lies outside the reserve.
 * *known: the source is in the pools, its data can be compared.
 */
static int fz_expect(const struct fz_ctx *c, unsigned long start,
		     size_t len, unsigned long dst, unsigned int flags,
		     bool *known)
{
	bool fixed = flags & COW_SNAPSHOT_FIXED;
	unsigned long b = (unsigned long)c->base, rlen = page_up(len);
	unsigned long a, end, lo, hi;
	bool shared = false;

	*known = false;
	if (flags & ~c->flags || start & (PAGE - 1) || !len)
		return -EINVAL;
	if (rlen < len || start + rlen < start ||
	    start + rlen > c->task_size)
		return -EINVAL;
	if (fixed && (dst & (PAGE - 1) || dst + rlen < dst ||
		      dst + rlen > c->task_size ||
		      (dst < start + rlen && start < dst + rlen)))
		return -EINVAL;
	if (!fz_in_reserve(c->base, start))
		return FZ_ANY;
	/* The reserve ends with free pages: a hole before leaving it. */
	for (a = start; a - start < rlen; a += PAGE) {
		const struct fz_pool *p = fz_pool_at(c->base, a);

		if (!p)
			return -ENOMEM;
		shared |= p->shared;
	}
	if (shared)
		return -EINVAL;
	*known = true;
	if (!fixed)
		return 0;
	if (dst < c->min_addr)
		return FZ_ANY;	/* EPERM without CAP_SYS_RAWIO */
	/* The part of [dst, dst + rlen) in the reserve: on a pool? */
	end = dst + rlen;
	lo = dst > b ? dst : b;
	hi = end < b + FZ_PAGES * PAGE ? end : b + FZ_PAGES * PAGE;
	for (a = lo; a < hi; a += PAGE)
		if (fz_pool_at(c->base, a))
			return -EEXIST;
	return dst >= b && end <= b + FZ_PAGES * PAGE ? 0 : FZ_ANY;
}

/*
 * A source address: mostly in the pools, else anywhere in the reserve or
 * well outside it.
 */
static unsigned long fz_start(const struct fz_ctx *c, uint64_t *r)
{
	unsigned long base = (unsigned long)c->base;
	const struct fz_pool *p = &fz_pools[fz_rand(r) % ARRAY_SIZE(fz_pools)];
	uint64_t x = fz_rand(r);

	switch (x % 16) {
	case 0 ... 6:
		return base + (p->off + fz_rand(r) % p->pages) * PAGE;
	case 7 ... 9:
		return base + (fz_rand(r) % (FZ_PAGES - 16)) * PAGE;
	case 10:
		return base + (fz_rand(r) % FZ_PAGES) * PAGE +
		       fz_rand(r) % PAGE;
	case 11:
		return KERNEL_ADDR + (fz_rand(r) & ((1UL << 40) - 1));
	case 12:
		return c->task_size + PAGE * 2 - (fz_rand(r) % 4) * PAGE;
	case 13:
		return fz_rand(r) & ((1UL << 47) - PAGE);
	case 14:
		return (fz_rand(r) % 32) * PAGE;
	default:
		return fz_rand(r);
	}
}

/* A dst: mostly in the reserve (pools: EEXIST, else free), else out. */
static unsigned long fz_dst(const struct fz_ctx *c, uint64_t *r)
{
	unsigned long base = (unsigned long)c->base;
	uint64_t x = fz_rand(r);

	switch (x % 10) {
	case 0 ... 3:
		return base + (fz_rand(r) % FZ_PAGES) * PAGE;
	case 4 ... 6:
		return base + (FZ_FREE_OFF + fz_rand(r) % FZ_FREE) * PAGE;
	case 7:
		return base + (fz_rand(r) % FZ_PAGES) * PAGE +
		       fz_rand(r) % PAGE;
	case 8:
		return x & 16 ? KERNEL_ADDR + (fz_rand(r) & ((1UL << 40) - 1)) :
				c->task_size - (fz_rand(r) % 4) * PAGE;
	default:
		return x & 16 ? fz_rand(r) & ((1UL << 47) - PAGE) : fz_rand(r);
	}
}

static size_t fz_len(uint64_t *r)
{
	static const size_t huge[] = {
		~0UL, -PAGE, 1UL << 47, 1UL << 40, (1UL << 46) + 1, -2 * PAGE,
	};
	uint64_t x = fz_rand(r);

	switch (x % 10) {
	case 0 ... 5:
		return (1 + fz_rand(r) % 12) * PAGE;
	case 6:
		return (fz_rand(r) % 12) * PAGE + 1 + fz_rand(r) % (PAGE - 1);
	case 7:
		return 0;
	case 8:
		return fz_rand(r) & 1 ? huge[fz_rand(r) % ARRAY_SIZE(huge)] :
					fz_rand(r);
	default:
		return (1 + fz_rand(r) % 64) * PAGE;
	}
}

static unsigned int fz_flags(uint64_t *r)
{
	uint64_t x = fz_rand(r);

	switch (x % 10) {
	case 0 ... 4:
		return 0;
	case 5 ... 8:
		return COW_SNAPSHOT_FIXED;
	default:
		return 1U << (fz_rand(r) % 32) |
		       (x & 16 ? COW_SNAPSHOT_FIXED : 0);
	}
}

static bool fz_allowed(int err)
{
	return err == EINVAL || err == ENOMEM || err == EEXIST || err == EPERM;
}

TEST_F_TIMEOUT(fuzz, random_arguments, 150)
{
	const char *env = getenv("COW_FUZZ_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	unsigned long long pages = 0, ok = 0, calls;
	long long v0, v1;
	time_t end = time(NULL) + FZ_SECONDS;
	int bad = 0;
	uint64_t r = seed;
	ssize_t n0, n1;

	ksft_print_msg("seed %llu (COW_FUZZ_SEED=%llu repeats this run)\n",
		       (unsigned long long)seed, (unsigned long long)seed);
	v0 = read_vmstat(COUNTER);
	n0 = cow_read_file("/proc/self/maps", maps_before, MAPS_MAX);
	ASSERT_GT(n0, 0);

	for (calls = 0; calls < FZ_CALLS; calls++) {
		unsigned long start = fz_start(&self->ctx, &r);
		size_t len = fz_len(&r);
		unsigned int flags = fz_flags(&r);
		unsigned long dst = fz_rand(&r) % 2 ? 0 : fz_dst(&self->ctx, &r);
		unsigned long rlen = page_up(len), s;
		bool known, fail = false;
		int want = fz_expect(&self->ctx, start, len, dst, flags, &known);
		long ret;
		int err;

		if (!(calls % 1024) && time(NULL) > end) {
			ksft_print_msg("time is up after %llu calls\n", calls);
			break;
		}
		errno = 0;
		ret = cow_snapshot_sys(start, len, dst, flags);
		err = errno;
		if (ret == -1) {
			fail = want == FZ_ANY ? !fz_allowed(err) : -err != want;
		} else {
			s = ret;
			fail = (want != FZ_ANY && want != 0) ||
			       s & (PAGE - 1) ||
			       ((flags & COW_SNAPSHOT_FIXED) && s != dst);
			if (!fail && fz_in_reserve(self->ctx.base, s))
				fail = fz_pool_at(self->ctx.base, s);
			if (!fail && known)
				fail = memcmp((void *)s, (void *)start, PAGE) ||
				       memcmp((void *)(s + rlen - PAGE),
					      (void *)(start + rlen - PAGE),
					      PAGE);
			if (!(s & (PAGE - 1)) && rlen)
				munmap((void *)s, rlen);
			pages += rlen / PAGE;
			ok++;
		}
		if (fail && bad++ < FZ_REPORTS)
			ksft_print_msg(FZ_REPORT_FMT, start, len, dst, flags, ret,
				       ret == -1 ? err : 0, -want,
				       known && ret != -1 ? " (data?)" : "");
	}
	n1 = cow_read_file("/proc/self/maps", maps_after, MAPS_MAX);
	v1 = read_vmstat(COUNTER);
	ksft_print_msg("%llu calls, %llu snapshots (%llu pages)\n", calls, ok,
		       pages);
	EXPECT_EQ(bad, 0) TH_LOG("%d calls went wrong (seed %llu)", bad,
				 (unsigned long long)seed);
	EXPECT_EQ(v1 - v0, (long long)pages);
	EXPECT_EQ(n0, n1);
	if (n0 == n1 && memcmp(maps_before, maps_after, n0)) {
		cow_maps_diff("after the run", maps_before, maps_after);
		EXPECT_TRUE(false);
	}
	EXPECT_EQ(watched_ok("after the run"), 0);
}

TEST_HARNESS_MAIN
