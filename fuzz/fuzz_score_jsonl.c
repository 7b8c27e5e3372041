/* fuzz_score_jsonl.c — libFuzzer target: `qrr score` end to end on arbitrary standard input
 * (JSON lines), with a small model (QRR_FUZZ_MODEL, made by fuzz/make_seeds.sh). The command
 * is called exactly as the tool calls it, with the input behind file descriptor 0 (a memory
 * file). Run with -close_fd_mask=3: the command writes a line per input line. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "fuzz_util.h"

static const char *model_path;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    model_path = getenv("QRR_FUZZ_MODEL");
    if (!model_path || !*model_path) {
        fprintf(stderr, "fuzz_score_jsonl: set QRR_FUZZ_MODEL to a small .qrr "
                        "(fuzz/make_seeds.sh writes one)\n");
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) return 0;
    int in = memfd_create("fuzz-stdin", MFD_CLOEXEC);
    if (in < 0) return 0;
    if ((size && write(in, data, size) != (ssize_t)size) || lseek(in, 0, SEEK_SET) != 0) {
        close(in);
        return 0;
    }
    int saved = dup(0);
    dup2(in, 0);
    close(in);
    /* Small groups and chunks so grouping, chunking and the one-by-one fallback all run. */
    char *argv[] = {"score", (char *)model_path, "--threads", "1", "--batch", "3",
                    "--max-batch-tokens", "96", NULL};
    int rc = qrr_cmd_score(8, argv);
    dup2(saved, 0);
    close(saved);
    FUZZ_CHECK(rc == QRR_EXIT_OK || rc == QRR_EXIT_FAIL, "qrr score exit %d", rc);
    return 0;
}
