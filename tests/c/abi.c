/* Raw syscalls through the three x86 ABIs, no libc wrappers: a seccomp filter must see each one. */
#include <stdio.h>

static long sys64(long nr, long a) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a) : "rcx", "r11", "memory");
    return ret;
}

static long sys32(long nr, long a) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a) : "memory");
    return ret;
}

#define X32 0x40000000L

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("x86_64-getpid %ld\n", sys64(39, 0));
    printf("i386-getpid %ld\n", sys32(20, 0));
    printf("x32-getpid %ld\n", sys64(X32 | 39, 0));
    printf("x86_64-getpgid-4242 %ld\n", sys64(121, 4242));
    printf("i386-getpgid-4242 %ld\n", sys32(132, 4242));
    printf("x86_64-getpgid-0 %ld\n", sys64(121, 0));
    printf("i386-getpgid-0 %ld\n", sys32(132, 0));
    return 0;
}
