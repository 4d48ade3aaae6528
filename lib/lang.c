/* lang.c - owns the table of every word coursed writes itself, in any
 * language (see lang.h): which keys a strings file must have, the
 * {placeholders} each may use, and how dates are put together from them.
 * Dates are built from these tables and never from the C library's
 * locale: setlocale() is process-wide (the HTTP thread renders too) and
 * the machine may not have the locale installed at all. */
#include <stdarg.h>
#include <string.h>
#include "lang.h"
#include "error.h"

struct lang {
    char *tag;
    GHashTable *words; /* key -> text */
};

/* Every key, the placeholders it may use (space-separated) and, for a
 * list, how many items it has. */
static const struct {
    const char *key;
    const char *vars;
    int items;
} keys[] = {
    /* the layouts */
    { "greeting", "name", 0 },
    { "greeting_anonymous", "", 0 },
    { "step_line", "step steps", 0 },
    { "next_label", "", 0 },
    { "last_step", "", 0 },
    { "foot_pause", "pause pause_2_weeks resume address", 0 },
    { "foot_status", "status", 0 },
    { "foot_leave_text", "unsubscribe", 0 },
    { "foot_leave_html", "unsubscribe unsubscribe_link", 0 },
    { "unsubscribe_link", "", 0 },
    { "foot_commands", "address help", 0 },
    { "foot_manage_text", "manage_url", 0 },
    { "foot_manage_html", "manage_link", 0 },
    { "manage_link", "", 0 },
    /* sentences of the system mails */
    { "zone_known", "zone", 0 },
    { "zone_guessed", "zone", 0 },
    { "zone_unknown", "zone", 0 },
    { "zone_hint_guessed", "zone", 0 },
    { "zone_hint_unknown", "zone", 0 },
    { "joined_confirmed", "", 0 },
    { "joined_operator", "", 0 },
    { "progress_completed", "steps", 0 },
    { "progress_active", "sent steps", 0 },
    { "progress_paused", "sent steps", 0 },
    { "progress_paused_until", "sent steps date", 0 },
    { "progress_stopped", "sent steps", 0 },
    { "progress_left", "sent steps", 0 },
    { "progress_left_all", "", 0 },
    { "none_planned", "", 0 },
    { "next_course_offer", "title steps about url", 0 },
    { "next_course_confirm", "", 0 },
    { "course_list_item", "title address", 0 },
    { "calendar_summary", "title step steps subject", 0 },
    { "calendar_description", "title step steps address", 0 },
    /* dates and schedules */
    { "weekdays", "", 7 },
    { "weekdays_plural", "", 7 },
    { "months", "", 12 },
    { "day_1", "", 0 },
    { "date", "weekday day month time", 0 },
    { "time", "hour minute", 0 },
    { "list_and", "", 0 },
    { "quote", "word", 0 },
    { "schedule_daily", "time", 0 },
    { "schedule_days", "n time", 0 },
    { "schedule_weekly", "days time", 0 },
    { "schedule_weeks", "days n time", 0 },
    { "schedule_other", "time", 0 },
};

const char *const *lang_keys(void)
{
    static const char *names[G_N_ELEMENTS(keys) + 1];
    static gsize done;
    if (g_once_init_enter(&done)) {
        for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
            names[i] = keys[i].key;
        g_once_init_leave(&done, 1);
    }
    return names;
}

/* RFC 5646 langtag, the common part: language (2-3 letters, or 4-8),
 * optional script (4 letters), region (2 letters or 3 digits), variants
 * (5-8 alphanumerics, or a digit and 3). Extensions and private use are
 * not needed for mail words and are refused rather than half-read. */
gboolean lang_tag_valid(const char *tag)
{
    if (!tag || !*tag || strlen(tag) > 35)
        return FALSE;
    char **sub = g_strsplit(tag, "-", -1);
    gboolean ok = TRUE;
    int stage = 0; /* 0 language, 1 script, 2 region, 3 variants */
    for (int i = 0; ok && sub[i]; i++) {
        const char *s = sub[i];
        size_t n = strlen(s);
        gboolean alpha = n > 0, digit = n > 0, alnum = n > 0;
        for (const char *p = s; *p; p++) {
            alpha = alpha && g_ascii_isalpha(*p);
            digit = digit && g_ascii_isdigit(*p);
            alnum = alnum && g_ascii_isalnum(*p);
        }
        if (i == 0) {
            ok = alpha && n >= 2 && n <= 8 && n != 4;
            continue;
        }
        if (stage < 1 && alpha && n == 4)
            stage = 1;
        else if (stage < 2 && ((alpha && n == 2) || (digit && n == 3)))
            stage = 2;
        else if (alnum && ((n >= 5 && n <= 8) || (n == 4 && g_ascii_isdigit(s[0]))))
            stage = 3;
        else
            ok = FALSE;
    }
    g_strfreev(sub);
    return ok;
}

char *lang_find(const char *dir, const char *tag)
{
    char *file = g_strconcat(tag, ".ini", NULL);
    char *path = g_build_filename(dir, file, NULL);
    g_free(file);
    if (g_file_test(path, G_FILE_TEST_IS_REGULAR))
        return path;
    g_free(path);
    const char *dash = strchr(tag, '-');
    if (!dash)
        return NULL;
    char *primary = g_strndup(tag, (gsize)(dash - tag));
    file = g_strconcat(primary, ".ini", NULL);
    path = g_build_filename(dir, file, NULL);
    g_free(file);
    g_free(primary);
    if (g_file_test(path, G_FILE_TEST_IS_REGULAR))
        return path;
    g_free(path);
    return NULL;
}

/* The line of "key =" in text (GKeyFile keeps no line numbers), or 1. */
static int key_line(const char *text, const char *key)
{
    char **lines = g_strsplit(text, "\n", -1);
    int found = 1;
    size_t n = strlen(key);
    for (int i = 0; lines[i]; i++) {
        const char *s = lines[i];
        while (*s == ' ' || *s == '\t')
            s++;
        if (!strncmp(s, key, n) && (s[n] == ' ' || s[n] == '=' || s[n] == '\t')) {
            found = i + 1;
            break;
        }
    }
    g_strfreev(lines);
    return found;
}

static int key_index(const char *key)
{
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
        if (!strcmp(keys[i].key, key))
            return (int)i;
    return -1;
}

/* The first {placeholder} of value that key may not use, or NULL.
 * g_free(). */
static char *unknown_var(const char *value, int k)
{
    char **allowed = g_strsplit(keys[k].vars, " ", -1);
    char *bad = NULL;
    for (const char *p = strchr(value, '{'); p && !bad; p = strchr(p + 1, '{')) {
        const char *end = strchr(p, '}');
        if (!end) {
            bad = g_strdup(p);
            break;
        }
        char *name = g_strndup(p + 1, (gsize)(end - p - 1));
        if (!g_strv_contains((const char *const *)allowed, name))
            bad = g_strdup_printf("{%s}", name);
        g_free(name);
    }
    g_strfreev(allowed);
    return bad;
}

/* Checks one key's value; FALSE with err naming path:line. */
static gboolean check_value(const char *path, const char *text, int k, const char *value, GError **err)
{
    int line = key_line(text, keys[k].key);
    char *bad = unknown_var(value, k);
    if (bad) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: %s: unknown placeholder '%s' (this key knows: %s)",
                    path, line, keys[k].key, bad, *keys[k].vars ? keys[k].vars : "none");
        g_free(bad);
        return FALSE;
    }
    if (keys[k].items) {
        char **items = g_strsplit(value, ";", -1);
        int n = (int)g_strv_length(items);
        g_strfreev(items);
        if (n != keys[k].items) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "%s:%d: %s must list %d names separated by ';', not %d", path, line, keys[k].key,
                        keys[k].items, n);
            return FALSE;
        }
    }
    return TRUE;
}

struct lang *lang_load(const char *path, const char *tag, GError **err)
{
    char *text = NULL;
    GError *e = NULL;
    if (!g_file_get_contents(path, &text, NULL, &e)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: %s", path, e->message);
        g_error_free(e);
        return NULL;
    }
    GKeyFile *kf = g_key_file_new();
    struct lang *s = g_new0(struct lang, 1);
    s->tag = g_strdup(tag);
    s->words = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    gboolean ok = g_key_file_load_from_data(kf, text, (gsize)-1, G_KEY_FILE_NONE, &e);
    if (!ok) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: %s", path, e->message);
        g_clear_error(&e);
    }
    gsize n_groups = 0;
    char **groups = ok ? g_key_file_get_groups(kf, &n_groups) : NULL;
    for (gsize i = 0; ok && i < n_groups; i++)
        if (strcmp(groups[i], "strings") != 0) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "%s: unknown section [%s] (a strings file has [strings])", path, groups[i]);
            ok = FALSE;
        }
    g_strfreev(groups);
    char **present = ok ? g_key_file_get_keys(kf, "strings", NULL, NULL) : NULL;
    for (char **p = present; ok && p && *p; p++)
        if (key_index(*p) < 0) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s:%d: unknown key '%s'", path, key_line(text, *p),
                        *p);
            ok = FALSE;
        }
    g_strfreev(present);
    for (size_t k = 0; ok && k < G_N_ELEMENTS(keys); k++) {
        char *v = g_key_file_get_string(kf, "strings", keys[k].key, NULL);
        if (!v) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "%s: missing key '%s' (every strings file has every key)", path, keys[k].key);
            ok = FALSE;
        } else if (!check_value(path, text, (int)k, v, err)) {
            g_free(v);
            ok = FALSE;
        } else {
            g_hash_table_insert(s->words, g_strdup(keys[k].key), v);
        }
    }
    g_key_file_free(kf);
    g_free(text);
    if (!ok) {
        lang_free(s);
        return NULL;
    }
    return s;
}

void lang_free(struct lang *s)
{
    if (!s)
        return;
    g_hash_table_destroy(s->words);
    g_free(s->tag);
    g_free(s);
}

const char *lang_tag(const struct lang *s)
{
    return s->tag;
}

const char *lang_get(const struct lang *s, const char *key)
{
    const char *v = s ? g_hash_table_lookup(s->words, key) : NULL;
    return v ? v : "";
}

const char *lang_item(const struct lang *s, const char *key, int i)
{
    const char *v = lang_get(s, key);
    for (int k = 0; k < i && v; k++) {
        v = strchr(v, ';');
        if (v)
            v++;
    }
    if (!v)
        return "";
    /* the lists are short and read per message: a static per-thread
     * buffer would be a trap, so the item is returned by interning it */
    const char *end = strchr(v, ';');
    char *item = g_strstrip(end ? g_strndup(v, (gsize)(end - v)) : g_strdup(v));
    const char *interned = g_intern_string(item);
    g_free(item);
    return interned;
}

/* Appends text (n bytes) to out, escaped when html. */
static void append_words(GString *out, const char *text, gsize n, gboolean html)
{
    if (!html) {
        g_string_append_len(out, text, (gssize)n);
        return;
    }
    char *esc = g_markup_escape_text(text, (gssize)n);
    g_string_append(out, esc);
    g_free(esc);
}

/* Fills pattern's {placeholders} from the name/value pairs of ap. */
static char *fill(const char *pattern, gboolean html, va_list ap)
{
    GPtrArray *pairs = g_ptr_array_new();
    for (const char *name; (name = va_arg(ap, const char *));) {
        g_ptr_array_add(pairs, (gpointer)name);
        g_ptr_array_add(pairs, (gpointer)va_arg(ap, const char *));
    }
    GString *out = g_string_new(NULL);
    const char *p = pattern;
    for (;;) {
        const char *open = strchr(p, '{');
        const char *close = open ? strchr(open, '}') : NULL;
        if (!close) {
            append_words(out, p, strlen(p), html);
            break;
        }
        append_words(out, p, (gsize)(open - p), html);
        const char *value = NULL;
        for (guint i = 0; i + 1 < pairs->len && !value; i += 2) {
            const char *name = pairs->pdata[i];
            if (strlen(name) == (size_t)(close - open - 1) && !strncmp(name, open + 1, strlen(name)))
                value = pairs->pdata[i + 1] ? pairs->pdata[i + 1] : "";
        }
        if (value)
            g_string_append(out, value);
        else
            append_words(out, open, (gsize)(close - open + 1), html);
        p = close + 1;
    }
    g_ptr_array_unref(pairs);
    return g_string_free(out, FALSE);
}

char *lang_say(const struct lang *s, const char *key, gboolean html, ...)
{
    va_list ap;
    va_start(ap, html);
    char *out = fill(lang_get(s, key), html, ap);
    va_end(ap);
    return out;
}

char *lang_time(const struct lang *s, int hour, int minute)
{
    char h[8], m[8];
    g_snprintf(h, sizeof h, "%d", hour);
    g_snprintf(m, sizeof m, "%02d", minute);
    return lang_say(s, "time", FALSE, "hour", h, "minute", m, (char *)NULL);
}

char *lang_date(const struct lang *s, int weekday, int day, int month, int hour, int minute)
{
    char d[8];
    g_snprintf(d, sizeof d, "%d", day);
    if (day == 1) /* "1er" in French */
        g_strlcpy(d, lang_get(s, "day_1"), sizeof d);
    char *t = lang_time(s, hour, minute);
    char *out = lang_say(s, "date", FALSE, "weekday", lang_item(s, "weekdays", CLAMP(weekday, 1, 7) - 1),
                         "day", d, "month", lang_item(s, "months", CLAMP(month, 1, 12) - 1), "time", t,
                         (char *)NULL);
    g_free(t);
    return out;
}

char *lang_wrap(const char *text, int width)
{
    GString *out = g_string_new(NULL);
    char **paras = g_strsplit(text, "\n", -1);
    for (int i = 0; paras[i]; i++) {
        if (i > 0)
            g_string_append_c(out, '\n');
        char **words = g_strsplit(paras[i], " ", -1);
        glong col = 0;
        for (int k = 0; words[k]; k++) {
            if (!*words[k])
                continue;
            glong n = g_utf8_strlen(words[k], -1);
            if (col > 0 && col + 1 + n > width) {
                g_string_append_c(out, '\n');
                col = 0;
            } else if (col > 0) {
                g_string_append_c(out, ' ');
                col++;
            }
            g_string_append(out, words[k]);
            col += n;
        }
        g_strfreev(words);
    }
    g_strfreev(paras);
    return g_string_free(out, FALSE);
}
