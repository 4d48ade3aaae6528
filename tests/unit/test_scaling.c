/* The due query's cost grows with the number due, not with the number
 * enrolled: measured in SQLite VM steps (deterministic), not in seconds. */
#include <glib/gstdio.h>
#include "store.h"

static gint64 due_cost(int enrolled, int due)
{
    char *dir = g_dir_make_tmp("scale-XXXXXX", NULL);
    char *path = g_build_filename(dir, "state.db", NULL);
    GError *err = NULL;
    struct store *st = store_open(path, TRUE, &err);
    g_assert_no_error(err);
    g_assert_true(store_begin(st, &err));
    for (int i = 0; i < enrolled; i++) {
        char *email = g_strdup_printf("s%d@example.org", i);
        gint64 sub = store_sub_add(st, email, "", NULL, SUB_ACTIVE, 1000, &err);
        g_assert_no_error(err);
        /* the first `due` are due at 5000; the rest far in the future */
        g_assert_cmpint(
            store_enroll(st, sub, "release", ENR_ACTIVE, i < due ? 5000 : 900000, 1000, 1000, &err), >, 0);
        g_free(email);
    }
    g_assert_true(store_commit(st, &err));
    GPtrArray *rows = store_due(st, 6000, 100000, &err);
    g_assert_no_error(err);
    g_assert_cmpint(rows->len, ==, due);
    gint64 cost = store_due_cost(st);
    g_ptr_array_unref(rows);
    store_close(st);
    char *wal = g_strconcat(path, "-wal", NULL), *shm = g_strconcat(path, "-shm", NULL);
    g_unlink(path);
    g_unlink(wal);
    g_unlink(shm);
    g_rmdir(dir);
    g_free(wal);
    g_free(shm);
    g_free(path);
    g_free(dir);
    return cost;
}

static void test_due_cost_follows_due_not_enrolled(void)
{
    gint64 small = due_cost(1000, 50);
    gint64 large = due_cost(50000, 50);
    g_test_message("VM steps: 1,000 enrolled: %" G_GINT64_FORMAT ", 50,000 enrolled: %" G_GINT64_FORMAT,
                   small, large);
    g_assert_cmpint(large, <=, small + small / 10);
    gint64 more_due = due_cost(1000, 500);
    g_assert_cmpint(more_due, >, small * 5); /* and it does grow with the number due */
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/scaling/due-cost", test_due_cost_follows_due_not_enrolled);
    return g_test_run();
}
