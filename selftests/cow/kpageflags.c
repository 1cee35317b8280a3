// SPDX-License-Identifier: GPL-2.0-only
/*
 * /proc/kpageflags: KPF_KSM is set for KSM pages and only for them.
 *
 * An anonymous page's mapping has PAGE_MAPPING_ANON set, a KSM page's has
 * PAGE_MAPPING_KSM (ANON | MOVABLE). Testing (mapping & PAGE_MAPPING_KSM)
 * instead of comparing the flag bits reported every anonymous page as a
 * KSM page. Each test reads the PFN of a page from /proc/self/pagemap and
 * its flags from /proc/kpageflags (both need root).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "cow_util.h"

#define PAGE		COW_SUBPAGE
#define KPF_ANON	12
#define KPF_KSM		21
/* How long ksmd may take to merge two pages (it runs under TCG here). */
#define KSM_WAIT_S	60

static uint64_t kpageflags_of(const void *addr)
{
	uint64_t pfn = cow_pfn(addr);
	uint64_t flags = 0;
	int fd;

	if (!pfn)
		return 0;
	fd = open("/proc/kpageflags", O_RDONLY);
	if (fd < 0)
		return 0;
	if (pread(fd, &flags, sizeof(flags), pfn * sizeof(flags)) !=
	    sizeof(flags))
		flags = 0;
	close(fd);
	return flags;
}

static bool has(uint64_t flags, int bit)
{
	return flags & (1ULL << bit);
}

static const char *kpageflags_usable(void)
{
	if (access("/proc/kpageflags", R_OK))
		return "/proc/kpageflags not readable (needs root)";
	return NULL;
}

TEST(anon_page_not_ksm)
{
	const char *why = kpageflags_usable();
	uint64_t flags;
	char *p;

	if (why)
		SKIP(return, "%s", why);
	p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(p, MAP_FAILED);
	memset(p, 0x5a, PAGE);

	flags = kpageflags_of(p);
	ASSERT_TRUE(has(flags, KPF_ANON)) {
		TH_LOG("kpageflags %#llx", (unsigned long long)flags);
	}
	EXPECT_FALSE(has(flags, KPF_KSM)) {
		TH_LOG("kpageflags %#llx: KPF_KSM on a page KSM never saw",
		       (unsigned long long)flags);
	}
	munmap(p, PAGE);
}

TEST(file_page_not_ksm)
{
	const char *why = kpageflags_usable();
	uint64_t flags;
	char *p;
	int fd;

	if (why)
		SKIP(return, "%s", why);
	fd = memfd_create("kpageflags", 0);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(ftruncate(fd, PAGE), 0);
	p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(p, MAP_FAILED);
	memset(p, 0x5a, PAGE);

	flags = kpageflags_of(p);
	ASSERT_NE(flags, 0);
	EXPECT_FALSE(has(flags, KPF_ANON));
	EXPECT_FALSE(has(flags, KPF_KSM));
	munmap(p, PAGE);
	close(fd);
}

static const char * const ksm_knobs[] = {
	"run", "pages_to_scan", "sleep_millisecs", "use_zero_pages",
};

/* Two identical private anonymous pages, MADV_MERGEABLE; the KSM knobs saved. */
FIXTURE(ksm) {
	char knob[ARRAY_SIZE(ksm_knobs)][32];
	char *mem;
};

/* Both pages of @mem map one page frame. */
static bool merged(const char *mem)
{
	uint64_t a = cow_pfn(mem);

	return a && a == cow_pfn(mem + PAGE);
}

FIXTURE_SETUP(ksm)
{
	const char *why = kpageflags_usable();
	size_t i;

	self->mem = MAP_FAILED;
	memset(self->knob, 0, sizeof(self->knob));
	if (why)
		SKIP(return, "%s", why);
	if (access(COW_KSM_DIR "run", W_OK))
		SKIP(return, "KSM not in this kernel (or not root)");
	for (i = 0; i < ARRAY_SIZE(ksm_knobs); i++)
		if (cow_read_line(cow_ksm_path(ksm_knobs[i]), self->knob[i],
				  sizeof(self->knob[i])))
			self->knob[i][0] = '\0';

	self->mem = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(self->mem, MAP_FAILED);
	ASSERT_EQ(madvise(self->mem, 2 * PAGE, MADV_NOHUGEPAGE), 0);
	memset(self->mem, 0x5a, 2 * PAGE);
	ASSERT_EQ(madvise(self->mem, 2 * PAGE, MADV_MERGEABLE), 0);
}

/*
 * Let ksmd merge the two pages; false if it did not in KSM_WAIT_S. In the
 * test, not the setup: the teardown, which restores the knobs, runs only
 * after a setup that completed.
 */
static bool ksm_merge(const char *mem)
{
	struct timespec t0, t;

	if (cow_ksm_set("use_zero_pages", "0") || cow_ksm_set("pages_to_scan", "10000") ||
	    cow_ksm_set("sleep_millisecs", "0") || cow_ksm_set("run", "1"))
		return false;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		usleep(10000);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (!merged(mem) && t.tv_sec - t0.tv_sec < KSM_WAIT_S);
	return !cow_ksm_set("run", "0") && merged(mem);
}

FIXTURE_TEARDOWN(ksm)
{
	size_t i;

	if (self->mem != MAP_FAILED)
		munmap(self->mem, 2 * PAGE);
	/* run last: the others are only written while ksmd is stopped. */
	for (i = ARRAY_SIZE(ksm_knobs); i-- > 0;)
		if (self->knob[i][0])
			cow_ksm_set(ksm_knobs[i], self->knob[i]);
}

TEST_F(ksm, merged_page_is_ksm)
{
	uint64_t flags;

	ASSERT_TRUE(ksm_merge(self->mem)) {
		TH_LOG("ksmd did not merge two identical pages in %d s",
		       KSM_WAIT_S);
	}
	flags = kpageflags_of(self->mem);
	EXPECT_TRUE(has(flags, KPF_ANON));
	EXPECT_TRUE(has(flags, KPF_KSM)) {
		TH_LOG("kpageflags %#llx", (unsigned long long)flags);
	}
}

TEST_F(ksm, unmerged_page_not_ksm)
{
	uint64_t flags;

	ASSERT_TRUE(ksm_merge(self->mem)) {
		TH_LOG("ksmd did not merge two identical pages in %d s",
		       KSM_WAIT_S);
	}
	ASSERT_EQ(madvise(self->mem, 2 * PAGE, MADV_UNMERGEABLE), 0);
	ASSERT_FALSE(merged(self->mem));
	flags = kpageflags_of(self->mem);
	EXPECT_TRUE(has(flags, KPF_ANON));
	EXPECT_FALSE(has(flags, KPF_KSM)) {
		TH_LOG("kpageflags %#llx", (unsigned long long)flags);
	}
	EXPECT_EQ(self->mem[0], 0x5a);
}

TEST_HARNESS_MAIN
