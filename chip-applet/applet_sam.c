/*
 * SAM profile (ID-10): a security access module as a server reaches a real
 * one, in a SAM slot behind PC/SC.  It holds the SAM key that opens the
 * ID-card stand-in's encrypted ID data (idcard_format.h) and decodes one
 * card per command: the server's pcsc: SAM back-end (server/sam_pcsc.c)
 * sends a card's configuration and encrypted data, the SAM answers the
 * plaintext ID information.  The key never leaves the chip: no command
 * reads it back.
 *
 * Personalisation needs no PIN, like the ID-card stand-in: this is a test
 * stand-in for a module keyed in a secure facility (tools/mintline-mksam).
 * LOCK ends it for good; DECODE works only after it.
 *
 * Commands (states: PERSO = not locked, ISSUED = locked):
 *
 *	CLA INS name		states		data -> response
 *	80  D8  PUT SAM KEY	PERSO		key (32 bytes)
 *	80  74  LOCK		PERSO		(needs the key)
 *	80  D0  SAM DECODE	ISSUED		lv8(configuration) encrypted data
 *						-> ID information TLVs
 *
 * DECODE answers 6982 (security status) when the data does not open with
 * the SAM key (another SAM's card, a tampered card) and 6A80 when the
 * configuration or the decrypted data is malformed.  The command is
 * extended-length (config + data up to IDCARD_MAX_DATA); the answer fits
 * an extended Le or is chained with 61xx.
 */
#include <stdlib.h>
#include <string.h>

#include "ml_wipe.h"

#include "chip_int.h"
#include "idcard_format.h"

#define SAM_PERSO	CHIP_PERSO	/* being keyed */
#define SAM_ISSUED	CHIP_ISSUED	/* locked: decodes */

/* 80 D8 00 00 20 key: the SAM key (replaces an earlier one). */
static int
sam_put_key(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	int r = ML_ERR_INTERNAL;

	(void)resp;
	ML_ENSURE(a->p1 == 0 && a->p2 == 0, SW_INCORRECT_P1P2);
	ML_ENSURE(ml_rd_left(&a->data) == IDC_SAM_KEY_LEN, SW_WRONG_LENGTH);
	memcpy(c->st.sam_key, ml_rd_ptr(&a->data), IDC_SAM_KEY_LEN);
	c->st.has_sam_key = true;
	ML_TRY(chip_commit(c));
	r = 0;
out:
	return r;
}

/* 80 74 00 00: end of personalisation; needs the key. */
static int
sam_lock(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	(void)resp;
	return chip_perso_lock(c, a, c->st.has_sam_key);
}

/*
 * 80 D0 00 00 Lc lv8(config) data Le: open the card's encrypted ID data
 * with the SAM key and answer the ID information (what the in-process
 * SAM emulator, server/sam_emul.c, does).
 *
 *= REQ ID-10 (remote SAM)
 *# gets the plaintext ID information
 */
static int
sam_decode(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	struct ml_rd rd = a->data, cfgv;
	struct idc_config cfg;
	struct idc_info *ii = NULL;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(a->p1 == 0 && a->p2 == 0, SW_INCORRECT_P1P2);
	ML_ENSURE(a->ne > 0, SW_WRONG_LENGTH);
	if (ml_rd_lv8(&rd, IDC_CONFIG_MAX, &cfgv) != 0 ||
	    ml_rd_left(&rd) == 0) {
		r = SW_WRONG_LENGTH;
		goto out;
	}
	if (idc_config_decode(ml_rd_ptr(&cfgv), ml_rd_left(&cfgv), &cfg) != 0) {
		r = SW_WRONG_DATA;
		goto out;
	}
	ML_ENSURE((ii = malloc(sizeof(*ii))) != NULL, ML_ERR_NOMEM);
	r = idc_data_open(c->st.sam_key, cfg.serial, ml_rd_ptr(&rd),
	    ml_rd_left(&rd), ii);
	if (r == ML_ERR_AUTH) {
		r = SW_SECURITY_NOT_SATISFIED;	/* not a card of this SAM */
		goto out;
	}
	if (r != 0) {
		r = SW_WRONG_DATA;
		goto out;
	}
	ML_TRY(idc_info_encode(ii, resp));
	r = 0;
out:
	if (ii != NULL) {
		idc_info_clear(ii);
		free(ii);
	}
	return r;
}

static const struct ins_entry sam_ins[] = {
	{ CLA_PROP, INS_SAM_PUT_KEY,	SAM_PERSO,	sam_put_key,
	  "PUT SAM KEY" },
	{ CLA_PROP, INS_LOCK,		SAM_PERSO,	sam_lock,
	  "LOCK" },
	{ CLA_PROP, INS_SAM_DECODE,	SAM_ISSUED,	sam_decode,
	  "SAM DECODE" },
};

const struct chip_profile chip_profile_sam = {
	.kind = CHIP_KIND_SAM,
	.name = "sam",
	.ins = sam_ins,
	.nins = ML_NELEM(sam_ins),
	.state = chip_perso_state,
	.state_names = chip_perso_state_names,
	.nstates = ML_NELEM(chip_perso_state_names),
	.reset = NULL,		/* no RAM state: each DECODE stands alone */
};
