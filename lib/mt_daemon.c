#include "mt_daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include "mt_cleanup.h"
#include "mt_rpc.h"

int mt_daemon_signalfd(void)
{
	sigset_t set;
	int fd;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return mt_neg_errno();
	signal(SIGPIPE, SIG_IGN);
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return fd < 0 ? mt_neg_errno() : fd;
}

int mt_daemon_run_dir(const char *instance, char *err, size_t errlen)
{
	char dir[256], *slash;

	mt_rpc_run_dir(instance, dir, sizeof(dir));
	/* the parent (MT_RUN_DIR) may be shared by several instances */
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: %s", dir, strerror(errno));
			return mt_neg_errno();
		}
		*slash = '/';
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return mt_neg_errno();
	}
	return 0;
}
