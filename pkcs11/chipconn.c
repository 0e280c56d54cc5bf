/*
 * The module's side of the chip link: one APDU exchange helper (built with
 * the shared apdu_build(), chained over 61xx), and the one translation of
 * status words and ML_ERR_* codes into CKR values.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ml_wipe.h"
#include "apdu.h"
#include "chiplink.h"
#include "sw.h"
#include "p11m.h"

CK_RV
ml_err_to_ckr(int r)
{
	switch (r) {
	case ML_OK:
		return CKR_OK;
	case ML_ERR_NOMEM:
		return CKR_HOST_MEMORY;
	case ML_ERR_REMOVED:
		return CKR_DEVICE_REMOVED;
	case ML_ERR_SHORT:
	case ML_ERR_FORMAT:
	case ML_ERR_TRAILING:
	case ML_ERR_IO:
	case ML_ERR_TIMEOUT:
		return CKR_DEVICE_ERROR;
	case ML_ERR_TOO_LARGE:
		return CKR_DATA_LEN_RANGE;
	case ML_ERR_ARG:
		return CKR_ARGUMENTS_BAD;
	case ML_ERR_PIN:
		return CKR_PIN_INCORRECT;
	case ML_ERR_LOCKED:
		return CKR_PIN_LOCKED;
	case ML_ERR_PERM:
		return CKR_USER_NOT_LOGGED_IN;
	case ML_ERR_FULL:
		return CKR_DEVICE_MEMORY;
	case ML_ERR_NOT_FOUND:
		return CKR_OBJECT_HANDLE_INVALID;
	case ML_ERR_UNSUPPORTED:
		return CKR_FUNCTION_NOT_SUPPORTED;
	case ML_ERR_AUTH:
	case ML_ERR_CRYPTO:
	case ML_ERR_STATE:
	case ML_ERR_REJECTED:
	case ML_ERR_EXISTS:
		return CKR_FUNCTION_FAILED;
	default:
		return CKR_GENERAL_ERROR;
	}
}

/*
 * Status word -> CKR.  The context decides the few words whose meaning
 * depends on what was asked (a missing object is a bad object handle for
 * READ and a bad key handle for SIGN).
 */
CK_RV
p11m_sw_to_ckr(uint16_t sw, enum p11m_ctx ctx)
{
	if (sw == SW_OK) {
		return CKR_OK;
	}
	if ((sw & 0xFFF0) == 0x63C0) {
		return (sw & 0x0F) == 0 ? CKR_PIN_LOCKED : CKR_PIN_INCORRECT;
	}
	switch (sw) {
	case SW_AUTH_BLOCKED:
		return CKR_PIN_LOCKED;
	case SW_SECURITY_NOT_SATISFIED:
		return CKR_USER_NOT_LOGGED_IN;
	case SW_DATA_INVALID:
		return ctx == P11M_CTX_DECRYPT ? CKR_ENCRYPTED_DATA_INVALID :
		    CKR_DATA_INVALID;
	case SW_WRONG_LENGTH:
		return ctx == P11M_CTX_PIN ? CKR_PIN_LEN_RANGE :
		    CKR_DATA_LEN_RANGE;
	case SW_WRONG_DATA:
		switch (ctx) {
		case P11M_CTX_PIN:
			return CKR_PIN_LEN_RANGE;
		case P11M_CTX_KEY:
			return CKR_MECHANISM_PARAM_INVALID;
		case P11M_CTX_OBJECT:
			return CKR_TEMPLATE_INCONSISTENT;
		default:
			return CKR_DATA_INVALID;
		}
	case SW_CONDITIONS_NOT_SATISFIED:
	case SW_COMMAND_NOT_ALLOWED:
		switch (ctx) {
		case P11M_CTX_OBJECT:
			return CKR_ACTION_PROHIBITED;
		case P11M_CTX_KEY:
			return CKR_KEY_FUNCTION_NOT_PERMITTED;
		case P11M_CTX_PIN:
			return CKR_TOKEN_WRITE_PROTECTED;
		default:
			return CKR_FUNCTION_FAILED;
		}
	case SW_FILE_NOT_FOUND:
	case SW_DATA_NOT_FOUND:
		switch (ctx) {
		case P11M_CTX_OBJECT:
			return CKR_OBJECT_HANDLE_INVALID;
		case P11M_CTX_KEY:
		case P11M_CTX_DECRYPT:
			return CKR_KEY_HANDLE_INVALID;
		case P11M_CTX_PIN:
			return CKR_USER_PIN_NOT_INITIALIZED;
		default:
			return CKR_FUNCTION_FAILED;
		}
	case SW_NOT_ENOUGH_MEMORY:
		return CKR_DEVICE_MEMORY;
	case SW_MEMORY_FAILURE:
		return CKR_DEVICE_ERROR;
	case SW_FUNC_NOT_SUPPORTED:
	case SW_INS_NOT_SUPPORTED:
	case SW_CLA_NOT_SUPPORTED:
		return ctx == P11M_CTX_MECH ? CKR_MECHANISM_INVALID :
		    CKR_FUNCTION_NOT_SUPPORTED;
	case SW_INCORRECT_P1P2:
	case SW_WRONG_P1P2:
		return ctx == P11M_CTX_KEY ? CKR_KEY_HANDLE_INVALID :
		    CKR_FUNCTION_FAILED;
	default:
		return CKR_DEVICE_ERROR;
	}
}

void
p11m_chip_lock(struct p11m_slot *sl)
{
	if (sl->tr->link != NULL) {
		chiplink_lock(sl->tr->link, sl->pos);
	}
}

void
p11m_chip_unlock(struct p11m_slot *sl)
{
	if (sl->tr->link != NULL) {
		chiplink_unlock(sl->tr->link, sl->pos);
	}
}

CK_RV
p11m_chip_apdu(struct p11m_slot *sl, uint8_t cla, uint8_t ins, uint8_t p1,
    uint8_t p2, const uint8_t *data, size_t data_len, uint32_t ne,
    uint8_t *resp, size_t resp_cap, size_t *ret_len, uint16_t *ret_sw)
{
	uint8_t cmdbuf[4 + 3 + 512 + 3];
	struct ml_wr cmd = ML_WR_FIXED(cmdbuf, sizeof(cmdbuf));
	struct ml_wr big = ml_wr_dyn(CHIP_MAX_CMD);
	struct ml_wr *w = &cmd;
	uint8_t small[1024], *rbuf = NULL;
	size_t rcap, rlen = 0, got = 0, n;
	uint16_t sw = 0;
	bool chained = false;
	CK_RV rv = CKR_OK;
	int r;

	if (sl->tr->link == NULL || sl->gen == 0) {
		return CKR_DEVICE_REMOVED;
	}
	if (data_len > sizeof(cmdbuf) - 10) {
		w = &big;
	}
	/* Short answers (SIGN, ECDH, GET CHALLENGE...) need no heap. */
	if (ne <= 256 && resp_cap <= sizeof(small) - 2) {
		rbuf = small;
		rcap = sizeof(small);
	} else if ((rbuf = malloc(CHIP_MAX_RESP)) != NULL) {
		rcap = CHIP_MAX_RESP;
	} else {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	if ((r = apdu_build(w, cla, ins, p1, p2, data, data_len, ne)) != 0) {
		rv = ml_err_to_ckr(r);
		goto out;
	}
	for (;;) {
		r = chiplink_transmit(sl->tr->link, sl->pos, sl->gen, w->p,
		    w->len, rbuf, rcap, &rlen);
		if (r != 0) {
			rv = ml_err_to_ckr(r);
			goto out;
		}
		if (rlen < 2) {
			rv = CKR_DEVICE_ERROR;
			goto out;
		}
		n = rlen - 2;
		sw = (uint16_t)((rbuf[n] << 8) | rbuf[n + 1]);
		if (n > resp_cap - got) {
			rv = CKR_DEVICE_ERROR;
			goto out;
		}
		if (n > 0) {
			memcpy(resp + got, rbuf, n);
			got += n;
		}
		if ((sw & 0xFF00) != 0x6100) {
			break;
		}
		/*
		 * A GET RESPONSE answer that says "more" must bring some: a
		 * chip answering an empty 61xx forever would hold us here.
		 */
		if (n == 0 && chained) {
			rv = CKR_DEVICE_ERROR;
			goto out;
		}
		chained = true;
		ml_wr_clear(&cmd);
		w = &cmd;
		if ((r = apdu_build(w, CLA_ISO, INS_GET_RESPONSE, 0, 0, NULL,
		    0, (sw & 0xFF) ? (sw & 0xFF) : 256)) != 0) {
			rv = ml_err_to_ckr(r);
			goto out;
		}
	}
	*ret_len = got;
	*ret_sw = sw;
out:
	if (rbuf == small) {
		ml_wipe(small, rlen < sizeof(small) ? rlen : sizeof(small));
	} else if (rbuf != NULL) {
		ml_freezero(rbuf, rlen > 0 ? rlen : 1);
	}
	ml_wipe(cmdbuf, sizeof(cmdbuf));
	ml_wr_free(&big);
	if (rv == CKR_DEVICE_REMOVED) {
		/*
		 * The chip went away or changed: every session of it is dead
		 * from now on.  The cache itself is dropped by the next
		 * p11m_slot_refresh(), not here: callers may hold objects.
		 */
		__atomic_store_n(&sl->gen, 0, __ATOMIC_RELEASE);
		sl->login = (CK_USER_TYPE)-1;
	}
	return rv;
}

CK_RV
p11m_chip_cmd(struct p11m_slot *sl, enum p11m_ctx ctx, uint8_t cla,
    uint8_t ins, uint8_t p1, uint8_t p2, const uint8_t *data, size_t data_len,
    uint32_t ne, uint8_t *resp, size_t resp_cap, size_t *ret_len)
{
	uint8_t dummy[1];
	size_t n = 0;
	uint16_t sw;
	CK_RV rv;

	if (resp == NULL) {
		resp = dummy;
		resp_cap = 0;
	}
	rv = p11m_chip_apdu(sl, cla, ins, p1, p2, data, data_len, ne, resp,
	    resp_cap, &n, &sw);
	if (rv != CKR_OK) {
		return rv;
	}
	if (ret_len != NULL) {
		*ret_len = n;
	}
	return p11m_sw_to_ckr(sw, ctx);
}
