//go:build ignore

// Target program for the uprobe and perf_event tests.
//   target calls N [wait]  calls vigil_target N times (after a line on stdin with "wait")
//   target spin MS [wait]  burns MS milliseconds of CPU time
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

__attribute__((noinline, used)) int vigil_target(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

static double cpu_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	if (argc > 3 && strcmp(argv[3], "wait") == 0) {
		char line[16];
		if (!fgets(line, sizeof line, stdin))
			return 3;
	}
	long n = atol(argv[2]);
	volatile long sum = 0;
	if (strcmp(argv[1], "calls") == 0) {
		for (long i = 0; i < n; i++)
			sum += vigil_target((int)i);
	} else {
		double end = cpu_ms() + n;
		while (cpu_ms() < end)
			sum++;
	}
	return 0;
}
