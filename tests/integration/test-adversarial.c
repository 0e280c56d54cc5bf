/*
 * Adversarial protocol tests (ID-2..ID-5), written from docs/protocol.md as an
 * attacker would: a man in the middle who sees, drops, rewrites, reflects
 * and relays every frame, and who may hold a valid certificate of its own
 * (an insider reader).  Both ends of hs/ run in process over the memory
 * pipe of tests/unit/test_hs_fixture.h.
 *
 * What tests/unit/test_hs.c and test-hs-server.sh already cover is not
 * repeated (replay from an earlier session, splice of two concurrent
 * sessions of one reader, flow switch/re-choose, tampering, record
 * replay/reorder/reflection within one session).  Here:
 *   - reflection of handshake messages: the server's own CHALLENGE /
 *     CHALLENGE_CERT and SERVER_AUTH sent back to a server, the client's
 *     KEYREQ back to the client;
 *   - downgrade between flows A and B by rewriting KEYREQ, alone and with
 *     the server's reply rewritten to match;
 *   - relay into the attacker's own session: a victim reader signs over
 *     an R1 the attacker obtained for its own identity;
 *   - a recorded genuine SERVER_AUTH (with its CHALLENGE) replayed to a
 *     reader by an attacker playing the server;
 *   - replay of channel records across connections (same reader) and
 *     across readers ("chips");
 *   - every refusal leaves no keys: hs_keys() fails on both ends.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static struct hs_ca *ca;
static struct hs_trust *trust;
static struct fx_party srv, victim, insider;
static struct fx_reg reg;
static const enum hs_flow flows[] = { HS_FLOW_A, HS_FLOW_B };

static void
reg_add(const struct fx_party *p)
{
	struct fx_reg_entry *e = &reg.e[reg.n++];

	snprintf(e->serial, sizeof(e->serial), "%s", p->serial);
	snprintf(e->certno, sizeof(e->certno), "%s", p->certno);
	e->kind = HS_KIND_READER;
}

static void
fixture(void)
{
	uint8_t *der;
	size_t len;

	if (hs_ca_create("mintline adversarial root", 30, &ca) != 0) {
		fx_die("ca");
	}
	fx_party_make(&srv, ca, "server", NULL, 2, 60, 86400);
	fx_party_make(&victim, ca, "reader", "RDR-VICTIM", 0x30, 60, 86400);
	fx_party_make(&insider, ca, "reader", "RDR-INSIDER", 0x31, 60, 86400);
	if (hs_ca_root_der(ca, &der, &len) != 0 ||
	    hs_trust_new_der(der, len, NULL, 0, &trust) != 0) {
		fx_die("trust");
	}
	free(der);
	reg_add(&victim);
	reg_add(&insider);		/* a valid, enrolled, unflagged reader */
}

static void
fixture_free(void)
{
	fx_party_free(&srv);
	fx_party_free(&victim);
	fx_party_free(&insider);
	hs_trust_free(trust);
	hs_ca_free(ca);
	trust = NULL;
	ca = NULL;
	memset(&reg, 0, sizeof(reg));
}

static void
run(struct fx_run *fr, struct fx_party *p, enum hs_flow flow, fx_hook_fn hook,
    void *arg)
{
	struct hs_client_cfg cc = fx_client_cfg(p, flow, trust);
	struct hs_server_cfg sc = fx_server_cfg(&srv, trust, &reg);

	fx_run(fr, &cc, &sc, hook, arg);
}

/* Neither end of a refused handshake has transport keys. */
static void
assert_no_keys(const struct fx_run *fr)
{
	uint8_t tx[ML_AES256_KEY_LEN], rx[ML_AES256_KEY_LEN];

	ck_assert(!hs_is_done(fr->c) || !hs_is_done(fr->s));
	ck_assert_int_ne(hs_keys(fr->s, tx, rx), 0);
	if (!hs_is_done(fr->c)) {
		ck_assert_int_ne(hs_keys(fr->c, tx, rx), 0);
	}
}

/* ---- MITM hooks ---- */

struct mitm {
	int		 save_idx;	/* copy this message ... */
	int		 put_idx;	/* ... in place of this one */
	struct ml_wr	 saved;
	const uint8_t	*p;		/* or put these bytes at put_idx */
	size_t		 len;
	int		 flow_to;	/* > 0: rewrite KEYREQ's flow byte */
	bool		 b_to_a;	/* rewrite CHALLENGE_CERT into CHALLENGE */
};

static void
hook_mitm(void *arg, int idx, bool from_client, struct ml_wr *b)
{
	struct mitm *m = arg;

	(void)from_client;
	if (idx == 0 && m->flow_to > 0) {
		b->p[2] = (uint8_t)m->flow_to;	/* type, version, flow */
	}
	if (idx == 1 && m->b_to_a && b->len > 1 + HS_R_LEN &&
	    b->p[0] == HS_CHALLENGE_CERT) {
		b->p[0] = HS_CHALLENGE;		/* keep R1, drop the chain */
		b->len = 1 + HS_R_LEN;
	}
	if (idx == m->save_idx) {
		m->saved = ml_wr_dyn(2 * HS_MAX_FRAME);
		if (ml_wr_bytes(&m->saved, b->p, b->len) != 0) {
			fx_die("save");
		}
	}
	if (idx == m->put_idx) {
		const uint8_t *p = m->p != NULL ? m->p : m->saved.p;
		size_t len = m->p != NULL ? m->len : m->saved.len;

		ml_wr_clear(b);
		if (ml_wr_bytes(b, p, len) != 0) {
			fx_die("put");
		}
	}
}

/* ---- reflection ---- */

/* The server's CHALLENGE (A) / CHALLENGE_CERT (B) sent back to it as the
 * client's authenticated message. */
START_TEST(reflect_challenge_to_server)
{
	struct fx_run fr;
	struct mitm m = { .save_idx = 1, .put_idx = 2 };

	run(&fr, &victim, flows[_i], hook_mitm, &m);
	ck_assert_r(fr.sr, ML_ERR_STATE);
	ck_assert_alert(fr.salert, HS_ALERT_UNEXPECTED);
	assert_no_keys(&fr);
	ml_wr_free(&m.saved);
	fx_run_free(&fr);
}
END_TEST

/* Flow A: a SERVER_AUTH recorded from one session, sent to a server as the
 * client's READER_AUTH (a server signature is not a reader's). */
START_TEST(reflect_server_auth_to_server)
{
	struct fx_run old, fr;
	struct mitm m = { .save_idx = -1, .put_idx = 2 };

	run(&old, &victim, HS_FLOW_A, NULL, NULL);
	ck_assert_r(old.sr, 0);
	ck_assert_int_eq(old.msgs[3].p[0], HS_SERVER_AUTH);
	m.p = old.msgs[3].p;
	m.len = old.msgs[3].len;
	run(&fr, &victim, HS_FLOW_A, hook_mitm, &m);
	ck_assert_r(fr.sr, ML_ERR_STATE);
	ck_assert_alert(fr.salert, HS_ALERT_UNEXPECTED);
	assert_no_keys(&fr);
	fx_run_free(&old);
	fx_run_free(&fr);
}
END_TEST

/* The client's own KEYREQ reflected back to it as the server's answer. */
START_TEST(reflect_keyreq_to_client)
{
	struct fx_run fr;
	struct mitm m = { .save_idx = 0, .put_idx = 1 };

	run(&fr, &victim, flows[_i], hook_mitm, &m);
	ck_assert_int_ne(fr.cr, 0);
	ck_assert(!hs_is_done(fr.c));
	assert_no_keys(&fr);
	ml_wr_free(&m.saved);
	fx_run_free(&fr);
}
END_TEST

/* ---- downgrade between flows ---- */

/* KEYREQ's flow byte rewritten: the server answers the other flow's
 * message; the client, which chose the flow, refuses it. */
START_TEST(downgrade_keyreq_rewritten)
{
	struct fx_run fr;
	enum hs_flow f = flows[_i], g = f == HS_FLOW_A ? HS_FLOW_B : HS_FLOW_A;
	struct mitm m = { .save_idx = -1, .put_idx = -1, .flow_to = (int)g };

	run(&fr, &victim, f, hook_mitm, &m);
	ck_assert_r(fr.cr, ML_ERR_STATE);
	ck_assert(!hs_is_done(fr.c));
	ck_assert(!hs_is_done(fr.s));
	assert_no_keys(&fr);
	fx_run_free(&fr);
}
END_TEST

/* B -> A made consistent for the client: the server is told flow B (its
 * CHALLENGE_CERT carries R1 and the server chain), the client gets a flow A
 * CHALLENGE with the same R1; the client's READER_AUTH is not what a flow B
 * server waits for, and the transcripts differ anyway. */
START_TEST(downgrade_consistent_a_to_b)
{
	struct fx_run fr;
	struct mitm m = { .save_idx = -1, .put_idx = -1,
	    .flow_to = HS_FLOW_B, .b_to_a = true };

	run(&fr, &victim, HS_FLOW_A, hook_mitm, &m);
	ck_assert_r(fr.sr, ML_ERR_STATE);
	ck_assert_alert(fr.salert, HS_ALERT_UNEXPECTED);
	assert_no_keys(&fr);
	fx_run_free(&fr);
}
END_TEST

/* ---- relay into the attacker's own session ----
 *
 * The insider (valid certificate RDR-INSIDER) opens a session to the server
 * under its own identity, gets R1, and relays it to a victim reader that
 * is connecting through it; the victim signs over that R1.  The attacker
 * submits the victim's signed message in its own session: refused, since
 * the signature and the claim cover the victim's KEYREQ, not the
 * attacker's.  Then the attacker tries the opposite: its own, valid
 * READER_AUTH in the victim's server session: refused too (R1). */
static int
step(struct hs *h, const struct ml_wr *in, struct ml_wr *out)
{
	struct ml_rd rd = ML_RD_INIT(in->p, in->len), b;

	if (hs_frame_next(&rd, HS_MAX_FRAME, &b) != 0) {
		fx_die("frame");
	}
	return hs_advance(h, ml_rd_ptr(&b), ml_rd_left(&b), out);
}

START_TEST(relay_into_attacker_session)
{
	enum hs_flow f = flows[_i];
	struct hs_client_cfg vcc = fx_client_cfg(&victim, f, trust);
	struct hs_client_cfg icc = fx_client_cfg(&insider, f, trust);
	struct hs_server_cfg sc = fx_server_cfg(&srv, trust, &reg);
	struct hs *vc, *ic, *vs, *is;
	struct ml_wr vkr = ml_wr_dyn(1 << 16), ikr = ml_wr_dyn(1 << 16);
	struct ml_wr vch = ml_wr_dyn(1 << 16), ich = ml_wr_dyn(1 << 16);
	struct ml_wr vauth = ml_wr_dyn(1 << 16), iauth = ml_wr_dyn(1 << 16);
	struct ml_wr sink = ml_wr_dyn(1 << 16);
	uint8_t tx[ML_AES256_KEY_LEN], rx[ML_AES256_KEY_LEN];

	ck_assert_r(hs_client_new(&vcc, &vc), 0);
	ck_assert_r(hs_client_new(&icc, &ic), 0);
	ck_assert_r(hs_server_new(&sc, &vs), 0);
	ck_assert_r(hs_server_new(&sc, &is), 0);
	/* KEYREQs: the victim's to its own server session, the insider's */
	ck_assert_r(hs_advance(vc, NULL, 0, &vkr), 0);
	ck_assert_r(hs_advance(ic, NULL, 0, &ikr), 0);
	ck_assert_r(step(vs, &vkr, &vch), 0);
	ck_assert_r(step(is, &ikr, &ich), 0);
	/* the attacker's R1 (its own session) relayed to the victim */
	ck_assert_r(step(vc, &ich, &vauth), 0);
	/* the victim's signed message into the attacker's session */
	{
		int r = step(is, &vauth, &sink);

		ck_assert_int_ne(r, 0);
		ck_assert(hs_alert(is) == HS_ALERT_IDENTITY ||
		    hs_alert(is) == HS_ALERT_SIG);
		ck_assert(!hs_is_done(is));
		ck_assert_int_ne(hs_keys(is, tx, rx), 0);
	}
	/* the victim's message is also useless in the victim's own server
	 * session (signed over the attacker's R1) */
	ml_wr_clear(&sink);
	ck_assert_r(step(vs, &vauth, &sink), ML_ERR_AUTH);
	ck_assert_alert(hs_alert(vs), HS_ALERT_R1);
	/* and the insider's own valid message does not fit a session opened
	 * by the victim's KEYREQ either */
	{
		struct hs *vs2;
		struct ml_wr ch2 = ml_wr_dyn(1 << 16);

		ck_assert_r(hs_server_new(&sc, &vs2), 0);
		ck_assert_r(step(vs2, &vkr, &ch2), 0);
		ck_assert_r(step(ic, &ch2, &iauth), 0);
		ml_wr_clear(&sink);
		ck_assert_int_ne(step(vs2, &iauth, &sink), 0);
		ck_assert_alert(hs_alert(vs2), HS_ALERT_IDENTITY);
		ck_assert_int_ne(hs_keys(vs2, tx, rx), 0);
		hs_free(vs2);
		ml_wr_free(&ch2);
	}
	ml_wr_free(&vkr);
	ml_wr_free(&ikr);
	ml_wr_free(&vch);
	ml_wr_free(&ich);
	ml_wr_free(&vauth);
	ml_wr_free(&iauth);
	ml_wr_free(&sink);
	hs_free(vc);
	hs_free(ic);
	hs_free(vs);
	hs_free(is);
}
END_TEST

/* ---- a recorded SERVER_AUTH replayed to a reader ----
 *
 * The attacker plays the server: it answers a reader's new KEYREQ with the
 * CHALLENGE recorded from an earlier genuine session (same R1) and then
 * with that session's SERVER_AUTH.  The reader's new client nonce is in
 * the transcript under the server signature: refused, no keys. */
START_TEST(replay_server_auth_to_reader)
{
	struct fx_run old;
	struct hs_client_cfg cc = fx_client_cfg(&victim, HS_FLOW_A, trust);
	struct hs *c;
	struct ml_wr kr = ml_wr_dyn(1 << 16), auth = ml_wr_dyn(1 << 16);
	struct ml_wr ch = ml_wr_dyn(1 << 16), sa = ml_wr_dyn(1 << 16);
	uint8_t tx[ML_AES256_KEY_LEN], rx[ML_AES256_KEY_LEN];
	int r;

	run(&old, &victim, HS_FLOW_A, NULL, NULL);
	ck_assert_r(old.sr, 0);
	ck_assert_r(old.cr, 0);
	ck_assert_int_eq(old.msgs[1].p[0], HS_CHALLENGE);
	ck_assert_int_eq(old.msgs[3].p[0], HS_SERVER_AUTH);
	ck_assert_r(hs_frame_put(&ch, old.msgs[1].p, old.msgs[1].len), 0);
	ck_assert_r(hs_frame_put(&sa, old.msgs[3].p, old.msgs[3].len), 0);
	ck_assert_r(hs_client_new(&cc, &c), 0);
	ck_assert_r(hs_advance(c, NULL, 0, &kr), 0);
	ck_assert_r(step(c, &ch, &auth), 0);	/* signs over the old R1 */
	r = step(c, &sa, &auth);
	ck_assert_int_ne(r, 0);
	ck_assert(!hs_is_done(c));
	ck_assert_int_ne(hs_keys(c, tx, rx), 0);
	hs_free(c);
	ml_wr_free(&kr);
	ml_wr_free(&auth);
	ml_wr_free(&ch);
	ml_wr_free(&sa);
	fx_run_free(&old);
}
END_TEST

/* ---- channel records across connections and across readers ---- */

struct chan {
	struct fx_run	 fr;
	struct hs_rl	 c, s;
};

static void
chan_open(struct chan *ch, struct fx_party *p, enum hs_flow f)
{
	run(&ch->fr, p, f, NULL, NULL);
	if (ch->fr.sr != 0 || ch->fr.cr != 0 ||
	    hs_rl_init(&ch->c, ch->fr.c) != 0 ||
	    hs_rl_init(&ch->s, ch->fr.s) != 0) {
		fx_die("chan");
	}
}

static void
chan_close(struct chan *ch)
{
	hs_rl_wipe(&ch->c);
	hs_rl_wipe(&ch->s);
	fx_run_free(&ch->fr);
}

static int
open_rec(struct hs_rl *rl, const struct ml_wr *w)
{
	struct ml_rd rd = ML_RD_INIT(w->p, w->len), b;
	uint8_t buf[256], type;
	size_t n;

	if (hs_frame_next(&rd, HS_MAX_FRAME, &b) != 0) {
		fx_die("frame");
	}
	return hs_rl_open(rl, ml_rd_ptr(&b), ml_rd_left(&b), &type, buf,
	    sizeof(buf), &n);
}

/* A record of connection 1 (sequence 0) replayed as the first record of
 * connection 2 of the same reader: other keys, refused; the session ends. */
START_TEST(record_replay_across_connections)
{
	struct chan a, b;
	struct ml_wr w = ml_wr_dyn(1 << 16);

	chan_open(&a, &victim, flows[_i]);
	chan_open(&b, &victim, flows[_i]);
	ck_assert_r(hs_rl_seal(&a.c, HS_REC_APP, "read", 4, &w), 0);
	ck_assert_r(open_rec(&b.s, &w), ML_ERR_AUTH);
	ck_assert(b.s.dead);
	/* the server-to-client direction too */
	ml_wr_clear(&w);
	ck_assert_r(hs_rl_seal(&a.s, HS_REC_APP, "result", 6, &w), 0);
	ck_assert_r(open_rec(&b.c, &w), ML_ERR_AUTH);
	/* and the record still opens where it belongs */
	ck_assert_r(open_rec(&a.c, &w), 0);
	ml_wr_free(&w);
	chan_close(&a);
	chan_close(&b);
}
END_TEST

/* A record of reader (chip) 1's session delivered in reader 2's session. */
START_TEST(record_replay_across_readers)
{
	struct chan a, b;
	struct ml_wr w = ml_wr_dyn(1 << 16);

	struct ml_wr w2 = ml_wr_dyn(1 << 16);

	chan_open(&a, &victim, flows[_i]);
	chan_open(&b, &insider, flows[_i]);
	ck_assert_r(hs_rl_seal(&b.s, HS_REC_APP, "plaintext ID", 12, &w2), 0);
	ck_assert_r(hs_rl_seal(&a.c, HS_REC_APP, "upload", 6, &w), 0);
	ck_assert_r(open_rec(&b.s, &w), ML_ERR_AUTH);
	ck_assert(b.s.dead);
	ck_assert_r(open_rec(&a.c, &w2), ML_ERR_AUTH);
	ck_assert(a.c.dead);
	ml_wr_free(&w);
	ml_wr_free(&w2);
	chan_close(&a);
	chan_close(&b);
}
END_TEST

/* The server's own record reflected back to the server (the client->server
 * key is not the server->client key), at every sequence number a session
 * reaches in a few exchanges. */
START_TEST(record_reflected_to_server)
{
	struct chan a;
	struct ml_wr w = ml_wr_dyn(1 << 16);
	int i;

	chan_open(&a, &victim, flows[_i]);
	for (i = 0; i < 4; i++) {
		struct hs_rl s = a.s;

		ml_wr_clear(&w);
		ck_assert_r(hs_rl_seal(&a.s, HS_REC_APP, "pong", 4, &w), 0);
		ck_assert_r(open_rec(&s, &w), ML_ERR_AUTH);	/* reflected */
		ck_assert_r(open_rec(&a.c, &w), 0);		/* delivered */
		ml_wr_clear(&w);
		ck_assert_r(hs_rl_seal(&a.c, HS_REC_APP, "ping", 4, &w), 0);
		ck_assert_r(open_rec(&a.s, &w), 0);
	}
	ml_wr_free(&w);
	chan_close(&a);
}
END_TEST

static Suite *
adv_suite(void)
{
	Suite *s = suite_create("adversarial");
	TCase *tc = tcase_create("mitm");
	int nf = ML_NELEM(flows);

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, fixture, fixture_free);
	tcase_add_loop_test(tc, reflect_challenge_to_server, 0, nf);
	tcase_add_test(tc, reflect_server_auth_to_server);
	tcase_add_loop_test(tc, reflect_keyreq_to_client, 0, nf);
	tcase_add_loop_test(tc, downgrade_keyreq_rewritten, 0, nf);
	tcase_add_test(tc, downgrade_consistent_a_to_b);
	tcase_add_loop_test(tc, relay_into_attacker_session, 0, nf);
	tcase_add_test(tc, replay_server_auth_to_reader);
	tcase_add_loop_test(tc, record_replay_across_connections, 0, nf);
	tcase_add_loop_test(tc, record_replay_across_readers, 0, nf);
	tcase_add_loop_test(tc, record_reflected_to_server, 0, nf);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(adv_suite());
	int nfail;

	srunner_run_all(sr, CK_NORMAL);
	nfail = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfail == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
