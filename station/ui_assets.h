/*
 * The station's page files (station/ui/), compiled in at build time by
 * station/ui/embed.py (OP-1: the pages load nothing from elsewhere).
 */
#ifndef ST_UI_ASSETS_H
#define ST_UI_ASSETS_H

#include <stddef.h>

struct ui_asset {
	const char		*path;		/* "/desk.html" */
	const char		*type;		/* Content-Type */
	const unsigned char	*data;
	size_t			 len;
};

/* The file served at path, or NULL. */
const struct ui_asset	*ui_asset_find(const char *path);

#endif
