/* Shared by kvio-switch and kvio-blkd: see unix_listen.h. */
#include "unix_listen.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Frontends beyond the one being served wait here until it leaves. */
#define LISTEN_BACKLOG 4

int unix_listen(const char *path, const char **why)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, err;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		*why = "too long for a socket path";
		return -ENAMETOOLONG;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			*why = "exists and is not a socket";
			return -EEXIST;
		}
		if (unlink(path) < 0) {
			*why = "cannot remove the stale socket";
			return -errno;
		}
	}
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
		err = -errno;
		*why = "cannot listen";
		if (fd >= 0)
			close(fd);
		return err;
	}
	return fd;
}
