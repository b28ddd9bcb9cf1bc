/* The listening socket each vhost-user backend in tools/ serves on. */
#ifndef KVIO_TOOLS_UNIX_LISTEN_H
#define KVIO_TOOLS_UNIX_LISTEN_H

/* A non-blocking, close-on-exec UNIX stream socket listening at path,
 * replacing a stale socket there (never any other kind of file). Returns the
 * fd, or -errno with *why naming the step that failed (the caller logs it,
 * naming its own option). */
int unix_listen(const char *path, const char **why);

#endif
