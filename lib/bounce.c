/* bounce.c - owns reading delivery failures and complaints. RFC 3464
 * reports are read field by field and feedback reports (RFC 5965) by their
 * fields, both parsed by GMime in message.c. The human-readable part of the
 * non-standard bounces (Postfix, Exim, Sendmail, qmail, Courier, Exchange,
 * Domino, GroupWise, Yahoo, Gmail ... and bounces that say it only in
 * words, in English, German or French) is read line by line, each line
 * bounded, with a few regular expressions (GLib's PCRE) compiled once.
 * Where a bounce gives no enhanced code, one is derived from the SMTP code
 * and the wording (user unknown -> 5.1.1, host unknown -> 5.1.2, mailbox
 * full -> x.2.2, blocked -> x.7.1, gave up -> 4.4.7). */
#include <string.h>
#include "bounce.h"

#define MAX_RCPTS 50
#define MAX_LINES 3000
#define MAX_LINE 1000
#define CONTEXT_LINES 6

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

/* ------------------------------------------------------------ the patterns */

enum rx {
    RX_ADDR,
    RX_ENHANCED,
    RX_SMTP5,
    RX_SMTP4,
    RX_PERMANENT,
    RX_TEMPORARY,
    RX_USER_UNKNOWN,
    RX_DISABLED,
    RX_HOST_UNKNOWN,
    RX_FULL,
    RX_TOO_BIG,
    RX_POLICY,
    RX_EXPIRED,
    RX_SUBJECT,
    RX_TEXT,
    RX_DAEMON,
    RX_DAEMON_NAME,
    RX_DELAY_SUBJECT,
    RX_DELAY_TEXT,
    RX_SECTION,
    RX_STOP,
    RX_HEADERISH,
    RX_FAILURE_WORD,
    RX_COUNT
};

static const char *const patterns[RX_COUNT] = {
    /* an address; a smtp=, rfc822: or mailto: before it is left out (\K) */
    [RX_ADDR] =
        "(?:(?i:smtp|rfc822|mailto|sip)[=:]\\s?)?\\K"
        "[A-Za-z0-9_%+/!#$&*^{}|~-][A-Za-z0-9._%+=/!#$&'*^{}|~-]{0,63}@"
        "[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\\.){1,8}[A-Za-z]{2,63}(?![A-Za-z0-9-])",
    [RX_ENHANCED] = "(?<![\\w.-])([245])\\.(\\d{1,3})\\.(\\d{1,3})(?!\\.?\\d)",
    [RX_SMTP5] = "(?<![\\w.#:/-])5[0-5]\\d(?=[\\s\\-:,;)\\]]|$)",
    [RX_SMTP4] = "(?<![\\w.#:/-])4[0-5]\\d(?=[\\s\\-:,;)\\]]|$)",
    [RX_PERMANENT] =
        "(?i)permanent|fatal error|failed permanently|dauerhaft|endg(ü|ue)ltig|d(é|e)finiti"
        "|erreur permanente",
    [RX_TEMPORARY] =
        "(?i)will (be )?retr(y|ied)|still (being )?(retried|trying)|temporar|try again later|"
        "deferred|delayed|not yet been delivered|will continue|wird (weiterhin |erneut )?"
        "versucht|vor(ü|ue)bergehend|nouvel(le)? (essai|tentative)|temporaire|greylist",
    [RX_USER_UNKNOWN] =
        "(?i)user unknown|unknown user|no such (user|mailbox|recipient|address|local user|person|account)|"
        "mailbox (unavailable|not found|does not exist|is unavailable)|does not exist|doesn'?t exist|"
        "recipient (not found|unknown|does not exist|address rejected|rejected)|address (not found|unknown)|"
        "unknown (recipient|address|local|mailbox|or illegal alias)|invalid (recipient|mailbox|address|user)|"
        "no mailbox|not a valid (mailbox|user|recipient)|invalid final delivery|no valid recipients|"
        "name is not recognized|not listed in|"
        "not a known user|user not found|unrouteable address|no such|not our customer|"
        "is not a member|not have an? .*account|doesn'?t have an? .*account|"
        "benutzer unbekannt|unbekannte?r? (empf(ä|ae)nger|benutzer|adresse)|existiert nicht|gibt es nicht|"
        "empf(ä|ae)nger (nicht gefunden|unbekannt)|kein(e|en)? (solche[rs]? "
        ")?(benutzer|postfach|empf(ä|ae)nger)|"
        "utilisateur inconnu|destinataire inconnu|adresse (inconnue|invalide|introuvable)|n'existe pas|"
        "inexistant|introuvable|bo(i|î)te (aux lettres )?(inexistante|inconnue)|compte inconnu",
    [RX_DISABLED] =
        "(?i)account (has been |is )?(disabled|deactivated|closed|suspended|expired|inactive)|"
        "mailbox (is )?(disabled|inactive|suspended)|no longer (active|available|valid|in use)|"
        "has been disabled|deaktiviert|gesperrt|d(é|e)sactiv(é|e)",
    [RX_HOST_UNKNOWN] =
        "(?i)host (or domain name )?(not found|unknown)|domain (not found|does not exist|"
        "unknown|name not found)|unknown (host|domain)|no mx|no route to host|"
        "name or service not known|nxdomain|unrouteable domain|domain is not valid|"
        "h(ô|o)te inconnu|domaine inconnu|domain existiert nicht|unbekannte domain",
    [RX_FULL] =
        "(?i)mailbox (is )?full|over ?quota|quota (exceeded|exceed|full)|exceeded (storage|quota|the quota)|"
        "insufficient (storage|disk)|mailbox size limit|storage (limit|space)|mailfolder is full|"
        "out of storage|disk full|postfach (ist )?voll|speicherplatz|quota (ü|ue)berschritten|"
        "quota d(é|e)pass(é|e)|bo(i|î)te (aux lettres )?(est )?pleine|espace (disque )?insuffisant",
    [RX_TOO_BIG] =
        "(?i)message (is )?(too big|too large)|size exceeds|exceeds (the )?(maximum|size)|"
        "message size|zu gro(ß|ss)|trop (gros|volumineux)",
    [RX_POLICY] =
        "(?i)block(ed|list)|black ?list|spam|policy|denied|refused|rejected|not accepted|dmarc|"
        "\\bspf\\b|dkim|reputation|abus|\\brbl\\b|unsolicited|virus|blacklisted|blocage|"
        "abgelehnt|verweigert|refus(é|e)|rejet(é|e)",
    [RX_EXPIRED] =
        "(?i)retry timeout exceeded|giving up|gave up|too long|expired|timed? ?out|"
        "could not be delivered within|delivery time|zeit(ü|ue)berschreitung|d(é|e)lai",
    [RX_SUBJECT] =
        "(?i)undeliver|undelivered|returned mail|returned to sender|delivery (status|failure|failed|"
        "problem|report|notification|has failed|error)|mail delivery|failure notice|"
        "could not (be )?(deliver|sen)|not (be )?delivered|nondeliverable|non-deliverable|"
        "mail (failure|failed|system error|error)|delivery status|message (not delivered|"
        "delayed|bounced|rejected)|delayed mail|warning: could not send|error sending|"
        "unable to deliver|delivery unsuccessful|sending failed|failed delivery|"
        "there was an error sending|bounced|non remis|non distribu|(é|e)chec (de|d'|du)|"
        "non d(é|e)livr|rapport de non|remise (diff(é|e)r|impossible)|unzustellbar|"
        "nicht zustellbar|zustellung|konnte nicht (zugestellt|ausgeliefert)|r(ü|ue)ckl(ä|ae)ufer|"
        "fehlgeschlagen|nicht (zugestellt|ausgeliefert)|notificaci(ó|o)n de estado|"
        "non recapitabile|mail could not|\\bdelayed\\b|"
        "\u30a8\u30e9\u30fc|\u672a\u914d\u9054|\u9000\u4fe1|\u6295\u9012\u5931\u8d25|"
        "\u672a\u80fd\u9001\u8fbe",
    [RX_TEXT] =
        "(?i)qmail-send program|could not be delivered|could not be sent|not yet been delivered|"
        "requested action not taken|user unknown|no such user|invalid user address|"
        "was not delivered|wasn'?t delivered|couldn'?t be delivered|not be delivered|undeliverable|"
        "delivery to the following recipient|permanent fatal errors|delivery has failed|failed permanently|"
        "did not reach|unable to deliver|delivery failed|delivery problems|non-deliverable|"
        "wasn'?t able to deliver|message could not|not (be )?delivered to|following address(es)? "
        "(had|failed)|"
        "following recipients? (failed|returned|could not|was rejected)|rejected your message|"
        "returned to the sender|permanent error|delivery (status )?notification|your message .{0,40}"
        "(could not|cannot|was not|has not)|failed to deliver|recipient address rejected|"
        "message delivery has failed|mail delivery failed|we had trouble delivering|"
        "konnte nicht (zugestellt|ausgeliefert)|nicht zugestellt|unzustellbar|zustellung (ist "
        ")?fehlgeschlagen|"
        "n'a pas pu (ê|e)tre (remis|distribu|d(é|e)livr|livr|envoy)|impossible de (remettre|distribuer|"
        "d(é|e)livrer)|non remis|(é|e)chec de (la )?(remise|distribution|livraison)",
    [RX_DAEMON] =
        "(?i)^(mailer[-_.]?daemon|post[-_.]?master|mail[-_.]?daemon|mail[-_.]?delivery([-_.]?(system|"
        "subsystem))?|mdaemon|mail[-_.]?admin|administrator|sysadmin|double[-_.]?bounce|"
        "bounces?|mailer|smtp|nobody|root|mail|mail[-_.]?robot|mailmaster|mail[-_.]?system|"
        "post[-_.]?office|notification|dsn|returned|undeliverable|automail)(@|$)",
    [RX_DAEMON_NAME] =
        "(?i)mail delivery|delivery (system|subsystem|service)|mailer.?daemon|postmaster|"
        "system administrator|mail system|microsoft outlook|mail administrator|"
        "internet mail service|mta",
    [RX_DELAY_SUBJECT] =
        "(?i)delayed mail|\\(delay\\)|warning: could not send|still being retried|"
        "delivery (has been )?delayed|delay(ed)? notification|message delayed|"
        "not yet delivered|verz(ö|oe)gert|retard(é|e)|diff(é|e)r(é|e)|delivery delay",
    [RX_DELAY_TEXT] =
        "(?i)this is a (warning|delay) message|warning message only|will (continue to )?"
        "(retry|try)|will be retried|no action is required|continue trying|still trying|"
        "has not yet been delivered|not been delivered yet|wird (weiterhin |erneut |noch )?"
        "versucht|nouvel(le)? (essai|tentative)|aucune action|keine aktion",
    [RX_SECTION] =
        "(?i)following (address|recipient|destination)|failed addresses|failed recipient|"
        "recipients? (failed|returned|could not|was rejected)|could not be delivered to|"
        "did not reach|not delivered to|delivery to the following|undeliverable to|"
        "permanent fatal errors|delivery problems|errors? for|failure reasons?|folgende(n|r)? "
        "(empf(ä|ae)nger|"
        "adresse)|destinataires? suivants?|adresses? suivantes?|addressed to|"
        "recipient address(es)?:|original[- ]recipient|final[- ]recipient|unknown user|"
        "failed to deliver|your message to",
    [RX_STOP] =
        "(?i)^\\W{0,12}(unsent message follows|original message (follows|headers)|message text follows|"
        "this is a copy of (your|the) message|below this line is a copy|copy of (the )?message|"
        "the headers of your message|headers of the original|returned message|"
        "original message$|-+ ?original message|included is a copy|"
        "message headers? follow|returned mail follows|your message reads|"
        "urspr(ü|ue)ngliche nachricht|kopie der nachricht|message d'origine|en-t(ê|e)tes? du message)",
    [RX_HEADERISH] =
        "(?i)^\\s*(message-id|in-reply-to|references|from|reply-to|sender|return-path|"
        "date|subject|received|x-[a-z0-9-]+|dkim-signature|authentication-results|"
        "list-[a-z-]+|errors-to|envelope-from|mail from|id)\\s*:",
    [RX_FAILURE_WORD] =
        "(?i)unknown|no such|not found|full|quota|blocked|denied|rejected|retry|"
        "does not exist|doesn'?t have|no mailbox|unable|failed|error|refused|invalid|"
        "not (a )?valid|disabled|unavailable|inactive|not listed|not recognized|"
        "unbekannt|existiert|voll|abgelehnt|inconnu|n'existe|pleine|refus|"
        "\\b[45]\\.\\d{1,3}\\.\\d{1,3}\\b|(?<![\\w.])[45][0-5]\\d(?![\\w.])",
};

static GRegex *rx(enum rx which)
{
    static GRegex *compiled[RX_COUNT];
    static gsize once = 0;
    if (g_once_init_enter(&once)) {
        for (int i = 0; i < RX_COUNT; i++) {
            compiled[i] = g_regex_new(patterns[i], G_REGEX_OPTIMIZE, 0, NULL);
            g_assert(compiled[i]);
        }
        g_once_init_leave(&once, 1);
    }
    return compiled[which];
}

static gboolean has(enum rx which, const char *s)
{
    return s && g_regex_match(rx(which), s, 0, NULL);
}

/* The text a report is read in: the body's text, else the preamble of a
 * multipart whose boundary is broken. */
static const char *body_of(const struct message_in *m)
{
    return m->text && *m->text ? m->text : m->preamble ? m->preamble : "";
}

/* ------------------------------------------------------------ statuses */

/* The first enhanced status code in text, into out; FALSE if none. */
static gboolean enhanced_in(const char *text, char out[16])
{
    GMatchInfo *mi = NULL;
    gboolean found = g_regex_match(rx(RX_ENHANCED), text, 0, &mi);
    if (found) {
        char *s = g_match_info_fetch(mi, 0);
        g_strlcpy(out, s, 16);
        g_free(s);
    }
    g_match_info_free(mi);
    return found;
}

/* An enhanced status code for text that has none. */
static void derive_status(const char *text, char out[16])
{
    if (enhanced_in(text, out))
        return;
    gboolean five = has(RX_SMTP5, text);
    gboolean four = has(RX_SMTP4, text);
    gboolean perm = five || (!four && has(RX_PERMANENT, text));
    gboolean temp = four || has(RX_TEMPORARY, text);
    /* a 5xx reply anywhere is the verdict (the 4xx before it were retried) */
    char c = five ? '5' : four ? '4' : perm ? '5' : temp ? '4' : '5';
    const char *detail;
    if (has(RX_FULL, text)) {
        /* a full mailbox is temporary unless the text says otherwise */
        c = perm && !four ? '5' : '4';
        detail = "2.2";
    } else if (has(RX_DISABLED, text))
        detail = "2.1";
    else if (has(RX_USER_UNKNOWN, text))
        detail = "1.1";
    else if (has(RX_HOST_UNKNOWN, text))
        detail = "1.2";
    else if (has(RX_TOO_BIG, text))
        detail = "3.4";
    else if (has(RX_EXPIRED, text) && !five) {
        c = '4';
        detail = "4.7";
    } else if (has(RX_POLICY, text))
        detail = "7.1";
    else {
        detail = "0.0";
        if (!perm && !temp)
            c = '4'; /* nothing says how bad: the mildest reading */
    }
    g_snprintf(out, 16, "%c.%s", c, detail);
}

/* ------------------------------------------------------------ addresses */

/* The bare address in s (smtp=user@x, <user@x>, rfc822;user@x,
 * "@relay:user@x", "|/prog user@x"), as written; or NULL. */
static char *address_as_written(const char *s)
{
    if (!s)
        return NULL;
    GMatchInfo *mi = NULL;
    char *found = NULL;
    if (g_regex_match(rx(RX_ADDR), s, 0, &mi))
        found = g_match_info_fetch(mi, 0);
    g_match_info_free(mi);
    return found;
}

/* The same, lower-cased. */
static char *address_in(const char *s)
{
    char *found = address_as_written(s);
    char *low = found ? g_ascii_strdown(found, -1) : NULL;
    g_free(found);
    return low;
}

struct reader {
    const struct message_in *m;
    const char *domain;
    GPtrArray *out;
    GPtrArray *not_failed; /* addresses that are never failed recipients */
    gboolean delay;        /* the whole report is a delay warning */
};

static gboolean is_daemon(const char *addr)
{
    return addr && has(RX_DAEMON, addr);
}

static void not_failed_add(GPtrArray *set, const char *value)
{
    if (!value)
        return;
    /* a header value may hold several addresses */
    GMatchInfo *mi = NULL;
    g_regex_match(rx(RX_ADDR), value, 0, &mi);
    for (int i = 0; g_match_info_matches(mi) && i < 20; i++) {
        char *a = g_match_info_fetch(mi, 0);
        g_ptr_array_add(set, g_ascii_strdown(a, -1));
        g_free(a);
        g_match_info_next(mi, NULL);
    }
    g_match_info_free(mi);
}

/* The addresses a report names that are not failed recipients: its own
 * sender and recipients (the reporting MTA, our envelope sender), and the
 * returned original's sender (our list address). */
static GPtrArray *not_failed_of(const struct message_in *m)
{
    GPtrArray *set = g_ptr_array_new_with_free_func(g_free);
    not_failed_add(set, m->from_addr);
    not_failed_add(set, m->return_path);
    for (guint i = 0; i < m->rcpts->len; i++)
        not_failed_add(set, m->rcpts->pdata[i]);
    const char *orig[] = { "from", "sender", "return-path", "reply-to", "errors-to" };
    for (size_t i = 0; m->original && i < G_N_ELEMENTS(orig); i++)
        not_failed_add(set, message_in_original_header(m, orig[i]));
    return set;
}

static gboolean excluded(const struct reader *rd, const char *addr, gboolean strict)
{
    const char *at = strrchr(addr, '@');
    if (!at || g_ascii_strcasecmp(at + 1, rd->domain) == 0)
        return TRUE;
    if (!strict)
        return FALSE;
    if (is_daemon(addr))
        return TRUE;
    for (guint i = 0; i < rd->not_failed->len; i++)
        if (g_ascii_strcasecmp(rd->not_failed->pdata[i], addr) == 0)
            return TRUE;
    return FALSE;
}

static void add(struct reader *rd, const char *addr, const char *status)
{
    if (rd->out->len >= MAX_RCPTS)
        return;
    for (guint i = 0; i < rd->out->len; i++)
        if (g_ascii_strcasecmp(((struct bounce_rcpt *)rd->out->pdata[i])->address, addr) == 0)
            return;
    struct bounce_rcpt *b = g_new0(struct bounce_rcpt, 1);
    b->address = g_ascii_strdown(addr, -1);
    g_strlcpy(b->status, status, sizeof b->status);
    /* a delay warning is never a failure */
    if (rd->delay && b->status[0] == '5')
        b->status[0] = '4';
    b->klass = bounce_class_of(b->status);
    g_ptr_array_add(rd->out, b);
}

/* ------------------------------------------------------------ recognition */

gboolean bounce_is_delay(const struct message_in *m)
{
    if (m->dsn->len > 0) {
        gboolean delayed = FALSE;
        for (guint i = 0; i < m->dsn->len; i++) {
            const struct message_dsn *d = m->dsn->pdata[i];
            if (!d->action)
                continue;
            if (g_ascii_strcasecmp(d->action, "failed") == 0)
                return FALSE;
            if (g_ascii_strcasecmp(d->action, "delayed") == 0)
                delayed = TRUE;
        }
        if (delayed)
            return TRUE;
    }
    gboolean said = has(RX_DELAY_SUBJECT, m->subject) || has(RX_DELAY_TEXT, body_of(m));
    return said && !g_regex_match_simple(
                       "(?i)permanent|fatal|failed permanently|giving up|gave up|"
                       "will not (be )?retr|not be delivered|could not be delivered",
                       body_of(m), 0, 0);
}

/* The text up to where the returned original starts, at most 64 KB. */
static char *report_text(const struct message_in *m)
{
    const char *t = body_of(m);
    gsize n = strlen(t);
    if (n > 64 * 1024)
        n = 64 * 1024;
    GString *out = g_string_sized_new(n + 1);
    gsize off = 0;
    for (int lines = 0; off < n && t[off] && lines < MAX_LINES; lines++) {
        const char *p = t + off;
        const char *e = strchr(p, '\n');
        gsize len = e ? (gsize)(e - p) : strlen(p);
        char *line = g_strndup(p, MIN(len, (gsize)MAX_LINE));
        gboolean stop = lines > 0 && has(RX_STOP, line);
        g_free(line);
        if (stop)
            break;
        g_string_append_len(out, p, (gssize)len);
        g_string_append_c(out, '\n');
        off += len + (e ? 1 : 0);
    }
    return g_string_free(out, FALSE);
}

gboolean bounce_is_report(const struct message_in *m)
{
    if (m->dsn->len > 0 || (m->is_dsn && !m->is_feedback))
        return TRUE;
    if (message_in_header(m, "X-Failed-Recipients"))
        return TRUE;
    const char *from = m->from_addr ? m->from_addr : "";
    gboolean daemon = is_daemon(from) ||
                      (m->return_path && (!*m->return_path || is_daemon(m->return_path))) ||
                      has(RX_DAEMON_NAME, m->from_name);
    char *text = report_text(m);
    /* a person forwarding or quoting a bounce is not a bounce: only the
     * text that is not quoted counts */
    gboolean quoted_only = text[0] == '>' || strstr(text, "\n>") != NULL;
    gboolean in_text = has(RX_TEXT, text) && !(quoted_only && !daemon);
    gboolean in_subject = has(RX_SUBJECT, m->subject);
    gboolean reply = m->subject &&
                     g_regex_match_simple("^\\s*(re|fwd?|aw|wg|tr)\\s*:", m->subject, G_REGEX_CASELESS, 0);
    g_free(text);
    if (reply && !daemon)
        return FALSE;
    return (daemon && (in_subject || in_text)) || (in_subject && in_text);
}

/* ------------------------------------------------------------ reading */

/* Reads the DSN's recipients; returns how many entries report a failure
 * whose recipient is no usable address (a file, a bare local part, a source
 * route): then the text must say who. */
static int from_dsn(struct reader *rd)
{
    const struct message_in *m = rd->m;
    int unusable = 0;
    for (guint i = 0; i < m->dsn->len && rd->out->len < MAX_RCPTS; i++) {
        const struct message_dsn *d = m->dsn->pdata[i];
        char *addr = address_in(d->recipient);
        gboolean done = d->action && (g_ascii_strcasecmp(d->action, "delivered") == 0 ||
                                      g_ascii_strcasecmp(d->action, "relayed") == 0 ||
                                      g_ascii_strcasecmp(d->action, "expanded") == 0);
        if (!done && (!addr || strchr(d->recipient, ':') || strchr(d->recipient, '/')))
            unusable++;
        if (!addr || strchr(d->recipient, ':') || strchr(d->recipient, '/')) {
            g_free(addr);
            continue;
        }
        if (excluded(rd, addr, FALSE) || (d->action && (g_ascii_strcasecmp(d->action, "delivered") == 0 ||
                                                        g_ascii_strcasecmp(d->action, "relayed") == 0 ||
                                                        g_ascii_strcasecmp(d->action, "expanded") == 0))) {
            g_free(addr);
            continue;
        }
        char status[16] = "";
        if (d->status && g_regex_match_simple("^[245]\\.\\d{1,3}\\.\\d{1,3}$", d->status, 0, 0))
            g_strlcpy(status, d->status, sizeof status);
        else if (d->diagnostic)
            derive_status(d->diagnostic, status);
        if (!status[0]) {
            char *text = report_text(m);
            derive_status(text, status);
            g_free(text);
        }
        if (status[0] == '2') { /* 2.x.x: delivered, whatever Action says */
            g_free(addr);
            continue;
        }
        if (d->action && g_ascii_strcasecmp(d->action, "delayed") == 0 && status[0] == '5')
            status[0] = '4';
        add(rd, addr, status);
        g_free(addr);
    }
    return unusable;
}

static gboolean blank(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return *s == '\0';
}

/* The context of line i: it and the lines after it up to a blank line (one
 * blank line right after it is passed over: qmail and Yahoo put one there). */
static char *context_of(char **lines, int i)
{
    GString *c = g_string_new(NULL);
    for (int k = i; k <= i + CONTEXT_LINES && lines[k]; k++) {
        if (k > i && blank(lines[k])) {
            if (k > i + 1)
                break;
            continue;
        }
        g_string_append_len(c, lines[k], (gssize)MIN(strlen(lines[k]), (gsize)MAX_LINE));
        g_string_append_c(c, '\n');
    }
    return g_string_free(c, FALSE);
}

/* The failed recipients in the text: each address on a line of its own or
 * after a heading of the failed-recipient section, with the status of the
 * lines that follow it (or of the whole text). */
static void from_text(struct reader *rd, const char *text, const char *whole_status)
{
    char **lines = g_strsplit(text, "\n", MAX_LINES);
    gboolean section = FALSE;
    for (int i = 0; lines[i] && rd->out->len < MAX_RCPTS; i++) {
        char *line = g_strndup(lines[i], MAX_LINE);
        if (has(RX_SECTION, line))
            section = TRUE;
        gboolean skip = line[0] == '>' || has(RX_HEADERISH, line);
        GMatchInfo *mi = NULL;
        if (!skip)
            g_regex_match(rx(RX_ADDR), line, 0, &mi);
        for (int n = 0; mi && g_match_info_matches(mi) && n < 8; n++) {
            char *raw = g_match_info_fetch(mi, 0);
            char *addr = g_ascii_strdown(raw, -1);
            g_free(raw);
            if (!excluded(rd, addr, TRUE)) {
                char *ctx = context_of(lines, i);
                if (section || has(RX_FAILURE_WORD, ctx)) {
                    char status[16];
                    if (has(RX_FAILURE_WORD, ctx))
                        derive_status(ctx, status);
                    else
                        g_strlcpy(status, whole_status, sizeof status);
                    /* the context's generic code defers to the whole text's */
                    if (g_str_has_suffix(status, ".0.0") && status[0] == whole_status[0])
                        g_strlcpy(status, whole_status, sizeof status);
                    add(rd, addr, status);
                }
                g_free(ctx);
            }
            g_free(addr);
            g_match_info_next(mi, NULL);
        }
        g_match_info_free(mi);
        g_free(line);
    }
    g_strfreev(lines);
}

/* Addresses of a header value (X-Failed-Recipients, the original's To). */
static void from_header(struct reader *rd, const char *value, const char *status, gboolean strict)
{
    if (!value)
        return;
    GMatchInfo *mi = NULL;
    g_regex_match(rx(RX_ADDR), value, 0, &mi);
    for (int n = 0; g_match_info_matches(mi) && n < MAX_RCPTS; n++) {
        char *raw = g_match_info_fetch(mi, 0);
        char *addr = g_ascii_strdown(raw, -1);
        if (!excluded(rd, addr, strict))
            add(rd, addr, status);
        g_free(addr);
        g_free(raw);
        g_match_info_next(mi, NULL);
    }
    g_match_info_free(mi);
}

/* The To: of an original returned inline, after the report's text (old
 * Sendmail's "Unsent message follows"). */
static void from_inline_original(struct reader *rd, const char *full, const char *status)
{
    char *text = report_text(rd->m);
    gsize skip = strlen(text);
    g_free(text);
    if (!full || strlen(full) <= skip)
        return;
    char **lines = g_strsplit(full + skip, "\n", 200);
    for (int i = 0; i < 200 && lines[i]; i++) {
        if (!*lines[i] && i > 2)
            break; /* the end of the original's header */
        if (g_ascii_strncasecmp(lines[i], "To:", 3) == 0) {
            char *v = g_strndup(lines[i] + 3, MAX_LINE);
            from_header(rd, v, status, TRUE);
            g_free(v);
            break;
        }
    }
    g_strfreev(lines);
}

/* The status of the text around addr in text, else fallback. */
static void status_near(const char *text, const char *addr, const char *fallback, char out[16])
{
    const char *p = strstr(text, addr);
    if (!p) {
        g_strlcpy(out, fallback, 16);
        return;
    }
    char *ctx = g_strndup(p, 600);
    if (has(RX_FAILURE_WORD, ctx))
        derive_status(ctx, out);
    else
        g_strlcpy(out, fallback, 16);
    if (g_str_has_suffix(out, ".0.0") && out[0] == fallback[0])
        g_strlcpy(out, fallback, 16);
    g_free(ctx);
}

GPtrArray *bounce_parse(const struct message_in *m, const char *our_domain)
{
    /* a DSN says per recipient whether it is delayed (from_dsn); a text
     * report only as a whole */
    struct reader rd = { m, our_domain, g_ptr_array_new_with_free_func((GDestroyNotify)bounce_rcpt_free),
                         not_failed_of(m), FALSE };
    int unusable = from_dsn(&rd);
    /* A DSN that lists only successes or delays is not a failure: do not
     * go looking for one in its prose. */
    if (rd.out->len > 0 || (m->dsn->len > 0 && unusable == 0)) {
        g_ptr_array_unref(rd.not_failed);
        return rd.out;
    }
    rd.delay = bounce_is_delay(m);
    char *text = report_text(m);
    char whole[16];
    derive_status(text, whole);
    const char *failed = message_in_header(m, "X-Failed-Recipients");
    if (failed) {
        /* Exim names them all: the text only says how */
        GMatchInfo *mi = NULL;
        g_regex_match(rx(RX_ADDR), failed, 0, &mi);
        for (int n = 0; g_match_info_matches(mi) && n < MAX_RCPTS; n++) {
            char *raw = g_match_info_fetch(mi, 0);
            char *addr = g_ascii_strdown(raw, -1);
            char status[16];
            status_near(text, addr, whole, status);
            if (!excluded(&rd, addr, FALSE))
                add(&rd, addr, status);
            g_free(addr);
            g_free(raw);
            g_match_info_next(mi, NULL);
        }
        g_match_info_free(mi);
    }
    /* the text may name more than the header (or the header a relay's
     * rewriting of it) */
    from_text(&rd, text, whole);
    /* The report named no address with a reason: the returned original's
     * recipients, else the first foreign address of the text. */
    if (rd.out->len == 0 && bounce_is_report(m))
        from_header(&rd, message_in_original_header(m, "to"), whole, TRUE);
    if (rd.out->len == 0 && bounce_is_report(m))
        from_inline_original(&rd, body_of(m), whole);
    if (rd.out->len == 0 && bounce_is_report(m)) {
        GMatchInfo *mi = NULL;
        g_regex_match(rx(RX_ADDR), text, 0, &mi);
        while (g_match_info_matches(mi) && rd.out->len == 0) {
            char *raw = g_match_info_fetch(mi, 0);
            char *addr = g_ascii_strdown(raw, -1);
            if (!excluded(&rd, addr, TRUE))
                add(&rd, addr, whole);
            g_free(addr);
            g_free(raw);
            g_match_info_next(mi, NULL);
        }
        g_match_info_free(mi);
    }
    g_free(text);
    g_ptr_array_unref(rd.not_failed);
    return rd.out;
}

/* ------------------------------------------------------------ complaints */

void bounce_complaint_free(struct bounce_complaint *c)
{
    if (!c)
        return;
    g_free(c->type);
    g_free(c->recipient);
    g_free(c->original_id);
    g_free(c->return_path);
    g_free(c->list_unsubscribe);
    g_free(c);
}

static char *bare_id(const char *v)
{
    if (!v)
        return NULL;
    const char *lt = strchr(v, '<');
    const char *start = lt ? lt + 1 : v;
    const char *gt = strchr(start, '>');
    char *id = gt ? g_strndup(start, gt - start) : g_strdup(start);
    g_strstrip(id);
    if (!*id || strlen(id) > 500) {
        g_free(id);
        return NULL;
    }
    return id;
}

struct bounce_complaint *bounce_complaint_read(const struct message_in *m)
{
    const char *type = message_in_feedback(m, "Feedback-Type");
    const char *jmrp = message_in_original_header(m, "X-HmXmrOriginalRecipient");
    const char *apple = message_in_header(m, "X-Apple-Unsubscribe");
    gboolean unsubscribe = apple && g_regex_match_simple("^\\s*true", apple, G_REGEX_CASELESS, 0);
    const char *kind = type ? type : (m->is_feedback || jmrp) ? "abuse" : unsubscribe ? "opt-out" : NULL;
    if (!kind)
        return NULL;
    struct bounce_complaint *c = g_new0(struct bounce_complaint, 1);
    c->type = g_ascii_strdown(kind, -1);
    g_strstrip(c->type);
    const char *rcpt = message_in_feedback(m, "Original-Rcpt-To");
    c->recipient = address_in(rcpt ? rcpt : jmrp ? jmrp : message_in_original_header(m, "To"));
    c->original_id = bare_id(message_in_original_header(m, "Message-ID"));
    const char *mail_from = message_in_feedback(m, "Original-Mail-From");
    /* as written: a VERP token in it is case-sensitive */
    c->return_path = address_as_written(mail_from ? mail_from : message_in_original_header(m, "Return-Path"));
    const char *lu = message_in_original_header(m, "List-Unsubscribe");
    c->list_unsubscribe = lu ? g_strdup(lu) : NULL;
    return c;
}
