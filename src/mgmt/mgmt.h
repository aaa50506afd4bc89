/*
 * mgmt.h - nimbus-mgmt, the management shell: its state, its command table
 * and the helpers the commands share.
 *
 * The shell speaks to each HSM ("server") only through the backend seam
 * (backend/backend.h). Embedded: one server, the local store, numbered 0
 * and named by its token label. Remote (servers = ... in the config): one
 * server per endpoint, numbered in the order of the config and named by
 * the endpoint (the socket path, or the TLS host), as the cloud HSM's
 * shell names each HSM by its address. The commands loop over the
 * selected servers and print a line per server.
 */
#ifndef NIMBUS_MGMT_H
#define NIMBUS_MGMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "backend/backend.h"

#define MGMT_PROMPT "nimbus>"
#define MGMT_LINE_MAX 4096 /* one input line */
#define MGMT_ARGS_MAX 16   /* words of one command */
#define MGMT_SERVERS_MAX CONFIG_ENDPOINTS_MAX
#define MGMT_NAME_MAX (CONFIG_HOST_MAX + 1) /* a server name */

struct mgmt_server {
    int id;
    backend_t *be;
    backend_conn_t *conn; /* this shell's login on the server */
    hsm_sid_t sid;    /* a read-write session for the key commands */
    char name[MGMT_NAME_MAX];
    /* remote: the nimbusd endpoint (the name stays it) */
    const struct config_endpoint *ep;
};

struct mgmt {
    struct mgmt_server servers[MGMT_SERVERS_MAX];
    size_t nservers;
    int current;      /* server mode: the only server addressed; else -1 */
    bool yes;         /* -y: answer "y" to every CAUTION prompt */
    bool interactive; /* stdin is a terminal: prompt, answers echo there */
    bool quit;
    bool failed; /* some command failed: the exit status */
};

/* One command: its name, how many words follow it, what it does. */
struct mgmt_cmd {
    const char *name;
    int min_args;
    int max_args;
    /* argv[0] is the command name; returns 0 on success, 1 on failure */
    int (*run)(struct mgmt *m, int argc, char **argv);
    const char *usage;
    const char *help;
};

extern const struct mgmt_cmd mgmt_commands[];
extern const size_t mgmt_ncommands;

/*
 * The command a word names: exact (any case) or an unambiguous prefix.
 * NULL when none; *ambiguous tells a prefix of several from no match.
 */
const struct mgmt_cmd *mgmt_cmd_find(const char *word, bool *ambiguous);

/* Prints "usage: ..." of a command (on stderr). Returns 1. */
int mgmt_usage(const struct mgmt_cmd *c);

/*
 * The CAUTION block and "Do you want to continue(y/n)?". The answer is read
 * from stdin, and echoed when stdin is not a terminal so that a transcript
 * shows it. Returns MGMT_YES (or -y), MGMT_NO, or MGMT_NO_ANSWER (end of
 * input: a script forgot -y; the command counts as failed).
 */
enum mgmt_answer { MGMT_NO_ANSWER = -1, MGMT_NO = 0, MGMT_YES = 1 };
enum mgmt_answer mgmt_confirm(struct mgmt *m);

/* Waits for one line of stdin (its text ignored; "Enter" after the
 * officer signed the authdata file). false at the end of input. */
bool mgmt_wait_line(struct mgmt *m);

/*
 * A password argument: the word itself, or for "-hpswd" one read from the
 * terminal without echo (twice when confirm is set). buf must hold
 * HSM_PASSWORD_MAX + 1 bytes; wipe it after use. False (with a message on
 * stderr) when it cannot be had.
 */
bool mgmt_password(const char *arg, bool confirm, char *buf, size_t *len);

/* Selected servers: all of them, or the one of server mode. */
struct mgmt_server *mgmt_server_first(struct mgmt *m);
struct mgmt_server *mgmt_server_next(struct mgmt *m, struct mgmt_server *sv);
/* Refreshes sv->name from the token label. */
void mgmt_server_refresh(struct mgmt_server *sv);

/* What a command returns. */
#define CMD_OK 0
#define CMD_FAIL 1

/* "<cmd> failed: HSM Error: <reason> (CKR_X) on server N(name)"; a command
 * guarded by a quorum (createUser, deleteUser, changePswd, setMValue)
 * refused with CKR_FUNCTION_REJECTED says RET_MXN_AUTH_FAILED, as the
 * cloud HSM does. */
void mgmt_fail(const struct mgmt_server *sv, const char *cmd, CK_RV rv);
/* A mutating command's per-server line: "<cmd> success on server N(name)",
 * or the failure line and *ret = CMD_FAIL. */
bool mgmt_report(const struct mgmt_server *sv, const char *cmd, CK_RV rv,
                 int *ret);
/* The CKR_ name of a return value ("0x..." when not known) and a short
 * sentence for an operator. */
const char *mgmt_rv_name(CK_RV rv, char *buf, size_t buflen);
const char *mgmt_rv_text(CK_RV rv);

/* Opens path for writing a report (created 0600, truncated). */
FILE *mgmt_open_output(const char *path);

/* The quorum (M of N) commands (quorum.c). */
int mgmt_cmd_register_quorum_pubkey(struct mgmt *m, int argc, char **argv);
int mgmt_cmd_set_m_value(struct mgmt *m, int argc, char **argv);
int mgmt_cmd_get_m_value(struct mgmt *m, int argc, char **argv);
int mgmt_cmd_get_token(struct mgmt *m, int argc, char **argv);
int mgmt_cmd_approve_token(struct mgmt *m, int argc, char **argv);
int mgmt_cmd_list_tokens(struct mgmt *m, int argc, char **argv);
int mgmt_cmd_del_token(struct mgmt *m, int argc, char **argv);

#endif
