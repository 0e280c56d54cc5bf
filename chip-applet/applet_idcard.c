/*
 * Resident ID card stand-in profile (ID-6..ID-8): a card that holds a
 * plaintext configuration anyone may read and encrypted ID data that only
 * a SAM can open (idcard_format.h has both layouts).  It is personalised
 * once by tools/mintline-mkidcard and then locked.
 *
 * Personalisation needs no PIN: this is a test stand-in for a card made in
 * a government facility, and nothing on it is secret to the card itself
 * (the ID data arrives already encrypted under the SAM key).  LOCK makes it
 * read-only for good.
 *
 * Commands (states: PERSO = not locked, ISSUED = locked):
 *
 *	CLA INS name		states		data -> response
 *	00  DA  PUT DATA	PERSO		P1P2 0003; configuration
 *	00  D6  UPDATE BINARY	PERSO		P1P2 offset; data
 *	80  74  LOCK		PERSO		(needs config and data)
 *	00  CA  GET DATA	PERSO|ISSUED	P1 03 -> configuration;
 *						other P1: the core's GET DATA
 *	00  B0  READ BINARY	PERSO|ISSUED	P1P2 offset, Le -> data
 *
 * Offsets are 15 bits (P1 bit 8 clear; set would name a short EF, which
 * this card has not: 6A86).  READ BINARY at or past the end is 6B00; a
 * read that reaches the end returns what is left with 9000 (the host
 * stops at a short answer or 6B00).  UPDATE BINARY may write at most up
 * to the current end (no holes): 6B00 beyond it, 6A84 past
 * IDCARD_MAX_DATA.
 *
 *= REQ ID-8 (packets and retransmission)
 *# The encrypted ID data is held as several packets
 */
#include <stdlib.h>
#include <string.h>

#include "ml_wipe.h"

#include "chip_int.h"
#include "idcard_format.h"

/* The core's GET DATA (chip.c), for the P1 values this profile leaves. */
int	core_get_data(struct chip *c, const struct apdu *a, struct ml_wr *resp);

#define IDCARD_PERSO	CHIP_PERSO	/* being personalised */
#define IDCARD_ISSUED	CHIP_ISSUED	/* locked: read-only */
#define IDCARD_ANY	(IDCARD_PERSO | IDCARD_ISSUED)

/* The 15-bit offset in P1P2, or 6A86 if P1 names a short EF. */
static int
binary_offset(const struct apdu *a, size_t *ret_off)
{
	if ((a->p1 & 0x80) != 0) {
		return SW_INCORRECT_P1P2;
	}
	*ret_off = ((size_t)a->p1 << 8) | a->p2;
	return 0;
}

/* 00 DA 00 03 Lc config: checked against idcard_format.h, then stored. */
static int
idcard_put_data(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	size_t n = ml_rd_left(&a->data);
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(a->p1 == 0x00 && a->p2 == GD_CARD_CONFIG, SW_INCORRECT_P1P2);
	ML_ENSURE(n >= 1 && n <= IDC_CONFIG_MAX &&
	    n <= sizeof(c->st.card_config), SW_WRONG_LENGTH);
	if ((r = idc_config_decode(ml_rd_ptr(&a->data), n, NULL)) != 0) {
		r = SW_WRONG_DATA;	/* whatever the parse error: 6A80 */
		goto out;
	}
	memcpy(c->st.card_config, ml_rd_ptr(&a->data), n);
	c->st.card_config_len = n;
	ML_TRY(chip_commit(c));
	r = 0;
out:
	return r;
}

/* 00 D6 offH offL Lc data: write at offset, growing the data. */
static int
idcard_update_binary(struct chip *c, const struct apdu *a,
    struct ml_wr *resp)
{
	size_t n = ml_rd_left(&a->data), off = 0, end;
	uint8_t *p;
	int r = ML_ERR_INTERNAL;

	ML_TRY(binary_offset(a, &off));
	ML_ENSURE(n >= 1, SW_WRONG_LENGTH);
	ML_ENSURE(off <= c->st.card_data_len, SW_WRONG_P1P2);
	ML_ENSURE(n <= IDCARD_MAX_DATA && off <= IDCARD_MAX_DATA - n,
	    SW_NOT_ENOUGH_MEMORY);
	end = off + n;
	if (end > c->st.card_data_len) {
		/* grow by copy (never realloc: wipe the old block) */
		ML_ENSURE((p = calloc(1, end)) != NULL, ML_ERR_NOMEM);
		if (c->st.card_data_len > 0) {
			memcpy(p, c->st.card_data, c->st.card_data_len);
		}
		ml_freezero(c->st.card_data, c->st.card_data_len);
		c->st.card_data = p;
		c->st.card_data_len = end;
	}
	memcpy(c->st.card_data + off, ml_rd_ptr(&a->data), n);
	ML_TRY(chip_commit(c));
	r = 0;
out:
	return r;
}

/* 80 74 00 00: end of personalisation; needs a configuration and data. */
static int
idcard_lock(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	(void)resp;
	return chip_perso_lock(c, a, c->st.card_config_len > 0 &&
	    c->st.card_data_len > 0);
}

/*
 * 00 CA 03 00 Le -> the plaintext configuration.
 *
 *= REQ ID-6 (pre-read)
 *# the reader reads the card's plaintext configuration ... before any
 *# read command arrives
 */
static int
idcard_get_data(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	int r = ML_ERR_INTERNAL;

	if (a->p1 != GD_CARD_CONFIG) {
		return core_get_data(c, a, resp);
	}
	ML_ENSURE(a->p2 == 0, SW_INCORRECT_P1P2);
	ML_ENSURE(c->st.card_config_len > 0, SW_DATA_NOT_FOUND);
	ML_TRY(ml_wr_bytes(resp, c->st.card_config, c->st.card_config_len));
	r = 0;
out:
	return r;
}

/*
 * 00 B0 offH offL Le -> up to Ne bytes of the encrypted ID data.
 *
 *= REQ ID-7 (secure upload)
 *# else from the card
 */
static int
idcard_read_binary(struct chip *c, const struct apdu *a, struct ml_wr *resp)
{
	size_t off = 0, n;
	int r = ML_ERR_INTERNAL;

	ML_TRY(binary_offset(a, &off));
	ML_ENSURE(ml_rd_left(&a->data) == 0 && a->ne > 0, SW_WRONG_LENGTH);
	ML_ENSURE(off < c->st.card_data_len, SW_WRONG_P1P2);
	n = c->st.card_data_len - off;
	if (n > a->ne) {
		n = a->ne;
	}
	ML_TRY(ml_wr_bytes(resp, c->st.card_data + off, n));
	r = 0;
out:
	return r;
}

static const struct ins_entry idcard_ins[] = {
	{ CLA_ISO,  INS_PUT_DATA,	IDCARD_PERSO,	idcard_put_data,
	  "PUT DATA" },
	{ CLA_ISO,  INS_UPDATE_BINARY,	IDCARD_PERSO,	idcard_update_binary,
	  "UPDATE BINARY" },
	{ CLA_PROP, INS_LOCK,		IDCARD_PERSO,	idcard_lock,
	  "LOCK" },
	{ CLA_ISO,  INS_GET_DATA,	IDCARD_ANY,	idcard_get_data,
	  "GET DATA" },
	{ CLA_ISO,  INS_READ_BINARY,	IDCARD_ANY,	idcard_read_binary,
	  "READ BINARY" },
};

const struct chip_profile chip_profile_idcard = {
	.kind = CHIP_KIND_IDCARD,
	.name = "idcard",
	.ins = idcard_ins,
	.nins = ML_NELEM(idcard_ins),
	.state = chip_perso_state,
	.state_names = chip_perso_state_names,
	.nstates = ML_NELEM(chip_perso_state_names),
	.reset = NULL,
};
