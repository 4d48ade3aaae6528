/* message.c - owns GMime: building the messages coursed sends. Output is
 * always CRLF (libESMTP and Maildir readers need it), UTF-8 bodies are
 * quoted-printable so no line exceeds 998 octets, and every value that came
 * from a subscriber or a course is stripped of control characters before it
 * reaches a header, so no input can smuggle in a header line. */
#include <string.h>
#include <gmime/gmime.h>
#include "message.h"
#include "address.h"
#include "error.h"

static GMimeFormatOptions *crlf_options;

void message_init(void)
{
    static gsize done;
    if (g_once_init_enter(&done)) {
        g_mime_init();
        crlf_options = g_mime_format_options_new();
        g_mime_format_options_set_newline_format(crlf_options, GMIME_NEWLINE_FORMAT_DOS);
        g_once_init_leave(&done, 1);
    }
}

/* A header value must be one line of printable text. */
static gboolean header_value_ok(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return FALSE;
    return TRUE;
}

/* A boundary derived from the Message-ID: the same message always
 * serialises to the same bytes (golden tests, and resends that fold). */
static void set_boundary(GMimeMultipart *mp, const char *message_id, const char *tag)
{
    char *sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256, message_id ? message_id : "", -1);
    char *b = g_strdup_printf("=_coursed_%s_%.24s", tag, sum);
    g_mime_multipart_set_boundary(mp, b);
    g_free(b);
    g_free(sum);
}

static GMimePart *text_part(const char *subtype, const char *text)
{
    GMimeTextPart *part = g_mime_text_part_new_with_subtype(subtype);
    GMimeStream *mem = g_mime_stream_mem_new_with_buffer(text, strlen(text));
    GMimeDataWrapper *w = g_mime_data_wrapper_new_with_stream(mem, GMIME_CONTENT_ENCODING_DEFAULT);
    g_mime_part_set_content((GMimePart *)part, w);
    g_object_unref(w);
    g_object_unref(mem);
    g_mime_text_part_set_charset(part, "utf-8");
    g_mime_part_set_content_encoding((GMimePart *)part, GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
    return (GMimePart *)part;
}

char *message_build(const struct message_spec *m, gsize *len, GError **err)
{
    message_init();
    const char *raw[] = { m->from_addr, m->to_addr, m->message_id, m->list_id,
                          m->list_unsubscribe, m->lesson_tag, m->reply_to, m->auto_submitted };
    for (size_t i = 0; i < G_N_ELEMENTS(raw); i++) {
        if (raw[i] && !header_value_ok(raw[i])) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID,
                        "refusing a header value with control characters");
            return NULL;
        }
    }
    char *from_name = address_clean_name(m->from_name ? m->from_name : "", 200);
    char *to_name = address_clean_name(m->to_name ? m->to_name : "", 200);
    char *subject = address_clean_name(m->subject ? m->subject : "", 400);

    GMimeMessage *msg = g_mime_message_new(TRUE);
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_FROM, from_name, m->from_addr);
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_TO, to_name, m->to_addr);
    g_mime_message_set_subject(msg, subject, "utf-8");
    GDateTime *date = g_date_time_new_from_unix_utc(m->date);
    g_mime_message_set_date(msg, date);
    g_date_time_unref(date);
    g_mime_message_set_message_id(msg, m->message_id);
    GMimeObject *obj = (GMimeObject *)msg;
    if (m->reply_to)
        g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_REPLY_TO, NULL, m->reply_to);
    if (m->auto_submitted)
        g_mime_object_set_header(obj, "Auto-Submitted", m->auto_submitted, NULL);
    if (m->list_id)
        g_mime_object_set_header(obj, "List-Id", m->list_id, NULL);
    if (m->lesson_tag)
        g_mime_object_set_header(obj, "X-Course-Lesson", m->lesson_tag, NULL);
    if (m->list_unsubscribe) {
        /* The default formatter would RFC 2047-encode a long URL token;
         * set the raw value, already checked to be one printable line. */
        g_mime_object_set_header(obj, "List-Unsubscribe", "", NULL);
        GMimeHeader *h = g_mime_header_list_get_header(g_mime_object_get_header_list(obj),
                                                       "List-Unsubscribe");
        char *rawv = g_strdup_printf(" %s\n", m->list_unsubscribe);
        g_mime_header_set_raw_value(h, rawv);
        g_free(rawv);
        g_mime_object_set_header(obj, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click", NULL);
    }
    GMimeObject *body = (GMimeObject *)text_part("plain", m->text ? m->text : "");
    if (m->html) {
        GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
        set_boundary(alt, m->message_id, "alt");
        g_mime_multipart_add(alt, body);
        g_object_unref(body);
        GMimePart *html = text_part("html", m->html);
        g_mime_multipart_add(alt, (GMimeObject *)html);
        g_object_unref(html);
        body = (GMimeObject *)alt;
    }
    if (m->calendar) {
        GMimeMultipart *mixed = g_mime_multipart_new_with_subtype("mixed");
        set_boundary(mixed, m->message_id, "mix");
        g_mime_multipart_add(mixed, body);
        g_object_unref(body);
        GMimePart *ics = text_part("calendar", m->calendar);
        g_mime_object_set_content_type_parameter((GMimeObject *)ics, "method", "PUBLISH");
        g_mime_part_set_filename(ics, "course.ics");
        g_mime_object_set_disposition((GMimeObject *)ics, "attachment");
        g_mime_multipart_add(mixed, (GMimeObject *)ics);
        g_object_unref(ics);
        body = (GMimeObject *)mixed;
    }
    g_mime_message_set_mime_part(msg, body);
    g_object_unref(body);

    GMimeStream *out = g_mime_stream_mem_new();
    g_mime_object_write_to_stream(obj, crlf_options, out);
    GByteArray *bytes = g_mime_stream_mem_get_byte_array((GMimeStreamMem *)out);
    *len = bytes->len;
    char *result = g_malloc(bytes->len + 1);
    memcpy(result, bytes->data, bytes->len);
    result[bytes->len] = '\0';
    g_object_unref(out);
    g_object_unref(msg);
    g_free(from_name);
    g_free(to_name);
    g_free(subject);
    return result;
}

/* ------------------------------------------------------------------ parsing
 * Inbound mail is hostile. GMime does the MIME work (encodings, charsets,
 * RFC 2047); what we keep is bounded and cleaned: valid UTF-8, no control
 * characters but TAB and LF, at most INBOUND_TEXT_MAX bytes of body text. */

#include "html.h"

#define INBOUND_TEXT_MAX (256 * 1024)
#define INBOUND_DEPTH_MAX 16

static char *clean_text(const char *s, gsize max)
{
    if (!s)
        return NULL;
    char *valid = g_utf8_make_valid(s, -1);
    GString *out = g_string_sized_new(MIN(strlen(valid), max) + 1);
    for (const char *p = valid; *p && out->len < max; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        if (c == '\r')
            continue;
        if (c != '\n' && c != '\t' && (g_unichar_iscntrl(c) || c == 0x2028 || c == 0x2029))
            g_string_append_c(out, ' ');
        else
            g_string_append_unichar(out, c);
    }
    g_free(valid);
    return g_string_free(out, FALSE);
}

static char *clean_line(const char *s)
{
    char *t = clean_text(s, 4096);
    if (t)
        for (char *p = t; *p; p++)
            if (*p == '\n' || *p == '\t')
                *p = ' ';
    return t ? g_strstrip(t) : NULL;
}

void message_in_free(struct message_in *m)
{
    if (!m)
        return;
    g_free(m->message_id);
    g_free(m->from_addr);
    g_free(m->from_name);
    g_free(m->subject);
    g_free(m->return_path);
    g_free(m->text);
    if (m->rcpts)
        g_ptr_array_unref(m->rcpts);
    if (m->headers)
        g_hash_table_destroy(m->headers);
    if (m->dsn)
        g_ptr_array_unref(m->dsn);
    g_free(m);
}

const char *message_in_header(const struct message_in *m, const char *name)
{
    char *key = g_ascii_strdown(name, -1);
    const char *v = g_hash_table_lookup(m->headers, key);
    g_free(key);
    return v;
}

static void dsn_free(struct message_dsn *d)
{
    g_free(d->recipient);
    g_free(d->action);
    g_free(d->status);
    g_free(d->diagnostic);
    g_free(d);
}

static void add_addresses(GPtrArray *out, InternetAddressList *list)
{
    if (!list)
        return;
    for (int i = 0; i < internet_address_list_length(list) && out->len < 64; i++) {
        InternetAddress *a = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
            const char *addr = internet_address_mailbox_get_addr((InternetAddressMailbox *)a);
            if (addr && *addr)
                g_ptr_array_add(out, clean_line(addr));
        } else if (INTERNET_ADDRESS_IS_GROUP(a)) {
            add_addresses(out, internet_address_group_get_members((InternetAddressGroup *)a));
        }
    }
}

static void add_header_addresses(GPtrArray *out, const char *value)
{
    if (!value)
        return;
    InternetAddressList *l = internet_address_list_parse(NULL, value);
    if (l) {
        add_addresses(out, l);
        g_object_unref(l);
    }
}

/* The decoded content of a leaf part as UTF-8 text, bounded. */
static char *part_text(GMimeObject *obj)
{
    if (GMIME_IS_TEXT_PART(obj)) {
        char *t = g_mime_text_part_get_text((GMimeTextPart *)obj);
        char *c = clean_text(t, INBOUND_TEXT_MAX);
        g_free(t);
        return c;
    }
    if (!GMIME_IS_PART(obj))
        return NULL;
    GMimeDataWrapper *w = g_mime_part_get_content((GMimePart *)obj);
    if (!w)
        return NULL;
    GMimeStream *mem = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(w, mem);
    GByteArray *b = g_mime_stream_mem_get_byte_array((GMimeStreamMem *)mem);
    char *raw = g_strndup((const char *)b->data, MIN(b->len, (guint)INBOUND_TEXT_MAX));
    g_object_unref(mem);
    char *c = clean_text(raw, INBOUND_TEXT_MAX);
    g_free(raw);
    return c;
}

/* Parse the blocks of a message/delivery-status body ("Field: value" lines,
 * blocks separated by blank lines) with GMime's header parser. */
static void parse_dsn(GPtrArray *out, const char *body)
{
    char **blocks = g_regex_split_simple("\\n[ \\t]*\\n", body, 0, 0);
    for (char **b = blocks; *b && out->len < 100; b++) {
        char *hdr = g_strconcat(*b, "\n\n", NULL);
        GMimeStream *st = g_mime_stream_mem_new_with_buffer(hdr, strlen(hdr));
        GMimeParser *p = g_mime_parser_new_with_stream(st);
        GMimeObject *obj = g_mime_parser_construct_part(p, NULL);
        if (obj) {
            const char *rcpt = g_mime_object_get_header(obj, "Final-Recipient");
            if (!rcpt)
                rcpt = g_mime_object_get_header(obj, "Original-Recipient");
            if (rcpt) {
                struct message_dsn *d = g_new0(struct message_dsn, 1);
                const char *semi = strchr(rcpt, ';');
                d->recipient = clean_line(semi ? semi + 1 : rcpt);
                d->action = clean_line(g_mime_object_get_header(obj, "Action"));
                d->status = clean_line(g_mime_object_get_header(obj, "Status"));
                d->diagnostic = clean_line(g_mime_object_get_header(obj, "Diagnostic-Code"));
                if (d->status)
                    for (char *q = d->status; *q; q++)
                        if (*q == ' ' || *q == '(') { *q = '\0'; break; }
                g_ptr_array_add(out, d);
            }
            g_object_unref(obj);
        }
        g_object_unref(p);
        g_object_unref(st);
        g_free(hdr);
    }
    g_strfreev(blocks);
}

struct walk {
    struct message_in *m;
    char *plain, *html;
};

static void walk(struct walk *w, GMimeObject *obj, int depth)
{
    if (!obj || depth > INBOUND_DEPTH_MAX)
        return;
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    if (GMIME_IS_MULTIPART(obj)) {
        if (g_mime_content_type_is_type(ct, "multipart", "report")) {
            const char *rt = g_mime_content_type_get_parameter(ct, "report-type");
            if (rt && g_ascii_strcasecmp(rt, "delivery-status") == 0)
                w->m->is_dsn = TRUE;
        }
        int n = g_mime_multipart_get_count((GMimeMultipart *)obj);
        for (int i = 0; i < n && i < 64; i++)
            walk(w, g_mime_multipart_get_part((GMimeMultipart *)obj, i), depth + 1);
        return;
    }
    if (GMIME_IS_MESSAGE_PART(obj))
        return;   /* an attached or returned original: not the sender's words */
    if (ct && (g_mime_content_type_is_type(ct, "message", "delivery-status") ||
               g_mime_content_type_is_type(ct, "message", "global-delivery-status"))) {
        char *body = part_text(obj);
        if (body)
            parse_dsn(w->m->dsn, body);
        g_free(body);
        return;
    }
    if (GMIME_IS_PART(obj) && g_mime_part_is_attachment((GMimePart *)obj))
        return;
    if (ct && g_mime_content_type_is_type(ct, "text", "plain") && !w->plain)
        w->plain = part_text(obj);
    else if (ct && g_mime_content_type_is_type(ct, "text", "html") && !w->html)
        w->html = part_text(obj);
}

struct message_in *message_parse(const char *data, gsize len, GError **err)
{
    message_init();
    GMimeStream *st = g_mime_stream_mem_new_with_buffer(data, len);
    GMimeParser *parser = g_mime_parser_new_with_stream(st);
    GMimeParserOptions *opts = g_mime_parser_options_new();
    GMimeMessage *msg = g_mime_parser_construct_message(parser, opts);
    g_object_unref(parser);
    g_object_unref(st);
    if (!msg) {
        g_mime_parser_options_free(opts);
        g_set_error(err, CD_ERROR, CD_ERR_INVALID, "not an RFC 5322 message");
        return NULL;
    }
    struct message_in *m = g_new0(struct message_in, 1);
    m->headers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    m->rcpts = g_ptr_array_new_with_free_func(g_free);
    m->dsn = g_ptr_array_new_with_free_func((GDestroyNotify)dsn_free);

    GMimeHeaderList *hl = g_mime_object_get_header_list((GMimeObject *)msg);
    int nh = g_mime_header_list_get_count(hl);
    for (int i = 0; i < nh && i < 1000; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *name = g_mime_header_get_name(h);
        if (!name)
            continue;
        char *key = g_ascii_strdown(name, -1);
        if (g_hash_table_contains(m->headers, key)) {
            g_free(key);
            continue;
        }
        const char *raw = g_mime_header_get_raw_value(h);
        g_hash_table_insert(m->headers, key, clean_line(raw ? raw : ""));
    }
    const char *mid = g_mime_message_get_message_id(msg);
    m->message_id = mid && *mid ? clean_line(mid) : NULL;
    const char *subj = g_mime_message_get_subject(msg);
    m->subject = clean_line(subj ? subj : "");

    InternetAddressList *from = g_mime_message_get_from(msg);
    if (from && internet_address_list_length(from) > 0) {
        InternetAddress *a = internet_address_list_get_address(from, 0);
        if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
            m->from_addr = clean_line(internet_address_mailbox_get_addr((InternetAddressMailbox *)a));
            m->from_name = clean_line(internet_address_get_name(a) ? internet_address_get_name(a) : "");
        }
    }
    const char *rp = g_mime_object_get_header((GMimeObject *)msg, "Return-Path");
    if (rp) {
        char *t = clean_line(rp);
        g_strdelimit(t, "<>", ' ');
        m->return_path = g_strdup(g_strstrip(t));
        g_free(t);
    }
    const char *rcpt_headers[] = { "Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc" };
    for (size_t i = 0; i < G_N_ELEMENTS(rcpt_headers); i++)
        add_header_addresses(m->rcpts, g_mime_object_get_header((GMimeObject *)msg, rcpt_headers[i]));

    GDateTime *date = g_mime_message_get_date(msg);
    if (date) {
        m->has_date = TRUE;
        m->date_offset = (int)(g_date_time_get_utc_offset(date) / G_TIME_SPAN_MINUTE);
    }
    struct walk w = { m, NULL, NULL };
    walk(&w, g_mime_message_get_mime_part(msg), 0);
    if (w.plain && *g_strstrip(w.plain)) {
        m->text = w.plain;
        w.plain = NULL;
    } else if (w.html) {
        m->text = html_to_text(w.html, INBOUND_TEXT_MAX);
        m->html_only = TRUE;
    }
    if (!m->text)
        m->text = g_strdup("");
    g_free(w.plain);
    g_free(w.html);
    g_object_unref(msg);
    g_mime_parser_options_free(opts);
    return m;
}
