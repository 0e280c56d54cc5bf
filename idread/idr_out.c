/*
 * The ID information as text or JSON (idr_reader.h: idr_print_info).
 * JSON strings are escaped byte by byte (UTF-8 passes through; the format
 * already refused control characters, but the escaper does not rely on it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "idr_reader.h"

static void
json_str(FILE *f, const char *s)
{
	const unsigned char *p;

	fputc('"', f);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\') {
			fprintf(f, "\\%c", *p);
		} else if (*p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\u%04x", *p);
		} else {
			fputc(*p, f);
		}
	}
	fputc('"', f);
}

static const char *
sex_name(uint8_t sex)
{
	return sex == IDC_SEX_MALE ? "male" : sex == IDC_SEX_FEMALE ?
	    "female" : "unknown";
}

/* YYYYMMDD -> YYYY-MM-DD; other text (长期) as it is. */
static void
fmt_date(const char *d, char *out, size_t cap)
{
	if (strlen(d) == IDC_DATE_LEN) {
		snprintf(out, cap, "%.4s-%.2s-%.2s", d, d + 4, d + 6);
	} else {
		snprintf(out, cap, "%s", d);
	}
}

static int
write_photo(const char *path, const uint8_t *p, size_t n)
{
	size_t off = 0;
	ssize_t w;
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) < 0) {
		return ML_ERR_IO;
	}
	while (off < n) {
		w = write(fd, p + off, n - off);
		if (w < 0 && errno == EINTR) {
			continue;
		}
		if (w <= 0) {
			close(fd);
			return ML_ERR_IO;
		}
		off += (size_t)w;
	}
	return close(fd) == 0 ? 0 : ML_ERR_IO;
}

int
idr_print_info(FILE *f, const struct idc_info *ii, bool json,
    const char *photo_path)
{
	char birth[24], from[24], until[40];
	int r;

	if (photo_path != NULL) {
		ML_TRY(write_photo(photo_path, ii->photo, ii->photo_len));
	}
	fmt_date(ii->birth, birth, sizeof(birth));
	fmt_date(ii->valid_from, from, sizeof(from));
	fmt_date(ii->valid_until, until, sizeof(until));
	if (json) {
		fputs("{\"name\":", f);
		json_str(f, ii->name);
		fprintf(f, ",\"sex\":\"%s\",\"nation\":", sex_name(ii->sex));
		json_str(f, ii->nation);
		fputs(",\"birth_date\":", f);
		json_str(f, birth);
		fputs(",\"address\":", f);
		json_str(f, ii->address);
		fputs(",\"id_number\":", f);
		json_str(f, ii->idnum);
		fputs(",\"issuing_authority\":", f);
		json_str(f, ii->authority);
		fputs(",\"valid_from\":", f);
		json_str(f, from);
		fputs(",\"valid_until\":", f);
		json_str(f, until);
		fprintf(f, ",\"photo_bytes\":%zu,\"photo_file\":", ii->photo_len);
		if (photo_path != NULL) {
			json_str(f, photo_path);
		} else {
			fputs("null", f);
		}
		fprintf(f, ",\"fingerprint_bytes\":%zu}\n", ii->finger_len);
	} else {
		fprintf(f, "name:               %s\n", ii->name);
		fprintf(f, "sex:                %s\n", sex_name(ii->sex));
		fprintf(f, "nation:             %s\n", ii->nation);
		fprintf(f, "birth date:         %s\n", birth);
		fprintf(f, "address:            %s\n", ii->address);
		fprintf(f, "ID number:          %s\n", ii->idnum);
		fprintf(f, "issuing authority:  %s\n", ii->authority);
		fprintf(f, "valid:              %s - %s\n", from, until);
		fprintf(f, "photo:              %zu bytes%s%s\n", ii->photo_len,
		    photo_path != NULL ? " -> " : "",
		    photo_path != NULL ? photo_path : "");
	}
	r = fflush(f) == 0 ? 0 : ML_ERR_IO;
out:
	return r;
}
