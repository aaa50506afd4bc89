/* test_util.c - helpers and nimbus.conf parsing. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/conf.h"
#include "common/log.h"
#include "common/util.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/nimbus-util-XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *write_conf(const char *text)
{
    static char path[128];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/nimbus.conf", tmpdir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

static void test_user_names(void **state)
{
    (void)state;
    assert_true(util_user_name_valid("alice", 5));
    assert_true(util_user_name_valid("A_1", 3));
    assert_true(util_user_name_valid("abcdefghijklmnopqrstuvwxyz01234", 31));
    assert_false(util_user_name_valid("abcdefghijklmnopqrstuvwxyz012345", 32));
    assert_false(util_user_name_valid("", 0));
    assert_false(util_user_name_valid("al ice", 6));
    assert_false(util_user_name_valid("al:ice", 6));
    assert_false(util_user_name_valid("\xc3\xa9t\xc3\xa9", 6));
    assert_false(util_user_name_valid(NULL, 3));
}

static void test_pad_and_parse(void **state)
{
    unsigned char buf[8];
    unsigned long v = 0;

    (void)state;
    util_pad_copy(buf, sizeof(buf), "ab");
    assert_memory_equal(buf, "ab      ", 8);
    util_pad_copy(buf, sizeof(buf), "abcdefghij");
    assert_memory_equal(buf, "abcdefgh", 8);
    assert_true(util_parse_ulong("1000", &v));
    assert_int_equal(v, 1000);
    assert_false(util_parse_ulong("", &v));
    assert_false(util_parse_ulong("-1", &v));
    assert_false(util_parse_ulong("12x", &v));
    assert_false(util_parse_ulong(" 12", &v));
    assert_false(util_parse_ulong("99999999999999999999999", &v));
}

static void test_ct_memcmp_and_wipe(void **state)
{
    unsigned char a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 5};

    (void)state;
    assert_int_equal(util_ct_memcmp(a, a, 4), 0);
    assert_int_not_equal(util_ct_memcmp(a, b, 4), 0);
    assert_int_equal(util_ct_memcmp(a, b, 3), 0);
    util_wipe(a, sizeof(a));
    for (size_t i = 0; i < sizeof(a); i++)
        assert_int_equal(a[i], 0);
}

static void test_config_defaults(void **state)
{
    struct config cfg;
    char err[256] = "";

    (void)state;
    unsetenv("NIMBUS_CONF");
    setenv("XDG_CONFIG_HOME", tmpdir, 1); /* no nimbus/nimbus.conf there */
    setenv("XDG_DATA_HOME", "/data/x", 1);
    assert_true(config_load(&cfg, err, sizeof(err)));
    assert_string_equal(cfg.store, "/data/x/nimbus");
    assert_string_equal(cfg.label, "nimbus");
    assert_int_equal(cfg.login_failure_limit, 5);
    assert_int_equal(cfg.quorum_token_lifetime, 600);
    assert_string_equal(cfg.default_user, "user");
    assert_int_equal(cfg.kdf_iterations, CONFIG_DEFAULT_KDF_ITERATIONS);
    assert_int_equal(cfg.max_sessions, 1024);
    assert_true(cfg.key_separation);
    assert_int_equal(cfg.aead_max_buffer, CONFIG_DEFAULT_AEAD_MAX_BUFFER);
    assert_true(cfg.gcm_zero_iv_generate);
    assert_true(cfg.public_objects_visible);
    assert_int_equal(cfg.io_timeout, 10);
    assert_int_equal(cfg.call_timeout, CONFIG_DEFAULT_CALL_TIMEOUT);
    assert_int_equal(cfg.login_ticket_lifetime, 3600);
    assert_false(cfg.spread_sessions);
    assert_string_equal(cfg.path, "");
}

static void test_config_file(void **state)
{
    struct config cfg;
    char err[256] = "";
    const char *p = write_conf("# a comment\n\n"
                               "store = /srv/nimbus\n"
                               "label=prod token\n"
                               "  login_failure_limit   =  20  \n"
                               "quorum_token_lifetime = 30\n"
                               "default_user = app1\n"
                               "kdf_iterations = 1000\n"
                               "log_level = trace\n"
                               "des3 = no\n"
                               "key_separation = off\n"
                               "aead_max_buffer = 4096\n"
                               "gcm_zero_iv = use\n"
                               "public_objects = hidden\n"
                               "listen = unix:/run/nimbus/nimbusd.sock\n"
                               "listen = tls:[::1]:2225\n"
                               "servers = tls:hsm1.example:2225, "
                               "unix:/tmp/n.sock\n"
                               "allowed_uids = 0, 1000\n"
                               "allowed_groups = 0\n"
                               "max_connections = 300\n"
                               "max_frame = 65536\n"
                               "io_timeout = 0\n"
                               "call_timeout = 0\n"
                               "login_ticket_lifetime = 0\n"
                               "server_spread = sessions\n"
                               "cluster_id = prod-eu-1\n"
                               "cluster_node_id = 4294967295\n"
                               "cluster_listen = 10.0.0.5:7000\n"
                               "cluster_join = [::1]:7000\n"
                               "cluster_clones = prod-eu-2,dr-1 ,  x\n"
                               "cluster_clone_of = prod-eu-0@[::1]:7001\n"
                               "cluster_ca = /etc/nimbus/cluster-ca.pem\n"
                               "cluster_cert = /etc/nimbus/node.pem\n"
                               "cluster_key = /etc/nimbus/node.key\n"
                               "cluster_dir = /var/lib/nimbus/raft\n"
                               "cluster_bootstrap = yes\n"
                               "cluster_election_timeout = 500\n"
                               "cluster_heartbeat = 75\n"
                               "tls_ca = /etc/nimbus/ca.pem\n");

    (void)state;
    setenv("NIMBUS_CONF", p, 1);
    assert_true(config_load(&cfg, err, sizeof(err)));
    assert_string_equal(cfg.store, "/srv/nimbus");
    assert_string_equal(cfg.label, "prod token");
    assert_int_equal(cfg.login_failure_limit, 20);
    assert_int_equal(cfg.quorum_token_lifetime, 30);
    assert_string_equal(cfg.default_user, "app1");
    assert_int_equal(cfg.kdf_iterations, 1000);
    assert_int_equal(cfg.log_level, LOG_LEVEL_TRACE);
    assert_false(cfg.des3_enabled);
    assert_false(cfg.key_separation);
    assert_int_equal(cfg.aead_max_buffer, 4096);
    assert_false(cfg.gcm_zero_iv_generate);
    assert_false(cfg.public_objects_visible);
    assert_string_equal(cfg.path, p);
    assert_int_equal(cfg.nlisten, 2);
    assert_int_equal(cfg.listen[0].kind, CONFIG_EP_UNIX);
    assert_string_equal(cfg.listen[0].path, "/run/nimbus/nimbusd.sock");
    assert_int_equal(cfg.listen[1].kind, CONFIG_EP_TLS);
    assert_string_equal(cfg.listen[1].host, "::1");
    assert_int_equal(cfg.listen[1].port, 2225);
    assert_int_equal(cfg.nservers, 2);
    assert_string_equal(cfg.servers[0].host, "hsm1.example");
    assert_string_equal(cfg.servers[1].path, "/tmp/n.sock");
    assert_int_equal(cfg.nallowed_uids, 2);
    assert_int_equal(cfg.allowed_uids[1], 1000);
    assert_int_equal(cfg.nallowed_groups, 1);
    assert_int_equal(cfg.max_connections, 300);
    assert_int_equal(cfg.max_frame, 65536);
    assert_int_equal(cfg.io_timeout, 0);
    assert_int_equal(cfg.call_timeout, 0);
    assert_int_equal(cfg.login_ticket_lifetime, 0);
    assert_true(cfg.spread_sessions);
    assert_string_equal(cfg.tls_ca, "/etc/nimbus/ca.pem");
    assert_string_equal(cfg.cluster_id, "prod-eu-1");
    assert_int_equal(cfg.cluster_node_id, 4294967295UL);
    assert_string_equal(cfg.cluster_listen, "10.0.0.5:7000");
    assert_string_equal(cfg.cluster_join, "[::1]:7000");
    assert_int_equal(cfg.ncluster_clones, 3);
    assert_string_equal(cfg.cluster_clones[0], "prod-eu-2");
    assert_string_equal(cfg.cluster_clones[1], "dr-1");
    assert_string_equal(cfg.cluster_clones[2], "x");
    assert_string_equal(cfg.cluster_clone_of, "prod-eu-0");
    assert_string_equal(cfg.cluster_clone_of_addr, "[::1]:7001");
    assert_string_equal(cfg.cluster_ca, "/etc/nimbus/cluster-ca.pem");
    assert_string_equal(cfg.cluster_cert, "/etc/nimbus/node.pem");
    assert_string_equal(cfg.cluster_key, "/etc/nimbus/node.key");
    assert_string_equal(cfg.cluster_dir, "/var/lib/nimbus/raft");
    assert_true(cfg.cluster_bootstrap);
    assert_int_equal(cfg.cluster_election_timeout, 500);
    assert_int_equal(cfg.cluster_heartbeat, 75);
    {
        char txt[300];
        config_format_endpoint(&cfg.listen[1], txt, sizeof(txt));
        assert_string_equal(txt, "tls:[::1]:2225");
    }
}

static void test_config_errors(void **state)
{
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        {"nonsense\n", "expected"},
        {"colour = blue\n", "unknown key"},
        {"store = relative/path\n", "absolute"},
        {"login_failure_limit = 0\n", "login_failure_limit"},
        {"quorum_token_lifetime = 0\n", "quorum_token_lifetime"},
        {"quorum_token_lifetime = 86401\n", "quorum_token_lifetime"},
        {"login_failure_limit = many\n", "login_failure_limit"},
        {"kdf_iterations = 10\n", "kdf_iterations"},
        {"default_user = bad name\n", "default_user"},
        {"label = 123456789012345678901234567890123\n", "label"},
        {"log_level = loud\n", "log_level"},
        {"des3 = maybe\n", "des3"},
        {"max_sessions = 5000\n", "max_sessions"},
        {"key_separation = sometimes\n", "key_separation"},
        {"aead_max_buffer = 10\n", "aead_max_buffer"},
        {"gcm_zero_iv = random\n", "gcm_zero_iv"},
        {"public_objects = some\n", "public_objects"},
        {"listen = tcp:1.2.3.4:5\n", "unix:PATH or tls:HOST:PORT"},
        {"listen = unix:relative\n", "absolute"},
        {"servers = tls:host\n", "HOST:PORT"},
        {"servers = tls:host:0\n", "port"},
        {"servers = tls:::1:80\n", "brackets"},
        {"allowed_uids = nosuchuser_nimbus\n", "unknown user"},
        {"allowed_groups = nosuchgroup_nimbus\n", "unknown group"},
        {"max_frame = 100\n", "max_frame"},
        {"io_timeout = -1\n", "io_timeout"},
        {"io_timeout = 3601\n", "io_timeout"},
        {"io_timeout = 99999999999999999999999\n", "io_timeout"},
        {"io_timeout = ten\n", "io_timeout"},
        {"io_timeout = 10s\n", "io_timeout"},
        {"io_timeout = \n", "io_timeout"},
        {"io_timeout = 1.5\n", "io_timeout"},
        {"call_timeout = -1\n", "call_timeout"},
        {"call_timeout = 86401\n", "call_timeout"},
        {"call_timeout = 18446744073709551616\n", "call_timeout"},
        {"call_timeout = 2s\n", "call_timeout"},
        {"call_timeout = two\n", "call_timeout"},
        {"call_timeout =\n", "call_timeout"},
        {"call_timeout = 0x10\n", "call_timeout"},
        {"login_ticket_lifetime = 3601\n", "login_ticket_lifetime"},
        {"login_ticket_lifetime = -1\n", "login_ticket_lifetime"},
        {"login_ticket_lifetime = 1h\n", "login_ticket_lifetime"},
        {"server_spread = random\n", "server_spread"},
        {"server_spread =\n", "server_spread"},
        {"tls_cert = cert.pem\n", "absolute"},
        {"user = nosuchuser_nimbus\n", "user"},
        {"cluster_id = a b\n", "cluster_id"},
        {"cluster_id = \n", "cluster_id"},
        {"cluster_id = "
         "12345678901234567890123456789012345678901234567890123456789012345\n",
         "cluster_id"},
        {"cluster_id = a/b\n", "cluster_id"},
        {"cluster_node_id = 0\n", "cluster_node_id"},
        {"cluster_node_id = 4294967296\n", "cluster_node_id"},
        {"cluster_listen = 127.0.0.1\n", "host:port"},
        {"cluster_listen = :7000\n", "host:port"},
        {"cluster_listen = h:0\n", "host:port"},
        {"cluster_join = h:65536\n", "host:port"},
        {"cluster_ca = ca.pem\n", "absolute"},
        {"cluster_key = key.pem\n", "absolute"},
        {"cluster_dir = raft\n", "absolute"},
        {"cluster_bootstrap = perhaps\n", "cluster_bootstrap"},
        {"cluster_election_timeout = 10\n", "cluster_election_timeout"},
        {"cluster_heartbeat = 5\n", "cluster_heartbeat"},
        {"cluster_colour = red\n", "unknown key"},
        {"cluster_clones = a,,b\n", "cluster_clones"},
        {"cluster_clones = a b\n", "cluster_clones"},
        {"cluster_clones = a,\n", "cluster_clones"},
        {"cluster_clones = a/b\n", "cluster_clones"},
        {"cluster_clones = a, b, a\n", "twice"},
        {"cluster_clones = a,b,c,d,e,f,g,h,i\n", "at most 8"},
        {"cluster_clones =\n", "cluster_clones"},
        {"cluster_clone_of = src\n", "CLUSTER_ID@host:port"},
        {"cluster_clone_of = @h:1\n", "CLUSTER_ID@host:port"},
        {"cluster_clone_of = src@h\n", "CLUSTER_ID@host:port"},
        {"cluster_clone_of = src@h:0\n", "CLUSTER_ID@host:port"},
        {"cluster_clone_of = s/c@h:1\n", "CLUSTER_ID@host:port"},
    };
    struct config cfg;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("NIMBUS_CONF", write_conf(bad[i].text), 1);
        err[0] = '\0';
        assert_false(config_load(&cfg, err, sizeof(err)));
        if (strstr(err, bad[i].why) == NULL || strstr(err, ":1:") == NULL)
            fail_msg("'%s': message '%s' lacks '%s' or the line", bad[i].text,
                     err, bad[i].why);
    }
    setenv("NIMBUS_CONF", "/nonexistent/nimbus.conf", 1);
    assert_false(config_load(&cfg, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/nimbus.conf"));
    unsetenv("NIMBUS_CONF");
}

static void test_log_levels(void **state)
{
    (void)state;
    assert_int_equal(util_log_level_parse("error"), LOG_LEVEL_ERROR);
    assert_int_equal(util_log_level_parse("TRACE"), LOG_LEVEL_TRACE);
    assert_int_equal(util_log_level_parse("none"), LOG_LEVEL_NONE);
    assert_int_equal(util_log_level_parse("loud"), -1);
    assert_int_equal(util_log_level_parse(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_names),
        cmocka_unit_test(test_pad_and_parse),
        cmocka_unit_test(test_ct_memcmp_and_wipe),
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_log_levels),
    };
    return cmocka_run_group_tests_name("util", tests, setup, teardown);
}
