/* html.h - the text of an HTML body (inbound mail sent as HTML only). */
#ifndef COURSED_HTML_H
#define COURSED_HTML_H
#include <glib.h>

/* Returns the visible text of html, block elements as line breaks,
 * scripts and styles dropped, at most max bytes; never fetches anything.
 * Caller g_free()s. */
char *html_to_text(const char *html, gsize max);

#endif
