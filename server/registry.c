/* The back-end-neutral registry wrappers (registry.h). */
#include <string.h>

#include "registry.h"

int
reg_open(const char *target, const struct reg_cfg *cfg, struct reg **ret_reg)
{
	if (target == NULL || ret_reg == NULL) {
		return ML_ERR_ARG;
	}
	if (strncmp(target, "sqlite:", 7) == 0) {
		return reg_sqlite_open(target + 7, ret_reg);
	}
	if (reg_target_is_pg(target)) {
		return reg_pg_open(target, cfg, ret_reg);
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

int
reg_event_add_many(struct reg *r, const struct reg_event_rec *evs, size_t n)
{
	return REG_CALL(r, event_add_many, evs, n);
}

/* Chips and notes (BN-7, BN-8). */
int
reg_notes_enrol(struct reg *r, const char *chip_serial,
    const uint8_t pub[static ML_P256_PUB_LEN])
{
	return REG_CALL(r, note_enrol, chip_serial, pub);
}

int
reg_notes_chip_pub(struct reg *r, const char *chip_serial,
    uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	return REG_CALL(r, note_chip_pub, chip_serial, ret_pub);
}

int
reg_notes_register(struct reg *r, const struct note_reg *nr,
    uint64_t *ret_reg_id)
{
	return REG_CALL(r, note_register, nr, ret_reg_id);
}

int
reg_notes_lookup(struct reg *r, const char *note_id, struct note_row *ret)
{
	return REG_CALL(r, note_lookup, note_id, ret);
}

int
reg_notes_flag(struct reg *r, const char *note_id, const char *chip_serial,
    const char *reason)
{
	return REG_CALL(r, note_flag, note_id, chip_serial, reason);
}

int
reg_notes_flagged(struct reg *r, const char *note_id)
{
	return REG_CALL(r, note_flagged, note_id);
}

int
reg_notes_count_reject(struct reg *r, const char *reason)
{
	return REG_CALL(r, note_count_reject, reason);
}

int
reg_notes_count(struct reg *r, uint64_t *ret_n)
{
	return REG_CALL(r, note_count, ret_n);
}

int
reg_notes_import(struct reg *r, const char *sqlite_path,
    struct reg_import_counts *ret)
{
	return REG_CALL(r, note_import, sqlite_path, ret);
}

int
reg_schema_version(struct reg *r, int *ret_version)
{
	return REG_CALL(r, schema_version, ret_version);
}
