/*
 * The record layer (beyond the document: per-direction keys and sequence
 * numbers).  A record is one frame whose body is
 *
 *	u8 type | u64be seq | ciphertext | tag[16]
 *
 * sealed with AES-256-GCM under the sender's direction key, IV = 0^4 ||
 * seq (u64be), AAD = type || seq.  The receiver accepts only seq ==
 * the next expected number: a replayed, dropped or reordered record, or a
 * bad tag, ends the session (rl->dead).
 */
#include <string.h>

#include "hs_int.h"
#include "ml_wipe.h"

int
hs_rl_init(struct hs_rl *rl, const struct hs *hs)
{
	memset(rl, 0, sizeof(*rl));
	return hs_keys(hs, rl->tx_key, rl->rx_key);
}

void
hs_rl_wipe(struct hs_rl *rl)
{
	ml_wipe(rl, sizeof(*rl));
	rl->dead = true;
}

static void
rec_iv(uint64_t seq, uint8_t iv[ML_GCM_IV_LEN])
{
	int i;

	memset(iv, 0, ML_GCM_IV_LEN);
	for (i = 0; i < 8; i++) {
		iv[4 + i] = (uint8_t)(seq >> (56 - 8 * i));
	}
}

int
hs_rl_seal(struct hs_rl *rl, uint8_t type, const void *pt, size_t len,
    struct ml_wr *out)
{
	uint8_t iv[ML_GCM_IV_LEN], *p;
	size_t save = out->len, body = len + HS_REC_OVERHEAD;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(!rl->dead, ML_ERR_STATE);
	ML_ENSURE(len <= HS_MAX_RECORD, ML_ERR_TOO_LARGE);
	ML_ENSURE(rl->tx_seq != UINT64_MAX, ML_ERR_STATE);
	ML_TRY(ml_wr_u32be(out, (uint32_t)body));
	ML_TRY(ml_wr_reserve(out, body, &p));
	p[0] = type;
	for (int i = 0; i < 8; i++) {
		p[1 + i] = (uint8_t)(rl->tx_seq >> (56 - 8 * i));
	}
	rec_iv(rl->tx_seq, iv);
	ML_TRY(ml_gcm_seal(rl->tx_key, iv, p, 9, pt, len, p + 9,
	    p + 9 + len));
	rl->tx_seq++;
	r = 0;
out:
	if (r != 0) {
		out->len = save;
	}
	return r;
}

int
hs_rl_open(struct hs_rl *rl, const uint8_t *body, size_t len,
    uint8_t *ret_type, uint8_t *pt, size_t cap, size_t *ret_len)
{
	struct ml_rd rd = ML_RD_INIT(body, len);
	const uint8_t *ct, *tag;
	uint8_t iv[ML_GCM_IV_LEN], type;
	uint64_t seq;
	size_t n;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(!rl->dead, ML_ERR_STATE);
	ML_TRY(ml_rd_u8(&rd, &type));
	ML_TRY(ml_rd_u64be(&rd, &seq));
	ML_ENSURE(ml_rd_left(&rd) >= ML_GCM_TAG_LEN, ML_ERR_SHORT);
	n = ml_rd_left(&rd) - ML_GCM_TAG_LEN;
	ML_ENSURE(n <= HS_MAX_RECORD, ML_ERR_TOO_LARGE);
	ML_ENSURE(n <= cap, ML_ERR_TOO_LARGE);
	ML_TRY(ml_rd_bytes(&rd, n, &ct));
	ML_TRY(ml_rd_bytes(&rd, ML_GCM_TAG_LEN, &tag));
	ML_TRY(ml_rd_end(&rd));
	/* replayed, dropped or reordered: not the next number */
	ML_ENSURE(seq == rl->rx_seq, ML_ERR_AUTH);
	rec_iv(seq, iv);
	if ((r = ml_gcm_open(rl->rx_key, iv, body, 9, ct, n, tag, pt)) != 0) {
		r = ML_ERR_AUTH;
		goto out;
	}
	rl->rx_seq++;
	*ret_type = type;
	*ret_len = n;
	r = 0;
out:
	if (r != 0) {
		rl->dead = true;
	}
	return r;
}
