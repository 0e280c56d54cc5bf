/*
 * hs/ private: the engine state shared by the per-message files
 * (hs_keyreq.c, hs_challenge.c, hs_reader_auth.c, hs_server_auth.c,
 * hs_keyx.c) and the driver (hs.c).  Nothing outside hs/ includes this.
 */
#ifndef HS_INT_H
#define HS_INT_H

#include "hs.h"
#include "ml_ossl.h"

struct hs {
	enum hs_role			 role;
	enum hs_flow			 flow;
	unsigned			 n;	/* index into hs_flow[flow] */
	bool				 done;
	bool				 failed;
	int				 alert;
	const struct hs_client_cfg	*ccfg;
	const struct hs_server_cfg	*scfg;

	struct ml_sha256		*th;	/* transcript: every body */
	uint8_t				 th_prev[ML_SHA256_LEN];	/* before this msg */

	/* identity claim (KEYREQ) */
	enum hs_kind			 kind;
	char				 serial[HS_MAX_SERIAL + 1];
	char				 certno[HS_MAX_CERTNO + 1];
	uint8_t				 cnonce[HS_R_LEN];

	/* R1: issued by the server for this connection only (ID-2, ID-5) */
	uint8_t				 r1[HS_R_LEN];
	uint64_t			 r1_issued_ms;
	bool				 r1_used;

	/* key material: R3 = R1 || R2 (flow A) or R2 (flow B) */
	uint8_t				 secret[2 * HS_R_LEN];
	size_t				 secret_len;

	uint8_t				 own_pub[ML_P256_PUB_LEN];
	struct hs_peer			 peer;
	uint8_t				*peer_cert;
	size_t				 peer_cert_len;

	uint8_t				 k_c2s[ML_AES256_KEY_LEN];
	uint8_t				 k_s2c[ML_AES256_KEY_LEN];
};

/* Signature labels (domain separation), all the same length. */
#define HS_LABEL_READER_AUTH	"mintline hs v1 reader-auth"
#define HS_LABEL_SERVER_AUTH	"mintline hs v1 server-auth"
#define HS_LABEL_READER_KEYX	"mintline hs v1 reader-keyx"
#define HS_LABEL_KEY_C2S	"mintline hs v1 key c2s"
#define HS_LABEL_KEY_S2C	"mintline hs v1 key s2c"

/* Per-message send/recv: send writes the whole body (type byte first);
 * recv gets the whole body (type byte checked by the driver). */
ML_MUST_CHECK int	hs_keyreq_send(struct hs *, struct ml_wr *);
ML_MUST_CHECK int	hs_keyreq_recv(struct hs *, const uint8_t *, size_t);
ML_MUST_CHECK int	hs_challenge_send(struct hs *, struct ml_wr *);
ML_MUST_CHECK int	hs_challenge_recv(struct hs *, const uint8_t *, size_t);
ML_MUST_CHECK int	hs_chcert_send(struct hs *, struct ml_wr *);
ML_MUST_CHECK int	hs_chcert_recv(struct hs *, const uint8_t *, size_t);
ML_MUST_CHECK int	hs_reader_auth_send(struct hs *, struct ml_wr *);
ML_MUST_CHECK int	hs_reader_auth_recv(struct hs *, const uint8_t *, size_t);
ML_MUST_CHECK int	hs_server_auth_send(struct hs *, struct ml_wr *);
ML_MUST_CHECK int	hs_server_auth_recv(struct hs *, const uint8_t *, size_t);
ML_MUST_CHECK int	hs_keyx_send(struct hs *, struct ml_wr *);
ML_MUST_CHECK int	hs_keyx_recv(struct hs *, const uint8_t *, size_t);

/* Schema-only parsers (no state): used by recv and by the fuzz target. */
struct hs_ident_fields {
	uint8_t		 r1[HS_R_LEN];
	char		 serial[HS_MAX_SERIAL + 1];
	char		 certno[HS_MAX_CERTNO + 1];
	struct hs_blob	 chain[HS_MAX_CHAIN];
	size_t		 nchain;
	const uint8_t	*sealed;
	size_t		 sealed_len;
	const uint8_t	*sig;		/* ML_P256_SIG_LEN */
};
ML_MUST_CHECK int	hs_parse_keyreq(const uint8_t *m, size_t len, uint8_t *ret_version,
	    uint8_t *ret_flow, uint8_t *ret_kind, char *serial, char *certno,
	    uint8_t cnonce[HS_R_LEN]);
ML_MUST_CHECK int	hs_parse_challenge(const uint8_t *m, size_t len, uint8_t r1[HS_R_LEN]);
ML_MUST_CHECK int	hs_parse_chcert(const uint8_t *m, size_t len, uint8_t r1[HS_R_LEN],
	    struct hs_ident_fields *f);
ML_MUST_CHECK int	hs_parse_reader_auth(const uint8_t *m, size_t len,
	    struct hs_ident_fields *f);
ML_MUST_CHECK int	hs_parse_server_auth(const uint8_t *m, size_t len,
	    struct hs_ident_fields *f);
ML_MUST_CHECK int	hs_parse_keyx(const uint8_t *m, size_t len, struct hs_ident_fields *f);
ML_MUST_CHECK int	hs_parse_alert(const uint8_t *m, size_t len, uint8_t *ret_code);

/* Helpers (hs.c). */
ML_MUST_CHECK int	hs_fail(struct hs *hs, int alert, int r);
ML_MUST_CHECK int	hs_put_chain(struct ml_wr *w, const struct hs_cred *cred);
ML_MUST_CHECK int	hs_get_chain(struct ml_rd *rd, struct hs_ident_fields *f);
ML_MUST_CHECK int	hs_put_str8(struct ml_wr *w, const char *s);
ML_MUST_CHECK int	hs_get_str8(struct ml_rd *rd, size_t max, bool hex, char *ret);
ML_MUST_CHECK int	hs_sig_digest(const struct hs *hs, const char *label,
	    const uint8_t *body, size_t len, uint8_t ret_md[ML_SHA256_LEN]);
ML_MUST_CHECK int	hs_sign_append(struct hs *hs, const struct key *key,
	    const char *label, struct ml_wr *w);
ML_MUST_CHECK int	hs_verify_sig(const struct hs *hs, const uint8_t pub[ML_P256_PUB_LEN],
	    const char *label, const uint8_t *body, size_t len);
ML_MUST_CHECK int	hs_set_peer(struct hs *hs, const struct hs_certinfo *ci,
	    const struct hs_blob *leaf);
ML_MUST_CHECK int	hs_server_check_client(struct hs *hs, const uint8_t *msg, size_t len,
	    const struct hs_ident_fields *f, const char *label);

#endif
