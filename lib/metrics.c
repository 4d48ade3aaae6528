/* metrics.c - owns what /metrics says and how: the names, their HELP and
 * TYPE, and the Prometheus text format (label values escaped as it
 * requires). The counters come from the database (store_metrics), so they
 * survive restarts and count what coursectl did too; only the tick timing
 * lives in this process, recorded by the daemon loop under a mutex (the
 * one value the HTTP thread and the loop share). */
#include <string.h>
#include "metrics.h"
#include "store.h"

static GMutex tick_lock;
static double tick_last, tick_sum;
static gint64 tick_count;

void metrics_tick_done(double seconds)
{
    g_mutex_lock(&tick_lock);
    tick_last = seconds;
    tick_sum += seconds;
    tick_count++;
    g_mutex_unlock(&tick_lock);
}

/* A label value as the text format wants it: \, " and newline escaped. */
static void label_value(GString *out, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\' || *p == '"')
            g_string_append_c(out, '\\');
        if (*p == '\n')
            g_string_append(out, "\\n");
        else
            g_string_append_c(out, *p);
    }
}

static void family(GString *out, const char *name, const char *type, const char *help)
{
    g_string_append_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Every row of rows named `what`, as name{label="..."} value lines (or
 * name value, when label is NULL); `zero` is written when there is none. */
static void samples(GString *out, GPtrArray *rows, const char *what, const char *name, const char *label,
                    gboolean zero)
{
    GHashTable *sum = g_hash_table_new(g_str_hash, g_str_equal); /* label -> total (sent: two rows) */
    GPtrArray *order = g_ptr_array_new();
    for (guint i = 0; i < rows->len; i++) {
        const struct store_metric *m = rows->pdata[i];
        if (strcmp(m->name, what) != 0)
            continue;
        gpointer old;
        if (g_hash_table_lookup_extended(sum, m->label, NULL, &old)) {
            g_hash_table_insert(sum, m->label, GSIZE_TO_POINTER(GPOINTER_TO_SIZE(old) + (gsize)m->value));
        } else {
            g_hash_table_insert(sum, m->label, GSIZE_TO_POINTER((gsize)MAX(m->value, 0)));
            g_ptr_array_add(order, m->label);
        }
    }
    for (guint i = 0; i < order->len; i++) {
        const char *l = order->pdata[i];
        gsize v = GPOINTER_TO_SIZE(g_hash_table_lookup(sum, l));
        if (label) {
            g_string_append_printf(out, "%s{%s=\"", name, label);
            label_value(out, l);
            g_string_append_printf(out, "\"} %" G_GSIZE_FORMAT "\n", v);
        } else {
            g_string_append_printf(out, "%s %" G_GSIZE_FORMAT "\n", name, v);
        }
    }
    if (!order->len && zero)
        g_string_append_printf(out, "%s 0\n", name);
    g_ptr_array_free(order, TRUE);
    g_hash_table_destroy(sum);
}

char *metrics_text(struct app *app, gint64 now, GError **err)
{
    GPtrArray *rows = store_metrics(app->st, now, err);
    if (!rows)
        return NULL;
    GString *out = g_string_new(NULL);
    family(out, "coursed_lessons_sent_total", "counter", "Lessons sent, by course.");
    samples(out, rows, "sent", "coursed_lessons_sent_total", "course", FALSE);
    family(out, "coursed_lessons_failed_total", "counter", "Lessons that failed for good, by course.");
    samples(out, rows, "failed", "coursed_lessons_failed_total", "course", FALSE);
    family(out, "coursed_lessons_deferred", "gauge", "Lessons waiting for a retry now, by course.");
    samples(out, rows, "deferred", "coursed_lessons_deferred", "course", FALSE);
    family(out, "coursed_bounces_total", "counter", "Hard bounces recorded, by course.");
    samples(out, rows, "bounced", "coursed_bounces_total", "course", FALSE);
    family(out, "coursed_queue_depth", "gauge", "Lessons and system mails queued, deferred or being sent.");
    samples(out, rows, "queue", "coursed_queue_depth", "kind", FALSE);
    family(out, "coursed_oldest_due_seconds", "gauge",
           "How long the oldest due lesson or system mail has waited (0: none is due).");
    samples(out, rows, "oldest", "coursed_oldest_due_seconds", NULL, TRUE);
    family(out, "coursed_inbound_messages_total", "counter", "Inbound mails handled.");
    samples(out, rows, "inbound", "coursed_inbound_messages_total", NULL, TRUE);
    family(out, "coursed_inbound_events_total", "counter", "What inbound mails caused, by event kind.");
    samples(out, rows, "caused", "coursed_inbound_events_total", "kind", FALSE);
    g_mutex_lock(&tick_lock);
    double last = tick_last, sum = tick_sum;
    gint64 count = tick_count;
    g_mutex_unlock(&tick_lock);
    family(out, "coursed_tick_duration_seconds", "summary", "Time the delivery ticks of this process took.");
    g_string_append_printf(out, "coursed_tick_duration_seconds_sum %.6f\n", sum);
    g_string_append_printf(out, "coursed_tick_duration_seconds_count %" G_GINT64_FORMAT "\n", count);
    family(out, "coursed_last_tick_duration_seconds", "gauge", "Time the last tick of this process took.");
    g_string_append_printf(out, "coursed_last_tick_duration_seconds %.6f\n", last);
    g_ptr_array_unref(rows);
    return g_string_free(out, FALSE);
}
