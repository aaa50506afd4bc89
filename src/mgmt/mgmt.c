/*
 * mgmt.c - nimbus-mgmt: the management shell with the cloud HSM's command
 * set (cloudhsm_mgmt_util), interactive or scripted.
 *
 *   nimbus-mgmt [-y] [-c "cmd; cmd ..."] [config]
 *
 * Commands come from the terminal (prompt "nimbus>"), from a pipe or a file
 * on stdin (no prompt), or from -c (';' separates commands). Any
 * unambiguous prefix of a command name works, in any case. -y answers the
 * CAUTION prompts. The exit status is 0 when every command succeeded, 1
 * when one failed, 2 when the shell could not start.
 *
 * Everything goes through hsm.h (the same calls as the PKCS#11 module), so
 * the permission table, lockout and ownership rules hold here too.
 * Passwords are wiped from every buffer that held them.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/util.h"
#include "mgmt/mgmt.h"

static const char caution_text[] =
    "*************************CAUTION********************************\n"
    "This is a CRITICAL operation, should be done on all nodes in the\n"
    "cluster. Cav server does NOT synchronize these changes with the\n"
    "nodes on which this operation is not executed or failed, please\n"
    "ensure this operation is executed on all nodes in the cluster.\n"
    "****************************************************************\n"
    "\n"
    "Do you want to continue(y/n)?";

/* ------------------------------------------------------------ commands */

const struct mgmt_cmd *mgmt_cmd_find(const char *word, bool *ambiguous)
{
    const struct mgmt_cmd *hit = NULL;
    size_t len = strlen(word), nhits = 0;

    *ambiguous = false;
    for (size_t i = 0; i < mgmt_ncommands; i++) {
        if (strcasecmp(word, mgmt_commands[i].name) == 0)
            return &mgmt_commands[i];
    }
    if (len == 0)
        return NULL;
    for (size_t i = 0; i < mgmt_ncommands; i++) {
        if (strncasecmp(word, mgmt_commands[i].name, len) == 0) {
            hit = &mgmt_commands[i];
            nhits++;
        }
    }
    if (nhits > 1) {
        *ambiguous = true;
        return NULL;
    }
    return hit;
}

int mgmt_usage(const struct mgmt_cmd *c)
{
    fflush(stdout);
    fprintf(stderr, "usage: %s\n", c->usage);
    return 1;
}

/* ------------------------------------------------------------ servers */

struct mgmt_server *mgmt_server_first(struct mgmt *m)
{
    if (m->current >= 0)
        return &m->servers[m->current];
    return m->nservers > 0 ? &m->servers[0] : NULL;
}

struct mgmt_server *mgmt_server_next(struct mgmt *m, struct mgmt_server *sv)
{
    size_t i = (size_t)(sv - m->servers) + 1;

    if (m->current >= 0 || i >= m->nservers)
        return NULL;
    return &m->servers[i];
}

void mgmt_server_refresh(struct mgmt_server *sv)
{
    hsm_token_info_t ti;

    if (sv->ep != NULL)
        return; /* named by its endpoint */
    if (backend_token_info(sv->be, sv->conn, &ti) == CKR_OK && ti.label[0])
        snprintf(sv->name, sizeof(sv->name), "%s", ti.label);
    else if (sv->name[0] == '\0')
        snprintf(sv->name, sizeof(sv->name), "nimbus");
}

/* ------------------------------------------------------------ errors */

struct rv_text {
    CK_RV rv;
    const char *name;
    const char *text;
};

#define RVT(x, t)                                                              \
    {                                                                          \
        x, #x, t                                                               \
    }
static const struct rv_text rv_texts[] = {
    RVT(CKR_OK, "success"),
    RVT(CKR_HOST_MEMORY, "out of memory"),
    RVT(CKR_GENERAL_ERROR, "internal error"),
    RVT(CKR_FUNCTION_FAILED, "the operation failed"),
    RVT(CKR_ARGUMENTS_BAD, "no such user, or an invalid argument"),
    RVT(CKR_ATTRIBUTE_READ_ONLY, "the attribute cannot be changed"),
    RVT(CKR_ATTRIBUTE_SENSITIVE, "the attribute is sensitive"),
    RVT(CKR_ATTRIBUTE_TYPE_INVALID, "the key has no such attribute"),
    RVT(CKR_ATTRIBUTE_VALUE_INVALID, "invalid attribute value"),
    RVT(CKR_ACTION_PROHIBITED, "not permitted"),
    RVT(CKR_DEVICE_ERROR, "store error (see the log)"),
    RVT(CKR_DEVICE_MEMORY, "the HSM is full"),
    RVT(CKR_DEVICE_REMOVED, "nimbusd cannot be reached"),
    RVT(CKR_OBJECT_HANDLE_INVALID, "no such key, or not visible to this user"),
    RVT(CKR_PIN_INCORRECT, "wrong user name or password"),
    RVT(CKR_PIN_INVALID, "invalid user name, or the name is taken"),
    RVT(CKR_PIN_LEN_RANGE, "a password has 7 to 32 characters"),
    RVT(CKR_PIN_EXPIRED, "the PRECO must change its password first"),
    RVT(CKR_PIN_LOCKED, "the user is locked out: a CO must reset its "
                        "password"),
    RVT(CKR_SESSION_HANDLE_INVALID, "no session"),
    /* the audit's "logout" of a login that ended with its connection */
    RVT(CKR_SESSION_CLOSED, "the connection closed"),
    RVT(CKR_SESSION_READ_ONLY, "read-only session"),
    RVT(CKR_TEMPLATE_INCONSISTENT, "inconsistent with the key's attributes"),
    RVT(CKR_TEMPLATE_INCOMPLETE, "incomplete template"),
    RVT(CKR_USER_ALREADY_LOGGED_IN, "already logged in"),
    RVT(CKR_USER_NOT_LOGGED_IN, "not logged in as a user who may do this"),
    RVT(CKR_USER_PIN_NOT_INITIALIZED, "no crypto user exists yet"),
    RVT(CKR_USER_TYPE_INVALID, "invalid user type"),
    RVT(CKR_USER_ANOTHER_ALREADY_LOGGED_IN, "another user is logged in: "
                                            "logoutHSM first"),
    RVT(CKR_FUNCTION_NOT_SUPPORTED, "not supported"),
    RVT(CKR_FUNCTION_REJECTED, "refused: quorum approval missing, or the "
                               "HSM holds the most tokens it keeps"),
    RVT(CKR_SIGNATURE_INVALID, "the signature does not verify"),
    RVT(CKR_SIGNATURE_LEN_RANGE, "a signature of the wrong length"),
    RVT(CKR_KEY_SIZE_RANGE, "not an RSA-2048 key"),
    RVT(CKR_KEY_TYPE_INCONSISTENT, "not an RSA public key"),
    RVT(CKR_DATA_INVALID, "no such token: unknown, expired, used, or its "
                          "requester logged out"),
    RVT(CKR_DATA_LEN_RANGE, "a file is empty or too long"),
    RVT(CKR_ENCRYPTED_DATA_INVALID, "the file does not open: changed, or "
                                    "made for another object or cluster"),
    /* the cluster's (nimbus.proto, ClusterStatusReq) */
    RVT(CKR_SLOT_ID_INVALID, "no such node"),
    RVT(CKR_OPERATION_ACTIVE, "a membership change is under way"),
    RVT(CKR_FUNCTION_CANCELED, "the cluster engine is stopping"),
};
#undef RVT

static const struct rv_text *rv_find(CK_RV rv)
{
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(rv_texts); i++) {
        if (rv_texts[i].rv == rv)
            return &rv_texts[i];
    }
    return NULL;
}

const char *mgmt_rv_name(CK_RV rv, char *buf, size_t buflen)
{
    const struct rv_text *t = rv_find(rv);

    if (t != NULL)
        return t->name;
    snprintf(buf, buflen, "0x%08lx", (unsigned long)rv);
    return buf;
}

const char *mgmt_rv_text(CK_RV rv)
{
    const struct rv_text *t = rv_find(rv);

    return t != NULL ? t->text : "error";
}

/* The commands the core may refuse for want of a quorum (hsm.h). */
static bool quorum_guarded(const char *cmd)
{
    static const char *const guarded[] = {"createUser", "deleteUser",
                                          "changePswd", "setMValue"};

    for (size_t i = 0; i < UTIL_ARRAY_SIZE(guarded); i++) {
        if (strcmp(cmd, guarded[i]) == 0)
            return true;
    }
    return false;
}

void mgmt_fail(const struct mgmt_server *sv, const char *cmd, CK_RV rv)
{
    char buf[16];

    if (rv == CKR_FUNCTION_REJECTED && quorum_guarded(cmd)) {
        printf("%s failed: RET_MXN_AUTH_FAILED: quorum approval needed: "
               "getToken, approveToken with enough approvals, then again "
               "(%s) on server %d(%s)\n",
               cmd, mgmt_rv_name(rv, buf, sizeof(buf)), sv->id, sv->name);
        return;
    }
    printf("%s failed: HSM Error: %s (%s) on server %d(%s)\n", cmd,
           mgmt_rv_text(rv), mgmt_rv_name(rv, buf, sizeof(buf)), sv->id,
           sv->name);
}

bool mgmt_report(const struct mgmt_server *sv, const char *cmd, CK_RV rv,
                 int *ret)
{
    if (rv != CKR_OK) {
        mgmt_fail(sv, cmd, rv);
        *ret = CMD_FAIL;
        return false;
    }
    printf("%s success on server %d(%s)\n", cmd, sv->id, sv->name);
    return true;
}

FILE *mgmt_open_output(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *fp;

    if (fd < 0) {
        fflush(stdout);
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return NULL;
    }
    fp = fdopen(fd, "w");
    if (fp == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        close(fd);
    }
    return fp;
}

/* ------------------------------------------------------------ prompts */

enum line_status { LINE_EOF, LINE_OK, LINE_TOO_LONG };

/* Reads one line of stdin into buf without its newline. A line too long
 * for buf is dropped whole (LINE_TOO_LONG, buf empty). */
static enum line_status read_line(char *buf, size_t size)
{
    size_t len;

    if (fgets(buf, (int)size, stdin) == NULL)
        return LINE_EOF;
    len = strlen(buf);
    if (len > 0 && buf[len - 1] == '\n') {
        buf[--len] = '\0';
    } else if (!feof(stdin)) {
        int c;

        while ((c = getchar()) != EOF && c != '\n')
            ;
        util_wipe(buf, size);
        return LINE_TOO_LONG;
    }
    if (len > 0 && buf[len - 1] == '\r')
        buf[--len] = '\0';
    return LINE_OK;
}

enum mgmt_answer mgmt_confirm(struct mgmt *m)
{
    char answer[32];
    const char *a;

    fputs(caution_text, stdout);
    if (m->yes) {
        puts("y");
        return MGMT_YES;
    }
    fflush(stdout);
    if (read_line(answer, sizeof(answer)) == LINE_EOF) {
        putchar('\n');
        fflush(stdout);
        fprintf(stderr, "no answer (end of input): not done; -y answers "
                        "for scripts\n");
        return MGMT_NO_ANSWER;
    }
    if (!m->interactive)
        puts(answer);
    a = answer;
    while (*a == ' ' || *a == '\t')
        a++;
    if (strcasecmp(a, "y") == 0 || strcasecmp(a, "yes") == 0)
        return MGMT_YES;
    return MGMT_NO;
}

bool mgmt_wait_line(struct mgmt *m)
{
    char line[MGMT_LINE_MAX];

    (void)m;
    fflush(stdout);
    /* a line too long is still a line: the officer pressed Enter */
    return read_line(line, sizeof(line)) != LINE_EOF;
}

/* The terminal state to put back if a signal comes while echo is off. */
static struct termios saved_tio;
static volatile sig_atomic_t tio_fd = -1;

static void restore_tty(int sig)
{
    if (tio_fd >= 0)
        tcsetattr(tio_fd, TCSAFLUSH, &saved_tio);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* One line from the terminal without echo; false on error or overflow. */
static bool read_hidden(const char *prompt, char *buf, size_t size, size_t *len)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP};
    struct sigaction sa, old[UTIL_ARRAY_SIZE(sigs)];
    struct termios t;
    bool ok = true;
    size_t n = 0;
    int fd;
    char c;

    *len = 0;
    fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        fflush(stdout);
        fprintf(stderr, "-hpswd needs a terminal: %s\n", strerror(errno));
        return false;
    }
    if (tcgetattr(fd, &saved_tio) != 0) {
        fprintf(stderr, "-hpswd: %s\n", strerror(errno));
        close(fd);
        return false;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = restore_tty;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(sigs); i++)
        sigaction(sigs[i], &sa, &old[i]);
    tio_fd = fd;
    t = saved_tio;
    t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    tcsetattr(fd, TCSAFLUSH, &t);
    if (write(fd, prompt, strlen(prompt)) < 0)
        ok = false;
    for (;;) {
        ssize_t r = read(fd, &c, 1);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            ok = false;
            break;
        }
        if (c == '\n' || c == '\r')
            break;
        if (n + 1 >= size) {
            ok = false; /* keep reading to the end of the line */
            continue;
        }
        buf[n++] = c;
    }
    c = 0;
    buf[n] = '\0';
    tcsetattr(fd, TCSAFLUSH, &saved_tio);
    tio_fd = -1;
    for (size_t i = 0; i < UTIL_ARRAY_SIZE(sigs); i++)
        sigaction(sigs[i], &old[i], NULL);
    if (write(fd, "\n", 1) < 0)
        ok = false;
    close(fd);
    if (!ok) {
        util_wipe(buf, size);
        fprintf(stderr, "-hpswd: no password read (at most %d characters)\n",
                HSM_PASSWORD_MAX);
        return false;
    }
    *len = n;
    return true;
}

bool mgmt_password(const char *arg, bool confirm, char *buf, size_t *len)
{
    char again[HSM_PASSWORD_MAX + 2];
    size_t alen = 0;
    bool same;

    *len = 0;
    if (strcmp(arg, "-hpswd") != 0) {
        size_t n = strlen(arg);

        if (n > HSM_PASSWORD_MAX) {
            fflush(stdout);
            fprintf(stderr, "a password has at most %d characters\n",
                    HSM_PASSWORD_MAX);
            return false;
        }
        memcpy(buf, arg, n + 1);
        *len = n;
        return true;
    }
    if (!read_hidden(confirm ? "Enter new password: " : "Enter password: ", buf,
                     HSM_PASSWORD_MAX + 1, len))
        return false;
    if (!confirm)
        return true;
    if (!read_hidden("Re-enter new password: ", again, sizeof(again), &alen)) {
        util_wipe(buf, HSM_PASSWORD_MAX + 1);
        return false;
    }
    same = alen == *len && util_ct_memcmp(again, buf, alen) == 0;
    util_wipe(again, sizeof(again));
    if (!same) {
        util_wipe(buf, HSM_PASSWORD_MAX + 1);
        *len = 0;
        fprintf(stderr, "the passwords do not match\n");
    }
    return same;
}

/* ------------------------------------------------------------ the loop */

/*
 * Splits s at unquoted whitespace into argv, in place; "..." quotes a word
 * (no escapes). Returns the count, or -1 when there are too many words or a
 * quote is not closed.
 */
static int split_words(char *s, char **argv, int max)
{
    int argc = 0;

    for (;;) {
        char *w;

        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0')
            return argc;
        if (argc == max)
            return -1;
        if (*s == '"') {
            w = ++s;
            while (*s != '\0' && *s != '"')
                s++;
            if (*s != '"')
                return -1;
        } else {
            w = s;
            while (*s != '\0' && *s != ' ' && *s != '\t')
                s++;
        }
        argv[argc++] = w;
        if (*s == '\0')
            return argc;
        *s++ = '\0';
    }
}

/* Runs one command (a line without ';'); sets m->failed on failure. */
static void run_command(struct mgmt *m, char *line)
{
    char *argv[MGMT_ARGS_MAX];
    const struct mgmt_cmd *c;
    bool ambiguous = false;
    int argc;

    argc = split_words(line, argv, MGMT_ARGS_MAX);
    if (argc == 0)
        return;
    fflush(stdout);
    if (argc < 0) {
        fprintf(stderr, "too many words, or an unclosed quote\n");
        m->failed = true;
        return;
    }
    if (argv[0][0] == '#')
        return; /* a comment line in a script */
    c = mgmt_cmd_find(argv[0], &ambiguous);
    if (c == NULL) {
        if (ambiguous) {
            size_t len = strlen(argv[0]);

            fprintf(stderr, "ambiguous command '%s':", argv[0]);
            for (size_t i = 0; i < mgmt_ncommands; i++) {
                if (strncasecmp(argv[0], mgmt_commands[i].name, len) == 0)
                    fprintf(stderr, " %s", mgmt_commands[i].name);
            }
            fputc('\n', stderr);
        } else {
            fprintf(stderr, "unknown command '%s' (help lists them)\n",
                    argv[0]);
        }
        m->failed = true;
        return;
    }
    if (argc - 1 < c->min_args || argc - 1 > c->max_args) {
        mgmt_usage(c);
        m->failed = true;
        return;
    }
    for (struct mgmt_server *sv = mgmt_server_first(m); sv != NULL;
         sv = mgmt_server_next(m, sv))
        mgmt_server_refresh(sv);
    if (c->run(m, argc, argv) != 0)
        m->failed = true;
    fflush(stdout);
}

/* Runs the ';'-separated commands of a line (quotes protect a ';'). */
static void run_line(struct mgmt *m, char *line)
{
    char *start = line;
    bool quoted = false;

    for (char *p = line;; p++) {
        if (*p == '"') {
            quoted = !quoted;
        } else if (*p == '\0' || (*p == ';' && !quoted)) {
            bool end = *p == '\0';

            *p = '\0';
            if (!m->quit)
                run_command(m, start);
            if (end)
                break;
            start = p + 1;
        }
    }
}

static void prompt(const struct mgmt *m)
{
    if (!m->interactive)
        return;
    if (m->current >= 0)
        printf("server%d>", m->current);
    else
        fputs(MGMT_PROMPT, stdout);
    fflush(stdout);
}

static int usage(FILE *fp)
{
    fprintf(fp,
            "usage: nimbus-mgmt [-y] [-c \"command; command ...\"] [config]\n"
            "  config  a nimbus.conf (default: $NIMBUS_CONF, then the usual "
            "places)\n"
            "  -c      run these commands instead of reading stdin\n"
            "  -y      answer yes to every CAUTION prompt\n"
            "Type help at the nimbus> prompt for the commands.\n");
    return 2;
}

static bool open_server(struct mgmt_server *sv, const struct config *cfg)
{
    CK_RV rv;
    char buf[32];

    if (cfg->nservers > 0) {
        /* each server alone: one remote backend per endpoint */
        sv->ep = &cfg->servers[0];
        if (sv->ep->kind == CONFIG_EP_TLS)
            snprintf(sv->name, sizeof(sv->name), "%s", sv->ep->host);
        else
            snprintf(sv->name, sizeof(sv->name), "%s", sv->ep->path);
    }
    if ((rv = backend_open(cfg, &sv->be)) != CKR_OK ||
        (rv = backend_conn_open(sv->be, &sv->conn)) != CKR_OK ||
        (rv = backend_session_open(sv->conn, true, &sv->sid)) != CKR_OK) {
        if (cfg->nservers > 0)
            fprintf(stderr, "nimbus-mgmt: server %d(%s): %s (%s)\n", sv->id,
                    sv->name, mgmt_rv_text(rv),
                    mgmt_rv_name(rv, buf, sizeof(buf)));
        else
            fprintf(stderr,
                    "nimbus-mgmt: cannot open the store in %s: %s (%s)\n",
                    cfg->store, mgmt_rv_text(rv),
                    mgmt_rv_name(rv, buf, sizeof(buf)));
        backend_conn_close(sv->conn);
        backend_close(sv->be);
        sv->conn = NULL;
        sv->be = NULL;
        return false;
    }
    mgmt_server_refresh(sv);
    return true;
}

static void close_servers(struct mgmt *m)
{
    for (size_t i = 0; i < m->nservers; i++) {
        struct mgmt_server *sv = &m->servers[i];

        /* leaving logs out, so that the audit log shows the logout */
        if (sv->conn != NULL &&
            backend_conn_user_type(sv->conn, NULL) != HSM_USER_NONE)
            (void)backend_logout(sv->conn);
        backend_conn_close(sv->conn);
        backend_close(sv->be);
        memset(sv, 0, sizeof(*sv));
    }
    m->nservers = 0;
}

int main(int argc, char **argv)
{
    static struct mgmt m; /* zeroed */
    struct config cfg;
    const char *commands = NULL, *conf = NULL;
    char err[512];
    char *line = NULL;
    int status;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-y") == 0) {
            m.yes = true;
        } else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            commands = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 ||
                   strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("nimbus-mgmt %s\n", PACKAGE_VERSION);
            return 0;
        } else if (argv[i][0] == '-' || conf != NULL) {
            return usage(stderr);
        } else {
            conf = argv[i];
        }
    }

    if (conf != NULL) {
        config_defaults(&cfg);
        if (!config_load_file(&cfg, conf, err, sizeof(err))) {
            fprintf(stderr, "nimbus-mgmt: %s\n", err);
            return 2;
        }
    } else if (!config_load(&cfg, err, sizeof(err))) {
        fprintf(stderr, "nimbus-mgmt: %s\n", err);
        return 2;
    }
    util_log_setup((enum log_level)cfg.log_level, cfg.log_file);

    m.current = -1;
    m.interactive = isatty(STDIN_FILENO) == 1;
    if (cfg.nservers == 0) {
        m.servers[0].id = 0;
        if (!open_server(&m.servers[0], &cfg))
            return 2;
        m.nservers = 1;
    } else {
        static struct config one[MGMT_SERVERS_MAX];
        bool all = true;

        /* A server that cannot be reached is named on stderr and makes
         * the shell fail to start: a command would silently skip it. */
        for (size_t i = 0; i < cfg.nservers && i < MGMT_SERVERS_MAX; i++) {
            one[i] = cfg;
            one[i].servers[0] = cfg.servers[i];
            one[i].nservers = 1;
            m.servers[m.nservers].id = (int)i;
            if (open_server(&m.servers[m.nservers], &one[i]))
                m.nservers++;
            else
                all = false;
        }
        if (!all) {
            close_servers(&m);
            return 2;
        }
    }

    line = malloc(MGMT_LINE_MAX);
    if (line == NULL) {
        fprintf(stderr, "nimbus-mgmt: out of memory\n");
        close_servers(&m);
        return 2;
    }
    if (commands != NULL) {
        size_t n = strlen(commands);

        if (n >= MGMT_LINE_MAX) {
            fprintf(stderr, "nimbus-mgmt: -c: longer than %d bytes\n",
                    MGMT_LINE_MAX - 1);
            m.failed = true;
        } else {
            memcpy(line, commands, n + 1);
            run_line(&m, line);
        }
    } else {
        while (!m.quit) {
            enum line_status ls;

            prompt(&m);
            ls = read_line(line, MGMT_LINE_MAX);
            if (ls == LINE_EOF) {
                if (m.interactive)
                    putchar('\n');
                break;
            }
            if (ls == LINE_TOO_LONG) {
                fflush(stdout);
                fprintf(stderr, "line longer than %d bytes: ignored\n",
                        MGMT_LINE_MAX - 1);
                m.failed = true;
                continue;
            }
            run_line(&m, line);
            util_wipe(line, MGMT_LINE_MAX); /* it may hold a password */
            /* each command's answer out before the next is read: a
             * program that drives the shell through pipes waits for it */
            fflush(stdout);
        }
    }
    util_free_wipe(line, MGMT_LINE_MAX);
    fflush(stdout);
    close_servers(&m);
    status = m.failed ? 1 : 0;
    util_log_close();
    return status;
}
