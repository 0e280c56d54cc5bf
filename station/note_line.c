/*
 * A mint line (see note_line.h).
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ml_log.h"
#include "note_line.h"

struct line {
	const struct note_line_cfg *cfg;
	struct chiplink		*link;
	bool			 inproc;
	char			**images;
	size_t			 nimages, next, fed;
	pthread_mutex_t		 mu;
	int			 err;
	bool			 stop;
};

struct worker {
	struct line	*ln;
	size_t		 idx;
};

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
list_images(struct line *ln, const char *path)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	size_t cap = 0, n;

	if (stat(path, &st) != 0) {
		ml_err("%s: cannot stat", path);
		return ML_ERR_IO;
	}
	if (!S_ISDIR(st.st_mode)) {
		if ((ln->images = calloc(1, sizeof(char *))) == NULL ||
		    (ln->images[0] = strdup(path)) == NULL) {
			return ML_ERR_NOMEM;
		}
		ln->nimages = 1;
		return 0;
	}
	if ((d = opendir(path)) == NULL) {
		return ML_ERR_IO;
	}
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		if (n < 6 || strcmp(de->d_name + n - 5, ".chip") != 0) {
			continue;
		}
		if (ln->nimages == cap) {
			char **ni;

			cap = cap ? cap * 2 : 256;
			if ((ni = reallocarray(ln->images, cap, sizeof(*ni))) == NULL) {
				closedir(d);
				return ML_ERR_NOMEM;
			}
			ln->images = ni;
		}
		if (asprintf(&ln->images[ln->nimages], "%s/%s", path,
		    de->d_name) < 0) {
			closedir(d);
			return ML_ERR_NOMEM;
		}
		ln->nimages++;
	}
	closedir(d);
	qsort(ln->images, ln->nimages, sizeof(char *), cmp_str);
	return 0;
}

/* The feeder: the next image for a free position, or NULL. */
static const char *
feed_next(struct line *ln)
{
	const char *img = NULL;

	pthread_mutex_lock(&ln->mu);
	if (!ln->stop && ln->next < ln->nimages) {
		img = ln->images[ln->next++];
		ln->fed++;
	}
	pthread_mutex_unlock(&ln->mu);
	return img;
}

static void
fail(struct line *ln, int r)
{
	pthread_mutex_lock(&ln->mu);
	if (ln->err == 0) {
		ln->err = r;
	}
	ln->stop = true;
	pthread_mutex_unlock(&ln->mu);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct line *ln = w->ln;
	const struct note_line_cfg *cfg = ln->cfg;
	struct chipcmd cc;
	const char *img;
	int r;

	if (cfg->start != NULL && (r = cfg->start(cfg->ctx, w->idx)) != 0) {
		fail(ln, r);
		return NULL;
	}
	if (!ln->inproc) {
		if ((r = chipcmd_begin(&cc, ln->link, w->idx)) == 0) {
			r = cfg->job(cfg->ctx, w->idx, &cc, NULL);
		}
		if (r < 0 && r != ML_ERR_REMOVED) {
			fail(ln, r);
		}
		goto out;
	}
	while ((img = feed_next(ln)) != NULL) {
		if ((r = chiplink_inproc_feed(ln->link, w->idx, img)) != 0) {
			fail(ln, r);
			break;
		}
		r = chipcmd_begin(&cc, ln->link, w->idx);
		if (r == 0) {
			r = cfg->job(cfg->ctx, w->idx, &cc, img);
		} else {
			ml_warn("%s: no answer from the chip (%s)", img,
			    ml_errmsg(r));
			r = 0;
		}
		if (chiplink_inproc_feed(ln->link, w->idx, NULL) != 0) {
			ml_warn("position %zu: chip not taken out", w->idx);
		}
		if (r == 1) {
			break;
		}
		if (r < 0) {
			fail(ln, r);
			break;
		}
	}
out:
	if (cfg->stop != NULL) {
		(void)cfg->stop(cfg->ctx, w->idx);
	}
	return NULL;
}

int
note_line_positions(const char *spec, size_t *ret_n)
{
	struct chiplink *l = NULL;
	int r;

	if ((r = chiplink_open(spec, &l)) != 0) {
		return r;
	}
	*ret_n = chiplink_nslots(l);
	chiplink_close(l);
	return 0;
}

int
note_line_run(const struct note_line_cfg *cfg, size_t *ret_chips)
{
	struct line ln = { .cfg = cfg };
	struct worker *ws = NULL;
	pthread_t *th = NULL;
	size_t i, n, started = 0;
	int r;

	pthread_mutex_init(&ln.mu, NULL);
	if ((r = chiplink_open(cfg->link_spec, &ln.link)) != 0) {
		ml_err("%s", ml_errmsg(r));
		goto out;
	}
	ln.inproc = strncmp(cfg->link_spec, "inproc:", 7) == 0;
	n = chiplink_nslots(ln.link);
	if (cfg->workers != 0 && cfg->workers < n) {
		n = cfg->workers;
	}
	ML_ENSURE(n > 0, ML_ERR_ARG);
	if (ln.inproc) {
		ML_ENSURE(cfg->chips != NULL, ML_ERR_ARG);
		ML_TRY(list_images(&ln, cfg->chips));
	}
	ML_ENSURE((ws = calloc(n, sizeof(*ws))) != NULL, ML_ERR_NOMEM);
	ML_ENSURE((th = calloc(n, sizeof(*th))) != NULL, ML_ERR_NOMEM);
	for (i = 0; i < n; i++) {
		ws[i] = (struct worker){ &ln, i };
		if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0) {
			fail(&ln, ML_ERR_NOMEM);
			break;
		}
		started++;
	}
	for (i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
	}
	r = ln.err;
	if (ret_chips != NULL) {
		*ret_chips = ln.fed;
	}
out:
	for (i = 0; i < ln.nimages; i++) {
		free(ln.images[i]);
	}
	free(ln.images);
	free(ws);
	free(th);
	chiplink_close(ln.link);
	pthread_mutex_destroy(&ln.mu);
	return r;
}
