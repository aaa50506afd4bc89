/* config.c - nimbus.conf parsing and the default locations. */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

#define CONFIG_LINE_MAX 4096

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool copy_str(char *dst, size_t dstlen, const char *src)
{
    size_t n = strlen(src);

    if (n >= dstlen)
        return false;
    memcpy(dst, src, n + 1);
    return true;
}

/* $XDG_DATA_HOME/nimbus, or ~/.local/share/nimbus. */
static void default_store(char *dst, size_t dstlen)
{
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");

    if (xdg != NULL && *xdg == '/')
        snprintf(dst, dstlen, "%s/nimbus", xdg);
    else if (home != NULL && *home != '\0')
        snprintf(dst, dstlen, "%s/.local/share/nimbus", home);
    else
        snprintf(dst, dstlen, "/var/lib/nimbus");
}

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    default_store(cfg->store, sizeof(cfg->store));
    copy_str(cfg->label, sizeof(cfg->label), "nimbus");
    cfg->login_failure_limit = 5;
    cfg->quorum_token_lifetime = 600;
    cfg->login_ticket_lifetime = CONFIG_TICKET_LIFETIME_MAX;
    copy_str(cfg->default_user, sizeof(cfg->default_user), "user");
    cfg->kdf_iterations = CONFIG_DEFAULT_KDF_ITERATIONS;
    cfg->log_level = LOG_LEVEL_ERROR;
    cfg->max_sessions = 1024;
    cfg->des3_enabled = true;
    cfg->key_separation = true;
    cfg->aead_max_buffer = CONFIG_DEFAULT_AEAD_MAX_BUFFER;
    cfg->gcm_zero_iv_generate = true;
    cfg->public_objects_visible = true;
    cfg->max_connections = CONFIG_DEFAULT_MAX_CONNECTIONS;
    cfg->max_sessions_per_connection = 1024;
    cfg->max_frame = CONFIG_DEFAULT_MAX_FRAME;
    cfg->io_timeout = CONFIG_DEFAULT_IO_TIMEOUT;
    cfg->call_timeout = CONFIG_DEFAULT_CALL_TIMEOUT;
}

static bool parse_bool(const char *v, bool *out)
{
    if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0 ||
        strcmp(v, "1") == 0 || strcasecmp(v, "on") == 0) {
        *out = true;
        return true;
    }
    if (strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0 ||
        strcmp(v, "0") == 0 || strcasecmp(v, "off") == 0) {
        *out = false;
        return true;
    }
    return false;
}

static bool parse_range(const char *v, unsigned long lo, unsigned long hi,
                        unsigned long *out)
{
    unsigned long n;

    if (!util_parse_ulong(v, &n) || n < lo || n > hi)
        return false;
    *out = n;
    return true;
}

const char *config_parse_endpoint(const char *val, struct config_endpoint *ep)
{
    const char *hp, *colon;
    unsigned long port;
    size_t hlen;

    memset(ep, 0, sizeof(*ep));
    if (strncmp(val, "unix:", 5) == 0) {
        if (val[5] != '/')
            return "unix: needs an absolute path";
        if (!copy_str(ep->path, sizeof(ep->path), val + 5))
            return "unix socket path longer than 107 bytes";
        ep->kind = CONFIG_EP_UNIX;
        return NULL;
    }
    if (strncmp(val, "tls:", 4) != 0)
        return "endpoint must be unix:PATH or tls:HOST:PORT";
    hp = val + 4;
    if (*hp == '[') {
        const char *close = strchr(hp, ']');
        if (close == NULL || close[1] != ':')
            return "tls:[v6]:PORT expected";
        hp++;
        hlen = (size_t)(close - hp);
        colon = close + 1;
    } else {
        colon = strrchr(hp, ':');
        if (colon == NULL)
            return "tls:HOST:PORT expected";
        hlen = (size_t)(colon - hp);
        if (memchr(hp, ':', hlen) != NULL)
            return "an IPv6 host goes in brackets: tls:[::1]:PORT";
    }
    if (hlen == 0 || hlen > CONFIG_HOST_MAX)
        return "tls host empty or too long";
    if (!util_parse_ulong(colon + 1, &port) || port == 0 || port > 65535)
        return "tls port must be 1..65535";
    memcpy(ep->host, hp, hlen);
    ep->host[hlen] = '\0';
    ep->port = (unsigned)port;
    ep->kind = CONFIG_EP_TLS;
    return NULL;
}

const char *config_check_node_address(const char *addr)
{
    struct config_endpoint ep;
    char buf[4 + 255 + 1];
    size_t len = strlen(addr);

    if (len == 0 || len > 255)
        return "a node address has 1 to 255 characters";
    for (size_t i = 0; i < len; i++) {
        /* printed on operators' terminals and in logs */
        if ((unsigned char)addr[i] <= 0x20 || (unsigned char)addr[i] >= 0x7f)
            return "a node address is printable ASCII without spaces";
    }
    /* the same grammar as a tls: endpoint */
    snprintf(buf, sizeof(buf), "tls:%s", addr);
    if (config_parse_endpoint(buf, &ep) != NULL)
        return "a node address is host:port or [v6]:port (port 1..65535)";
    return NULL;
}

void config_format_endpoint(const struct config_endpoint *ep, char *out,
                            size_t outlen)
{
    if (ep->kind == CONFIG_EP_UNIX)
        snprintf(out, outlen, "unix:%s", ep->path);
    else if (strchr(ep->host, ':') != NULL)
        snprintf(out, outlen, "tls:[%s]:%u", ep->host, ep->port);
    else
        snprintf(out, outlen, "tls:%s:%u", ep->host, ep->port);
}

/* "a, b, c" into endpoints (servers), appended. */
static const char *add_endpoints(const char *val, struct config_endpoint *eps,
                                 size_t *n)
{
    char buf[CONFIG_LINE_MAX];
    char *save = NULL, *tok;

    if (!copy_str(buf, sizeof(buf), val))
        return "value too long";
    for (tok = strtok_r(buf, ", \t", &save); tok != NULL;
         tok = strtok_r(NULL, ", \t", &save)) {
        const char *why;
        if (*n >= CONFIG_ENDPOINTS_MAX)
            return "at most 8 endpoints";
        why = config_parse_endpoint(tok, &eps[*n]);
        if (why != NULL)
            return why;
        (*n)++;
    }
    return NULL;
}

/* "1000, alice" (users) or "27, nimbus" (groups) into ids, appended. */
static const char *add_ids(const char *val, bool groups, unsigned long *ids,
                           size_t *n)
{
    char buf[CONFIG_LINE_MAX];
    char *save = NULL, *tok;

    if (!copy_str(buf, sizeof(buf), val))
        return "value too long";
    for (tok = strtok_r(buf, ", \t", &save); tok != NULL;
         tok = strtok_r(NULL, ", \t", &save)) {
        unsigned long id;
        if (*n >= CONFIG_IDS_MAX)
            return "at most 32 entries";
        if (!util_parse_ulong(tok, &id)) {
            if (groups) {
                struct group *gr = getgrnam(tok);
                if (gr == NULL)
                    return "unknown group";
                id = gr->gr_gid;
            } else {
                struct passwd *pw = getpwnam(tok);
                if (pw == NULL)
                    return "unknown user";
                id = pw->pw_uid;
            }
        }
        if (id > 0xfffffffeUL)
            return "id out of range";
        ids[(*n)++] = id;
    }
    return NULL;
}

/* Applies one key = value; returns a reason on error. */
/* "host:port" with a port of 1..65535 (the host is resolved later). */
static bool host_port_ok(const char *v)
{
    const char *c = strrchr(v, ':');
    unsigned long port;

    return c != NULL && c != v && parse_range(c + 1, 1, 65535, &port);
}

/* A cluster id: 1..64 of [0-9A-Za-z-] (it is part of certificate URIs). */
static bool cluster_id_ok(const char *v, size_t n)
{
    static const char ok[] = "0123456789abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ-";

    if (n == 0 || n > CONFIG_CLUSTER_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (v[i] == '\0' || strchr(ok, v[i]) == NULL)
            return false;
    return true;
}

/* "id[, id...]": replaces the list (the last line wins, as for the other
 * keys); no duplicates. */
static const char *parse_clones(struct config *cfg, const char *val)
{
    size_t n = 0;
    const char *p = val;

    for (;;) {
        size_t len;

        while (*p == ' ' || *p == '\t')
            p++;
        len = strcspn(p, ", \t");
        if (!cluster_id_ok(p, len))
            return "cluster_clones must be a list of cluster ids "
                   "(1..64 of [0-9A-Za-z-]) separated by commas";
        if (n == CONFIG_CLUSTER_CLONES_MAX)
            return "cluster_clones: at most 8 cluster ids";
        for (size_t i = 0; i < n; i++)
            if (strlen(cfg->cluster_clones[i]) == len &&
                memcmp(cfg->cluster_clones[i], p, len) == 0)
                return "cluster_clones names a cluster id twice";
        memcpy(cfg->cluster_clones[n], p, len);
        cfg->cluster_clones[n][len] = '\0';
        n++;
        p += len;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        if (*p != ',')
            return "cluster_clones must be a list of cluster ids "
                   "(1..64 of [0-9A-Za-z-]) separated by commas";
        p++;
    }
    cfg->ncluster_clones = n;
    return NULL;
}

/* The cluster_* keys. */
static const char *parse_cluster(struct config *cfg, const char *key,
                                 const char *val)
{
    if (strcmp(key, "cluster_id") == 0) {
        size_t n = strlen(val);

        if (!cluster_id_ok(val, n))
            return "cluster_id must be 1..64 of [0-9A-Za-z-]";
        memcpy(cfg->cluster_id, val, n + 1);
    } else if (strcmp(key, "cluster_clones") == 0) {
        return parse_clones(cfg, val);
    } else if (strcmp(key, "cluster_clone_of") == 0) {
        const char *at = strchr(val, '@');

        if (at == NULL || !cluster_id_ok(val, (size_t)(at - val)) ||
            !host_port_ok(at + 1) ||
            !copy_str(cfg->cluster_clone_of_addr,
                      sizeof(cfg->cluster_clone_of_addr), at + 1))
            return "cluster_clone_of must be CLUSTER_ID@host:port";
        memcpy(cfg->cluster_clone_of, val, (size_t)(at - val));
        cfg->cluster_clone_of[at - val] = '\0';
    } else if (strcmp(key, "cluster_node_id") == 0) {
        if (!parse_range(val, 1, 4294967295UL, &cfg->cluster_node_id))
            return "cluster_node_id must be 1..4294967295";
    } else if (strcmp(key, "cluster_listen") == 0 ||
               strcmp(key, "cluster_join") == 0) {
        char *dst = key[8] == 'l' ? cfg->cluster_listen : cfg->cluster_join;

        if (!host_port_ok(val) ||
            !copy_str(dst, sizeof(cfg->cluster_listen), val))
            return "must be host:port";
    } else if (strcmp(key, "cluster_dir") == 0 ||
               strcmp(key, "cluster_ca") == 0 ||
               strcmp(key, "cluster_cert") == 0 ||
               strcmp(key, "cluster_key") == 0) {
        char *dst = key[8] == 'd'   ? cfg->cluster_dir
                    : key[8] == 'k' ? cfg->cluster_key
                    : key[9] == 'a' ? cfg->cluster_ca
                                    : cfg->cluster_cert;
        if (*val != '/')
            return "must be an absolute path";
        if (!copy_str(dst, PATH_MAX, val))
            return "path too long";
    } else if (strcmp(key, "cluster_bootstrap") == 0) {
        if (!parse_bool(val, &cfg->cluster_bootstrap))
            return "cluster_bootstrap must be yes or no";
    } else if (strcmp(key, "cluster_election_timeout") == 0) {
        if (!parse_range(val, 50, 60000, &cfg->cluster_election_timeout))
            return "cluster_election_timeout must be 50..60000 ms";
    } else if (strcmp(key, "cluster_heartbeat") == 0) {
        if (!parse_range(val, 10, 10000, &cfg->cluster_heartbeat))
            return "cluster_heartbeat must be 10..10000 ms";
    } else {
        return "unknown key";
    }
    return NULL;
}

static const char *config_apply(struct config *cfg, const char *key,
                                const char *val)
{
    int lvl;
    bool b;

    if (strcmp(key, "store") == 0) {
        if (*val != '/')
            return "store must be an absolute path";
        if (!copy_str(cfg->store, sizeof(cfg->store), val))
            return "store path too long";
    } else if (strcmp(key, "label") == 0) {
        if (!copy_str(cfg->label, sizeof(cfg->label), val))
            return "label longer than 32 characters";
    } else if (strcmp(key, "login_failure_limit") == 0) {
        if (!parse_range(val, 1, 1000, &cfg->login_failure_limit))
            return "login_failure_limit must be 1..1000";
    } else if (strcmp(key, "quorum_token_lifetime") == 0) {
        if (!parse_range(val, 1, 86400, &cfg->quorum_token_lifetime))
            return "quorum_token_lifetime must be 1..86400";
    } else if (strcmp(key, "login_ticket_lifetime") == 0) {
        if (!parse_range(val, 0, CONFIG_TICKET_LIFETIME_MAX,
                         &cfg->login_ticket_lifetime))
            return "login_ticket_lifetime must be 0..3600";
    } else if (strcmp(key, "default_user") == 0) {
        if (!util_user_name_valid(val, strlen(val)))
            return "default_user must be 1..31 of [A-Za-z0-9_]";
        copy_str(cfg->default_user, sizeof(cfg->default_user), val);
    } else if (strcmp(key, "kdf_iterations") == 0) {
        if (!parse_range(val, CONFIG_MIN_KDF_ITERATIONS, 100000000UL,
                         &cfg->kdf_iterations))
            return "kdf_iterations must be 1000..100000000";
    } else if (strcmp(key, "log_level") == 0) {
        lvl = util_log_level_parse(val);
        if (lvl < 0)
            return "log_level must be none, error, warn, info, debug or "
                   "trace";
        cfg->log_level = lvl;
    } else if (strcmp(key, "log_file") == 0) {
        if (!copy_str(cfg->log_file, sizeof(cfg->log_file), val))
            return "log_file path too long";
    } else if (strcmp(key, "max_sessions") == 0) {
        if (!parse_range(val, 1, 1024, &cfg->max_sessions))
            return "max_sessions must be 1..1024";
    } else if (strcmp(key, "des3") == 0) {
        if (!parse_bool(val, &b))
            return "des3 must be yes or no";
        cfg->des3_enabled = b;
    } else if (strcmp(key, "key_separation") == 0) {
        if (!parse_bool(val, &b))
            return "key_separation must be on or off";
        cfg->key_separation = b;
    } else if (strcmp(key, "aead_max_buffer") == 0) {
        if (!parse_range(val, 1024, 1024UL * 1024UL * 1024UL,
                         &cfg->aead_max_buffer))
            return "aead_max_buffer must be 1024..1073741824 bytes";
    } else if (strcmp(key, "gcm_zero_iv") == 0) {
        if (strcmp(val, "generate") == 0)
            cfg->gcm_zero_iv_generate = true;
        else if (strcmp(val, "use") == 0)
            cfg->gcm_zero_iv_generate = false;
        else
            return "gcm_zero_iv must be generate or use";
    } else if (strcmp(key, "public_objects") == 0) {
        if (strcmp(val, "visible") == 0)
            cfg->public_objects_visible = true;
        else if (strcmp(val, "hidden") == 0)
            cfg->public_objects_visible = false;
        else
            return "public_objects must be visible or hidden";
    } else if (strcmp(key, "listen") == 0) {
        return add_endpoints(val, cfg->listen, &cfg->nlisten);
    } else if (strcmp(key, "servers") == 0) {
        return add_endpoints(val, cfg->servers, &cfg->nservers);
    } else if (strcmp(key, "allowed_uids") == 0) {
        return add_ids(val, false, cfg->allowed_uids, &cfg->nallowed_uids);
    } else if (strcmp(key, "allowed_groups") == 0) {
        return add_ids(val, true, cfg->allowed_groups, &cfg->nallowed_groups);
    } else if (strcmp(key, "max_connections") == 0) {
        if (!parse_range(val, 1, 65536, &cfg->max_connections))
            return "max_connections must be 1..65536";
    } else if (strcmp(key, "max_sessions_per_connection") == 0) {
        if (!parse_range(val, 1, 1024, &cfg->max_sessions_per_connection))
            return "max_sessions_per_connection must be 1..1024";
    } else if (strcmp(key, "max_frame") == 0) {
        if (!parse_range(val, CONFIG_MIN_MAX_FRAME, 256UL * 1024UL * 1024UL,
                         &cfg->max_frame))
            return "max_frame must be 65536..268435456 bytes";
    } else if (strcmp(key, "io_timeout") == 0) {
        if (!parse_range(val, 0, CONFIG_MAX_IO_TIMEOUT, &cfg->io_timeout))
            return "io_timeout must be 0..3600 seconds";
    } else if (strcmp(key, "server_spread") == 0) {
        if (strcmp(val, "application") == 0)
            cfg->spread_sessions = false;
        else if (strcmp(val, "sessions") == 0)
            cfg->spread_sessions = true;
        else
            return "server_spread must be application or sessions";
    } else if (strcmp(key, "call_timeout") == 0) {
        if (!parse_range(val, 0, CONFIG_MAX_CALL_TIMEOUT, &cfg->call_timeout))
            return "call_timeout must be 0..86400 seconds (0: no limit)";
    } else if (strcmp(key, "user") == 0) {
        if (!copy_str(cfg->run_as_user, sizeof(cfg->run_as_user), val) ||
            getpwnam(val) == NULL)
            return "user must name an existing account";
    } else if (strcmp(key, "tls_cert") == 0 || strcmp(key, "tls_key") == 0 ||
               strcmp(key, "tls_ca") == 0) {
        char *dst = key[4] == 'c' && key[5] == 'e' ? cfg->tls_cert
                    : key[4] == 'k'                ? cfg->tls_key
                                                   : cfg->tls_ca;
        if (*val != '/')
            return "must be an absolute path";
        if (!copy_str(dst, PATH_MAX, val))
            return "path too long";
    } else if (strncmp(key, "cluster_", 8) == 0) {
        return parse_cluster(cfg, key, val);
    } else {
        return "unknown key";
    }
    return NULL;
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s &&
           (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

bool config_load_file(struct config *cfg, const char *path, char *err,
                      size_t errlen)
{
    char line[CONFIG_LINE_MAX];
    unsigned lineno = 0;
    bool ok = false;
    FILE *fp = fopen(path, "re");

    if (fp == NULL) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return false;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *s, *eq, *key, *val;
        const char *why;

        lineno++;
        if (strchr(line, '\n') == NULL && !feof(fp)) {
            set_err(err, errlen, "%s:%u: line too long", path, lineno);
            goto out;
        }
        s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        eq = strchr(s, '=');
        if (eq == NULL) {
            set_err(err, errlen, "%s:%u: expected 'key = value'", path, lineno);
            goto out;
        }
        *eq = '\0';
        key = trim(s);
        val = trim(eq + 1);
        why = config_apply(cfg, key, val);
        if (why != NULL) {
            set_err(err, errlen, "%s:%u: %s: %s", path, lineno, key, why);
            goto out;
        }
    }
    if (ferror(fp)) {
        set_err(err, errlen, "%s: read error", path);
        goto out;
    }
    copy_str(cfg->path, sizeof(cfg->path), path);
    ok = true;
out:
    fclose(fp);
    return ok;
}

/*
 * etc/nimbus/nimbus.conf of the prefix the module is installed in, found
 * from the module's own path (<prefix>/lib/pkcs11/ or
 * <prefix>/lib/<multiarch>/pkcs11/): an installed tree works where no
 * environment reaches, such as nginx workers, even when it was moved.
 */
static bool config_beside_module(char *out, size_t outlen)
{
    static const char *const ups[] = {"/../..", "/../../.."};
    char dir[PATH_MAX];
    Dl_info info;
    FILE *fp;

    if (dladdr((void *)&config_defaults, &info) == 0 ||
        info.dli_fname == NULL || info.dli_fname[0] != '/' ||
        strlen(info.dli_fname) >= sizeof(dir))
        return false;
    memcpy(dir, info.dli_fname, strlen(info.dli_fname) + 1);
    dirname(dir);
    for (size_t i = 0; i < sizeof(ups) / sizeof(ups[0]); i++) {
        if (snprintf(out, outlen, "%s%s/etc/nimbus/nimbus.conf", dir, ups[i]) >=
            (int)outlen)
            continue;
        if ((fp = fopen(out, "re")) != NULL) {
            fclose(fp);
            return true;
        }
    }
    return false;
}

bool config_load(struct config *cfg, char *err, size_t errlen)
{
    char path[PATH_MAX];
    const char *env = getenv("NIMBUS_CONF");
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    FILE *fp;

    config_defaults(cfg);
    if (env != NULL && *env != '\0')
        return config_load_file(cfg, env, err, errlen);

    path[0] = '\0';
    if (xdg != NULL && *xdg == '/')
        snprintf(path, sizeof(path), "%s/nimbus/nimbus.conf", xdg);
    else if (home != NULL && *home != '\0')
        snprintf(path, sizeof(path), "%s/.config/nimbus/nimbus.conf", home);
    if (path[0] != '\0' && (fp = fopen(path, "re")) != NULL) {
        fclose(fp);
        return config_load_file(cfg, path, err, errlen);
    }
    snprintf(path, sizeof(path), "%s/nimbus/nimbus.conf", SYSCONFDIR);
    if ((fp = fopen(path, "re")) != NULL) {
        fclose(fp);
        return config_load_file(cfg, path, err, errlen);
    }
    if (config_beside_module(path, sizeof(path)))
        return config_load_file(cfg, path, err, errlen);
    return true; /* no file: the embedded default */
}
