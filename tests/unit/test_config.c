/* test_config.c - unit tests of lib/config.c: loading the INI file,
 * defaults, relative paths, durations, bounds and the error messages. */
#include <string.h>
#include <glib.h>
#include <glib/gstdio.h>
#include "config.h"
#include "error.h"

/* A scratch folder holding one config file per test. */
struct fx {
    char *dir;
    char *path; /* dir/coursed.conf */
};

static void fx_setup(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    f->dir = g_dir_make_tmp("coursed-config-XXXXXX", &err);
    g_assert_no_error(err);
    f->path = g_build_filename(f->dir, "coursed.conf", NULL);
}

static void rm_rf(const char *path)
{
    GDir *d = g_dir_open(path, 0, NULL);
    if (d) {
        const char *name;
        while ((name = g_dir_read_name(d))) {
            char *sub = g_build_filename(path, name, NULL);
            rm_rf(sub);
            g_free(sub);
        }
        g_dir_close(d);
        g_rmdir(path);
    } else {
        g_unlink(path);
    }
}

static void fx_teardown(struct fx *f, gconstpointer data)
{
    (void)data;
    rm_rf(f->dir);
    g_free(f->dir);
    g_free(f->path);
}

static void write_conf(struct fx *f, const char *text)
{
    GError *err = NULL;
    g_file_set_contents(f->path, text, -1, &err);
    g_assert_no_error(err);
}

/* Loads text as the config; returns the config or NULL with *err. */
static struct config *load_text(struct fx *f, const char *text, GError **err)
{
    write_conf(f, text);
    return config_load(f->path, err);
}

/* Asserts that text is rejected with CD_ERR_INVALID and that the message
 * names the file and contains every needle (NULL-terminated). */
static void assert_rejected(struct fx *f, const char *text, const char *const *needles)
{
    GError *err = NULL;
    struct config *cfg = load_text(f, text, &err);
    g_assert_null(cfg);
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    if (g_test_verbose())
        g_test_message("rejected as: %s", err->message);
    g_assert_nonnull(strstr(err->message, f->path));
    for (const char *const *n = needles; n && *n; n++) {
        if (!strstr(err->message, *n))
            g_test_message("missing '%s' in: %s", *n, err->message);
        g_assert_nonnull(strstr(err->message, *n));
    }
    g_error_free(err);
}

/* ---- defaults ---- */

static void test_defaults(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    struct config *cfg = load_text(f, "# nothing set\n", &err);
    g_assert_no_error(err);
    g_assert_nonnull(cfg);

    char *canon = g_canonicalize_filename(f->path, NULL);
    g_assert_cmpstr(cfg->path, ==, canon);
    char *canon_dir = g_path_get_dirname(canon);
    g_assert_cmpstr(cfg->dir, ==, canon_dir);
    g_free(canon_dir);
    g_free(canon);

    g_assert_cmpstr(cfg->database, ==, "/var/lib/coursed/state.db");
    g_assert_cmpstr(cfg->courses, ==, COURSED_SHAREDIR "/courses"); /* the install prefix's */
    g_assert_cmpstr(cfg->templates, ==, COURSED_SHAREDIR "/templates");
    g_assert_cmpstr(cfg->domain, ==, "courses.example.org");
    g_assert_cmpstr(cfg->base_url, ==, "https://courses.example.org");
    g_assert_cmpstr(cfg->secret_key, ==, "/var/lib/coursed/secret.key"); /* beside the database */
    g_assert_cmpint(cfg->tick_interval, ==, 10);
    g_assert_cmpstr(cfg->transport_kind, ==, "smtp");
    g_assert_cmpstr(cfg->maildir, ==, "/var/lib/coursed/outbox");
    g_assert_cmpstr(cfg->smtp_host, ==, "localhost");
    g_assert_cmpint(cfg->smtp_port, ==, 25);
    g_assert_cmpstr(cfg->smtp_helo, ==, "courses.example.org"); /* helo defaults to domain */
    g_assert_cmpstr(cfg->smtp_user, ==, "");
    g_assert_cmpstr(cfg->smtp_password_file, ==, "");
    g_assert_cmpstr(cfg->smtp_starttls, ==, "opportunistic");
    g_assert_cmpint(cfg->smtp_timeout, ==, 5 * 60);
    g_assert_cmpint(cfg->smtp_per_session, ==, 100);
    g_assert_cmpint(cfg->batch, ==, 500);
    g_assert_cmpint(cfg->retry_first, ==, 5 * 60);
    g_assert_cmpint(cfg->retry_max, ==, 4 * 3600);
    g_assert_cmpint(cfg->give_up, ==, 4 * 86400);
    config_free(cfg);

    /* A completely empty file loads too. */
    cfg = load_text(f, "", &err);
    g_assert_no_error(err);
    g_assert_nonnull(cfg);
    config_free(cfg);
}

static void test_values_override(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    struct config *cfg = load_text(f,
                                   "[coursed]\n"
                                   "domain = mail.example.net\n"
                                   "base_url = http://localhost:8080\n"
                                   "tick_interval = 1m\n"
                                   "[transport]\n"
                                   "kind = maildir\n"
                                   "[smtp]\n"
                                   "host =   relay.example.net   \n"
                                   "port = 587\n"
                                   "starttls = off\n"
                                   "messages_per_session = 1\n"
                                   "[delivery]\n"
                                   "batch = 100000\n",
                                   &err);
    g_assert_no_error(err);
    g_assert_nonnull(cfg);
    g_assert_cmpstr(cfg->domain, ==, "mail.example.net");
    g_assert_cmpstr(cfg->base_url, ==, "http://localhost:8080");
    g_assert_cmpint(cfg->tick_interval, ==, 60);
    g_assert_cmpstr(cfg->transport_kind, ==, "maildir");
    g_assert_cmpstr(cfg->smtp_host, ==, "relay.example.net"); /* stripped */
    g_assert_cmpint(cfg->smtp_port, ==, 587);
    g_assert_cmpstr(cfg->smtp_starttls, ==, "off");
    g_assert_cmpstr(cfg->smtp_helo, ==, "mail.example.net"); /* follows domain */
    g_assert_cmpint(cfg->smtp_per_session, ==, 1);
    g_assert_cmpint(cfg->batch, ==, 100000);
    config_free(cfg);

    cfg = load_text(f, "[smtp]\nhelo = mx1.example.net\n", &err);
    g_assert_no_error(err);
    g_assert_cmpstr(cfg->smtp_helo, ==, "mx1.example.net");
    config_free(cfg);
}

/* ---- paths ---- */

static void test_relative_paths(struct fx *f, gconstpointer data)
{
    (void)data;
    GError *err = NULL;
    struct config *cfg = load_text(f,
                                   "[coursed]\n"
                                   "database = state.db\n"
                                   "courses = ../courses\n"
                                   "templates = share/templates\n"
                                   "[transport]\n"
                                   "maildir = /srv/outbox\n"
                                   "[smtp]\n"
                                   "user = mailer\n"
                                   "starttls = required\n"
                                   "password_file = secrets/smtp.pw\n",
                                   &err);
    g_assert_no_error(err);
    g_assert_nonnull(cfg);
    g_assert_true(g_path_is_absolute(cfg->dir));

    char *want = g_build_filename(cfg->dir, "state.db", NULL);
    g_assert_cmpstr(cfg->database, ==, want);
    g_free(want);
    want = g_build_filename(cfg->dir, "../courses", NULL);
    g_assert_cmpstr(cfg->courses, ==, want);
    g_free(want);
    want = g_build_filename(cfg->dir, "share", "templates", NULL);
    g_assert_cmpstr(cfg->templates, ==, want);
    g_free(want);
    want = g_build_filename(cfg->dir, "secrets", "smtp.pw", NULL);
    g_assert_cmpstr(cfg->smtp_password_file, ==, want);
    g_free(want);
    want = g_build_filename(cfg->dir, "secret.key", NULL); /* follows the database */
    g_assert_cmpstr(cfg->secret_key, ==, want);
    g_free(want);
    g_assert_cmpstr(cfg->maildir, ==, "/srv/outbox"); /* absolute: kept */
    g_assert_cmpstr(cfg->smtp_user, ==, "mailer");

    config_free(cfg);
    cfg = load_text(f, "[coursed]\nsecret_key = keys/hmac.key\n", &err);
    g_assert_no_error(err);
    want = g_build_filename(cfg->dir, "keys", "hmac.key", NULL);
    g_assert_cmpstr(cfg->secret_key, ==, want);
    g_free(want);

    /* The folder is the config file's, which is f->dir (canonicalized). */
    char *canon = g_canonicalize_filename(f->dir, NULL);
    g_assert_cmpstr(cfg->dir, ==, canon);
    g_free(canon);
    config_free(cfg);
}

/* A config path given relative to the working directory still resolves
 * relative settings against the file's own (absolute) folder. */
static void test_relative_config_path(struct fx *f, gconstpointer data)
{
    (void)data;
    write_conf(f, "[coursed]\ndatabase = state.db\n");
    char *old = g_get_current_dir();
    char *parent = g_path_get_dirname(f->dir);
    char *base = g_path_get_basename(f->dir);
    char *rel = g_build_filename(base, "coursed.conf", NULL);
    g_assert_cmpint(g_chdir(parent), ==, 0);
    GError *err = NULL;
    struct config *cfg = config_load(rel, &err);
    g_assert_cmpint(g_chdir(old), ==, 0);
    g_assert_no_error(err);
    g_assert_nonnull(cfg);
    g_assert_true(g_path_is_absolute(cfg->path));
    g_assert_true(g_path_is_absolute(cfg->database));
    char *canon = g_canonicalize_filename(f->dir, NULL);
    char *want = g_build_filename(canon, "state.db", NULL);
    g_assert_cmpstr(cfg->database, ==, want);
    g_free(want);
    g_free(canon);
    config_free(cfg);
    g_free(rel);
    g_free(base);
    g_free(parent);
    g_free(old);
}

/* ---- durations in the file ---- */

static void test_durations_in_file(struct fx *f, gconstpointer data)
{
    (void)data;
    static const struct {
        const char *key_line;
        size_t offset;
        gint64 want;
    } ok[] = {
        { "[smtp]\ntimeout = 5m\n", G_STRUCT_OFFSET(struct config, smtp_timeout), 300 },
        { "[smtp]\ntimeout = 90\n", G_STRUCT_OFFSET(struct config, smtp_timeout), 90 },
        { "[smtp]\ntimeout = 45s\n", G_STRUCT_OFFSET(struct config, smtp_timeout), 45 },
        { "[delivery]\nretry_max = 24h\n", G_STRUCT_OFFSET(struct config, retry_max), 86400 },
        { "[delivery]\ngive_up = 2w\n", G_STRUCT_OFFSET(struct config, give_up), 14 * 86400 },
        { "[delivery]\ngive_up = 3d\n", G_STRUCT_OFFSET(struct config, give_up), 3 * 86400 },
        { "[coursed]\ntick_interval = 1h\n", G_STRUCT_OFFSET(struct config, tick_interval), 3600 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
        GError *err = NULL;
        struct config *cfg = load_text(f, ok[i].key_line, &err);
        g_assert_no_error(err);
        g_assert_nonnull(cfg);
        g_assert_cmpint(G_STRUCT_MEMBER(gint64, cfg, ok[i].offset), ==, ok[i].want);
        config_free(cfg);
    }

    static const struct {
        const char *text;
        const char *needle[3];
    } bad[] = {
        { "[coursed]\ntick_interval = 5x\n", { "tick_interval", "5x", NULL } },
        { "[smtp]\ntimeout = five\n", { "[smtp] timeout", "five", NULL } },
        { "[smtp]\ntimeout = 5 m\n", { "[smtp] timeout", NULL } },
        { "[smtp]\ntimeout = -5m\n", { "[smtp] timeout", NULL } },
        { "[delivery]\nretry_first = 1.5h\n", { "[delivery] retry_first", NULL } },
        { "[delivery]\nretry_first =\n", { "[delivery] retry_first", NULL } },
        /* syntactically fine, but out of bounds */
        { "[coursed]\ntick_interval = 0\n", { "tick_interval", "out of range", NULL } },
        { "[coursed]\ntick_interval = 2h\n", { "tick_interval", "out of range", NULL } },
        { "[delivery]\ngive_up = 30s\n", { "[delivery] give_up", "out of range", NULL } },
        { "[delivery]\nretry_max = 2w\n", { "[delivery] retry_max", "out of range", NULL } },
        { "[delivery]\ngive_up = 5w\n", { "[delivery] give_up", "out of range", NULL } },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++)
        assert_rejected(f, bad[i].text, bad[i].needle);
}

/* ---- unknown names ---- */

static void test_unknown_section(struct fx *f, gconstpointer data)
{
    (void)data;
    const char *n1[] = { "[smtpp]", "unknown section", NULL };
    assert_rejected(f, "[smtpp]\nhost = x\n", n1);
    const char *n2[] = { "[Coursed]", NULL };
    assert_rejected(f, "[Coursed]\ndomain = example.org\n", n2);
}

static void test_unknown_key(struct fx *f, gconstpointer data)
{
    (void)data;
    const char *n1[] = { "[smtp]", "hots", "unknown key", NULL };
    assert_rejected(f, "[smtp]\nhots = relay.example.net\n", n1);
    /* A key valid in another section is still unknown here. */
    const char *n2[] = { "[delivery]", "port", "unknown key", NULL };
    assert_rejected(f, "[delivery]\nport = 25\n", n2);
    const char *n3[] = { "[coursed]", "Database", NULL };
    assert_rejected(f, "[coursed]\nDatabase = x.db\n", n3);
}

/* ---- bounds and enums ---- */

static void test_port_range(struct fx *f, gconstpointer data)
{
    (void)data;
    static const char *bad[] = { "0", "70000", "65536", "-1", "abc", "25x", "" };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        char *text = g_strdup_printf("[smtp]\nport = %s\n", bad[i]);
        const char *needles[] = { "[smtp] port", NULL };
        assert_rejected(f, text, needles);
        g_free(text);
    }
    static const struct {
        const char *v;
        gint64 want;
    } good[] = {
        { "1", 1 }, { "25", 25 }, { "465", 465 }, { "65535", 65535 }, { " 2525 ", 2525 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        char *text = g_strdup_printf("[smtp]\nport = %s\n", good[i].v);
        GError *err = NULL;
        struct config *cfg = load_text(f, text, &err);
        g_assert_no_error(err);
        g_assert_cmpint(cfg->smtp_port, ==, good[i].want);
        config_free(cfg);
        g_free(text);
    }
    const char *n[] = { "[delivery] batch", "out of range", NULL };
    assert_rejected(f, "[delivery]\nbatch = 0\n", n);
}

static void test_enums(struct fx *f, gconstpointer data)
{
    (void)data;
    const char *n1[] = { "[transport] kind", "sendmail", "smtp|maildir", NULL };
    assert_rejected(f, "[transport]\nkind = sendmail\n", n1);
    const char *n2[] = { "[transport] kind", NULL };
    assert_rejected(f, "[transport]\nkind = SMTP\n", n2);
    assert_rejected(f, "[transport]\nkind =\n", n2);
    const char *n3[] = { "[smtp] starttls", "yes", NULL };
    assert_rejected(f, "[smtp]\nstarttls = yes\n", n3);

    static const char *kinds[] = { "smtp", "maildir" };
    for (size_t i = 0; i < G_N_ELEMENTS(kinds); i++) {
        char *text = g_strdup_printf("[transport]\nkind = %s\n", kinds[i]);
        GError *err = NULL;
        struct config *cfg = load_text(f, text, &err);
        g_assert_no_error(err);
        g_assert_cmpstr(cfg->transport_kind, ==, kinds[i]);
        config_free(cfg);
        g_free(text);
    }
}

/* ---- cross-field rules ---- */

static void test_auth_needs_tls(struct fx *f, gconstpointer data)
{
    (void)data;
    const char *n[] = { "[smtp] starttls", "required", NULL };
    /* default starttls is opportunistic */
    assert_rejected(f, "[smtp]\nuser = mailer\npassword_file = /etc/coursed/pw\n", n);
    assert_rejected(f, "[smtp]\nuser = mailer\npassword_file = /etc/coursed/pw\nstarttls = off\n", n);
    assert_rejected(f, "[smtp]\nuser = mailer\npassword_file = /etc/coursed/pw\nstarttls = opportunistic\n",
                    n);
    const char *n2[] = { "[smtp] password_file", NULL };
    assert_rejected(f, "[smtp]\nuser = mailer\nstarttls = required\n", n2);

    GError *err = NULL;
    struct config *cfg = load_text(
        f, "[smtp]\nuser = mailer\nstarttls = required\npassword_file = /etc/coursed/pw\n", &err);
    g_assert_no_error(err);
    g_assert_nonnull(cfg);
    g_assert_cmpstr(cfg->smtp_user, ==, "mailer");
    g_assert_cmpstr(cfg->smtp_starttls, ==, "required");
    config_free(cfg);

    /* Without a user any starttls mode is fine. */
    cfg = load_text(f, "[smtp]\nstarttls = off\n", &err);
    g_assert_no_error(err);
    config_free(cfg);
}

static void test_domain_and_url(struct fx *f, gconstpointer data)
{
    (void)data;
    const char *nd[] = { "[coursed] domain", NULL };
    assert_rejected(f, "[coursed]\ndomain =\n", nd);
    assert_rejected(f, "[coursed]\ndomain = exa mple.org\n", nd);
    assert_rejected(f, "[coursed]\ndomain = me@example.org\n", nd);
    assert_rejected(f, "[coursed]\ndomain = <example.org>\n", nd);
    const char *nu[] = { "[coursed] base_url", NULL };
    assert_rejected(f, "[coursed]\nbase_url = ftp://example.org\n", nu);
    assert_rejected(f, "[coursed]\nbase_url = example.org\n", nu);
    /* an escaped line break in a string */
    const char *nb[] = { "[smtp] host", "line break", NULL };
    assert_rejected(f, "[smtp]\nhost = relay\\nexample\n", nb);
}

static void test_bad_files(struct fx *f, gconstpointer data)
{
    (void)data;
    /* not INI */
    const char *none[] = { NULL };
    assert_rejected(f, "this is not an ini file\n", none);
    /* missing file: the message names it */
    GError *err = NULL;
    char *missing = g_build_filename(f->dir, "nope.conf", NULL);
    struct config *cfg = config_load(missing, &err);
    g_assert_null(cfg);
    g_assert_error(err, CD_ERROR, CD_ERR_INVALID);
    g_assert_nonnull(strstr(err->message, missing));
    g_error_free(err);
    g_free(missing);
    config_free(NULL); /* accepts NULL */
}

/* The documented defaults load as a config file of their own. */
static void test_dump_defaults_round_trip(struct fx *f, gconstpointer data)
{
    (void)data;
    GString *out = g_string_new(NULL);
    config_dump_defaults(out);
    g_assert_nonnull(strstr(out->str, "[coursed]"));
    g_assert_nonnull(strstr(out->str, "[transport]"));
    g_assert_nonnull(strstr(out->str, "[smtp]"));
    g_assert_nonnull(strstr(out->str, "[delivery]"));
    g_assert_nonnull(strstr(out->str, "port = 25"));
    GError *err = NULL;
    struct config *cfg = load_text(f, out->str, &err);
    g_assert_no_error(err);
    g_assert_nonnull(cfg);
    g_assert_cmpint(cfg->smtp_port, ==, 25);
    g_assert_cmpint(cfg->give_up, ==, 4 * 86400);
    g_assert_cmpstr(cfg->database, ==, "/var/lib/coursed/state.db");
    config_free(cfg);
    g_string_free(out, TRUE);
}

/* ---- config_default_path ---- */

static void test_default_path(void)
{
    char *saved = g_strdup(g_getenv("COURSED_CONFIG"));

    g_unsetenv("COURSED_CONFIG");
    g_assert_cmpstr(config_default_path(NULL), ==, "/etc/coursed/coursed.conf");
    g_assert_cmpstr(config_default_path(""), ==, "/etc/coursed/coursed.conf");
    g_assert_cmpstr(config_default_path("cli.conf"), ==, "cli.conf");

    g_setenv("COURSED_CONFIG", "/tmp/from-env.conf", TRUE);
    g_assert_cmpstr(config_default_path(NULL), ==, "/tmp/from-env.conf");
    g_assert_cmpstr(config_default_path(""), ==, "/tmp/from-env.conf");
    g_assert_cmpstr(config_default_path("/srv/cli.conf"), ==, "/srv/cli.conf"); /* cli wins */

    g_setenv("COURSED_CONFIG", "", TRUE); /* empty: as if unset */
    g_assert_cmpstr(config_default_path(NULL), ==, "/etc/coursed/coursed.conf");

    const char *cli = "x.conf";
    g_assert_true(config_default_path(cli) == cli); /* borrowed, not copied */

    if (saved)
        g_setenv("COURSED_CONFIG", saved, TRUE);
    else
        g_unsetenv("COURSED_CONFIG");
    g_free(saved);
}

/* ---- config_parse_duration ---- */

static void test_parse_duration(void)
{
    static const struct {
        const char *text;
        gboolean ok;
        gint64 secs;
    } cases[] = {
        { "0", TRUE, 0 },
        { "90", TRUE, 90 },
        { "90s", TRUE, 90 },
        { "5m", TRUE, 300 },
        { "24h", TRUE, 86400 },
        { "4d", TRUE, 4 * 86400 },
        { "2w", TRUE, 14 * 86400 },
        { "1w", TRUE, 604800 },
        { "2147483647", TRUE, 2147483647 },
        { "2147483647w", TRUE, (gint64)2147483647 * 604800 },
        { "2147483648", FALSE, 0 },
        { "99999999999999999999", FALSE, 0 },
        { "5x", FALSE, 0 },
        { "5M", FALSE, 0 },
        { "5H", FALSE, 0 },
        { "5mm", FALSE, 0 },
        { "5ms", FALSE, 0 },
        { "5 m", FALSE, 0 },
        { "5m ", FALSE, 0 },
        { "1.5h", FALSE, 0 },
        { "-5", FALSE, 0 },
        { "-5m", FALSE, 0 },
        { "m", FALSE, 0 },
        { "s", FALSE, 0 },
        { "", FALSE, 0 },
        { NULL, FALSE, 0 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        gint64 secs = -42;
        gboolean ok = config_parse_duration(cases[i].text, &secs);
        if (ok != cases[i].ok || (ok && secs != cases[i].secs))
            g_test_message("case '%s'", cases[i].text ? cases[i].text : "(null)");
        g_assert_cmpint(ok, ==, cases[i].ok);
        if (ok)
            g_assert_cmpint(secs, ==, cases[i].secs);
        else
            g_assert_cmpint(secs, ==, -42); /* untouched on failure */
    }
}

#define ADD(name, fn) g_test_add(name, struct fx, NULL, fx_setup, fn, fx_teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    ADD("/config/load/defaults", test_defaults);
    ADD("/config/load/values-override", test_values_override);
    ADD("/config/load/relative-paths", test_relative_paths);
    ADD("/config/load/relative-config-path", test_relative_config_path);
    ADD("/config/load/durations", test_durations_in_file);
    ADD("/config/load/unknown-section", test_unknown_section);
    ADD("/config/load/unknown-key", test_unknown_key);
    ADD("/config/load/port-range", test_port_range);
    ADD("/config/load/enums", test_enums);
    ADD("/config/load/auth-needs-tls", test_auth_needs_tls);
    ADD("/config/load/domain-and-url", test_domain_and_url);
    ADD("/config/load/bad-files", test_bad_files);
    ADD("/config/dump-defaults/round-trip", test_dump_defaults_round_trip);
    g_test_add_func("/config/default-path", test_default_path);
    g_test_add_func("/config/parse-duration", test_parse_duration);
    return g_test_run();
}
