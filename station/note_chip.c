/*
 * Banknote chip operations of the station (see note_chip.h).
 */
#include <string.h>

#include "ml_rd.h"
#include "ml_tlv.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "note_chip.h"
#include "note_msg.h"
#include "sw.h"

int
note_chip_pub(struct chipcmd *cc, uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	uint8_t pub[ML_P256_PUB_LEN + 8];
	size_t n;
	int r;

	ML_TRY(chipcmd_ok(cc, CLA_ISO, INS_GET_DATA, GD_CHIP_PUBKEY, 0, NULL, 0,
	    256, pub, sizeof(pub), &n));
	ML_ENSURE(n == ML_P256_PUB_LEN, ML_ERR_FORMAT);
	memcpy(ret_pub, pub, ML_P256_PUB_LEN);
	r = 0;
out:
	return r;
}

int
note_chip_perso(struct chipcmd *cc, const char *so_pin, const char *label,
    const uint8_t (*issuers)[ML_P256_PUB_LEN], size_t nissuers,
    const uint8_t server_pub[static ML_P256_PUB_LEN],
    uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	uint8_t buf[96], resp[256], attrs[4] = { 0, 0, 0, 0 };
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));
	size_t i, n;
	int r;

	ML_TRY(ml_wr_lv8(&w, so_pin, strlen(so_pin)));
	ML_TRY(ml_wr_lv8(&w, label, strlen(label)));
	ML_TRY(chipcmd_ok(cc, CLA_PROP, INS_INIT_TOKEN, 0, 0, w.p, w.len, 0,
	    NULL, 0, NULL));
	ML_TRY(chipcmd_ok(cc, CLA_ISO, INS_VERIFY, 0, PIN_SO, so_pin,
	    strlen(so_pin), 0, NULL, 0, NULL));
	/* The chip authentication key is generated inside the chip. */
	ML_TRY(chipcmd_ok(cc, CLA_PROP, INS_GEN_KEYPAIR, GENKEY_CHIPKEY, 0,
	    attrs, sizeof(attrs), 256, resp, sizeof(resp), &n));
	ML_ENSURE(n == 4 + ML_P256_PUB_LEN, ML_ERR_FORMAT);
	for (i = 0; i < nissuers; i++) {
		ML_TRY(chipcmd_ok(cc, CLA_PROP, INS_INSTALL_ISSUER, 0, 0,
		    issuers[i], ML_P256_PUB_LEN, 0, NULL, 0, NULL));
	}
	ML_TRY(chipcmd_ok(cc, CLA_PROP, INS_INSTALL_SERVER, 0, 0, server_pub,
	    ML_P256_PUB_LEN, 0, NULL, 0, NULL));
	ML_TRY(chipcmd_ok(cc, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0, NULL, 0,
	    NULL));
	memcpy(ret_pub, resp + 4, ML_P256_PUB_LEN);
	r = 0;
out:
	ml_wipe(buf, sizeof(buf));
	return r;
}

int
note_auth_msg(const uint8_t chal[static NOTE_CHALLENGE_LEN],
    const char *chip_serial, const uint8_t *feature, size_t n, uint8_t *ret,
    size_t cap, size_t *ret_len)
{
	struct ml_wr m = ML_WR_FIXED(ret, cap);
	int r;

	/* The one definition of the signed bytes: chip-applet/note_msg.h. */
	ML_TRY(note_msg_auth(&m, chal, chip_serial, feature, n));
	*ret_len = m.len;
	r = 0;
out:
	return r;
}

int
note_chip_authorize(struct chipcmd *cc, const struct key *issuer,
    const char *chip_serial, const uint8_t *feature, size_t n,
    uint16_t *ret_sw)
{
	uint8_t chal[NOTE_CHALLENGE_LEN], sig[ML_P256_SIG_LEN], dg[ML_SHA256_LEN];
	uint8_t msg[64 + CHIP_SERIAL_LEN + NOTE_CHALLENGE_LEN + NOTE_MAX_FEATURE];
	uint8_t cmd[NOTE_MAX_FEATURE + 80], conf[8];
	struct ml_wr w = ML_WR_FIXED(cmd, sizeof(cmd));
	size_t len;
	int r;

	ML_ENSURE(n <= NOTE_MAX_FEATURE, ML_ERR_TOO_LARGE);
	ML_TRY(chipcmd_ok(cc, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0,
	    NOTE_CHALLENGE_LEN, chal, sizeof(chal), &len));
	ML_ENSURE(len == NOTE_CHALLENGE_LEN, ML_ERR_FORMAT);
	ML_TRY(note_auth_msg(chal, chip_serial, feature, n, msg, sizeof(msg),
	    &len));
	ML_TRY(ml_sha256(msg, len, dg));
	ML_TRY(key_sign(issuer, dg, sig));
	ML_TRY(ml_wr_lv16(&w, feature, n));
	ML_TRY(ml_wr_bytes(&w, sig, sizeof(sig)));
	ML_TRY(chipcmd_send(cc, CLA_PROP, INS_AUTHORIZE_WRITE, 0, 0, w.p, w.len,
	    256, conf, sizeof(conf), &len, ret_sw));
	r = 0;
out:
	return r;
}

int
note_chip_issuers(struct chipcmd *cc, uint8_t (*ret)[ML_P256_PUB_LEN],
    size_t *ret_n)
{
	uint8_t buf[1 + NOTE_MAX_ISSUERS * ML_P256_PUB_LEN];
	size_t n, i;
	int r;

	ML_TRY(chipcmd_ok(cc, CLA_ISO, INS_GET_DATA, GD_NOTE_ISSUERS, 0, NULL,
	    0, 256, buf, sizeof(buf), &n));
	ML_ENSURE(n >= 1 && buf[0] <= NOTE_MAX_ISSUERS &&
	    n == 1 + (size_t)buf[0] * ML_P256_PUB_LEN, ML_ERR_FORMAT);
	for (i = 0; i < buf[0]; i++) {
		memcpy(ret[i], buf + 1 + i * ML_P256_PUB_LEN, ML_P256_PUB_LEN);
	}
	*ret_n = buf[0];
	r = 0;
out:
	return r;
}

int
note_chip_change_issuer(struct chipcmd *cc, const struct key *by,
    const char *so_pin, const char *chip_serial, uint8_t op,
    const uint8_t pub[static ML_P256_PUB_LEN])
{
	uint8_t chal[NOTE_CHALLENGE_LEN], sig[ML_P256_SIG_LEN], dg[ML_SHA256_LEN];
	uint8_t msg[64 + NOTE_CHALLENGE_LEN + CHIP_SERIAL_LEN + 1 +
	    ML_P256_PUB_LEN], cmd[ML_P256_PUB_LEN + ML_P256_SIG_LEN];
	struct ml_wr m = ML_WR_FIXED(msg, sizeof(msg));
	struct ml_wr w = ML_WR_FIXED(cmd, sizeof(cmd));
	size_t len;
	int r;

	ML_TRY(ml_wr_bytes(&w, pub, ML_P256_PUB_LEN));
	if (by == NULL) {
		ML_TRY(chipcmd_ok(cc, CLA_ISO, INS_VERIFY, 0, PIN_SO, so_pin,
		    strlen(so_pin), 0, NULL, 0, NULL));
	} else {
		ML_TRY(chipcmd_ok(cc, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0,
		    NOTE_CHALLENGE_LEN, chal, sizeof(chal), &len));
		ML_ENSURE(len == NOTE_CHALLENGE_LEN, ML_ERR_FORMAT);
		ML_TRY(note_msg_issuer(&m, chal, chip_serial, op, pub));
		ML_TRY(ml_sha256(m.p, m.len, dg));
		ML_TRY(key_sign(by, dg, sig));
		ML_TRY(ml_wr_bytes(&w, sig, sizeof(sig)));
	}
	ML_TRY(chipcmd_ok(cc, CLA_PROP, INS_CHANGE_ISSUER, op, 0, w.p, w.len,
	    0, NULL, 0, NULL));
	r = 0;
out:
	return r;
}

int
note_chip_write(struct chipcmd *cc, const uint8_t *feature, size_t n)
{
	return chipcmd_ok(cc, CLA_PROP, INS_WRITE_FEATURE, 0, 0, feature, n, 0,
	    NULL, 0, NULL);
}

int
note_chip_sealed(struct chipcmd *cc, uint8_t *out, size_t cap, size_t *ret_len)
{
	return chipcmd_ok(cc, CLA_PROP, INS_GET_SEALED, 0, 0, NULL, 0, 65536,
	    out, cap, ret_len);
}

int
note_chip_record(struct chipcmd *cc, struct note_record *ret)
{
	uint8_t buf[NOTE_MAX_FEATURE + 256];
	struct ml_rd rd, v;
	struct note_record rec;
	size_t n;
	int r;

	memset(&rec, 0, sizeof(rec));
	ML_TRY(chipcmd_ok(cc, CLA_PROP, INS_READ_FEATURE, 0, 0, NULL, 0, 65536,
	    buf, sizeof(buf), &n));
	rd = ML_RD_INIT(buf, n);
	ML_TRY(ml_tlv_find(&rd, TAG_FEAT_SERIAL, &v));
	ML_ENSURE(ml_rd_left(&v) == CHIP_SERIAL_LEN, ML_ERR_FORMAT);
	memcpy(rec.chip_serial, ml_rd_ptr(&v), CHIP_SERIAL_LEN);
	ML_TRY(ml_tlv_find(&rd, TAG_FEAT_INFO, &v));
	ML_ENSURE(ml_rd_left(&v) <= sizeof(rec.feature), ML_ERR_TOO_LARGE);
	rec.feature_len = ml_rd_left(&v);
	memcpy(rec.feature, ml_rd_ptr(&v), rec.feature_len);
	ML_TRY(ml_tlv_find(&rd, TAG_FEAT_CHALLENGE, &v));
	ML_TRY(ml_rd_copy(&v, rec.challenge, sizeof(rec.challenge)));
	ML_TRY(ml_rd_end(&v));
	ML_TRY(ml_tlv_find(&rd, TAG_FEAT_AUTH_SIG, &v));
	ML_TRY(ml_rd_copy(&v, rec.station_sig, sizeof(rec.station_sig)));
	ML_TRY(ml_rd_end(&v));
	if (ml_tlv_find(&rd, TAG_FEAT_ISSUER, &v) == 0) {
		ML_TRY(ml_rd_u8(&v, &rec.issuer));
	}
	*ret = rec;
	r = 0;
out:
	return r;
}

int
note_chip_prove(struct chipcmd *cc, const uint8_t pub[static ML_P256_PUB_LEN],
    const char *chip_serial, const uint8_t *feature, size_t n)
{
	uint8_t chal[32], sig[128], msg[256], fh[ML_SHA256_LEN];
	struct ml_wr m = ML_WR_FIXED(msg, sizeof(msg));
	struct ml_p256_key *k = NULL;
	size_t len;
	uint16_t sw;
	int r;

	ML_TRY(ml_rand(chal, sizeof(chal)));
	ML_TRY(chipcmd_send(cc, CLA_ISO, INS_INTERNAL_AUTH, 0, 0, chal,
	    sizeof(chal), 256, sig, sizeof(sig), &len, &sw));
	ML_ENSURE(sw == SW_OK, ML_ERR_AUTH);
	ML_TRY(ml_sha256(feature, n, fh));
	ML_TRY(note_msg_prove(&m, chip_serial, chal, sizeof(chal), fh));
	ML_TRY(ml_p256_key_from_pub(pub, ML_P256_PUB_LEN, &k));
	r = ml_p256_verify(k, m.p, m.len, sig, len) == 0 ? 0 : ML_ERR_AUTH;
out:
	ml_p256_key_free(k);
	return r;
}

const char *
note_chip_shown(const char *serial, char buf[static CHIP_SERIAL_LEN + 1])
{
	size_t n;

	if (serial == NULL) {
		return NULL;
	}
	n = strnlen(serial, CHIP_SERIAL_LEN);
	while (n > 0 && serial[n - 1] == ' ') {
		n--;
	}
	memcpy(buf, serial, n);
	buf[n] = '\0';
	return buf;
}
