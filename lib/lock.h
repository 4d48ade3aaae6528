/* lock.h - one coursed per database. */
#ifndef COURSED_LOCK_H
#define COURSED_LOCK_H
#include <glib.h>

/* Takes an exclusive flock on "<database>.lock". Returns the open fd (keep
 * it open for the life of the process), or -1 with err naming the holder's
 * pid when another process has it. */
int lock_take(const char *database, GError **err);
void lock_release(int fd);

/* Records in the lock file that this holder stops cleanly (on SIGTERM,
 * --once, --until-done), even if it abandons sessions in flight. */
void lock_mark_stopped(int fd);

/* After lock_take(): TRUE when the previous holder marked a clean stop (or
 * there was none), FALSE when it ended without (a crash, a kill -9). */
gboolean lock_clean_stop(void);

#endif
