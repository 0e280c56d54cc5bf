/*
 * The SAM emulator (ID-10): opens the ID-card stand-in's encrypted data
 * with the SAM test key (idcard_format.h, tools/mintline-mkidcard
 * --sam-key).  Shared by every reader: the key is read-only after open,
 * and `slots` bounds how many decodes run at once (a real SAM pool has a
 * fixed number of modules), so a burst of readers queues instead of
 * multiplying memory.
 *
 * Spec: "emul:KEYFILE[,slots=N]"; KEYFILE holds the 32-byte key as 64 hex
 * digits, mode 0600 (ml_keyfile_read).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ml_log.h"
#include "ml_wipe.h"

#include "idcard_format.h"
#include "ml_parse.h"
#include "ml_secret.h"
#include "sam.h"

#define EMUL_DEFAULT_SLOTS	8
#define EMUL_MAX_SLOTS		256

struct sam_emul {
	uint8_t		 key[IDC_SAM_KEY_LEN];
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	unsigned	 slots;
	unsigned	 busy;
};

static int
emul_open(const char *arg, void **ret_ctx)
{
	struct sam_emul *e = NULL;
	char *path = NULL, *opt;
	size_t slots = EMUL_DEFAULT_SLOTS;
	int r;

	ML_ENSURE(arg[0] != '\0', ML_ERR_ARG);
	ML_ENSURE((path = strdup(arg)) != NULL, ML_ERR_NOMEM);
	if ((opt = strchr(path, ',')) != NULL) {
		*opt++ = '\0';
		ML_ENSURE(strncmp(opt, "slots=", 6) == 0, ML_ERR_ARG);
		ML_TRY(ml_parse_size(opt + 6, "SAM emul: slots", 1,
		    EMUL_MAX_SLOTS, &slots));
	}
	ML_ENSURE((e = calloc(1, sizeof(*e))) != NULL, ML_ERR_NOMEM);
	/* the key file format and its checks are common/ml_secret.c's */
	if ((r = ml_keyfile_read(path, e->key, IDC_SAM_KEY_LEN)) != 0) {
		(void)ml_errpre(r, "SAM key");
		goto out;
	}
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	e->slots = (unsigned)slots;
	*ret_ctx = e;
	e = NULL;
	r = 0;
out:
	free(path);
	ml_freezero(e, sizeof(*e));
	return r;
}

static void
emul_close(void *ctx)
{
	struct sam_emul *e = ctx;

	if (e == NULL) {
		return;
	}
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cv);
	ml_freezero(e, sizeof(*e));
}

static int
emul_decode(void *ctx, const uint8_t *config, size_t config_len,
    const uint8_t *data, size_t data_len, struct ml_wr *info)
{
	struct sam_emul *e = ctx;
	struct idc_config cfg;
	struct idc_info *ii = NULL;
	bool held = false;
	int r;

	ML_TRY(idc_config_decode(config, config_len, &cfg));
	ML_ENSURE((ii = malloc(sizeof(*ii))) != NULL, ML_ERR_NOMEM);
	pthread_mutex_lock(&e->mu);
	while (e->busy >= e->slots) {
		pthread_cond_wait(&e->cv, &e->mu);
	}
	e->busy++;
	pthread_mutex_unlock(&e->mu);
	held = true;
	ML_TRY(idc_data_open(e->key, cfg.serial, data, data_len, ii));
	ML_TRY(idc_info_encode(ii, info));
	r = 0;
out:
	if (held) {
		pthread_mutex_lock(&e->mu);
		e->busy--;
		pthread_cond_signal(&e->cv);
		pthread_mutex_unlock(&e->mu);
	}
	if (ii != NULL) {
		idc_info_clear(ii);
		free(ii);
	}
	return r;
}

const struct sam_ops sam_emul_ops = {
	.name = "emul",
	.open = emul_open,
	.close = emul_close,
	.decode = emul_decode,
};
