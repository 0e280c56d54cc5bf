/* The back-end-neutral registry wrappers (registry.h). */
#include <string.h>

#include "ml_wipe.h"
#include "ml_wr.h"
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
reg_notes_reserve(struct reg *r, const char *note_id, const char *chip_serial,
    const char *station, int64_t now, int64_t until)
{
	return REG_CALL(r, note_reserve, note_id, chip_serial, station, now,
	    until);
}

int
reg_notes_unreserve(struct reg *r, const char *note_id, int64_t now)
{
	return REG_CALL(r, note_unreserve, note_id, now);
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

/* ---------------------------------------------------------------- audit */

#define REG_AUDIT_DOMAIN	"mintline audit v1"

/* Every text field of a row with its limit, in hash order. */
static int
audit_fields_ok(const struct reg_audit *a)
{
	return strnlen(a->action, sizeof(a->action)) < sizeof(a->action) &&
	    strnlen(a->actor, sizeof(a->actor)) < sizeof(a->actor) &&
	    strnlen(a->actor_certno, sizeof(a->actor_certno)) <
	    sizeof(a->actor_certno) &&
	    strnlen(a->subject_kind, sizeof(a->subject_kind)) <
	    sizeof(a->subject_kind) &&
	    strnlen(a->subject, sizeof(a->subject)) < sizeof(a->subject) &&
	    strnlen(a->outcome, sizeof(a->outcome)) < sizeof(a->outcome) &&
	    strnlen(a->detail, sizeof(a->detail)) < sizeof(a->detail) &&
	    a->action[0] != '\0';
}

int
reg_audit_hash(const struct reg_audit *a, uint8_t ret[static ML_SHA256_LEN])
{
	const char *const text[] = {
		a->action, a->actor, a->actor_certno, a->subject_kind,
		a->subject, a->outcome, a->detail,
	};
	uint8_t buf[sizeof(REG_AUDIT_DOMAIN) + ML_SHA256_LEN + 16 +
	    ML_NELEM(text) * 2 + sizeof(struct reg_audit)];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));
	size_t i;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(audit_fields_ok(a), ML_ERR_TOO_LARGE);
	ML_TRY(ml_wr_bytes(&w, REG_AUDIT_DOMAIN, sizeof(REG_AUDIT_DOMAIN) - 1));
	ML_TRY(ml_wr_bytes(&w, a->prev_hash, ML_SHA256_LEN));
	ML_TRY(ml_wr_u64be(&w, (uint64_t)a->id));
	ML_TRY(ml_wr_u64be(&w, (uint64_t)a->at));
	for (i = 0; i < ML_NELEM(text); i++) {
		ML_TRY(ml_wr_lv16(&w, text[i], strlen(text[i])));
	}
	r = ml_sha256(w.p, w.len, ret);
out:
	return r;
}

int
reg_audit_append(struct reg *r, struct reg_audit *io)
{
	if (io == NULL || !audit_fields_ok(io)) {
		return io == NULL || io->action[0] == '\0' ? ML_ERR_ARG :
		    ML_ERR_TOO_LARGE;
	}
	return REG_CALL(r, audit_append, io);
}

int
reg_audit_list(struct reg *r, const struct reg_audit_filter *f,
    reg_audit_fn fn, void *ctx)
{
	static const struct reg_audit_filter all;

	if (fn == NULL) {
		return ML_ERR_ARG;
	}
	return REG_CALL(r, audit_list, f != NULL ? f : &all, fn, ctx);
}

struct audit_check {
	uint8_t		 prev[ML_SHA256_LEN];
	int64_t		 last_id;
	uint64_t	 rows;
	int64_t		 bad_id;
	const char	*why;
};

static int
audit_check_row(void *ctx, const struct reg_audit *row)
{
	struct audit_check *c = ctx;
	uint8_t h[ML_SHA256_LEN];

	if (row->id != c->last_id + 1) {
		c->why = c->last_id + 1 < row->id ? "rows missing before it" :
		    "ids out of order";
	} else if (!ml_ct_eq(row->prev_hash, c->prev, ML_SHA256_LEN)) {
		c->why = "its previous-row hash is not the hash of the row "
		    "before (a row before it was changed, removed or added)";
	} else if (reg_audit_hash(row, h) != 0 ||
	    !ml_ct_eq(h, row->hash, ML_SHA256_LEN)) {
		c->why = "its hash does not match its contents (the row was "
		    "changed)";
	}
	if (c->why != NULL) {
		c->bad_id = row->id;
		return ML_ERR_AUTH;
	}
	memcpy(c->prev, row->hash, ML_SHA256_LEN);
	c->last_id = row->id;
	c->rows++;
	return 0;
}

int
reg_audit_verify(struct reg *r, uint64_t *ret_rows, int64_t *ret_bad_id)
{
	struct audit_check c;
	int rc;

	memset(&c, 0, sizeof(c));
	rc = reg_audit_list(r, NULL, audit_check_row, &c);
	if (rc == ML_ERR_AUTH && c.why != NULL) {
		if (ret_bad_id != NULL) {
			*ret_bad_id = c.bad_id;
		}
		return ml_errf(ML_ERR_AUTH, "audit row %lld: %s",
		    (long long)c.bad_id, c.why);
	}
	if (rc == 0 && ret_rows != NULL) {
		*ret_rows = c.rows;
	}
	return rc;
}
