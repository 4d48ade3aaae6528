/* clock.h - the one source of "now" (real or injected with --now). */
#ifndef COURSED_CLOCK_H
#define COURSED_CLOCK_H
#include <glib.h>

/* Returns the current instant in Unix seconds: the real clock, or the fake
 * one set by clock_set_fake(). */
gint64 clock_now(void);

/* Freeze (speed 0) or run (speed > 0, fake seconds per real second) a fake
 * clock that starts at start. */
void clock_set_fake(gint64 start, double speed);
gboolean clock_is_fake(void);

/* Sets the fake clock from cli (the --now option) or, without it, from
 * $COURSED_NOW; nothing when neither is set. Returns FALSE with err naming
 * the option or the variable when the time does not parse. */
gboolean clock_setup(const char *cli, double speed, GError **err);

/* Parse "2026-03-02T09:00:00Z" (or with an offset, or a plain date taken as
 * 00:00 UTC). Returns FALSE and sets err on anything else. */
gboolean clock_parse(const char *text, gint64 *out, GError **err);

/* Returns "2026-03-02T09:00:00Z"; caller g_free()s. */
char *clock_format_utc(gint64 t);

#endif
