/*
 * Unit tests for the banknote chip profile (chip-applet/applet_note.c).
 *
 * The chip is driven only through chip_transmit() with APDUs made by
 * apdu_build(), on chip images made by chip_manufacture() in a temporary
 * directory, exactly as a station would drive it.  The profile's state
 * function is read (never written) to check the state machine.
 *
 *	personalise: INIT TOKEN, VERIFY SO, GEN KEYPAIR (chip key),
 *	             INSTALL ISSUER, INSTALL SERVER, LOCK
 *	issue:       GET CHALLENGE, AUTHORIZE WRITE, WRITE FEATURE (BN-3..5)
 *	upload:      GET SEALED, opened with the server key (BN-6, BN-7)
 *	check:       READ FEATURE, INTERNAL AUTHENTICATE (BN-8)
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "ml_err.h"
#include "ml_ossl.h"
#include "ml_rd.h"
#include "ml_tlv.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "apdu.h"
#include "chip.h"
#include "chip_int.h"
#include "chip_proto.h"
#include "note_msg.h"
#include "sw.h"
#include "chiptest.h"

#define SO_PIN		"so-secret-1"
#define FEATURE		"CNY100|HK|HK12345678|code=7QX2"
#define DOM(d)		(d), (sizeof(d) - 1)
#define NOTE_NONCE_LEN_T	16	/* TAG_SEAL_NONCE value length */

struct keypair {
	uint8_t		 priv[ML_P256_PRIV_LEN];
	uint8_t		 pub[ML_P256_PUB_LEN];
};

/* One chip image in the test directory. */
struct tchip {
	char		 path[256];
	struct chip	*c;
	uint8_t		 chip_pub[ML_P256_PUB_LEN];
};

/* A response: data and status word. */
struct resp {
	uint8_t		*p;		/* CHIP_MAX_RESP bytes */
	size_t		 len;
	uint16_t	 sw;
};

static char tdir[] = "/tmp/test-note-XXXXXX";
static bool tdir_made;
static struct keypair issuer, issuer2, rogue, server;
static struct resp R;

/* ---- helpers ------------------------------------------------------- */

static void
make_key(struct keypair *k)
{
	ck_assert_r(ml_p256_keygen(k->priv, k->pub), 0);
}

/*
 * Send one command APDU and collect the answer into R, following 61xx with
 * GET RESPONSE.  Returns the final status word.
 */
static uint16_t
xmit(struct chip *c, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
    const void *data, size_t len, uint32_t ne)
{
	uint8_t cmd[CHIP_MAX_CMD];
	struct ml_wr w = ML_WR_FIXED(cmd, sizeof(cmd));
	uint8_t *raw = malloc(CHIP_MAX_RESP);
	size_t raw_len = 0;
	uint16_t sw;

	ck_assert_ptr_nonnull(raw);
	R.len = 0;
	ck_assert_r(apdu_build(&w, cla, ins, p1, p2, data, len, ne), 0);
	for (;;) {
		ck_assert_r(chip_transmit(c, w.p, w.len, raw, CHIP_MAX_RESP,
		    &raw_len), 0);
		ck_assert_uint_ge(raw_len, 2);
		sw = (uint16_t)(raw[raw_len - 2] << 8 | raw[raw_len - 1]);
		memcpy(R.p + R.len, raw, raw_len - 2);
		R.len += raw_len - 2;
		if ((sw & 0xFF00) != 0x6100) {
			break;
		}
		w = ML_WR_FIXED(cmd, sizeof(cmd));
		ck_assert_r(apdu_build(&w, CLA_ISO, INS_GET_RESPONSE, 0, 0,
		    NULL, 0, (sw & 0xFF) ? (sw & 0xFF) : 256), 0);
	}
	free(raw);
	R.sw = sw;
	return sw;
}

static const uint8_t *
serial_of(struct chip *c)
{
	ck_assert_uint_eq(strlen(chip_serial(c)), CHIP_SERIAL_LEN);
	return (const uint8_t *)chip_serial(c);
}

/* The note state as one name: the profile's own state function. */
static const char *
state_name(struct chip *c)
{
	unsigned s = chip_profile_note.state(c);
	size_t i;

	for (i = 0; i < chip_profile_note.nstates; i++) {
		if (s == (1u << i)) {
			return chip_profile_note.state_names[i];
		}
	}
	ck_abort_msg("state %#x is not exactly one bit", s);
	return NULL;
}

static unsigned
state_bit(const char *name)
{
	size_t i;

	for (i = 0; i < chip_profile_note.nstates; i++) {
		if (strcmp(chip_profile_note.state_names[i], name) == 0) {
			return 1u << i;
		}
	}
	ck_abort_msg("no state %s", name);
	return 0;
}

#define ck_assert_state(c, want) \
	ck_assert_str_eq(state_name(c), (want))

static void
select_note(struct chip *c)
{
	static const uint8_t aid[CHIP_AID_LEN] = { 0xA0, 0x00, 0x00, 0x08,
	    0x88, 0x4D, 0x4C, 0x01, CHIP_KIND_NOTE };

	ck_assert_sw(xmit(c, CLA_ISO, INS_SELECT, 0x04, 0x00, aid,
	    sizeof(aid), 256), SW_OK);
}

static void
chip_new(struct tchip *t, const char *serial)
{
	snprintf(t->path, sizeof(t->path), "%s/%s.chip", tdir, serial);
	ck_assert_r(chip_manufacture(t->path, CHIP_KIND_NOTE, serial), 0);
	ck_assert_r(chip_open(t->path, &t->c), 0);
	select_note(t->c);
}

static void
chip_reopen(struct tchip *t)
{
	chip_close(t->c);
	t->c = NULL;
	ck_assert_r(chip_open(t->path, &t->c), 0);
	select_note(t->c);
}

static void
copy_file(const char *from, const char *to)
{
	uint8_t buf[65536];
	ssize_t n;
	int in, out;

	ck_assert_int_ge(in = open(from, O_RDONLY), 0);
	ck_assert_int_ge(out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600), 0);
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	}
	ck_assert_int_eq(n, 0);
	close(in);
	ck_assert_int_eq(close(out), 0);
}

/* Clone a closed chip image (store and device key) to a new name. */
static void
chip_clone(const struct tchip *from, struct tchip *to, const char *name)
{
	char a[300], b[300];

	snprintf(to->path, sizeof(to->path), "%s/%s.chip", tdir, name);
	copy_file(from->path, to->path);
	snprintf(a, sizeof(a), "%s.key", from->path);
	snprintf(b, sizeof(b), "%s.key", to->path);
	copy_file(a, b);
	memcpy(to->chip_pub, from->chip_pub, sizeof(to->chip_pub));
	ck_assert_r(chip_open(to->path, &to->c), 0);
	select_note(to->c);
}

static void
init_token(struct chip *c)
{
	uint8_t d[64];
	size_t n = 0;

	d[n++] = sizeof(SO_PIN) - 1;
	memcpy(d + n, SO_PIN, sizeof(SO_PIN) - 1);
	n += sizeof(SO_PIN) - 1;
	d[n++] = 4;
	memcpy(d + n, "note", 4);
	n += 4;
	ck_assert_sw(xmit(c, CLA_PROP, INS_INIT_TOKEN, 0, 0, d, n, 0), SW_OK);
}

static void
login_so(struct chip *c)
{
	ck_assert_sw(xmit(c, CLA_ISO, INS_VERIFY, 0, PIN_SO, DOM(SO_PIN), 0),
	    SW_OK);
}

static void
gen_chipkey(struct tchip *t)
{
	static const uint8_t empty_attrs[4] = { 0, 0, 0, 0 };

	ck_assert_sw(xmit(t->c, CLA_PROP, INS_GEN_KEYPAIR, GENKEY_CHIPKEY, 0,
	    empty_attrs, sizeof(empty_attrs), 256), SW_OK);
	ck_assert_uint_eq(R.len, 4 + ML_P256_PUB_LEN);
	memcpy(t->chip_pub, R.p + 4, ML_P256_PUB_LEN);
}

static uint16_t
install(struct chip *c, uint8_t ins, const uint8_t *pub)
{
	return xmit(c, CLA_PROP, ins, 0, 0, pub, ML_P256_PUB_LEN, 0);
}

/*
 * Personalise up to (not including) LOCK: INIT TOKEN, VERIFY SO, GEN
 * KEYPAIR chip key, INSTALL ISSUER (issuer and issuer2), INSTALL SERVER.
 * The SO stays logged in.  State BLANK.
 */
static void
personalise_open(struct tchip *t, const char *serial)
{
	chip_new(t, serial);
	ck_assert_state(t->c, "BLANK");
	init_token(t->c);
	login_so(t->c);
	gen_chipkey(t);
	ck_assert_sw(install(t->c, INS_INSTALL_ISSUER, issuer.pub), SW_OK);
	ck_assert_sw(install(t->c, INS_INSTALL_ISSUER, issuer2.pub), SW_OK);
	ck_assert_sw(install(t->c, INS_INSTALL_SERVER, server.pub), SW_OK);
	ck_assert_state(t->c, "BLANK");
}

/* Full personalisation, ending with LOCK.  State IDLE. */
static void
personalise(struct tchip *t, const char *serial)
{
	personalise_open(t, serial);
	ck_assert_sw(xmit(t->c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0), SW_OK);
	ck_assert_state(t->c, "IDLE");
}

static void
get_challenge(struct chip *c, uint8_t ret_ch[static NOTE_CHALLENGE_LEN])
{
	ck_assert_sw(xmit(c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0,
	    NOTE_CHALLENGE_LEN), SW_OK);
	ck_assert_uint_eq(R.len, NOTE_CHALLENGE_LEN);
	memcpy(ret_ch, R.p, NOTE_CHALLENGE_LEN);
	ck_assert_state(c, "CHALLENGED");
}

/*
 * What a station sends: lv16(feature) || ECDSA(key, NOTE_AUTH_DOMAIN ||
 * challenge || serial || feature).  Returns the data length.
 */
static size_t
make_auth(const struct keypair *k, const uint8_t *ch, const uint8_t *serial,
    const void *feat, size_t flen, uint8_t *out, size_t cap)
{
	struct ml_wr msg = ml_wr_dyn(4096);
	struct ml_wr w = ML_WR_FIXED(out, cap);
	struct ml_p256_key *key = NULL;
	uint8_t sig[ML_P256_SIG_LEN];

	ck_assert_r(ml_wr_bytes(&msg, DOM(NOTE_AUTH_DOMAIN)), 0);
	ck_assert_r(ml_wr_bytes(&msg, ch, NOTE_CHALLENGE_LEN), 0);
	ck_assert_r(ml_wr_bytes(&msg, serial, CHIP_SERIAL_LEN), 0);
	ck_assert_r(ml_wr_bytes(&msg, feat, flen), 0);
	ck_assert_r(ml_p256_key_from_priv(k->priv, &key), 0);
	ck_assert_r(ml_p256_sign(key, msg.p, msg.len, sig), 0);
	ml_p256_key_free(key);
	ml_wr_free(&msg);
	ck_assert_r(ml_wr_lv16(&w, feat, flen), 0);
	ck_assert_r(ml_wr_bytes(&w, sig, sizeof(sig)), 0);
	return w.len;
}

static uint16_t
authorize(struct chip *c, const uint8_t *d, size_t n)
{
	return xmit(c, CLA_PROP, INS_AUTHORIZE_WRITE, 0, 0, d, n, 256);
}

static uint16_t
write_feature(struct chip *c, const void *feat, size_t flen)
{
	return xmit(c, CLA_PROP, INS_WRITE_FEATURE, 0, 0, feat, flen, 0);
}

/* GET CHALLENGE, AUTHORIZE (by k), expecting confirm-write. */
static void
authorize_ok(struct chip *c, const struct keypair *k, const void *feat,
    size_t flen)
{
	uint8_t ch[NOTE_CHALLENGE_LEN], d[2048];
	size_t n;

	get_challenge(c, ch);
	n = make_auth(k, ch, serial_of(c), feat, flen, d, sizeof(d));
	ck_assert_sw(authorize(c, d, n), SW_OK);
	ck_assert_uint_eq(R.len, 1);
	ck_assert_uint_eq(R.p[0], 0x01);
	ck_assert_state(c, "AUTHORIZED");
}

static void
issue(struct chip *c, const void *feat, size_t flen)
{
	authorize_ok(c, &issuer, feat, flen);
	ck_assert_sw(write_feature(c, feat, flen), SW_OK);
	ck_assert_uint_eq(R.len, 0);
	ck_assert_state(c, "WRITTEN");
}

static void
expect_tlv(const uint8_t *p, size_t n, uint32_t tag, const void *want,
    size_t want_len)
{
	struct ml_rd rd = ML_RD_INIT(p, n), v;

	ck_assert_r(ml_tlv_find(&rd, tag, &v), 0);
	ck_assert_uint_eq(ml_rd_left(&v), want_len);
	ck_assert_mem_eq(ml_rd_ptr(&v), want, want_len);
}

static void
get_tlv(const uint8_t *p, size_t n, uint32_t tag, struct ml_rd *ret)
{
	struct ml_rd rd = ML_RD_INIT(p, n);

	ck_assert_r(ml_tlv_find(&rd, tag, ret), 0);
}

/* The whole response must be exactly these TLVs, nothing else. */
static void
expect_tags(const uint8_t *p, size_t n, const uint32_t *tags, size_t ntags)
{
	struct ml_rd rd = ML_RD_INIT(p, n), v;
	uint32_t tag;
	size_t i;

	for (i = 0; i < ntags; i++) {
		ck_assert_r(ml_tlv_next(&rd, &tag, &v), 0);
		ck_assert_uint_eq(tag, tags[i]);
	}
	ck_assert_uint_eq(ml_rd_left(&rd), 0);
}

/* Check a feature record (READ FEATURE, or the sealed plaintext). */
static void
check_record(struct chip *c, const uint8_t *p, size_t n, const void *feat,
    size_t flen, uint8_t issuer_index)
{
	struct ml_rd v;

	expect_tlv(p, n, TAG_FEAT_SERIAL, serial_of(c), CHIP_SERIAL_LEN);
	expect_tlv(p, n, TAG_FEAT_INFO, feat, flen);
	expect_tlv(p, n, TAG_FEAT_ISSUER, &issuer_index, 1);
	get_tlv(p, n, TAG_FEAT_CHALLENGE, &v);
	ck_assert_uint_eq(ml_rd_left(&v), NOTE_CHALLENGE_LEN);
	get_tlv(p, n, TAG_FEAT_AUTH_SIG, &v);
	ck_assert_uint_eq(ml_rd_left(&v), ML_P256_SIG_LEN);
}

/* The recorded authorization verifies under the issuer key (an auditor's
 * check of the record). */
static void
check_record_sig(const uint8_t *p, size_t n, const struct keypair *k)
{
	struct ml_rd ch, ser, feat, sig;
	struct ml_wr msg = ml_wr_dyn(4096);
	struct ml_p256_key *key = NULL;

	get_tlv(p, n, TAG_FEAT_CHALLENGE, &ch);
	get_tlv(p, n, TAG_FEAT_SERIAL, &ser);
	get_tlv(p, n, TAG_FEAT_INFO, &feat);
	get_tlv(p, n, TAG_FEAT_AUTH_SIG, &sig);
	ck_assert_r(ml_wr_bytes(&msg, DOM(NOTE_AUTH_DOMAIN)), 0);
	ck_assert_r(ml_wr_bytes(&msg, ml_rd_ptr(&ch), ml_rd_left(&ch)), 0);
	ck_assert_r(ml_wr_bytes(&msg, ml_rd_ptr(&ser), ml_rd_left(&ser)), 0);
	ck_assert_r(ml_wr_bytes(&msg, ml_rd_ptr(&feat), ml_rd_left(&feat)), 0);
	ck_assert_r(ml_p256_key_from_pub(k->pub, ML_P256_PUB_LEN, &key), 0);
	ck_assert_r(ml_p256_verify(key, msg.p, msg.len, ml_rd_ptr(&sig),
	    ml_rd_left(&sig)), 0);
	ml_p256_key_free(key);
	ml_wr_free(&msg);
}

/* ECDH callback for ml_seal_open: the server's private key. */
static int
server_ecdh(void *ctx, const uint8_t eph_pub[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN])
{
	const struct keypair *k = ctx;
	struct ml_p256_key *key = NULL;
	int r;

	if ((r = ml_p256_key_from_priv(k->priv, &key)) != 0) {
		return r;
	}
	r = ml_p256_ecdh(key, eph_pub, ML_P256_PUB_LEN, ret_secret);
	ml_p256_key_free(key);
	return r;
}

/* Verify sig over domain || serial || a || b with the chip key. */
static int
chip_sig_ok(const uint8_t *chip_pub, const char *domain, size_t dlen,
    const uint8_t *serial, const void *a, size_t alen, const void *b,
    size_t blen, const uint8_t *sig, size_t sig_len)
{
	struct ml_wr msg = ml_wr_dyn(8192);
	struct ml_p256_key *key = NULL;
	int r;

	ck_assert_r(ml_wr_bytes(&msg, domain, dlen), 0);
	ck_assert_r(ml_wr_bytes(&msg, serial, CHIP_SERIAL_LEN), 0);
	ck_assert_r(ml_wr_bytes(&msg, a, alen), 0);
	ck_assert_r(ml_wr_bytes(&msg, b, blen), 0);
	ck_assert_r(ml_p256_key_from_pub(chip_pub, ML_P256_PUB_LEN, &key), 0);
	r = ml_p256_verify(key, msg.p, msg.len, sig, sig_len);
	ml_p256_key_free(key);
	ml_wr_free(&msg);
	return r;
}

/* ---- fixture ------------------------------------------------------- */

static void
setup(void)
{
	strcpy(tdir, "/tmp/test-note-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
	tdir_made = true;
	ck_assert_ptr_nonnull(R.p = malloc(CHIP_MAX_RESP * 4));
	make_key(&issuer);
	make_key(&issuer2);
	make_key(&rogue);
	make_key(&server);
}

static void
teardown(void)
{
	free(R.p);
	R.p = NULL;
	if (tdir_made) {
		ct_rmtree(tdir);
		tdir_made = false;
	}
}

/* ---- the issuance flow (BN-1..BN-7) -------------------------------- */

START_TEST(issue_read_seal)
{
	struct tchip t;
	uint8_t rec[2048], blob1[4096], blob2[4096], pt[4096];
	uint8_t nonce1[NOTE_NONCE_LEN_T], srv_bad_pub[ML_P256_PUB_LEN];
	size_t rec_len, blob1_len, blob2_len, pt_len;
	struct ml_rd v, sig, blob;
	static const uint32_t rec_tags[] = { TAG_FEAT_SERIAL, TAG_FEAT_INFO,
	    TAG_FEAT_CHALLENGE, TAG_FEAT_AUTH_SIG, TAG_FEAT_ISSUER };
	static const uint32_t seal_tags[] = { TAG_FEAT_SERIAL, TAG_SEAL_BLOB,
	    TAG_SEAL_CHIP_SIG };
	struct keypair other;

	personalise(&t, "NOTE0001");
	issue(t.c, DOM(FEATURE));

	/* READ FEATURE: the record as written, and auditable (BN-8). */
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0, 256),
	    SW_OK);
	rec_len = R.len;
	memcpy(rec, R.p, rec_len);
	expect_tags(rec, rec_len, rec_tags, ML_NELEM(rec_tags));
	check_record(t.c, rec, rec_len, DOM(FEATURE), 0);
	check_record_sig(rec, rec_len, &issuer);

	/* GET DATA 02: the chip key from GEN KEYPAIR. */
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_GET_DATA, GD_CHIP_PUBKEY, 0, NULL,
	    0, 256), SW_OK);
	ck_assert_uint_eq(R.len, ML_P256_PUB_LEN);
	ck_assert_mem_eq(R.p, t.chip_pub, ML_P256_PUB_LEN);
	/* Other P1s still reach the core's GET DATA. */
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_GET_DATA, GD_CHIP_INFO, 0, NULL,
	    0, 256), SW_OK);
	get_tlv(R.p, R.len, TAG_INFO_STATE, &v);
	ck_assert_uint_eq(ml_rd_left(&v), 2);
	ck_assert_uint_ne(ml_rd_ptr(&v)[1] & INFO_F_WRITTEN, 0);

	/* GET SEALED (BN-6), twice. */
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_GET_SEALED, 0, 0, NULL, 0, 65536),
	    SW_OK);
	expect_tags(R.p, R.len, seal_tags, ML_NELEM(seal_tags));
	expect_tlv(R.p, R.len, TAG_FEAT_SERIAL, serial_of(t.c),
	    CHIP_SERIAL_LEN);
	get_tlv(R.p, R.len, TAG_SEAL_BLOB, &blob);
	get_tlv(R.p, R.len, TAG_SEAL_CHIP_SIG, &sig);
	ck_assert_uint_eq(ml_rd_left(&sig), ML_P256_SIG_LEN);
	blob1_len = ml_rd_left(&blob);
	ck_assert_uint_le(blob1_len, sizeof(blob1));
	memcpy(blob1, ml_rd_ptr(&blob), blob1_len);
	/* The chip key signed NOTE_SEAL_DOMAIN || serial || blob. */
	ck_assert_r(chip_sig_ok(t.chip_pub, DOM(NOTE_SEAL_DOMAIN),
	    serial_of(t.c), blob1, blob1_len, NULL, 0, ml_rd_ptr(&sig),
	    ML_P256_SIG_LEN), 0);

	/* BN-7: the server key opens it: the record plus a nonce. */
	ck_assert_r(ml_seal_open(server.pub, server_ecdh, &server,
	    serial_of(t.c), CHIP_SERIAL_LEN, blob1, blob1_len, pt, sizeof(pt),
	    &pt_len), 0);
	{
		static const uint32_t pt_tags[] = { TAG_FEAT_SERIAL,
		    TAG_FEAT_INFO, TAG_FEAT_CHALLENGE, TAG_FEAT_AUTH_SIG,
		    TAG_FEAT_ISSUER, TAG_SEAL_NONCE };

		expect_tags(pt, pt_len, pt_tags, ML_NELEM(pt_tags));
	}
	ck_assert_uint_eq(pt_len, rec_len + 2 + NOTE_NONCE_LEN_T);
	ck_assert_mem_eq(pt, rec, rec_len);
	get_tlv(pt, pt_len, TAG_SEAL_NONCE, &v);
	ck_assert_uint_eq(ml_rd_left(&v), NOTE_NONCE_LEN_T);
	memcpy(nonce1, ml_rd_ptr(&v), sizeof(nonce1));

	/* Fresh on every request: new ephemeral key, new nonce. */
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_GET_SEALED, 0, 0, NULL, 0, 65536),
	    SW_OK);
	get_tlv(R.p, R.len, TAG_SEAL_BLOB, &blob);
	blob2_len = ml_rd_left(&blob);
	memcpy(blob2, ml_rd_ptr(&blob), blob2_len);
	ck_assert_uint_eq(blob1_len, blob2_len);
	ck_assert_int_ne(memcmp(blob1, blob2, blob1_len), 0);
	ck_assert_int_ne(memcmp(blob1, blob2, ML_P256_PUB_LEN), 0);
	ck_assert_r(ml_seal_open(server.pub, server_ecdh, &server,
	    serial_of(t.c), CHIP_SERIAL_LEN, blob2, blob2_len, pt, sizeof(pt),
	    &pt_len), 0);
	get_tlv(pt, pt_len, TAG_SEAL_NONCE, &v);
	ck_assert_int_ne(memcmp(ml_rd_ptr(&v), nonce1, sizeof(nonce1)), 0);
	ck_assert_mem_eq(pt, rec, rec_len);

	/* One-byte tamper anywhere: neither opens nor verifies. */
	for (size_t i = 0; i < blob1_len; i += 7) {
		blob1[i] ^= 0x01;
		ck_assert_r(ml_seal_open(server.pub, server_ecdh, &server,
		    serial_of(t.c), CHIP_SERIAL_LEN, blob1, blob1_len, pt,
		    sizeof(pt), &pt_len), ML_ERR_AUTH);
		blob1[i] ^= 0x01;
	}
	blob1[blob1_len - 1] ^= 0x80;
	ck_assert_r(ml_seal_open(server.pub, server_ecdh, &server,
	    serial_of(t.c), CHIP_SERIAL_LEN, blob1, blob1_len, pt, sizeof(pt),
	    &pt_len), ML_ERR_AUTH);
	get_tlv(R.p, R.len, TAG_SEAL_CHIP_SIG, &sig);
	ck_assert_r(chip_sig_ok(t.chip_pub, DOM(NOTE_SEAL_DOMAIN),
	    serial_of(t.c), blob1, blob1_len, NULL, 0, ml_rd_ptr(&sig),
	    ML_P256_SIG_LEN), ML_ERR_AUTH);
	blob1[blob1_len - 1] ^= 0x80;

	/* Bound to the serial (aad) and to the server key (BN-7). */
	ck_assert_r(ml_seal_open(server.pub, server_ecdh, &server,
	    (const uint8_t *)"NOTE0002        ", CHIP_SERIAL_LEN, blob1,
	    blob1_len, pt, sizeof(pt), &pt_len), ML_ERR_AUTH);
	make_key(&other);
	memcpy(srv_bad_pub, other.pub, sizeof(srv_bad_pub));
	ck_assert_r(ml_seal_open(srv_bad_pub, server_ecdh, &other,
	    serial_of(t.c), CHIP_SERIAL_LEN, blob1, blob1_len, pt, sizeof(pt),
	    &pt_len), ML_ERR_AUTH);

	/* Nothing of that moved the note out of WRITTEN. */
	ck_assert_state(t.c, "WRITTEN");
	chip_close(t.c);
}
END_TEST

/* A feature at the size limit travels through chaining and seals. */
START_TEST(issue_max_feature)
{
	struct tchip t;
	uint8_t feat[NOTE_MAX_FEATURE], pt[4096];
	struct ml_rd blob;
	size_t pt_len, i;

	for (i = 0; i < sizeof(feat); i++) {
		feat[i] = (uint8_t)(i * 7 + 1);
	}
	personalise(&t, "NOTEMAX");
	issue(t.c, feat, sizeof(feat));
	/* Short Le: the answer comes in 61xx / GET RESPONSE pieces. */
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0, 256),
	    SW_OK);
	check_record(t.c, R.p, R.len, feat, sizeof(feat), 0);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_GET_SEALED, 0, 0, NULL, 0, 256),
	    SW_OK);
	get_tlv(R.p, R.len, TAG_SEAL_BLOB, &blob);
	ck_assert_r(ml_seal_open(server.pub, server_ecdh, &server,
	    serial_of(t.c), CHIP_SERIAL_LEN, ml_rd_ptr(&blob),
	    ml_rd_left(&blob), pt, sizeof(pt), &pt_len), 0);
	check_record(t.c, pt, pt_len, feat, sizeof(feat), 0);
	chip_close(t.c);
}
END_TEST

/* The second installed issuer key authorizes too; its index is recorded. */
START_TEST(issue_second_issuer)
{
	struct tchip t;

	personalise(&t, "NOTE0003");
	authorize_ok(t.c, &issuer2, DOM(FEATURE));
	ck_assert_sw(write_feature(t.c, DOM(FEATURE)), SW_OK);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0, 256),
	    SW_OK);
	check_record(t.c, R.p, R.len, DOM(FEATURE), 1);
	check_record_sig(R.p, R.len, &issuer2);
	chip_close(t.c);
}
END_TEST

/* ---- reject-write (BN-4, BN-5) -------------------------------------- */

/* A key that was never installed: 6982, nothing written, 6A88 on read. */
START_TEST(auth_wrong_key)
{
	struct tchip t;
	uint8_t ch[NOTE_CHALLENGE_LEN], d[2048];
	size_t n;

	personalise(&t, "NOTE0004");
	get_challenge(t.c, ch);
	n = make_auth(&rogue, ch, serial_of(t.c), DOM(FEATURE), d, sizeof(d));
	ck_assert_sw(authorize(t.c, d, n), SW_SECURITY_NOT_SATISFIED);
	ck_assert_uint_eq(R.len, 0);
	ck_assert_state(t.c, "IDLE");
	ck_assert_sw(write_feature(t.c, DOM(FEATURE)),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0, 256),
	    SW_DATA_NOT_FOUND);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_GET_SEALED, 0, 0, NULL, 0, 256),
	    SW_CONDITIONS_NOT_SATISFIED);
	/* Survives power: still blank. */
	chip_reopen(&t);
	ck_assert_state(t.c, "IDLE");
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0, 256),
	    SW_DATA_NOT_FOUND);
	chip_close(t.c);
}
END_TEST

/* The challenge is consumed by a failed attempt: a good signature over it
 * afterwards finds nothing to match. */
START_TEST(auth_challenge_consumed_on_failure)
{
	struct tchip t;
	uint8_t ch[NOTE_CHALLENGE_LEN], good[2048], bad[2048];
	size_t ngood, nbad;

	personalise(&t, "NOTE0005");
	get_challenge(t.c, ch);
	ngood = make_auth(&issuer, ch, serial_of(t.c), DOM(FEATURE), good,
	    sizeof(good));
	nbad = make_auth(&rogue, ch, serial_of(t.c), DOM(FEATURE), bad,
	    sizeof(bad));
	ck_assert_sw(authorize(t.c, bad, nbad), SW_SECURITY_NOT_SATISFIED);
	ck_assert_sw(authorize(t.c, good, ngood), SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_state(t.c, "IDLE");
	/* And on success too: the same authorization a second time is 6985. */
	get_challenge(t.c, ch);
	ngood = make_auth(&issuer, ch, serial_of(t.c), DOM(FEATURE), good,
	    sizeof(good));
	ck_assert_sw(authorize(t.c, good, ngood), SW_OK);
	ck_assert_sw(authorize(t.c, good, ngood), SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_state(t.c, "AUTHORIZED");
	chip_close(t.c);
}
END_TEST

/* A recorded (once valid) authorization replayed onto a new challenge. */
START_TEST(auth_replay_new_challenge)
{
	struct tchip t;
	uint8_t ch[NOTE_CHALLENGE_LEN], d[2048];
	size_t n;

	personalise(&t, "NOTE0006");
	get_challenge(t.c, ch);
	n = make_auth(&issuer, ch, serial_of(t.c), DOM(FEATURE), d, sizeof(d));
	ck_assert_sw(authorize(t.c, d, n), SW_OK);
	ck_assert_state(t.c, "AUTHORIZED");
	/* A new challenge drops the authorization ... */
	get_challenge(t.c, ch);
	ck_assert_sw(write_feature(t.c, DOM(FEATURE)),
	    SW_CONDITIONS_NOT_SATISFIED);
	/* ... and the old authorization does not match the new one. */
	get_challenge(t.c, ch);
	ck_assert_sw(authorize(t.c, d, n), SW_SECURITY_NOT_SATISFIED);
	ck_assert_state(t.c, "IDLE");
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0, 256),
	    SW_DATA_NOT_FOUND);
	/* After a power cycle the old challenge is gone as well. */
	get_challenge(t.c, ch);
	chip_reopen(&t);
	ck_assert_state(t.c, "IDLE");
	ck_assert_sw(authorize(t.c, d, n), SW_CONDITIONS_NOT_SATISFIED);
	chip_close(t.c);
}
END_TEST

/* An authorization made for another chip (serial differs) is rejected. */
START_TEST(auth_other_chip)
{
	struct tchip a, b;
	uint8_t cha[NOTE_CHALLENGE_LEN], chb[NOTE_CHALLENGE_LEN], d[2048];
	size_t n;

	personalise(&a, "NOTEA");
	personalise(&b, "NOTEB");
	ck_assert_int_ne(memcmp(serial_of(a.c), serial_of(b.c),
	    CHIP_SERIAL_LEN), 0);
	/* A's challenge, but B's serial: only the serial is wrong. */
	get_challenge(a.c, cha);
	n = make_auth(&issuer, cha, serial_of(b.c), DOM(FEATURE), d, sizeof(d));
	ck_assert_sw(authorize(a.c, d, n), SW_SECURITY_NOT_SATISFIED);
	ck_assert_state(a.c, "IDLE");
	/* B's own authorization, relayed to A. */
	get_challenge(b.c, chb);
	get_challenge(a.c, cha);
	n = make_auth(&issuer, chb, serial_of(b.c), DOM(FEATURE), d, sizeof(d));
	ck_assert_sw(authorize(a.c, d, n), SW_SECURITY_NOT_SATISFIED);
	ck_assert_state(a.c, "IDLE");
	/* B itself accepts it. */
	ck_assert_sw(authorize(b.c, d, n), SW_OK);
	ck_assert_sw(write_feature(b.c, DOM(FEATURE)), SW_OK);
	ck_assert_sw(xmit(a.c, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0, 256),
	    SW_DATA_NOT_FOUND);
	chip_close(a.c);
	chip_close(b.c);
}
END_TEST

/* Writing other bytes than the authorized ones: 6982, authorization gone. */
START_TEST(write_other_feature)
{
	struct tchip t;

	personalise(&t, "NOTE0007");
	authorize_ok(t.c, &issuer, DOM(FEATURE));
	ck_assert_sw(write_feature(t.c, DOM("CNY100|HK|HK99999999")),
	    SW_SECURITY_NOT_SATISFIED);
	ck_assert_state(t.c, "IDLE");
	ck_assert_sw(write_feature(t.c, DOM(FEATURE)),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0, 256),
	    SW_DATA_NOT_FOUND);
	chip_close(t.c);
}
END_TEST

/* WRITE without AUTHORIZE: 6985 in IDLE and in CHALLENGED. */
START_TEST(write_without_authorize)
{
	struct tchip t;
	uint8_t ch[NOTE_CHALLENGE_LEN];

	personalise(&t, "NOTE0008");
	ck_assert_sw(write_feature(t.c, DOM(FEATURE)),
	    SW_CONDITIONS_NOT_SATISFIED);
	get_challenge(t.c, ch);
	ck_assert_sw(write_feature(t.c, DOM(FEATURE)),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_state(t.c, "CHALLENGED");
	chip_close(t.c);
}
END_TEST

/* Write-once: after WRITTEN nothing can start a second write. */
START_TEST(write_once)
{
	struct tchip t;
	uint8_t d[2048], zero[NOTE_CHALLENGE_LEN] = { 0 };
	size_t n;

	personalise(&t, "NOTE0009");
	issue(t.c, DOM(FEATURE));
	/* GET CHALLENGE is only the random source now: nothing is armed. */
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0,
	    NOTE_CHALLENGE_LEN), SW_OK);
	ck_assert_uint_eq(R.len, NOTE_CHALLENGE_LEN);
	ck_assert_state(t.c, "WRITTEN");
	n = make_auth(&issuer, R.p, serial_of(t.c), DOM("X"), d, sizeof(d));
	ck_assert_sw(authorize(t.c, d, n), SW_CONDITIONS_NOT_SATISFIED);
	n = make_auth(&issuer, zero, serial_of(t.c), DOM("X"), d, sizeof(d));
	ck_assert_sw(authorize(t.c, d, n), SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_sw(write_feature(t.c, DOM("X")),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_sw(write_feature(t.c, DOM(FEATURE)),
	    SW_CONDITIONS_NOT_SATISFIED);
	chip_reopen(&t);
	ck_assert_state(t.c, "WRITTEN");
	ck_assert_sw(write_feature(t.c, DOM("X")),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0, 256),
	    SW_OK);
	check_record(t.c, R.p, R.len, DOM(FEATURE), 0);
	chip_close(t.c);
}
END_TEST

/* ---- malformed data fields ----------------------------------------- */

/* Every strict prefix of a valid AUTHORIZE WRITE data field is 6700, and so
 * is a trailing byte; each attempt consumes its challenge and nothing else. */
START_TEST(auth_truncated)
{
	struct tchip t;
	uint8_t ch[NOTE_CHALLENGE_LEN], d[2048];
	size_t n, k;

	personalise(&t, "NOTE0010");
	for (k = 0; ; k++) {
		get_challenge(t.c, ch);
		n = make_auth(&issuer, ch, serial_of(t.c), DOM(FEATURE), d,
		    sizeof(d));
		if (k >= n) {
			break;
		}
		ck_assert_msg(authorize(t.c, d, k) == SW_WRONG_LENGTH,
		    "prefix %zu of %zu: SW %04X", k, n, R.sw);
		ck_assert_state(t.c, "IDLE");
	}
	/* One byte too many. */
	d[n] = 0x00;
	ck_assert_sw(authorize(t.c, d, n + 1), SW_WRONG_LENGTH);
	ck_assert_state(t.c, "IDLE");
	/* The untouched field still works with a fresh challenge. */
	get_challenge(t.c, ch);
	n = make_auth(&issuer, ch, serial_of(t.c), DOM(FEATURE), d, sizeof(d));
	ck_assert_sw(authorize(t.c, d, n), SW_OK);
	chip_close(t.c);
}
END_TEST

START_TEST(auth_feature_bounds)
{
	struct tchip t;
	uint8_t ch[NOTE_CHALLENGE_LEN], d[4096];
	static uint8_t big[NOTE_MAX_FEATURE + 1];
	size_t n;

	personalise(&t, "NOTE0011");
	/* Empty feature information: malformed (6A80). */
	get_challenge(t.c, ch);
	n = make_auth(&issuer, ch, serial_of(t.c), "", 0, d, sizeof(d));
	ck_assert_sw(authorize(t.c, d, n), SW_WRONG_DATA);
	ck_assert_state(t.c, "IDLE");
	/* One byte over NOTE_MAX_FEATURE: 6700. */
	memset(big, 'F', sizeof(big));
	get_challenge(t.c, ch);
	n = make_auth(&issuer, ch, serial_of(t.c), big, sizeof(big), d,
	    sizeof(d));
	ck_assert_sw(authorize(t.c, d, n), SW_WRONG_LENGTH);
	ck_assert_state(t.c, "IDLE");
	/* Wrong P1/P2. */
	get_challenge(t.c, ch);
	n = make_auth(&issuer, ch, serial_of(t.c), DOM(FEATURE), d, sizeof(d));
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_AUTHORIZE_WRITE, 1, 0, d, n, 256),
	    SW_INCORRECT_P1P2);
	ck_assert_state(t.c, "IDLE");
	chip_close(t.c);
}
END_TEST

/* WRITE FEATURE length errors change nothing (the authorization stays). */
START_TEST(write_bounds)
{
	struct tchip t;
	static uint8_t big[NOTE_MAX_FEATURE + 1];

	personalise(&t, "NOTE0012");
	authorize_ok(t.c, &issuer, DOM(FEATURE));
	ck_assert_sw(write_feature(t.c, NULL, 0), SW_WRONG_LENGTH);
	ck_assert_state(t.c, "AUTHORIZED");
	ck_assert_sw(write_feature(t.c, big, sizeof(big)), SW_WRONG_LENGTH);
	ck_assert_state(t.c, "AUTHORIZED");
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_WRITE_FEATURE, 0, 1, DOM(FEATURE),
	    0), SW_INCORRECT_P1P2);
	ck_assert_state(t.c, "AUTHORIZED");
	ck_assert_sw(write_feature(t.c, DOM(FEATURE)), SW_OK);
	chip_close(t.c);
}
END_TEST

/*
 * Only a 16-byte GET CHALLENGE arms the write challenge; other lengths are
 * the core's random source and leave the note state alone.
 */
START_TEST(challenge_le)
{
	struct tchip t;
	uint8_t ch[NOTE_CHALLENGE_LEN], d[2048];
	size_t n;

	personalise(&t, "NOTE0013");
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0, 8),
	    SW_OK);
	ck_assert_uint_eq(R.len, 8);
	ck_assert_state(t.c, "IDLE");
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0, 256),
	    SW_OK);
	ck_assert_uint_eq(R.len, 256);
	ck_assert_state(t.c, "IDLE");
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0, 0),
	    SW_WRONG_LENGTH);
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, "x", 1, 16),
	    SW_WRONG_LENGTH);
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_GET_CHALLENGE, 1, 0, NULL, 0, 16),
	    SW_INCORRECT_P1P2);
	ck_assert_state(t.c, "IDLE");
	/* A random request does not disturb a live write challenge. */
	get_challenge(t.c, ch);
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0, 32),
	    SW_OK);
	ck_assert_state(t.c, "CHALLENGED");
	n = make_auth(&issuer, ch, serial_of(t.c), DOM(FEATURE), d, sizeof(d));
	ck_assert_sw(authorize(t.c, d, n), SW_OK);
	/* In BLANK: random only. */
	chip_close(t.c);
	personalise_open(&t, "NOTE0013B");
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0,
	    NOTE_CHALLENGE_LEN), SW_OK);
	ck_assert_state(t.c, "BLANK");
	ck_assert(!t.c->challenge_live);
	chip_close(t.c);
}
END_TEST

/* ---- personalisation ------------------------------------------------ */

START_TEST(install_after_lock)
{
	struct tchip t;

	personalise(&t, "NOTE0014");
	/* Still SO: it is the state that refuses. */
	ck_assert_sw(install(t.c, INS_INSTALL_ISSUER, rogue.pub),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_sw(install(t.c, INS_INSTALL_SERVER, rogue.pub),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_uint_eq(t.c->st.nissuers, 2);
	ck_assert_mem_eq(t.c->st.server_pub, server.pub, ML_P256_PUB_LEN);
	ck_assert_state(t.c, "IDLE");
	chip_close(t.c);
}
END_TEST

/* The core refuses INIT TOKEN and a second chip key after LOCK. */
START_TEST(core_after_lock)
{
	struct tchip t;
	uint8_t d[64];
	size_t n = 0;
	static const uint8_t empty_attrs[4] = { 0, 0, 0, 0 };

	personalise(&t, "NOTE0015");
	d[n++] = sizeof(SO_PIN) - 1;
	memcpy(d + n, SO_PIN, sizeof(SO_PIN) - 1);
	n += sizeof(SO_PIN) - 1;
	d[n++] = 0;
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_INIT_TOKEN, 0, 0, d, n, 0),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_GEN_KEYPAIR, GENKEY_CHIPKEY, 0,
	    empty_attrs, sizeof(empty_attrs), 256),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_state(t.c, "IDLE");
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_GET_DATA, GD_CHIP_PUBKEY, 0, NULL,
	    0, 256), SW_OK);
	ck_assert_mem_eq(R.p, t.chip_pub, ML_P256_PUB_LEN);
	chip_close(t.c);
}
END_TEST

/* Without SO login every personalisation command is 6982. */
START_TEST(personalise_needs_so)
{
	struct tchip t;

	chip_new(&t, "NOTE0016");
	init_token(t.c);
	ck_assert_sw(install(t.c, INS_INSTALL_ISSUER, issuer.pub),
	    SW_SECURITY_NOT_SATISFIED);
	ck_assert_sw(install(t.c, INS_INSTALL_SERVER, server.pub),
	    SW_SECURITY_NOT_SATISFIED);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0),
	    SW_SECURITY_NOT_SATISFIED);
	ck_assert_uint_eq(t.c->st.nissuers, 0);
	ck_assert(!t.c->st.has_server);
	/* Logged in, then out again. */
	login_so(t.c);
	gen_chipkey(&t);
	ck_assert_sw(install(t.c, INS_INSTALL_ISSUER, issuer.pub), SW_OK);
	ck_assert_sw(install(t.c, INS_INSTALL_SERVER, server.pub), SW_OK);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_LOGOUT, 0, 0, NULL, 0, 0), SW_OK);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0),
	    SW_SECURITY_NOT_SATISFIED);
	ck_assert_state(t.c, "BLANK");
	/* A reset logs the SO out too. */
	login_so(t.c);
	chip_reset(t.c);
	select_note(t.c);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0),
	    SW_SECURITY_NOT_SATISFIED);
	ck_assert_state(t.c, "BLANK");
	chip_close(t.c);
}
END_TEST

/* LOCK needs the chip key, an issuer and the server key. */
START_TEST(lock_prerequisites)
{
	struct tchip t;

	chip_new(&t, "NOTE0017");
	init_token(t.c);
	login_so(t.c);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0),
	    SW_CONDITIONS_NOT_SATISFIED);
	gen_chipkey(&t);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_sw(install(t.c, INS_INSTALL_ISSUER, issuer.pub), SW_OK);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_state(t.c, "BLANK");
	ck_assert_sw(install(t.c, INS_INSTALL_SERVER, server.pub), SW_OK);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_LOCK, 0, 0, "x", 1, 0),
	    SW_WRONG_LENGTH);
	ck_assert_state(t.c, "BLANK");
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0), SW_OK);
	ck_assert_state(t.c, "IDLE");
	chip_reopen(&t);
	ck_assert_state(t.c, "IDLE");
	chip_close(t.c);
}
END_TEST

/* INSTALL data: exactly one valid uncompressed P-256 point. */
START_TEST(install_malformed)
{
	struct tchip t;
	uint8_t p[ML_P256_PUB_LEN + 1];
	struct keypair k[NOTE_MAX_ISSUERS];
	size_t i;

	chip_new(&t, "NOTE0018");
	init_token(t.c);
	login_so(t.c);
	memcpy(p, issuer.pub, ML_P256_PUB_LEN);
	p[ML_P256_PUB_LEN] = 0;
	for (i = 0; i < 2; i++) {
		uint8_t ins = i ? INS_INSTALL_SERVER : INS_INSTALL_ISSUER;

		ck_assert_sw(xmit(t.c, CLA_PROP, ins, 0, 0, p,
		    ML_P256_PUB_LEN - 1, 0), SW_WRONG_LENGTH);
		ck_assert_sw(xmit(t.c, CLA_PROP, ins, 0, 0, p,
		    ML_P256_PUB_LEN + 1, 0), SW_WRONG_LENGTH);
		ck_assert_sw(xmit(t.c, CLA_PROP, ins, 0, 0, NULL, 0, 0),
		    SW_WRONG_LENGTH);
		p[64] ^= 0x01;		/* off the curve */
		ck_assert_sw(xmit(t.c, CLA_PROP, ins, 0, 0, p,
		    ML_P256_PUB_LEN, 0), SW_WRONG_DATA);
		p[64] ^= 0x01;
		p[0] = 0x02;		/* not uncompressed */
		ck_assert_sw(xmit(t.c, CLA_PROP, ins, 0, 0, p,
		    ML_P256_PUB_LEN, 0), SW_WRONG_DATA);
		p[0] = 0x04;
		ck_assert_sw(xmit(t.c, CLA_PROP, ins, 0, 1, p,
		    ML_P256_PUB_LEN, 0), SW_INCORRECT_P1P2);
	}
	ck_assert_uint_eq(t.c->st.nissuers, 0);
	ck_assert(!t.c->st.has_server);

	/* NOTE_MAX_ISSUERS distinct keys, no duplicate, no more. */
	for (i = 0; i < NOTE_MAX_ISSUERS; i++) {
		make_key(&k[i]);
		ck_assert_sw(install(t.c, INS_INSTALL_ISSUER, k[i].pub), SW_OK);
		ck_assert_sw(install(t.c, INS_INSTALL_ISSUER, k[i].pub),
		    SW_CONDITIONS_NOT_SATISFIED);
	}
	ck_assert_sw(install(t.c, INS_INSTALL_ISSUER, issuer.pub),
	    SW_NOT_ENOUGH_MEMORY);
	ck_assert_uint_eq(t.c->st.nissuers, NOTE_MAX_ISSUERS);
	/* The server key may be replaced until LOCK. */
	ck_assert_sw(install(t.c, INS_INSTALL_SERVER, rogue.pub), SW_OK);
	ck_assert_sw(install(t.c, INS_INSTALL_SERVER, server.pub), SW_OK);
	chip_reopen(&t);
	ck_assert_uint_eq(t.c->st.nissuers, NOTE_MAX_ISSUERS);
	for (i = 0; i < NOTE_MAX_ISSUERS; i++) {
		ck_assert_mem_eq(t.c->st.issuers[i], k[i].pub, ML_P256_PUB_LEN);
	}
	ck_assert_mem_eq(t.c->st.server_pub, server.pub, ML_P256_PUB_LEN);
	chip_close(t.c);
}
END_TEST

/* ---- chip authentication (BN-8) ------------------------------------ */

START_TEST(internal_auth)
{
	struct tchip t;
	uint8_t vch[64], md[ML_SHA256_LEN], sig[ML_P256_SIG_LEN];
	size_t n;

	for (n = 0; n < sizeof(vch); n++) {
		vch[n] = (uint8_t)(0xA0 + n);
	}
	personalise(&t, "NOTE0019");
	/* Unwritten: the digest of the empty feature. */
	ck_assert_r(ml_sha256(NULL, 0, md), 0);
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_INTERNAL_AUTH, 0, 0, vch, 16, 256),
	    SW_OK);
	ck_assert_uint_eq(R.len, ML_P256_SIG_LEN);
	ck_assert_r(chip_sig_ok(t.chip_pub, DOM(NOTE_PROVE_DOMAIN),
	    serial_of(t.c), vch, 16, md, sizeof(md), R.p, R.len), 0);
	/* Lengths: 16..64. */
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_INTERNAL_AUTH, 0, 0, vch, 15, 256),
	    SW_WRONG_LENGTH);
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_INTERNAL_AUTH, 0, 0, NULL, 0, 256),
	    SW_WRONG_LENGTH);
	{
		uint8_t big[65] = { 0 };

		ck_assert_sw(xmit(t.c, CLA_ISO, INS_INTERNAL_AUTH, 0, 0, big,
		    sizeof(big), 256), SW_WRONG_LENGTH);
	}
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_INTERNAL_AUTH, 0, 0, vch, 64, 256),
	    SW_OK);
	ck_assert_r(chip_sig_ok(t.chip_pub, DOM(NOTE_PROVE_DOMAIN),
	    serial_of(t.c), vch, 64, md, sizeof(md), R.p, R.len), 0);

	/* It does not disturb a write in progress. */
	authorize_ok(t.c, &issuer, DOM(FEATURE));
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_INTERNAL_AUTH, 0, 0, vch, 32, 256),
	    SW_OK);
	ck_assert_state(t.c, "AUTHORIZED");
	ck_assert_sw(write_feature(t.c, DOM(FEATURE)), SW_OK);

	/* Written: bound to the feature a desk just read. */
	ck_assert_r(ml_sha256(FEATURE, sizeof(FEATURE) - 1, md), 0);
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_INTERNAL_AUTH, 0, 0, vch, 32, 256),
	    SW_OK);
	memcpy(sig, R.p, sizeof(sig));
	ck_assert_r(chip_sig_ok(t.chip_pub, DOM(NOTE_PROVE_DOMAIN),
	    serial_of(t.c), vch, 32, md, sizeof(md), sig, sizeof(sig)), 0);
	/* A clone with another key fails the desk's check. */
	ck_assert_r(chip_sig_ok(rogue.pub, DOM(NOTE_PROVE_DOMAIN),
	    serial_of(t.c), vch, 32, md, sizeof(md), sig, sizeof(sig)),
	    ML_ERR_AUTH);
	/* Another challenge, another answer. */
	vch[0] ^= 1;
	ck_assert_r(chip_sig_ok(t.chip_pub, DOM(NOTE_PROVE_DOMAIN),
	    serial_of(t.c), vch, 32, md, sizeof(md), sig, sizeof(sig)),
	    ML_ERR_AUTH);
	chip_close(t.c);
}
END_TEST

/* ---- persistence and tearing --------------------------------------- */

START_TEST(state_across_power)
{
	struct tchip t;
	uint8_t ch[NOTE_CHALLENGE_LEN];

	personalise(&t, "NOTE0020");
	/* CHALLENGED does not survive power-off, nor a warm reset. */
	get_challenge(t.c, ch);
	chip_reopen(&t);
	ck_assert_state(t.c, "IDLE");
	get_challenge(t.c, ch);
	chip_reset(t.c);
	select_note(t.c);
	ck_assert_state(t.c, "IDLE");
	/* AUTHORIZED neither. */
	authorize_ok(t.c, &issuer, DOM(FEATURE));
	chip_reopen(&t);
	ck_assert_state(t.c, "IDLE");
	ck_assert_sw(write_feature(t.c, DOM(FEATURE)),
	    SW_CONDITIONS_NOT_SATISFIED);
	/* WRITTEN does, with the whole record. */
	issue(t.c, DOM(FEATURE));
	chip_reopen(&t);
	ck_assert_state(t.c, "WRITTEN");
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0, 256),
	    SW_OK);
	check_record(t.c, R.p, R.len, DOM(FEATURE), 0);
	check_record_sig(R.p, R.len, &issuer);
	chip_close(t.c);
}
END_TEST

/*
 * Power cut after byte k of the WRITE FEATURE commit: the answer is not
 * 9000, RAM does not claim WRITTEN, and after power-on the note is either
 * blank or carries the whole record (never a mix).
 */
START_TEST(write_torn)
{
	struct tchip tmpl, t;
	char name[32];
	long k, step = 1;
	int written = 0, blank = 0;
	bool done = false;

	personalise(&tmpl, "NOTETEAR");
	chip_close(tmpl.c);
	for (k = 0; !done; k += step) {
		snprintf(name, sizeof(name), "tear%ld", k);
		chip_clone(&tmpl, &t, name);
		authorize_ok(t.c, &issuer, DOM(FEATURE));
		chip_test_cut_after(t.c, k);
		if (write_feature(t.c, DOM(FEATURE)) == SW_OK) {
			done = true;	/* k covers the whole commit */
		} else {
			ck_assert_sw(R.sw, SW_MEMORY_FAILURE);
			ck_assert_str_ne(state_name(t.c), "WRITTEN");
		}
		chip_reopen(&t);
		if (strcmp(state_name(t.c), "WRITTEN") == 0) {
			written++;
			ck_assert_sw(xmit(t.c, CLA_PROP, INS_READ_FEATURE, 0,
			    0, NULL, 0, 256), SW_OK);
			check_record(t.c, R.p, R.len, DOM(FEATURE), 0);
			check_record_sig(R.p, R.len, &issuer);
		} else {
			blank++;
			ck_assert_state(t.c, "IDLE");
			ck_assert_sw(xmit(t.c, CLA_PROP, INS_READ_FEATURE, 0,
			    0, NULL, 0, 256), SW_DATA_NOT_FOUND);
			/* ... and can still be issued. */
			issue(t.c, DOM(FEATURE));
		}
		chip_close(t.c);
		/* Every byte of the header, then a sample of the payload. */
		step = k < STORE_HDR_LEN + 8 ? 1 : 13;
	}
	ck_assert_int_gt(written, 0);
	ck_assert_int_gt(blank, 0);
}
END_TEST

/* ---- issuer-key rotation (CHANGE ISSUER, BN-4) ---------------------- */

/* point || ECDSA(k, NOTE_ISSUER_DOMAIN || ch || serial || op || point). */
static size_t
make_change(const struct keypair *k, const uint8_t *ch, const uint8_t *serial,
    uint8_t op, const uint8_t *point, uint8_t *out, size_t cap)
{
	struct ml_wr msg = ml_wr_dyn(256);
	struct ml_wr w = ML_WR_FIXED(out, cap);
	struct ml_p256_key *key = NULL;
	uint8_t sig[ML_P256_SIG_LEN];

	ck_assert_r(note_msg_issuer(&msg, ch, serial, op, point), 0);
	ck_assert_r(ml_p256_key_from_priv(k->priv, &key), 0);
	ck_assert_r(ml_p256_sign(key, msg.p, msg.len, sig), 0);
	ml_p256_key_free(key);
	ml_wr_free(&msg);
	ck_assert_r(ml_wr_bytes(&w, point, ML_P256_PUB_LEN), 0);
	ck_assert_r(ml_wr_bytes(&w, sig, sizeof(sig)), 0);
	return w.len;
}

static uint16_t
change(struct chip *c, uint8_t op, const uint8_t *d, size_t n)
{
	return xmit(c, CLA_PROP, INS_CHANGE_ISSUER, op, 0, d, n, 0);
}

/* GET CHALLENGE, then CHANGE ISSUER signed by k. */
static uint16_t
change_signed(struct chip *c, const struct keypair *k, uint8_t op,
    const uint8_t *point)
{
	uint8_t ch[NOTE_CHALLENGE_LEN], d[256];
	size_t n;

	get_challenge(c, ch);
	n = make_change(k, ch, serial_of(c), op, point, d, sizeof(d));
	return change(c, op, d, n);
}

/* The installed issuer keys (GET DATA 04) are exactly want[0..n). */
static void
expect_issuers(struct chip *c, const struct keypair *const *want, size_t n)
{
	size_t i;

	ck_assert_sw(xmit(c, CLA_ISO, INS_GET_DATA, GD_NOTE_ISSUERS, 0, NULL, 0,
	    256), SW_OK);
	ck_assert_uint_eq(R.len, 1 + n * ML_P256_PUB_LEN);
	ck_assert_uint_eq(R.p[0], n);
	for (i = 0; i < n; i++) {
		ck_assert_mem_eq(R.p + 1 + i * ML_P256_PUB_LEN, want[i]->pub,
		    ML_P256_PUB_LEN);
	}
}

/* A current key adds a new one and retires the old: the old key's write
 * authorisation is refused from then on, the new key's accepted. */
START_TEST(rotate_by_issuer_key)
{
	const struct keypair *both[] = { &issuer, &issuer2 };
	const struct keypair *three[] = { &issuer, &issuer2, &rogue };
	const struct keypair *after[] = { &issuer2, &rogue };
	uint8_t ch[NOTE_CHALLENGE_LEN], d[2048];
	struct tchip t;
	size_t n;

	personalise(&t, "NOTEROT1");
	chip_reopen(&t);			/* no SO login */
	expect_issuers(t.c, both, 2);
	ck_assert_sw(change_signed(t.c, &issuer, ISSUER_ADD, rogue.pub), SW_OK);
	ck_assert_state(t.c, "IDLE");
	expect_issuers(t.c, three, 3);
	/* the key retires itself */
	ck_assert_sw(change_signed(t.c, &issuer, ISSUER_RETIRE, issuer.pub),
	    SW_OK);
	expect_issuers(t.c, after, 2);
	chip_reopen(&t);			/* committed */
	expect_issuers(t.c, after, 2);
	/* the retired key can no longer write; the new one can */
	get_challenge(t.c, ch);
	n = make_auth(&issuer, ch, serial_of(t.c), DOM(FEATURE), d, sizeof(d));
	ck_assert_sw(authorize(t.c, d, n), SW_SECURITY_NOT_SATISFIED);
	ck_assert_sw(change_signed(t.c, &issuer, ISSUER_ADD, issuer.pub),
	    SW_SECURITY_NOT_SATISFIED);	/* nor add itself back */
	authorize_ok(t.c, &rogue, DOM(FEATURE));
	ck_assert_sw(write_feature(t.c, DOM(FEATURE)), SW_OK);
	ck_assert_sw(xmit(t.c, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0, 256),
	    SW_OK);
	check_record(t.c, R.p, R.len, DOM(FEATURE), 1);	/* rogue: index 1 */
	check_record_sig(R.p, R.len, &rogue);
	chip_close(t.c);
}
END_TEST

/* A key that is not installed, a signature over something else, no
 * challenge: refused, nothing changes, the challenge is used up. */
START_TEST(rotate_bad_signature)
{
	const struct keypair *both[] = { &issuer, &issuer2 };
	uint8_t ch[NOTE_CHALLENGE_LEN], d[256];
	struct keypair fresh;
	struct tchip t;
	size_t n;

	make_key(&fresh);
	personalise(&t, "NOTEROT2");
	chip_reopen(&t);
	ck_assert_sw(change_signed(t.c, &rogue, ISSUER_ADD, fresh.pub),
	    SW_SECURITY_NOT_SATISFIED);
	ck_assert_state(t.c, "IDLE");
	/* signed for "add" but sent as "retire" (P1 is signed) */
	get_challenge(t.c, ch);
	n = make_change(&issuer, ch, serial_of(t.c), ISSUER_ADD, issuer2.pub,
	    d, sizeof(d));
	ck_assert_sw(change(t.c, ISSUER_RETIRE, d, n),
	    SW_SECURITY_NOT_SATISFIED);
	/* signed for another point */
	get_challenge(t.c, ch);
	n = make_change(&issuer, ch, serial_of(t.c), ISSUER_ADD, fresh.pub,
	    d, sizeof(d));
	memcpy(d, rogue.pub, ML_P256_PUB_LEN);
	ck_assert_sw(change(t.c, ISSUER_ADD, d, n), SW_SECURITY_NOT_SATISFIED);
	/* a signature for another chip's serial */
	get_challenge(t.c, ch);
	n = make_change(&issuer, ch, (const uint8_t *)"NOTEOTHER       ",
	    ISSUER_ADD, fresh.pub, d, sizeof(d));
	ck_assert_sw(change(t.c, ISSUER_ADD, d, n), SW_SECURITY_NOT_SATISFIED);
	/* without the SO and without a signature */
	ck_assert_sw(change(t.c, ISSUER_ADD, fresh.pub, ML_P256_PUB_LEN),
	    SW_SECURITY_NOT_SATISFIED);
	/* malformed: truncated signature, bad point, bad P1 */
	ck_assert_sw(change(t.c, ISSUER_ADD, d, n - 1), SW_WRONG_LENGTH);
	memset(d, 0x04, ML_P256_PUB_LEN);
	ck_assert_sw(change(t.c, ISSUER_ADD, d, n), SW_WRONG_DATA);
	ck_assert_sw(change(t.c, 3, fresh.pub, ML_P256_PUB_LEN),
	    SW_INCORRECT_P1P2);
	expect_issuers(t.c, both, 2);
	chip_close(t.c);
}
END_TEST

/* A recorded change replays onto nothing: not the same challenge again,
 * not a later one. */
START_TEST(rotate_replayed_challenge)
{
	const struct keypair *three[] = { &issuer, &issuer2, &rogue };
	uint8_t ch[NOTE_CHALLENGE_LEN], ch2[NOTE_CHALLENGE_LEN], d[256];
	struct tchip t;
	size_t n;

	personalise(&t, "NOTEROT3");
	chip_reopen(&t);
	get_challenge(t.c, ch);
	n = make_change(&issuer, ch, serial_of(t.c), ISSUER_ADD, rogue.pub, d,
	    sizeof(d));
	ck_assert_sw(change(t.c, ISSUER_ADD, d, n), SW_OK);
	/* again, no live challenge: 6985 */
	ck_assert_sw(change(t.c, ISSUER_RETIRE, d, n),
	    SW_CONDITIONS_NOT_SATISFIED);
	/* again over a new challenge: the signature is for the old one */
	get_challenge(t.c, ch2);
	ck_assert_sw(change(t.c, ISSUER_ADD, d, n), SW_SECURITY_NOT_SATISFIED);
	ck_assert_state(t.c, "IDLE");
	expect_issuers(t.c, three, 3);
	chip_close(t.c);
}
END_TEST

/* The SO: add, retire; an existing key, an unknown one, the last one, a
 * full table; a written chip refuses any change; a pending write
 * authorisation is dropped by a change. */
START_TEST(rotate_so_and_limits)
{
	const struct keypair *one[] = { &issuer2 };
	struct keypair k[NOTE_MAX_ISSUERS - 2];	/* personalise() put in 2 */
	struct tchip t, w;
	size_t i;

	for (i = 0; i < ML_NELEM(k); i++) {
		make_key(&k[i]);
	}
	personalise(&t, "NOTEROT4");		/* SO still logged in */
	ck_assert_sw(change(t.c, ISSUER_ADD, issuer.pub, ML_P256_PUB_LEN),
	    SW_CONDITIONS_NOT_SATISFIED);	/* already installed */
	for (i = 0; i < ML_NELEM(k); i++) {
		ck_assert_sw(change(t.c, ISSUER_ADD, k[i].pub,
		    ML_P256_PUB_LEN), SW_OK);
	}
	ck_assert_sw(change(t.c, ISSUER_ADD, rogue.pub, ML_P256_PUB_LEN),
	    SW_NOT_ENOUGH_MEMORY);		/* NOTE_MAX_ISSUERS keys: full */
	/* the full table over 256 bytes: GET DATA answers it chained */
	ck_assert_sw(xmit(t.c, CLA_ISO, INS_GET_DATA, GD_NOTE_ISSUERS, 0,
	    NULL, 0, 256), SW_OK);
	ck_assert_uint_eq(R.len, 1 + NOTE_MAX_ISSUERS * ML_P256_PUB_LEN);
	ck_assert_uint_eq(R.p[0], NOTE_MAX_ISSUERS);
	ck_assert_mem_eq(R.p + 1 + (NOTE_MAX_ISSUERS - 1) * ML_P256_PUB_LEN,
	    k[ML_NELEM(k) - 1].pub, ML_P256_PUB_LEN);
	ck_assert_sw(change(t.c, ISSUER_RETIRE, rogue.pub, ML_P256_PUB_LEN),
	    SW_DATA_NOT_FOUND);
	for (i = 0; i < ML_NELEM(k); i++) {
		ck_assert_sw(change(t.c, ISSUER_RETIRE, k[i].pub,
		    ML_P256_PUB_LEN), SW_OK);
	}
	/* an authorisation made before a change does not survive it */
	authorize_ok(t.c, &issuer, DOM(FEATURE));
	ck_assert_sw(change(t.c, ISSUER_RETIRE, issuer.pub, ML_P256_PUB_LEN),
	    SW_OK);
	ck_assert_state(t.c, "IDLE");
	ck_assert_sw(write_feature(t.c, DOM(FEATURE)),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_sw(change(t.c, ISSUER_RETIRE, issuer2.pub, ML_P256_PUB_LEN),
	    SW_CONDITIONS_NOT_SATISFIED);	/* the last key stays */
	expect_issuers(t.c, one, 1);
	chip_close(t.c);

	personalise(&w, "NOTEROT5");
	issue(w.c, DOM(FEATURE));
	ck_assert_sw(change(w.c, ISSUER_ADD, k[0].pub, ML_P256_PUB_LEN),
	    SW_CONDITIONS_NOT_SATISFIED);	/* written: never */
	{
		uint8_t ch[NOTE_CHALLENGE_LEN] = { 0 }, d[256];
		size_t n = make_change(&issuer, ch, serial_of(w.c),
		    ISSUER_RETIRE, issuer.pub, d, sizeof(d));

		ck_assert_sw(change(w.c, ISSUER_RETIRE, d, n),
		    SW_CONDITIONS_NOT_SATISFIED);
	}
	ck_assert_state(w.c, "WRITTEN");
	chip_close(w.c);
}
END_TEST

/*
 * Power cut after byte k of the CHANGE ISSUER commit: not 9000, and after
 * power-on the chip holds the old set or the new one, never a mix, and
 * still writes under a key of the set it holds.
 */
START_TEST(rotate_torn)
{
	const struct keypair *old[] = { &issuer, &issuer2 };
	const struct keypair *next[] = { &issuer2 };
	struct tchip tmpl, t;
	char name[32];
	long k, step = 1;
	int got_old = 0, got_new = 0;
	bool done = false;

	personalise(&tmpl, "NOTERTEAR");
	chip_close(tmpl.c);
	for (k = 0; !done; k += step) {
		snprintf(name, sizeof(name), "rtear%ld", k);
		chip_clone(&tmpl, &t, name);
		chip_test_cut_after(t.c, k);
		if (change_signed(t.c, &issuer, ISSUER_RETIRE, issuer.pub) ==
		    SW_OK) {
			done = true;
		} else {
			ck_assert_sw(R.sw, SW_MEMORY_FAILURE);
		}
		chip_reopen(&t);
		ck_assert_sw(xmit(t.c, CLA_ISO, INS_GET_DATA, GD_NOTE_ISSUERS, 0,
		    NULL, 0, 256), SW_OK);
		if (R.p[0] == 2) {
			got_old++;
			expect_issuers(t.c, old, 2);
			authorize_ok(t.c, &issuer, DOM(FEATURE));
		} else {
			got_new++;
			expect_issuers(t.c, next, 1);
			authorize_ok(t.c, &issuer2, DOM(FEATURE));
		}
		ck_assert_sw(write_feature(t.c, DOM(FEATURE)), SW_OK);
		chip_close(t.c);
		step = k < STORE_HDR_LEN + 8 ? 1 : 13;
	}
	ck_assert_int_gt(got_old, 0);
	ck_assert_int_gt(got_new, 0);
}
END_TEST

/* ---- the state table: every INS in every state ------------------- */

enum { ST_BLANK, ST_IDLE, ST_CHALLENGED, ST_AUTHORIZED, ST_WRITTEN, ST_N };
static const char *const st_names[ST_N] = {
	"BLANK", "IDLE", "CHALLENGED", "AUTHORIZED", "WRITTEN",
};

/* Bring a fresh chip into state s; the SO stays logged in.  The fresh
 * challenge is stored in *ret_ch when there is one. */
static void
drive_to(struct tchip *t, int s, const char *serial, uint8_t *ret_ch)
{
	uint8_t d[2048];
	size_t n;

	memset(ret_ch, 0, NOTE_CHALLENGE_LEN);
	if (s == ST_BLANK) {
		personalise_open(t, serial);
		return;
	}
	personalise(t, serial);
	switch (s) {
	case ST_IDLE:
		break;
	case ST_CHALLENGED:
		get_challenge(t->c, ret_ch);
		break;
	case ST_AUTHORIZED:
		get_challenge(t->c, ret_ch);
		n = make_auth(&issuer, ret_ch, serial_of(t->c), DOM(FEATURE),
		    d, sizeof(d));
		ck_assert_sw(authorize(t->c, d, n), SW_OK);
		break;
	case ST_WRITTEN:
		issue(t->c, DOM(FEATURE));
		break;
	}
	ck_assert_state(t->c, st_names[s]);
}

/*
 * The expected answer of a well-formed command for each INS in each state.
 * 6985 exactly where the table's mask excludes the state; elsewhere the
 * handler's own answer.
 */
static const struct table_row {
	uint8_t		 ins;
	uint16_t	 want[ST_N];	/* BLANK IDLE CHAL AUTH WRITTEN */
	const char	*after[ST_N];	/* after a 9000; NULL: same */
} table_rows[] = {
	{ INS_INSTALL_ISSUER,
	  { 0x9000, 0x6985, 0x6985, 0x6985, 0x6985 } },
	{ INS_INSTALL_SERVER,
	  { 0x9000, 0x6985, 0x6985, 0x6985, 0x6985 } },
	{ INS_LOCK,
	  { 0x9000, 0x6985, 0x6985, 0x6985, 0x6985 },
	  { "IDLE" } },
	{ INS_GET_CHALLENGE,
	  { 0x9000, 0x9000, 0x9000, 0x9000, 0x9000 },
	  { NULL, "CHALLENGED", "CHALLENGED", "CHALLENGED" } },
	{ INS_AUTHORIZE_WRITE,
	  { 0x6985, 0x6985, 0x9000, 0x6985, 0x6985 },
	  { NULL, NULL, "AUTHORIZED" } },
	{ INS_WRITE_FEATURE,
	  { 0x6985, 0x6985, 0x6985, 0x9000, 0x6985 },
	  { NULL, NULL, NULL, "WRITTEN" } },
	{ INS_READ_FEATURE,
	  { 0x6A88, 0x6A88, 0x6A88, 0x6A88, 0x9000 } },
	{ INS_GET_SEALED,
	  { 0x6985, 0x6985, 0x6985, 0x6985, 0x9000 } },
	{ INS_INTERNAL_AUTH,
	  { 0x6985, 0x9000, 0x9000, 0x9000, 0x9000 } },
	{ INS_CHANGE_ISSUER,
	  { 0x6985, 0x9000, 0x9000, 0x9000, 0x6985 },
	  { NULL, NULL, "IDLE", "IDLE" } },
	{ INS_GET_DATA,
	  { 0x9000, 0x9000, 0x9000, 0x9000, 0x9000 } },
};

static const struct ins_entry *
note_entry(uint8_t ins)
{
	size_t i;

	for (i = 0; i < chip_profile_note.nins; i++) {
		if (chip_profile_note.ins[i].ins == ins) {
			return &chip_profile_note.ins[i];
		}
	}
	return NULL;
}

/* Every INS of the profile table has a row, and every row an INS. */
START_TEST(table_complete)
{
	size_t i, j;

	ck_assert_uint_eq(chip_profile_note.nins, ML_NELEM(table_rows));
	ck_assert_uint_eq(chip_profile_note.nstates, ST_N);
	for (i = 0; i < ST_N; i++) {
		ck_assert_str_eq(chip_profile_note.state_names[i], st_names[i]);
	}
	for (i = 0; i < chip_profile_note.nins; i++) {
		const struct ins_entry *e = &chip_profile_note.ins[i];

		ck_assert_ptr_nonnull(e->name);
		ck_assert_ptr_nonnull(e->fn);
		for (j = 0; j < ML_NELEM(table_rows); j++) {
			if (table_rows[j].ins == e->ins) {
				break;
			}
		}
		ck_assert_msg(j < ML_NELEM(table_rows), "INS %02X has no row",
		    e->ins);
		/* 6985 in exactly the states the mask excludes. */
		for (j = 0; j < ST_N; j++) {
			const struct table_row *row = NULL;
			size_t x;

			for (x = 0; x < ML_NELEM(table_rows); x++) {
				if (table_rows[x].ins == e->ins) {
					row = &table_rows[x];
				}
			}
			ck_assert_msg(((e->allowed & state_bit(st_names[j])) ==
			    0) == (row->want[j] == 0x6985),
			    "INS %02X state %s: mask %#x vs want %04X",
			    e->ins, st_names[j], e->allowed, row->want[j]);
		}
	}
}
END_TEST

/* _i = ins row * ST_N + state */
START_TEST(table_every_ins_every_state)
{
	const struct table_row *row = &table_rows[_i / ST_N];
	const struct ins_entry *e = note_entry(row->ins);
	int s = _i % ST_N;
	struct tchip t;
	struct keypair fresh;
	uint8_t ch[NOTE_CHALLENGE_LEN], d[2048], vch[16] = { 1 };
	const char *want_after;
	size_t n = 0;
	uint16_t sw;

	ck_assert_ptr_nonnull(e);
	drive_to(&t, s, "NOTETAB", ch);
	switch (row->ins) {
	case INS_INSTALL_ISSUER:
	case INS_INSTALL_SERVER:
		make_key(&fresh);
		sw = install(t.c, row->ins, fresh.pub);
		break;
	case INS_LOCK:
		sw = xmit(t.c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0);
		break;
	case INS_GET_CHALLENGE:
		sw = xmit(t.c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0,
		    NOTE_CHALLENGE_LEN);
		break;
	case INS_AUTHORIZE_WRITE:
		/* Valid for the live challenge if there is one. */
		n = make_auth(&issuer, ch, serial_of(t.c), DOM(FEATURE), d,
		    sizeof(d));
		sw = authorize(t.c, d, n);
		break;
	case INS_WRITE_FEATURE:
		sw = write_feature(t.c, DOM(FEATURE));
		break;
	case INS_READ_FEATURE:
		sw = xmit(t.c, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0, 256);
		break;
	case INS_GET_SEALED:
		sw = xmit(t.c, CLA_PROP, INS_GET_SEALED, 0, 0, NULL, 0, 65536);
		break;
	case INS_INTERNAL_AUTH:
		sw = xmit(t.c, CLA_ISO, INS_INTERNAL_AUTH, 0, 0, vch,
		    sizeof(vch), 256);
		break;
	case INS_GET_DATA:
		sw = xmit(t.c, CLA_ISO, INS_GET_DATA, GD_CHIP_PUBKEY, 0, NULL,
		    0, 256);
		break;
	case INS_CHANGE_ISSUER:
		make_key(&fresh);	/* the SO is logged in */
		sw = change(t.c, ISSUER_ADD, fresh.pub, ML_P256_PUB_LEN);
		break;
	default:
		ck_abort_msg("INS %02X: no canonical command", row->ins);
		return;
	}
	ck_assert_msg(sw == row->want[s], "%s in %s: SW %04X, want %04X",
	    e->name, st_names[s], sw, row->want[s]);
	if (sw != SW_OK) {
		ck_assert_uint_eq(R.len, 0);
	}
	want_after = (sw == SW_OK && row->after[s] != NULL) ? row->after[s] :
	    st_names[s];
	ck_assert_msg(strcmp(state_name(t.c), want_after) == 0,
	    "%s in %s: now %s, want %s", e->name, st_names[s],
	    state_name(t.c), want_after);
	chip_close(t.c);
}
END_TEST

/* Commands not selected: 6985 for every note INS. */
START_TEST(table_unselected)
{
	struct tchip t;
	size_t i;

	personalise(&t, "NOTESEL");
	chip_reset(t.c);
	for (i = 0; i < chip_profile_note.nins; i++) {
		const struct ins_entry *e = &chip_profile_note.ins[i];

		ck_assert_msg(xmit(t.c, e->cla, e->ins, 0, 0, NULL, 0, 16) ==
		    SW_CONDITIONS_NOT_SATISFIED, "%s: SW %04X", e->name, R.sw);
	}
	ck_assert_state(t.c, "IDLE");
	chip_close(t.c);
}
END_TEST

/*
 * A seeded storm of random note commands in every state: every answer is a
 * known SW, and a refused command leaves the state as it was, except the
 * documented consumption (AUTHORIZE uses the challenge up; a WRITE of other
 * bytes than the authorized ones drops the authorization).
 */
static bool
sw_known(uint16_t sw)
{
	static const uint16_t ok[] = { SW_OK, SW_WRONG_LENGTH, SW_WRONG_DATA,
	    SW_INCORRECT_P1P2, SW_SECURITY_NOT_SATISFIED,
	    SW_CONDITIONS_NOT_SATISFIED, SW_DATA_NOT_FOUND,
	    SW_NOT_ENOUGH_MEMORY };
	size_t i;

	for (i = 0; i < ML_NELEM(ok); i++) {
		if (sw == ok[i]) {
			return true;
		}
	}
	return false;
}

START_TEST(random_commands)
{
	static const size_t lens[] = { 0, 1, 15, 16, 17, 64, 65, 66, 67, 81,
	    255, 256, 1100 };
	struct tchip t;
	uint8_t ch[NOTE_CHALLENGE_LEN], d[2048];
	char before[16], serial[16];
	unsigned seed = 0x5eed0000u + (unsigned)_i;
	size_t i, j, n;
	uint16_t sw;

	snprintf(serial, sizeof(serial), "NOTERND%d", _i);
	drive_to(&t, _i, serial, ch);
	for (i = 0; i < 400; i++) {
		const struct ins_entry *e = &chip_profile_note.ins[
		    rand_r(&seed) % chip_profile_note.nins];
		uint8_t p1 = 0, p2 = 0;
		uint32_t ne;

		if (rand_r(&seed) % 4 == 0) {
			p1 = (uint8_t)rand_r(&seed);
		}
		if (rand_r(&seed) % 8 == 0) {
			p2 = (uint8_t)rand_r(&seed);
		}
		if (e->ins == INS_GET_DATA && rand_r(&seed) % 2 == 0) {
			p1 = GD_CHIP_PUBKEY;
		}
		n = lens[rand_r(&seed) % ML_NELEM(lens)];
		for (j = 0; j < n; j++) {
			d[j] = (uint8_t)rand_r(&seed);
		}
		if (n >= 2 && rand_r(&seed) % 2 == 0) {	/* plausible lv16 */
			d[0] = 0;
			d[1] = (uint8_t)(n > 66 ? n - 66 : 0);
		}
		if (n >= ML_P256_PUB_LEN && rand_r(&seed) % 2 == 0) {
			d[0] = 0x04;
		}
		ne = (rand_r(&seed) % 3 == 0) ? 0 : 1 + rand_r(&seed) % 256;
		snprintf(before, sizeof(before), "%s", state_name(t.c));
		sw = xmit(t.c, e->cla, e->ins, p1, p2, d, n, ne);
		ck_assert_msg(sw_known(sw), "%s in %s: SW %04X", e->name,
		    before, sw);
		if (sw == SW_OK) {
			/* The only moves random bytes can make. */
			ck_assert_msg(strcmp(state_name(t.c), before) == 0 ||
			    (e->ins == INS_GET_CHALLENGE &&
			    strcmp(state_name(t.c), "CHALLENGED") == 0) ||
			    (e->ins == INS_LOCK &&
			    strcmp(state_name(t.c), "IDLE") == 0) ||
			    (e->ins == INS_CHANGE_ISSUER &&
			    strcmp(state_name(t.c), "IDLE") == 0),
			    "%s in %s: 9000 and now %s", e->name, before,
			    state_name(t.c));
		} else if (e->ins == INS_AUTHORIZE_WRITE &&
		    strcmp(before, "CHALLENGED") == 0) {
			ck_assert_state(t.c, "IDLE");
		} else if (e->ins == INS_CHANGE_ISSUER &&
		    (strcmp(before, "CHALLENGED") == 0 ||
		    strcmp(before, "AUTHORIZED") == 0)) {
			ck_assert_state(t.c, "IDLE");	/* consumed */
		} else if (e->ins == INS_WRITE_FEATURE &&
		    sw == SW_SECURITY_NOT_SATISFIED) {
			ck_assert_str_eq(before, "AUTHORIZED");
			ck_assert_state(t.c, "IDLE");
		} else {
			ck_assert_msg(strcmp(state_name(t.c), before) == 0,
			    "%s in %s: SW %04X and now %s", e->name, before,
			    sw, state_name(t.c));
		}
		/* Keep visiting the interesting states. */
		if (rand_r(&seed) % 16 == 0 &&
		    strcmp(state_name(t.c), "IDLE") == 0) {
			get_challenge(t.c, ch);
		}
	}
	/* The store agrees with RAM. */
	snprintf(before, sizeof(before), "%s", state_name(t.c));
	chip_reopen(&t);
	if (strcmp(before, "CHALLENGED") == 0 ||
	    strcmp(before, "AUTHORIZED") == 0) {
		snprintf(before, sizeof(before), "IDLE");
	}
	ck_assert_state(t.c, before);
	chip_close(t.c);
}
END_TEST

static Suite *
note_suite(void)
{
	Suite *s = suite_create("note");
	TCase *tc;

	tc = tcase_create("issue");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, issue_read_seal);
	tcase_add_test(tc, issue_max_feature);
	tcase_add_test(tc, issue_second_issuer);
	suite_add_tcase(s, tc);

	tc = tcase_create("reject");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, auth_wrong_key);
	tcase_add_test(tc, auth_challenge_consumed_on_failure);
	tcase_add_test(tc, auth_replay_new_challenge);
	tcase_add_test(tc, auth_other_chip);
	tcase_add_test(tc, write_other_feature);
	tcase_add_test(tc, write_without_authorize);
	tcase_add_test(tc, write_once);
	suite_add_tcase(s, tc);

	tc = tcase_create("malformed");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, auth_truncated);
	tcase_add_test(tc, auth_feature_bounds);
	tcase_add_test(tc, write_bounds);
	tcase_add_test(tc, challenge_le);
	suite_add_tcase(s, tc);

	tc = tcase_create("personalise");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, install_after_lock);
	tcase_add_test(tc, core_after_lock);
	tcase_add_test(tc, personalise_needs_so);
	tcase_add_test(tc, lock_prerequisites);
	tcase_add_test(tc, install_malformed);
	suite_add_tcase(s, tc);

	tc = tcase_create("rotate");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, rotate_by_issuer_key);
	tcase_add_test(tc, rotate_bad_signature);
	tcase_add_test(tc, rotate_replayed_challenge);
	tcase_add_test(tc, rotate_so_and_limits);
	tcase_add_test(tc, rotate_torn);
	suite_add_tcase(s, tc);

	tc = tcase_create("prove");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, internal_auth);
	suite_add_tcase(s, tc);

	tc = tcase_create("power");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, state_across_power);
	tcase_add_test(tc, write_torn);
	suite_add_tcase(s, tc);

	tc = tcase_create("table");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, table_complete);
	tcase_add_loop_test(tc, table_every_ins_every_state, 0,
	    (int)(ML_NELEM(table_rows) * ST_N));
	tcase_add_test(tc, table_unselected);
	tcase_add_loop_test(tc, random_commands, 0, ST_N);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(note_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
