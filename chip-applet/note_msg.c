#include <string.h>

#include "chip.h"
#include "note_msg.h"

static int
domain_serial(struct ml_wr *w, const char *domain, const void *serial)
{
	int r;

	if ((r = ml_wr_bytes(w, domain, strlen(domain))) != 0) {
		return r;
	}
	return ml_wr_bytes(w, serial, CHIP_SERIAL_LEN);
}

int
note_msg_auth(struct ml_wr *w, const uint8_t challenge[static NOTE_CHALLENGE_LEN],
    const void *serial, const uint8_t *feature, size_t feature_len)
{
	size_t save = w->len;
	int r;

	if ((r = ml_wr_bytes(w, NOTE_AUTH_DOMAIN, strlen(NOTE_AUTH_DOMAIN))) != 0 ||
	    (r = ml_wr_bytes(w, challenge, NOTE_CHALLENGE_LEN)) != 0 ||
	    (r = ml_wr_bytes(w, serial, CHIP_SERIAL_LEN)) != 0 ||
	    (r = ml_wr_bytes(w, feature, feature_len)) != 0) {
		ml_wr_rewind(w, save);
	}
	return r;
}

int
note_msg_issuer(struct ml_wr *w,
    const uint8_t challenge[static NOTE_CHALLENGE_LEN], const void *serial,
    uint8_t op, const uint8_t point[static ML_P256_PUB_LEN])
{
	size_t save = w->len;
	int r;

	if ((r = ml_wr_bytes(w, NOTE_ISSUER_DOMAIN,
	    strlen(NOTE_ISSUER_DOMAIN))) != 0 ||
	    (r = ml_wr_bytes(w, challenge, NOTE_CHALLENGE_LEN)) != 0 ||
	    (r = ml_wr_bytes(w, serial, CHIP_SERIAL_LEN)) != 0 ||
	    (r = ml_wr_u8(w, op)) != 0 ||
	    (r = ml_wr_bytes(w, point, ML_P256_PUB_LEN)) != 0) {
		ml_wr_rewind(w, save);
	}
	return r;
}

int
note_msg_seal(struct ml_wr *w, const void *serial, const uint8_t *blob,
    size_t blob_len)
{
	size_t save = w->len;
	int r;

	if ((r = domain_serial(w, NOTE_SEAL_DOMAIN, serial)) != 0 ||
	    (r = ml_wr_bytes(w, blob, blob_len)) != 0) {
		ml_wr_rewind(w, save);
	}
	return r;
}

int
note_msg_prove(struct ml_wr *w, const void *serial, const uint8_t *challenge,
    size_t challenge_len, const uint8_t feature_md[static ML_SHA256_LEN])
{
	size_t save = w->len;
	int r;

	if ((r = domain_serial(w, NOTE_PROVE_DOMAIN, serial)) != 0 ||
	    (r = ml_wr_bytes(w, challenge, challenge_len)) != 0 ||
	    (r = ml_wr_bytes(w, feature_md, ML_SHA256_LEN)) != 0) {
		ml_wr_rewind(w, save);
	}
	return r;
}
