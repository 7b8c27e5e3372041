/* fuzz_score_jsonl.c — libFuzzer target: `qrr score` end to end on arbitrary standard input
 * (JSON lines), with a small model (QRR_FUZZ_MODEL, made by fuzz/make_seeds.sh). The qrr
 * tool's own main.c is compiled in under another name, since libFuzzer owns main(); the
 * command itself is called exactly as the tool calls it. Run with -close_fd_mask=3: the
 * command writes a line per input line. */
#include <string.h>

#include "fuzz_util.h"

#define main qrr__tool_main
#include "../tools/qrr/main.c"
#undef main

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
    FILE *in = fmemopen((void *)data, size ? size : 1, "r");
    if (!in) return 0;
    if (!size) { /* fmemopen refuses size 0: read one byte of an empty stream instead */
        fclose(in);
        in = fopen("/dev/null", "r");
        if (!in) return 0;
    }
    FILE *saved = stdin;
    stdin = in;
    /* Small groups and chunks so grouping, chunking and the one-by-one fallback all run. */
    char *argv[] = {"score", (char *)model_path, "--threads", "1", "--batch", "3",
                    "--max-batch-tokens", "96", NULL};
    int rc = qrr_cmd_score(8, argv);
    stdin = saved;
    fclose(in);
    FUZZ_CHECK(rc == QRR_EXIT_OK || rc == QRR_EXIT_FAIL, "qrr score exit %d", rc);
    return 0;
}
