/* sdnotify.h - telling systemd how we are (Type=notify). */
#ifndef COURSED_SDNOTIFY_H
#define COURSED_SDNOTIFY_H

/* Sends state (e.g. "READY=1", "STOPPING=1") to $NOTIFY_SOCKET; does
 * nothing when it is not set (not run by systemd). */
void sdnotify(const char *state);

#endif
