/*
 * Sessions: the handle table, the state predicates every C_* shim names
 * (p11m_session_enter), login state, and PIN management.
 *
 * Session state is per token, as PKCS#11 has it: a login in one session
 * is a login in all of this application's sessions on that token.  A
 * session belongs to one chip generation; when the chip leaves the field
 * its sessions answer CKR_DEVICE_REMOVED until closed.
 */
#include <stdlib.h>
#include <string.h>

#include "ml_wipe.h"
#include "sw.h"
#include "p11m.h"

#define NO_LOGIN	((CK_USER_TYPE)-1)

static size_t
bucket(CK_SESSION_HANDLE h)
{
	return (size_t)h & (P11M_NBUCKETS - 1);
}

void
p11m_op_end(struct p11m_op *op)
{
	ml_sha256_free(op->sha);
	if (!op->vkey_borrowed) {
		ml_p256_key_free(op->vkey);
	}
	ml_wipe(op->secret, sizeof(op->secret));
	ml_freezero(op->iv, op->iv_len);
	ml_freezero(op->aad, op->aad_len);
	ml_wr_free(&op->buf);
	free(op->found);
	memset(op, 0, sizeof(*op));
	op->chip_secret = -1;
}

/* End every operation of a session that has one going or holds
 * something (an ended op is already wiped and empty: skipped). */
static void
session_ops_end(struct p11m_session *s)
{
	size_t i;

	for (i = 0; i < P11M_OP_MAX; i++) {
		struct p11m_op *op = &s->op[i];

		if (op->active || op->sha != NULL || op->vkey != NULL ||
		    op->iv != NULL || op->aad != NULL || op->buf.p != NULL ||
		    op->found != NULL || op->secret_len != 0) {
			p11m_op_end(op);
		}
	}
}

static void
session_free(struct p11m_session *s)
{
	session_ops_end(s);
	ml_p256_key_free(s->vkey);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void
p11m_sessions_free(struct p11m_module *m)
{
	struct p11m_session *s, *next;
	size_t b;

	if (m->sessions == NULL) {
		return;
	}
	for (b = 0; b < P11M_NBUCKETS; b++) {
		for (s = m->sessions[b]; s != NULL; s = next) {
			next = s->next;
			session_free(s);
		}
	}
	free(m->sessions);
	m->sessions = NULL;
}

static uint64_t
slot_gen(const struct p11m_slot *sl)
{
	return __atomic_load_n(&sl->gen, __ATOMIC_ACQUIRE);
}

CK_RV
p11m_session_enter(CK_SESSION_HANDLE h, enum p11m_need need,
    struct p11m_session **ret)
{
	/* The entry shim has done the fork check (NEED_MODULE). */
	struct p11m_module *m = p11m_mod_current();
	struct p11m_session *s;
	CK_RV rv = CKR_OK;

	if (m == NULL) {
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	pthread_mutex_lock(&m->lock);
	for (s = m->sessions[bucket(h)]; s != NULL; s = s->next) {
		if (s->h == h) {
			break;
		}
	}
	if (s == NULL || s->closed) {
		pthread_mutex_unlock(&m->lock);
		return CKR_SESSION_HANDLE_INVALID;
	}
	s->refs++;
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_lock(&s->lock);
	if (s->gen != slot_gen(s->slot)) {
		rv = CKR_DEVICE_REMOVED;
	} else if ((need == P11M_NEED_RW || need == P11M_NEED_USER_RW ||
	    need == P11M_NEED_SO_RW) && !(s->flags & CKF_RW_SESSION)) {
		rv = CKR_SESSION_READ_ONLY;
	} else if ((need == P11M_NEED_USER_RO || need == P11M_NEED_USER_RW) &&
	    s->slot->login != CKU_USER) {
		rv = CKR_USER_NOT_LOGGED_IN;
	} else if (need == P11M_NEED_SO_RW && s->slot->login != CKU_SO) {
		rv = CKR_USER_NOT_LOGGED_IN;
	}
	if (rv != CKR_OK) {
		p11m_session_leave(s);
		return rv;
	}
	*ret = s;
	return CKR_OK;
}

void
p11m_session_leave(struct p11m_session *s)
{
	struct p11m_module *m = p11m_mod_current();
	bool last;

	pthread_mutex_unlock(&s->lock);
	if (m == NULL) {
		return;
	}
	pthread_mutex_lock(&m->lock);
	last = --s->refs == 0 && s->closed;
	pthread_mutex_unlock(&m->lock);
	if (last) {
		session_free(s);
	}
}

CK_RV
p11m_session_lock_slot(struct p11m_session *s)
{
	pthread_mutex_lock(&s->slot->lock);
	if (s->gen != s->slot->gen) {
		pthread_mutex_unlock(&s->slot->lock);
		return CKR_DEVICE_REMOVED;
	}
	return CKR_OK;
}

void
p11m_session_unlock_slot(struct p11m_session *s)
{
	pthread_mutex_unlock(&s->slot->lock);
}

bool
p11m_session_rw(const struct p11m_session *s)
{
	return (s->flags & CKF_RW_SESSION) != 0;
}

bool
p11m_session_user(const struct p11m_session *s)
{
	return s->slot->login == CKU_USER;
}

CK_RV
p11m_open_session(CK_SLOT_ID id, CK_FLAGS flags, CK_SESSION_HANDLE_PTR ret)
{
	struct p11m_module *m = p11m_mod();
	struct p11m_session *s = NULL;
	struct p11m_slot *sl;
	CK_RV rv;
	size_t i;

	if (!(flags & CKF_SERIAL_SESSION)) {
		return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
	}
	if ((rv = p11m_slot_get(id, &sl)) != CKR_OK) {
		return rv;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return CKR_HOST_MEMORY;
	}
	pthread_mutex_init(&s->lock, NULL);
	for (i = 0; i < P11M_OP_MAX; i++) {
		s->op[i].chip_secret = -1;
	}
	s->slot = sl;
	s->flags = flags & (CKF_SERIAL_SESSION | CKF_RW_SESSION);
	pthread_mutex_lock(&sl->lock);
	/*
	 * A token whose state is current opens without asking the link
	 * (no system call): a removal or swap since is noticed by the next
	 * call that uses the chip or the cache (CKR_DEVICE_REMOVED), as
	 * for a session that was open already.
	 */
	if ((sl->gen == 0 || !sl->recognized) &&
	    (rv = p11m_slot_refresh(sl)) != CKR_OK) {
		pthread_mutex_unlock(&sl->lock);
		goto out;
	}
	if (!(flags & CKF_RW_SESSION) && sl->login == CKU_SO) {
		pthread_mutex_unlock(&sl->lock);
		rv = CKR_SESSION_READ_WRITE_SO_EXISTS;
		goto out;
	}
	s->gen = sl->gen;
	sl->nsessions++;
	if (!(flags & CKF_RW_SESSION)) {
		sl->nro++;
	}
	pthread_mutex_unlock(&sl->lock);

	pthread_mutex_lock(&m->lock);
	do {
		s->h = ++m->next_session;
	} while (s->h == CK_INVALID_HANDLE);
	s->next = m->sessions[bucket(s->h)];
	m->sessions[bucket(s->h)] = s;
	pthread_mutex_unlock(&m->lock);
	*ret = s->h;
	s = NULL;
out:
	if (s != NULL) {
		session_free(s);
	}
	return rv;
}

/* The token's login ends (slot locked): private objects go first, while
 * the chip still accepts SECRET DESTROY. */
static void
slot_logout(struct p11m_slot *sl)
{
	if (sl->login == NO_LOGIN) {
		return;
	}
	p11m_objset_drop_private(sl);
	p11m_slot_pin_forget(sl);
	(void)p11m_chip_cmd(sl, P11M_CTX_DEFAULT, CLA_PROP, INS_LOGOUT, 0, 0,
	    NULL, 0, 0, NULL, 0, NULL);
	sl->login = NO_LOGIN;
}

CK_RV
p11m_close_session(CK_SESSION_HANDLE h)
{
	struct p11m_module *m = p11m_mod();
	struct p11m_session *s, **pp;
	struct p11m_slot *sl;
	bool chip;

	if (m == NULL) {
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	pthread_mutex_lock(&m->lock);
	for (pp = &m->sessions[bucket(h)]; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->h == h) {
			break;
		}
	}
	if ((s = *pp) == NULL || s->closed) {
		pthread_mutex_unlock(&m->lock);
		return CKR_SESSION_HANDLE_INVALID;
	}
	*pp = s->next;
	s->closed = true;
	s->refs++;
	pthread_mutex_unlock(&m->lock);

	pthread_mutex_lock(&s->lock);
	sl = s->slot;
	pthread_mutex_lock(&sl->lock);
	if (s->gen == sl->gen) {
		/* The chip is needed only for session objects it holds and
		 * for the logout after the last session (PC/SC: a
		 * transaction each time). */
		chip = sl->objs.nsession > 0 ||
		    (sl->nsessions <= 1 && sl->login != NO_LOGIN);
		if (chip) {
			p11m_chip_lock(sl);
		}
		p11m_objset_drop_session(sl, s->h);
		if (sl->nsessions > 0) {
			sl->nsessions--;
		}
		if (!(s->flags & CKF_RW_SESSION) && sl->nro > 0) {
			sl->nro--;
		}
		/* The last session closed: the user is logged out. */
		if (sl->nsessions == 0) {
			slot_logout(sl);
		}
		if (chip) {
			p11m_chip_unlock(sl);
		}
	}
	pthread_mutex_unlock(&sl->lock);
	session_ops_end(s);
	p11m_session_leave(s);
	return CKR_OK;
}

CK_RV
p11m_close_all_sessions(CK_SLOT_ID id)
{
	struct p11m_module *m = p11m_mod();
	CK_SESSION_HANDLE *hs = NULL;
	struct p11m_session *s;
	struct p11m_slot *sl;
	size_t n = 0, cap = 0, b, i;
	CK_RV rv;

	if ((rv = p11m_slot_get(id, &sl)) != CKR_OK) {
		return rv;
	}
	pthread_mutex_lock(&m->lock);
	for (b = 0; b < P11M_NBUCKETS; b++) {
		for (s = m->sessions[b]; s != NULL; s = s->next) {
			if (s->slot != sl || s->closed) {
				continue;
			}
			if (n == cap) {
				size_t nc = cap == 0 ? 16 : cap * 2;
				CK_SESSION_HANDLE *v = realloc(hs,
				    nc * sizeof(*v));

				if (v == NULL) {
					pthread_mutex_unlock(&m->lock);
					free(hs);
					return CKR_HOST_MEMORY;
				}
				hs = v;
				cap = nc;
			}
			hs[n++] = s->h;
		}
	}
	pthread_mutex_unlock(&m->lock);
	for (i = 0; i < n; i++) {
		(void)p11m_close_session(hs[i]);
	}
	free(hs);
	/* Dead sessions of an earlier chip are gone too. */
	pthread_mutex_lock(&sl->lock);
	if (sl->gen == 0) {
		sl->nsessions = sl->nro = 0;
	}
	pthread_mutex_unlock(&sl->lock);
	return CKR_OK;
}

CK_RV
p11m_get_session_info(struct p11m_session *s, CK_SESSION_INFO_PTR info)
{
	struct p11m_slot *sl = s->slot;
	bool rw = p11m_session_rw(s);
	CK_RV rv;

	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		return rv;
	}
	memset(info, 0, sizeof(*info));
	info->slotID = sl->id;
	info->flags = s->flags;
	if (sl->login == CKU_SO) {
		info->state = CKS_RW_SO_FUNCTIONS;
	} else if (sl->login == CKU_USER) {
		info->state = rw ? CKS_RW_USER_FUNCTIONS :
		    CKS_RO_USER_FUNCTIONS;
	} else {
		info->state = rw ? CKS_RW_PUBLIC_SESSION :
		    CKS_RO_PUBLIC_SESSION;
	}
	info->ulDeviceError = 0;
	p11m_session_unlock_slot(s);
	return CKR_OK;
}

CK_RV
p11m_login(struct p11m_session *s, CK_USER_TYPE who, CK_UTF8CHAR_PTR pin,
    CK_ULONG pin_len)
{
	struct p11m_slot *sl = s->slot;
	CK_RV rv;

	if (who == CKU_CONTEXT_SPECIFIC) {
		/* No key here has CKA_ALWAYS_AUTHENTICATE. */
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if (who != CKU_USER && who != CKU_SO) {
		return CKR_USER_TYPE_INVALID;
	}
	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		return rv;
	}
	if (sl->login == who) {
		rv = CKR_USER_ALREADY_LOGGED_IN;
		goto out;
	}
	if (sl->login != NO_LOGIN) {
		rv = CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
		goto out;
	}
	if (who == CKU_SO && sl->nro > 0) {
		rv = CKR_SESSION_READ_ONLY_EXISTS;
		goto out;
	}
	if (who == CKU_USER && !(sl->state & INFO_F_USER_PIN_SET)) {
		rv = CKR_USER_PIN_NOT_INITIALIZED;
		goto out;
	}
	if (pin_len < PIN_MIN_LEN || pin_len > PIN_MAX_LEN) {
		/* Refused without spending a try. */
		rv = CKR_PIN_INCORRECT;
		goto out;
	}
	p11m_chip_lock(sl);
	rv = p11m_chip_cmd(sl, P11M_CTX_PIN, CLA_ISO, INS_VERIFY, 0,
	    who == CKU_SO ? PIN_SO : PIN_USER, pin, pin_len, 0, NULL, 0, NULL);
	if (rv == CKR_OK) {
		sl->login = who;
		p11m_slot_pin_keep(sl, pin, pin_len);
		if (who == CKU_USER) {
			/* Private objects become visible. */
			rv = p11m_objset_load_private(sl);
		}
	}
	if (rv != CKR_DEVICE_REMOVED) {
		(void)p11m_slot_read_info(sl);	/* retry counters moved */
	}
	p11m_chip_unlock(sl);
out:
	p11m_session_unlock_slot(s);
	return rv;
}

CK_RV
p11m_logout(struct p11m_session *s)
{
	struct p11m_slot *sl = s->slot;
	CK_RV rv;

	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		return rv;
	}
	if (sl->login == NO_LOGIN) {
		rv = CKR_USER_NOT_LOGGED_IN;
	} else {
		p11m_chip_lock(sl);
		slot_logout(sl);
		p11m_chip_unlock(sl);
	}
	p11m_session_unlock_slot(s);
	return rv;
}

CK_RV
p11m_init_pin(struct p11m_session *s, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len)
{
	struct p11m_slot *sl = s->slot;
	CK_RV rv;

	if (pin_len < PIN_MIN_LEN || pin_len > PIN_MAX_LEN) {
		return CKR_PIN_LEN_RANGE;
	}
	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		return rv;
	}
	if (sl->login != CKU_SO) {
		rv = CKR_USER_NOT_LOGGED_IN;
		goto out;
	}
	p11m_chip_lock(sl);
	rv = p11m_chip_cmd(sl, P11M_CTX_PIN, CLA_ISO, INS_RESET_RETRY, 0,
	    PIN_USER, pin, pin_len, 0, NULL, 0, NULL);
	if (rv != CKR_DEVICE_REMOVED) {
		(void)p11m_slot_read_info(sl);
	}
	p11m_chip_unlock(sl);
out:
	p11m_session_unlock_slot(s);
	return rv;
}

CK_RV
p11m_set_pin(struct p11m_session *s, CK_UTF8CHAR_PTR old, CK_ULONG old_len,
    CK_UTF8CHAR_PTR pin, CK_ULONG pin_len)
{
	struct p11m_slot *sl = s->slot;
	uint8_t buf[2 + 2 * PIN_MAX_LEN];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));
	CK_RV rv;

	if (pin_len < PIN_MIN_LEN || pin_len > PIN_MAX_LEN) {
		return CKR_PIN_LEN_RANGE;
	}
	if (old_len < PIN_MIN_LEN || old_len > PIN_MAX_LEN) {
		return CKR_PIN_INCORRECT;	/* no try spent on it */
	}
	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		return rv;
	}
	if (ml_wr_lv8(&w, old, old_len) != 0 || ml_wr_lv8(&w, pin, pin_len) !=
	    0) {
		rv = CKR_GENERAL_ERROR;
		goto out;
	}
	/* The SO's PIN when the SO is logged in, else the user's. */
	p11m_chip_lock(sl);
	rv = p11m_chip_cmd(sl, P11M_CTX_PIN, CLA_ISO, INS_CHANGE_PIN, 0,
	    sl->login == CKU_SO ? PIN_SO : PIN_USER, w.p, w.len, 0, NULL, 0,
	    NULL);
	if (rv == CKR_USER_PIN_NOT_INITIALIZED && sl->login == CKU_SO) {
		rv = CKR_PIN_INCORRECT;
	}
	if (rv == CKR_OK && sl->login != NO_LOGIN) {
		p11m_slot_pin_keep(sl, pin, pin_len);	/* the login's PIN now */
	}
	if (rv != CKR_DEVICE_REMOVED) {
		(void)p11m_slot_read_info(sl);
	}
	p11m_chip_unlock(sl);
out:
	ml_wipe(buf, sizeof(buf));
	p11m_session_unlock_slot(s);
	return rv;
}
