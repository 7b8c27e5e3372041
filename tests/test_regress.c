/* test_regress.c — replays every input under tests/regress/<target>/ (inputs that once
 * crashed a fuzz target or broke one of its invariants, and hand-made hostile ones) through
 * the same harness code the fuzzer runs: the fuzz/fuzz_<target>.c files are compiled in here
 * under other names. A crash or a broken invariant aborts, which Criterion reports. The qrr
 * score target runs the built `qrr score` program instead (its harness needs the tool's
 * main.c). QRR_REGRESS names the directory (default tests/regress). */
#include <dirent.h>

#include "qrr_test_util.h"

#define LLVMFuzzerTestOneInput regress_qrr_file
#include "../fuzz/fuzz_qrr_file.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput regress_qrr_sections
#include "../fuzz/fuzz_qrr_sections.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerTestOneInput regress_safetensors
#include "../fuzz/fuzz_safetensors.c"
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerInitialize regress_hf_config_init
#define LLVMFuzzerTestOneInput regress_hf_config
#include "../fuzz/fuzz_hf_config.c"
#undef LLVMFuzzerInitialize
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerInitialize regress_tokenizer_import_init
#define LLVMFuzzerTestOneInput regress_tokenizer_import
#include "../fuzz/fuzz_tokenizer_import.c"
#undef LLVMFuzzerInitialize
#undef LLVMFuzzerTestOneInput

#define LLVMFuzzerInitialize regress_tokenizer_init
#define LLVMFuzzerTestOneInput regress_tokenizer
#include "../fuzz/fuzz_tokenizer.c"
#undef LLVMFuzzerInitialize
#undef LLVMFuzzerTestOneInput

static const char *regress_dir(void)
{
    const char *r = getenv("QRR_REGRESS");
    return r && *r ? r : "tests/regress";
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

typedef int (*one_input_fn)(const uint8_t *, size_t);

/* Feed every file of tests/regress/<target>/ to fn; returns how many. */
static int replay(const char *target, one_input_fn fn)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", regress_dir(), target);
    DIR *dp = opendir(dir);
    if (!dp) return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        size_t len;
        uint8_t *data = read_all(p, &len);
        fprintf(stderr, "regress: %s/%s (%zu bytes)\n", target, e->d_name, len);
        fn(data, len);
        free(data);
        count++;
    }
    closedir(dp);
    return count;
}

TestSuite(regress, .timeout = 120);

/* Every target has saved inputs: an empty directory means the files went missing. */
static void replay_all(const char *target, one_input_fn fn)
{
    cr_assert_gt(replay(target, fn), 0, "no inputs in %s/%s", regress_dir(), target);
}

Test(regress, qrr_file) { replay_all("qrr_file", regress_qrr_file); }
Test(regress, qrr_sections) { replay_all("qrr_sections", regress_qrr_sections); }
Test(regress, safetensors) { replay_all("safetensors", regress_safetensors); }

Test(regress, hf_config)
{
    regress_hf_config_init(NULL, NULL);
    replay_all("hf_config", regress_hf_config);
}

Test(regress, tokenizer_import)
{
    regress_tokenizer_import_init(NULL, NULL);
    replay_all("tokenizer_import", regress_tokenizer_import);
}

Test(regress, tokenizer)
{
    regress_tokenizer_init(NULL, NULL);
    replay_all("tokenizer", regress_tokenizer);
}

/* `qrr score` on each saved input, with the fuzz target's options, on the tiny-tied model:
 * it may refuse lines (exit 1) but must not crash (a signal gives -1 here). */
Test(regress, score_jsonl)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/score_jsonl", regress_dir());
    DIR *dp = opendir(dir);
    cr_assert_not_null(dp, "no directory %s", dir);
    int count = 0;
    char tmp[256], model[1024];
    tu_tmpdir(tmp, sizeof tmp);
    tu_convert("tiny-tied", "f16", tmp, model, sizeof model);
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        if (e->d_name[0] == '.') continue;
        int rc = tu_system("'%s/qrr' score '%s' --threads 1 --batch 3 --max-batch-tokens 96 "
                           "< '%s/%s' > /dev/null 2>&1", tu_build(), model, dir, e->d_name);
        cr_expect(rc == 0 || rc == 1, "qrr score on %s: exit %d", e->d_name, rc);
        count++;
    }
    closedir(dp);
    cr_expect_gt(count, 0, "no inputs in %s", dir);
    tu_system("rm -rf '%s'", tmp);
}
