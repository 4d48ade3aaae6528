/* Unit tests of bounce.c: which addresses a report names as failed, how
 * each is cleaned, the status derived from codes and words, delay
 * warnings, the addresses never returned, and what a complaint carries. */
#include <string.h>
#include <glib.h>
#include "bounce.h"
#include "message.h"

#define DOMAIN "courses.example.org"

static struct message_in *parse(const char *raw)
{
    GError *e = NULL;
    struct message_in *m = message_parse(raw, strlen(raw), &e);
    g_assert_no_error(e);
    g_assert_nonnull(m);
    return m;
}

/* "addr status class;addr status class;" of m's failed recipients */
static char *reading(const char *raw)
{
    struct message_in *m = parse(raw);
    GPtrArray *b = bounce_parse(m, DOMAIN);
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < b->len; i++) {
        const struct bounce_rcpt *r = b->pdata[i];
        g_string_append_printf(s, "%s %s %s;", r->address, r->status, bounce_class_name(r->klass));
    }
    g_ptr_array_unref(b);
    message_in_free(m);
    return g_string_free(s, FALSE);
}

static void check(const char *raw, const char *want)
{
    char *got = reading(raw);
    g_assert_cmpstr(got, ==, want);
    g_free(got);
}

#define DAEMON_HEAD                                                                   \
    "Return-Path: <>\nFrom: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>\n" \
    "To: bounces+T0KEN0000000000000000000000@" DOMAIN "\n"

static void test_every_recipient_of_a_sendmail_report(void)
{
    check(DAEMON_HEAD
          "Subject: Returned mail: see transcript for details\n\n"
          "   ----- The following addresses had permanent fatal errors -----\n"
          "<a@example.com>\n    (reason: 550 5.1.1 User unknown)\n"
          "<b@example.com>\n    (reason: 552 Mailbox full)\n"
          "<c@example.org>\n    (reason: 550 Host unknown)\n\n"
          "   ----- Unsent message follows -----\nTo: a@example.com\n",
          "a@example.com 5.1.1 hard;b@example.com 5.2.2 hard;c@example.org 5.1.2 hard;");
}

static void test_addresses_are_bare(void)
{
    check(DAEMON_HEAD
          "Subject: Undeliverable: hello\n\nDelivery has failed to these recipients:\n\n"
          "smtp=Jo.Ann@Example.COM\n    550 5.1.10 RESOLVER.ADR.RecipientNotFound\n",
          "jo.ann@example.com 5.1.10 hard;");
    check(DAEMON_HEAD
          "Subject: Delivery Notification: Delivery has failed\nMIME-Version: 1.0\n"
          "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
          "--b\nContent-Type: text/plain\n\nfailed\n--b\n"
          "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
          "Final-Recipient: rfc822;<kim@example.net>\nAction: failed\nStatus: 5.1.1\n--b--\n",
          "kim@example.net 5.1.1 hard;");
}

static void test_never_the_mta_the_sender_or_us(void)
{
    check(DAEMON_HEAD
          "Subject: failure notice\n\nHi. This is the qmail-send program at mx.example.net.\n"
          "I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
          "<postmaster@mx.example.net>:\nNo mailbox here by that name. (#5.1.1)\n\n"
          "<release@" DOMAIN
          ">:\nNo mailbox here by that name. (#5.1.1)\n\n"
          "<mailer-daemon@mx.example.net>:\nNo mailbox here by that name. (#5.1.1)\n\n"
          "<lee@example.com>:\nSorry, no mailbox here by that name. (#5.1.1)\n",
          "lee@example.com 5.1.1 hard;");
}

static void test_words_without_codes(void)
{
    check(DAEMON_HEAD
          "Subject: Unzustellbar: hallo\n\nFolgende Empfänger konnten nicht erreicht werden:\n\n"
          "  eva@example.de\n    Benutzer unbekannt\n",
          "eva@example.de 5.1.1 hard;");
    check(DAEMON_HEAD
          "Subject: Message non remis\n\nVotre message n'a pas pu être remis à :\n\n"
          "  luc@example.fr\n    Boîte aux lettres pleine\n",
          "luc@example.fr 4.2.2 soft;");
}

static void test_a_delay_is_soft(void)
{
    const char *raw = DAEMON_HEAD
        "Subject: Delayed Mail (still being retried)\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
        "--b\nContent-Type: text/plain\n\nThis is a warning message only.\n--b\n"
        "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
        "Final-Recipient: rfc822; slow@example.com\nAction: delayed\nStatus: 5.4.7\n"
        "--b--\n";
    check(raw, "slow@example.com 4.4.7 soft;");
    struct message_in *m = parse(raw);
    g_assert_true(bounce_is_report(m));
    g_assert_true(bounce_is_delay(m));
    message_in_free(m);
}

static void test_recognition_ignores_loop_headers_and_people(void)
{
    struct message_in *m = parse(DAEMON_HEAD
                                 "Precedence: bulk\nAuto-Submitted: auto-replied\n"
                                 "Subject: Mail delivery failed: returning message to sender\n\n"
                                 "A message that you sent could not be delivered.\n  x@example.com\n");
    g_assert_true(bounce_is_report(m));
    message_in_free(m);
    /* a person who writes about bounces */
    m = parse("From: Sara <sara@example.se>\nTo: release@" DOMAIN
              "\nSubject: Re: lesson 3\n\n"
              "My old address bounced (undeliverable, user unknown): use this one.\n");
    g_assert_false(bounce_is_report(m));
    message_in_free(m);
    /* a person forwarding a bounce: quoted text is no report */
    m = parse(
        "From: Sara <sara@example.se>\nTo: release@" DOMAIN
        "\nSubject: Fwd: Undelivered Mail\n\n"
        "See below.\n> This message could not be delivered to x@example.com\n> 550 5.1.1 user unknown\n");
    g_assert_false(bounce_is_report(m));
    message_in_free(m);
}

static void test_bounded(void)
{
    GString *raw = g_string_new(DAEMON_HEAD
                                "Subject: Undelivered Mail Returned to Sender\n\n"
                                "could not be delivered to the following recipients:\n");
    for (int i = 0; i < 500; i++)
        g_string_append_printf(raw, "<u%d@example.com>: 550 5.1.1 user unknown\n", i);
    struct message_in *m = parse(raw->str);
    GPtrArray *b = bounce_parse(m, DOMAIN);
    g_assert_cmpuint(b->len, ==, 50);
    g_ptr_array_unref(b);
    message_in_free(m);
    g_string_free(raw, TRUE);
}

static void test_class_of(void)
{
    g_assert_cmpint(bounce_class_of("5.1.1"), ==, BOUNCE_HARD);
    g_assert_cmpint(bounce_class_of("5.7.1"), ==, BOUNCE_POLICY);
    g_assert_cmpint(bounce_class_of("4.2.2"), ==, BOUNCE_SOFT);
    g_assert_cmpint(bounce_class_of(NULL), ==, BOUNCE_SOFT);
}

static void test_complaint(void)
{
    struct message_in *m = parse(
        "From: fbl@isp.example\nTo: abuse@" DOMAIN
        "\nSubject: report\nMIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=feedback-report; boundary=f\n\n"
        "--f\nContent-Type: text/plain\n\nabuse\n--f\nContent-Type: message/feedback-report\n\n"
        "Feedback-Type: Abuse\nOriginal-Mail-From: <bounces+AbC0000000000000000000000000xyz@" DOMAIN
        ">\n"
        "Original-Rcpt-To: <Reader@Example.NET>\n\n--f\nContent-Type: text/rfc822-headers\n\n"
        "Message-ID: <lesson-3.e7.release@" DOMAIN ">\nTo: reader@example.net\n\n--f--\n");
    struct bounce_complaint *c = bounce_complaint_read(m);
    g_assert_nonnull(c);
    g_assert_cmpstr(c->type, ==, "abuse");
    g_assert_cmpstr(c->recipient, ==, "reader@example.net");
    g_assert_cmpstr(c->original_id, ==, "lesson-3.e7.release@" DOMAIN);
    g_assert_cmpstr(c->return_path, ==, "bounces+AbC0000000000000000000000000xyz@" DOMAIN);
    bounce_complaint_free(c);
    g_assert_false(bounce_is_report(m));
    message_in_free(m);
    m = parse("From: a@example.com\nTo: release@" DOMAIN "\nSubject: hi\n\nhello\n");
    g_assert_null(bounce_complaint_read(m));
    message_in_free(m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    message_init();
    g_test_add_func("/bounce/sendmail-every-recipient", test_every_recipient_of_a_sendmail_report);
    g_test_add_func("/bounce/bare-addresses", test_addresses_are_bare);
    g_test_add_func("/bounce/never-mta-sender-us", test_never_the_mta_the_sender_or_us);
    g_test_add_func("/bounce/words", test_words_without_codes);
    g_test_add_func("/bounce/delay-soft", test_a_delay_is_soft);
    g_test_add_func("/bounce/recognition", test_recognition_ignores_loop_headers_and_people);
    g_test_add_func("/bounce/bounded", test_bounded);
    g_test_add_func("/bounce/class", test_class_of);
    g_test_add_func("/bounce/complaint", test_complaint);
    return g_test_run();
}
