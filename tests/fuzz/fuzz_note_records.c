/*
 * libFuzzer harness: the banknote registration records that mintline-server
 * decodes from a station's channel (server/reg_note.c, note/note_proto.h):
 * NOTE_REC_ENROL, NOTE_REC_UPLOAD, NOTE_REC_QUERY and NOTE_REC_CHECK bodies through
 * reg_note_handle(), and the station's reply decoder note_reply_parse().
 * The registry is an in-memory SQLite (reg_open(":memory:")), reopened
 * every RESET_EVERY inputs so that it does not grow without bound; the
 * server and issuer keys are software keys made at start-up.
 *
 * Input: byte 0 selects the mode (mod 8), the rest is the body.
 *   0 enrolment record, 1 upload record, 2 desk query record: the body as
 *     it arrives on the channel;
 *   3 a reply body for note_reply_parse();
 *   4 an upload whose sealed plaintext is the body: the harness seals it
 *     to the server key and signs it with the enrolled chip's key, so that
 *     the decoder of the sealed inner record (D0 D1 D2 D3) is reached;
 *   5 an upload whose feature information is the body: the harness builds
 *     the inner record around it with a valid station signature, seals and
 *     signs it, so that the feature checks and the registry insert are
 *     reached (a registry without the feature key: feature_parse());
 *   6 a note id "PREFIX|SERIAL": the harness derives its feature (keyed,
 *     with the enrolled chip's key fingerprint) and uploads it as in 5 to
 *     a registry with the feature key, so that registration, the same
 *     note again and duplicate serials are reached;
 *   7 a pre-check record as it arrives on the channel, to the registry
 *     with two feature keys in force (the optional D1 feature
 *     information is checked against both, OP-3).
 *
 * Invariant beyond "no crash, no sanitizer report": whenever
 * reg_note_handle() says it wrote a reply (0), the reply parses with
 * note_reply_parse() and its reason is a known one.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chip.h"
#include "chip_proto.h"
#include "feature.h"
#include "key_soft.h"
#include "ml_log.h"
#include "ml_ossl.h"
#include "ml_tlv.h"
#include "ml_wr.h"
#include "registry.h"
#include "note_msg.h"
#include "note_proto.h"
#include "reg_note.h"

#define RESET_EVERY	20000

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ml_p256_key *server_k, *issuer_k, *chip_k;
static struct key server_key;
static uint8_t server_pub[ML_P256_PUB_LEN], issuer_pub[ML_P256_PUB_LEN];
static uint8_t chip_pub[ML_P256_PUB_LEN];
static const char fz_serial[] = "FUZZCHIP00000001";
static struct reg *db;
static struct reg_note *rn, *rn_keyed;
static const uint8_t fkey[FEATURE_KEY_LEN] = {
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
	0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
	0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
	0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f,
};
static unsigned long nruns;
static bool verbose;

static struct ml_p256_key *
soft_key(uint8_t pub[ML_P256_PUB_LEN])
{
	uint8_t priv[ML_P256_PRIV_LEN];
	struct ml_p256_key *k = NULL;

	if (ml_p256_keygen(priv, pub) != 0 ||
	    ml_p256_key_from_priv(priv, &k) != 0) {
		abort();
	}
	return k;
}

static void
registry_open(void)
{
	struct reg_note_cfg cfg = { 0 };

	reg_note_free(rn);
	reg_note_free(rn_keyed);
	reg_close(db);
	rn = rn_keyed = NULL;
	if (reg_open(":memory:", NULL, &db) != 0 ||
	    reg_notes_enrol(db, fz_serial, chip_pub) < 0) {
		abort();
	}
	cfg.reg = db;
	key_soft_init(&server_key, server_k);
	cfg.server_key = &server_key;
	memcpy(cfg.server_pub, server_pub, ML_P256_PUB_LEN);
	memcpy(cfg.issuers[0], issuer_pub, ML_P256_PUB_LEN);
	cfg.nissuers = 1;
	cfg.nfeature_keys = 0;		/* feature_parse(): no keyed code */
	if (reg_note_new(&cfg, &rn) != 0) {
		abort();
	}
	/* feature_verify() under two keys in force, as in a rotation */
	memcpy(cfg.feature_keys[0], fkey, FEATURE_KEY_LEN);
	memset(cfg.feature_keys[1], 0x5a, FEATURE_KEY_LEN);
	cfg.nfeature_keys = 2;
	if (reg_note_new(&cfg, &rn_keyed) != 0) {
		abort();
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	ml_log_set_level(ML_LOG_ERROR);
	verbose = getenv("FUZZ_NOTE_VERBOSE") != NULL;
	server_k = soft_key(server_pub);
	issuer_k = soft_key(issuer_pub);
	chip_k = soft_key(chip_pub);
	registry_open();
	return 0;
}

/* Seal pt to the server and wrap it as the chip would: D0 D5 D6. */
static int
make_upload(const uint8_t *pt, size_t ptn, struct ml_wr *out)
{
	uint8_t blob[NOTE_REQ_MAX], msg[NOTE_REQ_MAX + 64], sig[ML_P256_SIG_LEN];
	struct ml_wr m = ML_WR_FIXED(msg, sizeof(msg));
	size_t bn;

	if (ml_seal(server_pub, fz_serial, CHIP_SERIAL_LEN, pt, ptn, blob,
	    sizeof(blob), &bn) != 0 ||
	    note_msg_seal(&m, fz_serial, blob, bn) != 0 ||
	    ml_p256_sign(chip_k, m.p, m.len, sig) != 0) {
		return -1;
	}
	if (ml_tlv_put(out, TAG_FEAT_SERIAL, fz_serial, CHIP_SERIAL_LEN) != 0 ||
	    ml_tlv_put(out, TAG_SEAL_BLOB, blob, bn) != 0 ||
	    ml_tlv_put(out, TAG_SEAL_CHIP_SIG, sig, sizeof(sig)) != 0) {
		return -1;
	}
	return 0;
}

/* The inner record around a feature, with a valid station signature. */
static int
make_inner(const uint8_t *feat, size_t fn, struct ml_wr *out)
{
	uint8_t chal[NOTE_CHALLENGE_LEN], sig[ML_P256_SIG_LEN];
	uint8_t msg[64 + CHIP_SERIAL_LEN + NOTE_CHALLENGE_LEN + NOTE_MAX_FEATURE];
	struct ml_wr m = ML_WR_FIXED(msg, sizeof(msg));

	memset(chal, 0x5A, sizeof(chal));
	if (fn > NOTE_MAX_FEATURE ||
	    note_msg_auth(&m, chal, fz_serial, feat, fn) != 0 ||
	    ml_p256_sign(issuer_k, m.p, m.len, sig) != 0) {
		return -1;
	}
	if (ml_tlv_put(out, TAG_FEAT_SERIAL, fz_serial, CHIP_SERIAL_LEN) != 0 ||
	    ml_tlv_put(out, TAG_FEAT_INFO, feat, fn) != 0 ||
	    ml_tlv_put(out, TAG_FEAT_CHALLENGE, chal, sizeof(chal)) != 0 ||
	    ml_tlv_put(out, TAG_FEAT_AUTH_SIG, sig, sizeof(sig)) != 0) {
		return -1;
	}
	return 0;
}

static void
handle_with(struct reg_note *r, unsigned type, const uint8_t *p, size_t n)
{
	uint8_t rbuf[NOTE_REPLY_MAX];
	struct ml_wr w = ML_WR_FIXED(rbuf, sizeof(rbuf));
	struct note_reply nr;

	if (reg_note_handle(r, type, p, n, &w) != 0) {
		return;
	}
	if (note_reply_parse(w.p, w.len, &nr) != 0 || nr.reason < 0 ||
	    nr.reason >= NOTE_R_COUNT || nr.status < NOTE_ST_OK ||
	    nr.status > NOTE_ST_REJECT) {
		abort();
	}
	if (verbose) {
		/* FUZZ_NOTE_VERBOSE=1: what a seed reaches */
		fprintf(stderr, "type %u: status %d reason %s note %s\n", type,
		    nr.status, note_reason_name(nr.reason), nr.note_id);
	}
}

static void
handle(unsigned type, const uint8_t *p, size_t n)
{
	handle_with(rn, type, p, n);
}

/* "PREFIX|SERIAL" to a genuine feature for the enrolled chip. */
static int
make_feature(const uint8_t *p, size_t n, char f[FEATURE_MAX_LEN + 1],
    size_t *ret_len)
{
	const uint8_t *bar = memchr(p, '|', n);
	struct note_id id;

	if (bar == NULL ||
	    note_id_set((const char *)p, (size_t)(bar - p),
	    (const char *)bar + 1, n - (size_t)(bar - p) - 1, &id) != 0 ||
	    feature_derive(fkey, &id, chip_pub, f, ret_len) != 0) {
		return -1;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned types[4] = { NOTE_REC_ENROL, NOTE_REC_UPLOAD,
	    NOTE_REC_QUERY, NOTE_REC_CHECK };
	uint8_t inner[NOTE_REQ_MAX], up[NOTE_REQ_MAX + 256];
	struct ml_wr wi = ML_WR_FIXED(inner, sizeof(inner));
	struct ml_wr wu = ML_WR_FIXED(up, sizeof(up));
	char feat[FEATURE_MAX_LEN + 1];
	struct note_reply nr;
	unsigned mode;
	size_t fn;

	if (size < 1 || size > NOTE_REQ_MAX) {
		return 0;
	}
	if (++nruns % RESET_EVERY == 0) {
		registry_open();
	}
	mode = data[0] % 8;
	data++;
	size--;
	switch (mode) {
	case 0:
	case 1:
	case 2:
		handle(types[mode], size ? data : NULL, size);
		break;
	case 3:
		if (note_reply_parse(data, size, &nr) == 0 &&
		    strlen(nr.note_id) > NOTE_REPLY_ID_MAX) {
			abort();
		}
		break;
	case 4:
		if (size <= NOTE_REQ_MAX - ML_SEAL_OVERHEAD - 1 &&
		    make_upload(data, size, &wu) == 0) {
			handle(NOTE_REC_UPLOAD, wu.p, wu.len);
		}
		break;
	case 5:
		if (make_inner(data, size, &wi) == 0 &&
		    make_upload(wi.p, wi.len, &wu) == 0) {
			handle(NOTE_REC_UPLOAD, wu.p, wu.len);
		}
		break;
	case 6:
		if (make_feature(data, size, feat, &fn) == 0 &&
		    make_inner((const uint8_t *)feat, fn, &wi) == 0 &&
		    make_upload(wi.p, wi.len, &wu) == 0) {
			handle_with(rn_keyed, NOTE_REC_UPLOAD, wu.p, wu.len);
		}
		break;
	case 7:
		handle_with(rn_keyed, types[3], size ? data : NULL, size);
		break;
	}
	return 0;
}
