/* doctor.c - owns the health checks behind `coursectl doctor`. The SMTP
 * check is a plain EHLO conversation (GIO sockets), not a delivery: it
 * proves the relay answers and, when STARTTLS is required, offers it. The
 * Postfix check reads the local configuration through postconf and
 * postmap (GLib spawn), never main.cf itself: postconf knows the defaults
 * and the syntax. */
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <gio/gio.h>
#include "doctor.h"
#include "course.h"
#include "lint.h"
#include "store.h"

static void add(GPtrArray *out, const char *name, gboolean ok, char *detail, const char *fix)
{
    struct doctor_check *c = g_new0(struct doctor_check, 1);
    c->name = g_strdup(name);
    c->ok = ok;
    c->detail = detail;
    c->fix = ok ? NULL : g_strdup(fix);
    g_ptr_array_add(out, c);
}

/* Returns the user name of uid, or "uid N"; g_free(). */
static char *user_name(uid_t uid)
{
    struct passwd pwd, *pw = NULL;
    char buf[4096];
    if (getpwuid_r(uid, &pwd, buf, sizeof buf, &pw) != 0)
        pw = NULL;
    return pw ? g_strdup(pw->pw_name) : g_strdup_printf("uid %d", (int)uid);
}

/* The database, its journal files and the key must belong to the user
 * coursed runs as, which is not who runs doctor (often root). That user is
 * taken to be the owner of the database's folder: SQLite creates its -wal
 * and -shm files there, so coursed (and the MTA pipe) can only work as the
 * folder's owner; the Debian package and the unit's StateDirectory= make
 * /var/lib/coursed the coursed user's. */
static void check_owner(GPtrArray *out, const struct config *cfg)
{
    struct stat dir_sb, sb;
    char *dir = g_path_get_dirname(cfg->database);
    if (stat(dir, &dir_sb) != 0) {
        g_free(dir);
        return; /* the database check says what is missing */
    }
    char *runs_as = user_name(dir_sb.st_uid);
    GString *wrong = g_string_new(NULL);
    const char *files[] = { cfg->database, cfg->secret_key };
    for (size_t i = 0; i < G_N_ELEMENTS(files); i++) {
        if (stat(files[i], &sb) != 0 || sb.st_uid == dir_sb.st_uid)
            continue;
        char *owner = user_name(sb.st_uid);
        g_string_append_printf(wrong, "%s%s belongs to %s", wrong->len ? ", " : "", files[i], owner);
        g_free(owner);
    }
    if (wrong->len) {
        g_string_append_printf(wrong, ", but coursed runs as %s (the owner of %s)", runs_as, dir);
        char *fix = g_strdup_printf("chown %s: %s %s (and run coursectl as %s: sudo -u %s coursectl ...)",
                                    runs_as, cfg->database, cfg->secret_key, runs_as, runs_as);
        add(out, "ownership", FALSE, g_string_free(wrong, FALSE), fix);
        g_free(fix);
    } else {
        g_string_free(wrong, TRUE);
        add(out, "ownership", TRUE,
            g_strdup_printf("the database and the key belong to %s, the owner of %s (coursed runs as it)",
                            runs_as, dir),
            NULL);
    }
    g_free(runs_as);
    g_free(dir);
}

static void check_free(struct doctor_check *c)
{
    g_free(c->name);
    g_free(c->detail);
    g_free(c->fix);
    g_free(c);
}

/* Reads one SMTP reply (possibly multi-line); returns its code, or 0. */
static int smtp_reply(GDataInputStream *in, GString *text)
{
    for (int i = 0; i < 100; i++) {
        char *line = g_data_input_stream_read_line(in, NULL, NULL, NULL);
        if (!line)
            return 0;
        g_strchomp(line);
        g_string_append_printf(text, "%s\n", line);
        gboolean more = strlen(line) > 3 && line[3] == '-';
        int code = atoi(line);
        g_free(line);
        if (!more)
            return code;
    }
    return 0;
}

static void check_relay(GPtrArray *out, const struct config *cfg, const char *server)
{
    GSocketClient *client = g_socket_client_new();
    g_socket_client_set_timeout(client, 10);
    GError *e = NULL;
    GSocketConnection *conn = g_socket_client_connect_to_host(client, server, 25, NULL, &e);
    char *name = g_strdup_printf("smtp %s", server);
    if (!conn) {
        add(out, name, FALSE, g_strdup_printf("cannot connect: %s", e->message),
            "check [smtp] host, port and relays, and that the relay is running and reachable");
        g_error_free(e);
        g_free(name);
        g_object_unref(client);
        return;
    }
    GDataInputStream *in = g_data_input_stream_new(g_io_stream_get_input_stream(G_IO_STREAM(conn)));
    g_data_input_stream_set_newline_type(in, G_DATA_STREAM_NEWLINE_TYPE_ANY);
    GOutputStream *os = g_io_stream_get_output_stream(G_IO_STREAM(conn));
    GString *text = g_string_new(NULL);
    int greet = smtp_reply(in, text);
    char *ehlo = g_strdup_printf("EHLO %s\r\n", cfg->smtp_helo);
    int code = 0;
    if (greet == 220 && g_output_stream_write_all(os, ehlo, strlen(ehlo), NULL, NULL, NULL))
        code = smtp_reply(in, text);
    g_output_stream_write_all(os, "QUIT\r\n", 6, NULL, NULL, NULL);
    gboolean tls = strstr(text->str, "STARTTLS") != NULL;
    gboolean need_tls = strcmp(cfg->smtp_starttls, "required") == 0;
    if (greet != 220 || code != 250)
        add(out, name, FALSE, g_strdup_printf("no proper greeting or EHLO reply (%d, %d)", greet, code),
            "check that [smtp] host and port name an SMTP server");
    else if (need_tls && !tls)
        add(out, name, FALSE, g_strdup("answers EHLO but does not offer STARTTLS"),
            "enable STARTTLS on the relay, or set [smtp] starttls = opportunistic (never with AUTH)");
    else
        add(out, name, TRUE, g_strdup_printf("answers EHLO%s", tls ? ", offers STARTTLS" : ""), NULL);
    g_free(ehlo);
    g_string_free(text, TRUE);
    g_object_unref(in);
    g_io_stream_close(G_IO_STREAM(conn), NULL, NULL);
    g_object_unref(conn);
    g_object_unref(client);
    g_free(name);
}

static void check_http(GPtrArray *out, const struct config *cfg)
{
    GSocketClient *client = g_socket_client_new();
    g_socket_client_set_timeout(client, 10);
    GError *e = NULL;
    GSocketConnection *conn = g_socket_client_connect_to_host(client, cfg->http_listen, 80, NULL, &e);
    if (!conn) {
        add(out, "http", FALSE, g_strdup_printf("%s: %s", cfg->http_listen, e->message),
            "start coursed (it serves the pages), or check [http] listen");
        g_error_free(e);
        g_object_unref(client);
        return;
    }
    const char *req = "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n";
    GOutputStream *os = g_io_stream_get_output_stream(G_IO_STREAM(conn));
    GDataInputStream *in = g_data_input_stream_new(g_io_stream_get_input_stream(G_IO_STREAM(conn)));
    char *status = NULL;
    if (g_output_stream_write_all(os, req, strlen(req), NULL, NULL, NULL))
        status = g_data_input_stream_read_line(in, NULL, NULL, NULL);
    gboolean ok = status && strstr(status, " 200");
    add(out, "http", ok,
        g_strdup_printf("%s /healthz: %s", cfg->http_listen, status ? g_strchomp(status) : "no answer"),
        "coursed answers, but not healthy: see its log");
    g_free(status);
    g_object_unref(in);
    g_io_stream_close(G_IO_STREAM(conn), NULL, NULL);
    g_object_unref(conn);
    g_object_unref(client);
}

/* Runs a Postfix tool (argv[0] found on PATH or in /usr/sbin) and returns
 * its stdout, or NULL when it is missing or fails. MAIL_CONFIG in the
 * environment names another instance's configuration, as for every
 * Postfix command. g_free() the result. */
static char *postfix_tool(const char *tool, const char *const *args)
{
    char *path = g_find_program_in_path(tool);
    if (!path) {
        char *sbin = g_build_filename("/usr/sbin", tool, NULL);
        if (g_file_test(sbin, G_FILE_TEST_IS_EXECUTABLE))
            path = sbin;
        else
            g_free(sbin);
    }
    if (!path)
        return NULL;
    GPtrArray *argv = g_ptr_array_new();
    g_ptr_array_add(argv, path);
    for (const char *const *a = args; *a; a++)
        g_ptr_array_add(argv, (gpointer)*a);
    g_ptr_array_add(argv, NULL);
    char *out = NULL;
    int status = 0;
    gboolean ran = g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                                &out, NULL, &status, NULL);
    g_ptr_array_unref(argv);
    g_free(path);
    if (!ran || !g_spawn_check_wait_status(status, NULL)) {
        g_free(out);
        return NULL;
    }
    return out;
}

/* The value of name in `postconf -x -n` output (one "name = value" per
 * line), or NULL when it is not set. */
static char *postconf_value(const char *conf, const char *name)
{
    char **lines = g_strsplit(conf, "\n", -1);
    char *v = NULL;
    size_t n = strlen(name);
    for (char **l = lines; *l && !v; l++)
        if (!strncmp(*l, name, n) && !strncmp(*l + n, " = ", 3))
            v = g_strstrip(g_strdup(*l + n + 3));
    g_strfreev(lines);
    return v;
}

/* TRUE when the list value (commas or blanks between items) names domain;
 * *table says whether it also has lookup tables, which are not read. */
static gboolean list_names(const char *value, const char *domain, gboolean *table)
{
    *table = FALSE;
    if (!value)
        return FALSE;
    char **items = g_strsplit_set(value, ", \t", -1);
    gboolean found = FALSE;
    for (char **i = items; *i; i++) {
        if (strchr(*i, ':'))
            *table = TRUE;
        else if (**i && g_ascii_strcasecmp(*i, domain) == 0)
            found = TRUE;
    }
    g_strfreev(items);
    return found;
}

/* The name of the master.cf service that pipes to `coursectl ... inbound`
 * (a line of `postconf -M`), or NULL. */
static char *postfix_pipe_service(const char *master)
{
    char **lines = g_strsplit(master, "\n", -1);
    char *name = NULL;
    for (char **l = lines; *l && !name; l++)
        if (strstr(*l, " pipe ") && strstr(*l, "coursectl") && strstr(*l, " inbound")) {
            char *sp = strpbrk(*l, " \t");
            if (sp)
                name = g_strndup(*l, (gsize)(sp - *l));
        }
    g_strfreev(lines);
    return name;
}

/* The local Postfix, when there is one (postconf on PATH or in /usr/sbin):
 * each setting the README's lines make, checked for the course domain.
 * Missing ones lose mail: remote clients and DSNs refused (454 Relay access
 * denied), the domain never reaching the pipe, or a mail to two course
 * addresses deferred. Adds nothing when Postfix is not installed. */
static void check_postfix(GPtrArray *out, const struct config *cfg)
{
    static const char *const main_args[] = { "-x", "-n", NULL };
    static const char *const master_args[] = { "-M", NULL };
    char *conf = postfix_tool("postconf", main_args);
    if (!conf)
        return;
    char *master = postfix_tool("postconf", master_args);
    const char *d = cfg->domain;
    gboolean table = FALSE;

    char *relay = postconf_value(conf, "relay_domains");
    char *mydest = postconf_value(conf, "mydestination");
    gboolean tables = FALSE;
    gboolean accepted = list_names(relay, d, &table) || list_names(mydest, d, &tables);
    char *service = master ? postfix_pipe_service(master) : NULL;
    char *maps = postconf_value(conf, "transport_maps");
    char *routed = NULL, *routed_to = NULL;
    char **items = g_strsplit_set(maps ? maps : "", ", \t", -1);
    for (char **i = items; *i && !routed; i++) {
        if (!**i)
            continue;
        const char *const q[] = { "-q", d, *i, NULL };
        char *hit = postfix_tool("postmap", q);
        if (hit && *g_strstrip(hit)) {
            routed = g_strdup(*i);
            routed_to = g_strdup(hit);
        }
        g_free(hit);
    }
    g_strfreev(items);
    char *key = g_strdup_printf("%s_destination_recipient_limit", service ? service : "coursed");
    char *limit = postconf_value(conf, key);
    char *delim = postconf_value(conf, "recipient_delimiter");

    /* A Postfix with no trace of coursed (installed for something else,
     * inbound mail by Maildir): nothing to warn about. */
    if (!accepted && !service && !routed) {
        add(out, "postfix", TRUE,
            g_strdup_printf("no coursed lines in the local Postfix (%s not routed to a pipe): not checked",
                            d),
            NULL);
        goto done;
    }
    if (accepted || table)
        add(out, "postfix relay_domains", TRUE,
            g_strdup_printf(accepted ? "%s is accepted from remote clients"
                                     : "relay_domains has lookup tables; %s not checked in them",
                            d),
            NULL);
    else
        add(out, "postfix relay_domains", FALSE,
            g_strdup_printf("%s is in neither relay_domains nor mydestination: remote clients and "
                            "their DSNs get 454 Relay access denied",
                            d),
            "add the domain to relay_domains in main.cf (contrib/postfix/main.cf.snippet), then postfix "
            "reload");
    if (service)
        add(out, "postfix transport", TRUE,
            g_strdup_printf("master.cf service %s pipes to coursectl inbound", service), NULL);
    else
        add(out, "postfix transport", FALSE, g_strdup("no master.cf service pipes to coursectl inbound"),
            "add the coursed service of contrib/postfix/master.cf.snippet to master.cf");
    /* the map's answer is "service:" or "service:nexthop" */
    gboolean to_pipe = routed && service && g_str_has_prefix(routed_to, service) &&
                       routed_to[strlen(service)] == ':';
    if (to_pipe)
        add(out, "postfix transport_maps", TRUE, g_strdup_printf("%s sends %s to %s", routed, d, service),
            NULL);
    else
        add(out, "postfix transport_maps", FALSE,
            routed ? g_strdup_printf("%s sends %s to %s, not to the coursed pipe", routed, d, routed_to)
                   : g_strdup_printf("no transport_maps entry sends %s to the coursed pipe", d),
            "set transport_maps and add the line of contrib/postfix/transport, then postmap it");
    if (limit && !strcmp(limit, "1"))
        add(out, "postfix recipient limit", TRUE, g_strdup_printf("%s = 1", key), NULL);
    else
        add(out, "postfix recipient limit", FALSE,
            g_strdup_printf("%s is %s: a mail to two course addresses reaches the pipe once", key,
                            limit ? limit : "not set"),
            "set it to 1 in main.cf (contrib/postfix/main.cf.snippet)");
    add(out, "postfix recipient_delimiter", delim && strchr(delim, '+'),
        g_strdup_printf("recipient_delimiter is %s", delim ? delim : "not set"),
        "set recipient_delimiter = + in main.cf: slug+confirm-TOKEN@ and bounces+TOKEN@ need it");
done:
    g_free(routed_to);
    g_free(delim);
    g_free(limit);
    g_free(key);
    g_free(routed);
    g_free(maps);
    g_free(service);
    g_free(mydest);
    g_free(relay);
    g_free(master);
    g_free(conf);
}

GPtrArray *doctor_run(struct app *app)
{
    const struct config *cfg = app->cfg;
    GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)check_free);
    add(out, "config", TRUE, g_strdup(cfg->path), NULL);

    GPtrArray *problems = g_ptr_array_new_with_free_func(g_free);
    int n = lint_courses(cfg, NULL, problems);
    add(out, "courses", n >= 0 && problems->len == 0,
        problems->len ? g_strdup_printf("%u problem(s), first: %s", problems->len, (char *)problems->pdata[0])
                      : g_strdup_printf("%d course(s) in %s", n, cfg->courses),
        "run 'coursectl course check' and fix what it lists");
    g_ptr_array_unref(problems);

    GError *e = NULL;
    struct store *st = store_open(cfg->database, FALSE, &e);
    if (!st) {
        add(out, "database", FALSE, g_strdup(e->message), "run 'coursectl init'");
        g_clear_error(&e);
    } else {
        char *check = NULL;
        int v = store_schema_version(st);
        if (!store_check(st, &check, &e)) {
            add(out, "database", FALSE, g_strdup(e->message), "see sqlite3(1) .recover; restore a backup");
            g_clear_error(&e);
        } else {
            gboolean ok = !strcmp(check, "ok") && v == store_latest_version();
            add(out, "database", ok,
                g_strdup_printf("%s: integrity %s, schema version %d of %d", cfg->database, check, v,
                                store_latest_version()),
                "integrity problems: restore a backup; an old schema: run 'coursectl init'");
        }
        g_free(check);
        store_close(st);
    }

    check_owner(out, cfg);
    struct stat sb;
    if (stat(cfg->secret_key, &sb) != 0)
        add(out, "secret key", FALSE, g_strdup_printf("%s is missing", cfg->secret_key),
            "run 'coursectl init'");
    else if ((sb.st_mode & 077) != 0)
        add(out, "secret key", FALSE, g_strdup_printf("%s has mode %03o", cfg->secret_key, sb.st_mode & 0777),
            "chmod 600 the key file: anyone who reads it can forge unsubscribe links");
    else
        add(out, "secret key", TRUE, g_strdup_printf("%s, mode 600", cfg->secret_key), NULL);

    if (!strcmp(cfg->transport_kind, "smtp")) {
        char *first = g_strdup_printf("%s:%d", cfg->smtp_host, (int)cfg->smtp_port);
        check_relay(out, cfg, first);
        g_free(first);
        char **relays = g_strsplit(cfg->smtp_relays, ",", 16);
        for (char **r = relays; *r; r++)
            if (*g_strstrip(*r))
                check_relay(out, cfg, *r);
        g_strfreev(relays);
    } else {
        gboolean ok = access(cfg->maildir, W_OK) == 0 || access(cfg->maildir, F_OK) != 0;
        add(out, "maildir", ok, g_strdup(cfg->maildir), "make the outbox Maildir writable by coursed");
    }
    if (*cfg->http_listen)
        check_http(out, cfg);
    if (*cfg->inbound_maildir) {
        gboolean ok = access(cfg->inbound_maildir, W_OK) == 0;
        add(out, "inbound", ok, g_strdup(cfg->inbound_maildir),
            "create the inbound Maildir and make it writable by coursed");
    }
    check_postfix(out, cfg);
    return out;
}
