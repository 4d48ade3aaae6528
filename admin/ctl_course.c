/* ctl_course.c - owns how coursectl shows a course's versions: `course
 * diff`, `course plan` and `course history` as records (JSON) and as the
 * text views below. Nothing is decided here: the plan is lib/version.c's. */
#include <string.h>
#include "ctl_course.h"
#include "ctl_records.h"

static const char *kind_names[] = { "added", "removed", "moved", "edited", "renamed" };

static void add_changes(struct ctl_record *r, const struct version_plan *p)
{
    ctl_list(r, "changes");
    for (guint i = 0; p->changes && i < p->changes->len; i++) {
        const struct version_change *ch = p->changes->pdata[i];
        struct ctl_record *c = ctl_child(r, "changes");
        ctl_text(c, "kind", kind_names[ch->kind]);
        ctl_text(c, "slug", ch->slug);
        ctl_text(c, "old_slug", ch->old_slug);
        ctl_int(c, "old_lesson", ch->old_pos);
        ctl_int(c, "new_lesson", ch->new_pos);
        ctl_text(c, "diff", ch->diff);
    }
}

struct ctl_record *rec_version_diff(const struct version_plan *p)
{
    struct ctl_record *r = ctl_record_new();
    ctl_text(r, "course", p->course);
    ctl_int(r, "running", p->running);
    ctl_bool(r, "changed", p->changed);
    add_changes(r, p);
    return r;
}

struct ctl_record *rec_version_plan(const struct version_plan *p, const char *tz)
{
    struct ctl_record *r = rec_version_diff(p);
    ctl_int(r, "enrolled", p->enrollments);
    ctl_int(r, "touched", p->touched);
    ctl_int(r, "finish_earlier", p->earlier);
    ctl_int(r, "finish_later", p->later_end);
    ctl_int(r, "completed_now", p->completed);
    ctl_int(r, "reopened", p->reopened);
    ctl_int(r, "withdrawn", p->withdrawn);
    ctl_list(r, "by_lesson");
    for (int k = 0; k < p->n_lessons; k++) {
        const struct version_lesson_plan *lp = &p->lessons[k];
        struct ctl_record *c = ctl_child(r, "by_lesson");
        ctl_int(c, "lesson", lp->pos);
        ctl_text(c, "slug", lp->slug);
        ctl_int(c, "next", lp->next);
        ctl_int(c, "later", lp->later);
        ctl_int(c, "had", lp->had);
        ctl_int(c, "skip_behind", lp->skip_behind);
        ctl_int(c, "skip_completed", lp->skip_done);
    }
    ctl_list(r, "samples");
    for (guint i = 0; i < p->samples->len; i++) {
        const struct version_sample *s = p->samples->pdata[i];
        struct ctl_record *c = ctl_child(r, "samples");
        ctl_text(c, "email", s->email);
        ctl_text(c, "next_slug", s->next_slug);
        ctl_time(c, "next_at", s->next_at);
        char *when = ctl_when(s->next_at, tz);
        ctl_cell(c, "when", when);
        g_free(when);
    }
    return r;
}

struct ctl_record *rec_version(const struct store_version *v)
{
    struct ctl_record *r = ctl_record_new();
    ctl_int(r, "version", v->version);
    ctl_time(r, "created_at", v->created_at);
    ctl_list(r, "contents");
    char **lines = g_strsplit(v->lessons, "\n", -1);
    GString *slugs = g_string_new(NULL);
    int n = 0;
    for (char **l = lines; *l; l++) {
        if (!**l)
            continue;
        char *sp = strchr(*l, ' ');
        char *slug = sp ? g_strndup(*l, (gsize)(sp - *l)) : g_strdup(*l);
        struct ctl_record *c = ctl_child(r, "contents");
        ctl_int(c, "lesson", ++n);
        ctl_text(c, "slug", slug);
        ctl_text(c, "hash", sp ? sp + 1 : "");
        g_string_append_printf(slugs, "%s%s", slugs->len ? " " : "", slug);
        g_free(slug);
    }
    g_strfreev(lines);
    ctl_text(r, "summary", v->summary);
    ctl_cell_int(r, "count", n);
    ctl_cell(r, "slugs", slugs->str);
    g_string_free(slugs, TRUE);
    return r;
}

static void diff_text(FILE *out, const struct ctl_record *r, void *arg)
{
    (void)arg;
    const char *course = ctl_get_text(r, "course");
    int running = (int)ctl_get_int(r, "running");
    const GPtrArray *ch = ctl_get_list(r, "changes");
    if (!running) {
        fprintf(out, "course %s: no version recorded yet; coursed records the files as version 1\n", course);
        return;
    }
    if (!ch || ch->len == 0) {
        fprintf(out, "course %s: the files are version %d, which runs\n", course, running);
        return;
    }
    fprintf(out, "course %s: the files differ from version %d, which runs:\n", course, running);
    for (guint i = 0; i < ch->len; i++) {
        const struct ctl_record *c = ch->pdata[i];
        const char *kind = ctl_get_text(c, "kind");
        int o = (int)ctl_get_int(c, "old_lesson"), n = (int)ctl_get_int(c, "new_lesson");
        if (!strcmp(kind, "added"))
            fprintf(out, "  added    %s (lesson %d)\n", ctl_get_text(c, "slug"), n);
        else if (!strcmp(kind, "removed"))
            fprintf(out, "  removed  %s (was lesson %d)\n", ctl_get_text(c, "slug"), o);
        else if (!strcmp(kind, "renamed"))
            fprintf(out, "  renamed  %s -> %s (lesson %d): a new lesson, sent again to those who had %s\n",
                    ctl_get_text(c, "old_slug"), ctl_get_text(c, "slug"), n, ctl_get_text(c, "old_slug"));
        else
            fprintf(out, "  %-8s %s (lesson %d, was %d)\n", kind, ctl_get_text(c, "slug"), n, o);
        const char *d = ctl_get_text(c, "diff");
        if (d && *d)
            fputs(d, out);
    }
}

static void plan_text(FILE *out, const struct ctl_record *r, void *arg)
{
    diff_text(out, r, arg);
    const GPtrArray *ch = ctl_get_list(r, "changes");
    if (!ctl_get_int(r, "running") || !ch || ch->len == 0)
        return;
    fprintf(out, "\nWhat applying it does to the %d enrolled (nothing changes until coursed reloads):\n",
            (int)ctl_get_int(r, "enrolled"));
    fprintf(out, "  %3s  %-32s %5s %6s %5s %12s %15s\n", "#", "lesson", "next", "later", "had", "skip-behind",
            "skip-completed");
    const GPtrArray *ls = ctl_get_list(r, "by_lesson");
    for (guint i = 0; ls && i < ls->len; i++) {
        const struct ctl_record *l = ls->pdata[i];
        char *slug = ctl_fit(ctl_get_text(l, "slug"), 32);
        fprintf(out, "  %3d  %-32s %5d %6d %5d %12d %15d\n", (int)ctl_get_int(l, "lesson"), slug,
                (int)ctl_get_int(l, "next"), (int)ctl_get_int(l, "later"), (int)ctl_get_int(l, "had"),
                (int)ctl_get_int(l, "skip_behind"), (int)ctl_get_int(l, "skip_completed"));
        g_free(slug);
    }
    fprintf(out,
            "  %d touched: %d finish with fewer lessons to come, %d with more; %d completed now, %d reopened,"
            " %d lesson(s) in flight withdrawn\n",
            (int)ctl_get_int(r, "touched"), (int)ctl_get_int(r, "finish_earlier"),
            (int)ctl_get_int(r, "finish_later"), (int)ctl_get_int(r, "completed_now"),
            (int)ctl_get_int(r, "reopened"), (int)ctl_get_int(r, "withdrawn"));
    const GPtrArray *ss = ctl_get_list(r, "samples");
    if (ss && ss->len) {
        fprintf(out, "  for example:\n");
        for (guint i = 0; i < ss->len; i++) {
            const struct ctl_record *s = ss->pdata[i];
            const char *next = ctl_get_text(s, "next_slug");
            fprintf(out, "    %s: next %s%s%s\n", ctl_get_text(s, "email"), next ? next : "nothing (done)",
                    ctl_get_int(s, "next_at") > 0 ? " at " : "",
                    ctl_get_int(s, "next_at") > 0 ? ctl_get_text(s, "when") : "");
        }
    }
}

const struct ctl_view view_version_diff = { .text = diff_text };
const struct ctl_view view_version_plan = { .text = plan_text };

static const struct ctl_column version_cols[] = {
    { "VERSION", "version", 8, CTL_COL_RIGHT, NULL, 0 },
    { "CREATED", "created_at", 17, 0, NULL, 16 },
    { "LESSONS", "count", 8, CTL_COL_RIGHT, NULL, 0 },
    { "SLUGS", "slugs", 0, 0, NULL, 0 },
    { NULL, NULL, 0, 0, NULL, 0 },
};
const struct ctl_view view_versions = { .columns = version_cols,
                                        .header = TRUE,
                                        .empty = "no version recorded yet" };
