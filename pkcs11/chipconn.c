/*
 * The module's side of the chip link: one APDU exchange over chiplink's
 * chipcmd_send() (the one GET RESPONSE loop), and the one translation of
 * status words and ML_ERR_* codes into CKR values.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ml_wipe.h"
#include "apdu.h"
#include "chiplink.h"
#include "chipcmd.h"
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
	case ML_ERR_RESET:
		return CKR_DEVICE_ERROR;
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
	struct chipcmd cc;
	CK_RV rv = CKR_OK;
	int r;

	if (sl->tr->link == NULL || sl->gen == 0) {
		return CKR_DEVICE_REMOVED;
	}
	if (data_len > CHIP_MAX_CMD - 10) {
		return CKR_DATA_LEN_RANGE;
	}
	cc.link = sl->tr->link;
	cc.slot = sl->pos;
	cc.generation = sl->gen;
	cc.pin = NULL;
	cc.pin_len = 0;
	if (sl->pin_len > 0 && sl->login != (CK_USER_TYPE)-1) {
		cc.pin = sl->pin;
		cc.pin_len = sl->pin_len;
		cc.pin_ref = sl->login == CKU_SO ? PIN_SO : PIN_USER;
	}
	/* One exchange, GET RESPONSE chaining included: chipcmd_send().
	 * An answer longer than resp_cap is the chip's fault here. */
	r = chipcmd_send(&cc, cla, ins, p1, p2, data, data_len, ne, resp,
	    resp_cap, ret_len, ret_sw);
	if (r == ML_ERR_TOO_LARGE) {
		rv = CKR_DEVICE_ERROR;
	} else if (r != 0) {
		rv = ml_err_to_ckr(r);
	}
	if (rv == CKR_DEVICE_REMOVED) {
		/*
		 * The chip went away or changed: every session of it is dead
		 * from now on.  The cache itself is dropped by the next
		 * p11m_slot_refresh(), not here: callers may hold objects.
		 */
		__atomic_store_n(&sl->gen, 0, __ATOMIC_RELEASE);
		sl->login = (CK_USER_TYPE)-1;
		p11m_slot_pin_forget(sl);
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
