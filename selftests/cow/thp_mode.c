// SPDX-License-Identifier: GPL-2.0-only
/*
 * vm.cow_thp_mode: a write to a COW-shared PMD-mapped THP either splits the
 * PMD and copies 4 KiB ("split") or copies the whole huge page and keeps it
 * PMD-mapped ("copy"). Either way each side keeps its own view; the
 * cow_thp_* counters and smaps' AnonHugePages tell which one happened.
 * Skips on a kernel without the knob.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "kselftest_harness.h"
#include "cow_util.h"

#define SEED_OLD	1
#define SEED_NEW	2
/* A byte that cow_fill() does not write (it writes each sub-page's ends). */
#define OFF		100
#define CGROUP_ROOT	"/sys/fs/cgroup"
#define CGROUP_TEST	CGROUP_ROOT "/cow_thp_mode_test"
/* Far below one PMD-sized THP: its charge cannot succeed. */
#define CGROUP_MAX	"1048576"

/* Set vm.cow_thp_mode, keeping the old value in @saved; 0 or errno. */
static int set_mode(const char *mode, char *saved, size_t len)
{
	int err = cow_read_line(COW_THP_MODE_PATH, saved, len);

	return err ? err : cow_write_file(COW_THP_MODE_PATH, mode);
}

/* A PMD-mapped THP filled with SEED_OLD, and the mode to restore. */
struct thp_region {
	char saved[16];
	size_t pmd;
	char *map;
	char *mem;
};

/*
 * Map and fill @r's THP, then set vm.cow_thp_mode to @mode. False when
 * the test is skipped: no THP, no knob, or no PMD mapping populated.
 */
static bool thp_region_setup(struct __test_metadata *_metadata,
			     struct thp_region *r, const char *mode)
{
	r->pmd = read_pmd_pagesize();
	if (!r->pmd)
		SKIP(return false, "THP not supported by this kernel");
	if (access(COW_THP_MODE_PATH, F_OK))
		SKIP(return false, "vm.cow_thp_mode not in this kernel");
	r->mem = cow_map_thp(r->pmd, &r->map);
	ASSERT_NE(r->mem, NULL);
	cow_fill(r->mem, r->pmd, SEED_OLD);
	if (cow_smaps_kb(r->mem, "AnonHugePages") < (long)(r->pmd / 1024))
		SKIP(return false, "no PMD-mapped THP populated (THP disabled?)");
	ASSERT_EQ(set_mode(mode, r->saved, sizeof(r->saved)), 0);
	return true;
}

static void thp_region_teardown(struct thp_region *r)
{
	if (r->saved[0])
		cow_write_file(COW_THP_MODE_PATH, r->saved);
	if (r->mem)
		munmap(r->map, 2 * r->pmd);
}

FIXTURE(cow_thp) {
	struct thp_region r;
	struct cow_precopy_knobs precopy;
};

FIXTURE_VARIANT(cow_thp) {
	const char *mode;
};

FIXTURE_VARIANT_ADD(cow_thp, split) { .mode = "split" };
FIXTURE_VARIANT_ADD(cow_thp, copy) { .mode = "copy" };

FIXTURE_SETUP(cow_thp)
{
	if (!thp_region_setup(_metadata, &self->r, variant->mode))
		return;
	/* The split counts one fault per 4 KiB written. */
	ASSERT_EQ(cow_precopy_set(&self->precopy, "0", "0"), 0);
}

FIXTURE_TEARDOWN(cow_thp)
{
	cow_precopy_restore(&self->precopy);
	thp_region_teardown(&self->r);
}

/*
 * One byte written by the parent: it reads its byte and 511 untouched
 * sub-pages, the child reads the old data in all 512. "copy" copied the
 * huge page and it is still PMD-mapped; "split" split it.
 */
TEST_F(cow_thp, one_byte_write)
{
	size_t off = self->r.pmd / 2 + 100;
	struct cow_counts b, a;
	bool copy = !strcmp(variant->mode, "copy");
	int go;
	pid_t pid;

	pid = cow_fork_checker(self->r.mem, self->r.pmd, SEED_OLD, off, 0, &go);
	ASSERT_GT(pid, 0);
	cow_counts_before(&b, &a);
	self->r.mem[off] = 0x5a;
	cow_get_counts(&a);
	EXPECT_EQ(cow_checker_result(pid, go), 0)
		TH_LOG("the child saw the parent's write");
	EXPECT_EQ(cow_check_or_report("parent", self->r.mem, self->r.pmd,
				      SEED_OLD, off, 0x5a), 0);
	EXPECT_EQ(a.thp_copy - b.thp_copy, copy ? 1 : 0);
	EXPECT_EQ(a.thp_split - b.thp_split, copy ? 0 : 1);
	EXPECT_EQ(a.cow_copy - b.cow_copy, 1);
	EXPECT_EQ(cow_smaps_kb(self->r.mem, "AnonHugePages"),
		  copy ? (long)(self->r.pmd / 1024) : 0);
}

/*
 * The parent rewrites the whole huge page: one fault and one copy in
 * "copy" mode, a split and a fault and copy per 4 KiB in "split" mode.
 */
TEST_F(cow_thp, rewrite_whole_huge_page)
{
	long nr = self->r.pmd / COW_SUBPAGE;
	struct cow_counts b, a;
	bool copy = !strcmp(variant->mode, "copy");
	int go;
	pid_t pid;

	pid = cow_fork_checker(self->r.mem, self->r.pmd, SEED_OLD, OFF, 0, &go);
	ASSERT_GT(pid, 0);
	cow_counts_before(&b, &a);
	cow_fill(self->r.mem, self->r.pmd, SEED_NEW);
	cow_get_counts(&a);
	EXPECT_EQ(cow_checker_result(pid, go), 0)
		TH_LOG("the child saw the parent's writes");
	EXPECT_EQ(cow_check(self->r.mem, self->r.pmd, SEED_NEW), -1);
	EXPECT_EQ(a.thp_copy - b.thp_copy, copy ? 1 : 0);
	EXPECT_EQ(a.thp_split - b.thp_split, copy ? 0 : 1);
	EXPECT_EQ(a.cow_copy - b.cow_copy, copy ? 1 : nr);
	/* cow_get_counts() itself may fault once or twice after the writes. */
	EXPECT_GE(a.minflt - b.minflt, copy ? 1 : nr);
	EXPECT_LE(a.minflt - b.minflt, (copy ? 1 : nr) + 2);
}

/*
 * The child writes: its view diverges, the parent's does not, and the
 * parent's PMD mapping is untouched in both modes.
 */
TEST_F(cow_thp, child_write_leaves_parent_mapping)
{
	pid_t pid = fork();

	ASSERT_GE(pid, 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		self->r.mem[OFF] = 0x5a;
		_exit(cow_check_or_report("child", self->r.mem, self->r.pmd,
					  SEED_OLD, OFF, 0x5a));
	}
	EXPECT_EQ(cow_wait_exit(pid), 0);
	EXPECT_EQ(cow_check(self->r.mem, self->r.pmd, SEED_OLD), -1);
	EXPECT_EQ(cow_smaps_kb(self->r.mem, "AnonHugePages"),
		  (long)(self->r.pmd / 1024));
}

/*
 * "copy" mode when no huge page can be had must fall back to the split,
 * with the data right on both sides.
 */
FIXTURE(cow_thp_fallback) {
	struct thp_region r;
	bool in_cgroup;
};

FIXTURE_SETUP(cow_thp_fallback)
{
	thp_region_setup(_metadata, &self->r, "copy");
}

FIXTURE_TEARDOWN(cow_thp_fallback)
{
	if (self->in_cgroup) {
		cow_write_file(CGROUP_ROOT "/cgroup.procs", "0");
		rmdir(CGROUP_TEST);
	}
	thp_region_teardown(&self->r);
}

/*
 * Write one byte after fork() and check the outcome of a fallback: no
 * THP copy, one split, the data right on both sides, no PMD mapping left.
 */
static void write_expect_split(struct __test_metadata *_metadata,
			       char *mem, size_t pmd, struct cow_counts *b,
			       struct cow_counts *a)
{
	int go;
	pid_t pid;

	pid = cow_fork_checker(mem, pmd, SEED_OLD, OFF, 0, &go);
	ASSERT_GT(pid, 0);
	cow_counts_before(b, a);
	mem[OFF] = 0x5a;
	cow_get_counts(a);
	EXPECT_EQ(cow_checker_result(pid, go), 0)
		TH_LOG("the child saw the parent's write");
	EXPECT_EQ(cow_check_or_report("parent", mem, pmd,
				      SEED_OLD, OFF, 0x5a), 0);
	EXPECT_EQ(a->thp_copy - b->thp_copy, 0);
	EXPECT_EQ(a->thp_split - b->thp_split, 1);
	EXPECT_EQ(a->cow_copy - b->cow_copy, 1);
	EXPECT_EQ(cow_smaps_kb(mem, "AnonHugePages"), 0);
}

/* A memory cgroup too small for a huge page: the charge fails, we split. */
TEST_F(cow_thp_fallback, memcg_charge_failure_splits)
{
	char controllers[256] = "";
	struct cow_counts b, a;

	if (cow_read_line(CGROUP_ROOT "/cgroup.controllers", controllers,
			  sizeof(controllers)) || !strstr(controllers, "memory"))
		SKIP(return, "no cgroup v2 memory controller at " CGROUP_ROOT);
	ASSERT_EQ(cow_write_file(CGROUP_ROOT "/cgroup.subtree_control",
				 "+memory"), 0);
	ASSERT_TRUE(!mkdir(CGROUP_TEST, 0755) || errno == EEXIST);
	/* The THP stays charged to the old group; new charges go here. */
	ASSERT_EQ(cow_write_file(CGROUP_TEST "/cgroup.procs", "0"), 0);
	self->in_cgroup = true;
	ASSERT_EQ(cow_write_file(CGROUP_TEST "/memory.max", CGROUP_MAX), 0);
	/*
	 * The failed charge reclaims: with swap it could swap out this
	 * process's own pages and count their swap-in faults here.
	 */
	cow_write_file(CGROUP_TEST "/memory.swap.max", "0");

	write_expect_split(_metadata, self->r.mem, self->r.pmd, &b, &a);
	EXPECT_EQ(a.fallback_charge - b.fallback_charge, 1);
}

/* MADV_NOHUGEPAGE after the THP was made: no new huge page, we split. */
TEST_F(cow_thp_fallback, nohugepage_vma_splits)
{
	struct cow_counts b, a;

	ASSERT_EQ(madvise(self->r.mem, self->r.pmd, MADV_NOHUGEPAGE), 0);
	write_expect_split(_metadata, self->r.mem, self->r.pmd, &b, &a);
	EXPECT_EQ(a.fallback_charge - b.fallback_charge, 0);
}

/* The sysctl takes "split" and "copy" only; anything else: EINVAL. */
FIXTURE(cow_thp_sysctl) {
	char saved[16];
};

FIXTURE_SETUP(cow_thp_sysctl)
{
	if (access(COW_THP_MODE_PATH, F_OK))
		SKIP(return, "vm.cow_thp_mode not in this kernel");
	ASSERT_EQ(set_mode("copy", self->saved, sizeof(self->saved)), 0);
}

FIXTURE_TEARDOWN(cow_thp_sysctl)
{
	if (self->saved[0])
		cow_write_file(COW_THP_MODE_PATH, self->saved);
}

TEST_F(cow_thp_sysctl, bad_values_rejected)
{
	static const char * const bad[] = {
		"", " ", "COPY", "Split", "spl", "copyy", "split copy", "1",
		"0", "-1", "copy\nsplit", "splitsplitsplitsplit",
	};
	char now[16];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(cow_write_file(COW_THP_MODE_PATH, bad[i]), EINVAL)
			TH_LOG("value '%s'", bad[i]);
		ASSERT_EQ(cow_read_line(COW_THP_MODE_PATH, now, sizeof(now)), 0);
		EXPECT_STREQ(now, "copy") TH_LOG("after '%s'", bad[i]);
	}
}

TEST_F(cow_thp_sysctl, good_values_read_back)
{
	static const char * const good[][2] = {
		{ "split", "split" }, { "copy\n", "copy" }, { "split\n", "split" },
		{ "copy", "copy" },
	};
	char now[16];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(good); i++) {
		EXPECT_EQ(cow_write_file(COW_THP_MODE_PATH, good[i][0]), 0);
		ASSERT_EQ(cow_read_line(COW_THP_MODE_PATH, now, sizeof(now)), 0);
		EXPECT_STREQ(now, good[i][1]);
	}
}

TEST_HARNESS_MAIN
