/*
 * p11_writer.c - a small PKCS#11 client for the process-level shell tests
 * (tests/p11/multiprocess.sh, tests/p11/crash.sh).
 *
 * It loads the module with dlopen, as an application would, takes the 3.0
 * function list from C_GetInterface("PKCS 11", {3, 0}) and runs one
 * subcommand per process, so that the shell can put several processes on
 * one store, run them in parallel, or kill -9 them in the middle of a write.
 *
 * Module: -m PATH, else $NIMBUS_MODULE, else ./.libs/libnimbus-pkcs11.so.
 * The store is whatever the module's configuration names (NIMBUS_CONF).
 *
 * Every data object it writes has the value value_for(label): 64 bytes
 * derived from the label, so a reader can tell a whole object from a torn
 * or mixed-up one without knowing who wrote it.
 *
 * Exit status: 0 success, 1 failure (the failing call and its CK_RV are
 * printed on stderr), 2 usage error.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pkcs11/pkcs11.h"

#include "nimbus/pkcs11-vendor.h"

#define VALUE_LEN 64
#define LABEL_MAX 256
#define FIND_CHUNK 256
#define SLOT 0

static CK_FUNCTION_LIST_3_0_PTR fl;

struct rv_name {
    CK_RV rv;
    const char *name;
};

#define RV(x)                                                                  \
    {                                                                          \
        x, #x                                                                  \
    }
static const struct rv_name rv_names[] = {
    RV(CKR_OK),
    RV(CKR_HOST_MEMORY),
    RV(CKR_SLOT_ID_INVALID),
    RV(CKR_GENERAL_ERROR),
    RV(CKR_FUNCTION_FAILED),
    RV(CKR_ARGUMENTS_BAD),
    RV(CKR_ATTRIBUTE_READ_ONLY),
    RV(CKR_ATTRIBUTE_SENSITIVE),
    RV(CKR_ATTRIBUTE_TYPE_INVALID),
    RV(CKR_ATTRIBUTE_VALUE_INVALID),
    RV(CKR_ACTION_PROHIBITED),
    RV(CKR_DEVICE_ERROR),
    RV(CKR_DEVICE_REMOVED),
    RV(CKR_DEVICE_MEMORY),
    RV(CKR_FUNCTION_NOT_SUPPORTED),
    RV(CKR_FUNCTION_REJECTED),
    RV(CKR_OBJECT_HANDLE_INVALID),
    RV(CKR_OPERATION_ACTIVE),
    RV(CKR_OPERATION_NOT_INITIALIZED),
    RV(CKR_PIN_INCORRECT),
    RV(CKR_PIN_INVALID),
    RV(CKR_PIN_LEN_RANGE),
    RV(CKR_PIN_EXPIRED),
    RV(CKR_PIN_LOCKED),
    RV(CKR_SESSION_CLOSED),
    RV(CKR_SESSION_COUNT),
    RV(CKR_SESSION_HANDLE_INVALID),
    RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
    RV(CKR_SESSION_READ_ONLY),
    RV(CKR_SESSION_EXISTS),
    RV(CKR_SESSION_READ_ONLY_EXISTS),
    RV(CKR_SESSION_READ_WRITE_SO_EXISTS),
    RV(CKR_TEMPLATE_INCOMPLETE),
    RV(CKR_TEMPLATE_INCONSISTENT),
    RV(CKR_TOKEN_NOT_PRESENT),
    RV(CKR_TOKEN_NOT_RECOGNIZED),
    RV(CKR_TOKEN_WRITE_PROTECTED),
    RV(CKR_USER_ALREADY_LOGGED_IN),
    RV(CKR_USER_NOT_LOGGED_IN),
    RV(CKR_USER_PIN_NOT_INITIALIZED),
    RV(CKR_USER_TYPE_INVALID),
    RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
    RV(CKR_USER_TOO_MANY_TYPES),
    RV(CKR_RANDOM_SEED_NOT_SUPPORTED),
    RV(CKR_RANDOM_NO_RNG),
    RV(CKR_BUFFER_TOO_SMALL),
    RV(CKR_CRYPTOKI_NOT_INITIALIZED),
    RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    RV(CKR_MUTEX_BAD),
    RV(CKR_MUTEX_NOT_LOCKED),
    RV(CKR_PIN_TOO_WEAK),
    RV(CKR_FUNCTION_REJECTED),
    RV(CKR_TOKEN_RESOURCE_EXCEEDED),
};
#undef RV

static const char *rv_name(CK_RV rv)
{
    size_t i;

    for (i = 0; i < sizeof(rv_names) / sizeof(rv_names[0]); i++) {
        if (rv_names[i].rv == rv)
            return rv_names[i].name;
    }
    return "CKR_?";
}

/* Reports a failed call on stderr and returns the failure exit code. */
static int fail(const char *call, CK_RV rv)
{
    fprintf(stderr, "p11_writer: %s: %s (0x%lx)\n", call, rv_name(rv),
            (unsigned long)rv);
    return 1;
}

/* 64 bytes that depend on every byte of the label (FNV-1a + xorshift64*). */
static void value_for(const char *label, unsigned char *out)
{
    uint64_t x = 0xcbf29ce484222325ULL;
    size_t i;

    for (i = 0; label[i] != '\0'; i++) {
        x ^= (unsigned char)label[i];
        x *= 0x100000001b3ULL;
    }
    for (i = 0; i < VALUE_LEN; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out[i] = (unsigned char)((x * 0x2545f4914f6cdd1dULL) >> 56);
    }
}

static int load(const char *path)
{
    CK_C_GetInterface get_interface;
    CK_INTERFACE_PTR iface = NULL;
    CK_VERSION v30 = {3, 0};
    void *lib;
    CK_RV rv;

    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "p11_writer: dlopen %s: %s\n", path, dlerror());
        return 1;
    }
    *(void **)&get_interface = dlsym(lib, "C_GetInterface");
    if (get_interface == NULL) {
        fprintf(stderr, "p11_writer: %s has no C_GetInterface\n", path);
        return 1;
    }
    rv = get_interface((CK_UTF8CHAR_PTR) "PKCS 11", &v30, &iface, 0);
    if (rv != CKR_OK)
        return fail("C_GetInterface", rv);
    if (iface == NULL || iface->pFunctionList == NULL) {
        fprintf(stderr, "p11_writer: C_GetInterface gave no list\n");
        return 1;
    }
    fl = iface->pFunctionList;
    if (fl->version.major != 3) {
        fprintf(stderr, "p11_writer: interface version %u.%u, want 3.x\n",
                fl->version.major, fl->version.minor);
        return 1;
    }
    return 0;
}

static int start(void)
{
    CK_RV rv = fl->C_Initialize(NULL);

    if (rv != CKR_OK)
        return fail("C_Initialize", rv);
    return 0;
}

static void finish(void)
{
    CK_RV rv = fl->C_Finalize(NULL);

    if (rv != CKR_OK)
        fail("C_Finalize", rv);
}

static CK_RV open_rw(CK_SESSION_HANDLE *s)
{
    return fl->C_OpenSession(SLOT, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                             NULL, s);
}

static CK_RV login(CK_SESSION_HANDLE s, CK_USER_TYPE type, const char *pin)
{
    return fl->C_Login(s, type, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

/* Opens a RW session and logs in; returns an exit code. */
static int open_login(CK_USER_TYPE type, const char *pin, CK_SESSION_HANDLE *s)
{
    CK_RV rv = open_rw(s);

    if (rv != CKR_OK)
        return fail("C_OpenSession", rv);
    rv = login(*s, type, pin);
    if (rv != CKR_OK)
        return fail("C_Login", rv);
    return 0;
}

static int parse_user_type(const char *text, CK_USER_TYPE *type)
{
    char *end;

    if (strcmp(text, "so") == 0) {
        *type = CKU_SO;
    } else if (strcmp(text, "user") == 0) {
        *type = CKU_USER;
    } else if (strcmp(text, "au") == 0) {
        *type = CKU_NIMBUS_AU;
    } else {
        errno = 0;
        *type = strtoul(text, &end, 0);
        if (errno != 0 || end == text || *end != '\0') {
            fprintf(stderr, "p11_writer: bad user type %s\n", text);
            return 2;
        }
    }
    return 0;
}

static int parse_count(const char *text, unsigned long *n)
{
    char *end;

    errno = 0;
    *n = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
        fprintf(stderr, "p11_writer: bad number %s\n", text);
        return 2;
    }
    return 0;
}

static CK_RV create_data(CK_SESSION_HANDLE s, const char *label)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    unsigned char value[VALUE_LEN];
    static const char app[] = "p11_writer";
    CK_OBJECT_HANDLE h;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_APPLICATION, (void *)app, sizeof(app) - 1},
        {CKA_VALUE, value, sizeof(value)},
    };

    value_for(label, value);
    return fl->C_CreateObject(s, t, sizeof(t) / sizeof(t[0]), &h);
}

/*
 * Runs a whole find. *out (malloc'ed, caller frees) gets every handle,
 * *n their number.
 */
static CK_RV find_all(CK_SESSION_HANDLE s, CK_ATTRIBUTE *t, CK_ULONG nt,
                      CK_OBJECT_HANDLE **out, CK_ULONG *n)
{
    CK_OBJECT_HANDLE *all = NULL, *grown;
    CK_ULONG have = 0, cap = 0, got;
    CK_RV rv, rv2;

    *out = NULL;
    *n = 0;
    rv = fl->C_FindObjectsInit(s, t, nt);
    if (rv != CKR_OK)
        return rv;
    for (;;) {
        if (cap - have < FIND_CHUNK) {
            cap = cap * 2 + FIND_CHUNK;
            grown = realloc(all, cap * sizeof(*all));
            if (grown == NULL) {
                rv = CKR_HOST_MEMORY;
                break;
            }
            all = grown;
        }
        rv = fl->C_FindObjects(s, all + have, FIND_CHUNK, &got);
        if (rv != CKR_OK || got == 0)
            break;
        if (got > FIND_CHUNK) {
            rv = CKR_GENERAL_ERROR;
            break;
        }
        have += got;
    }
    rv2 = fl->C_FindObjectsFinal(s);
    if (rv == CKR_OK)
        rv = rv2;
    if (rv != CKR_OK) {
        free(all);
        return rv;
    }
    *out = all;
    *n = have;
    return CKR_OK;
}

static CK_RV count_label(CK_SESSION_HANDLE s, const char *label, CK_ULONG *n)
{
    CK_ATTRIBUTE t[] = {{CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE *h;
    CK_RV rv;

    rv = find_all(s, t, 1, &h, n);
    free(h);
    return rv;
}

/* ------------------------------------------------------------ commands */

/* init LABEL SOPIN: C_InitToken (activation or re-initialisation). */
static int cmd_init(char **argv)
{
    CK_UTF8CHAR label[32];
    size_t len = strlen(argv[0]);
    CK_RV rv;

    if (len > sizeof(label)) {
        fprintf(stderr, "p11_writer: label longer than 32 bytes\n");
        return 2;
    }
    memset(label, ' ', sizeof(label));
    memcpy(label, argv[0], len);
    rv =
        fl->C_InitToken(SLOT, (CK_UTF8CHAR_PTR)argv[1], strlen(argv[1]), label);
    if (rv != CKR_OK)
        return fail("C_InitToken", rv);
    printf("initialized %s\n", argv[0]);
    return 0;
}

/* mkuser SOPIN NAME PW: CO login, C_InitPIN("NAME:PW"). */
static int cmd_mkuser(char **argv)
{
    CK_SESSION_HANDLE s;
    char pin[256];
    int r, n;
    CK_RV rv;

    n = snprintf(pin, sizeof(pin), "%s:%s", argv[1], argv[2]);
    if (n < 0 || (size_t)n >= sizeof(pin))
        return 2;
    r = open_login(CKU_SO, argv[0], &s);
    if (r != 0)
        return r;
    rv = fl->C_InitPIN(s, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)n);
    if (rv != CKR_OK)
        return fail("C_InitPIN", rv);
    printf("user %s\n", argv[1]);
    return 0;
}

/* write PIN PREFIX COUNT: COUNT token data objects PREFIX-0 .. */
static int cmd_write(char **argv)
{
    char label[LABEL_MAX];
    CK_SESSION_HANDLE s;
    unsigned long count, i;
    int r, n;
    CK_RV rv;

    r = parse_count(argv[2], &count);
    if (r != 0)
        return r;
    r = open_login(CKU_USER, argv[0], &s);
    if (r != 0)
        return r;
    for (i = 0; i < count; i++) {
        n = snprintf(label, sizeof(label), "%s-%lu", argv[1], i);
        if (n < 0 || (size_t)n >= sizeof(label))
            return 2;
        rv = create_data(s, label);
        if (rv != CKR_OK) {
            fprintf(stderr, "p11_writer: object %s:\n", label);
            return fail("C_CreateObject", rv);
        }
        /* The acknowledgement: printed only once the create returned. */
        printf("ack %s\n", label);
        if (fflush(stdout) != 0) {
            perror("p11_writer: stdout");
            return 1;
        }
    }
    return 0;
}

/* create PIN LABEL: one token data object. */
static int cmd_create(char **argv)
{
    CK_SESSION_HANDLE s;
    int r;
    CK_RV rv;

    r = open_login(CKU_USER, argv[0], &s);
    if (r != 0)
        return r;
    rv = create_data(s, argv[1]);
    if (rv != CKR_OK)
        return fail("C_CreateObject", rv);
    printf("ack %s\n", argv[1]);
    return 0;
}

/*
 * Finds every data object the user sees; for those whose label starts with
 * "PREFIX-" (all of them when prefix is NULL) checks the value, prints
 * "bad LABEL" on a mismatch and, when print is set, the label.
 */
static int scan(const char *pin, const char *prefix, int print)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}};
    unsigned char value[VALUE_LEN * 2], want[VALUE_LEN];
    char label[LABEL_MAX];
    CK_OBJECT_HANDLE *h = NULL;
    size_t plen = prefix != NULL ? strlen(prefix) : 0;
    CK_SESSION_HANDLE s;
    CK_ULONG n, i, matched = 0;
    int r, bad = 0;
    CK_RV rv;

    r = open_login(CKU_USER, pin, &s);
    if (r != 0)
        return r;
    rv = find_all(s, t, 1, &h, &n);
    if (rv != CKR_OK)
        return fail("C_FindObjects*", rv);
    for (i = 0; i < n; i++) {
        CK_ATTRIBUTE a[] = {
            {CKA_LABEL, label, sizeof(label) - 1},
            {CKA_VALUE, value, sizeof(value)},
        };

        rv = fl->C_GetAttributeValue(s, h[i], a, 2);
        if (rv != CKR_OK) {
            free(h);
            return fail("C_GetAttributeValue", rv);
        }
        if (a[0].ulValueLen >= sizeof(label)) {
            free(h);
            fprintf(stderr, "p11_writer: label length %lu\n",
                    (unsigned long)a[0].ulValueLen);
            return 1;
        }
        label[a[0].ulValueLen] = '\0';
        if (prefix != NULL &&
            (strncmp(label, prefix, plen) != 0 || label[plen] != '-'))
            continue;
        matched++;
        value_for(label, want);
        if (a[1].ulValueLen != VALUE_LEN ||
            memcmp(value, want, VALUE_LEN) != 0) {
            printf("bad %s\n", label);
            bad = 1;
        } else if (print) {
            printf("%s\n", label);
        }
    }
    free(h);
    if (!print)
        printf("%lu\n", (unsigned long)matched);
    return bad;
}

/* count PIN PREFIX: prints how many PREFIX-* data objects there are. */
static int cmd_count(char **argv)
{
    return scan(argv[0], argv[1], 0);
}

/* list PIN [PREFIX]: prints the labels of the (PREFIX-*) data objects. */
static int cmd_list(char **argv)
{
    return scan(argv[0], argv[1], 1);
}

/* has PIN LABEL: exit 0 when an object with that label is visible. */
static int cmd_has(char **argv)
{
    CK_SESSION_HANDLE s;
    CK_ULONG n;
    int r;
    CK_RV rv;

    r = open_login(CKU_USER, argv[0], &s);
    if (r != 0)
        return r;
    rv = count_label(s, argv[1], &n);
    if (rv != CKR_OK)
        return fail("C_FindObjects*", rv);
    if (n == 0) {
        printf("absent %s\n", argv[1]);
        return 1;
    }
    printf("found %s %lu\n", argv[1], (unsigned long)n);
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/*
 * watch PIN LABEL TIMEOUT_MS: stays logged in, prints "before N" (how many
 * objects carry LABEL now), then repeats the find in the same session until
 * one appears ("seen", exit 0) or the time is up ("timeout", exit 1).
 * Shows that another process's commit is visible at the next find.
 */
static int cmd_watch(char **argv)
{
    unsigned long timeout, waited = 0;
    CK_SESSION_HANDLE s;
    CK_ULONG n;
    int r;
    CK_RV rv;

    r = parse_count(argv[2], &timeout);
    if (r != 0)
        return r;
    r = open_login(CKU_USER, argv[0], &s);
    if (r != 0)
        return r;
    rv = count_label(s, argv[1], &n);
    if (rv != CKR_OK)
        return fail("C_FindObjects*", rv);
    printf("before %lu\n", (unsigned long)n);
    fflush(stdout);
    for (;;) {
        sleep_ms(20);
        waited += 20;
        rv = count_label(s, argv[1], &n);
        if (rv != CKR_OK)
            return fail("C_FindObjects*", rv);
        if (n > 0) {
            printf("seen %lu\n", (unsigned long)n);
            return 0;
        }
        if (waited >= timeout) {
            printf("timeout\n");
            return 1;
        }
    }
}

/* login TYPE PIN: prints what C_Login returned ("CKR_X 0xN"); exit 0. */
static int cmd_login(char **argv)
{
    CK_SESSION_HANDLE s;
    CK_USER_TYPE type;
    int r;
    CK_RV rv;

    r = parse_user_type(argv[0], &type);
    if (r != 0)
        return r;
    rv = open_rw(&s);
    if (rv != CKR_OK)
        return fail("C_OpenSession", rv);
    rv = login(s, type, argv[1]);
    printf("%s 0x%lx\n", rv_name(rv), (unsigned long)rv);
    if (rv == CKR_OK)
        fl->C_Logout(s);
    return 0;
}

/* loginuser TYPE NAME PW: same with C_LoginUser. */
static int cmd_loginuser(char **argv)
{
    CK_SESSION_HANDLE s;
    CK_USER_TYPE type;
    int r;
    CK_RV rv;

    r = parse_user_type(argv[0], &type);
    if (r != 0)
        return r;
    rv = open_rw(&s);
    if (rv != CKR_OK)
        return fail("C_OpenSession", rv);
    rv = fl->C_LoginUser(s, type, (CK_UTF8CHAR_PTR)argv[2], strlen(argv[2]),
                         (CK_UTF8CHAR_PTR)argv[1], strlen(argv[1]));
    printf("%s 0x%lx\n", rv_name(rv), (unsigned long)rv);
    if (rv == CKR_OK)
        fl->C_Logout(s);
    return 0;
}

/*
 * hold NAME:PW: logs in as a CU in one RW session, prints "ready" and then
 * answers one command per line of stdin, so that a shell test can act on
 * the store from other processes while this login stays:
 *   keygen LABEL  a token AES key (private, 16 bytes): "keygen CKR_X"
 *   state         the session state: "state public|user|so"
 *   logout        C_Logout: "logout CKR_X"
 *   quit          ends (the module is finalized).
 */
static int cmd_hold(char **argv)
{
    CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
    CK_BBOOL yes = CK_TRUE;
    CK_ULONG len = 16;
    CK_SESSION_HANDLE s;
    char line[LABEL_MAX + 16], *nl;
    int r;
    CK_RV rv;

    r = open_login(CKU_USER, argv[0], &s);
    if (r != 0)
        return r;
    printf("ready\n");
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin) != NULL) {
        nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (strncmp(line, "keygen ", 7) == 0) {
            CK_ATTRIBUTE t[] = {
                {CKA_TOKEN, &yes, sizeof(yes)},
                {CKA_PRIVATE, &yes, sizeof(yes)},
                {CKA_VALUE_LEN, &len, sizeof(len)},
                {CKA_LABEL, line + 7, strlen(line + 7)},
            };
            CK_OBJECT_HANDLE h;

            rv = fl->C_GenerateKey(s, &m, t, 4, &h);
            printf("keygen %s\n", rv_name(rv));
        } else if (strcmp(line, "state") == 0) {
            CK_SESSION_INFO si;

            rv = fl->C_GetSessionInfo(s, &si);
            if (rv != CKR_OK)
                printf("state %s\n", rv_name(rv));
            else if (si.state == CKS_RW_PUBLIC_SESSION)
                printf("state public\n");
            else if (si.state == CKS_RW_USER_FUNCTIONS)
                printf("state user\n");
            else
                printf("state so\n");
        } else if (strcmp(line, "logout") == 0) {
            printf("logout %s\n", rv_name(fl->C_Logout(s)));
        } else if (strcmp(line, "quit") == 0) {
            break;
        } else {
            printf("unknown %s\n", line);
        }
        fflush(stdout);
    }
    return 0;
}

/*
 * together NAME:PW LABEL DIR N: logs in, creates LABEL, makes the file
 * DIR/LABEL, and waits (up to 300 s, logged in, its session open) until
 * DIR holds N files: N such processes are all connected at once. Then it
 * finds its object again and checks its value: "done LABEL".
 */
static int cmd_together(char **argv)
{
    unsigned char value[VALUE_LEN * 2], want[VALUE_LEN];
    char path[4096];
    unsigned long n, waited = 0;
    CK_OBJECT_HANDLE *h = NULL;
    CK_ATTRIBUTE lt[] = {{CKA_LABEL, argv[1], strlen(argv[1])}};
    CK_ATTRIBUTE a = {CKA_VALUE, value, sizeof(value)};
    CK_SESSION_HANDLE s;
    CK_ULONG found;
    FILE *f;
    int r;
    CK_RV rv;

    r = parse_count(argv[3], &n);
    if (r != 0)
        return r;
    r = open_login(CKU_USER, argv[0], &s);
    if (r != 0)
        return r;
    rv = create_data(s, argv[1]);
    if (rv != CKR_OK)
        return fail("C_CreateObject", rv);
    snprintf(path, sizeof(path), "%s/%s", argv[2], argv[1]);
    f = fopen(path, "w");
    if (f == NULL || fclose(f) != 0) {
        fprintf(stderr, "p11_writer: %s: %s\n", path, strerror(errno));
        return 1;
    }
    for (;;) {
        unsigned long have = 0;
        DIR *d = opendir(argv[2]);
        struct dirent *e;

        while (d != NULL && (e = readdir(d)) != NULL)
            have += e->d_name[0] != '.';
        if (d != NULL)
            closedir(d);
        if (have >= n)
            break;
        if (waited >= 300000) {
            fprintf(stderr, "p11_writer: only %lu of %lu arrived\n", have, n);
            return 1;
        }
        sleep_ms(50);
        waited += 50;
    }
    rv = find_all(s, lt, 1, &h, &found);
    if (rv != CKR_OK)
        return fail("C_FindObjects*", rv);
    if (found != 1) {
        free(h);
        fprintf(stderr, "p11_writer: %lu objects labelled %s\n",
                (unsigned long)found, argv[1]);
        return 1;
    }
    rv = fl->C_GetAttributeValue(s, h[0], &a, 1);
    free(h);
    if (rv != CKR_OK)
        return fail("C_GetAttributeValue", rv);
    value_for(argv[1], want);
    if (a.ulValueLen != VALUE_LEN || memcmp(value, want, VALUE_LEN) != 0) {
        fprintf(stderr, "p11_writer: %s has another value\n", argv[1]);
        return 1;
    }
    printf("done %s\n", argv[1]);
    return 0;
}

/* info: token flags (hex and names) and label. */
static int cmd_info(char **argv)
{
    static const struct {
        CK_FLAGS flag;
        const char *name;
    } names[] = {
        {CKF_RNG, "RNG"},
        {CKF_LOGIN_REQUIRED, "LOGIN_REQUIRED"},
        {CKF_USER_PIN_INITIALIZED, "USER_PIN_INITIALIZED"},
        {CKF_TOKEN_INITIALIZED, "TOKEN_INITIALIZED"},
        {CKF_USER_PIN_COUNT_LOW, "USER_PIN_COUNT_LOW"},
        {CKF_USER_PIN_FINAL_TRY, "USER_PIN_FINAL_TRY"},
        {CKF_USER_PIN_LOCKED, "USER_PIN_LOCKED"},
        {CKF_SO_PIN_COUNT_LOW, "SO_PIN_COUNT_LOW"},
        {CKF_SO_PIN_FINAL_TRY, "SO_PIN_FINAL_TRY"},
        {CKF_SO_PIN_LOCKED, "SO_PIN_LOCKED"},
        {CKF_SO_PIN_TO_BE_CHANGED, "SO_PIN_TO_BE_CHANGED"},
    };
    CK_TOKEN_INFO ti;
    size_t i, len;
    CK_RV rv;

    (void)argv;
    rv = fl->C_GetTokenInfo(SLOT, &ti);
    if (rv != CKR_OK)
        return fail("C_GetTokenInfo", rv);
    printf("flags 0x%lx", (unsigned long)ti.flags);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (ti.flags & names[i].flag)
            printf(" %s", names[i].name);
    }
    len = sizeof(ti.label);
    while (len > 0 && ti.label[len - 1] == ' ')
        len--;
    printf("\nlabel %.*s\n", (int)len, (const char *)ti.label);
    return 0;
}

struct command {
    const char *name;
    int min_args, max_args;
    int (*run)(char **argv);
    const char *usage;
};

static const struct command commands[] = {
    {"init", 2, 2, cmd_init, "init LABEL SOPIN"},
    {"mkuser", 3, 3, cmd_mkuser, "mkuser SOPIN NAME PW"},
    {"write", 3, 3, cmd_write, "write NAME:PW PREFIX COUNT"},
    {"create", 2, 2, cmd_create, "create NAME:PW LABEL"},
    {"count", 2, 2, cmd_count, "count NAME:PW PREFIX"},
    {"list", 1, 2, cmd_list, "list NAME:PW [PREFIX]"},
    {"has", 2, 2, cmd_has, "has NAME:PW LABEL"},
    {"watch", 3, 3, cmd_watch, "watch NAME:PW LABEL TIMEOUT_MS"},
    {"login", 2, 2, cmd_login, "login so|user|au|NUM PIN"},
    {"loginuser", 3, 3, cmd_loginuser, "loginuser so|user|au|NUM NAME PW"},
    {"info", 0, 0, cmd_info, "info"},
    {"hold", 1, 1, cmd_hold, "hold NAME:PW (then commands on stdin)"},
    {"together", 4, 4, cmd_together, "together NAME:PW LABEL DIR N"},
};

static int usage(void)
{
    size_t i;

    fprintf(stderr, "usage: p11_writer [-m MODULE] COMMAND ARGS\n");
    for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(stderr, "  %s\n", commands[i].usage);
    return 2;
}

int main(int argc, char **argv)
{
    const char *module = getenv("NIMBUS_MODULE");
    const struct command *cmd = NULL;
    char *args[4] = {NULL, NULL, NULL, NULL};
    int i, nargs, r;
    size_t k;

    argv++;
    argc--;
    if (argc >= 2 && strcmp(argv[0], "-m") == 0) {
        module = argv[1];
        argv += 2;
        argc -= 2;
    }
    if (module == NULL || module[0] == '\0')
        module = "./.libs/libnimbus-pkcs11.so";
    if (argc < 1)
        return usage();
    for (k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
        if (strcmp(argv[0], commands[k].name) == 0)
            cmd = &commands[k];
    }
    nargs = argc - 1;
    if (cmd == NULL || nargs < cmd->min_args || nargs > cmd->max_args)
        return usage();
    for (i = 0; i < nargs; i++)
        args[i] = argv[i + 1];

    r = load(module);
    if (r != 0)
        return r;
    r = start();
    if (r != 0)
        return r;
    r = cmd->run(args);
    finish();
    return r;
}
