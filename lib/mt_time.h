#ifndef MT_TIME_H
#define MT_TIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t mt_now_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wall clock, for deadlines carried in RPCs and timestamps shown to people. */
static inline uint64_t mt_realtime_ms(void)
{
	return mt_now_ms(CLOCK_REALTIME);
}

/* Monotonic clock, for timers (and microseconds, for timing work). */
static inline uint64_t mt_monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static inline uint64_t mt_monotonic_ms(void)
{
	return mt_now_ms(CLOCK_MONOTONIC);
}

#endif
