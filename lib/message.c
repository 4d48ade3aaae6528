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
static char *boundary_of(const char *message_id, const char *tag)
{
    char *sum = g_compute_checksum_for_string(G_CHECKSUM_SHA256, message_id ? message_id : "", -1);
    char *b = g_strdup_printf("=_coursed_%s_%.24s", tag, sum);
    g_free(sum);
    return b;
}

static void set_boundary(GMimeMultipart *mp, const char *message_id, const char *tag)
{
    char *b = boundary_of(message_id, tag);
    g_mime_multipart_set_boundary(mp, b);
    g_free(b);
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

/* In-Reply-To and References naming the message answered (RFC 5322
 * 3.6.4), so that the reply threads with the command. The id comes from a
 * stranger's mail: only one that GMime reads as exactly one msg-id whose
 * id-left and id-right are plain dot-atom text is used, written back by
 * GMime; anything else is dropped (the reply just does not thread). */
static void set_in_reply_to(GMimeObject *obj, const char *id)
{
    if (!id || !*id || strlen(id) > 250)
        return;
    char *bracketed = g_strdup_printf("<%s>", id);
    GMimeReferences *refs = g_mime_references_parse(NULL, bracketed);
    g_free(bracketed);
    const char *mid = refs && g_mime_references_length(refs) == 1 ? g_mime_references_get_message_id(refs, 0)
                                                                  : NULL;
    if (mid && g_regex_match_simple("^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                                    "@[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$",
                                    mid, 0, 0)) {
        char *v = g_strdup_printf("<%s>", mid);
        g_mime_object_set_header(obj, "In-Reply-To", v, NULL);
        g_mime_object_set_header(obj, "References", v, NULL);
        g_free(v);
    }
    if (refs)
        g_mime_references_free(refs);
}

/* Returns obj written with CRLF line ends as a NUL-terminated copy;
 * *len gets its length. g_free(). */
static char *message_bytes(GMimeObject *obj, gsize *len)
{
    GMimeStream *out = g_mime_stream_mem_new();
    g_mime_object_write_to_stream(obj, crlf_options, out);
    GByteArray *bytes = g_mime_stream_mem_get_byte_array((GMimeStreamMem *)out);
    *len = bytes->len;
    char *result = g_malloc(bytes->len + 1);
    memcpy(result, bytes->data, bytes->len);
    result[bytes->len] = '\0';
    g_object_unref(out);
    return result;
}

char *message_build(const struct message_spec *m, gsize *len, GError **err)
{
    message_init();
    const char *raw[] = { m->from_addr,        m->to_addr,    m->message_id, m->list_id,
                          m->list_unsubscribe, m->lesson_tag, m->reply_to,   m->auto_submitted };
    for (size_t i = 0; i < G_N_ELEMENTS(raw); i++) {
        if (raw[i] && !header_value_ok(raw[i])) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "refusing a header value with control characters");
            return NULL;
        }
    }
    /* To: carries an IDN domain in its ASCII form, as the envelope does. */
    char *to_addr = m->to_addr ? address_to_ascii(m->to_addr, err) : NULL;
    if (m->to_addr && !to_addr)
        return NULL;
    char *from_name = address_clean_name(m->from_name ? m->from_name : "", 200);
    char *to_name = address_clean_name(m->to_name ? m->to_name : "", 200);
    char *subject = address_clean_name(m->subject ? m->subject : "", 400);

    GMimeMessage *msg = g_mime_message_new(TRUE);
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_FROM, from_name, m->from_addr);
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_TO, to_name, to_addr);
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
    set_in_reply_to(obj, m->in_reply_to);
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
    if (m->json) {
        /* base64: the JSON is one long line of UTF-8, and must arrive as
         * its bytes for a program to read it */
        GMimeMultipart *mixed = g_mime_multipart_new_with_subtype("mixed");
        set_boundary(mixed, m->message_id, "mix");
        g_mime_multipart_add(mixed, body);
        g_object_unref(body);
        GMimePart *part = g_mime_part_new_with_type("application", "json");
        GMimeStream *st = g_mime_stream_mem_new_with_buffer(m->json, strlen(m->json));
        GMimeDataWrapper *dw = g_mime_data_wrapper_new_with_stream(st, GMIME_CONTENT_ENCODING_DEFAULT);
        g_mime_part_set_content(part, dw);
        g_object_unref(dw);
        g_object_unref(st);
        g_mime_object_set_content_type_parameter((GMimeObject *)part, "charset", "utf-8");
        g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_BASE64);
        g_mime_part_set_filename(part, m->json_name ? m->json_name : "data.json");
        g_mime_object_set_disposition((GMimeObject *)part, "attachment");
        g_mime_multipart_add(mixed, (GMimeObject *)part);
        g_object_unref(part);
        body = (GMimeObject *)mixed;
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

    char *result = message_bytes(obj, len);
    g_object_unref(msg);
    g_free(from_name);
    g_free(to_name);
    g_free(to_addr);
    g_free(subject);
    return result;
}

/* -------------------------------------------------------------- prototypes
 * A lesson goes to thousands of readers and differs between them in a few
 * places only: Date, To, Message-Id, List-Unsubscribe, the MIME boundary
 * (derived from the Message-Id) and a few lines of each body. GMime builds
 * one skeleton per lesson with marker values in those places, and each
 * message is the skeleton with the markers replaced:
 *   - the headers by GMime's own formatters (the address list encoder, the
 *     date formatter), so they come out as message_build() writes them;
 *   - each body by quoted-printable, GMime's encoder, run line by line.
 *     QP is line-local (every hard line break resets the encoder), so the
 *     lines every reader shares are encoded once and reused; only the lines
 *     with personal values are encoded per message.
 * Anything unusual (a calendar, a Message-Id over 200 characters, a field
 * that does not match the skeleton) is built by message_build() instead;
 * unit tests and fuzz_proto hold the two byte for byte equal. */

#define PROTO_TO "cd-proto-to@coursed.invalid"
#define PROTO_MSGID "cd-proto-msgid@coursed.invalid"
#define PROTO_UNSUB "<cd-proto-unsubscribe>"
#define PROTO_TEXT "CDPROTOTEXT\n"
#define PROTO_HTML "CDPROTOHTML\n"

enum slot_kind { SLOT_DATE, SLOT_TO, SLOT_MSGID, SLOT_UNSUB, SLOT_BOUNDARY, SLOT_TEXT, SLOT_HTML };

struct slot {
    gsize at, len;
    enum slot_kind kind;
};

/* One line of a body and its encoding; keys point into the owned copy. */
struct qp_line {
    const char *p;
    gsize n;
};

struct message_proto {
    char *skel; /* the skeleton, CRLF */
    gsize skel_len;
    GArray *slots; /* struct slot, by position */
    char *from_name, *from_addr, *subject, *list_id, *lesson_tag, *reply_to, *auto_submitted;
    gboolean has_html, has_unsub;
    char *text_src, *html_src;           /* the sample bodies the line tables point into */
    GHashTable *text_lines, *html_lines; /* struct qp_line * -> GString * (encoded, CRLF) */
};

/* Hashes the length and the ends of a line only: lines of one lesson
 * differ there, and equality is decided by memcmp anyway. Hashing whole
 * lines byte by byte cost more than the rest of a copy. */
static guint qp_line_hash(gconstpointer k)
{
    const struct qp_line *l = k;
    guint h = (guint)l->n * 2654435761u;
    gsize head = MIN(l->n, 24);
    for (gsize i = 0; i < head; i++)
        h = h * 33 + (guchar)l->p[i];
    for (gsize i = l->n - MIN(l->n, 24); i < l->n; i++)
        h = h * 33 + (guchar)l->p[i];
    return h;
}

static gboolean qp_line_equal(gconstpointer a, gconstpointer b)
{
    const struct qp_line *x = a, *y = b;
    return x->n == y->n && memcmp(x->p, y->p, x->n) == 0;
}

static void gstring_free(gpointer s)
{
    g_string_free(s, TRUE);
}

/* Appends p with every bare LF made CRLF, as GMime's newline filter does. */
static void append_crlf(GString *out, const char *p, gsize n)
{
    for (gsize i = 0; i < n; i++) {
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            g_string_append_c(out, '\r');
        g_string_append_c(out, p[i]);
    }
}

/* Appends QP of one line (ending in \n, or the text's last piece without
 * one) to out with CRLF line ends, as GMime's encoding filter followed by
 * its newline filter writes it. */
static void qp_encode_piece(GString *out, const char *p, gsize n)
{
    gboolean last = n == 0 || p[n - 1] != '\n';
    unsigned char *buf = g_malloc(n * 4 + 16);
    int state = -1;
    guint32 save = 0;
    gsize k = last ? g_mime_encoding_quoted_encode_close((const unsigned char *)p, n, buf, &state, &save)
                   : g_mime_encoding_quoted_encode_step((const unsigned char *)p, n, buf, &state, &save);
    append_crlf(out, (const char *)buf, k);
    g_free(buf);
}

static void qp_append(GString *out, GHashTable *lines, const char *text)
{
    const char *p = text;
    gsize left = strlen(text);
    if (left == 0) {
        qp_encode_piece(out, p, 0);
        return;
    }
    while (left > 0) {
        const char *nl = memchr(p, '\n', left);
        gsize n = nl ? (gsize)(nl - p) + 1 : left;
        struct qp_line key = { p, n };
        GString *enc = lines && nl ? g_hash_table_lookup(lines, &key) : NULL;
        if (enc)
            g_string_append_len(out, enc->str, (gssize)enc->len);
        else
            qp_encode_piece(out, p, n);
        p += n;
        left -= n;
    }
}

/* The encoded form of every whole line of src, keyed into src. */
static GHashTable *qp_table(const char *src)
{
    GHashTable *t = g_hash_table_new_full(qp_line_hash, qp_line_equal, g_free, gstring_free);
    const char *p = src;
    gsize left = strlen(src);
    while (left > 0) {
        const char *nl = memchr(p, '\n', left);
        if (!nl)
            break;
        gsize n = (gsize)(nl - p) + 1;
        struct qp_line key = { p, n };
        if (!g_hash_table_contains(t, &key)) {
            struct qp_line *k = g_new(struct qp_line, 1);
            *k = key;
            GString *enc = g_string_sized_new(n + n / 8 + 8);
            qp_encode_piece(enc, p, n);
            g_hash_table_insert(t, k, enc);
        }
        p += n;
        left -= n;
    }
    return t;
}

/* "To: name <addr>" as GMime's message writes it (its address list
 * encoder, folded, CRLF). name is already cleaned. */
static void to_header(GString *out, const char *name, const char *addr)
{
    InternetAddressList *l = internet_address_list_new();
    InternetAddress *ia = internet_address_mailbox_new(name, addr);
    internet_address_list_add(l, ia);
    g_object_unref(ia);
    GString *s = g_string_new("To: ");
    internet_address_list_encode(l, NULL, s);
    g_object_unref(l);
    append_crlf(out, s->str, s->len);
    g_string_free(s, TRUE);
}

static void date_header(GString *out, gint64 when)
{
    GDateTime *d = g_date_time_new_from_unix_utc(when);
    char *v = g_mime_utils_header_format_date(d);
    g_string_append_printf(out, "Date: %s\r\n", v);
    g_free(v);
    g_date_time_unref(d);
}

static int slot_cmp(gconstpointer a, gconstpointer b)
{
    const struct slot *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Records every occurrence of needle in the skeleton as a slot; returns
 * how many there were. */
static int find_slots(struct message_proto *p, const char *needle, gsize n, enum slot_kind kind)
{
    int found = 0;
    const char *at = p->skel, *end = p->skel + p->skel_len;
    while (at < end && (at = g_strstr_len(at, end - at, needle))) {
        struct slot s = { (gsize)(at - p->skel), n, kind };
        g_array_append_val(p->slots, s);
        found++;
        at += n;
    }
    return found;
}

static gboolean find_one(struct message_proto *p, GString *needle, enum slot_kind kind)
{
    return find_slots(p, needle->str, needle->len, kind) == 1;
}

void message_proto_free(struct message_proto *p)
{
    if (!p)
        return;
    g_free(p->skel);
    if (p->slots)
        g_array_unref(p->slots);
    g_free(p->from_name);
    g_free(p->from_addr);
    g_free(p->subject);
    g_free(p->list_id);
    g_free(p->lesson_tag);
    g_free(p->reply_to);
    g_free(p->auto_submitted);
    if (p->text_lines)
        g_hash_table_destroy(p->text_lines);
    if (p->html_lines)
        g_hash_table_destroy(p->html_lines);
    g_free(p->text_src);
    g_free(p->html_src);
    g_free(p);
}

struct message_proto *message_proto_new(const struct message_spec *shape, GError **err)
{
    message_init();
    struct message_spec m = *shape;
    m.to_name = NULL;
    m.to_addr = PROTO_TO;
    m.message_id = PROTO_MSGID;
    m.date = 0;
    m.list_unsubscribe = shape->list_unsubscribe ? PROTO_UNSUB : NULL;
    m.text = PROTO_TEXT;
    m.html = shape->html ? PROTO_HTML : NULL;
    m.calendar = NULL;
    struct message_proto *p = g_new0(struct message_proto, 1);
    p->skel = message_build(&m, &p->skel_len, err);
    if (!p->skel) {
        message_proto_free(p);
        return NULL;
    }
    p->slots = g_array_new(FALSE, FALSE, sizeof(struct slot));
    GString *n = g_string_new(NULL);
    gboolean ok = TRUE;
    date_header(n, 0);
    ok = ok && find_one(p, n, SLOT_DATE);
    g_string_truncate(n, 0);
    to_header(n, "", PROTO_TO);
    ok = ok && find_one(p, n, SLOT_TO);
    g_string_printf(n, "Message-Id: <%s>\r\n", PROTO_MSGID);
    ok = ok && find_one(p, n, SLOT_MSGID);
    if (shape->list_unsubscribe) {
        g_string_printf(n, "List-Unsubscribe: %s\r\n", PROTO_UNSUB);
        ok = ok && find_one(p, n, SLOT_UNSUB);
    }
    g_string_truncate(n, 0);
    qp_append(n, NULL, PROTO_TEXT);
    ok = ok && find_one(p, n, SLOT_TEXT);
    if (shape->html) {
        g_string_truncate(n, 0);
        qp_append(n, NULL, PROTO_HTML);
        ok = ok && find_one(p, n, SLOT_HTML);
        char *b = boundary_of(PROTO_MSGID, "alt");
        ok = ok && find_slots(p, b, strlen(b), SLOT_BOUNDARY) >= 2;
        g_free(b);
    }
    g_string_free(n, TRUE);
    if (!ok) {
        /* Not an error for the caller: this GMime writes something the
         * slots do not recognise, and every message takes the full path. */
        g_set_error(err, CD_ERROR, CD_ERR_FAILED, "the message skeleton has no recognisable slots");
        message_proto_free(p);
        return NULL;
    }
    g_array_sort(p->slots, slot_cmp);
    for (guint i = 1; i < p->slots->len; i++) {
        const struct slot *a = &g_array_index(p->slots, struct slot, i - 1);
        const struct slot *b = &g_array_index(p->slots, struct slot, i);
        if (a->at + a->len > b->at) {
            g_set_error(err, CD_ERROR, CD_ERR_FAILED, "the message skeleton has overlapping slots");
            message_proto_free(p);
            return NULL;
        }
    }
    p->from_name = g_strdup(shape->from_name);
    p->from_addr = g_strdup(shape->from_addr);
    p->subject = g_strdup(shape->subject);
    p->list_id = g_strdup(shape->list_id);
    p->lesson_tag = g_strdup(shape->lesson_tag);
    p->reply_to = g_strdup(shape->reply_to);
    p->auto_submitted = g_strdup(shape->auto_submitted);
    p->has_html = shape->html != NULL;
    p->has_unsub = shape->list_unsubscribe != NULL;
    p->text_src = g_strdup(shape->text ? shape->text : "");
    p->text_lines = qp_table(p->text_src);
    if (shape->html) {
        p->html_src = g_strdup(shape->html);
        p->html_lines = qp_table(p->html_src);
    }
    return p;
}

/* Does m fit the skeleton: the same fixed fields, no attachment, and
 * personal values that GMime writes on one line as they are? */
static gboolean proto_fits(const struct message_proto *p, const struct message_spec *m)
{
    return m->calendar == NULL && m->json == NULL && m->in_reply_to == NULL &&
           (m->html != NULL) == p->has_html && (m->list_unsubscribe != NULL) == p->has_unsub && m->to_addr &&
           m->message_id && g_strcmp0(m->from_name, p->from_name) == 0 &&
           g_strcmp0(m->from_addr, p->from_addr) == 0 && g_strcmp0(m->subject, p->subject) == 0 &&
           g_strcmp0(m->list_id, p->list_id) == 0 && g_strcmp0(m->lesson_tag, p->lesson_tag) == 0 &&
           g_strcmp0(m->reply_to, p->reply_to) == 0 && g_strcmp0(m->auto_submitted, p->auto_submitted) == 0 &&
           /* GMime writes a Message-Id of one token on one line, however
            * long; a space would let it fold */
           strlen(m->message_id) <= 200 && strchr(m->message_id, ' ') == NULL;
}

char *message_proto_build(const struct message_proto *p, const struct message_spec *m, gsize *len,
                          GError **err)
{
    if (!p || !proto_fits(p, m))
        return message_build(m, len, err);
    const char *raw[] = { m->to_addr, m->message_id, m->list_unsubscribe };
    for (size_t i = 0; i < G_N_ELEMENTS(raw); i++) {
        if (raw[i] && !header_value_ok(raw[i])) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "refusing a header value with control characters");
            return NULL;
        }
    }
    char *to_addr = address_to_ascii(m->to_addr, err); /* an IDN domain in its ASCII form */
    if (!to_addr)
        return NULL;
    char *to_name = address_clean_name(m->to_name ? m->to_name : "", 200);
    char *boundary = p->has_html ? boundary_of(m->message_id, "alt") : NULL;
    const char *text = m->text ? m->text : "";
    GString *out = g_string_sized_new(p->skel_len + strlen(text) * 9 / 8 +
                                      (m->html ? strlen(m->html) * 9 / 8 : 0) + 512);
    gsize from = 0;
    for (guint i = 0; i < p->slots->len; i++) {
        const struct slot *s = &g_array_index(p->slots, struct slot, i);
        g_string_append_len(out, p->skel + from, (gssize)(s->at - from));
        switch (s->kind) {
        case SLOT_DATE: date_header(out, m->date); break;
        case SLOT_TO: to_header(out, to_name, to_addr); break;
        case SLOT_MSGID: g_string_append_printf(out, "Message-Id: <%s>\r\n", m->message_id); break;
        case SLOT_UNSUB: g_string_append_printf(out, "List-Unsubscribe: %s\r\n", m->list_unsubscribe); break;
        case SLOT_BOUNDARY: g_string_append(out, boundary); break;
        case SLOT_TEXT: qp_append(out, p->text_lines, text); break;
        case SLOT_HTML: qp_append(out, p->html_lines, m->html); break;
        }
        from = s->at + s->len;
    }
    g_string_append_len(out, p->skel + from, (gssize)(p->skel_len - from));
    /* GMime ends a message with a line break (a lone text part may not). */
    if (out->len > 0 && out->str[out->len - 1] != '\n')
        g_string_append(out, "\r\n");
    g_free(boundary);
    g_free(to_name);
    g_free(to_addr);
    *len = out->len;
    /* A GString grows in powers of two: a 9 KB lesson sat in 16 KB, and a
     * round holds a session's worth of them at once. Handing back the tail
     * keeps coursed's memory to what the messages are. */
    return g_realloc(g_string_free(out, FALSE), *len + 1);
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
    g_free(m->preamble);
    if (m->rcpts)
        g_ptr_array_unref(m->rcpts);
    if (m->headers)
        g_hash_table_destroy(m->headers);
    if (m->dsn)
        g_ptr_array_unref(m->dsn);
    if (m->feedback)
        g_hash_table_destroy(m->feedback);
    if (m->original)
        g_hash_table_destroy(m->original);
    g_free(m);
}

const char *message_in_header(const struct message_in *m, const char *name)
{
    char *key = g_ascii_strdown(name, -1);
    const char *v = g_hash_table_lookup(m->headers, key);
    g_free(key);
    return v;
}

static const char *table_lookup(GHashTable *t, const char *name)
{
    if (!t)
        return NULL;
    char *key = g_ascii_strdown(name, -1);
    const char *v = g_hash_table_lookup(t, key);
    g_free(key);
    return v;
}

const char *message_in_original_header(const struct message_in *m, const char *name)
{
    return table_lookup(m->original, name);
}

const char *message_in_feedback(const struct message_in *m, const char *name)
{
    return table_lookup(m->feedback, name);
}

/* The headers of obj, lower-cased name -> first value (raw, cleaned). */
static GHashTable *header_table(GMimeObject *obj)
{
    GHashTable *t = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    GMimeHeaderList *hl = g_mime_object_get_header_list(obj);
    int nh = hl ? g_mime_header_list_get_count(hl) : 0;
    for (int i = 0; i < nh && i < 1000; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *name = g_mime_header_get_name(h);
        if (!name)
            continue;
        char *key = g_ascii_strdown(name, -1);
        if (g_hash_table_contains(t, key)) {
            g_free(key);
            continue;
        }
        const char *raw = g_mime_header_get_raw_value(h);
        g_hash_table_insert(t, key, clean_line(raw ? raw : ""));
    }
    return t;
}

/* The header fields of text (a feedback report, text/rfc822-headers),
 * read by GMime's header parser. */
static GHashTable *header_table_of_text(const char *text)
{
    char **blocks = g_regex_split_simple("\\n[ \\t]*\\n", text, 0, 0);
    GHashTable *t = NULL;
    if (blocks[0]) {
        const char *blk = blocks[0];
        while (*blk == '\n')
            blk++;
        char *hdr = g_strconcat(blk, "\n\n", NULL);
        GMimeStream *st = g_mime_stream_mem_new_with_buffer(hdr, strlen(hdr));
        GMimeParser *p = g_mime_parser_new_with_stream(st);
        GMimeObject *obj = g_mime_parser_construct_part(p, NULL);
        if (obj) {
            t = header_table(obj);
            g_object_unref(obj);
        }
        g_object_unref(p);
        g_object_unref(st);
        g_free(hdr);
    }
    g_strfreev(blocks);
    return t;
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
    /* some MTAs (AOL) leave out the blank line between two recipients:
     * a second Final-Recipient starts a block of its own */
    GString *sep = g_string_new(NULL);
    gboolean final = FALSE;
    char **lines = g_strsplit(body, "\n", 10000);
    for (char **l = lines; *l; l++) {
        gboolean is_final = g_ascii_strncasecmp(*l, "Final-Recipient:", 16) == 0;
        if (!**l || **l == '\r')
            final = FALSE;
        else if (is_final && final)
            g_string_append_c(sep, '\n');
        final = final || is_final;
        g_string_append(sep, *l);
        g_string_append_c(sep, '\n');
    }
    g_strfreev(lines);
    char **blocks = g_regex_split_simple("\\n[ \\t]*\\n", sep->str, 0, 0);
    g_string_free(sep, TRUE);
    for (char **b = blocks; *b && out->len < 100; b++) {
        const char *blk = *b;
        while (*blk == '\n') /* the blank lines of a block that follows several */
            blk++;
        char *hdr = g_strconcat(blk, "\n\n", NULL);
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
                        if (*q == ' ' || *q == '(') {
                            *q = '\0';
                            break;
                        }
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
    char *prologue; /* text before a multipart's first part (broken reports have only that) */
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
            if (rt && g_ascii_strcasecmp(rt, "feedback-report") == 0)
                w->m->is_feedback = TRUE;
        }
        const char *pro = g_mime_multipart_get_prologue((GMimeMultipart *)obj);
        if (pro && !w->prologue)
            w->prologue = clean_text(pro, INBOUND_TEXT_MAX);
        int n = g_mime_multipart_get_count((GMimeMultipart *)obj);
        for (int i = 0; i < n && i < 64; i++)
            walk(w, g_mime_multipart_get_part((GMimeMultipart *)obj, i), depth + 1);
        return;
    }
    if (GMIME_IS_MESSAGE_PART(obj)) {
        /* an attached or returned original: not the sender's words, but
         * its headers say which of our mails it was */
        GMimeMessage *orig = g_mime_message_part_get_message((GMimeMessagePart *)obj);
        if (orig && !w->m->original)
            w->m->original = header_table((GMimeObject *)orig);
        return;
    }
    if (ct && (g_mime_content_type_is_type(ct, "message", "feedback-report") ||
               g_mime_content_type_is_type(ct, "text", "rfc822-headers"))) {
        char *body = part_text(obj);
        gboolean fb = g_mime_content_type_is_type(ct, "message", "feedback-report");
        GHashTable **slot = fb ? &w->m->feedback : &w->m->original;
        if (body && !*slot)
            *slot = header_table_of_text(body);
        g_free(body);
        return;
    }
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
    struct walk w = { m, NULL, NULL, NULL };
    walk(&w, g_mime_message_get_mime_part(msg), 0);
    if (w.plain && *g_strstrip(w.plain)) {
        m->text = w.plain;
        w.plain = NULL;
    } else if (w.html) {
        m->text = html_to_text(w.html, INBOUND_TEXT_MAX);
        m->html_only = TRUE;
    }
    if ((!m->text || !*m->text) && w.prologue && *g_strstrip(w.prologue)) {
        /* a multipart whose parts are all lost (a broken boundary): not the
         * sender's words for a command, but a broken bounce's only text */
        m->preamble = w.prologue;
        w.prologue = NULL;
    }
    if (!m->text)
        m->text = g_strdup("");
    g_free(w.plain);
    g_free(w.html);
    g_free(w.prologue);
    g_object_unref(msg);
    g_mime_parser_options_free(opts);
    return m;
}

char *message_build_note(const struct message_note *n, gsize *len, GError **err)
{
    message_init();
    const char *raw[] = { n->from_addr, n->to_addr, n->reply_to, n->message_id, n->course, n->lesson };
    for (size_t i = 0; i < G_N_ELEMENTS(raw); i++) {
        if (raw[i] && !header_value_ok(raw[i])) {
            g_set_error(err, CD_ERROR, CD_ERR_INVALID, "refusing a header value with control characters");
            return NULL;
        }
    }
    char *to_addr = address_to_ascii(n->to_addr, err);
    if (!to_addr)
        return NULL;
    char *from_name = address_clean_name(n->from_name ? n->from_name : "", 200);
    char *subject = address_clean_name(n->subject ? n->subject : "", 400);
    GMimeMessage *msg = g_mime_message_new(TRUE);
    GMimeObject *obj = (GMimeObject *)msg;
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_FROM, from_name, n->from_addr);
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_TO, NULL, to_addr);
    /* the reader's address only, never the display name they typed */
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_REPLY_TO, NULL, n->reply_to);
    g_mime_message_set_subject(msg, subject, "utf-8");
    GDateTime *date = g_date_time_new_from_unix_utc(n->date);
    g_mime_message_set_date(msg, date);
    g_date_time_unref(date);
    g_mime_message_set_message_id(msg, n->message_id);
    g_mime_object_set_header(obj, "Auto-Submitted", "auto-generated", NULL);
    g_mime_object_set_header(obj, "X-Coursed-Course", n->course, NULL);
    if (n->lesson)
        g_mime_object_set_header(obj, "X-Coursed-Lesson", n->lesson, NULL);
    GMimePart *body = text_part("plain", n->text ? n->text : "");
    g_mime_message_set_mime_part(msg, (GMimeObject *)body);
    g_object_unref(body);
    char *result = message_bytes(obj, len);
    g_object_unref(msg);
    g_free(from_name);
    g_free(subject);
    g_free(to_addr);
    return result;
}
