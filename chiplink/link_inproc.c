/*
 * The in-process line: the card OS linked into this process, over a
 * directory of chip positions.  Position i is DIR/pos-NN, a symlink to a
 * chip image; the chip is "in the field" while the symlink exists.  Feeding
 * a chip is an atomic rename of a new symlink, so another process (a
 * feeder, pkcs11-tool) sees arrivals and removals as a reader would.
 *
 * The chip image is opened on first use after arrival, and closed (power
 * off) on removal or when the link closes.  Other processes may have the
 * same image open: each command locks the image for its duration and sees
 * their writes (chip-applet/store.h), as PC/SC clients share a card.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <stdatomic.h>

#include "ml_log.h"
#include "chip.h"
#include "chip_latency.h"
#include "chiplink.h"
#include "link_impl.h"

#define INPROC_DEFAULT_POSITIONS	4
#define INPROC_MAX_POSITIONS		256
#define INPROC_POLL_MS			20

struct inproc_slot {
	pthread_mutex_t	 lock;
	char		 link[PATH_MAX + 16];	/* DIR/pos-NN */
	char		 name[CHIPLINK_NAME_MAX];	/* as slot_info shows it */
	/* identity of the chip currently seen: symlink inode + target */
	bool		 present;
	ino_t		 ino;
	char		 target[PATH_MAX];
	uint64_t	 generation;
	uint64_t	 seen_events;		/* ip->events at the last look */
	_Atomic uint64_t changes;		/* events naming this position */
	uint64_t	 seen_changes;		/* changes at the last look */
	struct chip	*chip;			/* opened lazily */
};

struct inproc {
	char		 dir[PATH_MAX - 32];	/* room for "/pos-NN.new" */
	size_t		 nslots;
	struct inproc_slot *slots;
	uint64_t	 gen_counter;
	pthread_mutex_t	 gen_lock;
	/*
	 * Directory changes seen through inotify.  Looking at a position
	 * (lstat + readlink) on every APDU cost 90% of an in-process
	 * exchange; now a slot is looked at only when an event named its
	 * link (DIR/pos-NN) since its last look, or one that may concern
	 * every position (queue overflow, the directory itself moved).  On
	 * a line of 64 positions, every chip fed used to make all the
	 * others look again (BN-2: a line that scales with positions).
	 * Without inotify, every exchange looks.  No lock around the
	 * queue: every APDU of every position reads it, and a lock there
	 * was contended by the positions (a futex each time).  An event
	 * another thread has just read but not yet counted is seen at the
	 * next APDU.
	 */
	int		 ino_fd;
	unsigned	 fork_seen;		/* fork_count when ino_fd was made */
	_Atomic uint64_t events;		/* changes concerning every slot */
	struct chip_latency *lat;	/* DIR/latency; NULL: instant chips */
};

/*
 * A forked child shares the parent's inotify descriptor: reading it would
 * steal the parent's events.  The child handler only bumps a counter (no
 * work in atfork handlers); the child then stops using the descriptor.
 */
static _Atomic unsigned fork_count;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void
atfork_child(void)
{
	atomic_fetch_add(&fork_count, 1);
}

static void
atfork_register(void)
{
	(void)pthread_atfork(NULL, NULL, atfork_child);
}

/*
 * The slot an event's name is the link of ("pos-NN" exactly, as
 * inproc_open names them), or SIZE_MAX.  Other names (the feeder's
 * "pos-NN.new", the positions and latency files) concern no chip.
 */
static size_t
event_slot(const struct inproc *ip, const char *name)
{
	char want[32];
	unsigned long v;
	char *end;

	if (strncmp(name, "pos-", 4) != 0 || name[4] < '0' || name[4] > '9') {
		return SIZE_MAX;
	}
	errno = 0;
	v = strtoul(name + 4, &end, 10);
	if (errno != 0 || *end != '\0' || v >= ip->nslots ||
	    (size_t)snprintf(want, sizeof(want), "pos-%02lu", v) >=
	    sizeof(want) || strcmp(want, name) != 0) {
		return SIZE_MAX;
	}
	return (size_t)v;
}

/* Count one batch of inotify events against the slots they name. */
static bool
events_count(struct inproc *ip, const char *buf, size_t n)
{
	const struct inotify_event *ev;
	bool all = false;
	size_t off, slot;

	for (off = 0; off + sizeof(*ev) <= n; off += sizeof(*ev) + ev->len) {
		ev = (const struct inotify_event *)(const void *)(buf + off);
		if (off + sizeof(*ev) + ev->len > n) {
			return true;		/* cannot happen: look at all */
		}
		if ((ev->mask & (IN_Q_OVERFLOW | IN_DELETE_SELF |
		    IN_MOVE_SELF | IN_IGNORED)) != 0 || ev->len == 0) {
			all = true;
			continue;
		}
		if ((slot = event_slot(ip, ev->name)) != SIZE_MAX) {
			atomic_fetch_add(&ip->slots[slot].changes, 1);
		}
	}
	return all;
}

/* Drain pending inotify events into the counts. */
static void
dir_poll_events(struct inproc *ip)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool all = false;
	ssize_t n;

	if (ip->ino_fd >= 0 && ip->fork_seen != atomic_load(&fork_count)) {
		close(ip->ino_fd);	/* our copy only; the parent keeps its */
		ip->ino_fd = -1;
	}
	while (ip->ino_fd >= 0 &&
	    (n = read(ip->ino_fd, buf, sizeof(buf))) > 0) {
		all |= events_count(ip, buf, (size_t)n);
	}
	if (all) {
		atomic_fetch_add(&ip->events, 1);
	}
}

/* Slot lock held: does the slot need a fresh look at its position? */
static bool
slot_stale(struct inproc *ip, struct inproc_slot *s)
{
	dir_poll_events(ip);
	if (ip->ino_fd < 0) {
		return true;
	}
	return s->seen_events != atomic_load(&ip->events) ||
	    s->seen_changes != atomic_load(&s->changes);
}

static uint64_t
next_generation(struct inproc *ip)
{
	uint64_t g;

	pthread_mutex_lock(&ip->gen_lock);
	g = ++ip->gen_counter;
	pthread_mutex_unlock(&ip->gen_lock);
	return g;
}

/* Look at DIR/pos-NN; update presence and identity.  Slot lock held. */
static void
slot_refresh(struct inproc *ip, struct inproc_slot *s)
{
	char target[PATH_MAX], abs[PATH_MAX];
	struct stat sb;
	ssize_t n;

	/* Events after this point make the slot stale again. */
	dir_poll_events(ip);
	s->seen_events = atomic_load(&ip->events);
	s->seen_changes = atomic_load(&s->changes);
	if (lstat(s->link, &sb) != 0 || !S_ISLNK(sb.st_mode) ||
	    (n = readlink(s->link, target, sizeof(target) - 1)) <= 0) {
		if (s->present) {
			chip_close(s->chip);	/* power off */
			s->chip = NULL;
			s->present = false;
		}
		return;
	}
	target[n] = '\0';
	if (target[0] != '/') {
		if ((size_t)snprintf(abs, sizeof(abs), "%s/%s", ip->dir, target) >=
		    sizeof(abs)) {
			return;
		}
		memcpy(target, abs, sizeof(target));
	}
	if (s->present && s->ino == sb.st_ino && strcmp(s->target, target) == 0) {
		return;
	}
	chip_close(s->chip);
	s->chip = NULL;
	s->present = true;
	s->ino = sb.st_ino;
	memcpy(s->target, target, sizeof(s->target));
	s->generation = next_generation(ip);
}

static size_t
count_positions(const char *dir)
{
	char path[PATH_MAX];
	unsigned long n = 0, i;
	FILE *f;
	DIR *d;
	struct dirent *de;

	if ((size_t)snprintf(path, sizeof(path), "%s/positions", dir) <
	    sizeof(path) && (f = fopen(path, "re")) != NULL) {
		if (fscanf(f, "%lu", &n) != 1) {
			n = 0;
		}
		fclose(f);
		if (n > 0 && n <= INPROC_MAX_POSITIONS) {
			return n;
		}
	}
	n = 0;
	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (sscanf(de->d_name, "pos-%lu", &i) == 1 &&
			    i < INPROC_MAX_POSITIONS && i + 1 > n) {
				n = i + 1;
			}
		}
		closedir(d);
	}
	return n > 0 ? n : INPROC_DEFAULT_POSITIONS;
}

/*
 * DIR/latency, when present, is a chip latency profile (chip_latency.h):
 * every chip of this line then takes as long as the profile says.
 */
static int
inproc_latency_load(struct inproc *ip)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/latency", ip->dir) >=
	    sizeof(path) || access(path, F_OK) != 0) {
		return 0;
	}
	return ml_errpre(chip_latency_load(path, &ip->lat), "chip line %s",
	    ip->dir);
}

static int
inproc_open(const char *arg, void **ret_state)
{
	pthread_mutexattr_t ma;
	struct inproc *ip = NULL;
	char abs[PATH_MAX];
	struct stat sb;
	size_t i;
	int r;

	if (arg == NULL || arg[0] == '\0' || strlen(arg) >= PATH_MAX - 16) {
		return ML_ERR_ARG;
	}
	if (stat(arg, &sb) != 0) {
		return ml_errf_sys(ML_ERR_IO, "chip line %s", arg);
	}
	if (!S_ISDIR(sb.st_mode)) {
		return ml_errf(ML_ERR_IO, "chip line %s: not a directory", arg);
	}
	if ((ip = calloc(1, sizeof(*ip))) == NULL) {
		return ML_ERR_NOMEM;
	}
	if (realpath(arg, abs) == NULL || strlen(abs) >= sizeof(ip->dir)) {
		free(ip);
		return ml_errf_sys(ML_ERR_IO, "chip line %s", arg);
	}
	memcpy(ip->dir, abs, strlen(abs) + 1);
	ip->nslots = count_positions(ip->dir);
	if ((r = inproc_latency_load(ip)) != 0) {
		free(ip);
		return r;
	}
	if ((ip->slots = calloc(ip->nslots, sizeof(*ip->slots))) == NULL) {
		chip_latency_free(ip->lat);
		free(ip);
		return ML_ERR_NOMEM;
	}
	pthread_mutex_init(&ip->gen_lock, NULL);
	pthread_once(&atfork_once, atfork_register);
	ip->fork_seen = atomic_load(&fork_count);
	ip->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ip->ino_fd >= 0 && inotify_add_watch(ip->ino_fd, ip->dir,
	    IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ATTRIB |
	    IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
		close(ip->ino_fd);
		ip->ino_fd = -1;
	}
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	for (i = 0; i < ip->nslots; i++) {
		pthread_mutex_init(&ip->slots[i].lock, &ma);
		if ((size_t)snprintf(ip->slots[i].link, sizeof(ip->slots[i].link),
		    "%s/pos-%02u", ip->dir, (unsigned)i) >=
		    sizeof(ip->slots[i].link)) {
			ip->slots[i].link[0] = '\0';
		}
		snprintf(ip->slots[i].name, sizeof(ip->slots[i].name),
		    "mintline line position %02zu", i);
		slot_refresh(ip, &ip->slots[i]);
	}
	pthread_mutexattr_destroy(&ma);
	*ret_state = ip;
	return 0;
}

static void
inproc_close(void *state)
{
	struct inproc *ip = state;
	size_t i;

	if (ip == NULL) {
		return;
	}
	if (ip->lat != NULL) {
		uint64_t n, ns;

		chip_latency_totals(ip->lat, &n, &ns);
		ml_info("chip line %s: latency model: %llu APDUs, %.3f s of "
		    "chip time", ip->dir, (unsigned long long)n, (double)ns / 1e9);
		chip_latency_free(ip->lat);
	}
	for (i = 0; i < ip->nslots; i++) {
		chip_close(ip->slots[i].chip);
		pthread_mutex_destroy(&ip->slots[i].lock);
	}
	pthread_mutex_destroy(&ip->gen_lock);
	if (ip->ino_fd >= 0) {
		close(ip->ino_fd);
	}
	free(ip->slots);
	free(ip);
}

static size_t
inproc_nslots(void *state)
{
	return ((struct inproc *)state)->nslots;
}

static int
inproc_slot_info(void *state, size_t slot, struct chiplink_slot_info *ret)
{
	struct inproc *ip = state;
	struct inproc_slot *s;

	if (slot >= ip->nslots) {
		return ML_ERR_ARG;
	}
	s = &ip->slots[slot];
	pthread_mutex_lock(&s->lock);
	if (slot_stale(ip, s)) {
		slot_refresh(ip, s);
	}
	memcpy(ret->name, s->name, sizeof(ret->name));
	ret->present = s->present;
	ret->generation = s->present ? s->generation : 0;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static int
inproc_transmit(void *state, size_t slot, uint64_t generation,
    const uint8_t *cmd, size_t cmd_len, uint8_t *resp, size_t resp_cap,
    size_t *ret_len)
{
	struct inproc *ip = state;
	struct inproc_slot *s;
	struct timespec t0;
	int r;

	if (slot >= ip->nslots) {
		return ML_ERR_ARG;
	}
	s = &ip->slots[slot];
	pthread_mutex_lock(&s->lock);
	if (slot_stale(ip, s)) {
		slot_refresh(ip, s);
	}
	if (!s->present || (generation != 0 && generation != s->generation)) {
		r = ML_ERR_REMOVED;
		goto out;
	}
	if (s->chip == NULL && (r = chip_open(s->target, &s->chip)) != 0) {
		(void)ml_errpre(r, "position %02zu: cannot power the chip %s",
		    slot, s->target);
		ml_warn("inproc: %s", ml_errmsg(r));
		if (r != ML_ERR_NOMEM) {
			r = ml_errrecode(r, ML_ERR_IO);
		}
		goto out;
	}
	chip_latency_start(&t0);
	r = chip_transmit(s->chip, cmd, cmd_len, resp, resp_cap, ret_len);
	if (r == 0) {
		/* the chip stays busy (slot locked) for its modelled time */
		chip_latency_wait(ip->lat, &t0, cmd, cmd_len, *ret_len);
	}
out:
	pthread_mutex_unlock(&s->lock);
	return r;
}

static void
inproc_lock(void *state, size_t slot)
{
	struct inproc *ip = state;

	if (slot < ip->nslots) {
		pthread_mutex_lock(&ip->slots[slot].lock);
	}
}

static void
inproc_unlock(void *state, size_t slot)
{
	struct inproc *ip = state;

	if (slot < ip->nslots) {
		pthread_mutex_unlock(&ip->slots[slot].lock);
	}
}

static int
inproc_wait(void *state, int timeout_ms, size_t *ret_slot)
{
	struct inproc *ip = state;
	struct inproc_slot *s;
	struct timespec ts = { 0, INPROC_POLL_MS * 1000000L };
	bool was;
	uint64_t gen;
	long waited = 0;
	size_t i;

	for (;;) {
		for (i = 0; i < ip->nslots; i++) {
			s = &ip->slots[i];
			pthread_mutex_lock(&s->lock);
			was = s->present;
			gen = s->generation;
			slot_refresh(ip, s);
			if (was != s->present || gen != s->generation) {
				pthread_mutex_unlock(&s->lock);
				*ret_slot = i;
				return 0;
			}
			pthread_mutex_unlock(&s->lock);
		}
		if (timeout_ms >= 0 && waited >= timeout_ms) {
			return ML_ERR_TIMEOUT;
		}
		nanosleep(&ts, NULL);
		waited += INPROC_POLL_MS;
	}
}

/*
 * The absolute path of an existing chip image, for the link's target;
 * errno set on failure.  An absolute path is taken as it is (one stat to
 * see that the image is there): realpath would readlink every component,
 * 7 system calls for each chip fed on a typical line (BN-2).
 */
static int
image_abs(const char *path, char *abs, size_t cap)
{
	struct stat sb;

	if (path[0] != '/') {
		return realpath(path, abs) != NULL ? 0 : -1;
	}
	if (strlen(path) >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (stat(path, &sb) != 0) {
		return -1;
	}
	memcpy(abs, path, strlen(path) + 1);
	return 0;
}

static int
inproc_feed(void *state, size_t slot, const char *image_path)
{
	struct inproc *ip = state;
	struct inproc_slot *s;
	char tmp[PATH_MAX + 32], abs[PATH_MAX];
	int r = 0;

	if (slot >= ip->nslots) {
		return ML_ERR_ARG;
	}
	s = &ip->slots[slot];
	pthread_mutex_lock(&s->lock);
	if (image_path == NULL) {
		if (unlink(s->link) != 0 && errno != ENOENT) {
			r = ml_errf_sys(ML_ERR_IO, "%s", s->link);
		}
	} else {
		if (image_abs(image_path, abs, sizeof(abs)) != 0) {
			r = ml_errf_sys(ML_ERR_NOT_FOUND, "chip image %s",
			    image_path);
			goto out;
		}
		snprintf(tmp, sizeof(tmp), "%s.new", s->link);
		(void)unlink(tmp);
		if (symlink(abs, tmp) != 0 || rename(tmp, s->link) != 0) {
			r = ml_errf_sys(ML_ERR_IO, "%s", s->link);
			(void)unlink(tmp);
			goto out;
		}
	}
	slot_refresh(ip, s);
out:
	pthread_mutex_unlock(&s->lock);
	return r;
}

const struct chiplink_ops chiplink_inproc_ops = {
	.name = "inproc",
	.open = inproc_open,
	.close = inproc_close,
	.nslots = inproc_nslots,
	.slot_info = inproc_slot_info,
	.transmit = inproc_transmit,
	.lock = inproc_lock,
	.unlock = inproc_unlock,
	.wait = inproc_wait,
	.feed = inproc_feed,
};
