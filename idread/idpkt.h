/*
 * ID-card upload packets (ID-7, ID-8): the wire formats shared by the
 * reader host (station/) and mintline-server, and the server's reassembly
 * with its retransmission bookkeeping.  Pure code: no I/O, no clocks (the
 * caller passes "now"), no threads.  docs/idcard.md is the prose version.
 *
 *= REQ ID-8 (packets and retransmission)
 *# The encrypted ID data is held as several packets, each encrypted and
 *# sent in turn. The server can send a retransmission instruction naming
 *# packets; the reader re-sends only those.
 *
 * Records (channel record types, hs/hs_api.h; ID reading owns
 * HS_REC_APP + 0x30 .. HS_REC_APP + 0x3F, i.e. 0x40..0x4F):
 *
 *	type	name	dir	body
 *	0x40	BEGIN	R->S	ver(1) npkts(2) pkt_size(2) total(4) digest(32)
 *	0x41	READY	S->R	ver(1) upload_id(8) upload_key(32) max_rounds(1)
 *				deadline_ms(4) max_pkts(2)
 *	0x42	PKT	R->S	one sealed packet (below); no reply
 *	0x43	END	R->S	upload_id(8) round(1)
 *	0x44	RETX	S->R	upload_id(8) round(1) n(2) n x { index(2) why(1) }
 *	0x45	RESULT	S->R	upload_id(8) status(4, i32 ML_ERR_*)
 *				[ iv(12) ct tag(16) ]  (status 0 only)
 *	0x46	ABORT	R->S	upload_id(8) reason(4); no reply
 *	0x47	BURST	R->S	n(1) n x { len(2) sealed packet }; no reply:
 *				several packets in one record, each exactly
 *				as a PKT (cuts per-record cost; n 1..32)
 *
 * A sealed packet (the unit of ID-8):
 *
 *	hdr = 'I' 'P' ver(1) upload_id(8) index(2) total(2) len(2)	(17)
 *	pkt = hdr || ct(len) || tag(16)
 *	AES-256-GCM under upload_key, iv = upload_id(8) || index(2) || 00 00,
 *	aad = hdr
 *
 * so every packet is individually authenticated and names its upload, its
 * index and the total.  The deterministic IV is safe because a packet's
 * plaintext for a given (upload_id, index) never changes: a re-send is
 * byte-identical, which also makes duplicates harmless.  The upload key is
 * fresh per upload, made by the server and sent in READY over the channel,
 * i.e. under the transport key of ID-2/ID-4.
 *
 * The upload plaintext, split into npkts pieces of pkt_size bytes (the last
 * one shorter), is a TLV pair: C1 card configuration, C2 encrypted ID data
 * (ID-7: "configuration + encrypted ID data").  BEGIN carries its SHA-256.
 * The RESULT ciphertext is the ID information TLV (idcard_format.h) under
 * the upload key, iv fresh, aad = "idr result" || upload_id.
 *
 * Every function returns 0 or a negative ML_ERR_*; ret_ outputs untouched
 * on failure.
 */
#ifndef IDPKT_H
#define IDPKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"
#include "ml_ossl.h"
#include "ml_rd.h"
#include "ml_wr.h"

#define IDR_VERSION		1

/* Record types: HS_REC_APP (0x10) + 0x30 .. + 0x3F. */
#define IDR_REC_BEGIN		0x40
#define IDR_REC_READY		0x41
#define IDR_REC_PKT		0x42
#define IDR_REC_END		0x43
#define IDR_REC_RETX		0x44
#define IDR_REC_RESULT		0x45
#define IDR_REC_ABORT		0x46
#define IDR_REC_BURST		0x47

/* Limits (server-enforced; the reader keeps inside them). */
#define IDR_ID_LEN		8
#define IDR_KEY_LEN		ML_AES256_KEY_LEN
#define IDR_PKT_MIN		16
#define IDR_PKT_MAX		4096
#define IDR_PKT_DEFAULT		256	/* one card frame (idc max_frame) */
#define IDR_MAX_PKTS		512	/* packets in one upload */
#define IDR_MAX_TOTAL		16384	/* upload plaintext bytes */
#define IDR_HDR_LEN		17
#define IDR_PKT_OVERHEAD	(IDR_HDR_LEN + ML_GCM_TAG_LEN)
#define IDR_MAX_ROUNDS		8	/* END/RETX rounds per upload */
#define IDR_DEADLINE_MS		10000	/* BEGIN to RESULT */
#define IDR_RESULT_AAD		"idr result"
#define IDR_BURST_MAX		32	/* packets per BURST record */
#define IDR_BURST_DEFAULT	16

/* Upload plaintext tags */
#define IDR_T_CONFIG		0xC1
#define IDR_T_DATA		0xC2

/* Why a packet is named in RETX */
#define IDR_WHY_MISSING		1
#define IDR_WHY_DAMAGED		2

struct idr_begin {
	uint8_t		 version;
	uint16_t	 npkts;
	uint16_t	 pkt_size;
	uint32_t	 total;
	uint8_t		 digest[ML_SHA256_LEN];
};

struct idr_ready {
	uint8_t		 version;
	uint8_t		 upload_id[IDR_ID_LEN];
	uint8_t		 key[IDR_KEY_LEN];
	uint8_t		 max_rounds;
	uint32_t	 deadline_ms;
	uint16_t	 max_pkts;
};

struct idr_retx_ent {
	uint16_t	 index;
	uint8_t		 why;		/* IDR_WHY_* */
};

/* ---- record bodies ---- */

/* BEGIN: checks npkts = ceil(total / pkt_size) and the limits above
 * (ML_ERR_FORMAT / ML_ERR_TOO_LARGE). */
ML_MUST_CHECK int idr_begin_encode(const struct idr_begin *b, struct ml_wr *w);
ML_MUST_CHECK int idr_begin_decode(const uint8_t *p, size_t n,
    struct idr_begin *ret);

ML_MUST_CHECK int idr_ready_encode(const struct idr_ready *rd, struct ml_wr *w);
/* ret_ready holds a key: wipe it after use. */
ML_MUST_CHECK int idr_ready_decode(const uint8_t *p, size_t n,
    struct idr_ready *ret);

ML_MUST_CHECK int idr_end_encode(const uint8_t id[static IDR_ID_LEN],
    uint8_t round, struct ml_wr *w);
ML_MUST_CHECK int idr_end_decode(const uint8_t *p, size_t n,
    uint8_t ret_id[static IDR_ID_LEN], uint8_t *ret_round);

ML_MUST_CHECK int idr_abort_encode(const uint8_t id[static IDR_ID_LEN],
    int reason, struct ml_wr *w);
ML_MUST_CHECK int idr_abort_decode(const uint8_t *p, size_t n,
    uint8_t ret_id[static IDR_ID_LEN], int *ret_reason);

ML_MUST_CHECK int idr_retx_encode(const uint8_t id[static IDR_ID_LEN],
    uint8_t round, const struct idr_retx_ent *e, size_t n, struct ml_wr *w);
/*
 * RETX: entries go to ret_e (cap entries); each index < npkts, strictly
 * increasing, why is MISSING or DAMAGED, n >= 1 (ML_ERR_FORMAT otherwise);
 * ML_ERR_TOO_LARGE if n > cap.
 */
ML_MUST_CHECK int idr_retx_decode(const uint8_t *p, size_t n, uint16_t npkts,
    uint8_t ret_id[static IDR_ID_LEN], uint8_t *ret_round,
    struct idr_retx_ent *ret_e, size_t cap, size_t *ret_n);

/*
 * RESULT.  Success: seal info (the ID information TLV) under key; failure:
 * status only.  Decode returns the status in *ret_status (0 or ML_ERR_*)
 * and, for 0, the opened plaintext appended to info (wipe it after use);
 * ML_ERR_AUTH if the id does not match or the ciphertext was tampered with.
 */
ML_MUST_CHECK int idr_result_encode(const uint8_t id[static IDR_ID_LEN],
    int status, const uint8_t key[static IDR_KEY_LEN], const uint8_t *info,
    size_t info_len, struct ml_wr *w);
ML_MUST_CHECK int idr_result_decode(const uint8_t *p, size_t n,
    const uint8_t id[static IDR_ID_LEN], const uint8_t key[static IDR_KEY_LEN],
    int *ret_status, struct ml_wr *info);

/* ---- the upload plaintext ---- */

/* C1 config || C2 data. */
ML_MUST_CHECK int idr_upload_encode(const uint8_t *config, size_t config_len,
    const uint8_t *data, size_t data_len, struct ml_wr *w);
/* Borrowed pointers into p; ML_ERR_FORMAT for missing / extra tags. */
ML_MUST_CHECK int idr_upload_decode(const uint8_t *p, size_t n,
    struct ml_rd *ret_config, struct ml_rd *ret_data);

/* ---- sealed packets ---- */

/* Number of packets for total bytes at pkt_size (0 if out of limits). */
uint16_t	 idr_npkts(uint32_t total, uint16_t pkt_size);

/*
 * Seal piece `index` of upload (the whole plaintext, total bytes) and
 * append the packet to w.
 */
ML_MUST_CHECK int idr_pkt_seal(const uint8_t key[static IDR_KEY_LEN],
    const uint8_t id[static IDR_ID_LEN], uint16_t index, uint16_t pkt_size,
    const uint8_t *upload, uint32_t total, struct ml_wr *w);

/*
 * BURST: start with idr_burst_begin() (reads n), then idr_burst_next()
 * n times; each gives one packet (borrowed).  ML_ERR_FORMAT for n = 0 or
 * n > IDR_BURST_MAX, reader errors for truncation; idr_burst_end() checks
 * that nothing trails.
 */
ML_MUST_CHECK int idr_burst_begin(struct ml_rd *rd, uint8_t *ret_n);
ML_MUST_CHECK int idr_burst_next(struct ml_rd *rd, const uint8_t **ret_p,
    size_t *ret_n);

/* A packet header, parsed but not yet authenticated. */
struct idr_pkt_hdr {
	uint8_t		 upload_id[IDR_ID_LEN];
	uint16_t	 index;
	uint16_t	 total;		/* packets */
	uint16_t	 len;
};

/* Parse the header and check the framing (len matches the bytes): no
 * crypto.  Exposed for the fuzz target. */
ML_MUST_CHECK int idr_pkt_parse(const uint8_t *p, size_t n,
    struct idr_pkt_hdr *ret_hdr);

/* ---- reassembly (server) ---- */

/*
 * One upload being reassembled.  Counters let the server enforce the
 * per-session limits; they are also what the tests and the benchmark look
 * at.
 */
struct idr_asm {
	uint8_t		 upload_id[IDR_ID_LEN];
	uint8_t		 key[IDR_KEY_LEN];
	uint16_t	 npkts;
	uint16_t	 pkt_size;
	uint32_t	 total;
	uint8_t		 digest[ML_SHA256_LEN];
	uint8_t		*buf;		/* total bytes */
	uint8_t		*have;		/* bitmap: piece authenticated */
	uint8_t		*damaged;	/* bitmap: a bad copy was seen */
	uint16_t	 nhave;
	uint32_t	 received;	/* PKT records taken (all kinds) */
	uint32_t	 dups;
	uint32_t	 bad;		/* failed authentication / framing */
	uint32_t	 max_pkts;	/* received limit */
};

/* Start reassembly for b with this id and key (copied). */
ML_MUST_CHECK int idr_asm_init(struct idr_asm *a, const struct idr_begin *b,
    const uint8_t id[static IDR_ID_LEN], const uint8_t key[static IDR_KEY_LEN],
    uint32_t max_pkts);
/* Wipe and free; the struct can be re-initialised.  NULL-safe. */
void		 idr_asm_free(struct idr_asm *a);

/*
 * Take one PKT record body.  Returns 0 when the packet was stored or was a
 * harmless duplicate; ML_ERR_AUTH (damaged: the index it names, if in
 * range, is marked damaged), ML_ERR_FORMAT / ML_ERR_SHORT (unparseable),
 * ML_ERR_NOT_FOUND (another upload's id): the upload goes on after all of
 * these.  ML_ERR_TOO_LARGE when the packet limit is reached: the session
 * must end.
 */
ML_MUST_CHECK int idr_asm_put(struct idr_asm *a, const uint8_t *p, size_t n);

static inline bool
idr_asm_complete(const struct idr_asm *a)
{
	return a->nhave == a->npkts;
}

/* Pieces still needed, in index order, up to cap; *ret_n the count. */
void		 idr_asm_missing(const struct idr_asm *a,
    struct idr_retx_ent *ret_e, size_t cap, size_t *ret_n);

/*
 * After completion: check the digest (ML_ERR_AUTH on mismatch) and return
 * the plaintext (borrowed from a).
 */
ML_MUST_CHECK int idr_asm_finish(const struct idr_asm *a,
    const uint8_t **ret_p, size_t *ret_n);

/* Monotonic milliseconds (CLOCK_MONOTONIC): session and cache clocks. */
uint64_t	 idr_now_ms(void);

#endif
