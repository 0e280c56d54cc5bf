#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ml_err.h"
#include "tool_chip.h"

/* The line directory's two entries: the position count and position 0. */
static int
tc_path(const struct tool_chip *tc, const char *name, char *buf, size_t cap)
{
	if ((size_t)snprintf(buf, cap, "%s/%s", tc->dir, name) >= cap) {
		return ml_errf(ML_ERR_TOO_LARGE, "%s/%s: path too long",
		    tc->dir, name);
	}
	return 0;
}

static int
tc_line(struct tool_chip *tc)
{
	const char *tmp = getenv("TMPDIR");
	char path[PATH_MAX];
	FILE *f;
	int r;

	if (tmp == NULL || tmp[0] == '\0') {
		tmp = "/tmp";
	}
	if ((size_t)snprintf(tc->dir, sizeof(tc->dir), "%s/mintline-tool.XXXXXX",
	    tmp) >= sizeof(tc->dir)) {
		tc->dir[0] = '\0';
		return ml_errf(ML_ERR_TOO_LARGE, "%s: path too long", tmp);
	}
	if (mkdtemp(tc->dir) == NULL) {
		r = ml_errf_sys(ML_ERR_IO, "%s", tc->dir);
		tc->dir[0] = '\0';
		return r;
	}
	if ((r = tc_path(tc, "positions", path, sizeof(path))) != 0) {
		return r;
	}
	if ((f = fopen(path, "w")) == NULL) {
		return ml_errf_sys(ML_ERR_IO, "%s", path);
	}
	if (fputs("1\n", f) == EOF) {
		r = ml_errf_sys(ML_ERR_IO, "%s", path);
		(void)fclose(f);
		return r;
	}
	if (fclose(f) != 0) {
		return ml_errf_sys(ML_ERR_IO, "%s", path);
	}
	return 0;
}

int
tool_chip_open(struct tool_chip *tc, const char *image)
{
	struct chip_info ci;
	char spec[PATH_MAX + 8];
	int r;

	memset(tc, 0, sizeof(*tc));
	tc->image = image;
	ML_TRY(tc_line(tc));
	snprintf(spec, sizeof(spec), "inproc:%s", tc->dir);
	ML_TRY(chiplink_open(spec, &tc->link));
	ML_TRY(chiplink_inproc_feed(tc->link, 0, image));
	ML_TRY(chipcmd_begin(&tc->cc, tc->link, 0));
	if (chipcmd_info(&tc->cc, &ci) == 0) {
		memcpy(tc->serial, ci.serial, sizeof(tc->serial));
	}
	ml_errclear();	/* a chip without GET DATA info is named by path */
	r = 0;
out:
	if (r != 0) {
		(void)ml_errpre(r, "%s", image);
	}
	return r;
}

int
tool_chip_cmd(struct tool_chip *tc, uint8_t cla, uint8_t ins, uint8_t p1,
    uint8_t p2, const void *data, size_t len)
{
	uint8_t out[1];
	size_t n = 0;
	uint16_t sw = 0;
	int r;

	if ((r = chipcmd_send(&tc->cc, cla, ins, p1, p2, data, len, 0, out, 0,
	    &n, &sw)) == 0) {
		r = chipcmd_sw_err(sw);
	}
	if (r != 0) {
		(void)ml_errpre(r, "%s%s%s%s: INS %02X", tc->image,
		    tc->serial[0] != '\0' ? " (" : "", tc->serial,
		    tc->serial[0] != '\0' ? ")" : "", ins);
	}
	return r;
}

void
tool_chip_close(struct tool_chip *tc)
{
	char path[PATH_MAX];

	if (tc == NULL) {
		return;
	}
	chiplink_close(tc->link);
	tc->link = NULL;
	if (tc->dir[0] == '\0') {
		return;
	}
	if (tc_path(tc, "pos-00", path, sizeof(path)) == 0) {
		(void)unlink(path);
	}
	if (tc_path(tc, "positions", path, sizeof(path)) == 0) {
		(void)unlink(path);
	}
	(void)rmdir(tc->dir);
	tc->dir[0] = '\0';
}
