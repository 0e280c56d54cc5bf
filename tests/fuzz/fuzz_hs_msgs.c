/*
 * libFuzzer target for every handshake message parser and the record
 * layer (ID-2, ID-4, ID-5):
 *   - hs_msg_parse_only(): the schema of every message type (the first
 *     byte selects KEYREQ, CHALLENGE, CHALLENGE_CERT, READER_AUTH,
 *     SERVER_AUTH, READER_KEYX, ALERT);
 *   - hs_frame_next() over the input as a byte stream;
 *   - hs_rl_open() with a fixed key (type, sequence, tag, lengths);
 *   - a server engine fed a valid KEYREQ for flow A or B, then the input
 *     as the client's first authenticated message (the ID-5 path: R1,
 *     certificate, registry hook, signature).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "key_soft.h"
#include "hs.h"
#include "hs_ca.h"

static struct hs_trust *trust;
static struct ml_p256_key *key;
static struct key ko;
static uint8_t *cert;
static size_t cert_len;
static struct hs_blob chain[1];

static int
init_once(void)
{
	static int done;
	struct hs_ca *ca = NULL;
	uint8_t priv[32], pub[65], *root;
	size_t root_len;
	struct hs_ca_req req = { .role = "server", .certno = 2,
	    .backdate_s = 60, .valid_s = 86400 };

	if (done) {
		return 0;
	}
	if (hs_ca_create("fuzz root", 30, &ca) != 0 ||
	    ml_p256_keygen(priv, pub) != 0 ||
	    ml_p256_key_from_priv(priv, &key) != 0) {
		abort();
	}
	req.pub = pub;
	if (hs_ca_issue(ca, &req, &cert, &cert_len) != 0 ||
	    hs_ca_root_der(ca, &root, &root_len) != 0 ||
	    hs_trust_new_der(root, root_len, NULL, 0, &trust) != 0) {
		abort();
	}
	free(root);
	hs_ca_free(ca);
	key_soft_init(&ko, key);
	chain[0].p = cert;
	chain[0].len = cert_len;
	done = 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct ml_rd rd = ML_RD_INIT(d, n), b;
	struct hs_rl rl;
	struct hs_server_cfg sc;
	struct hs *hs = NULL;
	struct ml_wr out = ml_wr_dyn(1 << 16);
	uint8_t pt[256], type, keyreq[64];
	size_t len, k = 0;

	(void)init_once();
	(void)hs_msg_parse_only(d, n);
	while (hs_frame_next(&rd, HS_MAX_FRAME, &b) == 0) {
		(void)hs_msg_parse_only(ml_rd_ptr(&b), ml_rd_left(&b));
	}
	memset(&rl, 0x5a, sizeof(rl));
	rl.rx_seq = 0;
	rl.dead = false;
	(void)hs_rl_open(&rl, d, n, &type, pt, sizeof(pt), &len);

	memset(&sc, 0, sizeof(sc));
	sc.cred.key = &ko;
	sc.cred.chain = chain;
	sc.cred.nchain = 1;
	sc.trust = trust;
	if (hs_server_new(&sc, &hs) == 0) {
		keyreq[k++] = HS_KEYREQ;
		keyreq[k++] = HS_VERSION;
		keyreq[k++] = (n > 0 && (d[0] & 1)) ? HS_FLOW_B : HS_FLOW_A;
		keyreq[k++] = HS_KIND_READER;
		keyreq[k++] = 4;
		memcpy(keyreq + k, "RDR1", 4);
		k += 4;
		keyreq[k++] = 2;
		memcpy(keyreq + k, "10", 2);
		k += 2;
		memset(keyreq + k, 0x11, HS_R_LEN);
		k += HS_R_LEN;
		if (hs_advance(hs, keyreq, k, &out) == 0) {
			(void)hs_advance(hs, d, n, &out);
		}
		hs_free(hs);
	}
	ml_wr_free(&out);
	return 0;
}
