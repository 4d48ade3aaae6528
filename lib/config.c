/* config.c - owns the table of every setting: its section, key, type,
 * default and bounds. The table is the single source of truth: loading,
 * validation and the documented defaults all walk it. Unknown groups and
 * keys are errors, because a typo in a mail daemon's config must not
 * silently fall back to a default.
 *
 * It also owns what people paste: full-line comments (# or ;) are the
 * documented form; a value carrying an inline comment is an error naming
 * file, line and key, because GKeyFile would keep "# ..." as part of the
 * value and an empty path followed by a comment would become a relative
 * path. Each value remembers where it came from (file:line or the
 * default), for `coursectl config show`. */
#include <stddef.h>
#include <string.h>
#include "config.h"
#include "error.h"

enum setting_type { T_STRING, T_PATH, T_INT, T_DURATION, T_ENUM };

struct setting {
    const char *group;
    const char *key;
    enum setting_type type;
    const char *def;     /* default, as it would be written in the file */
    gint64 min, max;     /* bounds for T_INT and T_DURATION */
    const char *choices; /* "|"-separated, for T_ENUM */
    size_t offset;
    const char *help;
};

/* Where `cmake --install` puts courses and templates (CMakeLists.txt sets
 * it from the install prefix: /usr/share/coursed for the package). */
#ifndef COURSED_SHAREDIR
#define COURSED_SHAREDIR "/usr/share/coursed"
#endif

#define S(f) offsetof(struct config, f)
static const struct setting settings[] = {
    { "coursed", "database", T_PATH, "/var/lib/coursed/state.db", 0, 0, NULL, S(database),
      "the SQLite state file" },
    { "coursed", "courses", T_PATH, COURSED_SHAREDIR "/courses", 0, 0, NULL, S(courses),
      "folder of courses, one sub-folder each" },
    { "coursed", "templates", T_PATH, COURSED_SHAREDIR "/templates", 0, 0, NULL, S(templates),
      "folder of message templates" },
    { "coursed", "domain", T_STRING, "courses.example.org", 0, 0, NULL, S(domain),
      "domain of Message-IDs, List-Id, VERP and command addresses" },
    { "coursed", "base_url", T_STRING, "https://courses.example.org", 0, 0, NULL, S(base_url),
      "public URL of the HTTP pages" },
    { "coursed", "secret_key", T_PATH, "", 0, 0, NULL, S(secret_key),
      "HMAC key file of tokens (default: secret.key beside the database)" },
    { "coursed", "tick_interval", T_DURATION, "10s", 1, 3600, NULL, S(tick_interval),
      "time between two ticks of the daemon" },
    { "coursed", "stop_timeout", T_DURATION, "30s", 1, 600, NULL, S(stop_timeout),
      "on SIGTERM, in-flight SMTP sessions get this long before they are abandoned (and recovered at the "
      "next start)" },
    { "transport", "kind", T_ENUM, "smtp", 0, 0, "smtp|maildir", S(transport_kind), "smtp or maildir" },
    { "transport", "maildir", T_PATH, "/var/lib/coursed/outbox", 0, 0, NULL, S(maildir),
      "where kind = maildir writes" },
    { "smtp", "host", T_STRING, "localhost", 0, 0, NULL, S(smtp_host), "relay host name" },
    { "smtp", "port", T_INT, "25", 1, 65535, NULL, S(smtp_port), "relay port" },
    { "smtp", "helo", T_STRING, "", 0, 0, NULL, S(smtp_helo), "name sent in EHLO (default: domain)" },
    { "smtp", "user", T_STRING, "", 0, 0, NULL, S(smtp_user), "AUTH user name (empty: no AUTH)" },
    { "smtp", "password_file", T_PATH, "", 0, 0, NULL, S(smtp_password_file),
      "file holding the AUTH password" },
    { "smtp", "starttls", T_ENUM, "opportunistic", 0, 0, "off|opportunistic|required", S(smtp_starttls),
      "off, opportunistic or required" },
    { "smtp", "timeout", T_DURATION, "5m", 1, 3600, NULL, S(smtp_timeout),
      "timeout of the greeting and each command" },
    { "smtp", "messages_per_session", T_INT, "100", 1, 100000, NULL, S(smtp_per_session),
      "messages sent over one connection" },
    { "pacing", "late_grace", T_DURATION, "6h", 0, 365 * 86400, NULL, S(late_grace),
      "a missed slot is sent late only within this; otherwise it moves to the next slot" },
    { "pacing", "max_per_day", T_INT, "1", 1, 24, NULL, S(max_per_day),
      "most lessons of one course one subscriber gets in one local day" },
    { "pacing", "first_lesson", T_ENUM, "next-slot", 0, 0, "next-slot|immediately", S(first_lesson),
      "lesson 1 at the next slot (capped by the course's first_within) or immediately" },
    { "inbound", "maildir", T_PATH, "", 0, 0, NULL, S(inbound_maildir),
      "Maildir of incoming commands that coursed watches (empty: none)" },
    { "inbound", "scan_interval", T_DURATION, "60s", 1, 3600, NULL, S(inbound_scan),
      "full scan of the inbound Maildir besides inotify" },
    { "inbound", "replies_per_day", T_INT, "10", 1, 1000, NULL, S(replies_per_day),
      "automatic replies to one address in 24 hours" },
    { "inbound", "replies_per_hour", T_INT, "500", 1, 1000000, NULL, S(replies_per_hour),
      "automatic replies per hour, all addresses together" },
    { "inbound", "confirm_per_hour", T_INT, "200", 1, 1000000, NULL, S(confirm_per_hour),
      "confirmation mails per hour, all addresses together" },
    { "inbound", "confirm_ttl", T_DURATION, "72h", 3600, 30 * 86400, NULL, S(confirm_ttl),
      "confirmation links and replies expire after this" },
    { "http", "listen", T_STRING, "127.0.0.1:8025", 0, 0, NULL, S(http_listen),
      "address:port of the pages, several separated by commas, IPv6 as [::1]:8025 (empty: off)" },
    { "http", "metrics_allow", T_STRING, "127.0.0.0/8, ::1", 0, 0, NULL, S(http_metrics_allow),
      "client addresses or networks (CIDR, comma-separated) that may read /metrics (empty: nobody)" },
    { "http", "connections", T_INT, "64", 1, 10000, NULL, S(http_connections),
      "connections to the pages at once, all clients together" },
    { "http", "connections_per_ip", T_INT, "8", 1, 10000, NULL, S(http_connections_per_ip),
      "connections to the pages at once from one client address" },
    { "http", "header_timeout", T_DURATION, "10s", 1, 600, NULL, S(http_header_timeout),
      "a request's headers must arrive within this, however slowly its bytes trickle in" },
    { "http", "posts_per_minute", T_INT, "30", 1, 100000, NULL, S(http_posts_per_minute),
      "form posts one client address may make in a minute (over it: 429)" },
    { "http", "signup_per_ip_per_hour", T_INT, "5", 1, 100000, NULL, S(signup_per_ip_per_hour),
      "signup form posts one IP address may make per hour; more are dropped with the same page" },
    { "http", "signup_per_hour", T_INT, "100", 1, 1000000, NULL, S(signup_per_hour),
      "signup form posts per hour, all addresses together" },
    { "http", "record_ip", T_ENUM, "false", 0, 0, "false|true", S(record_ip),
      "keep the IP address and user agent of a signup in its consent record" },
    { "smtp", "sessions", T_INT, "4", 1, 32, NULL, S(smtp_sessions),
      "SMTP sessions at once, each in its own thread" },
    { "smtp", "relays", T_STRING, "", 0, 0, NULL, S(smtp_relays),
      "fallback relays, host:port separated by commas, tried when the one before is down" },
    { "smtp", "ca_file", T_PATH, "", 0, 0, NULL, S(smtp_ca_file),
      "CA certificates to verify the relay's STARTTLS certificate (empty: the system's)" },
    { "delivery", "rate_per_second", T_INT, "0", 0, 1000000, NULL, S(rate_per_second),
      "most messages per second (0: no limit)" },
    { "delivery", "rate_per_hour", T_INT, "0", 0, 100000000, NULL, S(rate_per_hour),
      "most messages per hour (0: no limit)" },
    { "delivery", "batch", T_INT, "500", 1, 100000, NULL, S(batch), "deliveries claimed per tick" },
    { "delivery", "retry_first", T_DURATION, "5m", 1, 86400, NULL, S(retry_first),
      "first retry after a temporary failure" },
    { "delivery", "retry_max", T_DURATION, "4h", 1, 7 * 86400, NULL, S(retry_max),
      "longest interval between retries" },
    { "delivery", "give_up", T_DURATION, "4d", 60, 30 * 86400, NULL, S(give_up),
      "a delivery still failing after this fails for good" },
};
#undef S

const char *config_default_path(const char *cli)
{
    if (cli && *cli)
        return cli;
    const char *env = g_getenv("COURSED_CONFIG");
    if (env && *env)
        return env;
    return "/etc/coursed/coursed.conf";
}

gboolean config_parse_duration(const char *text, gint64 *secs)
{
    if (!text || !*text)
        return FALSE;
    char *end = NULL;
    guint64 n = g_ascii_strtoull(text, &end, 10);
    if (end == text || n > G_MAXINT32)
        return FALSE;
    gint64 mult = 1;
    if (*end) {
        switch (*end) {
        case 's': mult = 1; break;
        case 'm': mult = 60; break;
        case 'h': mult = 3600; break;
        case 'd': mult = 86400; break;
        case 'w': mult = 7 * 86400; break;
        default: return FALSE;
        }
        if (end[1])
            return FALSE;
    }
    *secs = (gint64)n * mult;
    return TRUE;
}

/* Returns "file:line" of the key (group, key) of kf's file, from the line
 * table read_lines() built, or the file alone; g_free(). */
static char *where(GHashTable *lines, const char *path, const char *group, const char *key)
{
    char *id = g_strconcat(group, "\n", key, NULL);
    int line = GPOINTER_TO_INT(g_hash_table_lookup(lines, id));
    g_free(id);
    return line > 0 ? g_strdup_printf("%s:%d", path, line) : g_strdup(path);
}

/* Reads path into a text GKeyFile can load, and fills lines with the line
 * number of each "group\nkey" (GKeyFile keeps none). Full-line comments
 * starting with ';' (the other INI convention) become '#' comments, the
 * only kind GKeyFile knows. Returns NULL with err when the file cannot be
 * read; g_free(). */
static char *read_lines(const char *path, GHashTable *lines, GError **err)
{
    char *text = NULL;
    gsize len = 0;
    GError *e = NULL;
    if (!g_file_get_contents(path, &text, &len, &e)) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: %s", path, e->message);
        g_error_free(e);
        return NULL;
    }
    char *group = g_strdup("");
    int n = 0;
    for (char *p = text; p && *p;) {
        char *eol = strchr(p, '\n');
        n++;
        char *q = p;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q == ';')
            *q = '#';
        else if (*q == '[') {
            char *close = strchr(q, ']');
            if (close && (!eol || close < eol)) {
                g_free(group);
                group = g_strndup(q + 1, (gsize)(close - q - 1));
            }
        } else if (*q && *q != '#' && *q != '\n' && *q != '\r') {
            char *eq = strchr(q, '=');
            if (eq && (!eol || eq < eol)) {
                char *key = g_strstrip(g_strndup(q, (gsize)(eq - q)));
                char *id = g_strconcat(group, "\n", key, NULL);
                g_free(key);
                g_hash_table_replace(lines, id, GINT_TO_POINTER(n));
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    g_free(group);
    return text;
}

/* TRUE when value holds what can only be a comment pasted after it: a
 * '#' or ';' at its start or after a blank (a URL's "#fragment" has no
 * blank before it, so it stays a value). */
static gboolean has_inline_comment(const char *value)
{
    if (*value == '#' || *value == ';')
        return TRUE;
    for (const char *p = value; *p; p++)
        if ((*p == ' ' || *p == '\t') && (p[1] == '#' || p[1] == ';'))
            return TRUE;
    return FALSE;
}

static char *resolve_path(const char *dir, const char *value)
{
    if (!*value || g_path_is_absolute(value))
        return g_strdup(value);
    return g_build_filename(dir, value, NULL);
}

/* Store one value (from the file or the default) into cfg, checking it;
 * file is where it came from ("file:line"), for the error. */
static gboolean apply(struct config *cfg, const struct setting *s, const char *value, const char *file,
                      GError **err)
{
    void *field = (char *)cfg + s->offset;
    gint64 n = 0;
    switch (s->type) {
    case T_STRING:
        if (strpbrk(value, "\r\n")) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: [%s] %s: line breaks are not allowed", file,
                        s->group, s->key);
            return FALSE;
        }
        g_free(*(char **)field);
        *(char **)field = g_strdup(value);
        return TRUE;
    case T_PATH:
        g_free(*(char **)field);
        *(char **)field = resolve_path(cfg->dir, value);
        return TRUE;
    case T_ENUM: {
        gboolean ok = FALSE;
        char **choices = g_strsplit(s->choices, "|", -1);
        for (char **c = choices; *c; c++)
            if (strcmp(*c, value) == 0)
                ok = TRUE;
        g_strfreev(choices);
        if (!ok) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: [%s] %s: '%s' is not one of %s", file, s->group,
                        s->key, value, s->choices);
            return FALSE;
        }
        g_free(*(char **)field);
        *(char **)field = g_strdup(value);
        return TRUE;
    }
    case T_INT: {
        char *end = NULL;
        n = g_ascii_strtoll(value, &end, 10);
        if (!*value || *end) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: [%s] %s: '%s' is not a whole number", file,
                        s->group, s->key, value);
            return FALSE;
        }
        break;
    }
    case T_DURATION:
        if (!config_parse_duration(value, &n)) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "%s: [%s] %s: '%s' is not a duration (like 30s, 5m, 4h, 2d, 1w)", file, s->group,
                        s->key, value);
            return FALSE;
        }
        break;
    }
    if (n < s->min || n > s->max) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "%s: [%s] %s: %s is out of range (%" G_GINT64_FORMAT " to %" G_GINT64_FORMAT "%s)", file,
                    s->group, s->key, value, s->min, s->max, s->type == T_DURATION ? " seconds" : "");
        return FALSE;
    }
    *(gint64 *)field = n;
    return TRUE;
}

static const struct setting *find_setting(const char *group, const char *key)
{
    for (size_t i = 0; i < G_N_ELEMENTS(settings); i++)
        if (strcmp(settings[i].group, group) == 0 && strcmp(settings[i].key, key) == 0)
            return &settings[i];
    return NULL;
}

static gboolean group_known(const char *group)
{
    for (size_t i = 0; i < G_N_ELEMENTS(settings); i++)
        if (strcmp(settings[i].group, group) == 0)
            return TRUE;
    return FALSE;
}

/* A path the program cannot do without must not be empty: an empty one
 * would silently stand for the config's own folder. */
static gboolean require_path(GHashTable *lines, const char *path, const char *group, const char *key,
                             const char *value, GError **err)
{
    if (*value)
        return TRUE;
    char *at = where(lines, path, group, key);
    g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: [%s] %s: a path is required here (it is empty)", at,
                group, key);
    g_free(at);
    return FALSE;
}

/* An empty value that a default computed from another setting will fill
 * (the key beside the database, EHLO with the domain): its origin says so,
 * so that `config show` does not pin the derived value on the file's line. */
static void mark_derived(struct config *cfg, const char *group, const char *key, const char *value)
{
    const struct setting *s = find_setting(group, key);
    size_t idx = (size_t)(s - settings);
    if (*value || !cfg->origins[idx])
        return;
    char *note = g_strdup_printf("%s (empty: default, derived)", cfg->origins[idx]);
    g_free(cfg->origins[idx]);
    cfg->origins[idx] = note;
}

struct config *config_load(const char *path, GError **err)
{
    GKeyFile *kf = g_key_file_new();
    GError *e = NULL;
    struct config *cfg = NULL;
    char **groups = NULL;
    GHashTable *lines = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    char *text = read_lines(path, lines, err);
    if (!text)
        goto out;
    gboolean loaded = g_key_file_load_from_data(kf, text, (gsize)-1, G_KEY_FILE_NONE, &e);
    g_free(text);
    if (!loaded) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: %s", path, e->message);
        g_clear_error(&e);
        goto out;
    }
    cfg = g_new0(struct config, 1);
    char *abs = g_canonicalize_filename(path, NULL);
    cfg->path = abs;
    cfg->dir = g_path_get_dirname(abs);
    cfg->origins = g_new0(char *, G_N_ELEMENTS(settings) + 1);

    for (size_t i = 0; i < G_N_ELEMENTS(settings); i++)
        if (!apply(cfg, &settings[i], settings[i].def, "(built-in default)", err))
            goto fail;

    groups = g_key_file_get_groups(kf, NULL);
    for (char **g = groups; *g; g++) {
        if (!group_known(*g)) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: unknown section [%s]", path, *g);
            goto fail;
        }
        char **keys = g_key_file_get_keys(kf, *g, NULL, NULL);
        for (char **k = keys; k && *k; k++) {
            const struct setting *s = find_setting(*g, *k);
            if (!s) {
                char *at = where(lines, path, *g, *k);
                g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: [%s] %s: unknown key", at, *g, *k);
                g_free(at);
                g_strfreev(keys);
                goto fail;
            }
            char *v = g_key_file_get_string(kf, *g, *k, &e);
            if (!v) {
                g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: [%s] %s: %s", path, *g, *k, e->message);
                g_clear_error(&e);
                g_strfreev(keys);
                goto fail;
            }
            char *at = where(lines, path, *g, *k);
            g_strstrip(v);
            gboolean ok = TRUE;
            if (has_inline_comment(v)) {
                char *shown = g_utf8_strlen(v, -1) > 18 ? g_strdup_printf("%.15s...", v) : g_strdup(v);
                g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                            "%s: [%s] %s: inline comments are not allowed ('%s'); put the comment on its own "
                            "line",
                            at, *g, *k, shown);
                g_free(shown);
                ok = FALSE;
            }
            ok = ok && apply(cfg, s, v, at, err);
            g_free(v);
            if (ok) {
                size_t idx = (size_t)(s - settings);
                g_free(cfg->origins[idx]);
                cfg->origins[idx] = at;
            } else
                g_free(at);
            if (!ok) {
                g_strfreev(keys);
                goto fail;
            }
        }
        g_strfreev(keys);
    }
    if (!require_path(lines, path, "coursed", "database", cfg->database, err) ||
        !require_path(lines, path, "coursed", "courses", cfg->courses, err) ||
        !require_path(lines, path, "coursed", "templates", cfg->templates, err) ||
        (strcmp(cfg->transport_kind, "maildir") == 0 &&
         !require_path(lines, path, "transport", "maildir", cfg->maildir, err)))
        goto fail;
    if (!*cfg->domain || strpbrk(cfg->domain, " @<>\"")) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: [coursed] domain: '%s' is not a domain name", path,
                    cfg->domain);
        goto fail;
    }
    if (!g_str_has_prefix(cfg->base_url, "https://") && !g_str_has_prefix(cfg->base_url, "http://")) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "%s: [coursed] base_url: '%s' must start with https://",
                    path, cfg->base_url);
        goto fail;
    }
    if (*cfg->smtp_user && strcmp(cfg->smtp_starttls, "required") != 0) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "%s: [smtp] starttls: must be 'required' when [smtp] user is set, "
                    "or the password would cross the network in clear text",
                    path);
        goto fail;
    }
    if (*cfg->smtp_user && !*cfg->smtp_password_file) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "%s: [smtp] password_file: required when [smtp] user is set", path);
        goto fail;
    }
    mark_derived(cfg, "coursed", "secret_key", cfg->secret_key);
    mark_derived(cfg, "smtp", "helo", cfg->smtp_helo);
    if (!*cfg->secret_key) {
        char *dbdir = g_path_get_dirname(cfg->database);
        g_free(cfg->secret_key);
        cfg->secret_key = g_build_filename(dbdir, "secret.key", NULL);
        g_free(dbdir);
    }
    if (!*cfg->smtp_helo) {
        g_free(cfg->smtp_helo);
        cfg->smtp_helo = g_strdup(cfg->domain);
    }
    goto out;
fail:
    config_free(cfg);
    cfg = NULL;
out:
    g_strfreev(groups);
    g_key_file_free(kf);
    g_hash_table_unref(lines);
    return cfg;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < G_N_ELEMENTS(settings); i++) {
        const struct setting *s = &settings[i];
        if (s->type == T_STRING || s->type == T_PATH || s->type == T_ENUM)
            g_free(*(char **)((char *)cfg + s->offset));
    }
    if (cfg->origins)
        for (size_t i = 0; i < G_N_ELEMENTS(settings); i++)
            g_free(cfg->origins[i]);
    g_free(cfg->origins);
    g_free(cfg->path);
    g_free(cfg->dir);
    g_free(cfg);
}

void config_dump_defaults(GString *out)
{
    const char *group = NULL;
    for (size_t i = 0; i < G_N_ELEMENTS(settings); i++) {
        const struct setting *s = &settings[i];
        if (!group || strcmp(group, s->group) != 0) {
            g_string_append_printf(out, "%s[%s]\n", group ? "\n" : "", s->group);
            group = s->group;
        }
        g_string_append_printf(out, "# %s\n%s = %s\n", s->help, s->key, s->def);
    }
}

/* A duration as the file would say it: the largest unit that divides it. */
static char *format_duration(gint64 secs)
{
    static const struct {
        gint64 size;
        char unit;
    } units[] = { { 7 * 86400, 'w' }, { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' } };
    for (size_t i = 0; i < G_N_ELEMENTS(units); i++)
        if (secs > 0 && secs % units[i].size == 0)
            return g_strdup_printf("%" G_GINT64_FORMAT "%c", secs / units[i].size, units[i].unit);
    return g_strdup_printf("%" G_GINT64_FORMAT "s", secs);
}

static void entry_free(gpointer p)
{
    struct config_entry *e = p;
    g_free(e->value);
    g_free(e->origin);
    g_free(e);
}

GPtrArray *config_entries(const struct config *cfg)
{
    GPtrArray *out = g_ptr_array_new_with_free_func(entry_free);
    for (size_t i = 0; i < G_N_ELEMENTS(settings); i++) {
        const struct setting *s = &settings[i];
        const void *field = (const char *)cfg + s->offset;
        struct config_entry *e = g_new0(struct config_entry, 1);
        e->group = s->group;
        e->key = s->key;
        if (s->type == T_INT)
            e->value = g_strdup_printf("%" G_GINT64_FORMAT, *(const gint64 *)field);
        else if (s->type == T_DURATION)
            e->value = format_duration(*(const gint64 *)field);
        else
            e->value = g_strdup(*(char *const *)field);
        if (cfg->origins && cfg->origins[i])
            e->origin = g_strdup(cfg->origins[i]);
        else if ((s->type == T_STRING || s->type == T_PATH) && strcmp(e->value, s->def) != 0)
            /* an empty default filled in from another setting (the key
             * beside the database, EHLO with the domain) */
            e->origin = g_strdup("default (derived)");
        else
            e->origin = g_strdup("default");
        g_ptr_array_add(out, e);
    }
    return out;
}
