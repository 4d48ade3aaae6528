/* http.c - owns libmicrohttpd: the pages behind the links in our mails.
 *   GET  /u/TOKEN   a page with one button; GET never changes anything,
 *                   because link scanners and previews fetch every link.
 *   POST /u/TOKEN   body List-Unsubscribe=One-Click (RFC 8058, also what the
 *                   button sends): the unsubscribe is committed, then 200.
 *   GET  /c/TOKEN   a page with a Confirm button; POST /c/TOKEN confirms.
 *   GET  /m/TOKEN   the subscriber's own page (lib/manage.c); POST /m/TOKEN
 *                   its forms. GET /m.js its one script.
 *   GET  /metrics   Prometheus text format (lib/metrics.c), for the
 *                   addresses of [http] metrics_allow only.
 *   GET  /s/COURSE  the signup form; POST /s/COURSE starts the double
 *                   opt-in (lib/signup.c decides; the answer never says
 *                   what happened to the address, and echoes nothing).
 *   GET  /healthz   "ok" when the database answers.
 * Form bodies are read by libmicrohttpd's post processor into name ->
 * value; a request's path is taken as it was sent, and one with a
 * %-escape in it is refused (our links never have one, and a decoded %00
 * would cut a token short and make /u/TOKEN%00junk look like /u/TOKEN).
 * [http] listen may name several addresses (IPv4 and IPv6, parsed by
 * GLib): one libmicrohttpd daemon each, each with its own thread; a mutex
 * makes the requests of all of them take turns on the one database
 * connection of the pages. Connections are limited per client address
 * and in all (a slow client holds only its own share), a request's
 * headers must arrive within [http] header_timeout (a watchdog thread),
 * and form posts are limited per client address and minute.
 * Bad or forged tokens get a plain 400 or 404 page and change nothing.
 * The pages are a table (routes[]): a row names the methods, the path or
 * its prefix and the page_* function that answers; serve() picks the row.
 * The listener runs in libmicrohttpd's own thread. Each request takes the
 * current snapshot (config, courses, templates, key) from the box the
 * main loop publishes, so the pages and delivery never disagree after a
 * SIGHUP; the thread has its own SQLite connection, reopened when the
 * snapshot names another database. It shares no mutable state with the
 * delivery loop. */
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <gio/gio.h>
#include <microhttpd.h>
#include "http.h"
#include "app.h"
#include "clock.h"
#include "course.h"
#include "error.h"
#include "log.h"
#include "manage.h"
#include "metrics.h"
#include "optin.h"
#include "pace.h"
#include "signup.h"
#include "snapshot.h"
#include "token.h"

struct http {
    GPtrArray *mhd;           /* struct MHD_Daemon *, one per address of [http] listen */
    struct snapshot_box *box; /* borrowed: the daemon's */
    struct store *st;         /* the pages' connection (used under lock) */
    char *listen;             /* what it listens on, to know when to restart */
    GMutex lock;              /* one request at a time, whichever daemon it came to */
    GHashTable *posts;        /* client address -> struct post_count, under lock */
    /* The header deadline: libmicrohttpd's timeout is an inactivity timer
     * that every byte resets, so a client sending one byte a second would
     * hold its connection for ever. The watchdog shuts down every
     * connection whose request has not reached serve() within
     * header_timeout seconds of its start (or of the end of the request
     * before it on the same connection). */
    GMutex conns_lock;
    GHashTable *conns; /* struct conn_watch * (owned), under conns_lock */
    GThread *watchdog;
    gint stopping;
    gint64 header_timeout;        /* seconds */
    struct signup_limits *signup; /* the signup form's rate windows, under lock */
};

struct conn_watch {
    int fd;
    gint64 since;  /* monotonic µs: the connection, or its current request, began */
    gboolean seen; /* the current request's headers reached serve() */
};

/* Form posts of one client address in the current minute. */
struct post_count {
    gint64 minute; /* monotonic minutes */
    gint64 n;
};

/* A form's fields kept at most, and the bytes of one value. */
#define FORM_FIELDS_MAX 16
#define FORM_VALUE_MAX 512

struct request {
    char *raw_path;   /* the path as sent, before libmicrohttpd decoded it */
    gboolean begun;   /* the first call (headers only) was answered */
    GString *body;    /* a POST's raw body, its first POST_BODY_MAX bytes */
    GHashTable *form; /* a POST's fields (name -> GString), by the post processor */
    struct MHD_PostProcessor *pp;
    gboolean form_bad;  /* more fields or longer values than a form of ours has */
    gsize size;         /* all the bytes of the body, kept or not */
    gboolean too_large; /* Content-Length said more than POST_BODY_MAX */
};

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<meta name=\"robots\" content=\"noindex\">\n<title>%s</title>\n</head>\n"
    "<body style=\"margin:0;background:#f4f1ec;font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',"
    "Roboto,Helvetica,Arial,sans-serif;color:#222;\">\n"
    "<main style=\"max-width:560px;margin:48px auto;padding:32px;background:#fff;border-radius:8px;"
    "border:1px solid #e4ded4;line-height:1.6;font-size:17px;\">\n<h1 style=\"font-size:24px;"
    "margin-top:0;\">%s</h1>\n";
static const char page_tail[] = "</main>\n</body>\n</html>\n";

/* What every response carries: the pages hold tokens in their URLs, so
 * nothing may keep them (no-store), pass them on (no-referrer) or frame
 * them (frame-ancestors, X-Frame-Options); only our own script and forms
 * run. */
static void add_guard_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; "
                            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

static enum MHD_Result send_page(struct MHD_Connection *c, unsigned status, const char *title,
                                 const char *body_html)
{
    char *head = g_markup_printf_escaped(page_head, title, title);
    char *page = g_strconcat(head, body_html, page_tail, NULL);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(page), page, MHD_RESPMEM_MUST_FREE);
    g_free(head);
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    add_guard_headers(r);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static char *button_form(const char *action, const char *name, const char *value, const char *label,
                         const char *text)
{
    return g_markup_printf_escaped(
        "<p>%s</p>\n<form method=\"post\" action=\"%s\">\n"
        "<input type=\"hidden\" name=\"%s\" value=\"%s\">\n"
        "<button type=\"submit\" style=\"font-size:17px;padding:10px 22px;border-radius:6px;"
        "border:0;background:#8a3f20;color:#fff;cursor:pointer;\">%s</button>\n</form>\n",
        text, action, name, value, label);
}

/* 503 while the snapshot or the database cannot be had, or is busy. */
static enum MHD_Result send_busy(struct MHD_Connection *c)
{
    return send_page(c, MHD_HTTP_SERVICE_UNAVAILABLE, "Please try again",
                     "<p>We are busy for a moment. Please try again in a minute.</p>\n");
}

/* What a page is given: one request, on the view of this request's
 * snapshot. */
struct page_request {
    struct app *app;
    struct MHD_Connection *conn;
    const char *url;  /* the path asked for: a form posts back to it */
    const char *arg;  /* what follows a prefix route's path (the token); "" */
    GHashTable *form; /* a POST's fields, name -> value (char *); empty for GET */
    GInetAddress *client;
    gint64 now;
    struct signup_limits *signup; /* the listener's */
};

typedef enum MHD_Result (*page_fn)(const struct page_request *rq);

/* A request's body kept at most (the rest is read and dropped; a POST
 * over it is 413, and so is one that declares more): the forms and RFC
 * 8058 send a few bytes. */
#define POST_BODY_MAX 8192

/* The methods a route takes, as bits. */
enum { M_GET = 1, M_HEAD = 2, M_POST = 4, M_ANY = M_GET | M_HEAD | M_POST };

static unsigned method_bit(const char *method)
{
    if (!strcmp(method, "GET"))
        return M_GET;
    if (!strcmp(method, "HEAD"))
        return M_HEAD;
    return strcmp(method, "POST") ? 0 : M_POST;
}

static enum MHD_Result page_not_found(const struct page_request *rq)
{
    return send_page(rq->conn, MHD_HTTP_NOT_FOUND, "Not found", "<p>There is nothing here.</p>\n");
}

static enum MHD_Result page_not_allowed(const struct page_request *rq)
{
    return send_page(rq->conn, MHD_HTTP_METHOD_NOT_ALLOWED, "Not allowed", "<p>Only GET and POST.</p>\n");
}

/* GET /healthz: "ok" when the database answers. */
static enum MHD_Result page_health(const struct page_request *rq)
{
    GError *err = NULL;
    gboolean ok = store_idle(rq->app->st, &err) || err == NULL;
    g_clear_error(&err);
    const char *t = ok ? "ok\n" : "database unavailable\n";
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(t), (void *)t, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "text/plain");
    enum MHD_Result ret = MHD_queue_response(rq->conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, r);
    MHD_destroy_response(r);
    return ret;
}

/* 404 for a confirmation link past its lifetime, which the page names:
 * the configured [inbound] confirm_ttl, not a constant. */
static enum MHD_Result send_expired(const struct page_request *rq)
{
    gint64 ttl = rq->app->cfg->confirm_ttl;
    char *span = ttl % 3600 == 0
                     ? g_strdup_printf("%" G_GINT64_FORMAT " hour%s", ttl / 3600, ttl == 3600 ? "" : "s")
                     : g_strdup_printf("%" G_GINT64_FORMAT " minutes", ttl / 60);
    char *page = g_strdup_printf(
        "<p>Confirmation links work for %s. To start again, write "
        "&quot;subscribe&quot; to the course address.</p>\n",
        span);
    enum MHD_Result ret = send_page(rq->conn, MHD_HTTP_NOT_FOUND, "This link has expired", page);
    g_free(page);
    g_free(span);
    return ret;
}

/* The enrollment the link's token (rq->arg) names for purpose want, or NULL
 * with the page saying why queued in *ret: 400 for a damaged token or one
 * made for another purpose, 503 when the database is busy, 404 for one we
 * do not know or that expired. Nothing is changed. */
static struct enrollment_row *link_enrollment(const struct page_request *rq, enum token_purpose want,
                                              enum MHD_Result *ret)
{
    enum token_purpose purpose;
    if (!token_peek(rq->arg, &purpose, NULL, NULL) || purpose != want) {
        *ret = send_page(rq->conn, MHD_HTTP_BAD_REQUEST, "This link is not valid",
                         "<p>The link is incomplete or damaged. Please copy it from the mail again.</p>\n");
        return NULL;
    }
    GError *err = NULL;
    struct enrollment_row *e = optin_token_enrollment(rq->app, rq->arg, purpose, rq->now, &err);
    if (e)
        return e;
    gboolean busy = err && err->code == CD_ERR_BUSY;
    gboolean expired = err && strstr(err->message, "expired");
    g_clear_error(&err);
    if (busy)
        *ret = send_busy(rq->conn);
    else if (!expired)
        *ret = send_page(rq->conn, MHD_HTTP_NOT_FOUND, "This link is not valid",
                         "<p>We do not know this link. Nothing was changed.</p>\n");
    else
        *ret = send_expired(rq);
    return NULL;
}

/* GET /u/TOKEN: a page with one button, which posts what RFC 8058's
 * one-click POST carries. */
static enum MHD_Result page_leave_form(const struct page_request *rq)
{
    enum MHD_Result ret;
    struct enrollment_row *e = link_enrollment(rq, TOKEN_UNSUBSCRIBE, &ret);
    if (!e)
        return ret;
    char *html = e->state == ENR_STOPPED
                     ? g_markup_printf_escaped(
                           "<p>%s has already left this course. Nothing more will be sent.</p>\n", e->email)
                     : button_form(rq->url, "List-Unsubscribe", "One-Click", "Unsubscribe",
                                   "Press the button to stop the course for this address. One e-mail will "
                                   "confirm it; after that, nothing more will be sent.");
    ret = send_page(rq->conn, MHD_HTTP_OK, "Leave the course", html);
    g_free(html);
    store_enrollment_free(e);
    return ret;
}

/* POST /u/TOKEN: the unsubscribe is committed, then 200. */
static enum MHD_Result page_leave_post(const struct page_request *rq)
{
    enum MHD_Result ret;
    struct enrollment_row *e = link_enrollment(rq, TOKEN_UNSUBSCRIBE, &ret);
    if (!e)
        return ret;
    GError *err = NULL;
    /* RFC 8058: the one-click POST carries exactly this one field (as
     * application/x-www-form-urlencoded or multipart/form-data). */
    const char *one = g_hash_table_lookup(rq->form, "List-Unsubscribe");
    if (g_hash_table_size(rq->form) != 1 || !one || strcmp(one, "One-Click") != 0) {
        ret = send_page(rq->conn, MHD_HTTP_BAD_REQUEST, "Not understood", "<p>Nothing was changed.</p>\n");
    } else if (!optin_leave(rq->app, e->id, "link", rq->now, &err)) {
        log_err("one-click unsubscribe of enrollment %" G_GINT64_FORMAT ": %s", e->id, err->message);
        g_clear_error(&err);
        ret = send_page(rq->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "Please try again",
                        "<p>We could not record that just now. Please try again in a minute.</p>\n");
    } else {
        ret = send_page(rq->conn, MHD_HTTP_OK, "You have left the course",
                        "<p>Done. One e-mail will follow to confirm it; after that, nothing more "
                        "will be sent. We wish you well.</p>\n");
    }
    store_enrollment_free(e);
    return ret;
}

/* GET /c/TOKEN: a page with a Confirm button. */
static enum MHD_Result page_confirm_form(const struct page_request *rq)
{
    enum MHD_Result ret;
    struct enrollment_row *e = link_enrollment(rq, TOKEN_CONFIRM, &ret);
    if (!e)
        return ret;
    char *html =
        e->state != ENR_PENDING
            ? g_strdup("<p>This subscription is already confirmed.</p>\n")
            : button_form(
                  rq->url, "confirm", "yes", "Confirm",
                  "Press the button to confirm that you want to receive this course at this address.");
    ret = send_page(rq->conn, MHD_HTTP_OK, "Confirm your subscription", html);
    g_free(html);
    store_enrollment_free(e);
    return ret;
}

/* POST /c/TOKEN: confirms a pending subscription. */
static enum MHD_Result page_confirm_post(const struct page_request *rq)
{
    enum MHD_Result ret;
    struct enrollment_row *e = link_enrollment(rq, TOKEN_CONFIRM, &ret);
    if (!e)
        return ret;
    GError *err = NULL;
    if (e->state != ENR_PENDING) {
        ret = send_page(rq->conn, MHD_HTTP_OK, "Already confirmed",
                        "<p>This subscription is already confirmed.</p>\n");
    } else if (optin_confirm(rq->app, rq->arg, "link", rq->now, &err) < 0) {
        log_warn("confirm by link: %s", err->message);
        int code = err->code == CD_ERR_BUSY ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_BAD_REQUEST;
        g_clear_error(&err);
        ret = send_page(rq->conn, code, "Not confirmed",
                        "<p>We could not confirm this subscription. "
                        "Please try again in a minute.</p>\n");
    } else {
        ret = send_page(
            rq->conn, MHD_HTTP_OK, "You are in",
            "<p>Thank you. Your first step arrives at its time, with a welcome mail before it.</p>\n");
    }
    store_enrollment_free(e);
    return ret;
}

/* A page of lib/manage.c, sent as the others. */
static enum MHD_Result send_manage(const struct page_request *rq, struct manage_reply *m)
{
    enum MHD_Result ret = send_page(rq->conn, m->status, m->title, m->html);
    manage_reply_clear(m);
    return ret;
}

/* GET /m/TOKEN: the subscriber's own page; changes nothing. */
static enum MHD_Result page_manage(const struct page_request *rq)
{
    struct manage_reply m = { 0 };
    manage_get(rq->app, rq->arg, rq->url, rq->now, &m);
    return send_manage(rq, &m);
}

/* POST /m/TOKEN: one of its forms. */
static enum MHD_Result page_manage_post(const struct page_request *rq)
{
    struct manage_reply m = { 0 };
    manage_post(rq->app, rq->arg, rq->url, rq->form, rq->now, &m);
    return send_manage(rq, &m);
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, char *text)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    add_guard_headers(r);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* GET /m.js: the manage page's script. */
static enum MHD_Result page_manage_script(const struct page_request *rq)
{
    return send_text(rq->conn, MHD_HTTP_OK, "text/javascript; charset=utf-8", g_strdup(manage_script()));
}

/* TRUE if client is inside one of the addresses and networks of allow
 * (comma-separated, as GInetAddressMask reads them; checked at load). */
static gboolean client_allowed(const char *allow, GInetAddress *client)
{
    if (!client)
        return FALSE;
    gboolean ok = FALSE;
    char **parts = g_strsplit(allow, ",", -1);
    for (char **p = parts; *p && !ok; p++) {
        char *one = g_strstrip(*p);
        if (!*one)
            continue;
        GInetAddressMask *mask = g_inet_address_mask_new_from_string(one, NULL);
        ok = mask && g_inet_address_mask_matches(mask, client);
        if (mask)
            g_object_unref(mask);
    }
    g_strfreev(parts);
    return ok;
}

/* GET /metrics: the Prometheus text format, for [http] metrics_allow. */
static enum MHD_Result page_metrics(const struct page_request *rq)
{
    if (!client_allowed(rq->app->cfg->http_metrics_allow, rq->client))
        return send_page(rq->conn, MHD_HTTP_FORBIDDEN, "Not allowed",
                         "<p>Metrics are not shown to this address.</p>\n");
    GError *err = NULL;
    char *text = metrics_text(rq->app, rq->now, &err);
    if (!text) {
        log_warn("/metrics: %s", err->message);
        g_clear_error(&err);
        return send_busy(rq->conn);
    }
    return send_text(rq->conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text);
}

struct route {
    unsigned methods; /* M_GET | M_HEAD | M_POST */
    enum { ROUTE_EXACT, ROUTE_PREFIX } match;
    const char *path; /* the whole path, or its prefix: the rest is rq->arg */
    page_fn page;
};

/* The pages, as data: serve() answers a request with the first row whose
 * method and path match it. A method other than GET, HEAD and POST is 405,
 * so is a path whose rows take other methods; a path no row has is 404.
 * A POST's body is read whole before the row's page runs, and every page
 * runs on the view of the request's snapshot, with this thread's store.
 * Adding a page (the signup form, GET and POST /s/<course>; a subscriber's
 * own page) is one row here plus one page_* function: serve(), the body
 * handling and the snapshot need no change. */
/* The signup pages (GET and POST /s/COURSE). */

/* Sends a whole HTML document of lib/signup.c; its CSP lets the page's one
 * inline script (the zone) run, and the form post to this origin. */
static enum MHD_Result send_signup(struct MHD_Connection *c, unsigned status, char *html)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(html), html, MHD_RESPMEM_MUST_FREE);
    char *csp = g_strdup_printf(
        "default-src 'none'; style-src 'unsafe-inline'; script-src %s; "
        "form-action 'self'; frame-ancestors 'none'",
        signup_script_csp());
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Content-Security-Policy", csp);
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    g_free(csp);
    return ret;
}

/* GET /s/COURSE: the signup page; a query string changes nothing. */
static enum MHD_Result page_signup_form(const struct page_request *rq)
{
    char *html = signup_page(rq->app, rq->arg, NULL);
    return html ? send_signup(rq->conn, MHD_HTTP_OK, html) : page_not_found(rq);
}

/* The value of a form field, or NULL when it is absent; "" when it is not
 * UTF-8 (the post processor's reader already refused a NUL byte). */
static const char *field(GHashTable *form, const char *key)
{
    const char *v = g_hash_table_lookup(form, key);
    if (!v)
        return NULL;
    return g_utf8_validate(v, -1, NULL) ? v : "";
}

/* The client's address as text (for the rate limits and, with [http]
 * record_ip, the consent record), or "" when it cannot be had. Behind a
 * proxy on this machine (the peer is loopback) it is the last address of
 * X-Forwarded-For: the one the proxy added ($proxy_add_x_forwarded_for),
 * whatever a client put before it; otherwise every signup would count
 * against the proxy's address. */
static void client_ip(const struct page_request *rq, char *out, size_t n)
{
    *out = 0;
    if (!rq->client)
        return;
    char *text = g_inet_address_to_string(rq->client);
    g_strlcpy(out, text, n);
    g_free(text);
    const char *xff = g_inet_address_get_is_loopback(rq->client)
                          ? MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "X-Forwarded-For")
                          : NULL;
    if (!xff)
        return;
    const char *last = strrchr(xff, ',');
    char *one = g_strstrip(g_strdup(last ? last + 1 : xff));
    GInetAddress *fwd = g_inet_address_new_from_string(one);
    if (fwd) {
        char *t = g_inet_address_to_string(fwd);
        g_strlcpy(out, t, n);
        g_free(t);
        g_object_unref(fwd);
    }
    g_free(one);
}

/* Whether the POST's body is a form (urlencoded or multipart): anything
 * else is 415. */
static gboolean is_form(struct MHD_Connection *conn)
{
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    return ct && (g_ascii_strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0 ||
                  g_ascii_strncasecmp(ct, "multipart/form-data", 19) == 0);
}

/* POST /s/COURSE: a form post (read by libmicrohttpd's post processor into
 * rq->form) handed to signup_submit(). Every outcome for an address
 * answers alike. */
static enum MHD_Result page_signup_post(const struct page_request *rq)
{
    if (!course_find(rq->app->courses, rq->arg))
        return page_not_found(rq);
    if (!is_form(rq->conn))
        return send_page(rq->conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "Not understood",
                         "<p>Please use the signup form. Nothing was changed.</p>\n");
    char ip[64];
    client_ip(rq, ip, sizeof ip);
    const char *ua = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT);
    char *agent = ua ? g_utf8_make_valid(ua, MIN((gssize)strlen(ua), 512)) : NULL;
    struct signup_post post = { field(rq->form, "email"),
                                field(rq->form, "name"),
                                field(rq->form, "tz"),
                                field(rq->form, "website"),
                                field(rq->form, "form"),
                                ip,
                                agent };
    GError *err = NULL;
    int rc = signup_submit(rq->app, rq->signup, rq->arg, &post, rq->now, &err);
    g_free(agent);
    enum MHD_Result ret;
    if (rc < 0) {
        log_err("signup form of %s: %s", rq->arg, err->message);
        g_clear_error(&err);
        ret = send_busy(rq->conn);
    } else if (rc == SIGNUP_NO_COURSE) {
        ret = page_not_found(rq);
    } else if (rc == SIGNUP_LIMITED) {
        ret = send_page(rq->conn, MHD_HTTP_TOO_MANY_REQUESTS, "Please try again later",
                        "<p>There were too many sign-ups from here in the last hour. "
                        "Nothing was changed. Please try again later.</p>\n");
    } else if (rc == SIGNUP_BAD_EMAIL) {
        ret = send_signup(rq->conn, MHD_HTTP_BAD_REQUEST,
                          signup_page(rq->app, rq->arg,
                                      "Please enter a whole email address, like name@example.org."));
    } else {
        ret = send_page(rq->conn, MHD_HTTP_OK, "Check your mail",
                        "<p>We have sent a mail with a link to confirm, if this address can "
                        "receive this course. Nothing else is sent until you confirm.</p>\n"
                        "<p>Nothing within the hour? Look in your spam folder, or try again.</p>\n");
    }
    return ret;
}

static const struct route routes[] = {
    { M_GET | M_HEAD, ROUTE_PREFIX, "/c/", page_confirm_form },
    { M_POST, ROUTE_PREFIX, "/c/", page_confirm_post },
    { M_GET | M_HEAD, ROUTE_PREFIX, "/u/", page_leave_form },
    { M_POST, ROUTE_PREFIX, "/u/", page_leave_post },
    { M_GET | M_HEAD, ROUTE_EXACT, "/m.js", page_manage_script },
    { M_GET | M_HEAD, ROUTE_PREFIX, "/m/", page_manage },
    { M_POST, ROUTE_PREFIX, "/m/", page_manage_post },
    { M_GET | M_HEAD, ROUTE_EXACT, "/metrics", page_metrics },
    { M_GET | M_HEAD, ROUTE_PREFIX, "/s/", page_signup_form },
    { M_POST, ROUTE_PREFIX, "/s/", page_signup_post },
    { M_ANY, ROUTE_EXACT, "/healthz", page_health },
};

/* The row of routes[] for this method and path, or a 405 or 404 one; *arg
 * is what follows a prefix ("" otherwise). */
static const struct route *route_find(unsigned method, const char *url, const char **arg)
{
    static const struct route not_allowed = { 0, ROUTE_EXACT, "", page_not_allowed };
    static const struct route not_found = { 0, ROUTE_EXACT, "", page_not_found };
    const struct route *fallback = method ? &not_found : &not_allowed;
    *arg = "";
    for (size_t i = 0; i < G_N_ELEMENTS(routes); i++) {
        const struct route *r = &routes[i];
        if (r->match == ROUTE_PREFIX ? !g_str_has_prefix(url, r->path) : strcmp(url, r->path) != 0)
            continue;
        if (!(r->methods & method)) {
            fallback = &not_allowed;
            continue;
        }
        if (r->match == ROUTE_PREFIX)
            *arg = url + strlen(r->path);
        return r;
    }
    return fallback;
}

/* Marks the current request of connection c as having reached serve()
 * (seen), or a new request as beginning now (!seen). */
static void conn_seen(struct http *h, struct MHD_Connection *c, gboolean seen)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_watch *w = ci ? ci->socket_context : NULL;
    if (!w)
        return;
    g_mutex_lock(&h->conns_lock);
    if (seen != w->seen) {
        w->seen = seen;
        w->since = g_get_monotonic_time();
    }
    g_mutex_unlock(&h->conns_lock);
}

/* libmicrohttpd's connection callback: every connection is watched from
 * its start to its close. */
static void conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    struct http *h = cls;
    g_mutex_lock(&h->conns_lock);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn_watch *w = g_new0(struct conn_watch, 1);
        w->fd = ci ? ci->connect_fd : -1;
        w->since = g_get_monotonic_time();
        g_hash_table_add(h->conns, w);
        *socket_context = w;
    } else if (*socket_context) {
        g_hash_table_remove(h->conns, *socket_context); /* frees it */
        *socket_context = NULL;
    }
    g_mutex_unlock(&h->conns_lock);
}

/* The watchdog thread: twice a second, shuts down the connections past
 * their header deadline (libmicrohttpd then sees the end and closes them;
 * the fd stays theirs until the close callback, which takes the lock). */
static gpointer watchdog(gpointer arg)
{
    struct http *h = arg;
    while (!g_atomic_int_get(&h->stopping)) {
        g_usleep(G_USEC_PER_SEC / 2);
        gint64 limit = g_get_monotonic_time() - h->header_timeout * G_USEC_PER_SEC;
        g_mutex_lock(&h->conns_lock);
        GHashTableIter it;
        gpointer key;
        g_hash_table_iter_init(&it, h->conns);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
            struct conn_watch *w = key;
            if (!w->seen && w->since < limit && w->fd >= 0) {
                shutdown(w->fd, SHUT_RDWR);
                w->seen = TRUE; /* once */
            }
        }
        g_mutex_unlock(&h->conns_lock);
    }
    return NULL;
}

/* libmicrohttpd's URI log callback: runs first for every request, with
 * the path as the client sent it (before decoding); its result is the
 * request's state, freed by request_done. */
static void *request_begin(void *cls, const char *uri, struct MHD_Connection *c)
{
    (void)cls;
    (void)c;
    struct request *rq = g_new0(struct request, 1);
    const char *q = strchr(uri, '?');
    rq->raw_path = q ? g_strndup(uri, (gsize)(q - uri)) : g_strdup(uri);
    rq->body = g_string_new(NULL);
    rq->form = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    return rq;
}

/* The post processor's iterator: each piece of a field's value, appended
 * (bounded: a form of ours has a few short fields). */
static enum MHD_Result form_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                  const char *content_type, const char *transfer_encoding, const char *data,
                                  uint64_t off, size_t size)
{
    (void)kind;
    (void)filename;
    (void)content_type;
    (void)transfer_encoding;
    (void)off;
    struct request *rq = cls;
    char *old = g_hash_table_lookup(rq->form, key);
    if (!old && g_hash_table_size(rq->form) >= FORM_FIELDS_MAX) {
        rq->form_bad = TRUE;
        return MHD_NO;
    }
    gsize have = old ? strlen(old) : 0;
    if (have + size > FORM_VALUE_MAX || memchr(data, '\0', size)) {
        rq->form_bad = TRUE;
        return MHD_NO;
    }
    char *value = g_malloc(have + size + 1);
    if (have)
        memcpy(value, old, have);
    memcpy(value + have, data, size);
    value[have + size] = '\0';
    g_hash_table_replace(rq->form, g_strdup(key), value);
    return MHD_YES;
}

/* libmicrohttpd calls serve() several times for one POST: first with the
 * headers only (the post processor is made then), then once per piece of
 * the body (kept up to POST_BODY_MAX and fed to the post processor; every
 * piece is consumed), then once with nothing uploaded, which is answered.
 * Returns TRUE while the body is not complete. */
static gboolean post_body_pending(struct MHD_Connection *conn, struct request *rq, const char *upload,
                                  size_t *upload_size)
{
    if (!rq->begun) {
        rq->begun = TRUE;
        /* NULL for a body that is not a form: then it has no fields */
        rq->pp = MHD_create_post_processor(conn, 1024, form_field, rq);
        return TRUE;
    }
    if (!*upload_size)
        return FALSE;
    rq->size += *upload_size;
    if (rq->body->len < POST_BODY_MAX) {
        gsize keep = MIN(*upload_size, POST_BODY_MAX - rq->body->len);
        g_string_append_len(rq->body, upload, (gssize)keep);
        if (rq->pp && !rq->form_bad && MHD_post_process(rq->pp, upload, keep) != MHD_YES)
            rq->form_bad = TRUE;
    } else {
        rq->form_bad = TRUE; /* longer than any form of ours */
    }
    *upload_size = 0;
    return TRUE;
}

/* Whether a POST says (Content-Length) that its body is over
 * POST_BODY_MAX: it is refused with 413 before a byte of it is read (a
 * client that sent Expect: 100-continue sends none). A body without the
 * header is counted as it comes (struct request's size). */
static gboolean declared_too_large(struct MHD_Connection *conn)
{
    const char *len = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    guint64 n = 0;
    return len && g_ascii_string_to_unsigned(len, 10, 0, G_MAXUINT64, &n, NULL) && n > POST_BODY_MAX;
}

/* The database connection of the pages, on the snapshot's database. */
static gboolean use_database(struct http *h, const struct snapshot *snap)
{
    if (h->st && !strcmp(store_path(h->st), snap->cfg->database))
        return TRUE;
    GError *err = NULL;
    struct store *st = store_open(snap->cfg->database, FALSE, &err);
    if (!st) {
        log_err("HTTP pages: %s", err->message);
        g_clear_error(&err);
        return FALSE;
    }
    store_close(h->st);
    h->st = st;
    return TRUE;
}

/* The client's address, or NULL. g_object_unref(). */
static GInetAddress *client_address(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr)
        return NULL;
    gsize len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                       : sizeof(struct sockaddr_in);
    GSocketAddress *sa = g_socket_address_new_from_native(ci->client_addr, len);
    if (!sa)
        return NULL;
    GInetAddress *a = G_IS_INET_SOCKET_ADDRESS(sa)
                          ? g_object_ref(g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(sa)))
                          : NULL;
    g_object_unref(sa);
    return a;
}

/* FALSE when client has posted [http] posts_per_minute forms this minute
 * (real time: a frozen --now must not freeze the limit). Under h->lock. */
static gboolean post_allowed(struct http *h, GInetAddress *client, gint64 per_minute)
{
    char *key = client ? g_inet_address_to_string(client) : g_strdup("?");
    gint64 minute = g_get_monotonic_time() / (60 * G_USEC_PER_SEC);
    if (g_hash_table_size(h->posts) > 10000)
        g_hash_table_remove_all(h->posts); /* bounded memory: a flood of addresses resets the count */
    struct post_count *pc = g_hash_table_lookup(h->posts, key);
    if (!pc) {
        pc = g_new0(struct post_count, 1);
        g_hash_table_insert(h->posts, key, pc);
    } else {
        g_free(key);
    }
    if (pc->minute != minute) {
        pc->minute = minute;
        pc->n = 0;
    }
    return ++pc->n <= per_minute;
}

/* libmicrohttpd's access handler: every call takes the current snapshot
 * and the pages' store on its database (503 when either is missing), a
 * POST reads its body, then the route's page answers. */
static enum MHD_Result serve(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                             const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
    (void)version;
    struct http *h = cls;
    struct request *req = *req_cls;
    unsigned m = method_bit(method);
    if (!req->begun || m != M_POST)
        conn_seen(h, conn, TRUE);
    if (m == M_POST && !req->begun && declared_too_large(conn))
        req->begun = req->too_large = TRUE; /* answered now: nothing of the body is read */
    else if (m == M_POST && post_body_pending(conn, req, upload, upload_size))
        return MHD_YES;
    g_mutex_lock(&h->lock);
    struct snapshot *snap = snapshot_box_get(h->box);
    enum MHD_Result ret = MHD_YES;
    GInetAddress *client = client_address(conn);
    if (!snap || !use_database(h, snap)) {
        ret = send_busy(conn);
    } else if (strchr(req->raw_path, '%')) {
        ret = send_page(conn, MHD_HTTP_BAD_REQUEST, "This link is not valid",
                        "<p>The link is incomplete or damaged. Please copy it from the mail again.</p>\n");
    } else if (m == M_POST && !post_allowed(h, client, snap->cfg->http_posts_per_minute)) {
        ret = send_page(conn, MHD_HTTP_TOO_MANY_REQUESTS, "Please slow down",
                        "<p>Too many requests from this address. Please try again in a minute.</p>\n");
    } else if (m == M_POST && (req->too_large || req->size > POST_BODY_MAX)) {
        ret = send_page(conn, MHD_HTTP_CONTENT_TOO_LARGE, "Too large",
                        "<p>That was more than a form sends. Nothing was changed.</p>\n");
    } else if (m == M_POST && req->form_bad) {
        ret = send_page(conn, MHD_HTTP_BAD_REQUEST, "Not understood", "<p>Nothing was changed.</p>\n");
    } else {
        struct app view = app_view(snap, h->st);
        struct page_request rq = { &view, conn, url, "", req->form, client, clock_now(), h->signup };
        const struct route *r = route_find(m, url, &rq.arg);
        ret = r->page(&rq);
    }
    if (client)
        g_object_unref(client);
    snapshot_unref(snap);
    pace_thread_done();
    g_mutex_unlock(&h->lock);
    return ret;
}

static void request_done(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    conn_seen(cls, c, FALSE); /* the next request on it has its own deadline */
    struct request *rq = *req_cls;
    if (rq) {
        if (rq->pp)
            MHD_destroy_post_processor(rq->pp);
        g_hash_table_destroy(rq->form);
        g_string_free(rq->body, TRUE);
        g_free(rq->raw_path);
        g_free(rq);
        *req_cls = NULL;
    }
}

/* One address of [http] listen ("127.0.0.1:8025", "[::1]:8025"), read by
 * GLib: a literal IP address and a port (0: the kernel picks one). NULL
 * with err naming the setting and the part. g_object_unref(). */
static GInetSocketAddress *listen_address(const char *part, GError **err)
{
    GError *e = NULL;
    GSocketConnectable *na = g_network_address_parse(part, 0, &e);
    const char *colon = strrchr(part, ':');
    const char *bracket = strrchr(part, ']');
    /* GLib reads "::1:8025" as the address ::1:8025 and no port: an IPv6
     * address must be in brackets, so that a port is never mistaken. */
    gboolean has_port = colon && (!bracket || colon > bracket) && colon[1] &&
                        (bracket || strchr(part, ':') == colon);
    if (!na || !has_port) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "[http] listen: '%s' is not ADDRESS:PORT (%s; IPv6 goes in brackets: [::1]:8025)", part,
                    e ? e->message : "no port");
        g_clear_error(&e);
        if (na)
            g_object_unref(na);
        return NULL;
    }
    GNetworkAddress *n = G_NETWORK_ADDRESS(na);
    GInetAddress *ia = g_inet_address_new_from_string(g_network_address_get_hostname(n));
    GInetSocketAddress *sa = NULL;
    if (!ia)
        g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                    "[http] listen: '%s': '%s' is not an IP address (IPv6 goes in brackets: [::1]:8025)",
                    part, g_network_address_get_hostname(n));
    else
        sa = G_INET_SOCKET_ADDRESS(g_inet_socket_address_new(ia, g_network_address_get_port(n)));
    if (ia)
        g_object_unref(ia);
    g_object_unref(na);
    return sa;
}

/* Starts one daemon on sa; NULL with err. */
static struct MHD_Daemon *listen_on(struct http *h, GInetSocketAddress *sa, const char *part,
                                    const struct config *cfg, GError **err)
{
    struct sockaddr_storage native;
    if (!g_socket_address_to_native(G_SOCKET_ADDRESS(sa), &native, sizeof native, err))
        return NULL;
    gboolean v6 = g_inet_address_get_family(g_inet_socket_address_get_address(sa)) == G_SOCKET_FAMILY_IPV6;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, g_inet_socket_address_get_port(sa), NULL, NULL, serve, h, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&native, MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->http_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)cfg->http_connections_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)15, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(64 * 1024), MHD_OPTION_URI_LOG_CALLBACK, request_begin, NULL, MHD_OPTION_NOTIFY_COMPLETED,
        request_done, h, MHD_OPTION_NOTIFY_CONNECTION, conn_notify, h, MHD_OPTION_END);
    if (!d) {
        g_set_error(err, CD_ERROR, CD_ERR_IO, "[http] listen: cannot listen on %s", part);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char *host = g_inet_address_to_string(g_inet_socket_address_get_address(sa));
    log_info("HTTP pages on http://%s%s%s:%u/", v6 ? "[" : "", host, v6 ? "]" : "",
             di ? (unsigned)di->port : (unsigned)g_inet_socket_address_get_port(sa));
    g_free(host);
    return d;
}

/* FALSE with err naming the setting and the part when [http]
 * metrics_allow has a part that is not an address or network. */
static gboolean allow_check(const char *allow, GError **err)
{
    char **parts = g_strsplit(allow, ",", -1);
    gboolean ok = TRUE;
    for (char **p = parts; *p && ok; p++) {
        char *one = g_strstrip(*p);
        GError *e = NULL;
        GInetAddressMask *mask = *one ? g_inet_address_mask_new_from_string(one, &e) : NULL;
        if (*one && !mask) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "[http] metrics_allow: '%s' is not an address or network (%s)", one, e->message);
            ok = FALSE;
        }
        g_clear_error(&e);
        if (mask)
            g_object_unref(mask);
    }
    g_strfreev(parts);
    return ok;
}

struct http *http_start(struct snapshot_box *box, GError **err)
{
    struct snapshot *snap = snapshot_box_get(box);
    const char *spec = snap->cfg->http_listen;
    if (!*spec) {
        snapshot_unref(snap);
        return NULL;
    }
    /* Every address is read before anything listens: a bad one starts none. */
    GPtrArray *addrs = g_ptr_array_new_with_free_func(g_object_unref);
    GPtrArray *names = g_ptr_array_new(); /* each address as written (borrowed from parts) */
    char **parts = g_strsplit(spec, ",", -1);
    gboolean ok = TRUE;
    for (char **p = parts; ok && *p; p++) {
        char *part = g_strstrip(*p);
        GInetSocketAddress *sa = *part ? listen_address(part, err) : NULL;
        if (*part && !sa)
            ok = FALSE;
        else if (sa) {
            g_ptr_array_add(addrs, sa);
            g_ptr_array_add(names, part);
        }
    }
    ok = ok && allow_check(snap->cfg->http_metrics_allow, err);
    if (ok && !addrs->len) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "[http] listen: '%s' names no address", spec);
        ok = FALSE;
    }
    struct http *h = NULL;
    if (ok) {
        h = g_new0(struct http, 1);
        h->box = box;
        h->listen = g_strdup(spec);
        h->mhd = g_ptr_array_new();
        h->posts = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        h->signup = signup_limits_new();
        g_mutex_init(&h->lock);
        g_mutex_init(&h->conns_lock);
        h->conns = g_hash_table_new_full(g_direct_hash, g_direct_equal, g_free, NULL);
        h->header_timeout = snap->cfg->http_header_timeout;
        h->watchdog = g_thread_new("http-watchdog", watchdog, h);
        h->st = store_open(snap->cfg->database, FALSE, err);
        ok = h->st != NULL;
    }
    for (guint i = 0; ok && i < addrs->len; i++) {
        struct MHD_Daemon *d = listen_on(h, addrs->pdata[i], names->pdata[i], snap->cfg, err);
        if (d)
            g_ptr_array_add(h->mhd, d);
        ok = d != NULL;
    }
    g_ptr_array_unref(names);
    g_strfreev(parts);
    g_ptr_array_unref(addrs);
    snapshot_unref(snap);
    if (!ok) {
        http_stop(h);
        return NULL;
    }
    return h;
}

const char *http_listen(const struct http *h)
{
    return h ? h->listen : "";
}

void http_stop(struct http *h)
{
    if (!h)
        return;
    for (guint i = 0; h->mhd && i < h->mhd->len; i++)
        MHD_stop_daemon(h->mhd->pdata[i]);
    if (h->watchdog) {
        g_atomic_int_set(&h->stopping, 1);
        g_thread_join(h->watchdog);
    }
    if (h->conns)
        g_hash_table_destroy(h->conns);
    g_mutex_clear(&h->conns_lock);
    if (h->mhd)
        g_ptr_array_unref(h->mhd);
    if (h->posts)
        g_hash_table_destroy(h->posts);
    signup_limits_free(h->signup);
    store_close(h->st);
    g_mutex_clear(&h->lock);
    g_free(h->listen);
    g_free(h);
}
