/* html.c - owns libxml2's HTML parser, used for one thing: reading the
 * words of an HTML-only inbound mail, so that "unsubscribe" typed in a rich
 * text editor is understood. The parser is told never to touch the network
 * and to recover from broken markup; scripts, styles and the head are not
 * text. */
#include <string.h>
#include <libxml/HTMLparser.h>
#include "html.h"

static gboolean is_block(const char *name)
{
    static const char *blocks[] = { "p",  "div", "br",         "li",  "tr",    "h1", "h2", "h3", "h4",
                                    "h5", "h6",  "blockquote", "pre", "table", "ul", "ol", "hr", NULL };
    return g_strv_contains(blocks, name);
}

static void collect(xmlNode *n, GString *out, gsize max, int depth)
{
    for (; n && out->len < max && depth < 256; n = n->next) {
        if (n->type == XML_TEXT_NODE && n->content) {
            g_string_append(out, (const char *)n->content);
        } else if (n->type == XML_ELEMENT_NODE) {
            const char *name = (const char *)n->name;
            if (!g_ascii_strcasecmp(name, "script") || !g_ascii_strcasecmp(name, "style") ||
                !g_ascii_strcasecmp(name, "head"))
                continue;
            gboolean block = is_block(name);
            if (block)
                g_string_append_c(out, '\n');
            /* Quoted replies are not the sender's words. */
            if (!g_ascii_strcasecmp(name, "blockquote"))
                g_string_append(out, "> ");
            else
                collect(n->children, out, max, depth + 1);
            if (block)
                g_string_append_c(out, '\n');
        }
    }
}

char *html_to_text(const char *html, gsize max)
{
    htmlDocPtr doc = htmlReadMemory(html, (int)MIN(strlen(html), (gsize)G_MAXINT), NULL, "UTF-8",
                                    HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                                        HTML_PARSE_NONET | HTML_PARSE_NOBLANKS);
    GString *out = g_string_new(NULL);
    if (doc) {
        collect(xmlDocGetRootElement(doc), out, max, 0);
        xmlFreeDoc(doc);
    }
    /* Collapse runs of spaces so "un&nbsp;subscribe" layouts read plainly. */
    char *text = g_string_free(out, FALSE);
    char *valid = g_utf8_make_valid(text, -1);
    g_free(text);
    return valid;
}
