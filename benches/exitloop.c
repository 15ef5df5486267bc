/*
 * The churn of benches/accounting.sh: starts RATE short-lived processes per
 * second for SECONDS seconds. Each child lives a random LIFE in
 * [MIN_MS, MAX_MS], busy on the CPU for BUSY percent of it (at least 1 ms
 * when BUSY > 0) and asleep for the rest, then exits. Children are plain
 * forks (no exec), reaped by this process with waitpid, so the kernel adds
 * their CPU to its cutime/cstime. At the end it prints the children's true
 * CPU, from getrusage(RUSAGE_CHILDREN), and how many were started. As
 * root it runs at nice -10 (its children at 0), so that the rate holds on a
 * saturated machine:
 *
 *   exitloop RATE MIN_MS MAX_MS BUSY SECONDS
 *   -> children=N cpu_seconds=S
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(clockid_t clock)
{
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void child(double life, double busy)
{
    double start = now(CLOCK_MONOTONIC);
    volatile unsigned long x = 0;
    while (now(CLOCK_THREAD_CPUTIME_ID) < busy)
        x++;
    double left = life - (now(CLOCK_MONOTONIC) - start);
    if (left > 0) {
        struct timespec t = {(time_t)left, (long)((left - (time_t)left) * 1e9)};
        nanosleep(&t, NULL);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: exitloop RATE MIN_MS MAX_MS BUSY SECONDS\n");
        return 2;
    }
    double rate = atof(argv[1]), min_ms = atof(argv[2]), max_ms = atof(argv[3]);
    double busy_pct = atof(argv[4]), seconds = atof(argv[5]);
    if (rate <= 0 || min_ms < 0 || max_ms < min_ms || busy_pct < 0 || busy_pct > 100) {
        fprintf(stderr, "exitloop: bad arguments\n");
        return 2;
    }
    int raised = setpriority(PRIO_PROCESS, 0, -10) == 0;
    srand48(getpid());
    double start = now(CLOCK_MONOTONIC), period = 1.0 / rate;
    unsigned long started = 0;
    for (;;) {
        double t = now(CLOCK_MONOTONIC) - start;
        if (t >= seconds)
            break;
        /* Catch up if behind, so that the rate holds on a busy machine. */
        while (started < (unsigned long)(t * rate) + 1) {
            double life = (min_ms + drand48() * (max_ms - min_ms)) / 1e3;
            double busy = busy_pct > 0 ? life * busy_pct / 100 : 0;
            if (busy_pct > 0 && busy < 1e-3)
                busy = 1e-3;
            pid_t pid = fork();
            if (pid == 0) {
                if (raised)
                    setpriority(PRIO_PROCESS, 0, 0);
                child(life, busy);
            }
            if (pid < 0) {
                perror("exitloop: fork");
                break;
            }
            started++;
        }
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        double next = started * period - (now(CLOCK_MONOTONIC) - start);
        if (next > 0) {
            struct timespec d = {(time_t)next, (long)((next - (time_t)next) * 1e9)};
            nanosleep(&d, NULL);
        }
    }
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    printf("children=%lu cpu_seconds=%.3f\n", started,
           ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
               ru.ru_stime.tv_usec / 1e6);
    return 0;
}
