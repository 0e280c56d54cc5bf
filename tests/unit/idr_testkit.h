/*
 * Fixture for the ID-reading tests and benchmark (test_idpkt.c,
 * test_idread.c, tests/bench/bench_idread.c): a scratch directory with an
 * in-process line (position 0: a reader secure chip, position 1: the RF
 * field), ID-card stand-ins personalised as tools/mintline-mkidcard does,
 * the SAM test key, a SAM emulator and an idr_srv behind a loopback link.
 *
 * Header-only (static functions); no Check dependency, so the benchmark
 * can use it.  Functions return 0 or ML_ERR_*.
 */
#ifndef IDR_TESTKIT_H
#define IDR_TESTKIT_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "ml_err.h"
#include "ml_ossl.h"
#include "ml_secret.h"
#include "ml_wr.h"
#include "apdu.h"
#include "chip.h"
#include "chip_proto.h"
#include "chiplink.h"
#include "chipcmd.h"
#include "idcard_format.h"
#include "sw.h"

#include "idpkt.h"
#include "idr_client.h"
#include "idr_reader.h"
#include "idr_srv.h"
#include "sam.h"

#define TK_SO_PIN	"87654321"
#define TK_USER_PIN	"1234"
#define TK_READER_SLOT	0
#define TK_CARD_SLOT	1

struct tk {
	char			 dir[256];
	uint8_t			 sam_key[IDC_SAM_KEY_LEN];
	char			 sam_spec[600];
	struct chiplink		*link;
	struct sam		*sam;
	struct idr_srv		*srv;
	struct hs_peer		 peer;
	struct idr_reader	*rdr;
};

static inline int
tk_write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL) {
		return ML_ERR_IO;
	}
	if (fwrite(p, 1, n, f) != n) {
		fclose(f);
		return ML_ERR_IO;
	}
	return fclose(f) == 0 ? 0 : ML_ERR_IO;
}

/* Realistic ID information for a seed (idcard_format.h). */
static inline void
tk_fill_info(uint64_t seed, struct idc_info *ii)
{
	char first17[18];
	size_t i;

	memset(ii, 0, sizeof(*ii));
	snprintf(ii->name, sizeof(ii->name), "张三%u", (unsigned)(seed % 100));
	ii->sex = seed % 2 ? IDC_SEX_MALE : IDC_SEX_FEMALE;
	snprintf(ii->nation, sizeof(ii->nation), "汉");
	snprintf(ii->birth, sizeof(ii->birth), "19%02u0315",
	    (unsigned)(50 + seed % 50));
	snprintf(ii->address, sizeof(ii->address),
	    "北京市东城区景山前街%u号", (unsigned)(seed % 1000));
	snprintf(first17, sizeof(first17), "110101%s%03u", ii->birth,
	    (unsigned)(seed % 1000));
	snprintf(ii->idnum, sizeof(ii->idnum), "%s%c", first17,
	    idc_idnum_check_char(first17));
	snprintf(ii->authority, sizeof(ii->authority), "北京市公安局东城分局");
	snprintf(ii->valid_from, sizeof(ii->valid_from), "20200101");
	snprintf(ii->valid_until, sizeof(ii->valid_until), "20400101");
	ii->photo_len = (size_t)snprintf((char *)ii->photo, sizeof(ii->photo),
	    "P5\n32 32\n255\n");
	for (i = 0; i < 1024; i++) {
		ii->photo[ii->photo_len++] = (uint8_t)(i * 7 + seed);
	}
	for (i = 0; i < 1024; i++) {
		ii->finger[i] = (uint8_t)(i ^ seed);
	}
	ii->finger_len = 1024;
}

static inline int
tk_xfer(struct chip *c, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
    const uint8_t *d, size_t n)
{
	static uint8_t cmd[CHIP_MAX_CMD], resp[CHIP_MAX_RESP];
	struct ml_wr w = ML_WR_FIXED(cmd, sizeof(cmd));
	size_t rlen = 0;
	int r;

	ML_TRY(apdu_build(&w, cla, ins, p1, p2, d, n, 0));
	ML_TRY(chip_transmit(c, w.p, w.len, resp, sizeof(resp), &rlen));
	ML_ENSURE(rlen >= 2 && resp[rlen - 2] == 0x90 && resp[rlen - 1] == 0,
	    ML_ERR_REJECTED);
	r = 0;
out:
	return r;
}

/*
 * Make an ID card stand-in at DIR/NAME.img for seed, its data sealed under
 * key (the SAM test key, or another for "unknown card" tests).
 */
static inline int
tk_make_card_key(struct tk *t, const char *name, uint64_t seed,
    const uint8_t key[static IDC_SAM_KEY_LEN], char *ret_path, size_t cap)
{
	uint8_t aid[CHIP_AID_LEN] = CHIP_AID_PREFIX;
	struct idc_config cfg;
	struct idc_info *ii = NULL;
	struct ml_wr cw = ml_wr_dyn(IDC_CONFIG_MAX);
	struct ml_wr dw = ml_wr_dyn(IDCARD_MAX_DATA);
	struct chip *c = NULL;
	char serial[CHIP_SERIAL_LEN + 1];
	size_t off, n, i;
	int r;

	snprintf(ret_path, cap, "%s/%s.img", t->dir, name);
	snprintf(serial, sizeof(serial), "IDC%013llu", (unsigned long long)seed);
	memset(&cfg, 0, sizeof(cfg));
	for (i = 0; i < IDC_SERIAL_LEN; i++) {
		cfg.serial[i] = (uint8_t)(seed >> (8 * (i % 8))) ^ (uint8_t)i;
	}
	cfg.appdata[0] = 0;
	cfg.appdata[1] = 0x12;
	cfg.appdata[2] = 0x34;
	cfg.appdata[3] = 1;
	cfg.appdata_len = 4;
	memcpy(cfg.proto, "ISO14443B", sizeof("ISO14443B"));
	cfg.bitrate_kbps = 106;
	cfg.max_frame = 256;
	ML_ENSURE((ii = malloc(sizeof(*ii))) != NULL, ML_ERR_NOMEM);
	tk_fill_info(seed, ii);
	ML_TRY(idc_config_encode(&cfg, &cw));
	ML_TRY(idc_data_seal(key, cfg.serial, ii, &dw));
	ML_TRY(chip_manufacture(ret_path, CHIP_KIND_IDCARD, serial));
	ML_TRY(chip_open(ret_path, &c));
	aid[CHIP_AID_PREFIX_LEN] = CHIP_KIND_IDCARD;
	ML_TRY(tk_xfer(c, CLA_ISO, INS_SELECT, 0x04, 0x0C, aid, sizeof(aid)));
	ML_TRY(tk_xfer(c, CLA_ISO, INS_PUT_DATA, 0, GD_CARD_CONFIG, cw.p,
	    cw.len));
	for (off = 0; off < dw.len; off += n) {
		n = dw.len - off < 240 ? dw.len - off : 240;
		ML_TRY(tk_xfer(c, CLA_ISO, INS_UPDATE_BINARY,
		    (uint8_t)(off >> 8), (uint8_t)off, dw.p + off, n));
	}
	ML_TRY(tk_xfer(c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0));
	r = 0;
out:
	chip_close(c);
	if (ii != NULL) {
		idc_info_clear(ii);
		free(ii);
	}
	ml_wr_free(&cw);
	ml_wr_free(&dw);
	return r;
}

static inline int
tk_make_card(struct tk *t, const char *name, uint64_t seed, char *ret_path,
    size_t cap)
{
	return tk_make_card_key(t, name, seed, t->sam_key, ret_path, cap);
}

static inline int
tk_loop_connect(void *ctx, struct idr_link *ret)
{
	struct tk *t = ctx;

	return idr_link_loop(idr_srv_handle, t->srv, &t->peer, ret);
}

/*
 * Scratch dir (under base), line with 2 positions, reader chip at 0
 * personalised (mode: CACHE_MODE_*), SAM, server; reader opened with
 * idle_ms unless open_reader is false.
 */
static inline int
tk_init(struct tk *t, const char *base, uint8_t mode, uint32_t idle_ms,
    const struct idr_srv_cfg *scfg, bool open_reader)
{
	struct idr_reader_cfg rc;
	char p[512], spec[300];
	int r;

	memset(t, 0, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "%s/mlidr-XXXXXX", base);
	ML_ENSURE(mkdtemp(t->dir) != NULL, ML_ERR_IO);
	snprintf(p, sizeof(p), "%s/sam.key", t->dir);
	ML_TRY(ml_keyfile_create(p, sizeof(t->sam_key)));
	ML_TRY(ml_keyfile_read(p, t->sam_key, sizeof(t->sam_key)));
	snprintf(t->sam_spec, sizeof(t->sam_spec), "emul:%s", p);
	snprintf(p, sizeof(p), "%s/positions", t->dir);
	ML_TRY(tk_write_file(p, "2\n", 2));
	snprintf(p, sizeof(p), "%s/reader.img", t->dir);
	ML_TRY(chip_manufacture(p, CHIP_KIND_READER, "RDR-TEST-0001"));
	snprintf(spec, sizeof(spec), "inproc:%s", t->dir);
	ML_TRY(chiplink_open(spec, &t->link));
	ML_TRY(chiplink_inproc_feed(t->link, TK_READER_SLOT, p));
	ML_TRY(idr_reader_personalize(t->link, TK_READER_SLOT, TK_SO_PIN,
	    TK_USER_PIN, mode));
	ML_TRY(sam_open(t->sam_spec, &t->sam));
	ML_TRY(idr_srv_new(scfg, t->sam, &t->srv));
	t->peer.flow = HS_FLOW_A;
	t->peer.kind = HS_KIND_READER;
	snprintf(t->peer.serial, sizeof(t->peer.serial), "RDR-TEST-0001");
	snprintf(t->peer.certno, sizeof(t->peer.certno), "01");
	if (open_reader) {
		memset(&rc, 0, sizeof(rc));
		rc.reader_slot = TK_READER_SLOT;
		rc.card_slot = TK_CARD_SLOT;
		rc.pin = TK_USER_PIN;
		rc.idle_ms = idle_ms;
		ML_TRY(idr_reader_open(t->link, &rc, &t->rdr));
	}
	r = 0;
out:
	return r;
}

static inline void
tk_fini(struct tk *t)
{
	char p[600];
	struct dirent *de;
	DIR *d;

	idr_reader_close(t->rdr);
	t->rdr = NULL;
	chiplink_close(t->link);
	idr_srv_free(t->srv);
	sam_close(t->sam);
	if ((d = opendir(t->dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.') {
				continue;
			}
			snprintf(p, sizeof(p), "%s/%s", t->dir, de->d_name);
			(void)unlink(p);
		}
		closedir(d);
	}
	(void)rmdir(t->dir);
}

/* Put a card into the field (NULL: take it out). */
static inline int
tk_feed(struct tk *t, const char *img)
{
	return chiplink_inproc_feed(t->link, TK_CARD_SLOT, img);
}

#endif
