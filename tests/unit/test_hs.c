/*
 * Handshakes A and B and the channel, both ends in process (hs/ over a
 * memory pipe).  Every bad-input case of ID-2, ID-4 and ID-5 is an
 * exact-error test here: the result code of the side that must stop, and
 * the alert (reason) it records, at the earliest message.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "test_hs_fixture.h"

#define ck_assert_r(expr, want)	do {					\
	int r_ = (expr);						\
	ck_assert_msg(r_ == (want), "%s = %s, want %s", #expr,		\
	    ml_errname(r_), ml_errname(want));				\
} while (0)
#define ck_assert_alert(got, want)					\
	ck_assert_msg((got) == (want), "alert %s, want %s",		\
	    hs_alert_name(got), hs_alert_name(want))

/* ---- fixture (built once, before the fork of each test) ---- */

static struct hs_ca *ca, *ca2;
static struct hs_trust *trust, *trust_crl;
static struct fx_party srv, srv_foreign, rdr, rdr2, rdr_foreign, rdr_expired,
    rdr_revoked, rdr_signonly, stn;
static struct fx_reg reg;

static void
reg_add(const struct fx_party *p, int kind, int flagged)
{
	struct fx_reg_entry *e = &reg.e[reg.n++];

	snprintf(e->serial, sizeof(e->serial), "%s", p->serial);
	snprintf(e->certno, sizeof(e->certno), "%s", p->certno);
	e->kind = kind;
	e->flagged = flagged;
}

static void
fixture(void)
{
	uint8_t *der, *crl = NULL;
	size_t len, crl_len = 0;
	uint64_t revoked[] = { 0x66 };

	if (hs_ca_create("mintline test root", 30, &ca) != 0 ||
	    hs_ca_create("another root", 30, &ca2) != 0) {
		fx_die("ca");
	}
	fx_party_make(&srv, ca, "server", NULL, 2, 60, 86400);
	fx_party_make(&srv_foreign, ca2, "server", NULL, 2, 60, 86400);
	fx_party_make(&rdr, ca, "reader", "RDR-0001", 0x10, 60, 86400);
	fx_party_make(&rdr2, ca, "reader", "RDR-0002", 0x11, 60, 86400);
	fx_party_make(&rdr_foreign, ca2, "reader", "RDR-0003", 0x12, 60, 86400);
	fx_party_make(&rdr_expired, ca, "reader", "RDR-0004", 0x13,
	    10 * 86400, 86400);
	fx_party_make(&rdr_revoked, ca, "reader", "RDR-0005", 0x66, 60, 86400);
	fx_party_make(&rdr_signonly, ca, "reader", "RDR-0006", 0x14, 60, 86400);
	fx_party_reissue(&rdr_signonly, &rdr_signonly, ca, "reader", "RDR-0006",
	    0x15, 60, 86400, true);
	fx_party_make(&stn, ca, "station", "STN-01", 0x20, 60, 86400);
	if (hs_ca_root_der(ca, &der, &len) != 0 ||
	    hs_trust_new_der(der, len, NULL, 0, &trust) != 0 ||
	    hs_ca_crl(ca, revoked, 1, 86400, &crl, &crl_len) != 0 ||
	    hs_trust_new_der(der, len, crl, crl_len, &trust_crl) != 0) {
		fx_die("trust");
	}
	free(der);
	free(crl);
	reg_add(&rdr, HS_KIND_READER, 0);
	reg_add(&rdr2, HS_KIND_READER, 1);		/* flagged */
	reg_add(&rdr_foreign, HS_KIND_READER, 0);
	reg_add(&rdr_expired, HS_KIND_READER, 0);
	reg_add(&rdr_revoked, HS_KIND_READER, 0);
	reg_add(&rdr_signonly, HS_KIND_READER, 0);
	reg_add(&stn, HS_KIND_STATION, 0);
}

/* Each TCase builds the fixture once and frees it after its last test, so
 * that a CK_FORK=no run (valgrind) has nothing left over. */
static void
fixture_free(void)
{
	struct fx_party *all[] = { &srv, &srv_foreign, &rdr, &rdr2,
	    &rdr_foreign, &rdr_expired, &rdr_revoked, &rdr_signonly, &stn };
	size_t i;

	for (i = 0; i < ML_NELEM(all); i++) {
		fx_party_free(all[i]);
	}
	hs_trust_free(trust);
	hs_trust_free(trust_crl);
	hs_ca_free(ca);
	hs_ca_free(ca2);
	trust = trust_crl = NULL;
	ca = ca2 = NULL;
	memset(&reg, 0, sizeof(reg));
}

/* Run one handshake of flow for reader p; server uses trust t. */
static void
run(struct fx_run *fr, struct fx_party *p, enum hs_flow flow,
    const struct hs_trust *t, fx_hook_fn hook, void *arg)
{
	struct hs_client_cfg cc = fx_client_cfg(p, flow, trust);
	struct hs_server_cfg sc = fx_server_cfg(&srv, t, &reg);

	if (p == &stn) {
		cc.kind = HS_KIND_STATION;
	}
	fx_run(fr, &cc, &sc, hook, arg);
}

static const enum hs_flow flows[] = { HS_FLOW_A, HS_FLOW_B };

/* ---- good paths ---- */

START_TEST(good_handshake)
{
	struct fx_run fr;
	struct hs_rl crl, srl;
	uint8_t buf[256], type = 0xff;
	size_t n = 0;
	struct ml_wr w = ml_wr_dyn(1 << 17);
	struct ml_rd rd, body;
	const struct hs_peer *peer;

	run(&fr, &rdr, flows[_i], trust, NULL, NULL);
	ck_assert_r(fr.cr, 0);
	ck_assert_r(fr.sr, 0);
	ck_assert(hs_is_done(fr.c) && hs_is_done(fr.s));
	ck_assert_int_eq(fr.nmsgs, flows[_i] == HS_FLOW_A ? 4 : 3);
	peer = hs_peer(fr.s);
	ck_assert_str_eq(peer->serial, "RDR-0001");
	ck_assert_str_eq(peer->certno, "10");
	ck_assert_int_eq(peer->flow, flows[_i]);
	ck_assert_int_eq(hs_peer(fr.c)->kind, 0);	/* the server */

	/* channel both ways, then a one-byte tamper must fail */
	ck_assert_r(hs_rl_init(&crl, fr.c), 0);
	ck_assert_r(hs_rl_init(&srl, fr.s), 0);
	ck_assert_r(hs_rl_seal(&crl, HS_REC_APP, "hello", 5, &w), 0);
	rd = ML_RD_INIT(w.p, w.len);
	ck_assert_r(hs_frame_next(&rd, HS_MAX_FRAME, &body), 0);
	ck_assert_r(hs_rl_open(&srl, ml_rd_ptr(&body), ml_rd_left(&body), &type,
	    buf, sizeof(buf), &n), 0);
	ck_assert_int_eq(type, HS_REC_APP);
	ck_assert_int_eq(n, 5);
	ck_assert(memcmp(buf, "hello", 5) == 0);
	ml_wr_clear(&w);
	ck_assert_r(hs_rl_seal(&srl, HS_REC_APP + 1, "world!", 6, &w), 0);
	rd = ML_RD_INIT(w.p, w.len);
	ck_assert_r(hs_frame_next(&rd, HS_MAX_FRAME, &body), 0);
	ck_assert_r(hs_rl_open(&crl, ml_rd_ptr(&body), ml_rd_left(&body), &type,
	    buf, sizeof(buf), &n), 0);
	ck_assert_int_eq(n, 6);
	ml_wr_clear(&w);
	ck_assert_r(hs_rl_seal(&crl, HS_REC_APP, "again", 5, &w), 0);
	w.p[4 + 12] ^= 0x01;				/* one ciphertext byte */
	ck_assert_r(hs_rl_open(&srl, w.p + 4, w.len - 4, &type, buf,
	    sizeof(buf), &n), ML_ERR_AUTH);
	ck_assert(srl.dead);
	ck_assert_r(hs_rl_open(&srl, w.p + 4, w.len - 4, &type, buf,
	    sizeof(buf), &n), ML_ERR_STATE);		/* session over */
	ml_wr_free(&w);
	hs_rl_wipe(&crl);
	hs_rl_wipe(&srl);
	fx_run_free(&fr);
}
END_TEST

START_TEST(good_station)
{
	struct fx_run fr;

	run(&fr, &stn, flows[_i], trust, NULL, NULL);
	ck_assert_r(fr.sr, 0);
	ck_assert_r(fr.cr, 0);
	ck_assert_int_eq(hs_peer(fr.s)->kind, HS_KIND_STATION);
	fx_run_free(&fr);
}
END_TEST

START_TEST(keys_agree_and_differ)
{
	struct fx_run fr;
	uint8_t ctx_[32], crx[32], stx[32], srx[32];

	run(&fr, &rdr, flows[_i], trust, NULL, NULL);
	ck_assert_r(hs_keys(fr.c, ctx_, crx), 0);
	ck_assert_r(hs_keys(fr.s, stx, srx), 0);
	ck_assert(memcmp(ctx_, srx, 32) == 0);
	ck_assert(memcmp(crx, stx, 32) == 0);
	ck_assert(memcmp(ctx_, crx, 32) != 0);		/* one key per direction */
	fx_run_free(&fr);
}
END_TEST

/* ---- hooks ---- */

struct replace {
	int		 idx;		/* message index to replace */
	const uint8_t	*p;
	size_t		 len;
	int		 flip;		/* >= 0: flip this byte (from the end if < 0 via len) */
	bool		 from_end;
};

static void
hook_replace(void *arg, int idx, bool from_client, struct ml_wr *b)
{
	struct replace *rp = arg;

	if (idx != rp->idx) {
		return;
	}
	if (rp->p != NULL) {
		ml_wr_clear(b);
		if (ml_wr_bytes(b, rp->p, rp->len) != 0) {
			fx_die("replace");
		}
	}
	if (rp->flip >= 0) {
		size_t at = rp->from_end ? b->len - 1 - (size_t)rp->flip :
		    (size_t)rp->flip;
		b->p[at] ^= 0x80;
	}
}

/* ---- ID-5: the client's first authenticated message ---- */

START_TEST(replay_from_earlier_session)
{
	struct fx_run old, fr;
	struct replace rp = { .idx = 2, .flip = -1 };

	run(&old, &rdr, flows[_i], trust, NULL, NULL);
	ck_assert_r(old.sr, 0);
	rp.p = old.msgs[2].p;		/* READER_AUTH / READER_KEYX */
	rp.len = old.msgs[2].len;
	run(&fr, &rdr, flows[_i], trust, hook_replace, &rp);
	ck_assert_r(fr.sr, ML_ERR_AUTH);
	ck_assert_alert(fr.salert, HS_ALERT_R1);
	if (flows[_i] == HS_FLOW_A) {
		ck_assert_r(fr.cr, ML_ERR_REJECTED);	/* the alert reached it */
		ck_assert_alert(fr.calert, HS_ALERT_R1);
	} else {
		/* flow B: the client is done after READER_KEYX (ID-4 has no
		 * server reply); it meets the alert on the channel */
		ck_assert_r(fr.cr, ML_ERR_STATE);
	}
	fx_run_free(&old);
	fx_run_free(&fr);
}
END_TEST

/* Two concurrent sessions; the first authenticated message of one is
 * spliced into the other. */
START_TEST(splice_concurrent_sessions)
{
	struct hs_client_cfg cc1 = fx_client_cfg(&rdr, flows[_i], trust);
	struct hs_client_cfg cc2 = fx_client_cfg(&rdr, flows[_i], trust);
	struct hs_server_cfg sc = fx_server_cfg(&srv, trust, &reg);
	struct hs *c1, *c2, *s1, *s2;
	struct ml_wr o1 = ml_wr_dyn(1 << 16), o2 = ml_wr_dyn(1 << 16);
	struct ml_wr p1 = ml_wr_dyn(1 << 16), p2 = ml_wr_dyn(1 << 16);
	struct ml_rd rd, b;

	ck_assert_r(hs_client_new(&cc1, &c1), 0);
	ck_assert_r(hs_client_new(&cc2, &c2), 0);
	ck_assert_r(hs_server_new(&sc, &s1), 0);
	ck_assert_r(hs_server_new(&sc, &s2), 0);
	/* KEYREQ -> both servers, challenges -> clients */
	ck_assert_r(hs_advance(c1, NULL, 0, &o1), 0);
	ck_assert_r(hs_advance(c2, NULL, 0, &o2), 0);
	rd = ML_RD_INIT(o1.p, o1.len);
	ck_assert_r(hs_frame_next(&rd, HS_MAX_FRAME, &b), 0);
	ck_assert_r(hs_advance(s1, ml_rd_ptr(&b), ml_rd_left(&b), &p1), 0);
	rd = ML_RD_INIT(o2.p, o2.len);
	ck_assert_r(hs_frame_next(&rd, HS_MAX_FRAME, &b), 0);
	ck_assert_r(hs_advance(s2, ml_rd_ptr(&b), ml_rd_left(&b), &p2), 0);
	ml_wr_clear(&o1);
	ml_wr_clear(&o2);
	rd = ML_RD_INIT(p1.p, p1.len);
	ck_assert_r(hs_frame_next(&rd, HS_MAX_FRAME, &b), 0);
	ck_assert_r(hs_advance(c1, ml_rd_ptr(&b), ml_rd_left(&b), &o1), 0);
	rd = ML_RD_INIT(p2.p, p2.len);
	ck_assert_r(hs_frame_next(&rd, HS_MAX_FRAME, &b), 0);
	ck_assert_r(hs_advance(c2, ml_rd_ptr(&b), ml_rd_left(&b), &o2), 0);
	/* splice: session 1's authenticated message into session 2 */
	ml_wr_clear(&p2);
	rd = ML_RD_INIT(o1.p, o1.len);
	ck_assert_r(hs_frame_next(&rd, HS_MAX_FRAME, &b), 0);
	ck_assert_r(hs_advance(s2, ml_rd_ptr(&b), ml_rd_left(&b), &p2),
	    ML_ERR_AUTH);
	ck_assert_alert(hs_alert(s2), HS_ALERT_R1);
	/* and session 1 still completes with its own message */
	ml_wr_clear(&p1);
	ck_assert_r(hs_advance(s1, ml_rd_ptr(&b), ml_rd_left(&b), &p1), 0);
	ck_assert(flows[_i] == HS_FLOW_B ? hs_is_done(s1) : p1.len > 0);
	ml_wr_free(&o1);
	ml_wr_free(&o2);
	ml_wr_free(&p1);
	ml_wr_free(&p2);
	hs_free(c1);
	hs_free(c2);
	hs_free(s1);
	hs_free(s2);
}
END_TEST

START_TEST(forged_signature)
{
	struct fx_run fr;
	struct replace rp = { .idx = 2, .flip = 5, .from_end = true };

	run(&fr, &rdr, flows[_i], trust, hook_replace, &rp);
	ck_assert_r(fr.sr, ML_ERR_AUTH);
	ck_assert_alert(fr.salert, HS_ALERT_SIG);
	fx_run_free(&fr);
}
END_TEST

START_TEST(tampered_signed_field)
{
	struct fx_run fr;
	/* flip a byte of the sealed R2 / the chain: signature covers it */
	struct replace rp = { .idx = 2, .flip = 70, .from_end = true };

	run(&fr, &rdr, flows[_i], trust, hook_replace, &rp);
	ck_assert_int_ne(fr.sr, 0);
	ck_assert(fr.salert == HS_ALERT_SIG || fr.salert == HS_ALERT_CERT ||
	    fr.salert == HS_ALERT_FORMAT);
	fx_run_free(&fr);
}
END_TEST

START_TEST(cert_from_another_ca)
{
	struct fx_run fr;

	run(&fr, &rdr_foreign, flows[_i], trust, NULL, NULL);
	ck_assert_r(fr.sr, ML_ERR_CERT);
	ck_assert_alert(fr.salert, HS_ALERT_CERT);
	fx_run_free(&fr);
}
END_TEST

START_TEST(cert_expired)
{
	struct fx_run fr;

	run(&fr, &rdr_expired, flows[_i], trust, NULL, NULL);
	ck_assert_r(fr.sr, ML_ERR_CERT);
	ck_assert_alert(fr.salert, HS_ALERT_CERT);
	fx_run_free(&fr);
}
END_TEST

START_TEST(cert_revoked)
{
	struct fx_run fr;

	run(&fr, &rdr_revoked, flows[_i], trust_crl, NULL, NULL);
	ck_assert_r(fr.sr, ML_ERR_CERT);
	ck_assert_alert(fr.salert, HS_ALERT_REVOKED);
	fx_run_free(&fr);
	/* the same reader passes where no CRL is configured, and a good
	 * reader passes the CRL check */
	run(&fr, &rdr_revoked, flows[_i], trust, NULL, NULL);
	ck_assert_r(fr.sr, 0);
	fx_run_free(&fr);
	run(&fr, &rdr, flows[_i], trust_crl, NULL, NULL);
	ck_assert_r(fr.sr, 0);
	fx_run_free(&fr);
}
END_TEST

/* A CRL reload revokes at once, even a certificate whose good verdict is
 * cached. */
START_TEST(crl_reload)
{
	struct hs_trust *t;
	struct fx_run fr;
	uint8_t *der, *crl0, *crl1;
	size_t len, l0, l1;
	uint64_t none[1] = { 0x12345 }, rev[1] = { 0x66 };
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/test-hs-crl-%d.der", (int)getpid());
	ck_assert_r(hs_ca_root_der(ca, &der, &len), 0);
	ck_assert_r(hs_ca_crl(ca, none, 1, 86400, &crl0, &l0), 0);
	ck_assert_r(hs_ca_crl(ca, rev, 1, 86400, &crl1, &l1), 0);
	ck_assert_r(hs_trust_new_der(der, len, crl0, l0, &t), 0);
	run(&fr, &rdr_revoked, flows[_i], t, NULL, NULL);
	ck_assert_r(fr.sr, 0);				/* cached as good */
	fx_run_free(&fr);
	ck_assert_r(hs_trust_reload_crl(t, "/nonexistent.crl"), ML_ERR_CERT);
	run(&fr, &rdr_revoked, flows[_i], t, NULL, NULL);
	ck_assert_r(fr.sr, 0);				/* old CRL stays */
	fx_run_free(&fr);
	ck_assert((f = fopen(path, "wb")) != NULL);
	ck_assert_int_eq(fwrite(crl1, 1, l1, f), l1);
	fclose(f);
	ck_assert_r(hs_trust_reload_crl(t, path), 0);
	unlink(path);
	run(&fr, &rdr_revoked, flows[_i], t, NULL, NULL);
	ck_assert_r(fr.sr, ML_ERR_CERT);
	ck_assert_alert(fr.salert, HS_ALERT_REVOKED);
	fx_run_free(&fr);
	run(&fr, &rdr, flows[_i], t, NULL, NULL);	/* others unaffected */
	ck_assert_r(fr.sr, 0);
	fx_run_free(&fr);
	hs_trust_free(t);
	free(der);
	free(crl0);
	free(crl1);
}
END_TEST

START_TEST(cert_key_usage)
{
	struct fx_run fr;

	run(&fr, &rdr_signonly, flows[_i], trust, NULL, NULL);
	ck_assert_r(fr.sr, ML_ERR_CERT);
	ck_assert_alert(fr.salert, HS_ALERT_CERT);
	fx_run_free(&fr);
}
END_TEST

/* The reader claims a serial that is not the one in its certificate. */
START_TEST(serial_not_cert)
{
	struct fx_run fr;
	struct hs_client_cfg cc = fx_client_cfg(&rdr, flows[_i], trust);
	struct hs_server_cfg sc = fx_server_cfg(&srv, trust, &reg);

	cc.serial = "RDR-0002";
	fx_run(&fr, &cc, &sc, NULL, NULL);
	ck_assert_r(fr.sr, ML_ERR_AUTH);
	ck_assert_alert(fr.salert, HS_ALERT_IDENTITY);
	fx_run_free(&fr);
}
END_TEST

/* The certificate is genuine but the registry maps its serial to another
 * certificate number (a re-issued cert, or a cloned identity). */
START_TEST(registry_mapping_mismatch)
{
	struct fx_party other;
	struct fx_run fr;

	fx_party_reissue(&other, &rdr, ca, "reader", "RDR-0001", 0x99, 60, 86400,
	    false);
	run(&fr, &other, flows[_i], trust, NULL, NULL);
	ck_assert_r(fr.sr, ML_ERR_REJECTED);
	ck_assert_alert(fr.salert, HS_ALERT_IDENTITY);
	fx_run_free(&fr);
	free(other.cert);
}
END_TEST

START_TEST(reader_flagged)
{
	struct fx_run fr;

	run(&fr, &rdr2, flows[_i], trust, NULL, NULL);
	ck_assert_r(fr.sr, ML_ERR_REJECTED);
	ck_assert_alert(fr.salert, HS_ALERT_RISK);
	if (flows[_i] == HS_FLOW_A) {
		ck_assert_alert(fr.calert, HS_ALERT_RISK);
	}
	fx_run_free(&fr);
}
END_TEST

START_TEST(reader_unknown)
{
	struct fx_party nobody;
	struct fx_run fr;

	fx_party_make(&nobody, ca, "reader", "RDR-9999", 0x999, 60, 86400);
	run(&fr, &nobody, flows[_i], trust, NULL, NULL);
	ck_assert_alert(fr.salert, HS_ALERT_UNKNOWN);
	ck_assert_r(fr.sr, ML_ERR_REJECTED);
	ck_assert_alert(fr.salert, HS_ALERT_UNKNOWN);
	fx_run_free(&fr);
	fx_party_free(&nobody);
}
END_TEST

/* A reader certificate presented as a station is refused. */
START_TEST(kind_mismatch)
{
	struct fx_run fr;
	struct hs_client_cfg cc = fx_client_cfg(&rdr, flows[_i], trust);
	struct hs_server_cfg sc = fx_server_cfg(&srv, trust, &reg);

	cc.kind = HS_KIND_STATION;
	fx_run(&fr, &cc, &sc, NULL, NULL);
	ck_assert_r(fr.sr, ML_ERR_CERT);
	ck_assert_alert(fr.salert, HS_ALERT_CERT);
	fx_run_free(&fr);
}
END_TEST

START_TEST(r1_stale)
{
	struct fx_run fr;
	struct hs_client_cfg cc = fx_client_cfg(&rdr, flows[_i], trust);
	struct hs_server_cfg sc = fx_server_cfg(&srv, trust, &reg);
	struct hs *c, *s;
	struct ml_wr o = ml_wr_dyn(1 << 16), p = ml_wr_dyn(1 << 16);
	struct ml_rd rd, b;

	(void)fr;
	sc.r1_lifetime_ms = 1;
	ck_assert_r(hs_client_new(&cc, &c), 0);
	ck_assert_r(hs_server_new(&sc, &s), 0);
	ck_assert_r(hs_advance(c, NULL, 0, &o), 0);
	rd = ML_RD_INIT(o.p, o.len);
	ck_assert_r(hs_frame_next(&rd, HS_MAX_FRAME, &b), 0);
	ck_assert_r(hs_advance(s, ml_rd_ptr(&b), ml_rd_left(&b), &p), 0);
	ml_wr_clear(&o);
	rd = ML_RD_INIT(p.p, p.len);
	ck_assert_r(hs_frame_next(&rd, HS_MAX_FRAME, &b), 0);
	ck_assert_r(hs_advance(c, ml_rd_ptr(&b), ml_rd_left(&b), &o), 0);
	usleep(20 * 1000);
	ml_wr_clear(&p);
	rd = ML_RD_INIT(o.p, o.len);
	ck_assert_r(hs_frame_next(&rd, HS_MAX_FRAME, &b), 0);
	ck_assert_r(hs_advance(s, ml_rd_ptr(&b), ml_rd_left(&b), &p),
	    ML_ERR_AUTH);
	ck_assert_alert(hs_alert(s), HS_ALERT_R1);
	ml_wr_free(&o);
	ml_wr_free(&p);
	hs_free(c);
	hs_free(s);
}
END_TEST

/* A server certificate that is not from the client's root: the reader
 * refuses (flow A at SERVER_AUTH, flow B at CHALLENGE_CERT). */
START_TEST(server_cert_not_from_root)
{
	struct fx_run fr;
	struct hs_client_cfg cc = fx_client_cfg(&rdr, flows[_i], trust);
	struct hs_server_cfg sc = fx_server_cfg(&srv_foreign, trust, &reg);

	fx_run(&fr, &cc, &sc, NULL, NULL);
	ck_assert_r(fr.cr, ML_ERR_CERT);
	ck_assert_alert(fr.calert, HS_ALERT_CERT);
	ck_assert(!hs_is_done(fr.c));
	fx_run_free(&fr);
}
END_TEST

/* A reader certificate cannot stand in for the server. */
START_TEST(server_cert_wrong_role)
{
	struct fx_run fr;
	struct hs_client_cfg cc = fx_client_cfg(&rdr, flows[_i], trust);
	struct hs_server_cfg sc = fx_server_cfg(&rdr2, trust, &reg);

	fx_run(&fr, &cc, &sc, NULL, NULL);
	ck_assert_r(fr.cr, ML_ERR_CERT);
	ck_assert_alert(fr.calert, HS_ALERT_CERT);
	fx_run_free(&fr);
}
END_TEST

START_TEST(server_auth_forged)
{
	struct fx_run fr;
	struct replace rp = { .idx = 3, .flip = 3, .from_end = true };

	run(&fr, &rdr, HS_FLOW_A, trust, hook_replace, &rp);
	ck_assert_r(fr.sr, 0);
	ck_assert_r(fr.cr, ML_ERR_AUTH);
	ck_assert_alert(fr.calert, HS_ALERT_SIG);
	fx_run_free(&fr);
}
END_TEST

/* Flow switch: KEYREQ said one flow, the client then sends the other
 * flow's authenticated message. */
START_TEST(flow_switch)
{
	struct fx_run other, fr;
	struct replace rp = { .idx = 2, .flip = -1 };
	enum hs_flow f = flows[_i], g = f == HS_FLOW_A ? HS_FLOW_B : HS_FLOW_A;

	run(&other, &rdr, g, trust, NULL, NULL);
	rp.p = other.msgs[2].p;
	rp.len = other.msgs[2].len;
	run(&fr, &rdr, f, trust, hook_replace, &rp);
	ck_assert_r(fr.sr, ML_ERR_STATE);
	ck_assert_alert(fr.salert, HS_ALERT_UNEXPECTED);
	fx_run_free(&other);
	fx_run_free(&fr);
}
END_TEST

/* A second KEYREQ after the first (trying to re-choose the flow). */
START_TEST(flow_rechoose)
{
	struct fx_run fr;
	struct fx_run other;
	struct replace rp = { .idx = 2, .flip = -1 };

	run(&other, &rdr, flows[_i] == HS_FLOW_A ? HS_FLOW_B : HS_FLOW_A, trust,
	    NULL, NULL);
	rp.p = other.msgs[0].p;
	rp.len = other.msgs[0].len;
	run(&fr, &rdr, flows[_i], trust, hook_replace, &rp);
	ck_assert_r(fr.sr, ML_ERR_STATE);
	ck_assert_alert(fr.salert, HS_ALERT_UNEXPECTED);
	fx_run_free(&other);
	fx_run_free(&fr);
}
END_TEST

START_TEST(keyreq_bad_version_and_flow)
{
	struct fx_run fr;
	struct replace rp = { .idx = 0, .flip = 1 };	/* version byte */

	run(&fr, &rdr, flows[_i], trust, hook_replace, &rp);
	ck_assert_r(fr.sr, ML_ERR_UNSUPPORTED);
	ck_assert_alert(fr.salert, HS_ALERT_VERSION);
	fx_run_free(&fr);
	rp.flip = 2;					/* flow byte */
	run(&fr, &rdr, flows[_i], trust, hook_replace, &rp);
	ck_assert_r(fr.sr, ML_ERR_UNSUPPORTED);
	ck_assert_alert(fr.salert, HS_ALERT_VERSION);
	fx_run_free(&fr);
}
END_TEST

/* Every strict prefix of every message of a good run fails to parse with
 * ML_ERR_SHORT (or FORMAT for a cut inside a checked field), one byte of
 * trailing data with ML_ERR_TRAILING. */
START_TEST(truncated_and_trailing_messages)
{
	struct fx_run fr;
	uint8_t *buf;
	size_t k, len;
	int i, r;

	run(&fr, &rdr, flows[_i], trust, NULL, NULL);
	ck_assert_r(fr.sr, 0);
	for (i = 0; i < fr.nmsgs; i++) {
		len = fr.msgs[i].len;
		ck_assert_r(hs_msg_parse_only(fr.msgs[i].p, len), 0);
		for (k = 0; k < len; k++) {
			r = hs_msg_parse_only(fr.msgs[i].p, k);
			ck_assert_msg(r == ML_ERR_SHORT || r == ML_ERR_FORMAT,
			    "msg %d prefix %zu: %s", i, k, ml_errname(r));
		}
		buf = malloc(len + 1);
		memcpy(buf, fr.msgs[i].p, len);
		buf[len] = 0;
		ck_assert_r(hs_msg_parse_only(buf, len + 1), ML_ERR_TRAILING);
		free(buf);
	}
	fx_run_free(&fr);
}
END_TEST

/* A truncated first authenticated message reaches the engine: FORMAT. */
START_TEST(truncated_auth_message)
{
	struct fx_run old, fr;
	struct replace rp = { .idx = 2, .flip = -1 };

	run(&old, &rdr, flows[_i], trust, NULL, NULL);
	rp.p = old.msgs[2].p;
	rp.len = old.msgs[2].len - 1;
	run(&fr, &rdr, flows[_i], trust, hook_replace, &rp);
	ck_assert_r(fr.sr, ML_ERR_SHORT);
	ck_assert_alert(fr.salert, HS_ALERT_FORMAT);
	fx_run_free(&old);
	fx_run_free(&fr);
}
END_TEST

START_TEST(oversized_message)
{
	struct hs_server_cfg sc = fx_server_cfg(&srv, trust, &reg);
	struct hs *s;
	struct ml_wr o = ml_wr_dyn(1 << 16);
	uint8_t *big = calloc(1, HS_MAX_HS_MSG + 1);

	big[0] = HS_KEYREQ;
	ck_assert_r(hs_server_new(&sc, &s), 0);
	ck_assert_r(hs_advance(s, big, HS_MAX_HS_MSG + 1, &o), ML_ERR_TOO_LARGE);
	ck_assert_alert(hs_alert(s), HS_ALERT_FORMAT);
	/* the alert frame is what the server sends before closing */
	ck_assert_int_eq(o.len, 4 + 2);
	ck_assert_int_eq(o.p[4], HS_ALERT);
	ck_assert_int_eq(o.p[5], HS_ALERT_FORMAT);
	/* nothing more is accepted on this engine */
	ck_assert_r(hs_advance(s, big, 10, &o), ML_ERR_STATE);
	hs_free(s);
	ml_wr_free(&o);
	free(big);
}
END_TEST

START_TEST(cert_cache_hits)
{
	struct fx_run fr;
	uint64_t h0, m0, h1, m1;
	int i;

	hs_trust_stats(trust, &h0, &m0);
	for (i = 0; i < 3; i++) {
		run(&fr, &rdr, flows[_i], trust, NULL, NULL);
		ck_assert_r(fr.sr, 0);
		fx_run_free(&fr);
	}
	hs_trust_stats(trust, &h1, &m1);
	ck_assert_uint_ge(h1 - h0, 4);	/* server side and client side */
	ck_assert_uint_le(m1 - m0, 2);
}
END_TEST

/* Many threads presenting one chain at once (a line's positions or a
 * flood starting together): one verification, the others wait for its
 * verdict. */
struct burst {
	const struct hs_blob	*chain;
	pthread_barrier_t	*bar;
	int			 r;
};

static void *
burst_main(void *arg)
{
	struct burst *b = arg;
	struct hs_certinfo ci;

	pthread_barrier_wait(b->bar);
	b->r = hs_trust_verify(trust, b->chain, 1, &ci, NULL);
	return NULL;
}

START_TEST(cert_cache_single_flight)
{
	struct fx_party p;
	struct burst b[8];
	pthread_t th[8];
	pthread_barrier_t bar;
	uint64_t h0, m0, h1, m1;
	int i;

	/* a chain the cache has never seen */
	fx_party_make(&p, ca, "reader", "RDR-BURST", 0x7777, 60, 86400);
	hs_trust_stats(trust, &h0, &m0);
	pthread_barrier_init(&bar, NULL, 8);
	for (i = 0; i < 8; i++) {
		b[i] = (struct burst){ p.chain, &bar, -1 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, burst_main,
		    &b[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		ck_assert_r(b[i].r, 0);
	}
	hs_trust_stats(trust, &h1, &m1);
	ck_assert_uint_eq(m1 - m0, 1);
	ck_assert_uint_eq(h1 - h0, 7);
	pthread_barrier_destroy(&bar);
	fx_party_free(&p);
}
END_TEST

/* ---- records ---- */

struct chan_pair {
	struct fx_run	 fr;
	struct hs_rl	 c, s;
};

static void
pair_open(struct chan_pair *p, enum hs_flow f)
{
	run(&p->fr, &rdr, f, trust, NULL, NULL);
	if (p->fr.sr != 0 || p->fr.cr != 0 || hs_rl_init(&p->c, p->fr.c) != 0 ||
	    hs_rl_init(&p->s, p->fr.s) != 0) {
		fx_die("pair");
	}
}

static void
pair_close(struct chan_pair *p)
{
	fx_run_free(&p->fr);
}

static int
open_frame(struct hs_rl *rl, const struct ml_wr *w, size_t off)
{
	struct ml_rd rd = ML_RD_INIT(w->p + off, w->len - off), b;
	uint8_t buf[HS_MAX_RECORD], type;
	size_t n;
	int r;

	if ((r = hs_frame_next(&rd, HS_MAX_FRAME, &b)) != 0) {
		return r;
	}
	return hs_rl_open(rl, ml_rd_ptr(&b), ml_rd_left(&b), &type, buf,
	    sizeof(buf), &n);
}

START_TEST(record_reordered_and_replayed)
{
	struct chan_pair p;
	struct ml_wr a = ml_wr_dyn(1 << 16), b = ml_wr_dyn(1 << 16);

	pair_open(&p, flows[_i]);
	ck_assert_r(hs_rl_seal(&p.c, HS_REC_APP, "one", 3, &a), 0);
	ck_assert_r(hs_rl_seal(&p.c, HS_REC_APP, "two", 3, &b), 0);
	ck_assert_r(open_frame(&p.s, &b, 0), ML_ERR_AUTH);	/* reordered */
	ck_assert(p.s.dead);
	pair_close(&p);

	pair_open(&p, flows[_i]);
	ml_wr_clear(&a);
	ck_assert_r(hs_rl_seal(&p.c, HS_REC_APP, "one", 3, &a), 0);
	ck_assert_r(open_frame(&p.s, &a, 0), 0);
	ck_assert_r(open_frame(&p.s, &a, 0), ML_ERR_AUTH);	/* replayed */
	pair_close(&p);

	/* a record reflected back to its sender fails (direction keys) */
	pair_open(&p, flows[_i]);
	ml_wr_clear(&a);
	ck_assert_r(hs_rl_seal(&p.c, HS_REC_APP, "one", 3, &a), 0);
	ck_assert_r(open_frame(&p.c, &a, 0), ML_ERR_AUTH);
	pair_close(&p);
	ml_wr_free(&a);
	ml_wr_free(&b);
}
END_TEST

START_TEST(record_tampered_every_byte)
{
	struct chan_pair p;
	struct ml_wr a = ml_wr_dyn(1 << 16);
	size_t i;

	pair_open(&p, flows[_i]);
	ck_assert_r(hs_rl_seal(&p.c, HS_REC_APP, "payload", 7, &a), 0);
	for (i = 4; i < a.len; i++) {		/* every body byte */
		struct hs_rl s = p.s;

		a.p[i] ^= 0x01;
		ck_assert_r(open_frame(&s, &a, 0), ML_ERR_AUTH);
		a.p[i] ^= 0x01;
	}
	ck_assert_r(open_frame(&p.s, &a, 0), 0);
	pair_close(&p);
	ml_wr_free(&a);
}
END_TEST

START_TEST(record_truncated_and_oversized)
{
	struct chan_pair p;
	struct ml_wr a = ml_wr_dyn(1 << 18);
	uint8_t type, small[4];
	size_t n;
	uint8_t *big = calloc(1, HS_MAX_RECORD + 1);

	pair_open(&p, flows[_i]);
	ck_assert_r(hs_rl_seal(&p.c, HS_REC_APP, "payload", 7, &a), 0);
	/* body shorter than type+seq+tag */
	{
		struct hs_rl s = p.s;
		ck_assert_r(hs_rl_open(&s, a.p + 4, 9 + 15, &type, small,
		    sizeof(small), &n), ML_ERR_SHORT);
		ck_assert(s.dead);
	}
	{
		struct hs_rl s = p.s;	/* cut the tag: authentication fails */
		uint8_t mid[64];
		ck_assert_r(hs_rl_open(&s, a.p + 4, a.len - 4 - 1, &type, mid,
		    sizeof(mid), &n), ML_ERR_AUTH);
	}
	{
		struct hs_rl s = p.s;	/* plaintext bigger than caller's cap */
		ck_assert_r(hs_rl_open(&s, a.p + 4, a.len - 4, &type, small,
		    sizeof(small), &n), ML_ERR_TOO_LARGE);
	}
	/* sender refuses an oversized payload; framing refuses an oversized
	 * frame */
	ml_wr_clear(&a);
	ck_assert_r(hs_rl_seal(&p.c, HS_REC_APP, big, HS_MAX_RECORD + 1, &a),
	    ML_ERR_TOO_LARGE);
	{
		uint8_t hdr[4] = { 0x00, 0x01, 0x00, 0x1a };	/* 65562 */
		struct ml_rd rd = ML_RD_INIT(hdr, 4), b;

		ck_assert_r(hs_frame_next(&rd, HS_MAX_FRAME, &b),
		    ML_ERR_TOO_LARGE);
		ck_assert_int_eq(rd.off, 0);
	}
	pair_close(&p);
	ml_wr_free(&a);
	free(big);
}
END_TEST

static Suite *
hs_suite(void)
{
	Suite *s = suite_create("hs");
	TCase *tc = tcase_create("handshake");
	TCase *tr = tcase_create("records");
	int nf = ML_NELEM(flows);

	tcase_add_unchecked_fixture(tc, fixture, fixture_free);
	tcase_add_unchecked_fixture(tr, fixture, fixture_free);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, good_handshake, 0, nf);
	tcase_add_loop_test(tc, good_station, 0, nf);
	tcase_add_loop_test(tc, keys_agree_and_differ, 0, nf);
	tcase_add_loop_test(tc, replay_from_earlier_session, 0, nf);
	tcase_add_loop_test(tc, splice_concurrent_sessions, 0, nf);
	tcase_add_loop_test(tc, forged_signature, 0, nf);
	tcase_add_loop_test(tc, tampered_signed_field, 0, nf);
	tcase_add_loop_test(tc, cert_from_another_ca, 0, nf);
	tcase_add_loop_test(tc, cert_expired, 0, nf);
	tcase_add_loop_test(tc, cert_revoked, 0, nf);
	tcase_add_loop_test(tc, cert_key_usage, 0, nf);
	tcase_add_loop_test(tc, crl_reload, 0, nf);
	tcase_add_loop_test(tc, serial_not_cert, 0, nf);
	tcase_add_loop_test(tc, registry_mapping_mismatch, 0, nf);
	tcase_add_loop_test(tc, reader_flagged, 0, nf);
	tcase_add_loop_test(tc, reader_unknown, 0, nf);
	tcase_add_loop_test(tc, kind_mismatch, 0, nf);
	tcase_add_loop_test(tc, r1_stale, 0, nf);
	tcase_add_loop_test(tc, server_cert_not_from_root, 0, nf);
	tcase_add_loop_test(tc, server_cert_wrong_role, 0, nf);
	tcase_add_test(tc, server_auth_forged);
	tcase_add_loop_test(tc, flow_switch, 0, nf);
	tcase_add_loop_test(tc, flow_rechoose, 0, nf);
	tcase_add_loop_test(tc, keyreq_bad_version_and_flow, 0, nf);
	tcase_add_loop_test(tc, truncated_and_trailing_messages, 0, nf);
	tcase_add_loop_test(tc, truncated_auth_message, 0, nf);
	tcase_add_test(tc, oversized_message);
	tcase_add_loop_test(tc, cert_cache_hits, 0, nf);
	tcase_add_test(tc, cert_cache_single_flight);
	tcase_add_loop_test(tr, record_reordered_and_replayed, 0, nf);
	tcase_add_loop_test(tr, record_tampered_every_byte, 0, nf);
	tcase_add_loop_test(tr, record_truncated_and_oversized, 0, nf);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, tr);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(hs_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
