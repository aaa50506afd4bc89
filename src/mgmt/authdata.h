/*
 * authdata.h - the two-factor authentication file of nimbus-mgmt
 * (createUser/changePswd/loginHSM ... -2fa <dir>): <dir>/authdata.json.
 *
 * The shell writes it with one digest per server and empty signatures;
 * the crypto officer fills in each Signature (base64 of a SHA256-RSA-PKCS
 * signature over the decoded digest bytes) and, for createUser and
 * changePswd, the PublicKey (PEM, its line breaks written \n); the shell
 * reads it back. The format is the cloud HSM's:
 *
 *   {
 *       "Version": "1.0",
 *       "PublicKey": "-----BEGIN PUBLIC KEY-----\n...",
 *       "Data": [
 *           {"HsmId": "...", "Digest": "<base64>", "Signature": "<base64>"}
 *       ]
 *   }
 *
 * The reader accepts that and nothing else: one object with exactly those
 * three members (each once, any order), Version "1.0", Data an array of 1
 * to MGMT_AUTHDATA_ENTRIES_MAX objects with exactly those three members,
 * JSON whitespace between tokens, the JSON string escapes (\u only below
 * 0x80 and not 0), no raw control character or byte above 0x7f inside a
 * string, nothing after the closing brace but whitespace, the whole file
 * at most MGMT_AUTHDATA_MAX bytes; Digest strict base64 of exactly
 * HSM_DIGEST_LEN bytes, Signature strict base64 of at most HSM_TFA_SIG_MAX
 * bytes (empty: not signed), PublicKey at most HSM_QUORUM_PUBKEY_MAX
 * characters, HsmId 1 to MGMT_AUTHDATA_ID_MAX printable characters.
 */
#ifndef NIMBUS_MGMT_AUTHDATA_H
#define NIMBUS_MGMT_AUTHDATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hsm/hsm.h"

#define MGMT_AUTHDATA_FILE "authdata.json"
#define MGMT_AUTHDATA_MAX (64 * 1024)
#define MGMT_AUTHDATA_ENTRIES_MAX 16
#define MGMT_AUTHDATA_ID_MAX 64
#define MGMT_AUTHDATA_VERSION "1.0"

struct mgmt_authdata_entry {
    char hsm_id[MGMT_AUTHDATA_ID_MAX + 1];
    uint8_t digest[HSM_DIGEST_LEN];
    uint8_t sig[HSM_TFA_SIG_MAX];
    size_t sig_len; /* 0: not signed */
};

struct mgmt_authdata {
    char pubkey[HSM_QUORUM_PUBKEY_MAX + 1]; /* NUL-terminated */
    size_t pubkey_len;                      /* 0: none given */
    struct mgmt_authdata_entry data[MGMT_AUTHDATA_ENTRIES_MAX];
    size_t n;
};

/* Writes ad (signatures and public key left empty) to fp. 0 or -1. */
int mgmt_authdata_write(FILE *fp, const struct mgmt_authdata *ad);

/*
 * Parses buf[0..len-1] into *ad (cleared first). false, with a reason in
 * err ("line N: ..."), on anything the format above does not allow.
 */
bool mgmt_authdata_parse(const char *buf, size_t len, struct mgmt_authdata *ad,
                         char *err, size_t errlen);

/* The entry of hsm_id, or NULL. */
const struct mgmt_authdata_entry *
mgmt_authdata_find(const struct mgmt_authdata *ad, const char *hsm_id);

#endif
