/*
 * libFuzzer target: the whole card OS through chip_transmit -- the APDU
 * codec, the dispatcher and every profile's handlers.
 *
 * At start-up eight chip images are made in a scratch directory (on
 * /dev/shm when it is writable): each kind (reader, note, idcard, sam), blank
 * and personalised, and their bytes kept in memory.  Every input starts
 * from the image as made: the copies are written back over the image and
 * the chip powered on afresh.  That costs a little per input but makes
 * every finding reproducible from its input alone, and lets LeakSanitizer
 * see balanced allocations (a chip kept open across inputs accumulates
 * state, which libFuzzer's leak check takes for a leak on every run and
 * then scans the heap each time, at 30 ms a run).
 *
 * Input:
 *	byte 0		bits 0-2: chip (kind = i / 2 + 1, personalised = i & 1)
 *			bit 5: log the user in first; bit 6: SELECT first;
 *			bit 7: a host with a 258-byte response buffer
 *	then chunks	u16be length L, then L bytes sent as one command APDU
 *			(the last one takes what is left); L >= 0xFFF0 are
 *			macros the fuzzer could not easily find on its own:
 *			FFFF n feature[n]: GET CHALLENGE, then AUTHORIZE WRITE
 *			     signed with the installed issuer key (note);
 *			FFFE: WRITE FEATURE with that feature;
 *			FFFD / FFFC: VERIFY with the user / SO PIN.
 *
 * FUZZ_CHIP_TRACE=1 in the environment prints each command and its SW.
 *
 * Oracle, besides the sanitizers: every answer has a status word and fits
 * the host's buffer, and no answer carries a private scalar, a volatile
 * secret key, the reader's random cache key or the SAM key.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ml_err.h"
#include "ml_log.h"
#include "ml_ossl.h"
#include "ml_wr.h"
#include "apdu.h"
#include "chip_int.h"
#include "idcard_format.h"
#include "note_msg.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)	do { if (!(cond)) { \
	fprintf(stderr, "fuzz_chip: check failed: %s (line %d)\n", #cond, \
	    __LINE__); abort(); } } while (0)

#define NCHIPS		8
#define MAX_APDUS	64
#define SO_PIN		"87654321"
#define USER_PIN	"1234"

struct fchip {
	char		 path[512];
	struct chip	*c;
	uint8_t		*image;		/* the image as personalised */
	size_t		 image_len;
};

static char scratch[256];
static struct fchip chips[NCHIPS];
static struct ml_p256_key *issuer;
static uint8_t issuer_pub[ML_P256_PUB_LEN], server_pub[ML_P256_PUB_LEN];
static uint8_t feature[256];
static size_t feature_len;
static uint8_t resp[CHIP_MAX_RESP];
static int trace;	/* FUZZ_CHIP_TRACE=1: each command and SW to stderr */

static void
cleanup(void)
{
	char p[600];
	int i;

	for (i = 0; i < NCHIPS; i++) {
		chip_close(chips[i].c);
		chips[i].c = NULL;
		unlink(chips[i].path);
		snprintf(p, sizeof(p), "%s.key", chips[i].path);
		unlink(p);
	}
	rmdir(scratch);
}

/* The input being run: bytes the attacker already knows. */
static const uint8_t *cur_in;
static size_t cur_len;

/*
 * Secret s is leaked when the answer carries it and the input did not.
 * An echo of input bytes is no leak: libFuzzer learns the needles of the
 * memmem() calls here (its memmem hook puts them in its dictionary) and
 * then writes them into data that the chip rightly gives back (CACHE PUT
 * DATA, then CACHE GET); without this exemption that is a false alarm.
 */
static bool
leaked(const uint8_t *r, size_t n, const uint8_t *s, size_t sn)
{
	return memmem(r, n, s, sn) != NULL &&
	    (cur_in == NULL || memmem(cur_in, cur_len, s, sn) == NULL);
}

/* No answer may carry key material the chip holds. */
static void
check_no_secrets(const struct chip *c, const uint8_t *r, size_t n)
{
	size_t i;

	for (i = 0; i < c->st.nobjs; i++) {
		if (c->st.objs[i].has_priv) {
			CHECK(!leaked(r, n, c->st.objs[i].priv, ML_P256_PRIV_LEN));
		}
	}
	for (i = 0; i < CHIP_MAX_SECRETS; i++) {
		if (c->secrets[i].used) {
			CHECK(!leaked(r, n, c->secrets[i].key, ML_AES256_KEY_LEN));
		}
	}
	if (c->st.has_sam_key) {
		CHECK(!leaked(r, n, c->st.sam_key, sizeof(c->st.sam_key)));
	}
	if (c->has_cache_key) {
		CHECK(!leaked(r, n, c->cache_key, ML_AES256_KEY_LEN));
	}
}

/* Send one command; returns the SW, the data length in *ret_n. */
static uint16_t
xmit(struct chip *c, const uint8_t *cmd, size_t len, size_t cap, size_t *ret_n)
{
	size_t rlen = 0;

	CHECK(chip_transmit(c, cmd, len, resp, cap, &rlen) == 0);
	CHECK(rlen >= 2 && rlen <= cap);
	check_no_secrets(c, resp, rlen);
	if (trace) {
		fprintf(stderr, "  %s %02X %02X (%zu bytes) -> %zu bytes, SW %02X%02X\n",
		    chip_serial(c), len > 0 ? cmd[0] : 0, len > 1 ? cmd[1] : 0, len,
		    rlen - 2, resp[rlen - 2], resp[rlen - 1]);
	}
	if (ret_n != NULL) {
		*ret_n = rlen - 2;
	}
	return (uint16_t)(resp[rlen - 2] << 8 | resp[rlen - 1]);
}

static uint16_t
cmd(struct chip *c, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
    const void *data, size_t nc, uint32_t ne, size_t cap, size_t *ret_n)
{
	uint8_t buf[4 + 3 + 2048 + 3];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));

	CHECK(apdu_build(&w, cla, ins, p1, p2, data, nc, ne) == 0);
	return xmit(c, w.p, w.len, cap, ret_n);
}

static uint16_t
select_applet(struct chip *c, size_t cap)
{
	uint8_t aid[CHIP_AID_LEN] = CHIP_AID_PREFIX;

	aid[CHIP_AID_PREFIX_LEN] = (uint8_t)chip_kind(c);
	return cmd(c, CLA_ISO, INS_SELECT, 0x04, 0x0C, aid, sizeof(aid), 0, cap,
	    NULL);
}

static uint16_t
verify(struct chip *c, uint8_t who, const char *pin, size_t cap)
{
	return cmd(c, CLA_ISO, INS_VERIFY, 0, who, pin, strlen(pin), 0, cap,
	    NULL);
}

/* Personalisation steps: a failure only means less coverage; say so. */
static void
step(const char *what, uint16_t sw)
{
	if (sw != SW_OK) {
		fprintf(stderr, "fuzz_chip: personalisation step %s: SW %04X\n",
		    what, sw);
	}
}

static void
personalise(struct chip *c)
{
	static const uint8_t empty_attrs[4] = { 0, 0, 0, 0 };
	uint8_t buf[64];
	size_t n = 0;

	step("SELECT", select_applet(c, CHIP_MAX_RESP));
	buf[n++] = sizeof(SO_PIN) - 1;
	memcpy(buf + n, SO_PIN, sizeof(SO_PIN) - 1);
	n += sizeof(SO_PIN) - 1;
	buf[n++] = 4;
	memcpy(buf + n, "fuzz", 4);
	n += 4;
	step("INIT TOKEN", cmd(c, CLA_PROP, INS_INIT_TOKEN, 0, 0, buf, n, 0,
	    CHIP_MAX_RESP, NULL));
	step("VERIFY SO", verify(c, PIN_SO, SO_PIN, CHIP_MAX_RESP));
	step("RESET RETRY", cmd(c, CLA_ISO, INS_RESET_RETRY, 0, PIN_USER,
	    USER_PIN, strlen(USER_PIN), 0, CHIP_MAX_RESP, NULL));
	switch (chip_kind(c)) {
	case CHIP_KIND_READER:
		step("VERIFY user", verify(c, PIN_USER, USER_PIN, CHIP_MAX_RESP));
		step("GEN KEYPAIR", cmd(c, CLA_PROP, INS_GEN_KEYPAIR, 0, 0,
		    empty_attrs, sizeof(empty_attrs), 256, CHIP_MAX_RESP, NULL));
		step("CREATE OBJECT", cmd(c, CLA_PROP, INS_CREATE_OBJECT, 0, 0,
		    "\x00\x00" "data", 6, 0, CHIP_MAX_RESP, NULL));
		break;
	case CHIP_KIND_NOTE:
		step("GEN CHIPKEY", cmd(c, CLA_PROP, INS_GEN_KEYPAIR,
		    GENKEY_CHIPKEY, 0, empty_attrs, sizeof(empty_attrs), 256,
		    CHIP_MAX_RESP, NULL));
		step("INSTALL ISSUER", cmd(c, CLA_PROP, INS_INSTALL_ISSUER, 0, 0,
		    issuer_pub, sizeof(issuer_pub), 0, CHIP_MAX_RESP, NULL));
		step("INSTALL SERVER", cmd(c, CLA_PROP, INS_INSTALL_SERVER, 0, 0,
		    server_pub, sizeof(server_pub), 0, CHIP_MAX_RESP, NULL));
		step("LOCK", cmd(c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0,
		    CHIP_MAX_RESP, NULL));
		break;
	case CHIP_KIND_IDCARD: {
		struct idc_config cfg = { .bitrate_kbps = 424, .max_frame = 256 };
		uint8_t cb[IDC_CONFIG_MAX], data[300];
		struct ml_wr w = ML_WR_FIXED(cb, sizeof(cb));

		memcpy(cfg.serial, "IDC00001", IDC_SERIAL_LEN);
		memcpy(cfg.appdata, "app", 3);
		cfg.appdata_len = 3;
		strcpy(cfg.proto, "ISO14443B");
		memset(data, 0xA5, sizeof(data));
		if (idc_config_encode(&cfg, &w) == 0) {
			step("PUT DATA", cmd(c, CLA_ISO, INS_PUT_DATA, 0,
			    GD_CARD_CONFIG, w.p, w.len, 0, CHIP_MAX_RESP, NULL));
		}
		step("UPDATE BINARY", cmd(c, CLA_ISO, INS_UPDATE_BINARY, 0, 0,
		    data, sizeof(data), 0, CHIP_MAX_RESP, NULL));
		step("LOCK", cmd(c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0,
		    CHIP_MAX_RESP, NULL));
		break;
	}
	case CHIP_KIND_SAM: {
		uint8_t key[IDC_SAM_KEY_LEN];

		memset(key, 0x5A, sizeof(key));	/* as mintline-mksam keys it */
		step("PUT SAM KEY", cmd(c, CLA_PROP, INS_SAM_PUT_KEY, 0, 0, key,
		    sizeof(key), 0, CHIP_MAX_RESP, NULL));
		step("LOCK", cmd(c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0,
		    CHIP_MAX_RESP, NULL));
		break;
	}
	}
}

static uint8_t *
slurp(const char *path, size_t *ret_len)
{
	struct stat sb;
	uint8_t *p;
	int fd;

	CHECK((fd = open(path, O_RDONLY)) >= 0);
	CHECK(fstat(fd, &sb) == 0);
	CHECK((p = malloc((size_t)sb.st_size + 1)) != NULL);
	CHECK(pread(fd, p, (size_t)sb.st_size, 0) == sb.st_size);
	close(fd);
	*ret_len = (size_t)sb.st_size;
	return p;
}

/*
 * Put the image back as it was made and power up again.  Only the bytes
 * the store reads matter: each slot's header and the payload its length
 * field names (store.h), so only those are written.
 */
static void
restore(struct fchip *f)
{
	size_t slot, off, len;
	const uint8_t *h;
	int fd;

	chip_close(f->c);
	f->c = NULL;
	CHECK((fd = open(f->path, O_WRONLY)) >= 0);
	for (slot = 0; slot < 2; slot++) {
		off = slot * STORE_SLOT_SIZE;
		if (off + STORE_HDR_LEN > f->image_len) {
			break;
		}
		h = f->image + off;
		len = STORE_HDR_LEN + ((size_t)h[8] << 24 | (size_t)h[9] << 16 |
		    (size_t)h[10] << 8 | h[11]);
		if (len > STORE_SLOT_SIZE || off + len > f->image_len) {
			len = STORE_HDR_LEN;	/* an empty slot: its header */
		}
		CHECK(pwrite(fd, h, len, (off_t)off) == (ssize_t)len);
	}
	close(fd);
	CHECK(chip_open(f->path, &f->c) == 0);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t issuer_priv[ML_P256_PRIV_LEN], server_priv[ML_P256_PRIV_LEN];
	char serial[CHIP_SERIAL_LEN + 1];
	int i;

	CHECK(ml_ossl_init() == 0);
	ml_log_set_level(ML_LOG_ERROR);
	trace = getenv("FUZZ_CHIP_TRACE") != NULL;
	snprintf(scratch, sizeof(scratch), "%s/mlfuzz-XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	CHECK(mkdtemp(scratch) != NULL);
	atexit(cleanup);
	CHECK(ml_p256_keygen(issuer_priv, issuer_pub) == 0);
	CHECK(ml_p256_key_from_priv(issuer_priv, &issuer) == 0);
	CHECK(ml_p256_keygen(server_priv, server_pub) == 0);
	for (i = 0; i < NCHIPS; i++) {
		struct fchip *f = &chips[i];

		snprintf(f->path, sizeof(f->path), "%s/chip%d.img", scratch, i);
		snprintf(serial, sizeof(serial), "FUZZ%04d", i);
		CHECK(chip_manufacture(f->path, (enum chip_kind)(i / 2 + 1),
		    serial) == 0);
		if (i & 1) {
			CHECK(chip_open(f->path, &f->c) == 0);
			personalise(f->c);
			chip_close(f->c);
			f->c = NULL;
		}
		f->image = slurp(f->path, &f->image_len);
		CHECK(chip_open(f->path, &f->c) == 0);
	}
	return 0;
}

/* GET CHALLENGE, then AUTHORIZE WRITE over feat signed by the issuer. */
static void
macro_authorize(struct chip *c, const uint8_t *feat, size_t n, size_t cap)
{
	uint8_t chal[NOTE_CHALLENGE_LEN], msg_buf[512], md[ML_SHA256_LEN];
	uint8_t body[2 + 256 + ML_P256_SIG_LEN];
	struct ml_wr msg = ML_WR_FIXED(msg_buf, sizeof(msg_buf));
	size_t got = 0;

	memcpy(feature, feat, n);
	feature_len = n;
	if (cmd(c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0,
	    NOTE_CHALLENGE_LEN, cap, &got) != SW_OK || got != NOTE_CHALLENGE_LEN) {
		return;
	}
	memcpy(chal, resp, sizeof(chal));
	CHECK(note_msg_auth(&msg, chal, chip_serial(c), feat, n) == 0);
	CHECK(ml_sha256(msg.p, msg.len, md) == 0);
	body[0] = (uint8_t)(n >> 8);
	body[1] = (uint8_t)n;
	memcpy(body + 2, feat, n);
	CHECK(ml_p256_sign_digest(issuer, md, sizeof(md), body + 2 + n) == 0);
	(void)cmd(c, CLA_PROP, INS_AUTHORIZE_WRITE, 0, 0, body,
	    2 + n + ML_P256_SIG_LEN, 256, cap, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fchip *f;
	struct chip *c;
	size_t off = 1, len, cap, napdu = 0, n;
	uint8_t flags;

	if (size < 1) {
		return 0;
	}
	cur_in = data;
	cur_len = size;
	flags = data[0];
	f = &chips[(flags & 7) % NCHIPS];
	restore(f);
	c = f->c;
	cap = (flags & 0x80) ? 258 : CHIP_MAX_RESP;
	if (flags & 0x40) {
		(void)select_applet(c, cap);
	}
	if (flags & 0x20) {
		(void)verify(c, PIN_USER, USER_PIN, cap);
	}
	while (off < size && napdu++ < MAX_APDUS) {
		if (size - off < 2) {
			len = size - off;	/* a lone byte: a 1-byte APDU */
		} else {
			len = (size_t)data[off] << 8 | data[off + 1];
			off += 2;
		}
		switch (len) {
		case 0xFFFF:
			n = off < size ? data[off++] : 0;
			n = n == 0 ? 1 : n;
			if (n > size - off) {
				n = size - off;
			}
			if (n > 0) {
				macro_authorize(c, data + off, n, cap);
			}
			off += n;
			continue;
		case 0xFFFE:
			if (feature_len > 0) {
				(void)cmd(c, CLA_PROP, INS_WRITE_FEATURE, 0, 0, feature,
				    feature_len, 0, cap, NULL);
			}
			continue;
		case 0xFFFD:
			(void)verify(c, PIN_USER, USER_PIN, cap);
			continue;
		case 0xFFFC:
			(void)verify(c, PIN_SO, SO_PIN, cap);
			continue;
		default:
			break;
		}
		if (len > size - off) {
			len = size - off;
		}
		(void)xmit(c, data + off, len, cap, NULL);
		off += len;
	}
	return 0;
}
