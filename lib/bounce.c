/* bounce.c - owns reading delivery failures. RFC 3464 reports are read
 * field by field (message.c parsed them with GMime); the plain-text bounces
 * that Exim, qmail, Yahoo and older Sendmail still send are read with a few
 * regular expressions (GLib's PCRE), never by hand-rolled scanning. Where a
 * bounce gives no enhanced code, one is derived from the SMTP code and the
 * wording (user unknown -> 5.1.1, mailbox full -> x.2.2, blocked -> 5.7.1). */
#include <string.h>
#include "bounce.h"

void bounce_rcpt_free(struct bounce_rcpt *b)
{
    if (!b)
        return;
    g_free(b->address);
    g_free(b);
}

enum bounce_class bounce_class_of(const char *status)
{
    if (!status || status[0] == '4')
        return BOUNCE_SOFT;
    if (g_str_has_prefix(status, "5.7."))
        return BOUNCE_POLICY;
    return status[0] == '5' ? BOUNCE_HARD : BOUNCE_SOFT;
}

const char *bounce_class_name(enum bounce_class k)
{
    return k == BOUNCE_HARD ? "hard" : k == BOUNCE_POLICY ? "policy" : "soft";
}

static const char *const report_markers =
    "(?i)(delivery status notification|undeliver|delivery has failed|could not be delivered|"
    "unable to deliver|returned mail|mail delivery (failed|subsystem)|permanent fatal errors|"
    "this is the qmail-send program|failure notice|delivery failure|message not delivered)";

gboolean bounce_is_report(const struct message_in *m)
{
    if (m->is_dsn && m->dsn->len > 0)
        return TRUE;
    const char *from = m->from_addr ? m->from_addr : "";
    gboolean daemon = g_regex_match_simple("(?i)^(mailer-daemon|postmaster|mail-daemon)@", from, 0, 0) ||
                      (m->return_path && !*m->return_path);
    return daemon && (g_regex_match_simple(report_markers, m->subject ? m->subject : "", 0, 0) ||
                      g_regex_match_simple(report_markers, m->text ? m->text : "", 0, 0));
}

/* An enhanced status code for text that has none. */
static void derive_status(const char *text, char out[16])
{
    GMatchInfo *mi = NULL;
    GRegex *enh = g_regex_new("\\b([245])\\.(\\d{1,3})\\.(\\d{1,3})\\b", 0, 0, NULL);
    if (g_regex_match(enh, text, 0, &mi)) {
        char *s = g_match_info_fetch(mi, 0);
        g_strlcpy(out, s, 16);
        g_free(s);
        g_match_info_free(mi);
        g_regex_unref(enh);
        return;
    }
    g_match_info_free(mi);
    g_regex_unref(enh);
    gboolean five = g_regex_match_simple("\\b5\\d\\d\\b", text, 0, 0) ||
                    g_regex_match_simple("(?i)permanent|fatal", text, 0, 0);
    gboolean four = g_regex_match_simple("\\b4\\d\\d\\b", text, 0, 0) ||
                    g_regex_match_simple("(?i)retry timeout exceeded|temporar|delayed", text, 0, 0);
    if (g_regex_match_simple("(?i)(user unknown|unknown user|no such (user|mailbox|recipient)|"
                             "no mailbox here|does not exist|doesn't have a .* account|"
                             "recipient not found|address not found|invalid recipient|"
                             "mailbox unavailable|not a valid mailbox)",
                             text, 0, 0))
        g_strlcpy(out, "5.1.1", 16);
    else if (g_regex_match_simple("(?i)(mailbox (is )?full|over ?quota|quota exceeded|insufficient storage)",
                                  text, 0, 0))
        g_strlcpy(out, five && !four ? "5.2.2" : "4.2.2", 16);
    else if (g_regex_match_simple("(?i)(blocked|spam|policy|blacklist|denied|rejected for policy)", text, 0,
                                  0))
        g_strlcpy(out, five || !four ? "5.7.1" : "4.7.1", 16);
    else if (g_regex_match_simple("(?i)retry timeout exceeded", text, 0, 0))
        g_strlcpy(out, "4.4.7", 16);
    else if (five && !four)
        g_strlcpy(out, "5.0.0", 16);
    else
        g_strlcpy(out, "4.0.0", 16);
}

static gboolean ours(const char *addr, const char *domain)
{
    const char *at = strrchr(addr, '@');
    return !at || g_ascii_strcasecmp(at + 1, domain) == 0 ||
           g_regex_match_simple("(?i)^(mailer-daemon|postmaster)@", addr, 0, 0);
}

static void add(GPtrArray *out, const char *addr, const char *status)
{
    for (guint i = 0; i < out->len; i++)
        if (g_ascii_strcasecmp(((struct bounce_rcpt *)out->pdata[i])->address, addr) == 0)
            return;
    struct bounce_rcpt *b = g_new0(struct bounce_rcpt, 1);
    b->address = g_ascii_strdown(addr, -1);
    g_strlcpy(b->status, status, sizeof b->status);
    b->klass = bounce_class_of(b->status);
    g_ptr_array_add(out, b);
}

GPtrArray *bounce_parse(const struct message_in *m, const char *our_domain)
{
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)bounce_rcpt_free);
    for (guint i = 0; i < m->dsn->len && out->len < 50; i++) {
        const struct message_dsn *d = m->dsn->pdata[i];
        if (!d->recipient || !strchr(d->recipient, '@') || ours(d->recipient, our_domain))
            continue;
        if (d->action &&
            (g_ascii_strcasecmp(d->action, "delivered") == 0 ||
             g_ascii_strcasecmp(d->action, "relayed") == 0 || g_ascii_strcasecmp(d->action, "expanded") == 0))
            continue;
        char status[16] = "";
        if (d->status && g_regex_match_simple("^[245]\\.\\d{1,3}\\.\\d{1,3}$", d->status, 0, 0))
            g_strlcpy(status, d->status, sizeof status);
        else
            derive_status(d->diagnostic ? d->diagnostic : "", status);
        /* A "delayed" report is a warning, never a failure. */
        if (d->action && g_ascii_strcasecmp(d->action, "delayed") == 0 && status[0] == '5')
            status[0] = '4';
        add(out, d->recipient, status);
    }
    /* A DSN that lists only successes or delays is not a failure: do not
     * go looking for one in its prose. */
    if (out->len > 0 || m->dsn->len > 0 || !m->text)
        return out;
    /* Plain-text bounces: each failed address with the text that follows
     * it up to the next blank line (Exim, qmail, Yahoo, Sendmail). */
    GRegex *re = g_regex_new(
        "<?([A-Za-z0-9._%+=-]{1,64}@[A-Za-z0-9.-]{1,253}\\.[A-Za-z]{2,63})>?"
        "[^\\n]*(?:\\n(?!\\s*\\n)[^\\n]*){0,8}",
        G_REGEX_MULTILINE, 0, NULL);
    GMatchInfo *mi = NULL;
    g_regex_match(re, m->text, 0, &mi);
    while (g_match_info_matches(mi) && out->len < 50) {
        char *addr = g_match_info_fetch(mi, 1);
        char *context = g_match_info_fetch(mi, 0);
        if (!ours(addr, our_domain) &&
            !g_regex_match_simple("(?i)^(mailer-daemon|postmaster|noreply)", addr, 0, 0)) {
            char status[16];
            derive_status(context, status);
            if (g_regex_match_simple("\\b[45]\\.\\d|\\b[45]\\d\\d\\b|(?i)unknown|no such|not found|"
                                     "full|quota|blocked|denied|rejected|retry|does not exist|"
                                     "doesn't have|no mailbox|unable|failed",
                                     context, 0, 0))
                add(out, addr, status);
        }
        g_free(addr);
        g_free(context);
        g_match_info_next(mi, NULL);
    }
    g_match_info_free(mi);
    g_regex_unref(re);
    /* The report named no address with a reason: take the first foreign
     * address and the code of the whole text. */
    if (out->len == 0 && bounce_is_report(m)) {
        GRegex *any = g_regex_new("[A-Za-z0-9._%+=-]{1,64}@[A-Za-z0-9.-]{1,253}\\.[A-Za-z]{2,63}", 0, 0,
                                  NULL);
        g_regex_match(any, m->text, 0, &mi);
        while (g_match_info_matches(mi)) {
            char *addr = g_match_info_fetch(mi, 0);
            gboolean foreign = !ours(addr, our_domain);
            if (foreign) {
                char status[16];
                derive_status(m->text, status);
                add(out, addr, status);
            }
            g_free(addr);
            if (foreign)
                break;
            g_match_info_next(mi, NULL);
        }
        g_match_info_free(mi);
        g_regex_unref(any);
    }
    return out;
}
