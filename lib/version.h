/* version.h - the versions of a course and what applying one does to the
 * people already in it. The rules are in docs/course-edits.md; this is
 * the only place that decides them, for `course plan` (which changes
 * nothing) and for coursed, which applies a new version at start and on
 * SIGHUP. */
#ifndef COURSED_VERSION_H
#define COURSED_VERSION_H
#include <glib.h>
#include "app.h"
#include "course.h"

/* Returns the text that identifies c's lessons: one line per lesson in
 * order, "slug sha256(subject, body)". Two loads of unchanged files give
 * the same text. Caller g_free()s. */
char *version_fingerprint(const struct course *c);

/* What changed between the version that runs and the files. */
enum version_change_kind { VC_ADDED, VC_REMOVED, VC_MOVED, VC_EDITED, VC_RENAMED };
struct version_change {
    enum version_change_kind kind;
    char *slug;     /* the lesson (for VC_RENAMED the new slug) */
    char *old_slug; /* VC_RENAMED: the slug it had */
    int old_pos, new_pos;
    char *diff; /* VC_EDITED: a short line diff of the text ("-"/"+" lines) */
};

/* Per lesson of the new version: what it will do to the people in the
 * course. */
struct version_lesson_plan {
    int pos;
    const char *slug; /* borrowed from the course */
    int next;         /* will receive it as their next lesson */
    int later;        /* will receive it after their next one */
    int had;          /* had it already (or skipped it before) */
    int skip_behind;  /* inserted behind their position: skipped (on_insert_behind = skip) */
    int skip_done;    /* they had completed the course: skipped (completed_get_new = false) */
};

struct version_sample {
    char *email;
    char *next_slug; /* NULL: nothing left */
    gint64 next_at;  /* its planned slot, 0 when none is planned (paused, pending, in flight) */
};

struct version_plan {
    char *course;
    int running;        /* the version that runs (0: none recorded yet) */
    gboolean changed;   /* the files differ from it */
    GPtrArray *changes; /* struct version_change */
    int n_lessons;
    struct version_lesson_plan *lessons; /* n_lessons of them */
    int enrollments;                     /* in the course, any state */
    int touched;                         /* whose lessons still to come change */
    int earlier, later_end;              /* finish with fewer / more lessons still to come */
    int reopened;                        /* completed, and get new lessons (completed_get_new) */
    int completed;                       /* active, and nothing left: complete now */
    int withdrawn;                       /* a removed lesson was in flight: not sent */
    GPtrArray *samples;                  /* struct version_sample, at most 5 */
};
void version_plan_free(struct version_plan *p);

/* Returns what applying the files of course c would do, changing nothing,
 * or NULL with err. When the files differ from the running version it
 * reads every enrollment of the course and its delivery rows, O(enrollments
 * x lessons); otherwise only the hashes and a count (the per-lesson counts
 * stay 0). */
struct version_plan *version_plan(struct app *app, const struct course *c, gint64 now, GError **err);

/* Brings the database to the loaded courses, in one transaction per
 * course: a course whose files differ from the version that runs gets a
 * new version, applied to every enrollment by the rules (rows renumbered,
 * skipped lessons marked, the next lesson re-pointed, a "version" event
 * for each enrollment touched); a course with no version yet gets version
 * 1 (its delivery rows named by the files' slugs). Active enrollments of a
 * course that is not loaded are paused (reason course-gone); those of a
 * course that is back are resumed. Appends one line per course that
 * changed to report (may be NULL). The daemon only (start and SIGHUP), on
 * the main thread, with no round in flight. */
gboolean version_sync(struct app *app, gint64 now, GString *report, GError **err);

/* Appends the plan as the lines `coursed -n` and the log print. */
void version_plan_summary(const struct version_plan *p, GString *out);

#endif
