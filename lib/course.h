/* course.h - a course as read from courses/<slug>/. */
#ifndef COURSED_COURSE_H
#define COURSED_COURSE_H
#include <glib.h>
#include "pace.h"

struct lesson {
    int n;      /* 1-based position */
    char *slug; /* from the file name NN-<slug>.md */
    char *path;
    char *subject;
    char *body;       /* Markdown */
    char *html;       /* body as HTML (cmark), filled at load (snapshot.c) */
    char *text;       /* body as plain text (render_markdown_text), filled at load */
    int body_line;    /* line of the file where the body starts */
    gboolean support; /* header "Support: yes": carries the help line (docs/safety.md) */
};

struct course {
    char *slug;
    char *dir;
    char *title;
    char *description;
    char *sender;        /* From address; default <slug>@<domain> */
    char *sender_name;   /* From display name; default the title */
    char *replies_to;    /* readers' notes are forwarded here (normalised), or NULL */
    char *source;        /* credit line */
    char *sign_off;      /* the line that ends each lesson, as a letter; default sender_name */
    char *schedule;      /* RRULE */
    char *time;          /* "HH:MM" */
    char *tz;            /* default zone of subscribers */
    gint64 first_within; /* 0 = no cap */
    gboolean allow_next; /* the "next" command may send a lesson early */
    /* what an edit does to people already in the course (docs/course-edits.md) */
    gboolean insert_behind_send; /* on_insert_behind = send: a lesson inserted behind someone comes next */
    gboolean completed_get_new;  /* lessons appended after someone completed reach them */
    gboolean complete_mail;      /* the `complete` mail marks the end (default TRUE) */
    char *next_course;           /* slug offered in the `complete` mail, or NULL */
    int next_course_line;        /* its line in course.ini (for messages) */
    char *language;              /* BCP 47 tag of its mails' words and dates, default "en" */
    int language_line;           /* its line in course.ini (for messages) */
    struct pace_rule rule;       /* points into the fields above */
    int n_lessons;
    struct lesson *lessons;
};

/* One problem of a course, as `course check` prints it: "file:line:
 * message", or "file: message" when line is 0 (a file name, a folder). A
 * fatal problem makes course_load() refuse the course; the others are
 * files in the folder that coursed does not use (notes.txt, welcome.md):
 * reported by the check, harmless to the daemon. */
struct course_problem {
    char *file;
    int line;
    char *message;
    gboolean fatal;
};

/* Returns an empty list of problems: a GPtrArray of struct course_problem
 * that frees them (g_ptr_array_unref). */
GPtrArray *course_problems_new(void);

/* Appends a problem to problems (from course_problems_new()). */
void course_problem_add(GPtrArray *problems, gboolean fatal, const char *file, int line, const char *fmt, ...)
    G_GNUC_PRINTF(5, 6);

/* Sorts the problems of the course in dir in file and line order: the
 * folder itself, course.ini, lessons/ and the lessons by name, then the
 * rest by name. Stable: problems of one line keep their order. */
void course_problems_sort(GPtrArray *problems, const char *dir);

/* Returns p as "file:line: message" ("file: message" when line is 0).
 * g_free(). */
char *course_problem_text(const struct course_problem *p);

/* Reads the course in dir (named slug) as far as it can and appends every
 * problem found, sorted, to problems (from course_problems_new()); a
 * byte-order mark at the start of course.ini or a lesson is skipped.
 * Always returns a course (course_free()). When a fatal problem was
 * appended it is incomplete and only fit for linting: fields may be empty
 * and lessons whose file could not be read have body NULL; never run it. */
struct course *course_read(const char *dir, const char *slug, const char *domain, GPtrArray *problems);

/* Returns the course in dir (named slug), or NULL with err listing every
 * fatal problem found (see course_read), one "file:line: message" a line,
 * in file and line order. domain fills in the default sender. Free with
 * course_free(). */
struct course *course_load(const char *dir, const char *slug, const char *domain, GError **err);

/* Returns every course under courses_dir (sorted by slug) as a GPtrArray
 * that owns them (g_ptr_array_unref frees all), or NULL with err listing
 * the fatal problems of every broken course, one a line (the first line is
 * the first problem of the first broken course). */
GPtrArray *course_load_all(const char *courses_dir, const char *domain, GError **err);

/* Checks what courses of set say of each other (next_course names one of
 * them). FALSE with err as "course.ini:line: message". */
gboolean course_check_links(GPtrArray *set, GError **err);

/* Returns the slugs of the course folders under courses_dir (those with a
 * course.ini), sorted, as a GPtrArray of g_free'd strings; NULL with err if
 * the folder cannot be read. */
GPtrArray *course_list_slugs(const char *courses_dir, GError **err);

/* Returns the slugs of the loaded courses as a NULL-terminated array;
 * g_strfreev(). */
char **course_slugs(GPtrArray *set);

/* Returns the course with this slug from set, or NULL. Borrowed. */
const struct course *course_find(GPtrArray *set, const char *slug);

/* Returns lesson n (1-based) or NULL. Borrowed. */
const struct lesson *course_lesson(const struct course *c, int n);

/* Returns TRUE if slug is a valid course or lesson slug ([a-z0-9-]+). */
gboolean course_slug_valid(const char *slug);

void course_free(struct course *c);

#endif
