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
