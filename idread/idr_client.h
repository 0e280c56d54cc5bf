/*
 * Reader side of the upload (ID-7, ID-8): BEGIN, the sealed packets, END,
 * re-sending exactly the packets a RETX names, RESULT.  Transport-agnostic
 * through struct idr_link: over an hs/ channel (station/cmd_idread.c) or
 * the loopback link straight into a record handler in the same process,
 * the server's idr_srv_handle() (server/idr_srv.h: tests, benchmark, and
 * `mintline-station id-read --server loopback:SAMSPEC`).
 */
#ifndef IDR_CLIENT_H
#define IDR_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hs_api.h"
#include "ml_err.h"
#include "ml_wr.h"

/* A record link: exactly the hs_chan_send / hs_chan_recv contract. */
struct idr_link {
	void	*ctx;
	int	(*send)(void *ctx, uint8_t type, const uint8_t *p, size_t n);
	int	(*recv)(void *ctx, uint8_t *ret_type, uint8_t *buf, size_t cap,
		    size_t *ret_len, int timeout_ms);
	void	(*close)(void *ctx);	/* frees ctx; NULL-safe ctx */
};

/*
 * Loopback link: every record goes straight into fn(ctx, ...) as `peer`
 * (copied); the reply, if any, is what recv returns.  HS_REC_ERROR
 * replies carry the handler's error as the channel would.  ctx is
 * borrowed.
 */
ML_MUST_CHECK int idr_link_loop(hs_handler_fn fn, void *ctx,
    const struct hs_peer *peer, struct idr_link *ret);

/*
 * Fault injection on the packets the reader sends (tests, benchmark).
 * Rates are per mille, drawn from a seeded generator per packet send.
 */
struct idr_faults {
	uint64_t	 seed;
	unsigned	 loss_pm;	/* packet not sent */
	unsigned	 corrupt_pm;	/* one byte flipped */
	unsigned	 dup_pm;	/* sent twice */
	bool		 reorder;	/* first round sent in reverse order */
	int		 never;		/* this index is never delivered; -1 none */
	bool		 whole_resend;	/* baseline: on RETX re-send everything */
};
#define IDR_FAULTS_NONE	{ .never = -1 }

struct idr_upload_stats {
	uint32_t	 pkts;		/* PKT records sent (incl. dropped ones) */
	uint64_t	 bytes;		/* PKT payload bytes sent */
	uint32_t	 rounds;	/* RETX received */
	uint32_t	 resent;	/* packets re-sent */
};

/* Called between rounds; nonzero aborts the upload with that error
 * (e.g. ML_ERR_REMOVED when the card left the field). */
typedef int (*idr_check_fn)(void *ctx);

struct idr_upload_req {
	const uint8_t		*config;
	size_t			 config_len;
	const uint8_t		*data;
	size_t			 data_len;
	uint16_t		 pkt_size;	/* 0: IDR_PKT_DEFAULT */
	uint8_t			 per_record;	/* packets per record: 0
						 * IDR_BURST_DEFAULT (BURST
						 * records), 1 one PKT each */
	int			 timeout_ms;	/* per reply; 0: IDR_DEADLINE_MS */
	const struct idr_faults	*faults;	/* NULL: none */
	idr_check_fn		 check;		/* may be NULL */
	void			*check_ctx;
};

/*
 * Run one upload.  On success (0) the ID information TLV the server
 * returned is appended to info (personal data: wipe it).  Errors: the
 * RESULT status (ML_ERR_AUTH: the SAM could not decrypt the card;
 * ML_ERR_TIMEOUT: the server gave up on a packet that never arrived or
 * the deadline; ML_ERR_TOO_LARGE: too many packets), an HS_REC_ERROR code,
 * ML_ERR_FORMAT for a malformed reply, the link's own errors, or check's.
 */
ML_MUST_CHECK int idr_upload(const struct idr_link *l,
    const struct idr_upload_req *req, struct ml_wr *info,
    struct idr_upload_stats *ret_st);

/* A link over an established hs/ channel (owned: close frees it). */
void	idr_link_hs(struct hs_chan *c, struct idr_link *ret);

#endif
