#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ml_rd.h"
#include "ml_tlv.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "apdu.h"
#include "chip.h"
#include "chip_proto.h"
#include "sw.h"
#include "chipcmd.h"

const char *
chipcmd_sw_text(uint16_t sw)
{
	if ((sw & 0xFFF0) == 0x63C0) {
		return "PIN incorrect";
	}
	switch (sw) {
	case SW_OK:			return "success";
	case SW_MEMORY_FAILURE:		return "memory failure";
	case SW_WRONG_LENGTH:		return "wrong length";
	case SW_SECURITY_NOT_SATISFIED:	return "security status not satisfied";
	case SW_AUTH_BLOCKED:		return "PIN or key blocked";
	case SW_DATA_INVALID:		return "reference data not usable "
					    "(signature or data refused)";
	case SW_CONDITIONS_NOT_SATISFIED: return "conditions of use not "
					    "satisfied";
	case SW_COMMAND_NOT_ALLOWED:	return "command not allowed";
	case SW_WRONG_DATA:		return "wrong data";
	case SW_FUNC_NOT_SUPPORTED:	return "function not supported";
	case SW_FILE_NOT_FOUND:		return "file or application not found";
	case SW_NOT_ENOUGH_MEMORY:	return "not enough memory";
	case SW_INCORRECT_P1P2:		return "incorrect parameters P1-P2";
	case SW_DATA_NOT_FOUND:		return "referenced data not found";
	case SW_WRONG_P1P2:		return "wrong parameters P1-P2";
	case SW_INS_NOT_SUPPORTED:	return "instruction not supported";
	case SW_CLA_NOT_SUPPORTED:	return "class not supported";
	}
	return "unknown status";
}

static int
sw_code(uint16_t sw)
{
	if (sw == SW_OK) {
		return 0;
	}
	if ((sw & 0xFFF0) == 0x63C0) {
		return ML_ERR_PIN;
	}
	switch (sw) {
	case SW_WRONG_LENGTH:
		return ML_ERR_SHORT;
	case SW_SECURITY_NOT_SATISFIED:
		return ML_ERR_PERM;
	case SW_AUTH_BLOCKED:
		return ML_ERR_LOCKED;
	case SW_DATA_INVALID:
		return ML_ERR_AUTH;
	case SW_CONDITIONS_NOT_SATISFIED:
	case SW_COMMAND_NOT_ALLOWED:
		return ML_ERR_STATE;
	case SW_WRONG_DATA:
	case SW_INCORRECT_P1P2:
	case SW_WRONG_P1P2:
		return ML_ERR_ARG;
	case SW_FILE_NOT_FOUND:
	case SW_DATA_NOT_FOUND:
		return ML_ERR_NOT_FOUND;
	case SW_NOT_ENOUGH_MEMORY:
		return ML_ERR_FULL;
	case SW_MEMORY_FAILURE:
		return ML_ERR_IO;
	case SW_FUNC_NOT_SUPPORTED:
	case SW_INS_NOT_SUPPORTED:
	case SW_CLA_NOT_SUPPORTED:
		return ML_ERR_UNSUPPORTED;
	}
	return ML_ERR_INTERNAL;
}

/*
 * Short commands and answers (SIGN, ECDH, GET CHALLENGE, VERIFY...) are
 * built and received on the stack; only large ones take the heap.
 */
#define CHIPCMD_SMALL_DATA	512
#define CHIPCMD_SMALL_RESP	1024

int
chipcmd_sw_err(uint16_t sw)
{
	int r = sw_code(sw);

	if (r == 0) {
		return 0;
	}
	if ((sw & 0xFFF0) == 0x63C0) {
		return ml_errf(r, "PIN incorrect, %u tries left (SW %04X)",
		    sw & 0x0Fu, sw);
	}
	return ml_errf(r, "%s (SW %04X)", chipcmd_sw_text(sw), sw);
}

/* Put the position's name (reader, in-process position) before the
 * context of a failed exchange. */
static int
name_slot(struct chipcmd *cc, int r)
{
	struct chiplink_slot_info si;

	if (chiplink_slot_info(cc->link, cc->slot, &si) == 0 &&
	    si.name[0] != '\0') {
		(void)ml_errpre(r, "%s", si.name);
	}
	return r;
}

static int
chipcmd_exchange(struct chipcmd *cc, uint8_t cla, uint8_t ins, uint8_t p1,
    uint8_t p2, const void *data, size_t data_len, uint32_t ne, uint8_t *out,
    size_t cap, size_t *ret_len, uint16_t *ret_sw)
{
	uint8_t cmdbuf[4 + 3 + CHIPCMD_SMALL_DATA + 3];
	uint8_t small[CHIPCMD_SMALL_RESP];
	struct ml_wr fixed = ML_WR_FIXED(cmdbuf, sizeof(cmdbuf));
	struct ml_wr big = ml_wr_dyn(CHIP_MAX_CMD);
	struct ml_wr *cmd = data_len > CHIPCMD_SMALL_DATA ? &big : &fixed;
	uint8_t *resp = small;
	size_t rcap = sizeof(small), rlen = 0, got = 0, n;
	uint16_t sw = 0;
	bool chained = false;
	int r;

	if (ne > 256 || cap > sizeof(small) - 2) {
		ML_ENSURE((resp = malloc(CHIP_MAX_RESP)) != NULL,
		    ML_ERR_NOMEM);
		rcap = CHIP_MAX_RESP;
	}
	ML_TRY(apdu_build(cmd, cla, ins, p1, p2, data, data_len, ne));
	for (;;) {
		ML_TRY(chiplink_transmit(cc->link, cc->slot, cc->generation,
		    cmd->p, cmd->len, resp, rcap, &rlen));
		ML_ENSURE(rlen >= 2, ML_ERR_FORMAT);
		n = rlen - 2;
		sw = (uint16_t)((resp[n] << 8) | resp[n + 1]);
		ML_ENSURE(n <= cap - got, ML_ERR_TOO_LARGE);
		if (n > 0) {
			memcpy(out + got, resp, n);
			got += n;
		}
		if ((sw & 0xFF00) != 0x6100) {
			break;
		}
		/*
		 * A GET RESPONSE answer that says "more" must bring some: a
		 * chip answering an empty 61xx forever would hold us here.
		 */
		ML_ENSURE(n > 0 || !chained, ML_ERR_FORMAT);
		chained = true;
		cmd = &fixed;
		ml_wr_clear(cmd);
		ML_TRY(apdu_build(cmd, CLA_ISO, INS_GET_RESPONSE, 0, 0, NULL, 0,
		    (sw & 0xFF) ? (sw & 0xFF) : 256));
	}
	*ret_len = got;
	*ret_sw = sw;
	r = 0;
out:
	ml_wipe(cmdbuf, sizeof(cmdbuf));
	ml_wr_free(&big);
	if (resp == small) {
		ml_wipe(small, rlen < sizeof(small) ? rlen : sizeof(small));
	} else if (resp != NULL) {
		ml_freezero(resp, CHIP_MAX_RESP);
	}
	return r;
}

/* SELECT the applet again and, with a PIN, VERIFY it (OP-3). */
static int
chipcmd_restore(struct chipcmd *cc)
{
	static const uint8_t aid[CHIP_AID_PREFIX_LEN] = CHIP_AID_PREFIX;
	uint8_t fci[256];
	size_t n = 0;
	uint16_t sw = 0;
	int r;

	if ((r = chipcmd_exchange(cc, CLA_ISO, INS_SELECT, 0x04, 0x00, aid,
	    sizeof(aid), 256, fci, sizeof(fci), &n, &sw)) != 0) {
		return r;
	}
	if (sw != SW_OK) {
		return chipcmd_sw_err(sw);
	}
	if (cc->pin == NULL) {
		return 0;
	}
	if ((r = chipcmd_exchange(cc, CLA_ISO, INS_VERIFY, 0, cc->pin_ref,
	    cc->pin, cc->pin_len, 0, fci, sizeof(fci), &n, &sw)) != 0) {
		return r;
	}
	return chipcmd_sw_err(sw);
}

#define CHIPCMD_RESTORE_TRIES	4	/* resets in a row we ride out */

int
chipcmd_send(struct chipcmd *cc, uint8_t cla, uint8_t ins, uint8_t p1,
    uint8_t p2, const void *data, size_t data_len, uint32_t ne, uint8_t *out,
    size_t cap, size_t *ret_len, uint16_t *ret_sw)
{
	int r, rr, tries;

	r = chipcmd_exchange(cc, cla, ins, p1, p2, data, data_len, ne, out,
	    cap, ret_len, ret_sw);
	if (r == ML_ERR_RESET || (r == 0 && *ret_sw ==
	    SW_SECURITY_NOT_SATISFIED && cc->pin != NULL &&
	    !(cla == CLA_ISO && ins == INS_VERIFY))) {
		/*
		 * Restore the selection and login, then repeat the command.
		 * Another client may reset the card again while we restore
		 * (two resets in a row), and a reader can answer an exchange
		 * that meets the reset without a status word (ML_ERR_IO; the
		 * link then reports ML_ERR_RESET on its fresh handle): start
		 * the restore over, a bounded number of times.
		 */
		for (tries = 0; tries < CHIPCMD_RESTORE_TRIES; tries++) {
			rr = chipcmd_restore(cc);
			if (rr == ML_ERR_RESET || rr == ML_ERR_IO) {
				continue;
			}
			if (rr != 0) {
				return r != 0 ? r : 0;	/* first answer stands */
			}
			r = chipcmd_exchange(cc, cla, ins, p1, p2, data,
			    data_len, ne, out, cap, ret_len, ret_sw);
			if (r != ML_ERR_RESET) {
				break;
			}
		}
	}
	return r;
}

int
chipcmd_ok(struct chipcmd *cc, uint8_t cla, uint8_t ins, uint8_t p1,
    uint8_t p2, const void *data, size_t data_len, uint32_t ne, uint8_t *out,
    size_t cap, size_t *ret_len)
{
	uint8_t dummy[1];
	size_t n = 0;
	uint16_t sw;
	int r;

	if (out == NULL) {
		out = dummy;
		cap = 0;
	}
	if ((r = chipcmd_send(cc, cla, ins, p1, p2, data, data_len, ne, out,
	    cap, &n, &sw)) != 0) {
		return r;
	}
	if (ret_len != NULL) {
		*ret_len = n;
	}
	if ((r = chipcmd_sw_err(sw)) != 0) {
		return name_slot(cc, r);
	}
	return 0;
}

int
chipcmd_begin(struct chipcmd *cc, struct chiplink *l, size_t slot)
{
	static const uint8_t aid[CHIP_AID_PREFIX_LEN] = CHIP_AID_PREFIX;
	struct chiplink_slot_info si;
	uint8_t fci[256];
	size_t n;
	int r;

	ML_TRY(chiplink_slot_info(l, slot, &si));
	ML_ENSURE(si.present, ML_ERR_REMOVED);
	cc->link = l;
	cc->slot = slot;
	cc->generation = si.generation;
	cc->pin = NULL;
	cc->pin_len = 0;
	r = chipcmd_ok(cc, CLA_ISO, INS_SELECT, 0x04, 0x00, aid, sizeof(aid),
	    256, fci, sizeof(fci), &n);
	ML_TRY(r);
	r = 0;
out:
	return r;
}

int
chipcmd_info(struct chipcmd *cc, struct chip_info *ret)
{
	struct chip_info ci = { 0 };
	uint8_t buf[512];
	struct ml_rd rd, v;
	uint32_t tag;
	size_t n, k;
	int r;

	ML_TRY(chipcmd_ok(cc, CLA_ISO, INS_GET_DATA, GD_CHIP_INFO, 0, NULL, 0,
	    256, buf, sizeof(buf), &n));
	rd = ML_RD_INIT(buf, n);
	while (ml_rd_left(&rd) > 0) {
		ML_TRY(ml_tlv_next(&rd, &tag, &v));
		k = ml_rd_left(&v);
		switch (tag) {
		case TAG_INFO_KIND:
			ML_TRY(ml_rd_u8(&v, &ci.kind));
			break;
		case TAG_INFO_SERIAL:
			ML_ENSURE(k < sizeof(ci.serial), ML_ERR_FORMAT);
			ML_TRY(ml_rd_copy(&v, ci.serial, k));
			break;
		case TAG_INFO_LABEL:
			ML_ENSURE(k < sizeof(ci.label), ML_ERR_FORMAT);
			ML_TRY(ml_rd_copy(&v, ci.label, k));
			break;
		case TAG_INFO_STATE:
			ML_TRY(ml_rd_u16be(&v, &ci.state));
			break;
		case TAG_INFO_USER_TRIES:
			ML_TRY(ml_rd_u8(&v, &ci.user_tries));
			break;
		case TAG_INFO_SO_TRIES:
			ML_TRY(ml_rd_u8(&v, &ci.so_tries));
			break;
		case TAG_INFO_MAX_TRIES:
			ML_TRY(ml_rd_u8(&v, &ci.max_tries));
			break;
		case TAG_INFO_FREE:
			ML_TRY(ml_rd_u32be(&v, &ci.free_bytes));
			break;
		case TAG_INFO_LOGIN:
			ML_TRY(ml_rd_u8(&v, &ci.login));
			break;
		case TAG_INFO_MODE:
			ML_TRY(ml_rd_u8(&v, &ci.mode));
			break;
		default:
			break;	/* newer chips may say more */
		}
	}
	*ret = ci;
	r = 0;
out:
	return r;
}
