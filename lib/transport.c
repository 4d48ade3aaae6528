/* transport.c - owns libESMTP, and the Maildir writer. Two backends behind
 * struct transport_ops:
 *   smtp    one libESMTP session per call carries many messages (PIPELINING
 *           when offered); results are read per recipient, because the DATA
 *           reply can be 250 while the one recipient got a 550. A message
 *           whose reverse path status is 0 was never attempted: temporary.
 *   maildir write tmp/<unique>, fsync, rename into new/: a reader never sees
 *           half a message, and a crash leaves only tmp/ litter.
 * See shared/LIBRARY-NOTES.md for the libESMTP pitfalls handled here (CRLF,
 * SIGPIPE, the static SSL_CTX crash, TLS 1.3 stall, millisecond timeouts). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <openssl/ssl.h>
#include <auth-client.h>
#include <libesmtp.h>
#include "transport.h"
#include "address.h"
#include "config.h"
#include "error.h"
#include "log.h"

void transport_msg_clear(struct transport_msg *m)
{
    if (!m)
        return;
    g_free(m->text);
    m->text = NULL;
}

static void set_result(struct transport_msg *m, enum transport_outcome o, int code, const char *status,
                       const char *text)
{
    m->outcome = o;
    m->code = code;
    g_strlcpy(m->status, status ? status : "", sizeof m->status);
    g_free(m->text);
    m->text = g_strdup(text ? text : "");
    g_strchomp(m->text);
}

/* ---------------------------------------------------------------- maildir */

struct maildir {
    char *root;
    gint seq; /* atomic: sessions run in several threads */
};

static void report_once(struct transport_msg *m, transport_report_fn report, void *arg)
{
    if (!m->reported && report)
        report(m, arg);
    m->reported = TRUE;
}

static gboolean maildir_send(struct transport *t, struct transport_msg *msgs, size_t n,
                             transport_report_fn report, void *arg)
{
    struct maildir *md = t->priv;
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    for (size_t i = 0; i < n; i++) {
        struct transport_msg *m = &msgs[i];
        char *name = g_strdup_printf("%" G_GINT64_FORMAT ".P%dQ%d.%s", g_get_real_time() / G_USEC_PER_SEC,
                                     (int)getpid(), g_atomic_int_add(&md->seq, 1), host);
        char *tmp = g_build_filename(md->root, "tmp", name, NULL);
        char *dst = g_build_filename(md->root, "new", name, NULL);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        gboolean ok = fd >= 0;
        const char *p = m->data;
        gsize left = m->len;
        while (ok && left > 0) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                ok = FALSE;
            else {
                p += w;
                left -= (gsize)w;
            }
        }
        int saved = errno;
        if (ok && fsync(fd) != 0)
            ok = FALSE, saved = errno;
        if (fd >= 0 && close(fd) != 0 && ok)
            ok = FALSE, saved = errno;
        if (ok && rename(tmp, dst) != 0)
            ok = FALSE, saved = errno;
        if (ok) {
            set_result(m, TRANSPORT_OK, 250, "2.0.0", "written to Maildir");
        } else {
            char *why = g_strdup_printf("%s: %s", tmp, g_strerror(saved));
            log_warn("%s %" G_GINT64_FORMAT ": %s", m->what ? m->what : "delivery", m->id, why);
            set_result(m, TRANSPORT_TEMP, 0, "4.3.0", why);
            g_free(why);
            g_unlink(tmp);
        }
        report_once(m, report, arg);
        g_free(name);
        g_free(tmp);
        g_free(dst);
    }
    return TRUE;
}

static void maildir_close(struct transport *t)
{
    struct maildir *md = t->priv;
    if (md) {
        g_free(md->root);
        g_free(md);
    }
}

static const struct transport_ops maildir_ops = { "maildir", maildir_send, maildir_close };

static gboolean maildir_open(struct transport *t, GError **err)
{
    struct maildir *md = g_new0(struct maildir, 1);
    md->root = g_strdup(t->cfg->maildir);
    t->priv = md;
    const char *subs[] = { "tmp", "new", "cur" };
    for (size_t i = 0; i < G_N_ELEMENTS(subs); i++) {
        char *d = g_build_filename(md->root, subs[i], NULL);
        int rc = g_mkdir_with_parents(d, 0750);
        int saved = errno;
        g_free(d);
        if (rc != 0) {
            g_set_error(err, CD_ERROR, CD_ERR_IO, "[transport] maildir %s: %s", md->root, g_strerror(saved));
            return FALSE;
        }
    }
    return TRUE;
}

/* ------------------------------------------------------------------- smtp */

struct relay {
    char *server;      /* "host:port" */
    gint64 down_until; /* monotonic µs; 0 = up */
};

struct smtp {
    SSL_CTX *ssl; /* one per process: see LIBRARY-NOTES (crash) */
    char *user;   /* [smtp] user (a copy: the config may go first) */
    char *password;
    GPtrArray *relays; /* struct relay *: [smtp] host:port, then [smtp] relays */
    GMutex lock;       /* guards down_until */
};

#define RELAY_DOWN_US (60 * G_USEC_PER_SEC)

/* libESMTP's SASL callback; arg is the transport the session belongs to
 * (set per AUTH context), so a reload that opens a new transport while a
 * session of the old one runs gives each its own credentials. The
 * password never reaches a log line. */
static int auth_interact(auth_client_request_t req, char **result, int fields, void *arg)
{
    const struct smtp *s = arg;
    for (int i = 0; i < fields; i++) {
        if (req[i].flags & AUTH_PASS)
            result[i] = s->password;
        else if (req[i].flags & AUTH_USER)
            result[i] = s->user;
        else
            result[i] = NULL;
    }
    return 1;
}

/* libESMTP pulls the message through this; *ctx is free()d by libESMTP. */
static const char *message_cb(void **ctx, int *len, void *arg)
{
    const struct transport_msg *m = arg;
    if (!*ctx)
        *ctx = calloc(1, sizeof(int));
    int *done = *ctx;
    if (!done) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (!len) { /* rewind */
        *done = 0;
        return NULL;
    }
    if (*done) {
        *len = 0;
        return NULL;
    }
    *done = 1;
    *len = (int)m->len;
    return m->data;
}

/* libESMTP writes a message in 2 KB pieces and does not expose its socket.
 * With Nagle's algorithm on, the last small piece (the one with the final
 * dot) waits for the ACK of the one before, which the server delays by
 * 40 ms: 45 ms per message against a server that does not ACK at once. On
 * connect, set TCP_NODELAY on this process's TCP sockets; all of them are
 * SMTP or HTTP sockets that want it. */
static void nodelay(int fd)
{
    int type = 0;
    socklen_t len = sizeof type;
    struct sockaddr_storage sa;
    socklen_t salen = sizeof sa;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM ||
        getsockname(fd, (struct sockaddr *)&sa, &salen) != 0 ||
        (sa.ss_family != AF_INET && sa.ss_family != AF_INET6))
        return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* What the event callback of one session needs to report each message as
 * its reply arrives. */
struct session_ctx {
    struct transport_msg *msgs;
    smtp_message_t *handles;
    smtp_recipient_t *rcpts;
    transport_report_fn report;
    void *arg;
};

static void outcome_of(struct session_ctx *sc, size_t i, const char *errbuf);
static gboolean never_tried(const struct transport_msg *m);

static void event_cb(smtp_session_t session, int event, void *arg, ...)
{
    (void)session;
    struct session_ctx *sc = arg;
    if (event == SMTP_EV_MESSAGESENT) {
        va_list ap;
        va_start(ap, arg);
        smtp_message_t msg = va_arg(ap, smtp_message_t);
        va_end(ap);
        size_t i = (size_t)(guintptr)smtp_message_get_application_data(msg);
        if (i == 0)
            return;
        outcome_of(sc, i - 1, "");
        /* What was never attempted may still go through the next relay:
         * that is reported when smtp_send() is done with it. */
        if (!never_tried(&sc->msgs[i - 1]))
            report_once(&sc->msgs[i - 1], sc->report, sc->arg);
        return;
    }
    if (event != SMTP_EV_CONNECT)
        return;
    /* The open descriptors are listed in /proc: a few dozen calls instead
     * of one per possible descriptor (4,096 per connection). */
    GDir *d = g_dir_open("/proc/self/fd", 0, NULL);
    if (d) {
        const char *name;
        while ((name = g_dir_read_name(d))) {
            gint64 fd = g_ascii_strtoll(name, NULL, 10);
            if (fd > 2 && fd < G_MAXINT)
                nodelay((int)fd);
        }
        g_dir_close(d);
        return;
    }
    struct rlimit rl;
    int max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096 ? (int)rl.rlim_cur : 4096;
    for (int fd = 3; fd < max; fd++)
        nodelay(fd);
}

static void classify(struct transport_msg *m, const smtp_status_t *st, const char *fallback)
{
    char status[16] = "";
    if (st->enh_class > 0)
        g_snprintf(status, sizeof status, "%d.%d.%d", st->enh_class, st->enh_subject, st->enh_detail);
    const char *text = st->text && *st->text ? st->text : fallback;
    /* Without ENHANCEDSTATUSCODES libESMTP fills no enh_ fields, but many
     * servers still start the text with the code ("5.7.1 blocked"): take it
     * from there when its class agrees with the reply code. */
    if (!*status && st->text) {
        int a = 0, b = 0, c = 0, used = 0;
        if (sscanf(st->text, "%1d.%3d.%3d%n", &a, &b, &c, &used) == 3 && a == st->code / 100 &&
            (st->text[used] == '\0' || g_ascii_isspace(st->text[used])))
            g_snprintf(status, sizeof status, "%d.%d.%d", a, b, c);
    }
    if (st->code >= 200 && st->code < 300)
        set_result(m, TRANSPORT_OK, st->code, status, text);
    else if (st->code >= 500 && st->code < 600)
        set_result(m, TRANSPORT_PERM, st->code, status, text);
    else
        set_result(m, TRANSPORT_TEMP, st->code, status, text);
}

/* Reads message i's outcome from libESMTP's statuses (per recipient: the
 * DATA reply can be 250 while the one recipient got a 550). */
static void outcome_of(struct session_ctx *sc, size_t i, const char *errbuf)
{
    struct transport_msg *m = &sc->msgs[i];
    const smtp_status_t *rp = smtp_reverse_path_status(sc->handles[i]);
    const smtp_status_t *rs = sc->rcpts[i] ? smtp_recipient_status(sc->rcpts[i]) : NULL;
    if (!rp || rp->code == 0) {
        char *why = g_strdup_printf("not attempted: %s", *errbuf ? errbuf : "session failed");
        set_result(m, TRANSPORT_TEMP, 0, "", why);
        g_free(why);
    } else if (rp->code >= 400) {
        classify(m, rp, "MAIL FROM refused");
    } else if (!rs || rs->code == 0) {
        set_result(m, TRANSPORT_TEMP, 0, "", "RCPT TO not attempted");
    } else if (rs->code >= 400) {
        classify(m, rs, "RCPT TO refused");
    } else {
        const smtp_status_t *ds = smtp_message_transfer_status(sc->handles[i]);
        if (!ds || ds->code == 0)
            set_result(m, TRANSPORT_TEMP, 0, "", *errbuf ? errbuf : "no reply to DATA");
        else
            classify(m, ds, "DATA");
    }
}

/* One SMTP session with `server` carrying msgs. */
static gboolean smtp_session_run(struct transport *t, const char *server, struct transport_msg *msgs,
                                 size_t n, transport_report_fn report, void *arg)
{
    struct smtp *s = t->priv;
    const struct config *cfg = t->cfg;
    smtp_session_t session = smtp_create_session();
    if (!session) {
        for (size_t i = 0; i < n; i++)
            set_result(&msgs[i], TRANSPORT_TEMP, 0, "", "cannot create SMTP session");
        return FALSE;
    }
    smtp_message_t *handles = g_new0(smtp_message_t, n);
    smtp_recipient_t *rcpts = g_new0(smtp_recipient_t, n);
    struct session_ctx sc = { msgs, handles, rcpts, report, arg };
    smtp_set_server(session, server);
    smtp_set_eventcb(session, event_cb, &sc);
    smtp_set_hostname(session, cfg->smtp_helo);
    long ms = (long)cfg->smtp_timeout * 1000;
    /* Our own [smtp] timeout, even below RFC 5321's minutes, so a hanging
     * relay is given up on in bounded time ... */
    smtp_set_timeout(session, Timeout_GREETING | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
    smtp_set_timeout(session, Timeout_ENVELOPE | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
    smtp_set_timeout(session, Timeout_TRANSFER | Timeout_OVERRIDE_RFC2822_MINIMUM, ms);
    /* ... but Timeout_DATA2 (the final dot) keeps libESMTP's 10-minute RFC
     * default: giving up early is how duplicates are made. */
    if (strcmp(cfg->smtp_starttls, "off") != 0) {
        smtp_starttls_set_ctx(session, s->ssl);
        smtp_starttls_enable(session, strcmp(cfg->smtp_starttls, "required") == 0 ? Starttls_REQUIRED
                                                                                  : Starttls_ENABLED);
    }
    /* An AUTH context per session: sessions run in parallel threads. */
    auth_context_t auth = NULL;
    if (s->password) {
        auth = auth_create_context();
        auth_set_mechanism_flags(auth, AUTH_PLUGIN_PLAIN, 0);
        auth_set_interact_cb(auth, auth_interact, s);
        smtp_auth_set_context(session, auth);
    }

    for (size_t i = 0; i < n; i++) {
        handles[i] = smtp_add_message(session);
        smtp_message_set_application_data_release(handles[i], (void *)(guintptr)(i + 1), NULL);
        smtp_set_reverse_path(handles[i], msgs[i].env_from);
        /* The envelope carries an IDN domain in its ASCII form (no SMTPUTF8);
         * every stored address has one (address_normalize). */
        char *rcpt = address_to_ascii(msgs[i].rcpt, NULL);
        rcpts[i] = smtp_add_recipient(handles[i], rcpt ? rcpt : msgs[i].rcpt);
        g_free(rcpt);
        smtp_set_messagecb(handles[i], message_cb, &msgs[i]);
    }
    /* The return value is 1 even after a refused certificate or a greeting
     * timeout: the statuses below are the only truth. */
    int started = smtp_start_session(session);
    char errbuf[256] = "";
    if (!started || smtp_errno() != 0)
        smtp_strerror(smtp_errno(), errbuf, sizeof errbuf);

    for (size_t i = 0; i < n; i++) {
        struct transport_msg *m = &msgs[i];
        if (!m->reported)
            outcome_of(&sc, i, errbuf);
        if (m->outcome != TRANSPORT_OK)
            log_info("%s %" G_GINT64_FORMAT " to %s via %s: %d %s %s", m->what ? m->what : "delivery", m->id,
                     m->rcpt, server, m->code, m->status, m->text);
    }
    g_free(rcpts);
    g_free(handles);
    smtp_destroy_session(session);
    if (auth)
        auth_destroy_context(auth);
    return TRUE;
}

static gboolean never_tried(const struct transport_msg *m)
{
    return m->outcome == TRANSPORT_TEMP && m->code == 0;
}

/* Sends over the first relay that is up; what a relay could not even
 * attempt (connection refused, greeting timeout) goes to the next one, and
 * a relay that attempted nothing is skipped for a minute. */
static gboolean smtp_send(struct transport *t, struct transport_msg *msgs, size_t n,
                          transport_report_fn report, void *arg)
{
    struct smtp *s = t->priv;
    GPtrArray *todo = g_ptr_array_new();
    for (size_t i = 0; i < n; i++)
        g_ptr_array_add(todo, &msgs[i]);
    gint64 now = g_get_monotonic_time();
    gboolean *tried = g_new0(gboolean, s->relays->len);
    for (int pass = 0; pass < 2 && todo->len > 0; pass++) {
        for (guint r = 0; r < s->relays->len && todo->len > 0; r++) {
            struct relay *relay = s->relays->pdata[r];
            g_mutex_lock(&s->lock);
            gboolean down = relay->down_until > now;
            g_mutex_unlock(&s->lock);
            /* First the relays that are up; then, once, those marked down. */
            if (tried[r] || (down && pass == 0))
                continue;
            tried[r] = TRUE;
            struct transport_msg *batch = g_new(struct transport_msg, todo->len);
            for (guint i = 0; i < todo->len; i++)
                batch[i] = *(struct transport_msg *)todo->pdata[i];
            smtp_session_run(t, relay->server, batch, todo->len, report, arg);
            GPtrArray *again = g_ptr_array_new();
            for (guint i = 0; i < todo->len; i++) {
                struct transport_msg *m = todo->pdata[i];
                *m = batch[i];
                if (never_tried(m))
                    g_ptr_array_add(again, m);
            }
            g_free(batch);
            g_mutex_lock(&s->lock);
            if (again->len == todo->len) {
                relay->down_until = now + RELAY_DOWN_US;
                log_warn("relay %s attempted nothing; trying the next one", relay->server);
            } else {
                relay->down_until = 0;
            }
            g_mutex_unlock(&s->lock);
            g_ptr_array_unref(todo);
            todo = again;
        }
    }
    g_free(tried);
    g_ptr_array_unref(todo);
    /* Whatever no relay could take is final now. */
    for (size_t i = 0; i < n; i++)
        report_once(&msgs[i], report, arg);
    return TRUE;
}

static void relay_free(struct relay *r)
{
    g_free(r->server);
    g_free(r);
}

static void smtp_close(struct transport *t)
{
    struct smtp *s = t->priv;
    if (!s)
        return;
    if (s->relays)
        g_ptr_array_unref(s->relays);
    g_mutex_clear(&s->lock);
    if (s->ssl)
        SSL_CTX_free(s->ssl);
    g_free(s->user);
    if (s->password) {
        memset(s->password, 0, strlen(s->password));
        g_free(s->password);
    }
    g_free(s);
}

static const struct transport_ops smtp_ops = { "smtp", smtp_send, smtp_close };

static gboolean smtp_open(struct transport *t, GError **err)
{
    const struct config *cfg = t->cfg;
    struct smtp *s = g_new0(struct smtp, 1);
    t->priv = s;
    /* libESMTP writes with plain write(): a dropped peer must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    g_mutex_init(&s->lock);
    s->relays = g_ptr_array_new_with_free_func((GDestroyNotify)relay_free);
    struct relay *first = g_new0(struct relay, 1);
    first->server = g_strdup_printf("%s:%d", cfg->smtp_host, (int)cfg->smtp_port);
    g_ptr_array_add(s->relays, first);
    char **extra = g_strsplit(cfg->smtp_relays, ",", 16);
    for (char **e = extra; *e; e++) {
        char *v = g_strstrip(*e);
        if (!*v)
            continue;
        const char *colon = strrchr(v, ':');
        if (!colon || colon == v || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "[smtp] relays: '%s' is not host:port", v);
            g_strfreev(extra);
            return FALSE;
        }
        struct relay *r = g_new0(struct relay, 1);
        r->server = g_strdup(v);
        g_ptr_array_add(s->relays, r);
    }
    g_strfreev(extra);
    /* libESMTP initialises a table lazily and without a lock: do it now,
     * before sessions run in several threads. */
    smtp_destroy_session(smtp_create_session());
    if (strcmp(cfg->smtp_starttls, "off") != 0) {
        s->ssl = SSL_CTX_new(TLS_client_method());
        if (!s->ssl) {
            g_set_error(err, CD_ERROR, CD_ERR_FAILED, "cannot create a TLS context");
            return FALSE;
        }
        /* TLS 1.3 session tickets can stall libESMTP's post-STARTTLS EHLO. */
        SSL_CTX_set_max_proto_version(s->ssl, TLS1_2_VERSION);
        if (*cfg->smtp_ca_file) {
            if (SSL_CTX_load_verify_locations(s->ssl, cfg->smtp_ca_file, NULL) != 1) {
                g_set_error(err, CD_ERROR, CD_ERR_INVALID, "[smtp] ca_file: cannot load %s",
                            cfg->smtp_ca_file);
                return FALSE;
            }
        } else {
            SSL_CTX_set_default_verify_paths(s->ssl);
        }
    }
    if (*cfg->smtp_user) {
        GError *e = NULL;
        if (!g_file_get_contents(cfg->smtp_password_file, &s->password, NULL, &e)) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "[smtp] password_file: %s", e->message);
            g_error_free(e);
            return FALSE;
        }
        g_strchomp(s->password);
        s->user = g_strdup(cfg->smtp_user);
        /* libESMTP's SASL plugin table: initialised once per process. */
        static gsize auth_ready;
        if (g_once_init_enter(&auth_ready)) {
            auth_client_init();
            g_once_init_leave(&auth_ready, 1);
        }
    }
    return TRUE;
}

/* --------------------------------------------------------------- generic */

struct transport *transport_open(const struct config *cfg, GError **err)
{
    struct transport *t = g_new0(struct transport, 1);
    t->cfg = cfg;
    gboolean ok;
    if (strcmp(cfg->transport_kind, "maildir") == 0) {
        t->ops = &maildir_ops;
        ok = maildir_open(t, err);
    } else {
        t->ops = &smtp_ops;
        ok = smtp_open(t, err);
    }
    if (!ok) {
        transport_free(t);
        return NULL;
    }
    return t;
}

gboolean transport_send(struct transport *t, struct transport_msg *msgs, size_t n, transport_report_fn report,
                        void *arg)
{
    return t->ops->send(t, msgs, n, report, arg);
}

void transport_free(struct transport *t)
{
    if (!t)
        return;
    if (t->ops)
        t->ops->close(t);
    g_free(t);
}
