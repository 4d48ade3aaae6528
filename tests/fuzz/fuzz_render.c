/* libFuzzer target: any lesson text through what render.c does with
 * Markdown. The HTML (cmark-gfm with tables and strikethrough, inline
 * styles added) and the plain text part must be valid UTF-8; the text
 * part has no control character but the line break, no trailing space and
 * no line over 72 columns (as a fixed-width font shows them) unless it is a code line or one address (nested
 * lists and quotes may take it to 72 + their indentation, at most 30
 * columns of text each), before and after render_text_wrap(); the lint
 * must give each problem as "file:line: message" with a line inside the
 * lesson. Run it with a build made as
 * tests/fuzz/CMakeLists.txt says:
 *   build-fuzz/tests/fuzz/fuzz_render -max_total_time=30 -max_len=4096 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include "course.h"
#include "render.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The columns a fixed-width font gives s: a zero-width character (a
 * combining mark, U+FEFF) none, a wide one two; as the renderer counts
 * when it wraps. */
static glong columns(const char *s)
{
    glong w = 0;
    for (const char *p = s; *p; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        w += g_unichar_iszerowidth(c) ? 0 : g_unichar_iswide(c) ? 2 : 1;
    }
    return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *md = g_strndup((const char *)data, size); /* up to the first NUL, as a file read */
    if (!g_utf8_validate(md, -1, NULL)) {           /* course.c refuses other lessons */
        g_free(md);
        return 0;
    }
    char *html = render_markdown(md);
    char *text = render_markdown_text(md);
    if (!g_utf8_validate(html, -1, NULL) || !g_utf8_validate(text, -1, NULL))
        __builtin_trap();
    for (const char *p = text; *p; p++)
        if ((unsigned char)*p < ' ' && *p != '\n')
            __builtin_trap();
    gboolean code = strstr(md, "    ") || strchr(md, '\t') || strstr(md, "```") || strstr(md, "~~~");
    char *again = render_text_wrap(text); /* as lesson.txt sends it */
    for (int pass = 0; pass < 2; pass++) {
        char **rows = g_strsplit(pass ? again : text, "\n", -1);
        for (char **l = rows; *l; l++) {
            const char *last = strrchr(*l, ' ');
            last = last ? last + 1 : *l;
            if (g_str_has_suffix(*l, " ") && pass == 0)
                __builtin_trap();
            /* the indentation: spaces, and the markers of the lists it is in
             * ("- ", "12. "), as a list item that opens with a quote has */
            size_t indent = strspn(*l, " -.0123456789");
            if (columns(*l) > 72 && g_utf8_strlen(last, -1) < 30 && indent < 42 && !code)
                __builtin_trap(); /* too wide, and not an address standing alone after its indentation */
        }
        g_strfreev(rows);
    }
    g_free(again);
    struct lesson l = { .n = 1, .slug = "a", .path = "01-a.md", .subject = "S", .body = md, .body_line = 3 };
    struct course c = { .slug = "c", .n_lessons = 1, .lessons = &l };
    GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
    render_lint_course(&c, problems);
    int lines = 3;
    for (const char *p = md; *p; p++)
        lines += *p == '\n' || (*p == '\r' && p[1] != '\n');
    for (guint i = 0; i < problems->len; i++) {
        const char *s = problems->pdata[i];
        char *end = NULL;
        long line = g_str_has_prefix(s, "01-a.md:") ? strtol(s + 8, &end, 10) : 0;
        if (line < 3 || line > lines || !end || strncmp(end, ": ", 2) != 0 || !g_utf8_validate(s, -1, NULL))
            __builtin_trap();
    }
    g_ptr_array_unref(problems);
    g_free(text);
    g_free(html);
    g_free(md);
    return 0;
}
