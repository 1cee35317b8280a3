/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Helpers shared by the cow selftests: page-pattern fill and check, THP and
 * hugetlb discovery, /proc/self/smaps look-ups.
 */
#ifndef COW_UTIL_H
#define COW_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

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

/* The PMD-sized THP size, or 0 without THP support. */
static inline size_t cow_pmd_size(void)
{
	return cow_read_ulong("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");
}

/* Free hugetlb pages of the given size (in KiB). */
static inline unsigned long cow_hugetlb_free(unsigned long kb)
{
	char path[128];

	snprintf(path, sizeof(path),
		 "/sys/kernel/mm/hugepages/hugepages-%lukB/free_hugepages", kb);
	return cow_read_ulong(path);
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

#endif /* COW_UTIL_H */
