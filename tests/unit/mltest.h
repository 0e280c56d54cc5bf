/*
 * Assertions shared by the unit tests.  Header-only; include once per test
 * program, after <check.h>.
 */
#ifndef MLTEST_H
#define MLTEST_H

#include <check.h>

#include "ml_err.h"

/* expr must return want (an ML_ERR_* or 0); names both on failure. */
#define ck_assert_r(expr, want)	do {					\
	int r_ = (expr);						\
	ck_assert_msg(r_ == (want), "%s = %s, want %s", #expr,		\
	    ml_errname(r_), ml_errname(want));				\
} while (0)

#endif
