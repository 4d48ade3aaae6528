/* ctl_course.h - what coursectl shows of a course's versions: the diff
 * between the version that runs and the files, the plan of what applying
 * them would do (lib/version.h), and the history of versions. */
#ifndef COURSECTL_COURSE_H
#define COURSECTL_COURSE_H
#include "store.h"
#include "version.h"
#include "ctl_render.h"

/* course diff: course, running, changed, changes[] (kind, slug, old_slug,
 * old_lesson, new_lesson, diff). */
struct ctl_record *rec_version_diff(const struct version_plan *p);
/* course plan: the diff's fields plus by_lesson[] (lesson, slug, next, later,
 * had, skip_behind, skip_completed), the counts and samples[]. */
struct ctl_record *rec_version_plan(const struct version_plan *p, const char *tz);
/* course history: one version (version, created_at, contents[] (lesson,
 * slug, hash), summary). */
struct ctl_record *rec_version(const struct store_version *v);

extern const struct ctl_view view_version_diff;
extern const struct ctl_view view_version_plan;
extern const struct ctl_view view_versions;

#endif
