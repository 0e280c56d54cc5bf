/*
 * note/: the issuance records between station and server (BN-6..BN-8) and
 * the uplink they travel on: the reply decoder on well-formed, truncated
 * and malformed bodies, the reason table, and the in-process and custom
 * transports.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mltest.h"
#include "ml_tlv.h"
#include "ml_wr.h"
#include "note_proto.h"
#include "note_uplink.h"

/* A full reply: status, reason, note id, registration id, flags. */
static size_t
full_reply(uint8_t *buf, size_t cap)
{
	static const uint8_t regid[8] = { 0, 0, 0, 0, 0, 0, 0x01, 0x02 };
	struct ml_wr w = ML_WR_FIXED(buf, cap);

	ck_assert_r(ml_tlv_put_u8(&w, TAG_REPLY_STATUS, NOTE_ST_AGAIN), 0);
	ck_assert_r(ml_tlv_put_u8(&w, TAG_REPLY_REASON, NOTE_R_NONE), 0);
	ck_assert_r(ml_tlv_put(&w, TAG_REPLY_NOTE, "AB00001234", 10), 0);
	ck_assert_r(ml_tlv_put(&w, TAG_REPLY_REGID, regid, sizeof(regid)), 0);
	ck_assert_r(ml_tlv_put_u8(&w, TAG_REPLY_FLAGS, NOTE_F_TWO_CHIPS), 0);
	return w.len;
}

START_TEST(reply_full)
{
	uint8_t buf[NOTE_REPLY_MAX];
	struct note_reply rep;
	size_t n = full_reply(buf, sizeof(buf));

	ck_assert_r(note_reply_parse(buf, n, &rep), 0);
	ck_assert_int_eq(rep.status, NOTE_ST_AGAIN);
	ck_assert_int_eq(rep.reason, NOTE_R_NONE);
	ck_assert_str_eq(rep.note_id, "AB00001234");
	ck_assert_uint_eq(rep.reg_id, 0x0102);
	ck_assert_uint_eq(rep.flags, NOTE_F_TWO_CHIPS);
}
END_TEST

START_TEST(reply_minimal)
{
	uint8_t buf[32];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));
	struct note_reply rep;

	ck_assert_r(ml_tlv_put_u8(&w, TAG_REPLY_REASON, NOTE_R_DUP_SERIAL), 0);
	ck_assert_r(ml_tlv_put_u8(&w, TAG_REPLY_STATUS, NOTE_ST_REJECT), 0);
	ck_assert_r(note_reply_parse(w.p, w.len, &rep), 0);
	ck_assert_int_eq(rep.status, NOTE_ST_REJECT);
	ck_assert_int_eq(rep.reason, NOTE_R_DUP_SERIAL);
	ck_assert_str_eq(rep.note_id, "");
	ck_assert_uint_eq(rep.reg_id, 0);
	ck_assert_uint_eq(rep.flags, 0);
}
END_TEST

/* Every truncation fails and leaves the output untouched. */
START_TEST(reply_truncated)
{
	uint8_t buf[NOTE_REPLY_MAX];
	struct note_reply rep;
	size_t n = full_reply(buf, sizeof(buf)), i;

	for (i = 0; i < n; i++) {
		memset(&rep, 0x5a, sizeof(rep));
		/* a cut inside the optional fields may still parse: then the
		 * mandatory ones are there, anything else is an error */
		if (note_reply_parse(buf, i, &rep) == 0) {
			ck_assert_int_eq(rep.status, NOTE_ST_AGAIN);
			continue;
		}
		ck_assert_int_eq(rep.status, 0x5a5a5a5a);
		ck_assert_msg(i < 6, "cut at %zu refused after the mandatory fields",
		    i);
	}
}
END_TEST

static const struct bad_reply {
	const char	*what;
	uint8_t		 b[48];
	size_t		 n;
	int		 want;
} bad_replies[] = {
	{ "empty", { 0 }, 0, ML_ERR_NOT_FOUND },
	{ "no reason", { TAG_REPLY_STATUS, 1, 0 }, 3, ML_ERR_NOT_FOUND },
	{ "no status", { TAG_REPLY_REASON, 1, 0 }, 3, ML_ERR_NOT_FOUND },
	{ "empty status", { TAG_REPLY_STATUS, 0, TAG_REPLY_REASON, 1, 0 }, 5,
	  ML_ERR_SHORT },
	{ "short regid", { TAG_REPLY_STATUS, 1, 0, TAG_REPLY_REASON, 1, 0,
	  TAG_REPLY_REGID, 4, 0, 0, 0, 1 }, 12, ML_ERR_SHORT },
	{ "length past end", { TAG_REPLY_STATUS, 9, 0 }, 3, ML_ERR_SHORT },
	{ "note id too long", { TAG_REPLY_STATUS, 1, 0, TAG_REPLY_REASON, 1, 0,
	  TAG_REPLY_NOTE, NOTE_REPLY_ID_MAX + 1,
	  'A','A','A','A','A','A','A','A','A','A','A','A','A','A','A','A',
	  'A','A','A','A','A','A','A','A','A','A','A','A','A','A','A','A',
	  'A' }, 8 + NOTE_REPLY_ID_MAX + 1, ML_ERR_TOO_LARGE },
};

START_TEST(reply_malformed)
{
	const struct bad_reply *v = &bad_replies[_i];
	struct note_reply rep;
	int r;

	memset(&rep, 0x5a, sizeof(rep));
	r = note_reply_parse(v->b, v->n, &rep);
	ck_assert_msg(r != 0, "%s: parsed", v->what);
	ck_assert_msg(v->want == 0 || r == v->want, "%s: %s, want %s",
	    v->what, ml_errname(r), ml_errname(v->want));
	ck_assert_int_eq(rep.status, 0x5a5a5a5a);
}
END_TEST

START_TEST(reasons)
{
	int i, j;

	for (i = 0; i < NOTE_R_COUNT; i++) {
		ck_assert_str_ne(note_reason_str(i), "unknown reason");
		ck_assert_str_ne(note_reason_name(i), "unknown");
		for (j = 0; j < i; j++) {
			ck_assert_str_ne(note_reason_name(i), note_reason_name(j));
		}
	}
	ck_assert_str_eq(note_reason_name(NOTE_R_DUP_SERIAL), "dup_serial");
	ck_assert_str_eq(note_reason_str(NOTE_R_COUNT), "unknown reason");
	ck_assert_str_eq(note_reason_name(-1), "unknown");
	ck_assert_str_eq(note_reason_name(NOTE_R_COUNT), "unknown");
}
END_TEST

/* An in-process handler: answers type and length, or fails on type 0. */
static int
echo_handle(void *ctx, unsigned type, const uint8_t *req, size_t len,
    struct ml_wr *reply)
{
	int *calls = ctx;
	int r;

	(*calls)++;
	if (type == 0) {
		return ML_ERR_UNSUPPORTED;
	}
	ML_TRY(ml_wr_u8(reply, (uint8_t)type));
	ML_TRY(ml_wr_bytes(reply, req, len));
out:
	return r;
}

START_TEST(uplink_local)
{
	int calls = 0;
	struct note_server srv = { echo_handle, &calls };
	struct note_uplink *u = NULL;
	uint8_t resp[8];
	size_t n = 0;

	ck_assert_r(note_uplink_local(&srv, &u), 0);
	ck_assert_r(note_uplink_call(u, NOTE_REC_QUERY,
	    (const uint8_t *)"abc", 3, resp, sizeof(resp), &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(resp[0], (uint8_t)NOTE_REC_QUERY);
	ck_assert_mem_eq(resp + 1, "abc", 3);
	/* the handler's error, and a reply larger than the caller's room */
	ck_assert_r(note_uplink_call(u, 0, NULL, 0, resp, sizeof(resp), &n),
	    ML_ERR_UNSUPPORTED);
	ck_assert_r(note_uplink_call(u, NOTE_REC_QUERY,
	    (const uint8_t *)"0123456789", 10, resp, sizeof(resp), &n),
	    ML_ERR_TOO_LARGE);
	ck_assert_int_eq(calls, 3);
	note_uplink_close(u);
	note_uplink_close(NULL);
}
END_TEST

struct custom {
	int	 calls, closed;
};

static int
custom_call(void *ctx, unsigned type, const uint8_t *req, size_t len,
    uint8_t *resp, size_t cap, size_t *ret_len)
{
	struct custom *c = ctx;

	c->calls++;
	if (cap < 1) {
		return ML_ERR_TOO_LARGE;
	}
	resp[0] = (uint8_t)(type + len);
	*ret_len = 1;
	return 0;
}

static void
custom_close(void *ctx)
{
	struct custom *c = ctx;

	c->closed++;
}

START_TEST(uplink_custom)
{
	static const struct note_uplink_ops ops = { custom_call, custom_close };
	struct custom c = { 0 };
	struct note_uplink *u = NULL;
	uint8_t resp[4];
	size_t n = 0;

	ck_assert_r(note_uplink_custom(&ops, &c, &u), 0);
	ck_assert_r(note_uplink_call(u, 0x40, (const uint8_t *)"xy", 2, resp,
	    sizeof(resp), &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(resp[0], 0x42);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.closed, 0);
	note_uplink_close(u);
	ck_assert_int_eq(c.closed, 1);
}
END_TEST

static Suite *
note_proto_suite(void)
{
	Suite *s = suite_create("note_proto");
	TCase *tc = tcase_create("note_proto");

	tcase_add_test(tc, reply_full);
	tcase_add_test(tc, reply_minimal);
	tcase_add_test(tc, reply_truncated);
	tcase_add_loop_test(tc, reply_malformed, 0,
	    sizeof(bad_replies) / sizeof(bad_replies[0]));
	tcase_add_test(tc, reasons);
	tcase_add_test(tc, uplink_local);
	tcase_add_test(tc, uplink_custom);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(note_proto_suite());
	int nf;

	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
