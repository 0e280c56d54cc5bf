/* The back-end-neutral registry wrappers (registry.h). */
#include <string.h>

#include "registry.h"

int
reg_open(const char *target, struct reg **ret_reg)
{
	if (target == NULL || ret_reg == NULL) {
		return ML_ERR_ARG;
	}
	if (strncmp(target, "sqlite:", 7) == 0) {
		return reg_sqlite_open(target + 7, ret_reg);
	}
	if (strncmp(target, "postgresql:", 11) == 0) {
		return ML_ERR_UNSUPPORTED;	/* issue 7 */
	}
	return reg_sqlite_open(target, ret_reg);
}

void
reg_close(struct reg *r)
{
	if (r != NULL) {
		r->ops->close(r);
	}
}

#define REG_CALL(r, op, ...) \
	((r) == NULL ? ML_ERR_ARG : (r)->ops->op == NULL ? \
	    ML_ERR_UNSUPPORTED : (r)->ops->op((r), __VA_ARGS__))

int
reg_reader_get(struct reg *r, const char *serial, struct reg_reader *ret)
{
	return REG_CALL(r, reader_get, serial, ret);
}

int
reg_reader_put(struct reg *r, const struct reg_reader *rd)
{
	return REG_CALL(r, reader_put, rd);
}

int
reg_reader_flag(struct reg *r, const char *serial, bool flagged)
{
	return REG_CALL(r, reader_flag, serial, flagged);
}

int
reg_event_add(struct reg *r, const char *serial, enum reg_event ev,
    const char *detail)
{
	return REG_CALL(r, event_add, serial, ev, detail);
}

int
reg_event_count(struct reg *r, const char *serial, enum reg_event ev,
    uint64_t *ret_n)
{
	return REG_CALL(r, event_count, serial, ev, ret_n);
}
