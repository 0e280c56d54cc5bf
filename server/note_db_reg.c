/*
 * The note registry on the server's registry back-end (BN-7, BN-8): the
 * note_db API (note_db.h) forwarded to the reg_notes_* operations of
 * registry.h, so that with PostgreSQL every server of a fleet registers
 * notes in the one shared database, exactly once (registry_pg.c).
 */
#include "note_db_reg.h"

static int
r_enrol(void *ctx, const char *chip, const uint8_t pub[static ML_P256_PUB_LEN])
{
	return reg_notes_enrol(ctx, chip, pub);
}

static int
r_chip_pub(void *ctx, const char *chip, uint8_t ret[static ML_P256_PUB_LEN])
{
	return reg_notes_chip_pub(ctx, chip, ret);
}

static int
r_register(void *ctx, const struct note_reg *nr, uint64_t *ret_reg_id)
{
	return reg_notes_register(ctx, nr, ret_reg_id);
}

static int
r_lookup(void *ctx, const char *note_id, struct note_row *ret)
{
	return reg_notes_lookup(ctx, note_id, ret);
}

static int
r_flag(void *ctx, const char *note_id, const char *chip, const char *reason)
{
	return reg_notes_flag(ctx, note_id, chip, reason);
}

static int
r_flagged(void *ctx, const char *note_id)
{
	return reg_notes_flagged(ctx, note_id);
}

static int
r_count_reject(void *ctx, const char *reason)
{
	return reg_notes_count_reject(ctx, reason);
}

static int
r_count_notes(void *ctx, uint64_t *ret_n)
{
	return reg_notes_count(ctx, ret_n);
}

static const struct note_db_ops note_db_reg_ops = {
	.enrol = r_enrol,
	.chip_pub = r_chip_pub,
	.register_note = r_register,
	.lookup = r_lookup,
	.flag = r_flag,
	.flagged = r_flagged,
	.count_reject = r_count_reject,
	.count_notes = r_count_notes,
};

int
note_db_reg_open(struct reg *reg, struct note_db **ret)
{
	uint64_t n;

	if (reg == NULL || reg->ops->note_register == NULL) {
		return ML_ERR_UNSUPPORTED;
	}
	if (reg_notes_count(reg, &n) != 0) {
		return ML_ERR_IO;
	}
	return note_db_open_ops(&note_db_reg_ops, reg, ret);
}
