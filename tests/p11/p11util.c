/* p11util.c - loading the module, fresh stores, login and object helpers. */
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "p11util.h"

#define P11_DEFAULT_MODULE "./.libs/libnimbus-pkcs11.so"
#define P11_FIND_CHUNK 64

CK_FUNCTION_LIST_3_0_PTR p11;
CK_FUNCTION_LIST_PTR p11_v2;
CK_C_GetInterface p11_get_interface;
CK_C_GetInterfaceList p11_get_interface_list;
CK_C_GetFunctionList p11_get_function_list;

static void *p11_handle;
static char p11_tmpdir[PATH_MAX];
static char p11_so_pw[64] = P11_SO_PW;

/* ------------------------------------------------------------ loading */

int p11_load(void)
{
    const char *path = getenv("NIMBUS_MODULE");
    CK_INTERFACE_PTR iface = NULL;
    CK_VERSION v3 = {3, 0};
    CK_VERSION v2 = {2, 40};
    CK_RV rv;

    if (path == NULL || *path == '\0') {
        path = P11_DEFAULT_MODULE;
    }
    p11_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (p11_handle == NULL) {
        fprintf(stderr, "test_p11: dlopen %s: %s\n", path, dlerror());
        return -1;
    }
    *(void **)&p11_get_interface = dlsym(p11_handle, "C_GetInterface");
    *(void **)&p11_get_interface_list = dlsym(p11_handle, "C_GetInterfaceList");
    *(void **)&p11_get_function_list = dlsym(p11_handle, "C_GetFunctionList");
    if (p11_get_interface == NULL || p11_get_interface_list == NULL ||
        p11_get_function_list == NULL) {
        fprintf(stderr, "test_p11: %s lacks a C_Get* entry point\n", path);
        return -1;
    }
    rv = p11_get_interface((CK_UTF8CHAR_PTR) "PKCS 11", &v3, &iface, 0);
    if (rv != CKR_OK || iface == NULL || iface->pFunctionList == NULL) {
        fprintf(stderr, "test_p11: C_GetInterface(PKCS 11, 3.0): %s\n",
                p11_rv_name(rv));
        return -1;
    }
    p11 = iface->pFunctionList;
    iface = NULL;
    rv = p11_get_interface((CK_UTF8CHAR_PTR) "PKCS 11", &v2, &iface, 0);
    if (rv == CKR_OK && iface != NULL) {
        p11_v2 = iface->pFunctionList;
    }
    return 0;
}

void p11_unload(void)
{
    if (p11_handle != NULL) {
        dlclose(p11_handle);
        p11_handle = NULL;
    }
}

/* ------------------------------------------------------------ messages */

#define RV(x)                                                                  \
    {                                                                          \
        x, #x                                                                  \
    }
static const struct {
    CK_RV rv;
    const char *name;
} rv_names[] = {
    RV(CKR_OK),
    RV(CKR_CANCEL),
    RV(CKR_HOST_MEMORY),
    RV(CKR_SLOT_ID_INVALID),
    RV(CKR_GENERAL_ERROR),
    RV(CKR_FUNCTION_FAILED),
    RV(CKR_ARGUMENTS_BAD),
    RV(CKR_NO_EVENT),
    RV(CKR_NEED_TO_CREATE_THREADS),
    RV(CKR_CANT_LOCK),
    RV(CKR_ATTRIBUTE_READ_ONLY),
    RV(CKR_ATTRIBUTE_SENSITIVE),
    RV(CKR_ATTRIBUTE_TYPE_INVALID),
    RV(CKR_ATTRIBUTE_VALUE_INVALID),
    RV(CKR_ACTION_PROHIBITED),
    RV(CKR_DATA_INVALID),
    RV(CKR_DATA_LEN_RANGE),
    RV(CKR_DEVICE_ERROR),
    RV(CKR_DEVICE_MEMORY),
    RV(CKR_DEVICE_REMOVED),
    RV(CKR_FUNCTION_CANCELED),
    RV(CKR_FUNCTION_NOT_PARALLEL),
    RV(CKR_FUNCTION_NOT_SUPPORTED),
    RV(CKR_KEY_HANDLE_INVALID),
    RV(CKR_KEY_SIZE_RANGE),
    RV(CKR_KEY_TYPE_INCONSISTENT),
    RV(CKR_MECHANISM_INVALID),
    RV(CKR_MECHANISM_PARAM_INVALID),
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
    RV(CKR_TOKEN_WRITE_PROTECTED),
    RV(CKR_USER_ALREADY_LOGGED_IN),
    RV(CKR_USER_NOT_LOGGED_IN),
    RV(CKR_USER_PIN_NOT_INITIALIZED),
    RV(CKR_USER_TYPE_INVALID),
    RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
    RV(CKR_USER_TOO_MANY_TYPES),
    RV(CKR_RANDOM_SEED_NOT_SUPPORTED),
    RV(CKR_RANDOM_NO_RNG),
    RV(CKR_DOMAIN_PARAMS_INVALID),
    RV(CKR_CURVE_NOT_SUPPORTED),
    RV(CKR_BUFFER_TOO_SMALL),
    RV(CKR_CRYPTOKI_NOT_INITIALIZED),
    RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    RV(CKR_MUTEX_BAD),
    RV(CKR_MUTEX_NOT_LOCKED),
    RV(CKR_PIN_TOO_WEAK),
    RV(CKR_PUBLIC_KEY_INVALID),
    RV(CKR_FUNCTION_REJECTED),
    RV(CKR_OPERATION_CANCEL_FAILED),
};
#undef RV

const char *p11_rv_name(CK_RV rv)
{
    static char buf[32];

    for (size_t i = 0; i < sizeof(rv_names) / sizeof(rv_names[0]); i++) {
        if (rv_names[i].rv == rv) {
            return rv_names[i].name;
        }
    }
    snprintf(buf, sizeof(buf), "0x%08lx", (unsigned long)rv);
    return buf;
}

void p11_assert_rv_(CK_RV got, CK_RV want, const char *expr, const char *file,
                    int line)
{
    char want_name[48];

    if (got == want) {
        return;
    }
    snprintf(want_name, sizeof(want_name), "%s", p11_rv_name(want));
    print_error("%s:%d: %s\n    got %s, expected %s\n", file, line, expr,
                p11_rv_name(got), want_name);
    _fail(file, line);
}

int p11_expect_rv_(CK_RV got, CK_RV want, const char *expr, const char *file,
                   int line)
{
    char want_name[48];

    if (got == want) {
        return 0;
    }
    snprintf(want_name, sizeof(want_name), "%s", p11_rv_name(want));
    print_error("%s:%d: %s\n    got %s, expected %s\n", file, line, expr,
                p11_rv_name(got), want_name);
    return 1;
}

/* ------------------------------------------------------------ stores */

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_tree(const char *dir)
{
    if (dir[0] != '\0') {
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
}

const char *p11_dir(void)
{
    return p11_tmpdir;
}

const char *p11_write_file(const char *name, const char *text)
{
    static char path[PATH_MAX + 256];
    FILE *f;
    int n;

    n = snprintf(path, sizeof(path), "%s/%s", p11_tmpdir, name);
    assert_true(n > 0 && (size_t)n < sizeof(path));
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    return path;
}

void p11_cleanup(void)
{
    if (p11 != NULL) {
        (void)p11->C_Finalize(NULL);
    }
    rm_tree(p11_tmpdir);
    p11_tmpdir[0] = '\0';
    snprintf(p11_so_pw, sizeof(p11_so_pw), "%s", P11_SO_PW);
}

CK_RV p11_fresh_rv(const char *extra_conf)
{
    const char *tmp = getenv("TMPDIR");
    char conf[PATH_MAX * 2 + 512];
    int n;

    p11_cleanup();
    if (tmp == NULL || *tmp == '\0') {
        tmp = "/tmp";
    }
    snprintf(p11_tmpdir, sizeof(p11_tmpdir), "%s/nimbus-p11-XXXXXX", tmp);
    assert_non_null(mkdtemp(p11_tmpdir));
    n = snprintf(conf, sizeof(conf),
                 "# written by test_p11\nstore = %s/store\n", p11_tmpdir);
    if (extra_conf == NULL || strstr(extra_conf, "kdf_iterations") == NULL) {
        n += snprintf(conf + n, sizeof(conf) - (size_t)n,
                      "kdf_iterations = 1000\n");
    }
    if (extra_conf == NULL ||
        strstr(extra_conf, "login_failure_limit") == NULL) {
        n += snprintf(conf + n, sizeof(conf) - (size_t)n,
                      "login_failure_limit = 5\n");
    }
    if (extra_conf != NULL) {
        n += snprintf(conf + n, sizeof(conf) - (size_t)n, "%s\n", extra_conf);
    }
    assert_true(n > 0 && (size_t)n < sizeof(conf));
    assert_int_equal(
        setenv("NIMBUS_CONF", p11_write_file("nimbus.conf", conf), 1), 0);
    return p11->C_Initialize(NULL);
}

void p11_fresh(const char *extra_conf)
{
    assert_rv(p11_fresh_rv(extra_conf), CKR_OK);
}

void p11_restart(void)
{
    assert_rv(p11->C_Finalize(NULL), CKR_OK);
    assert_rv(p11->C_Initialize(NULL), CKR_OK);
}

int p11_setup(void **state)
{
    (void)state;
    p11_fresh(NULL);
    return 0;
}

int p11_teardown(void **state)
{
    (void)state;
    p11_cleanup();
    return 0;
}

/* ------------------------------------------------------------ users */

void p11_pad(CK_UTF8CHAR *field, size_t flen, const char *text)
{
    size_t len = strlen(text);

    memset(field, ' ', flen);
    memcpy(field, text, len < flen ? len : flen);
}

int p11_padded_eq(const CK_UTF8CHAR *field, size_t flen, const char *text)
{
    CK_UTF8CHAR want[256];

    if (flen > sizeof(want)) {
        return 0;
    }
    p11_pad(want, flen, text);
    return memcmp(field, want, flen) == 0;
}

CK_RV p11_init_token(const char *pin, const char *label)
{
    CK_UTF8CHAR lab[32];

    p11_pad(lab, sizeof(lab), label);
    return p11->C_InitToken(0, (CK_UTF8CHAR_PTR)pin, strlen(pin), lab);
}

void p11_activate(const char *so_pw)
{
    assert_rv(p11_init_token(so_pw, P11_TOKEN_LABEL), CKR_OK);
    snprintf(p11_so_pw, sizeof(p11_so_pw), "%s", so_pw);
}

CK_RV p11_login(CK_SESSION_HANDLE s, CK_USER_TYPE type, const char *pin)
{
    return p11->C_Login(s, type, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

CK_RV p11_init_pin(CK_SESSION_HANDLE s, const char *pin)
{
    return p11->C_InitPIN(s, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

CK_RV p11_set_pin(CK_SESSION_HANDLE s, const char *old_pin, const char *new_pin)
{
    return p11->C_SetPIN(s, (CK_UTF8CHAR_PTR)old_pin, strlen(old_pin),
                         (CK_UTF8CHAR_PTR)new_pin, strlen(new_pin));
}

void p11_login_so(CK_SESSION_HANDLE s, const char *pin)
{
    assert_rv(p11_login(s, CKU_SO, pin), CKR_OK);
}

void p11_login_cu(CK_SESSION_HANDLE s, const char *name, const char *pw)
{
    char pin[128];

    snprintf(pin, sizeof(pin), "%s:%s", name, pw);
    assert_rv(p11_login(s, CKU_USER, pin), CKR_OK);
}

void p11_co_init_pin(const char *pin)
{
    CK_SESSION_HANDLE s = p11_open_rw();

    p11_login_so(s, p11_so_pw);
    assert_rv(p11_init_pin(s, pin), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11->C_CloseSession(s), CKR_OK);
}

void p11_create_cu(const char *name, const char *pw)
{
    char pin[128];

    snprintf(pin, sizeof(pin), "%s:%s", name, pw);
    p11_co_init_pin(pin);
}

/* ------------------------------------------------------------ sessions */

CK_SESSION_HANDLE p11_open_rw(void)
{
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;

    assert_rv(p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                                 NULL, &s),
              CKR_OK);
    assert_true(s != CK_INVALID_HANDLE);
    return s;
}

CK_SESSION_HANDLE p11_open_ro(void)
{
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;

    assert_rv(p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
              CKR_OK);
    assert_true(s != CK_INVALID_HANDLE);
    return s;
}

void p11_token_info(CK_TOKEN_INFO *ti)
{
    memset(ti, 0, sizeof(*ti));
    assert_rv(p11->C_GetTokenInfo(0, ti), CKR_OK);
}

CK_FLAGS p11_token_flags(void)
{
    CK_TOKEN_INFO ti;

    p11_token_info(&ti);
    return ti.flags;
}

CK_STATE p11_session_state(CK_SESSION_HANDLE s)
{
    CK_SESSION_INFO si;

    memset(&si, 0xa5, sizeof(si));
    assert_rv(p11->C_GetSessionInfo(s, &si), CKR_OK);
    return si.state;
}

/* ------------------------------------------------------------ objects */

CK_OBJECT_HANDLE p11_make_data_priv(CK_SESSION_HANDLE s, const char *label,
                                    CK_BBOOL token, CK_BBOOL priv)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &token, sizeof(token)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_VALUE, "v", 1},
        {CKA_PRIVATE, &priv, sizeof(priv)},
    };
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;

    assert_rv(p11->C_CreateObject(s, t, 5, &o), CKR_OK);
    assert_true(o != CK_INVALID_HANDLE);
    return o;
}

CK_OBJECT_HANDLE p11_make_data(CK_SESSION_HANDLE s, const char *label,
                               CK_BBOOL token)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &token, sizeof(token)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_VALUE, "v", 1},
    };
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;

    assert_rv(p11->C_CreateObject(s, t, 4, &o), CKR_OK);
    assert_true(o != CK_INVALID_HANDLE);
    return o;
}

CK_ULONG p11_find_all(CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n,
                      CK_OBJECT_HANDLE *out, CK_ULONG max)
{
    CK_OBJECT_HANDLE chunk[P11_FIND_CHUNK];
    CK_ULONG total = 0;
    CK_ULONG got;

    assert_rv(p11->C_FindObjectsInit(s, tmpl, n), CKR_OK);
    do {
        got = ~0UL;
        assert_rv(p11->C_FindObjects(s, chunk, P11_FIND_CHUNK, &got), CKR_OK);
        assert_true(got <= P11_FIND_CHUNK);
        for (CK_ULONG i = 0; i < got; i++) {
            if (out != NULL && total < max) {
                out[total] = chunk[i];
            }
            total++;
        }
    } while (got > 0);
    assert_rv(p11->C_FindObjectsFinal(s), CKR_OK);
    return total;
}

CK_ULONG p11_count_label(CK_SESSION_HANDLE s, const char *label)
{
    CK_ATTRIBUTE t = {CKA_LABEL, (void *)label, strlen(label)};

    return p11_find_all(s, &t, 1, NULL, 0);
}

CK_ULONG p11_count_all(CK_SESSION_HANDLE s)
{
    return p11_find_all(s, NULL, 0, NULL, 0);
}

CK_ULONG p11_get_ulong(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                       CK_ATTRIBUTE_TYPE type)
{
    CK_ULONG v = 0xdeadbeef;
    CK_ATTRIBUTE a = {type, &v, sizeof(v)};

    assert_rv(p11->C_GetAttributeValue(s, o, &a, 1), CKR_OK);
    assert_int_equal(a.ulValueLen, sizeof(CK_ULONG));
    return v;
}

CK_BBOOL p11_get_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                      CK_ATTRIBUTE_TYPE type)
{
    CK_BBOOL v = 0x55;
    CK_ATTRIBUTE a = {type, &v, sizeof(v)};

    assert_rv(p11->C_GetAttributeValue(s, o, &a, 1), CKR_OK);
    assert_int_equal(a.ulValueLen, sizeof(CK_BBOOL));
    assert_true(v == CK_TRUE || v == CK_FALSE);
    return v;
}

CK_ULONG p11_get_bytes(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                       CK_ATTRIBUTE_TYPE type, void *buf, CK_ULONG max)
{
    CK_ATTRIBUTE a = {type, buf, max};

    assert_rv(p11->C_GetAttributeValue(s, o, &a, 1), CKR_OK);
    assert_true(a.ulValueLen <= max);
    return a.ulValueLen;
}

/* ------------------------------------------------------------ templates */

static CK_BBOOL tmpl_true = CK_TRUE;
static CK_BBOOL tmpl_false = CK_FALSE;

static size_t tmpl_slot(struct p11_tmpl *t, CK_ATTRIBUTE_TYPE type)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->a[i].type == type) {
            return i;
        }
    }
    assert_true(t->n < P11_TMPL_MAX);
    t->a[t->n].type = type;
    return t->n++;
}

void p11_tmpl_set(struct p11_tmpl *t, CK_ATTRIBUTE_TYPE type, const void *v,
                  CK_ULONG len)
{
    size_t i = tmpl_slot(t, type);

    t->a[i].pValue = (void *)v;
    t->a[i].ulValueLen = len;
}

void p11_tmpl_bool(struct p11_tmpl *t, CK_ATTRIBUTE_TYPE type, int v)
{
    p11_tmpl_set(t, type, v ? &tmpl_true : &tmpl_false, sizeof(CK_BBOOL));
}

void p11_tmpl_ulong(struct p11_tmpl *t, CK_ATTRIBUTE_TYPE type, CK_ULONG v)
{
    size_t i = tmpl_slot(t, type);

    t->u[i] = v;
    t->a[i].pValue = &t->u[i];
    t->a[i].ulValueLen = sizeof(CK_ULONG);
}
