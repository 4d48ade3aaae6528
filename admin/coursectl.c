/* coursectl.c - the operator's tool: a table of commands over lib/ (like
 * OpenSMTPD's smtpctl). Each command parses its own options, calls one or
 * two lib/ functions and prints the result; no delivery or scheduling logic
 * lives here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "app.h"
#include "clock.h"
#include "command.h"
#include "inbound.h"
#include "compose.h"
#include "config.h"
#include "course.h"
#include "enroll.h"
#include "error.h"
#include "lint.h"
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
    if (!parse("course list", NULL, &argc, &argv, 0, 0))
        return EXIT_USAGE;
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
        rule.tz = enroll_zone(c, tz);
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
    GOptionEntry entries[] = {
        { "name", 0, 0, G_OPTION_ARG_FILENAME, &name, "Display name", "NAME" },
        { "tz", 0, 0, G_OPTION_ARG_FILENAME, &tz, "IANA time zone (default: the course's)", "ZONE" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("sub add EMAIL [--name NAME] [--tz ZONE]", entries, &argc, &argv, 1, 1))
        return EXIT_USAGE;
    GError *err = NULL;
    gint64 id = subscriber_add(ctl->app, argv[1], name, tz, "cli", ctl->now, &err);
    g_free(name);
    g_free(tz);
    if (id < 0)
        return fail(err);
    printf("added subscriber %" G_GINT64_FORMAT ": %s\n", id, argv[1]);
    return EXIT_OK;
}

static int cmd_sub_list(struct ctl *ctl, int argc, char **argv)
{
    if (!parse("sub list", NULL, &argc, &argv, 0, 0))
        return EXIT_USAGE;
    GError *err = NULL;
    GPtrArray *subs = store_sub_list(ctl->app->st, &err);
    if (!subs)
        return fail(err);
    printf("%-6s %-32s %-12s %-20s %s\n", "ID", "EMAIL", "STATUS", "ZONE", "NAME");
    for (guint i = 0; i < subs->len; i++) {
        struct sub_row *s = subs->pdata[i];
        printf("%-6" G_GINT64_FORMAT " %-32s %-12s %-20s %s\n", s->id, s->email, s->status,
               s->tz ? s->tz : "(course)", s->name);
    }
    g_ptr_array_unref(subs);
    return EXIT_OK;
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

static int cmd_status(struct ctl *ctl, int argc, char **argv)
{
    if (!parse("status EMAIL", NULL, &argc, &argv, 1, 1))
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
    printf("%s  name: %s  status: %s  zone: %s\n", s->email, *s->name ? s->name : "-", s->status,
           s->tz ? s->tz : "(course default)");
    if (es->len == 0)
        printf("  not enrolled in any course\n");
    for (guint i = 0; i < es->len; i++) {
        struct enrollment_row *e = es->pdata[i];
        const struct course *c = course_find(ctl->app->courses, e->course);
        int total = c ? c->n_lessons : 0;
        const char *tz = c ? enroll_zone(c, e->tz) : "UTC";
        printf("  %-16s %-10s %d/%d sent", e->course, e->state, e->lessons_sent, total);
        if (e->next_send_at > 0) {
            char *when = fmt_time(e->next_send_at, tz);
            printf("  next: lesson %d at %s", e->next_lesson, when);
            g_free(when);
        } else if (strcmp(e->state, "active") == 0) {
            printf("  lesson %d is being delivered", e->next_lesson);
        }
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
    gboolean ics = FALSE;
    GOptionEntry entries[] = {
        { "ics", 0, 0, G_OPTION_ARG_NONE, &ics, "Write an iCalendar file to stdout", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("schedule EMAIL [COURSE] [--ics]", entries, &argc, &argv, 1, 2))
        return EXIT_USAGE;
    GError *err = NULL;
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
        if (slots->len == 0)
            printf("%-16s %s\n", e->course,
                   strcmp(e->state, "paused") == 0 ? "paused until resumed" : e->state);
        const char *tz = enroll_zone(c, e->tz);
        for (guint k = 0; k < slots->len; k++) {
            gint64 t = g_array_index(slots, gint64, k);
            char *local = pace_format_local(t, tz), *utc = clock_format_utc(t);
            char *step = g_strdup_printf("%d/%d", first + (int)k, c->n_lessons);
            printf("%-16s %-5s %-26s %s\n", e->course, step, local, utc);
            g_free(step);
            g_free(local);
            g_free(utc);
        }
        g_array_free(slots, TRUE);
    }
out:
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

static const struct cmd commands[] = {
    { "init", cmd_init, APP_STORE | APP_CREATE, "", "create or upgrade the database" },
    { "course list", cmd_course_list, 0, "", "list the courses found in the courses folder" },
    { "course check", cmd_course_check, APP_CONFIG_ONLY, "[SLUG]", "check courses and templates; every problem as file:line" },
    { "course preview", cmd_course_preview, APP_KEY, "SLUG N [--to EMAIL] [--html|--text|--eml]", "write lesson N (or a system mail) as sent" },
    { "sub add", cmd_sub_add, APP_STORE, "EMAIL [--name N] [--tz ZONE]", "add a subscriber" },
    { "sub list", cmd_sub_list, APP_STORE, "", "list subscribers" },
    { "sub set", cmd_sub_set, APP_STORE, "EMAIL [--name N] [--tz ZONE]", "change a subscriber; a new zone re-plans future lessons" },
    { "enroll", cmd_enroll, APP_STORE | APP_KEY, "EMAIL COURSE [--no-welcome]", "start a course; the welcome mail carries its calendar" },
    { "pause", cmd_pause, APP_STORE, "EMAIL [COURSE] [--until TIME|--for DUR]", "pause deliveries (all courses unless COURSE)" },
    { "resume", cmd_resume, APP_STORE, "EMAIL [COURSE]", "resume at the next slot; no lesson is lost" },
    { "inbound", cmd_inbound, APP_STORE | APP_KEY, "[--dry-run] [--json] < MESSAGE", "handle one inbound mail (MTA pipe); exit 0 or 75", EX_TEMPFAIL },
    { "schedule", cmd_schedule, APP_STORE, "EMAIL [COURSE] [--ics]", "upcoming lessons, local and UTC, or as iCalendar" },
    { "status", cmd_status, APP_STORE, "EMAIL", "show a subscriber's courses and progress" },
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
