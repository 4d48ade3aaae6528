/* lint.h - `coursectl course check`: every problem of the courses and
 * templates, not just the first. */
#ifndef COURSED_LINT_H
#define COURSED_LINT_H
#include <glib.h>
#include "config.h"

/* Checks the course `slug` (or every course when NULL) and the templates
 * of cfg, appending one "file:line: message" per problem to problems
 * (g_free'd strings): the templates' problem first, then every problem of
 * each course (slug order) in file and line order (course.ini, then the
 * lessons by name), including the files coursed does not use, which do
 * not stop the daemon (see course_read). Returns the number of courses
 * checked, or -1 if the courses folder cannot be read or slug does not
 * exist (then problems says why). */
int lint_courses(const struct config *cfg, const char *slug, GPtrArray *problems);

#endif
