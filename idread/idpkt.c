/*
 * ID-card upload packets and reassembly (idpkt.h).  Every parser reads
 * through ml_rd and checks the limits before it allocates anything.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ml_tlv.h"
#include "ml_wipe.h"

#include "idpkt.h"

#define BIT_GET(m, i)	(((m)[(i) >> 3] >> ((i) & 7)) & 1)
#define BIT_SET(m, i)	((m)[(i) >> 3] |= (uint8_t)(1u << ((i) & 7)))

uint16_t
idr_npkts(uint32_t total, uint16_t pkt_size)
{
	uint32_t n;

	if (total == 0 || total > IDR_MAX_TOTAL || pkt_size < IDR_PKT_MIN ||
	    pkt_size > IDR_PKT_MAX) {
		return 0;
	}
	n = (total + pkt_size - 1) / pkt_size;
	return n > IDR_MAX_PKTS ? 0 : (uint16_t)n;
}

/* ---------------------------------------------------------------- BEGIN */

static int
begin_check(const struct idr_begin *b)
{
	if (b->version != IDR_VERSION) {
		return ML_ERR_FORMAT;
	}
	if (b->total > IDR_MAX_TOTAL || b->npkts > IDR_MAX_PKTS) {
		return ML_ERR_TOO_LARGE;
	}
	if (b->npkts == 0 || idr_npkts(b->total, b->pkt_size) != b->npkts) {
		return ML_ERR_FORMAT;
	}
	return 0;
}

int
idr_begin_encode(const struct idr_begin *b, struct ml_wr *w)
{
	size_t mark = w->len;
	int r;

	ML_TRY(begin_check(b));
	ML_TRY(ml_wr_u8(w, b->version));
	ML_TRY(ml_wr_u16be(w, b->npkts));
	ML_TRY(ml_wr_u16be(w, b->pkt_size));
	ML_TRY(ml_wr_u32be(w, b->total));
	ML_TRY(ml_wr_bytes(w, b->digest, sizeof(b->digest)));
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(w, mark);
	}
	return r;
}

int
idr_begin_decode(const uint8_t *p, size_t n, struct idr_begin *ret)
{
	struct ml_rd rd = ML_RD_INIT(p, n);
	struct idr_begin b;
	int r;

	ML_TRY(ml_rd_u8(&rd, &b.version));
	ML_TRY(ml_rd_u16be(&rd, &b.npkts));
	ML_TRY(ml_rd_u16be(&rd, &b.pkt_size));
	ML_TRY(ml_rd_u32be(&rd, &b.total));
	ML_TRY(ml_rd_copy(&rd, b.digest, sizeof(b.digest)));
	ML_TRY(ml_rd_end(&rd));
	ML_TRY(begin_check(&b));
	*ret = b;
	r = 0;
out:
	return r;
}

/* ---------------------------------------------------------------- READY */

int
idr_ready_encode(const struct idr_ready *rd, struct ml_wr *w)
{
	size_t mark = w->len;
	int r;

	ML_TRY(ml_wr_u8(w, rd->version));
	ML_TRY(ml_wr_bytes(w, rd->upload_id, IDR_ID_LEN));
	ML_TRY(ml_wr_bytes(w, rd->key, IDR_KEY_LEN));
	ML_TRY(ml_wr_u8(w, rd->max_rounds));
	ML_TRY(ml_wr_u32be(w, rd->deadline_ms));
	ML_TRY(ml_wr_u16be(w, rd->max_pkts));
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(w, mark);
	}
	return r;
}

int
idr_ready_decode(const uint8_t *p, size_t n, struct idr_ready *ret)
{
	struct ml_rd rd = ML_RD_INIT(p, n);
	struct idr_ready x;
	int r;

	ML_TRY(ml_rd_u8(&rd, &x.version));
	ML_TRY(ml_rd_copy(&rd, x.upload_id, IDR_ID_LEN));
	ML_TRY(ml_rd_copy(&rd, x.key, IDR_KEY_LEN));
	ML_TRY(ml_rd_u8(&rd, &x.max_rounds));
	ML_TRY(ml_rd_u32be(&rd, &x.deadline_ms));
	ML_TRY(ml_rd_u16be(&rd, &x.max_pkts));
	ML_TRY(ml_rd_end(&rd));
	ML_ENSURE(x.version == IDR_VERSION, ML_ERR_FORMAT);
	*ret = x;
	r = 0;
out:
	ml_wipe(&x, sizeof(x));
	return r;
}

/* ---------------------------------------------------------------- END, ABORT */

int
idr_end_encode(const uint8_t id[static IDR_ID_LEN], uint8_t round,
    struct ml_wr *w)
{
	size_t mark = w->len;
	int r;

	ML_TRY(ml_wr_bytes(w, id, IDR_ID_LEN));
	ML_TRY(ml_wr_u8(w, round));
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(w, mark);
	}
	return r;
}

int
idr_end_decode(const uint8_t *p, size_t n, uint8_t ret_id[static IDR_ID_LEN],
    uint8_t *ret_round)
{
	struct ml_rd rd = ML_RD_INIT(p, n);
	uint8_t id[IDR_ID_LEN], round;
	int r;

	ML_TRY(ml_rd_copy(&rd, id, sizeof(id)));
	ML_TRY(ml_rd_u8(&rd, &round));
	ML_TRY(ml_rd_end(&rd));
	memcpy(ret_id, id, sizeof(id));
	*ret_round = round;
	r = 0;
out:
	return r;
}

int
idr_abort_encode(const uint8_t id[static IDR_ID_LEN], int reason,
    struct ml_wr *w)
{
	size_t mark = w->len;
	int r;

	ML_TRY(ml_wr_bytes(w, id, IDR_ID_LEN));
	ML_TRY(ml_wr_u32be(w, (uint32_t)reason));
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(w, mark);
	}
	return r;
}

int
idr_abort_decode(const uint8_t *p, size_t n, uint8_t ret_id[static IDR_ID_LEN],
    int *ret_reason)
{
	struct ml_rd rd = ML_RD_INIT(p, n);
	uint8_t id[IDR_ID_LEN];
	uint32_t reason;
	int r;

	ML_TRY(ml_rd_copy(&rd, id, sizeof(id)));
	ML_TRY(ml_rd_u32be(&rd, &reason));
	ML_TRY(ml_rd_end(&rd));
	memcpy(ret_id, id, sizeof(id));
	*ret_reason = (int)(int32_t)reason;
	r = 0;
out:
	return r;
}

/* ---------------------------------------------------------------- RETX */

int
idr_retx_encode(const uint8_t id[static IDR_ID_LEN], uint8_t round,
    const struct idr_retx_ent *e, size_t n, struct ml_wr *w)
{
	size_t mark = w->len, i;
	int r;

	ML_ENSURE(n >= 1 && n <= IDR_MAX_PKTS, ML_ERR_ARG);
	ML_TRY(ml_wr_bytes(w, id, IDR_ID_LEN));
	ML_TRY(ml_wr_u8(w, round));
	ML_TRY(ml_wr_u16be(w, (uint16_t)n));
	for (i = 0; i < n; i++) {
		ML_TRY(ml_wr_u16be(w, e[i].index));
		ML_TRY(ml_wr_u8(w, e[i].why));
	}
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(w, mark);
	}
	return r;
}

int
idr_retx_decode(const uint8_t *p, size_t n, uint16_t npkts,
    uint8_t ret_id[static IDR_ID_LEN], uint8_t *ret_round,
    struct idr_retx_ent *ret_e, size_t cap, size_t *ret_n)
{
	struct ml_rd rd = ML_RD_INIT(p, n);
	uint8_t id[IDR_ID_LEN], round, why;
	uint16_t cnt, idx;
	long prev = -1;
	size_t i;
	int r;

	ML_TRY(ml_rd_copy(&rd, id, sizeof(id)));
	ML_TRY(ml_rd_u8(&rd, &round));
	ML_TRY(ml_rd_u16be(&rd, &cnt));
	ML_ENSURE(cnt >= 1 && cnt <= npkts, ML_ERR_FORMAT);
	ML_ENSURE(cnt <= cap, ML_ERR_TOO_LARGE);
	ML_ENSURE(ml_rd_left(&rd) == (size_t)cnt * 3,
	    ml_rd_left(&rd) < (size_t)cnt * 3 ? ML_ERR_SHORT : ML_ERR_TRAILING);
	/* validate everything before touching the outputs */
	for (i = 0; i < cnt; i++) {
		ML_TRY(ml_rd_u16be(&rd, &idx));
		ML_TRY(ml_rd_u8(&rd, &why));
		ML_ENSURE(idx < npkts && (long)idx > prev, ML_ERR_FORMAT);
		ML_ENSURE(why == IDR_WHY_MISSING || why == IDR_WHY_DAMAGED,
		    ML_ERR_FORMAT);
		prev = idx;
	}
	rd.off = IDR_ID_LEN + 3;
	for (i = 0; i < cnt; i++) {
		ML_TRY(ml_rd_u16be(&rd, &ret_e[i].index));
		ML_TRY(ml_rd_u8(&rd, &ret_e[i].why));
	}
	memcpy(ret_id, id, sizeof(id));
	*ret_round = round;
	*ret_n = cnt;
	r = 0;
out:
	return r;
}

/* ---------------------------------------------------------------- RESULT */

static void
result_aad(const uint8_t id[static IDR_ID_LEN],
    uint8_t ret_aad[static sizeof(IDR_RESULT_AAD) - 1 + IDR_ID_LEN])
{
	memcpy(ret_aad, IDR_RESULT_AAD, sizeof(IDR_RESULT_AAD) - 1);
	memcpy(ret_aad + sizeof(IDR_RESULT_AAD) - 1, id, IDR_ID_LEN);
}

int
idr_result_encode(const uint8_t id[static IDR_ID_LEN], int status,
    const uint8_t key[static IDR_KEY_LEN], const uint8_t *info,
    size_t info_len, struct ml_wr *w)
{
	uint8_t aad[sizeof(IDR_RESULT_AAD) - 1 + IDR_ID_LEN];
	uint8_t iv[ML_GCM_IV_LEN], *ct;
	size_t mark = w->len;
	int r;

	ML_ENSURE(status <= 0, ML_ERR_ARG);
	ML_TRY(ml_wr_bytes(w, id, IDR_ID_LEN));
	ML_TRY(ml_wr_u32be(w, (uint32_t)status));
	if (status == 0) {
		ML_ENSURE(info_len >= 1, ML_ERR_ARG);
		result_aad(id, aad);
		ML_TRY(ml_rand(iv, sizeof(iv)));
		ML_TRY(ml_wr_bytes(w, iv, sizeof(iv)));
		ML_TRY(ml_wr_reserve(w, info_len + ML_GCM_TAG_LEN, &ct));
		ML_TRY(ml_gcm_seal(key, iv, aad, sizeof(aad), info, info_len,
		    ct, ct + info_len));
	}
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(w, mark);
	}
	return r;
}

int
idr_result_decode(const uint8_t *p, size_t n,
    const uint8_t id[static IDR_ID_LEN], const uint8_t key[static IDR_KEY_LEN],
    int *ret_status, struct ml_wr *info)
{
	struct ml_rd rd = ML_RD_INIT(p, n);
	uint8_t aad[sizeof(IDR_RESULT_AAD) - 1 + IDR_ID_LEN];
	const uint8_t *rid, *iv, *ct, *tag;
	size_t mark = info->len, ct_len;
	uint8_t *pt;
	uint32_t st;
	int status;
	int r;

	ML_TRY(ml_rd_bytes(&rd, IDR_ID_LEN, &rid));
	ML_TRY(ml_rd_u32be(&rd, &st));
	status = (int)(int32_t)st;
	ML_ENSURE(ml_ct_eq(rid, id, IDR_ID_LEN), ML_ERR_AUTH);
	ML_ENSURE(status <= 0, ML_ERR_FORMAT);
	if (status != 0) {
		ML_TRY(ml_rd_end(&rd));
		*ret_status = status;
		r = 0;
		goto out;
	}
	ML_TRY(ml_rd_bytes(&rd, ML_GCM_IV_LEN, &iv));
	ML_ENSURE(ml_rd_left(&rd) > ML_GCM_TAG_LEN, ML_ERR_SHORT);
	ct_len = ml_rd_left(&rd) - ML_GCM_TAG_LEN;
	ML_TRY(ml_rd_bytes(&rd, ct_len, &ct));
	ML_TRY(ml_rd_bytes(&rd, ML_GCM_TAG_LEN, &tag));
	result_aad(id, aad);
	ML_TRY(ml_wr_reserve(info, ct_len, &pt));
	ML_TRY(ml_gcm_open(key, iv, aad, sizeof(aad), ct, ct_len, tag, pt));
	*ret_status = 0;
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(info, mark);
	}
	return r;
}

/* ---------------------------------------------------------------- upload */

int
idr_upload_encode(const uint8_t *config, size_t config_len,
    const uint8_t *data, size_t data_len, struct ml_wr *w)
{
	size_t mark = w->len;
	int r;

	ML_ENSURE(config_len >= 1 && data_len >= 1, ML_ERR_ARG);
	ML_TRY(ml_tlv_put(w, IDR_T_CONFIG, config, config_len));
	ML_TRY(ml_tlv_put(w, IDR_T_DATA, data, data_len));
	ML_ENSURE(w->len - mark <= IDR_MAX_TOTAL, ML_ERR_TOO_LARGE);
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(w, mark);
	}
	return r;
}

int
idr_upload_decode(const uint8_t *p, size_t n, struct ml_rd *ret_config,
    struct ml_rd *ret_data)
{
	struct ml_rd rd = ML_RD_INIT(p, n), cfg, dat;
	uint32_t tag;
	int r;

	ML_TRY(ml_tlv_next(&rd, &tag, &cfg));
	ML_ENSURE(tag == IDR_T_CONFIG && ml_rd_left(&cfg) >= 1, ML_ERR_FORMAT);
	ML_TRY(ml_tlv_next(&rd, &tag, &dat));
	ML_ENSURE(tag == IDR_T_DATA && ml_rd_left(&dat) >= 1, ML_ERR_FORMAT);
	ML_TRY(ml_rd_end(&rd));
	*ret_config = cfg;
	*ret_data = dat;
	r = 0;
out:
	return r;
}

/* ---------------------------------------------------------------- packets */

static void
pkt_iv(const uint8_t id[static IDR_ID_LEN], uint16_t index,
    uint8_t ret_iv[static ML_GCM_IV_LEN])
{
	memcpy(ret_iv, id, IDR_ID_LEN);
	ret_iv[8] = (uint8_t)(index >> 8);
	ret_iv[9] = (uint8_t)index;
	ret_iv[10] = 0;
	ret_iv[11] = 0;
}

int
idr_pkt_seal(const uint8_t key[static IDR_KEY_LEN],
    const uint8_t id[static IDR_ID_LEN], uint16_t index, uint16_t pkt_size,
    const uint8_t *upload, uint32_t total, struct ml_wr *w)
{
	uint8_t iv[ML_GCM_IV_LEN], *hdr, *ct;
	uint16_t npkts = idr_npkts(total, pkt_size);
	size_t mark = w->len, off, len;
	int r;

	ML_ENSURE(npkts != 0 && index < npkts, ML_ERR_ARG);
	off = (size_t)index * pkt_size;
	len = total - off < pkt_size ? total - off : pkt_size;
	ML_TRY(ml_wr_reserve(w, IDR_HDR_LEN + len + ML_GCM_TAG_LEN, &hdr));
	hdr[0] = 'I';
	hdr[1] = 'P';
	hdr[2] = IDR_VERSION;
	memcpy(hdr + 3, id, IDR_ID_LEN);
	hdr[11] = (uint8_t)(index >> 8);
	hdr[12] = (uint8_t)index;
	hdr[13] = (uint8_t)(npkts >> 8);
	hdr[14] = (uint8_t)npkts;
	hdr[15] = (uint8_t)(len >> 8);
	hdr[16] = (uint8_t)len;
	ct = hdr + IDR_HDR_LEN;
	pkt_iv(id, index, iv);
	ML_TRY(ml_gcm_seal(key, iv, hdr, IDR_HDR_LEN, upload + off, len, ct,
	    ct + len));
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(w, mark);
	}
	return r;
}

int
idr_pkt_parse(const uint8_t *p, size_t n, struct idr_pkt_hdr *ret_hdr)
{
	struct ml_rd rd = ML_RD_INIT(p, n);
	struct idr_pkt_hdr h;
	const uint8_t *magic;
	uint8_t ver;
	int r;

	ML_TRY(ml_rd_bytes(&rd, 2, &magic));
	ML_ENSURE(magic[0] == 'I' && magic[1] == 'P', ML_ERR_FORMAT);
	ML_TRY(ml_rd_u8(&rd, &ver));
	ML_ENSURE(ver == IDR_VERSION, ML_ERR_FORMAT);
	ML_TRY(ml_rd_copy(&rd, h.upload_id, sizeof(h.upload_id)));
	ML_TRY(ml_rd_u16be(&rd, &h.index));
	ML_TRY(ml_rd_u16be(&rd, &h.total));
	ML_TRY(ml_rd_u16be(&rd, &h.len));
	ML_ENSURE(h.total >= 1 && h.total <= IDR_MAX_PKTS &&
	    h.index < h.total, ML_ERR_FORMAT);
	ML_ENSURE(h.len >= 1 && h.len <= IDR_PKT_MAX, ML_ERR_FORMAT);
	ML_TRY(ml_rd_bytes(&rd, (size_t)h.len + ML_GCM_TAG_LEN, NULL));
	ML_TRY(ml_rd_end(&rd));
	*ret_hdr = h;
	r = 0;
out:
	return r;
}

/* ---------------------------------------------------------------- burst */

int
idr_burst_begin(struct ml_rd *rd, uint8_t *ret_n)
{
	struct ml_rd save = *rd;
	uint8_t n;
	int r;

	ML_TRY(ml_rd_u8(rd, &n));
	if (n == 0 || n > IDR_BURST_MAX) {
		*rd = save;
		r = ML_ERR_FORMAT;
		goto out;
	}
	*ret_n = n;
	r = 0;
out:
	return r;
}

int
idr_burst_next(struct ml_rd *rd, const uint8_t **ret_p, size_t *ret_n)
{
	struct ml_rd pkt;
	int r;

	ML_TRY(ml_rd_lv16(rd, IDR_PKT_MAX + IDR_PKT_OVERHEAD, &pkt));
	*ret_p = ml_rd_ptr(&pkt);
	*ret_n = ml_rd_left(&pkt);
	r = 0;
out:
	return r;
}

/* ---------------------------------------------------------------- reassembly */

int
idr_asm_init(struct idr_asm *a, const struct idr_begin *b,
    const uint8_t id[static IDR_ID_LEN], const uint8_t key[static IDR_KEY_LEN],
    uint32_t max_pkts)
{
	size_t bm = ((size_t)b->npkts + 7) / 8;
	int r;

	memset(a, 0, sizeof(*a));
	ML_TRY(begin_check(b));
	ML_ENSURE((a->buf = calloc(1, b->total)) != NULL, ML_ERR_NOMEM);
	ML_ENSURE((a->have = calloc(1, bm)) != NULL, ML_ERR_NOMEM);
	ML_ENSURE((a->damaged = calloc(1, bm)) != NULL, ML_ERR_NOMEM);
	memcpy(a->upload_id, id, IDR_ID_LEN);
	memcpy(a->key, key, IDR_KEY_LEN);
	a->npkts = b->npkts;
	a->pkt_size = b->pkt_size;
	a->total = b->total;
	memcpy(a->digest, b->digest, sizeof(a->digest));
	a->max_pkts = max_pkts;
	r = 0;
out:
	if (r != 0) {
		idr_asm_free(a);
	}
	return r;
}

void
idr_asm_free(struct idr_asm *a)
{
	if (a == NULL) {
		return;
	}
	ml_freezero(a->buf, a->total);
	free(a->have);
	free(a->damaged);
	ml_wipe(a, sizeof(*a));
}

int
idr_asm_put(struct idr_asm *a, const uint8_t *p, size_t n)
{
	struct idr_pkt_hdr h;
	uint8_t iv[ML_GCM_IV_LEN];
	uint8_t *tmp = NULL;
	size_t off = 0, want = 0;
	int r;

	ML_ENSURE(a->buf != NULL, ML_ERR_STATE);
	ML_ENSURE(a->received < a->max_pkts, ML_ERR_TOO_LARGE);
	a->received++;
	if ((r = idr_pkt_parse(p, n, &h)) != 0) {
		a->bad++;
		goto out;
	}
	if (!ml_ct_eq(h.upload_id, a->upload_id, IDR_ID_LEN)) {
		a->bad++;
		r = ML_ERR_NOT_FOUND;
		goto out;
	}
	/*
	 * The header is not yet authenticated: a damaged index or total can
	 * only make us name the wrong piece as damaged, which costs one
	 * needless re-send and never overwrites an authenticated piece.
	 */
	if (h.total != a->npkts || h.index >= a->npkts) {
		a->bad++;
		r = ML_ERR_AUTH;
		goto out;
	}
	off = (size_t)h.index * a->pkt_size;
	want = a->total - off < a->pkt_size ? a->total - off : a->pkt_size;
	if (h.len != want) {
		a->bad++;
		BIT_SET(a->damaged, h.index);
		r = ML_ERR_AUTH;
		goto out;
	}
	if (BIT_GET(a->have, h.index)) {
		a->dups++;
		r = 0;
		goto out;
	}
	ML_ENSURE((tmp = malloc(want)) != NULL, ML_ERR_NOMEM);
	pkt_iv(a->upload_id, h.index, iv);
	if ((r = ml_gcm_open(a->key, iv, p, IDR_HDR_LEN, p + IDR_HDR_LEN, want,
	    p + IDR_HDR_LEN + want, tmp)) != 0) {
		a->bad++;
		BIT_SET(a->damaged, h.index);
		r = ML_ERR_AUTH;
		goto out;
	}
	memcpy(a->buf + off, tmp, want);
	BIT_SET(a->have, h.index);
	a->nhave++;
	r = 0;
out:
	ml_freezero(tmp, want);
	return r;
}

void
idr_asm_missing(const struct idr_asm *a, struct idr_retx_ent *ret_e,
    size_t cap, size_t *ret_n)
{
	size_t i, k = 0;

	for (i = 0; i < a->npkts && k < cap; i++) {
		if (BIT_GET(a->have, i)) {
			continue;
		}
		ret_e[k].index = (uint16_t)i;
		ret_e[k].why = BIT_GET(a->damaged, i) ? IDR_WHY_DAMAGED :
		    IDR_WHY_MISSING;
		k++;
	}
	*ret_n = k;
}

int
idr_asm_finish(const struct idr_asm *a, const uint8_t **ret_p,
    size_t *ret_n)
{
	uint8_t md[ML_SHA256_LEN];
	int r;

	ML_ENSURE(a->buf != NULL && idr_asm_complete(a), ML_ERR_STATE);
	ML_TRY(ml_sha256(a->buf, a->total, md));
	ML_ENSURE(ml_ct_eq(md, a->digest, sizeof(md)), ML_ERR_AUTH);
	*ret_p = a->buf;
	*ret_n = a->total;
	r = 0;
out:
	return r;
}

uint64_t
idr_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
