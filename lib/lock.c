/* lock.c - owns the single-instance rule: coursed and coursed --once hold
 * an exclusive flock on <database>.lock while they deliver, so two daemons
 * can never claim the same deliveries. The lock dies with the process, so
 * a crash never leaves a stale lock behind; the pid inside is only for the
 * error message. A holder that stops cleanly writes "stopped" after its pid,
 * so that the next one can tell a clean stop from a crash (lock_clean_stop). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "lock.h"
#include "error.h"

static gboolean previous_clean = TRUE;

int lock_take(const char *database, GError **err)
{
    char *path = g_strconcat(database, ".lock", NULL);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        g_set_error(err, CD_ERROR, CD_ERR_IO, "%s: %s", path, g_strerror(errno));
        g_free(path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        g_strchomp(buf);
        g_set_error(err, CD_ERROR, CD_ERR_BUSY,
                    "%s: another coursed (pid %s) is already running on this database", path,
                    *buf ? buf : "?");
        close(fd);
        g_free(path);
        return -1;
    }
    char before[64] = "";
    ssize_t got = pread(fd, before, sizeof before - 1, 0);
    before[got > 0 ? got : 0] = '\0';
    /* an empty or new file: nobody ran before, nothing crashed */
    previous_clean = got <= 0 || strstr(before, "\nstopped\n") != NULL;
    char pid[32];
    int len = g_snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        /* The pid is only informative; the flock is what counts. */
    }
    g_free(path);
    return fd;
}

void lock_release(int fd)
{
    if (fd >= 0)
        close(fd);
}

gboolean lock_clean_stop(void)
{
    return previous_clean;
}

void lock_mark_stopped(int fd)
{
    if (fd < 0)
        return;
    char text[48];
    int len = g_snprintf(text, sizeof text, "%d\nstopped\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)len, 0) != len) {
        /* only informative: the next start then speaks of a crash */
    }
}
