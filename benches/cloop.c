/*
 * The reference loops of benches/compare.sh: the least a collector can do
 * to read stat, status, io and the open-descriptor count of every process.
 * Prints the CPU time (user + system) per cycle in ms, over CYCLES cycles
 * after one warm-up cycle.
 *
 *   cloop [-i MS] CYCLES [open|threads|kept] [KMEM|-] [MAXFILES]
 *
 * With -i MS, it sleeps MS milliseconds before each measured cycle, as an
 * agent on a timer does between two cycles; without, the cycles run back
 * to back. The two differ: a cycle that follows another at once finds
 * the kernel's caches and the CPU's warm from the one before, and costs
 * less than one that starts after a pause (see BENCHMARKS.md, "A loop that
 * keeps time").
 *
 * open (the default): every cycle, for every process in /proc, opens,
 *   reads and closes stat, status and io, and lists fd/.
 * threads: the same, and also stat and status of every task in task/.
 * kept: opens stat, status and io of a process once, when first listed,
 *   and keeps them open: every cycle re-reads them with pread at offset 0
 *   and counts descriptors by fstat of its fd/ directory (kept open
 *   path-only; its size is the count on Linux 6.2+). Descriptors of a
 *   process no longer listed are closed. With MAXFILES, at most that many
 *   files are kept open (in listing order, each process's three while
 *   they fit); the others are opened, read and closed every cycle: the
 *   same loop held to a kernel-memory bound.
 *
 * With KMEM, the path of a kernel-memory counter of the memory cgroup the
 * loop runs in (cgroup v1 memory.kmem.usage_in_bytes, or a cgroup v2
 * memory.stat, whose "kernel" line is used), "kept" also prints what
 * closing its descriptors after the last cycle gave back, in KiB, and how
 * many there were: the kernel memory that keeping them held.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
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

/* The kept-open loop: one slot per PID, and the PIDs that have one. */
#define KEPT_FILES 3
static const char *const kept_names[KEPT_FILES] = {"stat", "status", "io"};

struct kept {
    int fd[KEPT_FILES]; /* -1: not open; -2: read by path every cycle */
    int fd_dir;         /* fd/, path-only */
    unsigned seen;      /* cycle it was last listed in */
    int open;
};

static struct kept *slots;
static long slot_count;
static int *open_pids;
static long open_count;
static unsigned cycle;
static long kept_max = -1; /* files that may be kept open; -1: no bound */
static long kept_files;    /* files kept open */

static void kept_close(struct kept *k)
{
    for (int i = 0; i < KEPT_FILES; i++)
        if (k->fd[i] >= 0) {
            close(k->fd[i]);
            kept_files--;
        }
    if (k->fd_dir >= 0)
        close(k->fd_dir);
    k->open = 0;
}

static void kept_process(int dir, const char *unused, const char *name)
{
    (void)unused;
    long pid = strtol(name, NULL, 10);
    if (pid <= 0 || pid >= slot_count)
        return;
    struct kept *k = &slots[pid];
    char path[128];
    if (!k->open) {
        for (int i = 0; i < KEPT_FILES; i++) {
            if (kept_max >= 0 && kept_files >= kept_max) {
                k->fd[i] = -2;
                continue;
            }
            snprintf(path, sizeof path, "%ld/%s", pid, kept_names[i]);
            k->fd[i] = openat(dir, path, O_RDONLY | O_CLOEXEC);
            kept_files += k->fd[i] >= 0;
        }
        snprintf(path, sizeof path, "%ld/fd", pid);
        k->fd_dir = openat(dir, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        k->open = 1;
        open_pids[open_count++] = (int)pid;
    }
    k->seen = cycle;
    for (int i = 0; i < KEPT_FILES; i++) {
        if (k->fd[i] >= 0) {
            (void)pread(k->fd[i], buf, sizeof buf, 0);
        } else if (k->fd[i] == -2) {
            snprintf(path, sizeof path, "%ld/%s", pid, kept_names[i]);
            read_file(dir, path);
        }
    }
    struct stat st;
    if (k->fd_dir >= 0)
        (void)fstat(k->fd_dir, &st);
}

/* One kept-open cycle: list /proc, then close what was not listed. */
static void kept_cycle(int proc)
{
    cycle++;
    list_dir(proc, ".", kept_process);
    long n = 0;
    for (long i = 0; i < open_count; i++) {
        struct kept *k = &slots[open_pids[i]];
        if (k->seen == cycle)
            open_pids[n++] = open_pids[i];
        else
            kept_close(k);
    }
    open_count = n;
}

/* Kernel memory of the cgroup in bytes, from KMEM; -1 when unreadable. */
static long long kmem_bytes(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long long v = -1;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "kernel ", 7) == 0) {
            v = atoll(line + 7);
            break;
        }
        if (line[0] >= '0' && line[0] <= '9') {
            v = atoll(line);
            break;
        }
    }
    fclose(f);
    return v;
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
    long pause_ms = 0;
    if (argc > 2 && strcmp(argv[1], "-i") == 0) {
        pause_ms = atol(argv[2]);
        argc -= 2;
        argv += 2;
    }
    int cycles = argc > 1 ? atoi(argv[1]) : 20;
    const char *mode = argc > 2 ? argv[2] : "open";
    const char *kmem = argc > 3 && strcmp(argv[3], "-") != 0 ? argv[3] : NULL;
    if (argc > 4)
        kept_max = atol(argv[4]);
    int kept = strcmp(mode, "kept") == 0;
    threads = strcmp(mode, "threads") == 0;
    if (!kept && !threads && strcmp(mode, "open") != 0) {
        fprintf(stderr, "cloop: mode is open, threads or kept\n");
        return 2;
    }
    int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc < 0 || cycles < 1)
        return 1;
    if (kept) {
        FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
        if (!f || fscanf(f, "%ld", &slot_count) != 1)
            return 1;
        fclose(f);
        slot_count++;
        slots = calloc(slot_count, sizeof *slots);
        open_pids = calloc(slot_count, sizeof *open_pids);
        if (!slots || !open_pids)
            return 1;
        kept_cycle(proc);
    } else {
        list_dir(proc, ".", process);
    }
    double start = cpu_ms();
    for (int i = 0; i < cycles; i++) {
        if (pause_ms > 0) {
            struct timespec pause = {pause_ms / 1000, pause_ms % 1000 * 1000000L};
            nanosleep(&pause, NULL);
        }
        if (kept)
            kept_cycle(proc);
        else
            list_dir(proc, ".", process);
    }
    printf("%.1f", (cpu_ms() - start) / cycles);
    if (kept && kmem) {
        long fds = 0;
        for (long i = 0; i < open_count; i++) {
            struct kept *k = &slots[open_pids[i]];
            for (int j = 0; j < KEPT_FILES; j++)
                fds += k->fd[j] >= 0;
            fds += k->fd_dir >= 0;
        }
        long long before = kmem_bytes(kmem);
        for (long i = 0; i < open_count; i++)
            kept_close(&slots[open_pids[i]]);
        long long after = kmem_bytes(kmem);
        if (before >= 0 && after >= 0)
            printf(" %lld %ld", (before - after) / 1024, fds);
    }
    printf("\n");
    return 0;
}
