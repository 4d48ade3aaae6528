/* config.h - every setting of coursed, read from one INI file. */
#ifndef COURSED_CONFIG_H
#define COURSED_CONFIG_H
#include <glib.h>

struct config {
    char *path;     /* the file read */
    char *dir;      /* its folder: relative paths are resolved here */
    char **origins; /* per setting of the table: "file:line" where set, NULL for the default */
    /* [coursed] */
    char *database;
    char *courses;
    char *templates;
    char *domain;
    char *base_url;
    char *secret_key;     /* HMAC key file; default <database folder>/secret.key */
    gint64 tick_interval; /* seconds between ticks of the daemon loop */
    gint64 stop_timeout;  /* SIGTERM: in-flight sessions get this long */
    /* [transport] */
    char *transport_kind; /* "smtp" or "maildir" */
    char *maildir;
    /* [smtp] */
    char *smtp_host;
    gint64 smtp_port;
    char *smtp_helo;
    char *smtp_user;
    char *smtp_password_file;
    char *smtp_starttls;     /* off, opportunistic, required */
    gint64 smtp_timeout;     /* seconds, for the greeting and each command */
    gint64 smtp_per_session; /* messages per SMTP connection */
    gint64 smtp_sessions;    /* SMTP sessions at once */
    char *smtp_relays;       /* fallback relays "host:port, host:port" */
    char *smtp_ca_file;      /* CA bundle for STARTTLS; "" = system default */
    /* [pacing] */
    gint64 late_grace;  /* a missed slot is still sent this late, else moved */
    gint64 max_per_day; /* lessons per subscriber per local day */
    char *first_lesson; /* "next-slot" or "immediately" */
    /* [inbound] */
    char *inbound_maildir;   /* Maildir coursed watches; "" = none */
    gint64 inbound_scan;     /* seconds between full scans of it */
    gint64 replies_per_day;  /* automatic replies to one address per day */
    gint64 replies_per_hour; /* automatic replies per hour, all addresses */
    gint64 confirm_per_hour; /* confirmation mails per hour, all addresses */
    gint64 confirm_ttl;      /* confirmation links expire after this */
    /* [http] */
    char *http_listen;              /* address:port of the one-click pages; "" = off */
    char *http_metrics_allow;       /* who may read /metrics: addresses and CIDR networks */
    gint64 http_connections;        /* at once, all clients */
    gint64 http_connections_per_ip; /* at once, one client address */
    gint64 http_posts_per_minute;   /* form posts one client address may make a minute */
    gint64 http_header_timeout;     /* seconds for a request's headers to arrive */
    gint64 signup_per_ip_per_hour;  /* signup form posts per IP per hour */
    gint64 signup_per_hour;         /* signup form posts per hour, in all */
    char *record_ip;                /* "true": consent records keep IP and UA */
    /* [delivery] */
    gint64 batch;           /* deliveries claimed per tick */
    gint64 retry_first;     /* seconds until the first retry after a 4xx */
    gint64 retry_max;       /* cap of the exponential backoff */
    gint64 give_up;         /* a delivery deferred this long fails */
    gint64 rate_per_second; /* 0 = no limit */
    gint64 rate_per_hour;   /* 0 = no limit */
};

/* Returns the config file to read: cli if given, else $COURSED_CONFIG, else
 * /etc/coursed/coursed.conf. The string is borrowed (static or from args). */
const char *config_default_path(const char *cli);

/* Returns a newly allocated config read from path, or NULL with err naming
 * the file and key at fault. Free with config_free(). */
struct config *config_load(const char *path, GError **err);

/* Frees cfg; accepts NULL. */
void config_free(struct config *cfg);

/* Parse "90", "90s", "5m", "24h", "4d", "2w" into seconds. */
gboolean config_parse_duration(const char *text, gint64 *secs);

/* One effective setting, for `coursectl config show`. */
struct config_entry {
    const char *group; /* static */
    const char *key;   /* static */
    char *value;       /* as the file would say it; paths resolved */
    char *origin;      /* "file:line", "default" or "default (derived)" */
};

/* Returns every setting of cfg in table order (struct config_entry *);
 * g_ptr_array_unref() frees the entries too. */
GPtrArray *config_entries(const struct config *cfg);

/* Write the table of settings with defaults as an example INI to out. */
void config_dump_defaults(GString *out);

#endif
