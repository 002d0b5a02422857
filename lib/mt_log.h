/* Logging: one line per event on stderr, "LEVEL component: message". */
#ifndef MT_LOG_H
#define MT_LOG_H

#include <stdarg.h>

enum mt_log_level {
	MT_LOG_ERR = 0,
	MT_LOG_WARN,
	MT_LOG_INFO,
	MT_LOG_DEBUG,
};

/* Sets the component name printed on every line and the maximum level. */
void mt_log_init(const char *component, enum mt_log_level level);
void mt_log(enum mt_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define mt_err(...) mt_log(MT_LOG_ERR, __VA_ARGS__)
#define mt_warn(...) mt_log(MT_LOG_WARN, __VA_ARGS__)
#define mt_info(...) mt_log(MT_LOG_INFO, __VA_ARGS__)
#define mt_debug(...) mt_log(MT_LOG_DEBUG, __VA_ARGS__)

#endif
