#include "mt_log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *log_component = "mt";
static enum mt_log_level log_level = MT_LOG_INFO;

void mt_log_init(const char *component, enum mt_log_level level)
{
	log_component = component;
	log_level = level;
}

void mt_log(enum mt_log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "ERR", "WARN", "INFO", "DEBUG" };
	struct timespec ts;
	struct tm tm;
	char line[2048];
	va_list ap;

	if (level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s\n", tm.tm_hour,
		tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level],
		log_component, line);
}
