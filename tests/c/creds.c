/* Print the effective uid and the effective capability set: what a setuid or file-capability binary gained. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char line[256];
    FILE *status = fopen("/proc/self/status", "r");
    printf("euid %d\n", (int)geteuid());
    while (status && fgets(line, sizeof line, status))
        if (strncmp(line, "CapEff:", 7) == 0)
            printf("capeff %s", line + 8);
    return 0;
}
