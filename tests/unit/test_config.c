/* Command-line parsing: sizes, defaults, and the one-line errors for bad input. */
#include "unit.h"

#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static char guest_dir[] = "/tmp/kvio-test-guest-XXXXXX";
static FILE *out, *err;
static char *out_buf, *err_buf;
static size_t out_len, err_len;

static int setup(void **state)
{
	(void)state;
	out = open_memstream(&out_buf, &out_len);
	err = open_memstream(&err_buf, &err_len);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fclose(out);
	fclose(err);
	free(out_buf);
	free(err_buf);
	return 0;
}

static int make_guest_dir(void **state)
{
	char path[256];
	FILE *f;

	(void)state;
	if (!mkdtemp(guest_dir))
		return -1;
	snprintf(path, sizeof(path), "%s/vmlinuz", guest_dir);
	f = fopen(path, "w");
	fputs("k", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/initramfs.cpio.gz", guest_dir);
	f = fopen(path, "w");
	fputs("i", f);
	fclose(f);
	return 0;
}

static int remove_guest_dir(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", guest_dir);
	return system(cmd) == 0 ? 0 : -1;
}

#define PARSE(...)                                                                     \
	({                                                                             \
		char *argv[] = { "kvio", __VA_ARGS__, NULL };                          \
		config_parse((int)(sizeof(argv) / sizeof(argv[0])) - 1, argv, guest_dir, &cfg, out, err); \
	})

static void assert_one_line_error(const char *needle)
{
	fflush(err);
	assert_non_null(strstr(err_buf, needle));
	assert_int_equal(strncmp(err_buf, "kvio: ", 6), 0);
	assert_ptr_equal(strchr(err_buf, '\n'), err_buf + err_len - 1);
}

static void test_sizes(void **state)
{
	uint64_t b;

	(void)state;
	assert_int_equal(config_parse_size("512M", &b), 0);
	assert_int_equal(b, 512ULL << 20);
	assert_int_equal(config_parse_size("2G", &b), 0);
	assert_int_equal(b, 2ULL << 30);
	assert_int_equal(config_parse_size("2g", &b), 0);
	assert_int_equal(b, 2ULL << 30);
	assert_int_equal(config_parse_size("300", &b), 0);
	assert_int_equal(b, 300ULL << 20);
	assert_int_equal(config_parse_size("1GiB", &b), 0);
	assert_int_equal(b, 1ULL << 30);
	assert_int_equal(config_parse_size("2048K", &b), 0);
	assert_int_equal(b, 2ULL << 20);
	assert_int_equal(config_parse_size("1000K", &b), -1);  /* not whole MiB */
	assert_int_equal(config_parse_size("", &b), -1);
	assert_int_equal(config_parse_size("-1G", &b), -1);
	assert_int_equal(config_parse_size("12X", &b), -1);
	assert_int_equal(config_parse_size("1G2", &b), -1);
	assert_int_equal(config_parse_size("99999999999999999999G", &b), -1);
	assert_int_equal(config_parse_size("17179869184T", &b), -1);  /* overflows 64 bits */
}

static void test_defaults(void **state)
{
	struct vm_config cfg;
	char expect[300];

	(void)state;
	assert_int_equal(PARSE("run"), CONFIG_RUN);
	assert_int_equal(cfg.memory_bytes, 256ULL << 20);
	assert_int_equal(cfg.cpus, 1);
	assert_null(cfg.append);
	assert_false(cfg.rng);
	assert_false(cfg.balloon);
	assert_false(cfg.balloon_deflate_on_oom);
	assert_int_equal(cfg.seccomp, SANDBOX_ON);
	snprintf(expect, sizeof(expect), "%s/vmlinuz", guest_dir);
	assert_string_equal(cfg.kernel_path, expect);
	snprintf(expect, sizeof(expect), "%s/initramfs.cpio.gz", guest_dir);
	assert_string_equal(cfg.initrd_path, expect);
}

static void test_all_options(void **state)
{
	struct vm_config cfg;
	char kernel[300];

	(void)state;
	snprintf(kernel, sizeof(kernel), "%s/vmlinuz", guest_dir);
	assert_int_equal(PARSE("run", "--kernel", kernel, "--memory=2G", "--cpus", "2", "--append", "quiet x=1", "--rng"),
			 CONFIG_RUN);
	assert_true(cfg.rng);
	assert_int_equal(cfg.memory_bytes, 2ULL << 30);
	assert_int_equal(cfg.cpus, 2);
	assert_string_equal(cfg.append, "quiet x=1");
	assert_string_equal(cfg.kernel_path, kernel);
	/* A kernel of the user's own does not get the default initrd behind their back. */
	assert_string_equal(cfg.initrd_path, "");
}

static void test_help_and_version(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("--version"), CONFIG_DONE);
	assert_int_equal(PARSE("--help"), CONFIG_DONE);
	assert_int_equal(PARSE("run", "--help"), CONFIG_DONE);
	fflush(out);
	assert_non_null(strstr(out_buf, "kvio " KVIO_VERSION));
	assert_non_null(strstr(out_buf, "Usage: kvio run"));
	assert_non_null(strstr(out_buf, "--seccomp on|off|log"));
	assert_int_equal(err_len, 0);
}

static void test_unknown_option(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--bogus"), CONFIG_INVALID);
	assert_one_line_error("'--bogus'");
}

static void test_unknown_command(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("fly"), CONFIG_INVALID);
	assert_one_line_error("'fly'");
}

static void test_missing_value(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--memory"), CONFIG_INVALID);
	assert_one_line_error("--memory");
}

static void test_bad_memory(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--memory", "lots"), CONFIG_INVALID);
	assert_one_line_error("--memory: 'lots'");
}

static void test_memory_out_of_range(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--memory", "4M"), CONFIG_INVALID);
	assert_one_line_error("--memory");
}

static void test_bad_cpus(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--cpus", "0"), CONFIG_INVALID);
	assert_one_line_error("--cpus: '0'");
}

static void test_too_many_cpus(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--cpus", "1000"), CONFIG_INVALID);
	assert_one_line_error("--cpus: '1000'");
}

static void test_missing_kernel(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--kernel", "/nonexistent/bzImage"), CONFIG_INVALID);
	assert_one_line_error("--kernel: cannot open '/nonexistent/bzImage'");
}

static void test_missing_initrd(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--initrd", "/nonexistent/initrd"), CONFIG_INVALID);
	assert_one_line_error("--initrd: cannot open");
}

static void test_console_choice(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--console", "virtio"), CONFIG_RUN);
	assert_true(cfg.virtio_console);
	assert_int_equal(PARSE("run", "--console", "serial"), CONFIG_RUN);
	assert_false(cfg.virtio_console);
	assert_int_equal(PARSE("run", "--console", "vga"), CONFIG_INVALID);
	assert_one_line_error("--console: 'vga'");
}

static void test_balloon_options(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--balloon"), CONFIG_RUN);
	assert_true(cfg.balloon);
	assert_false(cfg.balloon_deflate_on_oom);
	assert_int_equal(PARSE("run", "--balloon-deflate-on-oom", "--balloon"), CONFIG_RUN);
	assert_true(cfg.balloon);
	assert_true(cfg.balloon_deflate_on_oom);
	assert_int_equal(PARSE("run", "--help"), CONFIG_DONE);
	fflush(out);
	assert_non_null(strstr(out_buf, "--balloon "));
	assert_non_null(strstr(out_buf, "--balloon-deflate-on-oom"));
	assert_non_null(strstr(out_buf, "MemTotal"));
}

static void test_balloon_option_errors(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--balloon-deflate-on-oom"), CONFIG_INVALID);
	assert_one_line_error("--balloon-deflate-on-oom: needs --balloon");
}

static void test_balloon_takes_no_value(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--balloon=1G"), CONFIG_INVALID);
	assert_one_line_error("--balloon");
}

static void test_monitor_socket(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--monitor", "unix:/tmp/kvio.qmp"), CONFIG_RUN);
	assert_string_equal(cfg.monitor_path, "/tmp/kvio.qmp");
	assert_int_equal(PARSE("run"), CONFIG_RUN);
	assert_string_equal(cfg.monitor_path, "");
	assert_int_equal(PARSE("run", "--monitor", "tcp:127.0.0.1:4444"), CONFIG_INVALID);
	assert_one_line_error("--monitor: 'tcp:127.0.0.1:4444' is not unix:PATH");
}

static void test_shared_memory(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run"), CONFIG_RUN);
	assert_false(config_shares_memory(&cfg));
	assert_int_equal(PARSE("run", "--shared-memory"), CONFIG_RUN);
	assert_true(config_shares_memory(&cfg));
	assert_int_equal(PARSE("run", "--net", "vhost-user=/tmp/x.sock"), CONFIG_RUN);
	assert_true(config_shares_memory(&cfg));
	assert_int_equal(PARSE("run", "--disk", "vhost-user=/tmp/x.sock"), CONFIG_RUN);
	assert_true(config_shares_memory(&cfg));
	assert_int_equal(PARSE("run", "--net", "user"), CONFIG_RUN);
	assert_false(config_shares_memory(&cfg));
}

static void test_monitor_socket_empty(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--monitor", "unix:"), CONFIG_INVALID);
	assert_one_line_error("--monitor");
}

static void test_monitor_socket_too_long(void **state)
{
	struct vm_config cfg;
	char long_path[200];

	(void)state;
	memset(long_path, 'a', sizeof(long_path) - 1);
	memcpy(long_path, "unix:", 5);
	long_path[sizeof(long_path) - 1] = '\0';
	assert_int_equal(PARSE("run", "--monitor", long_path), CONFIG_INVALID);
	assert_one_line_error("--monitor");
}

static void test_seccomp_choice(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--seccomp", "off"), CONFIG_RUN);
	assert_int_equal(cfg.seccomp, SANDBOX_OFF);
	assert_int_equal(PARSE("run", "--seccomp=log"), CONFIG_RUN);
	assert_int_equal(cfg.seccomp, SANDBOX_LOG);
	assert_int_equal(PARSE("run", "--seccomp", "log", "--seccomp", "on"), CONFIG_RUN);
	assert_int_equal(cfg.seccomp, SANDBOX_ON);
	assert_int_equal(PARSE("run", "--seccomp", "strict"), CONFIG_INVALID);
	assert_one_line_error("--seccomp: 'strict' is not on, off or log");
}

static void test_seccomp_needs_a_value(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--seccomp"), CONFIG_INVALID);
	assert_one_line_error("'--seccomp' needs a value");
}

static void test_seccomp_empty_value(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--seccomp="), CONFIG_INVALID);
	assert_one_line_error("--seccomp: '' is not on, off or log");
}

static void test_disk_options(void **state)
{
	struct vm_config cfg;
	char arg[300];

	(void)state;
	snprintf(arg, sizeof(arg), "%s/vmlinuz,ro,id=disk-a,queues=4", guest_dir);
	assert_int_equal(PARSE("run", "--disk", arg, "--disk", arg), CONFIG_RUN);
	assert_int_equal(cfg.nr_disks, 2);
	assert_true(cfg.disks[0].read_only);
	assert_string_equal(cfg.disks[0].id, "disk-a");
	assert_int_equal(cfg.disks[1].queues, 4);
	assert_false(cfg.disks[1].vhost_user);
	/* The socket need not exist yet: kvio connects when it builds the VM. */
	assert_int_equal(PARSE("run", "--disk", "vhost-user=/run/blkd.sock,queues=2"), CONFIG_RUN);
	assert_true(cfg.disks[0].vhost_user);
	assert_string_equal(cfg.disks[0].path, "/run/blkd.sock");
	assert_int_equal(cfg.disks[0].queues, 2);
}

static void test_disk_errors(void **state)
{
	struct vm_config cfg;
	char arg[300];

	(void)state;
	snprintf(arg, sizeof(arg), "%s/vmlinuz,queues=99", guest_dir);
	assert_int_equal(PARSE("run", "--disk", arg), CONFIG_INVALID);
	assert_one_line_error("queues must be 1 to 16");
	teardown(state);
	setup(state);
	assert_int_equal(PARSE("run", "--disk", "vhost-user=/run/blkd.sock,ro"), CONFIG_INVALID);
	assert_one_line_error("--disk: 'ro' does not apply to vhost-user= (only queues=N)");
}

static void test_disk_unknown_key(void **state)
{
	struct vm_config cfg;
	char arg[300];

	(void)state;
	snprintf(arg, sizeof(arg), "%s/vmlinuz,cache=none", guest_dir);
	assert_int_equal(PARSE("run", "--disk", arg), CONFIG_INVALID);
	assert_one_line_error("--disk: unknown option 'cache=none'");
}

static void test_disk_missing_file(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--disk", "/nonexistent.img,ro"), CONFIG_INVALID);
	assert_one_line_error("--disk: cannot open '/nonexistent.img'");
}

static void test_net_options(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--net", "tap=kvtap0", "--net", "tap=t1,mac=02:00:00:AB:cd:01,queues=4"),
			 CONFIG_RUN);
	assert_int_equal(cfg.nr_nics, 2);
	assert_string_equal(cfg.nics[0].ifname, "kvtap0");
	assert_int_equal(cfg.nics[0].queues, 1);
	assert_false(cfg.nics[0].mac_set);
	assert_true(cfg.nics[1].mac_set);
	assert_int_equal(cfg.nics[1].mac[3], 0xAB);
	assert_int_equal(cfg.nics[1].mac[4], 0xCD);
	assert_int_equal(cfg.nics[1].queues, 4);
	assert_int_equal(cfg.nics[1].model, NET_MODEL_VIRTIO);
	assert_int_equal(cfg.nics[1].vhost, NET_VHOST_OFF);
}

static void test_net_models_and_backends(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "--net", "tap=t0,model=e1000", "--net", "tap=t1,vhost=auto,queues=2", "--net",
			       "user,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp::5353-10.0.2.20:53"),
			 CONFIG_RUN);
	assert_int_equal(cfg.nr_nics, 3);
	assert_int_equal(cfg.nics[0].model, NET_MODEL_E1000);
	assert_int_equal(cfg.nics[1].vhost, NET_VHOST_AUTO);
	assert_int_equal(cfg.nics[2].backend, NET_BACKEND_USER);
	assert_int_equal(cfg.nics[2].nr_hostfwds, 2);
	assert_false(cfg.nics[2].hostfwds[0].udp);
	assert_int_equal(cfg.nics[2].hostfwds[0].host_addr, htonl(0x7F000001));
	assert_int_equal(cfg.nics[2].hostfwds[0].host_port, 2222);
	assert_int_equal(cfg.nics[2].hostfwds[0].guest_addr, 0);
	assert_int_equal(cfg.nics[2].hostfwds[0].guest_port, 22);
	assert_true(cfg.nics[2].hostfwds[1].udp);
	assert_int_equal(cfg.nics[2].hostfwds[1].host_addr, 0);
	assert_int_equal(cfg.nics[2].hostfwds[1].guest_addr, htonl(0x0A000214));
	/* User networking's MTU: 65520 by default with virtio, 1500 with e1000, or as given. */
	assert_int_equal(cfg.nics[2].mtu, 65520);
	assert_int_equal(cfg.nics[0].mtu, 0);
	assert_int_equal(PARSE("run", "--net", "user,model=e1000", "--net", "user,mtu=1500", "--net", "user,mtu=68"),
			 CONFIG_RUN);
	assert_int_equal(cfg.nics[0].mtu, 1500);
	assert_int_equal(cfg.nics[1].mtu, 1500);
	assert_int_equal(cfg.nics[2].mtu, 68);
	assert_int_equal(PARSE("run", "--net", "vhost-user=/run/sw/port0.sock,queues=2,reconnect=3"), CONFIG_RUN);
	assert_int_equal(cfg.nics[0].backend, NET_BACKEND_VHOST_USER);
	assert_string_equal(cfg.nics[0].socket, "/run/sw/port0.sock");
	assert_int_equal(cfg.nics[0].queues, 2);
	assert_int_equal(cfg.nics[0].reconnect, 3);
}

static void test_net_errors(void **state)
{
	static struct {
		char *arg;
		const char *error;
	} cases[] = {
		{ "mac=52:54:00:12:34:56", "--net: missing backend (use tap=IFNAME, user or vhost-user=SOCK)" },
		{ "tap=t0,model=rtl8139", "--net: unknown model 'rtl8139'" },
		{ "tap=t0,vhost=maybe", "vhost must be on, off or auto" },
		{ "user,vhost=on", "vhost= needs tap=IFNAME and model=virtio" },
		{ "tap=t0,model=e1000,vhost=on", "vhost= needs tap=IFNAME and model=virtio" },
		{ "tap=t0,hostfwd=tcp::2222-:22", "hostfwd= needs the user backend" },
		{ "user,hostfwd=tcp:127.0.0.1:2222", "is not a forwarding rule" },
		{ "user,hostfwd=sctp::1-:2", "is not a forwarding rule" },
		{ "user,hostfwd=tcp::0-:22", "is not a forwarding rule" },
		{ "user,hostfwd=tcp:localhost:22-:22", "is not a forwarding rule" },
		{ "user,queues=2", "queues > 1 needs model=virtio on tap=IFNAME or vhost-user=SOCK" },
		{ "vhost-user=", "vhost-user socket path must be 1 to 107 bytes" },
		{ "vhost-user=/tmp/s.sock,model=e1000", "vhost-user= needs model=virtio" },
		{ "vhost-user=/tmp/s.sock,vhost=on", "vhost= needs tap=IFNAME and model=virtio" },
		{ "vhost-user=/tmp/s.sock,reconnect=0", "reconnect must be 1 to 3600 seconds" },
		{ "vhost-user=/tmp/s.sock,reconnect=2x", "reconnect must be 1 to 3600 seconds" },
		{ "tap=t0,reconnect=5", "reconnect= needs vhost-user=SOCK" },
		{ "user,tap=t0", "--net: unknown option 'tap=t0'" },
		{ "tap=", "--net: '' is not an interface name" },
		{ "tap=name-that-is-too-long", "is not an interface name" },
		{ "tap=a/b", "is not an interface name" },
		{ "tap=t0,mac=01:00:5e:00:00:01", "is not a unicast MAC address" },
		{ "tap=t0,mac=52:54:00:12:34", "is not a unicast MAC address" },
		{ "tap=t0,mac=52:54:00:12:34:5g", "is not a unicast MAC address" },
		{ "tap=t0,queues=0", "queues must be 1 to 8" },
		{ "tap=t0,queues=9", "queues must be 1 to 8" },
		{ "tap=t0,speed=fast", "--net: unknown option 'speed=fast'" },
		{ "user,mtu=67", "'mtu=67': mtu must be 68 to 65520" },
		{ "user,mtu=65521", "mtu must be 68 to 65520" },
		{ "user,mtu=9k", "mtu must be 68 to 65520" },
		{ "tap=t0,mtu=9000", "mtu= needs user and model=virtio" },
		{ "user,model=e1000,mtu=9000", "mtu= needs user and model=virtio" },
	};
	struct vm_config cfg;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(PARSE("run", "--net", cases[i].arg), CONFIG_INVALID);
		assert_one_line_error(cases[i].error);
		teardown(state);  /* a fresh error stream for the next case */
		setup(state);
	}
}

static void test_stray_argument(void **state)
{
	struct vm_config cfg;

	(void)state;
	assert_int_equal(PARSE("run", "extra"), CONFIG_INVALID);
	assert_one_line_error("'extra'");
}

static void test_no_command(void **state)
{
	struct vm_config cfg;
	char *argv[] = { "kvio", NULL };

	(void)state;
	assert_int_equal(config_parse(1, argv, guest_dir, &cfg, out, err), CONFIG_INVALID);
	assert_one_line_error("missing command");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_help_and_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_option, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_command, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_cpus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many_cpus, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_kernel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_initrd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stray_argument, setup, teardown),
		cmocka_unit_test_setup_teardown(test_console_choice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_balloon_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_balloon_option_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_balloon_takes_no_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seccomp_choice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_monitor_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_monitor_socket_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shared_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_monitor_socket_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seccomp_needs_a_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_seccomp_empty_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_unknown_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_net_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_net_models_and_backends, setup, teardown),
		cmocka_unit_test_setup_teardown(test_net_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_command, setup, teardown),
	};

	return cmocka_run_group_tests_name("config", tests, make_guest_dir, remove_guest_dir);
}
