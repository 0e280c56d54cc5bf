/*
 * The banknote chip profile (BN-1..BN-8): personalisation (issuer and
 * server keys, then LOCK), the challenge-bound write authorization, the
 * write-once feature store, the sealed upload to the server and the chip
 * authentication that tells a genuine chip from a clone.
 *
 * This file is a profile: an INS table with the states that accept each
 * command, plus handlers.  It parses nothing but a struct apdu's data field,
 * and only through ml_rd; the core (chip.c) owns the APDU codec, selection,
 * PINs, objects, key generation and the tear-safe store.
 *
 * State lives in two places.  The persistent part is c->st (INFO_F_LOCKED,
 * INFO_F_WRITTEN, the feature record); the volatile part is RAM in struct
 * chip (the live challenge and the authorization), wiped by note_reset() on
 * every reset and power-off, so CHALLENGED and AUTHORIZED never survive a
 * power cycle while WRITTEN always does.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ml_err.h"
#include "ml_ossl.h"
#include "ml_rd.h"
#include "ml_tlv.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "chip_int.h"
#include "note_msg.h"

/*
 * One bit per state; note_state() returns exactly one.
 *
 *	state		derived from		meaning
 *	BLANK		!INFO_F_LOCKED		personalisation open
 *	IDLE		LOCKED, !WRITTEN	no live challenge
 *	CHALLENGED	... challenge_live	GET CHALLENGE answered
 *	AUTHORIZED	... authorized		station key proven (BN-4)
 *	WRITTEN		INFO_F_WRITTEN		write-once, forever (BN-5)
 */
enum note_state {
	NOTE_BLANK	= 1 << 0,
	NOTE_IDLE	= 1 << 1,
	NOTE_CHALLENGED	= 1 << 2,
	NOTE_AUTHORIZED	= 1 << 3,
	NOTE_WRITTEN	= 1 << 4,
};
#define NOTE_LOCKED	(NOTE_IDLE | NOTE_CHALLENGED | NOTE_AUTHORIZED | \
			 NOTE_WRITTEN)
#define NOTE_ANY	(NOTE_BLANK | NOTE_LOCKED)
/* Where GET CHALLENGE (16 bytes) arms the write challenge. */
#define NOTE_ARMABLE	(NOTE_IDLE | NOTE_CHALLENGED | NOTE_AUTHORIZED)

static const char *const note_state_names[] = {
	"BLANK", "IDLE", "CHALLENGED", "AUTHORIZED", "WRITTEN",
};

#define NOTE_AUTH_OK	0x01	/* AUTHORIZE WRITE: confirm-write */
#define NOTE_PROVE_MIN	16	/* INTERNAL AUTH verifier challenge */
#define NOTE_PROVE_MAX	64
#define NOTE_NONCE_LEN	16	/* TAG_SEAL_NONCE */
#define DOMAIN_LEN(d)	(sizeof(d) - 1)	/* no NUL on the wire */

/* NOTE_AUTH_DOMAIN || challenge || serial || feature */
#define NOTE_AUTH_MSG_MAX	(DOMAIN_LEN(NOTE_AUTH_DOMAIN) + \
				 NOTE_CHALLENGE_LEN + CHIP_SERIAL_LEN + \
				 NOTE_MAX_FEATURE)
/* The feature record (5 TLVs) plus the seal nonce, with generous headers. */
#define NOTE_RECORD_MAX		(CHIP_SERIAL_LEN + NOTE_MAX_FEATURE + \
				 NOTE_CHALLENGE_LEN + ML_P256_SIG_LEN + 1 + \
				 NOTE_NONCE_LEN + 6 * 4)

static unsigned
note_state(const struct chip *c)
{
	if ((c->st.flags & INFO_F_WRITTEN) != 0) {
		return NOTE_WRITTEN;
	}
	if ((c->st.flags & INFO_F_LOCKED) == 0) {
		return NOTE_BLANK;
	}
	if (c->authorized) {
		return NOTE_AUTHORIZED;
	}
	if (c->challenge_live) {
		return NOTE_CHALLENGED;
	}
	return NOTE_IDLE;
}

static void
note_drop_challenge(struct chip *c)
{
	c->challenge_live = false;
	ml_wipe(c->challenge, sizeof(c->challenge));
}

static void
note_drop_auth(struct chip *c)
{
	c->authorized = false;
	ml_wipe(c->auth_digest, sizeof(c->auth_digest));
	ml_wipe(c->auth_sig, sizeof(c->auth_sig));
	ml_wipe(c->auth_challenge, sizeof(c->auth_challenge));
	c->auth_issuer = 0;
}

/* Profile reset hook: warm reset and power-off forget the RAM states. */
static void
note_reset(struct chip *c)
{
	note_drop_challenge(c);
	note_drop_auth(c);
}

/* Every note command has P1 = P2 = 0 (GET DATA excepted: P1 is the tag). */
static int
note_p1p2_zero(const struct apdu *a)
{
	return (a->p1 == 0 && a->p2 == 0) ? 0 : SW_INCORRECT_P1P2;
}

static const uint8_t *
note_serial(const struct chip *c)
{
	return (const uint8_t *)c->st.serial;
}

/* SHA-256 of the written feature, or of the empty string on a blank note. */
static int
note_feature_digest(const struct chip *c, uint8_t ret_md[static ML_SHA256_LEN])
{
	if ((c->st.flags & INFO_F_WRITTEN) == 0 || c->st.feature == NULL) {
		return ml_sha256(NULL, 0, ret_md);
	}
	return ml_sha256(c->st.feature, c->st.feature_len, ret_md);
}

/*
 * Sign SHA-256(msg) with the chip key (ECDSA P-256, raw r||s); msg is one
 * of note_msg.h's.  ML_ERR_STATE if the chip has no key yet.
 */
static int
note_chip_sign(struct chip *c, const struct ml_wr *msg,
    uint8_t ret_sig[static ML_P256_SIG_LEN])
{
	const struct ml_p256_key *k = NULL;
	struct chip_obj *o;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE((o = chip_chipkey(c)) != NULL, ML_ERR_STATE);
	ML_TRY(chip_obj_key(o, &k));
	ML_TRY(ml_p256_sign(k, msg->p, msg->len, ret_sig));
	r = 0;
out:
	return r;
}

/*
 * The feature record (READ FEATURE, and the plaintext of GET SEALED):
 *
 *	D0 serial  D1 feature  D2 challenge  D3 station sig  D4 issuer index
 */
static int
note_put_record(const struct chip *c, struct ml_wr *w)
{
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_tlv_put(w, TAG_FEAT_SERIAL, note_serial(c), CHIP_SERIAL_LEN));
	ML_TRY(ml_tlv_put(w, TAG_FEAT_INFO, c->st.feature, c->st.feature_len));
	ML_TRY(ml_tlv_put(w, TAG_FEAT_CHALLENGE, c->st.feat_challenge,
	    NOTE_CHALLENGE_LEN));
	ML_TRY(ml_tlv_put(w, TAG_FEAT_AUTH_SIG, c->st.feat_sig,
	    ML_P256_SIG_LEN));
	ML_TRY(ml_tlv_put_u8(w, TAG_FEAT_ISSUER, c->st.feat_issuer));
	r = 0;
out:
	return r;
}

/* Read one P-256 point (exactly the whole data field) and check it. */
static int
note_read_point(const struct apdu *a, uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	struct ml_rd rd = a->data;
	const uint8_t *pub;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_rd_bytes(&rd, ML_P256_PUB_LEN, &pub));
	ML_TRY(ml_rd_end(&rd));
	/* Not on the curve, or compressed: a malformed data field. */
	ML_ENSURE(ml_p256_check_pub(pub, ML_P256_PUB_LEN) == 0, ML_ERR_FORMAT);
	memcpy(ret_pub, pub, ML_P256_PUB_LEN);
	r = 0;
out:
	return r;
}

/*
 * INSTALL ISSUER: 80 70 00 00 Lc point(65).  SO, BLANK only.
 *
 *= REQ BN-4
 *# The chip checks it with the pre-installed *authorized* public key.
 *
 * Up to NOTE_MAX_ISSUERS authorized keys (one per issuance line or key
 * rollover); the index of the one that verified is recorded with the
 * feature.  A key already installed is ML_ERR_EXISTS; a full table
 * ML_ERR_FULL.
 */
static int
note_install_issuer(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	uint8_t pub[ML_P256_PUB_LEN];
	size_t i;
	int r = ML_ERR_INTERNAL;

	ML_TRY(chip_need_login(c, LOGIN_SO));
	ML_TRY(note_p1p2_zero(a));
	ML_TRY(note_read_point(a, pub));
	for (i = 0; i < c->st.nissuers; i++) {
		ML_ENSURE(memcmp(c->st.issuers[i], pub, sizeof(pub)) != 0,
		    ML_ERR_EXISTS);
	}
	ML_ENSURE(c->st.nissuers < NOTE_MAX_ISSUERS, ML_ERR_FULL);
	memcpy(c->st.issuers[c->st.nissuers], pub, sizeof(pub));
	c->st.nissuers++;
	/* On failure the core reloads st: the issuer is not installed. */
	ML_TRY(chip_commit(c));
	r = 0;
out:
	return r;
}

/*
 * INSTALL SERVER: 80 72 00 00 Lc point(65).  SO, BLANK only; a second
 * install before LOCK replaces the first.
 *
 *= REQ BN-6
 *# The chip encrypts the written feature information with the server's
 *# public key and sends it to the server.
 */
static int
note_install_server(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	uint8_t pub[ML_P256_PUB_LEN];
	int r = ML_ERR_INTERNAL;

	ML_TRY(chip_need_login(c, LOGIN_SO));
	ML_TRY(note_p1p2_zero(a));
	ML_TRY(note_read_point(a, pub));
	memcpy(c->st.server_pub, pub, sizeof(pub));
	c->st.has_server = true;
	ML_TRY(chip_commit(c));
	r = 0;
out:
	return r;
}

/*
 * LOCK: 80 74 00 00.  SO, BLANK only.  Ends personalisation for good: the
 * chip key, at least one issuer key and the server key must be in place
 * (else ML_ERR_STATE, 6985), because none of them can be added afterwards.
 */
static int
note_lock(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct ml_rd rd = a->data;
	int r = ML_ERR_INTERNAL;

	ML_TRY(chip_need_login(c, LOGIN_SO));
	ML_TRY(note_p1p2_zero(a));
	ML_TRY(ml_rd_end(&rd));
	ML_ENSURE(chip_chipkey(c) != NULL, ML_ERR_STATE);
	ML_ENSURE(c->st.nissuers > 0, ML_ERR_STATE);
	ML_ENSURE(c->st.has_server, ML_ERR_STATE);
	c->st.flags |= INFO_F_LOCKED;
	note_reset(c);
	ML_TRY(chip_commit(c));
	r = 0;
out:
	return r;
}

/*
 * GET CHALLENGE: 00 84 00 00 Le -> Ne random bytes.  Any state.
 *
 * This entry wins over the core's.  In IDLE, CHALLENGED and AUTHORIZED a
 * request for exactly NOTE_CHALLENGE_LEN (16) bytes arms the write
 * challenge: the answer is the one-shot nonce that the next AUTHORIZE
 * WRITE must sign.  It replaces a live challenge and drops any
 * authorization (an authorization is bound to the challenge it was made
 * for; a new challenge starts a new attempt).  Any other length, or any
 * request in BLANK or WRITTEN, is the core's plain GET CHALLENGE (the
 * chip's random source, C_GenerateRandom) and touches no note state.
 *
 *= REQ beyond the documents (freshness)
 *# a chip challenge inside the write authorization, so a recorded
 *# authorization cannot be replayed onto another chip
 */
static int
note_get_challenge(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	uint8_t ch[NOTE_CHALLENGE_LEN];
	struct ml_rd rd = a->data;
	int r = ML_ERR_INTERNAL;

	if ((note_state(c) & NOTE_ARMABLE) == 0 ||
	    a->ne != NOTE_CHALLENGE_LEN) {
		r = core_get_challenge(c, a, resp);
		goto out;
	}
	ML_TRY(note_p1p2_zero(a));
	ML_TRY(ml_rd_end(&rd));
	ML_TRY(ml_rand(ch, sizeof(ch)));
	ML_TRY(ml_wr_bytes(resp, ch, sizeof(ch)));
	note_drop_auth(c);
	memcpy(c->challenge, ch, sizeof(ch));
	c->challenge_live = true;
	r = 0;
out:
	ml_wipe(ch, sizeof(ch));
	return r;
}

/*
 * AUTHORIZE WRITE: 80 78 00 00 Lc lv16(feature) sig(64) -> 01.
 * CHALLENGED only.
 *
 *= REQ BN-3
 *# The client proves its private key over the feature information and
 *# sends the result to the chip.
 *
 *= REQ BN-4
 *# The chip checks it with the pre-installed *authorized* public key.
 *# Success: it answers confirm-write. Failure: reject-write.
 *
 * The station signs (ECDSA P-256, SHA-256)
 *
 *	NOTE_AUTH_DOMAIN || challenge(16) || serial(16) || feature
 *
 * with the domain string without its NUL.  Every field but the last is
 * fixed-size, so the message is unambiguous.  The serial binds the
 * authorization to this chip, the challenge to this attempt.
 *
 * The challenge is consumed before anything else is looked at, whatever
 * the outcome (malformed, rejected or confirmed), like a MON_ONCE request:
 * a replayed or retried authorization has nothing to match, and a failed
 * attempt leaves the chip in IDLE.  Confirm-write is SW 9000 with the one
 * byte 01 and the state AUTHORIZED, remembering SHA-256(feature), the
 * challenge, the signature and the issuer index for WRITE FEATURE;
 * reject-write is ML_ERR_AUTH (6982) and nothing is remembered.  The
 * feature must be 1..NOTE_MAX_FEATURE bytes.
 */
static int
note_authorize_write(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	uint8_t challenge[NOTE_CHALLENGE_LEN];
	uint8_t msg_buf[NOTE_AUTH_MSG_MAX];
	struct ml_wr msg = ML_WR_FIXED(msg_buf, sizeof(msg_buf));
	uint8_t md[ML_SHA256_LEN], feat_md[ML_SHA256_LEN];
	struct ml_rd rd = a->data, feat;
	struct ml_p256_key *k = NULL;
	const uint8_t *sig, *fp;
	size_t i, flen;
	bool live = c->challenge_live, ok = false;
	int r = ML_ERR_INTERNAL;

	/* Consume first: from here on this challenge is gone (freshness). */
	memcpy(challenge, c->challenge, sizeof(challenge));
	note_drop_challenge(c);
	ML_ENSURE(live, ML_ERR_STATE);	/* the table checked; belt and braces */

	ML_TRY(note_p1p2_zero(a));
	ML_TRY(ml_rd_lv16(&rd, NOTE_MAX_FEATURE, &feat));
	ML_TRY(ml_rd_bytes(&rd, ML_P256_SIG_LEN, &sig));
	ML_TRY(ml_rd_end(&rd));
	flen = ml_rd_left(&feat);
	ML_ENSURE(flen > 0, ML_ERR_FORMAT);
	ML_TRY(ml_rd_bytes(&feat, flen, &fp));

	ML_TRY(note_msg_auth(&msg, challenge, note_serial(c), fp, flen));
	ML_TRY(ml_sha256(msg.p, msg.len, md));

	/* Try each authorized key; any failure to verify is just "no". */
	for (i = 0; i < c->st.nissuers; i++) {
		ML_TRY(ml_p256_key_from_pub(c->st.issuers[i], ML_P256_PUB_LEN,
		    &k));
		ok = ml_p256_verify_digest(k, md, sizeof(md), sig,
		    ML_P256_SIG_LEN) == 0;
		ml_p256_key_free(k);
		k = NULL;
		if (ok) {
			break;
		}
	}
	ML_ENSURE(ok, ML_ERR_AUTH);		/* reject-write */

	ML_TRY(ml_sha256(fp, flen, feat_md));
	ML_TRY(ml_wr_u8(resp, NOTE_AUTH_OK));	/* confirm-write */
	memcpy(c->auth_digest, feat_md, sizeof(feat_md));
	memcpy(c->auth_challenge, challenge, sizeof(challenge));
	memcpy(c->auth_sig, sig, ML_P256_SIG_LEN);
	c->auth_issuer = (uint8_t)i;
	c->authorized = true;
	r = 0;
out:
	ml_p256_key_free(k);
	ml_wipe(challenge, sizeof(challenge));
	ml_wipe(msg_buf, sizeof(msg_buf));
	return r;
}

/*
 * WRITE FEATURE: 80 7A 00 00 Lc feature.  AUTHORIZED only.
 *
 *= REQ BN-5
 *# On confirm the client writes the feature information; on reject it
 *# writes nothing.
 *
 * The bytes must be exactly the ones authorized (SHA-256 compared in
 * constant time); a mismatch is ML_ERR_AUTH and drops the authorization.
 * An empty or oversized field is a length error and changes nothing.
 *
 *= REQ beyond the documents (write-once, tear-safe)
 *# write-once notes and tear-safe chip storage: a power cut at any instant
 *# leaves the old state or the new, never a mix
 *
 * INFO_F_WRITTEN and the whole record reach the store in one commit before
 * 9000 is answered.  If the commit fails the core reloads c->st from the
 * store, so RAM never claims WRITTEN for a note whose store does not.  The
 * authorization is used up either way.
 */
static int
note_write_feature(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	uint8_t md[ML_SHA256_LEN];
	struct ml_rd rd = a->data;
	uint8_t *copy = NULL;
	const uint8_t *fp;
	size_t flen;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(c->authorized, ML_ERR_STATE);
	ML_TRY(note_p1p2_zero(a));
	flen = ml_rd_left(&rd);
	ML_ENSURE(flen > 0, ML_ERR_SHORT);
	ML_ENSURE(flen <= NOTE_MAX_FEATURE, ML_ERR_TRAILING);
	ML_TRY(ml_rd_bytes(&rd, flen, &fp));
	ML_TRY(ml_rd_end(&rd));
	ML_TRY(ml_sha256(fp, flen, md));
	if (!ml_ct_eq(md, c->auth_digest, sizeof(md))) {
		note_drop_auth(c);
		r = ML_ERR_AUTH;
		goto out;
	}
	/* AUTHORIZED implies !WRITTEN, so nothing is held here yet. */
	ML_ENSURE(c->st.feature == NULL, ML_ERR_INTERNAL);
	ML_ENSURE((copy = malloc(flen)) != NULL, ML_ERR_NOMEM);
	memcpy(copy, fp, flen);

	c->st.feature = copy;
	copy = NULL;
	c->st.feature_len = flen;
	memcpy(c->st.feat_challenge, c->auth_challenge, NOTE_CHALLENGE_LEN);
	memcpy(c->st.feat_sig, c->auth_sig, ML_P256_SIG_LEN);
	c->st.feat_issuer = c->auth_issuer;
	c->st.flags |= INFO_F_WRITTEN;
	note_drop_auth(c);
	ML_TRY(chip_commit(c));
	r = 0;
out:
	free(copy);
	return r;
}

/*
 * READ FEATURE: 80 7C 00 00 Le -> feature record.  Any state; a note with
 * nothing written answers 6A88 (a blank note, as far as a verification
 * desk is concerned).
 *
 *= REQ BN-8
 *# Notes are checked by comparing feature information: a verification
 *# desk reads a note and gets a verdict.
 */
static int
note_read_feature(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct ml_rd rd = a->data;
	size_t mark = resp->len;
	int r = ML_ERR_INTERNAL;

	ML_TRY(note_p1p2_zero(a));
	ML_TRY(ml_rd_end(&rd));
	ML_ENSURE(note_state(c) == NOTE_WRITTEN, SW_DATA_NOT_FOUND);
	ML_TRY(note_put_record(c, resp));
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(resp, mark);
	}
	return r;
}

/*
 * GET SEALED: 80 7E 00 00 Le -> D0 serial, D5 blob, D6 chip signature.
 * WRITTEN only.
 *
 *= REQ BN-6
 *# The chip encrypts the written feature information with the server's
 *# public key and sends it to the server.
 *
 *	pt   = feature record || D7 nonce(16)
 *	blob = ml_seal(server_pub, aad = serial, pt)
 *	sig  = ECDSA(chip key, NOTE_SEAL_DOMAIN || serial || blob)
 *
 * Fresh on every request (a new ephemeral key and nonce), so two uploads of
 * one note never look alike on the wire; the chip signature lets the
 * server tell which chip sealed it.
 */
static int
note_get_sealed(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct ml_wr pt = ml_wr_dyn(NOTE_RECORD_MAX);
	struct ml_wr msg = ml_wr_dyn(NOTE_RECORD_MAX + ML_SEAL_OVERHEAD + 64);
	uint8_t nonce[NOTE_NONCE_LEN];
	uint8_t sig[ML_P256_SIG_LEN];
	struct ml_rd rd = a->data;
	uint8_t *blob = NULL;
	size_t blob_cap = 0, blob_len = 0;
	size_t mark = resp->len;
	int r = ML_ERR_INTERNAL;

	ML_TRY(note_p1p2_zero(a));
	ML_TRY(ml_rd_end(&rd));
	ML_ENSURE(note_state(c) == NOTE_WRITTEN && c->st.has_server,
	    ML_ERR_STATE);
	ML_TRY(note_put_record(c, &pt));
	ML_TRY(ml_rand(nonce, sizeof(nonce)));
	ML_TRY(ml_tlv_put(&pt, TAG_SEAL_NONCE, nonce, sizeof(nonce)));

	blob_cap = pt.len + ML_SEAL_OVERHEAD;
	ML_ENSURE((blob = malloc(blob_cap)) != NULL, ML_ERR_NOMEM);
	ML_TRY(ml_seal(c->st.server_pub, note_serial(c), CHIP_SERIAL_LEN,
	    pt.p, pt.len, blob, blob_cap, &blob_len));
	ML_TRY(note_msg_seal(&msg, note_serial(c), blob, blob_len));
	ML_TRY(note_chip_sign(c, &msg, sig));

	ML_TRY(ml_tlv_put(resp, TAG_FEAT_SERIAL, note_serial(c),
	    CHIP_SERIAL_LEN));
	ML_TRY(ml_tlv_put(resp, TAG_SEAL_BLOB, blob, blob_len));
	ML_TRY(ml_tlv_put(resp, TAG_SEAL_CHIP_SIG, sig, sizeof(sig)));
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(resp, mark);
	}
	ml_wr_free(&pt);
	ml_wr_free(&msg);
	ml_wipe(nonce, sizeof(nonce));
	ml_freezero(blob, blob_cap);
	return r;
}

/*
 * INTERNAL AUTHENTICATE: 00 88 00 00 Lc challenge(16..64) Le -> sig(64).
 * Any locked state (LOCK guarantees the chip key).  Touches no note state.
 *
 *= REQ beyond the documents (chip authentication)
 *# chip authentication (a key pair generated inside each chip) so a
 *# verification desk can tell a clone from the genuine chip
 *
 *	sig = ECDSA(chip key, NOTE_PROVE_DOMAIN || serial || challenge ||
 *	                      SHA-256(feature, or empty if nothing written))
 *
 * The feature digest binds the proof to the record the desk just read, so
 * a clone that copied a genuine record cannot borrow another chip's proof.
 */
static int
note_internal_auth(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	uint8_t md[ML_SHA256_LEN];
	uint8_t sig[ML_P256_SIG_LEN];
	uint8_t msg_buf[64 + CHIP_SERIAL_LEN + NOTE_PROVE_MAX + ML_SHA256_LEN];
	struct ml_wr msg = ML_WR_FIXED(msg_buf, sizeof(msg_buf));
	struct ml_rd rd = a->data;
	const uint8_t *ch;
	size_t n;
	int r = ML_ERR_INTERNAL;

	ML_TRY(note_p1p2_zero(a));
	n = ml_rd_left(&rd);
	ML_ENSURE(n >= NOTE_PROVE_MIN, ML_ERR_SHORT);
	ML_ENSURE(n <= NOTE_PROVE_MAX, ML_ERR_TRAILING);
	ML_TRY(ml_rd_bytes(&rd, n, &ch));
	ML_TRY(ml_rd_end(&rd));
	ML_TRY(note_feature_digest(c, md));
	ML_TRY(note_msg_prove(&msg, note_serial(c), ch, n, md));
	ML_TRY(note_chip_sign(c, &msg, sig));
	ML_TRY(ml_wr_bytes(resp, sig, sizeof(sig)));
	r = 0;
out:
	return r;
}

/*
 * CHANGE ISSUER: 80 76 P1 00 Lc point(65) [sig(64)].  IDLE, CHALLENGED
 * and AUTHORIZED: a personalised chip that is not written yet.
 * P1 = ISSUER_ADD installs the key, ISSUER_RETIRE removes it.
 *
 *= REQ BN-4
 *# The chip checks it with the pre-installed *authorized* public key.
 *
 * Issuer-key rotation without re-personalisation: the authorised keys
 * of chips waiting on a line change with the issuer's.  Authorised
 * either by the SO (logged in; data = the point only) or by a current
 * issuer key: data = point || ECDSA(key, NOTE_ISSUER_DOMAIN ||
 * challenge(16) || serial || P1 || point) over the live write challenge
 * (GET CHALLENGE, 16 bytes).  Like AUTHORIZE WRITE, the challenge is
 * consumed first whatever the outcome, so a recorded change cannot be
 * replayed, and any write authorisation is dropped (it was checked
 * against the old set).  A key already installed (add) is 6985, one not
 * installed (retire) 6A88, a full table 6A84; the last key cannot be
 * retired (6985: the chip could never be written).  The new set reaches
 * the store in one commit before 9000 (tear-safe: old set or new).
 */
static int
note_change_issuer(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	uint8_t challenge[NOTE_CHALLENGE_LEN], pub[ML_P256_PUB_LEN];
	uint8_t msg_buf[64 + NOTE_CHALLENGE_LEN + CHIP_SERIAL_LEN + 1 +
	    ML_P256_PUB_LEN];
	struct ml_wr msg = ML_WR_FIXED(msg_buf, sizeof(msg_buf));
	struct ml_rd rd = a->data;
	struct ml_p256_key *k = NULL;
	const uint8_t *sig;
	bool live = c->challenge_live, ok = false;
	size_t i, at;
	int r = ML_ERR_INTERNAL;

	/* Consume first: from here on this challenge is gone (freshness). */
	memcpy(challenge, c->challenge, sizeof(challenge));
	note_drop_challenge(c);
	note_drop_auth(c);

	ML_ENSURE(a->p2 == 0 && (a->p1 == ISSUER_ADD ||
	    a->p1 == ISSUER_RETIRE), SW_INCORRECT_P1P2);
	ML_ENSURE(ml_rd_left(&rd) == ML_P256_PUB_LEN ||
	    ml_rd_left(&rd) == ML_P256_PUB_LEN + ML_P256_SIG_LEN, ML_ERR_SHORT);
	ML_TRY(ml_rd_copy(&rd, pub, sizeof(pub)));
	ML_ENSURE(ml_p256_check_pub(pub, sizeof(pub)) == 0, ML_ERR_FORMAT);
	if (ml_rd_left(&rd) == 0) {
		ML_TRY(chip_need_login(c, LOGIN_SO));
	} else {
		ML_TRY(ml_rd_bytes(&rd, ML_P256_SIG_LEN, &sig));
		ML_ENSURE(live, ML_ERR_STATE);	/* no challenge to sign */
		ML_TRY(note_msg_issuer(&msg, challenge, note_serial(c), a->p1,
		    pub));
		for (i = 0; i < c->st.nissuers && !ok; i++) {
			ML_TRY(ml_p256_key_from_pub(c->st.issuers[i],
			    ML_P256_PUB_LEN, &k));
			ok = ml_p256_verify(k, msg.p, msg.len, sig,
			    ML_P256_SIG_LEN) == 0;
			ml_p256_key_free(k);
			k = NULL;
		}
		ML_ENSURE(ok, ML_ERR_AUTH);
	}
	ML_TRY(ml_rd_end(&rd));
	for (at = 0; at < c->st.nissuers; at++) {
		if (memcmp(c->st.issuers[at], pub, sizeof(pub)) == 0) {
			break;
		}
	}
	if (a->p1 == ISSUER_ADD) {
		ML_ENSURE(at == c->st.nissuers, ML_ERR_EXISTS);
		ML_ENSURE(c->st.nissuers < NOTE_MAX_ISSUERS, ML_ERR_FULL);
		memcpy(c->st.issuers[c->st.nissuers], pub, sizeof(pub));
		c->st.nissuers++;
	} else {
		ML_ENSURE(at < c->st.nissuers, SW_DATA_NOT_FOUND);
		ML_ENSURE(c->st.nissuers > 1, ML_ERR_STATE);
		memmove(c->st.issuers[at], c->st.issuers[at + 1],
		    (c->st.nissuers - at - 1) * ML_P256_PUB_LEN);
		c->st.nissuers--;
		memset(c->st.issuers[c->st.nissuers], 0, ML_P256_PUB_LEN);
	}
	/* On failure the core reloads st: the old set stays. */
	ML_TRY(chip_commit(c));
	r = 0;
out:
	ml_p256_key_free(k);
	ml_wipe(challenge, sizeof(challenge));
	return r;
}

/*
 * GET DATA: 00 CA P1 00 Le.  P1 = GD_CHIP_PUBKEY answers the chip
 * authentication key's public point (65 bytes; 6A88 before GEN KEYPAIR
 * P1=GENKEY_CHIPKEY); P1 = GD_NOTE_ISSUERS the installed issuer keys,
 * n(1) || point(65) * n, in install order (the index a written record
 * names); every other P1 is the core's GET DATA.
 */
static int
note_get_data(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	uint8_t pub[ML_P256_PUB_LEN];
	const struct ml_p256_key *k = NULL;
	struct ml_rd rd = a->data;
	struct chip_obj *o;
	int r = ML_ERR_INTERNAL;

	if (a->p1 == GD_NOTE_ISSUERS) {
		size_t i;

		ML_ENSURE(a->p2 == 0, SW_INCORRECT_P1P2);
		ML_TRY(ml_rd_end(&rd));
		ML_TRY(ml_wr_u8(resp, (uint8_t)c->st.nissuers));
		for (i = 0; i < c->st.nissuers; i++) {
			ML_TRY(ml_wr_bytes(resp, c->st.issuers[i],
			    ML_P256_PUB_LEN));
		}
		r = 0;
		goto out;
	}
	if (a->p1 != GD_CHIP_PUBKEY) {
		r = core_get_data(c, a, resp);
		goto out;
	}
	ML_ENSURE(a->p2 == 0, SW_INCORRECT_P1P2);
	ML_TRY(ml_rd_end(&rd));
	ML_ENSURE((o = chip_chipkey(c)) != NULL, SW_DATA_NOT_FOUND);
	if (o->has_point) {
		memcpy(pub, o->point, sizeof(pub));
	} else {
		ML_TRY(chip_obj_key(o, &k));
		ML_TRY(ml_p256_key_pub(k, pub));
	}
	ML_TRY(ml_wr_bytes(resp, pub, sizeof(pub)));
	r = 0;
out:
	return r;
}

/*
 * The note command set.  The dispatcher looks here before the core table,
 * so GET CHALLENGE, GET DATA and LOCK below replace the core's.
 *
 *	INS			BLANK IDLE CHAL AUTH WRITTEN
 *	INSTALL ISSUER		  x
 *	INSTALL SERVER		  x
 *	LOCK			  x
 *	GET CHALLENGE		  r	x    x    x	r  (r: random only)
 *	AUTHORIZE WRITE			     x
 *	WRITE FEATURE				  x
 *	READ FEATURE		  x	x    x    x	x  (6A88 if unwritten)
 *	GET SEALED					x
 *	INTERNAL AUTH			x    x    x	x
 *	CHANGE ISSUER			x    x    x
 *	GET DATA		  x	x    x    x	x
 *
 * Anything else in a state without an x: 6985.
 */
static const struct ins_entry note_ins[] = {
	{ CLA_PROP, INS_INSTALL_ISSUER,	 NOTE_BLANK,
	  note_install_issuer,	"INSTALL ISSUER (station key)" },
	{ CLA_PROP, INS_INSTALL_SERVER,	 NOTE_BLANK,
	  note_install_server,	"INSTALL SERVER (seal recipient key)" },
	{ CLA_PROP, INS_LOCK,		 NOTE_BLANK,
	  note_lock,		"LOCK (end of personalisation)" },
	{ CLA_ISO,  INS_GET_CHALLENGE,	 NOTE_ANY,
	  note_get_challenge,	"GET CHALLENGE (16 bytes: write challenge)" },
	{ CLA_PROP, INS_AUTHORIZE_WRITE, NOTE_CHALLENGED,
	  note_authorize_write,	"AUTHORIZE WRITE" },
	{ CLA_PROP, INS_WRITE_FEATURE,	 NOTE_AUTHORIZED,
	  note_write_feature,	"WRITE FEATURE (write-once)" },
	{ CLA_PROP, INS_READ_FEATURE,	 NOTE_ANY,
	  note_read_feature,	"READ FEATURE" },
	{ CLA_PROP, INS_GET_SEALED,	 NOTE_WRITTEN,
	  note_get_sealed,	"GET SEALED (upload for the server)" },
	{ CLA_ISO,  INS_INTERNAL_AUTH,	 NOTE_LOCKED,
	  note_internal_auth,	"INTERNAL AUTHENTICATE (chip key proof)" },
	{ CLA_PROP, INS_CHANGE_ISSUER,	 NOTE_ARMABLE,
	  note_change_issuer,	"CHANGE ISSUER (add/retire; SO or issuer sig)" },
	{ CLA_ISO,  INS_GET_DATA,	 NOTE_ANY,
	  note_get_data,	"GET DATA (P1 02 chip key, 04 issuers)" },
};

const struct chip_profile chip_profile_note = {
	.kind = CHIP_KIND_NOTE,
	.name = "note",
	.ins = note_ins,
	.nins = ML_NELEM(note_ins),
	.state = note_state,
	.state_names = note_state_names,
	.nstates = ML_NELEM(note_state_names),
	.reset = note_reset,
};
