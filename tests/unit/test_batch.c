/*
 * Batch input: a vector table of lines with the exact outcome, and whole
 * batches where malformed lines are reported by number while the rest
 * goes on.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "batch.h"

static const struct line_vec {
	const char	*line;
	int		 header_ok;
	int		 want;		/* BATCH_NOTE, BATCH_SKIP or ML_ERR_* */
	const char	*want_id;
} line_vecs[] = {
	{ "AB,00001234", 0, BATCH_NOTE, "AB00001234" },
	{ "  AB , 00001234\t", 0, BATCH_NOTE, "AB00001234" },
	{ "AB,00001234\r", 0, BATCH_NOTE, "AB00001234" },
	{ "", 0, BATCH_SKIP, NULL },
	{ "   ", 0, BATCH_SKIP, NULL },
	{ "# comment, with comma", 0, BATCH_SKIP, NULL },
	{ "  # indented comment", 0, BATCH_SKIP, NULL },
	{ "prefix,serial", 1, BATCH_SKIP, NULL },
	{ "PREFIX , Serial", 1, BATCH_SKIP, NULL },
	{ "prefix,serial", 0, ML_ERR_TOO_LARGE, NULL },	/* not a header here */
	{ "AB00001234", 0, ML_ERR_FORMAT, NULL },
	{ "AB,0000,1234", 0, ML_ERR_FORMAT, NULL },
	{ ",00001234", 0, ML_ERR_SHORT, NULL },
	{ "AB,", 0, ML_ERR_SHORT, NULL },
	{ "ABCDE,00001234", 0, ML_ERR_TOO_LARGE, NULL },
	{ "ab,00001234", 0, ML_ERR_FORMAT, NULL },
	{ "AB,0000123x", 0, ML_ERR_FORMAT, NULL },
	{ "AB,1234567890123", 0, ML_ERR_TOO_LARGE, NULL },
	{ "A\x01,00001234", 0, ML_ERR_FORMAT, NULL },
};

START_TEST(line_vectors)
{
	const struct line_vec *v = &line_vecs[_i];
	struct note_id id;
	const char *why = NULL;
	char s[NOTE_ID_MAX + 1];
	int r;

	r = batch_parse_line((const uint8_t *)v->line, strlen(v->line),
	    v->header_ok, &id, &why);
	ck_assert_msg(r == v->want, "'%s': got %d want %d", v->line, r, v->want);
	if (r < 0) {
		ck_assert_ptr_nonnull(why);
	}
	if (v->want_id != NULL) {
		note_id_str(&id, s);
		ck_assert_str_eq(s, v->want_id);
	}
}
END_TEST

START_TEST(overlong_line)
{
	uint8_t line[BATCH_LINE_MAX + 10];
	struct note_id id;
	const char *why = NULL;

	memset(line, 'A', sizeof(line));
	ck_assert_int_eq(batch_parse_line(line, sizeof(line), 0, &id, &why),
	    ML_ERR_TOO_LARGE);
}
END_TEST

/* A batch with errors on known lines: the good lines all arrive. */
static const char batch_text[] =
	"# mint line 3, lot 17\n"		/* 1 */
	"prefix,serial\n"			/* 2 */
	"AB,00000001\n"				/* 3 */
	"AB,0000000X\n"				/* 4 bad */
	"\n"					/* 5 */
	"AB,00000002\r\n"			/* 6 */
	"prefix,serial\n"			/* 7 bad: header after a note */
	"AB,00000001\n"				/* 8 duplicate */
	"CD,00000003";				/* 9, no final LF */

START_TEST(whole_batch)
{
	struct batch b = { 0 };

	ck_assert_int_eq(batch_parse_buf(&b, (const uint8_t *)batch_text,
	    strlen(batch_text)), 0);
	ck_assert_uint_eq(b.n, 3);
	ck_assert_uint_eq(b.v[0].lineno, 3);
	ck_assert_uint_eq(b.v[1].lineno, 6);
	ck_assert_uint_eq(b.v[2].lineno, 9);
	ck_assert_str_eq(b.v[2].id.prefix, "CD");
	ck_assert_uint_eq(b.nerr, 3);
	ck_assert_uint_eq(b.err[0].lineno, 4);
	ck_assert_int_eq(b.err[0].r, ML_ERR_FORMAT);
	ck_assert_uint_eq(b.err[1].lineno, 7);
	ck_assert_uint_eq(b.err[2].lineno, 8);
	ck_assert_int_eq(b.err[2].r, ML_ERR_EXISTS);
	batch_clear(&b);
	ck_assert_uint_eq(b.n, 0);
}
END_TEST

START_TEST(stream_matches_buffer)
{
	struct batch a = { 0 }, b = { 0 };
	FILE *f = fmemopen((void *)batch_text, strlen(batch_text), "r");
	size_t i;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(batch_read(&a, f), 0);
	fclose(f);
	ck_assert_int_eq(batch_parse_buf(&b, (const uint8_t *)batch_text,
	    strlen(batch_text)), 0);
	ck_assert_uint_eq(a.n, b.n);
	ck_assert_uint_eq(a.nerr, b.nerr);
	for (i = 0; i < a.n; i++) {
		ck_assert_uint_eq(a.v[i].lineno, b.v[i].lineno);
	}
	batch_clear(&a);
	batch_clear(&b);
}
END_TEST

START_TEST(stream_overlong_line_goes_on)
{
	static char text[BATCH_LINE_MAX * 3];
	struct batch b = { 0 };
	FILE *f;
	size_t n;

	n = (size_t)snprintf(text, sizeof(text), "AB,00000001\n");
	memset(text + n, '9', BATCH_LINE_MAX * 2);
	n += BATCH_LINE_MAX * 2;
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\nAB,00000002\n");
	ck_assert_ptr_nonnull(f = fmemopen(text, n, "r"));
	ck_assert_int_eq(batch_read(&b, f), 0);
	fclose(f);
	ck_assert_uint_eq(b.n, 2);
	ck_assert_uint_eq(b.nerr, 1);
	ck_assert_uint_eq(b.err[0].lineno, 2);
	ck_assert_int_eq(b.err[0].r, ML_ERR_TOO_LARGE);
	ck_assert_uint_eq(b.v[1].lineno, 3);
	batch_clear(&b);
}
END_TEST

/* A spreadsheet's UTF-8 byte order mark before the header (stream and
 * buffer alike); only at the very start, never in the middle. */
START_TEST(utf8_bom)
{
	static const char text[] = "\xEF\xBB\xBFprefix,serial\r\n"
	    "AB,00000001\r\n\xEF\xBB\xBF" "AB,00000002\r\n";
	static const char first[] = "\xEF\xBB\xBF" "AB,00000003\n";
	struct batch a = { 0 }, b = { 0 };
	FILE *f = fmemopen((void *)text, strlen(text), "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(batch_read(&a, f), 0);
	fclose(f);
	ck_assert_int_eq(batch_parse_buf(&b, (const uint8_t *)text,
	    strlen(text)), 0);
	ck_assert_uint_eq(a.n, 1);
	ck_assert_uint_eq(b.n, 1);
	ck_assert_uint_eq(a.v[0].lineno, 2);
	ck_assert_uint_eq(a.nerr, 1);
	ck_assert_uint_eq(a.err[0].lineno, 3);
	batch_clear(&a);
	ck_assert_int_eq(batch_parse_buf(&a, (const uint8_t *)first,
	    strlen(first)), 0);
	ck_assert_uint_eq(a.n, 1);
	ck_assert_str_eq(a.v[0].id.prefix, "AB");
	batch_clear(&a);
	batch_clear(&b);
}
END_TEST

/* Many notes: the duplicate set grows and stays right. */
START_TEST(many_notes)
{
	struct batch b = { 0 };
	char line[32];
	int i, n;

	for (i = 0; i < 20000; i++) {
		n = snprintf(line, sizeof(line), "MX,%08d\n", i % 15000);
		ck_assert_int_eq(batch_parse_buf(&b, (uint8_t *)line, (size_t)n), 0);
	}
	ck_assert_uint_eq(b.n, 15000);
	ck_assert_uint_eq(b.nerr, 5000);
	batch_clear(&b);
}
END_TEST

static Suite *
batch_suite(void)
{
	Suite *s = suite_create("batch");
	TCase *tc = tcase_create("batch");

	tcase_add_loop_test(tc, line_vectors, 0,
	    sizeof(line_vecs) / sizeof(line_vecs[0]));
	tcase_add_test(tc, overlong_line);
	tcase_add_test(tc, whole_batch);
	tcase_add_test(tc, stream_matches_buffer);
	tcase_add_test(tc, stream_overlong_line_goes_on);
	tcase_add_test(tc, utf8_bom);
	tcase_add_test(tc, many_notes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(batch_suite());
	int nf;

	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
