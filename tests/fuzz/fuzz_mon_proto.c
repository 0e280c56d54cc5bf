/*
 * libFuzzer harness: the monitor protocol (server/mon_proto.h) as
 * mintline-monitor decodes it from a possibly compromised worker: the
 * request decoder and dispatcher mon_dispatch() (session table, per-type
 * flags, MON_ONCE, each handler's body parser) and the notify channel's
 * mon_close_note().
 *
 * server/monitor.c keeps all of that static, so it is included here whole
 * (its main() renamed) and the HSM side is stubbed: the monitor's keys
 * are struct key (keys/key.h) of a stub class and its provider answers
 * MON_PUBKEY without a PKCS#11 module, so the fuzzer runs the monitor's
 * own code and nothing of the token's.
 *
 * Input: a sequence of packets, each
 *	u8 hdr (bit 7: notify channel; bits 0-3: length bits 8-11)
 *	u8 length bits 0-7 | that many bytes (cut at the end of the input)
 * run against one fresh monitor (hello not done, no session).
 *
 * Invariants checked (the monitor's promises, mon_proto.h and the top of
 * monitor.c), beyond "no crash, no sanitizer report":
 *   - every reply is i32be result, with a body only when the result is 0,
 *     and a body of the exact length of its type;
 *   - HELLO succeeds at most once, and HELLO and PUBKEY only before the
 *     first session;
 *   - SIGN_TRANSCRIPT and DECRYPT_KEYX succeed at most once per session id;
 *   - SESS_AUTH succeeds only for a session id that had SIGN_TRANSCRIPT or
 *     DECRYPT_KEYX accepted, and DECRYPT_FEATURE only for one that had
 *     SESS_AUTH succeed and was not closed since.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define main monitor_main
int monitor_main(int, char **);
#include "../../server/monitor.c"
#undef main

int LLVMFuzzerInitialize(int *argc, char **argv[]);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---------------------------------------------------------------- stubs */

static const uint8_t p256_g[ML_P256_PUB_LEN] = {
	0x04,
	0x6B, 0x17, 0xD1, 0xF2, 0xE1, 0x2C, 0x42, 0x47, 0xF8, 0xBC, 0xE6, 0xE5,
	0x63, 0xA4, 0x40, 0xF2, 0x77, 0x03, 0x7D, 0x81, 0x2D, 0xEB, 0x33, 0xA0,
	0xF4, 0xA1, 0x39, 0x45, 0xD8, 0x98, 0xC2, 0x96,
	0x4F, 0xE3, 0x42, 0xE2, 0xFE, 0x1A, 0x7F, 0x9B, 0x8E, 0xE7, 0xEB, 0x4A,
	0x7C, 0x0F, 0x9E, 0x16, 0x2B, 0xCE, 0x33, 0x57, 0x6B, 0x31, 0x5E, 0xCE,
	0xCB, 0xB6, 0x40, 0x68, 0x37, 0xBF, 0x51, 0xF5,
};

static int
stub_sign(void *ctx, const uint8_t dg[ML_SHA256_LEN],
    uint8_t ret[ML_P256_SIG_LEN])
{
	(void)ctx;
	memcpy(ret, dg, ML_SHA256_LEN);
	memcpy(ret + ML_SHA256_LEN, dg, ML_SHA256_LEN);
	return 0;
}

static int
stub_ecdh(void *ctx, const uint8_t peer[ML_P256_PUB_LEN],
    uint8_t ret[ML_P256_SECRET_LEN])
{
	(void)ctx;
	memcpy(ret, peer + 1, ML_P256_SECRET_LEN);
	return 0;
}

/* The keys the monitor holds: a struct key (keys/key.h) of this class. */
static const struct key_class stub_class = {
	.name = "stub",
	.sign = stub_sign,
	.ecdh = stub_ecdh,
};

/* The provider MON_PUBKEY asks (key_pub_load -> prov.pub). */
static int
stub_pub(void *ctx, const char *spec, uint8_t ret_pub[ML_P256_PUB_LEN])
{
	(void)ctx;
	if (strncmp(spec, "pkcs11:", 7) != 0) {
		abort();	/* the monitor must have refused it */
	}
	if (strstr(spec, "object=missing") != NULL) {
		return ML_ERR_NOT_FOUND;
	}
	memcpy(ret_pub, p256_g, ML_P256_PUB_LEN);
	return 0;
}

static const struct key_provider stub_prov = {
	.name = "stub",
	.pub = stub_pub,
};

/* monitor_main() (never run here) links against keys/key_p11.c. */
void
key_p11_provider(struct key_provider *ret, const char *module)
{
	(void)module;
	*ret = stub_prov;
}

uint64_t
key_p11_reconnects(const struct key *k)
{
	(void)k;
	return 0;
}

/* -------------------------------------------------------------- harness */

#define MAX_PKTS	256

static struct key key_main, key_seal;
static struct mon_sess *sess_table;

/* What the harness saw succeed, per session id, within one input. */
struct seen {
	uint64_t	 id;
	bool		 signed_, keyx, authed, closed;
};

static struct seen *
seen_get(struct seen *v, size_t *n, uint64_t id)
{
	size_t i;

	for (i = 0; i < *n; i++) {
		if (v[i].id == id) {
			return &v[i];
		}
	}
	if (*n == MAX_PKTS) {
		abort();
	}
	v[*n] = (struct seen){ .id = id };
	return &v[(*n)++];
}

int
LLVMFuzzerInitialize(int *argc, char **argv[])
{
	uint8_t seal_pub[ML_P256_PUB_LEN];

	(void)argc;
	(void)argv;
	ml_log_set_level(ML_LOG_ERROR);
	memcpy(seal_pub, p256_g, ML_P256_PUB_LEN);
	seal_pub[ML_P256_PUB_LEN - 1] ^= 1;	/* any other bytes */
	key_init(&key_main, &stub_class, NULL, p256_g);
	key_init(&key_seal, &stub_class, NULL, seal_pub);
	if ((sess_table = calloc(MON_SESS_SLOTS, sizeof(*sess_table))) == NULL) {
		abort();
	}
	return 0;
}

static size_t
body_len(uint8_t type, bool seal)
{
	switch (type) {
	case MON_HELLO:
		return 1 + ML_P256_PUB_LEN * (seal ? 2 : 1);
	case MON_SIGN_TRANSCRIPT:
		return ML_P256_SIG_LEN;
	case MON_DECRYPT_KEYX:
	case MON_DECRYPT_FEATURE:
		return ML_P256_SECRET_LEN;
	case MON_SESS_AUTH:
		return 0;
	case MON_PUBKEY:
		return ML_P256_PUB_LEN;
	default:
		abort();	/* success for a type the monitor does not know */
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mon m = { 0 };
	struct seen seen[MAX_PKTS], *sn;
	size_t touched[MAX_PKTS], nt = 0, nseen = 0, off = 0, len, i;
	uint8_t out[MON_MAX_MSG];
	bool hello_ok = false, any_session = false;
	struct ml_wr w;

	if (size < 1) {
		return 0;
	}
	m.key = &key_main;
	/* first byte: with or without a separate seal key */
	m.seal = (data[0] & 1) ? &key_seal : NULL;
	m.module = "/dev/null";
	m.prov = stub_prov;
	m.sess = sess_table;
	pthread_mutex_init(&m.mu, NULL);
	off = 1;
	while (off + 2 <= size && nt < MAX_PKTS) {
		const uint8_t *p;
		bool notify = (data[off] & 0x80) != 0;
		uint8_t type;
		uint64_t id = 0;
		int32_t res;

		len = ((size_t)(data[off] & 0x0F) << 8) | data[off + 1];
		off += 2;
		if (len > size - off) {
			len = size - off;
		}
		p = data + off;
		off += len;
		type = len > 0 ? p[0] : 0;
		for (i = 0; i < 8 && 1 + i < len; i++) {
			id = (id << 8) | p[1 + i];
		}
		if (len >= 9) {
			/* the slot this packet may touch, to clear afterwards */
			touched[nt++] = (size_t)(id % MON_SESS_SLOTS);
		}
		if (notify) {
			/* a close note (1..MON_CLOSE_MAX ids) ends each
			 * session that is in its slot; such a slot was
			 * opened by an earlier packet, so it is in touched */
			if (len >= 9 && (len - 1) % 8 == 0 &&
			    len <= 1 + 8 * MON_CLOSE_MAX &&
			    type == MON_SESS_CLOSE) {
				size_t j;

				for (j = 1; j < len; j += 8) {
					uint64_t cid = 0;

					for (i = 0; i < 8; i++) {
						cid = (cid << 8) | p[j + i];
					}
					if (cid != 0 && cid <= m.max_id &&
					    sess_table[cid % MON_SESS_SLOTS].id ==
					    cid) {
						seen_get(seen, &nseen, cid)->closed =
						    true;
					}
				}
			}
			mon_close_note(&m, p, len);
			continue;
		}
		w = (struct ml_wr)ML_WR_FIXED(out, sizeof(out));
		mon_dispatch(&m, p, len, &w);
		if (w.len < 4) {
			abort();
		}
		res = (int32_t)(((uint32_t)w.p[0] << 24) | ((uint32_t)w.p[1] << 16) |
		    ((uint32_t)w.p[2] << 8) | w.p[3]);
		if (res != 0) {
			if (res > 0 || w.len != 4) {
				abort();
			}
			continue;
		}
		if (len < 9 || w.len != 4 + body_len(type, m.seal != NULL)) {
			abort();
		}
		switch (type) {
		case MON_HELLO:
			if (hello_ok || any_session || id != 0) {
				abort();
			}
			hello_ok = true;
			break;
		case MON_PUBKEY:
			if (any_session || id != 0) {
				abort();
			}
			break;
		case MON_SIGN_TRANSCRIPT:
		case MON_DECRYPT_KEYX:
			any_session = true;
			sn = seen_get(seen, &nseen, id);
			if (sn->closed || sn->authed ||
			    (type == MON_SIGN_TRANSCRIPT ? sn->signed_ : sn->keyx)) {
				abort();
			}
			if (type == MON_SIGN_TRANSCRIPT) {
				sn->signed_ = true;
			} else {
				sn->keyx = true;
			}
			break;
		case MON_SESS_AUTH:
			any_session = true;
			sn = seen_get(seen, &nseen, id);
			if (sn->closed || !(sn->signed_ || sn->keyx)) {
				abort();
			}
			sn->authed = true;
			break;
		case MON_DECRYPT_FEATURE:
			sn = seen_get(seen, &nseen, id);
			if (sn->closed || !sn->authed) {
				abort();
			}
			break;
		default:
			abort();
		}
	}
	for (i = 0; i < nt; i++) {
		sess_table[touched[i]] = (struct mon_sess){ 0 };
	}
	pthread_mutex_destroy(&m.mu);
	return 0;
}
