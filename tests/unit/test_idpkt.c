/*
 * ID-card upload packets, reassembly and retransmission (idread/idpkt.c,
 * idr_srv.c, idr_client.c) with injected loss, corruption, duplication and
 * reordering.  No chips: the upload is made here and goes through the
 * loopback link into a real idr_srv with the SAM emulator.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "ml_wipe.h"
#include "idr_testkit.h"
#include "mltest.h"

static const uint8_t test_id[IDR_ID_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static uint8_t test_key[IDR_KEY_LEN];

static void
setup(void)
{
	size_t i;

	for (i = 0; i < sizeof(test_key); i++) {
		test_key[i] = (uint8_t)(0xA0 + i);
	}
}

/* A plaintext of n bytes and the BEGIN that describes it. */
static uint8_t *
mk_upload(size_t n, uint16_t pkt, struct idr_begin *b)
{
	uint8_t *p = malloc(n);
	size_t i;

	ck_assert_ptr_nonnull(p);
	for (i = 0; i < n; i++) {
		p[i] = (uint8_t)(i * 31 + 7);
	}
	b->version = IDR_VERSION;
	b->pkt_size = pkt;
	b->total = (uint32_t)n;
	b->npkts = idr_npkts((uint32_t)n, pkt);
	ck_assert_r(ml_sha256(p, n, b->digest), 0);
	return p;
}

/* ---------------------------------------------------------------- BEGIN */

static const struct begin_vec {
	const char	*name;
	uint8_t		 ver;
	uint16_t	 npkts, pkt;
	uint32_t	 total;
	int		 want;
} begin_vecs[] = {
	{ "ok",		  1, 10, 256, 2400,	0 },
	{ "ok-exact",	  1, 4, 256, 1024,	0 },
	{ "one",	  1, 1, 4096, 1,	0 },
	{ "bad-version",  2, 10, 256, 2400,	ML_ERR_FORMAT },
	{ "npkts-low",	  1, 9, 256, 2400,	ML_ERR_FORMAT },
	{ "npkts-high",	  1, 11, 256, 2400,	ML_ERR_FORMAT },
	{ "zero-total",	  1, 0, 256, 0,		ML_ERR_FORMAT },
	{ "pkt-small",	  1, 160, 15, 2400,	ML_ERR_FORMAT },
	{ "pkt-big",	  1, 1, 4097, 2400,	ML_ERR_FORMAT },
	{ "total-big",	  1, 65, 256, IDR_MAX_TOTAL + 1, ML_ERR_TOO_LARGE },
	{ "too-many",	  1, 513, 16, 513 * 16,	ML_ERR_TOO_LARGE },
};

START_TEST(begin_vectors)
{
	const struct begin_vec *v = &begin_vecs[_i];
	uint8_t raw[64];
	struct idr_begin b, got;
	size_t n = 0;

	memset(&b, 0, sizeof(b));
	b.version = v->ver;
	b.npkts = v->npkts;
	b.pkt_size = v->pkt;
	b.total = v->total;
	memset(b.digest, 0x5c, sizeof(b.digest));
	/* hand-encode so that bad values reach the decoder */
	raw[n++] = v->ver;
	raw[n++] = (uint8_t)(v->npkts >> 8);
	raw[n++] = (uint8_t)v->npkts;
	raw[n++] = (uint8_t)(v->pkt >> 8);
	raw[n++] = (uint8_t)v->pkt;
	raw[n++] = (uint8_t)(v->total >> 24);
	raw[n++] = (uint8_t)(v->total >> 16);
	raw[n++] = (uint8_t)(v->total >> 8);
	raw[n++] = (uint8_t)v->total;
	memset(raw + n, 0x5c, 32);
	n += 32;
	ck_assert_msg(idr_begin_decode(raw, n, &got) == v->want, "%s",
	    v->name);
	if (v->want == 0) {
		struct ml_wr w = ml_wr_dyn(64);

		ck_assert_r(idr_begin_encode(&b, &w), 0);
		ck_assert_uint_eq(w.len, n);
		ck_assert_mem_eq(w.p, raw, n);
		ml_wr_free(&w);
	}
}
END_TEST

/* Every strict prefix of every message fails with ML_ERR_SHORT. */
START_TEST(prefixes_are_short)
{
	struct ml_wr w = ml_wr_dyn(8192);
	struct idr_begin b, bo;
	struct idr_ready rd, ro;
	struct idr_retx_ent e[3] = { { 1, 1 }, { 4, 2 }, { 7, 1 } }, eo[8];
	struct idr_pkt_hdr h;
	uint8_t *up, id[IDR_ID_LEN], round;
	size_t k, n;
	int reason;

	up = mk_upload(1000, 256, &b);
	ck_assert_r(idr_begin_encode(&b, &w), 0);
	for (k = 0; k < w.len; k++) {
		ck_assert_r(idr_begin_decode(w.p, k, &bo), ML_ERR_SHORT);
	}
	ck_assert_r(idr_begin_decode(w.p, w.len, &bo), 0);

	ml_wr_clear(&w);
	memset(&rd, 0, sizeof(rd));
	rd.version = IDR_VERSION;
	ck_assert_r(idr_ready_encode(&rd, &w), 0);
	for (k = 0; k < w.len; k++) {
		ck_assert_r(idr_ready_decode(w.p, k, &ro), ML_ERR_SHORT);
	}

	ml_wr_clear(&w);
	ck_assert_r(idr_end_encode(test_id, 3, &w), 0);
	for (k = 0; k < w.len; k++) {
		ck_assert_r(idr_end_decode(w.p, k, id, &round), ML_ERR_SHORT);
	}
	ml_wr_clear(&w);
	ck_assert_r(idr_abort_encode(test_id, ML_ERR_REMOVED, &w), 0);
	for (k = 0; k < w.len; k++) {
		ck_assert_r(idr_abort_decode(w.p, k, id, &reason),
		    ML_ERR_SHORT);
	}
	ck_assert_r(idr_abort_decode(w.p, w.len, id, &reason), 0);
	ck_assert_int_eq(reason, ML_ERR_REMOVED);

	ml_wr_clear(&w);
	ck_assert_r(idr_retx_encode(test_id, 1, e, 3, &w), 0);
	for (k = 0; k < w.len; k++) {
		ck_assert_r(idr_retx_decode(w.p, k, 8, id, &round, eo, 8, &n),
		    ML_ERR_SHORT);
	}
	ck_assert_r(idr_retx_decode(w.p, w.len, 8, id, &round, eo, 8, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(eo[1].index, 4);
	ck_assert_uint_eq(eo[1].why, IDR_WHY_DAMAGED);

	ml_wr_clear(&w);
	ck_assert_r(idr_pkt_seal(test_key, test_id, 1, 256, up, 1000, &w), 0);
	for (k = 0; k < w.len; k++) {
		ck_assert_r(idr_pkt_parse(w.p, k, &h), ML_ERR_SHORT);
	}
	ck_assert_r(idr_pkt_parse(w.p, w.len, &h), 0);
	ck_assert_uint_eq(h.index, 1);
	ck_assert_uint_eq(h.total, 4);
	ck_assert_uint_eq(h.len, 256);
	free(up);
	ml_wr_free(&w);
}
END_TEST

START_TEST(retx_rejects)
{
	struct idr_retx_ent eo[8];
	uint8_t id[IDR_ID_LEN], round, raw[64];
	size_t n;
	/* id(8) round(1) n(2) entries */
	static const uint8_t head[] = { 1, 2, 3, 4, 5, 6, 7, 8, 1 };

	memcpy(raw, head, sizeof(head));
	/* unsorted */
	memcpy(raw + 9, "\x00\x02" "\x00\x05\x01" "\x00\x04\x01", 8);
	ck_assert_r(idr_retx_decode(raw, 17, 8, id, &round, eo, 8, &n),
	    ML_ERR_FORMAT);
	/* index out of range */
	memcpy(raw + 9, "\x00\x01" "\x00\x08\x01", 5);
	ck_assert_r(idr_retx_decode(raw, 14, 8, id, &round, eo, 8, &n),
	    ML_ERR_FORMAT);
	/* bad why */
	memcpy(raw + 9, "\x00\x01" "\x00\x02\x03", 5);
	ck_assert_r(idr_retx_decode(raw, 14, 8, id, &round, eo, 8, &n),
	    ML_ERR_FORMAT);
	/* zero entries */
	memcpy(raw + 9, "\x00\x00", 2);
	ck_assert_r(idr_retx_decode(raw, 11, 8, id, &round, eo, 8, &n),
	    ML_ERR_FORMAT);
	/* trailing */
	memcpy(raw + 9, "\x00\x01" "\x00\x02\x01" "\xff", 6);
	ck_assert_r(idr_retx_decode(raw, 15, 8, id, &round, eo, 8, &n),
	    ML_ERR_TRAILING);
	/* over the caller's room */
	memcpy(raw + 9, "\x00\x02" "\x00\x01\x01" "\x00\x02\x01", 8);
	ck_assert_r(idr_retx_decode(raw, 17, 8, id, &round, eo, 1, &n),
	    ML_ERR_TOO_LARGE);
}
END_TEST

/* ---------------------------------------------------------------- reassembly */

START_TEST(asm_reorder_dup)
{
	struct ml_wr w = ml_wr_dyn(8192);
	struct idr_begin b;
	struct idr_asm a;
	const uint8_t *got;
	size_t n;
	uint8_t *up = mk_upload(2500, 256, &b);
	int i;

	ck_assert_uint_eq(b.npkts, 10);
	ck_assert_r(idr_asm_init(&a, &b, test_id, test_key, 100), 0);
	for (i = b.npkts - 1; i >= 0; i--) {
		ml_wr_clear(&w);
		ck_assert_r(idr_pkt_seal(test_key, test_id, (uint16_t)i, 256,
		    up, 2500, &w), 0);
		ck_assert_r(idr_asm_put(&a, w.p, w.len), 0);
		ck_assert_r(idr_asm_put(&a, w.p, w.len), 0);	/* dup */
	}
	ck_assert(idr_asm_complete(&a));
	ck_assert_uint_eq(a.dups, 10);
	ck_assert_r(idr_asm_finish(&a, &got, &n), 0);
	ck_assert_uint_eq(n, 2500);
	ck_assert_mem_eq(got, up, 2500);
	idr_asm_free(&a);
	free(up);
	ml_wr_free(&w);
}
END_TEST

/* A one-byte change anywhere in a packet is never stored. */
START_TEST(asm_tamper_every_byte)
{
	struct ml_wr w = ml_wr_dyn(8192);
	struct idr_retx_ent e[4];
	struct idr_begin b;
	struct idr_asm a;
	const uint8_t *got;
	size_t k, n;
	uint8_t *up = mk_upload(600, 256, &b);
	int rr;

	ck_assert_r(idr_asm_init(&a, &b, test_id, test_key, 100000), 0);
	ck_assert_r(idr_pkt_seal(test_key, test_id, 2, 256, up, 600, &w), 0);
	for (k = 0; k < w.len; k++) {
		w.p[k] ^= 0x01;
		rr = idr_asm_put(&a, w.p, w.len);
		ck_assert_msg(rr == ML_ERR_AUTH || rr == ML_ERR_FORMAT ||
		    rr == ML_ERR_NOT_FOUND || rr == ML_ERR_SHORT ||
		    rr == ML_ERR_TRAILING, "byte %zu: %s", k, ml_errname(rr));
		ck_assert_uint_eq(a.nhave, 0);
		w.p[k] ^= 0x01;
	}
	idr_asm_missing(&a, e, 4, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(e[2].index, 2);
	ck_assert_uint_eq(e[2].why, IDR_WHY_DAMAGED);
	ck_assert_uint_eq(e[0].why, IDR_WHY_MISSING);
	ck_assert_r(idr_asm_put(&a, w.p, w.len), 0);
	ck_assert_uint_eq(a.nhave, 1);
	ck_assert_r(idr_asm_finish(&a, &got, &n), ML_ERR_STATE);
	idr_asm_free(&a);
	free(up);
	ml_wr_free(&w);
}
END_TEST

START_TEST(asm_packet_limit)
{
	struct ml_wr w = ml_wr_dyn(8192);
	struct idr_begin b;
	struct idr_asm a;
	uint8_t *up = mk_upload(600, 256, &b);
	int i;

	ck_assert_r(idr_asm_init(&a, &b, test_id, test_key, 5), 0);
	ck_assert_r(idr_pkt_seal(test_key, test_id, 0, 256, up, 600, &w), 0);
	for (i = 0; i < 5; i++) {
		ck_assert_r(idr_asm_put(&a, w.p, w.len), 0);
	}
	ck_assert_r(idr_asm_put(&a, w.p, w.len), ML_ERR_TOO_LARGE);
	idr_asm_free(&a);
	free(up);
	ml_wr_free(&w);
}
END_TEST

START_TEST(asm_wrong_digest)
{
	struct ml_wr w = ml_wr_dyn(8192);
	struct idr_begin b;
	struct idr_asm a;
	const uint8_t *got;
	size_t n;
	uint8_t *up = mk_upload(300, 256, &b);

	b.digest[0] ^= 1;
	ck_assert_r(idr_asm_init(&a, &b, test_id, test_key, 10), 0);
	ck_assert_r(idr_pkt_seal(test_key, test_id, 0, 256, up, 300, &w), 0);
	ck_assert_r(idr_asm_put(&a, w.p, w.len), 0);
	ml_wr_clear(&w);
	ck_assert_r(idr_pkt_seal(test_key, test_id, 1, 256, up, 300, &w), 0);
	ck_assert_r(idr_asm_put(&a, w.p, w.len), 0);
	ck_assert(idr_asm_complete(&a));
	ck_assert_r(idr_asm_finish(&a, &got, &n), ML_ERR_AUTH);
	idr_asm_free(&a);
	free(up);
	ml_wr_free(&w);
}
END_TEST

START_TEST(result_roundtrip)
{
	struct ml_wr w = ml_wr_dyn(8192), info = ml_wr_dyn(8192);
	static const uint8_t other[IDR_ID_LEN] = { 9 };
	int status = 1;

	ck_assert_r(idr_result_encode(test_id, 0, test_key,
	    (const uint8_t *)"hello", 5, &w), 0);
	ck_assert_r(idr_result_decode(w.p, w.len, test_id, test_key, &status,
	    &info), 0);
	ck_assert_int_eq(status, 0);
	ck_assert_uint_eq(info.len, 5);
	ck_assert_mem_eq(info.p, "hello", 5);
	ml_wr_clear(&info);
	ck_assert_r(idr_result_decode(w.p, w.len, other, test_key, &status,
	    &info), ML_ERR_AUTH);
	w.p[w.len - 1] ^= 1;
	ck_assert_r(idr_result_decode(w.p, w.len, test_id, test_key, &status,
	    &info), ML_ERR_AUTH);
	ck_assert_uint_eq(info.len, 0);
	ml_wr_clear(&w);
	ck_assert_r(idr_result_encode(test_id, ML_ERR_AUTH, test_key, NULL, 0,
	    &w), 0);
	ck_assert_r(idr_result_decode(w.p, w.len, test_id, test_key, &status,
	    &info), 0);
	ck_assert_int_eq(status, ML_ERR_AUTH);
	ml_wr_free(&w);
	ml_wr_free(&info);
}
END_TEST

/* ---------------------------------------------------------------- end to end */

struct e2e {
	struct tk	 t;
	struct ml_wr	 cfg, data;
	struct idc_info	 want;
};

static void
e2e_init(struct e2e *e, const struct idr_srv_cfg *scfg, bool foreign)
{
	struct idc_config c;
	uint8_t key[IDC_SAM_KEY_LEN];
	size_t i;

	ck_assert_r(tk_init(&e->t, "/tmp", CACHE_MODE_MULTI, 0, scfg, false),
	    0);
	memset(&c, 0, sizeof(c));
	for (i = 0; i < IDC_SERIAL_LEN; i++) {
		c.serial[i] = (uint8_t)(0x10 + i);
	}
	memcpy(c.proto, "ISO14443B", 10);
	c.bitrate_kbps = 106;
	c.max_frame = 256;
	e->cfg = ml_wr_dyn(IDC_CONFIG_MAX);
	e->data = ml_wr_dyn(IDCARD_MAX_DATA);
	ck_assert_r(idc_config_encode(&c, &e->cfg), 0);
	tk_fill_info(42, &e->want);
	memcpy(key, e->t.sam_key, sizeof(key));
	if (foreign) {
		key[0] ^= 0xff;
	}
	ck_assert_r(idc_data_seal(key, c.serial, &e->want, &e->data), 0);
}

static void
e2e_fini(struct e2e *e)
{
	ml_wr_free(&e->cfg);
	ml_wr_free(&e->data);
	tk_fini(&e->t);
}

static uint8_t e2e_per_record;	/* 0: bursts (default), 1: PKT records */

static int
e2e_upload(struct e2e *e, const struct idr_faults *f,
    struct idr_upload_stats *st, struct idc_info *got)
{
	struct idr_link l;
	struct idr_upload_req req;
	struct ml_wr info = ml_wr_dyn(8192);
	int r;

	ck_assert_r(tk_loop_connect(&e->t, &l), 0);
	memset(&req, 0, sizeof(req));
	req.config = e->cfg.p;
	req.config_len = e->cfg.len;
	req.data = e->data.p;
	req.data_len = e->data.len;
	req.pkt_size = 128;
	req.per_record = e2e_per_record;
	req.faults = f;
	r = idr_upload(&l, &req, &info, st);
	if (r == 0 && got != NULL) {
		ck_assert_r(idc_info_decode(info.p, info.len, got), 0);
	}
	l.close(l.ctx);
	ml_wr_free(&info);
	return r;
}

static const struct fault_vec {
	const char	*name;
	struct idr_faults f;
	bool		 want_rounds;
} fault_vecs[] = {
	{ "clean",	{ .never = -1 },			false },
	{ "loss-10",	{ .seed = 1, .loss_pm = 100, .never = -1 },	true },
	{ "loss-30",	{ .seed = 2, .loss_pm = 300, .never = -1 },	true },
	{ "corrupt-20",	{ .seed = 3, .corrupt_pm = 200, .never = -1 },	true },
	{ "dup-50",	{ .seed = 4, .dup_pm = 500, .never = -1 },	false },
	{ "reorder",	{ .seed = 5, .reorder = true, .never = -1 },	false },
	{ "all",	{ .seed = 6, .loss_pm = 100, .corrupt_pm = 100,
			  .dup_pm = 100, .reorder = true, .never = -1 },	true },
};

START_TEST(upload_faults_recovered)
{
	const struct fault_vec *v = &fault_vecs[_i];
	struct idr_upload_stats st;
	struct idr_srv_stats ss;
	struct idc_info *got = calloc(1, sizeof(*got));
	struct e2e e;

	e2e_per_record = (uint8_t)(_i % 2);	/* both record shapes */
	e2e_init(&e, NULL, false);
	ck_assert_msg(e2e_upload(&e, &v->f, &st, got) == 0, "%s", v->name);
	ck_assert_str_eq(got->idnum, e.want.idnum);
	ck_assert_str_eq(got->name, e.want.name);
	ck_assert_uint_eq(got->photo_len, e.want.photo_len);
	if (v->want_rounds) {
		ck_assert_msg(st.rounds >= 1 && st.resent >= 1, "%s", v->name);
	} else {
		ck_assert_msg(st.rounds == 0, "%s: %u rounds", v->name,
		    st.rounds);
	}
	idr_srv_get_stats(e.t.srv, &ss);
	ck_assert_uint_eq(ss.ok, 1);
	ck_assert_uint_eq(ss.live, 0);
	idc_info_clear(got);
	free(got);
	e2e_fini(&e);
}
END_TEST

/* The same with the other record shape. */
START_TEST(upload_faults_recovered_pkt)
{
	const struct fault_vec *v = &fault_vecs[_i];
	struct idr_upload_stats st;
	struct e2e e;

	e2e_per_record = (uint8_t)((_i + 1) % 2);
	e2e_init(&e, NULL, false);
	ck_assert_msg(e2e_upload(&e, &v->f, &st, NULL) == 0, "%s", v->name);
	e2e_per_record = 0;
	e2e_fini(&e);
}
END_TEST

/* BURST framing. */
START_TEST(burst_parse)
{
	static const uint8_t ok2[] = { 2, 0, 1, 0xaa, 0, 2, 0xbb, 0xcc };
	static const uint8_t zero[] = { 0 };
	static const uint8_t many[] = { IDR_BURST_MAX + 1, 0, 1, 0xaa };
	struct ml_rd rd;
	const uint8_t *p;
	size_t n, k;
	uint8_t cnt;

	rd = ML_RD_INIT(ok2, sizeof(ok2));
	ck_assert_r(idr_burst_begin(&rd, &cnt), 0);
	ck_assert_uint_eq(cnt, 2);
	ck_assert_r(idr_burst_next(&rd, &p, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(p[0], 0xaa);
	ck_assert_r(idr_burst_next(&rd, &p, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_r(ml_rd_end(&rd), 0);
	for (k = 4; k < sizeof(ok2); k++) {	/* truncated second packet */
		rd = ML_RD_INIT(ok2, k);
		ck_assert_r(idr_burst_begin(&rd, &cnt), 0);
		ck_assert_r(idr_burst_next(&rd, &p, &n), 0);
		ck_assert_r(idr_burst_next(&rd, &p, &n), ML_ERR_SHORT);
		ck_assert_uint_eq(rd.off, 4);	/* cursor unmoved */
	}
	rd = ML_RD_INIT(zero, sizeof(zero));
	ck_assert_r(idr_burst_begin(&rd, &cnt), ML_ERR_FORMAT);
	ck_assert_uint_eq(rd.off, 0);
	rd = ML_RD_INIT(many, sizeof(many));
	ck_assert_r(idr_burst_begin(&rd, &cnt), ML_ERR_FORMAT);
}
END_TEST

/* Big packets: bursts are cut at the channel's record size. */
START_TEST(upload_big_packets)
{
	struct idr_link l;
	struct idr_upload_req req;
	struct idr_upload_stats st;
	struct ml_wr info = ml_wr_dyn(8192);
	struct e2e e;

	e2e_init(&e, NULL, false);
	ck_assert_r(tk_loop_connect(&e.t, &l), 0);
	memset(&req, 0, sizeof(req));
	req.config = e.cfg.p;
	req.config_len = e.cfg.len;
	req.data = e.data.p;
	req.data_len = e.data.len;
	req.pkt_size = IDR_PKT_MIN;		/* 150 packets, 10 bursts */
	req.per_record = IDR_BURST_MAX;
	ck_assert_r(idr_upload(&l, &req, &info, &st), 0);
	ck_assert_uint_ge(st.pkts, 140);
	ml_wr_clear(&info);
	req.pkt_size = IDR_PKT_MAX;		/* 1 packet */
	ck_assert_r(idr_upload(&l, &req, &info, &st), 0);
	ck_assert_uint_eq(st.pkts, 1);
	l.close(l.ctx);
	ml_wr_free(&info);
	e2e_fini(&e);
}
END_TEST

/* A packet that never arrives: the server gives up after its rounds. */
START_TEST(upload_never_arrives)
{
	struct idr_faults f = { .never = 3 };
	struct idr_srv_cfg sc = { .max_rounds = 4 };
	struct idr_upload_stats st;
	struct idr_srv_stats ss;
	struct e2e e;

	e2e_init(&e, &sc, false);
	ck_assert_r(e2e_upload(&e, &f, &st, NULL), ML_ERR_TIMEOUT);
	ck_assert_uint_eq(st.rounds, 4);
	ck_assert_uint_eq(st.resent, 4);	/* only packet 3, each round */
	idr_srv_get_stats(e.t.srv, &ss);
	ck_assert_uint_eq(ss.failed, 1);
	ck_assert_uint_eq(ss.live, 0);		/* freed, nothing kept */
	e2e_fini(&e);
}
END_TEST

/* SIGHUP's new limits apply to the reads that begin afterwards. */
START_TEST(upload_limits_reloaded)
{
	struct idr_faults f = { .never = 3 };
	struct idr_srv_cfg sc = { .max_rounds = 4 };
	struct idr_upload_stats st;
	struct e2e e;

	e2e_init(&e, &sc, false);
	idr_srv_set_limits(e.t.srv, 0, 2);
	ck_assert_r(e2e_upload(&e, &f, &st, NULL), ML_ERR_TIMEOUT);
	ck_assert_uint_eq(st.rounds, 2);	/* the new limit, told in READY */
	idr_srv_set_limits(e.t.srv, 0, 0);	/* 0: the default */
	ck_assert_r(e2e_upload(&e, &f, &st, NULL), ML_ERR_TIMEOUT);
	ck_assert_uint_eq(st.rounds, IDR_MAX_ROUNDS);
	e2e_fini(&e);
}
END_TEST

/* Deadline: an END after it gets ML_ERR_TIMEOUT. */
static int
slow_check(void *ctx)
{
	usleep(60 * 1000);
	return 0;
}

START_TEST(upload_deadline)
{
	struct idr_srv_cfg sc = { .deadline_ms = 30 };
	struct idr_link l;
	struct idr_upload_req req;
	struct ml_wr info = ml_wr_dyn(8192);
	struct e2e e;

	e2e_init(&e, &sc, false);
	ck_assert_r(tk_loop_connect(&e.t, &l), 0);
	memset(&req, 0, sizeof(req));
	req.config = e.cfg.p;
	req.config_len = e.cfg.len;
	req.data = e.data.p;
	req.data_len = e.data.len;
	req.check = slow_check;
	ck_assert_r(idr_upload(&l, &req, &info, NULL), ML_ERR_TIMEOUT);
	l.close(l.ctx);
	ml_wr_free(&info);
	e2e_fini(&e);
}
END_TEST

/* A reader that goes silent: its session is reaped after the deadline
 * and an error record names it (ID-3). */
static int rec_errors;
static char rec_serial[64];

static void
rec_cb(void *ctx, const struct hs_peer *peer, int ev, const char *detail)
{
	if (ev == 2 && strstr(detail, "expired") != NULL) {
		rec_errors++;
		snprintf(rec_serial, sizeof(rec_serial), "%s", peer->serial);
	}
}

START_TEST(silent_reader_reaped)
{
	struct idr_srv_cfg sc = { .deadline_ms = 20, .record = rec_cb };
	struct ml_wr w = ml_wr_dyn(256), reply = ml_wr_dyn(HS_MAX_RECORD);
	struct idr_srv_stats ss;
	struct idr_begin b;
	uint8_t rt = 0;
	uint8_t *up = mk_upload(500, 256, &b);
	struct e2e e;

	rec_errors = 0;
	e2e_init(&e, &sc, false);
	ck_assert_r(idr_begin_encode(&b, &w), 0);
	ck_assert_r(idr_srv_handle(e.t.srv, &e.t.peer, IDR_REC_BEGIN, w.p,
	    w.len, &reply, &rt), 0);
	idr_srv_get_stats(e.t.srv, &ss);
	ck_assert_uint_eq(ss.live, 1);
	usleep(40 * 1000);
	idr_srv_reap(e.t.srv);
	idr_srv_get_stats(e.t.srv, &ss);
	ck_assert_uint_eq(ss.live, 0);
	ck_assert_uint_eq(ss.expired, 1);
	ck_assert_int_eq(rec_errors, 1);
	ck_assert_str_eq(rec_serial, e.t.peer.serial);
	free(up);
	ml_wr_free(&w);
	ml_wr_free(&reply);
	e2e_fini(&e);
}
END_TEST

/* ID-10: one server + SAM shared by many readers at once, with loss. */
struct conc {
	struct e2e	*e;
	int		 idx;
	int		 fails;
};

static void *
conc_run(void *arg)
{
	struct conc *c = arg;
	struct idr_faults f = { .loss_pm = 100, .corrupt_pm = 50, .never = -1 };
	struct hs_peer peer = c->e->t.peer;
	struct idr_upload_req req;
	struct ml_wr info = ml_wr_dyn(8192);
	struct idr_link l;
	int i;

	snprintf(peer.serial, sizeof(peer.serial), "RDR-C-%02d", c->idx);
	memset(&req, 0, sizeof(req));
	req.config = c->e->cfg.p;
	req.config_len = c->e->cfg.len;
	req.data = c->e->data.p;
	req.data_len = c->e->data.len;
	req.faults = &f;
	for (i = 0; i < 25; i++) {
		f.seed = (uint64_t)(c->idx * 1000 + i);
		ml_wr_clear(&info);
		if (idr_link_loop(idr_srv_handle, c->e->t.srv, &peer, &l) != 0) {
			c->fails++;
			continue;
		}
		if (idr_upload(&l, &req, &info, NULL) != 0) {
			c->fails++;
		}
		l.close(l.ctx);
	}
	ml_wr_free(&info);
	return NULL;
}

START_TEST(many_readers_at_once)
{
	struct idr_srv_stats ss;
	struct sam_stats sst;
	pthread_t tid[8];
	struct conc c[8];
	struct e2e e;
	int i;

	e2e_init(&e, NULL, false);
	for (i = 0; i < 8; i++) {
		c[i].e = &e;
		c[i].idx = i;
		c[i].fails = 0;
		ck_assert_int_eq(pthread_create(&tid[i], NULL, conc_run, &c[i]),
		    0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(tid[i], NULL);
		ck_assert_int_eq(c[i].fails, 0);
	}
	idr_srv_get_stats(e.t.srv, &ss);
	ck_assert_uint_eq(ss.ok, 200);
	ck_assert_uint_eq(ss.live, 0);
	sam_get_stats(e.t.sam, &sst);
	ck_assert_uint_eq(sst.decodes, 200);
	e2e_fini(&e);
}
END_TEST

/* The SAM cannot decrypt a card made under another key. */
START_TEST(upload_unknown_card)
{
	struct idr_srv_stats ss;
	struct sam_stats sst;
	struct e2e e;

	e2e_init(&e, NULL, true);
	ck_assert_r(e2e_upload(&e, NULL, NULL, NULL), ML_ERR_AUTH);
	idr_srv_get_stats(e.t.srv, &ss);
	ck_assert_uint_eq(ss.failed, 1);
	sam_get_stats(e.t.sam, &sst);
	ck_assert_uint_eq(sst.failures, 1);
	e2e_fini(&e);
}
END_TEST

/* Another reader cannot touch an upload it did not begin. */
START_TEST(upload_bound_to_peer)
{
	struct ml_wr w = ml_wr_dyn(8192), reply = ml_wr_dyn(HS_MAX_RECORD);
	struct hs_peer other;
	struct idr_begin b;
	struct idr_ready rdy;
	uint8_t rt = 0;
	uint8_t *up = mk_upload(500, 256, &b);
	struct e2e e;

	e2e_init(&e, NULL, false);
	ck_assert_r(idr_begin_encode(&b, &w), 0);
	ck_assert_r(idr_srv_handle(e.t.srv, &e.t.peer, IDR_REC_BEGIN, w.p,
	    w.len, &reply, &rt), 0);
	ck_assert_uint_eq(rt, IDR_REC_READY);
	ck_assert_r(idr_ready_decode(reply.p, reply.len, &rdy), 0);
	other = e.t.peer;
	snprintf(other.serial, sizeof(other.serial), "RDR-OTHER");
	ml_wr_clear(&w);
	ml_wr_clear(&reply);
	ck_assert_r(idr_end_encode(rdy.upload_id, 0, &w), 0);
	ck_assert_r(idr_srv_handle(e.t.srv, &other, IDR_REC_END, w.p, w.len,
	    &reply, &rt), ML_ERR_NOT_FOUND);
	/* the owner still can */
	ck_assert_r(idr_srv_handle(e.t.srv, &e.t.peer, IDR_REC_END, w.p,
	    w.len, &reply, &rt), 0);
	ck_assert_uint_eq(rt, IDR_REC_RETX);
	ml_wipe(&rdy, sizeof(rdy));
	free(up);
	ml_wr_free(&w);
	ml_wr_free(&reply);
	e2e_fini(&e);
}
END_TEST

/* ID-8 goal: selective retransmission sends at most half the bytes that
 * re-sending the whole upload would, at 10% loss. */
START_TEST(selective_beats_whole)
{
	struct idr_faults sel = { .seed = 77, .loss_pm = 100, .never = -1 };
	struct idr_faults whole = sel;
	struct idr_upload_stats s1, s2;
	uint64_t extra_sel = 0, extra_whole = 0;
	struct e2e e;
	int i;

	whole.whole_resend = true;
	e2e_init(&e, NULL, false);
	for (i = 0; i < 20; i++) {
		sel.seed = whole.seed = 1000 + (uint64_t)i;
		ck_assert_r(e2e_upload(&e, &sel, &s1, NULL), 0);
		ck_assert_r(e2e_upload(&e, &whole, &s2, NULL), 0);
		extra_sel += s1.resent;
		extra_whole += s2.resent;
	}
	ck_assert_msg(2 * extra_sel <= extra_whole, "selective %llu vs "
	    "whole %llu packets re-sent", (unsigned long long)extra_sel,
	    (unsigned long long)extra_whole);
	e2e_fini(&e);
}
END_TEST

static Suite *
idpkt_suite(void)
{
	Suite *s = suite_create("idpkt");
	TCase *tc = tcase_create("wire");
	TCase *te = tcase_create("upload");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_loop_test(tc, begin_vectors, 0, ML_NELEM(begin_vecs));
	tcase_add_test(tc, prefixes_are_short);
	tcase_add_test(tc, retx_rejects);
	tcase_add_test(tc, asm_reorder_dup);
	tcase_add_test(tc, asm_tamper_every_byte);
	tcase_add_test(tc, asm_packet_limit);
	tcase_add_test(tc, asm_wrong_digest);
	tcase_add_test(tc, result_roundtrip);
	tcase_add_test(tc, burst_parse);
	suite_add_tcase(s, tc);

	tcase_set_timeout(te, 60);
	tcase_add_loop_test(te, upload_faults_recovered, 0,
	    ML_NELEM(fault_vecs));
	tcase_add_loop_test(te, upload_faults_recovered_pkt, 0,
	    ML_NELEM(fault_vecs));
	tcase_add_test(te, upload_never_arrives);
	tcase_add_test(te, upload_limits_reloaded);
	tcase_add_test(te, upload_big_packets);
	tcase_add_test(te, upload_deadline);
	tcase_add_test(te, upload_unknown_card);
	tcase_add_test(te, silent_reader_reaped);
	tcase_add_test(te, many_readers_at_once);
	tcase_add_test(te, upload_bound_to_peer);
	tcase_add_test(te, selective_beats_whole);
	suite_add_tcase(s, te);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(idpkt_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
