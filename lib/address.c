/* address.c - owns what coursed accepts as a subscriber address and name.
 * Deliberately strict: an address we store is an address we will put in an
 * SMTP envelope and a To: header, so no spaces, quotes, brackets or
 * control characters are ever let in.
 *
 * Internationalised domain names (RFC 5890) are accepted. People see and
 * the database keeps the Unicode form (the Unicode form of the domain's
 * IDNA ASCII name: NFC, lower case), so that `anna@MÜLLER.example` and
 * `anna@xn--mller-kva.example` are one subscriber; the envelope and the
 * headers carry the ASCII form (address_to_ascii), so any relay takes it.
 * The local part must be ASCII: libESMTP has no SMTPUTF8, and an address
 * that cannot be delivered is refused here rather than bounced later. */
#include <stdarg.h>
#include <string.h>
#include "address.h"
#include "error.h"

#define ADDR_MAX_INPUT 1024 /* bytes looked at: longer is refused unread */
#define SHOWN_CHARS 100     /* characters of an address an error message shows */

static gboolean local_char_ok(char c)
{
    return g_ascii_isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~.", c));
}

/* Characters that print as nothing or move the text around. */
static gboolean invisible(gunichar c)
{
    switch (g_unichar_type(c)) {
    case G_UNICODE_CONTROL:
    case G_UNICODE_FORMAT:
    case G_UNICODE_SURROGATE:
    case G_UNICODE_LINE_SEPARATOR:
    case G_UNICODE_PARAGRAPH_SEPARATOR: return TRUE;
    default: return FALSE;
    }
}

/* Never in a domain, before or after IDNA: what is invisible, spaces, and
 * code points with no meaning (unassigned, private use). */
static gboolean domain_char_refused(gunichar c)
{
    GUnicodeType t = g_unichar_type(c);
    return invisible(c) || t == G_UNICODE_SPACE_SEPARATOR || t == G_UNICODE_UNASSIGNED ||
           t == G_UNICODE_PRIVATE_USE;
}

/* s (len bytes, -1: all) as an error message shows it: valid UTF-8, no
 * invisible characters, at most SHOWN_CHARS characters. */
static char *shown(const char *s, gssize len)
{
    char *valid = g_utf8_make_valid(s, len);
    GString *out = g_string_new(NULL);
    gsize n = 0;
    for (const char *p = valid; *p; p = g_utf8_next_char(p)) {
        if (n++ == SHOWN_CHARS) {
            g_string_append(out, "…");
            break;
        }
        gunichar c = g_utf8_get_char(p);
        if (invisible(c))
            g_string_append_c(out, '?');
        else
            g_string_append_unichar(out, c);
    }
    g_free(valid);
    return g_string_free(out, FALSE);
}

/* Sets err to "bad e-mail address 'ADDR': REASON". */
static void G_GNUC_PRINTF(3, 4) refuse(GError **err, const char *addr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    char *a = shown(addr, -1);
    g_set_error(err, CD_ERROR, CD_ERR_INVALID, "bad e-mail address '%s': %s", a, why);
    g_free(a);
    g_free(why);
}

static gboolean is_ascii(const char *s, const char *end)
{
    for (const char *p = s; p < end; p++)
        if ((guchar)*p >= 0x80)
            return FALSE;
    return TRUE;
}

static void refuse_utf8_local(GError **err, const char *addr, const char *at)
{
    char *local = shown(addr, at - addr);
    refuse(err, addr,
           "a local part that is not ASCII (%s) cannot be delivered: the mail relay does not speak SMTPUTF8",
           local);
    g_free(local);
}

/* The local part [addr, at): dot-atom characters, ASCII only. */
static gboolean local_ok(const char *addr, const char *at, GError **err)
{
    for (const char *p = addr; p < at; p++) {
        if ((guchar)*p >= 0x80)
            continue; /* refused below, with its own reason */
        if (!local_char_ok(*p) || (*p == '.' && (p == addr || p[1] == '.' || p + 1 == at))) {
            refuse(err, addr, "character not allowed in the local part");
            return FALSE;
        }
    }
    if (!is_ascii(addr, at)) {
        refuse_utf8_local(err, addr, at);
        return FALSE;
    }
    if (at - addr > 64) {
        refuse(err, addr, "the local part is longer than 64 characters");
        return FALSE;
    }
    return TRUE;
}

/* What is wrong with an ASCII domain name (lower case, as IDNA gives it),
 * or NULL: letters, digits and hyphens in labels of 1 to 63 characters that
 * neither start nor end with a hyphen, at least two labels, 253 in all. */
static char *ascii_domain_problem(const char *d)
{
    if (strlen(d) > 253)
        return g_strdup("bad domain: longer than 253 characters");
    if (!strchr(d, '.'))
        return g_strdup("bad domain");
    for (const char *label = d;; label++) {
        const char *end = strchr(label, '.');
        size_t n = end ? (size_t)(end - label) : strlen(label);
        if (n == 0)
            return g_strdup("bad domain");
        for (size_t i = 0; i < n; i++)
            if (!g_ascii_isalnum(label[i]) && label[i] != '-')
                return g_strdup("bad domain");
        if (label[0] == '-' || label[n - 1] == '-')
            return g_strdup("bad domain: a label starts or ends with a hyphen");
        if (n > 63) {
            char *l = shown(label, (gssize)n);
            char *why = g_strdup_printf("bad domain: the label '%s' is longer than 63 characters", l);
            g_free(l);
            return why;
        }
        if (!end)
            return NULL;
        label = end;
    }
}

/* The first label of d (split at '.') that has no IDNA ASCII form, for the
 * message; NULL if each has one. */
static char *label_without_ascii(const char *d)
{
    char **labels = g_strsplit(d, ".", -1);
    char *bad = NULL;
    for (char **l = labels; *l && !bad; l++) {
        char *a = **l ? g_hostname_to_ascii(*l) : g_strdup("");
        if (!a)
            bad = shown(*l, -1);
        g_free(a);
    }
    g_strfreev(labels);
    return bad;
}

/* UTS #39 "highly restrictive": the letters of a label are of one script,
 * or Latin with the scripts of one Han-based writing system (Japanese: Han,
 * Hiragana, Katakana; Chinese: Han, Bopomofo; Korean: Han, Hangul). What
 * mixes others (Latin with Cyrillic or Greek look-alikes, left-to-right
 * with right-to-left) is refused: it is how a domain imitates another. On
 * refusal returns the scripts found ("Latn, Cyrl"). */
static char *label_scripts_problem(const char *label, const char *end)
{
    GUnicodeScript seen[8];
    size_t n = 0, others = 0;
    gboolean kana = FALSE, bopo = FALSE, hangul = FALSE;
    for (const char *p = label; p < end; p = g_utf8_next_char(p)) {
        GUnicodeScript s = g_unichar_get_script(g_utf8_get_char(p));
        if (s == G_UNICODE_SCRIPT_COMMON || s == G_UNICODE_SCRIPT_INHERITED)
            continue;
        gboolean known = FALSE;
        for (size_t i = 0; i < n && !known; i++)
            known = seen[i] == s;
        if (known || n == G_N_ELEMENTS(seen))
            continue;
        seen[n++] = s;
        if (s == G_UNICODE_SCRIPT_HIRAGANA || s == G_UNICODE_SCRIPT_KATAKANA)
            kana = TRUE;
        else if (s == G_UNICODE_SCRIPT_BOPOMOFO)
            bopo = TRUE;
        else if (s == G_UNICODE_SCRIPT_HANGUL)
            hangul = TRUE;
        else if (s != G_UNICODE_SCRIPT_LATIN && s != G_UNICODE_SCRIPT_HAN)
            others++;
    }
    gboolean ok = (others == 0 && (int)kana + (int)bopo + (int)hangul <= 1) || (others == 1 && n == 1);
    if (ok)
        return NULL;
    GString *names = g_string_new(NULL);
    for (size_t i = 0; i < n; i++) {
        char code[5] = { 0 };
        guint32 iso = g_unicode_script_to_iso15924(seen[i]);
        for (int k = 0; k < 4; k++)
            code[k] = (char)((iso >> (24 - 8 * k)) & 0xff);
        g_string_append_printf(names, "%s%s", i ? ", " : "", code);
    }
    return g_string_free(names, FALSE);
}

/* What is wrong with the Unicode form of a domain (labels split at '.'),
 * or NULL. */
static char *unicode_domain_problem(const char *u)
{
    for (const char *p = u; *p; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        if (domain_char_refused(c))
            return g_strdup_printf("bad domain: character U+%04X is not allowed in a domain", c);
    }
    for (const char *label = u;; label++) {
        const char *dot = strchr(label, '.');
        size_t n = dot ? (size_t)(dot - label) : strlen(label);
        if (n > 0 && (label[0] == '-' || label[n - 1] == '-'))
            return g_strdup("bad domain: a label starts or ends with a hyphen");
        char *scripts = label_scripts_problem(label, label + n);
        if (scripts) {
            char *l = shown(label, (gssize)n);
            char *why = g_strdup_printf("bad domain: the label '%s' mixes scripts (%s)", l, scripts);
            g_free(l);
            g_free(scripts);
            return why;
        }
        if (!dot)
            return NULL;
        label = dot;
    }
}

/* The canonical (Unicode) form of domain d of addr, and its ASCII form in
 * *ascii; NULL with err set. */
static char *domain_canonical(const char *addr, const char *d, char **ascii, GError **err)
{
    *ascii = NULL;
    for (const char *p = d; *p; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        if (c < 0x80 ? !g_ascii_isalnum((char)c) && c != '-' && c != '.' : domain_char_refused(c)) {
            if (c < 0x80)
                refuse(err, addr, "bad domain");
            else
                refuse(err, addr, "bad domain: character U+%04X is not allowed in a domain", c);
            return NULL;
        }
    }
    if (!*d) {
        refuse(err, addr, "bad domain");
        return NULL;
    }
    char *a = g_hostname_to_ascii(d);
    if (!a) {
        char *label = label_without_ascii(d);
        if (label)
            refuse(err, addr,
                   "bad domain: the label '%s' is not a valid internationalised name (IDNA: too long, or "
                   "characters a domain cannot have)",
                   label);
        else
            refuse(err, addr, "bad domain: not a valid internationalised domain name (IDNA)");
        g_free(label);
        return NULL;
    }
    char *why = ascii_domain_problem(a);
    if (why) {
        refuse(err, addr, "%s", why);
        g_free(why);
        g_free(a);
        return NULL;
    }
    /* The Unicode form of the ASCII name, and back: an xn-- label that is
     * not valid punycode, or not the encoding IDNA would give its text,
     * does not come back the same. */
    char *u = g_hostname_to_unicode(a);
    char *nfc = u ? g_utf8_normalize(u, -1, G_NORMALIZE_NFC) : NULL;
    char *back = nfc ? g_hostname_to_ascii(nfc) : NULL;
    g_free(u);
    if (!back || strcmp(back, a) != 0) {
        refuse(err, addr, "bad domain: an xn-- label is not a valid internationalised name (IDNA)");
        g_free(back);
        g_free(nfc);
        g_free(a);
        return NULL;
    }
    g_free(back);
    why = unicode_domain_problem(nfc);
    if (why) {
        refuse(err, addr, "%s", why);
        g_free(why);
        g_free(nfc);
        g_free(a);
        return NULL;
    }
    *ascii = a;
    return nfc;
}

/* domain_canonical, remembering the last domain it accepted: an import of
 * a million rows names a handful of domains, and IDNA is most of the cost
 * of an address. Locked: the HTTP thread normalises too. */
static char *domain_cached(const char *addr, const char *d, char **ascii, GError **err)
{
    static GMutex lock;
    static char *last_in, *last_canon, *last_ascii;
    g_mutex_lock(&lock);
    if (last_in && strcmp(last_in, d) == 0) {
        char *canon = g_strdup(last_canon);
        *ascii = g_strdup(last_ascii);
        g_mutex_unlock(&lock);
        return canon;
    }
    g_mutex_unlock(&lock);
    char *canon = domain_canonical(addr, d, ascii, err);
    if (canon) {
        g_mutex_lock(&lock);
        g_free(last_in);
        g_free(last_canon);
        g_free(last_ascii);
        last_in = g_strdup(d);
        last_canon = g_strdup(canon);
        last_ascii = g_strdup(*ascii);
        g_mutex_unlock(&lock);
    }
    return canon;
}

char *address_normalize(const char *addr, GError **err)
{
    if (!addr || !*addr) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "empty e-mail address");
        return NULL;
    }
    size_t len = strlen(addr);
    if (len > ADDR_MAX_INPUT) {
        refuse(err, addr, "longer than 254 characters");
        return NULL;
    }
    if (!g_utf8_validate(addr, (gssize)len, NULL)) {
        refuse(err, addr, "not valid UTF-8");
        return NULL;
    }
    const char *at = strrchr(addr, '@');
    if (!at || at == addr) {
        refuse(err, addr, "expected local@domain");
        return NULL;
    }
    if (!local_ok(addr, at, err))
        return NULL;
    char *ascii = NULL;
    char *domain = domain_cached(addr, at + 1, &ascii, err);
    if (!domain)
        return NULL;
    char *out = NULL;
    /* The limit is on what goes on the wire: the ASCII form. */
    if ((size_t)(at - addr) + 1 + strlen(ascii) > 254) {
        refuse(err, addr, "longer than 254 characters");
    } else {
        /* The local part is kept in lower case: local parts are case-blind
         * at every provider people use, and one person must not become
         * two. */
        size_t ll = (size_t)(at - addr), dl = strlen(domain);
        out = g_malloc(ll + 1 + dl + 1);
        for (size_t i = 0; i < ll; i++)
            out[i] = g_ascii_tolower(addr[i]);
        out[ll] = '@';
        memcpy(out + ll + 1, domain, dl + 1);
    }
    g_free(ascii);
    g_free(domain);
    return out;
}

char *address_to_ascii(const char *addr, GError **err)
{
    if (!addr || !*addr) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "empty e-mail address");
        return NULL;
    }
    size_t len = strlen(addr);
    if (is_ascii(addr, addr + len))
        return g_strdup(addr);
    const char *at = strrchr(addr, '@');
    if (!at || !g_utf8_validate(addr, (gssize)len, NULL)) {
        refuse(err, addr, "expected local@domain in UTF-8");
        return NULL;
    }
    if (!is_ascii(addr, at)) {
        refuse_utf8_local(err, addr, at);
        return NULL;
    }
    char *domain = g_hostname_to_ascii(at + 1);
    if (!domain) {
        refuse(err, addr, "bad domain: not a valid internationalised domain name (IDNA)");
        return NULL;
    }
    char *out = g_strdup_printf("%.*s@%s", (int)(at - addr), addr, domain);
    g_free(domain);
    return out;
}

char *address_clean_name(const char *name, gsize max_chars)
{
    if (!name)
        return NULL;
    /* printable ASCII, the common case of a whole import, needs no
     * decoding: it is kept as it is, up to max_chars */
    gsize n_ascii = 0;
    while (name[n_ascii] >= 0x20 && name[n_ascii] < 0x7f)
        n_ascii++;
    if (!name[n_ascii] || n_ascii >= max_chars)
        return g_strstrip(g_strndup(name, MIN(n_ascii, max_chars)));
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
