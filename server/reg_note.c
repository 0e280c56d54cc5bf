/*
 * Note registration and online verification (see reg_note.h).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chip.h"
#include "chip_proto.h"
#include "feature.h"
#include "ml_log.h"
#include "ml_rd.h"
#include "ml_tlv.h"
#include "ml_wipe.h"
#include "note_msg.h"
#include "note_proto.h"
#include "reg_note.h"

#define SEAL_MAX	(NOTE_REQ_MAX)
/*
 * The registry could not answer or not write (down, I/O error, disk
 * full): no verdict, the server answers HS_REC_ERROR with the code and
 * the station keeps the note in doubt (a refusal would be final).
 */
#define NO_VERDICT(r)	((r) == ML_ERR_IO || (r) == ML_ERR_DISK_FULL)

/*
 * Serials promised by a pre-check (OP-3) to one chip, for RESERVE_SECS:
 * a second station asking for the same serial on another chip in that
 * time is told "reserved" and leaves its chip blank.  The promise ends
 * when the note is registered or the time runs out (a station that
 * checked and then died).  In the registry (note_reservation): every
 * server on one database keeps the same promises, and a restart keeps
 * them.
 */
#define RESERVE_SECS	600

struct reg_note {
	struct reg_note_cfg	 cfg;
	/* the authorised issuer keys (cfg.issuers, issuer) and the feature
	 * keys (cfg.feature_keys): replaced whole by reg_note_set_issuers()
	 * and reg_note_set_feature_keys() on SIGHUP while workers check
	 * under ik */
	struct ml_p256_key	*issuer[NOTE_MAX_ISSUERS];
	pthread_rwlock_t	 ik;
	pthread_mutex_t		 mu;
	struct reg_note_stats	 st;
};

int
reg_note_new(const struct reg_note_cfg *cfg, struct reg_note **ret)
{
	struct reg_note *rn = NULL;
	size_t i;
	int r;

	ML_ENSURE(cfg->reg != NULL && cfg->server_key != NULL &&
	    cfg->nissuers <= NOTE_MAX_ISSUERS, ML_ERR_ARG);
	ML_ENSURE((rn = calloc(1, sizeof(*rn))) != NULL, ML_ERR_NOMEM);
	rn->cfg = *cfg;
	pthread_mutex_init(&rn->mu, NULL);
	pthread_rwlock_init(&rn->ik, NULL);
	ML_ENSURE(cfg->nfeature_keys <= FEATURE_MAX_KEYS, ML_ERR_ARG);
	for (i = 0; i < cfg->nissuers; i++) {
		ML_TRY(ml_p256_key_from_pub(cfg->issuers[i], ML_P256_PUB_LEN,
		    &rn->issuer[i]));
	}
	*ret = rn;
	rn = NULL;
	r = 0;
out:
	reg_note_free(rn);
	return r;
}

void
reg_note_free(struct reg_note *rn)
{
	size_t i;

	if (rn == NULL) {
		return;
	}
	for (i = 0; i < NOTE_MAX_ISSUERS; i++) {
		ml_p256_key_free(rn->issuer[i]);
	}
	pthread_rwlock_destroy(&rn->ik);
	pthread_mutex_destroy(&rn->mu);
	ml_freezero(rn, sizeof(*rn));
}

int
reg_note_set_issuers(struct reg_note *rn,
    const uint8_t (*pubs)[ML_P256_PUB_LEN], size_t n)
{
	struct ml_p256_key *k[NOTE_MAX_ISSUERS] = { NULL };
	size_t i;
	int r;

	ML_ENSURE(n <= NOTE_MAX_ISSUERS, ML_ERR_TOO_LARGE);
	for (i = 0; i < n; i++) {
		ML_TRY(ml_p256_key_from_pub(pubs[i], ML_P256_PUB_LEN, &k[i]));
	}
	/* swap: an upload being checked finishes under the old set */
	pthread_rwlock_wrlock(&rn->ik);
	for (i = 0; i < NOTE_MAX_ISSUERS; i++) {
		struct ml_p256_key *old = rn->issuer[i];

		rn->issuer[i] = k[i];
		k[i] = old;
	}
	memset(rn->cfg.issuers, 0, sizeof(rn->cfg.issuers));
	if (n > 0) {
		memcpy(rn->cfg.issuers, pubs, n * ML_P256_PUB_LEN);
	}
	rn->cfg.nissuers = n;
	pthread_rwlock_unlock(&rn->ik);
	r = 0;
out:
	for (i = 0; i < NOTE_MAX_ISSUERS; i++) {
		ml_p256_key_free(k[i]);
	}
	return r;
}

int
reg_note_set_feature_keys(struct reg_note *rn,
    const uint8_t (*keys)[FEATURE_KEY_LEN], size_t n)
{
	if (n > FEATURE_MAX_KEYS) {
		return ML_ERR_TOO_LARGE;
	}
	pthread_rwlock_wrlock(&rn->ik);
	ml_wipe(rn->cfg.feature_keys, sizeof(rn->cfg.feature_keys));
	if (n > 0) {
		memcpy(rn->cfg.feature_keys, keys, n * FEATURE_KEY_LEN);
	}
	rn->cfg.nfeature_keys = n;
	pthread_rwlock_unlock(&rn->ik);
	return 0;
}

/*
 * The feature information f (untrusted): well formed, its public check
 * code right, its keyed code made by one of the feature keys in force
 * (when any is set: feature_verify_keys), and bound to the chip key
 * chip_pub.  *ret_id gets the note's identity.
 */
static int
feature_accept(struct reg_note *rn, const uint8_t *f, size_t n,
    const uint8_t chip_pub[static ML_P256_PUB_LEN], struct note_id *ret_id)
{
	int r;

	pthread_rwlock_rdlock(&rn->ik);
	r = feature_verify_keys((const uint8_t (*)[FEATURE_KEY_LEN])
	    rn->cfg.feature_keys, rn->cfg.nfeature_keys, f, n, ret_id);
	pthread_rwlock_unlock(&rn->ik);
	if (r != 0) {
		return r;
	}
	return feature_check_chip(f, n, chip_pub);
}

void
reg_note_get_stats(struct reg_note *rn, struct reg_note_stats *ret)
{
	pthread_mutex_lock(&rn->mu);
	*ret = rn->st;
	pthread_mutex_unlock(&rn->mu);
}

static void
count(struct reg_note *rn, uint64_t *field)
{
	pthread_mutex_lock(&rn->mu);
	(*field)++;
	pthread_mutex_unlock(&rn->mu);
}

static int
reply(struct ml_wr *w, int status, int reason, const char *note_id,
    uint64_t reg_id, unsigned flags)
{
	int r;

	ML_TRY(ml_tlv_put_u8(w, TAG_REPLY_STATUS, (uint8_t)status));
	ML_TRY(ml_tlv_put_u8(w, TAG_REPLY_REASON, (uint8_t)reason));
	if (note_id != NULL && note_id[0] != '\0') {
		ML_TRY(ml_tlv_put(w, TAG_REPLY_NOTE, note_id, strlen(note_id)));
	}
	if (reg_id != 0) {
		uint8_t b[8];
		int i;

		for (i = 0; i < 8; i++) {
			b[i] = (uint8_t)(reg_id >> (56 - 8 * i));
		}
		ML_TRY(ml_tlv_put(w, TAG_REPLY_REGID, b, sizeof(b)));
	}
	if (flags != 0) {
		ML_TRY(ml_tlv_put_u8(w, TAG_REPLY_FLAGS, (uint8_t)flags));
	}
	r = 0;
out:
	return r;
}

/*
 * Fill an audit row's actor (OP-5): the station's certificate serial and
 * number, or "local" for an in-process caller without a channel.
 */
static void
audit_row(struct reg_audit *a, const struct hs_peer *peer, const char *action,
    const char *kind, const char *subject, const char *outcome)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->action, sizeof(a->action), "%s", action);
	snprintf(a->actor, sizeof(a->actor), "%s",
	    peer != NULL ? peer->serial : "local");
	snprintf(a->actor_certno, sizeof(a->actor_certno), "%s",
	    peer != NULL ? peer->certno : "");
	snprintf(a->subject_kind, sizeof(a->subject_kind), "%s", kind);
	snprintf(a->subject, sizeof(a->subject), "%s", subject);
	snprintf(a->outcome, sizeof(a->outcome), "%s", outcome);
}

/* Append a; a registry that cannot take it is logged, the verdict stands. */
static void
audit_put(struct reg_note *rn, struct reg_audit *a)
{
	int r;

	if ((r = reg_audit_append(rn->cfg.reg, a)) != 0) {
		ml_err("registry: audit row %s %s %s by %s not written: %s",
		    a->action, a->subject_kind, a->subject, a->actor,
		    ml_errmsg(r));
	}
}

/*
 * A refusal: logged, counted (in memory and in the registry), one audit
 * row (OP-5: the chip, the station's certificate serial and number, the
 * reason, the time; the note in detail when known), answered.
 */
static int
refuse(struct reg_note *rn, const struct hs_peer *peer, struct ml_wr *w,
    const char *what, const char *chip, const char *note_id, int reason,
    unsigned flags)
{
	struct reg_audit a;

	ml_warn("%s refused: chip %.16s%s%s: %s", what,
	    chip != NULL ? chip : "?", note_id != NULL ? " note " : "",
	    note_id != NULL ? note_id : "", note_reason_str(reason));
	pthread_mutex_lock(&rn->mu);
	rn->st.rejected[reason & 31]++;
	pthread_mutex_unlock(&rn->mu);
	if (reg_notes_count_reject(rn->cfg.reg, note_reason_name(reason)) != 0) {
		ml_err("registry: reject counter not updated");
	}
	audit_row(&a, peer, strcmp(what, "enrolment") == 0 ? "enrol" :
	    "register", "chip", chip != NULL ? chip : "?",
	    note_reason_name(reason));
	if (note_id != NULL) {
		snprintf(a.detail, sizeof(a.detail), "note %s", note_id);
	}
	audit_put(rn, &a);
	return reply(w, NOTE_ST_REJECT, reason, note_id, 0, flags);
}

/* A chip serial field: exactly CHIP_SERIAL_LEN printable bytes. */
static bool
chip_serial_ok(const struct ml_rd *v, char ret[NOTE_CHIP_SERIAL_LEN + 1])
{
	size_t i;

	if (ml_rd_left(v) != CHIP_SERIAL_LEN) {
		return false;
	}
	for (i = 0; i < CHIP_SERIAL_LEN; i++) {
		uint8_t c = ml_rd_ptr(v)[i];

		if (c < 0x20 || c > 0x7e) {
			return false;
		}
		ret[i] = (char)c;
	}
	ret[CHIP_SERIAL_LEN] = '\0';
	return true;
}

static int
handle_enrol(struct reg_note *rn, const struct hs_peer *peer,
    const uint8_t *req, size_t len, struct ml_wr *w)
{
	struct ml_rd rd = ML_RD_INIT(req, len), ser, pub;
	char chip[NOTE_CHIP_SERIAL_LEN + 1];
	struct reg_audit a;
	int r;

	if (ml_tlv_find(&rd, TAG_ENROL_SERIAL, &ser) != 0 ||
	    ml_tlv_find(&rd, TAG_ENROL_PUB, &pub) != 0 ||
	    !chip_serial_ok(&ser, chip) ||
	    ml_p256_check_pub(ml_rd_ptr(&pub), ml_rd_left(&pub)) != 0) {
		return refuse(rn, peer, w, "enrolment", NULL, NULL, NOTE_R_MALFORMED, 0);
	}
	r = reg_notes_enrol(rn->cfg.reg, chip, ml_rd_ptr(&pub));
	if (r == ML_ERR_EXISTS) {
		return refuse(rn, peer, w, "enrolment", chip, NULL,
		    NOTE_R_ENROL_CONFLICT, 0);
	}
	if (NO_VERDICT(r)) {
		/* registry unavailable: no verdict, the station retries (a
		 * full disk was logged by the registry already) */
		if (r == ML_ERR_IO) {
			ml_warn("enrolment of chip %s: registry unavailable",
			    chip);
		}
		return r;
	}
	if (r < 0) {
		return refuse(rn, peer, w, "enrolment", chip, NULL, NOTE_R_INTERNAL, 0);
	}
	count(rn, &rn->st.enrolled);
	/* OP-5: which station (certificate serial and number) enrolled it */
	audit_row(&a, peer, "enrol", "chip", chip, r == 0 ? "ok" : "again");
	audit_put(rn, &a);
	return reply(w, r == 0 ? NOTE_ST_OK : NOTE_ST_AGAIN, NOTE_R_NONE, NULL,
	    0, 0);
}

/*
 * Reserve note_id for chip (OP-3): reg_notes_reserve() says which.  The
 * same station asking for the note on another chip takes the promise
 * over: its own journal keeps a note it may have written reserved for that
 * chip, so a second ask means the first chip was never written (a station
 * that died between the check and its journal entry).
 */
static int
reserve(struct reg_note *rn, const char *note_id, const char *chip,
    const char *station)
{
	int64_t now = (int64_t)time(NULL);

	return reg_notes_reserve(rn->cfg.reg, note_id, chip, station, now,
	    now + RESERVE_SECS);
}

/* The note is registered: its promise is kept (a failure only leaves a
 * promise that runs out by itself). */
static void
reserve_drop(struct reg_note *rn, const char *note_id)
{
	if (reg_notes_unreserve(rn->cfg.reg, note_id,
	    (int64_t)time(NULL)) != 0) {
		ml_debug("note %s: reservation not dropped", note_id);
	}
}

/*
 * Issuance pre-check (OP-3): before the station lets a chip be written,
 * can the server register note_id on this chip?  The chip must be
 * enrolled with the key the station read from it, and the serial free
 * (or already this chip's).  No note is written; the serial is promised
 * to the chip in the registry's reservations (reserve()), which every
 * server on the database shares.  A registry that does not answer gives
 * no verdict (ML_ERR_IO): the station pauses.
 *
 *= REQ OP-3
 *# No note is written unless the server can accept it now (reachable,
 *# chip enrolled, serial free).
 */
static int
handle_check(struct reg_note *rn, const char *peer, const uint8_t *req,
    size_t len, struct ml_wr *w)
{
	struct ml_rd rd = ML_RD_INIT(req, len), ser, pub, nv, feat;
	uint8_t enrolled[ML_P256_PUB_LEN];
	char chip[NOTE_CHIP_SERIAL_LEN + 1], nid[NOTE_ID_MAX + 1];
	char fid[NOTE_ID_MAX + 1];
	struct note_row row;
	struct note_id id;
	size_t i;
	int r, rf;

	count(rn, &rn->st.checks);
	rf = ml_tlv_find(&rd, TAG_FEAT_INFO, &feat);
	if (ml_tlv_find(&rd, TAG_ENROL_SERIAL, &ser) != 0 ||
	    ml_tlv_find(&rd, TAG_ENROL_PUB, &pub) != 0 ||
	    ml_tlv_find(&rd, TAG_REPLY_NOTE, &nv) != 0 ||
	    (rf != 0 && rf != ML_ERR_NOT_FOUND) ||
	    (rf == 0 && ml_rd_left(&feat) > NOTE_MAX_FEATURE) ||
	    !chip_serial_ok(&ser, chip) ||
	    ml_rd_left(&pub) != ML_P256_PUB_LEN ||
	    ml_rd_left(&nv) == 0 || ml_rd_left(&nv) > NOTE_ID_MAX) {
		return reply(w, NOTE_ST_REJECT, NOTE_R_MALFORMED, NULL, 0, 0);
	}
	/* prefix || serial as note_id_str() makes it: capitals and digits */
	for (i = 0; i < ml_rd_left(&nv); i++) {
		char c = (char)ml_rd_ptr(&nv)[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
			return reply(w, NOTE_ST_REJECT, NOTE_R_MALFORMED, NULL,
			    0, 0);
		}
		nid[i] = c;
	}
	nid[i] = '\0';
	r = reg_notes_chip_pub(rn->cfg.reg, chip, enrolled);
	if (NO_VERDICT(r)) {
		return ml_errrecode(r, ML_ERR_IO);
	}
	if (r == ML_ERR_NOT_FOUND) {
		return reply(w, NOTE_ST_REJECT, NOTE_R_UNKNOWN_CHIP, nid, 0, 0);
	}
	if (r != 0) {
		return reply(w, NOTE_ST_REJECT, NOTE_R_INTERNAL, nid, 0, 0);
	}
	if (!ml_ct_eq(enrolled, ml_rd_ptr(&pub), ML_P256_PUB_LEN)) {
		return reply(w, NOTE_ST_REJECT, NOTE_R_CHIP_MISMATCH, nid, 0, 0);
	}
	/*
	 * The feature information the station is about to write, when it
	 * sends it: checked as the upload will be (its keyed code made by a
	 * feature key in force, bound to this chip, naming this note), so
	 * that a station whose feature key the server no longer accepts
	 * writes nothing (OP-3) instead of burning every chip it is fed.
	 */
	if (rf == 0) {
		r = feature_accept(rn, ml_rd_ptr(&feat), ml_rd_left(&feat),
		    ml_rd_ptr(&pub), &id);
		if (r == 0) {
			note_id_str(&id, fid);
		}
		if (r != 0 || strcmp(fid, nid) != 0) {
			ml_warn("pre-check of note %s on chip %s from %s refused: "
			    "%s", nid, chip, peer != NULL ? peer : "local",
			    r == ML_ERR_AUTH ? "keyed identification code not "
			    "made by a feature key in force (note-feature-key)" :
			    r != 0 ? "feature information malformed or not "
			    "bound to this chip" : "feature information names "
			    "another note");
			return reply(w, NOTE_ST_REJECT, NOTE_R_BAD_FEATURE, nid,
			    0, 0);
		}
	}
	/*
	 * Promise first, then look: a note registered by another server
	 * drops its promise only after its row is committed, so a promise
	 * taken here either was refused or is followed by a lookup that
	 * sees that row.  Looking first would let the promise of a note
	 * registered in between be taken again (the chip written, then
	 * refused at upload).
	 */
	r = reserve(rn, nid, chip, peer != NULL ? peer : "");
	if (r == ML_ERR_EXISTS) {
		return reply(w, NOTE_ST_REJECT, NOTE_R_RESERVED, nid, 0, 0);
	}
	if (r != 0) {
		ml_warn("pre-check of note %s: reservation not taken: %s", nid,
		    ml_errmsg(r));
		/* no verdict: the station waits, told a full disk as such */
		return r == ML_ERR_DISK_FULL ? r : ml_errrecode(r, ML_ERR_IO);
	}
	r = reg_notes_lookup(rn->cfg.reg, nid, &row);
	if (NO_VERDICT(r)) {
		return r;
	}
	if (r == 0) {
		reserve_drop(rn, nid);	/* registered: nothing to promise */
		if (strcmp(row.chip_serial, chip) == 0) {
			return reply(w, NOTE_ST_AGAIN, NOTE_R_NONE, nid,
			    row.reg_id, 0);
		}
		return reply(w, NOTE_ST_REJECT, NOTE_R_DUP_SERIAL, nid, 0, 0);
	}
	if (r != ML_ERR_NOT_FOUND) {
		return reply(w, NOTE_ST_REJECT, NOTE_R_INTERNAL, nid, 0, 0);
	}
	return reply(w, NOTE_ST_OK, NOTE_R_NONE, nid, 0, 0);
}

/*
 * The station signature: which authorised issuer key made it (its public
 * point into ret_pub), or -1.  A key retired by SIGHUP is no longer in the
 * set, so its new writes are refused (BN-4).
 */
static int
station_sig_issuer(struct reg_note *rn, const char *chip,
    const struct ml_rd *chal, const struct ml_rd *feat, const struct ml_rd *sig,
    uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	int found = -1;
	uint8_t msg[64 + CHIP_SERIAL_LEN + NOTE_CHALLENGE_LEN + NOTE_MAX_FEATURE];
	struct ml_wr m = ML_WR_FIXED(msg, sizeof(msg));
	size_t i;

	if (ml_rd_left(chal) != NOTE_CHALLENGE_LEN ||
	    note_msg_auth(&m, ml_rd_ptr(chal), chip, ml_rd_ptr(feat),
	    ml_rd_left(feat)) != 0) {
		return -1;
	}
	pthread_rwlock_rdlock(&rn->ik);
	for (i = 0; i < rn->cfg.nissuers; i++) {
		if (ml_p256_verify(rn->issuer[i], m.p, m.len, ml_rd_ptr(sig),
		    ml_rd_left(sig)) == 0) {
			memcpy(ret_pub, rn->cfg.issuers[i], ML_P256_PUB_LEN);
			found = (int)i;
			break;
		}
	}
	pthread_rwlock_unlock(&rn->ik);
	return found;
}

static int
handle_upload(struct reg_note *rn, const struct hs_peer *peer,
    const uint8_t *req, size_t len, struct ml_wr *w)
{
	struct ml_rd rd = ML_RD_INIT(req, len), ser, blob, csig;
	struct ml_rd prd, pser, feat, chal, ssig;
	uint8_t chip_pub[ML_P256_PUB_LEN], msg[SEAL_MAX + 64], pt[SEAL_MAX];
	uint8_t issuer_pub[ML_P256_PUB_LEN];
	struct ml_wr m = ML_WR_FIXED(msg, sizeof(msg));
	char chip[NOTE_CHIP_SERIAL_LEN + 1], nid[NOTE_ID_MAX + 1] = "";
	struct ml_p256_key *ck = NULL;
	struct note_id id;
	struct note_reg nr;
	struct reg_audit a;
	uint64_t reg_id = 0;
	size_t ptn = 0;
	int r;

	if (ml_tlv_find(&rd, TAG_FEAT_SERIAL, &ser) != 0 ||
	    ml_tlv_find(&rd, TAG_SEAL_BLOB, &blob) != 0 ||
	    ml_tlv_find(&rd, TAG_SEAL_CHIP_SIG, &csig) != 0 ||
	    !chip_serial_ok(&ser, chip) ||
	    ml_rd_left(&blob) <= ML_SEAL_OVERHEAD ||
	    ml_rd_left(&blob) > SEAL_MAX) {
		r = refuse(rn, peer, w, "upload", NULL, NULL, NOTE_R_MALFORMED, 0);
		goto out;
	}
	r = reg_notes_chip_pub(rn->cfg.reg, chip, chip_pub);
	if (NO_VERDICT(r)) {
		/*
		 * Registry unavailable: answer no verdict (the
		 * server sends HS_REC_ERROR) so that the station keeps the
		 * note in doubt and uploads it again; a refusal would be final.
		 */
		ml_warn("upload from chip %s: registry unavailable", chip);
		goto out;
	}
	if (r != 0) {
		r = refuse(rn, peer, w, "upload", chip, NULL, r == ML_ERR_NOT_FOUND ?
		    NOTE_R_UNKNOWN_CHIP : NOTE_R_INTERNAL, 0);
		goto out;
	}
	/* Who sealed it: the enrolled chip, over serial || blob (BN-6). */
	if (note_msg_seal(&m, chip, ml_rd_ptr(&blob), ml_rd_left(&blob)) != 0 ||
	    ml_p256_key_from_pub(chip_pub, sizeof(chip_pub), &ck) != 0 ||
	    ml_p256_verify(ck, m.p, m.len, ml_rd_ptr(&csig),
	    ml_rd_left(&csig)) != 0) {
		r = refuse(rn, peer, w, "upload", chip, NULL, NOTE_R_CHIP_SIG, 0);
		goto out;
	}
	/* BN-7: open with the HSM-held key; the wrong key cannot. */
	if (ml_seal_open(rn->cfg.server_pub, key_ecdh_fn,
	    (void *)rn->cfg.server_key, chip, CHIP_SERIAL_LEN, ml_rd_ptr(&blob),
	    ml_rd_left(&blob), pt, sizeof(pt), &ptn) != 0) {
		r = refuse(rn, peer, w, "upload", chip, NULL, NOTE_R_TAMPERED, 0);
		goto out;
	}
	prd = ML_RD_INIT(pt, ptn);
	if (ml_tlv_find(&prd, TAG_FEAT_SERIAL, &pser) != 0 ||
	    ml_tlv_find(&prd, TAG_FEAT_INFO, &feat) != 0 ||
	    ml_tlv_find(&prd, TAG_FEAT_CHALLENGE, &chal) != 0 ||
	    ml_tlv_find(&prd, TAG_FEAT_AUTH_SIG, &ssig) != 0 ||
	    ml_rd_left(&chal) != NOTE_CHALLENGE_LEN ||
	    ml_rd_left(&ssig) != ML_P256_SIG_LEN ||
	    ml_rd_left(&feat) > NOTE_MAX_FEATURE) {
		r = refuse(rn, peer, w, "upload", chip, NULL, NOTE_R_MALFORMED, 0);
		goto out;
	}
	if (ml_rd_left(&pser) != CHIP_SERIAL_LEN ||
	    !ml_ct_eq(ml_rd_ptr(&pser), chip, CHIP_SERIAL_LEN)) {
		r = refuse(rn, peer, w, "upload", chip, NULL, NOTE_R_SERIAL_ID, 0);
		goto out;
	}
	if (station_sig_issuer(rn, chip, &chal, &feat, &ssig, issuer_pub) < 0) {
		r = refuse(rn, peer, w, "upload", chip, NULL, NOTE_R_UNAUTHORIZED, 0);
		goto out;
	}
	if (feature_accept(rn, ml_rd_ptr(&feat), ml_rd_left(&feat), chip_pub,
	    &id) != 0) {
		r = refuse(rn, peer, w, "upload", chip, NULL, NOTE_R_BAD_FEATURE, 0);
		goto out;
	}
	note_id_str(&id, nid);
	memset(&nr, 0, sizeof(nr));
	snprintf(nr.note_id, sizeof(nr.note_id), "%s", nid);
	memcpy(nr.chip_serial, chip, sizeof(nr.chip_serial));
	nr.feature = ml_rd_ptr(&feat);
	nr.feature_len = ml_rd_left(&feat);
	memcpy(nr.challenge, ml_rd_ptr(&chal), sizeof(nr.challenge));
	memcpy(nr.station_sig, ml_rd_ptr(&ssig), sizeof(nr.station_sig));
	memcpy(nr.issuer_pub, issuer_pub, sizeof(nr.issuer_pub));
	/* OP-5: who registered it, written in the registration's transaction */
	audit_row(&a, peer, "register", "note", nid, "");
	snprintf(a.detail, sizeof(a.detail), "chip %s", chip);
	nr.audit = &a;
	r = reg_notes_register(rn->cfg.reg, &nr, &reg_id);
	if (r == REG_NOTE_NEW || r == REG_NOTE_AGAIN) {
		reserve_drop(rn, nid);
		count(rn, r == REG_NOTE_NEW ? &rn->st.registered :
		    &rn->st.again);
		ml_debug("note %s on chip %s: %s (reg %llu)", nid, chip,
		    r == REG_NOTE_NEW ? "registered" : "already registered",
		    (unsigned long long)reg_id);
		r = reply(w, r == REG_NOTE_NEW ? NOTE_ST_OK : NOTE_ST_AGAIN,
		    NOTE_R_NONE, nid, reg_id, 0);
	} else if (r == ML_ERR_IO) {
		ml_warn("note %s on chip %s: registry unavailable, not "
		    "registered", nid, chip);	/* no verdict: see above */
	} else if (r == ML_ERR_DISK_FULL) {
		/* the registry logged the full disk; no verdict either */
	} else if (r == REG_NOTE_DUP_SERIAL) {
		r = refuse(rn, peer, w, "upload", chip, nid, NOTE_R_DUP_SERIAL,
		    NOTE_F_TWO_CHIPS);
	} else if (r == REG_NOTE_CHIP_USED || r == REG_NOTE_UNKNOWN_CHIP) {
		r = refuse(rn, peer, w, "upload", chip, nid, r == REG_NOTE_CHIP_USED ?
		    NOTE_R_CHIP_USED : NOTE_R_UNKNOWN_CHIP, 0);
	} else {
		r = refuse(rn, peer, w, "upload", chip, nid, NOTE_R_INTERNAL, 0);
	}
out:
	ml_wipe(pt, sizeof(pt));
	ml_p256_key_free(ck);
	return r;
}

/*
 * Online desk check (BN-8).  The desk has already had the chip prove the
 * key it reports (INTERNAL AUTHENTICATE on a fresh challenge); here that
 * key, the chip serial and the feature are compared with the registry.
 */
static int
query_verdict(struct reg_note *rn, const uint8_t *req, size_t len,
    struct ml_wr *w)
{
	struct ml_rd rd = ML_RD_INIT(req, len), ser, feat, pub;
	uint8_t enrolled[ML_P256_PUB_LEN];
	char chip[NOTE_CHIP_SERIAL_LEN + 1], nid[NOTE_ID_MAX + 1];
	struct note_row row;
	struct note_id id;
	unsigned flags = 0;
	int r, fl;

	count(rn, &rn->st.queries);
	if (ml_tlv_find(&rd, TAG_FEAT_SERIAL, &ser) != 0 ||
	    ml_tlv_find(&rd, TAG_FEAT_INFO, &feat) != 0 ||
	    ml_tlv_find(&rd, TAG_ENROL_PUB, &pub) != 0 ||
	    !chip_serial_ok(&ser, chip) ||
	    ml_rd_left(&pub) != ML_P256_PUB_LEN) {
		return reply(w, NOTE_ST_REJECT, NOTE_R_MALFORMED, NULL, 0, 0);
	}
	if (feature_parse(ml_rd_ptr(&feat), ml_rd_left(&feat), &id) != 0) {
		return reply(w, NOTE_ST_REJECT, NOTE_R_BAD_FEATURE, NULL, 0, 0);
	}
	note_id_str(&id, nid);
	r = reg_notes_lookup(rn->cfg.reg, nid, &row);
	if (r == ML_ERR_NOT_FOUND) {
		return reply(w, NOTE_ST_REJECT, NOTE_R_UNREGISTERED, nid, 0, 0);
	}
	if (NO_VERDICT(r)) {
		/* registry unavailable: no verdict */
		return ml_errrecode(r, ML_ERR_IO);
	}
	if (r != 0) {
		return reply(w, NOTE_ST_REJECT, NOTE_R_INTERNAL, nid, 0, 0);
	}
	if (strcmp(row.chip_serial, chip) != 0) {
		/* One serial, two chips: flag both. */
		if (reg_notes_flag(rn->cfg.reg, nid, row.chip_serial,
		    "serial presented by two chips") != 0 ||
		    reg_notes_flag(rn->cfg.reg, nid, chip,
		    "serial presented by two chips") != 0) {
			ml_err("registry: flag not recorded for %s", nid);
		}
		ml_warn("note %s presented by chip %s, registered to chip %s: "
		    "both flagged", nid, chip, row.chip_serial);
		return reply(w, NOTE_ST_REJECT, NOTE_R_CHIP_MISMATCH, nid, 0,
		    NOTE_F_TWO_CHIPS);
	}
	if ((r = reg_notes_chip_pub(rn->cfg.reg, chip, enrolled)) == ML_ERR_IO) {
		return r;	/* not a clone: the registry is away */
	}
	if (r != 0 || !ml_ct_eq(enrolled, ml_rd_ptr(&pub), ML_P256_PUB_LEN)) {
		if (reg_notes_flag(rn->cfg.reg, nid, chip,
		    "chip key differs from the enrolled key") != 0) {
			ml_err("registry: flag not recorded for %s", nid);
		}
		return reply(w, NOTE_ST_REJECT, NOTE_R_CHIP_MISMATCH, nid, 0, 0);
	}
	if (row.feature_len != ml_rd_left(&feat) ||
	    !ml_ct_eq(row.feature, ml_rd_ptr(&feat), row.feature_len)) {
		return reply(w, NOTE_ST_REJECT, NOTE_R_FEATURE_MISMATCH, nid, 0, 0);
	}
	if ((fl = reg_notes_flagged(rn->cfg.reg, nid)) == 1) {
		flags |= NOTE_F_TWO_CHIPS;
	}
	return reply(w, NOTE_ST_OK, NOTE_R_NONE, nid, row.reg_id, flags);
}

/*
 * The online desk check with its audit row (OP-5, BN-8): which desk, which
 * note, the verdict ("ok" or the refusal reason; "two-chips" in detail
 * when the note is flagged), the chip in detail.
 */
static int
handle_query(struct reg_note *rn, const struct hs_peer *peer,
    const uint8_t *req, size_t len, struct ml_wr *w)
{
	size_t at = w->len;
	struct note_reply rep;
	struct reg_audit a;
	struct ml_rd rd = ML_RD_INIT(req, len), ser;
	int r;

	if ((r = query_verdict(rn, req, len, w)) != 0 ||
	    note_reply_parse(w->p + at, w->len - at, &rep) != 0) {
		return r;
	}
	audit_row(&a, peer, "desk-check", "note", rep.note_id,
	    rep.status == NOTE_ST_OK ? "ok" : note_reason_name(rep.reason));
	if (ml_tlv_find(&rd, TAG_FEAT_SERIAL, &ser) == 0 &&
	    ml_rd_left(&ser) == CHIP_SERIAL_LEN) {
		snprintf(a.detail, sizeof(a.detail), "chip %.*s%s",
		    CHIP_SERIAL_LEN, (const char *)ml_rd_ptr(&ser),
		    (rep.flags & NOTE_F_TWO_CHIPS) != 0 ? ", two-chips" : "");
	}
	audit_put(rn, &a);
	return 0;
}

int
reg_note_handle(struct reg_note *rn, unsigned type, const uint8_t *req,
    size_t len, struct ml_wr *w)
{
	return reg_note_handle_from(rn, NULL, type, req, len, w);
}

int
reg_note_handle_from(struct reg_note *rn, const struct hs_peer *peer,
    unsigned type,
    const uint8_t *req, size_t len, struct ml_wr *w)
{
	if (req == NULL && len != 0) {
		return ML_ERR_ARG;
	}
	switch (type) {
	case NOTE_REC_ENROL:
		return handle_enrol(rn, peer, req, len, w);
	case NOTE_REC_UPLOAD:
		return handle_upload(rn, peer, req, len, w);
	case NOTE_REC_QUERY:
		return handle_query(rn, peer, req, len, w);
	case NOTE_REC_CHECK:
		return handle_check(rn, peer != NULL ? peer->serial : NULL,
		    req, len, w);
	default:
		return ML_ERR_UNSUPPORTED;
	}
}

static int
server_handle(void *ctx, unsigned type, const uint8_t *req, size_t len,
    struct ml_wr *reply)
{
	return reg_note_handle(ctx, type, req, len, reply);
}

void
reg_note_server(struct reg_note *rn, struct note_server *ret)
{
	ret->handle = server_handle;
	ret->ctx = rn;
}
