/* transport.h - how a finished message leaves coursed. A transport is a
 * struct of function pointers (like OpenSMTPD's queue_backend), so the
 * delivery engine does not know whether it talks SMTP or writes files. */
#ifndef COURSED_TRANSPORT_H
#define COURSED_TRANSPORT_H
#include <glib.h>

struct config;

enum transport_outcome {
    TRANSPORT_OK = 0, /* accepted */
    TRANSPORT_TEMP,   /* 4xx, network error, not attempted: retry later */
    TRANSPORT_PERM,   /* 5xx: never retry */
    TRANSPORT_UNSENT, /* never handed to a session (the daemon is stopping) */
};

struct transport_msg {
    /* in */
    const char *env_from;
    const char *rcpt;
    const char *data; /* CRLF message */
    gsize len;
    gint64 id;        /* for log lines: the delivery id, or the outbox id of a system mail */
    const char *what; /* for log lines: "system mail" for an outbox id; NULL: "delivery" */
    guint tag;        /* the caller's: which of its rows this is */
    /* out */
    enum transport_outcome outcome;
    int code;          /* SMTP reply code (250, 451, 550...), 0 if none */
    char status[16];   /* enhanced status code, "" if none */
    char *text;        /* reply text or error; g_free()d by transport_msg_clear */
    gboolean reported; /* the report callback has seen this message */
};

/* Called once per message, in the session's thread, as soon as its outcome
 * is final: for SMTP when the reply to its final dot (or its refusal)
 * arrives, not at the end of the session, so that a crash can leave sent
 * but unrecorded only what is in the caller's commit window. m is borrowed
 * for the call only. */
typedef void (*transport_report_fn)(const struct transport_msg *m, void *arg);

struct transport;

struct transport_ops {
    const char *name;
    /* Send n messages (one SMTP session or one batch of files); fill the out
     * fields of every message. Returns FALSE only if the transport itself
     * is broken (every message is then TEMP). */
    gboolean (*send)(struct transport *t, struct transport_msg *msgs, size_t n, transport_report_fn report,
                     void *arg);
    void (*close)(struct transport *t);
};

struct transport {
    const struct transport_ops *ops;
    const struct config *cfg; /* borrowed; outlives the transport */
    void *priv;
};

/* Returns the transport that cfg asks for, or NULL with err (unreadable
 * password file, bad maildir). Free with transport_free(). */
struct transport *transport_open(const struct config *cfg, GError **err);
/* Sends n messages and fills their out fields; report (may be NULL) hears
 * each one as soon as it is final. */
gboolean transport_send(struct transport *t, struct transport_msg *msgs, size_t n, transport_report_fn report,
                        void *arg);
void transport_free(struct transport *t);
void transport_msg_clear(struct transport_msg *m);

#endif
