/*
 * mintline-apdu-doc: print the card OS command tables (the INS tables the
 * dispatcher runs) as Markdown.  docs/apdu.md embeds this output between
 * markers, and tests/check-apdu-doc.sh (test apdu-doc) fails when they differ,
 * so the reference cannot drift from the code.
 */
#include <stdio.h>
#include <string.h>

#include "chip_int.h"

static void
states(const struct chip_profile *p, unsigned mask, char *out, size_t cap)
{
	size_t i, n = 0;
	unsigned all = (p->nstates >= 32) ? ~0u : ((1u << p->nstates) - 1);

	out[0] = '\0';
	if ((mask & all) == all) {
		snprintf(out, cap, "any");
		return;
	}
	for (i = 0; i < p->nstates; i++) {
		if (mask & (1u << i)) {
			n += (size_t)snprintf(out + n, cap - n, "%s%s",
			    n ? ", " : "", p->state_names[i]);
			if (n >= cap) {
				return;
			}
		}
	}
}

static void
table(const struct chip_profile *p, const char *title)
{
	char st[256];
	size_t i;

	printf("### %s\n\n", title);
	printf("States: ");
	for (i = 0; i < p->nstates; i++) {
		printf("%s`%s`", i ? ", " : "", p->state_names[i]);
	}
	printf(".\n\n");
	printf("| CLA | INS | command | accepted in |\n");
	printf("| --- | --- | --- | --- |\n");
	for (i = 0; i < p->nins; i++) {
		states(p, p->ins[i].allowed, st, sizeof(st));
		printf("| %02X | %02X | %s | %s |\n", p->ins[i].cla,
		    p->ins[i].ins, p->ins[i].name ? p->ins[i].name : "?", st);
	}
	printf("\n");
}

int
main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0)) {
		printf("usage: mintline-apdu-doc\n\n"
		    "Print the card OS INS tables (core, reader, note, idcard, sam)\n"
		    "as Markdown, as embedded in docs/apdu.md.\n");
		return 0;
	}
	printf("Every kind answers SELECT (00 A4) and GET RESPONSE (00 C0) "
	    "in any state;\nthe profile table is searched first, then the "
	    "core table.\n\n");
	table(&chip_profile_core, "Core (every chip kind)");
	table(&chip_profile_reader, "Reader secure chip (kind 1)");
	table(&chip_profile_note, "Banknote chip (kind 2)");
	table(&chip_profile_idcard, "ID-card stand-in (kind 3)");
	table(&chip_profile_sam, "SAM (kind 4)");
	return 0;
}
