/* libFuzzer target, differential: a lesson copy filled into its skeleton
 * (message_proto_build) must be byte for byte what a full GMime build
 * (message_build) writes, for any reader name and any body text. The
 * input is split at NUL bytes into name, text and html. ./scripts/test
 * runs it for 30 seconds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char sample_text[] =
    "Hello Sample,\n\nA line every reader shares.\n"
    "trailing blank \nends with = sign=\n\xc3\xa9t\xc3\xa9 \xe2\x80\x94 dash\n";
static const char sample_html[] =
    "<p>Hello Sample,</p>\n<div style=\"margin:0;\">\n<p>A line every reader shares.</p>\n";

static const struct message_spec shape = {
    .from_name = "Release",
    .from_addr = "release@courses.example.org",
    .subject = "What you cannot bring back",
    .list_id = "Release <release.courses.example.org>",
    .lesson_tag = "release 1/13",
    .auto_submitted = "auto-generated",
    .list_unsubscribe = "<https://courses.example.org/u/TOKEN>",
    .text = sample_text,
    .html = sample_html,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct message_proto *proto;
    message_init();
    if (!proto) {
        proto = message_proto_new(&shape, NULL);
        if (!proto)
            __builtin_trap();
    }
    char *copy = g_malloc(size + 3);
    memcpy(copy, data, size);
    copy[size] = copy[size + 1] = copy[size + 2] = '\0';
    const char *name = copy;
    const char *text = name + strlen(name) + 1;
    if (text > copy + size)
        text = copy + size;
    const char *html = text + strlen(text) + 1;
    if (html > copy + size)
        html = copy + size;
    struct message_spec m = shape;
    m.to_name = name;
    m.to_addr = "reader@example.org";
    m.message_id = "lesson-1.e42.release@courses.example.org";
    m.date = 1790000000 + (gint64)size;
    m.list_unsubscribe = "<https://courses.example.org/u/abc>, <mailto:u@x.example?subject=unsubscribe>";
    m.text = text;
    m.html = html;
    gsize fl = 0, sl = 0;
    char *fast = message_proto_build(proto, &m, &fl, NULL);
    char *slow = message_build(&m, &sl, NULL);
    if ((fast == NULL) != (slow == NULL) || (fast && (fl != sl || memcmp(fast, slow, sl) != 0)))
        __builtin_trap();
    g_free(fast);
    g_free(slow);
    g_free(copy);
    return 0;
}
