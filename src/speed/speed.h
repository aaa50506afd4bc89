/*
 * speed.h - nimbus-speed: the operation table, the backend interface that
 * the PKCS#11 side (p11ops.c) and the OpenSSL reference (sslops.c) share,
 * and the OpenSSL helpers that check a module's results.
 */
#ifndef NIMBUS_SPEED_H
#define NIMBUS_SPEED_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pkcs11/pkcs11.h"

#define SP_MAX_THREADS 64
#define SP_MAX_BACKENDS 6 /* embedded, unix, tls, p11-kit, OpenSSL, spare */
#define SP_MSG_LEN 64     /* message signed by the sign/verify operations */
#define SP_KEY_LEN 32     /* AES-256 and HMAC key bytes */
#define SP_GCM_IV_LEN 12  /* GCM nonce bytes */
#define SP_GCM_TAG_LEN 16 /* GCM tag bytes */
#define SP_AES_BLOCK 16
#define SP_MAX_SIG 512 /* RSA-4096 */
#define SP_MAX_DATA (1024 * 1024)
#define SP_FIND_APP "nimbus-speed-find"

/* What prepare() says about an operation on a backend. */
enum sp_status {
    SP_OK = 0,
    SP_UNSUPPORTED, /* the module lacks the mechanism: skipped */
    SP_NOREF,       /* no such operation on this backend (OpenSSL login) */
    SP_FAIL         /* an error or a wrong result: the run aborts */
};

enum sp_kind {
    SP_SIGN,
    SP_VERIFY,
    SP_ENCRYPT,
    SP_MAC,
    SP_DIGEST,
    SP_RANDOM,
    SP_KEYGEN_AES,
    SP_KEYGEN_AES_TOKEN, /* a token key, kept: a store write */
    SP_KEYGEN_EC,
    SP_DERIVE,
    SP_SESSION,
    SP_FIND,
    SP_OBJECT,
    SP_LOGIN
};

/* The keys an operation uses; each thread of each backend has its own. */
enum sp_key {
    SP_KEY_NONE = 0,
    SP_KEY_RSA2048,
    SP_KEY_RSA3072,
    SP_KEY_P256,
    SP_KEY_P384,
    SP_KEY_ED25519,
    SP_KEY_P256_DH,
    SP_KEY_AES,
    SP_KEY_HMAC,
    SP_KEY_COUNT
};

struct sp_op {
    const char *name;
    enum sp_kind kind;
    enum sp_key key;
    CK_MECHANISM_TYPE mech;
    size_t len;            /* bytes in per operation */
    int data;              /* report MB/s */
    int pss;               /* RSA-PSS rather than PKCS #1 v1.5 */
    const char *md;        /* OpenSSL digest name, NULL for none */
    unsigned long objects; /* find-label-N: N */
    int single_thread;     /* login: one login per application */
    int login_load;        /* another client guesses passwords meanwhile */
};

struct sp_backend;

/* One side of a comparison: a PKCS#11 module or OpenSSL. */
struct sp_backend_ops {
    /* Builds thread idx's state for op, checking one result. */
    enum sp_status (*prepare)(struct sp_backend *be, const struct sp_op *op,
                              int idx, void **state, char *why, size_t why_len);
    /* One operation; 0 on success, else writes why. */
    int (*run)(void *state, char *why, size_t why_len);
    /* Frees what prepare built (keys stay cached per thread). */
    void (*release)(void *state);
    /* After the whole op on every thread (login: log back in). */
    void (*finish)(struct sp_backend *be, const struct sp_op *op);
};

struct sp_backend {
    const char *name; /* "nimbus", "softhsm", "openssl", "unix", ... */
    const char *path; /* module path, NULL for OpenSSL */
    const char *conf; /* $NIMBUS_CONF for its C_Initialize, or NULL */
    pid_t loader;     /* the stopped wrong-password client, or 0 */
    const struct sp_backend_ops *ops;
    void *priv;
};

/* p11ops.c */
struct p11_config {
    const char *path;
    const char *pin;
    const char *so_pin; /* --init, NULL for none */
    long slot;          /* -1: first slot with an initialized token */
    int threads;        /* sessions to keep open: the largest T */
    const char *conf;   /* $NIMBUS_CONF while it initializes, or NULL */
    const char *name;   /* the backend's name, NULL: from C_GetInfo */
};
int p11_open(const struct p11_config *cfg, struct sp_backend *be);
void p11_close(struct sp_backend *be);
enum sp_status p11_make_objects(struct sp_backend *be, unsigned long n,
                                unsigned long *total);
/* --login-load: wrong-password logins on module path until killed. */
int p11_login_loop(const char *path);

/* sslops.c: the reference backend */
int ssl_open(struct sp_backend *be, int threads);
void ssl_close(struct sp_backend *be);

/* sslops.c: checks of a module's results; 0 when right */
int ssl_check_rsa_sig(const uint8_t *n, size_t n_len, const uint8_t *e,
                      size_t e_len, int pss, const uint8_t *msg, size_t msg_len,
                      const uint8_t *sig, size_t sig_len);
int ssl_check_ec_sig(const char *group, const uint8_t *point, size_t pt_len,
                     const char *md, const uint8_t *msg, size_t msg_len,
                     const uint8_t *sig, size_t sig_len);
int ssl_check_ed25519_sig(const uint8_t *pub, size_t pub_len,
                          const uint8_t *msg, size_t msg_len,
                          const uint8_t *sig, size_t sig_len);
int ssl_check_gcm(const uint8_t *key, const uint8_t *iv, const uint8_t *pt,
                  size_t pt_len, const uint8_t *ct, size_t ct_len);
int ssl_check_cbc_pad(const uint8_t *key, const uint8_t *iv, const uint8_t *pt,
                      size_t pt_len, const uint8_t *ct, size_t ct_len);
int ssl_check_hmac(const uint8_t *key, const uint8_t *data, size_t len,
                   const uint8_t *mac, size_t mac_len);
int ssl_check_sha256(const uint8_t *data, size_t len, const uint8_t *md,
                     size_t md_len);
int ssl_check_ec_point(const char *group, const uint8_t *point, size_t pt_len);
/* A fresh P-256 peer: its raw public point, and the secret it shares with
 * the holder of point. */
int ssl_ecdh_peer(uint8_t *peer_pub, size_t *peer_len, const uint8_t *point,
                  size_t pt_len, uint8_t *secret, size_t *secret_len);

/* speed.c */
extern uint8_t sp_aes_key[SP_KEY_LEN];
extern uint8_t sp_hmac_key[SP_KEY_LEN];
void sp_fill(uint8_t *buf, size_t len, unsigned seed);
/* The point of want bytes inside a CKA_EC_POINT value, DER or raw. */
const uint8_t *sp_ec_point(const uint8_t *v, size_t len, size_t want);
/* "CKR_PIN_INCORRECT" or "CKR_0x..." (static or the caller's buf). */
const char *sp_rv_name(CK_RV rv, char *buf, size_t len);

#endif /* NIMBUS_SPEED_H */
