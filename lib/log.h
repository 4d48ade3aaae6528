/* log.h - leveled logging to stderr or syslog. */
#ifndef COURSED_LOG_H
#define COURSED_LOG_H
#include <glib.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Route logs: to_stderr for -d and the CLI, else syslog (journal) under ident. */
void log_open(const char *ident, gboolean to_stderr, int max_level);
void log_set_level(int max_level);
void log_msg(int level, const char *func, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

#define log_err(...) log_msg(LOG_LVL_ERR, __func__, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __func__, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __func__, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __func__, __VA_ARGS__)

#endif
