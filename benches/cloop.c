/*
 * The reference loop of benches/compare.sh: the least a collector that
 * opens files each cycle can do. For every process in /proc it opens and
 * reads stat, status and io and lists fd/; with "threads", it also reads
 * stat and status of every task in task/. Prints the CPU time (user +
 * system) per cycle in ms, over CYCLES cycles after one warm-up cycle.
 *
 *   cloop CYCLES [threads]
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static char buf[1 << 16];

static void read_file(int dir, const char *path)
{
    int fd = openat(dir, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    while (read(fd, buf, sizeof buf) > 0)
        ;
    close(fd);
}

static void list_dir(int dir, const char *path, void (*each)(int, const char *, const char *))
{
    int fd = openat(dir, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)))
        if (each && e->d_name[0] >= '0' && e->d_name[0] <= '9')
            each(dir, path, e->d_name);
    closedir(d);
}

static void task(int dir, const char *tasks, const char *tid)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s/stat", tasks, tid);
    read_file(dir, path);
    snprintf(path, sizeof path, "%s/%s/status", tasks, tid);
    read_file(dir, path);
}

static int threads;

static void process(int dir, const char *unused, const char *pid)
{
    (void)unused;
    char path[128];
    snprintf(path, sizeof path, "%s/stat", pid);
    read_file(dir, path);
    snprintf(path, sizeof path, "%s/status", pid);
    read_file(dir, path);
    snprintf(path, sizeof path, "%s/io", pid);
    read_file(dir, path);
    snprintf(path, sizeof path, "%s/fd", pid);
    list_dir(dir, path, NULL);
    if (threads) {
        snprintf(path, sizeof path, "%s/task", pid);
        list_dir(dir, path, task);
    }
}

static double cpu_ms(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e3 +
           (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e3;
}

int main(int argc, char **argv)
{
    int cycles = argc > 1 ? atoi(argv[1]) : 20;
    threads = argc > 2 && strcmp(argv[2], "threads") == 0;
    int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc < 0 || cycles < 1)
        return 1;
    list_dir(proc, ".", process);
    double start = cpu_ms();
    for (int i = 0; i < cycles; i++)
        list_dir(proc, ".", process);
    printf("%.1f\n", (cpu_ms() - start) / cycles);
    return 0;
}
