/* coursectl.c - the operator's tool: a table of commands over lib/ (like
 * OpenSMTPD's smtpctl). Each command parses its own options, calls one or
 * two lib/ functions and prints the result; no delivery or scheduling logic
 * lives here. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include "app.h"
#include "clock.h"
#include "command.h"
#include "inbound.h"
#include "compose.h"
#include "config.h"
#include "doctor.h"
#include "json.h"
#include "tick.h"
#include "transfer.h"
#include "course.h"
#include "schedule.h"
#include "enroll.h"
#include "error.h"
#include "lint.h"
#include "lifecycle.h"
#include "log.h"
#include "pace.h"
#include "store.h"
#include "subscriber.h"

enum exit_code {
    EXIT_OK = 0,
    EXIT_ERROR = 1,      /* failure; the message says why */
    EXIT_USAGE = 2,      /* bad command line */
    EXIT_NOT_FOUND = 3,  /* no such subscriber, course or delivery */
    EXIT_EXISTS = 4,     /* already exists */
    EXIT_TEMPFAIL = 75,  /* database busy or disk full: try again */
};
#define EX_TEMPFAIL 75
/* inbound's own usage errors must not bounce mail either */
#define EX_TEMPFAIL_OR_USAGE EX_TEMPFAIL

struct ctl {
    const char *config_path;
    struct app *app;
    gint64 now;
};

struct cmd {
    const char *name;         /* one or two words */
    int (*fn)(struct ctl *ctl, int argc, char **argv);
    int app_flags;            /* what the command needs opened */
    const char *args;
    const char *help;
    int setup_fail;           /* exit code when config or database cannot be opened; 0: by error */
};

static int fail(GError *err)
{
    int rc = EXIT_ERROR;
    if (err->domain == CD_ERROR) {
        switch (err->code) {
        case CD_ERR_NOT_FOUND: rc = EXIT_NOT_FOUND; break;
        case CD_ERR_EXISTS: rc = EXIT_EXISTS; break;
        case CD_ERR_BUSY: rc = EXIT_TEMPFAIL; break;
        case CD_ERR_INVALID: rc = EXIT_USAGE; break;
        }
    }
    fprintf(stderr, "coursectl: %s\n", err->message);
    g_error_free(err);
    return rc;
}

/* Argument vectors handed out by parse(); freed at exit. */
static GPtrArray *parsed_args;

/* Parse a command's own options; leaves positional args in argc/argv.
 * Option values are declared G_OPTION_ARG_FILENAME, which GLib passes
 * through unconverted: arguments are taken as UTF-8 (checked here) whatever
 * the locale, so a name like "Zoë" works under LANG=C, as in cron and CI. */
static gboolean parse(const char *usage, GOptionEntry *entries, int *argc, char ***argv,
                      int min_pos, int max_pos)
{
    GOptionContext *oc = g_option_context_new(usage);
    if (entries)
        g_option_context_add_main_entries(oc, entries, NULL);
    g_option_context_set_help_enabled(oc, TRUE);
    GError *err = NULL;
    char **strv = g_new0(char *, (gsize)*argc + 1);
    for (int i = 0; i < *argc; i++)
        strv[i] = g_strdup((*argv)[i]);
    gboolean ok = TRUE;
    for (int i = 0; i < *argc && ok; i++)
        ok = g_utf8_validate(strv[i], -1, NULL);
    if (!ok)
        fprintf(stderr, "coursectl: arguments must be UTF-8\n");
    else
        ok = g_option_context_parse_strv(oc, &strv, &err);
    if (!parsed_args)
        parsed_args = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    g_ptr_array_add(parsed_args, strv);
    *argc = (int)g_strv_length(strv);
    *argv = strv;
    if (err) {
        fprintf(stderr, "coursectl: %s\n", err->message);
        g_error_free(err);
    } else if (ok && (*argc - 1 < min_pos || *argc - 1 > max_pos)) {
        fprintf(stderr, "coursectl: usage: coursectl %s\n", usage);
        ok = FALSE;
    }
    g_option_context_free(oc);
    return ok;
}

static char *fmt_time(gint64 t, const char *tz)
{
    if (t <= 0)
        return g_strdup("-");
    char *local = pace_format_local(t, tz);
    char *utc = clock_format_utc(t);
    char *s = g_strdup_printf("%s (%s)", local, utc);
    g_free(local);
    g_free(utc);
    return s;
}

/* ---- output helpers: tables that fit 80 columns ---- */

/* Returns s cut to width characters (with an ellipsis); g_free(). */
static char *fit(const char *s, glong width)
{
    s = s ? s : "";
    if (g_utf8_strlen(s, -1) <= width)
        return g_strdup(s);
    char *cut = g_utf8_substring(s, 0, width - 1);
    char *out = g_strconcat(cut, "\u2026", NULL);
    g_free(cut);
    return out;
}

/* Prints s in a column of width characters (UTF-8 aware padding). */
static void col(const char *s, glong width)
{
    char *f = fit(s, width);
    printf("%s%*s", f, (int)(width - g_utf8_strlen(f, -1) + 1), "");
    g_free(f);
}

static gboolean utf8_terminal(void)
{
    const char *vars[] = { "LC_ALL", "LC_CTYPE", "LANG" };
    for (size_t i = 0; i < G_N_ELEMENTS(vars); i++) {
        const char *v = g_getenv(vars[i]);
        if (v && *v)
            return strstr(v, "UTF-8") || strstr(v, "utf8") || strstr(v, "UTF8") || strstr(v, "utf-8");
    }
    return FALSE;
}

static void sub_json(GString *o, const struct sub_row *s)
{
    g_string_append_c(o, '{');
    json_key(o, "id", TRUE);
    g_string_append_printf(o, "%" G_GINT64_FORMAT, s->id);
    json_key(o, "email", FALSE);
    json_string(o, s->email);
    json_key(o, "name", FALSE);
    json_string(o, s->name);
    json_key(o, "tz", FALSE);
    json_string(o, s->tz);
    json_key(o, "status", FALSE);
    json_string(o, state_name(ENT_SUB, s->status));
    json_key(o, "created_at", FALSE);
    char *t = clock_format_utc(s->created_at);
    json_string(o, t);
    g_free(t);
    g_string_append_c(o, '}');
}

/* ---- commands ---- */

static int cmd_init(struct ctl *ctl, int argc, char **argv)
{
    if (!parse("init", NULL, &argc, &argv, 0, 0))
        return EXIT_USAGE;
    printf("database %s is ready (schema version %d)\n", ctl->app->cfg->database,
           store_schema_version(ctl->app->st));
    return EXIT_OK;
}

static int cmd_course_list(struct ctl *ctl, int argc, char **argv)
{
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("course list [--json]", entries, &argc, &argv, 0, 0))
        return EXIT_USAGE;
    if (json) {
        GString *o = g_string_new("[");
        for (guint i = 0; i < ctl->app->courses->len; i++) {
            const struct course *c = ctl->app->courses->pdata[i];
            g_string_append(o, i ? ",\n {" : "{");
            json_key(o, "slug", TRUE);
            json_string(o, c->slug);
            json_key(o, "title", FALSE);
            json_string(o, c->title);
            json_key(o, "lessons", FALSE);
            g_string_append_printf(o, "%d", c->n_lessons);
            json_key(o, "schedule", FALSE);
            json_string(o, c->schedule);
            json_key(o, "time", FALSE);
            json_string(o, c->time);
            json_key(o, "timezone", FALSE);
            json_string(o, c->tz);
            json_key(o, "source", FALSE);
            json_string(o, c->source);
            g_string_append_c(o, '}');
        }
        printf("%s]\n", o->str);
        g_string_free(o, TRUE);
        return EXIT_OK;
    }
    printf("%-20s %-7s %-30s %s\n", "COURSE", "LESSONS", "SCHEDULE", "TITLE");
    for (guint i = 0; i < ctl->app->courses->len; i++) {
        const struct course *c = ctl->app->courses->pdata[i];
        char *sched = g_strdup_printf("%s %s %s", c->schedule, c->time, c->tz);
        printf("%-20s %-7d %-30s %s\n", c->slug, c->n_lessons, sched, c->title);
        g_free(sched);
    }
    return EXIT_OK;
}

static int cmd_course_check(struct ctl *ctl, int argc, char **argv)
{
    if (!parse("course check [SLUG]", NULL, &argc, &argv, 0, 1))
        return EXIT_USAGE;
    GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
    int n = lint_courses(ctl->app->cfg, argc > 1 ? argv[1] : NULL, problems);
    for (guint i = 0; i < problems->len; i++)
        fprintf(stderr, "%s\n", (char *)problems->pdata[i]);
    int rc = n < 0 ? EXIT_NOT_FOUND : problems->len > 0 ? EXIT_ERROR : EXIT_OK;
    if (rc == EXIT_OK)
        printf("%d course(s) ok\n", n);
    else
        fprintf(stderr, "coursectl: %u problem(s)\n", problems->len);
    g_ptr_array_unref(problems);
    return rc;
}

static int cmd_course_preview(struct ctl *ctl, int argc, char **argv)
{
    char *to = NULL, *name = NULL, *tz = NULL;
    gboolean html = FALSE, text = FALSE, eml = FALSE;
    GOptionEntry entries[] = {
        { "to", 0, 0, G_OPTION_ARG_FILENAME, &to, "Address to render for (default reader@example.org)", "EMAIL" },
        { "name", 0, 0, G_OPTION_ARG_FILENAME, &name, "Name to render for (default Reader)", "NAME" },
        { "tz", 0, 0, G_OPTION_ARG_FILENAME, &tz, "Zone for dates (default: the course's)", "ZONE" },
        { "html", 0, 0, G_OPTION_ARG_NONE, &html, "Write the text/html part", NULL },
        { "text", 0, 0, G_OPTION_ARG_NONE, &text, "Write the text/plain part", NULL },
        { "eml", 0, 0, G_OPTION_ARG_NONE, &eml, "Write the whole message (default)", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int rc = EXIT_USAGE;
    if (!parse("course preview SLUG N|confirm|welcome|goodbye|status|help|error [--to EMAIL] [--html|--text|--eml]",
               entries, &argc, &argv, 2, 2))
        goto out;
    if (html + text + eml > 1) {
        fprintf(stderr, "coursectl: choose one of --html, --text, --eml\n");
        goto out;
    }
    GError *err = NULL;
    const struct course *c = course_find(ctl->app->courses, argv[1]);
    if (!c) {
        g_set_error(&err, CD_ERROR, CD_ERR_NOT_FOUND, "no course '%s'", argv[1]);
        rc = fail(err);
        goto out;
    }
    if (tz && !pace_tz_valid(tz)) {
        g_set_error(&err, CD_ERROR, CD_ERR_INVALID, "unknown time zone '%s'", tz);
        rc = fail(err);
        goto out;
    }
    struct compose_to rcpt = { to ? to : "reader@example.org", name ? name : "Reader", tz, 0 };
    char *body = NULL;
    gsize len = 0;
    if (render_is_system(argv[2])) {
        struct compose_system_opts opts = { .list_headers = strcmp(argv[2], "confirm") != 0 };
        body = compose_system(ctl->app, argv[2], c, &rcpt, &opts, ctl->now, &len, &err);
        if (body && (html || text)) {
            fprintf(stderr, "coursectl: --html/--text are for lessons; system mails preview as --eml\n");
            g_free(body);
            goto out;
        }
    } else {
        char *end = NULL;
        long n = strtol(argv[2], &end, 10);
        if (*end || n < 1 || n > c->n_lessons) {
            g_set_error(&err, CD_ERROR, CD_ERR_NOT_FOUND, "course '%s' has lessons 1 to %d, not '%s'",
                        c->slug, c->n_lessons, argv[2]);
            rc = fail(err);
            goto out;
        }
        struct pace_rule rule = c->rule;
        rule.tz = schedule_zone(c, tz);
        gint64 next = n < c->n_lessons ? pace_next_slot(&rule, ctl->now, ctl->now) : -1;
        if (html || text) {
            char *t = NULL, *h = NULL;
            if (compose_lesson_parts(ctl->app, c, (int)n, &rcpt, next, &t, &h, &err)) {
                body = g_strdup(html ? h : t);
                len = strlen(body);
            }
            g_free(t);
            g_free(h);
        } else {
            body = compose_lesson(ctl->app, c, (int)n, &rcpt, ctl->now, next, NULL, &len, &err);
        }
    }
    if (!body) {
        rc = fail(err);
        goto out;
    }
    fwrite(body, 1, len, stdout);
    g_free(body);
    rc = EXIT_OK;
out:
    g_free(to);
    g_free(name);
    g_free(tz);
    return rc;
}

static int cmd_sub_add(struct ctl *ctl, int argc, char **argv)
{
    char *name = NULL, *tz = NULL;
    gboolean force = FALSE;
    GOptionEntry entries[] = {
        { "name", 0, 0, G_OPTION_ARG_FILENAME, &name, "Display name", "NAME" },
        { "tz", 0, 0, G_OPTION_ARG_FILENAME, &tz, "IANA time zone (default: the course's)", "ZONE" },
        { "force", 0, 0, G_OPTION_ARG_NONE, &force, "Add an address that was erased earlier", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("sub add EMAIL [--name NAME] [--tz ZONE] [--force]", entries, &argc, &argv, 1, 1))
        return EXIT_USAGE;
    GError *err = NULL;
    gint64 id = subscriber_add(ctl->app, argv[1], name, tz, force, "cli", ctl->now, &err);
    g_free(name);
    g_free(tz);
    if (id < 0)
        return fail(err);
    printf("added subscriber %" G_GINT64_FORMAT ": %s\n", id, argv[1]);
    return EXIT_OK;
}

static int cmd_sub_list(struct ctl *ctl, int argc, char **argv)
{
    char *status = NULL, *course = NULL, *since = NULL, *search = NULL;
    gint lesson = 0, limit = 0;
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        { "status", 0, 0, G_OPTION_ARG_FILENAME, &status, "pending, active, bounced or unsubscribed", "STATUS" },
        { "course", 0, 0, G_OPTION_ARG_FILENAME, &course, "Enrolled in COURSE", "COURSE" },
        { "lesson", 0, 0, G_OPTION_ARG_INT, &lesson, "Has received at least N lessons", "N" },
        { "since", 0, 0, G_OPTION_ARG_FILENAME, &since, "Created since DATE or DURATION ago (2026-03-01, 7d)", "WHEN" },
        { "search", 0, 0, G_OPTION_ARG_FILENAME, &search, "Address or name contains TEXT", "TEXT" },
        { "limit", 0, 0, G_OPTION_ARG_INT, &limit, "Show at most N", "N" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int rc = EXIT_USAGE;
    GError *err = NULL;
    const char *statuses[] = { "pending", "active", "bounced", "unsubscribed", NULL };
    if (!parse("sub list [--status S] [--course C] [--lesson N] [--since WHEN] [--search TEXT] [--limit N] [--json]",
               entries, &argc, &argv, 0, 0))
        goto out;
    if (status && !g_strv_contains(statuses, status)) {
        fprintf(stderr, "coursectl: --status must be pending, active, bounced or unsubscribed\n");
        goto out;
    }
    struct store_sub_filter f = { status ? state_parse(ENT_SUB, status) : -1, course, lesson, 0, search, limit };
    if (since) {
        gint64 secs;
        if (config_parse_duration(since, &secs))
            f.since = ctl->now - secs;
        else if (!clock_parse(since, &f.since, &err)) {
            rc = fail(err);
            goto out;
        }
    }
    GPtrArray *subs = store_sub_find(ctl->app->st, &f, &err);
    if (!subs) {
        rc = fail(err);
        goto out;
    }
    if (json) {
        GString *o = g_string_new("[");
        for (guint i = 0; i < subs->len; i++) {
            if (i)
                g_string_append(o, ",\n ");
            sub_json(o, subs->pdata[i]);
        }
        g_string_append(o, "]");
        printf("%s\n", o->str);
        g_string_free(o, TRUE);
    } else {
        printf("%-6s %-30s %-12s %-14s %s\n", "ID", "EMAIL", "STATUS", "ZONE", "NAME");
        for (guint i = 0; i < subs->len; i++) {
            struct sub_row *s = subs->pdata[i];
            printf("%-6" G_GINT64_FORMAT " ", s->id);
            col(s->email, 30);
            col(state_name(ENT_SUB, s->status), 12);
            col(s->tz ? s->tz : "(course)", 14);
            char *n = fit(s->name, 13);
            printf("%s\n", n);
            g_free(n);
        }
    }
    g_ptr_array_unref(subs);
    rc = EXIT_OK;
out:
    g_free(status);
    g_free(course);
    g_free(since);
    g_free(search);
    return rc;
}

static int cmd_enroll(struct ctl *ctl, int argc, char **argv)
{
    gboolean quiet = FALSE;
    GOptionEntry entries[] = {
        { "no-welcome", 0, 0, G_OPTION_ARG_NONE, &quiet, "Do not send the welcome mail", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("enroll EMAIL COURSE [--no-welcome]", entries, &argc, &argv, 2, 2))
        return EXIT_USAGE;
    GError *err = NULL;
    gint64 id = enroll_start(ctl->app, argv[1], argv[2], !quiet, "cli", ctl->now, &err);
    if (id < 0)
        return fail(err);
    printf("enrolled %s in %s (enrollment %" G_GINT64_FORMAT ")\n", argv[1], argv[2], id);
    return EXIT_OK;
}

static int cmd_sub_show(struct ctl *ctl, int argc, char **argv);

static int cmd_status(struct ctl *ctl, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--json"))
            return cmd_sub_show(ctl, argc, argv);   /* the same facts, as JSON */
    if (!parse("status EMAIL [--json]", NULL, &argc, &argv, 1, 1))
        return EXIT_USAGE;
    GError *err = NULL;
    struct sub_row *s = subscriber_get(ctl->app, argv[1], &err);
    if (!s)
        return fail(err);
    GPtrArray *es = store_enrollments_of(ctl->app->st, s->id, &err);
    if (!es) {
        store_sub_free(s);
        return fail(err);
    }
    printf("%s  name: %s  status: %s  zone: %s\n", s->email, *s->name ? s->name : "-", state_name(ENT_SUB, s->status),
           s->tz ? s->tz : "(course default)");
    if (es->len == 0)
        printf("  not enrolled in any course\n");
    for (guint i = 0; i < es->len; i++) {
        struct enrollment_row *e = es->pdata[i];
        const struct course *c = course_find(ctl->app->courses, e->course);
        int total = c ? c->n_lessons : 0;
        const char *tz = c ? schedule_zone(c, e->tz) : "UTC";
        printf("  %-16s %-10s %d/%d sent", e->course, state_name(ENT_ENR, e->state), e->lessons_sent, total);
        if (e->next_send_at > 0) {
            char *when = fmt_time(e->next_send_at, tz);
            printf("  next: lesson %d at %s", e->next_lesson, when);
            g_free(when);
        } else if (e->state == ENR_ACTIVE) {
            printf("  lesson %d is being delivered", e->next_lesson);
        }
        if ((e->state == ENR_PAUSED || e->state == ENR_STOPPED) && e->reason != REASON_NONE)
            printf("  (%s)", state_reason_text(e->reason));
        printf("\n");
    }
    g_ptr_array_unref(es);
    store_sub_free(s);
    return EXIT_OK;
}

static int cmd_pause(struct ctl *ctl, int argc, char **argv)
{
    char *until = NULL, *dur = NULL;
    GOptionEntry entries[] = {
        { "until", 0, 0, G_OPTION_ARG_FILENAME, &until, "Resume by itself at TIME (ISO 8601; a date is 00:00 UTC)", "TIME" },
        { "for", 0, 0, G_OPTION_ARG_FILENAME, &dur, "Resume by itself after DURATION (e.g. 10d, 2w)", "DURATION" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int rc = EXIT_USAGE;
    GError *err = NULL;
    gint64 end = 0;
    if (!parse("pause EMAIL [COURSE] [--until TIME | --for DURATION]", entries, &argc, &argv, 1, 2))
        goto out;
    if (until && dur) {
        fprintf(stderr, "coursectl: give --until or --for, not both\n");
        goto out;
    }
    if (until && !clock_parse(until, &end, &err)) {
        rc = fail(err);
        goto out;
    }
    if (dur) {
        gint64 secs;
        if (!config_parse_duration(dur, &secs) || secs <= 0) {
            fprintf(stderr, "coursectl: --for: '%s' is not a duration like 10d or 2w\n", dur);
            goto out;
        }
        end = ctl->now + secs;
    }
    int n = enroll_pause(ctl->app, argv[1], argc > 2 ? argv[2] : NULL, end, "cli", ctl->now, &err);
    if (n < 0) {
        rc = fail(err);
        goto out;
    }
    char *when = end ? fmt_time(end, "UTC") : g_strdup("resumed");
    printf("paused %d enrollment(s) of %s until %s\n", n, argv[1], when);
    g_free(when);
    rc = n > 0 ? EXIT_OK : EXIT_NOT_FOUND;
    if (n == 0)
        fprintf(stderr, "coursectl: %s has no active enrollment to pause\n", argv[1]);
out:
    g_free(until);
    g_free(dur);
    return rc;
}

static int cmd_resume(struct ctl *ctl, int argc, char **argv)
{
    if (!parse("resume EMAIL [COURSE]", NULL, &argc, &argv, 1, 2))
        return EXIT_USAGE;
    GError *err = NULL;
    int n = enroll_resume(ctl->app, argv[1], argc > 2 ? argv[2] : NULL, "cli", ctl->now, &err);
    if (n < 0)
        return fail(err);
    if (n == 0) {
        fprintf(stderr, "coursectl: %s has no paused enrollment\n", argv[1]);
        return EXIT_NOT_FOUND;
    }
    printf("resumed %d enrollment(s) of %s\n", n, argv[1]);
    return EXIT_OK;
}

static int cmd_sub_set(struct ctl *ctl, int argc, char **argv)
{
    char *name = NULL, *tz = NULL;
    GOptionEntry entries[] = {
        { "name", 0, 0, G_OPTION_ARG_FILENAME, &name, "New display name", "NAME" },
        { "tz", 0, 0, G_OPTION_ARG_FILENAME, &tz, "New IANA time zone ('' for the course default); re-plans future lessons", "ZONE" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int rc = EXIT_USAGE;
    if (!parse("sub set EMAIL [--name NAME] [--tz ZONE]", entries, &argc, &argv, 1, 1))
        goto out;
    if (!name && !tz) {
        fprintf(stderr, "coursectl: nothing to set: give --name or --tz\n");
        goto out;
    }
    GError *err = NULL;
    if (!subscriber_set(ctl->app, argv[1], name, tz, tz != NULL, "cli", ctl->now, &err)) {
        rc = fail(err);
        goto out;
    }
    printf("updated %s\n", argv[1]);
    rc = EXIT_OK;
out:
    g_free(name);
    g_free(tz);
    return rc;
}

static int cmd_schedule(struct ctl *ctl, int argc, char **argv)
{
    gboolean ics = FALSE, json = FALSE;
    GOptionEntry entries[] = {
        { "ics", 0, 0, G_OPTION_ARG_NONE, &ics, "Write an iCalendar file to stdout", NULL },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("schedule EMAIL [COURSE] [--ics|--json]", entries, &argc, &argv, 1, 2))
        return EXIT_USAGE;
    GError *err = NULL;
    GString *jo = NULL;
    const char *only = argc > 2 ? argv[2] : NULL;
    struct sub_row *s = subscriber_get(ctl->app, argv[1], &err);
    if (!s)
        return fail(err);
    GPtrArray *es = store_enrollments_of(ctl->app->st, s->id, &err);
    int rc = EXIT_OK;
    if (!es) {
        rc = fail(err);
        goto out;
    }
    for (guint i = es->len; i-- > 0;) {
        struct enrollment_row *e = es->pdata[i];
        if (only && strcmp(only, e->course) != 0)
            g_ptr_array_remove_index(es, i);
    }
    if (only && es->len == 0) {
        fprintf(stderr, "coursectl: %s is not enrolled in %s\n", s->email, only);
        rc = EXIT_NOT_FOUND;
        goto out;
    }
    if (ics) {
        char *cal = enroll_calendar(ctl->app, es, ctl->now, &err);
        if (!cal) {
            rc = fail(err);
            goto out;
        }
        fputs(cal, stdout);
        g_free(cal);
        goto out;
    }
    jo = json ? g_string_new("[") : NULL;
    if (!json)
        printf("%-16s %-5s %-26s %s\n", "COURSE", "STEP", "LOCAL TIME", "UTC");
    for (guint i = 0; i < es->len; i++) {
        struct enrollment_row *e = es->pdata[i];
        const struct course *c = course_find(ctl->app->courses, e->course);
        if (!c)
            continue;
        GArray *slots = g_array_new(FALSE, FALSE, sizeof(gint64));
        int first = 0;
        if (!enroll_upcoming(ctl->app, e, c, slots, &first, &err)) {
            g_array_free(slots, TRUE);
            rc = fail(err);
            goto out;
        }
        if (slots->len == 0 && !json)
            printf("%-16s %s\n", e->course,
                   e->state == ENR_PAUSED ? "paused until resumed" : state_name(ENT_ENR, e->state));
        const char *tz = schedule_zone(c, e->tz);
        for (guint k = 0; k < slots->len; k++) {
            gint64 t = g_array_index(slots, gint64, k);
            char *local = pace_format_local(t, tz), *utc = clock_format_utc(t);
            char *step = g_strdup_printf("%d/%d", first + (int)k, c->n_lessons);
            if (json) {
                g_string_append(jo, jo->len > 1 ? ",\n {" : "{");
                json_key(jo, "course", TRUE);
                json_string(jo, e->course);
                json_key(jo, "lesson", FALSE);
                g_string_append_printf(jo, "%d", first + (int)k);
                json_key(jo, "local", FALSE);
                json_string(jo, local);
                json_key(jo, "utc", FALSE);
                json_string(jo, utc);
                g_string_append_c(jo, '}');
            } else
                printf("%-16s %-5s %-26s %s\n", e->course, step, local, utc);
            g_free(step);
            g_free(local);
            g_free(utc);
        }
        g_array_free(slots, TRUE);
    }
    if (jo)
        printf("%s]\n", jo->str);
out:
    if (jo)
        g_string_free(jo, TRUE);
    if (es)
        g_ptr_array_unref(es);
    store_sub_free(s);
    return rc;
}

#define INBOUND_MAX (10 * 1024 * 1024)

static int cmd_inbound(struct ctl *ctl, int argc, char **argv)
{
    gboolean dry = FALSE, json = FALSE;
    char *sender = NULL, *recipient = NULL;
    GOptionEntry entries[] = {
        { "dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry, "Show how the message would be handled; change nothing", NULL },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the classification as JSON", NULL },
        { "sender", 'f', 0, G_OPTION_ARG_FILENAME, &sender, "Envelope sender, as the MTA passes it (${sender})", "ADDR" },
        { "recipient", 'r', 0, G_OPTION_ARG_FILENAME, &recipient, "Envelope recipient (${recipient})", "ADDR" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("inbound [--dry-run] [--json] [--sender ADDR] [--recipient ADDR] < MESSAGE", entries,
               &argc, &argv, 0, 0))
        return EX_TEMPFAIL_OR_USAGE;
    GByteArray *buf = g_byte_array_new();
    guint8 chunk[65536];
    size_t got;
    gboolean too_big = FALSE;
    while ((got = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        if (buf->len + got > INBOUND_MAX) {
            too_big = TRUE;
            break;
        }
        g_byte_array_append(buf, chunk, (guint)got);
    }
    int rc = EXIT_OK;
    char **slugs = course_slugs(ctl->app->courses);
    struct inbound *r = inbound_classify((const char *)buf->data, buf->len, ctl->app->cfg,
                                         (const char *const *)slugs, sender, recipient);
    if (too_big) {
        r->kind = INBOUND_IGNORED;
        g_free(r->reason);
        r->reason = g_strdup_printf("larger than %d bytes: ignored", INBOUND_MAX);
    }
    char *action = NULL;
    if (dry || too_big) {
        action = command_describe(r);
        if (too_big) {
            g_free(action);
            action = g_strdup("nothing");
        }
    } else {
        GError *err = NULL;
        if (!command_apply(ctl->app, r, "email", ctl->now, &action, &err)) {
            /* Could not be handled now: the MTA keeps the message and retries. */
            fprintf(stderr, "coursectl: inbound %s: %s\n", r->key, err->message);
            g_error_free(err);
            rc = EX_TEMPFAIL;
        }
    }
    if (rc == EXIT_OK) {
        if (json) {
            char *j = inbound_to_json(r, action);
            printf("%s\n", j);
            g_free(j);
        } else {
            printf("%s: %s%s%s: %s\n", inbound_kind_name(r->kind), r->command ? r->command : "",
                   r->course ? " " : "", r->course ? r->course : "", action ? action : r->reason);
        }
    }
    g_free(action);
    inbound_free(r);
    g_strfreev(slugs);
    g_byte_array_unref(buf);
    g_free(sender);
    g_free(recipient);
    return rc;
}

static int cmd_sub_show(struct ctl *ctl, int argc, char **argv)
{
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("sub show EMAIL [--json]", entries, &argc, &argv, 1, 1))
        return EXIT_USAGE;
    GError *err = NULL;
    struct sub_row *s = subscriber_get(ctl->app, argv[1], &err);
    if (!s)
        return fail(err);
    GPtrArray *es = store_enrollments_of(ctl->app->st, s->id, &err);
    if (!es) {
        store_sub_free(s);
        return fail(err);
    }
    if (json) {
        GString *o = g_string_new(NULL);
        sub_json(o, s);
        g_string_truncate(o, o->len - 1);
        json_key(o, "enrollments", FALSE);
        g_string_append_c(o, '[');
        for (guint i = 0; i < es->len; i++) {
            const struct enrollment_row *e = es->pdata[i];
            g_string_append(o, i ? ", {" : "{");
            json_key(o, "course", TRUE);
            json_string(o, e->course);
            json_key(o, "state", FALSE);
            json_string(o, state_name(ENT_ENR, e->state));
            json_key(o, "lessons_sent", FALSE);
            g_string_append_printf(o, "%d", e->lessons_sent);
            json_key(o, "next_lesson", FALSE);
            g_string_append_printf(o, "%d", e->next_lesson);
            json_key(o, "next_send_at", FALSE);
            char *t = e->next_send_at > 0 ? clock_format_utc(e->next_send_at) : NULL;
            json_string(o, t);
            g_free(t);
            g_string_append_c(o, '}');
        }
        g_string_append(o, "]}");
        printf("%s\n", o->str);
        g_string_free(o, TRUE);
    } else {
        char *created = clock_format_utc(s->created_at);
        printf("email:    %s\nname:     %s\nstatus:   %s\nzone:     %s\ncreated:  %s\n", s->email,
               *s->name ? s->name : "-", state_name(ENT_SUB, s->status), s->tz ? s->tz : "(course default)", created);
        g_free(created);
        for (guint i = 0; i < es->len; i++) {
            const struct enrollment_row *e = es->pdata[i];
            const struct course *c = course_find(ctl->app->courses, e->course);
            printf("course:   %s  %s  %d/%d sent\n", e->course, state_name(ENT_ENR, e->state), e->lessons_sent, c ? c->n_lessons : 0);
        }
    }
    g_ptr_array_unref(es);
    store_sub_free(s);
    return EXIT_OK;
}

static int cmd_sub_rm(struct ctl *ctl, int argc, char **argv)
{
    gboolean erase = FALSE;
    GOptionEntry entries[] = {
        { "erase", 0, 0, G_OPTION_ARG_NONE, &erase, "Right to erasure: delete every trace, keep a hashed suppression entry", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("sub rm EMAIL [--erase]", entries, &argc, &argv, 1, 1))
        return EXIT_USAGE;
    GError *err = NULL;
    if (!subscriber_remove(ctl->app, argv[1], erase, ctl->now, &err))
        return fail(err);
    printf("%s %s\n", erase ? "erased" : "removed", argv[1]);
    return EXIT_OK;
}

static int cmd_unenroll(struct ctl *ctl, int argc, char **argv)
{
    if (!parse("unenroll EMAIL COURSE", NULL, &argc, &argv, 2, 2))
        return EXIT_USAGE;
    GError *err = NULL;
    if (!enroll_stop(ctl->app, argv[1], argv[2], "cli", ctl->now, &err))
        return fail(err);
    printf("unenrolled %s from %s\n", argv[1], argv[2]);
    return EXIT_OK;
}

static int cmd_move(struct ctl *ctl, int argc, char **argv)
{
    gint to = 0;
    GOptionEntry entries[] = {
        { "to-lesson", 0, 0, G_OPTION_ARG_INT, &to, "The lesson to send next", "N" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("move EMAIL COURSE --to-lesson N", entries, &argc, &argv, 2, 2))
        return EXIT_USAGE;
    if (to <= 0) {
        fprintf(stderr, "coursectl: --to-lesson N is required (N >= 1)\n");
        return EXIT_USAGE;
    }
    GError *err = NULL;
    if (!enroll_move(ctl->app, argv[1], argv[2], to, "cli", ctl->now, &err))
        return fail(err);
    printf("%s: next lesson of %s is %d\n", argv[1], argv[2], to);
    return EXIT_OK;
}

static void progress_bar(gint64 done, gint64 total, void *arg)
{
    (void)arg;
    if (total <= 0) {
        fprintf(stderr, "\rchecking rows: %" G_GINT64_FORMAT "   ", done);
        return;
    }
    int width = 40, filled = (int)(done * width / total), pct = (int)(done * 100 / total);
    gboolean u = utf8_terminal();
    GString *bar = g_string_new(NULL);
    for (int i = 0; i < width; i++)
        g_string_append(bar, i < filled ? (u ? "\u2588" : "#") : (u ? "\u2591" : "."));
    fprintf(stderr, "\rimporting [%s] %3d%% %" G_GINT64_FORMAT "/%" G_GINT64_FORMAT, bar->str, pct, done, total);
    g_string_free(bar, TRUE);
}

static int cmd_import(struct ctl *ctl, int argc, char **argv)
{
    gboolean dry = FALSE, force = FALSE;
    GOptionEntry entries[] = {
        { "dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry, "Check every row, write nothing", NULL },
        { "force", 0, 0, G_OPTION_ARG_NONE, &force, "Import addresses erased earlier", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("import FILE.csv [--dry-run] [--force]", entries, &argc, &argv, 1, 1))
        return EXIT_USAGE;
    GError *err = NULL;
    struct transfer_stats st;
    GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
    gboolean tty = isatty(STDERR_FILENO);
    gboolean ok = transfer_import(ctl->app, argv[1], dry, force, ctl->now, tty ? progress_bar : NULL, NULL,
                                  &st, problems, &err);
    if (tty)
        fprintf(stderr, "\n");
    for (guint i = 0; i < problems->len && i < 1000; i++)
        fprintf(stderr, "%s\n", (char *)problems->pdata[i]);
    if (problems->len > 1000)
        fprintf(stderr, "... and %u more bad rows\n", problems->len - 1000);
    g_ptr_array_unref(problems);
    if (!ok)
        return fail(err);
    if (dry)
        printf("dry run: %" G_GINT64_FORMAT " rows, %" G_GINT64_FORMAT " good, %" G_GINT64_FORMAT " bad; nothing written\n",
               st.rows, st.rows - st.bad, st.bad);
    else
        printf("imported: %" G_GINT64_FORMAT " rows, %" G_GINT64_FORMAT " added, %" G_GINT64_FORMAT
               " already there, %" G_GINT64_FORMAT " enrolled, %" G_GINT64_FORMAT " bad\n",
               st.rows, st.added, st.existing, st.enrolled, st.bad);
    return st.bad ? EXIT_ERROR : EXIT_OK;
}

static int cmd_export(struct ctl *ctl, int argc, char **argv)
{
    char *format = NULL, *output = NULL;
    GOptionEntry entries[] = {
        { "format", 0, 0, G_OPTION_ARG_FILENAME, &format, "csv (default) or json", "FORMAT" },
        { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output, "Write to FILE (default: stdout)", "FILE" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int rc = EXIT_USAGE;
    if (!parse("export [--format csv|json] [--output FILE]", entries, &argc, &argv, 0, 0))
        goto out;
    if (format && strcmp(format, "csv") && strcmp(format, "json")) {
        fprintf(stderr, "coursectl: --format must be csv or json\n");
        goto out;
    }
    FILE *f = output ? fopen(output, "w") : stdout;
    if (!f) {
        fprintf(stderr, "coursectl: %s: %s\n", output, g_strerror(errno));
        rc = EXIT_ERROR;
        goto out;
    }
    GError *err = NULL;
    gboolean ok = transfer_export(ctl->app, f, format && !strcmp(format, "json"), &err);
    if ((output && fclose(f) != 0) || (!output && fflush(f) != 0)) {
        if (ok)
            g_set_error(&err, CD_ERROR, CD_ERR_IO, "%s: %s", output ? output : "stdout", g_strerror(errno));
        ok = FALSE;
    }
    rc = ok ? EXIT_OK : fail(err);
out:
    g_free(format);
    g_free(output);
    return rc;
}

static int cmd_queue(struct ctl *ctl, int argc, char **argv)
{
    char *state = NULL;
    gboolean json = FALSE;
    gint limit = 50;
    GOptionEntry entries[] = {
        { "state", 0, 0, G_OPTION_ARG_FILENAME, &state, "queued, sending, deferred or failed", "STATE" },
        { "limit", 0, 0, G_OPTION_ARG_INT, &limit, "Show at most N (default 50; 0: all)", "N" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int rc = EXIT_USAGE;
    const char *states[] = { "queued", "sending", "deferred", "failed", NULL };
    if (!parse("queue [--state queued|sending|deferred|failed] [--limit N] [--json]", entries, &argc, &argv, 0, 0))
        goto out;
    if (state && !g_strv_contains(states, state)) {
        fprintf(stderr, "coursectl: --state must be queued, sending, deferred or failed\n");
        goto out;
    }
    GError *err = NULL;
    GPtrArray *q = store_queue_list(ctl->app->st, state ? state_parse(ENT_DLV, state) : -1, limit, &err);
    if (!q) {
        rc = fail(err);
        goto out;
    }
    if (json) {
        GString *o = g_string_new("[");
        for (guint i = 0; i < q->len; i++) {
            const struct delivery_row *d = q->pdata[i];
            g_string_append(o, i ? ",\n {" : "{");
            json_key(o, "id", TRUE);
            g_string_append_printf(o, "%" G_GINT64_FORMAT, d->id);
            json_key(o, "email", FALSE);
            json_string(o, d->email);
            json_key(o, "course", FALSE);
            json_string(o, d->course);
            json_key(o, "lesson", FALSE);
            g_string_append_printf(o, "%d", d->lesson);
            json_key(o, "state", FALSE);
            json_string(o, state_name(ENT_DLV, d->state));
            json_key(o, "attempts", FALSE);
            g_string_append_printf(o, "%d", d->attempts);
            json_key(o, "next_attempt", FALSE);
            char *t = clock_format_utc(d->next_attempt_at);
            json_string(o, t);
            g_free(t);
            json_key(o, "last_code", FALSE);
            g_string_append_printf(o, "%d", d->last_code);
            json_key(o, "last_reply", FALSE);
            json_string(o, d->last_text);
            g_string_append_c(o, '}');
        }
        g_string_append(o, "]");
        printf("%s\n", o->str);
        g_string_free(o, TRUE);
    } else {
        printf("%-7s %-9s %-3s %-20s %-17s %s\n", "ID", "STATE", "TRY", "EMAIL", "NEXT ATTEMPT", "LAST REPLY");
        for (guint i = 0; i < q->len; i++) {
            const struct delivery_row *d = q->pdata[i];
            char *t = clock_format_utc(d->next_attempt_at);
            t[16] = '\0';
            printf("%-7" G_GINT64_FORMAT " %-9s %-3d ", d->id, state_name(ENT_DLV, d->state), d->attempts);
            col(d->email, 20);
            printf("%-17s ", t);
            char *reply = fit(d->last_text ? d->last_text : "", 18);
            printf("%s\n", reply);
            g_free(reply);
            g_free(t);
        }
        if (q->len == 0)
            printf("(empty)\n");
    }
    g_ptr_array_unref(q);
    rc = EXIT_OK;
out:
    g_free(state);
    return rc;
}

static int cmd_retry(struct ctl *ctl, int argc, char **argv)
{
    gboolean all = FALSE;
    GOptionEntry entries[] = {
        { "all-failed", 0, 0, G_OPTION_ARG_NONE, &all, "Retry every failed delivery", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("retry ID | retry --all-failed", entries, &argc, &argv, 0, 1))
        return EXIT_USAGE;
    if (all == (argc > 1)) {
        fprintf(stderr, "coursectl: usage: coursectl retry ID | retry --all-failed\n");
        return EXIT_USAGE;
    }
    gint64 id = 0;
    if (!all) {
        char *end = NULL;
        id = g_ascii_strtoll(argv[1], &end, 10);
        if (*end || id <= 0) {
            fprintf(stderr, "coursectl: '%s' is not a delivery id\n", argv[1]);
            return EXIT_USAGE;
        }
    }
    GError *err = NULL;
    int n = life_retry(ctl->app, id, ctl->now, &err);
    if (n < 0)
        return fail(err);
    if (n == 0 && !all) {
        fprintf(stderr, "coursectl: delivery %" G_GINT64_FORMAT " is not failed or deferred\n", id);
        return EXIT_NOT_FOUND;
    }
    printf("queued %d deliver%s again\n", n, n == 1 ? "y" : "ies");
    return EXIT_OK;
}

static int cmd_cancel(struct ctl *ctl, int argc, char **argv)
{
    if (!parse("cancel ID", NULL, &argc, &argv, 1, 1))
        return EXIT_USAGE;
    char *end = NULL;
    gint64 id = g_ascii_strtoll(argv[1], &end, 10);
    if (*end || id <= 0) {
        fprintf(stderr, "coursectl: '%s' is not a delivery id\n", argv[1]);
        return EXIT_USAGE;
    }
    GError *err = NULL;
    /* Cancelling skips the lesson: the course goes on with the next one. */
    if (!life_cancel(ctl->app, id, ctl->now, &err))
        return fail(err);
    printf("cancelled delivery %" G_GINT64_FORMAT "\n", id);
    return EXIT_OK;
}

static int cmd_stats(struct ctl *ctl, int argc, char **argv)
{
    gboolean json = FALSE, ascii = FALSE;
    char *since = NULL;
    GOptionEntry entries[] = {
        { "since", 0, 0, G_OPTION_ARG_FILENAME, &since, "Per day since DURATION ago (e.g. 7d)", "DURATION" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
        { "ascii", 0, 0, G_OPTION_ARG_NONE, &ascii, "Draw bars with # instead of Unicode blocks", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int rc = EXIT_USAGE;
    GError *err = NULL;
    if (!parse("stats [COURSE] [--since DURATION] [--json] [--ascii]", entries, &argc, &argv, 0, 1))
        goto out;
    gboolean u = !ascii && utf8_terminal();
    if (since) {
        gint64 secs;
        if (!config_parse_duration(since, &secs)) {
            fprintf(stderr, "coursectl: --since: '%s' is not a duration like 7d\n", since);
            goto out;
        }
        GArray *days = g_array_new(FALSE, FALSE, sizeof(struct store_day));
        if (!store_daily(ctl->app->st, ctl->now - secs, days, &err)) {
            g_array_free(days, TRUE);
            rc = fail(err);
            goto out;
        }
        GString *o = g_string_new(json ? "[" : NULL);
        if (!json)
            printf("%-10s %8s %8s %8s %8s\n", "DAY (UTC)", "SENT", "DEFERRED", "BOUNCED", "LEFT");
        for (guint i = 0; i < days->len; i++) {
            const struct store_day *d = &g_array_index(days, struct store_day, i);
            char *day = clock_format_utc(d->day);
            day[10] = '\0';
            if (json)
                g_string_append_printf(o, "%s{\"day\": \"%s\", \"sent\": %" G_GINT64_FORMAT ", \"deferred\": %"
                                       G_GINT64_FORMAT ", \"bounced\": %" G_GINT64_FORMAT ", \"unsubscribed\": %"
                                       G_GINT64_FORMAT "}", i ? ", " : "", day, d->sent, d->deferred, d->bounced,
                                       d->unsubscribed);
            else
                printf("%-10s %8" G_GINT64_FORMAT " %8" G_GINT64_FORMAT " %8" G_GINT64_FORMAT " %8" G_GINT64_FORMAT "\n",
                       day, d->sent, d->deferred, d->bounced, d->unsubscribed);
            g_free(day);
        }
        if (json)
            printf("%s]\n", o->str);
        g_string_free(o, TRUE);
        g_array_free(days, TRUE);
        rc = EXIT_OK;
        goto out;
    }
    if (argc > 1 && !course_find(ctl->app->courses, argv[1])) {
        g_set_error(&err, CD_ERROR, CD_ERR_NOT_FOUND, "no course '%s'", argv[1]);
        rc = fail(err);
        goto out;
    }
    GString *o = g_string_new(json ? "[" : NULL);
    gboolean first = TRUE;
    for (guint ci = 0; ci < ctl->app->courses->len; ci++) {
        const struct course *c = ctl->app->courses->pdata[ci];
        if (argc > 1 && strcmp(argv[1], c->slug) != 0)
            continue;
        GArray *reached = g_array_sized_new(FALSE, TRUE, sizeof(gint64), (guint)c->n_lessons);
        g_array_set_size(reached, (guint)c->n_lessons);
        struct store_funnel_states sc;
        if (!store_funnel(ctl->app->st, c->slug, reached, &sc, &err)) {
            g_array_free(reached, TRUE);
            g_string_free(o, TRUE);
            rc = fail(err);
            goto out;
        }
        gint64 total = sc.active + sc.paused + sc.completed + sc.unsubscribed + sc.bounced + sc.pending;
        if (json) {
            g_string_append_printf(o, "%s{\"course\": ", first ? "" : ", ");
            json_string(o, c->slug);
            g_string_append_printf(o, ", \"enrolled\": %" G_GINT64_FORMAT ", \"active\": %" G_GINT64_FORMAT
                                   ", \"paused\": %" G_GINT64_FORMAT ", \"completed\": %" G_GINT64_FORMAT
                                   ", \"unsubscribed\": %" G_GINT64_FORMAT ", \"bounced\": %" G_GINT64_FORMAT
                                   ", \"pending\": %" G_GINT64_FORMAT ", \"reached\": [",
                                   total, sc.active, sc.paused, sc.completed, sc.unsubscribed,
                                   sc.bounced, sc.pending);
            for (guint k = 0; k < reached->len; k++)
                g_string_append_printf(o, "%s%" G_GINT64_FORMAT, k ? ", " : "", g_array_index(reached, gint64, k));
            g_string_append(o, "]}");
        } else {
            printf("%s (%s): %" G_GINT64_FORMAT " enrolled\n  %" G_GINT64_FORMAT " active, %" G_GINT64_FORMAT
                   " paused, %" G_GINT64_FORMAT " completed, %" G_GINT64_FORMAT " unsubscribed, %" G_GINT64_FORMAT
                   " bounced, %" G_GINT64_FORMAT " pending\n  lesson: reached by, then lost before the next\n",
                   c->title, c->slug, total, sc.active, sc.paused, sc.completed,
                   sc.unsubscribed, sc.bounced, sc.pending);
            gint64 top = MAX(total, 1);
            for (guint k = 0; k < reached->len; k++) {
                gint64 n = g_array_index(reached, gint64, k);
                gint64 drop = k + 1 < reached->len ? n - g_array_index(reached, gint64, k + 1) : 0;
                int width = 40, eighths = (int)(n * width * 8 / top);
                GString *bar = g_string_new(NULL);
                static const char *parts[] = { "", "\u258f", "\u258e", "\u258d", "\u258c", "\u258b", "\u258a", "\u2589" };
                for (int b = 0; b < eighths / 8; b++)
                    g_string_append(bar, u ? "\u2588" : "#");
                if (u)
                    g_string_append(bar, parts[eighths % 8]);
                glong blen = g_utf8_strlen(bar->str, -1);
                printf("  %2u %s%*s %6" G_GINT64_FORMAT "  -%" G_GINT64_FORMAT "\n", k + 1, bar->str,
                       (int)(width - blen), "", n, drop);
                g_string_free(bar, TRUE);
            }
        }
        first = FALSE;
        g_array_free(reached, TRUE);
    }
    if (json)
        printf("%s]\n", o->str);
    g_string_free(o, TRUE);
    rc = EXIT_OK;
out:
    g_free(since);
    return rc;
}

static int cmd_log(struct ctl *ctl, int argc, char **argv)
{
    gboolean json = FALSE;
    gint limit = 50;
    GOptionEntry entries[] = {
        { "limit", 0, 0, G_OPTION_ARG_INT, &limit, "Show at most N events (default 50; 0: all)", "N" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("log [EMAIL] [--limit N] [--json]", entries, &argc, &argv, 0, 1))
        return EXIT_USAGE;
    GError *err = NULL;
    gint64 sub = 0;
    if (argc > 1) {
        struct sub_row *s = subscriber_get(ctl->app, argv[1], &err);
        if (!s)
            return fail(err);
        sub = s->id;
        store_sub_free(s);
    }
    GPtrArray *ev = store_events(ctl->app->st, sub, limit, &err);
    if (!ev)
        return fail(err);
    GString *o = g_string_new(json ? "[" : NULL);
    for (guint i = 0; i < ev->len; i++) {
        const struct event_row *e = ev->pdata[i];
        char *t = clock_format_utc(e->at);
        if (json) {
            g_string_append(o, i ? ",\n {" : "{");
            json_key(o, "at", TRUE);
            json_string(o, t);
            json_key(o, "email", FALSE);
            json_string(o, e->email);
            json_key(o, "event", FALSE);
            json_string(o, e->kind);
            json_key(o, "via", FALSE);
            json_string(o, e->via);
            json_key(o, "detail", FALSE);
            json_string(o, e->detail);
            json_key(o, "message_id", FALSE);
            json_string(o, e->message_id);
            g_string_append_c(o, '}');
        } else {
            printf("%s ", t);
            col(e->email, 20);
            col(e->kind, 18);
            col(e->via, 6);
            char *d = fit(e->detail, 12);
            printf("%s\n", d);
            g_free(d);
        }
        g_free(t);
    }
    if (json)
        printf("%s]\n", o->str);
    else if (ev->len == 0)
        printf("(no events)\n");
    g_string_free(o, TRUE);
    g_ptr_array_unref(ev);
    return EXIT_OK;
}

static int cmd_doctor(struct ctl *ctl, int argc, char **argv)
{
    if (!parse("doctor", NULL, &argc, &argv, 0, 0))
        return EXIT_USAGE;
    GPtrArray *checks = doctor_run(ctl->app);
    gboolean all = TRUE;
    for (guint i = 0; i < checks->len; i++) {
        const struct doctor_check *c = checks->pdata[i];
        printf("%-4s %-24s %s\n", c->ok ? "ok" : "FAIL", c->name, c->detail);
        if (!c->ok)
            printf("     fix: %s\n", c->fix);
        all &= c->ok;
    }
    g_ptr_array_unref(checks);
    return all ? EXIT_OK : EXIT_ERROR;
}

static int cmd_send_test(struct ctl *ctl, int argc, char **argv)
{
    if (!parse("send-test EMAIL COURSE N", NULL, &argc, &argv, 3, 3))
        return EXIT_USAGE;
    char *end = NULL;
    long n = strtol(argv[3], &end, 10);
    if (*end || n < 1) {
        fprintf(stderr, "coursectl: '%s' is not a lesson number\n", argv[3]);
        return EXIT_USAGE;
    }
    GError *err = NULL;
    if (!tick_send_test(ctl->app, argv[1], argv[2], (int)n, ctl->now, &err))
        return fail(err);
    printf("sent lesson %ld of %s to %s\n", n, argv[2], argv[1]);
    return EXIT_OK;
}

static const struct cmd commands[] = {
    { "init", cmd_init, APP_STORE | APP_CREATE, "", "create or upgrade the database" },
    { "course list", cmd_course_list, 0, "[--json]", "list the courses found in the courses folder" },
    { "course check", cmd_course_check, APP_CONFIG_ONLY, "[SLUG]", "check courses and templates; every problem as file:line" },
    { "course preview", cmd_course_preview, APP_KEY, "SLUG N [--to EMAIL] [--html|--text|--eml]", "write lesson N (or a system mail) as sent" },
    { "sub add", cmd_sub_add, APP_STORE | APP_KEY, "EMAIL [--name N] [--tz ZONE]", "add a subscriber" },
    { "sub show", cmd_sub_show, APP_STORE, "EMAIL [--json]", "show a subscriber and their courses" },
    { "sub list", cmd_sub_list, APP_STORE, "[--status S] [--course C] [--search T] ...", "list subscribers, filtered" },
    { "sub rm", cmd_sub_rm, APP_STORE | APP_KEY, "EMAIL [--erase]", "remove; --erase keeps only a hashed suppression entry" },
    { "sub set", cmd_sub_set, APP_STORE, "EMAIL [--name N] [--tz ZONE]", "change a subscriber; a new zone re-plans future lessons" },
    { "enroll", cmd_enroll, APP_STORE | APP_KEY, "EMAIL COURSE [--no-welcome]", "start a course; the welcome mail carries its calendar" },
    { "unenroll", cmd_unenroll, APP_STORE, "EMAIL COURSE", "stop a course for a subscriber (no goodbye mail)" },
    { "move", cmd_move, APP_STORE, "EMAIL COURSE --to-lesson N", "make lesson N the next one" },
    { "pause", cmd_pause, APP_STORE, "EMAIL [COURSE] [--until TIME|--for DUR]", "pause deliveries (all courses unless COURSE)" },
    { "resume", cmd_resume, APP_STORE, "EMAIL [COURSE]", "resume at the next slot; no lesson is lost" },
    { "import", cmd_import, APP_STORE | APP_KEY, "FILE.csv [--dry-run] [--force]", "import subscribers (email,name,tz,course,status)" },
    { "export", cmd_export, APP_STORE, "[--format csv|json] [--output FILE]", "export subscribers" },
    { "queue", cmd_queue, APP_STORE, "[--state S] [--json]", "deliveries waiting, deferred or failed" },
    { "retry", cmd_retry, APP_STORE, "ID | --all-failed", "send a failed or deferred delivery again now" },
    { "cancel", cmd_cancel, APP_STORE, "ID", "cancel a waiting delivery (its lesson is skipped)" },
    { "stats", cmd_stats, APP_STORE, "[COURSE] [--since 7d] [--json]", "funnel per course, or activity per day" },
    { "log", cmd_log, APP_STORE, "[EMAIL] [--json]", "the audit trail" },
    { "doctor", cmd_doctor, APP_CONFIG_ONLY, "", "check config, courses, database, key, relay, pages" },
    { "send-test", cmd_send_test, APP_TRANSPORT | APP_KEY, "EMAIL COURSE N", "send lesson N to any address now" },
    { "inbound", cmd_inbound, APP_STORE | APP_KEY, "[--dry-run] [--json] < MESSAGE", "handle one inbound mail (MTA pipe); exit 0 or 75", EX_TEMPFAIL },
    { "schedule", cmd_schedule, APP_STORE, "EMAIL [COURSE] [--ics|--json]", "upcoming lessons, local and UTC, or as iCalendar" },
    { "status", cmd_status, APP_STORE, "EMAIL [--json]", "show a subscriber's courses and progress" },
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: coursectl [-c FILE] [--now TIME] COMMAND [ARGS]\n\n"
            "Options:\n"
            "  -c, --config FILE  config file (default $COURSED_CONFIG, then /etc/coursed/coursed.conf)\n"
            "  --now TIME         act as if it were TIME (ISO 8601, e.g. 2026-03-02T09:00:00Z)\n"
            "  -h, --help         this help; COMMAND --help shows a command's options\n\n"
            "Commands:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
        char *left = g_strdup_printf("%s %s", commands[i].name, commands[i].args);
        fprintf(out, "  %-40s %s\n", left, commands[i].help);
        g_free(left);
    }
    fprintf(out,
            "\nExit status:\n"
            "  0 success, 1 error, 2 usage or invalid input, 3 not found,\n"
            "  4 already exists, 75 database busy or disk full (try again)\n");
}

int main(int argc, char **argv)
{
    struct ctl ctl = { 0 };
    const char *now_text = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc)
            ctl.config_path = argv[++i];
        else if (g_str_has_prefix(a, "--config="))
            ctl.config_path = a + 9;
        else if (strcmp(a, "--now") == 0 && i + 1 < argc)
            now_text = argv[++i];
        else if (g_str_has_prefix(a, "--now="))
            now_text = a + 6;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        } else {
            fprintf(stderr, "coursectl: unknown option %s\n", a);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    log_open("coursectl", TRUE, LOG_LVL_WARN);
    GError *err = NULL;
    if (now_text) {
        gint64 t;
        if (!clock_parse(now_text, &t, &err))
            return fail(err);
        clock_set_fake(t, 0);
    }
    ctl.now = clock_now();
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const struct cmd *cmd = NULL;
    int words = 0;
    for (size_t k = 0; k < G_N_ELEMENTS(commands) && !cmd; k++) {
        char **parts = g_strsplit(commands[k].name, " ", 2);
        int n = (int)g_strv_length(parts);
        gboolean match = i + n <= argc;
        for (int w = 0; match && w < n; w++)
            match = strcmp(parts[w], argv[i + w]) == 0;
        g_strfreev(parts);
        if (match) {
            cmd = &commands[k];
            words = n;
        }
    }
    if (!cmd) {
        fprintf(stderr, "coursectl: unknown command '%s'\n", argv[i]);
        usage(stderr);
        return EXIT_USAGE;
    }
    /* A dry run of inbound only reads courses: it works without a database. */
    int flags = cmd->app_flags;
    if (cmd->fn == cmd_inbound)
        for (int k = i + words; k < argc; k++)
            if (!strcmp(argv[k], "--dry-run") || !strcmp(argv[k], "-n"))
                flags = 0;
    ctl.app = app_open(config_default_path(ctl.config_path), flags, &err);
    if (!ctl.app) {
        if (cmd->setup_fail) {
            fprintf(stderr, "coursectl: %s\n", err->message);
            g_error_free(err);
            return cmd->setup_fail;
        }
        return fail(err);
    }
    /* The command sees its own name as argv[0] and its arguments after. */
    int cargc = argc - i - words + 1;
    char **cargv = g_new0(char *, (gsize)cargc + 1);
    cargv[0] = g_strdup(cmd->name);
    for (int k = 1; k < cargc; k++)
        cargv[k] = g_strdup(argv[i + words + k - 1]);
    int rc = cmd->fn(&ctl, cargc, cargv);
    g_strfreev(cargv);
    if (parsed_args)
        g_ptr_array_unref(parsed_args);
    app_free(ctl.app);
    return rc;
}
