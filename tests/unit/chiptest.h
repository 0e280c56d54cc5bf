/*
 * Small helpers shared by the chip unit tests (test_store.c,
 * test_chip_core.c): a scratch directory (on /dev/shm when writable, so
 * that exhaustive tear tests do not wait on a disk), and APDU exchange
 * through chip_transmit with the status word split off.
 *
 * Header-only: every function is static; include once per test program.
 */
#ifndef CHIPTEST_H
#define CHIPTEST_H

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "ml_err.h"
#include "mltest.h"
#include "ml_wr.h"
#include "apdu.h"
#include "chip.h"
#include "chip_proto.h"
#include "sw.h"

#define ck_assert_sw(expr, want)	do {				\
	unsigned sw_ = (expr);						\
	ck_assert_msg(sw_ == (unsigned)(want), "%s: SW %04X, want %04X",	\
	    #expr, sw_, (unsigned)(want));				\
} while (0)

/* Make a fresh scratch directory; path in dir (at least 64 bytes). */
static inline void
ct_mkdtemp(char *dir, size_t cap)
{
	const char *bases[] = { "/dev/shm", getenv("TMPDIR"), "/tmp" };
	size_t i;

	for (i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		if (bases[i] == NULL || access(bases[i], W_OK) != 0) {
			continue;
		}
		snprintf(dir, cap, "%s/mltest-XXXXXX", bases[i]);
		if (mkdtemp(dir) != NULL) {
			return;
		}
	}
	ck_abort_msg("no writable scratch directory");
}

/* Remove the files in dir (flat), then dir. */
static inline void
ct_rmtree(const char *dir)
{
	char p[512];
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL) {
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			continue;
		}
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		(void)unlink(p);
	}
	closedir(d);
	(void)rmdir(dir);
}

/*
 * Every response data seen by ct_send, for tests that scan all of them
 * (the private-key test).  NULL: not recorded.
 */
static struct ml_wr *ct_transcript;

/*
 * Send raw command bytes with a response buffer of resp_cap bytes.  Returns
 * the SW; the data (without SW) is copied to out (if not NULL, up to
 * out_cap) and its length stored in *ret_len (if not NULL).
 */
static inline uint16_t
ct_send_cap(struct chip *c, const uint8_t *cmd, size_t n, size_t resp_cap,
    uint8_t *out, size_t out_cap, size_t *ret_len)
{
	static uint8_t resp[CHIP_MAX_RESP];
	size_t rlen = 0;

	ck_assert_uint_le(resp_cap, sizeof(resp));
	ck_assert_r(chip_transmit(c, cmd, n, resp, resp_cap, &rlen), 0);
	ck_assert_uint_ge(rlen, 2);
	ck_assert_uint_le(rlen, resp_cap);
	if (ct_transcript != NULL) {
		ck_assert_r(ml_wr_bytes(ct_transcript, resp, rlen), 0);
	}
	if (out != NULL) {
		ck_assert_uint_le(rlen - 2, out_cap);
		memcpy(out, resp, rlen - 2);
	}
	if (ret_len != NULL) {
		*ret_len = rlen - 2;
	}
	return (uint16_t)((resp[rlen - 2] << 8) | resp[rlen - 1]);
}

static inline uint16_t
ct_send(struct chip *c, const uint8_t *cmd, size_t n, uint8_t *out,
    size_t out_cap, size_t *ret_len)
{
	return ct_send_cap(c, cmd, n, CHIP_MAX_RESP, out, out_cap, ret_len);
}

/*
 * Build (short or extended as needed) and send one command with a response
 * buffer of resp_cap bytes; out, out_cap and ret_len as for ct_send_cap.
 */
static inline uint16_t
ct_cmd_cap(struct chip *c, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
    const void *data, size_t nc, uint32_t ne, size_t resp_cap, uint8_t *out,
    size_t out_cap, size_t *ret_len)
{
	struct ml_wr w = ml_wr_dyn(CHIP_MAX_CMD);
	uint16_t sw;

	ck_assert_r(apdu_build(&w, cla, ins, p1, p2, data, nc, ne), 0);
	sw = ct_send_cap(c, w.p, w.len, resp_cap, out, out_cap, ret_len);
	ml_wr_free(&w);
	return sw;
}

/* Build and send one command. */
static inline uint16_t
ct_cmd(struct chip *c, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
    const void *data, size_t nc, uint32_t ne, uint8_t *out, size_t out_cap,
    size_t *ret_len)
{
	return ct_cmd_cap(c, cla, ins, p1, p2, data, nc, ne, CHIP_MAX_RESP,
	    out, out_cap, ret_len);
}

/* Same, no response data wanted. */
static inline uint16_t
ct_cmd0(struct chip *c, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
    const void *data, size_t nc)
{
	return ct_cmd(c, cla, ins, p1, p2, data, nc, 0, NULL, 0, NULL);
}

static inline uint16_t
ct_select(struct chip *c)
{
	uint8_t aid[CHIP_AID_LEN] = CHIP_AID_PREFIX;

	aid[CHIP_AID_PREFIX_LEN] = (uint8_t)chip_kind(c);
	return ct_cmd0(c, CLA_ISO, INS_SELECT, 0x04, 0x0C, aid, sizeof(aid));
}

/* lv8(a) lv8(b) into buf; returns the length. */
static inline size_t
ct_lv8x2(uint8_t *buf, const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);

	buf[0] = (uint8_t)na;
	memcpy(buf + 1, a, na);
	buf[1 + na] = (uint8_t)nb;
	memcpy(buf + 2 + na, b, nb);
	return 2 + na + nb;
}

static inline uint16_t
ct_init_token(struct chip *c, const char *so_pin, const char *label)
{
	uint8_t buf[80];

	return ct_cmd0(c, CLA_PROP, INS_INIT_TOKEN, 0, 0, buf,
	    ct_lv8x2(buf, so_pin, label));
}

static inline uint16_t
ct_verify(struct chip *c, uint8_t who, const char *pin)
{
	return ct_cmd0(c, CLA_ISO, INS_VERIFY, 0, who, pin, strlen(pin));
}

static inline uint16_t
ct_init_pin(struct chip *c, const char *pin)
{
	return ct_cmd0(c, CLA_ISO, INS_RESET_RETRY, 0, PIN_USER, pin, strlen(pin));
}

/* SELECT, INIT TOKEN, SO sets the user PIN, user logged in. */
static inline void
ct_personalise(struct chip *c, const char *so_pin, const char *user_pin)
{
	ck_assert_sw(ct_select(c), SW_OK);
	ck_assert_sw(ct_init_token(c, so_pin, "test token"), SW_OK);
	ck_assert_sw(ct_verify(c, PIN_SO, so_pin), SW_OK);
	ck_assert_sw(ct_init_pin(c, user_pin), SW_OK);
	ck_assert_sw(ct_verify(c, PIN_USER, user_pin), SW_OK);
}

#endif
