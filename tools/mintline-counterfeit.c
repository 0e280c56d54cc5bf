/*
 * mintline-counterfeit: makes the counterfeits the demo and the tests
 * present to the verification desk.  Never installed.
 *
 *   forge GENUINE IMAGE PREFIX SERIAL
 *	a counterfeiter's own chip: the blank (never personalised) note chip
 *	IMAGE personalised with the counterfeiter's writer key as its
 *	"issuer" and the real server key (public: copied from the GENUINE
 *	note), then written through the normal commands with that key (the
 *	chip accepts; a desk must not).
 *   clone SRC DST
 *	DST (a personalised blank chip) gets SRC's chip serial and SRC's
 *	whole feature record, station signature included — everything a
 *	memory dump gives; the chip key cannot be copied (it never leaves
 *	the chip), so DST keeps its own.
 *   alter IMAGE
 *	rewrite the feature record of a written chip in place (one character
 *	of the keyed identification code), as an attacker with access to the
 *	chip memory would; the station signature stays the original.
 *
 * The store edits go through store_open()/store_commit() with the chip's
 * own device key (IMAGE.key), standing in for an attacker who controls
 * the silicon.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chip_state.h"
#include "feature.h"
#include "key_soft.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "note_chip.h"
#include "store.h"
#include "sw.h"
#include "tool_chip.h"

static int
state_load(const char *path, struct store **ret_s, struct chip_state *ret)
{
	uint8_t *p = NULL;
	size_t n = 0;
	int r;

	if ((r = store_open(path, ret_s, &p, &n)) != 0) {
		return r;
	}
	r = chip_state_parse(p, n, ret);
	ml_freezero(p, n);
	if (r != 0) {
		store_close(*ret_s);
	}
	return r;
}

static int
state_save(struct store *s, const struct chip_state *st)
{
	struct ml_wr w = ml_wr_dyn(STORE_MAX_PAYLOAD);
	int r;

	if ((r = chip_state_serialize(st, &w)) == 0) {
		r = store_commit(s, w.p, w.len);
	}
	ml_wr_free(&w);
	return r;
}

static int
do_clone(const char *src, const char *dst)
{
	struct store *ss = NULL, *ds = NULL;
	struct chip_state a, b;
	int r;

	if ((r = state_load(src, &ss, &a)) != 0) {
		return r;
	}
	if ((r = state_load(dst, &ds, &b)) != 0) {
		chip_state_clear(&a);
		store_close(ss);
		return r;
	}
	if (a.feature == NULL || b.feature != NULL) {
		r = ML_ERR_STATE;	/* from a written chip onto a blank one */
		goto out;
	}
	memcpy(b.serial, a.serial, sizeof(b.serial));
	free(b.feature);
	if ((b.feature = malloc(a.feature_len)) == NULL) {
		r = ML_ERR_NOMEM;
		goto out;
	}
	memcpy(b.feature, a.feature, a.feature_len);
	b.feature_len = a.feature_len;
	memcpy(b.feat_challenge, a.feat_challenge, sizeof(b.feat_challenge));
	memcpy(b.feat_sig, a.feat_sig, sizeof(b.feat_sig));
	b.feat_issuer = a.feat_issuer;
	b.flags |= INFO_F_WRITTEN;
	r = state_save(ds, &b);
out:
	chip_state_clear(&a);
	chip_state_clear(&b);
	store_close(ss);
	store_close(ds);
	return r;
}

static int
do_alter(const char *img)
{
	struct store *s = NULL;
	struct chip_state st;
	size_t i, bars = 0;
	int r;

	if ((r = state_load(img, &s, &st)) != 0) {
		return r;
	}
	r = ML_ERR_STATE;
	/* The 4th field (after 4 '|') is the keyed code: change its first
	 * character, keeping the record well formed. */
	for (i = 0; st.feature != NULL && i < st.feature_len; i++) {
		if (st.feature[i] == '|' && ++bars == 4 && i + 1 < st.feature_len) {
			st.feature[i + 1] = st.feature[i + 1] == 'A' ? 'B' : 'A';
			r = state_save(s, &st);
			break;
		}
	}
	chip_state_clear(&st);
	store_close(s);
	return r;
}

static int
do_forge(const char *genuine, const char *img, const char *prefix,
    const char *serial)
{
	uint8_t fpriv[ML_P256_PRIV_LEN], fpub[1][ML_P256_PUB_LEN];
	uint8_t srv[ML_P256_PUB_LEN], pub[ML_P256_PUB_LEN], fkey[FEATURE_KEY_LEN];
	char feat[FEATURE_MAX_LEN + 1];
	struct ml_p256_key *forger = NULL;
	struct key ko;
	struct tool_chip tc = { 0 };
	struct chip_info ci;
	struct note_id id;
	struct store *s = NULL;
	struct chip_state st;
	size_t flen;
	uint16_t sw;
	int r;

	/* The real server key: public, copied from any genuine note. */
	if ((r = state_load(genuine, &s, &st)) != 0) {
		return r;
	}
	memcpy(srv, st.server_pub, sizeof(srv));
	r = st.has_server ? 0 : ML_ERR_STATE;
	chip_state_clear(&st);
	store_close(s);
	ML_TRY(r);
	ML_TRY(ml_p256_keygen(fpriv, fpub[0]));
	ML_TRY(ml_p256_key_from_priv(fpriv, &forger));
	key_soft_init(&ko, forger);
	ML_TRY(ml_rand(fkey, sizeof(fkey)));
	ML_TRY(note_id_set(prefix, strlen(prefix), serial, strlen(serial), &id));
	ML_TRY(tool_chip_open(&tc, img));
	ML_TRY(chipcmd_info(&tc.cc, &ci));
	if ((ci.state & (INFO_F_INITIALIZED | INFO_F_LOCKED)) != 0) {
		r = ml_errf(ML_ERR_STATE, "%s (%s): not a blank chip", img,
		    ci.serial);
		goto out;
	}
	ML_TRY(note_chip_perso(&tc.cc, "87654321", "forged", fpub, 1, srv, pub));
	ML_TRY(feature_derive(fkey, &id, pub, feat, &flen));
	ML_TRY(note_chip_authorize(&tc.cc, &ko, ci.serial, (uint8_t *)feat, flen,
	    &sw));
	if (sw != SW_OK) {
		r = ml_errf(ML_ERR_REJECTED, "%s (%s): AUTHORIZE WRITE: %s "
		    "(SW %04X)", img, ci.serial, chipcmd_sw_text(sw), sw);
		goto out;
	}
	ML_TRY(note_chip_write(&tc.cc, (uint8_t *)feat, flen));
	r = 0;
out:
	tool_chip_close(&tc);
	ml_wipe(fpriv, sizeof(fpriv));
	ml_wipe(fkey, sizeof(fkey));
	ml_p256_key_free(forger);
	return r;
}

int
main(int argc, char **argv)
{
	int r;

	if (argc == 6 && strcmp(argv[1], "forge") == 0) {
		r = do_forge(argv[2], argv[3], argv[4], argv[5]);
	} else if (argc == 4 && strcmp(argv[1], "clone") == 0) {
		r = do_clone(argv[2], argv[3]);
	} else if (argc == 3 && strcmp(argv[1], "alter") == 0) {
		r = do_alter(argv[2]);
	} else {
		fprintf(stderr, "usage: mintline-counterfeit forge GENUINE IMAGE PREFIX SERIAL"
		    " | clone SRC DST | alter IMAGE\n");
		return 1;
	}
	if (r != 0) {
		fprintf(stderr, "mintline-counterfeit %s: %s\n", argv[1],
		    ml_errmsg(r));
		return 1;
	}
	return 0;
}
