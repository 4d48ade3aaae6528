/* http.c - owns libmicrohttpd: the pages behind the links in our mails.
 *   GET  /u/TOKEN   a page with one button; GET never changes anything,
 *                   because link scanners and previews fetch every link.
 *   POST /u/TOKEN   body List-Unsubscribe=One-Click (RFC 8058, also what the
 *                   button sends): the unsubscribe is committed, then 200.
 *   GET  /c/TOKEN   a page with a Confirm button; POST /c/TOKEN confirms.
 *   GET  /healthz   "ok" when the database answers.
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
#include <microhttpd.h>
#include "http.h"
#include "app.h"
#include "clock.h"
#include "error.h"
#include "log.h"
#include "optin.h"
#include "pace.h"
#include "snapshot.h"
#include "token.h"

struct http {
    struct MHD_Daemon *mhd;
    struct snapshot_box *box; /* borrowed: the daemon's */
    struct store *st;         /* this thread's connection */
    char *listen;             /* what it listens on, to know when to restart */
};

struct request {
    GString *body;
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

static enum MHD_Result send_page(struct MHD_Connection *c, unsigned status, const char *title,
                                 const char *body_html)
{
    char *head = g_markup_printf_escaped(page_head, title, title);
    char *page = g_strconcat(head, body_html, page_tail, NULL);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(page), page, MHD_RESPMEM_MUST_FREE);
    g_free(head);
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
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
    const char *body; /* a POST's body (its first POST_BODY_MAX bytes); "" */
    gint64 now;
};

typedef enum MHD_Result (*page_fn)(const struct page_request *rq);

/* A request's body kept at most (the rest is read and dropped): the forms
 * and RFC 8058 send a few bytes. */
#define POST_BODY_MAX 4096

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
    /* RFC 8058: the one-click POST carries exactly this body. */
    if (!strstr(rq->body, "List-Unsubscribe=One-Click")) {
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
static const struct route routes[] = {
    { M_GET | M_HEAD, ROUTE_PREFIX, "/c/", page_confirm_form },
    { M_POST, ROUTE_PREFIX, "/c/", page_confirm_post },
    { M_GET | M_HEAD, ROUTE_PREFIX, "/u/", page_leave_form },
    { M_POST, ROUTE_PREFIX, "/u/", page_leave_post },
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

/* libmicrohttpd calls serve() several times for one POST: first with no
 * state (*req_cls NULL: it is made here and freed by request_done), then
 * once per piece of the body (appended, up to POST_BODY_MAX; every piece
 * is consumed), then once with nothing uploaded, which is answered.
 * Returns TRUE while the body is not complete. */
static gboolean post_body_pending(const char *upload, size_t *upload_size, void **req_cls)
{
    struct request *rq = *req_cls;
    if (!rq) {
        *req_cls = rq = g_new0(struct request, 1);
        rq->body = g_string_new(NULL);
        return TRUE;
    }
    if (!*upload_size)
        return FALSE;
    if (rq->body->len < POST_BODY_MAX)
        g_string_append_len(rq->body, upload, (gssize)MIN(*upload_size, POST_BODY_MAX - rq->body->len));
    *upload_size = 0;
    return TRUE;
}

/* The database connection of this thread, on the snapshot's database. */
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

/* libmicrohttpd's access handler: every call takes the current snapshot
 * and this thread's store on its database (503 when either is missing),
 * a POST reads its body, then the route's page answers. */
static enum MHD_Result serve(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                             const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
    (void)version;
    struct http *h = cls;
    struct snapshot *snap = snapshot_box_get(h->box);
    unsigned m = method_bit(method);
    enum MHD_Result ret = MHD_YES;
    if (!snap || !use_database(h, snap)) {
        ret = send_busy(conn);
    } else if (m != M_POST || !post_body_pending(upload, upload_size, req_cls)) {
        struct app view = app_view(snap, h->st);
        const struct request *post = *req_cls;
        struct page_request rq = { &view, conn, url, "", post ? post->body->str : "", clock_now() };
        const struct route *r = route_find(m, url, &rq.arg);
        ret = r->page(&rq);
    }
    snapshot_unref(snap);
    pace_thread_done();
    return ret;
}

static void request_done(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct request *rq = *req_cls;
    if (rq) {
        g_string_free(rq->body, TRUE);
        g_free(rq);
        *req_cls = NULL;
    }
}

struct http *http_start(struct snapshot_box *box, GError **err)
{
    struct snapshot *snap = snapshot_box_get(box);
    const char *spec = snap->cfg->http_listen;
    if (!*spec) {
        snapshot_unref(snap);
        return NULL;
    }
    const char *colon = strrchr(spec, ':');
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    char *host = colon ? g_strndup(spec, colon - spec) : g_strdup(spec);
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    if (!colon || port < 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "[http] listen: '%s' is not IPv4-ADDRESS:PORT", spec);
        g_free(host);
        snapshot_unref(snap);
        return NULL;
    }
    g_free(host);
    sa.sin_port = htons((uint16_t)port);
    struct http *h = g_new0(struct http, 1);
    h->box = box;
    h->listen = g_strdup(spec);
    h->st = store_open(snap->cfg->database, FALSE, err);
    snapshot_unref(snap);
    if (!h->st) {
        http_stop(h);
        return NULL;
    }
    h->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL,
                              serve, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned int)64, MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned int)15, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                              MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL, MHD_OPTION_END);
    if (!h->mhd) {
        g_set_error(err, CD_ERROR, CD_ERR_IO, "[http] listen: cannot listen on %s", h->listen);
        http_stop(h);
        return NULL;
    }
    log_info("HTTP pages on http://%s/", h->listen);
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
    if (h->mhd)
        MHD_stop_daemon(h->mhd);
    store_close(h->st);
    g_free(h->listen);
    g_free(h);
}
