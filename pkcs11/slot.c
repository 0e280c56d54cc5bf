/*
 * The module and its slots: C_Initialize/C_Finalize (with fork detection),
 * the transport configuration, slots and tokens over the chip link, and
 * C_WaitForSlotEvent.
 *
 * Slot IDs are stable: transport index * 256 + reader position, where the
 * transport index is the line number order of the configuration.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ml_log.h"
#include "ml_rd.h"
#include "ml_tlv.h"
#include "ml_wipe.h"
#include "chip.h"
#include "chiplink.h"
#include "chipcmd.h"
#include "sw.h"
#include "p11m.h"

/* Guards initialization and finalization; statically initialised, so it
 * is not state that outlives C_Finalize. */
static pthread_mutex_t p11m_init_lock = PTHREAD_MUTEX_INITIALIZER;
static struct p11m_module *p11m_g;
static struct p11m_module *volatile p11m_abandoned;	/* after fork */

/*
 * Forks so far (a child's handler bumps it, and does nothing else): the
 * fork check of every call without a getpid() system call.
 */
static unsigned p11m_forks;
static pthread_once_t p11m_atfork_once = PTHREAD_ONCE_INIT;

static void
atfork_child(void)
{
	__atomic_add_fetch(&p11m_forks, 1, __ATOMIC_RELAXED);
}

static void
atfork_register(void)
{
	(void)pthread_atfork(NULL, NULL, atfork_child);
}

struct p11m_module *
p11m_mod(void)
{
	struct p11m_module *m = __atomic_load_n(&p11m_g, __ATOMIC_ACQUIRE);

	/*
	 * Fork detection (p11-kit-sharing): a child behaves as if C_Finalize
	 * had been called.  Its inherited state is abandoned, not freed: the
	 * parent's threads may have held its locks at fork time.
	 */
	if (m != NULL && m->forks != __atomic_load_n(&p11m_forks,
	    __ATOMIC_RELAXED)) {
		return NULL;
	}
	return m;
}

/*
 * Calls in flight.  Every entry point but C_Initialize/C_Finalize holds
 * the gate shared for its whole body; C_Finalize wakes C_WaitForSlotEvent
 * and takes the gate exclusively, so it frees the module only when no call
 * is running, and calls that come later find no module
 * (CKR_CRYPTOKI_NOT_INITIALIZED).  OP-3: any thread may call any function,
 * C_Finalize included.  Writers are preferred, so a stream of calls cannot
 * starve C_Finalize; no entry point calls another, so no thread ever holds
 * the gate twice.  A pthread lock rather than a counter: helgrind and DRD
 * see the ordering.
 */
static pthread_rwlock_t p11m_gate;
static pthread_once_t p11m_gate_once = PTHREAD_ONCE_INIT;
static pid_t p11m_gate_pid;
/* Handle counters of the last finalized module (p11m_init_lock). */
static CK_ULONG p11m_last_session, p11m_last_object;

static void
gate_init(void)
{
	pthread_rwlockattr_t ra;

	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra,
	    PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&p11m_gate, &ra);
	pthread_rwlockattr_destroy(&ra);
}

bool
p11m_call_enter(void)
{
	pthread_once(&p11m_gate_once, gate_init);
	pthread_rwlock_rdlock(&p11m_gate);
	if (p11m_mod() == NULL) {
		pthread_rwlock_unlock(&p11m_gate);
		return false;
	}
	return true;
}

void
p11m_call_leave(void)
{
	pthread_rwlock_unlock(&p11m_gate);
}

/*
 * C_Initialize (p11m_init_lock held).  In a forked child the parent's
 * calls in flight were copied into the gate but will never leave: start
 * it over (only the forking thread runs in the child).
 */
static void
gate_open(void)
{
	pid_t pid = getpid();

	pthread_once(&p11m_gate_once, gate_init);
	if (p11m_gate_pid != 0 && p11m_gate_pid != pid) {
		gate_init();
	}
	p11m_gate_pid = pid;
}

struct p11m_module *
p11m_mod_current(void)
{
	return __atomic_load_n(&p11m_g, __ATOMIC_ACQUIRE);
}

CK_OBJECT_HANDLE
p11m_next_object_handle(void)
{
	struct p11m_module *m = p11m_mod_current();

	return __atomic_add_fetch(&m->next_object, 1, __ATOMIC_RELAXED);
}

/* ---- logging ---- */

/*
 * The module is a guest in its host's process: it says nothing unless
 * asked (OP-3).  MINTLINE_PKCS11_LOG=LEVEL[:FILE] or a "log LEVEL[:FILE]"
 * configuration line turns it on; LEVEL is error, warn, info or debug, and
 * FILE (appended to) replaces stderr.  Guarded by p11m_init_lock.
 */
static FILE *p11m_log_file;

static void
log_close(void)
{
	ml_log_set_level(ML_LOG_OFF);
	ml_log_set_output(NULL);
	if (p11m_log_file != NULL) {
		fclose(p11m_log_file);
		p11m_log_file = NULL;
	}
}

static void
log_setup(const char *spec)
{
	static const char *const names[] = { "error", "warn", "info",
	    "debug" };
	const char *colon = strchr(spec, ':');
	size_t len = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
	size_t i;

	log_close();
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i]) == len && strncmp(spec, names[i],
		    len) == 0) {
			break;
		}
	}
	if (i == sizeof(names) / sizeof(names[0])) {
		return;		/* "off" or unknown: stay silent */
	}
	if (colon != NULL && colon[1] != '\0') {
		if ((p11m_log_file = fopen(colon + 1, "ae")) == NULL) {
			return;	/* nowhere to say so: stay silent */
		}
		setvbuf(p11m_log_file, NULL, _IOLBF, 0);
		ml_log_set_output(p11m_log_file);
	}
	ml_log_set_level((enum ml_log_level)i);
}

/* ---- configuration ---- */

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t') {
		s++;
	}
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
	    e[-1] == '\r')) {
		*--e = '\0';
	}
	return s;
}

static CK_RV
add_transport(struct p11m_module *m, const char *spec)
{
	if (m->ntr >= P11M_MAX_TRANSPORTS) {
		ml_warn("pkcs11: more than %d transports; ignoring %s",
		    P11M_MAX_TRANSPORTS, spec);
		return CKR_OK;
	}
	if ((m->tr[m->ntr].spec = strdup(spec)) == NULL) {
		return CKR_HOST_MEMORY;
	}
	m->ntr++;
	return CKR_OK;
}

/*
 * MINTLINE_PKCS11_TRANSPORT=spec[;spec...] overrides; else the file named
 * by MINTLINE_PKCS11_CONF or the default path, with lines
 * "transport SPEC" and "log LEVEL[:FILE]" ('#' starts a comment); else the
 * in-process line in $MINTLINE_LINE_DIR or the built-in default directory.
 * MINTLINE_PKCS11_LOG overrides the file's "log" line.
 */
static CK_RV
load_config(struct p11m_module *m)
{
	const char *env = secure_getenv("MINTLINE_PKCS11_TRANSPORT");
	const char *path = secure_getenv("MINTLINE_PKCS11_CONF");
	const char *logenv = secure_getenv("MINTLINE_PKCS11_LOG");
	char line[1024], *s, *tok, *save = NULL, *dup;
	FILE *f = NULL;
	CK_RV rv = CKR_OK;
	unsigned lineno = 0;
	bool file_transports = env == NULL || *env == '\0';

	log_close();
	if (logenv != NULL) {
		log_setup(logenv);
	}
	if (path == NULL || *path == '\0') {
		path = P11M_DEFAULT_CONF;
	}
	if ((f = fopen(path, "re")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			lineno++;
			if ((s = strchr(line, '#')) != NULL) {
				*s = '\0';
			}
			s = trim(line);
			if (*s == '\0') {
				continue;
			}
			if (strncmp(s, "log", 3) == 0 &&
			    (s[3] == ' ' || s[3] == '\t')) {
				if (logenv == NULL) {
					log_setup(trim(s + 3));
				}
				continue;
			}
			if (strncmp(s, "transport", 9) != 0 ||
			    (s[9] != ' ' && s[9] != '\t')) {
				ml_warn("pkcs11: %s:%u: unknown line ignored",
				    path, lineno);
				continue;
			}
			if (file_transports &&
			    (rv = add_transport(m, trim(s + 9))) != CKR_OK) {
				break;
			}
		}
		fclose(f);
		if (rv != CKR_OK) {
			return rv;
		}
	}
	if (!file_transports) {
		if ((dup = strdup(env)) == NULL) {
			return CKR_HOST_MEMORY;
		}
		for (tok = strtok_r(dup, ";", &save); tok != NULL;
		    tok = strtok_r(NULL, ";", &save)) {
			if (*(s = trim(tok)) != '\0' &&
			    (rv = add_transport(m, s)) != CKR_OK) {
				break;
			}
		}
		free(dup);
		return rv;
	}
	if (m->ntr > 0) {
		return CKR_OK;
	}
	if ((env = secure_getenv("MINTLINE_LINE_DIR")) != NULL && *env != '\0') {
		snprintf(line, sizeof(line), "inproc:%s", env);
	} else {
		snprintf(line, sizeof(line), "inproc:%s", P11M_DEFAULT_LINE);
	}
	return add_transport(m, line);
}

/* Open a transport that is not open yet (pcscd may start late). */
static void
transport_open(struct p11m_module *m, size_t ti)
{
	struct p11m_transport *tr = &m->tr[ti];
	struct chiplink *l = NULL;
	size_t i, n;
	int r;

	struct timespec ts;

	if (tr->link != NULL) {
		return;
	}
	/* A transport that is not there (pcscd down) is retried, but at
	 * most every two seconds: C_GetSlotList is called in loops. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if ((int64_t)ts.tv_sec < tr->next_try) {
		return;
	}
	if ((r = chiplink_open(tr->spec, &l)) != 0) {
		ml_debug("pkcs11: transport %s: %s", tr->spec, ml_strerror(r));
		tr->next_try = (int64_t)ts.tv_sec + 2;
		return;
	}
	n = chiplink_nslots(l);
	if (n > P11M_SLOTS_PER_TRANSPORT) {
		n = P11M_SLOTS_PER_TRANSPORT;
	}
	if (n > 0 && (tr->slots = calloc(n, sizeof(*tr->slots))) == NULL) {
		chiplink_close(l);
		return;
	}
	for (i = 0; i < n; i++) {
		struct p11m_slot *sl = &tr->slots[i];

		pthread_mutex_init(&sl->lock, NULL);
		sl->id = (CK_SLOT_ID)(ti * P11M_SLOTS_PER_TRANSPORT + i);
		sl->tr = tr;
		sl->pos = i;
		sl->login = (CK_USER_TYPE)-1;
		p11m_slot_pin_forget(sl);
		/* Events are changes after C_Initialize. */
		{
			struct chiplink_slot_info si;

			if (chiplink_slot_info(l, i, &si) == 0) {
				sl->seen_present = si.present;
				sl->seen_gen = si.generation;
			}
		}
	}
	tr->nslots = n;
	__atomic_store_n(&tr->link, l, __ATOMIC_RELEASE);
}

static void
module_free(struct p11m_module *m)
{
	size_t ti, i;

	if (m == NULL) {
		return;
	}
	p11m_sessions_free(m);
	for (ti = 0; ti < m->ntr; ti++) {
		struct p11m_transport *tr = &m->tr[ti];

		for (i = 0; i < tr->nslots; i++) {
			struct p11m_slot *sl = &tr->slots[i];

			/* A shared (PC/SC) card keeps its login state after
			 * we go: leave it logged out. */
			if (sl->gen != 0 && sl->login != (CK_USER_TYPE)-1) {
				p11m_objset_release_chip(sl);
				(void)p11m_chip_cmd(sl, P11M_CTX_DEFAULT,
				    CLA_PROP, INS_LOGOUT, 0, 0, NULL, 0, 0, NULL,
				    0, NULL);
			}
			p11m_objset_clear(&sl->objs);
			p11m_slot_pin_forget(sl);
			ml_wipe(sl->rnd, sizeof(sl->rnd));
			pthread_mutex_destroy(&sl->lock);
		}
		free(tr->slots);
		chiplink_close(tr->link);
		free(tr->spec);
	}
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

CK_RV
p11m_initialize(CK_VOID_PTR args)
{
	struct p11m_module *m = NULL;
	CK_C_INITIALIZE_ARGS ia;
	CK_RV rv = CKR_OK;
	size_t ti;
	int r;

	if (args != NULL) {
		/* Copy the arguments; never keep the caller's pointer. */
		memcpy(&ia, args, sizeof(ia));
		if (ia.pReserved != NULL) {
			return CKR_ARGUMENTS_BAD;
		}
		/* All four mutex callbacks or none (v2.40 §5.4). */
		if (!((ia.CreateMutex == NULL && ia.DestroyMutex == NULL &&
		    ia.LockMutex == NULL && ia.UnlockMutex == NULL) ||
		    (ia.CreateMutex != NULL && ia.DestroyMutex != NULL &&
		    ia.LockMutex != NULL && ia.UnlockMutex != NULL))) {
			return CKR_ARGUMENTS_BAD;
		}
		/* Callbacks without CKF_OS_LOCKING_OK: we cannot use the
		 * application's mutexes from the chip link's threads. */
		if (ia.CreateMutex != NULL && !(ia.flags & CKF_OS_LOCKING_OK)) {
			return CKR_CANT_LOCK;
		}
	}
	pthread_mutex_lock(&p11m_init_lock);
	if (p11m_mod() != NULL) {
		rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
		goto out;
	}
	/*
	 * A forked child's inherited module is abandoned (see p11m_mod); it
	 * stays referenced so that leak checkers see it as held, not lost.
	 */
	if (p11m_g != NULL) {
		p11m_abandoned = p11m_g;
		p11m_g = NULL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	m->pid = getpid();
	pthread_once(&p11m_atfork_once, atfork_register);
	m->forks = __atomic_load_n(&p11m_forks, __ATOMIC_RELAXED);
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	/* Handles go on from the last module's: a handle a thread kept
	 * across C_Finalize never names another thread's new session. */
	m->next_session = p11m_last_session;
	m->next_object = p11m_last_object;
	if ((m->sessions = calloc(P11M_NBUCKETS, sizeof(*m->sessions))) ==
	    NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	if ((r = ml_ossl_init()) != 0) {
		rv = ml_err_to_ckr(r);
		goto out;
	}
	if ((rv = load_config(m)) != CKR_OK) {
		goto out;
	}
	for (ti = 0; ti < m->ntr; ti++) {
		transport_open(m, ti);
	}
	gate_open();
	/* Published under the gate: a call that finds the module sees it
	 * whole (and helgrind/DRD see why). */
	pthread_rwlock_wrlock(&p11m_gate);
	__atomic_store_n(&p11m_g, m, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&p11m_gate);
	m = NULL;
out:
	if (m != NULL) {
		module_free(m);
	}
	pthread_mutex_unlock(&p11m_init_lock);
	return rv;
}

CK_RV
p11m_finalize(void)
{
	struct p11m_module *m;

	pthread_mutex_lock(&p11m_init_lock);
	if ((m = p11m_mod()) == NULL) {
		pthread_mutex_unlock(&p11m_init_lock);
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	/* Let threads blocked in C_WaitForSlotEvent return first, then
	 * wait for every other call in flight. */
	pthread_mutex_lock(&m->lock);
	m->finalizing = true;
	pthread_mutex_unlock(&m->lock);
	pthread_rwlock_wrlock(&p11m_gate);
	__atomic_store_n(&p11m_g, NULL, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&p11m_gate);
	p11m_last_session = m->next_session;
	p11m_last_object = m->next_object;
	module_free(m);
	/*
	 * The OpenSSL context stays (ml_ossl_init() finds it at the next
	 * C_Initialize): OpenSSL 3.0 runs a thread's exit handlers on every
	 * context the thread used, so freeing it here would crash each
	 * application thread that signed and exits after C_Finalize.
	 */
	log_close();
	pthread_mutex_unlock(&p11m_init_lock);
	return CKR_OK;
}

CK_RV
p11m_get_info(CK_INFO_PTR info)
{
	memset(info, 0, sizeof(*info));
	info->cryptokiVersion.major = 2;
	info->cryptokiVersion.minor = 40;
	p11m_pad(info->manufacturerID, sizeof(info->manufacturerID),
	    P11M_MANUFACTURER);
	info->flags = 0;
	p11m_pad(info->libraryDescription, sizeof(info->libraryDescription),
	    "mintline PKCS#11 module");
	info->libraryVersion.major = P11M_LIB_MAJOR;
	info->libraryVersion.minor = P11M_LIB_MINOR;
	return CKR_OK;
}

/* ---- slots ---- */

CK_RV
p11m_slot_get(CK_SLOT_ID id, struct p11m_slot **ret)
{
	struct p11m_module *m = p11m_mod();
	size_t ti = id / P11M_SLOTS_PER_TRANSPORT;
	size_t pos = id % P11M_SLOTS_PER_TRANSPORT;
	struct p11m_transport *tr;

	if (m == NULL) {
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	if (ti >= m->ntr) {
		return CKR_SLOT_ID_INVALID;
	}
	tr = &m->tr[ti];
	if (__atomic_load_n(&tr->link, __ATOMIC_ACQUIRE) == NULL ||
	    pos >= tr->nslots) {
		return CKR_SLOT_ID_INVALID;
	}
	*ret = &tr->slots[pos];
	return CKR_OK;
}

void
p11m_slot_pin_keep(struct p11m_slot *sl, const uint8_t *pin, size_t len)
{
	p11m_slot_pin_forget(sl);
	if (len <= sizeof(sl->pin)) {
		memcpy(sl->pin, pin, len);
		sl->pin_len = len;
	}
}

void
p11m_slot_pin_forget(struct p11m_slot *sl)
{
	ml_wipe(sl->pin, sizeof(sl->pin));
	sl->pin_len = 0;
}

void
p11m_slot_forget(struct p11m_slot *sl)
{
	p11m_slot_pin_forget(sl);
	ml_wipe(sl->rnd, sizeof(sl->rnd));
	sl->rnd_len = 0;
	p11m_objset_clear(&sl->objs);
	__atomic_store_n(&sl->gen, 0, __ATOMIC_RELEASE);
	sl->nsessions = sl->nro = 0;
	sl->recognized = false;
	sl->login = (CK_USER_TYPE)-1;
	sl->kind = 0;
	sl->serial[0] = sl->label[0] = '\0';
}

CK_RV
p11m_slot_read_info(struct p11m_slot *sl)
{
	uint8_t buf[512];
	struct ml_rd rd, v;
	uint32_t tag;
	size_t n = 0, k;
	uint16_t u16;
	CK_RV rv;
	int r = 0;

	rv = p11m_chip_cmd(sl, P11M_CTX_DEFAULT, CLA_ISO, INS_GET_DATA,
	    GD_CHIP_INFO, 0, NULL, 0, 256, buf, sizeof(buf), &n);
	if (rv != CKR_OK) {
		return rv;
	}
	rd = ML_RD_INIT(buf, n);
	while (ml_rd_left(&rd) > 0) {
		ML_TRY(ml_tlv_next(&rd, &tag, &v));
		k = ml_rd_left(&v);
		switch (tag) {
		case TAG_INFO_KIND:
			ML_TRY(ml_rd_u8(&v, &sl->kind));
			break;
		case TAG_INFO_SERIAL:
			ML_ENSURE(k <= CHIP_SERIAL_LEN, ML_ERR_FORMAT);
			ML_TRY(ml_rd_copy(&v, sl->serial, k));
			while (k > 0 && sl->serial[k - 1] == ' ') {
				k--;
			}
			sl->serial[k] = '\0';
			break;
		case TAG_INFO_LABEL:
			ML_ENSURE(k <= LABEL_MAX_LEN, ML_ERR_FORMAT);
			ML_TRY(ml_rd_copy(&v, sl->label, k));
			sl->label[k] = '\0';
			break;
		case TAG_INFO_STATE:
			ML_TRY(ml_rd_u16be(&v, &sl->state));
			break;
		case TAG_INFO_USER_TRIES:
			ML_TRY(ml_rd_u8(&v, &sl->user_tries));
			break;
		case TAG_INFO_SO_TRIES:
			ML_TRY(ml_rd_u8(&v, &sl->so_tries));
			break;
		case TAG_INFO_MAX_TRIES:
			ML_TRY(ml_rd_u8(&v, &sl->max_tries));
			break;
		case TAG_INFO_FREE:
			ML_TRY(ml_rd_u32be(&v, &sl->free_bytes));
			break;
		case TAG_INFO_VERSION:
			ML_TRY(ml_rd_u16be(&v, &u16));
			sl->ver_major = (uint8_t)(u16 >> 8);
			sl->ver_minor = (uint8_t)u16;
			break;
		case TAG_INFO_STORE_GEN:
			ML_TRY(ml_rd_u32be(&v, &sl->store_gen));
			sl->has_store_gen = true;
			break;
		default:
			break;
		}
	}
out:
	return r == 0 ? CKR_OK : CKR_DEVICE_ERROR;
}

CK_RV
p11m_slot_refresh(struct p11m_slot *sl)
{
	struct chiplink_slot_info si;
	struct chipcmd cc;
	CK_RV rv;
	int r;

	if (sl->tr->link == NULL) {
		return CKR_TOKEN_NOT_PRESENT;
	}
	if ((r = chiplink_slot_info(sl->tr->link, sl->pos, &si)) != 0) {
		return ml_err_to_ckr(r);
	}
	if (!si.present) {
		p11m_slot_forget(sl);
		return CKR_TOKEN_NOT_PRESENT;
	}
	if (si.generation == sl->gen && sl->gen != 0) {
		return sl->recognized ? CKR_OK : CKR_TOKEN_NOT_RECOGNIZED;
	}
	/* A new chip (or the first look at this one). */
	p11m_slot_forget(sl);
	p11m_chip_lock(sl);
	r = chipcmd_begin(&cc, sl->tr->link, sl->pos);
	if (r == ML_ERR_NOT_FOUND) {
		sl->gen = si.generation;
		sl->recognized = false;
		rv = CKR_TOKEN_NOT_RECOGNIZED;
		goto out;
	}
	if (r != 0) {
		rv = r == ML_ERR_REMOVED ? CKR_TOKEN_NOT_PRESENT :
		    ml_err_to_ckr(r);
		goto out;
	}
	__atomic_store_n(&sl->gen, cc.generation, __ATOMIC_RELEASE);
	if ((rv = p11m_slot_read_info(sl)) != CKR_OK) {
		sl->gen = 0;
		if (rv == CKR_DEVICE_REMOVED) {
			rv = CKR_TOKEN_NOT_PRESENT;
		}
		goto out;
	}
	sl->recognized = true;
	sl->login = (CK_USER_TYPE)-1;
	p11m_slot_pin_forget(sl);
out:
	p11m_chip_unlock(sl);
	return rv;
}

CK_RV
p11m_slot_check(struct p11m_slot *sl)
{
	struct chiplink_slot_info si;

	if (sl->gen == 0) {
		return CKR_DEVICE_REMOVED;
	}
	if (chiplink_slot_info(sl->tr->link, sl->pos, &si) != 0 ||
	    !si.present || si.generation != sl->gen) {
		/* As a failed transmit would: the sessions are dead now. */
		__atomic_store_n(&sl->gen, 0, __ATOMIC_RELEASE);
		sl->login = (CK_USER_TYPE)-1;
		p11m_slot_pin_forget(sl);
		return CKR_DEVICE_REMOVED;
	}
	return CKR_OK;
}

CK_RV
p11m_get_slot_list(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
	struct p11m_module *m = p11m_mod();
	CK_ULONG n = 0, room = *count;
	size_t ti, i;
	CK_RV rv;

	/* Late transports open under the module lock: one thread does it. */
	pthread_mutex_lock(&m->lock);
	for (ti = 0; ti < m->ntr; ti++) {
		transport_open(m, ti);
	}
	pthread_mutex_unlock(&m->lock);
	for (ti = 0; ti < m->ntr; ti++) {
		struct p11m_transport *tr = &m->tr[ti];

		if (__atomic_load_n(&tr->link, __ATOMIC_ACQUIRE) == NULL) {
			continue;
		}
		for (i = 0; i < tr->nslots; i++) {
			struct p11m_slot *sl = &tr->slots[i];

			if (present) {
				pthread_mutex_lock(&sl->lock);
				rv = p11m_slot_refresh(sl);
				pthread_mutex_unlock(&sl->lock);
				if (rv == CKR_TOKEN_NOT_PRESENT) {
					continue;
				}
			}
			if (list != NULL && n < room) {
				list[n] = sl->id;
			}
			n++;
		}
	}
	*count = n;
	if (list != NULL && n > room) {
		return CKR_BUFFER_TOO_SMALL;
	}
	return CKR_OK;
}

CK_RV
p11m_get_slot_info(CK_SLOT_ID id, CK_SLOT_INFO_PTR info)
{
	struct chiplink_slot_info si;
	struct p11m_slot *sl;
	CK_RV rv;
	char desc[64 + 1];

	if ((rv = p11m_slot_get(id, &sl)) != CKR_OK) {
		return rv;
	}
	memset(info, 0, sizeof(*info));
	pthread_mutex_lock(&sl->lock);
	rv = p11m_slot_refresh(sl);
	if (chiplink_slot_info(sl->tr->link, sl->pos, &si) != 0) {
		si.name[0] = '\0';
	}
	pthread_mutex_unlock(&sl->lock);
	snprintf(desc, sizeof(desc), "%s", si.name);
	p11m_pad(info->slotDescription, sizeof(info->slotDescription), desc);
	p11m_pad(info->manufacturerID, sizeof(info->manufacturerID),
	    P11M_MANUFACTURER);
	info->flags = CKF_REMOVABLE_DEVICE | CKF_HW_SLOT;
	if (rv != CKR_TOKEN_NOT_PRESENT) {
		info->flags |= CKF_TOKEN_PRESENT;
	}
	info->hardwareVersion.major = 1;
	info->firmwareVersion.major = 1;
	return CKR_OK;
}

static const char *
model_name(uint8_t kind)
{
	switch (kind) {
	case CHIP_KIND_READER:
		return "mintline reader";
	case CHIP_KIND_NOTE:
		return "mintline note";
	case CHIP_KIND_IDCARD:
		return "mintline idcard";
	default:
		return "mintline";
	}
}

/*
 * The token label: the chip label (or the chip kind when blank) followed
 * by the fixed-width serial, so that no label is a prefix of another
 * (pkcs11-tool --token-label matches by prefix).
 */
static void
token_label(const struct p11m_slot *sl, char ret[33])
{
	const char *base = sl->label[0] != '\0' ? sl->label :
	    chip_kind_name((enum chip_kind)sl->kind);
	size_t slen = strlen(sl->serial), room;

	if (base == NULL) {
		base = "mintline";
	}
	room = 32 - slen - 1;
	snprintf(ret, 33, "%.*s %s", (int)room, base, sl->serial);
}

CK_RV
p11m_get_token_info(CK_SLOT_ID id, CK_TOKEN_INFO_PTR info)
{
	struct p11m_slot *sl;
	char label[33];
	CK_RV rv;

	if ((rv = p11m_slot_get(id, &sl)) != CKR_OK) {
		return rv;
	}
	pthread_mutex_lock(&sl->lock);
	if ((rv = p11m_slot_refresh(sl)) != CKR_OK) {
		goto out;
	}
	p11m_chip_lock(sl);
	rv = p11m_slot_read_info(sl);
	p11m_chip_unlock(sl);
	if (rv != CKR_OK) {
		if (rv == CKR_DEVICE_REMOVED) {
			rv = CKR_TOKEN_NOT_PRESENT;
		}
		goto out;
	}
	memset(info, 0, sizeof(*info));
	token_label(sl, label);
	p11m_pad(info->label, sizeof(info->label), label);
	p11m_pad(info->manufacturerID, sizeof(info->manufacturerID),
	    P11M_MANUFACTURER);
	p11m_pad(info->model, sizeof(info->model), model_name(sl->kind));
	p11m_pad(info->serialNumber, sizeof(info->serialNumber), sl->serial);
	info->flags = CKF_RNG | CKF_LOGIN_REQUIRED;
	/* A chip whose personalisation is closed is an initialised token
	 * too: an ID card is locked at manufacture without an INIT TOKEN,
	 * and pkcs11-tool -L called it "uninitialized". */
	if (sl->state & (INFO_F_INITIALIZED | INFO_F_LOCKED)) {
		info->flags |= CKF_TOKEN_INITIALIZED;
	}
	if (sl->state & INFO_F_USER_PIN_SET) {
		info->flags |= CKF_USER_PIN_INITIALIZED;
		if (sl->state & INFO_F_USER_LOCKED || sl->user_tries == 0) {
			info->flags |= CKF_USER_PIN_LOCKED;
		} else if (sl->user_tries == 1) {
			info->flags |= CKF_USER_PIN_FINAL_TRY |
			    CKF_USER_PIN_COUNT_LOW;
		} else if (sl->user_tries < sl->max_tries) {
			info->flags |= CKF_USER_PIN_COUNT_LOW;
		}
	}
	if (sl->state & INFO_F_INITIALIZED) {
		if (sl->state & INFO_F_SO_LOCKED || sl->so_tries == 0) {
			info->flags |= CKF_SO_PIN_LOCKED;
		} else if (sl->so_tries == 1) {
			info->flags |= CKF_SO_PIN_FINAL_TRY |
			    CKF_SO_PIN_COUNT_LOW;
		} else if (sl->so_tries < SO_PIN_MAX_TRIES) {
			info->flags |= CKF_SO_PIN_COUNT_LOW;
		}
	}
	if (sl->state & INFO_F_LOCKED) {
		/* Personalisation closed: the store takes no more objects
		 * from the SO, but users still write (data objects). */
		info->flags |= 0;
	}
	info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
	info->ulSessionCount = sl->nsessions;
	info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
	info->ulRwSessionCount = sl->nsessions - sl->nro;
	info->ulMaxPinLen = PIN_MAX_LEN;
	info->ulMinPinLen = PIN_MIN_LEN;
	info->ulTotalPublicMemory = STORE_MAX_PAYLOAD;
	info->ulFreePublicMemory = sl->free_bytes;
	info->ulTotalPrivateMemory = STORE_MAX_PAYLOAD;
	info->ulFreePrivateMemory = sl->free_bytes;
	info->hardwareVersion.major = 1;
	info->firmwareVersion.major = sl->ver_major;
	info->firmwareVersion.minor = sl->ver_minor;
	memset(info->utcTime, ' ', sizeof(info->utcTime));
out:
	pthread_mutex_unlock(&sl->lock);
	return rv;
}

CK_RV
p11m_init_token(CK_SLOT_ID id, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,
    CK_UTF8CHAR_PTR label)
{
	struct ml_wr w;
	uint8_t buf[2 + PIN_MAX_LEN + LABEL_MAX_LEN];
	struct p11m_slot *sl;
	size_t llen = 32;
	CK_RV rv;
	int r;

	if ((rv = p11m_slot_get(id, &sl)) != CKR_OK) {
		return rv;
	}
	if (pin_len < PIN_MIN_LEN || pin_len > PIN_MAX_LEN) {
		return CKR_PIN_LEN_RANGE;
	}
	/* The label is 32 bytes, blank padded: drop the padding. */
	while (llen > 0 && label[llen - 1] == ' ') {
		llen--;
	}
	pthread_mutex_lock(&sl->lock);
	if ((rv = p11m_slot_refresh(sl)) != CKR_OK) {
		goto out;
	}
	if (sl->nsessions > 0) {
		rv = CKR_SESSION_EXISTS;
		goto out;
	}
	w = ML_WR_FIXED(buf, sizeof(buf));
	if ((r = ml_wr_lv8(&w, pin, pin_len)) != 0 ||
	    (r = ml_wr_lv8(&w, label, llen)) != 0) {
		rv = ml_err_to_ckr(r);
		goto out;
	}
	p11m_chip_lock(sl);
	rv = p11m_chip_cmd(sl, P11M_CTX_PIN, CLA_PROP, INS_INIT_TOKEN, 0, 0,
	    w.p, w.len, 0, NULL, 0, NULL);
	if (rv == CKR_USER_PIN_NOT_INITIALIZED) {
		rv = CKR_PIN_INCORRECT;
	}
	if (rv == CKR_OK || rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED) {
		/* Every object is gone (or the retry counter moved). */
		p11m_objset_clear(&sl->objs);
		sl->login = (CK_USER_TYPE)-1;
		p11m_slot_pin_forget(sl);
		(void)p11m_slot_read_info(sl);
	}
	p11m_chip_unlock(sl);
out:
	ml_wipe(buf, sizeof(buf));
	pthread_mutex_unlock(&sl->lock);
	return rv;
}

/* ---- slot events ---- */

/* Report the first slot whose presence or chip changed since last seen. */
static bool
poll_events(struct p11m_module *m, CK_SLOT_ID *ret)
{
	struct chiplink_slot_info si;
	size_t ti, i;

	for (ti = 0; ti < m->ntr; ti++) {
		struct p11m_transport *tr = &m->tr[ti];

		if (__atomic_load_n(&tr->link, __ATOMIC_ACQUIRE) == NULL) {
			continue;
		}
		for (i = 0; i < tr->nslots; i++) {
			struct p11m_slot *sl = &tr->slots[i];
			bool changed = false;

			pthread_mutex_lock(&sl->lock);
			if (chiplink_slot_info(tr->link, i, &si) == 0 &&
			    (si.present != sl->seen_present ||
			    si.generation != sl->seen_gen)) {
				sl->seen_present = si.present;
				sl->seen_gen = si.generation;
				changed = true;
			}
			pthread_mutex_unlock(&sl->lock);
			if (changed) {
				*ret = sl->id;
				return true;
			}
		}
	}
	return false;
}

CK_RV
p11m_wait_for_slot_event(CK_FLAGS flags, CK_SLOT_ID_PTR ret_slot)
{
	struct p11m_module *m = p11m_mod();
	CK_RV rv = CKR_OK;
	size_t ti, dummy;

	if (poll_events(m, ret_slot)) {
		return CKR_OK;
	}
	if (flags & CKF_DONT_BLOCK) {
		return CKR_NO_EVENT;
	}
	pthread_mutex_lock(&m->lock);
	if (m->finalizing) {
		pthread_mutex_unlock(&m->lock);
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	}
	m->waiters++;
	pthread_mutex_unlock(&m->lock);
	for (;;) {
		bool stop;

		pthread_mutex_lock(&m->lock);
		stop = m->finalizing;
		pthread_mutex_unlock(&m->lock);
		if (stop) {
			rv = CKR_CRYPTOKI_NOT_INITIALIZED;
			break;
		}
		if (poll_events(m, ret_slot)) {
			rv = CKR_OK;
			break;
		}
		/* Sleep on the first open link (it wakes on any of its slots);
		 * a short timeout keeps other links and finalize responsive. */
		for (ti = 0; ti < m->ntr; ti++) {
			if (m->tr[ti].link != NULL) {
				break;
			}
		}
		if (ti < m->ntr) {
			int r = chiplink_wait(m->tr[ti].link,
			    m->ntr > 1 ? 50 : 200, &dummy);

			(void)r;	/* events are found by poll_events() */
		} else {
			struct timespec ts = { 0, 200 * 1000 * 1000 };

			nanosleep(&ts, NULL);
		}
	}
	pthread_mutex_lock(&m->lock);
	m->waiters--;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	return rv;
}
