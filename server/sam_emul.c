/*
 * The SAM emulator (ID-10): opens the ID-card stand-in's encrypted data
 * with the SAM test key (idcard_format.h, tools/mintline-mkidcard
 * --sam-key).  Shared by every reader: the key is read-only after open,
 * and `slots` bounds how many decodes run at once (a real SAM pool has a
 * fixed number of modules), so a burst of readers queues instead of
 * multiplying memory.
 *
 * Spec: "emul:KEYFILE[,slots=N]"; KEYFILE holds exactly 32 bytes.
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
emul_read_key(const char *path, uint8_t ret_key[static IDC_SAM_KEY_LEN])
{
	uint8_t buf[IDC_SAM_KEY_LEN + 1];
	ssize_t n;
	size_t got = 0;
	int fd = -1;
	int r;

	ML_ENSURE((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0, ML_ERR_IO);
	while (got < sizeof(buf)) {
		n = read(fd, buf + got, sizeof(buf) - got);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		ML_ENSURE(n >= 0, ML_ERR_IO);
		if (n == 0) {
			break;
		}
		got += (size_t)n;
	}
	ML_ENSURE(got == IDC_SAM_KEY_LEN, ML_ERR_FORMAT);
	memcpy(ret_key, buf, IDC_SAM_KEY_LEN);
	r = 0;
out:
	ml_wipe(buf, sizeof(buf));
	if (fd >= 0) {
		close(fd);
	}
	return r;
}

static int
emul_open(const char *arg, void **ret_ctx)
{
	struct sam_emul *e = NULL;
	char *path = NULL, *opt;
	unsigned long slots = EMUL_DEFAULT_SLOTS;
	int r;

	ML_ENSURE(arg[0] != '\0', ML_ERR_ARG);
	ML_ENSURE((path = strdup(arg)) != NULL, ML_ERR_NOMEM);
	if ((opt = strchr(path, ',')) != NULL) {
		*opt++ = '\0';
		ML_ENSURE(strncmp(opt, "slots=", 6) == 0, ML_ERR_ARG);
		slots = strtoul(opt + 6, NULL, 10);
		ML_ENSURE(slots >= 1 && slots <= EMUL_MAX_SLOTS, ML_ERR_ARG);
	}
	ML_ENSURE((e = calloc(1, sizeof(*e))) != NULL, ML_ERR_NOMEM);
	ML_TRY(emul_read_key(path, e->key));
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	e->slots = (unsigned)slots;
	*ret_ctx = e;
	e = NULL;
	r = 0;
out:
	if (r != 0) {
		ml_err("sam emul: cannot load key: %s", ml_strerror(r));
	}
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
