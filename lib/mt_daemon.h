/* What every mt daemon does at start: signals into its event loop, and the
 * runtime directory its sockets live in. */
#ifndef MT_DAEMON_H
#define MT_DAEMON_H

#include <stddef.h>

/* Blocks SIGINT, SIGTERM and SIGHUP and returns a non-blocking signalfd
 * for them (SIGPIPE is ignored), or -errno. */
int mt_daemon_signalfd(void);

/* Creates MT_RUN_DIR (0755) and its <instance> directory (0700, root only)
 * if missing. Returns 0 or -errno; on failure err names the directory. */
int mt_daemon_run_dir(const char *instance, char *err, size_t errlen);

#endif
