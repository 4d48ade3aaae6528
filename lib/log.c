/* log.c - owns where log lines go (stderr or syslog) and the level filter.
 * Every line names the function that logged it, so a log line can be traced
 * to code without a debugger. Thread-safe: one fprintf/syslog per line. */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include "log.h"

static gboolean log_to_stderr = TRUE;
static int log_max = LOG_LVL_INFO;
static const char *log_ident = "coursed";

void log_open(const char *ident, gboolean to_stderr, int max_level)
{
    log_ident = ident;
    log_to_stderr = to_stderr;
    log_max = max_level;
    if (!to_stderr)
        openlog(ident, LOG_PID, LOG_MAIL);
}

void log_set_level(int max_level)
{
    log_max = max_level;
}

void log_msg(int level, const char *func, const char *fmt, ...)
{
    static const char *names[] = { "error", "warning", "info", "debug" };
    static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
    if (level > log_max)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (log_to_stderr)
        fprintf(stderr, "%s: %s: %s: %s\n", log_ident, names[level], func, text);
    else
        syslog(prio[level], "%s: %s: %s", names[level], func, text);
    g_free(text);
}
