/* address.c - owns what coursed accepts as a subscriber address and name.
 * Deliberately strict: an address we store is an address we will put in an
 * SMTP envelope and a To: header, so no spaces, quotes, brackets or
 * control characters are ever let in. Addresses are stored in lower case. */
#include <string.h>
#include "address.h"
#include "error.h"

static gboolean local_char_ok(char c)
{
    return g_ascii_isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~.", c));
}

static gboolean domain_ok(const char *d)
{
    if (!*d || strlen(d) > 253 || d[0] == '.' || d[0] == '-' || !strchr(d, '.'))
        return FALSE;
    for (const char *p = d; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '-' && *p != '.')
            return FALSE;
        if (*p == '.' && (p[1] == '.' || p[1] == '\0'))
            return FALSE;
    }
    return TRUE;
}

char *address_normalize(const char *addr, GError **err)
{
    if (!addr || !*addr) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "empty e-mail address");
        return NULL;
    }
    const char *at = strrchr(addr, '@');
    if (!at || at == addr || strlen(addr) > 254 || at - addr > 64) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "bad e-mail address '%s': expected local@domain", addr);
        return NULL;
    }
    for (const char *p = addr; p < at; p++) {
        if (!local_char_ok(*p) || (*p == '.' && (p == addr || p[1] == '.' || p + 1 == at))) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "bad e-mail address '%s': character not allowed in the local part", addr);
            return NULL;
        }
    }
    char *domain = g_ascii_strdown(at + 1, -1);
    if (!domain_ok(domain)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "bad e-mail address '%s': bad domain", addr);
        g_free(domain);
        return NULL;
    }
    /* The whole address is kept in lower case: local parts are case-blind
     * at every provider people use, and one person must not become two. */
    char *local = g_ascii_strdown(addr, at - addr);
    char *out = g_strdup_printf("%s@%s", local, domain);
    g_free(local);
    g_free(domain);
    return out;
}

char *address_clean_name(const char *name, gsize max_chars)
{
    if (!name)
        return NULL;
    char *valid = g_utf8_make_valid(name, -1);
    GString *s = g_string_new(NULL);
    gsize n = 0;
    for (const char *p = valid; *p && n < max_chars; p = g_utf8_next_char(p), n++) {
        gunichar c = g_utf8_get_char(p);
        if (g_unichar_iscntrl(c) || c == 0x2028 || c == 0x2029)
            g_string_append_c(s, ' ');
        else
            g_string_append_unichar(s, c);
    }
    g_free(valid);
    char *out = g_string_free(s, FALSE);
    return g_strstrip(out);
}
