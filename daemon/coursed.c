/* coursed.c - the daemon: option parsing, the single-instance lock, signal
 * flags, and the loop that runs a tick whenever work is due. All delivery
 * logic lives in lib/tick.c; this file only decides *when* to tick.
 * Signal handlers only set flags: SIGTERM/SIGINT drain and exit after the
 * current tick, SIGHUP reloads config, courses and templates (a broken new
 * set is refused and the old one keeps running). */
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <malloc.h>
#include "app.h"
#include "clock.h"
#include "course.h"
#include "error.h"
#include "http.h"
#include "snapshot.h"
#include "lifecycle.h"
#include "lock.h"
#include "mailbox.h"
#include "metrics.h"
#include "sdnotify.h"
#include "log.h"
#include "tick.h"
#include "version.h"

static volatile sig_atomic_t want_stop;
static volatile sig_atomic_t want_reload;
static gboolean want_scan = TRUE; /* the inbound Maildir has (or may have) new mail */
static int inotify_fd = -1;

static void on_stop(int sig)
{
    (void)sig;
    want_stop = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    want_reload = 1;
}

static void signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Sleep for up to `secs` real seconds, waking early for a signal flag or
 * for new mail in the inbound Maildir (inotify). */
static void nap(double secs)
{
    gint64 until = g_get_monotonic_time() + (gint64)(secs * G_USEC_PER_SEC);
    while (!want_stop && !want_reload && !want_scan) {
        gint64 left = until - g_get_monotonic_time();
        if (left <= 0)
            break;
        struct pollfd p = { inotify_fd, POLLIN, 0 };
        int ms = (int)MIN(left / 1000 + 1, 100);
        if (inotify_fd >= 0 && poll(&p, 1, ms) > 0) {
            char buf[4096];
            while (read(inotify_fd, buf, sizeof buf) > 0)
                ;
            want_scan = TRUE;
        } else if (inotify_fd < 0) {
            g_usleep((gulong)ms * 1000);
        }
    }
}

/* Start watching [inbound] maildir; a missing folder is created. */
static void watch_inbound(struct app *app)
{
    if (inotify_fd >= 0) {
        close(inotify_fd);
        inotify_fd = -1;
    }
    const char *dir = app->cfg->inbound_maildir;
    if (!*dir)
        return;
    GError *err = NULL;
    if (!mailbox_prepare(dir, &err)) {
        log_err("%s", err->message);
        g_error_free(err);
        return;
    }
    inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    char *newdir = g_build_filename(dir, "new", NULL);
    if (inotify_fd < 0 || inotify_add_watch(inotify_fd, newdir, IN_MOVED_TO | IN_CLOSE_WRITE) < 0)
        log_warn("inotify on %s failed; relying on the scan every %" G_GINT64_FORMAT "s", newdir,
                 app->cfg->inbound_scan);
    g_free(newdir);
    want_scan = TRUE;
}

static void scan_inbound(struct app *app)
{
    want_scan = FALSE;
    if (!*app->cfg->inbound_maildir)
        return;
    GError *err = NULL;
    if (mailbox_scan(app, app->cfg->inbound_maildir, clock_now(), &err) < 0) {
        log_err("inbound maildir: %s; trying again at the next scan", err->message);
        g_error_free(err);
    }
}

static char *opt_config;
static gboolean opt_check, opt_debug, opt_once, opt_until_done, opt_verbose;
static char *opt_now;
static double opt_speed;

static GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt_config,
      "Config file (default $COURSED_CONFIG, then /etc/coursed/coursed.conf)", "FILE" },
    { "check", 'n', 0, G_OPTION_ARG_NONE, &opt_check, "Check config, courses and templates, then exit",
      NULL },
    { "debug", 'd', 0, G_OPTION_ARG_NONE, &opt_debug, "Log to stderr instead of syslog", NULL },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, "Log debug messages too", NULL },
    { "once", 0, 0, G_OPTION_ARG_NONE, &opt_once, "Run one tick and exit (for cron and tests)", NULL },
    { "now", 0, 0, G_OPTION_ARG_STRING, &opt_now,
      "Pretend the time is TIME (ISO 8601, e.g. 2026-03-02T09:00:00Z)", "TIME" },
    { "speed", 0, 0, G_OPTION_ARG_DOUBLE, &opt_speed,
      "With --now: let the fake clock run N times faster than real time", "N" },
    { "until-done", 0, 0, G_OPTION_ARG_NONE, &opt_until_done,
      "Exit when no enrollment is active and nothing is queued", NULL },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
};

/* A failing tick backs off: 1 s, doubling up to tick_interval, and says so
 * once per step instead of once per loop (a full disk must not spin a
 * core or flood the log). */
static double fail_wait;

/* A course version the loop has not applied yet (after a SIGHUP whose
 * apply failed): no tick runs until it is. */
static gboolean versions_pending;

/* Applies the loaded courses to the database (lib/version.c). Returns 0,
 * or after logging why 75 (the database is busy or full: try again) or 1. */
static int sync_versions(struct app *app)
{
    GError *err = NULL;
    if (version_sync(app, clock_now(), NULL, &err))
        return 0;
    log_err("applying the courses to the database: %s", err->message);
    int rc = err->code == CD_ERR_BUSY ? 75 : 1;
    g_error_free(err);
    return rc;
}

/* coursed -n: what applying each changed course would do, when the
 * database is there to tell. */
static void print_plans(struct app *app)
{
    GError *err = NULL;
    if (!g_file_test(app->cfg->database, G_FILE_TEST_EXISTS))
        return;
    app->st = store_open(app->cfg->database, FALSE, &err);
    if (!app->st) {
        printf("coursed: course changes not shown: %s\n", err->message);
        g_error_free(err);
        return;
    }
    for (guint i = 0; i < app->courses->len; i++) {
        struct version_plan *p = version_plan(app, app->courses->pdata[i], clock_now(), &err);
        if (!p) {
            printf("coursed: %s\n", err->message);
            g_clear_error(&err);
            continue;
        }
        if (p->changed) {
            GString *s = g_string_new(NULL);
            version_plan_summary(p, s);
            printf("course %s: the files differ from version %d; SIGHUP applies this:\n%s", p->course,
                   p->running, s->str);
            g_string_free(s, TRUE);
        }
        version_plan_free(p);
    }
    store_close(app->st);
    app->st = NULL;
}

/* The lock of the database, for the clean exits (lock_mark_stopped). */
static int held_lock = -1;

static int run_tick(struct app *app)
{
    struct tick_stats stats;
    GError *err = NULL;
    gint64 now = clock_now();
    /* Timed on the monotonic clock: the tick's real cost, whatever --now says. */
    gint64 started = g_get_monotonic_time();
    gboolean ticked = tick_run(app, now, &stats, &err);
    metrics_tick_done((double)(g_get_monotonic_time() - started) / G_USEC_PER_SEC);
    if (!ticked) {
        if (err->code == CD_ERR_ABANDONED) {
            /* Sessions still run in other threads with this tick's memory:
             * leave now; their rows stay 'sending' and come back at start. */
            log_warn("%s: exiting now", err->message);
            lock_mark_stopped(held_lock);
            sdnotify("STOPPING=1");
            fflush(stderr);
            _exit(0);
        }
        fail_wait = fail_wait > 0 ? MIN(fail_wait * 2, (double)app->cfg->tick_interval) : 1.0;
        log_err("tick failed: %s; next try in %.0f s", err->message, fail_wait);
        int busy = err->code == CD_ERR_BUSY;
        g_error_free(err);
        return busy ? 75 : 1;
    }
    if (fail_wait > 0)
        log_info("tick succeeded again");
    fail_wait = 0;
    if (stats.queued || stats.sent || stats.deferred || stats.failed)
        log_info("tick: %d queued, %d sent, %d deferred, %d failed", stats.queued, stats.sent, stats.deferred,
                 stats.failed);
    return 0;
}

/* Real seconds to wait before the next tick. */
static double next_wait(struct app *app)
{
    if (fail_wait > 0)
        return fail_wait;
    double wait = (double)app->cfg->tick_interval;
    GError *err = NULL;
    gint64 due = store_next_due(app->st, &err);
    if (due < 0) {
        g_clear_error(&err);
        return wait;
    }
    if (clock_is_fake() && opt_speed > 0) {
        /* On the demo clock, wake exactly when the next lesson is due. */
        if (due == 0)
            return wait / opt_speed > 0.05 ? wait / opt_speed : 0.05;
        double left = (double)(due - clock_now()) / opt_speed;
        return CLAMP(left, 0.0, wait);
    }
    if (due > 0)
        wait = CLAMP((double)(due - clock_now()), 0.0, wait);
    return wait;
}

int main(int argc, char **argv)
{
    /* Rows and outcomes come and go by the thousand each second: keep the
     * freed top of the heap instead of returning it to the kernel and
     * asking for it again (measured: 40,000 brk calls per 20,000 lessons). */
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    mallopt(M_TOP_PAD, 4 * 1024 * 1024);
    GError *err = NULL;
    GOptionContext *ctx = g_option_context_new("- deliver paced e-mail courses");
    g_option_context_add_main_entries(ctx, entries, NULL);
    g_option_context_set_description(
        ctx,
        "Exit status: 0 success, 1 error (bad config or course, database problem),\n"
        "2 usage error, 75 database busy or another coursed holds the lock.\n");
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        fprintf(stderr, "coursed: %s\n", err->message);
        g_error_free(err);
        g_option_context_free(ctx);
        return 2;
    }
    g_option_context_free(ctx);
    log_open("coursed", opt_debug || opt_check, opt_verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);

    if (!clock_setup(opt_now, opt_speed, &err)) {
        fprintf(stderr, "coursed: %s\n", err->message);
        g_error_free(err);
        return 2;
    }
    if (!clock_is_fake() && opt_speed > 0) {
        fprintf(stderr, "coursed: --speed needs --now\n");
        return 2;
    }

    const char *path = config_default_path(opt_config);
    if (opt_check) {
        struct app *app = app_open(path, 0, &err);
        if (!app) {
            fprintf(stderr, "coursed: %s\n", err->message);
            g_error_free(err);
            return 1;
        }
        printf("coursed: %s ok: %u course(s) in %s\n", path, app->courses->len, app->cfg->courses);
        print_plans(app);
        app_free(app);
        return 0;
    }

    struct app *app = app_open(path, APP_STORE | APP_TRANSPORT | APP_KEY, &err);
    if (!app) {
        log_err("%s", err->message);
        int rc = err->code == CD_ERR_BUSY ? 75 : 1;
        g_error_free(err);
        return rc;
    }
    int lock = lock_take(app->cfg->database, &err);
    if (lock < 0) {
        log_err("%s", err->message);
        int rc = err->code == CD_ERR_BUSY ? 75 : 1;
        g_error_free(err);
        app_free(app);
        return rc;
    }
    held_lock = lock;
    signals_install();
    app->stop = (volatile int *)&want_stop;
    app->yield = (volatile int *)&want_reload;
    int rc = 0;
    if ((rc = sync_versions(app)) != 0) {
        /* nothing goes out on courses the database does not know yet */
    } else if (opt_once) {
        scan_inbound(app);
        rc = run_tick(app);
    } else {
        log_info("started: %u course(s), transport %s, database %s", app->courses->len, app->tr->ops->name,
                 app->cfg->database);
        int orphans = store_recover_sending(app->st, &err);
        if (orphans > 0 && lock_clean_stop())
            log_warn(
                "queued again %d deliveries the last stop left in flight (abandoned after [coursed] "
                "stop_timeout: a recipient may get one twice)",
                orphans);
        else if (orphans > 0)
            log_warn("recovered %d deliveries a crash left in 'sending'", orphans);
        g_clear_error(&err);
        /* Nothing is ever stuck: an active enrollment with neither a next
         * slot nor a lesson in flight is a bug, repaired (and logged). */
        if (life_repair(app, clock_now(), &err) < 0) {
            log_err("checking for stuck enrollments: %s", err->message);
            g_clear_error(&err);
        }
        /* The pages run on the snapshot published here (snapshot.h). */
        struct snapshot_box *box = snapshot_box_new(app->snap);
        struct http *http = http_start(box, &err);
        watch_inbound(app);
        gint64 last_scan = 0;
        sdnotify("READY=1\nSTATUS=delivering");
        if (err) {
            log_err("%s", err->message);
            g_clear_error(&err);
            rc = 1;
            want_stop = 1;
        }
        while (!want_stop) {
            if (want_reload) {
                want_reload = 0;
                sdnotify("RELOADING=1");
                if (app_reload(app, &err)) {
                    log_info("reloaded %s: %u course(s)", app->cfg->path, app->courses->len);
                    versions_pending = TRUE;
                    watch_inbound(app);
                    /* The next page served runs on the new snapshot; the
                     * listener restarts only for a new address. */
                    snapshot_box_set(box, app->snap);
                    if (strcmp(http_listen(http), app->cfg->http_listen) != 0) {
                        http_stop(http);
                        http = http_start(box, &err);
                    }
                    if (err) {
                        log_err("HTTP pages not restarted: %s", err->message);
                        g_clear_error(&err);
                    }
                } else {
                    log_err("reload refused, keeping the running configuration: %s", err->message);
                    g_clear_error(&err);
                }
                sdnotify("READY=1");
            }
            gint64 mono = g_get_monotonic_time() / G_USEC_PER_SEC;
            if (want_scan || mono - last_scan >= app->cfg->inbound_scan) {
                scan_inbound(app);
                last_scan = mono;
            }
            /* Lessons go out only once the database knows the courses
             * the snapshot holds: a version not applied would send the
             * lesson at a position of the new files to a plan made for
             * the old ones. */
            if (versions_pending)
                versions_pending = sync_versions(app) != 0;
            if (!versions_pending)
                run_tick(app);
            else
                g_usleep(G_USEC_PER_SEC);
            if (opt_until_done) {
                gboolean idle = store_idle(app->st, &err);
                g_clear_error(&err);
                if (idle) {
                    log_info("nothing left to deliver; exiting (--until-done)");
                    break;
                }
            }
            nap(next_wait(app));
        }
        sdnotify("STOPPING=1");
        http_stop(http);
        snapshot_box_free(box);
        if (want_stop)
            log_info("stopping on signal");
    }
    lock_mark_stopped(lock);
    lock_release(lock);
    app_free(app);
    g_free(opt_config);
    g_free(opt_now);
    return rc;
}
