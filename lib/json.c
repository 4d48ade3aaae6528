/* json.c - owns JSON string escaping (RFC 8259): quotes, backslashes and
 * every control character escaped, invalid UTF-8 replaced, so that output
 * built from hostile input is still one valid JSON value. */
#include "json.h"

void json_string(GString *out, const char *s)
{
    if (!s) {
        g_string_append(out, "null");
        return;
    }
    char *valid = g_utf8_make_valid(s, -1);
    g_string_append_c(out, '"');
    for (const unsigned char *p = (const unsigned char *)valid; *p; p++) {
        switch (*p) {
        case '"': g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\r': g_string_append(out, "\\r"); break;
        case '\t': g_string_append(out, "\\t"); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                g_string_append_printf(out, "\\u%04x", *p);
            else
                g_string_append_c(out, (char)*p);
        }
    }
    g_string_append_c(out, '"');
    g_free(valid);
}

void json_key(GString *out, const char *key, gboolean first)
{
    if (!first)
        g_string_append(out, ", ");
    json_string(out, key);
    g_string_append(out, ": ");
}
