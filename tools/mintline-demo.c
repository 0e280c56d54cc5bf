/*
 * mintline-demo: the README's first command until the issuance station
 * lands.  It manufactures a small in-process line of chips, personalises
 * them and exercises every profile end to end through the chip link:
 *
 *   - banknote chips (BN-1..BN-8): personalisation (chip key generated
 *     inside, issuer and server keys installed, lock), write authorisation
 *     over a fresh challenge, write-once feature record, sealed upload
 *     opened with the server key, clone check by INTERNAL AUTHENTICATE;
 *     a forged writer key and a replayed authorisation are refused;
 *   - a reader secure chip (ID-14): key generated inside, sign, ECDH,
 *     PIN lockout;
 *
 * The station and server keys here are software keys of the demo process:
 * the PKCS#11/HSM paths are separate features with their own tests.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ml_log.h"
#include "ml_parse.h"
#include "ml_ossl.h"
#include "ml_rd.h"
#include "ml_tlv.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "chip.h"
#include "chip_proto.h"
#include "chipcmd.h"
#include "note_msg.h"
#include "chiplink.h"
#include "sw.h"

#define SO_PIN		"87654321"
#define USER_PIN	"123456"

struct demo {
	const char		*dir;
	int			 notes;
	struct chiplink		*link;
	struct ml_p256_key	*station;
	uint8_t			 station_pub[ML_P256_PUB_LEN];
	struct ml_p256_key	*server;
	uint8_t			 server_pub[ML_P256_PUB_LEN];
	int			 failures;
};

static void
check(struct demo *d, int ok, const char *what)
{
	printf("  %-58s %s\n", what, ok ? "ok" : "FAILED");
	if (!ok) {
		d->failures++;
	}
}

static int
lv8(struct ml_wr *w, const char *s)
{
	return ml_wr_lv8(w, s, strlen(s));
}

/* INIT TOKEN, VERIFY SO, and (optionally) set the user PIN. */
static int
perso_pins(struct chipcmd *cc, const char *label, int set_user)
{
	uint8_t buf[80];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));
	int r;

	ML_TRY(lv8(&w, SO_PIN));
	ML_TRY(lv8(&w, label));
	ML_TRY(chipcmd_ok(cc, CLA_PROP, INS_INIT_TOKEN, 0, 0, w.p, w.len, 0,
	    NULL, 0, NULL));
	ML_TRY(chipcmd_ok(cc, CLA_ISO, INS_VERIFY, 0, PIN_SO, SO_PIN,
	    strlen(SO_PIN), 0, NULL, 0, NULL));
	if (set_user) {
		ML_TRY(chipcmd_ok(cc, CLA_ISO, INS_RESET_RETRY, 0, PIN_USER,
		    USER_PIN, strlen(USER_PIN), 0, NULL, 0, NULL));
	}
	r = 0;
out:
	return r;
}

static int
personalise_note(struct demo *d, struct chipcmd *cc, int n)
{
	uint8_t buf[256], empty[4] = { 0, 0, 0, 0 };
	char label[LABEL_MAX_LEN + 1];
	size_t len;
	int r;

	snprintf(label, sizeof(label), "note %04d", n);
	ML_TRY(perso_pins(cc, label, 1));
	/* The chip authentication key is generated inside the chip (BN-8). */
	ML_TRY(chipcmd_ok(cc, CLA_PROP, INS_GEN_KEYPAIR, GENKEY_CHIPKEY, 0,
	    empty, sizeof(empty), 256, buf, sizeof(buf), &len));
	ML_TRY(chipcmd_ok(cc, CLA_PROP, INS_INSTALL_ISSUER, 0, 0,
	    d->station_pub, ML_P256_PUB_LEN, 0, NULL, 0, NULL));
	ML_TRY(chipcmd_ok(cc, CLA_PROP, INS_INSTALL_SERVER, 0, 0,
	    d->server_pub, ML_P256_PUB_LEN, 0, NULL, 0, NULL));
	ML_TRY(chipcmd_ok(cc, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0, NULL, 0,
	    NULL));
	r = 0;
out:
	return r;
}

/*
 * BN-2: the demo's feature information is the serial prefix and number
 * plus an identification code; the station derives the real one.
 */
static void
make_feature(int n, char *out, size_t cap)
{
	snprintf(out, cap, "prefix=MX;serial=MX%08d;code=%08X", n,
	    (unsigned)(n * 2654435761u));
}

/* GET CHALLENGE, sign (challenge || serial || feature), AUTHORIZE WRITE. */
static int
authorize(struct chipcmd *cc, const struct ml_p256_key *key,
    const char *serial, const char *feature, uint16_t *ret_sw,
    uint8_t ret_msg[512], size_t *ret_msg_len)
{
	uint8_t chal[NOTE_CHALLENGE_LEN], sig[ML_P256_SIG_LEN], conf[4];
	uint8_t msg[512], cmd[600];
	struct ml_wr m = ML_WR_FIXED(msg, sizeof(msg));
	struct ml_wr w = ML_WR_FIXED(cmd, sizeof(cmd));
	size_t n;
	int r;

	ML_TRY(chipcmd_ok(cc, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0,
	    NOTE_CHALLENGE_LEN, chal, sizeof(chal), &n));
	ML_ENSURE(n == NOTE_CHALLENGE_LEN, ML_ERR_FORMAT);
	ML_TRY(note_msg_auth(&m, chal, serial, (const uint8_t *)feature,
	    strlen(feature)));
	ML_TRY(ml_p256_sign(key, m.p, m.len, sig));
	ML_TRY(ml_wr_lv16(&w, feature, strlen(feature)));
	ML_TRY(ml_wr_bytes(&w, sig, sizeof(sig)));
	ML_TRY(chipcmd_send(cc, CLA_PROP, INS_AUTHORIZE_WRITE, 0, 0, w.p, w.len,
	    256, conf, sizeof(conf), &n, ret_sw));
	if (ret_msg != NULL) {
		memcpy(ret_msg, w.p, w.len);
		*ret_msg_len = w.len;
	}
	r = 0;
out:
	return r;
}

static int
server_ecdh(void *ctx, const uint8_t eph[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN])
{
	return ml_p256_ecdh(ctx, eph, ML_P256_PUB_LEN, ret_secret);
}

/* Take a sealed upload and open it as the server would (BN-6, BN-7). */
static int
take_sealed(struct demo *d, struct chipcmd *cc, const uint8_t chip_pub[65],
    const char *feature)
{
	uint8_t buf[2048], pt[2048], sm[2048];
	struct ml_rd rd, blob, sig, serial, f;
	struct ml_wr m = ML_WR_FIXED(sm, sizeof(sm));
	struct ml_p256_key *ck = NULL;
	size_t n, ptn = 0;
	int r;

	ML_TRY(chipcmd_ok(cc, CLA_PROP, INS_GET_SEALED, 0, 0, NULL, 0, 65536,
	    buf, sizeof(buf), &n));
	rd = ML_RD_INIT(buf, n);
	ML_TRY(ml_tlv_find(&rd, TAG_FEAT_SERIAL, &serial));
	ML_TRY(ml_tlv_find(&rd, TAG_SEAL_BLOB, &blob));
	ML_TRY(ml_tlv_find(&rd, TAG_SEAL_CHIP_SIG, &sig));
	/* The chip's signature over the sealed blob: who sealed it. */
	ML_ENSURE(ml_rd_left(&serial) == CHIP_SERIAL_LEN, ML_ERR_FORMAT);
	ML_TRY(note_msg_seal(&m, ml_rd_ptr(&serial), ml_rd_ptr(&blob),
	    ml_rd_left(&blob)));
	ML_TRY(ml_p256_key_from_pub(chip_pub, ML_P256_PUB_LEN, &ck));
	ML_TRY(ml_p256_verify(ck, m.p, m.len, ml_rd_ptr(&sig), ml_rd_left(&sig)));
	ML_TRY(ml_seal_open(d->server_pub, server_ecdh, d->server,
	    ml_rd_ptr(&serial), ml_rd_left(&serial), ml_rd_ptr(&blob),
	    ml_rd_left(&blob), pt, sizeof(pt), &ptn));
	rd = ML_RD_INIT(pt, ptn);
	ML_TRY(ml_tlv_find(&rd, TAG_FEAT_INFO, &f));
	ML_ENSURE(ml_rd_left(&f) == strlen(feature) &&
	    memcmp(ml_rd_ptr(&f), feature, ml_rd_left(&f)) == 0, ML_ERR_AUTH);
	r = 0;
out:
	ml_p256_key_free(ck);
	ml_wipe(pt, sizeof(pt));
	return r;
}

static int
chip_pubkey(struct chipcmd *cc, uint8_t ret[ML_P256_PUB_LEN])
{
	size_t n;
	int r;

	if ((r = chipcmd_ok(cc, CLA_ISO, INS_GET_DATA, GD_CHIP_PUBKEY, 0, NULL,
	    0, 256, ret, ML_P256_PUB_LEN, &n)) != 0) {
		return r;
	}
	return n == ML_P256_PUB_LEN ? 0 : ML_ERR_FORMAT;
}

/* BN-8: the chip proves its key over a fresh verifier challenge. */
static int
prove(struct chipcmd *cc, const uint8_t pub[ML_P256_PUB_LEN],
    const char *serial, const char *feature)
{
	uint8_t chal[32], sig[128], msg[1200], fh[ML_SHA256_LEN];
	struct ml_wr m = ML_WR_FIXED(msg, sizeof(msg));
	struct ml_p256_key *k = NULL;
	size_t n;
	int r;

	ML_TRY(ml_rand(chal, sizeof(chal)));
	ML_TRY(chipcmd_ok(cc, CLA_ISO, INS_INTERNAL_AUTH, 0, 0, chal,
	    sizeof(chal), 256, sig, sizeof(sig), &n));
	ML_TRY(ml_sha256(feature, strlen(feature), fh));
	ML_TRY(note_msg_prove(&m, serial, chal, sizeof(chal), fh));
	ML_TRY(ml_p256_key_from_pub(pub, ML_P256_PUB_LEN, &k));
	ML_TRY(ml_p256_verify(k, m.p, m.len, sig, n));
	r = 0;
out:
	ml_p256_key_free(k);
	return r;
}

static int
run_notes(struct demo *d)
{
	char img[4096], serial[CHIP_SERIAL_LEN + 1], feature[128], what[128];
	uint8_t pub[ML_P256_PUB_LEN], replay[512], rec[2048];
	struct ml_p256_key *forger = NULL;
	uint8_t fpriv[ML_P256_PRIV_LEN], fpub[ML_P256_PUB_LEN];
	struct chip_info ci;
	struct chipcmd cc;
	size_t replay_len = 0, n;
	uint16_t sw;
	int i, r, issued = 0;
	struct timespec t0, t1;

	ML_TRY(ml_p256_keygen(fpriv, fpub));
	ML_TRY(ml_p256_key_from_priv(fpriv, &forger));
	printf("banknote chips (BN-1..BN-8), %d notes through 2 line positions\n",
	    d->notes);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < d->notes; i++) {
		snprintf(serial, sizeof(serial), "NOTE%012d", i);
		snprintf(img, sizeof(img), "%s/chips/%s.chip", d->dir, serial);
		ML_TRY(chip_manufacture(img, CHIP_KIND_NOTE, serial));
		ML_TRY(chiplink_inproc_feed(d->link, (size_t)(i % 2), img));
		ML_TRY(chipcmd_begin(&cc, d->link, (size_t)(i % 2)));
		ML_TRY(personalise_note(d, &cc, i));
		ML_TRY(chip_pubkey(&cc, pub));
		make_feature(i, feature, sizeof(feature));
		if (i == d->notes - 1) {
			/* A counterfeiter's writer key: reject-write (BN-4, BN-5). */
			ML_TRY(authorize(&cc, forger, serial, feature, &sw, NULL, NULL));
			check(d, sw == SW_SECURITY_NOT_SATISFIED,
			    "forged writer key answered reject-write (6982)");
			r = chipcmd_ok(&cc, CLA_PROP, INS_WRITE_FEATURE, 0, 0,
			    feature, strlen(feature), 0, NULL, 0, NULL);
			check(d, r == ML_ERR_STATE, "write after reject refused (6985)");
			r = chipcmd_ok(&cc, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0,
			    256, rec, sizeof(rec), &n);
			check(d, r == ML_ERR_NOT_FOUND, "the chip stayed blank (6A88)");
			/* Replay of another chip's authorisation (freshness). */
			r = chipcmd_send(&cc, CLA_PROP, INS_AUTHORIZE_WRITE, 0, 0,
			    replay, replay_len, 256, rec, sizeof(rec), &n, &sw);
			check(d, r == 0 && sw != SW_OK,
			    "authorisation recorded from another chip refused");
			continue;
		}
		ML_TRY(authorize(&cc, d->station, serial, feature, &sw, replay,
		    &replay_len));
		snprintf(what, sizeof(what), "%s confirm-write", serial);
		ML_ENSURE(sw == SW_OK, ML_ERR_REJECTED);
		ML_TRY(chipcmd_ok(&cc, CLA_PROP, INS_WRITE_FEATURE, 0, 0, feature,
		    strlen(feature), 0, NULL, 0, NULL));
		ML_TRY(take_sealed(d, &cc, pub, feature));
		ML_TRY(prove(&cc, pub, serial, feature));
		issued++;
		if (i == 0) {
			r = chipcmd_ok(&cc, CLA_PROP, INS_WRITE_FEATURE, 0, 0,
			    feature, strlen(feature), 0, NULL, 0, NULL);
			check(d, r == ML_ERR_STATE, "second write refused (write-once)");
			ML_TRY(chipcmd_info(&cc, &ci));
			check(d, (ci.state & INFO_F_WRITTEN) != 0,
			    "chip info reports the note written");
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("  %d notes personalised, authorised, written, sealed, opened with the\n"
	    "  server key and proven genuine in %.2f s\n", issued,
	    (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	check(d, issued == d->notes - 1, "every genuine note issued");
	r = 0;
out:
	ml_wipe(fpriv, sizeof(fpriv));
	ml_p256_key_free(forger);
	return r;
}

static int
run_reader(struct demo *d)
{
	char img[4096];
	uint8_t resp[256], digest[ML_SHA256_LEN], attrs[4] = { 0, 0, 0, 0 };
	uint8_t cmd[128], peer_priv[32], peer_pub[65], chip_pub[65], s1[32];
	struct ml_wr w = ML_WR_FIXED(cmd, sizeof(cmd));
	struct ml_p256_key *k = NULL, *peer = NULL;
	struct chipcmd cc;
	struct chip_info ci;
	uint16_t priv_id, sw;
	size_t n;
	int r;

	printf("reader secure chip (ID-14)\n");
	snprintf(img, sizeof(img), "%s/chips/READER0001.chip", d->dir);
	ML_TRY(chip_manufacture(img, CHIP_KIND_READER, "READER0001"));
	ML_TRY(chiplink_inproc_feed(d->link, 0, img));
	ML_TRY(chipcmd_begin(&cc, d->link, 0));
	ML_TRY(perso_pins(&cc, "reader 0001", 1));
	ML_TRY(chipcmd_ok(&cc, CLA_ISO, INS_VERIFY, 0, PIN_USER, USER_PIN,
	    strlen(USER_PIN), 0, NULL, 0, NULL));
	ML_TRY(chipcmd_ok(&cc, CLA_PROP, INS_GEN_KEYPAIR, 0, 0, attrs,
	    sizeof(attrs), 256, resp, sizeof(resp), &n));
	ML_ENSURE(n == 4 + ML_P256_PUB_LEN, ML_ERR_FORMAT);
	priv_id = (uint16_t)((resp[0] << 8) | resp[1]);
	memcpy(chip_pub, resp + 4, sizeof(chip_pub));
	ML_TRY(ml_p256_key_from_pub(chip_pub, ML_P256_PUB_LEN, &k));
	check(d, 1, "P-256 key pair generated inside the chip");
	ML_TRY(ml_sha256("R1 from the server", 18, digest));
	ML_TRY(ml_wr_u16be(&w, priv_id));
	ML_TRY(ml_wr_bytes(&w, digest, sizeof(digest)));
	ML_TRY(chipcmd_ok(&cc, CLA_PROP, INS_SIGN, 0x9E, 0x9A, w.p, w.len, 256,
	    resp, sizeof(resp), &n));
	check(d, ml_p256_verify_digest(k, digest, sizeof(digest), resp, n) == 0,
	    "signature by the chip verifies with its public key");
	ML_TRY(ml_p256_keygen(peer_priv, peer_pub));
	ML_TRY(ml_p256_key_from_priv(peer_priv, &peer));
	ML_TRY(chipcmd_ok(&cc, CLA_PROP, INS_ECDH, (uint8_t)(priv_id >> 8),
	    (uint8_t)priv_id, peer_pub, sizeof(peer_pub), 256, resp,
	    sizeof(resp), &n));
	ML_TRY(ml_p256_ecdh(peer, chip_pub, sizeof(chip_pub), s1));
	check(d, n == sizeof(s1) && ml_ct_eq(s1, resp, sizeof(s1)),
	    "ECDH in the chip agrees with the peer");
	ML_TRY(chipcmd_ok(&cc, CLA_PROP, INS_LOGOUT, 0, 0, NULL, 0, 0, NULL, 0,
	    NULL));
	ML_TRY(chipcmd_send(&cc, CLA_ISO, INS_VERIFY, 0, PIN_USER, "000000", 6,
	    0, resp, sizeof(resp), &n, &sw));
	check(d, sw == SW_WARN_PIN_TRIES(2), "wrong PIN: 63C2");
	ML_TRY(chipcmd_send(&cc, CLA_ISO, INS_VERIFY, 0, PIN_USER, "000000", 6,
	    0, resp, sizeof(resp), &n, &sw));
	ML_TRY(chipcmd_send(&cc, CLA_ISO, INS_VERIFY, 0, PIN_USER, "000000", 6,
	    0, resp, sizeof(resp), &n, &sw));
	check(d, sw == SW_AUTH_BLOCKED, "third wrong PIN blocks it: 6983");
	ML_TRY(chipcmd_send(&cc, CLA_ISO, INS_VERIFY, 0, PIN_USER, USER_PIN,
	    strlen(USER_PIN), 0, resp, sizeof(resp), &n, &sw));
	check(d, sw == SW_AUTH_BLOCKED, "the right PIN no longer helps");
	ML_TRY(chipcmd_info(&cc, &ci));
	check(d, ci.user_tries == 0, "chip info reports the user PIN blocked");
	r = 0;
out:
	ml_wipe(peer_priv, sizeof(peer_priv));
	ml_wipe(s1, sizeof(s1));
	ml_p256_key_free(k);
	ml_p256_key_free(peer);
	return r;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mintline-demo [--dir DIR] [--notes N]\n"
	    "\n"
	    "Manufacture an in-process line of chips under DIR (default\n"
	    "./mintline-demo), personalise them and exercise the banknote and\n"
	    "reader secure chip profiles end to end.  Exit 0 when every check\n"
	    "passed, 1 otherwise.\n"
	    "\n"
	    "  -d, --dir DIR     work directory (created; must not hold chips)\n"
	    "  -n, --notes N     banknote chips to issue (default 20)\n"
	    "  -h, --help        this text\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "notes", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct demo d = { .dir = "mintline-demo", .notes = 20 };
	char path[4096], spec[4200];
	uint8_t priv[ML_P256_PRIV_LEN];
	FILE *f;
	int c, r;

	ml_log_set_ident("mintline-demo");
	while ((c = getopt_long(argc, argv, "d:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			d.dir = optarg;
			break;
		case 'n':
			if (ml_parse_int(optarg, "--notes", 2, 100000,
			    &d.notes) != 0) {
				fprintf(stderr, "mintline-demo: %s\n",
				    ml_errmsg(ML_ERR_ARG));
				return 1;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	snprintf(path, sizeof(path), "%s/chips", d.dir);
	if ((mkdir(d.dir, 0700) != 0 && errno != EEXIST) ||
	    (mkdir(path, 0700) != 0 && errno != EEXIST)) {
		fprintf(stderr, "mintline-demo: cannot create %s\n", path);
		return 1;
	}
	snprintf(path, sizeof(path), "%s/line", d.dir);
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "mintline-demo: cannot create %s\n", path);
		return 1;
	}
	snprintf(spec, sizeof(spec), "%s/line/positions", d.dir);
	if ((f = fopen(spec, "w")) != NULL) {
		fputs("2\n", f);
		fclose(f);
	}
	snprintf(spec, sizeof(spec), "inproc:%s", path);
	if ((r = chiplink_open(spec, &d.link)) != 0) {
		fprintf(stderr, "mintline-demo: %s: %s\n", spec, ml_errmsg(r));
		return 1;
	}
	if ((r = ml_p256_keygen(priv, d.station_pub)) != 0 ||
	    (r = ml_p256_key_from_priv(priv, &d.station)) != 0 ||
	    (r = ml_p256_keygen(priv, d.server_pub)) != 0 ||
	    (r = ml_p256_key_from_priv(priv, &d.server)) != 0) {
		fprintf(stderr, "mintline-demo: keys: %s\n", ml_errmsg(r));
		return 1;
	}
	ml_wipe(priv, sizeof(priv));
	printf("mintline demo: chips under %s/chips, line %s\n", d.dir, path);
	if ((r = run_notes(&d)) != 0) {
		fprintf(stderr, "mintline-demo: notes: %s\n", ml_errmsg(r));
		d.failures++;
	}
	if ((r = run_reader(&d)) != 0) {
		fprintf(stderr, "mintline-demo: reader: %s\n", ml_errmsg(r));
		d.failures++;
	}
	chiplink_close(d.link);
	ml_p256_key_free(d.station);
	ml_p256_key_free(d.server);
	printf("%s: %d failure(s)\n", d.failures ? "FAILED" : "all checks passed",
	    d.failures);
	return d.failures ? 1 : 0;
}
