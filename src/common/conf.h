/* conf.h - nimbus.conf: "key = value" lines, '#' comments. */
#ifndef NIMBUS_CONF_H
#define NIMBUS_CONF_H

#include <limits.h>
#include <stdbool.h>

#define CONFIG_LABEL_MAX 32
#define CONFIG_DEFAULT_KDF_ITERATIONS 600000UL /* OWASP 2023, PBKDF2-SHA256 */
#define CONFIG_MIN_KDF_ITERATIONS 1000UL
#define CONFIG_DEFAULT_AEAD_MAX_BUFFER (1024UL * 1024UL) /* 1 MiB */

struct config {
    char path[PATH_MAX];  /* file read, "" when none was found */
    char store[PATH_MAX]; /* store directory */
    char label[CONFIG_LABEL_MAX + 1];
    unsigned long login_failure_limit;
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
};

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
