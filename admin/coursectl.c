/* coursectl.c - the operator's tool: a table of commands over lib/ (like
 * OpenSMTPD's smtpctl). Each command parses its own options, calls one or
 * two lib/ functions and hands what they return, as records
 * (ctl_records.c), to the one renderer (ctl_render.c), which prints text or
 * JSON; no delivery or scheduling logic lives here. */
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
#include "ctl_records.h"
#include "ctl_course.h"
#include "version.h"
#include "tick.h"
#include "transfer.h"
#include "course.h"
#include "schedule.h"
#include "calendar.h"
#include "enroll.h"
#include "error.h"
#include "lint.h"
#include "message.h"
#include "note.h"
#include "lifecycle.h"
#include "log.h"
#include "pace.h"
#include "signup.h"
#include "store.h"
#include "subscriber.h"

enum exit_code {
    EXIT_OK = 0,
    EXIT_ERROR = 1,     /* failure; the message says why */
    EXIT_USAGE = 2,     /* bad command line */
    EXIT_NOT_FOUND = 3, /* no such subscriber, course or delivery */
    EXIT_EXISTS = 4,    /* already exists */
    EXIT_TEMPFAIL = 75, /* database busy or disk full: try again */
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
    const char *name; /* one or two words */
    int (*fn)(struct ctl *ctl, int argc, char **argv);
    int app_flags; /* what the command needs opened */
    const char *args;
    const char *help;
    int setup_fail; /* exit code when config or database cannot be opened; 0: by error */
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
static gboolean parse(const char *usage, GOptionEntry *entries, int *argc, char ***argv, int min_pos,
                      int max_pos)
{
    /* GOption writes "Usage: <prgname> [OPTION...] <parameters>": the
     * command's name is the program's, the rest of usage the parameters. */
    const char *name = (*argv)[0];
    char *params = g_strchug(g_strdup(g_str_has_prefix(usage, name) ? usage + strlen(name) : usage));
    char *prgname = g_strdup_printf("coursectl %s", name);
    g_set_prgname(prgname);
    g_free(prgname);
    GOptionContext *oc = g_option_context_new(params);
    g_free(params);
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

/* ---- commands ---- */

#define FORMAT(json) ((json) ? CTL_FMT_JSON : CTL_FMT_TEXT)

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
    struct ctl_out *o = ctl_out_new(stdout, FORMAT(json), &view_courses);
    for (guint i = 0; i < ctl->app->courses->len; i++)
        ctl_out_row(o, rec_course(ctl->app->courses->pdata[i]));
    ctl_out_end(o);
    return EXIT_OK;
}

/* course diff / plan: the course named, planned against its running
 * version (lib/version.c). */
static int course_version_cmd(struct ctl *ctl, int argc, char **argv, const char *usage, gboolean plan)
{
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse(usage, entries, &argc, &argv, 1, 1))
        return EXIT_USAGE;
    const struct course *c = course_find(ctl->app->courses, argv[1]);
    if (!c) {
        fprintf(stderr, "coursectl: no course '%s' in %s\n", argv[1], ctl->app->cfg->courses);
        return EXIT_NOT_FOUND;
    }
    GError *err = NULL;
    struct version_plan *p = version_plan(ctl->app, c, ctl->now, &err);
    if (!p)
        return fail(err);
    if (plan)
        ctl_show(stdout, FORMAT(json), &view_version_plan, rec_version_plan(p, c->tz));
    else
        ctl_show(stdout, FORMAT(json), &view_version_diff, rec_version_diff(p));
    version_plan_free(p);
    return EXIT_OK;
}

static int cmd_course_diff(struct ctl *ctl, int argc, char **argv)
{
    return course_version_cmd(ctl, argc, argv, "course diff SLUG [--json]", FALSE);
}

static int cmd_course_plan(struct ctl *ctl, int argc, char **argv)
{
    return course_version_cmd(ctl, argc, argv, "course plan SLUG [--json]", TRUE);
}

static int cmd_course_history(struct ctl *ctl, int argc, char **argv)
{
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("course history SLUG [--json]", entries, &argc, &argv, 1, 1))
        return EXIT_USAGE;
    GError *err = NULL;
    GPtrArray *vs = store_versions(ctl->app->st, argv[1], &err);
    if (!vs)
        return fail(err);
    struct ctl_out *o = ctl_out_new(stdout, FORMAT(json), &view_versions);
    for (guint i = 0; i < vs->len; i++)
        ctl_out_row(o, rec_version(vs->pdata[i]));
    ctl_out_end(o);
    g_ptr_array_unref(vs);
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

/* One mail of a preview: the message as sent, its headers read back, and
 * its subject and parts. */
struct preview_mail {
    char *id;    /* "lesson-3", "confirm": the anchor of its section */
    char *label; /* "Lesson 3 of 5", "System mail: confirm" */
    char *eml;
    gsize len;
    struct message_in *in;
    struct compose_parts parts;
};

static void preview_mail_free(gpointer p)
{
    struct preview_mail *pm = p;
    g_free(pm->id);
    g_free(pm->label);
    g_free(pm->eml);
    message_in_free(pm->in);
    g_free(pm->parts.subject);
    g_free(pm->parts.text);
    g_free(pm->parts.html);
    g_free(pm);
}

/* Appends to slots (gint64) the instants of c's lessons for someone in
 * zone tz (NULL: the course's) who enrolls at t0, as the daemon places
 * them: the first slot (first_lesson, first_within), then each next one
 * (max_per_day), anchored at t0. */
static void course_slots(struct ctl *ctl, const struct course *c, const char *tz, gint64 t0, GArray *slots)
{
    struct pace_rule rule = schedule_rule(c, tz);
    gint64 first = schedule_first(ctl->app->cfg, c, tz, t0);
    if (first > 0)
        schedule_project(ctl->app->cfg, &rule, t0, first, 0, 1, c->n_lessons, slots);
}

/* Returns lesson n of c as sent to rcpt, or NULL with err: dated `date`,
 * announcing the next step at `next` (-1: the last step). */
static struct preview_mail *preview_lesson(struct ctl *ctl, const struct course *c, int n,
                                           const struct compose_to *rcpt, gint64 date, gint64 next,
                                           GError **err)
{
    struct preview_mail *pm = g_new0(struct preview_mail, 1);
    pm->id = g_strdup_printf("lesson-%d", n);
    pm->label = g_strdup_printf("Lesson %d of %d", n, c->n_lessons);
    pm->eml = compose_lesson(ctl->app, c, n, rcpt, date, next, NULL, &pm->len, err);
    if (!pm->eml ||
        !compose_lesson_parts(ctl->app, c, n, rcpt, next, &pm->parts.text, &pm->parts.html, err)) {
        preview_mail_free(pm);
        return NULL;
    }
    pm->parts.subject = g_strdup(course_lesson(c, n)->subject);
    return pm;
}

/* Returns system mail `which` of c as a real send fills it (lib/tick.c). */
static struct preview_mail *preview_system(struct ctl *ctl, const struct course *c, const char *which,
                                           const struct compose_to *rcpt, GError **err)
{
    struct preview_mail *pm = g_new0(struct preview_mail, 1);
    pm->id = g_strdup(which);
    pm->label = g_strdup_printf("System mail (%s)", which);
    pm->eml = tick_sample_system(ctl->app, which, c, rcpt, ctl->now, &pm->parts, &pm->len, err);
    if (!pm->eml) {
        preview_mail_free(pm);
        return NULL;
    }
    return pm;
}

/* Appends to mails what `which` names: lesson N, a system mail, or all
 * (lessons 1..N, then the system mails in the order a reader meets them).
 * Lesson N alone is dated now with the next slot after now as its next
 * step; in all, each lesson is dated at its slot for someone enrolling
 * now and names the slot of the one after it, as `course timeline`
 * shows them. */
static gboolean preview_collect(struct ctl *ctl, const struct course *c, const char *which,
                                const struct compose_to *rcpt, GPtrArray *mails, GError **err)
{
    gboolean all = !strcmp(which, "all");
    if (!all && !render_is_system(which)) {
        char *end = NULL;
        long n = strtol(which, &end, 10);
        if (*end || n < 1 || n > c->n_lessons) {
            g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "course '%s' has lessons 1 to %d, not '%s'", c->slug,
                        c->n_lessons, which);
            return FALSE;
        }
        struct preview_mail *pm = preview_lesson(ctl, c, (int)n, rcpt, ctl->now,
                                                 schedule_preview_next(c, rcpt->tz, (int)n, ctl->now), err);
        if (pm)
            g_ptr_array_add(mails, pm);
        return pm != NULL;
    }
    GArray *slots = g_array_new(FALSE, FALSE, sizeof(gint64));
    if (all)
        course_slots(ctl, c, rcpt->tz, ctl->now, slots);
    for (int n = 1; all && n <= c->n_lessons; n++) {
        guint k = (guint)n - 1;
        gint64 date = k < slots->len ? g_array_index(slots, gint64, k) : ctl->now;
        gint64 next = k + 1 < slots->len ? g_array_index(slots, gint64, k + 1) : -1;
        struct preview_mail *pm = preview_lesson(ctl, c, n, rcpt, date, next, err);
        if (!pm) {
            g_array_free(slots, TRUE);
            return FALSE;
        }
        g_ptr_array_add(mails, pm);
    }
    g_array_free(slots, TRUE);
    for (const char *const *w = tick_test_system_mails(); *w; w++) {
        if (!all && strcmp(*w, which) != 0)
            continue;
        struct preview_mail *pm = preview_system(ctl, c, *w, rcpt, err);
        if (!pm)
            return FALSE;
        g_ptr_array_add(mails, pm);
    }
    for (guint i = 0; i < mails->len; i++) {
        struct preview_mail *pm = mails->pdata[i];
        pm->in = message_parse(pm->eml, pm->len, err);
        if (!pm->in)
            return FALSE;
    }
    return TRUE;
}

static const char *const preview_headers[] = { "Date",    "From",     "To",
                                               "Subject", "Reply-To", "List-Unsubscribe",
                                               NULL };

static void html_escaped(FILE *out, const char *s)
{
    char *e = g_markup_escape_text(s ? s : "", -1);
    fputs(e, out);
    g_free(e);
}

/* Every mail of mails as one HTML document: each in a section with its
 * headers, its own HTML inside an iframe's srcdoc (a document of its own,
 * so no mail's styles reach another or the page). */
static void preview_page(FILE *out, const struct course *c, const struct compose_to *rcpt, GPtrArray *mails)
{
    fputs(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
        out);
    html_escaped(out, c->title);
    fputs(
        ": every mail, as sent</title>\n<style>\n"
        "  body { margin: 0; padding: 16px; background: #e9e6e1; font-family: sans-serif; color: #222; }\n"
        "  .mail { max-width: 760px; margin: 0 auto 32px; background: #fff; border: 1px solid #ccc; "
        "border-radius: 6px; padding: 12px 16px; }\n"
        "  .mail h2 { font-size: 18px; margin: 4px 0 8px; }\n"
        "  .headers { font-size: 13px; margin: 0 0 12px; overflow-wrap: anywhere; }\n"
        "  .headers dt { float: left; clear: left; width: 9em; color: #666; }\n"
        "  .headers dd { margin: 0 0 2px 9em; }\n"
        "  iframe { width: 100%; height: 900px; border: 1px solid #ddd; }\n"
        "</style>\n</head>\n<body>\n<h1>",
        out);
    html_escaped(out, c->title);
    fprintf(out, "</h1>\n<p>Every mail of the course <code>%s</code>, in order, as ", c->slug);
    html_escaped(out, rcpt->email);
    fputs(" would receive it. Links carry the token <code>" COMPOSE_PREVIEW_TOKEN
          "</code>, which works nowhere.</p>\n<nav>\n<ol>\n",
          out);
    for (guint i = 0; i < mails->len; i++) {
        const struct preview_mail *pm = mails->pdata[i];
        fprintf(out, "<li><a href=\"#%s\">%s: ", pm->id, pm->label);
        html_escaped(out, pm->parts.subject);
        fputs("</a></li>\n", out);
    }
    fputs("</ol>\n</nav>\n", out);
    for (guint i = 0; i < mails->len; i++) {
        const struct preview_mail *pm = mails->pdata[i];
        fprintf(out, "<section class=\"mail\" id=\"%s\">\n<h2>%s: ", pm->id, pm->label);
        html_escaped(out, pm->parts.subject);
        fputs("</h2>\n<dl class=\"headers\">\n", out);
        for (const char *const *h = preview_headers; *h; h++) {
            const char *v = !strcmp(*h, "Subject") ? pm->in->subject : message_in_header(pm->in, *h);
            if (!v)
                continue;
            fprintf(out, "<dt>%s</dt><dd>", *h);
            html_escaped(out, v);
            fputs("</dd>\n", out);
        }
        fputs("</dl>\n<iframe sandbox=\"allow-same-origin\" title=\"", out);
        html_escaped(out, pm->parts.subject);
        fputs(
            "\" onload=\"this.style.height = (this.contentDocument.body.scrollHeight + 24) + "
            "'px'\" srcdoc=\"",
            out);
        html_escaped(out, pm->parts.html);
        fputs("\"></iframe>\n</section>\n", out);
    }
    fputs("</body>\n</html>\n", out);
}

/* Every mail's text part under a heading of its own and its headers. */
static void preview_texts(FILE *out, GPtrArray *mails)
{
    for (guint i = 0; i < mails->len; i++) {
        const struct preview_mail *pm = mails->pdata[i];
        if (mails->len > 1) {
            fprintf(out, "%s%s\n", i ? "\n\n" : "",
                    "==============================================================================");
            fprintf(out, "%s: %s\n", pm->label, pm->parts.subject);
            for (const char *const *h = preview_headers; *h; h++) {
                const char *v = !strcmp(*h, "Subject") ? pm->in->subject : message_in_header(pm->in, *h);
                if (v)
                    fprintf(out, "%s: %s\n", *h, v);
            }
            fprintf(out, "%s\n\n",
                    "==============================================================================");
        }
        fputs(pm->parts.text, out);
    }
}

static int cmd_course_preview(struct ctl *ctl, int argc, char **argv)
{
    char *to = NULL, *name = NULL, *tz = NULL;
    gboolean html = FALSE, text = FALSE, eml = FALSE;
    GOptionEntry entries[] = {
        { "to", 0, 0, G_OPTION_ARG_FILENAME, &to, "Address to render for (default reader@example.org)",
          "EMAIL" },
        { "name", 0, 0, G_OPTION_ARG_FILENAME, &name, "Name to render for (default none: \"Hello there,\")",
          "NAME" },
        { "tz", 0, 0, G_OPTION_ARG_FILENAME, &tz, "Zone for dates (default: the course's)", "ZONE" },
        { "html", 0, 0, G_OPTION_ARG_NONE, &html, "Write the text/html part (all: one page)", NULL },
        { "text", 0, 0, G_OPTION_ARG_NONE, &text, "Write the text/plain part (all: every one)", NULL },
        { "eml", 0, 0, G_OPTION_ARG_NONE, &eml, "Write the whole message (default)", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int rc = EXIT_USAGE;
    GPtrArray *mails = g_ptr_array_new_with_free_func(preview_mail_free);
    if (!parse("course preview SLUG N|all|confirm|welcome|status|help|error|complete|goodbye [--to EMAIL] "
               "[--name NAME] [--tz ZONE] [--html|--text|--eml]",
               entries, &argc, &argv, 2, 2))
        goto out;
    if (html + text + eml > 1) {
        fprintf(stderr, "coursectl: choose one of --html, --text, --eml\n");
        goto out;
    }
    if (!strcmp(argv[2], "all") && !html && !text) {
        fprintf(stderr, "coursectl: preview all writes --html (one page) or --text\n");
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
    struct compose_to rcpt = {
        .email = to ? to : "reader@example.org", .name = name, .tz = tz, .preview = TRUE
    };
    if (!preview_collect(ctl, c, argv[2], &rcpt, mails, &err)) {
        rc = fail(err);
        goto out;
    }
    if (!strcmp(argv[2], "all") && html)
        preview_page(stdout, c, &rcpt, mails);
    else if (text)
        preview_texts(stdout, mails);
    else if (html)
        fputs(((struct preview_mail *)mails->pdata[0])->parts.html, stdout);
    else
        fwrite(((struct preview_mail *)mails->pdata[0])->eml, 1,
               ((struct preview_mail *)mails->pdata[0])->len, stdout);
    rc = EXIT_OK;
out:
    g_ptr_array_unref(mails);
    g_free(to);
    g_free(name);
    g_free(tz);
    return rc;
}

/* The instant --start names: a day (the start of that local day in zone)
 * or an instant as --now takes it. */
static gboolean timeline_start(const char *text, const char *zone, gint64 *out, GError **err)
{
    int y, m, d;
    char rest;
    if (sscanf(text, "%4d-%2d-%2d%c", &y, &m, &d, &rest) == 3) {
        *out = pace_local_to_utc(zone, y, m, d, 0, 0);
        if (*out >= 0 && g_date_valid_dmy((GDateDay)d, (GDateMonth)m, (GDateYear)y))
            return TRUE;
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "--start: '%s' is not a day", text);
        return FALSE;
    }
    return clock_parse(text, out, err);
}

static int cmd_course_timeline(struct ctl *ctl, int argc, char **argv)
{
    char *start = NULL, *tz = NULL;
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        { "start", 0, 0, G_OPTION_ARG_FILENAME, &start,
          "The day (00:00 in the zone) or instant the subscriber starts (default now)", "DATE" },
        { "tz", 0, 0, G_OPTION_ARG_FILENAME, &tz, "The subscriber's zone (default: the course's)", "ZONE" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int rc = EXIT_USAGE;
    GError *err = NULL;
    if (!parse("course timeline SLUG [--start DATE] [--tz ZONE] [--json]", entries, &argc, &argv, 1, 1))
        goto out;
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
    const char *zone = schedule_zone(c, tz);
    gint64 t0 = ctl->now;
    if (start && !timeline_start(start, zone, &t0, &err)) {
        rc = fail(err);
        goto out;
    }
    GArray *slots = g_array_new(FALSE, FALSE, sizeof(gint64));
    course_slots(ctl, c, tz, t0, slots);
    struct ctl_out *o = ctl_out_new(stdout, FORMAT(json), &view_timeline);
    for (guint k = 0; k < slots->len; k++)
        ctl_out_row(o, rec_timeline(c, (int)k + 1, g_array_index(slots, gint64, k), zone));
    ctl_out_end(o);
    g_array_free(slots, TRUE);
    rc = EXIT_OK;
out:
    g_free(start);
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
        { "status", 0, 0, G_OPTION_ARG_FILENAME, &status, "pending, active, bounced or unsubscribed",
          "STATUS" },
        { "course", 0, 0, G_OPTION_ARG_FILENAME, &course, "Enrolled in COURSE", "COURSE" },
        { "lesson", 0, 0, G_OPTION_ARG_INT, &lesson, "Has received at least N lessons", "N" },
        { "since", 0, 0, G_OPTION_ARG_FILENAME, &since, "Created since DATE or DURATION ago (2026-03-01, 7d)",
          "WHEN" },
        { "search", 0, 0, G_OPTION_ARG_FILENAME, &search, "Address or name contains TEXT", "TEXT" },
        { "limit", 0, 0, G_OPTION_ARG_INT, &limit, "Show at most N", "N" },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    int rc = EXIT_USAGE;
    GError *err = NULL;
    const char *statuses[] = { "pending", "active", "bounced", "unsubscribed", NULL };
    if (!parse("sub list [--status S] [--course C] [--lesson N] [--since WHEN] [--search TEXT] [--limit N] "
               "[--json]",
               entries, &argc, &argv, 0, 0))
        goto out;
    if (status && !g_strv_contains(statuses, status)) {
        fprintf(stderr, "coursectl: --status must be pending, active, bounced or unsubscribed\n");
        goto out;
    }
    struct store_sub_filter f = {
        status ? state_parse(ENT_SUB, status) : -1, course, lesson, 0, search, limit
    };
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
    struct ctl_out *o = ctl_out_new(stdout, FORMAT(json), &view_subscribers);
    for (guint i = 0; i < subs->len; i++)
        ctl_out_row(o, rec_subscriber(subs->pdata[i]));
    ctl_out_end(o);
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
    gboolean quiet = FALSE, restart = FALSE;
    GOptionEntry entries[] = {
        { "no-welcome", 0, 0, G_OPTION_ARG_NONE, &quiet, "Do not send the welcome mail", NULL },
        { "restart", 0, 0, G_OPTION_ARG_NONE, &restart,
          "Already enrolled: start the course again from lesson 1", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("enroll EMAIL COURSE [--no-welcome] [--restart]", entries, &argc, &argv, 2, 2))
        return EXIT_USAGE;
    GError *err = NULL;
    if (restart) {
        if (!enroll_restart(ctl->app, argv[1], argv[2], "cli", ctl->now, &err))
            return fail(err);
        printf("%s starts %s again from lesson 1\n", argv[1], argv[2]);
        return EXIT_OK;
    }
    gint64 id = enroll_start(ctl->app, argv[1], argv[2], !quiet, "cli", ctl->now, &err);
    if (id < 0)
        return fail(err);
    printf("enrolled %s in %s (enrollment %" G_GINT64_FORMAT ")\n", argv[1], argv[2], id);
    return EXIT_OK;
}

/* Prints a subscriber with their enrollments: as JSON (sub show and
 * status write the same object), or in the text of view. */
static int show_subscriber(struct ctl *ctl, const char *email, gboolean json, const struct ctl_view *view)
{
    GError *err = NULL;
    struct sub_row *s = subscriber_get(ctl->app, email, &err);
    if (!s)
        return fail(err);
    GPtrArray *es = store_enrollments_of(ctl->app->st, s->id, &err);
    if (!es) {
        store_sub_free(s);
        return fail(err);
    }
    GPtrArray *cs = store_consents_of(ctl->app->st, s->id, &err);
    if (!cs) {
        g_ptr_array_unref(es);
        store_sub_free(s);
        return fail(err);
    }
    struct ctl_record *r = rec_subscriber_full(s, es, ctl->app->courses);
    rec_consents(r, cs);
    ctl_show(stdout, FORMAT(json), view, r);
    g_ptr_array_unref(cs);
    g_ptr_array_unref(es);
    store_sub_free(s);
    return EXIT_OK;
}

static int cmd_status(struct ctl *ctl, int argc, char **argv)
{
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON (as sub show --json)", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("status EMAIL [--json]", entries, &argc, &argv, 1, 1))
        return EXIT_USAGE;
    return show_subscriber(ctl, argv[1], json, &view_status);
}

static int cmd_pause(struct ctl *ctl, int argc, char **argv)
{
    char *until = NULL, *dur = NULL;
    GOptionEntry entries[] = {
        { "until", 0, 0, G_OPTION_ARG_FILENAME, &until,
          "Resume by itself at TIME (ISO 8601; a date is 00:00 UTC)", "TIME" },
        { "for", 0, 0, G_OPTION_ARG_FILENAME, &dur, "Resume by itself after DURATION (e.g. 10d, 2w)",
          "DURATION" },
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
    char *when = end ? ctl_when(end, "UTC") : g_strdup("resumed");
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
        { "tz", 0, 0, G_OPTION_ARG_FILENAME, &tz,
          "New IANA time zone ('' for the course default); re-plans future lessons", "ZONE" },
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

/* Appends the records of e's upcoming lessons (or the line saying why there
 * are none) to rows. */
static gboolean schedule_rows(struct ctl *ctl, const struct enrollment_row *e, GPtrArray *rows, GError **err)
{
    const struct course *c = course_find(ctl->app->courses, e->course);
    if (!c)
        return TRUE;
    GArray *slots = g_array_new(FALSE, FALSE, sizeof(gint64));
    GArray *lessons = g_array_new(FALSE, FALSE, sizeof(int));
    if (!calendar_upcoming(ctl->app, e, c, slots, lessons, err)) {
        g_array_free(slots, TRUE);
        g_array_free(lessons, TRUE);
        return FALSE;
    }
    if (slots->len == 0)
        g_ptr_array_add(rows,
                        rec_slot_note(e->course, e->state == ENR_PAUSED ? "paused until resumed"
                                                                        : state_name(ENT_ENR, e->state)));
    const char *tz = schedule_zone(c, e->tz);
    for (guint k = 0; k < slots->len; k++)
        g_ptr_array_add(rows,
                        rec_slot(c, g_array_index(lessons, int, k), g_array_index(slots, gint64, k), tz));
    g_array_free(slots, TRUE);
    g_array_free(lessons, TRUE);
    return TRUE;
}

/* Keeps the enrollments in course only (all when NULL). */
static void only_course(GPtrArray *es, const char *course)
{
    for (guint i = es->len; course && i-- > 0;) {
        const struct enrollment_row *e = es->pdata[i];
        if (strcmp(course, e->course) != 0)
            g_ptr_array_remove_index(es, i);
    }
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
    const char *only = argc > 2 ? argv[2] : NULL;
    struct sub_row *s = subscriber_get(ctl->app, argv[1], &err);
    if (!s)
        return fail(err);
    GPtrArray *es = store_enrollments_of(ctl->app->st, s->id, &err);
    GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)ctl_record_free);
    int rc = EXIT_OK;
    if (!es) {
        rc = fail(err);
        goto out;
    }
    only_course(es, only);
    if (only && es->len == 0) {
        fprintf(stderr, "coursectl: %s is not enrolled in %s\n", s->email, only);
        rc = EXIT_NOT_FOUND;
        goto out;
    }
    if (ics) {
        char *cal = calendar_of(ctl->app, es, ctl->now, &err);
        if (!cal) {
            rc = fail(err);
            goto out;
        }
        fputs(cal, stdout);
        g_free(cal);
        goto out;
    }
    for (guint i = 0; i < es->len && rc == EXIT_OK; i++)
        if (!schedule_rows(ctl, es->pdata[i], rows, &err))
            rc = fail(err);
    if (rc == EXIT_OK) {
        ctl_print(stdout, FORMAT(json), &view_schedule, rows);
        rows = NULL;
    }
out:
    if (rows)
        g_ptr_array_unref(rows);
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
        { "dry-run", 'n', 0, G_OPTION_ARG_NONE, &dry, "Show how the message would be handled; change nothing",
          NULL },
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the classification as JSON", NULL },
        { "sender", 'f', 0, G_OPTION_ARG_FILENAME, &sender,
          "Envelope sender, as the MTA passes it (${sender})", "ADDR" },
        { "recipient", 'r', 0, G_OPTION_ARG_FILENAME, &recipient, "Envelope recipient (${recipient})",
          "ADDR" },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("inbound [--dry-run] [--json] [--sender ADDR] [--recipient ADDR] < MESSAGE", entries, &argc,
               &argv, 0, 0))
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
    struct inbound_lesson *lessons = note_lessons(ctl->app);
    struct inbound *r = inbound_classify_lessons((const char *)buf->data, buf->len, ctl->app->cfg,
                                                 (const char *const *)slugs, lessons, sender, recipient);
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
    g_free(lessons);
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
    return show_subscriber(ctl, argv[1], json, &view_subscriber);
}

static int cmd_sub_rm(struct ctl *ctl, int argc, char **argv)
{
    gboolean erase = FALSE;
    GOptionEntry entries[] = {
        { "erase", 0, 0, G_OPTION_ARG_NONE, &erase,
          "Right to erasure: delete every trace, keep a hashed suppression entry", NULL },
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
    fprintf(stderr, "\rimporting [%s] %3d%% %" G_GINT64_FORMAT "/%" G_GINT64_FORMAT, bar->str, pct, done,
            total);
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
        printf("dry run: %" G_GINT64_FORMAT " rows, %" G_GINT64_FORMAT " good, %" G_GINT64_FORMAT
               " bad; nothing written\n",
               st.rows, st.rows - st.bad, st.bad);
    else
        printf("imported: %" G_GINT64_FORMAT " rows, %" G_GINT64_FORMAT " added, %" G_GINT64_FORMAT
               " already there, %" G_GINT64_FORMAT " enrolled, %" G_GINT64_FORMAT " bad\n",
               st.rows, st.added, st.existing, st.enrolled, st.bad);
    return st.bad ? EXIT_ERROR : EXIT_OK;
}

/* export --format json: store_export's rows come one per (subscriber,
 * enrollment), a subscriber's rows together; each subscriber becomes one
 * record with its enrollments, written as soon as the next one starts. */
struct export_json {
    struct ctl_out *out;
    struct ctl_record *sub; /* the subscriber being filled */
    char *email;            /* its address */
    struct store *st;       /* for the consent records */
    GError *err;            /* the first error reading them */
    GHashTable *notes;      /* email -> GPtrArray of its notes (borrowed struct note_row *) */
};

/* Ends the subscriber being filled: its consent records and its notes
 * (personal data too: they go with them), then the row. */
static void export_json_flush(struct export_json *x)
{
    if (!x->sub)
        return;
    struct sub_row *s = x->err ? NULL : store_sub_get(x->st, x->email, &x->err);
    GPtrArray *cs = s ? store_consents_of(x->st, s->id, &x->err) : NULL;
    if (cs) {
        rec_consents(x->sub, cs);
        g_ptr_array_unref(cs);
    }
    store_sub_free(s);
    ctl_list(x->sub, "notes");
    const GPtrArray *mine = g_hash_table_lookup(x->notes, x->email);
    for (guint i = 0; mine && i < mine->len; i++)
        rec_export_note(x->sub, mine->pdata[i]);
    ctl_out_row(x->out, x->sub);
    x->sub = NULL;
}

static void export_json_row(const struct store_export_row *r, void *arg)
{
    struct export_json *x = arg;
    if (!x->email || strcmp(x->email, r->email) != 0) {
        export_json_flush(x);
        x->sub = rec_export_subscriber(r);
        g_free(x->email);
        x->email = g_strdup(r->email);
    }
    rec_export_enrollment(x->sub, r);
}

static gboolean export_json(struct ctl *ctl, FILE *f, GError **err)
{
    GPtrArray *notes = store_notes(ctl->app->st, NULL, err);
    if (!notes)
        return FALSE;
    struct export_json x = { ctl_out_new(f, CTL_FMT_JSON, NULL),
                             NULL,
                             NULL,
                             ctl->app->st,
                             NULL,
                             g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                                   (GDestroyNotify)g_ptr_array_unref) };
    for (guint i = 0; i < notes->len; i++) {
        struct note_row *n = notes->pdata[i];
        GPtrArray *mine = g_hash_table_lookup(x.notes, n->email);
        if (!mine) {
            mine = g_ptr_array_new();
            g_hash_table_insert(x.notes, n->email, mine);
        }
        g_ptr_array_add(mine, n);
    }
    gboolean ok = store_export(ctl->app->st, export_json_row, &x, err);
    export_json_flush(&x);
    ctl_out_end(x.out);
    g_free(x.email);
    if (x.err) {
        if (ok)
            g_propagate_error(err, x.err);
        else
            g_clear_error(&x.err);
        ok = FALSE;
    }
    g_hash_table_destroy(x.notes);
    g_ptr_array_unref(notes);
    return ok;
}

static int cmd_replies(struct ctl *ctl, int argc, char **argv)
{
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("replies [COURSE] [--json]", entries, &argc, &argv, 0, 1))
        return EXIT_USAGE;
    GError *err = NULL;
    const char *slug = argc > 1 ? argv[1] : NULL;
    if (slug && !course_find(ctl->app->courses, slug)) {
        g_set_error(&err, CD_ERROR, CD_ERR_NOT_FOUND, "no course '%s'", slug);
        return fail(err);
    }
    GPtrArray *notes = store_notes(ctl->app->st, slug, &err);
    if (!notes)
        return fail(err);
    GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)ctl_record_free);
    for (guint i = 0; i < notes->len; i++)
        g_ptr_array_add(rows, rec_note(notes->pdata[i]));
    g_ptr_array_unref(notes);
    ctl_print(stdout, FORMAT(json), &view_notes, rows);
    return EXIT_OK;
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
    gboolean ok = format && !strcmp(format, "json") ? export_json(ctl, f, &err)
                                                    : transfer_export_csv(ctl->app, f, &err);
    int closed = output ? fclose(f) : fflush(f); /* one expression: GCC 12 misreads the || form */
    if (closed != 0) {
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

static int cmd_form(struct ctl *ctl, int argc, char **argv)
{
    GOptionEntry entries[] = { { NULL, 0, 0, 0, NULL, NULL, NULL } };
    if (!parse("form SLUG", entries, &argc, &argv, 1, 1))
        return EXIT_USAGE;
    GError *err = NULL;
    char *html = signup_snippet(ctl->app, argv[1], &err);
    if (!html)
        return fail(err);
    ctl_verbatim(stdout, html);
    g_free(html);
    return EXIT_OK;
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
    if (!parse("queue [--state queued|sending|deferred|failed] [--limit N] [--json]", entries, &argc, &argv,
               0, 0))
        goto out;
    if (state && !g_strv_contains(states, state)) {
        fprintf(stderr, "coursectl: --state must be queued, sending, deferred or failed\n");
        goto out;
    }
    GError *err = NULL;
    int st = state ? state_parse(ENT_DLV, state) : -1;
    GPtrArray *q = store_queue_list(ctl->app->st, st, limit, &err);
    GPtrArray *m = q ? store_outbox_list(ctl->app->st, st, limit, &err) : NULL;
    if (!m) {
        if (q)
            g_ptr_array_unref(q);
        rc = fail(err);
        goto out;
    }
    /* lessons and system mails (their kind says which), next attempt first */
    struct ctl_out *o = ctl_out_new(stdout, FORMAT(json), &view_queue);
    guint i = 0, j = 0;
    for (int n = 0; (i < q->len || j < m->len) && (limit <= 0 || n < limit); n++) {
        const struct delivery_row *d = i < q->len ? q->pdata[i] : NULL;
        const struct outbox_row *s = j < m->len ? m->pdata[j] : NULL;
        if (s && (!d || s->next_attempt_at < d->next_attempt_at))
            ctl_out_row(o, rec_mail(m->pdata[j++]));
        else
            ctl_out_row(o, rec_delivery(q->pdata[i++]));
    }
    ctl_out_end(o);
    g_ptr_array_unref(m);
    g_ptr_array_unref(q);
    rc = EXIT_OK;
out:
    g_free(state);
    return rc;
}

/* A queue id of a system mail (mN, as `queue` shows it): retry and cancel
 * act on lesson deliveries only, and say so. Returns TRUE if arg is one. */
static gboolean system_mail_ref(const char *cmd, const char *arg)
{
    if (arg[0] != 'm' || !g_ascii_isdigit(arg[1]))
        return FALSE;
    fprintf(stderr,
            "coursectl: %s is a system mail: %s acts on lesson deliveries only. A system mail is "
            "not resent or withdrawn by hand: it answered one moment (a request, a confirmation), "
            "and the person asking again makes a new one.\n",
            arg, cmd);
    return TRUE;
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
    if (!all && system_mail_ref("retry", argv[1]))
        return EXIT_USAGE;
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
    if (system_mail_ref("cancel", argv[1]))
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

/* stats --since: per UTC day since now - secs. */
static int stats_daily(struct ctl *ctl, gint64 secs, gboolean json)
{
    GError *err = NULL;
    GArray *days = g_array_new(FALSE, FALSE, sizeof(struct store_day));
    if (!store_daily(ctl->app->st, ctl->now - secs, days, &err)) {
        g_array_free(days, TRUE);
        return fail(err);
    }
    struct ctl_out *o = ctl_out_new(stdout, FORMAT(json), &view_days);
    for (guint i = 0; i < days->len; i++)
        ctl_out_row(o, rec_day(&g_array_index(days, struct store_day, i)));
    ctl_out_end(o);
    g_array_free(days, TRUE);
    return EXIT_OK;
}

/* stats [COURSE]: the funnel of every course, or only of slug. */
static int stats_funnel(struct ctl *ctl, const char *slug, gboolean json, gboolean utf8)
{
    GError *err = NULL;
    if (slug && !course_find(ctl->app->courses, slug)) {
        g_set_error(&err, CD_ERROR, CD_ERR_NOT_FOUND, "no course '%s'", slug);
        return fail(err);
    }
    GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify)ctl_record_free);
    for (guint ci = 0; ci < ctl->app->courses->len; ci++) {
        const struct course *c = ctl->app->courses->pdata[ci];
        if (slug && strcmp(slug, c->slug) != 0)
            continue;
        GArray *reached = g_array_sized_new(FALSE, TRUE, sizeof(gint64), (guint)c->n_lessons);
        g_array_set_size(reached, (guint)c->n_lessons);
        GArray *lost = g_array_sized_new(FALSE, TRUE, sizeof(gint64), (guint)c->n_lessons);
        g_array_set_size(lost, (guint)c->n_lessons);
        struct store_funnel_states sc;
        gboolean ok = store_funnel(ctl->app->st, c->slug, reached, &sc, &err) &&
                      store_funnel_lost(ctl->app->st, c->slug, lost, &err);
        GArray *notes = g_array_sized_new(FALSE, TRUE, sizeof(gint64), (guint)c->n_lessons);
        g_array_set_size(notes, (guint)c->n_lessons);
        ok = ok && store_note_counts(ctl->app->st, c->slug, notes, &err);
        if (ok) {
            struct ctl_record *fr = rec_funnel(c, reached, lost, &sc);
            rec_funnel_notes(fr, notes);
            g_ptr_array_add(rows, fr);
        }
        g_array_free(notes, TRUE);
        g_array_free(reached, TRUE);
        g_array_free(lost, TRUE);
        if (!ok) {
            g_ptr_array_unref(rows);
            return fail(err);
        }
    }
    struct ctl_view view = view_funnel(&utf8);
    ctl_print(stdout, FORMAT(json), &view, rows);
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
    gint64 secs = 0;
    if (!parse("stats [COURSE] [--since DURATION] [--json] [--ascii]", entries, &argc, &argv, 0, 1))
        goto out;
    if (since && !config_parse_duration(since, &secs)) {
        fprintf(stderr, "coursectl: --since: '%s' is not a duration like 7d\n", since);
        goto out;
    }
    if (since)
        rc = stats_daily(ctl, secs, json);
    else
        rc = stats_funnel(ctl, argc > 1 ? argv[1] : NULL, json, !ascii && utf8_terminal());
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
    struct ctl_out *o = ctl_out_new(stdout, FORMAT(json), &view_events);
    for (guint i = 0; i < ev->len; i++)
        ctl_out_row(o, rec_event(ev->pdata[i]));
    ctl_out_end(o);
    g_ptr_array_unref(ev);
    return EXIT_OK;
}

static int cmd_doctor(struct ctl *ctl, int argc, char **argv)
{
    if (!parse("doctor", NULL, &argc, &argv, 0, 0))
        return EXIT_USAGE;
    GPtrArray *checks = doctor_run(ctl->app);
    gboolean all = TRUE;
    struct ctl_out *o = ctl_out_new(stdout, CTL_FMT_TEXT, &view_checks);
    for (guint i = 0; i < checks->len; i++) {
        const struct doctor_check *c = checks->pdata[i];
        ctl_out_row(o, rec_check(c));
        if (!c->ok)
            ctl_out_row(o, rec_check_fix(c));
        all &= c->ok;
    }
    ctl_out_end(o);
    g_ptr_array_unref(checks);
    return all ? EXIT_OK : EXIT_ERROR;
}

static int cmd_config_show(struct ctl *ctl, int argc, char **argv)
{
    gboolean json = FALSE;
    GOptionEntry entries[] = {
        { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
        { NULL, 0, 0, 0, NULL, NULL, NULL },
    };
    if (!parse("config show [--json]", entries, &argc, &argv, 0, 0))
        return EXIT_USAGE;
    GPtrArray *entries_of = config_entries(ctl->app->cfg);
    struct ctl_out *o = ctl_out_new(stdout, FORMAT(json), &view_config);
    for (guint i = 0; i < entries_of->len; i++)
        ctl_out_row(o, rec_config_entry(entries_of->pdata[i]));
    ctl_out_end(o);
    g_ptr_array_unref(entries_of);
    return EXIT_OK;
}

static int cmd_send_test(struct ctl *ctl, int argc, char **argv)
{
    if (!parse("send-test EMAIL COURSE N|MAIL|all", NULL, &argc, &argv, 3, 3))
        return EXIT_USAGE;
    const char *which = argv[3];
    if (strcmp(which, "all") != 0 && !render_is_system(which)) {
        char *end = NULL;
        long n = strtol(which, &end, 10);
        if (*end || n < 1) {
            fprintf(stderr, "coursectl: '%s' is not a lesson number, a system mail or all\n", which);
            return EXIT_USAGE;
        }
    }
    GError *err = NULL;
    int sent = tick_send_test(ctl->app, argv[1], argv[2], which, ctl->now, &err);
    if (sent < 0)
        return fail(err);
    if (!strcmp(which, "all"))
        printf("sent %d test mails of %s to %s\n", sent, argv[2], argv[1]);
    else if (render_is_system(which))
        printf("sent the %s mail of %s to %s\n", which, argv[2], argv[1]);
    else
        printf("sent lesson %s of %s to %s\n", which, argv[2], argv[1]);
    return EXIT_OK;
}

static const struct cmd commands[] = {
    { "init", cmd_init, APP_STORE | APP_CREATE, "", "create or upgrade the database" },
    { "course list", cmd_course_list, 0, "[--json]", "list the courses found in the courses folder" },
    { "course check", cmd_course_check, APP_CONFIG_ONLY, "[SLUG]",
      "check courses and templates; every problem as file:line" },
    { "course diff", cmd_course_diff, APP_STORE, "SLUG [--json]",
      "what changed between the version coursed runs and the files" },
    { "course plan", cmd_course_plan, APP_STORE, "SLUG [--json]",
      "what applying the files would do to the people enrolled (changes nothing)" },
    { "course history", cmd_course_history, APP_STORE, "SLUG [--json]", "the versions of a course that ran" },
    { "course preview", cmd_course_preview, 0, "SLUG N|MAIL|all [--html|--text]",
      "write lesson N, a system mail or all, as sent" },
    { "course timeline", cmd_course_timeline, 0, "SLUG [--start DATE] [--json]",
      "each lesson's weekday, date and time for a start" },
    { "sub add", cmd_sub_add, APP_STORE | APP_KEY, "EMAIL [--name N] [--tz ZONE]", "add a subscriber" },
    { "sub show", cmd_sub_show, APP_STORE, "EMAIL [--json]", "show a subscriber and their courses" },
    { "sub list", cmd_sub_list, APP_STORE, "[--status S] [--course C] ...", "list subscribers, filtered" },
    { "sub rm", cmd_sub_rm, APP_STORE | APP_KEY, "EMAIL [--erase]",
      "remove; --erase keeps only a hashed suppression entry" },
    { "sub set", cmd_sub_set, APP_STORE, "EMAIL [--name N] [--tz ZONE]",
      "change a subscriber; a new zone re-plans future lessons" },
    { "enroll", cmd_enroll, APP_STORE | APP_KEY, "EMAIL COURSE [--no-welcome] [--restart]",
      "start a course; the welcome mail carries its calendar" },
    { "unenroll", cmd_unenroll, APP_STORE, "EMAIL COURSE",
      "stop a course for a subscriber (no goodbye mail)" },
    { "move", cmd_move, APP_STORE, "EMAIL COURSE --to-lesson N", "make lesson N the next one" },
    { "pause", cmd_pause, APP_STORE, "EMAIL [COURSE] [--until TIME|--for DUR]",
      "pause deliveries (all courses unless COURSE)" },
    { "resume", cmd_resume, APP_STORE, "EMAIL [COURSE]", "resume at the next slot; no lesson is lost" },
    { "import", cmd_import, APP_STORE | APP_KEY, "FILE.csv [--dry-run] [--force]",
      "import subscribers (email,name,tz,course,status)" },
    { "export", cmd_export, APP_STORE, "[--format csv|json] [--output FILE]", "export subscribers" },
    { "form", cmd_form, 0, "SLUG", "print the HTML signup form of a course, to paste into a web page" },
    { "queue", cmd_queue, APP_STORE, "[--state S] [--json]",
      "lessons and system mails waiting, deferred or failed" },
    { "retry", cmd_retry, APP_STORE, "ID | --all-failed", "send a failed or deferred delivery again now" },
    { "cancel", cmd_cancel, APP_STORE, "ID", "cancel a waiting delivery (its lesson is skipped)" },
    { "replies", cmd_replies, APP_STORE, "[COURSE] [--json]", "list readers' notes (replies to lessons)" },
    { "stats", cmd_stats, APP_STORE, "[COURSE] [--since 7d] [--json]",
      "funnel per course, or activity per day" },
    { "log", cmd_log, APP_STORE, "[EMAIL] [--json]", "the audit trail" },
    { "doctor", cmd_doctor, APP_CONFIG_ONLY, "", "check config, courses, database, key, relay, pages" },
    { "config show", cmd_config_show, APP_CONFIG_ONLY, "[--json]",
      "the effective configuration, and where each value came from" },
    { "send-test", cmd_send_test, APP_TRANSPORT, "EMAIL COURSE N|MAIL|all",
      "send lesson N, a system mail or all now, as [TEST]" },
    { "inbound", cmd_inbound, APP_STORE | APP_KEY | APP_NO_TEMPLATES, "[--dry-run] [--json] < MESSAGE",
      "handle one inbound mail (MTA pipe); exit 0 or 75", EX_TEMPFAIL },
    { "schedule", cmd_schedule, APP_STORE, "EMAIL [COURSE] [--ics|--json]",
      "upcoming lessons, local and UTC, or as iCalendar" },
    { "status", cmd_status, APP_STORE, "EMAIL [--json]", "show a subscriber's courses and progress" },
};

/* One line of the command list; the help column starts where the
 * longest command line of the table ends, so that every line lines up. */
static void command_line(FILE *out, const struct cmd *c)
{
    int width = 40;
    for (size_t k = 0; k < G_N_ELEMENTS(commands); k++)
        width = MAX(width, (int)(strlen(commands[k].name) + 1 + strlen(commands[k].args)));
    char *left = g_strdup_printf("%s %s", c->name, c->args);
    fprintf(out, "  %-*s %s\n", width, left, c->help);
    g_free(left);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: coursectl [-c FILE] [--now TIME] COMMAND [ARGS]\n\n"
            "Options:\n"
            "  -c, --config FILE  config file (default $COURSED_CONFIG, then /etc/coursed/coursed.conf)\n"
            "  --now TIME         act as if it were TIME (ISO 8601, e.g. 2026-03-02T09:00:00Z)\n"
            "  -h, --help         this help; COMMAND --help shows a command's options\n\n"
            "Commands:\n");
    for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
        command_line(out, &commands[i]);
    fprintf(out,
            "\nExit status:\n"
            "  0 success, 1 error, 2 usage or invalid input, 3 not found,\n"
            "  4 already exists, 75 database busy or disk full (try again)\n");
}

/* `coursectl course`, `coursectl course --help`, `coursectl sub -h`,
 * `coursectl course bogus`: the commands of that group. Returns FALSE when
 * words[0] names no group, else TRUE with *rc. */
static gboolean group_usage(int argc, char **words, int *rc)
{
    gboolean help = argc > 1 && (!strcmp(words[1], "--help") || !strcmp(words[1], "-h"));
    size_t len = strlen(words[0]);
    gboolean found = FALSE;
    for (size_t k = 0; k < G_N_ELEMENTS(commands) && !found; k++)
        found = !strncmp(commands[k].name, words[0], len) && commands[k].name[len] == ' ';
    if (!found)
        return FALSE;
    FILE *out = help ? stdout : stderr;
    if (argc > 1 && !help)
        fprintf(stderr, "coursectl: unknown command '%s %s'\n", words[0], words[1]);
    fprintf(out, "usage: coursectl [-c FILE] [--now TIME] %s COMMAND [ARGS]\n\nCommands:\n", words[0]);
    for (size_t k = 0; k < G_N_ELEMENTS(commands); k++)
        if (!strncmp(commands[k].name, words[0], len) && commands[k].name[len] == ' ')
            command_line(out, &commands[k]);
    fprintf(out, "\n'coursectl %s COMMAND --help' shows a command's options.\n", words[0]);
    *rc = help ? EXIT_OK : EXIT_USAGE;
    return TRUE;
}

/* Returns the command that the first one or two of words name (*n: how
 * many), or NULL. */
static const struct cmd *find_command(int argc, char **words, int *n)
{
    for (size_t k = 0; k < G_N_ELEMENTS(commands); k++) {
        char **parts = g_strsplit(commands[k].name, " ", 2);
        int len = (int)g_strv_length(parts);
        gboolean match = len <= argc;
        for (int w = 0; match && w < len; w++)
            match = strcmp(parts[w], words[w]) == 0;
        g_strfreev(parts);
        if (match) {
            *n = len;
            return &commands[k];
        }
    }
    return NULL;
}

/* Reads the options before the command (-c, --now, --help). Returns the
 * index of the command word, or -1 with *rc set when coursectl is done. */
static int global_options(int argc, char **argv, struct ctl *ctl, const char **now_text, int *rc)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc)
            ctl->config_path = argv[++i];
        else if (g_str_has_prefix(a, "--config="))
            ctl->config_path = a + 9;
        else if (strcmp(a, "--now") == 0 && i + 1 < argc)
            *now_text = argv[++i];
        else if (g_str_has_prefix(a, "--now="))
            *now_text = a + 6;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            *rc = EXIT_OK;
            return -1;
        } else {
            fprintf(stderr, "coursectl: unknown option %s\n", a);
            usage(stderr);
            *rc = EXIT_USAGE;
            return -1;
        }
    }
    return i;
}

/* TRUE when an MTA's pipe runs this (the word inbound on the command
 * line): a mistake in the pipe's own options must not make the MTA bounce
 * every reader's mail (any status but 0 and 75 does), so it is 75. */
static gboolean runs_inbound(int argc, char **argv)
{
    for (int k = 1; k < argc; k++)
        if (!strcmp(argv[k], "inbound"))
            return TRUE;
    return FALSE;
}

int main(int argc, char **argv)
{
    struct ctl ctl = { 0 };
    const char *now_text = NULL;
    int rc = EXIT_OK;
    int i = global_options(argc, argv, &ctl, &now_text, &rc);
    if (i < 0)
        return rc == EXIT_USAGE && runs_inbound(argc, argv) ? EX_TEMPFAIL : rc;
    log_open("coursectl", TRUE, LOG_LVL_WARN);
    GError *err = NULL;
    if (!clock_setup(now_text, 0, &err)) {
        /* a mistake on the pipe's command line defers the mail (75), never
         * bounces a reader's message */
        gboolean pipe = runs_inbound(argc, argv);
        int code = fail(err);
        return pipe ? EX_TEMPFAIL : code;
    }
    ctl.now = clock_now();
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    int words = 0;
    const struct cmd *cmd = find_command(argc - i, argv + i, &words);
    if (!cmd && group_usage(argc - i, argv + i, &rc))
        return rc;
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
    rc = cmd->fn(&ctl, cargc, cargv);
    g_strfreev(cargv);
    if (parsed_args)
        g_ptr_array_unref(parsed_args);
    app_free(ctl.app);
    return rc;
}
