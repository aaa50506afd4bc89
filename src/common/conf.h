/* conf.h - nimbus.conf: "key = value" lines, '#' comments. */
#ifndef NIMBUS_CONF_H
#define NIMBUS_CONF_H

#include <limits.h>
#include <stdbool.h>

#define CONFIG_LABEL_MAX 32
#define CONFIG_DEFAULT_KDF_ITERATIONS 600000UL /* OWASP 2023, PBKDF2-SHA256 */
#define CONFIG_MIN_KDF_ITERATIONS 1000UL
#define CONFIG_DEFAULT_AEAD_MAX_BUFFER (1024UL * 1024UL) /* 1 MiB */

/* nimbusd and remote mode (ARCHITECTURE section 10). */
#define CONFIG_ENDPOINTS_MAX 8 /* listen / servers lines */
#define CONFIG_IDS_MAX 32      /* allowed_uids / allowed_groups entries */
#define CONFIG_HOST_MAX 255
#define CONFIG_UNIX_PATH_MAX 107 /* sun_path less its NUL */
#define CONFIG_DEFAULT_MAX_CONNECTIONS 1024UL
#define CONFIG_DEFAULT_MAX_FRAME (4UL * 1024UL * 1024UL) /* 4 MiB */
#define CONFIG_MIN_MAX_FRAME (64UL * 1024UL)
#define CONFIG_DEFAULT_IO_TIMEOUT 10UL /* seconds */
#define CONFIG_MAX_IO_TIMEOUT 3600UL
/* Seconds a remote call may wait for nimbusd's reply ("call_timeout"):
 * far above the slowest legitimate call on a slow machine (a
 * 600,000-iteration login, RSA-4096 generation, a 4 MiB frame), so that
 * only a stopped, wedged or vanished server reaches it. */
#define CONFIG_DEFAULT_CALL_TIMEOUT 120UL
#define CONFIG_MAX_CALL_TIMEOUT 86400UL
#define CONFIG_CLUSTER_ID_MAX 64
#define CONFIG_CLUSTER_ADDRESS_MAX 255 /* "host:port" */
#define CONFIG_CLUSTER_CLONES_MAX 8    /* ids in cluster_clones */

/* One "listen" (nimbusd) or "servers" (client) endpoint:
 * "unix:/abs/path" or "tls:HOST:PORT" (HOST may be [v6]). */
enum config_ep_kind {
    CONFIG_EP_UNIX = 1,
    CONFIG_EP_TLS,
};

struct config_endpoint {
    enum config_ep_kind kind;
    char path[CONFIG_UNIX_PATH_MAX + 1]; /* unix */
    char host[CONFIG_HOST_MAX + 1];      /* tls, without brackets */
    unsigned port;                       /* tls, 1..65535 */
};

#define CONFIG_TICKET_LIFETIME_MAX 3600

struct config {
    char path[PATH_MAX];  /* file read, "" when none was found */
    char store[PATH_MAX]; /* store directory */
    char label[CONFIG_LABEL_MAX + 1];
    unsigned long login_failure_limit;
    /* Seconds a quorum token lives ("quorum_token_lifetime", default 600
     * as the cloud HSM's 10 minutes). */
    unsigned long quorum_token_lifetime;
    /* Seconds a login ticket lives ("login_ticket_lifetime", default and
     * most CONFIG_TICKET_LIFETIME_MAX; 0: no tickets are issued or
     * redeemed). */
    unsigned long login_ticket_lifetime;
    char default_user[32];
    unsigned long kdf_iterations;
    int log_level; /* enum log_level */
    char log_file[PATH_MAX];
    unsigned long max_sessions;
    bool des3_enabled;
    /* Key separation: a key is never both a wrapping key and a decryption
     * key (CKA_WRAP with CKA_DECRYPT, CKA_UNWRAP with CKA_ENCRYPT).
     * "key_separation = off" restores the permissive behaviour. */
    bool key_separation;
    /* Most bytes an AEAD decryption (GCM, CCM, ChaCha20-Poly1305) buffers
     * per operation before its tag is checked ("aead_max_buffer"). */
    unsigned long aead_max_buffer;
    /* AES-GCM with an all-zero or absent IV: true (default, "generate"):
     * the token makes the IV; false ("use"): an all-zero IV is used as
     * given (an absent one is still made: there is nothing to use). */
    bool gcm_zero_iv_generate;
    /* A public session finds and reads token objects whose CKA_PRIVATE is
     * false: true (default, "visible"); false ("hidden"): nothing. */
    bool public_objects_visible;

    /* ---- nimbusd (section 10) ---- */
    /* "listen = unix:PATH | tls:HOST:PORT", repeatable. */
    struct config_endpoint listen[CONFIG_ENDPOINTS_MAX];
    size_t nlisten;
    /* "allowed_uids = 1000, alice" / "allowed_groups = nimbus, 27": who may
     * connect over a unix socket (SO_PEERCRED). Names are resolved when
     * the file is read. Both empty: only nimbusd's own uid and root. */
    unsigned long allowed_uids[CONFIG_IDS_MAX];
    size_t nallowed_uids;
    unsigned long allowed_groups[CONFIG_IDS_MAX];
    size_t nallowed_groups;
    unsigned long max_connections;             /* accepted sockets at once */
    unsigned long max_sessions_per_connection; /* default: max_sessions */
    unsigned long max_frame;                   /* bytes of one wire frame */
    /* "io_timeout": seconds a channel's handshake (its first frame) may
     * take after accept, and a frame the rest of its bytes once its first
     * arrived, and a reply its write; 0: no bound. Idle time between
     * frames is never bounded. */
    unsigned long io_timeout;
    char run_as_user[32]; /* "user": drop root to this account ("" stay) */

    /* ---- both sides of TLS ---- */
    /* nimbusd: its certificate and key, and the CA client certificates
     * must chain to. Client: its certificate and key, and the CA the
     * server's certificate must chain to. */
    char tls_cert[PATH_MAX];
    char tls_key[PATH_MAX];
    char tls_ca[PATH_MAX];

    /* ---- client side ---- */
    /* "servers = unix:PATH" or "servers = tls:HOST:PORT[, ...]": the
     * module and nimbus-mgmt talk to nimbusd; none: embedded. */
    struct config_endpoint servers[CONFIG_ENDPOINTS_MAX];
    size_t nservers;
    /* "call_timeout = SECONDS": a call without nimbusd's reply by then
     * answers CKR_DEVICE_ERROR and its connection is dropped (0: wait
     * for ever). */
    unsigned long call_timeout;
    /* "server_spread = application | sessions" (several servers): every
     * session of the application on one server (its session objects seen
     * by all its sessions, as PKCS#11 wants), or each new session on the
     * next server. */
    bool spread_sessions;

    /* ---- nimbusd in a cluster (section 11); cluster_node_id 0: alone ---- */
    char cluster_id[CONFIG_CLUSTER_ID_MAX + 1]; /* [0-9A-Za-z-], in certs */
    unsigned long cluster_node_id;              /* 1.. */
    char cluster_listen[CONFIG_CLUSTER_ADDRESS_MAX + 1]; /* "host:port" */
    char cluster_dir[PATH_MAX];                 /* "": STORE/raft */
    char cluster_ca[PATH_MAX], cluster_cert[PATH_MAX], cluster_key[PATH_MAX];
    /* "cluster_bootstrap = yes": on first start, a new cluster of this one
     * node, whose PRECO it makes. Otherwise the node waits to be added. */
    bool cluster_bootstrap;
    /* "cluster_join = host:port": a member the node fetches the cluster
     * masking key from when it has none (a node that joins). */
    char cluster_join[CONFIG_CLUSTER_ADDRESS_MAX + 1];
    /* "cluster_clones = id[, id...]": the clusters (ids) whose nodes may
     * fetch the cluster key from this node to make a clone; the node
     * operator's decision (none by default). */
    char cluster_clones[CONFIG_CLUSTER_CLONES_MAX][CONFIG_CLUSTER_ID_MAX + 1];
    size_t ncluster_clones;
    /* "cluster_clone_of = id@host:port": with cluster_bootstrap, the first
     * node of a new cluster takes the cluster key of cluster id from its
     * member at host:port instead of making one (a clone). */
    char cluster_clone_of[CONFIG_CLUSTER_ID_MAX + 1];
    char cluster_clone_of_addr[CONFIG_CLUSTER_ADDRESS_MAX + 1];
    unsigned long cluster_election_timeout; /* ms; 0: the engine's */
    unsigned long cluster_heartbeat;        /* ms; 0: the engine's */
};

/* "unix:/path" or "tls:host:port" into ep; a reason on error. */
const char *config_parse_endpoint(const char *val, struct config_endpoint *ep);
/* ep back into text ("unix:/path", "tls:host:port"). */
void config_format_endpoint(const struct config_endpoint *ep, char *out,
                            size_t outlen);

/*
 * A cluster node's address: "host:port" or "[v6]:port" as a tls: endpoint
 * has it (port 1..65535), at most 255 bytes of printable ASCII without
 * spaces. NULL when valid, else the reason.
 */
const char *config_check_node_address(const char *addr);

/*
 * Fill cfg: defaults, then the file named by $NIMBUS_CONF, else
 * $XDG_CONFIG_HOME/nimbus/nimbus.conf (or ~/.config/...), else
 * SYSCONFDIR/nimbus/nimbus.conf, else etc/nimbus/nimbus.conf of the
 * prefix the module lives in; a missing default file is not an error,
 * a missing $NIMBUS_CONF file is. On error, writes a one-line reason
 * into err and returns false.
 */
bool config_load(struct config *cfg, char *err, size_t errlen);
/* Parse one file over what cfg holds already. */
bool config_load_file(struct config *cfg, const char *path, char *err,
                      size_t errlen);
void config_defaults(struct config *cfg);

#endif
