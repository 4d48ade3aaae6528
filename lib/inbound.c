/* inbound.c - owns the reading of inbound mail: which address it came to,
 * whether it is a bounce, an automatic reply or a loop, and which command
 * it carries. Every byte is hostile: MIME is GMime's job (message.c), and
 * here only bounded, cleaned strings are looked at.
 *
 * Where the command is read, first match wins:
 *   1. the address extension: release+subscribe@, +unsubscribe[-TOKEN]@,
 *      +confirm-TOKEN@, +pause@ ...;
 *   2. the Subject, without Re:/Fwd:/AW:/SV:... prefixes, if its first word
 *      is a command;
 *   3. the first line of the body that is not quoted, not a quote header
 *      ("On ... wrote:", "-----Original Message-----") and not a signature.
 * Anything else sent to a command address is the command "unknown", which
 * is answered with the help mail; unless it replies to one of our mails
 * (In-Reply-To or References name a Message-ID of our domain, or the
 * Subject is "Re: " and a lesson's subject): then it is a reader's note,
 * kept (and forwarded to the course's replies_to) and never answered. The
 * machines come first: a complaint, a bounce or an automatic reply is
 * never a note. */
#include <string.h>
#include "inbound.h"
#include "address.h"
#include "bounce.h"
#include "json.h"
#include "message.h"

static const char *const commands[] = { "subscribe", "confirm", "unsubscribe", "pause", "resume", "status",
                                        "help",      "next",    "restart",     "tz",    NULL };

const char *inbound_kind_name(enum inbound_kind k)
{
    static const char *names[] = { "command", "confirm",   "bounce", "auto-reply",
                                   "ignored", "complaint", "note" };
    return names[k];
}

void inbound_free(struct inbound *r)
{
    if (!r)
        return;
    g_free(r->key);
    g_free(r->message_id);
    g_free(r->sender);
    g_free(r->sender_name);
    g_free(r->command);
    g_free(r->course);
    g_free(r->args);
    g_free(r->tz);
    g_free(r->name);
    g_free(r->token);
    g_free(r->feedback_type);
    g_free(r->complainant);
    g_free(r->original_id);
    g_free(r->reason);
    g_free(r->lesson);
    g_free(r->note);
    if (r->bounces)
        g_ptr_array_unref(r->bounces);
    g_free(r);
}

const char *inbound_zone_for_offset(int minutes)
{
    static const struct {
        int off;
        const char *zone;
    } odd[] = {
        { 330, "Asia/Kolkata" },       { 345, "Asia/Kathmandu" },     { 570, "Australia/Darwin" },
        { 630, "Australia/Adelaide" }, { -210, "America/St_Johns" },  { -150, "America/St_Johns" },
        { 210, "Asia/Tehran" },        { 270, "Asia/Kabul" },         { 390, "Asia/Yangon" },
        { 765, "Pacific/Chatham" },    { -570, "Pacific/Marquesas" }, { 525, "Australia/Eucla" },
    };
    /* Etc/GMT signs are inverted: Etc/GMT-2 is UTC+2. Index: hours + 12. */
    static const char *const whole[] = {
        "Etc/GMT+12", "Etc/GMT+11", "Etc/GMT+10", "Etc/GMT+9",  "Etc/GMT+8",  "Etc/GMT+7",  "Etc/GMT+6",
        "Etc/GMT+5",  "Etc/GMT+4",  "Etc/GMT+3",  "Etc/GMT+2",  "Etc/GMT+1",  "UTC",        "Etc/GMT-1",
        "Etc/GMT-2",  "Etc/GMT-3",  "Etc/GMT-4",  "Etc/GMT-5",  "Etc/GMT-6",  "Etc/GMT-7",  "Etc/GMT-8",
        "Etc/GMT-9",  "Etc/GMT-10", "Etc/GMT-11", "Etc/GMT-12", "Etc/GMT-13", "Etc/GMT-14",
    };
    if (minutes % 60 == 0 && minutes >= -12 * 60 && minutes <= 14 * 60)
        return whole[minutes / 60 + 12];
    for (size_t i = 0; i < G_N_ELEMENTS(odd); i++)
        if (odd[i].off == minutes)
            return odd[i].zone;
    return NULL;
}

/* The first word of line, lower-cased, without trailing punctuation. */
static char *first_word(const char *line, const char **rest)
{
    while (*line == ' ' || *line == '\t' || *line == '*' || *line == '_')
        line++;
    const char *end = line;
    /* a no-break space (U+00A0) ends a word too */
    while (*end && *end != ' ' && *end != '\t' && *end != '\n' &&
           !((guchar)end[0] == 0xc2 && (guchar)end[1] == 0xa0))
        end++;
    char *w = g_ascii_strdown(line, end - line);
    gsize n = strlen(w);
    while (n > 0 && strchr(".,;:!?*_", w[n - 1]))
        w[--n] = '\0';
    if (rest) {
        while (*end == ' ' || *end == '\t')
            end++;
        *rest = end;
    }
    return w;
}

static char *normalise_command(const char *w)
{
    if (!w)
        return NULL;
    if (!strcmp(w, "leave") || !strcmp(w, "unsub") || !strcmp(w, "signoff"))
        return g_strdup("unsubscribe");
    if (!strcmp(w, "join") || !strcmp(w, "sub"))
        return g_strdup("subscribe");
    if (g_strv_contains(commands, w))
        return g_strdup(w);
    return NULL;
}

static char *strip_reply_prefixes(const char *subject)
{
    char *s = g_strdup(subject);
    GRegex *re = g_regex_new("^\\s*(re|fwd?|aw|wg|sv|vs|antw|odp|tr|rif|r)(\\[\\d+\\])?\\s*:\\s*",
                             G_REGEX_CASELESS, 0, NULL);
    for (int i = 0; i < 100; i++) {
        char *t = g_regex_replace_literal(re, s, -1, 0, "", 0, NULL);
        gboolean same = strcmp(t, s) == 0;
        g_free(s);
        s = t;
        if (same)
            break;
    }
    g_regex_unref(re);
    return g_strstrip(s);
}

/* The first line of the body that the sender typed. */
static char *first_body_line(const char *text)
{
    char **lines = g_strsplit(text, "\n", 200);
    char *found = NULL;
    for (char **l = lines; *l && !found; l++) {
        char *line = g_strstrip(g_strdup(*l));
        gboolean stop = g_str_has_prefix(*l, "-- ") || !strcmp(*l, "--") ||
                        g_regex_match_simple("^-+ ?(original message|forwarded message)", line,
                                             G_REGEX_CASELESS, 0) ||
                        g_regex_match_simple("^(on .* wrote:|am .* schrieb .*:|le .* a écrit ?:|from: .+)$",
                                             line, G_REGEX_CASELESS, 0) ||
                        g_regex_match_simple("^sent from my ", line, G_REGEX_CASELESS, 0);
        if (stop) {
            g_free(line);
            break;
        }
        if (*line && line[0] != '>')
            found = line;
        else
            g_free(line);
    }
    g_strfreev(lines);
    return found;
}

static gint64 parse_pause(const char *args)
{
    GMatchInfo *mi = NULL;
    GRegex *re = g_regex_new("^for\\s+(\\d{1,3})\\s*(d|days?|w|weeks?)\\b", G_REGEX_CASELESS, 0, NULL);
    gint64 secs = 0;
    if (g_regex_match(re, args, 0, &mi)) {
        char *n = g_match_info_fetch(mi, 1), *u = g_match_info_fetch(mi, 2);
        secs = g_ascii_strtoll(n, NULL, 10) * (g_ascii_tolower(u[0]) == 'w' ? 7 * 86400 : 86400);
        g_free(n);
        g_free(u);
    }
    g_match_info_free(mi);
    g_regex_unref(re);
    return secs;
}

/* Fill command, args and its parameters from one command line. */
static void parse_command_line(struct inbound *r, const char *line, const char *const *courses)
{
    /* A line may be parsed after another (the +subscribe address, then the
     * body's details): start clean. */
    g_clear_pointer(&r->command, g_free);
    g_clear_pointer(&r->args, g_free);
    g_clear_pointer(&r->name, g_free);
    g_clear_pointer(&r->tz, g_free);
    r->pause_for = 0;
    r->all = FALSE;
    /* A no-break space counts as a space: our mails keep examples such as
     * "tz Europe/Berlin" on one line with one, and a reader copies it. */
    char **parts = g_strsplit(line, "\xc2\xa0", -1);
    char *spaced = g_strjoinv(" ", parts);
    g_strfreev(parts);
    line = spaced;
    const char *rest = NULL;
    char *w = first_word(line, &rest);
    r->command = normalise_command(w);
    g_free(w);
    if (!r->command) {
        r->command = g_strdup("unknown");
        r->args = g_strndup(line, 200);
        g_free(spaced);
        return;
    }
    r->args = g_strstrip(g_strndup(rest, 200));
    if (!strcmp(r->command, "subscribe")) {
        GString *name = g_string_new(NULL);
        char **words = g_strsplit_set(r->args, " \t", 20);
        for (char **p = words; *p; p++) {
            if (!**p)
                continue;
            char *lw = g_ascii_strdown(*p, -1);
            if (g_str_has_prefix(lw, "tz=")) {
                g_free(r->tz);
                r->tz = g_strdup(*p + 3);
            } else if (p == words && g_strv_contains(courses, lw)) {
                g_free(r->course);
                r->course = g_strdup(lw);
            } else {
                g_string_append_printf(name, "%s%s", name->len ? " " : "", *p);
            }
            g_free(lw);
        }
        g_strfreev(words);
        r->name = address_clean_name(name->str, 100);
        g_string_free(name, TRUE);
    } else if (!strcmp(r->command, "unsubscribe")) {
        /* "unsubscribe all", "leave everything": every course at once */
        char *arg = first_word(r->args, NULL);
        r->all = !strcmp(arg, "all") || !strcmp(arg, "everything");
        g_free(arg);
    } else if (!strcmp(r->command, "pause")) {
        r->pause_for = parse_pause(r->args);
    } else if (!strcmp(r->command, "restart")) {
        /* Starting over sets progress back to lesson 1: only a line that
         * says nothing else ("restart", "restart release") counts, not a
         * reader's "Restart everything? I wish I could." */
        char *lw = g_ascii_strdown(r->args, -1);
        if (*lw && !g_strv_contains(courses, lw)) {
            g_free(r->command);
            r->command = g_strdup("unknown");
        }
        g_free(lw);
    } else if (!strcmp(r->command, "tz")) {
        const char *z = r->args;
        char *end = strpbrk(r->args, " \t");
        r->tz = end ? g_strndup(z, end - z) : g_strdup(z);
    }
    g_free(spaced);
}

static gboolean header_says_auto(const struct message_in *m, char **why)
{
    const char *as = message_in_header(m, "Auto-Submitted");
    if (as && g_ascii_strncasecmp(as, "no", 2) != 0) {
        *why = g_strdup_printf("Auto-Submitted: %s", as);
        return TRUE;
    }
    const char *prec = message_in_header(m, "Precedence");
    if (prec && g_regex_match_simple("^\\s*(bulk|junk|list|auto_reply)", prec, G_REGEX_CASELESS, 0)) {
        *why = g_strdup_printf("Precedence: %s", prec);
        return TRUE;
    }
    /* Outlook and Exchange before 2007 mark an out-of-office reply only in
     * its Subject */
    if (m->subject && g_regex_match_simple("^\\s*(out of (the )?office( autoreply)?|automatic reply|"
                                           "auto(matic)?[- ]?(reply|response)|automatische antwort|"
                                           "abwesenheitsnotiz|r(é|e)ponse automatique|"
                                           "respuesta autom(á|a)tica|fuori sede|absence)\\s*:",
                                           m->subject, G_REGEX_CASELESS, 0)) {
        *why = g_strdup_printf("an out-of-office reply (Subject: %.60s)", m->subject);
        return TRUE;
    }
    const char *flags[] = { "X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress", "X-Autogenerated" };
    for (size_t i = 0; i < G_N_ELEMENTS(flags); i++) {
        const char *v = message_in_header(m, flags[i]);
        if (v && (i != 2 || g_regex_match_simple("(?i)all|oof|autoreply", v, 0, 0))) {
            *why = g_strdup_printf("%s: %s", flags[i], v);
            return TRUE;
        }
    }
    return FALSE;
}

/* The dedup key: the Message-ID, else a hash of the bytes; followed by
 * the envelope recipient when the MTA gave one. One mail to two course
 * addresses reaches the pipe once per recipient (Postfix with
 * destination_recipient_limit = 1), and each is its own command; the same
 * recipient's copy delivered twice is one. The recipient is lower-cased:
 * an MTA may fold its case between two deliveries. */
static char *dedup_key(const struct message_in *m, const char *data, gsize len, const char *envelope_rcpt)
{
    char *key;
    if (m && m->message_id) {
        key = g_strdup_printf("mid:%s", m->message_id);
    } else {
        char *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)data, len);
        key = g_strdup_printf("sha256:%s", sum);
        g_free(sum);
    }
    if (envelope_rcpt && *envelope_rcpt) {
        char *rcpt = g_ascii_strdown(envelope_rcpt, -1);
        char *both = g_strdup_printf("%s rcpt:%s", key, rcpt);
        g_free(rcpt);
        g_free(key);
        key = both;
    }
    return key;
}

/* Where a message came to: the envelope recipient, else the first of our
 * addresses in its headers; local part (lower case, without extension)
 * and extension (original spelling: tokens are case-sensitive), both NULL
 * when it is not one of ours. */
struct destination {
    char *local, *ext;
};

static void destination_of(const struct message_in *m, const struct config *cfg, const char *envelope_rcpt,
                           struct destination *d)
{
    d->local = d->ext = NULL;
    const char *orig = envelope_rcpt;
    for (guint i = 0; !orig && i < m->rcpts->len; i++) {
        const char *a = m->rcpts->pdata[i];
        const char *at = strrchr(a, '@');
        if (at && g_ascii_strcasecmp(at + 1, cfg->domain) == 0)
            orig = a;
    }
    const char *at = orig ? strrchr(orig, '@') : NULL;
    if (!at || g_ascii_strcasecmp(at + 1, cfg->domain) != 0)
        return;
    const char *plus = memchr(orig, '+', at - orig);
    d->local = g_ascii_strdown(orig, (plus ? plus : at) - orig);
    if (plus)
        d->ext = g_strndup(plus + 1, at - plus - 1);
}

static gboolean is_daemon_address(const char *a)
{
    return a && g_regex_match_simple("(?i)^(mailer-daemon|postmaster|mail-daemon)@", a, 0, 0);
}

/* The VERP token of one of our envelope senders, bounces+TOKEN@domain, in
 * value; or NULL. */
static char *verp_token_in(const char *value, const char *domain)
{
    if (!value)
        return NULL;
    char *dom = g_regex_escape_string(domain, -1);
    char *pattern = g_strdup_printf("(?i)\\bbounces?\\+([A-Za-z0-9_-]{16,64})@%s(?![A-Za-z0-9.-])", dom);
    char *tok = NULL;
    GRegex *re = g_regex_new(pattern, 0, 0, NULL);
    GMatchInfo *mi = NULL;
    if (re && g_regex_match(re, value, 0, &mi))
        tok = g_match_info_fetch(mi, 1);
    g_match_info_free(mi);
    if (re)
        g_regex_unref(re);
    g_free(pattern);
    g_free(dom);
    return tok;
}

/* The token of a List-Unsubscribe value: <mailto:slug+unsubscribe-TOKEN@>
 * or the /u/TOKEN page link; or NULL. */
static char *unsubscribe_token_in(const char *value)
{
    if (!value)
        return NULL;
    GMatchInfo *mi = NULL;
    char *tok = NULL;
    if (g_regex_match_simple("(?i)unsubscribe-", value, 0, 0)) {
        GRegex *re = g_regex_new("(?i)\\+unsubscribe-([A-Za-z0-9_-]{16,64})@", 0, 0, NULL);
        if (g_regex_match(re, value, 0, &mi))
            tok = g_match_info_fetch(mi, 1);
        g_match_info_free(mi);
        g_regex_unref(re);
    }
    return tok;
}

/* A complaint (ARF, RFC 5965), wherever it arrives: matched later through
 * the original it carries (its VERP envelope, its List-Unsubscribe token or
 * its Message-ID). An authentication-failure report is about our DNS, not
 * about a reader: the operator's, and nobody is touched. TRUE when m is a
 * feedback report of any kind. */
static gboolean classify_complaint(struct inbound *r, const struct message_in *m, const struct config *cfg,
                                   const struct destination *d)
{
    struct bounce_complaint *c = bounce_complaint_read(m);
    if (!c)
        return FALSE;
    if (!strcmp(c->type, "auth-failure") || !strcmp(c->type, "dkim") || !strcmp(c->type, "not-spam")) {
        r->kind = INBOUND_IGNORED;
        r->reason = g_strdup_printf(
            "a feedback report of type %s: about our mail's authentication, not "
            "a reader's complaint; for the operator",
            c->type);
        bounce_complaint_free(c);
        return TRUE;
    }
    r->kind = INBOUND_COMPLAINT;
    r->feedback_type = g_strdup(c->type);
    r->complainant = g_strdup(c->recipient);
    r->original_id = g_strdup(c->original_id);
    /* the original's own tokens first; else the one of the address the
     * report came to (bounces+TOKEN@, slug+unsubscribe-TOKEN@) */
    char *tok = verp_token_in(c->return_path, cfg->domain);
    if (!tok)
        tok = unsubscribe_token_in(c->list_unsubscribe);
    if (!tok && d->local && d->ext && g_ascii_strncasecmp(d->ext, "unsubscribe-", 12) == 0)
        tok = g_strdup(d->ext + 12);
    if (tok) {
        g_free(r->token);
        r->token = tok;
    }
    r->reason = g_strdup_printf(
        "a complaint (feedback report, %s): unsubscribe the reader from "
        "everything, never answer",
        c->type);
    bounce_complaint_free(c);
    return TRUE;
}

/* A bounce: its failed recipients, and the VERP token of the address it
 * came to (or of the returned original's envelope sender). */
static void classify_bounce(struct inbound *r, const struct message_in *m, const struct config *cfg,
                            const struct destination *d, const char *why)
{
    r->kind = INBOUND_BOUNCE;
    r->bounces = bounce_parse(m, cfg->domain);
    if (!r->token)
        r->token = verp_token_in(message_in_original_header(m, "Return-Path"), cfg->domain);
    (void)d;
    r->reason = g_strdup_printf("%s%s", why,
                                bounce_is_delay(m) ? " (a delay warning: soft, nobody is stopped)" : "");
}

/* Machines first, whatever else the message says: complaints, then bounces
 * (a bounce with Precedence: bulk, Auto-Submitted or a null sender is still
 * a bounce), then loops and automatic replies. TRUE when r is classified
 * (complaint, bounce, auto-reply or ignored) and no command is read. */
static gboolean classify_machine(struct inbound *r, const struct message_in *m, const struct config *cfg,
                                 const struct destination *d, gboolean from_daemon)
{
    char *auto_why = NULL;
    const char *list_id = message_in_header(m, "List-Id");
    char *our_list = g_strdup_printf(".%s>", cfg->domain);
    gboolean done = TRUE;
    gboolean to_bounces = d->local && (!strcmp(d->local, "bounces") || !strcmp(d->local, "bounce"));
    if (to_bounces)
        r->token = g_strdup(d->ext);
    if (classify_complaint(r, m, cfg, d)) {
        /* a complaint or another feedback report */
    } else if (to_bounces) {
        GPtrArray *failed = bounce_parse(m, cfg->domain);
        if (failed->len > 0) {
            classify_bounce(r, m, cfg, d, "delivery failure report to the bounce address");
        } else if (m->is_dsn) {
            r->reason = g_strdup("a delivery report that reports no failure");
        } else if (header_says_auto(m, &auto_why)) {
            r->kind = INBOUND_AUTOREPLY;
            r->reason = g_strdup_printf("automatic reply to the bounce address (%s)", auto_why);
        } else {
            r->reason = g_strdup("sent to the bounce address, but reports no failed recipient");
        }
        g_ptr_array_unref(failed);
    } else if (bounce_is_report(m)) {
        classify_bounce(r, m, cfg, d, "a delivery failure report, not sent to a VERP address");
    } else if (list_id && g_str_has_suffix(list_id, our_list)) {
        r->kind = INBOUND_AUTOREPLY;
        r->reason = g_strdup_printf("carries our own List-Id (%s): one of our mails came back, a loop",
                                    list_id);
    } else if (header_says_auto(m, &auto_why)) {
        r->kind = INBOUND_AUTOREPLY;
        r->reason = auto_why;
        auto_why = NULL;
    } else if (from_daemon) {
        r->kind = INBOUND_AUTOREPLY;
        r->reason = g_strdup("from a null sender, MAILER-DAEMON or postmaster, and not a bounce");
    } else {
        done = FALSE;
    }
    g_free(auto_why);
    g_free(our_list);
    return done;
}

/* A command in the address extension: +confirm-TOKEN, +unsubscribe-TOKEN,
 * +subscribe (whose name and zone may still be in the Subject or body),
 * +pause ... */
static void command_from_extension(struct inbound *r, const struct message_in *m, const char *ext,
                                   const char *const *courses)
{
    /* any case: an MTA may have folded it, and tokens do not mind */
    if (g_ascii_strncasecmp(ext, "confirm-", 8) == 0) {
        r->kind = INBOUND_CONFIRM;
        r->command = g_strdup("confirm");
        r->token = g_strdup(ext + 8);
        r->reason = g_strdup("reply to a confirmation request");
        return;
    }
    if (g_ascii_strncasecmp(ext, "unsubscribe-", 12) == 0) {
        r->command = g_strdup("unsubscribe");
        r->token = g_strdup(ext + 12);
        r->reason = g_strdup("List-Unsubscribe mailto with a token");
        return;
    }
    parse_command_line(r, ext, courses);
    if (!strcmp(r->command, "subscribe")) {
        char *line = first_body_line(m->text);
        char *s = strip_reply_prefixes(m->subject);
        const char *text = line ? line : s;
        char *w = first_word(text, NULL);
        if (w && !strcmp(w, "subscribe"))
            parse_command_line(r, text, courses);
        g_free(w);
        g_free(s);
        g_free(line);
    }
    r->reason = g_strdup_printf("command in the address (+%s)", ext);
}

/* A command in the Subject, with details in the body when the body's first
 * line repeats it; else the body's first line. */
static void command_from_text(struct inbound *r, const struct message_in *m, const char *const *courses,
                              gboolean subject_ours)
{
    char *subject = strip_reply_prefixes(m->subject);
    /* "Re: <a lesson's subject>" is a reply to it, whatever its first word */
    char *w = subject_ours ? NULL : first_word(subject, NULL);
    char *cmd = normalise_command(w);
    char *line = first_body_line(m->text);
    char *lw = line ? first_word(line, NULL) : NULL;
    char *lcmd = normalise_command(lw);
    if (cmd && lcmd && !strcmp(cmd, lcmd)) {
        /* "subscribe" in the Subject, "subscribe release tz=... Name" in the
         * body: the body has the details. */
        parse_command_line(r, line, courses);
        r->reason = g_strdup("command in the Subject, details in the body");
    } else if (cmd) {
        parse_command_line(r, subject, courses);
        r->reason = g_strdup("command in the Subject");
    } else if (!line) {
        /* No text and no command in the Subject (an empty reply, a broken
         * MIME body): nothing to act on, no reply. */
        r->kind = INBOUND_IGNORED;
        r->reason = g_strdup("no text and no command in the Subject: nothing to act on");
    } else {
        parse_command_line(r, line, courses);
        r->reason = g_strdup(!strcmp(r->command, "unknown") ? "no command found: the help mail answers"
                             : m->html_only                 ? "command in the first line of the HTML body"
                                                            : "command in the first line of the body");
    }
    g_free(lcmd);
    g_free(lw);
    g_free(line);
    g_free(cmd);
    g_free(w);
    g_free(subject);
}

/* The course a command is about, decided once: the one a subscribe names
 * (if it exists), else the address it came to; none for a mail that
 * carried no command. A subscribe without a zone guesses one from the
 * Date header's offset. */
static void settle_course(struct inbound *r, const struct message_in *m, const char *local,
                          const char *const *courses)
{
    gboolean named = r->course && r->command && !strcmp(r->command, "subscribe") &&
                     g_strv_contains(courses, r->course);
    if (!named) {
        g_free(r->course);
        r->course = r->kind == INBOUND_COMMAND && !r->command ? NULL : g_strdup(local);
    }
    if (r->command && !strcmp(r->command, "subscribe") && (!r->tz || !*r->tz) && m->has_date) {
        const char *z = inbound_zone_for_offset(m->date_offset);
        if (z) {
            g_free(r->tz);
            r->tz = g_strdup(z);
            r->tz_guessed = TRUE;
        }
    }
}

/* The Message-IDs of our domain that m answers, In-Reply-To first, then
 * References from the newest; as a list of g_free'd strings (without <>). */
static GPtrArray *our_ids_answered(const struct message_in *m, const struct config *cfg)
{
    GPtrArray *ids = g_ptr_array_new_with_free_func(g_free);
    const char *hdrs[] = { message_in_header(m, "In-Reply-To"), message_in_header(m, "References") };
    GRegex *re = g_regex_new("<([^<>@\\s]{1,200})@([^<>\\s]{1,200})>", 0, 0, NULL);
    for (size_t h = 0; h < G_N_ELEMENTS(hdrs); h++) {
        if (!hdrs[h])
            continue;
        GPtrArray *these = g_ptr_array_new_with_free_func(g_free);
        GMatchInfo *mi = NULL;
        g_regex_match(re, hdrs[h], 0, &mi);
        for (int i = 0; i < 100 && g_match_info_matches(mi); i++) {
            char *local = g_match_info_fetch(mi, 1), *dom = g_match_info_fetch(mi, 2);
            if (g_ascii_strcasecmp(dom, cfg->domain) == 0)
                g_ptr_array_add(these, g_strdup_printf("%s@%s", local, dom));
            g_free(local);
            g_free(dom);
            g_match_info_next(mi, NULL);
        }
        g_match_info_free(mi);
        /* References lists the oldest first: the newest is the one answered */
        for (guint i = these->len; i > 0; i--)
            g_ptr_array_add(ids, g_strdup(these->pdata[i - 1]));
        g_ptr_array_unref(these);
    }
    g_regex_unref(re);
    return ids;
}

/* Whether m replies to one of our mails; *lesson (g_free) is the lesson's
 * slug when that is known: from a lesson's Message-ID,
 * <slug>.e<enrollment>[r<round>].<course>@domain (compose_lesson_id), else
 * from a Subject that is a reply prefix and the subject of a lesson of the
 * course it was sent to. *subject_ours: the Subject is that lesson's (so
 * its first word is not a command). */
static gboolean replies_to_ours(const struct message_in *m, const struct config *cfg, const char *course,
                                const struct inbound_lesson *lessons, char **lesson, gboolean *subject_ours)
{
    *lesson = NULL;
    *subject_ours = FALSE;
    GPtrArray *ids = our_ids_answered(m, cfg);
    gboolean ours = ids->len > 0;
    GRegex *re = g_regex_new(
        "^([a-z0-9][a-z0-9_-]{0,99})\\.e[0-9]{1,18}(r[0-9]{1,9})?\\.([a-z0-9_-]{1,100})@", G_REGEX_CASELESS,
        0, NULL);
    for (guint i = 0; i < ids->len && !*lesson; i++) {
        GMatchInfo *mi = NULL;
        if (g_regex_match(re, ids->pdata[i], 0, &mi)) {
            char *c = g_match_info_fetch(mi, 3);
            if (!g_ascii_strcasecmp(c, course))
                *lesson = g_match_info_fetch(mi, 1);
            g_free(c);
        }
        g_match_info_free(mi);
    }
    g_regex_unref(re);
    g_ptr_array_unref(ids);
    char *stripped = m->subject ? strip_reply_prefixes(m->subject) : NULL;
    char *plain = m->subject ? g_strstrip(g_strdup(m->subject)) : NULL;
    gboolean prefixed = stripped && plain && strcmp(stripped, plain) != 0;
    g_free(plain);
    for (const struct inbound_lesson *l = lessons; l && l->course && stripped; l++) {
        if (g_ascii_strcasecmp(l->course, course) != 0 || !l->subject || strcmp(l->subject, stripped) != 0)
            continue;
        if (*lesson && strcmp(*lesson, l->slug) != 0)
            continue;
        *subject_ours = TRUE;
        if (!ours && prefixed) {
            ours = TRUE;
            *lesson = g_strdup(l->slug);
        }
        break;
    }
    g_free(stripped);
    return ours;
}

/* What the reader wrote: the first text part's lines down to where the
 * quoted original starts ("On ... wrote:", "-----Original Message-----", a
 * signature), without the quoted lines at its end; at most
 * INBOUND_NOTE_MAX bytes, cut at a character boundary. */
static char *note_text(const char *text)
{
    GString *out = g_string_new(NULL);
    char **lines = g_strsplit(text ? text : "", "\n", 20000);
    for (char **l = lines; *l && out->len < INBOUND_NOTE_MAX; l++) {
        char *line = g_strstrip(g_strdup(*l));
        gboolean stop = g_str_has_prefix(*l, "-- ") || !strcmp(*l, "--") ||
                        g_regex_match_simple("^-+ ?(original message|forwarded message)", line,
                                             G_REGEX_CASELESS, 0) ||
                        g_regex_match_simple("^(on .* wrote:|am .* schrieb .*:|le .* a écrit ?:)$", line,
                                             G_REGEX_CASELESS, 0);
        g_free(line);
        if (stop)
            break;
        g_string_append(out, *l);
        g_string_append_c(out, '\n');
    }
    g_strfreev(lines);
    /* the quoted original at the end (a reply written on top of it) goes;
     * quotes between the reader's own lines stay, they give them sense */
    for (;;) {
        while (out->len && g_ascii_isspace(out->str[out->len - 1]))
            g_string_truncate(out, out->len - 1);
        const char *nl = g_strrstr(out->str, "\n");
        const char *last = nl ? nl + 1 : out->str;
        if (!out->len || *last != '>')
            break;
        g_string_truncate(out, last - out->str);
    }
    if (out->len > INBOUND_NOTE_MAX) {
        const char *end = g_utf8_find_prev_char(out->str, out->str + INBOUND_NOTE_MAX + 1);
        g_string_truncate(out, end ? (gsize)(end - out->str) : 0);
    }
    g_string_append_c(out, '\n');
    return g_string_free(out, FALSE);
}

struct inbound *inbound_classify(const char *data, gsize len, const struct config *cfg,
                                 const char *const *courses, const char *envelope_sender,
                                 const char *envelope_rcpt)
{
    return inbound_classify_lessons(data, len, cfg, courses, NULL, envelope_sender, envelope_rcpt);
}

struct inbound *inbound_classify_lessons(const char *data, gsize len, const struct config *cfg,
                                         const char *const *courses, const struct inbound_lesson *lessons,
                                         const char *envelope_sender, const char *envelope_rcpt)
{
    struct inbound *r = g_new0(struct inbound, 1);
    r->kind = INBOUND_IGNORED;
    GError *err = NULL;
    struct message_in *m = message_parse(data, len, &err);
    r->key = dedup_key(m, data, len, envelope_rcpt);
    if (!m) {
        r->reason = g_strdup_printf("cannot be parsed: %s", err->message);
        r->unparsable = TRUE;
        g_error_free(err);
        return r;
    }
    r->message_id = g_strdup(m->message_id);
    r->has_offset = m->has_date;
    r->date_offset = m->date_offset;
    GError *from_err = NULL; /* why a From address is not usable, for the log */
    r->sender = m->from_addr ? address_normalize(m->from_addr, &from_err) : NULL;
    r->sender_name = m->from_name ? address_clean_name(m->from_name, 100) : NULL;
    const char *env_sender = envelope_sender ? envelope_sender : m->return_path;
    gboolean from_daemon = (env_sender && !*env_sender) || is_daemon_address(env_sender) ||
                           is_daemon_address(r->sender);
    struct destination d;
    destination_of(m, cfg, envelope_rcpt, &d);

    if (classify_machine(r, m, cfg, &d, from_daemon)) {
        /* classified: a bounce, a loop or nothing to act on */
    } else if (!d.local) {
        r->reason = g_strdup_printf("not addressed to a command address of %s", cfg->domain);
    } else if (!g_strv_contains(courses, d.local)) {
        r->reason = g_strdup_printf("%s@%s is not a course address", d.local, cfg->domain);
    } else if (!r->sender) {
        r->reason = from_err ? g_strdup_printf("no usable From address: %s", from_err->message)
                             : g_strdup("no usable From address");
    } else {
        r->kind = INBOUND_COMMAND;
        char *lesson = NULL;
        gboolean subject_ours = FALSE;
        gboolean reply = !(d.ext && *d.ext) &&
                         replies_to_ours(m, cfg, d.local, lessons, &lesson, &subject_ours);
        if (d.ext && *d.ext)
            command_from_extension(r, m, d.ext, courses);
        else
            command_from_text(r, m, courses, subject_ours);
        settle_course(r, m, d.local, courses);
        if (reply && r->command && !strcmp(r->command, "unknown")) {
            /* a person writing back: kept, never answered by a robot */
            r->kind = INBOUND_NOTE;
            g_clear_pointer(&r->command, g_free);
            g_clear_pointer(&r->args, g_free);
            g_free(r->reason);
            r->reason = g_strdup_printf("a reader's note: a reply to our %s that is not a command",
                                        lesson ? "lesson" : "mail");
            r->lesson = g_steal_pointer(&lesson);
            r->note = note_text(m->text);
        }
        g_free(lesson);
    }
    r->may_reply = (r->kind == INBOUND_COMMAND || r->kind == INBOUND_CONFIRM) && r->sender && !from_daemon;
    g_clear_error(&from_err);
    g_free(d.local);
    g_free(d.ext);
    message_in_free(m);
    return r;
}

/* Member by member: the writer owns commas, nesting and escaping. */
static void inbound_json_bounces(struct json_writer *w, const GPtrArray *bounces)
{
    jw_key(w, "bounces");
    jw_array(w);
    for (guint i = 0; bounces && i < bounces->len; i++) {
        const struct bounce_rcpt *b = bounces->pdata[i];
        jw_object(w);
        jw_key(w, "address");
        jw_string(w, b->address);
        jw_key(w, "status");
        jw_string(w, b->status);
        jw_key(w, "class");
        jw_string(w, bounce_class_name(b->klass));
        jw_object_end(w);
    }
    jw_array_end(w);
}

char *inbound_to_json(const struct inbound *r, const char *action)
{
    GString *o = g_string_new(NULL);
    struct json_writer *w = jw_new(o, 0);
    jw_object(w);
    jw_key(w, "kind");
    jw_string(w, inbound_kind_name(r->kind));
    jw_key(w, "command");
    jw_string(w, r->command);
    jw_key(w, "course");
    jw_string(w, r->course);
    jw_key(w, "sender");
    jw_string(w, r->sender);
    jw_key(w, "args");
    jw_string(w, r->args);
    if (r->tz) {
        jw_key(w, "tz");
        jw_string(w, r->tz);
        jw_key(w, "tz_guessed");
        jw_bool(w, r->tz_guessed);
    }
    if (r->name && *r->name) {
        jw_key(w, "name");
        jw_string(w, r->name);
    }
    if (r->all) {
        jw_key(w, "all");
        jw_bool(w, TRUE);
    }
    if (r->pause_for) {
        jw_key(w, "pause_seconds");
        jw_int(w, r->pause_for);
    }
    jw_key(w, "token");
    jw_string(w, r->token);
    jw_key(w, "message_id");
    jw_string(w, r->message_id);
    inbound_json_bounces(w, r->bounces);
    if (r->kind == INBOUND_NOTE) {
        jw_key(w, "lesson_slug");
        jw_string(w, r->lesson);
    }
    if (r->kind == INBOUND_COMPLAINT) {
        jw_key(w, "feedback_type");
        jw_string(w, r->feedback_type);
        jw_key(w, "complainant");
        jw_string(w, r->complainant);
        jw_key(w, "original_message_id");
        jw_string(w, r->original_id);
    }
    jw_key(w, "may_reply");
    jw_bool(w, r->may_reply);
    jw_key(w, "reason");
    jw_string(w, r->reason);
    if (action) {
        jw_key(w, "action");
        jw_string(w, action);
    }
    jw_object_end(w);
    jw_end(w);
    return g_string_free(o, FALSE);
}
