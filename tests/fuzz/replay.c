/*
 * replay.c - runs tests/fuzz/fuzz_p11.c's LLVMFuzzerTestOneInput on every
 * file of the committed corpus (or of the files and directories named on
 * the command line), built with the normal compiler: `make check` runs it.
 */
#include "config.h"

#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The corpus under the source tree each replay program runs by default. */
#ifndef FUZZ_CORPUS
#define FUZZ_CORPUS "tests/fuzz/corpus"
#endif

#define INPUT_MAX (1024 * 1024)

static int run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    uint8_t *buf;
    size_t n;

    if (fp == NULL) {
        perror(path);
        return 1;
    }
    buf = malloc(INPUT_MAX);
    if (buf == NULL) {
        fclose(fp);
        return 1;
    }
    n = fread(buf, 1, INPUT_MAX, fp);
    fclose(fp);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of dir, in name order (the same order each run). */
static int run_dir(const char *dir, int *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int bad = 0;

    if (d == NULL) {
        perror(dir);
        return 1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            char **nn;

            cap = cap == 0 ? 64 : cap * 2;
            nn = realloc(names, cap * sizeof(*names));
            if (nn == NULL) {
                bad = 1;
                break;
            }
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (names[n] == NULL) {
            bad = 1;
            break;
        }
        n++;
    }
    closedir(d);
    if (n > 0) {
        qsort(names, n, sizeof(*names), name_cmp);
    }
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        struct stat st;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (!bad && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            bad |= run_file(path);
            (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return bad;
}

int main(int argc, char **argv)
{
    char def[PATH_MAX];
    const char *top = getenv("NIMBUS_TOP_SRCDIR");
    int bad = 0, count = 0;

    if (argc < 2) {
        snprintf(def, sizeof(def), "%s/" FUZZ_CORPUS,
                 top != NULL ? top : ".");
        bad = run_dir(def, &count);
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;

        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            bad |= run_dir(argv[i], &count);
        } else {
            bad |= run_file(argv[i]);
            count++;
        }
    }
    printf("fuzz_replay: %d inputs replayed\n", count);
    if (count == 0) {
        fprintf(stderr, "fuzz_replay: no input found\n");
        return 1;
    }
    return bad;
}
