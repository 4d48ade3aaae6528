/* sdnotify.c - owns the systemd notification protocol, spoken directly
 * (one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET; a leading
 * '@' names an abstract socket), as documented in sd_notify(3), so coursed
 * needs no libsystemd. */
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib.h>
#include "sdnotify.h"

void sdnotify(const char *state)
{
    const char *path = g_getenv("NOTIFY_SOCKET");
    if (!path || !*path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0) {
        /* systemd went away or the socket is wrong: nothing to do about it */
    }
    close(fd);
}
