/* signup.c - owns the signup form of a course (GET and POST /s/<course>,
 * and `coursectl form`): its page and snippet, and what a post decides.
 *   - A post never enrolls anyone: it is handed to the same double opt-in
 *     as a subscribe mail (optin_request_from), so the confirmation goes to
 *     the address given only, and the caps on confirmations still apply.
 *   - Whatever happens to the address (sent, already in, asked recently,
 *     capped, suppressed) the answer is the same, so that the form cannot
 *     tell anyone who is subscribed; nothing typed is ever echoed.
 *   - Bots: a filled honeypot field is dropped without a word; the per-IP
 *     and global windows of [http] signup_per_ip_per_hour and
 *     signup_per_hour come before anything touches the database.
 *   - The page is the same bytes for everyone, so the SHA-256 kept in the
 *     consent record names exactly the text the person was shown. */
#include <string.h>
#include <gio/gio.h>
#include "signup.h"
#include "course.h"
#include "error.h"
#include "log.h"
#include "optin.h"
#include "pace.h"

#define HOUR 3600

struct signup_limits {
    GMutex lock;
    GHashTable *per_ip; /* client key (g_free) -> GArray of gint64 post times */
    GArray *all;        /* the post times of every client, oldest first */
    gint64 swept;       /* when per_ip was last cleared of quiet clients */
};

static void times_free(gpointer p)
{
    g_array_free(p, TRUE);
}

struct signup_limits *signup_limits_new(void)
{
    struct signup_limits *lim = g_new0(struct signup_limits, 1);
    g_mutex_init(&lim->lock);
    lim->per_ip = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, times_free);
    lim->all = g_array_new(FALSE, FALSE, sizeof(gint64));
    return lim;
}

void signup_limits_free(struct signup_limits *lim)
{
    if (!lim)
        return;
    g_hash_table_destroy(lim->per_ip);
    g_array_free(lim->all, TRUE);
    g_mutex_clear(&lim->lock);
    g_free(lim);
}

/* Drops the times of a window older than an hour before now. */
static void window_trim(GArray *times, gint64 now)
{
    guint old = 0;
    while (old < times->len && g_array_index(times, gint64, old) <= now - HOUR)
        old++;
    if (old)
        g_array_remove_range(times, 0, old);
}

static gboolean sweep_quiet(gpointer key, gpointer value, gpointer now)
{
    (void)key;
    window_trim(value, *(gint64 *)now);
    return ((GArray *)value)->len == 0;
}

/* The key a client is counted by: its address, and for IPv6 its /64 (one
 * subscriber line gets a whole /64, so counting single addresses would let
 * one machine post without limit). Returns a string to g_free. */
static char *client_key(const char *ip)
{
    GInetAddress *a = ip ? g_inet_address_new_from_string(ip) : NULL;
    if (!a)
        return g_strdup(ip ? ip : "");
    char *key;
    if (g_inet_address_get_family(a) == G_SOCKET_FAMILY_IPV6 && !g_inet_address_get_is_loopback(a)) {
        const guint8 *b = g_inet_address_to_bytes(a);
        key = g_strdup_printf("%02x%02x:%02x%02x:%02x%02x:%02x%02x::/64", b[0], b[1], b[2], b[3], b[4], b[5],
                              b[6], b[7]);
    } else {
        key = g_inet_address_to_string(a);
    }
    g_object_unref(a);
    return key;
}

/* Counts a post of client ip at now if both windows have room. Returns
 * FALSE (nothing counted) when one is full. */
static gboolean limits_take(struct signup_limits *lim, const struct config *cfg, const char *ip, gint64 now)
{
    char *key = client_key(ip);
    g_mutex_lock(&lim->lock);
    /* quiet clients are forgotten every ten minutes: the table holds at
     * most the clients of the last hour, at most signup_per_hour of them */
    if (now - lim->swept > 600 || now < lim->swept) {
        g_hash_table_foreach_remove(lim->per_ip, sweep_quiet, &now);
        lim->swept = now;
    }
    window_trim(lim->all, now);
    GArray *mine = g_hash_table_lookup(lim->per_ip, key);
    if (mine)
        window_trim(mine, now);
    gboolean ok = lim->all->len < (guint)cfg->signup_per_hour &&
                  (!mine || mine->len < (guint)cfg->signup_per_ip_per_hour);
    if (ok) {
        if (!mine) {
            mine = g_array_new(FALSE, FALSE, sizeof(gint64));
            g_hash_table_insert(lim->per_ip, g_strdup(key), mine);
        }
        g_array_append_val(mine, now);
        g_array_append_val(lim->all, now);
    }
    g_mutex_unlock(&lim->lock);
    g_free(key);
    return ok;
}

/* The page's one script: it fills the hidden tz field with the browser's
 * zone. Without JavaScript the field stays empty and the course's zone
 * applies until the person sets theirs. */
static const char tz_script[] =
    "try{document.getElementById('tz').value=Intl.DateTimeFormat().resolvedOptions().timeZone||''}"
    "catch(e){}";

const char *signup_script_csp(void)
{
    static gsize done;
    static char *csp;
    if (g_once_init_enter(&done)) {
        guint8 digest[32];
        gsize len = sizeof digest;
        GChecksum *h = g_checksum_new(G_CHECKSUM_SHA256);
        g_checksum_update(h, (const guchar *)tz_script, strlen(tz_script));
        g_checksum_get_digest(h, digest, &len);
        g_checksum_free(h);
        char *b64 = g_base64_encode(digest, len);
        csp = g_strdup_printf("'sha256-%s'", b64);
        g_free(b64);
        g_once_init_leave(&done, 1);
    }
    return csp;
}

/* The fields of the form: the same in the page and the snippet. The
 * honeypot is hidden from people by position (not display:none, which
 * some bots skip) and from screen readers by aria-hidden, and is out of
 * the tab order; it is not type=hidden, which bots leave alone. */
static char *form_fields(const char *which, const char *input_style, const char *button_style)
{
    return g_markup_printf_escaped(
        "<p><label for=\"email\">Your email address</label><br>\n"
        "<input id=\"email\" name=\"email\" type=\"email\" required autocomplete=\"email\" "
        "inputmode=\"email\" style=\"%s\"></p>\n"
        "<p><label for=\"name\">Your name (optional)</label><br>\n"
        "<input id=\"name\" name=\"name\" type=\"text\" autocomplete=\"name\" maxlength=\"100\" "
        "style=\"%s\"></p>\n"
        "<div aria-hidden=\"true\" style=\"position:absolute;left:-10000px;top:auto;width:1px;height:1px;"
        "overflow:hidden;\">\n"
        "<label for=\"website\">Leave this field empty</label>\n"
        "<input id=\"website\" name=\"website\" type=\"text\" tabindex=\"-1\" autocomplete=\"off\">\n"
        "</div>\n"
        "<input type=\"hidden\" id=\"tz\" name=\"tz\" value=\"\">\n"
        "<input type=\"hidden\" name=\"form\" value=\"%s\">\n"
        "<p><button type=\"submit\" style=\"%s\">Subscribe</button></p>\n",
        input_style, input_style, which, button_style);
}

static const char input_css[] =
    "box-sizing:border-box;width:100%;max-width:100%;font-size:17px;"
    "padding:10px;border:1px solid #6b6257;border-radius:6px;color:#222;"
    "background:#fff;";
static const char button_css[] =
    "font-size:17px;padding:10px 22px;border-radius:6px;border:0;"
    "background:#8a3f20;color:#fff;cursor:pointer;";

char *signup_page(const struct app *app, const char *course, const char *problem)
{
    const struct course *c = course_find(app->courses, course);
    if (!c)
        return NULL;
    char *fields = form_fields("page", input_css, button_css);
    char *about = g_markup_printf_escaped("<p>%s%s%d steps by email.</p>\n", c->description,
                                          *c->description ? " " : "", c->n_lessons);
    char *warn = problem ? g_markup_printf_escaped(
                               "<p role=\"alert\" style=\"color:#8a1c1c;font-weight:bold;\">"
                               "%s</p>\n",
                               problem)
                         : g_strdup("");
    char *head = g_markup_printf_escaped(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>Subscribe: %s</title>\n"
        "<style>input:focus,button:focus{outline:3px solid #1f5fbf;outline-offset:2px;}"
        "a{color:#1f4f99;}</style>\n</head>\n"
        "<body style=\"margin:0;background:#f4f1ec;font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',"
        "Roboto,Helvetica,Arial,sans-serif;color:#222;\">\n"
        "<main style=\"max-width:560px;margin:24px auto;padding:24px;background:#fff;border-radius:8px;"
        "border:1px solid #e4ded4;line-height:1.6;font-size:17px;\">\n"
        "<h1 style=\"font-size:24px;margin-top:0;\">%s</h1>\n",
        c->title, c->title);
    char *page = g_strconcat(
        head, about, warn, "<form method=\"post\">\n", fields, "</form>\n",
        "<p style=\"font-size:15px;color:#4a443d;\">We send one mail to confirm: nothing else arrives "
        "until you press its button. Each step says how to pause or leave. We keep your address, your name, "
        "your time zone and when you asked and confirmed",
        /* what the page promises is what the consent record keeps */
        strcmp(app->cfg->record_ip, "true") == 0 ? ", with the IP address and browser you asked from" : "",
        ", and nothing else about you.</p>\n", "</main>\n<script>", tz_script,
        "</script>\n</body>\n</html>\n", NULL);
    g_free(head);
    g_free(warn);
    g_free(about);
    g_free(fields);
    return page;
}

char *signup_snippet(const struct app *app, const char *course, GError **err)
{
    const struct course *c = course_find(app->courses, course);
    if (!c) {
        g_set_error(err, CD_ERROR, CD_ERR_NOT_FOUND, "no course '%s'", course);
        return NULL;
    }
    char *fields = form_fields("snippet", "box-sizing:border-box;width:100%;font-size:1em;padding:.5em;",
                               "font-size:1em;padding:.5em 1.2em;");
    char *open = g_markup_printf_escaped("<form method=\"post\" action=\"%s/s/%s\">\n", app->cfg->base_url,
                                         c->slug);
    char *html = g_strconcat("<!-- signup form of ", c->slug, " (coursectl form) -->\n", open, fields,
                             "</form>\n<script>", tz_script, "</script>\n", NULL);
    g_free(open);
    g_free(fields);
    return html;
}

/* The SHA-256 (hex) of the form the post says was shown, or NULL when it
 * names none we made (a form of the author's own). */
static char *shown_hash(const struct app *app, const char *course, const char *form)
{
    char *text = NULL;
    if (form && strcmp(form, "page") == 0)
        text = signup_page(app, course, NULL);
    else if (form && strcmp(form, "snippet") == 0)
        text = signup_snippet(app, course, NULL);
    char *sum = text ? g_compute_checksum_for_string(G_CHECKSUM_SHA256, text, -1) : NULL;
    g_free(text);
    return sum;
}

int signup_submit(struct app *app, struct signup_limits *lim, const char *course, const struct signup_post *p,
                  gint64 now, GError **err)
{
    if (!course_find(app->courses, course))
        return SIGNUP_NO_COURSE;
    if (!limits_take(lim, app->cfg, p->ip, now)) {
        log_warn("signup form of %s: rate limit reached; a post was refused", course);
        return SIGNUP_LIMITED;
    }
    if (p->website && *p->website) {
        log_info("signup form of %s: the honeypot was filled; the post was dropped", course);
        return SIGNUP_DROPPED;
    }
    const char *tz = p->tz && *p->tz ? p->tz : NULL;
    if (tz && !pace_tz_valid(tz)) {
        /* the browser named a zone this system does not know: the course's
         * applies until the person sets theirs (not worth failing a signup;
         * the value is not logged, as it is a stranger's input) */
        log_info("signup form of %s: an unknown time zone was ignored", course);
        tz = NULL;
    }
    if (!p->email || !*p->email)
        return SIGNUP_BAD_EMAIL;
    gboolean record = strcmp(app->cfg->record_ip, "true") == 0;
    char *shown = shown_hash(app, course, p->form);
    struct optin_origin origin = { "form", shown, record ? p->ip : NULL, record ? p->user_agent : NULL };
    GError *e = NULL;
    int rc = optin_request_from(app, p->email, course, p->name, tz, FALSE, "form", &origin, now, &e);
    g_free(shown);
    if (rc >= 0)
        return SIGNUP_ACCEPTED;
    if (e->code == CD_ERR_INVALID) {
        g_clear_error(&e);
        return SIGNUP_BAD_EMAIL;
    }
    g_propagate_error(err, e);
    return -1;
}
