/*
 * Registration logic (BN-6, BN-7, BN-8 online) with software keys and
 * in-process chips: a genuine upload registers; the same note again is
 * answered the same; tampered, unknown-chip, unauthorised-writer,
 * replayed-authorisation and duplicate-serial uploads are refused with the
 * exact reason and register nothing; the desk query tells genuine,
 * altered, unregistered and two-chip cases apart.  The issuance pre-check
 * (OP-3) answers unknown chip, key mismatch, registered elsewhere and
 * reserved for another chip exactly, and promises a serial to one chip.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "key_soft.h"
#include "chip.h"
#include "chip_proto.h"
#include "feature.h"
#include "ml_ossl.h"
#include "ml_tlv.h"
#include "ml_wr.h"
#include "note_chip.h"
#include "registry.h"
#include "note_proto.h"
#include "reg_note.h"
#include "sw.h"

struct soft {
	struct ml_p256_key	*k;
	uint8_t			 pub[ML_P256_PUB_LEN];
	struct key		 ko;
};

static char dir[64];
static struct chiplink *line;
static struct soft station, rogue, server, server2;
static uint8_t fkey[FEATURE_KEY_LEN];
static struct reg *db;
static struct reg_note *rn;
static int nchips;

static void
soft_new(struct soft *s)
{
	uint8_t priv[32];

	ck_assert_int_eq(ml_p256_keygen(priv, s->pub), 0);
	ck_assert_int_eq(ml_p256_key_from_priv(priv, &s->k), 0);
	key_soft_init(&s->ko, s->k);
}

static struct reg_note *
new_reg(const struct soft *srv)
{
	struct reg_note_cfg cfg = { 0 };
	struct reg_note *r = NULL;

	cfg.reg = db;
	cfg.server_key = &srv->ko;
	memcpy(cfg.server_pub, srv->pub, ML_P256_PUB_LEN);
	memcpy(cfg.issuers[0], station.pub, ML_P256_PUB_LEN);
	cfg.nissuers = 1;
	memcpy(cfg.feature_keys[0], fkey, FEATURE_KEY_LEN);
	cfg.nfeature_keys = 1;
	ck_assert_int_eq(reg_note_new(&cfg, &r), 0);
	return r;
}

static void
setup(void)
{
	char path[128];
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/test-reg-note.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/positions", dir);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs("1\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "inproc:%s", dir);
	ck_assert_int_eq(chiplink_open(path, &line), 0);
	soft_new(&station);
	soft_new(&rogue);
	soft_new(&server);
	soft_new(&server2);
	ck_assert_int_eq(ml_rand(fkey, sizeof(fkey)), 0);
	snprintf(path, sizeof(path), "%s/registry.db", dir);
	ck_assert_int_eq(reg_open(path, NULL, &db), 0);
	rn = new_reg(&server);
}

static void
teardown(void)
{
	char cmd[160];

	reg_note_free(rn);
	reg_close(db);
	chiplink_close(line);
	ml_p256_key_free(station.k);
	ml_p256_key_free(rogue.k);
	ml_p256_key_free(server.k);
	ml_p256_key_free(server2.k);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* A fresh personalised chip in the position; its serial and key. */
static void
new_chip(struct chipcmd *cc, const struct soft *issuer, const struct soft *srv,
    char serial[CHIP_SERIAL_LEN + 1], uint8_t pub[ML_P256_PUB_LEN])
{
	char img[160];
	struct chip_info ci;

	snprintf(serial, CHIP_SERIAL_LEN + 1, "TCHIP%011d", nchips++);
	snprintf(img, sizeof(img), "%s/%s.chip", dir, serial);
	ck_assert_int_eq(chip_manufacture(img, CHIP_KIND_NOTE, serial), 0);
	ck_assert_int_eq(chiplink_inproc_feed(line, 0, img), 0);
	ck_assert_int_eq(chipcmd_begin(cc, line, 0), 0);
	ck_assert_int_eq(note_chip_perso(cc, "87654321", "t",
	    (const uint8_t (*)[ML_P256_PUB_LEN])issuer->pub, 1, srv->pub, pub), 0);
	ck_assert_int_eq(chipcmd_info(cc, &ci), 0);
	ck_assert_int_eq(memcmp(ci.serial, serial, CHIP_SERIAL_LEN), 0);
}

static struct note_reply
call(unsigned type, const uint8_t *req, size_t len)
{
	uint8_t buf[NOTE_REPLY_MAX];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));
	struct note_reply rep;

	ck_assert_int_eq(reg_note_handle(rn, type, req, len, &w), 0);
	ck_assert_int_eq(note_reply_parse(w.p, w.len, &rep), 0);
	return rep;
}

static void
enrol(const char *serial, const uint8_t pub[ML_P256_PUB_LEN])
{
	uint8_t req[128];
	struct ml_wr w = ML_WR_FIXED(req, sizeof(req));
	struct note_reply rep;

	ck_assert_int_eq(ml_tlv_put(&w, TAG_ENROL_SERIAL, serial, CHIP_SERIAL_LEN), 0);
	ck_assert_int_eq(ml_tlv_put(&w, TAG_ENROL_PUB, pub, ML_P256_PUB_LEN), 0);
	rep = call(NOTE_REC_ENROL, w.p, w.len);
	ck_assert_int_ne(rep.status, NOTE_ST_REJECT);
}

/* Authorise and write note prefix/serial on the chip; the sealed upload. */
static size_t
write_note(struct chipcmd *cc, const struct soft *signer, const char *chip,
    const uint8_t pub[ML_P256_PUB_LEN], const char *serial, uint8_t *sealed,
    size_t cap)
{
	char f[FEATURE_MAX_LEN + 1];
	struct note_id id;
	size_t n;
	uint16_t sw;

	ck_assert_int_eq(note_id_set("TS", 2, serial, strlen(serial), &id), 0);
	ck_assert_int_eq(feature_derive(fkey, &id, pub, f, &n), 0);
	ck_assert_int_eq(note_chip_authorize(cc, &signer->ko, chip,
	    (uint8_t *)f, n, &sw), 0);
	ck_assert_uint_eq(sw, SW_OK);
	ck_assert_int_eq(note_chip_write(cc, (uint8_t *)f, n), 0);
	ck_assert_int_eq(note_chip_sealed(cc, sealed, cap, &n), 0);
	return n;
}

static uint64_t
count_notes(void)
{
	uint64_t n = 0;

	ck_assert_int_eq(reg_notes_count(db, &n), 0);
	return n;
}

START_TEST(genuine_then_idempotent)
{
	struct chipcmd cc;
	char chip[CHIP_SERIAL_LEN + 1];
	uint8_t pub[65], s1[NOTE_SEALED_MAX], s2[NOTE_SEALED_MAX];
	size_t n1, n2;
	struct note_reply a, b, c;

	new_chip(&cc, &station, &server, chip, pub);
	enrol(chip, pub);
	n1 = write_note(&cc, &station, chip, pub, "00000001", s1, sizeof(s1));
	a = call(NOTE_REC_UPLOAD, s1, n1);
	ck_assert_int_eq(a.status, NOTE_ST_OK);
	ck_assert_str_eq(a.note_id, "TS00000001");
	ck_assert_uint_ne(a.reg_id, 0);
	/* the very same upload again (a retry after a lost ack) */
	b = call(NOTE_REC_UPLOAD, s1, n1);
	ck_assert_int_eq(b.status, NOTE_ST_AGAIN);
	ck_assert_uint_eq(b.reg_id, a.reg_id);
	/* a fresh seal of the same note (a re-run after a crash) */
	ck_assert_int_eq(note_chip_sealed(&cc, s2, sizeof(s2), &n2), 0);
	ck_assert(n1 != n2 || memcmp(s1, s2, n1) != 0);
	c = call(NOTE_REC_UPLOAD, s2, n2);
	ck_assert_int_eq(c.status, NOTE_ST_AGAIN);
	ck_assert_uint_eq(c.reg_id, a.reg_id);
	ck_assert_uint_eq(count_notes(), 1);
}
END_TEST

START_TEST(tampered)
{
	struct chipcmd cc;
	char chip[CHIP_SERIAL_LEN + 1];
	uint8_t pub[65], s[NOTE_SEALED_MAX];
	size_t n, i;
	struct note_reply rep;

	new_chip(&cc, &station, &server, chip, pub);
	enrol(chip, pub);
	n = write_note(&cc, &station, chip, pub, "00000002", s, sizeof(s));
	/* every byte after the serial TLV: the chip signature or the seal
	 * refuses it, or it no longer parses */
	for (i = 2 + CHIP_SERIAL_LEN; i < n; i += 7) {
		s[i] ^= 0x40;
		rep = call(NOTE_REC_UPLOAD, s, n);
		ck_assert_int_eq(rep.status, NOTE_ST_REJECT);
		ck_assert_msg(rep.reason == NOTE_R_CHIP_SIG ||
		    rep.reason == NOTE_R_MALFORMED, "byte %zu: %d", i, rep.reason);
		s[i] ^= 0x40;
	}
	ck_assert_uint_eq(count_notes(), 0);
	ck_assert_int_eq(call(NOTE_REC_UPLOAD, s, n).status, NOTE_ST_OK);
}
END_TEST

START_TEST(wrong_server_key_cannot_open)
{
	struct chipcmd cc;
	char chip[CHIP_SERIAL_LEN + 1];
	uint8_t pub[65], s[NOTE_SEALED_MAX];
	size_t n;
	struct note_reply rep;

	/* sealed to server2: the server's key cannot decrypt (BN-7) */
	new_chip(&cc, &station, &server2, chip, pub);
	enrol(chip, pub);
	n = write_note(&cc, &station, chip, pub, "00000003", s, sizeof(s));
	rep = call(NOTE_REC_UPLOAD, s, n);
	ck_assert_int_eq(rep.status, NOTE_ST_REJECT);
	ck_assert_int_eq(rep.reason, NOTE_R_TAMPERED);
	ck_assert_uint_eq(count_notes(), 0);
}
END_TEST

START_TEST(unknown_chip)
{
	struct chipcmd cc;
	char chip[CHIP_SERIAL_LEN + 1];
	uint8_t pub[65], s[NOTE_SEALED_MAX];
	size_t n;
	struct note_reply rep;

	new_chip(&cc, &station, &server, chip, pub);	/* never enrolled */
	n = write_note(&cc, &station, chip, pub, "00000004", s, sizeof(s));
	rep = call(NOTE_REC_UPLOAD, s, n);
	ck_assert_int_eq(rep.status, NOTE_ST_REJECT);
	ck_assert_int_eq(rep.reason, NOTE_R_UNKNOWN_CHIP);
	ck_assert_uint_eq(count_notes(), 0);
}
END_TEST

START_TEST(unauthorized_writer)
{
	struct chipcmd cc;
	char chip[CHIP_SERIAL_LEN + 1];
	uint8_t pub[65], s[NOTE_SEALED_MAX];
	size_t n;
	struct note_reply rep;

	/* a chip that trusts the rogue key (a counterfeiter's chip) */
	new_chip(&cc, &rogue, &server, chip, pub);
	enrol(chip, pub);
	n = write_note(&cc, &rogue, chip, pub, "00000005", s, sizeof(s));
	rep = call(NOTE_REC_UPLOAD, s, n);
	ck_assert_int_eq(rep.status, NOTE_ST_REJECT);
	ck_assert_int_eq(rep.reason, NOTE_R_UNAUTHORIZED);
	ck_assert_uint_eq(count_notes(), 0);
}
END_TEST

/*
 * A replayed authorisation: chip A's record (challenge, station signature,
 * feature) resealed by an enrolled chip B that accepts anything.  The
 * signature names chip A: refused.  The real chip refuses it earlier
 * (test_note.c); this is the server's own check.
 */
START_TEST(replayed_authorization)
{
	struct chipcmd cc;
	char a[CHIP_SERIAL_LEN + 1], b[CHIP_SERIAL_LEN + 1];
	uint8_t apub[65], bpriv[32], bpub[65], s[NOTE_SEALED_MAX];
	uint8_t pt[2048], blob[2048], up[4096], msg[4096], sig[64];
	struct ml_wr pw = ML_WR_FIXED(pt, sizeof(pt));
	struct ml_wr uw = ML_WR_FIXED(up, sizeof(up));
	struct ml_wr mw = ML_WR_FIXED(msg, sizeof(msg));
	struct ml_p256_key *bk;
	struct note_record rec;
	struct note_reply rep;
	size_t bn;

	new_chip(&cc, &station, &server, a, apub);
	enrol(a, apub);
	(void)write_note(&cc, &station, a, apub, "00000006", s, sizeof(s));
	ck_assert_int_eq(note_chip_record(&cc, &rec), 0);
	/* chip B: a software chip, enrolled like any other */
	snprintf(b, sizeof(b), "TROGUE%010d", 1);
	ck_assert_int_eq(ml_p256_keygen(bpriv, bpub), 0);
	ck_assert_int_eq(ml_p256_key_from_priv(bpriv, &bk), 0);
	enrol(b, bpub);
	ck_assert_int_eq(ml_tlv_put(&pw, TAG_FEAT_SERIAL, b, CHIP_SERIAL_LEN), 0);
	ck_assert_int_eq(ml_tlv_put(&pw, TAG_FEAT_INFO, rec.feature, rec.feature_len), 0);
	ck_assert_int_eq(ml_tlv_put(&pw, TAG_FEAT_CHALLENGE, rec.challenge, 16), 0);
	ck_assert_int_eq(ml_tlv_put(&pw, TAG_FEAT_AUTH_SIG, rec.station_sig, 64), 0);
	ck_assert_int_eq(ml_seal(server.pub, b, CHIP_SERIAL_LEN, pw.p, pw.len,
	    blob, sizeof(blob), &bn), 0);
	ck_assert_int_eq(ml_wr_bytes(&mw, NOTE_SEAL_DOMAIN, strlen(NOTE_SEAL_DOMAIN)), 0);
	ck_assert_int_eq(ml_wr_bytes(&mw, b, CHIP_SERIAL_LEN), 0);
	ck_assert_int_eq(ml_wr_bytes(&mw, blob, bn), 0);
	ck_assert_int_eq(ml_p256_sign(bk, mw.p, mw.len, sig), 0);
	ck_assert_int_eq(ml_tlv_put(&uw, TAG_FEAT_SERIAL, b, CHIP_SERIAL_LEN), 0);
	ck_assert_int_eq(ml_tlv_put(&uw, TAG_SEAL_BLOB, blob, bn), 0);
	ck_assert_int_eq(ml_tlv_put(&uw, TAG_SEAL_CHIP_SIG, sig, 64), 0);
	rep = call(NOTE_REC_UPLOAD, uw.p, uw.len);
	ck_assert_int_eq(rep.status, NOTE_ST_REJECT);
	ck_assert_int_eq(rep.reason, NOTE_R_UNAUTHORIZED);
	ck_assert_uint_eq(count_notes(), 0);
	ml_p256_key_free(bk);
}
END_TEST

START_TEST(duplicate_serial_flags_both)
{
	struct chipcmd cc;
	char a[CHIP_SERIAL_LEN + 1], b[CHIP_SERIAL_LEN + 1];
	uint8_t apub[65], bpub[65], s[NOTE_SEALED_MAX];
	size_t n;
	struct note_reply rep;

	new_chip(&cc, &station, &server, a, apub);
	enrol(a, apub);
	n = write_note(&cc, &station, a, apub, "00000007", s, sizeof(s));
	ck_assert_int_eq(call(NOTE_REC_UPLOAD, s, n).status, NOTE_ST_OK);
	new_chip(&cc, &station, &server, b, bpub);
	enrol(b, bpub);
	n = write_note(&cc, &station, b, bpub, "00000007", s, sizeof(s));
	rep = call(NOTE_REC_UPLOAD, s, n);
	ck_assert_int_eq(rep.status, NOTE_ST_REJECT);
	ck_assert_int_eq(rep.reason, NOTE_R_DUP_SERIAL);
	ck_assert_uint_eq(rep.flags & NOTE_F_TWO_CHIPS, NOTE_F_TWO_CHIPS);
	ck_assert_uint_eq(count_notes(), 1);
	ck_assert_int_eq(reg_notes_flagged(db, "TS00000007"), 1);
}
END_TEST

static struct note_reply
query(const char *chip, const uint8_t *f, size_t n, const uint8_t pub[65])
{
	uint8_t req[2048];
	struct ml_wr w = ML_WR_FIXED(req, sizeof(req));

	ck_assert_int_eq(ml_tlv_put(&w, TAG_FEAT_SERIAL, chip, CHIP_SERIAL_LEN), 0);
	ck_assert_int_eq(ml_tlv_put(&w, TAG_FEAT_INFO, f, n), 0);
	ck_assert_int_eq(ml_tlv_put(&w, TAG_ENROL_PUB, pub, 65), 0);
	return call(NOTE_REC_QUERY, w.p, w.len);
}

START_TEST(desk_query)
{
	struct chipcmd cc;
	char a[CHIP_SERIAL_LEN + 1], b[CHIP_SERIAL_LEN + 1];
	char f[FEATURE_MAX_LEN + 1];
	uint8_t apub[65], bpub[65], s[NOTE_SEALED_MAX];
	struct note_record rec;
	struct note_reply rep;
	struct note_id id;
	size_t n;

	new_chip(&cc, &station, &server, a, apub);
	enrol(a, apub);
	n = write_note(&cc, &station, a, apub, "00000008", s, sizeof(s));
	ck_assert_int_eq(call(NOTE_REC_UPLOAD, s, n).status, NOTE_ST_OK);
	ck_assert_int_eq(note_chip_record(&cc, &rec), 0);
	rep = query(a, rec.feature, rec.feature_len, apub);
	ck_assert_int_eq(rep.status, NOTE_ST_OK);
	ck_assert_str_eq(rep.note_id, "TS00000008");
	/* altered keyed code: same serial, another record */
	rec.feature[rec.feature_len - FEATURE_KFP_LEN - 3] ^= 1;
	rep = query(a, rec.feature, rec.feature_len, apub);
	ck_assert_int_eq(rep.reason, NOTE_R_FEATURE_MISMATCH);
	rec.feature[rec.feature_len - FEATURE_KFP_LEN - 3] ^= 1;
	/* a chip key other than the enrolled one */
	{
		uint8_t opriv[32], opub[65];

		ck_assert_int_eq(ml_p256_keygen(opriv, opub), 0);
		rep = query(a, rec.feature, rec.feature_len, opub);
	}
	ck_assert_int_eq(rep.reason, NOTE_R_CHIP_MISMATCH);
	/* unregistered serial */
	ck_assert_int_eq(note_id_set("TS", 2, "99999999", 8, &id), 0);
	ck_assert_int_eq(feature_derive(fkey, &id, apub, f, &n), 0);
	rep = query(a, (uint8_t *)f, n, apub);
	ck_assert_int_eq(rep.reason, NOTE_R_UNREGISTERED);
	/* the same serial presented by another chip: both flagged */
	new_chip(&cc, &station, &server, b, bpub);
	enrol(b, bpub);
	rep = query(b, rec.feature, rec.feature_len, bpub);
	ck_assert_int_eq(rep.reason, NOTE_R_CHIP_MISMATCH);
	ck_assert_uint_eq(rep.flags & NOTE_F_TWO_CHIPS, NOTE_F_TWO_CHIPS);
	rep = query(a, rec.feature, rec.feature_len, apub);
	ck_assert_int_eq(rep.status, NOTE_ST_OK);
	ck_assert_uint_eq(rep.flags & NOTE_F_TWO_CHIPS, NOTE_F_TWO_CHIPS);
}
END_TEST

START_TEST(enrol_conflict_and_malformed)
{
	uint8_t req[128], pub[65], priv[32];
	struct ml_wr w = ML_WR_FIXED(req, sizeof(req));
	struct note_reply rep;

	ck_assert_int_eq(ml_p256_keygen(priv, pub), 0);
	enrol("TENROL0000000001", pub);
	enrol("TENROL0000000001", pub);		/* same key again: fine */
	ck_assert_int_eq(ml_p256_keygen(priv, pub), 0);
	ck_assert_int_eq(ml_tlv_put(&w, TAG_ENROL_SERIAL, "TENROL0000000001", 16), 0);
	ck_assert_int_eq(ml_tlv_put(&w, TAG_ENROL_PUB, pub, 65), 0);
	rep = call(NOTE_REC_ENROL, w.p, w.len);
	ck_assert_int_eq(rep.reason, NOTE_R_ENROL_CONFLICT);
	rep = call(NOTE_REC_UPLOAD, req, 3);
	ck_assert_int_eq(rep.reason, NOTE_R_MALFORMED);
	rep = call(NOTE_REC_QUERY, NULL, 0);
	ck_assert_int_eq(rep.reason, NOTE_R_MALFORMED);
}
END_TEST

/* The OP-3 pre-check for note on chip with key pub, from station peer. */
static struct note_reply
check_from(const char *peer, const char *chip,
    const uint8_t pub[ML_P256_PUB_LEN], const char *note)
{
	uint8_t req[160], buf[NOTE_REPLY_MAX];
	struct ml_wr w = ML_WR_FIXED(req, sizeof(req));
	struct ml_wr rw = ML_WR_FIXED(buf, sizeof(buf));
	struct note_reply rep;
	struct hs_peer hp;

	memset(&hp, 0, sizeof(hp));
	hp.kind = HS_KIND_STATION;
	snprintf(hp.serial, sizeof(hp.serial), "%s", peer != NULL ? peer : "");
	ck_assert_int_eq(ml_tlv_put(&w, TAG_ENROL_SERIAL, chip, CHIP_SERIAL_LEN), 0);
	ck_assert_int_eq(ml_tlv_put(&w, TAG_ENROL_PUB, pub, ML_P256_PUB_LEN), 0);
	ck_assert_int_eq(ml_tlv_put(&w, TAG_REPLY_NOTE, note, strlen(note)), 0);
	ck_assert_int_eq(reg_note_handle_from(rn, peer != NULL ? &hp : NULL,
	    NOTE_REC_CHECK, w.p, w.len, &rw), 0);
	ck_assert_int_eq(note_reply_parse(rw.p, rw.len, &rep), 0);
	return rep;
}

static struct note_reply
check_req(const char *chip, const uint8_t pub[ML_P256_PUB_LEN],
    const char *note)
{
	return check_from(NULL, chip, pub, note);
}

START_TEST(precheck)
{
	struct chipcmd cc;
	char a[CHIP_SERIAL_LEN + 1], b[CHIP_SERIAL_LEN + 1];
	uint8_t pa[65], pb[65], s[NOTE_SEALED_MAX];
	struct note_reply rep;
	size_t n;

	new_chip(&cc, &station, &server, b, pb);
	enrol(b, pb);
	new_chip(&cc, &station, &server, a, pa);
	/* not enrolled: nothing may be written on it */
	rep = check_req(a, pa, "TS00000050");
	ck_assert_int_eq(rep.status, NOTE_ST_REJECT);
	ck_assert_int_eq(rep.reason, NOTE_R_UNKNOWN_CHIP);
	enrol(a, pa);
	/* enrolled, but the station read another key from it */
	rep = check_req(a, pb, "TS00000050");
	ck_assert_int_eq(rep.reason, NOTE_R_CHIP_MISMATCH);
	/* free: promised to a; asking again for a renews, b is refused */
	ck_assert_int_eq(check_req(a, pa, "TS00000050").status, NOTE_ST_OK);
	ck_assert_int_eq(check_req(a, pa, "TS00000050").status, NOTE_ST_OK);
	rep = check_req(b, pb, "TS00000050");
	ck_assert_int_eq(rep.status, NOTE_ST_REJECT);
	ck_assert_int_eq(rep.reason, NOTE_R_RESERVED);
	/* per station: station S1 holds TS00000051 for a; S2 is refused it
	 * for b, S1 itself may move it to b (it never wrote a) */
	ck_assert_int_eq(check_from("S1", a, pa, "TS00000051").status,
	    NOTE_ST_OK);
	ck_assert_int_eq(check_from("S2", b, pb, "TS00000051").reason,
	    NOTE_R_RESERVED);
	ck_assert_int_eq(check_from("S1", b, pb, "TS00000051").status,
	    NOTE_ST_OK);
	ck_assert_int_eq(check_from("S1", a, pa, "TS00000051").status,
	    NOTE_ST_OK);
	ck_assert_int_eq(check_from("S2", b, pb, "TS00000051").reason,
	    NOTE_R_RESERVED);
	/* registered on a: a is told "again", b "registered elsewhere" */
	n = write_note(&cc, &station, a, pa, "00000050", s, sizeof(s));
	ck_assert_int_eq(call(NOTE_REC_UPLOAD, s, n).status, NOTE_ST_OK);
	ck_assert_int_eq(check_req(a, pa, "TS00000050").status, NOTE_ST_AGAIN);
	rep = check_req(b, pb, "TS00000050");
	ck_assert_int_eq(rep.reason, NOTE_R_DUP_SERIAL);
	/* malformed: no note id, a note id with bad characters */
	rep = call(NOTE_REC_CHECK, (const uint8_t *)"\xE0\x00", 2);
	ck_assert_int_eq(rep.reason, NOTE_R_MALFORMED);
	rep = check_req(b, pb, "ts-1");
	ck_assert_int_eq(rep.reason, NOTE_R_MALFORMED);
	ck_assert_uint_eq(count_notes(), 1);
}
END_TEST

/* The pre-check carrying D1 = the n bytes of f. */
static struct note_reply
check_feat_raw(const char *chip, const uint8_t pub[ML_P256_PUB_LEN],
    const char *note, const void *f, size_t n)
{
	uint8_t req[160 + FEATURE_MAX_LEN], buf[NOTE_REPLY_MAX];
	struct ml_wr w = ML_WR_FIXED(req, sizeof(req));
	struct ml_wr rw = ML_WR_FIXED(buf, sizeof(buf));
	struct note_reply rep;

	ck_assert_int_eq(ml_tlv_put(&w, TAG_ENROL_SERIAL, chip, CHIP_SERIAL_LEN), 0);
	ck_assert_int_eq(ml_tlv_put(&w, TAG_ENROL_PUB, pub, ML_P256_PUB_LEN), 0);
	ck_assert_int_eq(ml_tlv_put(&w, TAG_REPLY_NOTE, note, strlen(note)), 0);
	ck_assert_int_eq(ml_tlv_put(&w, TAG_FEAT_INFO, f, n), 0);
	ck_assert_int_eq(reg_note_handle(rn, NOTE_REC_CHECK, w.p, w.len, &rw), 0);
	ck_assert_int_eq(note_reply_parse(rw.p, rw.len, &rep), 0);
	return rep;
}

/* The pre-check carrying the feature information (D1) made with key. */
static struct note_reply
check_feat(const char *chip, const uint8_t pub[ML_P256_PUB_LEN],
    const char *serial, const uint8_t key[FEATURE_KEY_LEN],
    const char *note)
{
	char f[FEATURE_MAX_LEN + 1];
	struct note_id id;
	size_t n;

	ck_assert_int_eq(note_id_set("TS", 2, serial, strlen(serial), &id), 0);
	ck_assert_int_eq(feature_derive(key, &id, pub, f, &n), 0);
	return check_feat_raw(chip, pub, note, f, n);
}

/*
 * OP-3, OP-5: the pre-check refuses feature information whose keyed code
 * no feature key in force made (before anything is written or promised),
 * or that names another note; a second key listed on SIGHUP is accepted
 * beside the first, and a key dropped is refused from then on.
 */
START_TEST(precheck_feature_key)
{
	struct chipcmd cc;
	char a[CHIP_SERIAL_LEN + 1];
	uint8_t pa[65], other[FEATURE_KEY_LEN], both[2][FEATURE_KEY_LEN];
	struct note_reply rep;

	ck_assert_int_eq(ml_rand(other, sizeof(other)), 0);
	new_chip(&cc, &station, &server, a, pa);
	enrol(a, pa);
	rep = check_feat(a, pa, "00000060", other, "TS00000060");
	ck_assert_int_eq(rep.status, NOTE_ST_REJECT);
	ck_assert_int_eq(rep.reason, NOTE_R_BAD_FEATURE);
	/* nothing promised: the same note is free for a right request */
	rep = check_feat(a, pa, "00000060", fkey, "TS00000060");
	ck_assert_int_eq(rep.status, NOTE_ST_OK);
	/* malformed feature information: refused, nothing written */
	rep = check_feat_raw(a, pa, "TS00000060", "ML1|TS|garbage", 14);
	ck_assert_int_eq(rep.reason, NOTE_R_BAD_FEATURE);
	/* the feature information of another note than the one asked for */
	rep = check_feat(a, pa, "00000061", fkey, "TS00000060");
	ck_assert_int_eq(rep.reason, NOTE_R_BAD_FEATURE);
	/* both keys in force: either makes acceptable codes */
	memcpy(both[0], other, FEATURE_KEY_LEN);
	memcpy(both[1], fkey, FEATURE_KEY_LEN);
	ck_assert_int_eq(reg_note_set_feature_keys(rn,
	    (const uint8_t (*)[FEATURE_KEY_LEN])both, 2), 0);
	ck_assert_int_eq(check_feat(a, pa, "00000062", other,
	    "TS00000062").status, NOTE_ST_OK);
	ck_assert_int_eq(check_feat(a, pa, "00000063", fkey,
	    "TS00000063").status, NOTE_ST_OK);
	/* the old key dropped: refused */
	ck_assert_int_eq(reg_note_set_feature_keys(rn,
	    (const uint8_t (*)[FEATURE_KEY_LEN])both, 1), 0);
	ck_assert_int_eq(check_feat(a, pa, "00000064", fkey,
	    "TS00000064").reason, NOTE_R_BAD_FEATURE);
	ck_assert_int_eq(check_feat(a, pa, "00000064", other,
	    "TS00000064").status, NOTE_ST_OK);
	ck_assert_int_eq(reg_note_set_feature_keys(rn,
	    (const uint8_t (*)[FEATURE_KEY_LEN])both, FEATURE_MAX_KEYS + 1),
	    ML_ERR_TOO_LARGE);
	ck_assert_uint_eq(count_notes(), 0);
}
END_TEST

static Suite *
reg_suite(void)
{
	Suite *s = suite_create("reg_note");
	TCase *tc = tcase_create("reg_note");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, genuine_then_idempotent);
	tcase_add_test(tc, tampered);
	tcase_add_test(tc, wrong_server_key_cannot_open);
	tcase_add_test(tc, unknown_chip);
	tcase_add_test(tc, unauthorized_writer);
	tcase_add_test(tc, replayed_authorization);
	tcase_add_test(tc, duplicate_serial_flags_both);
	tcase_add_test(tc, desk_query);
	tcase_add_test(tc, enrol_conflict_and_malformed);
	tcase_add_test(tc, precheck);
	tcase_add_test(tc, precheck_feature_key);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(reg_suite());
	int nf;

	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
