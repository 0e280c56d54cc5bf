/*
 * Issuance record helpers shared by the station and the server.
 */
#include <string.h>

#include "ml_rd.h"
#include "ml_tlv.h"
#include "note_proto.h"

const char *
note_reason_str(int reason)
{
	switch (reason) {
#define NOTE_R_CASE(name, value, text) case value: return text;
	NOTE_REASONS(NOTE_R_CASE)
#undef NOTE_R_CASE
	default:
		return "unknown reason";
	}
}

const char *
note_reason_name(int reason)
{
	static const char *const names[] = {
		"ok", "malformed", "unknown_chip", "chip_sig", "tampered",
		"bad_feature", "unauthorized_writer", "dup_serial", "chip_used",
		"enrol_conflict", "unregistered", "feature_mismatch",
		"chip_mismatch", "internal", "serial_mismatch", "reserved",
	};

	if (reason < 0 || (unsigned)reason >= sizeof(names) / sizeof(names[0])) {
		return "unknown";
	}
	return names[reason];
}

int
note_reply_parse(const uint8_t *p, size_t n, struct note_reply *ret)
{
	struct ml_rd rd = ML_RD_INIT(p, n), v;
	struct note_reply nr = { 0 };
	uint8_t b;
	int r;

	ML_TRY(ml_tlv_find(&rd, TAG_REPLY_STATUS, &v));
	ML_TRY(ml_rd_u8(&v, &b));
	nr.status = b;
	ML_TRY(ml_tlv_find(&rd, TAG_REPLY_REASON, &v));
	ML_TRY(ml_rd_u8(&v, &b));
	nr.reason = b;
	if (ml_tlv_find(&rd, TAG_REPLY_FLAGS, &v) == 0) {
		ML_TRY(ml_rd_u8(&v, &b));
		nr.flags = b;
	}
	if (ml_tlv_find(&rd, TAG_REPLY_REGID, &v) == 0) {
		ML_TRY(ml_rd_u64be(&v, &nr.reg_id));
	}
	if (ml_tlv_find(&rd, TAG_REPLY_NOTE, &v) == 0) {
		ML_ENSURE(ml_rd_left(&v) <= NOTE_REPLY_ID_MAX, ML_ERR_TOO_LARGE);
		memcpy(nr.note_id, ml_rd_ptr(&v), ml_rd_left(&v));
	}
	*ret = nr;
	r = 0;
out:
	return r;
}
