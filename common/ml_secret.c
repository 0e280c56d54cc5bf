#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sys/stat.h>

#include "ml_ossl.h"
#include "ml_parse.h"
#include "ml_secret.h"
#include "ml_wipe.h"

/*
 * Read from fd into buf until a line end, EOF or cap bytes.  Returns the
 * number of bytes read or -1 (errno set).
 */
static ssize_t
read_line(int fd, char *buf, size_t cap)
{
	size_t got = 0;
	ssize_t k;

	while (got < cap) {
		k = read(fd, buf + got, cap - got);
		if (k < 0 && errno == EINTR) {
			continue;
		}
		if (k < 0) {
			return -1;
		}
		if (k == 0) {
			break;
		}
		if (memchr(buf + got, '\n', (size_t)k) != NULL) {
			got += (size_t)k;
			break;
		}
		got += (size_t)k;
	}
	return (ssize_t)got;
}

/* Ask on the controlling terminal with echo off (no stdio, no getpass). */
static int
pin_prompt(const char *prompt, char *buf, size_t cap, ssize_t *ret_n)
{
	struct termios old, quiet;
	int fd, r = 0;
	ssize_t n;

	if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
		return ml_errf_sys(ML_ERR_IO, "no pin-source given and no "
		    "terminal to ask for the %s (/dev/tty)", prompt);
	}
	if (tcgetattr(fd, &old) != 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s: /dev/tty", prompt);
		goto out;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	(void)tcsetattr(fd, TCSAFLUSH, &quiet);
	(void)!write(fd, prompt, strlen(prompt));
	(void)!write(fd, ": ", 2);
	n = read_line(fd, buf, cap);
	(void)!write(fd, "\n", 1);
	(void)tcsetattr(fd, TCSAFLUSH, &old);
	if (n < 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s: /dev/tty", prompt);
		goto out;
	}
	*ret_n = n;
out:
	close(fd);
	return r;
}

int
ml_pin_read(const char *src, const char *prompt, char *ret_pin, size_t cap)
{
	char buf[ML_PIN_MAX + 2];
	const char *path, *env;
	ssize_t n = 0;
	size_t len;
	int fd, r = ML_ERR_INTERNAL;

	ML_ENSURE(ret_pin != NULL && cap >= 2 && cap <= ML_PIN_MAX + 1,
	    ML_ERR_ARG);
	if (src == NULL) {
		if (prompt == NULL) {
			r = ml_errf(ML_ERR_ARG, "no pin-source given");
			goto out;
		}
		ML_TRY(pin_prompt(prompt, buf, sizeof(buf), &n));
		src = "the terminal";
	} else if (strncmp(src, "env:", 4) == 0) {
		if ((env = secure_getenv(src + 4)) == NULL || env[0] == '\0') {
			r = ml_errf(ML_ERR_FORMAT, "pin-source %s: variable not "
			    "set or empty", src);
			goto out;
		}
		n = (ssize_t)strnlen(env, sizeof(buf));
		memcpy(buf, env, (size_t)n);
	} else {
		path = strncmp(src, "file:", 5) == 0 ? src + 5 : src;
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
			r = ml_errf_sys(ML_ERR_IO, "pin-source %s", path);
			goto out;
		}
		n = read_line(fd, buf, sizeof(buf));
		if (n < 0) {
			r = ml_errf_sys(ML_ERR_IO, "pin-source %s", path);
			close(fd);
			goto out;
		}
		close(fd);
		src = path;
	}
	len = 0;
	while (len < (size_t)n && buf[len] != '\n' && buf[len] != '\r') {
		len++;
	}
	if (len == 0) {
		r = ml_errf(ML_ERR_FORMAT, "pin-source %s: no PIN in the first "
		    "line", src);
		goto out;
	}
	if (len >= cap) {
		r = ml_errf(ML_ERR_TOO_LARGE, "pin-source %s: PIN longer than "
		    "%zu characters", src, cap - 1);
		goto out;
	}
	memcpy(ret_pin, buf, len);
	ret_pin[len] = '\0';
	r = 0;
out:
	if (r != 0 && ret_pin != NULL && cap > 0) {
		ml_wipe(ret_pin, cap);
	}
	ml_wipe(buf, sizeof(buf));
	return r;
}

int
ml_keyfile_read(const char *path, uint8_t *ret_key, size_t len)
{
	char buf[ML_KEYFILE_MAX * 2 + 8];
	uint8_t key[ML_KEYFILE_MAX];
	struct stat st;
	size_t got = 0, i;
	ssize_t k;
	int fd = -1, r = ML_ERR_INTERNAL;

	ML_ENSURE(path != NULL && len > 0 && len <= ML_KEYFILE_MAX,
	    ML_ERR_ARG);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &st) != 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = ml_errf(ML_ERR_FORMAT, "%s: not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		r = ml_errf(ML_ERR_PERM, "%s: readable or writable by group or "
		    "others (mode %04o); chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777));
		goto out;
	}
	/* 2*len digits and a little white space: more than buf is wrong */
	for (;;) {
		k = read(fd, buf + got, sizeof(buf) - got);
		if (k < 0 && errno == EINTR) {
			continue;
		}
		if (k < 0) {
			r = ml_errf_sys(ML_ERR_IO, "%s", path);
			goto out;
		}
		if (k == 0 || (got += (size_t)k) == sizeof(buf)) {
			break;
		}
	}
	ML_ENSURE(got >= len * 2 && got < sizeof(buf), ML_ERR_FORMAT);
	for (i = len * 2; i < got; i++) {
		ML_ENSURE(buf[i] == '\n' || buf[i] == ' ' || buf[i] == '\r' ||
		    buf[i] == '\t', ML_ERR_FORMAT);
	}
	for (i = 0; i < len; i++) {
		int hi = ml_hexdigit(buf[2 * i]);
		int lo = ml_hexdigit(buf[2 * i + 1]);

		ML_ENSURE(hi >= 0 && lo >= 0, ML_ERR_FORMAT);
		key[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(ret_key, key, len);
	r = 0;
out:
	if (r == ML_ERR_FORMAT && !ml_errctx_has(r)) {
		(void)ml_errf(r, "%s: not a key file (want %zu hex digits)",
		    path, len * 2);
	}
	if (fd >= 0) {
		close(fd);
	}
	ml_wipe(buf, sizeof(buf));
	ml_wipe(key, sizeof(key));
	return r;
}

int
ml_keyfile_create(const char *path, size_t len)
{
	uint8_t key[ML_KEYFILE_MAX];
	char hex[ML_KEYFILE_MAX * 2 + 1];
	size_t i;
	int fd = -1, r = ML_ERR_INTERNAL;

	ML_ENSURE(path != NULL && len > 0 && len <= ML_KEYFILE_MAX,
	    ML_ERR_ARG);
	ML_TRY(ml_rand(key, len));
	for (i = 0; i < len; i++) {
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	}
	hex[len * 2] = '\n';
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600)) < 0) {
		r = ml_errf_sys(errno == EEXIST ? ML_ERR_EXISTS : ML_ERR_IO,
		    "%s", path);
		goto out;
	}
	if (write(fd, hex, len * 2 + 1) != (ssize_t)(len * 2 + 1) ||
	    fsync(fd) != 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s", path);
		goto out;
	}
	r = 0;
out:
	if (fd >= 0) {
		close(fd);
	}
	ml_wipe(key, sizeof(key));
	ml_wipe(hex, sizeof(hex));
	return r;
}
