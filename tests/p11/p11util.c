/* p11util.c - loading the module, fresh stores, login and object helpers. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
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

/* Remote mode: the daemon of the current store. */
#define P11_DAEMON_WAIT_MS 60000 /* sanitizer builds start slowly */
#define P11_DAEMON_STOP_MS 60000
#define P11_TLS_PORT_TRIES 3
static pid_t p11_daemon = -1;
/* NIMBUS_TEST_SERVERS=2 (unix): a second nimbusd on the same store, and
 * the module configured with both (one HSM of two servers). */
static pid_t p11_daemon2 = -1;
static int p11_daemon_failures;

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

/* ------------------------------------------------------------ remote */

const char *p11_remote(void)
{
    const char *m = getenv("NIMBUS_TEST_REMOTE");

    if (m == NULL || *m == '\0' || strcmp(m, "embedded") == 0) {
        return NULL;
    }
    return m;
}

int p11_remote_failures(void)
{
    return p11_daemon_failures;
}

int p11_embedded_only(const char *why)
{
    if (p11_remote() == NULL) {
        return 0;
    }
    /* Said out loud: a remote run never passes such a test silently. */
    fprintf(stderr, "SKIP in remote mode (%s): %s\n", p11_remote(), why);
    return 1;
}

int p11_group_wanted(const char *name)
{
    const char *g = getenv("NIMBUS_P11_GROUPS");
    size_t len = strlen(name);

    if (g == NULL || *g == '\0') {
        return 1;
    }
    while (*g != '\0') {
        size_t n = strcspn(g, ",");
        if (n == len && strncmp(g, name, len) == 0) {
            return 1;
        }
        g += n;
        if (*g == ',') {
            g++;
        }
    }
    return 0;
}

/* The whole of a small file, NUL-terminated (static buffer; "" if none). */
static const char *slurp(const char *path)
{
    static char buf[64 * 1024];
    FILE *f = fopen(path, "r");
    size_t n = 0;

    buf[0] = '\0';
    if (f != NULL) {
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
    }
    buf[n] = '\0';
    return buf;
}

/* The daemon's log and stderr, on our stderr (when something went wrong). */
static void daemon_dump(const char *why)
{
    char path[PATH_MAX + 32];
    const char *text;
    size_t len;

    fprintf(stderr, "test_p11: nimbusd (pid %ld) %s\n", (long)p11_daemon, why);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", p11_tmpdir,
                 i == 0 ? "nimbusd.log" : "nimbusd.out");
        text = slurp(path);
        len = strlen(text);
        /* the end is what matters */
        fprintf(stderr, "--- %s\n%s\n", path,
                len > 3000 ? text + len - 3000 : text);
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/*
 * Stops the daemon with SIGTERM; anything but a clean exit 0 (it died
 * before, it crashed, it hung) is counted and its log printed.
 */
static void daemon_stop(void)
{
    int status = 0;
    pid_t r = 0;

    if (p11_daemon2 > 0) {
        kill(p11_daemon2, SIGTERM);
        waitpid(p11_daemon2, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            p11_daemon_failures++;
            fprintf(stderr, "test_p11: the second nimbusd did not exit 0\n");
        }
        p11_daemon2 = -1;
    }
    if (p11_daemon <= 0) {
        return;
    }
    r = waitpid(p11_daemon, &status, WNOHANG);
    if (r == p11_daemon) {
        p11_daemon_failures++;
        daemon_dump("died during the test");
        p11_daemon = -1;
        return;
    }
    kill(p11_daemon, SIGTERM);
    for (long t = 0; t < P11_DAEMON_STOP_MS; t += 20) {
        r = waitpid(p11_daemon, &status, WNOHANG);
        if (r != 0) {
            break;
        }
        sleep_ms(20);
    }
    if (r == 0) {
        kill(p11_daemon, SIGKILL);
        waitpid(p11_daemon, &status, 0);
        p11_daemon_failures++;
        daemon_dump("did not stop on SIGTERM");
    } else if (r != p11_daemon || !WIFEXITED(status) ||
               WEXITSTATUS(status) != 0) {
        p11_daemon_failures++;
        daemon_dump(WIFSIGNALED(status) ? "was killed by a signal"
                                        : "exited with an error on SIGTERM");
    }
    p11_daemon = -1;
}

/* A port below the ephemeral range that nothing listens on right now. */
static unsigned free_port(void)
{
    static unsigned seed;

    if (seed == 0) {
        seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    }
    for (int i = 0; i < 500; i++) {
        unsigned port = 20000 + (unsigned)(rand_r(&seed) % 12768);
        struct sockaddr_in sa;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int ok;

        assert_true(fd >= 0);
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(fd);
        if (ok) {
            return port;
        }
    }
    fail_msg("no free port in 20000-32767");
    return 0;
}

/* The PKI directory of a TLS run (made by the calling script). */
static const char *pki_dir(void)
{
    const char *pki = getenv("NIMBUS_TEST_PKI");

    if (pki == NULL || *pki == '\0') {
        fail_msg("NIMBUS_TEST_REMOTE=tls needs NIMBUS_TEST_PKI (the "
                 "throw-away CA of tests/remote/common.sh)");
    }
    return pki;
}

static int servers_wanted(void)
{
    const char *s = getenv("NIMBUS_TEST_SERVERS");

    return s != NULL && strcmp(s, "2") == 0 &&
           strcmp(p11_remote(), "unix") == 0;
}

/* With NIMBUS_TEST_SERVERS=2: the second nimbusd on the same store, its
 * endpoint appended to ep. 0 when it listens (or is not wanted). */
static int second_daemon(const char *conf, char *ep, size_t eplen,
                         const char *nimbusd)
{
    char dconf[PATH_MAX * 4 + 4096], path[PATH_MAX + 32], log[PATH_MAX + 32];
    size_t len = strlen(ep);
    int n;

    if (!servers_wanted()) {
        return 0;
    }
    snprintf(log, sizeof(log), "%s/nimbusd2.log", p11_tmpdir);
    n = snprintf(ep + len, eplen - len, ", unix:%s/sock/nimbusd2.sock",
                 p11_tmpdir);
    assert_true(n > 0 && (size_t)n < eplen - len);
    n = snprintf(dconf, sizeof(dconf),
                 "%s# the second daemon's own lines\nlog_level = info\n"
                 "log_file = %s\nlisten = %s\n",
                 conf, log, ep + len + 2);
    assert_true(n > 0 && (size_t)n < sizeof(dconf));
    snprintf(path, sizeof(path), "%s", p11_write_file("nimbusd2.conf", dconf));
    remove(log);
    fflush(NULL);
    p11_daemon2 = fork();
    assert_true(p11_daemon2 >= 0);
    if (p11_daemon2 == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execl(nimbusd, "nimbusd", "-c", path, "--foreground", (char *)NULL);
        _exit(127);
    }
    for (long t = 0; t < P11_DAEMON_WAIT_MS; t += 20) {
        if (strstr(slurp(log), "ready: listening") != NULL) {
            return 0;
        }
        sleep_ms(20);
    }
    fail_msg("the second nimbusd was not ready after %d ms",
             P11_DAEMON_WAIT_MS);
    return -1;
}

/*
 * Starts nimbusd on p11_dir()/store with the keys of conf (the lines of
 * the store's own configuration) and writes the endpoint the module must
 * name into ep. Returns 0 when it listens; -1 when it exited first (a bad
 * line in conf, which the module then reports too); -2 when it lost its
 * TLS port to another process.
 */
static int daemon_start(const char *conf, char *ep, size_t eplen)
{
    char dconf[PATH_MAX * 4 + 4096], path[PATH_MAX + 32], log[PATH_MAX + 32];
    const char *nimbusd = getenv("NIMBUSD");
    const char *top = getenv("NIMBUS_TOP_BUILDDIR");
    static char nimbusd_buf[PATH_MAX];
    int n, status, fd;

    if (nimbusd == NULL || *nimbusd == '\0') {
        snprintf(nimbusd_buf, sizeof(nimbusd_buf), "%s/nimbusd",
                 top != NULL && *top != '\0' ? top : ".");
        nimbusd = nimbusd_buf;
    }
    if (strcmp(p11_remote(), "unix") == 0) {
        n = snprintf(ep, eplen, "unix:%s/sock/nimbusd.sock", p11_tmpdir);
    } else if (strcmp(p11_remote(), "tls") == 0) {
        n = snprintf(ep, eplen, "tls:127.0.0.1:%u", free_port());
    } else {
        fail_msg("NIMBUS_TEST_REMOTE=%s: not unix, tls or embedded",
                 p11_remote());
        return -1;
    }
    assert_true(n > 0 && (size_t)n < eplen);
    snprintf(log, sizeof(log), "%s/nimbusd.log", p11_tmpdir);
    n = snprintf(dconf, sizeof(dconf),
                 "%s# the daemon's own lines\nlog_level = info\n"
                 "log_file = %s\nlisten = %s\n",
                 conf, log, ep);
    if (strcmp(p11_remote(), "tls") == 0) {
        const char *pki = pki_dir();
        n += snprintf(dconf + n, sizeof(dconf) - (size_t)n,
                      "tls_cert = %s/server.pem\ntls_key = %s/server.key\n"
                      "tls_ca = %s/ca.pem\n",
                      pki, pki, pki);
    }
    assert_true(n > 0 && (size_t)n < sizeof(dconf));
    snprintf(path, sizeof(path), "%s", p11_write_file("nimbusd.conf", dconf));
    remove(log);

    fflush(NULL);
    p11_daemon = fork();
    assert_true(p11_daemon >= 0);
    if (p11_daemon == 0) {
        char out[PATH_MAX + 32];

        /* A killed test leaves no daemon behind. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        snprintf(out, sizeof(out), "%s/nimbusd.out", p11_tmpdir);
        fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(nimbusd, "nimbusd", "-c", path, "--foreground", (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", nimbusd, strerror(errno));
        _exit(127);
    }
    for (long t = 0; t < P11_DAEMON_WAIT_MS; t += 20) {
        if (strstr(slurp(log), "ready: listening") != NULL) {
            return second_daemon(conf, ep, eplen, nimbusd);
        }
        if (waitpid(p11_daemon, &status, WNOHANG) == p11_daemon) {
            const char *text = slurp(log);
            int lost = strstr(text, "in use") != NULL;

            if (!lost) {
                daemon_dump("exited before it was ready");
            }
            p11_daemon = -1;
            return lost ? -2 : -1;
        }
        sleep_ms(20);
    }
    daemon_dump("was not ready in time");
    kill(p11_daemon, SIGKILL);
    waitpid(p11_daemon, &status, 0);
    p11_daemon = -1;
    fail_msg("nimbusd was not ready after %d ms", P11_DAEMON_WAIT_MS);
    return -1;
}

/*
 * The module's configuration in remote mode: the daemon's endpoint, the
 * test's keys (the front end reads some: max_sessions, default_user ...)
 * and a `store` that is a plain file: a module that ran embedded instead
 * of reaching the daemon fails at once rather than pass on a store of its
 * own.
 */
static void write_client_conf(const char *extra_conf, const char *ep)
{
    char conf[PATH_MAX * 4 + 4096];
    int n;

    p11_write_file("not-a-store",
                   "remote mode: the module must not open a store here\n");
    n = snprintf(conf, sizeof(conf),
                 "# written by test_p11: the module talks to nimbusd\n"
                 "store = %s/not-a-store\nservers = %s\n%s%s",
                 p11_tmpdir, ep, extra_conf != NULL ? extra_conf : "",
                 extra_conf != NULL ? "\n" : "");
    if (strcmp(p11_remote(), "tls") == 0) {
        const char *pki = pki_dir();
        n += snprintf(conf + n, sizeof(conf) - (size_t)n,
                      "tls_cert = %s/client.pem\ntls_key = %s/client.key\n"
                      "tls_ca = %s/ca.pem\n",
                      pki, pki, pki);
    }
    assert_true(n > 0 && (size_t)n < sizeof(conf));
    assert_int_equal(
        setenv("NIMBUS_CONF", p11_write_file("nimbus.conf", conf), 1), 0);
}

void p11_cleanup(void)
{
    if (p11 != NULL) {
        (void)p11->C_Finalize(NULL);
    }
    daemon_stop();
    rm_tree(p11_tmpdir);
    p11_tmpdir[0] = '\0';
    snprintf(p11_so_pw, sizeof(p11_so_pw), "%s", P11_SO_PW);
}

/* The store's configuration: the daemon's in remote mode. */
static void store_conf(const char *extra_conf, char *conf, size_t size)
{
    int n;

    n = snprintf(conf, size, "# written by test_p11\nstore = %s/store\n",
                 p11_tmpdir);
    if (extra_conf == NULL || strstr(extra_conf, "kdf_iterations") == NULL) {
        n += snprintf(conf + n, size - (size_t)n, "kdf_iterations = 1000\n");
    }
    if (extra_conf == NULL ||
        strstr(extra_conf, "login_failure_limit") == NULL) {
        n += snprintf(conf + n, size - (size_t)n, "login_failure_limit = 5\n");
    }
    if (extra_conf != NULL) {
        n += snprintf(conf + n, size - (size_t)n, "%s\n", extra_conf);
    }
    assert_true(n > 0 && (size_t)n < size);
}

/* (Re)starts the daemon of the current store, retrying a lost TLS port. */
static void daemon_up(const char *conf, char *ep, size_t eplen)
{
    int r = -2;

    for (int i = 0; i < P11_TLS_PORT_TRIES && r == -2; i++) {
        r = daemon_start(conf, ep, eplen);
    }
}

/* The store configuration the daemon was last started with. */
static char p11_store_conf[PATH_MAX * 2 + 4096];
static char p11_client_extra[4096];

CK_RV p11_fresh_rv(const char *extra_conf)
{
    const char *tmp = getenv("TMPDIR");
    char ep[PATH_MAX + 32];

    p11_cleanup();
    if (tmp == NULL || *tmp == '\0') {
        tmp = "/tmp";
    }
    snprintf(p11_tmpdir, sizeof(p11_tmpdir), "%s/nimbus-p11-XXXXXX", tmp);
    assert_non_null(mkdtemp(p11_tmpdir));
    store_conf(extra_conf, p11_store_conf, sizeof(p11_store_conf));
    /* A test that names servers itself is about the module's view of
     * them: no daemon of ours then. */
    if (p11_remote() == NULL ||
        (extra_conf != NULL && strstr(extra_conf, "servers") != NULL)) {
        assert_int_equal(setenv("NIMBUS_CONF",
                                p11_write_file("nimbus.conf", p11_store_conf),
                                1),
                         0);
        return p11->C_Initialize(NULL);
    }
    snprintf(p11_client_extra, sizeof(p11_client_extra), "%s",
             extra_conf != NULL ? extra_conf : "");
    daemon_up(p11_store_conf, ep, sizeof(ep));
    write_client_conf(p11_client_extra, ep);
    return p11->C_Initialize(NULL);
}

void p11_fresh(const char *extra_conf)
{
    assert_rv(p11_fresh_rv(extra_conf), CKR_OK);
}

void p11_restart_conf(const char *extra_conf)
{
    char ep[PATH_MAX + 32];

    assert_rv(p11->C_Finalize(NULL), CKR_OK);
    store_conf(extra_conf, p11_store_conf, sizeof(p11_store_conf));
    if (p11_remote() == NULL) {
        assert_int_equal(setenv("NIMBUS_CONF",
                                p11_write_file("nimbus.conf", p11_store_conf),
                                1),
                         0);
    } else {
        daemon_stop();
        daemon_up(p11_store_conf, ep, sizeof(ep));
        assert_true(p11_daemon > 0);
        snprintf(p11_client_extra, sizeof(p11_client_extra), "%s",
                 extra_conf != NULL ? extra_conf : "");
        write_client_conf(p11_client_extra, ep);
    }
    assert_rv(p11->C_Initialize(NULL), CKR_OK);
}

void p11_restart(void)
{
    char ep[PATH_MAX + 32];

    assert_rv(p11->C_Finalize(NULL), CKR_OK);
    if (p11_remote() != NULL) {
        /* What survives a restart must survive the daemon's. */
        daemon_stop();
        daemon_up(p11_store_conf, ep, sizeof(ep));
        assert_true(p11_daemon > 0);
        write_client_conf(p11_client_extra, ep);
    }
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
