/*
 * tfa.h - the -2fa forms of loginHSM, createUser and changePswd: one
 * authdata round (a challenge from every selected server written to the
 * authdata file, the crypto officer signs, the shell reads the file back).
 */
#ifndef NIMBUS_MGMT_TFA_H
#define NIMBUS_MGMT_TFA_H

#include "mgmt/authdata.h"
#include "mgmt/mgmt.h"

struct mgmt_tfa {
    struct mgmt_authdata ad;
    /* the HsmId written for each server, by server id */
    char ids[MGMT_SERVERS_MAX][MGMT_AUTHDATA_ID_MAX + 1];
};

/*
 * The round for user name of kind. where is a directory (the file is
 * where/authdata.json) or the file's path. want_key: the answer must carry
 * a PublicKey (createUser, changePswd). NULL when the round failed (the
 * reason printed: per server, or on stderr); free with mgmt_tfa_free.
 */
struct mgmt_tfa *mgmt_tfa_round(struct mgmt *m, const char *cmd,
                                hsm_login_kind_t kind, const char *name,
                                const char *where, bool want_key);

/* The signed entry of server sv, or NULL (said, as cmd's failure on sv). */
const struct mgmt_authdata_entry *mgmt_tfa_entry(const struct mgmt_tfa *t,
                                                 const struct mgmt_server *sv,
                                                 const char *cmd);

void mgmt_tfa_free(struct mgmt_tfa *t);

#endif
