/*
 * Built instead of registry_pg.c when libpq is not available: a PostgreSQL
 * registry target is recognised and refused with a clear error.
 */
#include <string.h>

#include "ml_log.h"
#include "registry.h"

bool
reg_target_is_pg(const char *t)
{
	/* "postgresql:dbname=x" too: never let it become a SQLite file name */
	return t != NULL && (strncmp(t, "postgresql:", 11) == 0 ||
	    strncmp(t, "postgres:", 9) == 0 || strncmp(t, "pg:", 3) == 0);
}

int
reg_pg_open(const char *target, const struct reg_cfg *cfg,
    struct reg **ret_reg)
{
	(void)target;
	(void)cfg;
	(void)ret_reg;
	ml_err("registry: this build has no PostgreSQL support (libpq-dev)");
	return ML_ERR_UNSUPPORTED;
}
