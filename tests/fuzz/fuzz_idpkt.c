/*
 * libFuzzer target: the ID-reading upload parsers and reassembly
 * (idread/idpkt.c).  The first byte picks what the rest is fed to:
 *
 *	0 BEGIN   1 READY   2 END   3 ABORT   4 RETX   5 RESULT
 *	6 upload plaintext   7 one packet header
 *	8 reassembly of raw records (u16be length-prefixed), then the
 *	  missing list and finish
 *	10 a BURST record body
 *	9 the model: the rest is an upload plaintext; every packet is sealed,
 *	  then dropped / duplicated / corrupted / reordered as further input
 *	  bytes say.  Invariant: whatever is complete is byte-identical to the
 *	  plaintext, and the missing list names exactly the pieces not stored.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ml_wr.h"
#include "idpkt.h"

static const uint8_t fz_id[IDR_ID_LEN] = { 'f', 'u', 'z', 'z', 0, 1, 2, 3 };
static const uint8_t fz_key[IDR_KEY_LEN] = { 7, 7, 7, 7, 7, 7, 7, 7 };

static void
fz_reassemble(const uint8_t *p, size_t n)
{
	struct idr_retx_ent e[IDR_MAX_PKTS];
	struct idr_begin b;
	struct idr_asm a;
	const uint8_t *got;
	size_t k, m, len;

	if (n < 3) {
		return;
	}
	memset(&b, 0, sizeof(b));
	b.version = IDR_VERSION;
	b.pkt_size = (uint16_t)(IDR_PKT_MIN + p[0] % 64);
	b.total = 1u + ((uint32_t)p[1] << 4);
	b.npkts = idr_npkts(b.total, b.pkt_size);
	if (idr_asm_init(&a, &b, fz_id, fz_key, 64) != 0) {
		return;
	}
	p += 2;
	n -= 2;
	while (n >= 2) {
		len = ((size_t)p[0] << 8) | p[1];
		p += 2;
		n -= 2;
		if (len > n) {
			len = n;
		}
		if (idr_asm_put(&a, p, len) == ML_ERR_TOO_LARGE) {
			break;
		}
		p += len;
		n -= len;
	}
	idr_asm_missing(&a, e, IDR_MAX_PKTS, &m);
	if (m + a.nhave != a.npkts) {
		abort();
	}
	for (k = 0; k < m; k++) {
		if (e[k].index >= a.npkts) {
			abort();
		}
	}
	(void)idr_asm_finish(&a, &got, &len);
	idr_asm_free(&a);
}

static void
fz_model(const uint8_t *p, size_t n)
{
	struct idr_retx_ent e[IDR_MAX_PKTS];
	struct ml_wr w = ml_wr_dyn(IDR_PKT_MAX + IDR_PKT_OVERHEAD);
	struct idr_begin b;
	struct idr_asm a;
	const uint8_t *ctl, *got;
	size_t nctl, total, i, m, len;
	uint16_t idx;

	if (n < 8) {
		return;
	}
	nctl = n / 4;
	ctl = p;
	p += nctl;
	total = n - nctl;
	memset(&b, 0, sizeof(b));
	b.version = IDR_VERSION;
	b.pkt_size = (uint16_t)(IDR_PKT_MIN + ctl[0] % 48);
	b.total = (uint32_t)total;
	b.npkts = idr_npkts(b.total, b.pkt_size);
	if (ml_sha256(p, total, b.digest) != 0 ||
	    idr_asm_init(&a, &b, fz_id, fz_key, 4096) != 0) {
		ml_wr_free(&w);
		return;
	}
	for (i = 1; i < nctl && i < 2000; i++) {
		idx = (uint16_t)((ctl[i] >> 2) % b.npkts);
		ml_wr_clear(&w);
		if (idr_pkt_seal(fz_key, fz_id, idx, b.pkt_size, p, b.total,
		    &w) != 0) {
			abort();
		}
		switch (ctl[i] & 3) {
		case 0:		/* lost */
			break;
		case 1:		/* corrupted at a chosen byte */
			w.p[(size_t)ctl[i] * 7 % w.len] ^= 0x80;
			(void)idr_asm_put(&a, w.p, w.len);
			break;
		case 2:		/* duplicated */
			(void)idr_asm_put(&a, w.p, w.len);
			/* FALLTHROUGH */
		default:
			if (idr_asm_put(&a, w.p, w.len) != 0) {
				abort();	/* a genuine packet must go in */
			}
		}
	}
	idr_asm_missing(&a, e, IDR_MAX_PKTS, &m);
	if (m + a.nhave != a.npkts) {
		abort();
	}
	if (idr_asm_complete(&a)) {
		if (idr_asm_finish(&a, &got, &len) != 0 || len != total ||
		    memcmp(got, p, total) != 0) {
			abort();
		}
	}
	idr_asm_free(&a);
	ml_wr_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct idr_retx_ent e[IDR_MAX_PKTS];
	struct idr_begin b;
	struct idr_ready rd;
	struct idr_pkt_hdr h;
	struct ml_wr info = ml_wr_dyn(IDR_MAX_TOTAL);
	struct ml_rd c, d;
	uint8_t id[IDR_ID_LEN], round;
	size_t n;
	int reason, status;

	if (size < 1) {
		return 0;
	}
	switch (data[0] % 11) {
	case 0:
		(void)idr_begin_decode(data + 1, size - 1, &b);
		break;
	case 1:
		(void)idr_ready_decode(data + 1, size - 1, &rd);
		break;
	case 2:
		(void)idr_end_decode(data + 1, size - 1, id, &round);
		break;
	case 3:
		(void)idr_abort_decode(data + 1, size - 1, id, &reason);
		break;
	case 4:
		if (size >= 3) {
			(void)idr_retx_decode(data + 3, size - 3,
			    (uint16_t)((data[1] << 8 | data[2]) % (IDR_MAX_PKTS + 1)),
			    id, &round, e, IDR_MAX_PKTS, &n);
		}
		break;
	case 5:
		(void)idr_result_decode(data + 1, size - 1, fz_id, fz_key,
		    &status, &info);
		break;
	case 6:
		(void)idr_upload_decode(data + 1, size - 1, &c, &d);
		break;
	case 7:
		(void)idr_pkt_parse(data + 1, size - 1, &h);
		break;
	case 8:
		fz_reassemble(data + 1, size - 1);
		break;
	case 10: {
		struct ml_rd br = ML_RD_INIT(data + 1, size - 1);
		const uint8_t *pk;
		uint8_t cnt, i;
		size_t pl;

		if (idr_burst_begin(&br, &cnt) == 0) {
			for (i = 0; i < cnt; i++) {
				if (idr_burst_next(&br, &pk, &pl) != 0) {
					break;
				}
				if (pl > IDR_PKT_MAX + IDR_PKT_OVERHEAD) {
					abort();
				}
				(void)idr_pkt_parse(pk, pl, &h);
			}
		}
		break;
	}
	default:
		fz_model(data + 1, size - 1);
		break;
	}
	ml_wr_free(&info);
	return 0;
}
