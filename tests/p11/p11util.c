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

/* Cluster mode: nodes 1..P11_NODES (pid 0: not running), their cluster
 * ports, and how many have joined (0, 1 before activation, then all). */
#define P11_NODES 3
#define P11_CLUSTER_ID_DEFAULT "p11-test-cluster"
static pid_t p11_node[P11_NODES + 1];
static unsigned p11_node_port[P11_NODES + 1];
static int p11_members;

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

/* A daemon's log and stderr (in dir), on our stderr (when something went
 * wrong). */
static void dump_dir(const char *dir, pid_t pid, const char *why)
{
    char path[PATH_MAX + 32];
    const char *text;
    size_t len;

    fprintf(stderr, "test_p11: nimbusd (pid %ld, %s) %s\n", (long)pid, dir,
            why);
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir,
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
 * Stops the daemon *pid (its files in dir) with SIGTERM; anything but a
 * clean exit 0 (it died before, it crashed, it hung) is counted and its
 * log printed.
 */
static void stop_pid(pid_t *pid, const char *dir)
{
    int status = 0;
    pid_t r = 0;

    if (*pid <= 0) {
        return;
    }
    r = waitpid(*pid, &status, WNOHANG);
    if (r == *pid) {
        p11_daemon_failures++;
        dump_dir(dir, *pid, "died during the test");
        *pid = -1;
        return;
    }
    kill(*pid, SIGTERM);
    for (long t = 0; t < P11_DAEMON_STOP_MS; t += 20) {
        r = waitpid(*pid, &status, WNOHANG);
        if (r != 0) {
            break;
        }
        sleep_ms(20);
    }
    if (r == 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, &status, 0);
        p11_daemon_failures++;
        dump_dir(dir, *pid, "did not stop on SIGTERM");
    } else if (r != *pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        p11_daemon_failures++;
        dump_dir(dir, *pid,
                 WIFSIGNALED(status) ? "was killed by a signal"
                                     : "exited with an error on SIGTERM");
    }
    *pid = -1;
}

static int cluster_mode(void);
static void cluster_check_sync(void);
static void cluster_stop(void);

static void daemon_stop(void)
{
    int status = 0;

    if (p11_daemon2 > 0) {
        kill(p11_daemon2, SIGTERM);
        waitpid(p11_daemon2, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            p11_daemon_failures++;
            fprintf(stderr, "test_p11: the second nimbusd did not exit 0\n");
        }
        p11_daemon2 = -1;
    }
    stop_pid(&p11_daemon, p11_tmpdir);
    if (p11_remote() != NULL && cluster_mode()) {
        cluster_stop();
    }
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
        fail_msg("NIMBUS_TEST_REMOTE=%s needs NIMBUS_TEST_PKI (the "
                 "throw-away CA of tests/remote/run.sh)",
                 p11_remote());
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

static const char *nimbusd_path(void)
{
    const char *nimbusd = getenv("NIMBUSD");
    const char *top = getenv("NIMBUS_TOP_BUILDDIR");
    static char buf[PATH_MAX];

    if (nimbusd == NULL || *nimbusd == '\0') {
        snprintf(buf, sizeof(buf), "%s/nimbusd",
                 top != NULL && *top != '\0' ? top : ".");
        nimbusd = buf;
    }
    return nimbusd;
}

/* Forks nimbusd -c conf --foreground, its stdout and stderr appended to
 * dir/nimbusd.out. */
static pid_t spawn_daemon(const char *dir, const char *conf)
{
    const char *nimbusd = nimbusd_path();
    pid_t pid;

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char out[PATH_MAX + 32];
        int fd;

        /* A killed test leaves no daemon behind. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        snprintf(out, sizeof(out), "%s/nimbusd.out", dir);
        fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(nimbusd, "nimbusd", "-c", conf, "--foreground", (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", nimbusd, strerror(errno));
        _exit(127);
    }
    return pid;
}

/*
 * Waits until dir/nimbusd.log says what (0). -1 when the daemon exited
 * first (its log printed); -2 when it exited because a port it was given
 * was taken meanwhile (the log says "in use"). A daemon that says
 * nothing in time fails the test. *pid is -1 after an exit.
 */
static int wait_log(pid_t *pid, const char *dir, const char *what)
{
    char log[PATH_MAX + 32];
    int status;

    snprintf(log, sizeof(log), "%s/nimbusd.log", dir);
    for (long t = 0; t < P11_DAEMON_WAIT_MS; t += 20) {
        if (strstr(slurp(log), what) != NULL) {
            return 0;
        }
        if (waitpid(*pid, &status, WNOHANG) == *pid) {
            const char *text = slurp(log);
            int lost = strstr(text, "in use") != NULL;

            if (!lost) {
                dump_dir(dir, *pid, "exited before it was ready");
            }
            *pid = -1;
            return lost ? -2 : -1;
        }
        sleep_ms(20);
    }
    dump_dir(dir, *pid, "was not ready in time");
    kill(*pid, SIGKILL);
    waitpid(*pid, &status, 0);
    *pid = -1;
    fail_msg("nimbusd was not ready after %d ms", P11_DAEMON_WAIT_MS);
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
    int n, r;

    if (strcmp(p11_remote(), "unix") == 0) {
        n = snprintf(ep, eplen, "unix:%s/sock/nimbusd.sock", p11_tmpdir);
    } else if (strcmp(p11_remote(), "tls") == 0) {
        n = snprintf(ep, eplen, "tls:127.0.0.1:%u", free_port());
    } else {
        fail_msg("NIMBUS_TEST_REMOTE=%s: not unix, tls, cluster, "
                 "cluster-degraded or embedded",
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
    p11_daemon = spawn_daemon(p11_tmpdir, path);
    r = wait_log(&p11_daemon, p11_tmpdir, "ready: listening");
    return r == 0 ? second_daemon(conf, ep, eplen, nimbusd_path()) : r;
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

static void forget_user_ids(void);

void p11_cleanup(void)
{
    forget_user_ids();
    if (p11 != NULL) {
        (void)p11->C_Finalize(NULL);
    }
    if (cluster_mode() && p11_members == P11_NODES) {
        cluster_check_sync();
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

/* ------------------------------------------------------------ cluster */

/*
 * NIMBUS_TEST_REMOTE=cluster: a fresh store is a fresh cluster of
 * P11_NODES nimbusd on loopback, each in p11_dir()/nN with its own store,
 * raft directory and unix socket, with the certificates of
 * tests/cluster/mkpki.sh in NIMBUS_TEST_PKI. Node 1 bootstraps it; until
 * the token is activated it is the only member (only a CO adds nodes), so
 * the module talks to it. p11_activate then starts the other nodes, the
 * CO adds them (nimbus-mgmt addNode, as an operator would) and the module
 * is pointed at node 2, a follower: every write it makes is forwarded to
 * the leader. cluster-degraded stops the last node once the cluster has
 * formed: a follower down, the other two still a majority.
 */
static int cluster_mode(void)
{
    const char *m = p11_remote();

    return m != NULL &&
           (strcmp(m, "cluster") == 0 || strcmp(m, "cluster-degraded") == 0);
}

static int cluster_degraded(void)
{
    const char *m = p11_remote();

    return m != NULL && strcmp(m, "cluster-degraded") == 0;
}

static const char *cluster_id(void)
{
    const char *id = getenv("NIMBUS_TEST_CLUSTER_ID");

    return id != NULL && *id != '\0' ? id : P11_CLUSTER_ID_DEFAULT;
}

/* The module's endpoint: node 1 before activation, then node 2. */
static char p11_cluster_ep[PATH_MAX + 64];

static void node_dir(int i, char *dir, size_t len)
{
    int n = snprintf(dir, len, "%s/n%d", p11_tmpdir, i);

    assert_true(n > 0 && (size_t)n < len);
}

static void node_ep(int i, char *ep, size_t len)
{
    int n = snprintf(ep, len, "unix:%s/n%d/sock/nimbusd.sock", p11_tmpdir, i);

    assert_true(n > 0 && (size_t)n < len);
}

/* The store's keys in p11_store_conf: what follows its store line. */
static const char *store_conf_keys(void)
{
    const char *p = strstr(p11_store_conf, "\nstore = ");

    assert_non_null(p);
    p = strchr(p + 1, '\n');
    assert_non_null(p);
    return p + 1;
}

/*
 * Writes node i's nimbusd.conf (the store's keys, then its own files and
 * cluster lines) and the client.conf nimbus-mgmt uses to reach it;
 * returns the path of the first (static buffer).
 */
static const char *node_write_conf(int i)
{
    static char path[PATH_MAX + 64];
    char conf[PATH_MAX * 12 + 4096], dir[PATH_MAX + 16], ep[PATH_MAX + 64];
    char name[64];
    const char *pki = pki_dir();
    int n;

    node_dir(i, dir, sizeof(dir));
    assert_true(mkdir(dir, 0700) == 0 || errno == EEXIST);
    node_ep(i, ep, sizeof(ep));
    n = snprintf(conf, sizeof(conf),
                 "# written by test_p11: cluster node %d\nstore = %s/store\n"
                 "%s# the node's own lines\nlog_level = info\n"
                 "log_file = %s/nimbusd.log\nlisten = %s\n"
                 "cluster_id = %s\ncluster_node_id = %d\n"
                 "cluster_listen = 127.0.0.1:%u\ncluster_ca = %s/ca.crt\n"
                 "cluster_cert = %s/node%d.crt\ncluster_key = %s/node%d.key\n",
                 i, dir, store_conf_keys(), dir, ep, cluster_id(), i,
                 p11_node_port[i], pki, pki, i, pki, i);
    assert_true(n > 0 && (size_t)n < sizeof(conf));
    /* node 1 makes the cluster; the others fetch its key once added */
    if (i == 1) {
        n += snprintf(conf + n, sizeof(conf) - (size_t)n,
                      "cluster_bootstrap = yes\n");
    } else {
        n += snprintf(conf + n, sizeof(conf) - (size_t)n,
                      "cluster_join = 127.0.0.1:%u\n", p11_node_port[1]);
    }
    assert_true(n > 0 && (size_t)n < sizeof(conf));
    snprintf(name, sizeof(name), "n%d/client.conf", i);
    snprintf(conf + n, sizeof(conf) - (size_t)n, "servers = %s\n", ep);
    p11_write_file(name, conf + n);
    conf[n] = '\0';
    snprintf(name, sizeof(name), "n%d/nimbusd.conf", i);
    snprintf(path, sizeof(path), "%s", p11_write_file(name, conf));
    return path;
}

/* Forks node i on its configuration; the log of a previous run is kept
 * beside as nimbusd.log.old (so that waiting reads the new one). */
static void node_spawn(int i)
{
    char dir[PATH_MAX + 16], log[PATH_MAX + 32], old[PATH_MAX + 32];
    const char *conf = node_write_conf(i);

    node_dir(i, dir, sizeof(dir));
    snprintf(log, sizeof(log), "%s/nimbusd.log", dir);
    snprintf(old, sizeof(old), "%s/nimbusd.log.old", dir);
    (void)rename(log, old);
    p11_node[i] = spawn_daemon(dir, conf);
}

static void node_wait(int i, const char *what)
{
    char dir[PATH_MAX + 16];

    node_dir(i, dir, sizeof(dir));
    if (wait_log(&p11_node[i], dir, what) != 0) {
        fail_msg("cluster node %d did not start", i);
    }
}

/*
 * First start of node i on a fresh port: waits until its log says what;
 * a port taken meanwhile by another process is replaced (a port is fixed
 * once the node is in the raft configuration).
 */
static void node_first_start(int i, const char *what)
{
    char dir[PATH_MAX + 16];
    int r = -2;

    node_dir(i, dir, sizeof(dir));
    for (int t = 0; t < P11_TLS_PORT_TRIES && r == -2; t++) {
        p11_node_port[i] = free_port();
        node_spawn(i);
        r = wait_log(&p11_node[i], dir, what);
    }
    if (r != 0) {
        fail_msg("cluster node %d did not start", i);
    }
}

static void node_stop(int i)
{
    char dir[PATH_MAX + 16];

    node_dir(i, dir, sizeof(dir));
    stop_pid(&p11_node[i], dir);
}

/* Stops every node that runs. */
static void cluster_stop(void)
{
    for (int i = 1; i <= P11_NODES; i++) {
        if (p11_node[i] > 0) {
            node_stop(i);
        }
        p11_node[i] = 0;
    }
    p11_members = 0;
}

/* A fresh cluster: node 1 alone, not activated; ep names it. */
static void cluster_fresh(char *ep, size_t eplen)
{
    cluster_stop();
    memset(p11_node_port, 0, sizeof(p11_node_port));
    node_first_start(1, "ready: listening");
    p11_members = 1;
    node_ep(1, p11_cluster_ep, sizeof(p11_cluster_ep));
    assert_true(strlen(p11_cluster_ep) < eplen);
    memcpy(ep, p11_cluster_ep, strlen(p11_cluster_ep) + 1);
}

/* Starts nimbus-mgmt -y (with -c cmds unless cmds is NULL) with
 * NIMBUS_CONF=conf, its output to path (p11_dir()/mgmt.out), its stdin
 * from in_fd unless -1; the child closes in_fd and other_fd (the pipe's
 * other end, or -1). Returns its pid. */
static pid_t mgmt_spawn(const char *conf, const char *cmds, int in_fd,
                        int other_fd, char *path, size_t pathlen)
{
    const char *top = getenv("NIMBUS_TOP_BUILDDIR");
    char mgmt[PATH_MAX];
    pid_t pid;

    snprintf(mgmt, sizeof(mgmt), "%s/nimbus-mgmt",
             top != NULL && *top != '\0' ? top : ".");
    snprintf(path, pathlen, "%s/mgmt.out", p11_tmpdir);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (in_fd >= 0) {
            dup2(in_fd, 0);
            close(in_fd);
        }
        if (other_fd >= 0)
            close(other_fd);
        setenv("NIMBUS_CONF", conf, 1);
        if (cmds != NULL)
            execl(mgmt, "nimbus-mgmt", "-y", "-c", cmds, (char *)NULL);
        else
            execl(mgmt, "nimbus-mgmt", "-y", (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", mgmt, strerror(errno));
        _exit(127);
    }
    return pid;
}

/* nimbus-mgmt -y -c cmds with NIMBUS_CONF=conf; returns its wait status
 * and its output (p11_dir()/mgmt.out, static buffer) in *out. */
static int run_mgmt(const char *conf, const char *cmds, const char **out)
{
    char path[PATH_MAX + 32];
    int status = 0;
    pid_t pid = mgmt_spawn(conf, cmds, -1, -1, path, sizeof(path));

    assert_int_equal(waitpid(pid, &status, 0), pid);
    *out = slurp(path);
    return status;
}

/*
 * nimbus-mgmt -y with NIMBUS_CONF=conf reading first, then `rounds` times
 * again, gap_ms apart, from a pipe on its stdin (a shell reads commands
 * from a pipe as they come); its output (static buffer) in *out.
 */
static void run_mgmt_paced(const char *conf, const char *first,
                           const char *again, int rounds, long gap_ms,
                           const char **out)
{
    char path[PATH_MAX + 32];
    int status = 0, fds[2];
    pid_t pid;
    FILE *in;

    assert_int_equal(pipe(fds), 0);
    pid = mgmt_spawn(conf, NULL, fds[0], fds[1], path, sizeof(path));
    close(fds[0]);
    in = fdopen(fds[1], "w");
    assert_non_null(in);
    fprintf(in, "%s\n", first);
    fflush(in);
    for (int r = 0; r < rounds; r++) {
        sleep_ms(gap_ms);
        fprintf(in, "%s\n", again);
        fflush(in);
    }
    fclose(in);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    *out = slurp(path);
}

/* nimbus-mgmt -y -c cmds against node i; asserts it exits 0 (its output
 * printed if not) and returns that output. */
static const char *cluster_mgmt(int i, const char *cmds)
{
    char conf[PATH_MAX + 32];
    const char *out;
    int status;

    snprintf(conf, sizeof(conf), "%s/n%d/client.conf", p11_tmpdir, i);
    status = run_mgmt(conf, cmds, &out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "test_p11: nimbus-mgmt on node %d failed:\n%s\n", i,
                out);
        fail_msg("nimbus-mgmt failed (status 0x%x)", (unsigned)status);
    }
    return out;
}

/*
 * Whether one round of digest lines (one per running node, in order)
 * starting at *p shows every node at the same applied index; then
 * whether their digests are equal too (*same). Moves *p past the round;
 * 0 when there is no complete round left.
 */
static int digest_round(const char **p, int nodes, int *at_same_index,
                        int *same)
{
    char first[80] = "", hex[80];
    unsigned long long idx0 = 0, idx;
    int got = 0;

    *at_same_index = 1;
    *same = 1;
    while (got < nodes) {
        const char *l = strstr(*p, "digest on server ");
        const char *c;

        if (l == NULL || (c = strstr(l, "): ")) == NULL ||
            sscanf(c + 3, "%79s applied %llu", hex, &idx) != 2) {
            return 0;
        }
        *p = c + 3;
        if (got == 0) {
            snprintf(first, sizeof(first), "%s", hex);
            idx0 = idx;
        } else {
            *at_same_index &= idx == idx0;
            *same &= strcmp(hex, first) == 0;
        }
        got++;
    }
    return 1;
}

/*
 * At the end of a test on a formed cluster: every running node has
 * applied the same state (equal digests at an equal applied index). The
 * CO's login (the password p11_activate set) reads the digests; a test
 * that changed or locked it leaves nothing to check (said on stderr).
 * The login itself is an entry, which the followers apply once the
 * leader's next message tells them it is committed (a heartbeat, 50 ms):
 * the digests are read in rounds some time apart until one finds every
 * node at the same index, the rounds further apart on each try.
 */
#define P11_SYNC_ROUNDS 10
#define P11_SYNC_TRIES 3
static void cluster_check_sync(void)
{
    static const long gap_ms[P11_SYNC_TRIES] = {20, 60, 200};
    char conf[PATH_MAX * 4 + 256], login[128];
    char ep[PATH_MAX + 64], path[PATH_MAX + 32], last[4096] = "";
    int nodes = 0, cn = 0;

    cn = snprintf(conf, sizeof(conf), "servers = ");
    for (int i = 1; i <= P11_NODES; i++) {
        if (p11_node[i] > 0) {
            node_ep(i, ep, sizeof(ep));
            cn += snprintf(conf + cn, sizeof(conf) - (size_t)cn, "%s%s",
                           nodes > 0 ? ", " : "", ep);
            nodes++;
        }
    }
    assert_true(cn > 0 && (size_t)cn < sizeof(conf) - 2);
    conf[cn++] = '\n';
    conf[cn] = '\0';
    snprintf(login, sizeof(login), "loginHSM CO admin %s", p11_so_pw);
    snprintf(path, sizeof(path), "%s", p11_write_file("sync.conf", conf));
    for (int t = 0; t < P11_SYNC_TRIES; t++) {
        const char *out, *p;
        int at, same;

        run_mgmt_paced(path, login, "getClusterDigest", P11_SYNC_ROUNDS,
                       gap_ms[t], &out);
        if (strstr(out, "loginHSM success") == NULL ||
            strstr(out, "digest on server") == NULL) {
            fprintf(stderr, "test_p11: sync not checked (the CO's login of the "
                            "test's start fails now)\n");
            return;
        }
        p = out;
        while (digest_round(&p, nodes, &at, &same)) {
            if (at) {
                if (same) {
                    return;
                }
                fprintf(stderr,
                        "test_p11: the nodes differ at the same applied "
                        "index:\n%s\n",
                        out);
                p11_daemon_failures++;
                return;
            }
        }
        snprintf(last, sizeof(last), "%s", out);
    }
    fprintf(stderr,
            "test_p11: the nodes were never at the same applied index:\n"
            "%s\n",
            last);
    p11_daemon_failures++;
}

/*
 * Once per run: node 2, the module's, sees itself as a follower of a
 * cluster of P11_NODES (so that the suite's writes are forwarded), and
 * in cluster-degraded the stopped node is still a member.
 */
static void cluster_check_formed(const char *so_pw)
{
    static int checked;
    char cmds[256], want[64];
    const char *out;

    if (checked) {
        return;
    }
    snprintf(cmds, sizeof(cmds), "loginHSM CO admin %s; listNodes", so_pw);
    out = cluster_mgmt(2, cmds);
    snprintf(want, sizeof(want), "Number of nodes found %d", P11_NODES);
    if (strstr(out, "This node 2: follower") == NULL ||
        strstr(out, want) == NULL) {
        fprintf(stderr, "test_p11: node 2's listNodes:\n%s\n", out);
        fail_msg("node 2 is not a follower in a cluster of %d", P11_NODES);
    }
    checked = 1;
}

/*
 * After the activation: the other nodes start, the CO adds them through
 * node 1, and the module is started again on node 2 (sessions and logins
 * of before are gone: p11_activate is called with none).
 */
static void cluster_grow(const char *so_pw)
{
    char cmds[1024];
    int n;

    assert_rv(p11->C_Finalize(NULL), CKR_OK);
    n = snprintf(cmds, sizeof(cmds), "loginHSM CO admin %s", so_pw);
    for (int i = 2; i <= P11_NODES; i++) {
        /* said once its engine listens: it now waits to be added */
        node_first_start(i, "fetching the cluster key");
        n += snprintf(cmds + n, sizeof(cmds) - (size_t)n,
                      "; addNode %d 127.0.0.1:%u", i, p11_node_port[i]);
        assert_true(n > 0 && (size_t)n < sizeof(cmds));
    }
    cluster_mgmt(1, cmds);
    for (int i = 2; i <= P11_NODES; i++) {
        node_wait(i, "ready: listening");
    }
    p11_members = P11_NODES;
    if (cluster_degraded()) {
        node_stop(P11_NODES);
        p11_node[P11_NODES] = 0;
    }
    cluster_check_formed(so_pw);
    node_ep(2, p11_cluster_ep, sizeof(p11_cluster_ep));
    write_client_conf(p11_client_extra, p11_cluster_ep);
    assert_rv(p11->C_Initialize(NULL), CKR_OK);
}

/* Every node that ran is stopped and started again from its directory
 * (on the configuration p11_store_conf now holds); ep names the module's. */
static void cluster_restart(char *ep, size_t eplen)
{
    int was[P11_NODES + 1] = {0};

    for (int i = 1; i <= p11_members; i++) {
        was[i] = p11_node[i] > 0;
        node_stop(i);
        p11_node[i] = 0;
    }
    /* all first: a node may need the others' votes to serve */
    for (int i = 1; i <= p11_members; i++) {
        if (was[i]) {
            node_spawn(i);
        }
    }
    for (int i = 1; i <= p11_members; i++) {
        if (was[i]) {
            node_wait(i, "ready: listening");
        }
    }
    assert_true(strlen(p11_cluster_ep) < eplen);
    memcpy(ep, p11_cluster_ep, strlen(p11_cluster_ep) + 1);
}

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
    if (cluster_mode()) {
        cluster_fresh(ep, sizeof(ep));
    } else {
        daemon_up(p11_store_conf, ep, sizeof(ep));
    }
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
    } else if (cluster_mode()) {
        cluster_restart(ep, sizeof(ep));
        snprintf(p11_client_extra, sizeof(p11_client_extra), "%s",
                 extra_conf != NULL ? extra_conf : "");
        write_client_conf(p11_client_extra, ep);
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
        if (cluster_mode()) {
            cluster_restart(ep, sizeof(ep));
        } else {
            daemon_stop();
            daemon_up(p11_store_conf, ep, sizeof(ep));
            assert_true(p11_daemon > 0);
        }
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
    if (cluster_mode() && p11_members == 1) {
        cluster_grow(so_pw);
    }
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

/* ------------------------------------------------------------ user ids */

/* Ids looked up on the current store (cleared with it). */
#define P11_UID_CACHE 8
static struct {
    char name[32];
    CK_ULONG id;
} p11_uids[P11_UID_CACHE];
static int p11_nuids;

static void forget_user_ids(void)
{
    p11_nuids = 0;
}

CK_ULONG p11_user_id(const char *name)
{
    const char *top = getenv("NIMBUS_TOP_BUILDDIR");
    const char *conf = getenv("NIMBUS_CONF");
    char cmd[PATH_MAX * 3], line[512], got[64], type[32];
    CK_ULONG id = CK_UNAVAILABLE_INFORMATION;
    unsigned long v;
    FILE *f;
    int n;

    for (int i = 0; i < p11_nuids; i++) {
        if (strcmp(p11_uids[i].name, name) == 0) {
            return p11_uids[i].id;
        }
    }
    assert_non_null(conf);
    assert_true(strlen(name) < sizeof(p11_uids[0].name));
    /* nimbus-mgmt on the module's own configuration: the embedded store,
     * or the server (a cluster node) the module talks to */
    n = snprintf(cmd, sizeof(cmd),
                 "NIMBUS_CONF='%s' '%s/nimbus-mgmt' -c "
                 "listUsers 2>&1",
                 conf, top != NULL && *top != '\0' ? top : ".");
    assert_true(n > 0 && (size_t)n < sizeof(cmd));
    fflush(NULL);
    f = popen(cmd, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "%lu %31s %63s", &v, type, got) == 3 &&
            strcmp(got, name) == 0) {
            id = v;
        }
    }
    assert_int_equal(pclose(f), 0);
    if (id == CK_UNAVAILABLE_INFORMATION) {
        fail_msg("nimbus-mgmt listUsers does not list %s", name);
    }
    if (p11_nuids < P11_UID_CACHE) {
        snprintf(p11_uids[p11_nuids].name, sizeof(p11_uids[0].name), "%s",
                 name);
        p11_uids[p11_nuids++].id = id;
    }
    return id;
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
