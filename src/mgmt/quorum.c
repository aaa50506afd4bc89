/*
 * quorum.c - nimbus-mgmt's quorum (M of N) commands, as the cloud HSM's
 * management utility has them: registerQuorumPubKey, setMValue,
 * getMValue, getToken, approveToken, listTokens, delToken.
 *
 * The shell only carries files to the HSM and prints what it answers:
 * every signature is checked, every permission decided, by the core
 * (hsm.h's hsm_quorum_*). A guarded command refused for want of a quorum
 * prints the cloud HSM's RET_MXN_AUTH_FAILED (mgmt_fail).
 *
 * Tokens are per HSM: getToken and approveToken act on one server (server
 * mode chooses it when there are several), since each HSM issues and
 * checks its own token bytes.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "mgmt/mgmt.h"

/* An approval file: its lines and the paths it names are short. */
#define APPROVAL_FILE_MAX (64 * 1024)
#define APPROVAL_LINE_MAX 4096

static int usage_of(const char *name)
{
    bool ambiguous;

    return mgmt_usage(mgmt_cmd_find(name, &ambiguous));
}

static const char *service_name(unsigned long service)
{
    switch (service) {
    case HSM_QUORUM_SVC_USER_MGMT:
        return "USER_MGMT";
    case HSM_QUORUM_SVC_MISC_CO:
        return "MISC_CO";
    default:
        return "?";
    }
}

/* A service number as the shell takes it: 3 or 4 (the core decides what
 * each means; other numbers are refused here with the usage). */
static bool parse_service(const char *s, unsigned *service)
{
    unsigned long v;

    if (!util_parse_ulong(s, &v) ||
        (v != HSM_QUORUM_SVC_USER_MGMT && v != HSM_QUORUM_SVC_MISC_CO))
        return false;
    *service = (unsigned)v;
    return true;
}

/*
 * Reads a whole file of at most max bytes into a malloc'd buffer. A
 * missing, unreadable, empty or longer file: false, and why on stderr.
 */
static bool read_file(const char *what, const char *path, size_t max,
                      uint8_t **out, size_t *len)
{
    FILE *fp;
    uint8_t *buf;
    size_t n;

    *out = NULL;
    *len = 0;
    fflush(stdout);
    fp = fopen(path, "rbe");
    if (fp == NULL) {
        fprintf(stderr, "%s %s: %s\n", what, path, strerror(errno));
        return false;
    }
    buf = malloc(max + 1);
    if (buf == NULL) {
        fclose(fp);
        fprintf(stderr, "out of memory\n");
        return false;
    }
    /* one byte more than allowed tells a file that is too long */
    n = fread(buf, 1, max + 1, fp);
    if (ferror(fp)) {
        fprintf(stderr, "%s %s: read error\n", what, path);
        n = 0;
    } else if (n == 0) {
        fprintf(stderr, "%s %s: empty\n", what, path);
    } else if (n > max) {
        fprintf(stderr, "%s %s: longer than %zu bytes\n", what, path, max);
        n = 0;
    }
    fclose(fp);
    if (n == 0) {
        free(buf);
        return false;
    }
    *out = buf;
    *len = n;
    return true;
}

/* Whether exactly one server is selected; else says so and false. */
static bool one_server(struct mgmt *m, const char *cmd)
{
    struct mgmt_server *sv = mgmt_server_first(m);

    if (sv != NULL && mgmt_server_next(m, sv) == NULL)
        return true;
    fflush(stdout);
    fprintf(stderr,
            "%s: each HSM issues its own tokens: choose one with "
            "\"server <id>\" first\n",
            cmd);
    return false;
}

/* ------------------------------------------------ registerQuorumPubKey */

int mgmt_cmd_register_quorum_pubkey(struct mgmt *m, int argc, char **argv)
{
    uint8_t *token = NULL, *sig = NULL, *pub = NULL;
    size_t token_len = 0, sig_len = 0, pub_len = 0;
    enum mgmt_answer a;
    int ret = CMD_FAIL;

    (void)argc;
    if (strcasecmp(argv[1], "CO") != 0 ||
        !util_user_name_valid(argv[2], strlen(argv[2])))
        return usage_of("registerQuorumPubKey");
    if (!read_file("registration token", argv[3], HSM_QUORUM_REG_TOKEN_MAX,
                   &token, &token_len) ||
        !read_file("signed registration token", argv[4], HSM_QUORUM_SIG_MAX,
                   &sig, &sig_len) ||
        !read_file("public key", argv[5], HSM_QUORUM_PUBKEY_MAX, &pub,
                   &pub_len))
        goto out;
    a = mgmt_confirm(m);
    if (a != MGMT_YES) {
        ret = a == MGMT_NO_ANSWER ? CMD_FAIL : CMD_OK;
        goto out;
    }
    ret = CMD_OK;
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        CK_RV rv = backend_quorum_register_key(
            sv->conn, argv[2], token, token_len, sig, sig_len, pub, pub_len);

        mgmt_report(sv, "registerQuorumPubKey", rv, &ret);
    }
out:
    free(token);
    free(sig);
    free(pub);
    return ret;
}

/* ------------------------------------------------- setMValue, getMValue */

int mgmt_cmd_set_m_value(struct mgmt *m, int argc, char **argv)
{
    unsigned service;
    unsigned long mv;
    int ret = CMD_OK;

    (void)argc;
    if (!parse_service(argv[1], &service) || !util_parse_ulong(argv[2], &mv) ||
        mv < 1 || mv > HSM_QUORUM_M_MAX)
        return usage_of("setMValue");
    switch (mgmt_confirm(m)) {
    case MGMT_YES:
        break;
    case MGMT_NO:
        return CMD_OK;
    case MGMT_NO_ANSWER:
        return CMD_FAIL;
    }
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        CK_RV rv = backend_quorum_set_m(sv->conn, service, (unsigned)mv);
        unsigned other = 0;

        if (mgmt_report(sv, "setMValue", rv, &ret) ||
            rv != CKR_FUNCTION_REJECTED)
            continue;
        /* The core also refuses a service 3 above 1 while service 4 is 1
         * (one CO could lower it alone): say which order works. */
        if (service == HSM_QUORUM_SVC_USER_MGMT && mv > 1 &&
            backend_quorum_get_m(sv->conn, HSM_QUORUM_SVC_MISC_CO, &other) ==
                CKR_OK &&
            other == 1)
            printf("setMValue: service 3 above 1 needs service 4 above 1: "
                   "setMValue 4 <m> first\n");
        if (service == HSM_QUORUM_SVC_MISC_CO && mv == 1 &&
            backend_quorum_get_m(sv->conn, HSM_QUORUM_SVC_USER_MGMT, &other) ==
                CKR_OK &&
            other > 1)
            printf("setMValue: service 4 stays above 1 while service 3 is "
                   "above 1: setMValue 3 1 first\n");
    }
    return ret;
}

int mgmt_cmd_get_m_value(struct mgmt *m, int argc, char **argv)
{
    unsigned service;
    int ret = CMD_OK;

    (void)argc;
    if (!parse_service(argv[1], &service))
        return usage_of("getMValue");
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        unsigned mv = 0;
        CK_RV rv = backend_quorum_get_m(sv->conn, service, &mv);

        if (rv != CKR_OK) {
            mgmt_fail(sv, "getMValue", rv);
            ret = CMD_FAIL;
            continue;
        }
        printf("MValue of service %u[%s] on server %d : [%u]\n", service,
               service_name(service), sv->id, mv);
    }
    return ret;
}

/* ------------------------------------------------------------ getToken */

int mgmt_cmd_get_token(struct mgmt *m, int argc, char **argv)
{
    uint8_t token[HSM_QUORUM_TOKEN_BYTES_MAX];
    size_t len = sizeof(token);
    struct mgmt_server *sv;
    unsigned service;
    FILE *fp;
    CK_RV rv;

    (void)argc;
    if (!parse_service(argv[1], &service) ||
        !util_user_name_valid(argv[2], strlen(argv[2])))
        return usage_of("getToken");
    if (!one_server(m, "getToken"))
        return CMD_FAIL;
    sv = mgmt_server_first(m);
    rv = backend_quorum_get_token(sv->conn, service, argv[2], token, &len);
    if (rv == CKR_OK && len > sizeof(token))
        rv = CKR_GENERAL_ERROR; /* a backend that broke the convention */
    if (rv != CKR_OK) {
        mgmt_fail(sv, "getToken", rv);
        return CMD_FAIL;
    }
    fp = mgmt_open_output(argv[3]);
    if (fp == NULL)
        return CMD_FAIL;
    if (fwrite(token, 1, len, fp) != len || fclose(fp) != 0) {
        fflush(stdout);
        fprintf(stderr, "%s: write error\n", argv[3]);
        return CMD_FAIL;
    }
    printf("Token for service %u[%s] of %s written to %s (%zu bytes): "
           "approvers sign it with\n"
           "  openssl dgst -sha256 -sign <private key> -out <signature> %s\n",
           service, service_name(service), argv[2], argv[3], len, argv[3]);
    printf("getToken success on server %d(%s)\n", sv->id, sv->name);
    return CMD_OK;
}

/* ------------------------------------------------------------ approveToken */

/* One approval of an approval file, as read. */
struct approval_in {
    hsm_user_type_t type;
    char name[HSM_USER_NAME_MAX + 1];
    uint8_t *sig;
    size_t sig_len;
};

/* The next non-blank line of *p, trimmed, NUL-terminated in place. */
static char *next_field(char **p)
{
    char *s = *p, *e;

    for (;;) {
        char *nl;

        if (*s == '\0')
            return NULL;
        nl = strchr(s, '\n');
        e = nl != NULL ? nl : s + strlen(s);
        *p = nl != NULL ? nl + 1 : e;
        while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if (e > s) {
            *e = '\0';
            return s;
        }
        s = *p;
    }
}

/*
 * Parses an approval file (the cloud HSM's layout, one field a line: the
 * token file, the number of approvals, then per approval the approver's
 * type, name and signature file) and reads the files it names.
 */
static bool parse_approvals(const char *path, uint8_t **token,
                            size_t *token_len, struct approval_in *ap,
                            size_t *n)
{
    uint8_t *text = NULL;
    size_t len = 0, count = 0;
    char *p, *f;
    unsigned long v;
    bool ok = false;

    *token = NULL;
    *token_len = 0;
    *n = 0;
    if (!read_file("approval file", path, APPROVAL_FILE_MAX, &text, &len))
        return false;
    if (memchr(text, '\0', len) != NULL) {
        fprintf(stderr, "approval file %s: not text\n", path);
        goto out;
    }
    text[len] = '\0'; /* read_file leaves room for one byte more */
    p = (char *)text;
    if ((f = next_field(&p)) == NULL) {
        fprintf(stderr, "approval file %s: no token file\n", path);
        goto out;
    }
    if (!read_file("token", f, HSM_QUORUM_TOKEN_BYTES_MAX, token, token_len))
        goto out;
    if ((f = next_field(&p)) == NULL || !util_parse_ulong(f, &v) || v == 0 ||
        v > HSM_QUORUM_M_MAX) {
        fprintf(stderr,
                "approval file %s: the second line is the number of "
                "approvals (1 to %d)\n",
                path, HSM_QUORUM_M_MAX);
        goto out;
    }
    count = v;
    for (size_t i = 0; i < count; i++) {
        const char *type = next_field(&p), *name, *sig;

        name = type != NULL ? next_field(&p) : NULL;
        sig = name != NULL ? next_field(&p) : NULL;
        if (sig == NULL) {
            fprintf(stderr,
                    "approval file %s: approval %zu of %zu: the approver "
                    "type, name and signature file (one a line)\n",
                    path, i + 1, count);
            goto out;
        }
        if (strcasecmp(type, "CO") == 0)
            ap[i].type = HSM_USER_CO;
        else if (strcasecmp(type, "CU") == 0)
            ap[i].type = HSM_USER_CU;
        else {
            fprintf(stderr, "approval file %s: approval %zu: type %s (CO)\n",
                    path, i + 1, type);
            goto out;
        }
        if (!util_user_name_valid(name, strlen(name))) {
            fprintf(stderr,
                    "approval file %s: approval %zu: %s is not a user "
                    "name\n",
                    path, i + 1, name);
            goto out;
        }
        snprintf(ap[i].name, sizeof(ap[i].name), "%s", name);
        if (!read_file("signature", sig, HSM_QUORUM_SIG_MAX, &ap[i].sig,
                       &ap[i].sig_len))
            goto out;
        *n = i + 1;
    }
    if (next_field(&p) != NULL) {
        fprintf(stderr,
                "approval file %s: more lines than %zu approvals take\n", path,
                count);
        goto out;
    }
    ok = true;
out:
    free(text);
    if (!ok) {
        for (size_t i = 0; i < *n; i++)
            free(ap[i].sig);
        *n = 0;
        free(*token);
        *token = NULL;
    }
    return ok;
}

static const char *approval_verdict(CK_RV rv)
{
    switch (rv) {
    case CKR_OK:
        return "accepted";
    case CKR_SIGNATURE_INVALID:
        return "rejected: the signature does not verify under the "
               "approver's registered key";
    case CKR_SIGNATURE_LEN_RANGE:
        return "rejected: no signature, or one of the wrong length";
    case CKR_USER_TYPE_INVALID:
    case CKR_ARGUMENTS_BAD:
        return "rejected: no such CO, or it has no registered quorum key";
    case CKR_FUNCTION_REJECTED:
        return "rejected: that approver already approved this token";
    default:
        return "rejected";
    }
}

int mgmt_cmd_approve_token(struct mgmt *m, int argc, char **argv)
{
    struct approval_in ap[HSM_QUORUM_M_MAX];
    hsm_quorum_approval_t a[HSM_QUORUM_M_MAX];
    CK_RV results[HSM_QUORUM_M_MAX];
    struct mgmt_server *sv;
    uint8_t *token = NULL;
    size_t token_len = 0, n = 0, accepted = 0;
    char buf[16];
    CK_RV rv;
    int ret = CMD_OK;

    (void)argc;
    if (!one_server(m, "approveToken"))
        return CMD_FAIL;
    if (!parse_approvals(argv[1], &token, &token_len, ap, &n))
        return CMD_FAIL;
    memset(a, 0, sizeof(a));
    for (size_t i = 0; i < n; i++) {
        a[i].type = ap[i].type;
        memcpy(a[i].name, ap[i].name, sizeof(a[i].name));
        a[i].sig = ap[i].sig;
        a[i].sig_len = ap[i].sig_len;
        results[i] = CKR_GENERAL_ERROR;
    }
    sv = mgmt_server_first(m);
    rv = backend_quorum_approve(sv->conn, token, token_len, a, n, results);
    if (rv != CKR_OK) {
        mgmt_fail(sv, "approveToken", rv);
        ret = CMD_FAIL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        printf("Approval %zu by %s(%s): %s (%s)\n", i + 1, ap[i].name,
               ap[i].type == HSM_USER_CO ? "CO" : "CU",
               approval_verdict(results[i]),
               mgmt_rv_name(results[i], buf, sizeof(buf)));
        if (results[i] == CKR_OK)
            accepted++;
        else
            ret = CMD_FAIL; /* a script learns that one did not count */
    }
    printf("%zu of %zu approvals accepted\n", accepted, n);
    printf("approveToken %s on server %d(%s)\n",
           ret == CMD_OK ? "success" : "failed", sv->id, sv->name);
out:
    for (size_t i = 0; i < n; i++)
        free(ap[i].sig);
    free(token);
    return ret;
}

/* ------------------------------------------------- listTokens, delToken */

int mgmt_cmd_list_tokens(struct mgmt *m, int argc, char **argv)
{
    int ret = CMD_OK;

    (void)argc;
    (void)argv;
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        hsm_quorum_token_info_t *t = NULL;
        size_t n = 0;
        CK_RV rv = backend_quorum_list_tokens(sv->conn, &t, &n);

        if (rv != CKR_OK) {
            mgmt_fail(sv, "listTokens", rv);
            ret = CMD_FAIL;
            continue;
        }
        printf("Tokens on server %d(%s):\n", sv->id, sv->name);
        printf("Number of tokens found:%zu\n\n", n);
        printf("  Token Id  Service       User                            "
               "Seconds Left  Needed  Given  Approvers\n");
        for (size_t i = 0; i < n; i++) {
            char svc[24];

            snprintf(svc, sizeof(svc), "%u[%s]", t[i].service,
                     service_name(t[i].service));
            printf("%10" PRIu32 "  %-13s %-32s%12" PRIu64 "%8u%7u  ", t[i].id,
                   svc, t[i].user, t[i].seconds_left, t[i].needed, t[i].given);
            for (size_t j = 0; j < t[i].napprovers && j < HSM_QUORUM_M_MAX; j++)
                printf("%s%s", j > 0 ? "," : "", t[i].approvers[j]);
            printf("%s\n", t[i].napprovers == 0 ? "-" : "");
        }
        free(t);
    }
    return ret;
}

int mgmt_cmd_del_token(struct mgmt *m, int argc, char **argv)
{
    unsigned long id;
    int ret = CMD_OK;

    (void)argc;
    if (!util_parse_ulong(argv[1], &id) || id > UINT32_MAX)
        return usage_of("delToken");
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        CK_RV rv = backend_quorum_del_token(sv->conn, (uint32_t)id);

        mgmt_report(sv, "delToken", rv, &ret);
    }
    return ret;
}
