/*
 * test_sessions.c - C_Initialize/C_Finalize (arguments, mutex callbacks,
 * fork), configuration errors, slots, sessions and their states,
 * interfaces, library/slot/token information, mechanisms, the functions
 * that are not supported yet, C_GenerateRandom.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "p11util.h"

#define MAX_SESSIONS_DEFAULT 1024

/* ------------------------------------------------------------ helpers */

static int setup_alice(void **state)
{
    (void)state;
    p11_fresh(NULL);
    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);
    return 0;
}

/* Text field of a CK_*_INFO: printable, blank padded, not empty. */
static void assert_padded_text(const CK_UTF8CHAR *f, size_t len)
{
    assert_true(f[0] != ' ');
    for (size_t i = 0; i < len; i++) {
        assert_true(f[i] >= 0x20 && f[i] < 0x7f);
    }
}

/*
 * Runs fn with stderr going to a file; returns what fn returned and leaves
 * what was written in out (NUL-terminated).
 */
static CK_RV capture_stderr(CK_RV (*fn)(void), char *out, size_t outlen)
{
    char path[4096];
    int fd, saved;
    ssize_t n;
    CK_RV rv;

    snprintf(path, sizeof(path), "%s/stderr.txt", p11_dir());
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fflush(stderr);
    saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fd, 2) >= 0);
    rv = fn();
    fflush(stderr);
    assert_true(dup2(saved, 2) >= 0);
    close(saved);
    assert_true(lseek(fd, 0, SEEK_SET) == 0);
    n = read(fd, out, outlen - 1);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    return rv;
}

static CK_RV do_initialize(void)
{
    return p11->C_Initialize(NULL);
}

/* ------------------------------------------------------------ C_Initialize */

static void test_not_initialized(void **state)
{
    CK_INFO info;
    CK_SLOT_ID slots[2];
    CK_ULONG n = 2;
    CK_SLOT_INFO si;
    CK_TOKEN_INFO ti;
    CK_SESSION_INFO ssi;
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE, old;
    CK_MECHANISM_TYPE mechs[4];
    CK_MECHANISM_INFO mi;
    CK_BYTE rnd[4];
    CK_UTF8CHAR label[32];
    CK_ATTRIBUTE a = {CKA_LABEL, NULL, 0};
    CK_OBJECT_HANDLE o;
    CK_INTERFACE_PTR ip = NULL;
    CK_FUNCTION_LIST_PTR fl = NULL;
    int fails = 0;

    (void)state;
    old = p11_open_rw();
    assert_rv(p11->C_Finalize(NULL), CKR_OK);
    memset(label, ' ', sizeof(label));
    expect_rv(fails, p11->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_GetSlotList(CK_FALSE, slots, &n),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_GetSlotInfo(0, &si), CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_GetTokenInfo(0, &ti), CKR_CRYPTOKI_NOT_INITIALIZED);
    n = 4;
    expect_rv(fails, p11->C_GetMechanismList(0, mechs, &n),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_GetMechanismInfo(0, CKM_AES_CBC, &mi),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails,
              p11->C_InitToken(0, (CK_UTF8CHAR_PTR)P11_SO_PW, strlen(P11_SO_PW),
                               label),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_CloseSession(old), CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_CloseAllSessions(0), CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_GetSessionInfo(old, &ssi),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11_login(old, CKU_USER, "alice:" P11_ALICE_PW),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_Logout(old), CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11_init_pin(old, "alice:" P11_ALICE_PW),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11_set_pin(old, "alice:" P11_ALICE_PW, "newpass1"),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_FindObjectsInit(old, NULL, 0),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_GetAttributeValue(old, 1, &a, 1),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_CreateObject(old, &a, 1, &o),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_DestroyObject(old, 1),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_GenerateRandom(old, rnd, sizeof(rnd)),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails,
              p11->C_LoginUser(old, CKU_USER, (CK_UTF8CHAR_PTR)P11_ALICE_PW,
                               strlen(P11_ALICE_PW), (CK_UTF8CHAR_PTR) "alice",
                               5),
              CKR_CRYPTOKI_NOT_INITIALIZED);
    expect_rv(fails, p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    /* The three entry points work without C_Initialize. */
    expect_rv(fails, p11_get_interface(NULL, NULL, &ip, 0), CKR_OK);
    expect_rv(fails, p11_get_function_list(&fl), CKR_OK);
    n = 0;
    expect_rv(fails, p11_get_interface_list(NULL, &n), CKR_OK);
    assert_int_equal(fails, 0);

    /* and after C_Initialize again, the old session is gone */
    assert_rv(p11->C_Initialize(NULL), CKR_OK);
    assert_rv(p11->C_GetSessionInfo(old, &ssi), CKR_SESSION_HANDLE_INVALID);
}

static void test_double_init_finalize(void **state)
{
    CK_INFO info;
    int dummy;

    (void)state;
    assert_rv(p11->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    assert_rv(p11->C_Finalize(&dummy), CKR_ARGUMENTS_BAD);
    assert_rv(p11->C_GetInfo(&info), CKR_OK); /* still initialized */
    assert_rv(p11->C_Finalize(NULL), CKR_OK);
    assert_rv(p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_rv(p11->C_Initialize(NULL), CKR_OK);
    assert_rv(p11->C_GetInfo(&info), CKR_OK);
}

static void test_init_args(void **state)
{
    CK_C_INITIALIZE_ARGS args;
    int dummy;

    (void)state;
    assert_rv(p11->C_Finalize(NULL), CKR_OK);

    memset(&args, 0, sizeof(args));
    assert_rv(p11->C_Initialize(&args), CKR_OK);
    assert_rv(p11->C_Initialize(&args), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    assert_rv(p11->C_Finalize(NULL), CKR_OK);

    args.flags = CKF_OS_LOCKING_OK;
    assert_rv(p11->C_Initialize(&args), CKR_OK);
    assert_rv(p11->C_Finalize(NULL), CKR_OK);

    args.flags = CKF_LIBRARY_CANT_CREATE_OS_THREADS;
    assert_rv(p11->C_Initialize(&args), CKR_OK);
    assert_rv(p11->C_Finalize(NULL), CKR_OK);

    args.flags = CKF_LIBRARY_CANT_CREATE_OS_THREADS | CKF_OS_LOCKING_OK;
    assert_rv(p11->C_Initialize(&args), CKR_OK);
    assert_rv(p11->C_Finalize(NULL), CKR_OK);

    args.flags = CKF_OS_LOCKING_OK;
    args.pReserved = &dummy;
    assert_rv(p11->C_Initialize(&args), CKR_ARGUMENTS_BAD);
    assert_rv(p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    args.pReserved = NULL;
    assert_rv(p11->C_Initialize(&args), CKR_OK);
}

/* Mutex callbacks that count their calls. */
static struct {
    int create, destroy, lock, unlock, live, bad;
} mx;

static CK_RV mx_create(CK_VOID_PTR_PTR pp)
{
    pthread_mutex_t *m;

    if (pp == NULL) {
        mx.bad++;
        return CKR_ARGUMENTS_BAD;
    }
    m = malloc(sizeof(*m));
    if (m == NULL) {
        return CKR_HOST_MEMORY;
    }
    pthread_mutex_init(m, NULL);
    *pp = m;
    mx.create++;
    mx.live++;
    return CKR_OK;
}

static CK_RV mx_destroy(CK_VOID_PTR p)
{
    if (p == NULL) {
        mx.bad++;
        return CKR_MUTEX_BAD;
    }
    pthread_mutex_destroy(p);
    free(p);
    mx.destroy++;
    mx.live--;
    return CKR_OK;
}

static CK_RV mx_lock(CK_VOID_PTR p)
{
    if (p == NULL) {
        mx.bad++;
        return CKR_MUTEX_BAD;
    }
    pthread_mutex_lock(p);
    mx.lock++;
    return CKR_OK;
}

static CK_RV mx_unlock(CK_VOID_PTR p)
{
    if (p == NULL) {
        mx.bad++;
        return CKR_MUTEX_BAD;
    }
    mx.unlock++;
    pthread_mutex_unlock(p);
    return CKR_OK;
}

static void test_init_mutex_callbacks(void **state)
{
    CK_C_INITIALIZE_ARGS args = {mx_create, mx_destroy, mx_lock,
                                 mx_unlock, 0,          NULL};
    CK_SESSION_HANDLE s;
    CK_INFO info;

    (void)state;
    assert_rv(p11->C_Finalize(NULL), CKR_OK);
    memset(&mx, 0, sizeof(mx));
    assert_rv(p11->C_Initialize(&args), CKR_OK);
    assert_rv(p11->C_GetInfo(&info), CKR_OK);
    s = p11_open_rw();
    assert_int_equal(p11_session_state(s), CKS_RW_PUBLIC_SESSION);
    assert_rv(p11->C_CloseSession(s), CKR_OK);
    /* the module used our callbacks, balanced */
    assert_true(mx.create >= 1);
    assert_true(mx.lock >= 1);
    assert_int_equal(mx.lock, mx.unlock);
    assert_int_equal(mx.bad, 0);
    assert_rv(p11->C_Finalize(NULL), CKR_OK);
    assert_int_equal(mx.lock, mx.unlock);
    assert_int_equal(mx.destroy, mx.create);
    assert_int_equal(mx.live, 0);

    /* callbacks and CKF_OS_LOCKING_OK: either may be used */
    memset(&mx, 0, sizeof(mx));
    args.flags = CKF_OS_LOCKING_OK;
    assert_rv(p11->C_Initialize(&args), CKR_OK);
    s = p11_open_ro();
    assert_rv(p11->C_CloseSession(s), CKR_OK);
    assert_rv(p11->C_Finalize(NULL), CKR_OK);
    assert_int_equal(mx.lock, mx.unlock);
    assert_int_equal(mx.live, 0);

    /* all four or none */
    memset(&mx, 0, sizeof(mx));
    args.flags = 0;
    args.LockMutex = NULL;
    assert_rv(p11->C_Initialize(&args), CKR_ARGUMENTS_BAD);
    args.LockMutex = mx_lock;
    args.CreateMutex = NULL;
    assert_rv(p11->C_Initialize(&args), CKR_ARGUMENTS_BAD);
    args.CreateMutex = mx_create;
    args.DestroyMutex = NULL;
    args.UnlockMutex = NULL;
    args.flags = CKF_OS_LOCKING_OK;
    assert_rv(p11->C_Initialize(&args), CKR_ARGUMENTS_BAD);
    assert_int_equal(mx.live, 0);
    assert_rv(p11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_rv(p11->C_Initialize(NULL), CKR_OK);
}

/* ------------------------------------------------------------ config */

static void test_config_errors(void **state)
{
    char err[1024];
    char conf[4096];
    const char *path;
    CK_RV rv;

    (void)state;
    assert_rv(p11->C_Finalize(NULL), CKR_OK);

    /* NIMBUS_CONF names a missing file */
    snprintf(conf, sizeof(conf), "%s/missing.conf", p11_dir());
    assert_int_equal(setenv("NIMBUS_CONF", conf, 1), 0);
    rv = capture_stderr(do_initialize, err, sizeof(err));
    assert_rv(rv, CKR_GENERAL_ERROR);
    assert_true(strncmp(err, "nimbus: ", 8) == 0);
    assert_non_null(strstr(err, "missing.conf"));
    assert_non_null(strchr(err, '\n'));
    assert_true(strchr(err, '\n')[1] == '\0'); /* one line */

    /* unknown key on line 3 */
    snprintf(conf, sizeof(conf),
             "store = %s/store\nkdf_iterations = 1000\nno_such_key = 1\n",
             p11_dir());
    path = p11_write_file("bad1.conf", conf);
    assert_int_equal(setenv("NIMBUS_CONF", path, 1), 0);
    rv = capture_stderr(do_initialize, err, sizeof(err));
    assert_rv(rv, CKR_GENERAL_ERROR);
    assert_true(strncmp(err, "nimbus: ", 8) == 0);
    assert_non_null(strstr(err, "bad1.conf:3:"));
    assert_true(strchr(err, '\n') != NULL && strchr(err, '\n')[1] == '\0');

    /* bad values */
    static const char *bad[] = {
        "kdf_iterations = 999",
        "kdf_iterations = many",
        "login_failure_limit = 0",
        "login_failure_limit = 1001",
        "max_sessions = -1",
        "des3 = maybe",
        "log_level = loud",
        "store",
        "label = 0123456789012345678901234567890123",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(conf, sizeof(conf), "store = %s/store\n%s\n", p11_dir(),
                 bad[i]);
        path = p11_write_file("bad2.conf", conf);
        assert_int_equal(setenv("NIMBUS_CONF", path, 1), 0);
        rv = capture_stderr(do_initialize, err, sizeof(err));
        if (rv != CKR_GENERAL_ERROR) {
            print_error("config line \"%s\" accepted\n", bad[i]);
        }
        assert_rv(rv, CKR_GENERAL_ERROR);
        assert_non_null(strstr(err, "bad2.conf:2:"));
    }

    /* comments, blank lines, spaces around '=' (and none) are fine */
    snprintf(conf, sizeof(conf),
             "# a comment\n\nstore=%s/store\nkdf_iterations   =   1000"
             "\n# label = nope\nlabel = cfglabel\nlog_level = none\n"
             "login_failure_limit = 20\nmax_sessions = 16\ndes3 = no\n"
             "default_user = someone\n",
             p11_dir());
    path = p11_write_file("good.conf", conf);
    assert_int_equal(setenv("NIMBUS_CONF", path, 1), 0);
    assert_rv(p11->C_Initialize(NULL), CKR_OK);
    {
        CK_TOKEN_INFO ti;

        p11_token_info(&ti);
        assert_true(p11_padded_eq(ti.label, sizeof(ti.label), "cfglabel"));
        assert_int_equal(ti.ulMaxSessionCount, 16);
    }
}

static void test_config_label_default(void **state)
{
    CK_TOKEN_INFO ti;

    (void)state;
    p11_token_info(&ti);
    assert_true(p11_padded_eq(ti.label, sizeof(ti.label), "nimbus"));
    p11_fresh("label = other label");
    p11_token_info(&ti);
    assert_true(p11_padded_eq(ti.label, sizeof(ti.label), "other label"));
    /* activation sets the label */
    p11_activate(P11_SO_PW);
    p11_token_info(&ti);
    assert_true(p11_padded_eq(ti.label, sizeof(ti.label), P11_TOKEN_LABEL));
    p11_restart();
    p11_token_info(&ti);
    assert_true(p11_padded_eq(ti.label, sizeof(ti.label), P11_TOKEN_LABEL));
}

/* ------------------------------------------------------------ fork */

/* In the child: no cmocka, an exit code per failed check. */
static int fork_child(CK_SESSION_HANDLE parent_s)
{
    CK_SESSION_INFO si;
    CK_SESSION_HANDLE s;
    CK_ATTRIBUTE t = {CKA_LABEL, "forked", 6};
    CK_OBJECT_HANDLE h[4];
    CK_ULONG n = 0;
    char label[16];
    CK_ATTRIBUTE a = {CKA_LABEL, label, sizeof(label)};

    if (p11->C_GetSessionInfo(parent_s, &si) != CKR_CRYPTOKI_NOT_INITIALIZED) {
        return 10;
    }
    if (p11->C_Finalize(NULL) != CKR_CRYPTOKI_NOT_INITIALIZED) {
        return 11;
    }
    if (p11->C_Initialize(NULL) != CKR_OK) {
        return 12;
    }
    if (p11->C_GetSessionInfo(parent_s, &si) != CKR_SESSION_HANDLE_INVALID) {
        return 13;
    }
    if (p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
                           &s) != CKR_OK) {
        return 14;
    }
    if (p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "alice:" P11_ALICE_PW,
                     strlen("alice:" P11_ALICE_PW)) != CKR_OK) {
        return 15;
    }
    if (p11->C_FindObjectsInit(s, &t, 1) != CKR_OK) {
        return 16;
    }
    if (p11->C_FindObjects(s, h, 4, &n) != CKR_OK || n != 1) {
        return 17;
    }
    if (p11->C_FindObjectsFinal(s) != CKR_OK) {
        return 18;
    }
    if (p11->C_GetAttributeValue(s, h[0], &a, 1) != CKR_OK ||
        a.ulValueLen != 6 || memcmp(label, "forked", 6) != 0) {
        return 19;
    }
    if (p11->C_Finalize(NULL) != CKR_OK) {
        return 20;
    }
    return 0;
}

static void test_fork(void **state)
{
    CK_SESSION_HANDLE s = p11_open_rw();
    pid_t pid;
    int status = -1;

    (void)state;
    p11_login_cu(s, "alice", P11_ALICE_PW);
    p11_make_data(s, "forked", CK_TRUE);
    p11_make_data(s, "parent-session-obj", CK_FALSE);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        _exit(fork_child(s));
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0) {
        print_error("fork child failed check %d (see fork_child)\n",
                    WEXITSTATUS(status));
    }
    assert_int_equal(WEXITSTATUS(status), 0);
    /* the parent is unaffected */
    assert_int_equal(p11_session_state(s), CKS_RW_USER_FUNCTIONS);
    assert_int_equal(p11_count_label(s, "forked"), 1);
    assert_int_equal(p11_count_label(s, "parent-session-obj"), 1);
    p11_make_data(s, "after-fork", CK_TRUE);
    assert_int_equal(p11_count_label(s, "after-fork"), 1);
}

/* ------------------------------------------------------------ slots */

static void test_slot_list(void **state)
{
    CK_SLOT_ID slots[4] = {99, 99, 99, 99};
    CK_ULONG n;

    (void)state;
    for (int present = 0; present < 2; present++) {
        n = 0;
        assert_rv(p11->C_GetSlotList((CK_BBOOL)present, NULL, &n), CKR_OK);
        assert_int_equal(n, 1);
        n = 0;
        assert_rv(p11->C_GetSlotList((CK_BBOOL)present, slots, &n),
                  CKR_BUFFER_TOO_SMALL);
        assert_int_equal(n, 1);
        n = 4;
        assert_rv(p11->C_GetSlotList((CK_BBOOL)present, slots, &n), CKR_OK);
        assert_int_equal(n, 1);
        assert_int_equal(slots[0], 0);
    }
    n = 1;
    slots[0] = 99;
    assert_rv(p11->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
    assert_int_equal(slots[0], 0);
}

static void test_slot_info(void **state)
{
    CK_SLOT_INFO si;

    (void)state;
    memset(&si, 0, sizeof(si));
    assert_rv(p11->C_GetSlotInfo(0, &si), CKR_OK);
    assert_true(si.flags & CKF_TOKEN_PRESENT);
    assert_padded_text(si.slotDescription, sizeof(si.slotDescription));
    assert_padded_text(si.manufacturerID, sizeof(si.manufacturerID));
    assert_rv(p11->C_GetSlotInfo(1, &si), CKR_SLOT_ID_INVALID);
    assert_rv(p11->C_GetSlotInfo(0x12345678, &si), CKR_SLOT_ID_INVALID);
}

static void test_get_info(void **state)
{
    CK_INFO info;

    (void)state;
    memset(&info, 0, sizeof(info));
    assert_rv(p11->C_GetInfo(&info), CKR_OK);
    assert_int_equal(info.cryptokiVersion.major, 3);
    assert_int_equal(info.cryptokiVersion.minor, 0);
    assert_int_equal(info.flags, 0);
    assert_padded_text(info.manufacturerID, sizeof(info.manufacturerID));
    assert_padded_text(info.libraryDescription,
                       sizeof(info.libraryDescription));
}

static int is_hex(const CK_CHAR *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') ||
              (p[i] >= 'A' && p[i] <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

static void test_token_info(void **state)
{
    CK_TOKEN_INFO ti, ti2;
    CK_SESSION_HANDLE s1, s2, s3;

    (void)state;
    p11_token_info(&ti);
    assert_true(
        p11_padded_eq(ti.manufacturerID, sizeof(ti.manufacturerID), "Nimbus"));
    assert_true(p11_padded_eq(ti.model, sizeof(ti.model), "Nimbus HSM"));
    assert_true(is_hex(ti.serialNumber, sizeof(ti.serialNumber)));
    assert_int_equal(ti.ulMaxSessionCount, MAX_SESSIONS_DEFAULT);
    assert_int_equal(ti.ulMaxRwSessionCount, MAX_SESSIONS_DEFAULT);
    assert_int_equal(ti.ulSessionCount, 0);
    assert_int_equal(ti.ulRwSessionCount, 0);
    assert_int_equal(ti.ulMinPinLen, 7);
    assert_int_equal(ti.ulMaxPinLen, 64);
    assert_int_equal(ti.ulTotalPublicMemory, CK_UNAVAILABLE_INFORMATION);
    assert_int_equal(ti.ulFreePublicMemory, CK_UNAVAILABLE_INFORMATION);
    assert_int_equal(ti.ulTotalPrivateMemory, CK_UNAVAILABLE_INFORMATION);
    assert_int_equal(ti.ulFreePrivateMemory, CK_UNAVAILABLE_INFORMATION);
    assert_int_equal(ti.hardwareVersion.major, 0);
    assert_int_equal(ti.hardwareVersion.minor, 1);
    assert_int_equal(ti.firmwareVersion.major, 0);
    assert_int_equal(ti.firmwareVersion.minor, 1);
    assert_true(ti.flags & CKF_RNG);
    assert_true(ti.flags & CKF_LOGIN_REQUIRED);

    s1 = p11_open_ro();
    s2 = p11_open_rw();
    s3 = p11_open_rw();
    p11_token_info(&ti2);
    assert_int_equal(ti2.ulSessionCount, 3);
    assert_int_equal(ti2.ulRwSessionCount, 2);
    assert_rv(p11->C_CloseSession(s2), CKR_OK);
    p11_token_info(&ti2);
    assert_int_equal(ti2.ulSessionCount, 2);
    assert_int_equal(ti2.ulRwSessionCount, 1);
    (void)s1;
    (void)s3;

    /* the serial number is per store, stable across restarts */
    p11_restart();
    p11_token_info(&ti2);
    assert_memory_equal(ti.serialNumber, ti2.serialNumber,
                        sizeof(ti.serialNumber));
    assert_int_equal(ti2.ulSessionCount, 0);
    p11_fresh(NULL);
    p11_token_info(&ti2);
    assert_true(is_hex(ti2.serialNumber, sizeof(ti2.serialNumber)));
    assert_memory_not_equal(ti.serialNumber, ti2.serialNumber,
                            sizeof(ti.serialNumber));

    assert_rv(p11->C_GetTokenInfo(1, &ti2), CKR_SLOT_ID_INVALID);
}

/* ------------------------------------------------------------ sessions */

static void assert_session(CK_SESSION_HANDLE s, CK_STATE state, int rw)
{
    CK_SESSION_INFO si;

    memset(&si, 0xa5, sizeof(si));
    assert_rv(p11->C_GetSessionInfo(s, &si), CKR_OK);
    assert_int_equal(si.slotID, 0);
    assert_int_equal(si.state, state);
    assert_int_equal(si.flags, CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0));
    assert_int_equal(si.ulDeviceError, 0);
}

static CK_RV notify_cb(CK_SESSION_HANDLE s, CK_NOTIFICATION ev, CK_VOID_PTR a)
{
    (void)s;
    (void)ev;
    (void)a;
    return CKR_OK;
}

static void test_session_states(void **state)
{
    CK_SESSION_HANDLE ro, rw, s;
    int app = 0;

    (void)state;
    ro = p11_open_ro();
    assert_rv(p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, &app,
                                 notify_cb, &rw),
              CKR_OK);
    assert_session(ro, CKS_RO_PUBLIC_SESSION, 0);
    assert_session(rw, CKS_RW_PUBLIC_SESSION, 1);

    p11_login_cu(ro, "alice", P11_ALICE_PW);
    assert_session(ro, CKS_RO_USER_FUNCTIONS, 0);
    assert_session(rw, CKS_RW_USER_FUNCTIONS, 1);
    s = p11_open_ro();
    assert_session(s, CKS_RO_USER_FUNCTIONS, 0);
    assert_rv(p11->C_Logout(rw), CKR_OK);
    assert_session(ro, CKS_RO_PUBLIC_SESSION, 0);
    assert_session(rw, CKS_RW_PUBLIC_SESSION, 1);
    assert_session(s, CKS_RO_PUBLIC_SESSION, 0);
    assert_rv(p11->C_CloseSession(s), CKR_OK);

    /* SO: RW only */
    assert_rv(p11_login(rw, CKU_SO, P11_SO_PW), CKR_SESSION_READ_ONLY_EXISTS);
    assert_rv(p11->C_CloseSession(ro), CKR_OK);
    p11_login_so(rw, P11_SO_PW);
    assert_session(rw, CKS_RW_SO_FUNCTIONS, 1);
    assert_rv(p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
              CKR_SESSION_READ_WRITE_SO_EXISTS);
    s = p11_open_rw();
    assert_session(s, CKS_RW_SO_FUNCTIONS, 1);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_session(rw, CKS_RW_PUBLIC_SESSION, 1);
    ro = p11_open_ro();
    assert_session(ro, CKS_RO_PUBLIC_SESSION, 0);
    assert_rv(p11->C_CloseSession(ro), CKR_OK);

    /* AU: user-function states */
    p11_login_so(rw, P11_SO_PW);
    assert_rv(p11_init_pin(rw, "app_user:" P11_AU_PW), CKR_OK);
    assert_rv(p11->C_Logout(rw), CKR_OK);
    ro = p11_open_ro();
    assert_rv(p11_login(ro, CKU_NIMBUS_AU, P11_AU_PW), CKR_OK);
    assert_session(ro, CKS_RO_USER_FUNCTIONS, 0);
    assert_session(rw, CKS_RW_USER_FUNCTIONS, 1);
}

static void test_parallel_not_supported(void **state)
{
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_TOKEN_INFO ti;

    (void)state;
    assert_rv(p11->C_OpenSession(0, 0, NULL, NULL, &s),
              CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    assert_rv(p11->C_OpenSession(0, CKF_RW_SESSION, NULL, NULL, &s),
              CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    p11_token_info(&ti);
    assert_int_equal(ti.ulSessionCount, 0);
    assert_rv(p11->C_OpenSession(1, CKF_SERIAL_SESSION, NULL, NULL, &s),
              CKR_SLOT_ID_INVALID);
}

static void open_until_full(CK_ULONG max)
{
    CK_SESSION_HANDLE s, first = CK_INVALID_HANDLE;
    CK_TOKEN_INFO ti;
    CK_FLAGS fl;

    for (CK_ULONG i = 0; i < max; i++) {
        fl = CKF_SERIAL_SESSION | ((i & 1) ? CKF_RW_SESSION : 0);
        s = CK_INVALID_HANDLE;
        assert_rv(p11->C_OpenSession(0, fl, NULL, NULL, &s), CKR_OK);
        if (i == 0) {
            first = s;
        }
    }
    p11_token_info(&ti);
    assert_int_equal(ti.ulSessionCount, max);
    assert_int_equal(ti.ulRwSessionCount, max / 2);
    assert_rv(p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
              CKR_SESSION_COUNT);
    assert_rv(p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                                 NULL, &s),
              CKR_SESSION_COUNT);
    assert_rv(p11->C_CloseSession(first), CKR_OK);
    s = p11_open_rw();
    assert_rv(p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s),
              CKR_SESSION_COUNT);
    assert_rv(p11->C_CloseAllSessions(0), CKR_OK);
    p11_token_info(&ti);
    assert_int_equal(ti.ulSessionCount, 0);
    s = p11_open_ro();
}

static void test_session_count(void **state)
{
    (void)state;
    open_until_full(MAX_SESSIONS_DEFAULT);
}

static void test_session_count_config(void **state)
{
    (void)state;
    p11_fresh("max_sessions = 3");
    open_until_full(3);
}

static void test_close_all_sessions(void **state)
{
    CK_SESSION_HANDLE h[5];
    CK_SESSION_INFO si;
    CK_TOKEN_INFO ti;
    CK_SESSION_HANDLE s;

    (void)state;
    for (int i = 0; i < 5; i++) {
        h[i] = i % 2 ? p11_open_rw() : p11_open_ro();
    }
    p11_login_cu(h[1], "alice", P11_ALICE_PW);
    assert_rv(p11->C_CloseAllSessions(1), CKR_SLOT_ID_INVALID);
    assert_rv(p11->C_CloseAllSessions(0), CKR_OK);
    for (int i = 0; i < 5; i++) {
        assert_rv(p11->C_GetSessionInfo(h[i], &si), CKR_SESSION_HANDLE_INVALID);
        assert_rv(p11->C_CloseSession(h[i]), CKR_SESSION_HANDLE_INVALID);
    }
    p11_token_info(&ti);
    assert_int_equal(ti.ulSessionCount, 0);
    assert_int_equal(ti.ulRwSessionCount, 0);
    /* and logged out */
    s = p11_open_rw();
    assert_int_equal(p11_session_state(s), CKS_RW_PUBLIC_SESSION);
    assert_rv(p11->C_Logout(s), CKR_USER_NOT_LOGGED_IN);
    /* with no session at all */
    assert_rv(p11->C_CloseSession(s), CKR_OK);
    assert_rv(p11->C_CloseAllSessions(0), CKR_OK);
}

static void test_close_last_logs_out(void **state)
{
    CK_SESSION_HANDLE s1, s2, s3;
    CK_SESSION_INFO si;

    (void)state;
    s1 = p11_open_rw();
    s2 = p11_open_ro();
    p11_login_cu(s1, "alice", P11_ALICE_PW);
    assert_rv(p11->C_CloseSession(s1), CKR_OK);
    assert_int_equal(p11_session_state(s2), CKS_RO_USER_FUNCTIONS);
    assert_rv(p11->C_CloseSession(s1), CKR_SESSION_HANDLE_INVALID);
    assert_rv(p11->C_GetSessionInfo(s1, &si), CKR_SESSION_HANDLE_INVALID);
    assert_rv(p11->C_CloseSession(s2), CKR_OK);
    s3 = p11_open_rw();
    assert_int_equal(p11_session_state(s3), CKS_RW_PUBLIC_SESSION);
    assert_rv(p11->C_Logout(s3), CKR_USER_NOT_LOGGED_IN);
    /* the SO too */
    p11_login_so(s3, P11_SO_PW);
    assert_rv(p11->C_CloseSession(s3), CKR_OK);
    s3 = p11_open_ro(); /* would be READ_WRITE_SO_EXISTS if still SO */
    assert_int_equal(p11_session_state(s3), CKS_RO_PUBLIC_SESSION);
}

#define N_HANDLES 200

static void test_session_handles_unique(void **state)
{
    CK_SESSION_HANDLE h[N_HANDLES + 1];
    CK_SESSION_INFO si;

    (void)state;
    for (int i = 0; i < N_HANDLES; i++) {
        h[i] = i % 3 ? p11_open_ro() : p11_open_rw();
        assert_true(h[i] != CK_INVALID_HANDLE);
        if (i % 2 == 0) {
            assert_rv(p11->C_CloseSession(h[i]), CKR_OK);
        }
        if (i % 50 == 49) {
            assert_rv(p11->C_CloseAllSessions(0), CKR_OK);
        }
    }
    /* across C_Finalize/C_Initialize too: old handles stay invalid */
    p11_restart();
    h[N_HANDLES] = p11_open_rw();
    for (int i = 0; i < N_HANDLES; i++) {
        for (int j = i + 1; j <= N_HANDLES; j++) {
            if (h[i] == h[j]) {
                print_error("session handle %lu reused (%d, %d)\n",
                            (unsigned long)h[i], i, j);
            }
            assert_true(h[i] != h[j]);
        }
        assert_rv(p11->C_GetSessionInfo(h[i], &si), CKR_SESSION_HANDLE_INVALID);
    }
}

/* ------------------------------------------------------------ interfaces */

static void test_interface_list(void **state)
{
    CK_INTERFACE list[5];
    CK_ULONG n;
    CK_VERSION *v;

    (void)state;
    n = 0;
    assert_rv(p11_get_interface_list(NULL, &n), CKR_OK);
    assert_int_equal(n, 3);
    n = 1;
    assert_rv(p11_get_interface_list(list, &n), CKR_BUFFER_TOO_SMALL);
    assert_int_equal(n, 3);
    n = 0;
    assert_rv(p11_get_interface_list(list, &n), CKR_BUFFER_TOO_SMALL);
    assert_int_equal(n, 3);
    n = 5;
    memset(list, 0, sizeof(list));
    assert_rv(p11_get_interface_list(list, &n), CKR_OK);
    assert_int_equal(n, 3);
    assert_non_null(list[0].pInterfaceName);
    assert_non_null(list[1].pInterfaceName);
    assert_string_equal((const char *)list[0].pInterfaceName, "PKCS 11");
    assert_string_equal((const char *)list[1].pInterfaceName, "PKCS 11");
    assert_non_null(list[0].pFunctionList);
    assert_non_null(list[1].pFunctionList);
    v = list[0].pFunctionList;
    assert_int_equal(v->major, 3);
    assert_int_equal(v->minor, 0);
    v = list[1].pFunctionList;
    assert_int_equal(v->major, 2);
    assert_int_equal(v->minor, 40);
    assert_ptr_equal(list[0].pFunctionList, p11);
    /* the vendor interface of two-factor login, version 1.0 */
    assert_string_equal((const char *)list[2].pInterfaceName, "Nimbus 2FA");
    v = list[2].pFunctionList;
    assert_int_equal(v->major, 1);
    assert_int_equal(v->minor, 0);
    assert_rv(p11_get_interface_list(list, NULL), CKR_ARGUMENTS_BAD);
    assert_rv(p11_get_interface_list(NULL, NULL), CKR_ARGUMENTS_BAD);
}

static void test_get_interface(void **state)
{
    CK_INTERFACE_PTR ip;
    CK_VERSION v30 = {3, 0}, v240 = {2, 40}, v99 = {9, 9};
    CK_VERSION *v;

    (void)state;
    ip = NULL;
    assert_rv(p11_get_interface(NULL, NULL, &ip, 0), CKR_OK);
    assert_non_null(ip);
    assert_ptr_equal(ip->pFunctionList, p11);
    assert_string_equal((const char *)ip->pInterfaceName, "PKCS 11");

    ip = NULL;
    assert_rv(p11_get_interface((CK_UTF8CHAR_PTR) "PKCS 11", NULL, &ip, 0),
              CKR_OK);
    assert_non_null(ip);
    assert_ptr_equal(ip->pFunctionList, p11);

    ip = NULL;
    assert_rv(p11_get_interface((CK_UTF8CHAR_PTR) "PKCS 11", &v30, &ip, 0),
              CKR_OK);
    assert_non_null(ip);
    assert_ptr_equal(ip->pFunctionList, p11);

    ip = NULL;
    assert_rv(p11_get_interface(NULL, &v240, &ip, 0), CKR_OK);
    assert_non_null(ip);
    v = ip->pFunctionList;
    assert_int_equal(v->major, 2);
    assert_int_equal(v->minor, 40);

    ip = NULL;
    assert_rv(p11_get_interface((CK_UTF8CHAR_PTR) "PKCS 11", &v240, &ip, 0),
              CKR_OK);
    assert_non_null(ip);
    v = ip->pFunctionList;
    assert_int_equal(v->major, 2);
    assert_int_equal(v->minor, 40);
    assert_ptr_equal(ip->pFunctionList, p11_v2);

    assert_rv(p11_get_interface((CK_UTF8CHAR_PTR) "Vendor X", NULL, &ip, 0),
              CKR_ARGUMENTS_BAD);
    assert_rv(p11_get_interface((CK_UTF8CHAR_PTR) "PKCS 11", &v99, &ip, 0),
              CKR_ARGUMENTS_BAD);
    assert_rv(p11_get_interface(NULL, NULL, NULL, 0), CKR_ARGUMENTS_BAD);
}

static void test_function_list(void **state)
{
    CK_FUNCTION_LIST_PTR fl = NULL;
    CK_INFO info;

    (void)state;
    assert_rv(p11_get_function_list(&fl), CKR_OK);
    assert_non_null(fl);
    assert_true(fl->version.major == 2 || fl->version.major == 3);
    assert_non_null(fl->C_GetInfo);
    assert_rv(fl->C_GetInfo(&info), CKR_OK);
    assert_rv(p11_get_function_list(NULL), CKR_ARGUMENTS_BAD);
    /* The 2.40 list is complete and works */
    assert_non_null(p11_v2);
    assert_int_equal(p11_v2->version.major, 2);
    assert_int_equal(p11_v2->version.minor, 40);
    assert_rv(p11_v2->C_GetInfo(&info), CKR_OK);
    assert_non_null(p11_v2->C_WaitForSlotEvent);
    /* every 3.0 slot is filled */
    {
        void (**fp)(void) = (void (**)(void)) & p11->C_Initialize;
        size_t count = (sizeof(*p11) - sizeof(CK_VERSION)) / sizeof(void *);

        for (size_t i = 0; i < count; i++) {
            if (fp[i] == NULL) {
                print_error("3.0 function list entry %zu is NULL\n", i);
            }
            assert_non_null(fp[i]);
        }
    }
}

static void test_login_user_via_interface(void **state)
{
    CK_INTERFACE_PTR ip = NULL;
    CK_VERSION v30 = {3, 0};
    CK_FUNCTION_LIST_3_0_PTR fl;
    CK_SESSION_HANDLE s;

    (void)state;
    assert_rv(p11_get_interface((CK_UTF8CHAR_PTR) "PKCS 11", &v30, &ip, 0),
              CKR_OK);
    fl = ip->pFunctionList;
    assert_rv(fl->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
                                NULL, &s),
              CKR_OK);
    assert_rv(fl->C_LoginUser(s, CKU_USER, (CK_UTF8CHAR_PTR)P11_ALICE_PW,
                              strlen(P11_ALICE_PW), (CK_UTF8CHAR_PTR) "alice",
                              5),
              CKR_OK);
    assert_int_equal(p11_session_state(s), CKS_RW_USER_FUNCTIONS);
    assert_rv(fl->C_SessionCancel(s, CKF_FIND_OBJECTS), CKR_OK);
    assert_rv(fl->C_Logout(s), CKR_OK);
    /* and the 2.40 list's C_Login */
    assert_rv(p11_v2->C_Login(s, CKU_USER,
                              (CK_UTF8CHAR_PTR) "alice:" P11_ALICE_PW,
                              strlen("alice:" P11_ALICE_PW)),
              CKR_OK);
}

/* ------------------------------------------------------------ mechanisms */

static void test_mechanisms(void **state)
{
    CK_MECHANISM_TYPE m[256];
    CK_MECHANISM_INFO mi;
    CK_ULONG n, total;
    int rsa = 0, ecdsa = 0;

    (void)state;
    n = 0;
    assert_rv(p11->C_GetMechanismList(0, NULL, &n), CKR_OK);
    assert_true(n > 10 && n <= 256);
    total = n;
    n = 1;
    assert_rv(p11->C_GetMechanismList(0, m, &n), CKR_BUFFER_TOO_SMALL);
    assert_int_equal(n, total);
    n = 256;
    assert_rv(p11->C_GetMechanismList(0, m, &n), CKR_OK);
    assert_int_equal(n, total);
    for (CK_ULONG i = 0; i < n; i++) {
        if (i > 0)
            assert_true(m[i - 1] < m[i]); /* one sorted table */
        assert_rv(p11->C_GetMechanismInfo(0, m[i], &mi), CKR_OK);
        assert_true(mi.flags != 0);
        rsa |= m[i] == CKM_RSA_PKCS_KEY_PAIR_GEN;
        ecdsa |= m[i] == CKM_ECDSA_SHA256;
    }
    assert_true(rsa && ecdsa);
    assert_rv(p11->C_GetMechanismInfo(0, CKM_RSA_PKCS_KEY_PAIR_GEN, &mi),
              CKR_OK);
    assert_true(mi.flags & CKF_GENERATE_KEY_PAIR);
    assert_int_equal(mi.ulMinKeySize, 1024);
    assert_int_equal(mi.ulMaxKeySize, 8192);
    assert_rv(p11->C_GetMechanismList(1, NULL, &n), CKR_SLOT_ID_INVALID);
    assert_rv(p11->C_GetMechanismInfo(0, CKM_VENDOR_DEFINED | 5, &mi),
              CKR_MECHANISM_INVALID);
    assert_rv(p11->C_GetMechanismInfo(1, CKM_SHA256, &mi), CKR_SLOT_ID_INVALID);
}

/* ------------------------------------------------------------ unsupported */

static void test_unsupported(void **state)
{
    CK_SESSION_HANDLE s = p11_open_rw();
    CK_MECHANISM mech = {CKM_AES_ECB, NULL, 0};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BYTE val[16] = {0};
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE, val, sizeof(val)},
    };
    CK_OBJECT_HANDLE key;
    CK_BYTE buf[64], out[64];
    CK_ULONG len;
    CK_SLOT_ID slot;
    int fails = 0;
    const CK_RV NS = CKR_FUNCTION_NOT_SUPPORTED;

    (void)state;
    p11_login_cu(s, "alice", P11_ALICE_PW);
    assert_rv(p11->C_CreateObject(s, t, 3, &key), CKR_OK);
    memset(buf, 0, sizeof(buf));

#define L (len = sizeof(out), &len)
    expect_rv(fails, p11->C_SignRecoverInit(s, &mech, key), NS);
    expect_rv(fails, p11->C_SignRecover(s, buf, 16, out, L), NS);
    expect_rv(fails, p11->C_VerifyRecoverInit(s, &mech, key), NS);
    expect_rv(fails, p11->C_VerifyRecover(s, buf, 16, out, L), NS);
    expect_rv(fails, p11->C_DigestEncryptUpdate(s, buf, 16, out, L), NS);
    expect_rv(fails, p11->C_DecryptDigestUpdate(s, buf, 16, out, L), NS);
    expect_rv(fails, p11->C_SignEncryptUpdate(s, buf, 16, out, L), NS);
    expect_rv(fails, p11->C_DecryptVerifyUpdate(s, buf, 16, out, L), NS);
    expect_rv(fails, p11->C_GetOperationState(s, out, L), NS);
    expect_rv(fails, p11->C_SetOperationState(s, buf, 16, 0, 0), NS);
    expect_rv(fails, p11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, NULL), NS);
    /* 3.0 message API: message-based signing and verification (the
     * message-based encryption calls are implemented: test_sym.c) */
    expect_rv(fails, p11->C_MessageSignInit(s, &mech, key), NS);
    expect_rv(fails, p11->C_SignMessage(s, buf, 12, buf, 16, out, L), NS);
    expect_rv(fails, p11->C_SignMessageBegin(s, buf, 12), NS);
    expect_rv(fails, p11->C_SignMessageNext(s, buf, 12, buf, 16, out, L), NS);
    expect_rv(fails, p11->C_MessageSignFinal(s), NS);
    expect_rv(fails, p11->C_MessageVerifyInit(s, &mech, key), NS);
    expect_rv(fails, p11->C_VerifyMessage(s, buf, 12, buf, 16, out, 16), NS);
    expect_rv(fails, p11->C_VerifyMessageBegin(s, buf, 12), NS);
    expect_rv(fails, p11->C_VerifyMessageNext(s, buf, 12, buf, 16, out, 16),
              NS);
    expect_rv(fails, p11->C_MessageVerifyFinal(s), NS);
#undef L

    /* parallel-function management */
    expect_rv(fails, p11->C_GetFunctionStatus(s), CKR_FUNCTION_NOT_PARALLEL);
    expect_rv(fails, p11->C_CancelFunction(s), CKR_FUNCTION_NOT_PARALLEL);
    /* C_SeedRandom / C_SessionCancel after the session checks */
    expect_rv(fails, p11->C_SeedRandom(s, buf, 16),
              CKR_RANDOM_SEED_NOT_SUPPORTED);
    expect_rv(fails, p11->C_SeedRandom(0x7777777, buf, 16),
              CKR_SESSION_HANDLE_INVALID);
    expect_rv(fails, p11->C_SessionCancel(s, CKF_ENCRYPT), CKR_OK);
    expect_rv(fails, p11->C_SessionCancel(0x7777777, CKF_ENCRYPT),
              CKR_SESSION_HANDLE_INVALID);
    /* the 2.40 list says the same */
    expect_rv(fails, p11_v2->C_SignRecoverInit(s, &mech, key), NS);
    expect_rv(fails, p11_v2->C_GetFunctionStatus(s), CKR_FUNCTION_NOT_PARALLEL);
    /* the session still works */
    expect_rv(fails, p11->C_GenerateRandom(s, buf, 16), CKR_OK);
    assert_int_equal(fails, 0);
}

/* ------------------------------------------------------------ random */

static void test_generate_random(void **state)
{
    CK_SESSION_HANDLE s = p11_open_ro();
    CK_BYTE a[32], b[32], zero[32], big[4096];

    (void)state;
    memset(zero, 0, sizeof(zero));
    p11_login_cu(s, "alice", P11_ALICE_PW);
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    assert_rv(p11->C_GenerateRandom(s, a, sizeof(a)), CKR_OK);
    assert_rv(p11->C_GenerateRandom(s, b, sizeof(b)), CKR_OK);
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_memory_not_equal(a, b, sizeof(a));
    assert_rv(p11->C_GenerateRandom(s, big, sizeof(big)), CKR_OK);
    assert_memory_not_equal(big + sizeof(big) - 32, zero, 32);
    assert_rv(p11->C_GenerateRandom(s, a, 0), CKR_OK);
    assert_rv(p11->C_GenerateRandom(s, NULL, 16), CKR_ARGUMENTS_BAD);
    assert_rv(p11->C_GenerateRandom(0x7777777, a, 16),
              CKR_SESSION_HANDLE_INVALID);
}

#define T(f, s) cmocka_unit_test_setup_teardown(f, s, p11_teardown)

int p11_group_sessions(void)
{
    const struct CMUnitTest tests[] = {
        T(test_not_initialized, p11_setup),
        T(test_double_init_finalize, p11_setup),
        T(test_init_args, p11_setup),
        T(test_init_mutex_callbacks, p11_setup),
        T(test_config_errors, p11_setup),
        T(test_config_label_default, p11_setup),
        T(test_fork, setup_alice),
        T(test_slot_list, p11_setup),
        T(test_slot_info, p11_setup),
        T(test_get_info, p11_setup),
        T(test_token_info, p11_setup),
        T(test_session_states, setup_alice),
        T(test_parallel_not_supported, p11_setup),
        T(test_session_count, p11_setup),
        T(test_session_count_config, p11_setup),
        T(test_close_all_sessions, setup_alice),
        T(test_close_last_logs_out, setup_alice),
        T(test_session_handles_unique, p11_setup),
        T(test_interface_list, p11_setup),
        T(test_get_interface, p11_setup),
        T(test_function_list, p11_setup),
        T(test_login_user_via_interface, setup_alice),
        T(test_mechanisms, p11_setup),
        T(test_unsupported, setup_alice),
        T(test_generate_random, setup_alice),
    };

    return cmocka_run_group_tests_name("sessions", tests, NULL, NULL);
}
