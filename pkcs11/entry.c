/*
 * The C_* entry points: shims only.  Each checks its pointers, enters
 * (module, then session with the weakest state it accepts), calls the
 * manager, and leaves.  Nothing here is exported except the three
 * discovery functions; the version script (mintline-pkcs11.map) enforces it.
 */
#include <string.h>

#include "p11m.h"

#define P11M_EXPORT	__attribute__((visibility("default")))

/* CKF_FIND_OBJECTS for C_SessionCancel (3.0). */
#ifndef CKF_FIND_OBJECTS
#define CKF_FIND_OBJECTS	0x00000040UL
#endif

P11M_EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE_PTR list, CK_ULONG_PTR count);
P11M_EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
    CK_INTERFACE_PTR_PTR ret, CK_FLAGS flags);

/*
 * Count the call in for its whole body (p11m_call_enter): the cleanup
 * attribute counts it out after the return value is computed, on every
 * return path.
 */
struct p11m_call {
	bool	in;
};

static inline void
call_leave(struct p11m_call *c)
{
	if (c->in) {
		p11m_call_leave();
	}
}

#define NEED_MODULE()							\
	struct p11m_call call_ __attribute__((cleanup(call_leave))) =	\
	    { p11m_call_enter() };					\
	if (!call_.in) {						\
		return CKR_CRYPTOKI_NOT_INITIALIZED;			\
	}

/* Enter the session, run one call, leave: the common shim body. */
#define WITH_SESSION(hs, need, call) do {				\
	struct p11m_session *s = NULL;					\
	CK_RV rv_;							\
									\
	if ((rv_ = p11m_session_enter((hs), (need), &s)) != CKR_OK) {	\
		return rv_;						\
	}								\
	rv_ = (call);							\
	p11m_session_leave(s);						\
	return rv_;							\
} while (0)

/*
 * A NULL output length ends the operation like any other failure of a
 * finishing call (v2.40 §5.11: C_Sign "always terminates the active
 * operation unless it returns CKR_BUFFER_TOO_SMALL" or is a size query).
 */
static CK_RV
op_end_bad_args(struct p11m_session *s, enum p11m_opkind k)
{
	p11m_op_end(&s->op[k]);
	return CKR_ARGUMENTS_BAD;
}

static CK_RV
bad_args_end(CK_SESSION_HANDLE hs, enum p11m_opkind k)
{
	WITH_SESSION(hs, P11M_NEED_RO, op_end_bad_args(s, k));
}

/* ---- general purpose ---- */

CK_RV
C_Initialize(CK_VOID_PTR args)
{
	return p11m_initialize(args);
}

CK_RV
C_Finalize(CK_VOID_PTR reserved)
{
	if (reserved != NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	return p11m_finalize();
}

CK_RV
C_GetInfo(CK_INFO_PTR info)
{
	NEED_MODULE();
	if (info == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	return p11m_get_info(info);
}

/* ---- slots and tokens ---- */

CK_RV
C_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
	NEED_MODULE();
	if (count == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	return p11m_get_slot_list(present, list, count);
}

CK_RV
C_GetSlotInfo(CK_SLOT_ID id, CK_SLOT_INFO_PTR info)
{
	NEED_MODULE();
	if (info == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	return p11m_get_slot_info(id, info);
}

CK_RV
C_GetTokenInfo(CK_SLOT_ID id, CK_TOKEN_INFO_PTR info)
{
	NEED_MODULE();
	if (info == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	return p11m_get_token_info(id, info);
}

CK_RV
C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved)
{
	NEED_MODULE();
	if (slot == NULL || reserved != NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	return p11m_wait_for_slot_event(flags, slot);
}

CK_RV
C_GetMechanismList(CK_SLOT_ID id, CK_MECHANISM_TYPE_PTR list,
    CK_ULONG_PTR count)
{
	struct p11m_slot *sl;
	CK_RV rv;

	NEED_MODULE();
	if (count == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	if ((rv = p11m_slot_get(id, &sl)) != CKR_OK) {
		return rv;
	}
	return p11m_mech_list(sl, list, count);
}

CK_RV
C_GetMechanismInfo(CK_SLOT_ID id, CK_MECHANISM_TYPE type,
    CK_MECHANISM_INFO_PTR info)
{
	struct p11m_slot *sl;
	CK_RV rv;

	NEED_MODULE();
	if (info == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	if ((rv = p11m_slot_get(id, &sl)) != CKR_OK) {
		return rv;
	}
	return p11m_mech_info(sl, type, info);
}

CK_RV
C_InitToken(CK_SLOT_ID id, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,
    CK_UTF8CHAR_PTR label)
{
	NEED_MODULE();
	/* No protected authentication path: a PIN is required. */
	if (pin == NULL || label == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	return p11m_init_token(id, pin, pin_len, label);
}

CK_RV
C_InitPIN(CK_SESSION_HANDLE hs, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len)
{
	NEED_MODULE();
	if (pin == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RW, p11m_init_pin(s, pin, pin_len));
}

CK_RV
C_SetPIN(CK_SESSION_HANDLE hs, CK_UTF8CHAR_PTR old, CK_ULONG old_len,
    CK_UTF8CHAR_PTR pin, CK_ULONG pin_len)
{
	NEED_MODULE();
	if (old == NULL || pin == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RW,
	    p11m_set_pin(s, old, old_len, pin, pin_len));
}

/* ---- sessions ---- */

CK_RV
C_OpenSession(CK_SLOT_ID id, CK_FLAGS flags, CK_VOID_PTR app,
    CK_NOTIFY notify, CK_SESSION_HANDLE_PTR ret)
{
	NEED_MODULE();
	if (ret == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	/* Notification callbacks are never called: nothing is surrendered. */
	return p11m_open_session(id, flags, ret);
}

CK_RV
C_CloseSession(CK_SESSION_HANDLE hs)
{
	NEED_MODULE();
	return p11m_close_session(hs);
}

CK_RV
C_CloseAllSessions(CK_SLOT_ID id)
{
	NEED_MODULE();
	return p11m_close_all_sessions(id);
}

CK_RV
C_GetSessionInfo(CK_SESSION_HANDLE hs, CK_SESSION_INFO_PTR info)
{
	NEED_MODULE();
	if (info == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_get_session_info(s, info));
}

CK_RV
C_GetOperationState(CK_SESSION_HANDLE hs, CK_BYTE_PTR state,
    CK_ULONG_PTR state_len)
{
	NEED_MODULE();
	if (state_len == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, CKR_FUNCTION_NOT_SUPPORTED);
}

CK_RV
C_SetOperationState(CK_SESSION_HANDLE hs, CK_BYTE_PTR state,
    CK_ULONG state_len, CK_OBJECT_HANDLE enc_key, CK_OBJECT_HANDLE auth_key)
{
	NEED_MODULE();
	if (state == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, CKR_FUNCTION_NOT_SUPPORTED);
}

CK_RV
C_Login(CK_SESSION_HANDLE hs, CK_USER_TYPE who, CK_UTF8CHAR_PTR pin,
    CK_ULONG pin_len)
{
	NEED_MODULE();
	if (pin == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_login(s, who, pin, pin_len));
}

CK_RV
C_Logout(CK_SESSION_HANDLE hs)
{
	NEED_MODULE();
	WITH_SESSION(hs, P11M_NEED_RO, p11m_logout(s));
}

/* ---- objects ---- */

CK_RV
C_CreateObject(CK_SESSION_HANDLE hs, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
    CK_OBJECT_HANDLE_PTR ret)
{
	NEED_MODULE();
	if ((tmpl == NULL && n > 0) || ret == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_create_object(s, tmpl, n, ret));
}

CK_RV
C_CopyObject(CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_PTR tmpl,
    CK_ULONG n, CK_OBJECT_HANDLE_PTR ret)
{
	NEED_MODULE();
	if ((tmpl == NULL && n > 0) || ret == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_copy_object(s, h, tmpl, n, ret));
}

CK_RV
C_DestroyObject(CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE h)
{
	NEED_MODULE();
	WITH_SESSION(hs, P11M_NEED_RO, p11m_destroy_object(s, h));
}

CK_RV
C_GetObjectSize(CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE h, CK_ULONG_PTR size)
{
	NEED_MODULE();
	if (size == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_get_object_size(s, h, size));
}

CK_RV
C_GetAttributeValue(CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE h,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	NEED_MODULE();
	if (tmpl == NULL && n > 0) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_get_attrs(s, h, tmpl, n));
}

CK_RV
C_SetAttributeValue(CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE h,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	NEED_MODULE();
	if (tmpl == NULL && n > 0) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_set_attrs(s, h, tmpl, n));
}

CK_RV
C_FindObjectsInit(CK_SESSION_HANDLE hs, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	NEED_MODULE();
	if (tmpl == NULL && n > 0) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_find_init(s, tmpl, n));
}

CK_RV
C_FindObjects(CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE_PTR out, CK_ULONG max,
    CK_ULONG_PTR count)
{
	NEED_MODULE();
	if (out == NULL || count == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_find(s, out, max, count));
}

CK_RV
C_FindObjectsFinal(CK_SESSION_HANDLE hs)
{
	NEED_MODULE();
	WITH_SESSION(hs, P11M_NEED_RO, p11m_find_final(s));
}

/* ---- encryption and decryption ---- */

CK_RV
C_EncryptInit(CK_SESSION_HANDLE hs, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	NEED_MODULE();
	if (m == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO,
	    p11m_crypt_init(s, P11M_OP_ENCRYPT, m, key));
}

CK_RV
C_Encrypt(CK_SESSION_HANDLE hs, CK_BYTE_PTR in, CK_ULONG in_len,
    CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NEED_MODULE();
	if (out_len == NULL) {
		return bad_args_end(hs, P11M_OP_ENCRYPT);
	}
	WITH_SESSION(hs, P11M_NEED_RO,
	    p11m_crypt(s, P11M_OP_ENCRYPT, in, in_len, out, out_len));
}

CK_RV
C_EncryptUpdate(CK_SESSION_HANDLE hs, CK_BYTE_PTR in, CK_ULONG in_len,
    CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NEED_MODULE();
	if ((in == NULL && in_len > 0) || out_len == NULL) {
		return bad_args_end(hs, P11M_OP_ENCRYPT);
	}
	WITH_SESSION(hs, P11M_NEED_RO,
	    p11m_crypt_update(s, P11M_OP_ENCRYPT, in, in_len, out, out_len));
}

CK_RV
C_EncryptFinal(CK_SESSION_HANDLE hs, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NEED_MODULE();
	if (out_len == NULL) {
		return bad_args_end(hs, P11M_OP_ENCRYPT);
	}
	WITH_SESSION(hs, P11M_NEED_RO,
	    p11m_crypt_final(s, P11M_OP_ENCRYPT, out, out_len));
}

CK_RV
C_DecryptInit(CK_SESSION_HANDLE hs, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	NEED_MODULE();
	if (m == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO,
	    p11m_crypt_init(s, P11M_OP_DECRYPT, m, key));
}

CK_RV
C_Decrypt(CK_SESSION_HANDLE hs, CK_BYTE_PTR in, CK_ULONG in_len,
    CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NEED_MODULE();
	if (out_len == NULL) {
		return bad_args_end(hs, P11M_OP_DECRYPT);
	}
	/* never logged with its value: see OpenSC's C_Decrypt */
	WITH_SESSION(hs, P11M_NEED_RO,
	    p11m_crypt(s, P11M_OP_DECRYPT, in, in_len, out, out_len));
}

CK_RV
C_DecryptUpdate(CK_SESSION_HANDLE hs, CK_BYTE_PTR in, CK_ULONG in_len,
    CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NEED_MODULE();
	if ((in == NULL && in_len > 0) || out_len == NULL) {
		return bad_args_end(hs, P11M_OP_DECRYPT);
	}
	WITH_SESSION(hs, P11M_NEED_RO,
	    p11m_crypt_update(s, P11M_OP_DECRYPT, in, in_len, out, out_len));
}

CK_RV
C_DecryptFinal(CK_SESSION_HANDLE hs, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NEED_MODULE();
	if (out_len == NULL) {
		return bad_args_end(hs, P11M_OP_DECRYPT);
	}
	WITH_SESSION(hs, P11M_NEED_RO,
	    p11m_crypt_final(s, P11M_OP_DECRYPT, out, out_len));
}

/* ---- message digesting ---- */

CK_RV
C_DigestInit(CK_SESSION_HANDLE hs, CK_MECHANISM_PTR m)
{
	NEED_MODULE();
	if (m == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_digest_init(s, m));
}

CK_RV
C_Digest(CK_SESSION_HANDLE hs, CK_BYTE_PTR data, CK_ULONG n, CK_BYTE_PTR md,
    CK_ULONG_PTR md_len)
{
	NEED_MODULE();
	if (md_len == NULL) {
		return bad_args_end(hs, P11M_OP_DIGEST);
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_digest(s, data, n, md, md_len));
}

CK_RV
C_DigestUpdate(CK_SESSION_HANDLE hs, CK_BYTE_PTR data, CK_ULONG n)
{
	NEED_MODULE();
	if (data == NULL && n > 0) {
		return bad_args_end(hs, P11M_OP_DIGEST);
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_digest_update(s, data, n));
}

CK_RV
C_DigestKey(CK_SESSION_HANDLE hs, CK_OBJECT_HANDLE key)
{
	NEED_MODULE();
	/* Key values live in chips or are guarded: none is digested. */
	WITH_SESSION(hs, P11M_NEED_RO, CKR_KEY_INDIGESTIBLE);
}

CK_RV
C_DigestFinal(CK_SESSION_HANDLE hs, CK_BYTE_PTR md, CK_ULONG_PTR md_len)
{
	NEED_MODULE();
	if (md_len == NULL) {
		return bad_args_end(hs, P11M_OP_DIGEST);
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_digest_final(s, md, md_len));
}

/* ---- signing and verification ---- */

CK_RV
C_SignInit(CK_SESSION_HANDLE hs, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	NEED_MODULE();
	if (m == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_sign_init(s, m, key));
}

CK_RV
C_Sign(CK_SESSION_HANDLE hs, CK_BYTE_PTR data, CK_ULONG n, CK_BYTE_PTR sig,
    CK_ULONG_PTR sig_len)
{
	NEED_MODULE();
	if (sig_len == NULL) {
		return bad_args_end(hs, P11M_OP_SIGN);
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_sign(s, data, n, sig, sig_len));
}

CK_RV
C_SignUpdate(CK_SESSION_HANDLE hs, CK_BYTE_PTR data, CK_ULONG n)
{
	NEED_MODULE();
	if (data == NULL && n > 0) {
		return bad_args_end(hs, P11M_OP_SIGN);
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_sign_update(s, data, n));
}

CK_RV
C_SignFinal(CK_SESSION_HANDLE hs, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	NEED_MODULE();
	if (sig_len == NULL) {
		return bad_args_end(hs, P11M_OP_SIGN);
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_sign_final(s, sig, sig_len));
}

CK_RV
C_SignRecoverInit(CK_SESSION_HANDLE hs, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE key)
{
	NEED_MODULE();
	WITH_SESSION(hs, P11M_NEED_RO, CKR_FUNCTION_NOT_SUPPORTED);
}

CK_RV
C_SignRecover(CK_SESSION_HANDLE hs, CK_BYTE_PTR data, CK_ULONG n,
    CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	NEED_MODULE();
	WITH_SESSION(hs, P11M_NEED_RO, CKR_FUNCTION_NOT_SUPPORTED);
}

CK_RV
C_VerifyInit(CK_SESSION_HANDLE hs, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	NEED_MODULE();
	if (m == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_verify_init(s, m, key));
}

CK_RV
C_Verify(CK_SESSION_HANDLE hs, CK_BYTE_PTR data, CK_ULONG n, CK_BYTE_PTR sig,
    CK_ULONG sig_len)
{
	NEED_MODULE();
	if (sig == NULL) {
		return bad_args_end(hs, P11M_OP_VERIFY);
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_verify(s, data, n, sig, sig_len));
}

CK_RV
C_VerifyUpdate(CK_SESSION_HANDLE hs, CK_BYTE_PTR data, CK_ULONG n)
{
	NEED_MODULE();
	if (data == NULL && n > 0) {
		return bad_args_end(hs, P11M_OP_VERIFY);
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_verify_update(s, data, n));
}

CK_RV
C_VerifyFinal(CK_SESSION_HANDLE hs, CK_BYTE_PTR sig, CK_ULONG sig_len)
{
	NEED_MODULE();
	if (sig == NULL) {
		return bad_args_end(hs, P11M_OP_VERIFY);
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_verify_final(s, sig, sig_len));
}

CK_RV
C_VerifyRecoverInit(CK_SESSION_HANDLE hs, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE key)
{
	NEED_MODULE();
	WITH_SESSION(hs, P11M_NEED_RO, CKR_FUNCTION_NOT_SUPPORTED);
}

CK_RV
C_VerifyRecover(CK_SESSION_HANDLE hs, CK_BYTE_PTR sig, CK_ULONG sig_len,
    CK_BYTE_PTR data, CK_ULONG_PTR data_len)
{
	NEED_MODULE();
	WITH_SESSION(hs, P11M_NEED_RO, CKR_FUNCTION_NOT_SUPPORTED);
}

/* ---- dual-function operations: not offered ---- */

CK_RV
C_DigestEncryptUpdate(CK_SESSION_HANDLE hs, CK_BYTE_PTR in, CK_ULONG in_len,
    CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NEED_MODULE();
	WITH_SESSION(hs, P11M_NEED_RO, CKR_FUNCTION_NOT_SUPPORTED);
}

CK_RV
C_DecryptDigestUpdate(CK_SESSION_HANDLE hs, CK_BYTE_PTR in, CK_ULONG in_len,
    CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NEED_MODULE();
	WITH_SESSION(hs, P11M_NEED_RO, CKR_FUNCTION_NOT_SUPPORTED);
}

CK_RV
C_SignEncryptUpdate(CK_SESSION_HANDLE hs, CK_BYTE_PTR in, CK_ULONG in_len,
    CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NEED_MODULE();
	WITH_SESSION(hs, P11M_NEED_RO, CKR_FUNCTION_NOT_SUPPORTED);
}

CK_RV
C_DecryptVerifyUpdate(CK_SESSION_HANDLE hs, CK_BYTE_PTR in, CK_ULONG in_len,
    CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NEED_MODULE();
	WITH_SESSION(hs, P11M_NEED_RO, CKR_FUNCTION_NOT_SUPPORTED);
}

/* ---- keys ---- */

CK_RV
C_GenerateKey(CK_SESSION_HANDLE hs, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR tmpl,
    CK_ULONG n, CK_OBJECT_HANDLE_PTR ret)
{
	NEED_MODULE();
	if (m == NULL || (tmpl == NULL && n > 0) || ret == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_generate_key(s, m, tmpl, n, ret));
}

CK_RV
C_GenerateKeyPair(CK_SESSION_HANDLE hs, CK_MECHANISM_PTR m,
    CK_ATTRIBUTE_PTR pub_tmpl, CK_ULONG pub_n, CK_ATTRIBUTE_PTR priv_tmpl,
    CK_ULONG priv_n, CK_OBJECT_HANDLE_PTR ret_pub,
    CK_OBJECT_HANDLE_PTR ret_priv)
{
	NEED_MODULE();
	if (m == NULL || (pub_tmpl == NULL && pub_n > 0) ||
	    (priv_tmpl == NULL && priv_n > 0) || ret_pub == NULL ||
	    ret_priv == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_generate_key_pair(s, m, pub_tmpl,
	    pub_n, priv_tmpl, priv_n, ret_pub, ret_priv));
}

CK_RV
C_WrapKey(CK_SESSION_HANDLE hs, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wrapping,
    CK_OBJECT_HANDLE key, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NEED_MODULE();
	WITH_SESSION(hs, P11M_NEED_RO, CKR_FUNCTION_NOT_SUPPORTED);
}

CK_RV
C_UnwrapKey(CK_SESSION_HANDLE hs, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR wrapped, CK_ULONG wrapped_len,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR ret)
{
	NEED_MODULE();
	WITH_SESSION(hs, P11M_NEED_RO, CKR_FUNCTION_NOT_SUPPORTED);
}

CK_RV
C_DeriveKey(CK_SESSION_HANDLE hs, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE base,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR ret)
{
	NEED_MODULE();
	if (m == NULL || (tmpl == NULL && n > 0) || ret == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO,
	    p11m_derive_key(s, m, base, tmpl, n, ret));
}

/* ---- random numbers ---- */

CK_RV
C_SeedRandom(CK_SESSION_HANDLE hs, CK_BYTE_PTR seed, CK_ULONG n)
{
	NEED_MODULE();
	if (seed == NULL && n > 0) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, CKR_RANDOM_SEED_NOT_SUPPORTED);
}

CK_RV
C_GenerateRandom(CK_SESSION_HANDLE hs, CK_BYTE_PTR out, CK_ULONG n)
{
	NEED_MODULE();
	if (out == NULL && n > 0) {
		return CKR_ARGUMENTS_BAD;
	}
	WITH_SESSION(hs, P11M_NEED_RO, p11m_generate_random(s, out, n));
}

/* ---- legacy parallel functions ---- */

CK_RV
C_GetFunctionStatus(CK_SESSION_HANDLE hs)
{
	NEED_MODULE();
	return CKR_FUNCTION_NOT_PARALLEL;
}

CK_RV
C_CancelFunction(CK_SESSION_HANDLE hs)
{
	NEED_MODULE();
	return CKR_FUNCTION_NOT_PARALLEL;
}

/* ---- PKCS#11 3.0 additions ---- */

static CK_RV
p11e_LoginUser(CK_SESSION_HANDLE hs, CK_USER_TYPE who, CK_UTF8CHAR_PTR pin,
    CK_ULONG pin_len, CK_UTF8CHAR_PTR user, CK_ULONG user_len)
{
	NEED_MODULE();
	if (pin == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	/* Tokens have no user names; one is ignored. */
	WITH_SESSION(hs, P11M_NEED_RO, p11m_login(s, who, pin, pin_len));
}

static CK_RV
session_cancel(struct p11m_session *s, CK_FLAGS flags)
{
	static const struct {
		CK_FLAGS		 flag;
		enum p11m_opkind	 op;
	} map[] = {
		{ CKF_ENCRYPT,		P11M_OP_ENCRYPT },
		{ CKF_DECRYPT,		P11M_OP_DECRYPT },
		{ CKF_DIGEST,		P11M_OP_DIGEST },
		{ CKF_SIGN,		P11M_OP_SIGN },
		{ CKF_VERIFY,		P11M_OP_VERIFY },
		{ CKF_FIND_OBJECTS,	P11M_OP_FIND },
	};
	size_t i;

	for (i = 0; i < ML_NELEM(map); i++) {
		if (flags & map[i].flag) {
			p11m_op_end(&s->op[map[i].op]);
		}
	}
	return CKR_OK;
}

static CK_RV
p11e_SessionCancel(CK_SESSION_HANDLE hs, CK_FLAGS flags)
{
	NEED_MODULE();
	WITH_SESSION(hs, P11M_NEED_RO, session_cancel(s, flags));
}

/* The message-based API of 3.0 is not offered. */
static CK_RV
p11e_MessageInit(CK_SESSION_HANDLE hs, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
	return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_RV
p11e_XMessage(CK_SESSION_HANDLE hs, CK_VOID_PTR p, CK_ULONG pl,
    CK_BYTE_PTR a, CK_ULONG al, CK_BYTE_PTR i, CK_ULONG il, CK_BYTE_PTR o,
    CK_ULONG_PTR ol)
{
	return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_RV
p11e_XMessageBegin(CK_SESSION_HANDLE hs, CK_VOID_PTR p, CK_ULONG pl,
    CK_BYTE_PTR a, CK_ULONG al)
{
	return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_RV
p11e_XMessageNext(CK_SESSION_HANDLE hs, CK_VOID_PTR p, CK_ULONG pl,
    CK_BYTE_PTR i, CK_ULONG il, CK_BYTE_PTR o, CK_ULONG_PTR ol, CK_FLAGS f)
{
	return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_RV
p11e_MessageFinal(CK_SESSION_HANDLE hs)
{
	return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_RV
p11e_SignMessage(CK_SESSION_HANDLE hs, CK_VOID_PTR p, CK_ULONG pl,
    CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR s, CK_ULONG_PTR sl)
{
	return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_RV
p11e_SignMessageBegin(CK_SESSION_HANDLE hs, CK_VOID_PTR p, CK_ULONG pl)
{
	return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_RV
p11e_SignMessageNext(CK_SESSION_HANDLE hs, CK_VOID_PTR p, CK_ULONG pl,
    CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR s, CK_ULONG_PTR sl)
{
	return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_RV
p11e_VerifyMessage(CK_SESSION_HANDLE hs, CK_VOID_PTR p, CK_ULONG pl,
    CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR s, CK_ULONG sl)
{
	return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_RV
p11e_VerifyMessageNext(CK_SESSION_HANDLE hs, CK_VOID_PTR p, CK_ULONG pl,
    CK_BYTE_PTR d, CK_ULONG dl, CK_BYTE_PTR s, CK_ULONG sl)
{
	return CKR_FUNCTION_NOT_SUPPORTED;
}

/* ---- function lists and interfaces ---- */

#define FUNCTIONS_240							\
	C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList,	\
	C_GetSlotList, C_GetSlotInfo, C_GetTokenInfo,			\
	C_GetMechanismList, C_GetMechanismInfo, C_InitToken,		\
	C_InitPIN, C_SetPIN, C_OpenSession, C_CloseSession,		\
	C_CloseAllSessions, C_GetSessionInfo, C_GetOperationState,	\
	C_SetOperationState, C_Login, C_Logout, C_CreateObject,		\
	C_CopyObject, C_DestroyObject, C_GetObjectSize,			\
	C_GetAttributeValue, C_SetAttributeValue, C_FindObjectsInit,	\
	C_FindObjects, C_FindObjectsFinal, C_EncryptInit, C_Encrypt,	\
	C_EncryptUpdate, C_EncryptFinal, C_DecryptInit, C_Decrypt,	\
	C_DecryptUpdate, C_DecryptFinal, C_DigestInit, C_Digest,	\
	C_DigestUpdate, C_DigestKey, C_DigestFinal, C_SignInit,		\
	C_Sign, C_SignUpdate, C_SignFinal, C_SignRecoverInit,		\
	C_SignRecover, C_VerifyInit, C_Verify, C_VerifyUpdate,		\
	C_VerifyFinal, C_VerifyRecoverInit, C_VerifyRecover,		\
	C_DigestEncryptUpdate, C_DecryptDigestUpdate,			\
	C_SignEncryptUpdate, C_DecryptVerifyUpdate, C_GenerateKey,	\
	C_GenerateKeyPair, C_WrapKey, C_UnwrapKey, C_DeriveKey,		\
	C_SeedRandom, C_GenerateRandom, C_GetFunctionStatus,		\
	C_CancelFunction, C_WaitForSlotEvent

static CK_FUNCTION_LIST p11m_functions_240 = {
	{ 2, 40 },
	FUNCTIONS_240
};

static CK_FUNCTION_LIST_3_0 p11m_functions_300 = {
	{ 3, 0 },
	FUNCTIONS_240,
	C_GetInterfaceList, C_GetInterface, p11e_LoginUser,
	p11e_SessionCancel,
	p11e_MessageInit, p11e_XMessage, p11e_XMessageBegin,
	p11e_XMessageNext, p11e_MessageFinal,
	p11e_MessageInit, p11e_XMessage, p11e_XMessageBegin,
	p11e_XMessageNext, p11e_MessageFinal,
	p11e_MessageInit, p11e_SignMessage, p11e_SignMessageBegin,
	p11e_SignMessageNext, p11e_MessageFinal,
	p11e_MessageInit, p11e_VerifyMessage, p11e_SignMessageBegin,
	p11e_VerifyMessageNext, p11e_MessageFinal,
};

static CK_CHAR p11m_iface_name[] = "PKCS 11";

static CK_INTERFACE p11m_interfaces[] = {
	{ p11m_iface_name, &p11m_functions_300, 0 },
	{ p11m_iface_name, &p11m_functions_240, 0 },
};

P11M_EXPORT CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ret)
{
	if (ret == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	*ret = &p11m_functions_240;
	return CKR_OK;
}

P11M_EXPORT CK_RV
C_GetInterfaceList(CK_INTERFACE_PTR list, CK_ULONG_PTR count)
{
	CK_ULONG n = ML_NELEM(p11m_interfaces), room;

	if (count == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	room = *count;
	*count = n;
	if (list == NULL) {
		return CKR_OK;
	}
	if (room < n) {
		return CKR_BUFFER_TOO_SMALL;
	}
	memcpy(list, p11m_interfaces, sizeof(p11m_interfaces));
	return CKR_OK;
}

P11M_EXPORT CK_RV
C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
    CK_INTERFACE_PTR_PTR ret, CK_FLAGS flags)
{
	size_t i;

	if (ret == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	for (i = 0; i < ML_NELEM(p11m_interfaces); i++) {
		const CK_INTERFACE *it = &p11m_interfaces[i];
		const CK_VERSION *v = it->pFunctionList;

		if (name != NULL && strcmp((const char *)name,
		    (const char *)it->pInterfaceName) != 0) {
			continue;
		}
		if (version != NULL && (version->major != v->major ||
		    version->minor != v->minor)) {
			continue;
		}
		if ((it->flags & flags) != flags) {
			continue;
		}
		*ret = &p11m_interfaces[i];
		return CKR_OK;
	}
	return CKR_ARGUMENTS_BAD;
}
