/* kvio: command line -> struct vm_config -> vm_run(). */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "core/vm.h"
#include "util/log.h"

/* The default guest is built next to the binary (build/kvio, build/guest/);
 * variant builds such as build/asan/kvio find it one level up. */
static void default_guest_dir(char *dir, size_t size)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *bin_dir;

	if (n <= 0) {
		snprintf(dir, size, "build/guest");
		return;
	}
	exe[n] = '\0';
	bin_dir = dirname(exe);
	snprintf(dir, size, "%s/guest", bin_dir);
	if (access(dir, F_OK) != 0)
		snprintf(dir, size, "%s/../guest", bin_dir);
}

int main(int argc, char **argv)
{
	struct vm_config cfg;
	char guest_dir[PATH_MAX];
	const char *level = getenv("KVIO_LOG");

	if (level && !strcmp(level, "debug"))
		log_set_level(LOG_DEBUG);
	default_guest_dir(guest_dir, sizeof(guest_dir));
	switch (config_parse(argc, argv, guest_dir, &cfg, stdout, stderr)) {
	case CONFIG_DONE:
		return 0;
	case CONFIG_INVALID:
		return 2;
	case CONFIG_RUN:
		break;
	}
	return vm_run(&cfg);
}
