/* formats_jester.c — the 20BN Jester gesture data set: `id;label` CSV + labels CSV.
 *
 * jester-v1-train.csv / -validation.csv hold `34870;Drumming Fingers` lines, jester-v1-test.csv
 * only ids; jester-v1-labels.csv lists the 27 class names one per line (index = line order).
 * Videos are frame folders `<id>/00001.jpg…`. The grammar is Something-Something V1's, so the
 * reader is shared (fmt_parse_semicolon_csv in formats_something.c).
 */
#include "datasets/formats.h"
#include "datasets/formats_util.h"

bool formats_parse_jester(const char *csv_path, const char *root, const FormatOptions *opt, VideoList *out,
                          char *err, size_t err_cap)
{
    (void)root; /* the frame folder is the id itself */
    static const char *const labels[] = {"jester-v1-labels.csv"};
    return fmt_parse_semicolon_csv("jester", csv_path, opt, labels, 1, out, err, err_cap);
}
