#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ml_ossl.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "store.h"

struct store {
	int		 fd;
	char		 path[PATH_MAX];	/* the image, for error context */
	uint8_t		 key[STORE_KEY_LEN];
	int		 cur;		/* slot holding the newest valid copy */
	uint32_t	 gen;
	long		 cut_after;	/* test hook (ML_TEST_HOOKS); < 0 off */
	bool		 dead;		/* power was cut */
};

static char *
key_path(const char *path)
{
	size_t n = strlen(path);
	char *p = malloc(n + 5);

	if (p != NULL) {
		memcpy(p, path, n);
		memcpy(p + n, ".key", 5);
	}
	return p;
}

/* pwrite n bytes of p at off; a failure names what (a file path). */
static int
write_all(int fd, const uint8_t *p, size_t n, off_t off, const char *what)
{
	ssize_t w;

	while (n > 0) {
		w = pwrite(fd, p, n, off);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			if (w == 0) {
				errno = EIO;	/* no progress, no errno */
			}
			return ml_errf_sys(ML_ERR_IO, "%s: write", what);
		}
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* pread up to n bytes at off into p (*ret_got: how many; short at EOF). */
static int
read_all(int fd, uint8_t *p, size_t n, off_t off, size_t *ret_got,
    const char *what)
{
	size_t got = 0;
	ssize_t rd;

	while (got < n) {
		rd = pread(fd, p + got, n - got, off + (off_t)got);
		if (rd < 0 && errno == EINTR) {
			continue;
		}
		if (rd < 0) {
			return ml_errf_sys(ML_ERR_IO, "%s: read", what);
		}
		if (rd == 0) {
			break;
		}
		got += (size_t)rd;
	}
	*ret_got = got;
	return 0;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int
slot_mac(const uint8_t key[STORE_KEY_LEN], const uint8_t *hdr12,
    const uint8_t *payload, size_t len, uint8_t ret_mac[ML_SHA256_LEN])
{
	struct ml_wr w = ml_wr_dyn(12 + STORE_MAX_PAYLOAD);
	int r;

	if ((r = ml_wr_bytes(&w, hdr12, 12)) == 0 &&
	    (r = ml_wr_bytes(&w, payload, len)) == 0) {
		r = ml_hmac_sha256(key, STORE_KEY_LEN, w.p, w.len, ret_mac);
	}
	ml_wr_free(&w);
	return r;
}

/*
 * Write one copy: header (magic, gen, len, mac) then payload, as one
 * sequential byte stream, so that the cut hook models a power loss after
 * any byte.
 */
static int
slot_write(struct store *s, int slot, uint32_t gen, const uint8_t *payload,
    size_t len)
{
	uint8_t *buf = NULL;
	size_t total = STORE_HDR_LEN + len, n;
	int r;

	if (s->dead) {
		return ml_errf(ML_ERR_IO, "%s: the chip lost power mid-write",
		    s->path);
	}
	if ((buf = malloc(total)) == NULL) {
		return ML_ERR_NOMEM;
	}
	put32(buf, STORE_MAGIC);
	put32(buf + 4, gen);
	put32(buf + 8, (uint32_t)len);
	memcpy(buf + STORE_HDR_LEN, payload, len);
	if ((r = slot_mac(s->key, buf, payload, len, buf + 12)) != 0) {
		goto out;
	}
	n = total;
#ifdef ML_TEST_HOOKS
	if (s->cut_after >= 0 && (size_t)s->cut_after < total) {
		n = (size_t)s->cut_after;
	}
#endif
	if ((r = write_all(s->fd, buf, n, (off_t)slot * STORE_SLOT_SIZE,
	    s->path)) != 0) {
		goto out;
	}
	if (n < total) {
		s->dead = true;		/* the lights went out */
		r = ml_errf(ML_ERR_IO, "%s: the chip lost power mid-write",
		    s->path);
		goto out;
	}
	if (fdatasync(s->fd) != 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s: fdatasync", s->path);
		goto out;
	}
	r = 0;
out:
	ml_freezero(buf, total);
	return r;
}

/* Verify one slot; 0 with a malloc'd payload, or ML_ERR_FORMAT. */
static int
slot_load(struct store *s, int slot, uint32_t *ret_gen, uint8_t **ret_payload,
    size_t *ret_len)
{
	uint8_t hdr[STORE_HDR_LEN], mac[ML_SHA256_LEN];
	uint8_t *payload = NULL;
	uint32_t magic, gen, len = 0;
	size_t got;
	int r;

	ML_TRY(read_all(s->fd, hdr, sizeof(hdr), (off_t)slot * STORE_SLOT_SIZE,
	    &got, s->path));
	ML_ENSURE(got == sizeof(hdr), ML_ERR_FORMAT);
	magic = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) |
	    ((uint32_t)hdr[2] << 8) | hdr[3];
	gen = ((uint32_t)hdr[4] << 24) | ((uint32_t)hdr[5] << 16) |
	    ((uint32_t)hdr[6] << 8) | hdr[7];
	len = ((uint32_t)hdr[8] << 24) | ((uint32_t)hdr[9] << 16) |
	    ((uint32_t)hdr[10] << 8) | hdr[11];
	ML_ENSURE(magic == STORE_MAGIC && gen != 0, ML_ERR_FORMAT);
	ML_ENSURE(len <= STORE_MAX_PAYLOAD, ML_ERR_FORMAT);
	ML_ENSURE((payload = malloc(len ? len : 1)) != NULL, ML_ERR_NOMEM);
	ML_TRY(read_all(s->fd, payload, len,
	    (off_t)slot * STORE_SLOT_SIZE + STORE_HDR_LEN, &got, s->path));
	ML_ENSURE(got == len, ML_ERR_FORMAT);
	ML_TRY(slot_mac(s->key, hdr, payload, len, mac));
	ML_ENSURE(ml_ct_eq(mac, hdr + 12, sizeof(mac)), ML_ERR_FORMAT);
	*ret_gen = gen;
	*ret_payload = payload;
	*ret_len = len;
	payload = NULL;
	r = 0;
out:
	ml_freezero(payload, len);
	return r;
}

static int
fsync_dir_of(const char *path)
{
	char *dir = strdup(path), *slash;
	int fd, r = 0;

	if (dir == NULL) {
		return ML_ERR_NOMEM;
	}
	slash = strrchr(dir, '/');
	if (slash == NULL) {
		strcpy(dir, ".");
	} else if (slash == dir) {
		dir[1] = '\0';
	} else {
		*slash = '\0';
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s", dir);
	} else {
		if (fsync(fd) != 0) {
			r = ml_errf_sys(ML_ERR_IO, "%s: fsync", dir);
		}
		close(fd);
	}
	free(dir);
	return r;
}

int
store_create(const char *path, const uint8_t *payload, size_t len)
{
	struct store s = { .fd = -1, .cut_after = -1 };
	char *kp = NULL;
	int kfd = -1, r;

	ML_ENSURE(len <= STORE_MAX_PAYLOAD, ML_ERR_TOO_LARGE);
	ML_ENSURE((kp = key_path(path)) != NULL, ML_ERR_NOMEM);
	ML_TRY(ml_rand(s.key, sizeof(s.key)));
	kfd = open(kp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	snprintf(s.path, sizeof(s.path), "%s", path);
	if (kfd < 0 || write_all(kfd, s.key, sizeof(s.key), 0, kp) != 0 ||
	    fsync(kfd) != 0) {
		r = ml_errf_sys(errno == EEXIST ? ML_ERR_EXISTS : ML_ERR_IO,
		    "%s", kp);
		goto out;
	}
	s.fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (s.fd < 0 || ftruncate(s.fd, 2 * (off_t)STORE_SLOT_SIZE) != 0) {
		r = ml_errf_sys(errno == EEXIST ? ML_ERR_EXISTS : ML_ERR_IO,
		    "%s", path);
		goto out;
	}
	ML_TRY(slot_write(&s, 0, 1, payload, len));
	if (fsync(s.fd) != 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s", path);
		goto out;
	}
	ML_TRY(fsync_dir_of(path));
	r = 0;
out:
	if (kfd >= 0) {
		close(kfd);
	}
	if (s.fd >= 0) {
		close(s.fd);
	}
	ml_wipe(s.key, sizeof(s.key));
	free(kp);
	return r;
}

/*
 * Load the newest copy that verifies into *ret_payload and make it the
 * store's current one.  ML_ERR_FORMAT if none verifies.
 */
static int
store_load(struct store *s, uint8_t **ret_payload, size_t *ret_len)
{
	uint8_t *pl[2] = { NULL, NULL };
	size_t len[2] = { 0, 0 };
	uint32_t gen[2] = { 0, 0 };
	int ok[2], i, best, r;

	for (i = 0; i < 2; i++) {
		ok[i] = slot_load(s, i, &gen[i], &pl[i], &len[i]) == 0;
	}
	ML_ENSURE(ok[0] || ok[1], ML_ERR_FORMAT);
	/* Generations increase by one per commit; compare with wrap in mind. */
	if (ok[0] && ok[1]) {
		best = ((int32_t)(gen[1] - gen[0]) > 0) ? 1 : 0;
	} else {
		best = ok[0] ? 0 : 1;
	}
	s->cur = best;
	s->gen = gen[best];
	*ret_payload = pl[best];
	*ret_len = len[best];
	pl[best] = NULL;
	r = 0;
out:
	for (i = 0; i < 2; i++) {
		ml_freezero(pl[i], len[i]);
	}
	return r;
}

int
store_open(const char *path, struct store **ret_store, uint8_t **ret_payload,
    size_t *ret_len)
{
	struct store *s = NULL;
	size_t got;
	int kfd = -1, r;
	bool locked = false;
	char *kp = NULL;

	ML_ENSURE((s = calloc(1, sizeof(*s))) != NULL, ML_ERR_NOMEM);
	s->fd = -1;
	s->cut_after = -1;
	snprintf(s->path, sizeof(s->path), "%s", path);
	ML_ENSURE((kp = key_path(path)) != NULL, ML_ERR_NOMEM);
	if ((kfd = open(kp, O_RDONLY | O_CLOEXEC)) < 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s", kp);
		goto out;
	}
	ML_TRY(read_all(kfd, s->key, sizeof(s->key), 0, &got, kp));
	if (got != sizeof(s->key)) {
		r = ml_errf(ML_ERR_FORMAT, "%s: %zu bytes, not a chip key",
		    kp, got);
		goto out;
	}
	if ((s->fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s", path);
		goto out;
	}
	ML_TRY(store_lock(s));
	locked = true;
	ML_TRY(store_load(s, ret_payload, ret_len));
	*ret_store = s;
	r = 0;
out:
	if (locked) {
		store_unlock(s);
	}
	if (r == 0) {
		s = NULL;
	}
	if (kfd >= 0) {
		close(kfd);
	}
	free(kp);
	store_close(s);
	return r;
}

int
store_lock(struct store *s)
{
	while (flock(s->fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			return ml_errf_sys(ML_ERR_IO, "%s: flock", s->path);
		}
	}
	return 0;
}

void
store_unlock(struct store *s)
{
	(void)flock(s->fd, LOCK_UN);
}

/* The generation a slot's header claims (0: no magic, unreadable). */
static uint32_t
slot_header_gen(struct store *s, int slot)
{
	uint8_t hdr[8];
	size_t got = 0;

	if (read_all(s->fd, hdr, sizeof(hdr), (off_t)slot * STORE_SLOT_SIZE,
	    &got, s->path) != 0 || got != sizeof(hdr) ||
	    (((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) |
	    ((uint32_t)hdr[2] << 8) | hdr[3]) != STORE_MAGIC) {
		return 0;
	}
	return ((uint32_t)hdr[4] << 24) | ((uint32_t)hdr[5] << 16) |
	    ((uint32_t)hdr[6] << 8) | hdr[7];
}

int
store_sync(struct store *s, uint8_t **ret_payload, size_t *ret_len)
{
	uint32_t cur = slot_header_gen(s, s->cur);
	uint32_t other = slot_header_gen(s, 1 - s->cur);

	/* Our copy is still the newest: nothing to read (two small reads). */
	if (cur == s->gen && (other == 0 || (int32_t)(other - s->gen) <= 0)) {
		return 1;
	}
	return store_load(s, ret_payload, ret_len);
}

int
store_commit(struct store *s, const uint8_t *payload, size_t len)
{
	int next = 1 - s->cur, r;

	if (len > STORE_MAX_PAYLOAD) {
		return ML_ERR_TOO_LARGE;
	}
	if ((r = slot_write(s, next, s->gen + 1, payload, len)) != 0) {
		return r;
	}
	s->cur = next;
	s->gen++;
	return 0;
}

uint32_t
store_generation(const struct store *s)
{
	return s->gen;
}

void
store_close(struct store *s)
{
	if (s == NULL) {
		return;
	}
	if (s->fd >= 0) {
		close(s->fd);	/* releases a flock still held */
	}
	ml_wipe(s->key, sizeof(s->key));
	free(s);
}

#ifdef ML_TEST_HOOKS
void
store_test_cut_after(struct store *s, long k)
{
	s->cut_after = k;
}
#endif
