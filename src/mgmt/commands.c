/*
 * commands.c - the commands of nimbus-mgmt (cloudhsm_mgmt_util's set).
 *
 * Output follows the cloud HSM's management utility: one block or line per
 * server, "<cmd> success on server N(name)" where a command has nothing
 * else to show, and on a refusal
 *
 *     <cmd> failed: HSM Error: <reason> (CKR_NAME) on server N(name)
 *
 * where the reason is a sentence and CKR_NAME the core's return value.
 * Wrong arguments print the command's usage on stderr and change nothing.
 * Who may run what is decided by the core (hsm.h and its permission
 * table), never here.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/util.h"
#include "mgmt/mgmt.h"
#include "mgmt/tfa.h"
#include "nimbus/pkcs11-vendor.h"

#define ATTR_ALL 512 /* getAttribute: every attribute */
#define PW_BUF (HSM_PASSWORD_MAX + 1)

/* ------------------------------------------------------------ helpers */

static const struct mgmt_cmd *self(const char *name)
{
    bool ambiguous;

    return mgmt_cmd_find(name, &ambiguous);
}

static int usage_of(const char *name)
{
    return mgmt_usage(self(name));
}

static size_t nselected(struct mgmt *m)
{
    size_t n = 0;

    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv))
        n++;
    return n;
}

/* User type words. CO also accepts PCO (the primary CO). */
static const struct {
    const char *word;
    hsm_user_type_t type;
} type_words[] = {
    {"PRECO", HSM_USER_PRECO}, {"CO", HSM_USER_CO}, {"PCO", HSM_USER_CO},
    {"CU", HSM_USER_CU},       {"AU", HSM_USER_AU},
};

/* The canonical word for a type word (any case), NULL when unknown. */
static const char *parse_type(const char *w, hsm_user_type_t *type)
{
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(type_words); i++) {
        if (strcasecmp(w, type_words[i].word) == 0) {
            *type = type_words[i].type;
            return type_words[i].type == HSM_USER_CO ? "CO"
                                                     : type_words[i].word;
        }
    }
    return NULL;
}

static const char *type_word(const hsm_user_info_t *u)
{
    switch (u->type) {
    case HSM_USER_PRECO:
        return "PRECO";
    case HSM_USER_CO:
        return u->primary ? "PCO" : "CO";
    case HSM_USER_CU:
        return "CU";
    case HSM_USER_AU:
        return "AU";
    case HSM_USER_NONE:
        break;
    }
    return "?";
}

static bool name_ok(const char *name)
{
    return util_user_name_valid(name, strlen(name));
}

/* Looks user name up in the (basic information) user list. */
static CK_RV find_user(struct mgmt_server *sv, const char *name,
                       hsm_user_info_t *out, bool *found)
{
    hsm_user_info_t *users = NULL;
    size_t n = 0;
    CK_RV rv;

    *found = false;
    if ((rv = backend_user_list(sv->conn, &users, &n)) != CKR_OK)
        return rv;
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(users[i].name, name) == 0) {
            *out = users[i];
            *found = true;
            break;
        }
    }
    free(users);
    return CKR_OK;
}

/*
 * The user named, checked to be of the type given: CKR_ARGUMENTS_BAD when
 * there is no such user, CKR_USER_TYPE_INVALID when it has another type.
 */
static CK_RV user_of_type(struct mgmt_server *sv, const char *name,
                          hsm_user_type_t type, hsm_user_info_t *u)
{
    bool found = false;
    CK_RV rv = find_user(sv, name, u, &found);

    if (rv != CKR_OK)
        return rv;
    if (!found)
        return CKR_ARGUMENTS_BAD;
    return u->type == type ? CKR_OK : CKR_USER_TYPE_INVALID;
}

/* Decimal or 0x-hexadecimal. */
static bool parse_number(const char *s, unsigned long *v)
{
    char *end;

    if (strncasecmp(s, "0x", 2) != 0)
        return util_parse_ulong(s, v);
    if (s[2] == '\0' ||
        strspn(s + 2, "0123456789abcdefABCDEF") != strlen(s + 2) ||
        strlen(s + 2) > 2 * sizeof(unsigned long))
        return false;
    *v = strtoul(s + 2, &end, 16);
    return *end == '\0';
}

/* A key handle: a store object id (never a session object's). */
static bool parse_handle(const char *s, hsm_oid_t *oid)
{
    unsigned long v;

    if (!util_parse_ulong(s, &v) || v == 0 || v > INT64_MAX)
        return false;
    *oid = v;
    return true;
}

static bool parse_uid(const char *s, hsm_uid_t *uid)
{
    unsigned long v;

    if (!util_parse_ulong(s, &v) || v == 0 || v > UINT32_MAX)
        return false;
    *uid = (hsm_uid_t)v;
    return true;
}

static bool parse_flag(const char *s, bool *flag)
{
    if (strcmp(s, "0") != 0 && strcmp(s, "1") != 0)
        return false;
    *flag = s[0] == '1';
    return true;
}

static void print_hex(FILE *fp, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(fp, "%02x", p[i]);
}

/*
 * The -2fa tail of a command of nwords words before it: argc == nwords
 * (none: *dir NULL, false), nwords + 2 ("-2fa <dir>"), or, when allow_bare,
 * nwords + 1 ("-2fa" alone: *dir NULL). false with *bad for anything else.
 */
static bool twofa_arg(int argc, char **argv, int nwords, bool allow_bare,
                      const char **dir, bool *bad)
{
    *dir = NULL;
    *bad = false;
    if (argc == nwords)
        return false;
    if (strcmp(argv[nwords], "-2fa") != 0 ||
        (argc != nwords + 2 && !(allow_bare && argc == nwords + 1))) {
        *bad = true;
        return false;
    }
    if (argc == nwords + 2)
        *dir = argv[nwords + 1];
    return true;
}

/* Asks; false (and a failure for no answer) when not to go on. */
static bool confirmed(struct mgmt *m, int *ret)
{
    enum mgmt_answer a = mgmt_confirm(m);

    *ret = a == MGMT_NO_ANSWER ? CMD_FAIL : CMD_OK;
    return a == MGMT_YES;
}

/* ------------------------------------------------------------ attributes */

enum attr_kind { AK_BOOL, AK_ULONG, AK_TEXT, AK_BYTES, AK_ULONGS };

struct attr_row {
    CK_ATTRIBUTE_TYPE type;
    const char *name;
    enum attr_kind kind;
};

/* What getAttribute 512 reads and listAttributes shows, by PKCS#11 id. */
static const struct attr_row attr_rows[] = {
    {CKA_CLASS, "OBJ_ATTR_CLASS", AK_ULONG},
    {CKA_TOKEN, "OBJ_ATTR_TOKEN", AK_BOOL},
    {CKA_PRIVATE, "OBJ_ATTR_PRIVATE", AK_BOOL},
    {CKA_LABEL, "OBJ_ATTR_LABEL", AK_TEXT},
    {CKA_UNIQUE_ID, "OBJ_ATTR_UNIQUE_ID", AK_TEXT},
    {CKA_APPLICATION, "OBJ_ATTR_APPLICATION", AK_TEXT},
    {CKA_VALUE, "OBJ_ATTR_VALUE", AK_BYTES},
    {CKA_TRUSTED, "OBJ_ATTR_TRUSTED", AK_BOOL},
    {CKA_CHECK_VALUE, "OBJ_ATTR_KCV", AK_BYTES},
    {CKA_KEY_TYPE, "OBJ_ATTR_KEY_TYPE", AK_ULONG},
    {CKA_ID, "OBJ_ATTR_ID", AK_BYTES},
    {CKA_SENSITIVE, "OBJ_ATTR_SENSITIVE", AK_BOOL},
    {CKA_ENCRYPT, "OBJ_ATTR_ENCRYPT", AK_BOOL},
    {CKA_DECRYPT, "OBJ_ATTR_DECRYPT", AK_BOOL},
    {CKA_WRAP, "OBJ_ATTR_WRAP", AK_BOOL},
    {CKA_UNWRAP, "OBJ_ATTR_UNWRAP", AK_BOOL},
    {CKA_SIGN, "OBJ_ATTR_SIGN", AK_BOOL},
    {CKA_SIGN_RECOVER, "OBJ_ATTR_SIGN_RECOVER", AK_BOOL},
    {CKA_VERIFY, "OBJ_ATTR_VERIFY", AK_BOOL},
    {CKA_VERIFY_RECOVER, "OBJ_ATTR_VERIFY_RECOVER", AK_BOOL},
    {CKA_DERIVE, "OBJ_ATTR_DERIVE", AK_BOOL},
    {CKA_MODULUS, "OBJ_ATTR_MODULUS", AK_BYTES},
    {CKA_MODULUS_BITS, "OBJ_ATTR_MODULUS_BITS", AK_ULONG},
    {CKA_PUBLIC_EXPONENT, "OBJ_ATTR_PUBLIC_EXPONENT", AK_BYTES},
    {CKA_VALUE_LEN, "OBJ_ATTR_VALUE_LEN", AK_ULONG},
    {CKA_EXTRACTABLE, "OBJ_ATTR_EXTRACTABLE", AK_BOOL},
    {CKA_LOCAL, "OBJ_ATTR_LOCAL", AK_BOOL},
    {CKA_NEVER_EXTRACTABLE, "OBJ_ATTR_NEVER_EXTRACTABLE", AK_BOOL},
    {CKA_ALWAYS_SENSITIVE, "OBJ_ATTR_ALWAYS_SENSITIVE", AK_BOOL},
    {CKA_KEY_GEN_MECHANISM, "OBJ_ATTR_KEY_GEN_MECHANISM", AK_ULONG},
    {CKA_MODIFIABLE, "OBJ_ATTR_MODIFIABLE", AK_BOOL},
    {CKA_COPYABLE, "OBJ_ATTR_COPYABLE", AK_BOOL},
    {CKA_DESTROYABLE, "OBJ_ATTR_DESTROYABLE", AK_BOOL},
    {CKA_EC_PARAMS, "OBJ_ATTR_EC_PARAMS", AK_BYTES},
    {CKA_EC_POINT, "OBJ_ATTR_EC_POINT", AK_BYTES},
    {CKA_WRAP_WITH_TRUSTED, "OBJ_ATTR_WRAP_WITH_TRUSTED", AK_BOOL},
    {CKA_NIMBUS_OWNER, "OBJ_ATTR_NIMBUS_OWNER", AK_ULONG},
    {CKA_NIMBUS_SHARED_USERS, "OBJ_ATTR_NIMBUS_SHARED_USERS", AK_ULONGS},
};

static const struct attr_row *attr_row_of(CK_ATTRIBUTE_TYPE type)
{
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(attr_rows); i++) {
        if (attr_rows[i].type == type)
            return &attr_rows[i];
    }
    return NULL;
}

static bool printable(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] > 0x7e)
            return false;
    }
    return true;
}

/* Name line, then value line. */
static void print_attr(FILE *fp, const hsm_attr_t *a)
{
    const struct attr_row *r = attr_row_of(a->type);
    enum attr_kind kind = r != NULL ? r->kind : AK_BYTES;
    CK_ULONG v = 0;

    if (r != NULL)
        fprintf(fp, "%s\n", r->name);
    else
        fprintf(fp, "0x%08lx\n", (unsigned long)a->type);
    if (a->status == HSM_ATTR_SENSITIVE) {
        fprintf(fp, "(sensitive: not revealed)\n");
        return;
    }
    switch (kind) {
    case AK_BOOL:
        fprintf(fp, "0x%08x\n", a->len == 1 && a->value[0] ? 1u : 0u);
        return;
    case AK_ULONG:
        if (a->len == sizeof(v)) {
            memcpy(&v, a->value, sizeof(v));
            fprintf(fp, "0x%08lx\n", (unsigned long)v);
            return;
        }
        break;
    case AK_ULONGS:
        for (size_t i = 0; i + sizeof(v) <= a->len; i += sizeof(v)) {
            memcpy(&v, a->value + i, sizeof(v));
            fprintf(fp, "%s%lu", i > 0 ? "," : "", (unsigned long)v);
        }
        fputc('\n', fp);
        return;
    case AK_TEXT:
        if (printable(a->value, a->len)) {
            fprintf(fp, "%.*s\n", (int)a->len, (const char *)a->value);
            return;
        }
        break;
    case AK_BYTES:
        break;
    }
    fputs(a->len > 0 ? "0x" : "", fp);
    print_hex(fp, a->value, a->len);
    fputc('\n', fp);
}

/* Parses a setAttribute value for its kind into buf (room: size). */
static bool parse_attr_value(enum attr_kind kind, const char *s, uint8_t *buf,
                             size_t size, size_t *len)
{
    unsigned long v;
    size_t n = strlen(s);

    switch (kind) {
    case AK_BOOL:
        if (strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0)
            buf[0] = CK_TRUE;
        else if (strcmp(s, "0") == 0 || strcasecmp(s, "false") == 0)
            buf[0] = CK_FALSE;
        else
            return false;
        *len = 1;
        return true;
    case AK_ULONG:
        if (!parse_number(s, &v) || size < sizeof(CK_ULONG))
            return false;
        {
            CK_ULONG u = v;

            memcpy(buf, &u, sizeof(u));
        }
        *len = sizeof(CK_ULONG);
        return true;
    case AK_TEXT:
        if (n > size)
            return false;
        memcpy(buf, s, n);
        *len = n;
        return true;
    case AK_BYTES:
        if (strncasecmp(s, "0x", 2) != 0) {
            if (n > size)
                return false;
            memcpy(buf, s, n);
            *len = n;
            return true;
        }
        s += 2;
        n -= 2;
        if (n % 2 != 0 || n / 2 > size ||
            strspn(s, "0123456789abcdefABCDEF") != n)
            return false;
        for (size_t i = 0; i < n / 2; i++) {
            char hex[3] = {s[2 * i], s[2 * i + 1], '\0'};

            buf[i] = (uint8_t)strtoul(hex, NULL, 16);
        }
        *len = n / 2;
        return true;
    case AK_ULONGS:
        break;
    }
    return false;
}

/* ------------------------------------------------------------ user writes */

/*
 * A user change (createUser, deleteUser, changePswd) is made once per
 * HSM: once on each selected server outside a cluster, and once for each
 * cluster among the selected servers (servers answering the same cluster
 * id are nodes of one cluster: the log carries the change to the others).
 * The cluster's write goes to its leader when a selected server says it
 * leads (no forwarding hop), else to the first of its servers.
 */
struct writes {
    size_t n;
    struct mgmt_server *sv[MGMT_SERVERS_MAX];
    char cid[MGMT_SERVERS_MAX][CLUSTER_ID_MAX + 1]; /* "": not a cluster */
    bool ok[MGMT_SERVERS_MAX];
    bool cluster; /* some write goes to a cluster */
};

static void plan_writes(struct mgmt *m, struct writes *w)
{
    bool leads[MGMT_SERVERS_MAX];

    memset(w, 0, sizeof(*w));
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        backend_cluster_t cs;
        size_t i;

        /* not logged in, not a cluster node, an older server: one write
         * of its own (its refusal is printed by the write itself) */
        if (backend_cluster_status(sv->conn, &cs) != CKR_OK ||
            cs.cluster_id[0] == '\0') {
            leads[w->n] = false;
            w->sv[w->n++] = sv;
            continue;
        }
        w->cluster = true;
        for (i = 0; i < w->n; i++)
            if (strcmp(w->cid[i], cs.cluster_id) == 0)
                break;
        if (i == w->n) {
            w->n++;
        } else if (leads[i] || cs.status.role != CLUSTER_ROLE_LEADER) {
            continue; /* this cluster's writer is chosen */
        }
        w->sv[i] = sv;
        leads[i] = cs.status.role == CLUSTER_ROLE_LEADER;
        memcpy(w->cid[i], cs.cluster_id, sizeof(w->cid[i]));
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* How long "on N nodes" waits for the nodes to apply a change. */
#define APPLIED_WAIT_MS 1500u

/*
 * The nodes of the writer's cluster that have applied the change just
 * made through writer: the writer's store's applied index right after the
 * write is at or past the change's entry; a node counts when a selected
 * server of the cluster (that node) reports its store at least there, or,
 * for a node the shell has no server for, when the writer leads and its
 * match index there is at least that (the entry is in that node's log;
 * it applies what it has once the leader's commit index reaches it).
 * Waits up to APPLIED_WAIT_MS for every node of the configuration.
 */
static size_t nodes_applied(struct mgmt *m, struct mgmt_server *writer,
                            const char *cid)
{
    uint64_t have[CLUSTER_NODES_MAX + MGMT_SERVERS_MAX];
    uint64_t deadline = now_ms() + APPLIED_WAIT_MS, index;
    backend_cluster_t ws;
    size_t n = 0;

    if (backend_cluster_status(writer->conn, &ws) != CKR_OK)
        return 1; /* the writer answered the write after applying it */
    /* the store's own index (the engine's status is a copy that may lag) */
    index = ws.digest_applied;
    for (;;) {
        struct timespec pause = {0, 50 * 1000000L};

        n = 0;
        for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
             sv = mgmt_server_next(m, sv)) {
            backend_cluster_t cs;
            size_t k;

            if (backend_cluster_status(sv->conn, &cs) != CKR_OK ||
                strcmp(cs.cluster_id, cid) != 0 || cs.digest_applied < index)
                continue;
            for (k = 0; k < n && have[k] != cs.status.node_id; k++)
                ;
            if (k == n)
                have[n++] = cs.status.node_id;
            if (sv == writer)
                ws = cs;
        }
        for (size_t i = 0; ws.status.role == CLUSTER_ROLE_LEADER &&
                           i < ws.status.nnodes && i < CLUSTER_NODES_MAX;
             i++) {
            const struct cluster_node *nd = &ws.status.nodes[i];
            size_t k;

            if (nd->match_index < index)
                continue;
            for (k = 0; k < n && have[k] != nd->id; k++)
                ;
            if (k == n)
                have[n++] = nd->id;
        }
        if (n >= ws.status.nnodes || now_ms() >= deadline)
            break;
        nanosleep(&pause, NULL);
        if (backend_cluster_status(writer->conn, &ws) != CKR_OK)
            break;
    }
    return n > 0 ? n : 1;
}

/* The "on N nodes" of a cluster write: the nodes that applied it, plus
 * one for each server outside a cluster whose write succeeded. */
static size_t nodes_written(struct mgmt *m, const struct writes *w)
{
    size_t n = 0;

    for (size_t i = 0; i < w->n; i++) {
        if (!w->ok[i])
            continue;
        n += w->cid[i][0] != '\0' ? nodes_applied(m, w->sv[i], w->cid[i]) : 1;
    }
    return n;
}

/* ------------------------------------------------------------ commands */

static int cmd_help(struct mgmt *m, int argc, char **argv)
{
    const struct mgmt_cmd *c;
    bool ambiguous = false;

    (void)m;
    if (argc == 2) {
        c = mgmt_cmd_find(argv[1], &ambiguous);
        if (c == NULL) {
            fprintf(stderr, "help: %s command '%s'\n",
                    ambiguous ? "ambiguous" : "no", argv[1]);
            return CMD_FAIL;
        }
        printf("usage: %s\n\n%s\n", c->usage, c->help);
        return CMD_OK;
    }
    printf("nimbus-mgmt: the Nimbus HSM management shell. At the nimbus> "
           "prompt, type a\n"
           "command; any unambiguous prefix of its name works. Commands "
           "act on every\n"
           "server (server 0 is the local store) unless \"server N\" chose "
           "one.\n"
           "help <command> tells more about one. \"-hpswd\" in place of a "
           "password\n"
           "reads it from the terminal without echo.\n\n");
    for (size_t i = 0; i < mgmt_ncommands; i++)
        printf("  %s\n", mgmt_commands[i].usage);
    return CMD_OK;
}

static int cmd_list_users(struct mgmt *m, int argc, char **argv)
{
    int ret = CMD_OK;

    (void)argc;
    (void)argv;
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        hsm_user_info_t *u = NULL;
        size_t n = 0;
        CK_RV rv = backend_user_list(sv->conn, &u, &n);

        if (rv != CKR_OK) {
            mgmt_fail(sv, "listUsers", rv);
            ret = CMD_FAIL;
            continue;
        }
        printf("Users on server %d(%s):\n", sv->id, sv->name);
        printf("Number of users found:%zu\n\n", n);
        printf("    User Id             User Type       User Name       "
               "                   MofnPubKey    LoginFailureCnt         "
               "2FA\n");
        for (size_t i = 0; i < n; i++)
            printf("%10u%14s%-16s%-32s%11s%16lu%17s\n", u[i].id, "",
                   type_word(&u[i]), u[i].name, u[i].mofn_pubkey ? "YES" : "NO",
                   u[i].login_failures, u[i].twofa ? "YES" : "NO");
        free(u);
    }
    return ret;
}

static hsm_login_kind_t login_kind(hsm_user_type_t type)
{
    switch (type) {
    case HSM_USER_CU:
        return HSM_LOGIN_USER;
    case HSM_USER_AU:
        return HSM_LOGIN_AU;
    default:
        return HSM_LOGIN_SO;
    }
}

static int cmd_login(struct mgmt *m, int argc, char **argv)
{
    char pw[PW_BUF];
    size_t pwlen = 0;
    hsm_user_type_t type;
    struct mgmt_tfa *t = NULL;
    const char *dir;
    bool twofa, bad;
    int ret = CMD_OK;

    twofa = twofa_arg(argc, argv, 4, false, &dir, &bad);
    if (bad || parse_type(argv[1], &type) == NULL || !name_ok(argv[2]))
        return usage_of("loginHSM");
    if (twofa && type != HSM_USER_CO) {
        fprintf(stderr, "loginHSM: -2fa is for crypto officers (CO)\n");
        return CMD_FAIL;
    }
    if (!mgmt_password(argv[3], false, pw, &pwlen))
        return CMD_FAIL;
    if (twofa && (t = mgmt_tfa_round(m, "loginHSM", HSM_LOGIN_SO, argv[2], dir,
                                     false)) == NULL) {
        ret = CMD_FAIL;
        goto out;
    }
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        const struct mgmt_authdata_entry *e = NULL;
        hsm_user_info_t u;
        bool found = false;
        CK_RV rv = find_user(sv, argv[2], &u, &found);

        /* a known user of another type: no password is tried */
        if (rv == CKR_OK && found && u.type != type)
            rv = CKR_USER_TYPE_INVALID;
        if (rv == CKR_OK && t != NULL &&
            (e = mgmt_tfa_entry(t, sv, "loginHSM")) == NULL) {
            ret = CMD_FAIL;
            continue;
        }
        if (rv == CKR_OK && e != NULL)
            rv = backend_login_2fa(sv->conn, login_kind(type), argv[2],
                                   (const uint8_t *)pw, pwlen, e->sig,
                                   e->sig_len);
        else if (rv == CKR_OK)
            rv = backend_login(sv->conn, login_kind(type), argv[2],
                               (const uint8_t *)pw, pwlen);
        mgmt_report(sv, "loginHSM", rv, &ret);
    }
out:
    if (t != NULL)
        mgmt_tfa_free(t);
    util_wipe(pw, sizeof(pw));
    return ret;
}

static int cmd_logout(struct mgmt *m, int argc, char **argv)
{
    int ret = CMD_OK;

    (void)argc;
    (void)argv;
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        CK_RV rv = backend_logout(sv->conn);

        mgmt_report(sv, "logoutHSM", rv, &ret);
    }
    return ret;
}

static int cmd_change_pswd(struct mgmt *m, int argc, char **argv)
{
    char pw[PW_BUF];
    size_t pwlen = 0;
    hsm_user_type_t type;
    struct mgmt_tfa *t = NULL;
    const char *word, *dir;
    bool twofa, bad;
    struct writes w;
    int ret = CMD_OK;

    /* "-2fa <dir>": turn 2FA on or rotate its key; "-2fa" alone (or no
     * -2fa at all, for a user that has it): turn it off */
    twofa = twofa_arg(argc, argv, 4, true, &dir, &bad);
    word = parse_type(argv[1], &type);
    if (bad || word == NULL || !name_ok(argv[2]))
        return usage_of("changePswd");
    if (twofa && type != HSM_USER_CO) {
        fprintf(stderr, "changePswd: -2fa is for crypto officers (CO)\n");
        return CMD_FAIL;
    }
    if (!mgmt_password(argv[3], true, pw, &pwlen))
        return CMD_FAIL;
    if (!confirmed(m, &ret))
        goto out;
    if (dir != NULL && (t = mgmt_tfa_round(m, "changePswd", HSM_LOGIN_SO,
                                           argv[2], dir, true)) == NULL) {
        ret = CMD_FAIL;
        goto out;
    }
    plan_writes(m, &w);
    if (!w.cluster)
        printf("Changing password for %s(%s) on %zu nodes\n", argv[2], word,
               nselected(m));
    for (size_t i = 0; i < w.n; i++) {
        struct mgmt_server *sv = w.sv[i];
        const struct mgmt_authdata_entry *e = NULL;
        hsm_user_info_t u;
        CK_RV rv = user_of_type(sv, argv[2], type, &u);

        if (rv == CKR_OK && t != NULL &&
            (e = mgmt_tfa_entry(t, sv, "changePswd")) == NULL) {
            ret = CMD_FAIL;
            continue;
        }
        if (rv == CKR_OK && e != NULL)
            rv = backend_user_set_password_2fa(
                sv->conn, argv[2], (const uint8_t *)pw, pwlen,
                (const uint8_t *)t->ad.pubkey, t->ad.pubkey_len, e->sig,
                e->sig_len);
        else if (rv == CKR_OK)
            rv = backend_user_set_password(sv->conn, argv[2],
                                           (const uint8_t *)pw, pwlen);
        if (rv != CKR_OK) {
            mgmt_fail(sv, "changePswd", rv);
            ret = CMD_FAIL;
        }
        w.ok[i] = rv == CKR_OK;
    }
    if (w.cluster)
        printf("Changing password for %s(%s) on %zu nodes\n", argv[2], word,
               nodes_written(m, &w));
out:
    if (t != NULL)
        mgmt_tfa_free(t);
    util_wipe(pw, sizeof(pw));
    return ret;
}

static int cmd_create_user(struct mgmt *m, int argc, char **argv)
{
    char pw[PW_BUF];
    size_t pwlen = 0;
    hsm_user_type_t type;
    struct mgmt_tfa *t = NULL;
    const char *word, *dir;
    bool twofa, bad;
    struct writes w;
    int ret = CMD_OK;

    twofa = twofa_arg(argc, argv, 4, false, &dir, &bad);
    word = parse_type(argv[1], &type);
    if (bad || word == NULL || (type != HSM_USER_CO && type != HSM_USER_CU) ||
        !name_ok(argv[2]))
        return usage_of("createUser");
    if (twofa && type != HSM_USER_CO) {
        fprintf(stderr, "createUser: -2fa is for crypto officers (CO)\n");
        return CMD_FAIL;
    }
    if (!mgmt_password(argv[3], true, pw, &pwlen))
        return CMD_FAIL;
    if (!confirmed(m, &ret))
        goto out;
    if (twofa && (t = mgmt_tfa_round(m, "createUser", HSM_LOGIN_SO, argv[2],
                                     dir, true)) == NULL) {
        ret = CMD_FAIL;
        goto out;
    }
    plan_writes(m, &w);
    if (!w.cluster)
        printf("Creating User %s(%s) on %zu nodes\n", argv[2], word,
               nselected(m));
    for (size_t i = 0; i < w.n; i++) {
        struct mgmt_server *sv = w.sv[i];
        const struct mgmt_authdata_entry *e = NULL;
        CK_RV rv;

        if (t != NULL && (e = mgmt_tfa_entry(t, sv, "createUser")) == NULL) {
            ret = CMD_FAIL;
            continue;
        }
        if (e != NULL)
            rv = backend_user_create_2fa(sv->conn, argv[2], (const uint8_t *)pw,
                                         pwlen, (const uint8_t *)t->ad.pubkey,
                                         t->ad.pubkey_len, e->sig, e->sig_len,
                                         NULL);
        else
            rv = backend_user_create(sv->conn, type, argv[2],
                                     (const uint8_t *)pw, pwlen, NULL);

        if (rv != CKR_OK) {
            mgmt_fail(sv, "createUser", rv);
            ret = CMD_FAIL;
        }
        w.ok[i] = rv == CKR_OK;
    }
    if (w.cluster)
        printf("Creating User %s(%s) on %zu nodes\n", argv[2], word,
               nodes_written(m, &w));
out:
    if (t != NULL)
        mgmt_tfa_free(t);
    util_wipe(pw, sizeof(pw));
    return ret;
}

static int cmd_delete_user(struct mgmt *m, int argc, char **argv)
{
    hsm_user_type_t type;
    const char *word;
    struct writes w;
    int ret = CMD_OK;

    (void)argc;
    word = parse_type(argv[1], &type);
    if (word == NULL || (type != HSM_USER_CO && type != HSM_USER_CU) ||
        !name_ok(argv[2]))
        return usage_of("deleteUser");
    if (!confirmed(m, &ret))
        return ret;
    plan_writes(m, &w);
    if (!w.cluster)
        printf("Deleting user %s(%s) on %zu nodes\n", argv[2], word,
               nselected(m));
    for (size_t i = 0; i < w.n; i++) {
        struct mgmt_server *sv = w.sv[i];
        hsm_user_info_t u;
        CK_RV rv = user_of_type(sv, argv[2], type, &u);

        if (rv == CKR_OK)
            rv = backend_user_delete(sv->conn, argv[2]);
        w.ok[i] = mgmt_report(sv, "deleteUser", rv, &ret);
    }
    if (w.cluster)
        printf("Deleting user %s(%s) on %zu nodes\n", argv[2], word,
               nodes_written(m, &w));
    return ret;
}

static int cmd_find_all_keys(struct mgmt *m, int argc, char **argv)
{
    uint8_t digest[HSM_DIGEST_LEN];
    hsm_uid_t uid;
    bool want_hash;
    int ret = CMD_OK;

    if (!parse_uid(argv[1], &uid) || !parse_flag(argv[2], &want_hash))
        return usage_of("findAllKeys");
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        hsm_key_ref_t *keys = NULL;
        size_t n = 0;
        FILE *fp = stdout;
        CK_RV rv = backend_key_list(sv->conn, uid, &keys, &n, digest);

        if (rv != CKR_OK) {
            mgmt_fail(sv, "findAllKeys", rv);
            ret = CMD_FAIL;
            continue;
        }
        printf("Keys on server %d(%s):\n", sv->id, sv->name);
        printf("Number of keys found %zu\n", n);
        if (argc == 4 && (fp = mgmt_open_output(argv[3])) == NULL) {
            free(keys);
            ret = CMD_FAIL;
            continue;
        }
        for (size_t i = 0; i < n; i++)
            fprintf(fp, "%s%" PRIu64 "(%c)", fp == stdout && i > 0 ? ", " : "",
                    keys[i].oid, keys[i].owned ? 'o' : 's');
        if (fp == stdout && n > 0)
            putchar('\n');
        if (fp != stdout) {
            if (n > 0)
                fputc('\n', fp);
            if (fclose(fp) != 0) {
                fprintf(stderr, "%s: write error\n", argv[3]);
                ret = CMD_FAIL;
            } else {
                printf("Key handles written to %s\n", argv[3]);
            }
        }
        if (want_hash) {
            printf("Key set hash (SHA-256) on server %d(%s): ", sv->id,
                   sv->name);
            print_hex(stdout, digest, sizeof(digest));
            putchar('\n');
        }
        free(keys);
    }
    return ret;
}

static int cmd_get_key_info(struct mgmt *m, int argc, char **argv)
{
    hsm_oid_t oid;
    int ret = CMD_OK;

    (void)argc;
    if (strcmp(argv[1], "-k") != 0 || !parse_handle(argv[2], &oid))
        return usage_of("getKeyInfo");
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        hsm_uid_t owner = 0, *shared = NULL;
        size_t n = 0;
        CK_RV rv = backend_key_info(sv->conn, oid, &owner, &shared, &n);

        if (rv != CKR_OK) {
            mgmt_fail(sv, "getKeyInfo", rv);
            ret = CMD_FAIL;
            continue;
        }
        printf("Key Info on server %d(%s):\n", sv->id, sv->name);
        printf("\tToken key %" PRIu64 "\n", oid);
        printf("\tOwned by user %u\n", owner);
        if (n == 0) {
            printf("\tNot shared\n");
        } else {
            printf("\tShared with %zu user(s):", n);
            for (size_t i = 0; i < n; i++)
                printf("%s %u", i > 0 ? "," : "", shared[i]);
            putchar('\n');
        }
        free(shared);
    }
    return ret;
}

static int cmd_share_key(struct mgmt *m, int argc, char **argv)
{
    hsm_oid_t oid;
    hsm_uid_t uid;
    bool share;
    int ret = CMD_OK;

    (void)argc;
    if (!parse_handle(argv[1], &oid) || !parse_uid(argv[2], &uid) ||
        !parse_flag(argv[3], &share))
        return usage_of("shareKey");
    if (!confirmed(m, &ret))
        return ret;
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        CK_RV rv = backend_object_share(sv->conn, oid, uid, share);

        mgmt_report(sv, "shareKey", rv, &ret);
    }
    return ret;
}

static int cmd_get_attribute(struct mgmt *m, int argc, char **argv)
{
    CK_ATTRIBUTE_TYPE types[UTIL_ARRAY_SIZE(attr_rows)];
    hsm_attr_t vals[UTIL_ARRAY_SIZE(attr_rows)];
    unsigned long id;
    hsm_oid_t oid;
    size_t n = 0;
    int ret = CMD_OK;

    if (!parse_handle(argv[1], &oid) || !parse_number(argv[2], &id))
        return usage_of("getAttribute");
    if (id == ATTR_ALL) {
        for (size_t i = 0; i < UTIL_ARRAY_SIZE(attr_rows); i++)
            types[n++] = attr_rows[i].type;
    } else {
        types[n++] = id;
    }
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        FILE *fp = stdout;
        CK_RV rv = backend_object_get(sv->conn, sv->sid, oid, types, n, vals);

        /* one attribute asked for: its absence is the answer */
        if (rv == CKR_OK && n == 1 && vals[0].status == HSM_ATTR_INVALID)
            rv = CKR_ATTRIBUTE_TYPE_INVALID;
        if (rv == CKR_OK && n == 1 && vals[0].status == HSM_ATTR_SENSITIVE)
            rv = CKR_ATTRIBUTE_SENSITIVE;
        if (rv == CKR_OK && argc == 4 &&
            (fp = mgmt_open_output(argv[3])) == NULL)
            rv = CKR_FUNCTION_FAILED;
        if (rv != CKR_OK) {
            backend_attrs_free(sv->be, vals, n);
            mgmt_fail(sv, "getAttribute", rv);
            ret = CMD_FAIL;
            continue;
        }
        if (fp == stdout)
            printf("Attribute Value on server %d(%s):\n", sv->id, sv->name);
        for (size_t i = 0; i < n; i++) {
            if (vals[i].status != HSM_ATTR_INVALID)
                print_attr(fp, &vals[i]);
        }
        backend_attrs_free(sv->be, vals, n);
        if (fp != stdout) {
            if (fclose(fp) != 0) {
                fprintf(stderr, "%s: write error\n", argv[3]);
                ret = CMD_FAIL;
                continue;
            }
            printf("Attributes dumped into %s file on server %d(%s)\n", argv[3],
                   sv->id, sv->name);
        }
    }
    return ret;
}

static int cmd_set_attribute(struct mgmt *m, int argc, char **argv)
{
    uint8_t buf[MGMT_LINE_MAX];
    const struct attr_row *r;
    CK_ATTRIBUTE a;
    unsigned long id;
    hsm_oid_t oid;
    size_t len = 0;
    int ret = CMD_OK;

    (void)argc;
    if (!parse_handle(argv[1], &oid) || !parse_number(argv[2], &id) ||
        (r = attr_row_of(id)) == NULL ||
        !parse_attr_value(r->kind, argv[3], buf, sizeof(buf), &len))
        return usage_of("setAttribute");
    if (!confirmed(m, &ret))
        return ret;
    a.type = r->type;
    a.pValue = buf;
    a.ulValueLen = len;
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        /* CKA_TRUSTED is the CO's to set (PKCS#11: the SO's), the rest
         * goes through the key's owner and the attribute rules. */
        CK_RV rv = a.type == CKA_TRUSTED
                       ? backend_object_set_trusted(sv->conn, oid, buf[0] != 0)
                       : backend_object_set(sv->conn, sv->sid, oid, &a, 1);

        mgmt_report(sv, "setAttribute", rv, &ret);
    }
    util_wipe(buf, sizeof(buf));
    return ret;
}

static int cmd_list_attributes(struct mgmt *m, int argc, char **argv)
{
    (void)m;
    (void)argc;
    (void)argv;
    printf("Attribute ids for getAttribute and setAttribute:\n\n");
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(attr_rows); i++)
        printf("      %-32s = %lu\n", attr_rows[i].name,
               (unsigned long)attr_rows[i].type);
    printf("      %-32s = %d\n", "OBJ_ATTR_ALL", ATTR_ALL);
    return CMD_OK;
}

static int cmd_get_hsm_info(struct mgmt *m, int argc, char **argv)
{
    int ret = CMD_OK;

    (void)argc;
    (void)argv;
    printf("Getting HSM Info on %zu nodes\n", nselected(m));
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        hsm_user_info_t *u = NULL;
        hsm_token_info_t ti;
        size_t n = 0;
        CK_RV rv;

        if ((rv = backend_token_info(sv->be, sv->conn, &ti)) != CKR_OK ||
            (rv = backend_user_list(sv->conn, &u, &n)) != CKR_OK) {
            mgmt_fail(sv, "getHSMInfo", rv);
            ret = CMD_FAIL;
            continue;
        }
        free(u);
        printf("\t\t*** Server %d(%s) ***\n", sv->id, sv->name);
        printf("\tLabel                :%s\n", ti.label);
        printf("\tModel                :Nimbus software HSM\n");
        printf("\tSerial Number        :%s\n", ti.serial);
        printf("\tSoftware Version     :%s\n", PACKAGE_VERSION);
        printf("\tState                :%s\n",
               ti.activated ? "activated" : "not activated (PRECO)");
        printf("\tNumber of Users      :%zu\n", n);
        printf("\tCrypto User Exists   :%s\n", ti.cu_exists ? "YES" : "NO");
        printf("\tLogin Failure Limit  :%lu\n", ti.failure_limit);
    }
    return ret;
}

/* A user's name from the server's list ("?" when not there). */
static const char *user_name(const hsm_user_info_t *u, size_t n, hsm_uid_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (u[i].id == id)
            return u[i].name;
    }
    return "?";
}

static const char *user_type_word(hsm_user_type_t t)
{
    switch (t) {
    case HSM_USER_PRECO:
        return "PRECO";
    case HSM_USER_CO:
        return "CO";
    case HSM_USER_CU:
        return "CU";
    case HSM_USER_AU:
        return "AU";
    default:
        return "-";
    }
}

/*
 * The clients connected to a nimbusd server: one line each with its peer
 * (unix uid/gid/pid, or the TLS client certificate's subject), sessions,
 * channels, logged-in user and what it calls itself; "*" marks this
 * shell. A CO only: others get a line saying so, and the command still
 * succeeds (the server row above is basic information).
 */
static int show_clients(struct mgmt_server *sv)
{
    backend_client_t *cl = NULL;
    hsm_user_info_t *u = NULL;
    size_t n = 0, nu = 0;
    char buf[32];
    CK_RV rv;

    rv = backend_client_list(sv->conn, &cl, &n);
    if (rv == CKR_FUNCTION_NOT_SUPPORTED) {
        printf("Connected clients on server %d(%s): none (embedded: the "
               "store is in this process)\n",
               sv->id, sv->name);
        return CMD_OK;
    }
    if (rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_PIN_EXPIRED) {
        printf("Connected clients on server %d(%s): a CO may list them "
               "(%s)\n",
               sv->id, sv->name, mgmt_rv_name(rv, buf, sizeof(buf)));
        return CMD_OK;
    }
    if (rv != CKR_OK) {
        mgmt_fail(sv, "info", rv);
        return CMD_FAIL;
    }
    if (backend_user_list(sv->conn, &u, &nu) != CKR_OK) {
        u = NULL;
        nu = 0;
    }
    printf("Connected clients on server %d(%s): %zu\n", sv->id, sv->name, n);
    printf("  %-40s %-9s %-9s %-24s %s\n", "Peer", "Sessions", "Channels",
           "User", "Client");
    for (size_t i = 0; i < n; i++) {
        char who[64];

        if (cl[i].user_type == HSM_USER_NONE)
            snprintf(who, sizeof(who), "-");
        else
            snprintf(who, sizeof(who), "%s %s(%u)",
                     user_type_word(cl[i].user_type),
                     user_name(u, nu, cl[i].user_id), cl[i].user_id);
        printf("%c %-40s %-9u %-9u %-24s %s\n", cl[i].self ? '*' : ' ',
               cl[i].peer, cl[i].sessions, cl[i].channels, who,
               cl[i].client_name[0] != '\0' ? cl[i].client_name : "-");
    }
    free(u);
    free(cl);
    return CMD_OK;
}

static int cmd_info(struct mgmt *m, int argc, char **argv)
{
    unsigned long id;
    struct mgmt_server *sv = NULL;

    (void)argc;
    if (strcasecmp(argv[1], "server") != 0 || !util_parse_ulong(argv[2], &id))
        return usage_of("info");
    for (size_t i = 0; i < m->nservers; i++) {
        if ((unsigned long)m->servers[i].id == id)
            sv = &m->servers[i];
    }
    if (sv == NULL) {
        fflush(stdout);
        fprintf(stderr, "info: no server %lu\n", id);
        return CMD_FAIL;
    }
    {
        hsm_token_info_t ti;
        bool in = backend_conn_user_type(sv->conn, NULL) != HSM_USER_NONE;
        const char *host = "embedded";
        char port[16] = "-";

        mgmt_server_refresh(sv);
        if (backend_token_info(sv->be, sv->conn, &ti) != CKR_OK)
            ti.serial[0] = '\0';
        if (sv->ep != NULL && sv->ep->kind == CONFIG_EP_TLS) {
            host = sv->ep->host;
            snprintf(port, sizeof(port), "%u", sv->ep->port);
        } else if (sv->ep != NULL) {
            host = "unix socket";
        }
        printf("%-8s%-23s %-17s%-7s%-16s%-24s%s\n", "Id", "Name", "Hostname",
               "Port", "State", "Partition", "LoginState");
        printf("%-8d%-23s %-17s%-7s%-16s%-24s%s\n", sv->id, sv->name, host,
               port, "Connected", ti.serial, in ? "Logged In" : "Logged Out");
        return show_clients(sv);
    }
}

static int cmd_server(struct mgmt *m, int argc, char **argv)
{
    unsigned long id;

    (void)argc;
    if (!util_parse_ulong(argv[1], &id))
        return usage_of("server");
    if (id >= m->nservers) {
        fflush(stdout);
        fprintf(stderr, "server: no server %lu\n", id);
        return CMD_FAIL;
    }
    m->current = (int)id;
    printf("Commands now go to server %d(%s) only; exit leaves server "
           "mode\n",
           m->servers[id].id, m->servers[id].name);
    return CMD_OK;
}

static int cmd_exit(struct mgmt *m, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (m->current < 0) {
        fflush(stdout);
        fprintf(stderr, "exit: not in server mode (quit leaves the shell)\n");
        return CMD_FAIL;
    }
    m->current = -1;
    return CMD_OK;
}

static int cmd_enable_e2e(struct mgmt *m, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    /* The embedded server is in this process: nothing crosses a wire. */
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv))
        printf("E2E enabled on server %d(%s)\n", sv->id, sv->name);
    return CMD_OK;
}

/* Every record, ascending; *recs malloc'd. */
static CK_RV read_audit(struct mgmt_server *sv, hsm_audit_record_t **recs,
                        size_t *n)
{
    hsm_audit_record_t *all = NULL, *part = NULL;
    size_t count = 0, np = 0;
    uint64_t after = 0;
    CK_RV rv;

    *recs = NULL;
    *n = 0;
    for (;;) {
        hsm_audit_record_t *grown;

        rv =
            backend_audit_read(sv->conn, after, HSM_AUDIT_READ_MAX, &part, &np);
        if (rv != CKR_OK || np == 0)
            break;
        grown = realloc(all, (count + np) * sizeof(*all));
        if (grown == NULL) {
            rv = CKR_HOST_MEMORY;
            break;
        }
        all = grown;
        memcpy(all + count, part, np * sizeof(*part));
        count += np;
        after = part[np - 1].seq;
        free(part);
        part = NULL;
        if (np < HSM_AUDIT_READ_MAX)
            break;
    }
    free(part);
    if (rv != CKR_OK) {
        free(all);
        return rv;
    }
    *recs = all;
    *n = count;
    return CKR_OK;
}

static void print_audit(FILE *fp, const hsm_audit_record_t *r)
{
    char when[32], buf[16];
    time_t t = (time_t)r->time;
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL ||
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(when, sizeof(when), "%" PRIu64, r->time);
    fprintf(fp, "%9" PRIu64 "  %-20s  %-16s  %6u  %-16s  %8" PRIu64 "  %-34s  ",
            r->seq, when, r->hsm_id, r->user, r->op, r->oid,
            mgmt_rv_name(r->result, buf, sizeof(buf)));
    print_hex(fp, r->hash, 8);
    /* Who was on the other end (nimbusd names it; empty when embedded).
     * The core refuses control characters in it; printed safe anyway. */
    if (r->peer[0] != '\0') {
        fputs("  ", fp);
        for (size_t i = 0; i < sizeof(r->peer) && r->peer[i] != '\0'; i++) {
            unsigned char c = (unsigned char)r->peer[i];
            fputc(c < 0x20 || c == 0x7f ? '?' : c, fp);
        }
    }
    fputc('\n', fp);
}

static int cmd_get_audit_log(struct mgmt *m, int argc, char **argv)
{
    int ret = CMD_OK;

    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        hsm_audit_record_t *recs = NULL;
        size_t n = 0;
        FILE *fp = stdout;
        CK_RV rv = read_audit(sv, &recs, &n);

        if (rv == CKR_OK && argc == 2 &&
            (fp = mgmt_open_output(argv[1])) == NULL)
            rv = CKR_FUNCTION_FAILED;
        if (rv != CKR_OK) {
            free(recs);
            mgmt_fail(sv, "getAuditLog", rv);
            ret = CMD_FAIL;
            continue;
        }
        fprintf(fp, "Audit log on server %d(%s):\n", sv->id, sv->name);
        fprintf(fp, "Number of records:%zu\n\n", n);
        fprintf(fp, "%9s  %-20s  %-16s  %6s  %-16s  %8s  %-34s  %s\n", "Seq",
                "Time (UTC)", "HSM Id", "User", "Operation", "Object", "Result",
                "Hash  Peer");
        for (size_t i = 0; i < n; i++)
            print_audit(fp, &recs[i]);
        free(recs);
        if (fp != stdout) {
            if (fclose(fp) != 0) {
                fprintf(stderr, "%s: write error\n", argv[1]);
                ret = CMD_FAIL;
                continue;
            }
            printf("Audit log of server %d(%s) written to %s (%zu "
                   "records)\n",
                   sv->id, sv->name, argv[1], n);
        }
    }
    return ret;
}

static const char *audit_verdict(hsm_audit_status_t s)
{
    switch (s) {
    case HSM_AUDIT_INTACT:
        return "is intact";
    case HSM_AUDIT_HASH_MISMATCH:
        return "does not match its hash (edited, reordered or replaced)";
    case HSM_AUDIT_MISSING:
        return "is missing (deleted)";
    case HSM_AUDIT_MALFORMED:
        return "is malformed (edited)";
    case HSM_AUDIT_TRUNCATED:
        return "is missing: the log was cut short (deleted)";
    case HSM_AUDIT_UNEXPECTED:
        return "was not written by the HSM (inserted)";
    }
    return "is broken";
}

static int cmd_verify_audit_log(struct mgmt *m, int argc, char **argv)
{
    int ret = CMD_OK;

    (void)argc;
    (void)argv;
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        hsm_audit_check_t c;
        CK_RV rv = backend_audit_verify(sv->conn, &c);

        if (rv != CKR_OK) {
            mgmt_fail(sv, "verifyAuditLog", rv);
            ret = CMD_FAIL;
        } else if (c.status != HSM_AUDIT_INTACT) {
            printf("verifyAuditLog failed: audit record %" PRIu64
                   " %s on server %d(%s)\n",
                   c.first_bad, audit_verdict(c.status), sv->id, sv->name);
            ret = CMD_FAIL;
        } else {
            printf("verifyAuditLog success on server %d(%s): %" PRIu64
                   " records, hash chain intact\n",
                   sv->id, sv->name, c.records);
        }
    }
    return ret;
}

/* ------------------------------------------------------------ cluster */

/* What a cluster call's refusal means (nimbus.proto, ClusterStatusReq):
 * some codes say more here than in general. */
static const char *cluster_text(CK_RV rv)
{
    switch (rv) {
    case CKR_FUNCTION_NOT_SUPPORTED:
        return "not in a cluster";
    case CKR_ARGUMENTS_BAD:
        return "invalid node id or address";
    case CKR_DEVICE_ERROR:
        return "no leader reachable, or the server failed (see its log)";
    case CKR_FUNCTION_FAILED:
        return "no answer in time: the change may still take effect";
    case CKR_ACTION_PROHIBITED:
        return "the node refused";
    case CKR_GENERAL_ERROR:
        return "the node's state machine failed: the node stops";
    default:
        return mgmt_rv_text(rv);
    }
}

static bool cluster_report(const struct mgmt_server *sv, const char *cmd,
                           CK_RV rv, int *ret)
{
    char buf[16];

    if (rv == CKR_OK) {
        printf("%s success on server %d(%s)\n", cmd, sv->id, sv->name);
        return true;
    }
    printf("%s failed: HSM Error: %s (%s) on server %d(%s)\n", cmd,
           cluster_text(rv), mgmt_rv_name(rv, buf, sizeof(buf)), sv->id,
           sv->name);
    *ret = CMD_FAIL;
    return false;
}

/* A raft node id: 1 to 2^32-1 (the SAN URI of its certificate). */
static bool parse_node_id(const char *s, uint64_t *id)
{
    unsigned long v;

    if (!util_parse_ulong(s, &v) || v == 0 || v > UINT32_MAX)
        return false;
    *id = v;
    return true;
}

static const char *role_word(enum cluster_role r)
{
    switch (r) {
    case CLUSTER_ROLE_FOLLOWER:
        return "follower";
    case CLUSTER_ROLE_CANDIDATE:
        return "candidate";
    case CLUSTER_ROLE_LEADER:
        return "leader";
    case CLUSTER_ROLE_UNAVAILABLE:
        break;
    }
    return "unavailable";
}

static const char *member_word(enum cluster_member k)
{
    switch (k) {
    case CLUSTER_MEMBER_STANDBY:
        return "standby";
    case CLUSTER_MEMBER_SPARE:
        return "spare";
    case CLUSTER_MEMBER_VOTER:
        break;
    }
    return "voter";
}

/* a - b, 0 when b is ahead (a match index seen after the commit index) */
static uint64_t behind(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/*
 * One server's view of the cluster. What a node knows of the others
 * depends on its role: the leader knows each one's match index (lag =
 * its commit index - the match index); a follower knows only its own
 * applied index and the commit index the leader told it (its own lag).
 * What the server cannot know is "-".
 */
static void print_nodes(const struct mgmt_server *sv,
                        const struct cluster_status *st)
{
    bool leader = st->role == CLUSTER_ROLE_LEADER;

    printf("Nodes on server %d(%s):\n", sv->id, sv->name);
    printf("This node %" PRIu64 ": %s, term %" PRIu64 ", commit index %" PRIu64
           ", applied index %" PRIu64 "\n",
           st->node_id, role_word(st->role), st->term, st->commit_index,
           st->applied_index);
    if (st->leader_id != 0)
        printf("Leader: node %" PRIu64 "(%s)\n", st->leader_id,
               st->leader_address);
    else
        printf("Leader: none known\n");
    printf("Number of nodes found %zu\n", st->nnodes);
    printf("  %-10s %-32s %-10s %-8s %-10s %-14s %s\n", "Node Id", "Address",
           "Role", "Member", "Term", "Applied Index", "Lag");
    for (size_t i = 0; i < st->nnodes; i++) {
        const struct cluster_node *n = &st->nodes[i];
        bool me = n->id == st->node_id;
        const char *role = "-";
        char term[24] = "-", applied[24] = "-", lag[24] = "-";

        if (me)
            role = role_word(st->role);
        else if (n->id == st->leader_id)
            role = "leader";
        else if (leader)
            role = n->member == CLUSTER_MEMBER_VOTER ? "follower" : "-";
        if (me || n->id == st->leader_id)
            snprintf(term, sizeof(term), "%" PRIu64, st->term);
        if (me)
            snprintf(applied, sizeof(applied), "%" PRIu64, st->applied_index);
        if (leader)
            snprintf(lag, sizeof(lag), "%" PRIu64,
                     me ? behind(st->commit_index, st->applied_index)
                        : behind(st->commit_index, n->match_index));
        else if (me)
            snprintf(lag, sizeof(lag), "%" PRIu64,
                     behind(st->commit_index, st->applied_index));
        printf("%c %-10" PRIu64 " %-32s %-10s %-8s %-10s %-14s %s\n",
               me ? '*' : ' ', n->id, n->address, role, member_word(n->member),
               term, applied, lag);
    }
    /* hostile or misconfigured peers (another CA, another cluster, a
     * removed node, a clone asking for more than the key) */
    printf("Peers refused by this node since it started: %" PRIu64 "\n",
           st->peers_refused);
}

/* Each server's cluster status, shown by show; a server that cannot
 * answer is reported under cmd's name. */
static int each_status(struct mgmt *m, const char *cmd,
                       void (*show)(struct mgmt_server *sv,
                                    const backend_cluster_t *cs))
{
    int ret = CMD_OK;

    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        backend_cluster_t cs;
        CK_RV rv = backend_cluster_status(sv->conn, &cs);

        if (rv != CKR_OK) {
            cluster_report(sv, cmd, rv, &ret);
            continue;
        }
        show(sv, &cs);
    }
    return ret;
}

static void show_nodes(struct mgmt_server *sv, const backend_cluster_t *cs)
{
    print_nodes(sv, &cs->status);
}

static int cmd_list_nodes(struct mgmt *m, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return each_status(m, "listNodes", show_nodes);
}

static void show_digest(struct mgmt_server *sv, const backend_cluster_t *cs)
{
    printf("digest on server %d(%s): ", sv->id, sv->name);
    print_hex(stdout, cs->digest, sizeof(cs->digest));
    printf(" applied %" PRIu64 "\n", cs->digest_applied);
}

static int cmd_get_cluster_digest(struct mgmt *m, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return each_status(m, "getClusterDigest", show_digest);
}

/* ------------------------------------------------------------ masked */

/* The masked object's file size limit (the wire's). */
#define MASKED_FILE_MAX (16u * 1024u * 1024u + 64u * 1024u)

/* Extracts from the first selected server that has the object: one file. */
static int cmd_extract_masked(struct mgmt *m, int argc, char **argv)
{
    hsm_oid_t oid;
    int ret = CMD_FAIL;

    (void)argc;
    if (!parse_handle(argv[1], &oid))
        return usage_of("extractMaskedObject");
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        uint8_t *file = NULL;
        size_t len = 0;
        CK_RV rv = backend_masked_extract(sv->conn, oid, &file, &len);
        FILE *fp = NULL;

        if (rv == CKR_OK && (fp = mgmt_open_output(argv[2])) == NULL)
            rv = CKR_FUNCTION_FAILED;
        if (rv == CKR_OK) {
            bool ok = fwrite(file, 1, len, fp) == len;

            if (fclose(fp) != 0 || !ok) {
                fflush(stdout);
                fprintf(stderr, "%s: write error\n", argv[2]);
                rv = CKR_FUNCTION_FAILED;
            }
        }
        free(file);
        if (rv != CKR_OK) {
            mgmt_fail(sv, "extractMaskedObject", rv);
            continue;
        }
        printf("Object %" PRIu64 " extracted to %s (%zu bytes)\n", oid, argv[2],
               len);
        printf("extractMaskedObject success on server %d(%s)\n", sv->id,
               sv->name);
        ret = CMD_OK;
        break;
    }
    return ret;
}

/* Reads a whole file of 1 to max bytes (*buf malloc'd). */
static bool read_file_max(const char *path, size_t max, uint8_t **buf,
                          size_t *len)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *b = NULL;
    size_t n;

    if (fp == NULL)
        return false;
    if ((b = malloc(max + 1)) != NULL) {
        n = fread(b, 1, max + 1, fp);
        if (ferror(fp) || n == 0 || n > max) {
            free(b);
            b = NULL;
        } else {
            *len = n;
        }
    }
    fclose(fp);
    *buf = b;
    return b != NULL;
}

static bool read_masked_file(const char *path, uint8_t **buf, size_t *len)
{
    return read_file_max(path, MASKED_FILE_MAX, buf, len);
}

/* insertMaskedObject's line: CKR_DATA_INVALID means more here. */
static void masked_report(const struct mgmt_server *sv, CK_RV rv, int *ret)
{
    char buf[16];

    if (rv != CKR_DATA_INVALID) {
        mgmt_report(sv, "insertMaskedObject", rv, ret);
        return;
    }
    printf("insertMaskedObject failed: HSM Error: not a masked object of "
           "this cluster, another version of it is here, or its owner is "
           "not a crypto user here (%s) on server %d(%s)\n",
           mgmt_rv_name(rv, buf, sizeof(buf)), sv->id, sv->name);
    *ret = CMD_FAIL;
}

/* Inserts once per cluster among the servers (the log carries it), once
 * on each server outside a cluster (which refuses it). */
static int cmd_insert_masked(struct mgmt *m, int argc, char **argv)
{
    struct writes w;
    uint8_t *file = NULL;
    size_t len = 0;
    int ret = CMD_OK;

    (void)argc;
    if (!read_masked_file(argv[1], &file, &len)) {
        fflush(stdout);
        fprintf(stderr,
                "insertMaskedObject: %s: cannot read it (or empty, or over "
                "%u bytes)\n",
                argv[1], MASKED_FILE_MAX);
        return CMD_FAIL;
    }
    plan_writes(m, &w);
    for (size_t i = 0; i < w.n; i++) {
        struct mgmt_server *sv = w.sv[i];
        hsm_oid_t oid = 0;
        CK_RV rv = backend_masked_insert(sv->conn, file, len, &oid);

        if (rv == CKR_OK)
            printf("Object %" PRIu64 " inserted from %s\n", oid, argv[1]);
        masked_report(sv, rv, &ret);
    }
    free(file);
    return ret;
}

/* ------------------------------------------------------------ backups */

/* The cluster backup file size limit (the core's). */
#define BACKUP_FILE_MAX HSM_BACKUP_FILE_MAX

static void print_backup_info(const hsm_backup_info_t *info)
{
    printf("of cluster %s (key domain %s) at index %" PRIu64 ": %" PRIu64
           " users, %" PRIu64 " token objects, digest ",
           info->source, info->domain, info->applied, info->users,
           info->objects);
    print_hex(stdout, info->digest, sizeof(info->digest));
}

/* Backs up from the first selected server that answers: one file. */
static int cmd_backup(struct mgmt *m, int argc, char **argv)
{
    int ret = CMD_FAIL;

    (void)argc;
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        hsm_backup_info_t info;
        uint8_t *file = NULL;
        size_t len = 0;
        CK_RV rv = backend_backup(sv->conn, &file, &len, &info);
        FILE *fp = NULL;

        if (rv == CKR_OK && (fp = mgmt_open_output(argv[1])) == NULL)
            rv = CKR_FUNCTION_FAILED;
        if (rv == CKR_OK) {
            bool ok = fwrite(file, 1, len, fp) == len;

            if (fclose(fp) != 0 || !ok) {
                fflush(stdout);
                fprintf(stderr, "%s: write error\n", argv[1]);
                rv = CKR_FUNCTION_FAILED;
            }
        }
        free(file);
        if (rv != CKR_OK) {
            mgmt_fail(sv, "backup", rv);
            continue;
        }
        printf("Backup ");
        print_backup_info(&info);
        printf(", written to %s (%zu bytes)\n", argv[1], len);
        printf("backup success on server %d(%s)\n", sv->id, sv->name);
        ret = CMD_OK;
        break;
    }
    return ret;
}

/* restore's failure line: some codes mean more here. */
static void restore_report(const struct mgmt_server *sv, CK_RV rv, int *ret)
{
    const char *why = NULL;
    char buf[16];

    switch (rv) {
    case CKR_ACTION_PROHIBITED:
        why = "the cluster holds crypto users, token keys or quorum tokens: "
              "a backup goes only into a cluster that holds none (a new "
              "clone, or this one emptied)";
        break;
    case CKR_DATA_INVALID:
        why = "not a backup of this cluster key's domain, or damaged";
        break;
    case CKR_ENCRYPTED_DATA_INVALID:
        why = "the backup does not open: changed, or sealed under another "
              "cluster key";
        break;
    case CKR_DATA_LEN_RANGE:
        why = "the backup is too large for one log entry (16 MiB)";
        break;
    default:
        mgmt_report(sv, "restore", rv, ret);
        return;
    }
    printf("restore failed: HSM Error: %s (%s) on server %d(%s)\n", why,
           mgmt_rv_name(rv, buf, sizeof(buf)), sv->id, sv->name);
    *ret = CMD_FAIL;
}

/* Restores once per cluster among the servers (the log carries it to its
 * nodes), once on each server outside a cluster (which refuses it). */
static int cmd_restore(struct mgmt *m, int argc, char **argv)
{
    struct writes w;
    uint8_t *file = NULL;
    size_t len = 0;
    int ret = CMD_OK;
    bool done = false;

    (void)argc;
    if (!read_file_max(argv[1], BACKUP_FILE_MAX, &file, &len)) {
        fflush(stdout);
        fprintf(stderr,
                "restore: %s: cannot read it (or empty, or over %u bytes)\n",
                argv[1], BACKUP_FILE_MAX);
        return CMD_FAIL;
    }
    plan_writes(m, &w);
    for (size_t i = 0; i < w.n; i++) {
        struct mgmt_server *sv = w.sv[i];
        hsm_backup_info_t info;
        size_t nodes = 0;
        CK_RV rv = backend_restore(sv->conn, file, len, &info, &nodes);

        if (rv == CKR_OK) {
            printf("Restored backup ");
            print_backup_info(&info);
            printf(" on %zu nodes\n", nodes);
            done = true;
        }
        restore_report(sv, rv, &ret);
    }
    if (done)
        printf("Every login of this cluster has ended: log in again as a "
               "user of the backup\n");
    util_free_wipe(file, len);
    return ret;
}

/*
 * The server a membership change goes to: one change for the cluster,
 * not one per server. The leader when one of the selected servers says
 * it is (no forwarding hop), else the first selected (its engine
 * forwards to the leader).
 */
static struct mgmt_server *change_server(struct mgmt *m)
{
    struct mgmt_server *first = mgmt_server_first(m);

    for (struct mgmt_server *sv = first; sv != NULL;
         sv = mgmt_server_next(m, sv)) {
        backend_cluster_t cs;

        if (backend_cluster_status(sv->conn, &cs) == CKR_OK &&
            cs.status.role == CLUSTER_ROLE_LEADER)
            return sv;
    }
    return first;
}

static int cmd_add_node(struct mgmt *m, int argc, char **argv)
{
    struct mgmt_server *sv;
    const char *why;
    uint64_t id;
    int ret = CMD_OK;

    (void)argc;
    if (!parse_node_id(argv[1], &id))
        return usage_of("addNode");
    if ((why = config_check_node_address(argv[2])) != NULL) {
        fflush(stdout);
        fprintf(stderr, "addNode: %s: %s\n", argv[2], why);
        return usage_of("addNode");
    }
    if ((sv = change_server(m)) != NULL)
        cluster_report(sv, "addNode",
                       backend_cluster_add(sv->conn, id, argv[2]), &ret);
    return ret;
}

static int cmd_remove_node(struct mgmt *m, int argc, char **argv)
{
    struct mgmt_server *sv;
    uint64_t id;
    int ret = CMD_OK;

    (void)argc;
    if (!parse_node_id(argv[1], &id))
        return usage_of("removeNode");
    if ((sv = change_server(m)) != NULL)
        cluster_report(sv, "removeNode", backend_cluster_remove(sv->conn, id),
                       &ret);
    return ret;
}

static int cmd_transfer_leader(struct mgmt *m, int argc, char **argv)
{
    struct mgmt_server *sv;
    uint64_t id;
    int ret = CMD_OK;

    (void)argc;
    if (!parse_node_id(argv[1], &id))
        return usage_of("transferLeader");
    if ((sv = change_server(m)) != NULL)
        cluster_report(sv, "transferLeader",
                       backend_cluster_transfer(sv->conn, id), &ret);
    return ret;
}

static int cmd_quit(struct mgmt *m, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    m->quit = true; /* the servers are logged out as the shell closes */
    return CMD_OK;
}

/* ------------------------------------------------------------ the table */

const struct mgmt_cmd mgmt_commands[] = {
    {"help", 0, 1, cmd_help, "help [command]",
     "Lists the commands, or tells how to use one."},
    {"listUsers", 0, 0, cmd_list_users, "listUsers",
     "Lists the users of each server: id, type (PRECO, PCO for the primary\n"
     "crypto officer, CO, CU, AU), name and failed logins. Anyone may run "
     "it."},
    {"loginHSM", 3, 5, cmd_login,
     "loginHSM <PRECO|CO|CU|AU> <user name> <password|-hpswd> [-2fa <dir>]",
     "Logs in to every server. Five wrong passwords in a row lock the user\n"
     "out until a CO resets its password with changePswd. A CO with 2FA\n"
     "adds -2fa <dir>: the shell writes <dir>/authdata.json with a fresh\n"
     "digest per server, waits (press Enter) while the officer puts the\n"
     "base64 signature of each (openssl dgst -sha256 -sign key.pem over the\n"
     "decoded digest) in its Signature, then logs in with them. A missing\n"
     "or wrong signature is a failed login."},
    {"logoutHSM", 0, 0, cmd_logout, "logoutHSM", "Logs out of every server."},
    {"changePswd", 3, 5, cmd_change_pswd,
     "changePswd <PRECO|CO|CU|AU> <user name> <new password|-hpswd> "
     "[-2fa [<dir>]]",
     "Sets a user's password. A CO may set anyone's (which also unlocks a\n"
     "locked user); any other user only its own. The PRECO setting its own\n"
     "activates the HSM and becomes the primary crypto officer (PCO).\n"
     "For a CO, -2fa <dir> turns two-factor login on or rotates its key\n"
     "(authdata.json as for loginHSM, with the PEM public key in PublicKey);\n"
     "-2fa alone, or a change without -2fa, turns it off. Either way a\n"
     "2FA user's old key stops being its quorum key (MofnPubKey)."},
    {"createUser", 3, 5, cmd_create_user,
     "createUser <CO|CU> <user name> <password|-hpswd> [-2fa <dir>]",
     "Creates a crypto officer or a crypto user. CO only. A name has 1 to "
     "31\n"
     "characters of [A-Za-z0-9_], a password 7 to 32 characters. A CO\n"
     "created with -2fa <dir> logs in with two factors from the start: its\n"
     "public key (PEM, in PublicKey of authdata.json) and the signature of\n"
     "each digest prove the key, which becomes its quorum key too."},
    {"deleteUser", 2, 2, cmd_delete_user, "deleteUser <CO|CU> <user name>",
     "Deletes a user. CO only; refused for a logged-in user, the last CO\n"
     "and a crypto user that owns keys."},
    {"findAllKeys", 2, 3, cmd_find_all_keys,
     "findAllKeys <user id> <0|1> [file]",
     "Lists the key handles (store object ids) a user owns (o) or that are\n"
     "shared with it (s); with 1 also the SHA-256 hash of that key set, to\n"
     "compare servers. CO, CU (its own keys) and AU; no attribute value is\n"
     "shown. With a file, the handles are written there."},
    {"getKeyInfo", 2, 2, cmd_get_key_info, "getKeyInfo -k <key handle>",
     "Shows a key's owner and the users it is shared with. CO, CU, AU."},
    {"shareKey", 3, 3, cmd_share_key, "shareKey <key handle> <user id> <1|0>",
     "Shares a key with another crypto user (1) or stops sharing it (0).\n"
     "Only the crypto user that owns the key; public keys are not shared."},
    {"getAttribute", 2, 3, cmd_get_attribute,
     "getAttribute <key handle> <attribute id|512> [file]",
     "Shows one attribute of a key, or all of them (512), as the logged-in\n"
     "crypto user sees them: sensitive values are never shown. listAttributes\n"
     "gives the ids. With a file, the values are written there."},
    {"setAttribute", 3, 3, cmd_set_attribute,
     "setAttribute <key handle> <attribute id> <value>",
     "Changes a modifiable attribute of a key the logged-in crypto user "
     "owns.\n"
     "Values: 0 or 1 for flags, a number (or 0x...) for numbers, text for "
     "a\n"
     "label, 0x<hex> or text for byte strings."},
    {"listAttributes", 0, 0, cmd_list_attributes, "listAttributes",
     "Lists the attribute ids getAttribute and setAttribute take."},
    {"getHSMInfo", 0, 0, cmd_get_hsm_info, "getHSMInfo",
     "Shows each server's label, serial number, state and user count."},
    {"info", 2, 2, cmd_info, "info server <server id>",
     "Shows a server's connection and login state, and (to a CO) the "
     "clients connected to it."},
    {"server", 1, 1, cmd_server, "server <server id>",
     "Sends the following commands to that server only, until exit."},
    {"exit", 0, 0, cmd_exit, "exit", "Leaves server mode."},
    {"enable_e2e", 0, 0, cmd_enable_e2e, "enable_e2e",
     "Enables end-to-end encryption to each server. The local store is in\n"
     "this process, so nothing crosses a network."},
    {"getAuditLog", 0, 1, cmd_get_audit_log, "getAuditLog [file]",
     "Prints the audit log (sequence number, time, HSM id, user, "
     "operation,\n"
     "object or target user id, result, start of the chained hash). CO "
     "only."},
    {"verifyAuditLog", 0, 0, cmd_verify_audit_log, "verifyAuditLog",
     "Recomputes the hash chain of the audit log and names the first "
     "record\n"
     "that was edited, deleted, inserted or reordered. CO only."},
    {"registerQuorumPubKey", 5, 5, mgmt_cmd_register_quorum_pubkey,
     "registerQuorumPubKey CO <user name> <token file> <signed token file> "
     "<public key file>",
     "Registers the logged-in CO's RSA-2048 public key (PEM or DER) as its\n"
     "quorum key, so that it can approve quorum tokens. The token file is\n"
     "any 1 to 245 bytes the CO chose, the signed token file its\n"
     "SHA256-RSA-PKCS signature made outside the HSM:\n"
     "  openssl dgst -sha256 -sign key.pem -out token.sig token\n"
     "A new registration replaces the old one. listUsers then shows\n"
     "MofnPubKey YES. CO only."},
    {"setMValue", 2, 2, mgmt_cmd_set_m_value, "setMValue <3|4> <m>",
     "Sets how many approvals (M, 1 to 8; 1: none) a service needs: 3 the\n"
     "user management commands (createUser, deleteUser, changePswd of\n"
     "another user; C_InitPIN of another user), 4 setMValue itself. M is\n"
     "at most the number of COs with a registered quorum key. Service 3\n"
     "above 1 needs service 4 above 1: setMValue 4 first, then setMValue 3\n"
     "with an approved service 4 token. CO only."},
    {"getMValue", 1, 1, mgmt_cmd_get_m_value, "getMValue <3|4>",
     "Shows the M value of a service (3: user management, 4: setMValue)."},
    {"getToken", 3, 3, mgmt_cmd_get_token, "getToken <3|4> <user name> <file>",
     "Gets a quorum token for a service for the logged-in CO (user name is\n"
     "its own) and writes it to file. Approvers sign the file outside the\n"
     "HSM (openssl dgst -sha256 -sign key.pem -out name.sig file); the\n"
     "requester may be one of them. approveToken submits the signatures;\n"
     "the next guarded command of the service uses the token up. A token\n"
     "expires (10 minutes by default) and dies when its requester logs\n"
     "out. One server at a time (server mode when there are several)."},
    {"approveToken", 1, 1, mgmt_cmd_approve_token,
     "approveToken <approval file>",
     "Submits the approvals of a token. The approval file has one field a\n"
     "line: the token file, the number of approvals, then for each\n"
     "approval the approver's type (CO), name and signature file:\n"
     "  /home/officer1/user.token\n"
     "  2\n"
     "  CO\n"
     "  officer1\n"
     "  /home/officer1/officer1.sig\n"
     "  CO\n"
     "  officer2\n"
     "  /home/officer1/officer2.sig\n"
     "Each approval is accepted only if it verifies under that CO's\n"
     "registered key; one CO counts once. Relative paths are taken from\n"
     "the shell's directory. One server at a time."},
    {"listTokens", 0, 0, mgmt_cmd_list_tokens, "listTokens",
     "Lists the live quorum tokens: id, service, requester, seconds left,\n"
     "approvals needed and given, approvers. CO only."},
    {"delToken", 1, 1, mgmt_cmd_del_token, "delToken <token id>",
     "Deletes a quorum token (listTokens gives the ids). CO only."},
    {"listNodes", 0, 0, cmd_list_nodes, "listNodes",
     "Lists the nodes of the cluster as each server sees them: id, address,\n"
     "role, voter/standby/spare, term, applied index and lag (entries\n"
     "behind the commit index; the leader knows every node's, a follower\n"
     "its own). \"*\" marks the server's own node. CO, CU and AU."},
    {"getClusterDigest", 0, 0, cmd_get_cluster_digest, "getClusterDigest",
     "Prints each server's digest of its replicated state and the applied\n"
     "index it is at. Equal digests at an equal index: the nodes are in\n"
     "sync. CO, CU and AU."},
    {"extractMaskedObject", 2, 2, cmd_extract_masked,
     "extractMaskedObject <key handle> <file>",
     "Writes a token key as a masked object to file (0600): its attributes\n"
     "sealed under the cluster masking key with its owner, shares, id and\n"
     "version bound. Only a node of a cluster holding the same cluster key\n"
     "opens it. CO, AU, and a CU for the keys it owns; from the first\n"
     "server that has the key. Not on a server outside a cluster."},
    {"insertMaskedObject", 1, 1, cmd_insert_masked, "insertMaskedObject <file>",
     "Puts a masked object back (once per cluster, through its log) with\n"
     "its id, version, owner and shares. The same id and version already\n"
     "there: nothing changes. Another version, another cluster's file or a\n"
     "changed byte: refused. CO, AU, and a CU for its own keys."},
    {"addNode", 2, 2, cmd_add_node, "addNode <node id> <host:port>",
     "Adds a node to the cluster: it joins with a certificate of the\n"
     "cluster CA for that id, catches up (a snapshot, then the log) and\n"
     "becomes a voter. The address is where its cluster port listens.\n"
     "Sent once, to the leader if a server is it (else the first server,\n"
     "which forwards it). CO only."},
    {"removeNode", 1, 1, cmd_remove_node, "removeNode <node id>",
     "Removes a node from the cluster; its certificate no longer joins.\n"
     "CO only."},
    {"transferLeader", 1, 1, cmd_transfer_leader, "transferLeader <node id>",
     "Hands the leadership to another voter. CO only."},
    {"backup", 1, 1, cmd_backup, "backup <file>",
     "Writes the cluster's state as one server's node has applied it to\n"
     "file (0600): users, token keys (masked), shares and quorum M values,\n"
     "sealed again whole under the cluster key behind a small plain header\n"
     "(cluster, key domain, index, time, counts, digest), which is printed.\n"
     "Only a cluster holding the same cluster key restores it. From the\n"
     "first server that answers. CO only; not outside a cluster."},
    {"restore", 1, 1, cmd_restore, "restore <file>",
     "Puts a backup's users, token keys, shares and quorum M values into\n"
     "this cluster (once, through its log, on every node), which must hold\n"
     "the same cluster key (a clone, or itself rebuilt) and no crypto\n"
     "user, token key or quorum token yet; otherwise nothing changes. The\n"
     "cluster's log index, audit log and nodes stay. Afterwards every\n"
     "login ends: log in again as a user of the backup. At most 16 MiB.\n"
     "CO only."},
    {"quit", 0, 0, cmd_quit, "quit", "Logs out and leaves the shell."},
};

const size_t mgmt_ncommands = UTIL_ARRAY_SIZE(mgmt_commands);
