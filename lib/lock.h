/* lock.h - one coursed per database. */
#ifndef COURSED_LOCK_H
#define COURSED_LOCK_H
#include <glib.h>

/* Takes an exclusive flock on "<database>.lock". Returns the open fd (keep
 * it open for the life of the process), or -1 with err naming the holder's
 * pid when another process has it. */
int lock_take(const char *database, GError **err);
void lock_release(int fd);

#endif
