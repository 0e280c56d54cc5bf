/*
 * note_perso_check IMAGE ISSUER.pem SERVER.pem OTHER.pem
 *
 * The end-to-end proof for test-pkcs11-note-perso.sh: a note chip that was
 * personalised with nothing but pkcs11-tool against the mintline module is
 * driven here straight through its card OS (chip_transmit, the same path
 * the in-process line uses), with software keys from PEM files:
 *
 *	- GET DATA 01 shows INITIALIZED and LOCKED;
 *	- an AUTHORIZE WRITE signed by OTHER (not installed) is rejected;
 *	- one signed by ISSUER (installed with pkcs11-tool --write-object
 *	  --label issuer) is confirmed, WRITE FEATURE succeeds;
 *	- GET SEALED opens with SERVER's private key (installed with
 *	  --label server) and holds the feature written;
 *	- the seal is signed by the chip key (made by --keypairgen --label
 *	  chip): GET DATA 02 answers it and it verifies.
 *
 * Exit 0 on success, 1 on the first failure (reported on stderr).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "ml_err.h"
#include "ml_ossl.h"
#include "ml_rd.h"
#include "ml_tlv.h"
#include "ml_wr.h"
#include "apdu.h"
#include "chip.h"
#include "chip_proto.h"
#include "note_msg.h"

#define FEATURE	"SERIAL=PK0000001;ID=7F3A"

static uint8_t R[CHIP_MAX_RESP];
static size_t RN;

#define CHECK(c, ...) do {						\
	if (!(c)) {							\
		fprintf(stderr, "note_perso_check: FAIL: " __VA_ARGS__); \
		fprintf(stderr, "\n");					\
		exit(1);						\
	}								\
} while (0)

/* One command, following 61xx with GET RESPONSE; answer in R/RN. */
static uint16_t
xmit(struct chip *c, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
    const void *data, size_t len, uint32_t ne)
{
	static uint8_t cmd[CHIP_MAX_CMD], raw[CHIP_MAX_RESP];
	struct ml_wr w = ML_WR_FIXED(cmd, sizeof(cmd));
	size_t rn = 0;
	uint16_t sw;

	RN = 0;
	CHECK(apdu_build(&w, cla, ins, p1, p2, data, len, ne) == 0, "apdu");
	for (;;) {
		CHECK(chip_transmit(c, w.p, w.len, raw, sizeof(raw), &rn) == 0 &&
		    rn >= 2, "chip_transmit");
		sw = (uint16_t)(raw[rn - 2] << 8 | raw[rn - 1]);
		CHECK(RN + rn - 2 <= sizeof(R), "response too long");
		memcpy(R + RN, raw, rn - 2);
		RN += rn - 2;
		if ((sw & 0xFF00) != 0x6100) {
			return sw;
		}
		w = ML_WR_FIXED(cmd, sizeof(cmd));
		CHECK(apdu_build(&w, CLA_ISO, INS_GET_RESPONSE, 0, 0, NULL, 0,
		    (sw & 0xFF) ? (sw & 0xFF) : 256) == 0, "apdu");
	}
}

static struct ml_p256_key *
load_pem(const char *path, uint8_t ret_pub[ML_P256_PUB_LEN])
{
	uint8_t priv[ML_P256_PRIV_LEN];
	struct ml_p256_key *k = NULL;
	EVP_PKEY *pk = NULL;
	BIGNUM *bn = NULL;
	FILE *f;

	CHECK((f = fopen(path, "re")) != NULL, "open %s", path);
	pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	CHECK(pk != NULL, "PEM %s", path);
	CHECK(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &bn) == 1 &&
	    BN_bn2binpad(bn, priv, sizeof(priv)) == sizeof(priv),
	    "private scalar of %s", path);
	BN_clear_free(bn);
	EVP_PKEY_free(pk);
	CHECK(ml_p256_key_from_priv(priv, &k) == 0 &&
	    ml_p256_key_pub(k, ret_pub) == 0, "key %s", path);
	return k;
}

static int
server_ecdh(void *ctx, const uint8_t eph_pub[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN])
{
	return ml_p256_ecdh(ctx, eph_pub, ML_P256_PUB_LEN, ret_secret);
}

/* GET CHALLENGE, then AUTHORIZE WRITE signed by k: the status word. */
static uint16_t
authorize(struct chip *c, const char *serial, struct ml_p256_key *k)
{
	uint8_t chal[NOTE_CHALLENGE_LEN], sig[ML_P256_SIG_LEN], cmd[1200];
	struct ml_wr msg = ml_wr_dyn(4096), w = ML_WR_FIXED(cmd, sizeof(cmd));
	uint16_t sw;

	CHECK(xmit(c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0,
	    NOTE_CHALLENGE_LEN) == 0x9000 && RN == NOTE_CHALLENGE_LEN,
	    "GET CHALLENGE");
	memcpy(chal, R, sizeof(chal));
	CHECK(note_msg_auth(&msg, chal, serial, (const uint8_t *)FEATURE,
	    strlen(FEATURE)) == 0, "note_msg_auth");
	CHECK(ml_p256_sign(k, msg.p, msg.len, sig) == 0, "sign");
	ml_wr_free(&msg);
	CHECK(ml_wr_lv16(&w, FEATURE, strlen(FEATURE)) == 0 &&
	    ml_wr_bytes(&w, sig, sizeof(sig)) == 0, "auth cmd");
	sw = xmit(c, CLA_PROP, INS_AUTHORIZE_WRITE, 0, 0, w.p, w.len, 256);
	return sw;
}

int
main(int argc, char **argv)
{
	static const uint8_t aid[] = { 0xA0, 0x00, 0x00, 0x08, 0x88, 0x4D,
	    0x4C, 0x01, CHIP_KIND_NOTE };
	uint8_t issuer_pub[ML_P256_PUB_LEN], server_pub[ML_P256_PUB_LEN];
	uint8_t other_pub[ML_P256_PUB_LEN], chip_pub[ML_P256_PUB_LEN];
	uint8_t pt[4096];
	char serial[CHIP_SERIAL_LEN + 1];
	struct ml_p256_key *issuer, *server, *other, *ck = NULL;
	struct ml_rd rd, v, blob, csig, info;
	struct ml_wr m;
	struct chip *c = NULL;
	size_t ptn = 0;
	uint16_t state;

	if (argc != 5) {
		fprintf(stderr, "usage: note_perso_check IMAGE ISSUER.pem "
		    "SERVER.pem OTHER.pem\n");
		return 2;
	}
	issuer = load_pem(argv[2], issuer_pub);
	server = load_pem(argv[3], server_pub);
	other = load_pem(argv[4], other_pub);
	CHECK(chip_open(argv[1], &c) == 0, "chip_open %s", argv[1]);
	CHECK(xmit(c, CLA_ISO, INS_SELECT, 4, 0, aid, sizeof(aid), 256) ==
	    0x9000, "SELECT note");

	/* Chip info: initialised and locked, by pkcs11-tool alone. */
	CHECK(xmit(c, CLA_ISO, INS_GET_DATA, GD_CHIP_INFO, 0, NULL, 0, 256) ==
	    0x9000, "GET DATA 01");
	rd = ML_RD_INIT(R, RN);
	CHECK(ml_tlv_find(&rd, TAG_INFO_STATE, &v) == 0 &&
	    ml_rd_left(&v) == 2, "state tag");
	state = (uint16_t)(ml_rd_ptr(&v)[0] << 8 | ml_rd_ptr(&v)[1]);
	CHECK(state & INFO_F_INITIALIZED, "not initialised (0x%04x)", state);
	CHECK(state & INFO_F_LOCKED, "not locked (0x%04x)", state);
	CHECK(ml_tlv_find(&rd, TAG_INFO_SERIAL, &v) == 0 &&
	    ml_rd_left(&v) == CHIP_SERIAL_LEN, "serial tag");
	memcpy(serial, ml_rd_ptr(&v), CHIP_SERIAL_LEN);
	serial[CHIP_SERIAL_LEN] = '\0';
	printf("chip %s: state 0x%04x (initialised, locked)\n", serial, state);

	/* The chip key made by C_GenerateKeyPair label "chip". */
	CHECK(xmit(c, CLA_ISO, INS_GET_DATA, GD_CHIP_PUBKEY, 0, NULL, 0, 256)
	    == 0x9000 && RN == ML_P256_PUB_LEN, "GET DATA 02 (chip key)");
	memcpy(chip_pub, R, sizeof(chip_pub));

	/* BN-4: a key that was not installed gets reject-write. */
	CHECK(authorize(c, serial, other) != 0x9000,
	    "AUTHORIZE by a key never installed was accepted");
	printf("ok: AUTHORIZE by another key rejected\n");

	/* The installed issuer key: confirm, write. */
	CHECK(authorize(c, serial, issuer) == 0x9000,
	    "AUTHORIZE by the installed issuer key refused");
	CHECK(xmit(c, CLA_PROP, INS_WRITE_FEATURE, 0, 0, FEATURE,
	    strlen(FEATURE), 0) == 0x9000, "WRITE FEATURE");
	printf("ok: AUTHORIZE by the issuer key, WRITE FEATURE\n");

	/* BN-6: the sealed upload opens with the server key. */
	CHECK(xmit(c, CLA_PROP, INS_GET_SEALED, 0, 0, NULL, 0, 65536) ==
	    0x9000, "GET SEALED");
	rd = ML_RD_INIT(R, RN);
	CHECK(ml_tlv_find(&rd, TAG_SEAL_BLOB, &blob) == 0, "seal blob");
	CHECK(ml_tlv_find(&rd, TAG_SEAL_CHIP_SIG, &csig) == 0 &&
	    ml_rd_left(&csig) == ML_P256_SIG_LEN, "seal chip signature");
	m = ml_wr_dyn(8192);
	CHECK(note_msg_seal(&m, serial, ml_rd_ptr(&blob), ml_rd_left(&blob))
	    == 0, "note_msg_seal");
	CHECK(ml_p256_key_from_pub(chip_pub, sizeof(chip_pub), &ck) == 0 &&
	    ml_p256_verify(ck, m.p, m.len, ml_rd_ptr(&csig), ML_P256_SIG_LEN)
	    == 0, "chip signature over the seal");
	ml_wr_free(&m);
	CHECK(ml_seal_open(server_pub, server_ecdh, server, serial,
	    CHIP_SERIAL_LEN, ml_rd_ptr(&blob), ml_rd_left(&blob), pt,
	    sizeof(pt), &ptn) == 0, "ml_seal_open with the server key");
	rd = ML_RD_INIT(pt, ptn);
	CHECK(ml_tlv_find(&rd, TAG_FEAT_INFO, &info) == 0 &&
	    ml_rd_left(&info) == strlen(FEATURE) &&
	    memcmp(ml_rd_ptr(&info), FEATURE, strlen(FEATURE)) == 0,
	    "sealed feature record");
	printf("ok: sealed upload signed by the chip key, opened with the "
	    "server key\n");

	chip_close(c);
	ml_p256_key_free(ck);
	ml_p256_key_free(issuer);
	ml_p256_key_free(server);
	ml_p256_key_free(other);
	return 0;
}
